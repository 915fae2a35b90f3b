/* Synchronized batch norm: the split-phase calls of data-parallel training
 * (bnorm.h, "SYNCHRONIZED BATCH NORM"). Each reuses the kernels of the
 * ordinary calls; what is new is where the statistics come from. */
#include <math.h>
#include <string.h>

#include "bnorm.h"
#include "formulas.h"
#include "internal.h"

/* The view of a share; an empty share (n = 0) is validated as n = 1, and
 * *empty says that nothing is to be read or written but per-feature data. */
static bnorm_status share_view(const bnorm_shape *shape, const bnorm_params *p, bn_view *v,
                               int *empty) {
    if (!shape || !p) return BNORM_ERR_NULL_POINTER;
    bnorm_shape s = *shape;
    *empty = s.n == 0;
    if (*empty) s.n = 1;
    return bn_make_view(&s, p, v);
}

/* The global record's count, mean and variance of feature f. */
static double global_count(const double *global) { return global[0]; }
/* Training needs two values per feature in the whole batch. */
static bnorm_status check_global_count(const double *global) {
    double m = global_count(global);
    return m >= 2.0 && !isinf(m) ? BNORM_OK : BNORM_ERR_SINGLE_VALUE;
}
static double global_mean(const double *global, size_t f) { return global[1 + f]; }
static double global_var(const double *global, size_t F, size_t f) {
    double var = global[1 + F + f] / global[0];
    return var > 0.0 ? var : 0.0;
}

bnorm_status bnorm_local_moments(const bnorm_shape *shape, const bnorm_params *params,
                                 const float *x, double *record, void *workspace,
                                 size_t workspace_size) {
    bn_view v;
    int empty;
    bnorm_status st = share_view(shape, params, &v, &empty);
    if (st != BNORM_OK) return st;
    if (!record || (!empty && !x)) return BNORM_ERR_NULL_POINTER;
    const size_t F = v.features;
    if (empty) {
        memset(record, 0, (2 * F + 1) * sizeof(double));
        return BNORM_OK;
    }
    if ((st = bn_check_workspace(&v, workspace, workspace_size)) != BNORM_OK) return st;
    bn_workspace ws = bn_workspace_carve(&v, workspace);
    int threads;
    bn_passes_for(params, &v, &threads)->batch_stats(&v, x, &ws, threads);
    const double m = (double)v.m;
    record[0] = m;
    for (size_t f = 0; f < F; f++) {
        record[1 + f] = ws.batch_mean[f];
        record[1 + F + f] = ws.batch_var[f] * m;
    }
    return BNORM_OK;
}

bnorm_status bnorm_merge_moments(int64_t features, int count, const double *records,
                                 double *merged) {
    if (!records || !merged) return BNORM_ERR_NULL_POINTER;
    if (features <= 0 || count <= 0) return BNORM_ERR_INVALID_DIMENSION;
    if ((uint64_t)features > (SIZE_MAX / sizeof(double) - 1) / 2 / (uint64_t)count)
        return BNORM_ERR_DIMENSION_OVERFLOW;
    const size_t F = (size_t)features, stride = 2 * F + 1;
    double total = 0.0;
    for (int k = 0; k < count; k++) {
        double n = records[(size_t)k * stride];
        if (!(n >= 0.0) || isinf(n)) return BNORM_ERR_INVALID_DIMENSION;
        total += n;
    }
    /* Feature by feature, so that merged may be the first record: its
     * count is written last, and no feature reads another's slots. */
    for (size_t f = 0; f < F; f++) {
        double n = 0.0, mu = 0.0, q = 0.0;
        for (int k = 0; k < count; k++) {
            const double *r = records + (size_t)k * stride;
            double nb = r[0];
            if (nb == 0.0) continue; /* an empty share contributes nothing */
            bn_chan_merge(&n, &mu, &q, nb, r[1 + f], r[1 + F + f]);
        }
        merged[1 + f] = mu;
        merged[1 + F + f] = q;
    }
    merged[0] = total;
    return BNORM_OK;
}

/* The body of both global forwards; ep NULL for the unfused one. */
static bnorm_status forward_global(const bnorm_shape *shape, const bnorm_params *params,
                                   const float *x, const float *gamma, const float *beta,
                                   const double *global, float *y, float *save_mean,
                                   float *save_invstd, bnorm_running_stats *running,
                                   void *workspace, size_t workspace_size, const bn_epilogue *ep) {
    bn_view v;
    int empty;
    bnorm_status st = share_view(shape, params, &v, &empty);
    if (st != BNORM_OK) return st;
    const int use_scale = (params->flags & BNORM_USE_SCALE) != 0;
    const int use_shift = (params->flags & BNORM_USE_SHIFT) != 0;
    if (!global || !save_mean || !save_invstd || (use_scale && !gamma) || (use_shift && !beta) ||
        (!empty && (!x || !y)))
        return BNORM_ERR_NULL_POINTER;
    if (running && (!running->mean || !running->var)) return BNORM_ERR_NULL_POINTER;
    if ((st = check_global_count(global)) != BNORM_OK) return st;
    const double M = global_count(global);
    if (!empty && (st = bn_check_workspace(&v, workspace, workspace_size)) != BNORM_OK) return st;

    const size_t F = v.features;
    const bn_forward_terms terms = {use_scale ? gamma : NULL,
                                    use_shift ? beta : NULL,
                                    params->eps,
                                    bn_running_factor(params, running),
                                    bn_running_var_scale(params, M),
                                    save_mean,
                                    save_invstd,
                                    running};
    bn_workspace ws;
    if (!empty) ws = bn_workspace_carve(&v, workspace);
    for (size_t f = 0; f < F; f++)
        bn_forward_coefficients(&terms, empty ? NULL : &ws, f, global_mean(global, f),
                                global_var(global, F, f));
    if (running && running->count < UINT64_MAX) running->count++;
    if (empty) return BNORM_OK;
    if ((const void *)y == (const void *)x) v.cached_outputs = 1;
    int threads;
    bn_passes_for(params, &v, &threads)->normalize(&v, x, &ws, y, ep, threads);
    return BNORM_OK;
}

bnorm_status bnorm_forward_training_global(const bnorm_shape *shape, const bnorm_params *params,
                                           const float *x, const float *gamma, const float *beta,
                                           const double *global, float *y, float *save_mean,
                                           float *save_invstd, bnorm_running_stats *running,
                                           void *workspace, size_t workspace_size) {
    return forward_global(shape, params, x, gamma, beta, global, y, save_mean, save_invstd, running,
                          workspace, workspace_size, NULL);
}

bnorm_status bnorm_fused_forward_training_global(
    const bnorm_shape *shape, const bnorm_params *params, const bnorm_fusion *fusion, const void *x,
    const void *z, const float *gamma, const float *beta, const double *global, void *y,
    float *save_mean, float *save_invstd, bnorm_running_stats *running, void *relu_mask,
    void *workspace, size_t workspace_size) {
    bnorm_status st = bn_check_fusion(fusion);
    if (st != BNORM_OK) return st;
    const int relu = (fusion->ops & BNORM_FUSE_RELU) != 0,
              add = (fusion->ops & BNORM_FUSE_ADD) != 0;
    const int empty = shape && shape->n == 0;
    if (!empty && ((add && !z) || (relu && !relu_mask))) return BNORM_ERR_NULL_POINTER;
    bn_epilogue ep = {add ? z : NULL, relu, relu ? relu_mask : NULL};
    return forward_global(shape, params, x, gamma, beta, global, y, save_mean, save_invstd, running,
                          workspace, workspace_size, (add || relu) ? &ep : NULL);
}

bnorm_status bnorm_backward_local_sums(const bnorm_shape *shape, const bnorm_params *params,
                                       const float *x, const float *dy, const double *global,
                                       double *sums, void *workspace, size_t workspace_size) {
    bn_view v;
    int empty;
    bnorm_status st = share_view(shape, params, &v, &empty);
    if (st != BNORM_OK) return st;
    if (!global || !sums || (!empty && (!x || !dy))) return BNORM_ERR_NULL_POINTER;
    if ((st = check_global_count(global)) != BNORM_OK) return st;
    const size_t F = v.features;
    if (empty) {
        memset(sums, 0, 2 * F * sizeof(double));
        return BNORM_OK;
    }
    if ((st = bn_check_workspace(&v, workspace, workspace_size)) != BNORM_OK) return st;
    bn_workspace ws = bn_workspace_carve(&v, workspace);
    for (size_t f = 0; f < F; f++)
        ws.mean[f] = (float)global_mean(global, f), ws.mean_lo[f] = 0.0f;
    int threads;
    const bn_grad g = {dy, NULL, NULL};
    bn_passes_for(params, &v, &threads)->backward_sums(&v, x, &g, &ws, NULL, threads);
    for (size_t f = 0; f < F; f++) {
        /* About the global mean in double: its float rounding is known. */
        double delta = global_mean(global, f) - (double)ws.mean[f];
        double invstd = 1.0 / sqrt(global_var(global, F, f) + (double)params->eps);
        sums[f] = ws.sum_dy[f];
        sums[F + f] = bn_sum_dy_xhat(ws.sum_dy[f], ws.sum_dy_xc[f], delta, invstd);
    }
    return BNORM_OK;
}

bnorm_status bnorm_fused_backward_local_sums(const bnorm_shape *shape, const bnorm_params *params,
                                             const bnorm_fusion *fusion, const void *x,
                                             const void *dy, const void *relu_mask,
                                             const double *global, void *g, double *sums,
                                             void *workspace, size_t workspace_size) {
    bnorm_status st = bn_check_fusion(fusion);
    if (st != BNORM_OK) return st;
    const int relu = (fusion->ops & BNORM_FUSE_RELU) != 0;
    bn_view v;
    int empty;
    if ((st = share_view(shape, params, &v, &empty)) != BNORM_OK) return st;
    if (!empty && (!g || !dy || (relu && !relu_mask))) return BNORM_ERR_NULL_POINTER;
    int threads;
    (void)bn_passes_for(params, &v, &threads);
    if (!empty && relu)
        bn_mask_gradient(dy, relu_mask, g, v.total, threads);
    else if (!empty && g != dy)
        memcpy(g, dy, v.total * sizeof(float));
    return bnorm_backward_local_sums(shape, params, x, empty ? NULL : g, global, sums, workspace,
                                     workspace_size);
}

bnorm_status bnorm_backward_apply(const bnorm_shape *shape, const bnorm_params *params,
                                  const float *x, const float *dy, const float *gamma,
                                  const double *global, const double *global_sums, float *dx,
                                  float *dgamma, float *dbeta, void *workspace,
                                  size_t workspace_size) {
    bn_view v;
    int empty;
    bnorm_status st = share_view(shape, params, &v, &empty);
    if (st != BNORM_OK) return st;
    const int use_scale = (params->flags & BNORM_USE_SCALE) != 0;
    const int use_shift = (params->flags & BNORM_USE_SHIFT) != 0;
    if (!global || !global_sums || (use_scale && (!gamma || !dgamma)) || (use_shift && !dbeta) ||
        (!empty && (!x || !dy || !dx)))
        return BNORM_ERR_NULL_POINTER;
    if ((st = check_global_count(global)) != BNORM_OK) return st;
    const double M = global_count(global);
    if (!empty && (st = bn_check_workspace(&v, workspace, workspace_size)) != BNORM_OK) return st;
    const size_t F = v.features;
    bn_workspace ws;
    if (!empty) ws = bn_workspace_carve(&v, workspace);
    for (size_t f = 0; f < F; f++) {
        double sum_dy = global_sums[f], sum_dy_xhat = global_sums[F + f];
        if (use_scale) dgamma[f] = (float)sum_dy_xhat;
        if (use_shift) dbeta[f] = (float)sum_dy;
        if (empty) continue;
        double mean = global_mean(global, f);
        double invstd = 1.0 / sqrt(global_var(global, F, f) + (double)params->eps);
        ws.mean[f] = (float)mean;
        bn_backward_affine(&ws, f, use_scale ? (double)gamma[f] : 1.0, invstd, sum_dy, sum_dy_xhat,
                           M, mean - (double)ws.mean[f]);
    }
    if (empty) return BNORM_OK;
    if ((const void *)dx == (const void *)dy) v.cached_outputs = 1;
    int threads;
    const bn_grad g = {dy, NULL, NULL};
    bn_passes_for(params, &v, &threads)->backward_dx(&v, x, &g, &ws, dx, threads);
    return BNORM_OK;
}
