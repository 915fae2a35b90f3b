/* The fast kernels of the PLANES view (channels-first in spatial mode):
 * each feature's values lie in contiguous runs, a plane x[n][f][0..S) or a
 * segment of one, and the kernels go through them in memory order.
 *
 * Statistics are exact without a second trip through memory: a chunk is
 * small enough to stay in cache, so it is read twice from cache (a shifted
 * sum that places a center near the mean, then the deviations from that
 * center: the corrected two-pass algorithm), and fast.c merges the chunks
 * in double with Chan's formula. */
#include <stdint.h>

#include "epilogue.h"
#include "formulas.h"
#include "simd.h"
#include "views.h"

static size_t plane_offset(const bn_view *v, size_t n, size_t f) {
    return (n * v->features + f) * v->s;
}

/* The gradient at value i of a run: dy, or, with the fused ReLU's mask,
 * dy where the bit of the value's offset in the tensor (o + i) is set and
 * +0 elsewhere. */
BN_INLINE float grad1_at(const float *dy, const uint8_t *mask, size_t o, size_t i) {
    return !mask || MASK_BIT(mask, o + i) ? dy[i] : 0.0f;
}

/* Runs body for items [t0, t1) with f, j and the chunk c set. One plane per
 * chunk, the common case, walks (n, f) with counters instead of divisions. */
#define FOR_PLANE_ITEMS(v, t0, t1, body)                                                           \
    do {                                                                                           \
        if ((v)->ch.planes_per_chunk == 1 && (v)->ch.segments == 1) {                              \
            size_t f = (t0) % (v)->features, j = (t0) / (v)->features;                             \
            for (size_t t_ = (t0); t_ < (t1); t_++) {                                              \
                bn_plane_chunk c = {j, j + 1, 0, (v)->s};                                          \
                body;                                                                              \
                if (++f == (v)->features) f = 0, j++;                                              \
            }                                                                                      \
        } else {                                                                                   \
            for (size_t t_ = (t0); t_ < (t1); t_++) {                                              \
                size_t f, j;                                                                       \
                bn_plane_item((v), t_, &f, &j);                                                    \
                bn_plane_chunk c = bn_plane_chunk_at((v), j);                                      \
                body;                                                                              \
            }                                                                                      \
        }                                                                                          \
    } while (0)

/* The statistics and backward sums, at 16 lanes and at 8 (simd_width.h):
 * AVX-512 holds the 16-lane sums in registers, AVX2 the 8-lane ones. */
#define BN_W 16
#include "planes_sums.h"
#undef BN_W
#define BN_W 8
#include "planes_sums.h"
#undef BN_W

BN_DISPATCH static void planes_stats(const bn_view *v, const float *x, bn_workspace *ws, size_t t0,
                                     size_t t1) {
    if (BN_WIDE_VECTORS())
        planes_stats_16(v, x, ws, t0, t1);
    else
        planes_stats_8(v, x, ws, t0, t1);
}

BN_DISPATCH static void planes_backward(const bn_view *v, const float *x, const bn_grad *gr,
                                        float *frozen_dx, bn_workspace *ws, size_t t0, size_t t1) {
    if (BN_WIDE_VECTORS())
        planes_backward_16(v, x, gr, frozen_dx, ws, t0, t1);
    else
        planes_backward_8(v, x, gr, frozen_dx, ws, t0, t1);
}

/* The bodies of planes_normalize and planes_dx, with EACH the ELEMENTWISE
 * of the level and FUSED its fused form. */
#define Y_AT(L, i) BN_NORMALIZE(L(xp, i), mean, lo, scale, shift)
#define PLANES_NORMALIZE(FUSED, EACH)                                                              \
    do {                                                                                           \
        const size_t F = v->features, S = v->s;                                                    \
        for (size_t p = p0, f = p0 % F; p < p1; p++) {                                             \
            const size_t o = p * S;                                                                \
            const float *xp = x + o;                                                               \
            float *yp = y + (p - p0) * S;                                                          \
            const float mean = ws->mean[f], lo = ws->mean_lo[f], scale = ws->scale[f],             \
                        shift = ws->shift[f];                                                      \
            if (ep)                                                                                \
                FUSED(yp, S, o, ep, stream, Y_AT);                                                 \
            else                                                                                   \
                EACH(yp, S, stream, Y_AT);                                                         \
            if (++f == F) f = 0;                                                                   \
        }                                                                                          \
    } while (0)
#define G_AT(L, i)         L##_MASKED(dyp, mask, o, i)
#define DX_MASKED_AT(L, i) BN_DX(L(xp, i), G_AT(L, i), mean, dy_scale, xc_scale, dx_offset)
#define DX_AT(L, i)        BN_DX(L(xp, i), L(dyp, i), mean, dy_scale, xc_scale, dx_offset)
#define PLANES_DX(EACH)                                                                            \
    do {                                                                                           \
        const size_t F = v->features, S = v->s;                                                    \
        const uint8_t *mask = gr->mask;                                                            \
        for (size_t p = p0, f = p0 % F; p < p1; p++) {                                             \
            const size_t o = p * S;                                                                \
            const float *xp = x + o, *dyp = gr->dy + o;                                            \
            float *dxp = dx + o;                                                                   \
            const float mean = ws->mean[f], dy_scale = ws->dy_scale[f],                            \
                        xc_scale = ws->xc_scale[f], dx_offset = ws->dx_offset[f];                  \
            if (mask)                                                                              \
                EACH(dxp, S, stream, DX_MASKED_AT);                                                \
            else                                                                                   \
                EACH(dxp, S, stream, DX_AT);                                                       \
            if (++f == F) f = 0;                                                                   \
        }                                                                                          \
    } while (0)

#if BN_K
/* The normalize, fused or streaming, and the streaming dx, in AVX-512's own
 * instructions: the epilogue in mask registers, whole lines stored at once. */
BN_K_TARGET static void planes_normalize_k(const bn_view *v, const float *x, const bn_workspace *ws,
                                           float *y, size_t p0, size_t p1, const bn_epilogue *ep,
                                           int stream) {
    PLANES_NORMALIZE(ELEMENTWISE_FUSED_K, ELEMENTWISE_K);
}
BN_K_TARGET static void planes_dx_k(const bn_view *v, const float *x, const bn_grad *gr,
                                    const bn_workspace *ws, float *dx, size_t p0, size_t p1,
                                    int stream) {
    PLANES_DX(ELEMENTWISE_K);
}
#endif

BN_DISPATCH static void planes_normalize(const bn_view *v, const float *x, const bn_workspace *ws,
                                         float *y, size_t p0, size_t p1, const bn_epilogue *ep,
                                         int stream) {
#if BN_K
    if ((ep || stream) && BN_K_RUNS()) {
        planes_normalize_k(v, x, ws, y, p0, p1, ep, stream);
        return;
    }
#endif
    PLANES_NORMALIZE(ELEMENTWISE_FUSED, ELEMENTWISE);
}

BN_DISPATCH static void planes_dx(const bn_view *v, const float *x, const bn_grad *gr,
                                  const bn_workspace *ws, float *dx, size_t p0, size_t p1,
                                  int stream) {
#if BN_K
    if (stream && BN_K_RUNS()) {
        planes_dx_k(v, x, gr, ws, dx, p0, p1, stream);
        return;
    }
#endif
    PLANES_DX(ELEMENTWISE);
}
#undef PLANES_NORMALIZE
#undef PLANES_DX
#undef Y_AT
#undef G_AT
#undef DX_MASKED_AT
#undef DX_AT

/* The entry points, plain functions around the file's dispatched ones: a
 * dispatched function that other files of the shared library call did not
 * link under clang. */
void bn_planes_stats(const bn_view *v, const float *x, bn_workspace *ws, size_t t0, size_t t1) {
    planes_stats(v, x, ws, t0, t1);
}

void bn_planes_backward(const bn_view *v, const float *x, const bn_grad *gr, float *frozen_dx,
                        bn_workspace *ws, size_t t0, size_t t1) {
    planes_backward(v, x, gr, frozen_dx, ws, t0, t1);
}

void bn_planes_normalize(const bn_view *v, const float *x, const bn_workspace *ws, float *y,
                         size_t p0, size_t p1, const bn_epilogue *ep, int stream) {
    planes_normalize(v, x, ws, y, p0, p1, ep, stream);
}

void bn_planes_dx(const bn_view *v, const float *x, const bn_grad *gr, const bn_workspace *ws,
                  float *dx, size_t p0, size_t p1, int stream) {
    planes_dx(v, x, gr, ws, dx, p0, p1, stream);
}
