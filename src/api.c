/* The public entry points: argument checks, then per-feature bookkeeping
 * around the kernels. Nothing is written before every check has passed. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "bnorm.h"
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
        *v = (bn_view){BN_VIEW_ROWS, n, c * s, 1, n, total, cached};
    } else if (shape->layout == BNORM_LAYOUT_CHANNELS_FIRST && s > 1) {
        *v = (bn_view){BN_VIEW_PLANES, n, c, s, n * s, total, cached};
    } else {
        *v = (bn_view){BN_VIEW_ROWS, n * s, c, 1, n * s, total, cached};
    }
    /* The workspace size must be representable too. */
    bn_chunking ch = bn_chunking_for(v);
    (void)mul_checked(mul_checked(ch.chunks, v->features, &overflow), 2 * sizeof(double) + 1,
                      &overflow);
    if (overflow) return BNORM_ERR_DIMENSION_OVERFLOW;
    return BNORM_OK;
}

/* Values per thread below which another thread costs more than it saves
 * (bench_small N C 2 --exact against 1 thread, on 2 cores): training forward
 * of 64 x 256 values took 5 us on one thread and 21 us on two, of 256 x 1024
 * 78 us and 72 us, of 1024 x 1024 307 us and 210 us. */
#define BN_VALUES_PER_THREAD ((size_t)1 << 17)

int bn_resolve_threads(const bnorm_params *p, const bn_view *v) {
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

int bn_use_reference(const bnorm_params *p) { return (p->flags & BNORM_FORCE_REFERENCE) != 0; }

/* Fills ws->mean, mean_lo, a (= gamma * invstd) and b (= beta) from a mean
 * and invstd given in double. */
void bn_set_affine(bn_workspace *ws, size_t f, double mean, double invstd, const float *gamma,
                   const float *beta) {
    float mhi = (float)mean;
    ws->mean[f] = mhi;
    ws->mean_lo[f] = (float)(mean - (double)mhi);
    ws->a[f] = (float)((gamma ? (double)gamma[f] : 1.0) * invstd);
    ws->b[f] = beta ? beta[f] : 0.0f;
}

/* What the forward coefficients of a feature need beyond its statistics. */
typedef struct {
    const float *gamma, *beta; /* NULL when not used */
    double eps, factor, var_scale;
    float *save_mean, *save_invstd;
    bnorm_running_stats *running;
} forward_ctx;

double bn_running_factor(const bnorm_params *p, const bnorm_running_stats *running) {
    if (running && (p->flags & BNORM_RUNNING_CUMULATIVE))
        return 1.0 / ((double)running->count + 1.0);
    return 1.0 - (double)p->decay;
}

double bn_running_var_scale(const bnorm_params *p, double m) {
    return (p->flags & BNORM_RUNNING_VAR_BIASED) ? 1.0 : m / (m - 1.0);
}

void bn_running_update(bnorm_running_stats *running, size_t f, double factor, double mean,
                       double var) {
    float *rm = running->mean, *rv = running->var;
    rm[f] = (float)((1.0 - factor) * (double)rm[f] + factor * mean);
    rv[f] = (float)((1.0 - factor) * (double)rv[f] + factor * var);
}

static void forward_coefficients(const void *ctx, bn_workspace *ws, size_t f) {
    const forward_ctx *c = ctx;
    double mean = ws->stat0[f], var = ws->stat1[f];
    double invstd = 1.0 / sqrt(var + c->eps);
    bn_set_affine(ws, f, mean, invstd, c->gamma, c->beta);
    c->save_mean[f] = (float)mean;
    c->save_invstd[f] = (float)invstd;
    if (c->running) bn_running_update(c->running, f, c->factor, mean, var * c->var_scale);
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
    const double m = (double)v.m;
    forward_ctx ctx = {use_scale ? gamma : NULL,
                       use_shift ? beta : NULL,
                       params->eps,
                       1.0 - (double)params->decay,
                       bn_running_var_scale(params, m),
                       save_mean,
                       save_invstd,
                       running};
    ctx.factor = bn_running_factor(params, running);

    if (bn_use_reference(params)) {
        bn_ref_batch_stats(&v, x, &ws);
        for (size_t f = 0; f < v.features; f++)
            forward_coefficients(&ctx, &ws, f);
        bn_ref_normalize(&v, x, &ws, y);
        if (ep) bn_epilogue_apply(ep, y, 0, v.total);
    } else {
        bn_fast_forward_training(&v, x, &ws, forward_coefficients, &ctx, y, ep,
                                 bn_resolve_threads(params, &v));
    }
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
    const double eps = params->eps;
    if (bn_use_reference(params)) {
        for (size_t f = 0; f < v.features; f++)
            bn_set_affine(&ws, f, mean[f], 1.0 / sqrt((double)var[f] + eps),
                          use_scale ? gamma : NULL, use_shift ? beta : NULL);
        bn_ref_normalize(&v, x, &ws, y);
        if (ep) bn_epilogue_apply(ep, y, 0, v.total);
    } else {
        bn_fast_inference_coefficients(v.features, mean, var, use_scale ? gamma : NULL,
                                       use_shift ? beta : NULL, eps, &ws);
        bn_fast_normalize(&v, x, &ws, y, ep, bn_resolve_threads(params, &v));
    }
    return BNORM_OK;
}

bnorm_status bnorm_forward_inference(const bnorm_shape *shape, const bnorm_params *params,
                                     const float *x, const float *gamma, const float *beta,
                                     const float *mean, const float *var, float *y, void *workspace,
                                     size_t workspace_size) {
    return forward_inference(shape, params, x, gamma, beta, mean, var, y, workspace, workspace_size,
                             NULL);
}

/* What the backward coefficients of a feature need beyond its two sums. */
typedef struct {
    const float *gamma; /* NULL when not used */
    const float *stat;  /* save_invstd, or the frozen variance */
    int frozen;
    double eps, m;
    float *dgamma, *dbeta; /* NULL when not used */
} backward_ctx;

static double backward_invstd(const backward_ctx *c, size_t f) {
    return c->frozen ? 1.0 / sqrt((double)c->stat[f] + c->eps) : (double)c->stat[f];
}

/* The sums were taken around the float32 saved mean; the batch mean the
 * forward normalized with is that plus delta = sum(x - saved_mean) / m, so
 *   sum(dy * (x - mean)) = sum(dy * (x - saved_mean)) - delta * sum(dy),
 *   dx = a dy + b (x - saved_mean) + c, with c absorbing -b * delta.
 * Without the correction, data whose mean is large against its spread lost
 * dgamma to 1e-3 (mean 1e4, std 0.1). Frozen statistics are exact as given. */
void bn_backward_affine(bn_workspace *ws, size_t f, double g, double invstd, double sum_dy,
                        double sum_dy_xhat, double m, double delta) {
    double b = -g * invstd * invstd * sum_dy_xhat / m;
    ws->a[f] = (float)(g * invstd);
    ws->b[f] = (float)b;
    ws->c[f] = (float)(-g * invstd * sum_dy / m - b * delta);
}

static void backward_coefficients(const void *ctx, bn_workspace *ws, size_t f) {
    const backward_ctx *c = ctx;
    double invstd = backward_invstd(c, f);
    double g = c->gamma ? (double)c->gamma[f] : 1.0;
    double sum_dy = ws->stat0[f];
    double delta = c->frozen ? 0.0 : ws->stat2[f] / c->m;
    double sum_dy_xhat = (ws->stat1[f] - delta * sum_dy) * invstd;
    bn_backward_affine(ws, f, g, invstd, sum_dy, sum_dy_xhat, c->m, delta);
    if (c->dgamma) c->dgamma[f] = (float)sum_dy_xhat;
    if (c->dbeta) c->dbeta[f] = (float)sum_dy;
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

/* The body of both backward passes. stat is save_invstd (training) or the
 * frozen variance (inference); frozen statistics contribute no gradient
 * through mean and variance, so dx reduces to dy * gamma * invstd. */
static bnorm_status backward(const bnorm_shape *shape, const bnorm_params *params, const float *x,
                             const float *dy, const float *gamma, const float *mean,
                             const float *stat, int frozen, float *dx, float *dgamma, float *dbeta,
                             void *workspace, size_t workspace_size) {
    bn_view v;
    bnorm_status st = backward_check(shape, params, x, dy, gamma, mean, stat, frozen, dx, dgamma,
                                     dbeta, workspace, workspace_size, &v);
    if (st != BNORM_OK) return st;
    const int use_scale = (params->flags & BNORM_USE_SCALE) != 0;
    const int use_shift = (params->flags & BNORM_USE_SHIFT) != 0;
    bn_workspace ws = bn_workspace_carve(&v, workspace);
    /* In place, a non-temporal store would evict the line just read. */
    if ((const void *)dx == (const void *)dy) v.cached_outputs = 1;
    backward_ctx ctx = {
        use_scale ? gamma : NULL, stat, frozen, params->eps, (double)v.m, use_scale ? dgamma : NULL,
        use_shift ? dbeta : NULL};
    for (size_t f = 0; f < v.features; f++) {
        ws.mean[f] = mean[f];
        ws.mean_lo[f] = 0.0f;
        /* The frozen scale, known before any sum: dx comes out of the same
         * pass as the sums. backward_coefficients sets the same value. */
        ws.a[f] = (float)((ctx.gamma ? (double)ctx.gamma[f] : 1.0) * backward_invstd(&ctx, f));
    }
    if (bn_use_reference(params)) {
        bn_ref_backward_sums(&v, x, dy, &ws);
        for (size_t f = 0; f < v.features; f++)
            backward_coefficients(&ctx, &ws, f);
        bn_ref_backward_dx(&v, x, dy, &ws, frozen, dx);
    } else {
        bn_fast_backward(&v, x, dy, &ws, frozen, backward_coefficients, &ctx, dx,
                         bn_resolve_threads(params, &v));
    }
    return BNORM_OK;
}

bnorm_status bnorm_backward_training(const bnorm_shape *shape, const bnorm_params *params,
                                     const float *x, const float *dy, const float *gamma,
                                     const float *save_mean, const float *save_invstd, float *dx,
                                     float *dgamma, float *dbeta, void *workspace,
                                     size_t workspace_size) {
    return backward(shape, params, x, dy, gamma, save_mean, save_invstd, 0, dx, dgamma, dbeta,
                    workspace, workspace_size);
}

bnorm_status bnorm_backward_inference(const bnorm_shape *shape, const bnorm_params *params,
                                      const float *x, const float *dy, const float *gamma,
                                      const float *mean, const float *var, float *dx, float *dgamma,
                                      float *dbeta, void *workspace, size_t workspace_size) {
    return backward(shape, params, x, dy, gamma, mean, var, 1, dx, dgamma, dbeta, workspace,
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
    bn_view v;
    if ((st = backward_check(shape, params, x, dy, gamma, save_mean, save_invstd, 0, dx, dgamma,
                             dbeta, workspace, workspace_size, &v)) != BNORM_OK)
        return st;
    /* g, the gradient at the add (and BN's output), goes where it is wanted
     * anyway: dz, or dx, which the BN backward then overwrites in place. */
    const float *g = dy;
    float *buf = add ? dz : dx;
    if (relu) {
        bn_mask_gradient(dy, relu_mask, buf, v.total,
                         bn_use_reference(params) ? 1 : bn_resolve_threads(params, &v));
        g = buf;
    } else if (add) {
        memcpy(dz, dy, v.total * sizeof(float));
        g = dz;
    }
    return backward(shape, params, x, g, gamma, save_mean, save_invstd, 0, dx, dgamma, dbeta,
                    workspace, workspace_size);
}
