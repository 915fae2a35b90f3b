/* The convolutions' matrix products (gemm.h): register tiles of C, each
 * summed over all of k in one sweep. */
#include "gemm.h"

#include <cblas.h>
#include <string.h>

#include "simd.h"

/* Every lane s. (simd.h's SPLAT adds s to a zero vector, which costs an
 * addition per broadcast: here one per multiply-add of the narrow tiles.) */
#define BCAST(s)                                                                                   \
    ((vf){(s), (s), (s), (s), (s), (s), (s), (s), (s), (s), (s), (s), (s), (s), (s), (s)})

/* Where A's values lie: row i's k = runs * len values are `runs` runs of
 * len, run s starting at a + i * a_row + s * run_stride, its values a_col
 * apart (an ordinary matrix is one run of k). */
typedef struct {
    int runs, len;
    size_t run_stride, a_col;
} a_runs;

/* Tiles of MR rows by NV vectors of C: 24 accumulators, as many as leave
 * room in AVX-512's 32 registers for B's row and the broadcast of A. Each
 * step of the sum loads NV vectors of B and MR floats of A for MR x NV fused
 * multiply-adds; the widest tile loads least per multiply-add, so a row of
 * C is cut into 64-wide tiles first. */
#define TILE(MR, NV)                                                                               \
    BN_INLINE void tile_##MR##x##NV(a_runs ar, const float *a, size_t a_row, const float *b,       \
                                    size_t ldb, float beta, float *c, size_t ldc) {                \
        vf acc[MR][NV];                                                                            \
        for (int r = 0; r < MR; r++)                                                               \
            for (int v = 0; v < NV; v++)                                                           \
                acc[r][v] = (vf){0};                                                               \
        for (int s = 0; s < ar.runs; s++) {                                                        \
            const float *as = a + (size_t)s * ar.run_stride;                                       \
            const float *bs = b + (size_t)s * ar.len * ldb;                                        \
            for (int p = 0; p < ar.len; p++) {                                                     \
                const float *bp = bs + (size_t)p * ldb, *ap = as + (size_t)p * ar.a_col;           \
                vf bv[NV];                                                                         \
                for (int v = 0; v < NV; v++)                                                       \
                    bv[v] = LD(bp + VL * v);                                                       \
                for (int r = 0; r < MR; r++) {                                                     \
                    const float ar_s = ap[(size_t)r * a_row];                                      \
                    vf av = BCAST(ar_s);                                                           \
                    for (int v = 0; v < NV; v++)                                                   \
                        acc[r][v] += av * bv[v];                                                   \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
        for (int r = 0; r < MR; r++)                                                               \
            for (int v = 0; v < NV; v++) {                                                         \
                float *cr = c + (size_t)r * ldc + VL * v;                                          \
                vf out = acc[r][v];                                                                \
                if (beta != 0.0f) out += beta * LD(cr);                                            \
                ST(cr, out);                                                                       \
            }                                                                                      \
    }

/* One vector of columns (a C 16 wide, or the last 16 columns of a wider
 * one): with a single B vector per step, each multiply-add needs its own
 * broadcast of A, and 24 rows a step ran at about half the rate of the
 * wider tiles. Two steps at a time, 14 rows, even and odd p in two sets of
 * accumulators added at the end, run 1.5x faster. Every tile of this width
 * sums that way, so a row's result does not depend on its tile. */
#define TILE_PAIRS(MR)                                                                             \
    BN_INLINE void tile_##MR##x1(a_runs ar, const float *a, size_t a_row, const float *b,          \
                                 size_t ldb, float beta, float *c, size_t ldc) {                   \
        vf even[MR], odd[MR];                                                                      \
        for (int r = 0; r < MR; r++)                                                               \
            even[r] = (vf){0}, odd[r] = (vf){0};                                                   \
        const size_t a_col = ar.a_col;                                                             \
        for (int s = 0; s < ar.runs; s++) {                                                        \
            const float *as = a + (size_t)s * ar.run_stride;                                       \
            const float *bs = b + (size_t)s * ar.len * ldb;                                        \
            int p = 0;                                                                             \
            for (; p + 1 < ar.len; p += 2) {                                                       \
                const float *ap = as + (size_t)p * a_col;                                          \
                vf b0 = LD(bs + (size_t)p * ldb), b1 = LD(bs + (size_t)(p + 1) * ldb);             \
                for (int r = 0; r < MR; r++) {                                                     \
                    const float a0 = ap[(size_t)r * a_row], a1 = ap[(size_t)r * a_row + a_col];    \
                    even[r] += BCAST(a0) * b0;                                                     \
                    odd[r] += BCAST(a1) * b1;                                                      \
                }                                                                                  \
            }                                                                                      \
            if (p < ar.len) {                                                                      \
                vf b0 = LD(bs + (size_t)p * ldb);                                                  \
                for (int r = 0; r < MR; r++) {                                                     \
                    const float a0 = as[(size_t)p * a_col + (size_t)r * a_row];                    \
                    even[r] += BCAST(a0) * b0;                                                     \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
        for (int r = 0; r < MR; r++) {                                                             \
            float *cr = c + (size_t)r * ldc;                                                       \
            vf out = even[r] + odd[r];                                                             \
            if (beta != 0.0f) out += beta * LD(cr);                                                \
            ST(cr, out);                                                                           \
        }                                                                                          \
    }

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

/* The last n % 16 columns: B's edge copied, a block of rows at a time, into
 * whole vectors whose lanes past n are zero (a vector load of B's own rows
 * could read past its end); each block's sums are added into C. */
#define EDGE_ROWS 128
BN_INLINE void edge_columns(int m, int w, int k, const float *a, size_t a_row, size_t a_col,
                            const float *b, size_t ldb, float beta, float *c, size_t ldc) {
    float pad[EDGE_ROWS][VL];
    for (int p0 = 0; p0 == 0 || p0 < k; p0 += EDGE_ROWS) {
        int rows = k - p0 < EDGE_ROWS ? k - p0 : EDGE_ROWS;
        for (int p = 0; p < rows; p++) {
            memset(pad[p], 0, sizeof pad[p]);
            memcpy(pad[p], b + (size_t)(p0 + p) * ldb, (size_t)w * sizeof(float));
        }
        for (int i = 0; i < m; i++) {
            const float *ai = a + (size_t)i * a_row + (size_t)p0 * a_col;
            vf acc = {0};
            for (int p = 0; p < rows; p++)
                acc += BCAST(ai[(size_t)p * a_col]) * LD(pad[p]);
            float out[VL], *ci = c + (size_t)i * ldc;
            TO_LANES(out, acc);
            for (int j = 0; j < w; j++)
                ci[j] = p0 > 0 ? ci[j] + out[j] : beta == 0.0f ? out[j] : out[j] + beta * ci[j];
        }
    }
}

/* Whether m rows go in tiles of 7 rows by 2 vectors instead of MR-row
 * tiles: where m is a multiple of 7 and the MR-row tiles would leave 1-3
 * rows (or 5-7) to tiles of 1-2 rows, whose few chains cannot keep the
 * multiply-adds busy: a row of a convolution's 7 x 7 or 14 x 14 output.
 * Each element is still one chain in increasing p. */
BN_INLINE int sevens(int m, int mr) { return m % 7 == 0 && m % mr != 0 && m % mr % 4 != 0; }

/* All rows of C against one block of NV vectors of columns: the block of
 * B (k x 16 NV) stays in cache while A's rows stream past it. The rows
 * left over after the last whole tile go one at a time. */
#define COLUMN_BLOCK(MR, NV)                                                                       \
    BN_INLINE void block_##NV(int m, a_runs ar, const float *a, size_t a_row, const float *b,      \
                              size_t ldb, float beta, float *c, size_t ldc) {                      \
        if (NV > 1 && sevens(m, MR)) {                                                             \
            for (int i = 0; i < m; i += 7)                                                         \
                for (int v = 0; v < NV; v += 2)                                                    \
                    tile_7x2(ar, a + (size_t)i * a_row, a_row, b + VL * v, ldb, beta,              \
                             c + (size_t)i * ldc + VL * v, ldc);                                   \
            return;                                                                                \
        }                                                                                          \
        int i = 0;                                                                                 \
        for (; i + MR <= m; i += MR)                                                               \
            tile_##MR##x##NV(ar, a + (size_t)i * a_row, a_row, b, ldb, beta, c + (size_t)i * ldc,  \
                             ldc);                                                                 \
        for (; i + 4 <= m; i += 4)                                                                 \
            tile_4x##NV(ar, a + (size_t)i * a_row, a_row, b, ldb, beta, c + (size_t)i * ldc, ldc); \
        for (; i + 2 <= m; i += 2)                                                                 \
            tile_2x##NV(ar, a + (size_t)i * a_row, a_row, b, ldb, beta, c + (size_t)i * ldc, ldc); \
        for (; i < m; i++)                                                                         \
            tile_1x##NV(ar, a + (size_t)i * a_row, a_row, b, ldb, beta, c + (size_t)i * ldc, ldc); \
    }

COLUMN_BLOCK(6, 4)
COLUMN_BLOCK(12, 2)
COLUMN_BLOCK(14, 1)

/* C = A B over A's runs; the last n % 16 columns need runs == 1. Inlined
 * into two dispatched copies: an ordinary matrix's, where runs is the
 * constant 1 and the loop over runs disappears (it cost the 16-wide tiles
 * 5-10%), and the runs' own. */
BN_INLINE void gemm_body(int m, int n, a_runs ar, const float *a, size_t a_row, const float *b,
                         size_t ldb, float beta, float *c, size_t ldc) {
    int j = 0;
    for (; j + 4 * VL <= n; j += 4 * VL)
        block_4(m, ar, a, a_row, b + j, ldb, beta, c + j, ldc);
    if (j + 2 * VL <= n) {
        block_2(m, ar, a, a_row, b + j, ldb, beta, c + j, ldc);
        j += 2 * VL;
    }
    if (j + VL <= n) {
        block_1(m, ar, a, a_row, b + j, ldb, beta, c + j, ldc);
        j += VL;
    }
    if (j < n) edge_columns(m, n - j, ar.len, a, a_row, ar.a_col, b + j, ldb, beta, c + j, ldc);
}

BN_DISPATCH static void gemm(int m, int n, int k, const float *a, size_t a_row, size_t a_col,
                             const float *b, size_t ldb, float beta, float *c, size_t ldc) {
    const a_runs ar = {1, k, 0, a_col};
    gemm_body(m, n, ar, a, a_row, b, ldb, beta, c, ldc);
}

BN_DISPATCH static void gemm_runs(int m, int n, int runs, int len, const float *a, size_t a_row,
                                  size_t run_stride, const float *b, size_t ldb, float *c,
                                  size_t ldc) {
    const a_runs ar = {runs, len, run_stride, 1};
    gemm_body(m, n, ar, a, a_row, b, ldb, 0.0f, c, ldc);
}

void nn_gemm(int m, int n, int k, const float *a, size_t lda, int a_transposed, const float *b,
             size_t ldb, float beta, float *c, size_t ldc) {
    if (m <= 0 || n <= 0) return;
    /* Narrower than a vector, every column is an edge column: OpenBLAS's
     * small kernels do better there. */
    if (n < VL) {
        cblas_sgemm(CblasRowMajor, a_transposed ? CblasTrans : CblasNoTrans, CblasNoTrans, m, n, k,
                    1.0f, a, (int)lda, b, (int)ldb, beta, c, (int)ldc);
        return;
    }
    if (a_transposed)
        gemm(m, n, k, a, 1, lda, b, ldb, beta, c, ldc);
    else
        gemm(m, n, k, a, lda, 1, b, ldb, beta, c, ldc);
}

/* The same with A's runs strided and C accumulated (a copy of its own, so
 * that the forward's keeps a_col = 1 as a constant). */
BN_DISPATCH static void gemm_runs_strided(int m, int n, int runs, int len, const float *a,
                                          size_t a_row, size_t a_col, size_t run_stride,
                                          const float *b, size_t ldb, float beta, float *c,
                                          size_t ldc) {
    const a_runs ar = {runs, len, run_stride, a_col};
    gemm_body(m, n, ar, a, a_row, b, ldb, beta, c, ldc);
}

void nn_gemm_runs(int m, int n, int runs, int run_len, const float *a, size_t a_row,
                  size_t run_stride, const float *b, size_t ldb, float *c, size_t ldc) {
    if (m <= 0 || n <= 0) return;
    gemm_runs(m, n, runs, run_len, a, a_row, run_stride, b, ldb, c, ldc);
}

void nn_gemm_runs_strided(int m, int n, int runs, int run_len, const float *a, size_t a_row,
                          size_t a_col, size_t run_stride, const float *b, size_t ldb, float beta,
                          float *c, size_t ldc) {
    if (m <= 0 || n <= 0) return;
    gemm_runs_strided(m, n, runs, run_len, a, a_row, a_col, run_stride, b, ldb, beta, c, ldc);
}

void nn_gemm_at_b(int m, int n, int k, const float *a, size_t lda, const float *b, size_t ldb,
                  float beta, float *c, size_t ldc, float *work) {
    if (n >= 4 * VL || m < VL) {
        nn_gemm(m, n, k, a, lda, 1, b, ldb, beta, c, ldc);
        return;
    }
    /* C's transpose, B^T A: its rows are C's few columns and its vectors run
     * along A's rows, which are contiguous. */
    if (n > 0) gemm(n, m, k, b, 1, ldb, a, lda, 0.0f, work, (size_t)m);
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            float *cij = c + (size_t)i * ldc + j;
            *cij = beta == 0.0f ? work[(size_t)j * m + i] : work[(size_t)j * m + i] + beta * *cij;
        }
}

void nn_transpose(int k, int n, const float *b, size_t ldb, float *bt) {
    for (int p = 0; p < k; p++)
        for (int j = 0; j < n; j++)
            bt[(size_t)j * k + p] = b[(size_t)p * ldb + j];
}
