/* Element-wise and data-movement layers, one copy per instruction set. */
#include "ops.h"

#include <string.h>

#include "simd.h"

/* simd.h's 16-lane vectors serve the loops that the compiler would not
 * vectorize on its own: sums whose order must stay that of the scalar loop,
 * and the max-pool backward's four stores. The other loops are plain and
 * left to the compiler: this file is built with -fno-trapping-math, without
 * which it keeps the comparisons of max-pool and ReLU as branches. */
/* 16 argmax bytes, widened to the 16 lanes of a vi. */
typedef uint8_t vb __attribute__((vector_size(16), aligned(1), __may_alias__));

BN_DISPATCH static void relu_forward(float *restrict out, const float *restrict in, size_t count) {
    for (size_t k = 0; k < count; k++) {
        float v = in[k];
        out[k] = v > 0.0f ? v : 0.0f;
    }
}

BN_DISPATCH static void relu_backward(float *restrict din, const float *restrict out,
                                      const float *restrict g, size_t count) {
    for (size_t k = 0; k < count; k++)
        din[k] = out[k] > 0.0f ? g[k] : 0.0f;
}

BN_DISPATCH static void maxpool_forward(float *restrict out, uint8_t *restrict argmax,
                                        const float *restrict in, int n, int h, int w, int c) {
    int oh = h / 2, ow = w / 2;
    size_t row = (size_t)w * c;
    for (int b = 0; b < n; b++)
        for (int y = 0; y < oh; y++)
            for (int x = 0; x < ow; x++) {
                size_t o = (((size_t)b * oh + y) * ow + x) * c;
                const float *p0 = in + (((size_t)b * h + 2 * y) * w + 2 * x) * c;
                const float *p1 = p0 + c, *p2 = p0 + row, *p3 = p2 + c;
                float *dst = out + o;
                uint8_t *arg = argmax + o;
                for (int k = 0; k < c; k++) {
                    float best = p0[k], v;
                    int a = 0;
                    v = p1[k], a = v > best ? 1 : a, best = v > best ? v : best;
                    v = p2[k], a = v > best ? 2 : a, best = v > best ? v : best;
                    v = p3[k], a = v > best ? 3 : a, best = v > best ? v : best;
                    dst[k] = best;
                    arg[k] = (uint8_t)a;
                }
            }
}

BN_DISPATCH static void maxpool_backward(float *restrict din, const float *restrict g,
                                         const uint8_t *restrict argmax, int n, int h, int w,
                                         int c) {
    int oh = h / 2, ow = w / 2;
    size_t row = (size_t)w * c;
    /* An odd last row or column belongs to no window: its gradient is 0. */
    if ((h | w) & 1) memset(din, 0, (size_t)n * h * row * sizeof(float));
    for (int b = 0; b < n; b++)
        for (int y = 0; y < oh; y++)
            for (int x = 0; x < ow; x++) {
                size_t o = (((size_t)b * oh + y) * ow + x) * c;
                float *d0 = din + (((size_t)b * h + 2 * y) * w + 2 * x) * c;
                float *d1 = d0 + c, *d2 = d0 + row, *d3 = d2 + c;
                const float *src = g + o;
                const uint8_t *arg = argmax + o;
                int k = 0;
                for (; k + VL <= c; k += VL) {
                    vi v = (vi)LD(src + k);
                    vi a = __builtin_convertvector(*(const vb *)(const void *)(arg + k), vi);
                    ST(d0 + k, (vf)(v & (a == 0)));
                    ST(d1 + k, (vf)(v & (a == 1)));
                    ST(d2 + k, (vf)(v & (a == 2)));
                    ST(d3 + k, (vf)(v & (a == 3)));
                }
                for (; k < c; k++) {
                    float v = src[k];
                    int a = arg[k];
                    d0[k] = a == 0 ? v : 0.0f;
                    d1[k] = a == 1 ? v : 0.0f;
                    d2[k] = a == 2 ? v : 0.0f;
                    d3[k] = a == 3 ? v : 0.0f;
                }
            }
}

/* Inlined into each caller so that the first convolution's shape (3x3,
 * stride 1, c = 1) is constant there and its three-float copies need no
 * loop. A kernel row's taps are neighbours in the input at either stride,
 * so away from the image's edges each is one contiguous copy. */
static inline __attribute__((always_inline)) void im2col_body(float *restrict col,
                                                              const float *restrict in, int n,
                                                              int h, int w, int c, int size, int s,
                                                              int y0, int y1) {
    const int ow = (w + s - 1) / s, pad = size / 2;
    const size_t row_taps = (size_t)size * c, taps = row_taps * size;
    for (int b = 0; b < n; b++)
        for (int oy = y0; oy < y1; oy++)
            for (int ox = 0; ox < ow; ox++) {
                float *dst = col + (((size_t)b * (y1 - y0) + oy - y0) * ow + ox) * taps;
                for (int ky = 0; ky < size; ky++, dst += row_taps) {
                    int sy = oy * s + ky - pad;
                    if (sy < 0 || sy >= h) {
                        for (size_t k = 0; k < row_taps; k++)
                            dst[k] = 0.0f;
                        continue;
                    }
                    /* Offsets from the row's start, never a pointer before it: at
                     * ox = 0 the left neighbour would lie outside the buffer. */
                    const float *row = in + ((size_t)b * h + sy) * w * c;
                    int sx0 = ox * s - pad;
                    if (sx0 >= 0 && sx0 + size <= w) {
                        const float *src = row + (size_t)sx0 * c;
                        for (size_t k = 0; k < row_taps; k++)
                            dst[k] = src[k];
                        continue;
                    }
                    for (int kx = 0; kx < size; kx++) {
                        int sx = sx0 + kx;
                        if (sx >= 0 && sx < w) {
                            for (int k = 0; k < c; k++)
                                dst[kx * c + k] = row[(size_t)sx * c + k];
                        } else {
                            for (int k = 0; k < c; k++)
                                dst[kx * c + k] = 0.0f;
                        }
                    }
                }
            }
}

BN_DISPATCH static void im2col(float *restrict col, const float *restrict in, int n, int h, int w,
                               int c, int size, int s, int y0, int y1) {
    if (size == 3 && s == 1 && c == 1)
        im2col_body(col, in, n, h, w, 1, 3, 1, y0, y1);
    else if (size == 3)
        im2col_body(col, in, n, h, w, c, 3, s, y0, y1);
    else
        im2col_body(col, in, n, h, w, c, 1, s, y0, y1);
}

/* Each input pixel gathers the columns that read it, taps in descending
 * order: the order in which a scatter over output pixels in memory order
 * adds them, so the sums round the same as that plainer loop's. */
BN_DISPATCH static void col2im3x3(float *restrict din, const float *restrict col, int n, int h,
                                  int w, int c) {
    size_t K = (size_t)9 * c;
    for (int b = 0; b < n; b++)
        for (int sy = 0; sy < h; sy++)
            for (int sx = 0; sx < w; sx++) {
                float *dst = din + (((size_t)b * h + sy) * w + sx) * c;
                const float *src[9];
                int taps = 0;
                for (int tap = 8; tap >= 0; tap--) {
                    int y = sy + 1 - tap / 3, x = sx + 1 - tap % 3;
                    if (y < 0 || y >= h || x < 0 || x >= w) continue;
                    src[taps++] = col + (((size_t)b * h + y) * w + x) * K + (size_t)tap * c;
                }
                int k = 0;
                for (; k + VL <= c; k += VL) {
                    vf acc = {0};
                    for (int t = 0; t < taps; t++)
                        acc += LD(src[t] + k);
                    ST(dst + k, acc);
                }
                for (; k < c; k++) {
                    float acc = 0.0f;
                    for (int t = 0; t < taps; t++)
                        acc += src[t][k];
                    dst[k] = acc;
                }
            }
}

/* The adjoint of a strided (or 1x1) im2col as the scatter itself: over
 * output pixels in memory order, taps in order, each column added into the
 * input pixel it read. */
BN_DISPATCH static void col2im_scatter(float *restrict din, const float *restrict col, int n, int h,
                                       int w, int c, int size, int s) {
    const int oh = (h + s - 1) / s, ow = (w + s - 1) / s, pad = size / 2;
    const size_t taps = (size_t)size * size * c;
    memset(din, 0, (size_t)n * h * w * c * sizeof(float));
    for (int b = 0; b < n; b++)
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++) {
                const float *src = col + (((size_t)b * oh + oy) * ow + ox) * taps;
                for (int ky = 0; ky < size; ky++)
                    for (int kx = 0; kx < size; kx++, src += c) {
                        int sy = oy * s + ky - pad, sx = ox * s + kx - pad;
                        if (sy < 0 || sy >= h || sx < 0 || sx >= w) continue;
                        float *dst = din + (((size_t)b * h + sy) * w + sx) * c;
                        for (int k = 0; k < c; k++)
                            dst[k] += src[k];
                    }
            }
}

BN_DISPATCH static void add_rows(float *restrict dst, const float *restrict src, size_t count) {
    for (size_t k = 0; k < count; k++)
        dst[k] += src[k];
}

BN_DISPATCH static void add_bias(float *restrict out, const float *restrict bias, size_t rows,
                                 int c) {
    for (size_t r = 0; r < rows; r++)
        for (int k = 0; k < c; k++)
            out[r * c + k] += bias[k];
}

BN_DISPATCH static void bias_grad(float *restrict db, const float *restrict g, size_t rows, int c) {
    for (int k = 0; k < c; k++)
        db[k] = 0.0f;
    for (size_t r = 0; r < rows; r++)
        for (int k = 0; k < c; k++)
            db[k] += g[r * c + k];
}

/* The exported names call the dispatched copies: clang emits the dispatch of
 * a target_clones function only where its own file calls it. */
void nn_relu_forward(float *out, const float *in, size_t count) { relu_forward(out, in, count); }
void nn_relu_backward(float *din, const float *out, const float *g, size_t count) {
    relu_backward(din, out, g, count);
}
void nn_maxpool_forward(float *out, uint8_t *argmax, const float *in, int n, int h, int w, int c) {
    maxpool_forward(out, argmax, in, n, h, w, c);
}
void nn_maxpool_backward(float *din, const float *g, const uint8_t *argmax, int n, int h, int w,
                         int c) {
    maxpool_backward(din, g, argmax, n, h, w, c);
}
void nn_im2col(float *col, const float *in, int n, int h, int w, int c, int size, int stride,
               int y0, int y1) {
    im2col(col, in, n, h, w, c, size, stride, y0, y1);
}
void nn_col2im(float *din, const float *col, int n, int h, int w, int c, int size, int stride) {
    if (size == 3 && stride == 1)
        col2im3x3(din, col, n, h, w, c);
    else
        col2im_scatter(din, col, n, h, w, c, size, stride);
}
void nn_add_rows(float *dst, const float *src, size_t count) { add_rows(dst, src, count); }
void nn_add_bias(float *out, const float *bias, size_t rows, int c) {
    add_bias(out, bias, rows, c);
}
void nn_bias_grad(float *db, const float *g, size_t rows, int c) { bias_grad(db, g, rows, c); }

/* A copy and three clears a row: nothing to vectorize by hand. */
void nn_pad_rows(float *pad, const float *in, int h, int w, int c, int py0, int py1) {
    const size_t row = (size_t)(w + 2) * c;
    for (int py = py0; py < py1; py++) {
        float *dst = pad + (size_t)py * row;
        if (py == 0 || py == h + 1) {
            memset(dst, 0, row * sizeof(float));
            continue;
        }
        memset(dst, 0, (size_t)c * sizeof(float));
        memcpy(dst + c, in + (size_t)(py - 1) * w * c, (size_t)w * c * sizeof(float));
        memset(dst + row - c, 0, (size_t)c * sizeof(float));
    }
}
