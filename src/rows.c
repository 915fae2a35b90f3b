/* The fast kernels of the ROWS view (NC, channels-last, and every
 * per-activation case): feature f's values run down column f of x[r][F].
 *
 * A tile is a block of rows by a few vectors of features. Each lane is one
 * feature and sums its rows in order, so the vector paths and the scalar
 * path for ragged features round the same way. */
#include "epilogue.h"
#include "formulas.h"
#include "simd.h"
#include "views.h"

#define TILE_GROUPS (BN_FEATURE_BLOCK / VL)

/* UNROLLED_GROUPS: the loops over a tile's groups of features are unrolled
 * whole, so that each group's vectors stay in registers. Left to itself,
 * GCC kept the fused backward's loop (the one with the mask) rolled, its
 * sums in memory: the fused backward took 1.31x the plain one's time in
 * cache, 1.05x unrolled (docs/PERFORMANCE.md). */

/* The rows view's statistics go through a block of rows in strips of up to
 * BN_ROWS_STRIP features (whole rows where there are no more): a first pass
 * adds up each feature's values, with the sums in registers, and places the
 * centers; a second pass, over tiles of BN_FEATURE_BLOCK features, sums the
 * deviations from them while the strip is still in L2. The first pass thus
 * reads memory in runs of up to 1 KiB, twice as fast as in a tile's 256-byte
 * strips (docs/PERFORMANCE.md, "Why the kernels are cut as they are").
 *
 * The first pass's sums are plain float sums: they only place the centers,
 * within a few float ulps of the means, and the second pass's sum of
 * deviations corrects for that. */
#define STRIP_GROUPS (BN_ROWS_STRIP / VL)

/* sums[j] = the sum of base[r * F + j] over R rows, for ng groups of VL
 * features; in registers where ng is a constant. */
BN_INLINE void strip_sums_groups(const float *base, size_t R, size_t F, int ng, float *sums) {
    vf acc[STRIP_GROUPS];
    for (int q = 0; q < ng; q++)
        acc[q] = (vf){0};
    for (size_t r = 0; r < R; r++)
#pragma GCC unroll 16 /* UNROLLED_GROUPS */
        for (int q = 0; q < ng; q++)
            acc[q] += LD(base + r * F + q * VL);
    for (int q = 0; q < ng; q++)
        ST(sums + q * VL, acc[q]);
}

/* Centers of w <= BN_ROWS_STRIP features: each feature's float sum over R rows
 * in row order (lane or scalar alike), divided by R. */
BN_INLINE void strip_centers(const float *base, size_t R, size_t F, size_t w, float *center) {
    size_t j = 0;
    if (w == BN_ROWS_STRIP) {
        strip_sums_groups(base, R, F, STRIP_GROUPS, center);
        j = w;
    }
    /* 8 groups: a row of 128 features is read whole, not as two strips of
     * 256 bytes (docs/PERFORMANCE.md, "Why the kernels are cut as they are"). */
    for (; j + 8 * VL <= w; j += 8 * VL)
        strip_sums_groups(base + j, R, F, 8, center + j);
    for (; j + 4 * VL <= w; j += 4 * VL)
        strip_sums_groups(base + j, R, F, 4, center + j);
    for (; j + VL <= w; j += VL)
        strip_sums_groups(base + j, R, F, 1, center + j);
    for (; j < w; j++) {
        float sum = 0.0f;
        for (size_t r = 0; r < R; r++)
            sum += base[r * F + j];
        center[j] = sum;
    }
    for (j = 0; j < w; j++)
        center[j] = (float)((double)center[j] / (double)R);
}

/* Chunk statistics of ng groups of VL features (columns from `base`, R rows
 * with stride F) from their deviations from `center`. */
BN_INLINE void tile_stats_groups(const float *base, size_t R, size_t F, int ng, const float *center,
                                 double *mean, double *m2) {
    vf k[TILE_GROUPS], s1[TILE_GROUPS], s2[TILE_GROUPS];
    const double count = (double)R;
    for (int q = 0; q < ng; q++)
        k[q] = LD(center + q * VL), s1[q] = (vf){0}, s2[q] = (vf){0};
    for (size_t r = 0; r < R; r++)
#pragma GCC unroll 16 /* UNROLLED_GROUPS */
        for (int q = 0; q < ng; q++) {
            vf e = LD(base + r * F + q * VL) - k[q];
            s1[q] += e, s2[q] += e * e;
        }
    float t1[VL], t2[VL];
    for (int q = 0; q < ng; q++) {
        TO_LANES(t1, s1[q]);
        TO_LANES(t2, s2[q]);
        for (int j = 0; j < VL; j++)
            bn_chunk_moments(center[q * VL + j], t1[j], t2[j], count, &mean[q * VL + j],
                             &m2[q * VL + j]);
    }
}

/* The same for one feature, for the columns left over after the groups. */
static void tile_stats_column(const float *base, size_t R, size_t F, float center, double *mean,
                              double *m2) {
    float s1 = 0.0f, s2 = 0.0f;
    for (size_t r = 0; r < R; r++) {
        float e = base[r * F] - center;
        s1 += e, s2 += e * e;
    }
    bn_chunk_moments(center, s1, s2, (double)R, mean, m2);
}

/* Chunk statistics of a strip: R rows by w <= BN_ROWS_STRIP features. */
BN_INLINE void strip_stats(const float *base, size_t R, size_t F, size_t w, double *mean,
                           double *m2) {
    float center[BN_ROWS_STRIP];
    strip_centers(base, R, F, w, center);
    size_t j = 0;
    for (; j + BN_FEATURE_BLOCK <= w; j += BN_FEATURE_BLOCK)
        tile_stats_groups(base + j, R, F, TILE_GROUPS, center + j, mean + j, m2 + j);
    for (; j + 2 * VL <= w; j += 2 * VL)
        tile_stats_groups(base + j, R, F, 2, center + j, mean + j, m2 + j);
    for (; j + VL <= w; j += VL)
        tile_stats_groups(base + j, R, F, 1, center + j, mean + j, m2 + j);
    for (; j < w; j++)
        tile_stats_column(base + j, R, F, center[j], mean + j, m2 + j);
}

/* Rows of up to ROW_GROUPS * VL features are narrow enough to keep what a
 * pass needs per feature in registers; the backward takes them whole (read
 * in whole rows, not strips), wider rows in tiles of BN_FEATURE_BLOCK. */
#define ROW_GROUPS 8 /* 128 features: the widest whose sums and means fit in registers */

/* Where a tile's gradient comes from: g = dy, or, with the fused ReLU's
 * mask, dy where the bit of the value's offset in the tensor (o + the
 * value's offset from dy) is set and +0 elsewhere; g is written to gout
 * when given. dy and gout point at the tile's first value. */
typedef struct {
    const float *dy;
    const uint8_t *mask;
    size_t o;
    float *gout;
} tile_grad;

static inline tile_grad tile_grad_at(const tile_grad *tg, size_t j) {
    tile_grad t = {tg->dy + j, tg->mask, tg->o + j, tg->gout ? tg->gout + j : NULL};
    return t;
}

/* Backward sums of ng groups of features over R rows: sum(g),
 * sum(g * (x - mean)) and sum(x - mean); with dx (frozen statistics),
 * dx = BN_DX_FROZEN in the same pass instead of the third sum. */
BN_INLINE void tile_backward_groups(const float *x, const tile_grad *tg, float *dx, size_t R,
                                    size_t F, int ng, const float *mean, const float *a, double *s0,
                                    double *s1, double *s2) {
    vf vm[ROW_GROUPS], va[ROW_GROUPS], d0[ROW_GROUPS], d1[ROW_GROUPS], d2[ROW_GROUPS];
    for (int q = 0; q < ng; q++) {
        vm[q] = LD(mean + q * VL), d0[q] = (vf){0}, d1[q] = (vf){0}, d2[q] = (vf){0};
        va[q] = dx ? LD(a + q * VL) : (vf){0};
    }
    for (size_t r = 0; r < R; r++)
#pragma GCC unroll 16 /* UNROLLED_GROUPS */
        for (int q = 0; q < ng; q++) {
            size_t o = r * F + q * VL;
            vf g = LD(tg->dy + o), e = LD(x + o) - vm[q];
            if (tg->mask) g = KEEP_LANES(g, mask_bits16(tg->mask, tg->o + o));
            if (tg->gout) ST(tg->gout + o, g);
            d0[q] += g, d1[q] += g * e;
            if (dx)
                ST(dx + o, BN_DX_FROZEN(g, va[q]));
            else
                d2[q] += e;
        }
    float t0[VL], t1[VL], t2[VL];
    for (int q = 0; q < ng; q++) {
        TO_LANES(t0, d0[q]);
        TO_LANES(t1, d1[q]);
        TO_LANES(t2, d2[q]);
        for (int j = 0; j < VL; j++)
            s0[q * VL + j] = t0[j], s1[q * VL + j] = t1[j], s2[q * VL + j] = t2[j];
    }
}

static void tile_backward_column(const float *x, const tile_grad *tg, float *dx, size_t R, size_t F,
                                 float mean, float a, double *s0, double *s1, double *s2) {
    float d0 = 0.0f, d1 = 0.0f, d2 = 0.0f;
    for (size_t r = 0; r < R; r++) {
        float g = tg->dy[r * F], e = x[r * F] - mean;
        if (tg->mask && !MASK_BIT(tg->mask, tg->o + r * F)) g = 0.0f;
        if (tg->gout) tg->gout[r * F] = g;
        d0 += g, d1 += g * e;
        if (dx)
            dx[r * F] = BN_DX_FROZEN(g, a);
        else
            d2 += e;
    }
    *s0 = d0, *s1 = d1, *s2 = d2;
}

BN_INLINE void tile_backward(const float *x, const tile_grad *tg, float *dx, size_t R, size_t F,
                             size_t w, const float *mean, const float *a, double *s0, double *s1,
                             double *s2) {
    size_t j = 0;
#define GROUPS(ng)                                                                                 \
    do {                                                                                           \
        tile_grad t = tile_grad_at(tg, j);                                                         \
        tile_backward_groups(x + j, &t, dx ? dx + j : NULL, R, F, ng, mean + j, a + j, s0 + j,     \
                             s1 + j, s2 + j);                                                      \
    } while (0)
    for (; j + ROW_GROUPS * VL <= w; j += ROW_GROUPS * VL)
        GROUPS(ROW_GROUPS);
    for (; j + BN_FEATURE_BLOCK <= w; j += BN_FEATURE_BLOCK)
        GROUPS(TILE_GROUPS);
    for (; j + 2 * VL <= w; j += 2 * VL)
        GROUPS(2);
    for (; j + VL <= w; j += VL)
        GROUPS(1);
#undef GROUPS
    for (; j < w; j++) {
        tile_grad t = tile_grad_at(tg, j);
        tile_backward_column(x + j, &t, dx ? dx + j : NULL, R, F, mean[j], a[j], s0 + j, s1 + j,
                             s2 + j);
    }
}

/* The fused training backward's sums (g from the mask, no dx) below AVX-512
 * (BN_WIDE_VECTORS), where a masked load of 16 lanes went through memory:
 * groups of 8 features, up to 128 features (whole rows of the common
 * widths) at a time: strips of 32 features, whose sums would fit the 16
 * AVX2 registers, took 1.2-1.25x as long as whole 128-feature rows, whose
 * sums live in L1. Each feature adds its rows in
 * the same order as in tile_backward_groups: the same sums, bit for bit. */
#define TILE_GROUPS8 16
BN_INLINE void tile_backward_groups8(const float *x, const tile_grad *tg, size_t R, size_t F,
                                     int ng, const float *mean, double *s0, double *s1,
                                     double *s2) {
    v8f vm[TILE_GROUPS8], d0[TILE_GROUPS8], d1[TILE_GROUPS8], d2[TILE_GROUPS8];
    for (int q = 0; q < ng; q++)
        vm[q] = LD8(mean + 8 * q), d0[q] = (v8f){0}, d1[q] = (v8f){0}, d2[q] = (v8f){0};
    for (size_t r = 0; r < R; r++)
#pragma GCC unroll 16
        for (int q = 0; q < ng; q++) {
            const size_t o = r * F + 8 * (size_t)q;
            v8f g = LD8_AT_MASKED(tg->dy, tg->mask, tg->o, o), e = LD8(x + o) - vm[q];
            if (tg->gout) ST8(tg->gout + o, g);
            d0[q] += g, d1[q] += g * e, d2[q] += e;
        }
    float t0[8], t1[8], t2[8];
    for (int q = 0; q < ng; q++) {
        memcpy(t0, &d0[q], sizeof t0), memcpy(t1, &d1[q], sizeof t1), memcpy(t2, &d2[q], sizeof t2);
        for (int j = 0; j < 8; j++)
            s0[q * 8 + j] = t0[j], s1[q * 8 + j] = t1[j], s2[q * 8 + j] = t2[j];
    }
}

BN_INLINE void tile_backward8(const float *x, const tile_grad *tg, size_t R, size_t F, size_t w,
                              const float *mean, double *s0, double *s1, double *s2) {
    size_t j = 0;
    for (; j + 8 * TILE_GROUPS8 <= w; j += 8 * TILE_GROUPS8) {
        tile_grad t = tile_grad_at(tg, j);
        tile_backward_groups8(x + j, &t, R, F, TILE_GROUPS8, mean + j, s0 + j, s1 + j, s2 + j);
    }
    if (j + 8 <= w) {
        tile_grad t = tile_grad_at(tg, j);
        const int ng = (int)((w - j) / 8);
        tile_backward_groups8(x + j, &t, R, F, ng, mean + j, s0 + j, s1 + j, s2 + j);
        j += 8 * (size_t)ng;
    }
    for (; j < w; j++) {
        tile_grad t = tile_grad_at(tg, j);
        tile_backward_column(x + j, &t, NULL, R, F, mean[j], 0.0f, s0 + j, s1 + j, s2 + j);
    }
}

/* One switch case per group count, so that each call has a constant one. */
#define GROUP_COUNTS_1_TO_4(CASE) CASE(1) CASE(2) CASE(3) CASE(4)
#define GROUP_COUNTS_1_TO_8(CASE) GROUP_COUNTS_1_TO_4(CASE) CASE(5) CASE(6) CASE(7) CASE(8)

/* Rows of ng * VL features (ng <= ROW_GROUPS; dx: ROW_GROUPS / 2) with every
 * coefficient vector held in registers for the whole block: one row at a
 * time took three (normalize) or four (dx) coefficient loads per vector of
 * output beside one or two of data, and the load pipes, not memory, set the
 * pace of narrow channels-last rows that sit in cache. The same arithmetic
 * per value as the one-row forms, so the same bits. Rows go out one after
 * another, so that non-temporal stores leave in address order. With ep, the
 * fused epilogue on each vector (x[0] at tensor offset o). */
BN_INLINE void rows_normalize_hoisted(const float *x, float *y, size_t R, int ng, const float *mean,
                                      const float *a, const float *b2, const bn_epilogue *ep,
                                      int fused, size_t o, int stream) {
    /* fused (ep given) is a constant of each call: no test per vector. */
    vf vm[ROW_GROUPS], va[ROW_GROUPS], vb[ROW_GROUPS];
    const size_t F = (size_t)ng * VL;
    /* A copy the mask's byte stores cannot alias: through ep, its fields
     * were loaded again for every vector. */
    const bn_epilogue e = fused ? *ep : (bn_epilogue){0};
    for (int q = 0; q < ng; q++)
        vm[q] = LD(mean + q * VL), va[q] = LD(a + q * VL), vb[q] = LD(b2 + q * VL);
    for (size_t r = 0; r < R; r++)
#pragma GCC unroll 16 /* UNROLLED_GROUPS */
        for (int q = 0; q < ng; q++) {
            const size_t k = r * F + q * VL;
            vf out = BN_NORMALIZE_FOLDED(LD(x + k), vm[q], va[q], vb[q]);
            if (fused) bn_epilogue16(&e, &out, o + k);
            if (stream)
                ST_STREAM(y + k, out);
            else
                ST(y + k, out);
        }
}

/* dx with g = dy, or dy masked by the bits of mask from tensor offset o. */
BN_INLINE void rows_dx_hoisted(const float *x, const float *dy, const uint8_t *mask, size_t o,
                               float *dx, size_t R, int ng, const float *mean, const float *a,
                               const float *b, const float *c, int stream) {
    vf vm[ROW_GROUPS / 2], va[ROW_GROUPS / 2], vb[ROW_GROUPS / 2], vc[ROW_GROUPS / 2];
    const size_t F = (size_t)ng * VL;
    for (int q = 0; q < ng; q++)
        vm[q] = LD(mean + q * VL), va[q] = LD(a + q * VL), vb[q] = LD(b + q * VL),
        vc[q] = LD(c + q * VL);
    for (size_t r = 0; r < R; r++)
#pragma GCC unroll 16 /* UNROLLED_GROUPS */
        for (int q = 0; q < ng; q++) {
            size_t k = r * F + q * VL;
            vf g = mask ? LD_AT_MASKED(dy, mask, o, k) : LD(dy + k);
            vf out = BN_DX(LD(x + k), g, vm[q], va[q], vb[q], vc[q]);
            if (stream)
                ST_STREAM(dx + k, out);
            else
                ST(dx + k, out);
        }
}

BN_DISPATCH static void rows_stats(const bn_view *v, const float *x, bn_workspace *ws,
                                   const bn_rows_tile *tl) {
    const size_t F = v->features, p = tl->rb * F + tl->f0;
    strip_stats(x + tl->r0 * F + tl->f0, tl->rows, F, tl->w, ws->part0 + p, ws->part1 + p);
}

size_t bn_rows_backward_width(size_t F) {
    return F <= ROW_GROUPS * VL ? ROW_GROUPS * VL : BN_FEATURE_BLOCK;
}

BN_DISPATCH static void rows_backward(const bn_view *v, const float *x, const bn_grad *gr,
                                      float *frozen_dx, bn_workspace *ws, const bn_rows_tile *tl) {
    const size_t F = v->features, o = tl->r0 * F + tl->f0, p = tl->rb * F + tl->f0;
    const float *mean = ws->mean + tl->f0;
    if (!gr->mask && !gr->g_out) {
        /* The plain backward: g is dy, nothing else to write. */
        const tile_grad tg = {gr->dy + o, NULL, o, NULL};
        if (frozen_dx)
            tile_backward(x + o, &tg, frozen_dx + o, tl->rows, F, tl->w, mean,
                          ws->dy_scale + tl->f0, ws->part0 + p, ws->part1 + p, ws->part2 + p);
        else
            tile_backward(x + o, &tg, NULL, tl->rows, F, tl->w, mean, mean, ws->part0 + p,
                          ws->part1 + p, ws->part2 + p);
        return;
    }
    const tile_grad tg = {gr->dy + o, gr->mask, o, gr->g_out ? gr->g_out + o : NULL};
    if (gr->mask && !frozen_dx && !BN_WIDE_VECTORS()) {
        tile_backward8(x + o, &tg, tl->rows, F, tl->w, mean, ws->part0 + p, ws->part1 + p,
                       ws->part2 + p);
        return;
    }
    tile_backward(x + o, &tg, frozen_dx ? frozen_dx + o : NULL, tl->rows, F, tl->w, mean,
                  frozen_dx ? ws->dy_scale + tl->f0 : mean, ws->part0 + p, ws->part1 + p,
                  ws->part2 + p);
}

BN_DISPATCH static void rows_normalize(const bn_view *v, const float *x, const bn_workspace *ws,
                                       float *y, size_t r0, size_t r1, const bn_epilogue *ep,
                                       int stream) {
    const size_t F = v->features;
    const float *mean = ws->mean, *scale = ws->scale, *shift_folded = ws->shift_folded;
    /* Below AVX-512 the hoisted coefficients do not fit the registers, and
     * the fused epilogue takes 8 lanes at a time: the one-row form. */
    if (F % VL == 0 && F / VL <= ROW_GROUPS && (!stream || STREAM_ALIGNED(y)) &&
        (!ep || BN_WIDE_VECTORS())) {
        const float *xb = x + r0 * F;
        const size_t R = r1 - r0, o = r0 * F;
        switch ((F / VL) * 4 + (ep != NULL) * 2 + (stream != 0)) {
#define NORMALIZE_CASE(ng)                                                                         \
    case 4 * ng:                                                                                   \
        rows_normalize_hoisted(xb, y, R, ng, mean, scale, shift_folded, NULL, 0, o, 0);            \
        break;                                                                                     \
    case 4 * ng + 1:                                                                               \
        rows_normalize_hoisted(xb, y, R, ng, mean, scale, shift_folded, NULL, 0, o, 1);            \
        break;                                                                                     \
    case 4 * ng + 2:                                                                               \
        rows_normalize_hoisted(xb, y, R, ng, mean, scale, shift_folded, ep, 1, o, 0);              \
        break;                                                                                     \
    case 4 * ng + 3:                                                                               \
        rows_normalize_hoisted(xb, y, R, ng, mean, scale, shift_folded, ep, 1, o, 1);              \
        break;
            GROUP_COUNTS_1_TO_8(NORMALIZE_CASE)
#undef NORMALIZE_CASE
        }
        return;
    }
    for (size_t r = r0; r < r1; r++) {
        const float *xr = x + r * F;
        float *yr = y + (r - r0) * F;
#define Y_AT(L, j) BN_NORMALIZE_FOLDED(L(xr, j), L(mean, j), L(scale, j), L(shift_folded, j))
        if (ep)
            ELEMENTWISE_FUSED(yr, F, r * F, ep, stream, Y_AT);
        else
            ELEMENTWISE(yr, F, stream, Y_AT);
#undef Y_AT
    }
}

BN_DISPATCH static void rows_dx(const bn_view *v, const float *x, const bn_grad *gr,
                                const bn_workspace *ws, float *dx, size_t r0, size_t r1,
                                int stream) {
    const size_t F = v->features;
    const float *dy = gr->dy;
    const uint8_t *mask = gr->mask;
    const float *mean = ws->mean, *dy_scale = ws->dy_scale, *xc_scale = ws->xc_scale,
                *dx_offset = ws->dx_offset;
    /* Below AVX-512, masked loads go 8 lanes a step: the one-row form. */
    const int wide = BN_WIDE_VECTORS();
    if (F % VL == 0 && F / VL <= ROW_GROUPS / 2 && (!stream || STREAM_ALIGNED(dx)) &&
        (!mask || wide)) {
        const size_t o = r0 * F, R = r1 - r0;
        /* The plain case with a NULL mask of its own, so that its copies
         * have no test of the mask. */
        switch ((F / VL) * 4 + (mask != NULL) * 2 + (stream != 0)) {
#define DX_CASE(ng)                                                                                \
    case 4 * ng:                                                                                   \
        rows_dx_hoisted(x + o, dy + o, NULL, 0, dx + o, R, ng, mean, dy_scale, xc_scale,           \
                        dx_offset, 0);                                                             \
        break;                                                                                     \
    case 4 * ng + 1:                                                                               \
        rows_dx_hoisted(x + o, dy + o, NULL, 0, dx + o, R, ng, mean, dy_scale, xc_scale,           \
                        dx_offset, 1);                                                             \
        break;                                                                                     \
    case 4 * ng + 2:                                                                               \
        rows_dx_hoisted(x + o, dy + o, mask, o, dx + o, R, ng, mean, dy_scale, xc_scale,           \
                        dx_offset, 0);                                                             \
        break;                                                                                     \
    case 4 * ng + 3:                                                                               \
        rows_dx_hoisted(x + o, dy + o, mask, o, dx + o, R, ng, mean, dy_scale, xc_scale,           \
                        dx_offset, 1);                                                             \
        break;
            GROUP_COUNTS_1_TO_4(DX_CASE)
#undef DX_CASE
        }
        return;
    }
    for (size_t r = r0; r < r1; r++) {
        const size_t o = r * F;
        const float *xr = x + o, *dyr = dy + o;
        float *dxr = dx + o;
        if (mask) {
#define DX_AT(L, j)                                                                                \
    BN_DX(L(xr, j), L##_MASKED(dyr, mask, o, j), L(mean, j), L(dy_scale, j), L(xc_scale, j),       \
          L(dx_offset, j))
            if (wide)
                ELEMENTWISE(dxr, F, stream, DX_AT);
            else
                ELEMENTWISE8(dxr, F, stream, DX_AT);
#undef DX_AT
        } else {
#define DX_AT(L, j)                                                                                \
    BN_DX(L(xr, j), L(dyr, j), L(mean, j), L(dy_scale, j), L(xc_scale, j), L(dx_offset, j))
            ELEMENTWISE(dxr, F, stream, DX_AT);
#undef DX_AT
        }
    }
}

/* The entry points, plain functions around the file's dispatched ones: a
 * dispatched function that other files of the shared library call did not
 * link under clang. */
void bn_rows_stats(const bn_view *v, const float *x, bn_workspace *ws, const bn_rows_tile *tl) {
    rows_stats(v, x, ws, tl);
}

void bn_rows_backward(const bn_view *v, const float *x, const bn_grad *gr, float *frozen_dx,
                      bn_workspace *ws, const bn_rows_tile *tl) {
    rows_backward(v, x, gr, frozen_dx, ws, tl);
}

void bn_rows_normalize(const bn_view *v, const float *x, const bn_workspace *ws, float *y,
                       size_t r0, size_t r1, const bn_epilogue *ep, int stream) {
    rows_normalize(v, x, ws, y, r0, r1, ep, stream);
}

void bn_rows_dx(const bn_view *v, const float *x, const bn_grad *gr, const bn_workspace *ws,
                float *dx, size_t r0, size_t r1, int stream) {
    rows_dx(v, x, gr, ws, dx, r0, r1, stream);
}
