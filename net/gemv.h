/*
 * gemv.h - one sample through a dense layer, for test-mode inference of a
 * single input, where a GEMM would spend longer packing the weights than
 * using them.
 *
 * Unlike ops.h, this kernel fuses multiplies and adds (it is compiled with
 * -ffp-contract=fast), so its AVX-512/AVX2 copies and its baseline copy
 * round differently; on one machine it always runs the same copy.
 */
#ifndef NN_GEMV_H
#define NN_GEMV_H

/* y[j] = sum over k in [k0, k1) of x[k] * w[k * ldw + j], for j < n, summed
 * in increasing k. w is [K][ldw] row-major (a dense layer's [in][out]
 * weights), so rows [k0, k1) are one contiguous block: a thread that owns a
 * range of rows streams its own part of the weights, and the partial sums
 * of several ranges add up to the whole product. */
void nn_gemv_rows(const float *w, int ldw, const float *x, int k0, int k1, int n, float *y);

#endif
