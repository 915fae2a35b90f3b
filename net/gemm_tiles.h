/* The register tiles of gemm.c and the blocks of columns they make up,
 * written once for vectors of BN_W lanes (simd_width.h): gemm.c includes
 * this file at 16 lanes, the width of AVX-512's registers, and at 8, that
 * of AVX2's, and runs the instance the running copy holds in registers.
 * Below AVX-512 the 16-lane tiles' accumulators (24 vectors of 16, or 48
 * AVX2 registers' worth) lived on the stack, and the products ran at a
 * tenth to a twentieth of OpenBLAS's rate (docs/PERFORMANCE.md).
 *
 * Each element of C is summed the same way at either width: how depends
 * on its column's block (64, 32 or 16 columns wide), never on the tile or
 * the width that computes it. No include guard, by design. */

#include "simd_width.h" /* the vocabulary of width BN_W */

/* The tiles of each width: MR rows by NV vectors, W_64_* and W_32_* for the
 * 64- and 32-wide blocks, W_PAIRS_MR for the 16-wide one (COLUMN_BLOCK puts
 * as many side by side as the block needs).
 * At 16 lanes: 24 accumulators, as many as leave room in AVX-512's 32
 * registers for B's row and the broadcast of A. At 8 lanes: 12, beside 2
 * of B and 1 of A in AVX2's 16. */
#if BN_W == 16
#define W_64_MR    6
#define W_64_NV    4
#define W_32_MR    12
#define W_32_NV    2
#define W_PAIRS_MR 14
#else
#define W_64_MR    6
#define W_64_NV    2
#define W_32_MR    6
#define W_32_NV    2
#define W_PAIRS_MR 6
#endif

/* Tiles of MR rows by NV vectors of C. Each step of the sum loads NV vectors
 * of B and MR floats of A for MR x NV fused multiply-adds; the widest tile
 * loads least per multiply-add, so a row of C is cut into 64-wide blocks
 * first. */
#define TILE(MR, NV)                                                                               \
    BN_INLINE void WIDTH_NAME(tile_##MR##x##NV)(a_runs ar, const float *a, size_t a_row,           \
                                                const float *b, size_t ldb, float beta, float *c,  \
                                                size_t ldc) {                                      \
        VW acc[MR][NV];                                                                            \
        for (int r = 0; r < MR; r++)                                                               \
            for (int v = 0; v < NV; v++)                                                           \
                acc[r][v] = (VW){0};                                                               \
        for (int s = 0; s < ar.runs; s++) {                                                        \
            const float *as = a + (size_t)s * ar.run_stride;                                       \
            const float *bs = b + (size_t)s * ar.len * ldb;                                        \
            for (int p = 0; p < ar.len; p++) {                                                     \
                const float *bp = bs + (size_t)p * ldb, *ap = as + (size_t)p * ar.a_col;           \
                VW bv[NV];                                                                         \
                for (int v = 0; v < NV; v++)                                                       \
                    bv[v] = LDW(bp + BN_W * v);                                                    \
                for (int r = 0; r < MR; r++) {                                                     \
                    const float ar_s = ap[(size_t)r * a_row];                                      \
                    VW av = BROADCAST_W(ar_s);                                                     \
                    for (int v = 0; v < NV; v++)                                                   \
                        acc[r][v] += av * bv[v];                                                   \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
        for (int r = 0; r < MR; r++)                                                               \
            for (int v = 0; v < NV; v++) {                                                         \
                float *cr = c + (size_t)r * ldc + BN_W * v;                                        \
                VW out = acc[r][v];                                                                \
                if (beta != 0.0f) out += beta * LDW(cr);                                           \
                STW(cr, out);                                                                      \
            }                                                                                      \
    }

/* One vector of columns of the 16-wide block (a C 16 wide, or the last 16
 * columns of a wider one): with a single B vector per step, each
 * multiply-add needs its own broadcast of A, and 24 rows a step ran at
 * about half the rate of the wider tiles. Two steps at a time, even and odd
 * p in two sets of accumulators added at the end, ran 1.5x faster. Every
 * tile of this block sums that way, so a row's result does not depend on
 * its tile. */
#define TILE_PAIRS(MR)                                                                             \
    BN_INLINE void WIDTH_NAME(tile_##MR##x1)(a_runs ar, const float *a, size_t a_row,              \
                                             const float *b, size_t ldb, float beta, float *c,     \
                                             size_t ldc) {                                         \
        VW even[MR], odd[MR];                                                                      \
        for (int r = 0; r < MR; r++)                                                               \
            even[r] = (VW){0}, odd[r] = (VW){0};                                                   \
        const size_t a_col = ar.a_col;                                                             \
        for (int s = 0; s < ar.runs; s++) {                                                        \
            const float *as = a + (size_t)s * ar.run_stride;                                       \
            const float *bs = b + (size_t)s * ar.len * ldb;                                        \
            int p = 0;                                                                             \
            for (; p + 1 < ar.len; p += 2) {                                                       \
                const float *ap = as + (size_t)p * a_col;                                          \
                VW b0 = LDW(bs + (size_t)p * ldb), b1 = LDW(bs + (size_t)(p + 1) * ldb);           \
                for (int r = 0; r < MR; r++) {                                                     \
                    const float a0 = ap[(size_t)r * a_row], a1 = ap[(size_t)r * a_row + a_col];    \
                    even[r] += BROADCAST_W(a0) * b0;                                               \
                    odd[r] += BROADCAST_W(a1) * b1;                                                \
                }                                                                                  \
            }                                                                                      \
            if (p < ar.len) {                                                                      \
                VW b0 = LDW(bs + (size_t)p * ldb);                                                 \
                for (int r = 0; r < MR; r++) {                                                     \
                    const float a0 = as[(size_t)p * a_col + (size_t)r * a_row];                    \
                    even[r] += BROADCAST_W(a0) * b0;                                               \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
        for (int r = 0; r < MR; r++) {                                                             \
            float *cr = c + (size_t)r * ldc;                                                       \
            VW out = even[r] + odd[r];                                                             \
            if (beta != 0.0f) out += beta * LDW(cr);                                               \
            STW(cr, out);                                                                          \
        }                                                                                          \
    }

#if BN_W == 16
TILE(6, 4)
TILE(12, 2)
TILE(7, 2)
TILE_PAIRS(14)
TILE(4, 4)
TILE(4, 2)
TILE_PAIRS(4)
TILE(2, 4)
TILE(2, 2)
TILE_PAIRS(2)
TILE(1, 4)
TILE(1, 2)
TILE_PAIRS(1)
#else
TILE(6, 2)
TILE(7, 2)
TILE_PAIRS(6)
TILE(4, 2)
TILE_PAIRS(4)
TILE(2, 2)
TILE_PAIRS(2)
TILE(1, 2)
TILE_PAIRS(1)
#endif

/* The last n % 16 columns: B's edge copied, a block of rows at a time, into
 * whole vectors whose lanes past n are zero (a vector load of B's own rows
 * could read past its end); each block's sums are added into C. */
BN_INLINE void WIDTH_NAME(edge_columns)(int m, int w, int k, const float *a, size_t a_row,
                                        size_t a_col, const float *b, size_t ldb, float beta,
                                        float *c, size_t ldc) {
    float pad[EDGE_ROWS][VL];
    for (int p0 = 0; p0 == 0 || p0 < k; p0 += EDGE_ROWS) {
        int rows = k - p0 < EDGE_ROWS ? k - p0 : EDGE_ROWS;
        for (int p = 0; p < rows; p++) {
            memset(pad[p], 0, sizeof pad[p]);
            memcpy(pad[p], b + (size_t)(p0 + p) * ldb, (size_t)w * sizeof(float));
        }
        for (int i = 0; i < m; i++) {
            const float *ai = a + (size_t)i * a_row + (size_t)p0 * a_col;
            VW acc[PARTS];
            for (int h = 0; h < PARTS; h++)
                acc[h] = (VW){0};
            for (int p = 0; p < rows; p++)
                for (int h = 0; h < PARTS; h++)
                    acc[h] += BROADCAST_W(ai[(size_t)p * a_col]) * LDW(pad[p] + BN_W * h);
            float out[VL], *ci = c + (size_t)i * ldc;
            for (int h = 0; h < PARTS; h++)
                STW(out + BN_W * h, acc[h]);
            for (int j = 0; j < w; j++)
                ci[j] = p0 > 0 ? ci[j] + out[j] : beta == 0.0f ? out[j] : out[j] + beta * ci[j];
        }
    }
}

/* All rows of C against one block of SUB x NV vectors of columns, SUB
 * column tiles one after another: each tile's block of B (k x NV vectors)
 * stays in cache while A's rows stream past it. The rows left over after
 * the last whole tile go in tiles of 4, 2 and 1 rows. */
#define COLUMN_BLOCK(NAME, MR, NV, SUB)                                                            \
    BN_INLINE void WIDTH_NAME(NAME)(int m, a_runs ar, const float *a, size_t a_row,                \
                                    const float *b, size_t ldb, float beta, float *c,              \
                                    size_t ldc) {                                                  \
        if (NV > 1 && sevens(m, MR)) {                                                             \
            for (int i = 0; i < m; i += 7)                                                         \
                for (int v = 0; v < NV * SUB; v += 2)                                              \
                    WIDTH_NAME(tile_7x2)                                                           \
            (ar, a + (size_t)i * a_row, a_row, b + BN_W * v, ldb, beta,                            \
             c + (size_t)i * ldc + BN_W * v, ldc);                                                 \
            return;                                                                                \
        }                                                                                          \
        for (int t = 0; t < SUB; t++) {                                                            \
            const float *bt = b + BN_W * NV * t;                                                   \
            float *ct = c + BN_W * NV * t;                                                         \
            int i = 0;                                                                             \
            for (; i + MR <= m; i += MR)                                                           \
                WIDTH_NAME(tile_##MR##x##NV)                                                       \
            (ar, a + (size_t)i * a_row, a_row, bt, ldb, beta, ct + (size_t)i * ldc, ldc);          \
            for (; i + 4 <= m; i += 4)                                                             \
                WIDTH_NAME(tile_4x##NV)                                                            \
            (ar, a + (size_t)i * a_row, a_row, bt, ldb, beta, ct + (size_t)i * ldc, ldc);          \
            for (; i + 2 <= m; i += 2)                                                             \
                WIDTH_NAME(tile_2x##NV)                                                            \
            (ar, a + (size_t)i * a_row, a_row, bt, ldb, beta, ct + (size_t)i * ldc, ldc);          \
            for (; i < m; i++)                                                                     \
                WIDTH_NAME(tile_1x##NV)                                                            \
            (ar, a + (size_t)i * a_row, a_row, bt, ldb, beta, ct + (size_t)i * ldc, ldc);          \
        }                                                                                          \
    }

/* The blocks 64, 32 and 16 columns wide, the last of even and odd sums. A
 * level of indirection, so that the tile shapes expand before they paste. */
#define COLUMN_BLOCK_OF(NAME, MR, NV, SUB) COLUMN_BLOCK(NAME, MR, NV, SUB)
COLUMN_BLOCK_OF(block_64, W_64_MR, W_64_NV, 4 * 16 / (W_64_NV * BN_W))
COLUMN_BLOCK_OF(block_32, W_32_MR, W_32_NV, 2 * 16 / (W_32_NV * BN_W))
COLUMN_BLOCK_OF(block_16, W_PAIRS_MR, 1, 16 / BN_W)

/* C = A B over A's runs; the last n % 16 columns need runs == 1. */
BN_INLINE void WIDTH_NAME(gemm_body)(int m, int n, a_runs ar, const float *a, size_t a_row,
                                     const float *b, size_t ldb, float beta, float *c, size_t ldc) {
    int j = 0;
    for (; j + 64 <= n; j += 64)
        WIDTH_NAME(block_64)(m, ar, a, a_row, b + j, ldb, beta, c + j, ldc);
    if (j + 32 <= n) {
        WIDTH_NAME(block_32)(m, ar, a, a_row, b + j, ldb, beta, c + j, ldc);
        j += 32;
    }
    if (j + 16 <= n) {
        WIDTH_NAME(block_16)(m, ar, a, a_row, b + j, ldb, beta, c + j, ldc);
        j += 16;
    }
    if (j < n) WIDTH_NAME(edge_columns)
    (m, n - j, ar.len, a, a_row, ar.a_col, b + j, ldb, beta, c + j, ldc);
}

#undef TILE
#undef TILE_PAIRS
#undef COLUMN_BLOCK
#undef COLUMN_BLOCK_OF
#undef W_64_MR
#undef W_64_NV
#undef W_32_MR
#undef W_32_NV
#undef W_PAIRS_MR
