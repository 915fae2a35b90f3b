/*
 * narrow.h - 3x3 convolutions of stride 1 with few output channels (a
 * multiple of 16; the network uses it for 16 and 32), computed directly
 * rather than as a matrix product.
 *
 * As a product (gemm.h), such a convolution has a C one or two vectors
 * wide: each broadcast of A serves only one or two multiply-adds, and the
 * products ran at about half the rate of the 64-wide layers' (the 28x28x16
 * stage of the residual CNN was 40% of its training step). Computed
 * directly, each input value is broadcast once and serves the three taps of
 * a row of the kernel that read it: three multiply-adds a broadcast per
 * vector of output channels, which go in blocks of 32, then 16.
 *
 * Multiplies and adds are fused; each output value is one chain, in the
 * order given below, whatever the tile it falls in, so a pixel's bits do not
 * depend on how the rows or pixels are split between threads.
 */
#ifndef NN_NARROW_H
#define NN_NARROW_H

#include <stddef.h>

/* One output row of ow pixels: out[x][o] = the sum over ky, then i < c,
 * then kx, of pad[ky][x + kx][i] * w[ky][kx][i][o], for o < oc (a multiple
 * of 16), where pad points at the first of the three padded input rows the
 * output row reads (pad_row floats apart, c floats a pixel) and w is
 * [3][3][c][oc]. */
void nn_narrow_row(int ow, int c, int oc, const float *pad, size_t pad_row, const float *w,
                   float *out);

/* The weight gradient of one sample: dw[ky][kx][i][o] = beta times itself
 * + the sum over y < oh, then x < ow, of pad[y + ky][x + kx][i] * g[y][x][o],
 * for o < oc (a multiple of 16), with pad the sample's input padded by a
 * pixel (pad_row floats a padded row, c floats a pixel) and g its output
 * gradient [oh][ow][oc]. beta 0 does not read dw. */
void nn_narrow_weight_gradient(int oh, int ow, int c, int oc, const float *pad, size_t pad_row,
                               const float *g, float beta, float *dw);

#endif
