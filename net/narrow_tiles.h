/* The tiles of narrow.c, written once for vectors of BN_W lanes
 * (simd_width.h): narrow.c includes this file at 16 lanes (AVX-512's
 * registers) and at 8 (AVX2's), and runs the instance the running copy
 * holds in registers; at 16 lanes below AVX-512, the accumulators lived on
 * the stack. Each output value is summed in the same order at either width
 * (narrow.h). No include guard, by design. */

#include "simd_width.h" /* the vocabulary of width BN_W */

/* MR output pixels of a row, NV vectors of output channels. For each ky
 * and input channel i, the MR + 2 input pixels the tile reads are broadcast
 * once each, and input pixel q serves the three taps that read it:
 * acc[q - kx] += a[q] * w[ky][kx][i]. Per (ky, i): MR + 2 broadcasts and
 * 3 NV loads of weights for 3 MR NV multiply-adds, against one broadcast
 * per NV multiply-adds in a product. At 16 lanes, MR NV accumulators (14
 * for one vector, 14 for two), 3 NV weight vectors and the broadcast fit in
 * AVX-512's registers; a row of 28 takes two 14-pixel tiles, a row of 14 two
 * 7-pixel tiles of two vectors (at 8 lanes: narrow_row below). */
#define ROW_TILE(MR, NV)                                                                           \
    BN_INLINE void WIDTH_NAME(row_tile_##MR##x##NV)(int c, const float *pad, size_t pad_row,       \
                                                    const float *w, size_t oc, float *out) {       \
        VW acc[MR][NV];                                                                            \
        for (int q = 0; q < MR; q++)                                                               \
            for (int v = 0; v < NV; v++)                                                           \
                acc[q][v] = (VW){0};                                                               \
        for (int ky = 0; ky < 3; ky++) {                                                           \
            const float *row = pad + (size_t)ky * pad_row;                                         \
            const float *wk = w + (size_t)ky * 3 * c * oc;                                         \
            for (int i = 0; i < c; i++) {                                                          \
                VW w0[NV], w1[NV], w2[NV];                                                         \
                for (int v = 0; v < NV; v++) {                                                     \
                    w0[v] = LDW(wk + (size_t)i * oc + BN_W * v);                                   \
                    w1[v] = LDW(wk + (size_t)(c + i) * oc + BN_W * v);                             \
                    w2[v] = LDW(wk + (size_t)(2 * c + i) * oc + BN_W * v);                         \
                }                                                                                  \
                _Pragma("GCC unroll 16") for (int q = 0; q < MR + 2; q++) {                        \
                    const VW a = BROADCAST_W(row[(size_t)q * c + i]);                              \
                    for (int v = 0; v < NV; v++) {                                                 \
                        if (q < MR) acc[q][v] += a * w0[v];                                        \
                        if (q >= 1 && q <= MR) acc[q - 1][v] += a * w1[v];                         \
                        if (q >= 2) acc[q - 2][v] += a * w2[v];                                    \
                    }                                                                              \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
        for (int q = 0; q < MR; q++)                                                               \
            for (int v = 0; v < NV; v++)                                                           \
                STW(out + (size_t)q * oc + BN_W * v, acc[q][v]);                                   \
    }

#if BN_W == 16
ROW_TILE(14, 1)
ROW_TILE(8, 1)
ROW_TILE(4, 1)
ROW_TILE(2, 1)
ROW_TILE(1, 1)
ROW_TILE(7, 2)
ROW_TILE(4, 2)
ROW_TILE(2, 2)
ROW_TILE(1, 2)
#else
ROW_TILE(7, 1)
ROW_TILE(4, 1)
ROW_TILE(2, 1)
ROW_TILE(1, 1)
#endif

#define ROW_TILES(MR, NV)                                                                          \
    for (; x + MR <= ow; x += MR)                                                                  \
        WIDTH_NAME(row_tile_##MR##x##NV)                                                           \
    (c, pad + (size_t)x * c, pad_row, w + j, (size_t)oc, out + (size_t)x * oc + j);

/* At 16 lanes, blocks of 32 output channels, then one of 16; at 8 lanes,
 * one vector of 8 channels at a time, in tiles of 7 pixels: a row of 28 or
 * 14 splits evenly, and 7 accumulators beside 3 weight vectors leave AVX2's
 * registers room (12-pixel tiles spilled, and ran at 61-72 GFLOP/s against
 * 72-74 on the Zen 3, bench_gemm's direct column). */
BN_INLINE void WIDTH_NAME(narrow_row)(int ow, int c, int oc, const float *pad, size_t pad_row,
                                      const float *w, float *out) {
    int j = 0;
#if BN_W == 16
    for (; j + 2 * VL <= oc; j += 2 * VL) {
        int x = 0;
        ROW_TILES(7, 2)
        ROW_TILES(4, 2)
        ROW_TILES(2, 2)
        ROW_TILES(1, 2)
    }
    if (j < oc) {
        int x = 0;
        ROW_TILES(14, 1)
        ROW_TILES(8, 1)
        ROW_TILES(4, 1)
        ROW_TILES(2, 1)
        ROW_TILES(1, 1)
    }
#else
    for (; j < oc; j += BN_W) {
        int x = 0;
        ROW_TILES(7, 1)
        ROW_TILES(4, 1)
        ROW_TILES(2, 1)
        ROW_TILES(1, 1)
    }
#endif
}

/* The weight gradient of one ky, IB input channels and NV vectors of
 * output channels: input pixel q of a padded row, its IB channels broadcast
 * once each, meets the output gradient of the three pixels q - kx that read
 * it through tap kx: acc[kx][i] += a[q][i] * g[q - kx]. Per pixel: IB
 * broadcasts and 3 NV loads of g for 3 IB NV multiply-adds (24
 * accumulators). In the first two and last two pixels of a row some of the
 * three pixels q - kx are outside it. */
#define WEIGHT_TILE(IB, NV)                                                                        \
    BN_INLINE void WIDTH_NAME(weight_tile_##IB##x##NV)(int oh, int ow, int c, const float *pad,    \
                                                       size_t pad_row, const float *g, size_t oc,  \
                                                       float beta, float *dw) {                    \
        VW acc[3][IB][NV];                                                                         \
        for (int k = 0; k < 3; k++)                                                                \
            for (int i = 0; i < IB; i++)                                                           \
                for (int v = 0; v < NV; v++)                                                       \
                    acc[k][i][v] = (VW){0};                                                        \
        for (int y = 0; y < oh; y++) {                                                             \
            const float *prow = pad + (size_t)y * pad_row, *grow = g + (size_t)y * ow * oc;        \
            for (int q = 0; q < ow + 2; q++) {                                                     \
                if (q == 2) {                                                                      \
                    for (; q < ow; q++) {                                                          \
                        const float *a = prow + (size_t)q * c;                                     \
                        VW g0[NV], g1[NV], g2[NV];                                                 \
                        for (int v = 0; v < NV; v++) {                                             \
                            g0[v] = LDW(grow + (size_t)q * oc + BN_W * v);                         \
                            g1[v] = LDW(grow + (size_t)(q - 1) * oc + BN_W * v);                   \
                            g2[v] = LDW(grow + (size_t)(q - 2) * oc + BN_W * v);                   \
                        }                                                                          \
                        for (int i = 0; i < IB; i++) {                                             \
                            const VW av = BROADCAST_W(a[i]);                                       \
                            for (int v = 0; v < NV; v++) {                                         \
                                acc[0][i][v] += av * g0[v];                                        \
                                acc[1][i][v] += av * g1[v];                                        \
                                acc[2][i][v] += av * g2[v];                                        \
                            }                                                                      \
                        }                                                                          \
                    }                                                                              \
                }                                                                                  \
                const float *a = prow + (size_t)q * c;                                             \
                for (int k = 0; k < 3; k++) {                                                      \
                    if (q - k < 0 || q - k >= ow) continue;                                        \
                    for (int v = 0; v < NV; v++) {                                                 \
                        const VW gk = LDW(grow + (size_t)(q - k) * oc + BN_W * v);                 \
                        for (int i = 0; i < IB; i++)                                               \
                            acc[k][i][v] += BROADCAST_W(a[i]) * gk;                                \
                    }                                                                              \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
        for (int k = 0; k < 3; k++)                                                                \
            for (int i = 0; i < IB; i++)                                                           \
                for (int v = 0; v < NV; v++) {                                                     \
                    float *d = dw + ((size_t)k * c + i) * oc + BN_W * v;                           \
                    VW out = acc[k][i][v];                                                         \
                    if (beta != 0.0f) out += beta * LDW(d);                                        \
                    STW(d, out);                                                                   \
                }                                                                                  \
    }

#if BN_W == 16
WEIGHT_TILE(8, 1)
WEIGHT_TILE(4, 1)
WEIGHT_TILE(2, 1)
WEIGHT_TILE(1, 1)
WEIGHT_TILE(4, 2)
WEIGHT_TILE(2, 2)
WEIGHT_TILE(1, 2)
#else
WEIGHT_TILE(4, 1)
WEIGHT_TILE(2, 1)
WEIGHT_TILE(1, 1)
#endif

#define WEIGHT_TILES(IB, NV)                                                                       \
    for (; i + IB <= c; i += IB)                                                                   \
        WIDTH_NAME(weight_tile_##IB##x##NV)                                                        \
    (oh, ow, c, p + i, pad_row, g + j, (size_t)oc, beta, d + (size_t)i * oc + j);

/* At 16 lanes, blocks of 32 output channels, then one of 16; at 8 lanes,
 * one vector at a time (4 input channels by one vector: 12 accumulators). */
BN_INLINE void WIDTH_NAME(narrow_weight_gradient)(int oh, int ow, int c, int oc, const float *pad,
                                                  size_t pad_row, const float *g, float beta,
                                                  float *dw) {
    for (int ky = 0; ky < 3; ky++) {
        const float *p = pad + (size_t)ky * pad_row;
        float *d = dw + (size_t)ky * 3 * c * oc;
        int j = 0;
#if BN_W == 16
        for (; j + 2 * VL <= oc; j += 2 * VL) {
            int i = 0;
            WEIGHT_TILES(4, 2)
            WEIGHT_TILES(2, 2)
            WEIGHT_TILES(1, 2)
        }
        if (j < oc) {
            int i = 0;
            WEIGHT_TILES(8, 1)
            WEIGHT_TILES(4, 1)
            WEIGHT_TILES(2, 1)
            WEIGHT_TILES(1, 1)
        }
#else
        for (; j < oc; j += BN_W) {
            int i = 0;
            WEIGHT_TILES(4, 1)
            WEIGHT_TILES(2, 1)
            WEIGHT_TILES(1, 1)
        }
#endif
    }
}

#undef ROW_TILE
#undef ROW_TILES
#undef WEIGHT_TILE
#undef WEIGHT_TILES
