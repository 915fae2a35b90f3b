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
 * deviations corrects for that. (rows_sums.h holds both passes.) */

/* Chunk statistics of one feature (a column of R rows with stride F) from
 * its deviations from `center`, for the columns left over after the vector
 * groups: the float sums a lane makes. */
static void tile_stats_column(const float *base, size_t R, size_t F, float center, double *mean,
                              double *m2) {
    float s1 = 0.0f, s2 = 0.0f;
    for (size_t r = 0; r < R; r++) {
        float e = base[r * F] - center;
        s1 += e, s2 += e * e;
    }
    bn_chunk_moments(center, s1, s2, (double)R, mean, m2);
}

/* Rows of up to ROW_FEATURES features are narrow enough to keep what a
 * pass needs per feature in registers (at AVX-512); the backward takes them
 * whole (read in whole rows, not strips), wider rows in tiles of
 * BN_FEATURE_BLOCK. */
#define ROW_FEATURES 128 /* the widest whose sums and means fit in registers */
#define ROW_GROUPS   (ROW_FEATURES / VL)

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

/* The backward sums of one feature, for the columns left over after the
 * vector groups: the float sums a lane makes. */
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

/* One switch case per group count, so that each call has a constant one. */
#define GROUP_COUNTS_1_TO_4(CASE) CASE(1) CASE(2) CASE(3) CASE(4)
#define GROUP_COUNTS_1_TO_8(CASE) GROUP_COUNTS_1_TO_4(CASE) CASE(5) CASE(6) CASE(7) CASE(8)

/* Rows of ng * VL features (ng <= ROW_GROUPS; dx: ROW_GROUPS / 2, or
 * ROW_GROUPS where dx streams at AVX-512) with every coefficient vector held
 * in registers for the whole block: one row at a time took three
 * (normalize) or four (dx) coefficient loads per vector of output beside one
 * or two of data. The load pipes, not memory, then set the pace of narrow
 * channels-last rows that sit in cache; and from memory, on Zen 5, the dx
 * pass of 128-feature rows ran at 0.75x the speed of the planes' one, whose
 * coefficients are scalars (docs/PERFORMANCE.md). For dx, 8 groups hold 32
 * coefficient vectors, so a few spill; that lost 3-5% in cache, where dx
 * does not stream (the AVX2 level holds 4 groups at most). The arithmetic
 * per value as the one-row forms, so the same bits. Rows go out one after
 * another, so that non-temporal stores leave in address order. With ep, the
 * fused epilogue on each vector (x[0] at tensor offset o). */
#define NORMALIZE_HOISTED(EPI16, STS)                                                              \
    do {                                                                                           \
        /* fused (ep given) is a constant of each call: no test per vector. */                     \
        vf vm[ROW_GROUPS], va[ROW_GROUPS], vb[ROW_GROUPS];                                         \
        const size_t F = (size_t)ng * VL;                                                          \
        /* A copy the mask's byte stores cannot alias: through ep, its fields                      \
         * were loaded again for every vector. */                                                  \
        const bn_epilogue e = fused ? *ep : (bn_epilogue){0};                                      \
        for (int q = 0; q < ng; q++)                                                               \
            vm[q] = LD(mean + q * VL), va[q] = LD(a + q * VL), vb[q] = LD(b2 + q * VL);            \
        for (size_t r = 0; r < R; r++)                                                             \
            _Pragma("GCC unroll 16") /* UNROLLED_GROUPS */                                         \
                for (int q = 0; q < ng; q++) {                                                     \
                const size_t k = r * F + q * VL;                                                   \
                vf out = BN_NORMALIZE_FOLDED(LD(x + k), vm[q], va[q], vb[q]);                      \
                if (fused) EPI16(&e, &out, o + k);                                                 \
                if (stream)                                                                        \
                    STS(y + k, out);                                                               \
                else                                                                               \
                    ST(y + k, out);                                                                \
            }                                                                                      \
    } while (0)
BN_INLINE void rows_normalize_hoisted(const float *x, float *y, size_t R, int ng, const float *mean,
                                      const float *a, const float *b2, const bn_epilogue *ep,
                                      int fused, size_t o, int stream) {
    NORMALIZE_HOISTED(bn_epilogue16, ST_STREAM);
}
#if BN_K
/* The same with the epilogue in AVX-512's mask registers. */
BN_K_TARGET BN_INLINE void rows_normalize_hoisted_k(const float *x, float *y, size_t R, int ng,
                                                    const float *mean, const float *a,
                                                    const float *b2, const bn_epilogue *ep,
                                                    int fused, size_t o, int stream) {
    NORMALIZE_HOISTED(bn_epilogue16_k, ST_STREAM_K);
}
#endif
#undef NORMALIZE_HOISTED

/* dx with g = dy, or dy masked by the bits of mask from tensor offset o;
 * STS the streaming store. */
#define DX_HOISTED(STS, NG)                                                                        \
    do {                                                                                           \
        vf vm[NG], va[NG], vb[NG], vc[NG];                                                         \
        const size_t F = (size_t)ng * VL;                                                          \
        for (int q = 0; q < ng; q++)                                                               \
            vm[q] = LD(mean + q * VL), va[q] = LD(a + q * VL), vb[q] = LD(b + q * VL),             \
            vc[q] = LD(c + q * VL);                                                                \
        /* Rows of whole vectors fill whole mask bytes (o is a row's start):                       \
         * each vector's bits are two bytes, a step further per row. */                            \
        const uint8_t *mrow = mask ? mask + o / 8 : NULL;                                          \
        for (size_t r = 0; r < R; r++, mrow = mask ? mrow + F / 8 : NULL)                          \
            _Pragma("GCC unroll 16") /* UNROLLED_GROUPS */                                         \
                for (int q = 0; q < ng; q++) {                                                     \
                size_t k = r * F + q * VL;                                                         \
                vf g =                                                                             \
                    mask ? KEEP_LANES(LD(dy + k), mask_bits16(mrow, 16 * (size_t)q)) : LD(dy + k); \
                vf out = BN_DX(LD(x + k), g, vm[q], va[q], vb[q], vc[q]);                          \
                if (stream)                                                                        \
                    STS(dx + k, out);                                                              \
                else                                                                               \
                    ST(dx + k, out);                                                               \
            }                                                                                      \
    } while (0)
BN_INLINE void rows_dx_hoisted(const float *x, const float *dy, const uint8_t *mask, size_t o,
                               float *dx, size_t R, int ng, const float *mean, const float *a,
                               const float *b, const float *c, int stream) {
    DX_HOISTED(ST_STREAM, ROW_GROUPS / 2);
}
#if BN_K
BN_K_TARGET BN_INLINE void rows_dx_hoisted_k(const float *x, const float *dy, const uint8_t *mask,
                                             size_t o, float *dx, size_t R, int ng,
                                             const float *mean, const float *a, const float *b,
                                             const float *c, int stream) {
    DX_HOISTED(ST_STREAM_K, ROW_GROUPS);
}
#endif
#undef DX_HOISTED

size_t bn_rows_backward_width(size_t F) {
    return F <= ROW_FEATURES ? ROW_FEATURES : BN_FEATURE_BLOCK;
}

/* The statistics and backward sums, at 16 lanes and at 8 (simd_width.h):
 * AVX-512 holds the 16-lane sums in registers, AVX2 the 8-lane ones. */
#define BN_W 16
#include "rows_sums.h"
#undef BN_W
#define BN_W 8
#include "rows_sums.h"
#undef BN_W

BN_DISPATCH static void rows_stats(const bn_view *v, const float *x, bn_workspace *ws,
                                   const bn_rows_tile *tl) {
    if (BN_WIDE_VECTORS())
        rows_stats_16(v, x, ws, tl);
    else
        rows_stats_8(v, x, ws, tl);
}

BN_DISPATCH static void rows_backward(const bn_view *v, const float *x, const bn_grad *gr,
                                      float *frozen_dx, bn_workspace *ws, const bn_rows_tile *tl) {
    if (BN_WIDE_VECTORS())
        rows_backward_16(v, x, gr, frozen_dx, ws, tl);
    else
        rows_backward_8(v, x, gr, frozen_dx, ws, tl);
}

/* The bodies of rows_normalize and rows_dx, with EACH the ELEMENTWISE of
 * the level, FUSED its fused form, and HOISTED and HOISTED_DX the level's
 * rows_normalize_hoisted and rows_dx_hoisted. */
#define Y_AT(L, j) BN_NORMALIZE_FOLDED(L(xr, j), L(mean, j), L(scale, j), L(shift_folded, j))
#define NORMALIZE_CASE(ng)                                                                         \
    case 4 * ng: HOISTED(xb, y, R, ng, mean, scale, shift_folded, NULL, 0, o, 0); break;           \
    case 4 * ng + 1: HOISTED(xb, y, R, ng, mean, scale, shift_folded, NULL, 0, o, 1); break;       \
    case 4 * ng + 2: HOISTED(xb, y, R, ng, mean, scale, shift_folded, ep, 1, o, 0); break;         \
    case 4 * ng + 3:                                                                               \
        HOISTED(xb, y, R, ng, mean, scale, shift_folded, ep, 1, o, 1);                             \
        break;
#define ROWS_NORMALIZE(FUSED, EACH)                                                                \
    do {                                                                                           \
        const size_t F = v->features;                                                              \
        const float *mean = ws->mean, *scale = ws->scale, *shift_folded = ws->shift_folded;        \
        /* Below AVX-512 the hoisted coefficients do not fit the registers,                        \
         * and the vectors go 8 lanes at a time: the one-row form. */                              \
        if (BN_WIDE_VECTORS() && F % VL == 0 && F / VL <= ROW_GROUPS &&                            \
            (!stream || STREAM_ALIGNED(y))) {                                                      \
            const float *xb = x + r0 * F;                                                          \
            const size_t R = r1 - r0, o = r0 * F;                                                  \
            switch ((F / VL) * 4 + (ep != NULL) * 2 + (stream != 0)) {                             \
                GROUP_COUNTS_1_TO_8(NORMALIZE_CASE)                                                \
            }                                                                                      \
            return;                                                                                \
        }                                                                                          \
        for (size_t r = r0; r < r1; r++) {                                                         \
            const float *xr = x + r * F;                                                           \
            float *yr = y + (r - r0) * F;                                                          \
            if (ep)                                                                                \
                FUSED(yr, F, r *F, ep, stream, Y_AT);                                              \
            else                                                                                   \
                EACH(yr, F, stream, Y_AT);                                                         \
        }                                                                                          \
    } while (0)

#define ROWS_DX(EACH, NG, COUNTS)                                                                  \
    do {                                                                                           \
        const size_t F = v->features;                                                              \
        const float *dy = gr->dy;                                                                  \
        const uint8_t *mask = gr->mask;                                                            \
        const float *mean = ws->mean, *dy_scale = ws->dy_scale, *xc_scale = ws->xc_scale,          \
                    *dx_offset = ws->dx_offset;                                                    \
        /* Below AVX-512, the vectors go 8 lanes a step: the one-row form. */                      \
        if (BN_WIDE_VECTORS() && F % VL == 0 && F / VL <= (NG) &&                                  \
            (!stream || STREAM_ALIGNED(dx))) {                                                     \
            const size_t o = r0 * F, R = r1 - r0;                                                  \
            /* The plain case with a NULL mask of its own, so that its copies                      \
             * have no test of the mask. */                                                        \
            switch ((F / VL) * 4 + (mask != NULL) * 2 + (stream != 0)) { COUNTS(DX_CASE) }         \
            return;                                                                                \
        }                                                                                          \
        for (size_t r = r0; r < r1; r++) {                                                         \
            const size_t o = r * F;                                                                \
            const float *xr = x + o, *dyr = dy + o;                                                \
            float *dxr = dx + o;                                                                   \
            if (mask)                                                                              \
                EACH(dxr, F, stream, DX_MASKED_AT);                                                \
            else                                                                                   \
                EACH(dxr, F, stream, DX_AT);                                                       \
        }                                                                                          \
    } while (0)
#define DX_CASE(ng)                                                                                \
    case 4 * ng:                                                                                   \
        HOISTED_DX(x + o, dy + o, NULL, 0, dx + o, R, ng, mean, dy_scale, xc_scale, dx_offset, 0); \
        break;                                                                                     \
    case 4 * ng + 1:                                                                               \
        HOISTED_DX(x + o, dy + o, NULL, 0, dx + o, R, ng, mean, dy_scale, xc_scale, dx_offset, 1); \
        break;                                                                                     \
    case 4 * ng + 2:                                                                               \
        HOISTED_DX(x + o, dy + o, mask, o, dx + o, R, ng, mean, dy_scale, xc_scale, dx_offset, 0); \
        break;                                                                                     \
    case 4 * ng + 3:                                                                               \
        HOISTED_DX(x + o, dy + o, mask, o, dx + o, R, ng, mean, dy_scale, xc_scale, dx_offset, 1); \
        break;
#define DX_MASKED_AT(L, j)                                                                         \
    BN_DX(L(xr, j), L##_MASKED(dyr, mask, o, j), L(mean, j), L(dy_scale, j), L(xc_scale, j),       \
          L(dx_offset, j))
#define DX_AT(L, j)                                                                                \
    BN_DX(L(xr, j), L(dyr, j), L(mean, j), L(dy_scale, j), L(xc_scale, j), L(dx_offset, j))

#if BN_K
/* The normalize, fused or streaming, and the streaming dx, in AVX-512's own
 * instructions: the epilogue in mask registers, whole lines stored at once. */
BN_K_TARGET static void rows_normalize_k(const bn_view *v, const float *x, const bn_workspace *ws,
                                         float *y, size_t r0, size_t r1, const bn_epilogue *ep,
                                         int stream) {
#define HOISTED rows_normalize_hoisted_k
    ROWS_NORMALIZE(ELEMENTWISE_FUSED_K, ELEMENTWISE_K);
#undef HOISTED
}
BN_K_TARGET static void rows_dx_k(const bn_view *v, const float *x, const bn_grad *gr,
                                  const bn_workspace *ws, float *dx, size_t r0, size_t r1,
                                  int stream) {
#define HOISTED_DX rows_dx_hoisted_k
    ROWS_DX(ELEMENTWISE_K, ROW_GROUPS, GROUP_COUNTS_1_TO_8);
#undef HOISTED_DX
}
#endif

BN_DISPATCH static void rows_normalize(const bn_view *v, const float *x, const bn_workspace *ws,
                                       float *y, size_t r0, size_t r1, const bn_epilogue *ep,
                                       int stream) {
#if BN_K
    if ((ep || stream) && BN_K_RUNS()) {
        rows_normalize_k(v, x, ws, y, r0, r1, ep, stream);
        return;
    }
#endif
#define HOISTED rows_normalize_hoisted
    ROWS_NORMALIZE(ELEMENTWISE_FUSED, ELEMENTWISE);
#undef HOISTED
}

BN_DISPATCH static void rows_dx(const bn_view *v, const float *x, const bn_grad *gr,
                                const bn_workspace *ws, float *dx, size_t r0, size_t r1,
                                int stream) {
#if BN_K
    if (stream && BN_K_RUNS()) {
        rows_dx_k(v, x, gr, ws, dx, r0, r1, stream);
        return;
    }
#endif
#define HOISTED_DX rows_dx_hoisted
    ROWS_DX(ELEMENTWISE, ROW_GROUPS / 2, GROUP_COUNTS_1_TO_4);
#undef HOISTED_DX
}
#undef ROWS_NORMALIZE
#undef NORMALIZE_CASE
#undef Y_AT
#undef ROWS_DX
#undef DX_CASE
#undef DX_MASKED_AT
#undef DX_AT

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
