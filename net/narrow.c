/* Direct 3x3 convolutions to 16 channels (narrow.h). */
#include "narrow.h"

#include "simd.h"

/* Every lane s, as gemm.c broadcasts (no addition to a zero vector). */
#define BCAST(s)                                                                                   \
    ((vf){(s), (s), (s), (s), (s), (s), (s), (s), (s), (s), (s), (s), (s), (s), (s), (s)})

/* MR output pixels of a row, NV vectors of output channels. For each ky
 * and input channel i, the MR + 2 input pixels the tile reads are broadcast
 * once each, and input pixel q serves the three taps that read it:
 * acc[q - kx] += a[q] * w[ky][kx][i]. Per (ky, i): MR + 2 broadcasts and
 * 3 NV loads of weights for 3 MR NV multiply-adds, against one broadcast
 * per NV multiply-adds in a product. MR NV accumulators (14 for one
 * vector, 14 for two), 3 NV weight vectors and the broadcast fit in the
 * registers; a row of 28 takes two 14-pixel tiles, a row of 14 two 7-pixel
 * tiles of two vectors. */
#define ROW_TILE(MR, NV)                                                                           \
    BN_INLINE void row_tile_##MR##x##NV(int c, const float *pad, size_t pad_row, const float *w,   \
                                        size_t oc, float *out) {                                   \
        vf acc[MR][NV];                                                                            \
        for (int q = 0; q < MR; q++)                                                               \
            for (int v = 0; v < NV; v++)                                                           \
                acc[q][v] = (vf){0};                                                               \
        for (int ky = 0; ky < 3; ky++) {                                                           \
            const float *row = pad + (size_t)ky * pad_row;                                         \
            const float *wk = w + (size_t)ky * 3 * c * oc;                                         \
            for (int i = 0; i < c; i++) {                                                          \
                vf w0[NV], w1[NV], w2[NV];                                                         \
                for (int v = 0; v < NV; v++) {                                                     \
                    w0[v] = LD(wk + (size_t)i * oc + VL * v);                                      \
                    w1[v] = LD(wk + (size_t)(c + i) * oc + VL * v);                                \
                    w2[v] = LD(wk + (size_t)(2 * c + i) * oc + VL * v);                            \
                }                                                                                  \
                _Pragma("GCC unroll 16") for (int q = 0; q < MR + 2; q++) {                        \
                    const vf a = BCAST(row[(size_t)q * c + i]);                                    \
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
                ST(out + (size_t)q * oc + VL * v, acc[q][v]);                                      \
    }

ROW_TILE(14, 1)
ROW_TILE(8, 1)
ROW_TILE(4, 1)
ROW_TILE(2, 1)
ROW_TILE(1, 1)
ROW_TILE(7, 2)
ROW_TILE(4, 2)
ROW_TILE(2, 2)
ROW_TILE(1, 2)

#define ROW_TILES(MR, NV)                                                                          \
    for (; x + MR <= ow; x += MR)                                                                  \
        row_tile_##MR##x##NV(c, pad + (size_t)x * c, pad_row, w + j, (size_t)oc,                   \
                             out + (size_t)x * oc + j);

/* Blocks of 32 output channels, then one of 16. */
BN_DISPATCH static void narrow_row(int ow, int c, int oc, const float *pad, size_t pad_row,
                                   const float *w, float *out) {
    int j = 0;
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
}

void nn_narrow_row(int ow, int c, int oc, const float *pad, size_t pad_row, const float *w,
                   float *out) {
    if (ow > 0 && c > 0 && oc > 0 && oc % VL == 0) narrow_row(ow, c, oc, pad, pad_row, w, out);
}

/* The weight gradient of one ky, IB input channels and NV vectors of
 * output channels: input pixel q of a padded row, its IB channels broadcast
 * once each, meets the output gradient of the three pixels q - kx that read
 * it through tap kx: acc[kx][i] += a[q][i] * g[q - kx]. Per pixel: IB
 * broadcasts and 3 NV loads of g for 3 IB NV multiply-adds (24
 * accumulators). In the first two and last two pixels of a row some of the
 * three pixels q - kx are outside it. */
#define WEIGHT_TILE(IB, NV)                                                                        \
    BN_INLINE void weight_tile_##IB##x##NV(int oh, int ow, int c, const float *pad,                \
                                           size_t pad_row, const float *g, size_t oc, float beta,  \
                                           float *dw) {                                            \
        vf acc[3][IB][NV];                                                                         \
        for (int k = 0; k < 3; k++)                                                                \
            for (int i = 0; i < IB; i++)                                                           \
                for (int v = 0; v < NV; v++)                                                       \
                    acc[k][i][v] = (vf){0};                                                        \
        for (int y = 0; y < oh; y++) {                                                             \
            const float *prow = pad + (size_t)y * pad_row, *grow = g + (size_t)y * ow * oc;        \
            for (int q = 0; q < ow + 2; q++) {                                                     \
                if (q == 2) {                                                                      \
                    for (; q < ow; q++) {                                                          \
                        const float *a = prow + (size_t)q * c;                                     \
                        vf g0[NV], g1[NV], g2[NV];                                                 \
                        for (int v = 0; v < NV; v++) {                                             \
                            g0[v] = LD(grow + (size_t)q * oc + VL * v);                            \
                            g1[v] = LD(grow + (size_t)(q - 1) * oc + VL * v);                      \
                            g2[v] = LD(grow + (size_t)(q - 2) * oc + VL * v);                      \
                        }                                                                          \
                        for (int i = 0; i < IB; i++) {                                             \
                            const vf av = BCAST(a[i]);                                             \
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
                        const vf gk = LD(grow + (size_t)(q - k) * oc + VL * v);                    \
                        for (int i = 0; i < IB; i++)                                               \
                            acc[k][i][v] += BCAST(a[i]) * gk;                                      \
                    }                                                                              \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
        for (int k = 0; k < 3; k++)                                                                \
            for (int i = 0; i < IB; i++)                                                           \
                for (int v = 0; v < NV; v++) {                                                     \
                    float *d = dw + ((size_t)k * c + i) * oc + VL * v;                             \
                    vf out = acc[k][i][v];                                                         \
                    if (beta != 0.0f) out += beta * LD(d);                                         \
                    ST(d, out);                                                                    \
                }                                                                                  \
    }

WEIGHT_TILE(8, 1)
WEIGHT_TILE(4, 1)
WEIGHT_TILE(2, 1)
WEIGHT_TILE(1, 1)
WEIGHT_TILE(4, 2)
WEIGHT_TILE(2, 2)
WEIGHT_TILE(1, 2)

#define WEIGHT_TILES(IB, NV)                                                                       \
    for (; i + IB <= c; i += IB)                                                                   \
        weight_tile_##IB##x##NV(oh, ow, c, p + i, pad_row, g + j, (size_t)oc, beta,                \
                                d + (size_t)i * oc + j);

BN_DISPATCH static void narrow_weight_gradient(int oh, int ow, int c, int oc, const float *pad,
                                               size_t pad_row, const float *g, float beta,
                                               float *dw) {
    for (int ky = 0; ky < 3; ky++) {
        const float *p = pad + (size_t)ky * pad_row;
        float *d = dw + (size_t)ky * 3 * c * oc;
        int j = 0;
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
    }
}

void nn_narrow_weight_gradient(int oh, int ow, int c, int oc, const float *pad, size_t pad_row,
                               const float *g, float beta, float *dw) {
    if (oh > 0 && ow > 0 && c > 0 && oc > 0 && oc % VL == 0)
        narrow_weight_gradient(oh, ow, c, oc, pad, pad_row, g, beta, dw);
}
