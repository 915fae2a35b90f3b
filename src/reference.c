/* The scalar reference kernels: one thread, plain loops, double
 * accumulation, two passes for the variance. Every fast path is tested
 * against these, and BNORM_FORCE_REFERENCE selects them. */
#include "internal.h"

/* Offset of value i (0 <= i < m) of feature f. */
static size_t offset(const bn_view *v, size_t f, size_t i) {
    if (v->kind == BN_VIEW_ROWS) return i * v->features + f;
    return (i / v->s) * v->features * v->s + f * v->s + i % v->s;
}

void bn_ref_batch_stats(const bn_view *v, const float *x, bn_workspace *ws) {
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
        ws->stat0[f] = mean;
        ws->stat1[f] = sq / (double)v->m;
    }
}

void bn_ref_normalize(const bn_view *v, const float *x, const bn_workspace *ws, float *y) {
    for (size_t f = 0; f < v->features; f++)
        for (size_t i = 0; i < v->m; i++) {
            size_t o = offset(v, f, i);
            y[o] = ((x[o] - ws->mean[f]) - ws->mean_lo[f]) * ws->a[f] + ws->b[f];
        }
}

void bn_ref_backward_sums(const bn_view *v, const float *x, const float *dy, bn_workspace *ws) {
    for (size_t f = 0; f < v->features; f++) {
        double s0 = 0.0, s1 = 0.0, s2 = 0.0;
        for (size_t i = 0; i < v->m; i++) {
            size_t o = offset(v, f, i);
            s0 += dy[o];
            s1 += (double)dy[o] * ((double)x[o] - ws->mean[f]);
            s2 += (double)x[o] - ws->mean[f];
        }
        ws->stat0[f] = s0;
        ws->stat1[f] = s1;
        ws->stat2[f] = s2;
    }
}

void bn_ref_backward_dx(const bn_view *v, const float *x, const float *dy, const bn_workspace *ws,
                        int frozen, float *dx) {
    for (size_t f = 0; f < v->features; f++)
        for (size_t i = 0; i < v->m; i++) {
            size_t o = offset(v, f, i);
            if (frozen)
                dx[o] = ws->a[f] * dy[o];
            else
                dx[o] = ws->a[f] * dy[o] + ws->b[f] * (x[o] - ws->mean[f]) + ws->c[f];
        }
}
