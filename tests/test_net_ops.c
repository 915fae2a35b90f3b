/* The network's vectorized element-wise layers (net/ops.c) against plain
 * scalar loops written here, over ragged channel counts (the vector loops'
 * tails), odd image sizes, ties in max-pool windows, NaN and signed zeros.
 * The fast copies promise the same rounding as the loops, so results must
 * be bit-identical, not merely close. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "digest.h"
#include "gemv.h"
#include "ops.h"

static int failures;

static void check_same(const char *what, const void *got, const void *want, size_t bytes, int n,
                       int h, int w, int c) {
    if (memcmp(got, want, bytes) != 0) {
        failures++;
        fprintf(stderr, "FAIL %s n=%d h=%d w=%d c=%d\n", what, n, h, w, c);
    }
}

static unsigned rng_state = 12345u;
static float draw(void) {
    rng_state = rng_state * 1664525u + 1013904223u;
    /* Quarter steps in [-4, 4): ties in pooling windows are common. */
    return (float)((int)(rng_state >> 24) % 32 - 16) / 4.0f;
}

static void fill(float *v, size_t count) {
    for (size_t i = 0; i < count; i++)
        v[i] = draw();
    if (count > 3) v[count / 3] = -0.0f, v[count / 2] = NAN;
}

/* Values whose sums round: the order of a sum shows in the result. */
static void fill_fine(float *v, size_t count) {
    for (size_t i = 0; i < count; i++)
        v[i] = draw() / 3.0f + draw() / 1000.0f;
}

static void ref_maxpool(float *out, uint8_t *arg, const float *in, int n, int h, int w, int c) {
    for (int b = 0; b < n; b++)
        for (int y = 0; y < h / 2; y++)
            for (int x = 0; x < w / 2; x++)
                for (int k = 0; k < c; k++) {
                    size_t o = (((size_t)b * (h / 2) + y) * (w / 2) + x) * c + k;
                    float best = 0.0f;
                    int a = 0;
                    for (int q = 0; q < 4; q++) {
                        float v = in[(((size_t)b * h + 2 * y + q / 2) * w + 2 * x + q % 2) * c + k];
                        if (q == 0 || v > best) best = v, a = q;
                    }
                    out[o] = best, arg[o] = (uint8_t)a;
                }
}

static void ref_maxpool_backward(float *din, const float *g, const uint8_t *arg, int n, int h,
                                 int w, int c) {
    memset(din, 0, (size_t)n * h * w * c * sizeof(float));
    for (int b = 0; b < n; b++)
        for (int y = 0; y < h / 2; y++)
            for (int x = 0; x < w / 2; x++)
                for (int k = 0; k < c; k++) {
                    size_t o = (((size_t)b * (h / 2) + y) * (w / 2) + x) * c + k;
                    int q = arg[o];
                    din[(((size_t)b * h + 2 * y + q / 2) * w + 2 * x + q % 2) * c + k] = g[o];
                }
}

/* Output side of a same-padded convolution of stride s. */
static int out_side(int side, int s) { return (side + s - 1) / s; }

static void ref_im2col(float *col, const float *in, int n, int h, int w, int c, int size, int s,
                       int y0, int y1) {
    int ow = out_side(w, s), pad = size / 2, T = size * size;
    for (int b = 0; b < n; b++)
        for (int y = y0; y < y1; y++)
            for (int x = 0; x < ow; x++)
                for (int t = 0; t < T; t++)
                    for (int k = 0; k < c; k++) {
                        int sy = y * s + t / size - pad, sx = x * s + t % size - pad;
                        int inside = sy >= 0 && sy < h && sx >= 0 && sx < w;
                        col[(((size_t)b * (y1 - y0) + y - y0) * ow + x) * T * c + (size_t)t * c +
                            k] = inside ? in[(((size_t)b * h + sy) * w + sx) * c + k] : 0.0f;
                    }
}

/* The adjoint as a scatter over output pixels in memory order. */
static void ref_col2im(float *din, const float *col, int n, int h, int w, int c, int size, int s) {
    int oh = out_side(h, s), ow = out_side(w, s), pad = size / 2, T = size * size;
    memset(din, 0, (size_t)n * h * w * c * sizeof(float));
    for (int b = 0; b < n; b++)
        for (int y = 0; y < oh; y++)
            for (int x = 0; x < ow; x++)
                for (int t = 0; t < T; t++) {
                    int sy = y * s + t / size - pad, sx = x * s + t % size - pad;
                    if (sy < 0 || sy >= h || sx < 0 || sx >= w) continue;
                    for (int k = 0; k < c; k++)
                        din[(((size_t)b * h + sy) * w + sx) * c + k] +=
                            col[(((size_t)b * oh + y) * ow + x) * T * c + (size_t)t * c + k];
                }
}

/* im2col and col2im for every kernel size and stride the network has, over
 * whole images and over a band of output rows (the single-sample split). */
static void check_im2col(const float *in, int n, int h, int w, int c, float *a, float *b) {
    static const int shapes[4][2] = {{3, 1}, {3, 2}, {1, 2}, {1, 1}};
    for (int i = 0; i < 4; i++) {
        int size = shapes[i][0], s = shapes[i][1], oh = out_side(h, s), ow = out_side(w, s);
        size_t cols = (size_t)n * oh * ow * size * size * c, img = (size_t)n * h * w * c;
        char what[64];
        snprintf(what, sizeof what, "im2col %dx%d stride %d", size, size, s);
        memset(a, 0x7f, cols * sizeof(float));
        nn_im2col(a, in, n, h, w, c, size, s, 0, oh);
        ref_im2col(b, in, n, h, w, c, size, s, 0, oh);
        check_same(what, a, b, cols * sizeof(float), n, h, w, c);
        if (oh > 2) {
            int y0 = 1, y1 = oh - 1;
            size_t band = (size_t)(y1 - y0) * ow * size * size * c;
            nn_im2col(a, in, 1, h, w, c, size, s, y0, y1);
            ref_im2col(b, in, 1, h, w, c, size, s, y0, y1);
            snprintf(what, sizeof what, "im2col %dx%d stride %d rows", size, size, s);
            check_same(what, a, b, band * sizeof(float), 1, h, w, c);
        }
        float *col = malloc(cols * sizeof(float));
        fill_fine(col, cols);
        col[0] = -0.0f; /* a signed zero must come out as the scatter's +0 */
        memset(a, 0x7f, img * sizeof(float));
        nn_col2im(a, col, n, h, w, c, size, s);
        ref_col2im(b, col, n, h, w, c, size, s);
        snprintf(what, sizeof what, "col2im %dx%d stride %d", size, size, s);
        check_same(what, a, b, img * sizeof(float), n, h, w, c);
        free(col);
    }
}

static void one_shape(int n, int h, int w, int c) {
    size_t img = (size_t)n * h * w * c, pooled = (size_t)n * (h / 2) * (w / 2) * c;
    size_t cols = img * 9;
    float *in = malloc(img * sizeof(float)), *g = malloc(img * sizeof(float));
    float *a = malloc(cols * sizeof(float)), *b = malloc(cols * sizeof(float));
    uint8_t *arg_a = malloc(pooled + 1), *arg_b = malloc(pooled + 1);
    float *bias = malloc((size_t)c * sizeof(float));
    fill(in, img), fill(g, img), fill(bias, (size_t)c);

    nn_relu_forward(a, in, img);
    for (size_t i = 0; i < img; i++)
        b[i] = in[i] > 0.0f ? in[i] : 0.0f;
    check_same("relu_forward", a, b, img * sizeof(float), n, h, w, c);

    nn_relu_backward(a, in, g, img);
    for (size_t i = 0; i < img; i++)
        b[i] = in[i] > 0.0f ? g[i] : 0.0f;
    check_same("relu_backward", a, b, img * sizeof(float), n, h, w, c);

    if (pooled) {
        nn_maxpool_forward(a, arg_a, in, n, h, w, c);
        ref_maxpool(b, arg_b, in, n, h, w, c);
        check_same("maxpool_forward", a, b, pooled * sizeof(float), n, h, w, c);
        check_same("maxpool_argmax", arg_a, arg_b, pooled, n, h, w, c);
        /* Poison the outputs: the backward must write every input gradient. */
        memset(a, 0x7f, img * sizeof(float));
        nn_maxpool_backward(a, g, arg_b, n, h, w, c);
        ref_maxpool_backward(b, g, arg_b, n, h, w, c);
        check_same("maxpool_backward", a, b, img * sizeof(float), n, h, w, c);
    }

    check_im2col(in, n, h, w, c, a, b);

    memcpy(a, in, img * sizeof(float)), memcpy(b, in, img * sizeof(float));
    nn_add_bias(a, bias, img / (size_t)c, c);
    for (size_t r = 0; r < img / (size_t)c; r++)
        for (int k = 0; k < c; k++)
            b[r * c + k] += bias[k];
    check_same("add_bias", a, b, img * sizeof(float), n, h, w, c);

    memcpy(a, in, img * sizeof(float)), memcpy(b, in, img * sizeof(float));
    nn_add_rows(a, g, img);
    for (size_t i = 0; i < img; i++)
        b[i] += g[i];
    check_same("add_rows", a, b, img * sizeof(float), n, h, w, c);

    fill_fine(g, img);
    nn_bias_grad(a, g, img / (size_t)c, c);
    for (int k = 0; k < c; k++) {
        b[k] = 0.0f;
        for (size_t r = 0; r < img / (size_t)c; r++)
            b[k] += g[r * c + k];
    }
    check_same("bias_grad", a, b, (size_t)c * sizeof(float), n, h, w, c);

    free(in), free(g), free(a), free(b), free(arg_a), free(arg_b), free(bias);
}

/* The single-sample GEMV (net/gemv.c) fuses multiply-adds, so it is held to
 * the error bound of a K-term sum instead of bit-identity: against a double
 * sum, |y - ref| <= (K + 1) * 2^-24 * sum |x w| (each partial sum rounds at
 * most once per term). A sum from the wrong rows or columns misses by whole
 * terms, far beyond it. Widths cover the 256-column sweeps, whole vectors and
 * the float tail; guards past n must stay untouched. */
/* Every GEMV's y: the 16- and 8-lane sweeps must agree on it
 * (test_net_ops_widths_identical). */
static unsigned long long gemv_digest = DIGEST_START;

static int gemv_case(int K, int ldw, int n, int k0, int k1) {
    float *w = malloc((size_t)K * ldw * sizeof(float)), *x = malloc((size_t)K * sizeof(float));
    float *y = malloc((size_t)(n + 16) * sizeof(float));
    if (!w || !x || !y) {
        fprintf(stderr, "FAIL gemv: out of memory\n");
        exit(1);
    }
    fill_fine(w, (size_t)K * ldw);
    fill_fine(x, (size_t)K);
    for (int j = 0; j < n + 16; j++)
        y[j] = 1234.5f;
    nn_gemv_rows(w, ldw, x, k0, k1, n, y);
    gemv_digest = digest_add(gemv_digest, y, (size_t)n);
    int bad = 0;
    for (int j = 0; j < n && !bad; j++) {
        double ref = 0.0, mag = 0.0;
        for (int k = k0; k < k1; k++) {
            double t = (double)x[k] * w[(size_t)k * ldw + j];
            ref += t, mag += fabs(t);
        }
        double bound = (double)(k1 - k0 + 1) * ldexp(1.0, -24) * mag;
        if (!(fabs((double)y[j] - ref) <= bound)) {
            fprintf(stderr,
                    "FAIL gemv K=%d ldw=%d n=%d rows [%d,%d): y[%d] = %.9g, want %.9g +- %.3g\n", K,
                    ldw, n, k0, k1, j, (double)y[j], ref, bound);
            bad = 1;
        }
    }
    for (int j = n; j < n + 16 && !bad; j++)
        if (y[j] != 1234.5f) {
            fprintf(stderr, "FAIL gemv K=%d n=%d: wrote y[%d] past n\n", K, n, j);
            bad = 1;
        }
    free(w), free(x), free(y);
    return bad;
}

static int check_gemv(void) {
    const int widths[] = {1, 10, 15, 16, 17, 100, 255, 256, 257, 300, 512, 528};
    const int depths[] = {1, 7, 64, 300};
    int cases = 0;
    for (size_t i = 0; i < sizeof widths / sizeof *widths; i++)
        for (size_t j = 0; j < sizeof depths / sizeof *depths; j++) {
            int n = widths[i], K = depths[j];
            failures += gemv_case(K, n, n, 0, K);         /* all rows */
            failures += gemv_case(K, n + 5, n, K / 3, K); /* a later block, wider rows */
            failures += gemv_case(K, n, n, 0, K / 2);     /* an earlier block (maybe empty) */
            cases += 3;
        }
    return cases;
}

int main(void) {
#ifdef NN_TEST_NEEDS_AVX2
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) {
        printf("test_net_ops: this CPU has no AVX2, skipped\n");
        return 77;
    }
#endif
    const int ns[] = {1, 3}, sizes[] = {1, 2, 3, 5, 6, 8}, cs[] = {1, 3, 16, 17, 32, 33, 64};
    int shapes = 0;
    for (size_t i = 0; i < sizeof ns / sizeof *ns; i++)
        for (size_t j = 0; j < sizeof sizes / sizeof *sizes; j++)
            for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k += 2)
                for (size_t l = 0; l < sizeof cs / sizeof *cs; l++, shapes++)
                    one_shape(ns[i], sizes[j], sizes[k] + 1, cs[l]);
    one_shape(2, 28, 28, 1);
    one_shape(2, 14, 14, 32);
    int gemv_cases = check_gemv();
    if (failures) {
        fprintf(stderr, "test_net_ops: %d failures\n", failures);
        return 1;
    }
    printf("test_net_ops: %d shapes, every op bit-identical to its scalar loop; "
           "%d GEMV cases within the bound of their sums, digest %016llx\n",
           shapes + 2, gemv_cases, gemv_digest);
    return 0;
}
