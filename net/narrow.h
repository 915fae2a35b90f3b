/*
 * narrow.h - 3x3 convolutions of stride 1 whose output has 16 or 32
 * channels (one or two vectors), computed directly rather than as a matrix
 * product.
 *
 * As a product (gemm.h), such a convolution has a C one vector wide: every
 * multiply-add needs a broadcast of its own, and the products ran at about
 * half the rate of the wider layers' (the 28x28x16 stage of the residual
 * CNN, 40% of its training step). Computed directly, each input value is
 * broadcast once and serves the three taps of a row of the kernel that read
 * it: three multiply-adds a broadcast.
 *
 * Multiplies and adds are fused; each output value is one chain, in the
 * order given below, whatever the tile it falls in, so a pixel's bits do not
 * depend on how the rows or pixels are split between threads.
 */
#ifndef NN_NARROW_H
#define NN_NARROW_H

#include <stddef.h>

/* One output row of ow pixels: out[x][o] = the sum over ky, then i < c,
 * then kx, of pad[ky][x + kx][i] * w[ky][kx][i][o], o < oc (16 or 32), where pad
 * points at the first of the three padded input rows the output row reads
 * (pad_row floats apart, c floats a pixel) and w is [3][3][c][oc]. */
void nn_narrow_row(int ow, int c, int oc, const float *pad, size_t pad_row, const float *w,
                   float *out);

/* The weight gradient of one sample: dw[ky][kx][i][o] = beta * dw[ky][kx][i][o]
 * + the sum over y < oh, then x < ow, of pad[y + ky][x + kx][i] * g[y][x][o],
 * o < oc (16 or 32), with pad the sample's input padded by a pixel (pad_row floats a
 * padded row, c floats a pixel) and g its output gradient [oh][ow][oc].
 * beta 0 does not read dw. */
void nn_narrow_weight_gradient(int oh, int ow, int c, int oc, const float *pad, size_t pad_row,
                               const float *g, float beta, float *dw);

#endif
