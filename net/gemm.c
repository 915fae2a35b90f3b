/* The convolutions' matrix products (gemm.h): register tiles of C, each
 * summed over all of k in one sweep. */
#include "gemm.h"

#include <cblas.h>
#include <string.h>

#include "simd.h"

/* Where A's values lie: row i's k = runs * len values are `runs` runs of
 * len, run s starting at a + i * a_row + s * run_stride, its values a_col
 * apart (an ordinary matrix is one run of k). */
typedef struct {
    int runs, len;
    size_t run_stride, a_col;
} a_runs;

/* The last n % 16 columns go through a copy of B's edge, EDGE_ROWS rows
 * at a time (gemm_tiles.h). */
#define EDGE_ROWS 128

/* Whether m rows go in tiles of 7 rows by 2 vectors instead of MR-row
 * tiles: where m is a multiple of 7 and the MR-row tiles would leave 1-3
 * rows (or 5-7) to tiles of 1-2 rows, whose few chains cannot keep the
 * multiply-adds busy: a row of a convolution's 7 x 7 or 14 x 14 output.
 * Each element is still one chain in increasing p. */
BN_INLINE int sevens(int m, int mr) { return m % 7 == 0 && m % mr != 0 && m % mr % 4 != 0; }

/* The tiles at 16 lanes and at 8 (gemm_tiles.h). */
#define BN_W 16
#include "gemm_tiles.h"
#undef BN_W
#define BN_W 8
#include "gemm_tiles.h"
#undef BN_W

/* C = A B over A's runs, at the width the running copy holds in registers.
 * Inlined into two dispatched copies: an ordinary matrix's, where runs is
 * the constant 1 and the loop over runs disappears (it cost the 16-wide
 * tiles 5-10%), and the runs' own. */
BN_INLINE void gemm_body(int m, int n, a_runs ar, const float *a, size_t a_row, const float *b,
                         size_t ldb, float beta, float *c, size_t ldc) {
    if (BN_WIDE_VECTORS())
        gemm_body_16(m, n, ar, a, a_row, b, ldb, beta, c, ldc);
    else
        gemm_body_8(m, n, ar, a, a_row, b, ldb, beta, c, ldc);
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
