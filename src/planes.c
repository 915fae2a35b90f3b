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

/* A run's ragged end (rem < VL values, in a run of at least VL) joins the
 * vector sums as the vector that ends the run, with the lanes already
 * counted masked off (LAST_LANES keeps the last rem): a scalar
 * loop's double adds would sit on the critical path of every short plane. */

/* sum(p[i] - k) over one run, in float: it only places the center that the
 * exact pass measures deviations from, and it is on the critical path of
 * every plane. The values are summed as they are and k taken off the total
 * (one add per vector, not a subtract and an add: the add pipes are this
 * pass's bound on short planes); the center it gives is off by a few float
 * ulps of the mean, which the exact pass's sum of deviations absorbs. */
BN_INLINE double run_sum_shifted(const float *p, size_t len, float k) {
    vf a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
    size_t i = 0;
    for (; i + 4 * VL <= len; i += 4 * VL) {
        a0 += LD(p + i);
        a1 += LD(p + i + VL);
        a2 += LD(p + i + 2 * VL);
        a3 += LD(p + i + 3 * VL);
    }
    for (; i + VL <= len; i += VL)
        a0 += LD(p + i);
    if (i < len && len >= VL) {
        vi keep = LAST_LANES(len - i);
        a1 += (vf)((vi)LD(p + len - VL) & keep);
        i = len;
    }
    a0 = (a0 + a1) + (a2 + a3);
    float s;
    LANE_SUM_FLOAT(a0, s);
    for (; i < len; i++)
        s += p[i];
    return (double)s - (double)len * (double)k;
}

/* sum(e) and sum(e^2) for e = p[i] - k over one run, added to *s1, *s2. */
BN_INLINE void run_sums_centered(const float *p, size_t len, float k, double *s1, double *s2) {
    const vf vk = SPLAT(k);
    vf e1a = {0}, e1b = {0}, e2a = {0}, e2b = {0};
    size_t i = 0;
    for (; i + 2 * VL <= len; i += 2 * VL) {
        vf ea = LD(p + i) - vk, eb = LD(p + i + VL) - vk;
        e1a += ea, e2a += ea * ea;
        e1b += eb, e2b += eb * eb;
    }
    for (; i + VL <= len; i += VL) {
        vf e = LD(p + i) - vk;
        e1a += e, e2a += e * e;
    }
    if (i < len && len >= VL) {
        vi keep = LAST_LANES(len - i);
        vf e = (vf)((vi)(LD(p + len - VL) - vk) & keep);
        e1b += e, e2b += e * e;
        i = len;
    }
    e1a += e1b, e2a += e2b;
    double t1, t2;
    LANE_SUM(e1a, t1);
    LANE_SUM(e2a, t2);
    for (; i < len; i++) {
        float e = p[i] - k;
        t1 += (double)e, t2 += (double)(e * e);
    }
    *s1 += t1, *s2 += t2;
}

/* The gradient g at values [i, i + VL) of a run, and at value i: dy, or,
 * with the fused ReLU's mask, dy where the bit of the value's offset in the
 * tensor (o + i) is set and +0 elsewhere. (A macro: a function returning a
 * vector would change the ABI between the dispatched copies.) */
#define GRAD_AT(dy, mask, o, i) ((mask) ? LD_AT_MASKED(dy, mask, o, i) : LD((dy) + (i)))
BN_INLINE float grad1_at(const float *dy, const uint8_t *mask, size_t o, size_t i) {
    return !mask || MASK_BIT(mask, o + i) ? dy[i] : 0.0f;
}

/* sum(g), sum(g * (x - mean)) and sum(x - mean) over one run, added to *s0,
 * *s1, *s2, with g = dy (mask NULL) or the masked dy, at offset o of the
 * tensor; g is written to gout when given. When dx is given (frozen
 * statistics: the mean is exact and s2 is not needed), dx = BN_DX_FROZEN
 * in the same pass instead of s2. */
BN_INLINE void run_backward(const float *x, const float *dy, const uint8_t *mask, size_t o,
                            float *gout, float *dx, size_t len, float mean, float a, double *s0,
                            double *s1, double *s2) {
    const vf vm = SPLAT(mean), va = SPLAT(a);
    vf d0a = {0}, d0b = {0}, d1a = {0}, d1b = {0}, d2a = {0}, d2b = {0};
    size_t i = 0;
    for (; i + 2 * VL <= len; i += 2 * VL) {
        vf ga = GRAD_AT(dy, mask, o, i), gb = GRAD_AT(dy, mask, o, i + VL);
        vf ea = LD(x + i) - vm, eb = LD(x + i + VL) - vm;
        d0a += ga, d1a += ga * ea;
        d0b += gb, d1b += gb * eb;
        if (gout) ST(gout + i, ga), ST(gout + i + VL, gb);
        if (dx)
            ST(dx + i, BN_DX_FROZEN(ga, va)), ST(dx + i + VL, BN_DX_FROZEN(gb, va));
        else
            d2a += ea, d2b += eb;
    }
    for (; i + VL <= len; i += VL) {
        vf g = GRAD_AT(dy, mask, o, i), e = LD(x + i) - vm;
        d0a += g, d1a += g * e;
        if (gout) ST(gout + i, g);
        if (dx)
            ST(dx + i, BN_DX_FROZEN(g, va));
        else
            d2a += e;
    }
    if (i < len && len >= VL) {
        vi keep = LAST_LANES(len - i);
        vf g = GRAD_AT(dy, mask, o, len - VL), e = LD(x + len - VL) - vm;
        d0b += (vf)((vi)g & keep);
        d1b += (vf)((vi)(g * e) & keep);
        if (gout) ST(gout + len - VL, g); /* the lanes already written get the same values */
        if (!dx) d2b += (vf)((vi)e & keep);
        for (; dx && i < len; i++)
            dx[i] = BN_DX_FROZEN(dy[i], a);
        i = len;
    }
    d0a += d0b, d1a += d1b, d2a += d2b;
    double t0, t1, t2 = 0.0;
    LANE_SUM(d0a, t0);
    LANE_SUM(d1a, t1);
    if (!dx) LANE_SUM(d2a, t2);
    for (; i < len; i++) {
        float g = grad1_at(dy, mask, o, i);
        t0 += (double)g, t1 += (double)(g * (x[i] - mean));
        if (gout) gout[i] = g;
        if (dx)
            dx[i] = BN_DX_FROZEN(g, a);
        else
            t2 += (double)(x[i] - mean);
    }
    *s0 += t0, *s1 += t1, *s2 += t2;
}

/* run_backward with the mask, no dx, 8 lanes a step: below AVX-512
 * (BN_WIDE_VECTORS) a masked load of 16 lanes went through memory. Each of
 * run_backward's 16-lane accumulators is kept as its two halves (lanes 0-7
 * and 8-15), which LANE_SUM_HALVES adds as LANE_SUM adds the whole: the
 * same sums, bit for bit. */
#define HALF_G(dy, bits, i, h) KEEP_LANES8(LD8((dy) + (i) + 8 * (h)), (bits) >> (8 * (h)))
BN_INLINE void run_backward_halves(const float *x, const float *dy, const uint8_t *mask, size_t o,
                                   float *gout, size_t len, float mean, double *s0, double *s1,
                                   double *s2) {
    const v8f vm = (v8f){0} + mean;
    v8f d0a[2] = {{0}}, d0b[2] = {{0}}, d1a[2] = {{0}}, d1b[2] = {{0}}, d2a[2] = {{0}},
        d2b[2] = {{0}};
    size_t i = 0;
    for (; i + 2 * VL <= len; i += 2 * VL) {
        const uint32_t ba = mask_bits16(mask, o + i), bb = mask_bits16(mask, o + i + VL);
        for (int h = 0; h < 2; h++) {
            v8f ga = HALF_G(dy, ba, i, h), gb = HALF_G(dy, bb, i + VL, h);
            v8f ea = LD8(x + i + 8 * h) - vm, eb = LD8(x + i + VL + 8 * h) - vm;
            d0a[h] += ga, d1a[h] += ga * ea, d2a[h] += ea;
            d0b[h] += gb, d1b[h] += gb * eb, d2b[h] += eb;
            if (gout) ST8(gout + i + 8 * h, ga), ST8(gout + i + VL + 8 * h, gb);
        }
    }
    for (; i + VL <= len; i += VL) {
        const uint32_t b = mask_bits16(mask, o + i);
        for (int h = 0; h < 2; h++) {
            v8f g = HALF_G(dy, b, i, h), e = LD8(x + i + 8 * h) - vm;
            d0a[h] += g, d1a[h] += g * e, d2a[h] += e;
            if (gout) ST8(gout + i + 8 * h, g);
        }
    }
    if (i < len && len >= VL) {
        /* The last VL values, the lanes already counted masked off. */
        const size_t start = len - VL;
        const uint32_t b = mask_bits16(mask, o + start);
        const int32_t first = (int32_t)(VL - (len - i)); /* lanes below it are counted */
        for (int h = 0; h < 2; h++) {
            v8i keep = ~((((v8i){0, 1, 2, 3, 4, 5, 6, 7} + 8 * h) - first) >> 31);
            v8f g = HALF_G(dy, b, start, h), e = LD8(x + start + 8 * h) - vm;
            d0b[h] += (v8f)((v8i)g & keep);
            d1b[h] += (v8f)((v8i)(g * e) & keep);
            d2b[h] += (v8f)((v8i)e & keep);
            if (gout) ST8(gout + start + 8 * h, g);
        }
        i = len;
    }
    for (int h = 0; h < 2; h++)
        d0a[h] += d0b[h], d1a[h] += d1b[h], d2a[h] += d2b[h];
    double t0, t1, t2;
    LANE_SUM_HALVES(d0a[0], d0a[1], t0);
    LANE_SUM_HALVES(d1a[0], d1a[1], t1);
    LANE_SUM_HALVES(d2a[0], d2a[1], t2);
    for (; i < len; i++) {
        float g = grad1_at(dy, mask, o, i);
        t0 += (double)g, t1 += (double)(g * (x[i] - mean)), t2 += (double)(x[i] - mean);
        if (gout) gout[i] = g;
    }
    *s0 += t0, *s1 += t1, *s2 += t2;
}
#undef HALF_G

/* Chunk statistics (mean, M2) of one PLANES chunk. */
BN_INLINE void plane_chunk_stats(const bn_view *v, const float *x, size_t f,
                                 const bn_plane_chunk *c, double *mean, double *m2) {
    const size_t len = c->s1 - c->s0;
    const double count = (double)((c->n1 - c->n0) * len);
    const float k = x[plane_offset(v, c->n0, f) + c->s0];
    double shifted = 0.0;
    for (size_t n = c->n0; n < c->n1; n++)
        shifted += run_sum_shifted(x + plane_offset(v, n, f) + c->s0, len, k);
    /* The reciprocal does not wait for the data: one multiply, not a
     * division, between the two passes. */
    const float center = (float)((double)k + shifted * (1.0 / count));
    double s1 = 0.0, s2 = 0.0;
    for (size_t n = c->n0; n < c->n1; n++)
        run_sums_centered(x + plane_offset(v, n, f) + c->s0, len, center, &s1, &s2);
    bn_chunk_moments(center, s1, s2, count, mean, m2);
}

/* Backward sums of one PLANES chunk (run_backward's, g from gr). */
BN_INLINE void plane_chunk_backward(const bn_view *v, const float *x, const bn_grad *gr, float *dx,
                                    size_t f, const bn_plane_chunk *c, float mean, float a,
                                    double *s0, double *s1, double *s2) {
    const size_t len = c->s1 - c->s0;
    *s0 = 0.0, *s1 = 0.0, *s2 = 0.0;
    for (size_t n = c->n0; n < c->n1; n++) {
        size_t o = plane_offset(v, n, f) + c->s0;
        run_backward(x + o, gr->dy + o, gr->mask, o, gr->g_out ? gr->g_out + o : NULL,
                     dx ? dx + o : NULL, len, mean, a, s0, s1, s2);
    }
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

/* How far ahead of the plane being summed its successors are prefetched:
 * the hardware prefetchers stop at every 4 KiB page. 12 KiB was the best of
 * 3-50 KiB (docs/PERFORMANCE.md, "Why the kernels are cut as they are"). */
#define PLANE_PREFETCH_BYTES 12288

BN_DISPATCH static void planes_stats(const bn_view *v, const float *x, bn_workspace *ws, size_t t0,
                                     size_t t1) {
    if (v->ch.planes_per_chunk == 1 && v->ch.segments == 1 && t0 < t1) {
        /* Whole planes, consecutive in memory: the next plane's first pass
         * is issued before this plane's second, so that its reduction runs
         * under work that does not wait for it. The arithmetic per plane is
         * plane_chunk_stats' own. */
        const size_t F = v->features, S = v->s;
        const double count = (double)S, inv = 1.0 / count;
        size_t f = t0 % F, n = t0 / F;
        const float *p = x + t0 * S;
        float k = p[0];
        double shifted = run_sum_shifted(p, S, k);
        for (size_t t = t0; t < t1; t++, p += S) {
            for (size_t b = 0; b < S * sizeof(float); b += 64) /* may point past x: harmless */
                __builtin_prefetch((const void *)((uintptr_t)p + PLANE_PREFETCH_BYTES + b));
            const float center = (float)((double)k + shifted * inv);
            if (t + 1 < t1) k = p[S], shifted = run_sum_shifted(p + S, S, k);
            double s1 = 0.0, s2 = 0.0;
            run_sums_centered(p, S, center, &s1, &s2);
            size_t i = f * v->ch.chunks + n;
            bn_chunk_moments(center, s1, s2, count, &ws->part0[i], &ws->part1[i]);
            if (++f == F) f = 0, n++;
        }
        return;
    }
    FOR_PLANE_ITEMS(v, t0, t1, {
        size_t i = bn_part_index(v, f, j);
        plane_chunk_stats(v, x, f, &c, &ws->part0[i], &ws->part1[i]);
    });
}

BN_DISPATCH static void planes_backward(const bn_view *v, const float *x, const bn_grad *gr,
                                        float *frozen_dx, bn_workspace *ws, size_t t0, size_t t1) {
    if (!gr->mask && !gr->g_out) {
        /* The plain backward: g is dy, nothing else to write. */
        const bn_grad plain = {gr->dy, NULL, NULL};
        FOR_PLANE_ITEMS(v, t0, t1, {
            size_t i = bn_part_index(v, f, j);
            if (frozen_dx)
                plane_chunk_backward(v, x, &plain, frozen_dx, f, &c, ws->mean[f], ws->dy_scale[f],
                                     &ws->part0[i], &ws->part1[i], &ws->part2[i]);
            else
                plane_chunk_backward(v, x, &plain, NULL, f, &c, ws->mean[f], 0.0f, &ws->part0[i],
                                     &ws->part1[i], &ws->part2[i]);
        });
        return;
    }
    if (gr->mask && !frozen_dx && !BN_WIDE_VECTORS()) {
        /* The fused training backward below AVX-512: 8 lanes a step. */
        FOR_PLANE_ITEMS(v, t0, t1, {
            size_t i = bn_part_index(v, f, j);
            double sums[3] = {0.0};
            for (size_t n = c.n0; n < c.n1; n++) {
                size_t o = plane_offset(v, n, f) + c.s0;
                run_backward_halves(x + o, gr->dy + o, gr->mask, o,
                                    gr->g_out ? gr->g_out + o : NULL, c.s1 - c.s0, ws->mean[f],
                                    &sums[0], &sums[1], &sums[2]);
            }
            ws->part0[i] = sums[0];
            ws->part1[i] = sums[1];
            ws->part2[i] = sums[2];
        });
        return;
    }
    if (gr->mask && !gr->g_out && !frozen_dx) {
        /* The fused BN + ReLU's training backward: g is dy through the mask,
         * nothing to write. A copy of its own, as the plain backward has, was
         * 4-8% faster from memory than the general one. (The three loops
         * folded into one inlined helper compiled this case 1.4x slower:
         * they stay written out.) */
        const bn_grad masked = {gr->dy, gr->mask, NULL};
        FOR_PLANE_ITEMS(v, t0, t1, {
            size_t i = bn_part_index(v, f, j);
            plane_chunk_backward(v, x, &masked, NULL, f, &c, ws->mean[f], 0.0f, &ws->part0[i],
                                 &ws->part1[i], &ws->part2[i]);
        });
        return;
    }
    FOR_PLANE_ITEMS(v, t0, t1, {
        size_t i = bn_part_index(v, f, j);
        plane_chunk_backward(v, x, gr, frozen_dx, f, &c, ws->mean[f],
                             frozen_dx ? ws->dy_scale[f] : 0.0f, &ws->part0[i], &ws->part1[i],
                             &ws->part2[i]);
    });
}

BN_DISPATCH static void planes_normalize(const bn_view *v, const float *x, const bn_workspace *ws,
                                         float *y, size_t p0, size_t p1, const bn_epilogue *ep,
                                         int stream) {
    const size_t F = v->features, S = v->s;
    for (size_t p = p0, f = p0 % F; p < p1; p++) {
        const float *xp = x + p * S;
        float *yp = y + (p - p0) * S;
        const float mean = ws->mean[f], lo = ws->mean_lo[f], scale = ws->scale[f],
                    shift = ws->shift[f];
#define Y_AT(L, i) BN_NORMALIZE(L(xp, i), mean, lo, scale, shift)
        if (ep)
            ELEMENTWISE_FUSED(yp, S, p * S, ep, stream, Y_AT);
        else
            ELEMENTWISE(yp, S, stream, Y_AT);
#undef Y_AT
        if (++f == F) f = 0;
    }
}

BN_DISPATCH static void planes_dx(const bn_view *v, const float *x, const bn_grad *gr,
                                  const bn_workspace *ws, float *dx, size_t p0, size_t p1,
                                  int stream) {
    const size_t F = v->features, S = v->s;
    const uint8_t *mask = gr->mask;
    const int wide = BN_WIDE_VECTORS(); /* below AVX-512, the masked loads go 8 lanes a step */
    for (size_t p = p0, f = p0 % F; p < p1; p++) {
        const size_t o = p * S;
        const float *xp = x + o, *dyp = gr->dy + o;
        float *dxp = dx + o;
        const float mean = ws->mean[f], dy_scale = ws->dy_scale[f], xc_scale = ws->xc_scale[f],
                    dx_offset = ws->dx_offset[f];
        if (mask) {
#define G_AT(L, i)  L##_MASKED(dyp, mask, o, i)
#define DX_AT(L, i) BN_DX(L(xp, i), G_AT(L, i), mean, dy_scale, xc_scale, dx_offset)
            if (wide)
                ELEMENTWISE(dxp, S, stream, DX_AT);
            else
                ELEMENTWISE8(dxp, S, stream, DX_AT);
#undef DX_AT
#undef G_AT
        } else {
#define DX_AT(L, i) BN_DX(L(xp, i), L(dyp, i), mean, dy_scale, xc_scale, dx_offset)
            ELEMENTWISE(dxp, S, stream, DX_AT);
#undef DX_AT
        }
        if (++f == F) f = 0;
    }
}

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
