/* The scalar reference passes (internal.h, bn_passes): one thread, plain
 * loops feature by feature, double accumulation, two passes for the
 * variance. Every fast path is tested against these, and
 * BNORM_FORCE_REFERENCE selects them. */
#include "formulas.h"

/* Offset of value i (0 <= i < m) of feature f. */
static size_t offset(const bn_view *v, size_t f, size_t i) {
    if (v->kind == BN_VIEW_ROWS) return i * v->features + f;
    return (i / v->s) * v->features * v->s + f * v->s + i % v->s;
}

static void ref_batch_stats(const bn_view *v, const float *x, bn_workspace *ws, int threads) {
    (void)threads;
    for (size_t f = 0; f < v->features; f++) {
        double sum = 0.0;
        for (size_t i = 0; i < v->m; i++)
            sum += x[offset(v, f, i)];
        double mean = sum / (double)v->m;
        double sq = 0.0;
        for (size_t i = 0; i < v->m; i++) {
            double d = x[offset(v, f, i)] - mean;
            sq += d * d;
        }
        ws->batch_mean[f] = mean;
        ws->batch_var[f] = sq / (double)v->m;
    }
}

static void ref_normalize(const bn_view *v, const float *x, bn_workspace *ws, float *y,
                          const bn_epilogue *ep, int threads) {
    (void)threads;
    for (size_t f = 0; f < v->features; f++)
        for (size_t i = 0; i < v->m; i++) {
            size_t o = offset(v, f, i);
            y[o] = BN_NORMALIZE(x[o], ws->mean[f], ws->mean_lo[f], ws->scale[f], ws->shift[f]);
        }
    if (ep) bn_epilogue_apply(ep, y, 0, v->total);
}

/* g at offset o: dy, or 0 where the fused ReLU's mask bit is clear. */
static float grad(const bn_grad *g, size_t o) {
    return !g->mask || (g->mask[o / 8] >> (o % 8)) & 1u ? g->dy[o] : 0.0f;
}

static void ref_backward_sums(const bn_view *v, const float *x, const bn_grad *g, bn_workspace *ws,
                              float *frozen_dx, int threads) {
    (void)threads;
    for (size_t f = 0; f < v->features; f++) {
        double s0 = 0.0, s1 = 0.0, s2 = 0.0;
        for (size_t i = 0; i < v->m; i++) {
            size_t o = offset(v, f, i);
            float dy = grad(g, o);
            if (g->g_out) g->g_out[o] = dy;
            s0 += dy;
            s1 += (double)dy * ((double)x[o] - ws->mean[f]);
            s2 += (double)x[o] - ws->mean[f];
        }
        ws->sum_dy[f] = s0;
        ws->sum_dy_xc[f] = s1;
        ws->sum_xc[f] = s2;
        if (frozen_dx)
            for (size_t i = 0; i < v->m; i++) {
                size_t o = offset(v, f, i);
                frozen_dx[o] = BN_DX_FROZEN(grad(g, o), ws->dy_scale[f]);
            }
    }
}

static void ref_backward_dx(const bn_view *v, const float *x, const bn_grad *g,
                            const bn_workspace *ws, float *dx, int threads) {
    (void)threads;
    for (size_t f = 0; f < v->features; f++)
        for (size_t i = 0; i < v->m; i++) {
            size_t o = offset(v, f, i);
            dx[o] = BN_DX(x[o], grad(g, o), ws->mean[f], ws->dy_scale[f], ws->xc_scale[f],
                          ws->dx_offset[f]);
        }
}

const bn_passes bn_reference_passes = {ref_batch_stats, ref_normalize, ref_backward_sums,
                                       ref_backward_dx};
