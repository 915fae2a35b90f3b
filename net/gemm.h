/*
 * gemm.h - the matrix products of the convolutions: C = A B (+ beta C) with
 * A as stored or transposed, B row-major. The convolutions' products are
 * long and thin (a batch's pixels by 9 x 16..64 taps by 16..64 channels);
 * a BLAS packs both operands into its own panels for every call, which for
 * such shapes costs as much as a third of the product. These kernels read
 * A and B where they lie, holding a tile of C in registers for the whole
 * sum.
 *
 * Multiplies and adds are fused. Each element of C is summed in increasing
 * p, in one chain, or, in the last 16 columns when they are not part of a
 * 32- or 64-wide block, in two (even and odd p) added at the end: how an
 * element is summed depends on n and its column only, never on m or its
 * row, so that a pixel's output has the same bits in any split of the rows.
 */
#ifndef NN_GEMM_H
#define NN_GEMM_H

#include <stddef.h>

/* C = A B + beta C: c[i * ldc + j] = sum over p < k of A(i, p) * b[p * ldb + j]
 * + beta * c[i * ldc + j], for i < m, j < n, where A(i, p) is a[i * lda + p],
 * or a[p * lda + i] when a_transposed (A stored as [k][m]). beta 0 does not
 * read c. */
void nn_gemm(int m, int n, int k, const float *a, size_t lda, int a_transposed, const float *b,
             size_t ldb, float beta, float *c, size_t ldc);

/* C = A B where A is not stored but read from its source (a convolution's
 * padded input): row i of A is `runs` runs of run_len consecutive floats,
 * run s at a + i * a_row + s * run_stride, and B has runs * run_len rows in
 * the same order (n a multiple of 16 where runs > 1). Summed as nn_gemm
 * sums the same A stored row by row, each element's chain over the k =
 * runs * run_len terms in order, so the same bits where run_len is even
 * (an odd run's last term, paired with nothing, is fused or not as the
 * compiler decides in each copy, and unoptimized builds decide apart). */
void nn_gemm_runs(int m, int n, int runs, int run_len, const float *a, size_t a_row,
                  size_t run_stride, const float *b, size_t ldb, float *c, size_t ldc);

/* C = A B + beta C (beta 0: c not read) with A's runs strided: A(i, p)
 * for p = s * run_len + q is a[i * a_row + s * run_stride + q * a_col];
 * B's rows are runs * run_len rows ldb apart, as for nn_gemm_runs. For a
 * convolution's weight gradient, A being the padded input read as one
 * tap's channels (rows) by output pixels (the sum, a run per output row),
 * and B the output gradient. n a multiple of 16 where runs > 1. */
void nn_gemm_runs_strided(int m, int n, int runs, int run_len, const float *a, size_t a_row,
                          size_t a_col, size_t run_stride, const float *b, size_t ldb, float beta,
                          float *c, size_t ldc);

/* The same product with A transposed (A stored as [k][m]), for the weight
 * gradients: a long sum into a small C. work holds m * n floats: a C of
 * fewer than 64 columns is computed as its transpose, whose vectors then run
 * along the rows of A, and added into c from there. */
void nn_gemm_at_b(int m, int n, int k, const float *a, size_t lda, const float *b, size_t ldb,
                  float beta, float *c, size_t ldc, float *work);

/* bt[j * k + p] = b[p * ldb + j]: B [k][n] transposed into [n][k], so that a
 * product with B's transpose is an nn_gemm with bt. */
void nn_transpose(int k, int n, const float *b, size_t ldb, float *bt);

#endif
