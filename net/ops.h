/*
 * ops.h - the network's element-wise and data-movement layers on raw
 * channels-last buffers: ReLU, 2x2 max-pool, im2col / col2im for the
 * convolutions (3x3 and 1x1, stride 1 and 2, same padding), bias add and
 * bias gradient, and the sum of two buffers.
 *
 * Each is compiled once per instruction set (AVX-512, AVX2, baseline) and
 * picked when the program loads, like libbnorm's kernels. None of them
 * reorders a floating-point sum relative to the plain loop it replaces, so
 * every copy gives bit-identical results.
 */
#ifndef NN_OPS_H
#define NN_OPS_H

#include <stddef.h>
#include <stdint.h>

/* out[k] = in[k] > 0 ? in[k] : 0 for k < count (NaN gives 0). */
void nn_relu_forward(float *out, const float *in, size_t count);
/* din[k] = out[k] > 0 ? g[k] : 0: out is the ReLU's own output. */
void nn_relu_backward(float *din, const float *out, const float *g, size_t count);

/* 2x2 max-pool, stride 2, of n images in [n][h][w][c] into
 * out [n][h/2][w/2][c]; argmax [n][h/2][w/2][c] records which of the four
 * inputs (0: top left, 1: top right, 2: bottom left, 3: bottom right) won,
 * the first on ties. */
void nn_maxpool_forward(float *out, uint8_t *argmax, const float *in, int n, int h, int w, int c);
/* din [n][h][w][c] = g routed to the winning input, 0 elsewhere. */
void nn_maxpool_backward(float *din, const float *g, const uint8_t *argmax, int n, int h, int w,
                         int c);

/* The rows of a size x size convolution's product (size 1 or 3, stride 1
 * or 2, same padding: output sides oh = ceil(h / stride), ow likewise), for
 * output rows [y0, y1) of each of n images:
 * col[(b*(y1-y0) + oy-y0)*ow + ox][(ky*size + kx)*c + k] =
 *     in[b][oy*stride + ky - size/2][ox*stride + kx - size/2][k], zero outside. */
void nn_im2col(float *col, const float *in, int n, int h, int w, int c, int size, int stride,
               int y0, int y1);
/* The adjoint of nn_im2col over all output rows: din[b][y][x][k] = the sum
 * of the columns that read it, summed in the order a scatter over output
 * pixels in memory order, taps in order, would add them. */
void nn_col2im(float *din, const float *col, int n, int h, int w, int c, int size, int stride);

/* Rows [py0, py1) of one image in [h][w][c] padded by one zero pixel on
 * every side: pad[(h + 2)][(w + 2)][c], pad[py][px] = in[py - 1][px - 1]
 * inside, 0 on the border. */
void nn_pad_rows(float *pad, const float *in, int h, int w, int c, int py0, int py1);

/* dst[k] += src[k] for k < count. */
void nn_add_rows(float *dst, const float *src, size_t count);
/* out[r][k] += bias[k] for r < rows, k < c. */
void nn_add_bias(float *out, const float *bias, size_t rows, int c);
/* db[k] = sum over r of g[r][k], in row order. */
void nn_bias_grad(float *db, const float *g, size_t rows, int c);

#endif
