/* The ROWS view's accumulating passes, statistics and backward sums,
 * written once for vectors of BN_W lanes (simd_width.h): rows.c includes
 * this file once per width and calls rows_stats_W / rows_backward_W of the
 * width the running copy holds in registers. Each lane is one feature and
 * adds its rows in order, so both widths (and the scalar columns) give the
 * same bits. No include guard, by design. */

#include "simd_width.h" /* the vocabulary of width BN_W */

/* Vectors per strip, per backward tile, per whole row of ROW_FEATURES. */
#define W_STRIP_GROUPS (BN_ROWS_STRIP / BN_W)
#define W_TILE_GROUPS  (BN_FEATURE_BLOCK / BN_W)
#define W_ROW_GROUPS   (ROW_FEATURES / BN_W)

/* sums[j] = the sum of base[r * F + j] over R rows, for ng groups of BN_W
 * features; in registers where ng is a constant. */
BN_INLINE void WIDTH_NAME(strip_sums_groups)(const float *base, size_t R, size_t F, int ng,
                                             float *sums) {
    VW acc[W_STRIP_GROUPS];
    for (int q = 0; q < ng; q++)
        acc[q] = (VW){0};
    for (size_t r = 0; r < R; r++)
#pragma GCC unroll 32 /* UNROLLED_GROUPS */
        for (int q = 0; q < ng; q++)
            acc[q] += LDW(base + r * F + q * BN_W);
    for (int q = 0; q < ng; q++)
        STW(sums + q * BN_W, acc[q]);
}

/* Centers of w <= BN_ROWS_STRIP features: each feature's float sum over R rows
 * in row order (lane or scalar alike), divided by R. */
BN_INLINE void WIDTH_NAME(strip_centers)(const float *base, size_t R, size_t F, size_t w,
                                         float *center) {
    size_t j = 0;
    if (w == BN_ROWS_STRIP) {
        WIDTH_NAME(strip_sums_groups)(base, R, F, W_STRIP_GROUPS, center);
        j = w;
    }
    /* A row of 128 features is read whole, not as two strips of 256 bytes
     * (docs/PERFORMANCE.md, "Why the kernels are cut as they are"). */
    for (; j + 128 <= w; j += 128)
        WIDTH_NAME(strip_sums_groups)(base + j, R, F, 128 / BN_W, center + j);
    for (; j + 64 <= w; j += 64)
        WIDTH_NAME(strip_sums_groups)(base + j, R, F, 64 / BN_W, center + j);
    for (; j + BN_W <= w; j += BN_W)
        WIDTH_NAME(strip_sums_groups)(base + j, R, F, 1, center + j);
    for (; j < w; j++) {
        float sum = 0.0f;
        for (size_t r = 0; r < R; r++)
            sum += base[r * F + j];
        center[j] = sum;
    }
    for (j = 0; j < w; j++)
        center[j] = (float)((double)center[j] / (double)R);
}

/* Chunk statistics of ng groups of BN_W features (columns from `base`, R
 * rows with stride F) from their deviations from `center`. */
BN_INLINE void WIDTH_NAME(tile_stats_groups)(const float *base, size_t R, size_t F, int ng,
                                             const float *center, double *mean, double *m2) {
    VW k[W_ROW_GROUPS], s1[W_ROW_GROUPS], s2[W_ROW_GROUPS];
    const double count = (double)R;
    for (int q = 0; q < ng; q++)
        k[q] = LDW(center + q * BN_W), s1[q] = (VW){0}, s2[q] = (VW){0};
    for (size_t r = 0; r < R; r++)
#pragma GCC unroll 32 /* UNROLLED_GROUPS */
        for (int q = 0; q < ng; q++) {
            VW e = LDW(base + r * F + q * BN_W) - k[q];
            s1[q] += e, s2[q] += e * e;
        }
    float t1[BN_W], t2[BN_W];
    for (int q = 0; q < ng; q++) {
        memcpy(t1, &s1[q], sizeof t1);
        memcpy(t2, &s2[q], sizeof t2);
        for (int j = 0; j < BN_W; j++)
            bn_chunk_moments(center[q * BN_W + j], t1[j], t2[j], count, &mean[q * BN_W + j],
                             &m2[q * BN_W + j]);
    }
}

/* Chunk statistics of a strip: R rows by w <= BN_ROWS_STRIP features. */
BN_INLINE void WIDTH_NAME(strip_stats)(const float *base, size_t R, size_t F, size_t w,
                                       double *mean, double *m2) {
    float center[BN_ROWS_STRIP];
    WIDTH_NAME(strip_centers)(base, R, F, w, center);
    size_t j = 0;
    if (BN_W == 16 && w == ROW_FEATURES) {
        WIDTH_NAME(tile_stats_groups)(base, R, F, W_ROW_GROUPS, center, mean, m2);
        j = w;
    }
    for (; j + BN_FEATURE_BLOCK <= w; j += BN_FEATURE_BLOCK)
        WIDTH_NAME(tile_stats_groups)(base + j, R, F, W_TILE_GROUPS, center + j, mean + j, m2 + j);
    for (; j + 32 <= w; j += 32)
        WIDTH_NAME(tile_stats_groups)(base + j, R, F, 32 / BN_W, center + j, mean + j, m2 + j);
    for (; j + BN_W <= w; j += BN_W)
        WIDTH_NAME(tile_stats_groups)(base + j, R, F, 1, center + j, mean + j, m2 + j);
    for (; j < w; j++)
        tile_stats_column(base + j, R, F, center[j], mean + j, m2 + j);
}

/* Backward sums of ng groups of features over R rows: sum(g),
 * sum(g * (x - mean)) and sum(x - mean); with dx (frozen statistics),
 * dx = BN_DX_FROZEN in the same pass instead of the third sum. */
BN_INLINE void WIDTH_NAME(tile_backward_groups)(const float *x, const tile_grad *tg, float *dx,
                                                size_t R, size_t F, int ng, const float *mean,
                                                const float *a, double *s0, double *s1,
                                                double *s2) {
    VW vm[W_ROW_GROUPS], va[W_ROW_GROUPS], d0[W_ROW_GROUPS], d1[W_ROW_GROUPS], d2[W_ROW_GROUPS];
    for (int q = 0; q < ng; q++) {
        vm[q] = LDW(mean + q * BN_W), d0[q] = (VW){0}, d1[q] = (VW){0}, d2[q] = (VW){0};
        va[q] = dx ? LDW(a + q * BN_W) : (VW){0};
    }
    /* Rows that fill whole mask bytes take each group's bits as whole bytes
     * from the row's first: no shift, and the address is a step per row. */
    const uint8_t *mrow = tg->mask && tg->o % 8 == 0 && F % 8 == 0 ? tg->mask + tg->o / 8 : NULL;
    for (size_t r = 0; r < R; r++, mrow = mrow ? mrow + F / 8 : NULL)
#pragma GCC unroll 32 /* UNROLLED_GROUPS */
        for (int q = 0; q < ng; q++) {
            const size_t o = r * F + q * BN_W;
            VW g = mrow       ? KEEP_W(LDW(tg->dy + o), MASK_BITS_W(mrow + q * BN_W / 8))
                   : tg->mask ? LDW_MASKED(tg->dy + o, tg->mask, tg->o + o)
                              : LDW(tg->dy + o);
            VW e = LDW(x + o) - vm[q];
            if (tg->gout) STW(tg->gout + o, g);
            d0[q] += g, d1[q] += g * e;
            if (dx)
                STW(dx + o, BN_DX_FROZEN(g, va[q]));
            else
                d2[q] += e;
        }
    float t0[BN_W], t1[BN_W], t2[BN_W];
    for (int q = 0; q < ng; q++) {
        memcpy(t0, &d0[q], sizeof t0), memcpy(t1, &d1[q], sizeof t1), memcpy(t2, &d2[q], sizeof t2);
        for (int j = 0; j < BN_W; j++)
            s0[q * BN_W + j] = t0[j], s1[q * BN_W + j] = t1[j], s2[q * BN_W + j] = t2[j];
    }
}

/* The backward sums of a tile of w features: whole rows of up to
 * ROW_FEATURES, then blocks of BN_FEATURE_BLOCK, 32, BN_W, and single
 * columns. */
BN_INLINE void WIDTH_NAME(tile_backward)(const float *x, const tile_grad *tg, float *dx, size_t R,
                                         size_t F, size_t w, const float *mean, const float *a,
                                         double *s0, double *s1, double *s2) {
    size_t j = 0;
#define GROUPS(ng)                                                                                 \
    do {                                                                                           \
        tile_grad t = tile_grad_at(tg, j);                                                         \
        WIDTH_NAME(tile_backward_groups)                                                           \
        (x + j, &t, dx ? dx + j : NULL, R, F, ng, mean + j, a + j, s0 + j, s1 + j, s2 + j);        \
    } while (0)
    for (; j + ROW_FEATURES <= w; j += ROW_FEATURES)
        GROUPS(W_ROW_GROUPS);
    for (; j + BN_FEATURE_BLOCK <= w; j += BN_FEATURE_BLOCK)
        GROUPS(W_TILE_GROUPS);
    for (; j + 32 <= w; j += 32)
        GROUPS(32 / BN_W);
    for (; j + BN_W <= w; j += BN_W)
        GROUPS(1);
#undef GROUPS
    for (; j < w; j++) {
        tile_grad t = tile_grad_at(tg, j);
        tile_backward_column(x + j, &t, dx ? dx + j : NULL, R, F, mean[j], a[j], s0 + j, s1 + j,
                             s2 + j);
    }
}

BN_INLINE void WIDTH_NAME(rows_stats)(const bn_view *v, const float *x, bn_workspace *ws,
                                      const bn_rows_tile *tl) {
    const size_t F = v->features, p = tl->rb * F + tl->f0;
    WIDTH_NAME(strip_stats)
    (x + tl->r0 * F + tl->f0, tl->rows, F, tl->w, ws->part0 + p, ws->part1 + p);
}

BN_INLINE void WIDTH_NAME(rows_backward)(const bn_view *v, const float *x, const bn_grad *gr,
                                         float *frozen_dx, bn_workspace *ws,
                                         const bn_rows_tile *tl) {
    const size_t F = v->features, o = tl->r0 * F + tl->f0, p = tl->rb * F + tl->f0;
    const float *mean = ws->mean + tl->f0;
    if (!gr->mask && !gr->g_out) {
        /* The plain backward: g is dy, nothing else to write. */
        const tile_grad tg = {gr->dy + o, NULL, o, NULL};
        if (frozen_dx) WIDTH_NAME(tile_backward)
        (x + o, &tg, frozen_dx + o, tl->rows, F, tl->w, mean, ws->dy_scale + tl->f0, ws->part0 + p,
         ws->part1 + p, ws->part2 + p);
        else WIDTH_NAME(tile_backward)(x + o, &tg, NULL, tl->rows, F, tl->w, mean, mean,
                                       ws->part0 + p, ws->part1 + p, ws->part2 + p);
        return;
    }
    const tile_grad tg = {gr->dy + o, gr->mask, o, gr->g_out ? gr->g_out + o : NULL};
    WIDTH_NAME(tile_backward)
    (x + o, &tg, frozen_dx ? frozen_dx + o : NULL, tl->rows, F, tl->w, mean,
     frozen_dx ? ws->dy_scale + tl->f0 : mean, ws->part0 + p, ws->part1 + p, ws->part2 + p);
}

#undef W_STRIP_GROUPS
#undef W_TILE_GROUPS
#undef W_ROW_GROUPS
