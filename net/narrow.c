/* Direct 3x3 convolutions to 16 channels (narrow.h). */
#include "narrow.h"

#include "simd.h"

/* Every lane s, as gemm.c broadcasts (no addition to a zero vector). */
#define BCAST(s)                                                                                   \
    ((vf){(s), (s), (s), (s), (s), (s), (s), (s), (s), (s), (s), (s), (s), (s), (s), (s)})

/* MR output pixels of a row. For each ky and input channel i, the MR + 2
 * input pixels the tile reads are broadcast once each, and input pixel q
 * serves the three taps that read it: acc[q - kx] += a[q] * w[ky][kx][i].
 * Per (ky, i): MR + 2 broadcasts and three loads of weights for 3 MR
 * multiply-adds, against one broadcast per multiply-add in a product whose
 * C is one vector wide. 14 accumulators, the three weight vectors and the
 * broadcast leave registers to spare; a row of 28 takes two tiles. */
#define ROW_TILE(MR)                                                                               \
    BN_INLINE void row_tile_##MR(int c, const float *pad, size_t pad_row, const float *w,          \
                                 float *out) {                                                     \
        vf acc[MR];                                                                                \
        for (int q = 0; q < MR; q++)                                                               \
            acc[q] = (vf){0};                                                                      \
        for (int ky = 0; ky < 3; ky++) {                                                           \
            const float *row = pad + (size_t)ky * pad_row;                                         \
            const float *wk = w + (size_t)ky * 3 * c * VL;                                         \
            for (int i = 0; i < c; i++) {                                                          \
                const vf w0 = LD(wk + (size_t)i * VL), w1 = LD(wk + (size_t)(c + i) * VL),         \
                         w2 = LD(wk + (size_t)(2 * c + i) * VL);                                   \
                _Pragma("GCC unroll 16") for (int q = 0; q < MR + 2; q++) {                        \
                    const vf a = BCAST(row[(size_t)q * c + i]);                                    \
                    if (q < MR) acc[q] += a * w0;                                                  \
                    if (q >= 1 && q <= MR) acc[q - 1] += a * w1;                                   \
                    if (q >= 2) acc[q - 2] += a * w2;                                              \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
        for (int q = 0; q < MR; q++)                                                               \
            ST(out + (size_t)q * VL, acc[q]);                                                      \
    }

ROW_TILE(14)
ROW_TILE(8)
ROW_TILE(4)
ROW_TILE(2)
ROW_TILE(1)

BN_DISPATCH static void narrow_row(int ow, int c, const float *pad, size_t pad_row, const float *w,
                                   float *out) {
    int x = 0;
    for (; x + 14 <= ow; x += 14)
        row_tile_14(c, pad + (size_t)x * c, pad_row, w, out + (size_t)x * VL);
    for (; x + 8 <= ow; x += 8)
        row_tile_8(c, pad + (size_t)x * c, pad_row, w, out + (size_t)x * VL);
    for (; x + 4 <= ow; x += 4)
        row_tile_4(c, pad + (size_t)x * c, pad_row, w, out + (size_t)x * VL);
    for (; x + 2 <= ow; x += 2)
        row_tile_2(c, pad + (size_t)x * c, pad_row, w, out + (size_t)x * VL);
    for (; x < ow; x++)
        row_tile_1(c, pad + (size_t)x * c, pad_row, w, out + (size_t)x * VL);
}

void nn_narrow_row(int ow, int c, const float *pad, size_t pad_row, const float *w, float *out) {
    if (ow > 0 && c > 0) narrow_row(ow, c, pad, pad_row, w, out);
}

/* The weight gradient of one ky and IB input channels: input pixel q of a
 * padded row, its IB channels broadcast once each, meets the output
 * gradient of the three pixels q - kx that read it through tap kx:
 * acc[kx][i] += a[q][i] * g[q - kx]. Per pixel: IB broadcasts and three
 * loads of g for 3 IB multiply-adds. In the first two and last two pixels
 * of a row some of the three pixels q - kx are outside it. */
#define WEIGHT_TILE(IB)                                                                            \
    BN_INLINE void weight_tile_##IB(int oh, int ow, int c, const float *pad, size_t pad_row,       \
                                    const float *g, float beta, float *dw) {                       \
        vf acc[3][IB];                                                                             \
        for (int k = 0; k < 3; k++)                                                                \
            for (int i = 0; i < IB; i++)                                                           \
                acc[k][i] = (vf){0};                                                               \
        for (int y = 0; y < oh; y++) {                                                             \
            const float *prow = pad + (size_t)y * pad_row, *grow = g + (size_t)y * ow * VL;        \
            int q = 0;                                                                             \
            for (; q < ow + 2; q++) {                                                              \
                if (q == 2 && ow > 2) {                                                            \
                    for (; q < ow; q++) {                                                          \
                        const float *a = prow + (size_t)q * c;                                     \
                        const vf g0 = LD(grow + (size_t)q * VL),                                   \
                                 g1 = LD(grow + (size_t)(q - 1) * VL),                             \
                                 g2 = LD(grow + (size_t)(q - 2) * VL);                             \
                        for (int i = 0; i < IB; i++) {                                             \
                            const vf av = BCAST(a[i]);                                             \
                            acc[0][i] += av * g0;                                                  \
                            acc[1][i] += av * g1;                                                  \
                            acc[2][i] += av * g2;                                                  \
                        }                                                                          \
                    }                                                                              \
                }                                                                                  \
                const float *a = prow + (size_t)q * c;                                             \
                for (int k = 0; k < 3; k++) {                                                      \
                    if (q - k < 0 || q - k >= ow) continue;                                        \
                    const vf gk = LD(grow + (size_t)(q - k) * VL);                                 \
                    for (int i = 0; i < IB; i++)                                                   \
                        acc[k][i] += BCAST(a[i]) * gk;                                             \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
        for (int k = 0; k < 3; k++)                                                                \
            for (int i = 0; i < IB; i++) {                                                         \
                float *d = dw + ((size_t)k * c + i) * VL;                                          \
                vf v = acc[k][i];                                                                  \
                if (beta != 0.0f) v += beta * LD(d);                                               \
                ST(d, v);                                                                          \
            }                                                                                      \
    }

WEIGHT_TILE(8)
WEIGHT_TILE(4)
WEIGHT_TILE(2)
WEIGHT_TILE(1)

BN_DISPATCH static void narrow_weight_gradient(int oh, int ow, int c, const float *pad,
                                               size_t pad_row, const float *g, float beta,
                                               float *dw) {
    for (int ky = 0; ky < 3; ky++) {
        const float *p = pad + (size_t)ky * pad_row;
        float *d = dw + (size_t)ky * 3 * c * VL;
        int i = 0;
        for (; i + 8 <= c; i += 8)
            weight_tile_8(oh, ow, c, p + i, pad_row, g, beta, d + (size_t)i * VL);
        for (; i + 4 <= c; i += 4)
            weight_tile_4(oh, ow, c, p + i, pad_row, g, beta, d + (size_t)i * VL);
        for (; i + 2 <= c; i += 2)
            weight_tile_2(oh, ow, c, p + i, pad_row, g, beta, d + (size_t)i * VL);
        for (; i < c; i++)
            weight_tile_1(oh, ow, c, p + i, pad_row, g, beta, d + (size_t)i * VL);
    }
}

void nn_narrow_weight_gradient(int oh, int ow, int c, const float *pad, size_t pad_row,
                               const float *g, float beta, float *dw) {
    if (oh > 0 && ow > 0 && c > 0) narrow_weight_gradient(oh, ow, c, pad, pad_row, g, beta, dw);
}
