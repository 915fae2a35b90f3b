/* The public entry points: argument checks, then per-feature bookkeeping
 * around the kernels. Nothing is written before every check has passed. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "bnorm.h"
#include "formulas.h"
#include "internal.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#define KNOWN_FLAGS                                                                                \
    (BNORM_USE_SCALE | BNORM_USE_SHIFT | BNORM_RUNNING_VAR_BIASED | BNORM_RUNNING_CUMULATIVE |     \
     BNORM_FORCE_REFERENCE | BNORM_EXACT_THREADS | BNORM_CACHED_OUTPUTS)

const char *bnorm_status_str(bnorm_status status) {
    switch (status) {
    case BNORM_OK: return "success";
    case BNORM_ERR_NULL_POINTER: return "a required pointer argument is NULL";
    case BNORM_ERR_INVALID_DIMENSION: return "a tensor dimension is zero or negative";
    case BNORM_ERR_DIMENSION_OVERFLOW: return "the tensor size N*C*S overflows size_t";
    case BNORM_ERR_INVALID_RANK: return "spatial_rank is outside 0..BNORM_MAX_SPATIAL";
    case BNORM_ERR_INVALID_LAYOUT:
        return "unknown layout, or BNORM_LAYOUT_NC given spatial dimensions";
    case BNORM_ERR_INVALID_MODE: return "unknown batch-normalization mode";
    case BNORM_ERR_INVALID_EPS: return "eps must be finite and greater than zero";
    case BNORM_ERR_INVALID_DECAY: return "decay must lie in [0, 1]";
    case BNORM_ERR_INVALID_FLAGS: return "flags contain unknown bits";
    case BNORM_ERR_INVALID_THREADS:
        return "threads must be in 0..BNORM_MAX_THREADS (0 = one per core)";
    case BNORM_ERR_SINGLE_VALUE:
        return "training needs more than one value per feature (the variance is undefined)";
    case BNORM_ERR_WORKSPACE_TOO_SMALL:
        return "workspace is smaller than bnorm_workspace_size() requires";
    case BNORM_ERR_INVALID_DTYPE: return "a data type this version of the library does not handle";
    }
    return "unknown status code";
}

bnorm_params bnorm_params_default(void) {
    bnorm_params p;
    p.mode = BNORM_MODE_SPATIAL;
    p.eps = 1e-5f;
    p.decay = 0.9f;
    p.flags = BNORM_USE_SCALE | BNORM_USE_SHIFT;
    p.threads = 1;
    return p;
}

static bnorm_shape shape_zero(bnorm_layout layout, int64_t n, int64_t c) {
    bnorm_shape s = {0};
    s.layout = layout;
    s.n = n;
    s.c = c;
    return s;
}

bnorm_shape bnorm_shape_nc(int64_t n, int64_t c) { return shape_zero(BNORM_LAYOUT_NC, n, c); }

bnorm_shape bnorm_shape_nchw(int64_t n, int64_t c, int64_t h, int64_t w) {
    bnorm_shape s = shape_zero(BNORM_LAYOUT_CHANNELS_FIRST, n, c);
    s.spatial_rank = 2;
    s.spatial[0] = h;
    s.spatial[1] = w;
    return s;
}

bnorm_shape bnorm_shape_nhwc(int64_t n, int64_t h, int64_t w, int64_t c) {
    bnorm_shape s = shape_zero(BNORM_LAYOUT_CHANNELS_LAST, n, c);
    s.spatial_rank = 2;
    s.spatial[0] = h;
    s.spatial[1] = w;
    return s;
}

/* a * b, or 0 with *overflow set when it does not fit. */
static size_t mul_checked(size_t a, size_t b, int *overflow) {
    if (a != 0 && b > SIZE_MAX / a) {
        *overflow = 1;
        return 0;
    }
    return a * b;
}

static bnorm_status dim_to_size(int64_t d, size_t *out) {
    if (d <= 0) return BNORM_ERR_INVALID_DIMENSION;
    if ((uint64_t)d > (uint64_t)SIZE_MAX) return BNORM_ERR_DIMENSION_OVERFLOW;
    *out = (size_t)d;
    return BNORM_OK;
}

static bnorm_status check_params(const bnorm_params *p) {
    if (p->mode != BNORM_MODE_SPATIAL && p->mode != BNORM_MODE_PER_ACTIVATION)
        return BNORM_ERR_INVALID_MODE;
    if (!(p->eps > 0.0f) || isinf(p->eps)) return BNORM_ERR_INVALID_EPS;
    if (!(p->decay >= 0.0f && p->decay <= 1.0f)) return BNORM_ERR_INVALID_DECAY;
    if (p->flags & ~KNOWN_FLAGS) return BNORM_ERR_INVALID_FLAGS;
    if (p->threads < 0 || p->threads > BNORM_MAX_THREADS) return BNORM_ERR_INVALID_THREADS;
    return BNORM_OK;
}

/* Validates shape and params and maps them onto one of the two views. */
bnorm_status bn_make_view(const bnorm_shape *shape, const bnorm_params *p, bn_view *v) {
    if (!shape || !p) return BNORM_ERR_NULL_POINTER;
    bnorm_status st = check_params(p);
    if (st != BNORM_OK) return st;
    if (shape->layout != BNORM_LAYOUT_NC && shape->layout != BNORM_LAYOUT_CHANNELS_FIRST &&
        shape->layout != BNORM_LAYOUT_CHANNELS_LAST)
        return BNORM_ERR_INVALID_LAYOUT;
    if (shape->spatial_rank < 0 || shape->spatial_rank > BNORM_MAX_SPATIAL)
        return BNORM_ERR_INVALID_RANK;
    if (shape->layout == BNORM_LAYOUT_NC && shape->spatial_rank != 0)
        return BNORM_ERR_INVALID_LAYOUT;

    size_t n, c, s = 1, d;
    if ((st = dim_to_size(shape->n, &n)) != BNORM_OK) return st;
    if ((st = dim_to_size(shape->c, &c)) != BNORM_OK) return st;
    int overflow = 0;
    for (int i = 0; i < shape->spatial_rank; i++) {
        if ((st = dim_to_size(shape->spatial[i], &d)) != BNORM_OK) return st;
        s = mul_checked(s, d, &overflow);
    }
    size_t total = mul_checked(mul_checked(n, c, &overflow), s, &overflow);
    (void)mul_checked(total, sizeof(float), &overflow);
    if (overflow) return BNORM_ERR_DIMENSION_OVERFLOW;

    const int cached = (p->flags & BNORM_CACHED_OUTPUTS) != 0;
    if (p->mode == BNORM_MODE_PER_ACTIVATION) {
        *v = (bn_view){BN_VIEW_ROWS, n, c * s, 1, n, total, cached, {0}};
    } else if (shape->layout == BNORM_LAYOUT_CHANNELS_FIRST && s > 1) {
        *v = (bn_view){BN_VIEW_PLANES, n, c, s, n * s, total, cached, {0}};
    } else {
        *v = (bn_view){BN_VIEW_ROWS, n * s, c, 1, n * s, total, cached, {0}};
    }
    v->ch = bn_chunking_for(v);
    /* The workspace size must be representable too. */
    (void)mul_checked(mul_checked(v->ch.chunks, v->features, &overflow), 2 * sizeof(double) + 1,
                      &overflow);
    if (overflow) return BNORM_ERR_DIMENSION_OVERFLOW;
    return BNORM_OK;
}

/* Values per thread below which another thread costs more than it saves
 * (docs/PERFORMANCE.md, "Why the kernels are cut as they are"). */
#define BN_VALUES_PER_THREAD ((size_t)1 << 17)

static int resolve_threads(const bnorm_params *p, const bn_view *v) {
#ifdef _OPENMP
    if (omp_in_parallel()) return 1;
    int t = p->threads == 0 ? omp_get_num_procs() : p->threads;
    size_t most = v->total / BN_VALUES_PER_THREAD;
    if (!(p->flags & BNORM_EXACT_THREADS) && (size_t)t > most) t = (int)most;
    if (t > BNORM_MAX_THREADS) t = BNORM_MAX_THREADS;
    return t < 1 ? 1 : t;
#else
    (void)p, (void)v;
    return 1;
#endif
}

const bn_passes *bn_passes_for(const bnorm_params *p, const bn_view *v, int *threads) {
    if (p->flags & BNORM_FORCE_REFERENCE) {
        *threads = 1;
        return &bn_reference_passes;
    }
    *threads = resolve_threads(p, v);
    return &bn_fast_passes;
}

bnorm_status bnorm_feature_count(const bnorm_shape *shape, const bnorm_params *params,
                                 size_t *features) {
    bn_view v;
    bnorm_status st = bn_make_view(shape, params, &v);
    if (st != BNORM_OK) return st;
    if (!features) return BNORM_ERR_NULL_POINTER;
    *features = v.features;
    return BNORM_OK;
}

bnorm_status bnorm_workspace_size(const bnorm_shape *shape, const bnorm_params *params,
                                  size_t *bytes) {
    bn_view v;
    bnorm_status st = bn_make_view(shape, params, &v);
    if (st != BNORM_OK) return st;
    if (!bytes) return BNORM_ERR_NULL_POINTER;
    *bytes = bn_workspace_bytes(&v);
    return BNORM_OK;
}

bnorm_status bn_check_workspace(const bn_view *v, const void *ws, size_t size) {
    size_t need = bn_workspace_bytes(v);
    if (size < need) return BNORM_ERR_WORKSPACE_TOO_SMALL;
    if (!ws) return BNORM_ERR_NULL_POINTER;
    return BNORM_OK;
}

/* The body of both training forwards; ep NULL for the unfused one. */
static bnorm_status forward_training(const bnorm_shape *shape, const bnorm_params *params,
                                     const float *x, const float *gamma, const float *beta,
                                     float *y, float *save_mean, float *save_invstd,
                                     bnorm_running_stats *running, void *workspace,
                                     size_t workspace_size, const bn_epilogue *ep) {
    bn_view v;
    bnorm_status st = bn_make_view(shape, params, &v);
    if (st != BNORM_OK) return st;
    const int use_scale = (params->flags & BNORM_USE_SCALE) != 0;
    const int use_shift = (params->flags & BNORM_USE_SHIFT) != 0;
    if (!x || !y || !save_mean || !save_invstd || (use_scale && !gamma) || (use_shift && !beta))
        return BNORM_ERR_NULL_POINTER;
    if (running && (!running->mean || !running->var)) return BNORM_ERR_NULL_POINTER;
    if (v.m < 2) return BNORM_ERR_SINGLE_VALUE;
    if ((st = bn_check_workspace(&v, workspace, workspace_size)) != BNORM_OK) return st;

    bn_workspace ws = bn_workspace_carve(&v, workspace);
    /* In place, a non-temporal store would evict the line just read. */
    if ((const void *)y == (const void *)x) v.cached_outputs = 1;
    const bn_forward_terms terms = {use_scale ? gamma : NULL,
                                    use_shift ? beta : NULL,
                                    params->eps,
                                    bn_running_factor(params, running),
                                    bn_running_var_scale(params, (double)v.m),
                                    save_mean,
                                    save_invstd,
                                    running};
    int threads;
    const bn_passes *pass = bn_passes_for(params, &v, &threads);
    pass->batch_stats(&v, x, &ws, threads);
    for (size_t f = 0; f < v.features; f++)
        bn_forward_coefficients(&terms, &ws, f, ws.batch_mean[f], ws.batch_var[f]);
    pass->normalize(&v, x, &ws, y, ep, threads);
    if (running && running->count < UINT64_MAX) running->count++;
    return BNORM_OK;
}

bnorm_status bnorm_forward_training(const bnorm_shape *shape, const bnorm_params *params,
                                    const float *x, const float *gamma, const float *beta, float *y,
                                    float *save_mean, float *save_invstd,
                                    bnorm_running_stats *running, void *workspace,
                                    size_t workspace_size) {
    return forward_training(shape, params, x, gamma, beta, y, save_mean, save_invstd, running,
                            workspace, workspace_size, NULL);
}

/* The body of both inference forwards; ep NULL for the unfused one. */
static bnorm_status forward_inference(const bnorm_shape *shape, const bnorm_params *params,
                                      const float *x, const float *gamma, const float *beta,
                                      const float *mean, const float *var, float *y,
                                      void *workspace, size_t workspace_size,
                                      const bn_epilogue *ep) {
    bn_view v;
    bnorm_status st = bn_make_view(shape, params, &v);
    if (st != BNORM_OK) return st;
    const int use_scale = (params->flags & BNORM_USE_SCALE) != 0;
    const int use_shift = (params->flags & BNORM_USE_SHIFT) != 0;
    if (!x || !y || !mean || !var || (use_scale && !gamma) || (use_shift && !beta))
        return BNORM_ERR_NULL_POINTER;
    if ((st = bn_check_workspace(&v, workspace, workspace_size)) != BNORM_OK) return st;

    bn_workspace ws = bn_workspace_carve(&v, workspace);
    /* In place, a non-temporal store would evict the line just read. */
    if ((const void *)y == (const void *)x) v.cached_outputs = 1;
    int threads;
    const bn_passes *pass = bn_passes_for(params, &v, &threads);
    bn_inference_coefficients(v.features, mean, var, use_scale ? gamma : NULL,
                              use_shift ? beta : NULL, params->eps, &ws);
    pass->normalize(&v, x, &ws, y, ep, threads);
    return BNORM_OK;
}

bnorm_status bnorm_forward_inference(const bnorm_shape *shape, const bnorm_params *params,
                                     const float *x, const float *gamma, const float *beta,
                                     const float *mean, const float *var, float *y, void *workspace,
                                     size_t workspace_size) {
    return forward_inference(shape, params, x, gamma, beta, mean, var, y, workspace, workspace_size,
                             NULL);
}

/* The checks of both backward passes: the view, or a status. */
static bnorm_status backward_check(const bnorm_shape *shape, const bnorm_params *params,
                                   const float *x, const float *dy, const float *gamma,
                                   const float *mean, const float *stat, int frozen, float *dx,
                                   float *dgamma, float *dbeta, void *workspace,
                                   size_t workspace_size, bn_view *v) {
    bnorm_status st = bn_make_view(shape, params, v);
    if (st != BNORM_OK) return st;
    const int use_scale = (params->flags & BNORM_USE_SCALE) != 0;
    const int use_shift = (params->flags & BNORM_USE_SHIFT) != 0;
    if (!x || !dy || !mean || !stat || !dx || (use_scale && (!gamma || !dgamma)) ||
        (use_shift && !dbeta))
        return BNORM_ERR_NULL_POINTER;
    if (!frozen && v->m < 2) return BNORM_ERR_SINGLE_VALUE;
    return bn_check_workspace(v, workspace, workspace_size);
}

/* The body of every backward pass, of the gradient g (dy, or the fused
 * ReLU's masked dy). stat is save_invstd (training) or the frozen variance
 * (inference); frozen statistics contribute no gradient through mean and
 * variance, so dx reduces to dy * gamma * invstd. */
static bnorm_status backward(const bnorm_shape *shape, const bnorm_params *params, const float *x,
                             const bn_grad *g, const float *gamma, const float *mean,
                             const float *stat, int frozen, float *dx, float *dgamma, float *dbeta,
                             void *workspace, size_t workspace_size) {
    bn_view v;
    bnorm_status st = backward_check(shape, params, x, g->dy, gamma, mean, stat, frozen, dx, dgamma,
                                     dbeta, workspace, workspace_size, &v);
    if (st != BNORM_OK) return st;
    const float *dy = g->dy;
    const int use_scale = (params->flags & BNORM_USE_SCALE) != 0;
    const int use_shift = (params->flags & BNORM_USE_SHIFT) != 0;
    bn_workspace ws = bn_workspace_carve(&v, workspace);
    /* In place, a non-temporal store would evict the line just read. */
    if ((const void *)dx == (const void *)dy) v.cached_outputs = 1;
    const bn_backward_terms terms = {
        use_scale ? gamma : NULL, stat, frozen, params->eps, (double)v.m, use_scale ? dgamma : NULL,
        use_shift ? dbeta : NULL};
    for (size_t f = 0; f < v.features; f++) {
        ws.mean[f] = mean[f];
        ws.mean_lo[f] = 0.0f;
        /* Frozen, dx comes out of the same pass as the sums; the
         * coefficients below give dy_scale the same value. */
        if (frozen) ws.dy_scale[f] = bn_frozen_dy_scale(&terms, f);
    }
    int threads;
    const bn_passes *pass = bn_passes_for(params, &v, &threads);
    pass->backward_sums(&v, x, g, &ws, frozen ? dx : NULL, threads);
    for (size_t f = 0; f < v.features; f++)
        bn_backward_coefficients(&terms, &ws, f);
    if (!frozen) pass->backward_dx(&v, x, g, &ws, dx, threads);
    return BNORM_OK;
}

bnorm_status bnorm_backward_training(const bnorm_shape *shape, const bnorm_params *params,
                                     const float *x, const float *dy, const float *gamma,
                                     const float *save_mean, const float *save_invstd, float *dx,
                                     float *dgamma, float *dbeta, void *workspace,
                                     size_t workspace_size) {
    const bn_grad g = {dy, NULL, NULL};
    return backward(shape, params, x, &g, gamma, save_mean, save_invstd, 0, dx, dgamma, dbeta,
                    workspace, workspace_size);
}

bnorm_status bnorm_backward_inference(const bnorm_shape *shape, const bnorm_params *params,
                                      const float *x, const float *dy, const float *gamma,
                                      const float *mean, const float *var, float *dx, float *dgamma,
                                      float *dbeta, void *workspace, size_t workspace_size) {
    const bn_grad g = {dy, NULL, NULL};
    return backward(shape, params, x, &g, gamma, mean, var, 1, dx, dgamma, dbeta, workspace,
                    workspace_size);
}

bnorm_status bn_check_fusion(const bnorm_fusion *fusion) {
    if (!fusion) return BNORM_ERR_NULL_POINTER;
    if (fusion->ops & ~(BNORM_FUSE_RELU | BNORM_FUSE_ADD)) return BNORM_ERR_INVALID_FLAGS;
    if (fusion->dtype != BNORM_DTYPE_F32) return BNORM_ERR_INVALID_DTYPE;
    return BNORM_OK;
}

bnorm_status bnorm_fused_mask_size(const bnorm_shape *shape, size_t *bytes) {
    bnorm_params p = bnorm_params_default();
    bn_view v;
    bnorm_status st = bn_make_view(shape, &p, &v);
    if (st != BNORM_OK) return st;
    if (!bytes) return BNORM_ERR_NULL_POINTER;
    *bytes = v.total / 8 + (v.total % 8 != 0);
    return BNORM_OK;
}

bnorm_status bnorm_fused_forward_training(const bnorm_shape *shape, const bnorm_params *params,
                                          const bnorm_fusion *fusion, const void *x, const void *z,
                                          const float *gamma, const float *beta, void *y,
                                          float *save_mean, float *save_invstd,
                                          bnorm_running_stats *running, void *relu_mask,
                                          void *workspace, size_t workspace_size) {
    bnorm_status st = bn_check_fusion(fusion);
    if (st != BNORM_OK) return st;
    const int relu = (fusion->ops & BNORM_FUSE_RELU) != 0,
              add = (fusion->ops & BNORM_FUSE_ADD) != 0;
    if ((add && !z) || (relu && !relu_mask)) return BNORM_ERR_NULL_POINTER;
    bn_epilogue ep = {add ? z : NULL, relu, relu ? relu_mask : NULL};
    return forward_training(shape, params, x, gamma, beta, y, save_mean, save_invstd, running,
                            workspace, workspace_size, (add || relu) ? &ep : NULL);
}

bnorm_status bnorm_fused_forward_inference(const bnorm_shape *shape, const bnorm_params *params,
                                           const bnorm_fusion *fusion, const void *x, const void *z,
                                           const float *gamma, const float *beta, const float *mean,
                                           const float *var, void *y, void *workspace,
                                           size_t workspace_size) {
    bnorm_status st = bn_check_fusion(fusion);
    if (st != BNORM_OK) return st;
    const int relu = (fusion->ops & BNORM_FUSE_RELU) != 0,
              add = (fusion->ops & BNORM_FUSE_ADD) != 0;
    if (add && !z) return BNORM_ERR_NULL_POINTER;
    bn_epilogue ep = {add ? z : NULL, relu, NULL};
    return forward_inference(shape, params, x, gamma, beta, mean, var, y, workspace, workspace_size,
                             (add || relu) ? &ep : NULL);
}

bnorm_status bnorm_fused_backward_training(const bnorm_shape *shape, const bnorm_params *params,
                                           const bnorm_fusion *fusion, const void *x,
                                           const void *dy, const void *relu_mask,
                                           const float *gamma, const float *save_mean,
                                           const float *save_invstd, void *dx, void *dz,
                                           float *dgamma, float *dbeta, void *workspace,
                                           size_t workspace_size) {
    bnorm_status st = bn_check_fusion(fusion);
    if (st != BNORM_OK) return st;
    const int relu = (fusion->ops & BNORM_FUSE_RELU) != 0,
              add = (fusion->ops & BNORM_FUSE_ADD) != 0;
    if ((add && !dz) || (relu && !relu_mask)) return BNORM_ERR_NULL_POINTER;
    /* The backward kernels read dy through the mask (g = dy where the bit
     * is set, +0 elsewhere) in both of their passes, and the sums pass
     * writes g to dz: no pass of its own for either. */
    const bn_grad g = {dy, relu ? relu_mask : NULL, add ? dz : NULL};
    return backward(shape, params, x, &g, gamma, save_mean, save_invstd, 0, dx, dgamma, dbeta,
                    workspace, workspace_size);
}
