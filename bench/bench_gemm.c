/* The convolutions' matrix products (net/gemm.c) against OpenBLAS's SGEMM on
 * the residual CNN's shapes, one thread, the two taking turns in each
 * repetition. For each shape and each of the three products of a
 * convolution (forward A W, weight gradient A^T G, input gradient G W^T)
 * it prints GFLOP/s of both and the median of the per-repetition ratios
 * ours / OpenBLAS (below 1: ours is faster), and the largest difference
 * between the two results.
 *
 * A second table times a 3x3 convolution's forward over a batch of 64
 * images of each stage as the network ran it before (im2col of a chunk of
 * images, then one product) and as it runs it now (each image padded by a
 * pixel, the product reading its rows in place, nn_gemm_runs, a call per
 * output row), and computed directly (net/narrow.c, which the network uses
 * for 16 and 32 channels), taking turns, with GFLOP/s of each and the
 * ratios in place / im2col and direct / in place.
 *
 *   bench_gemm [REPETITIONS]
 */
#define _POSIX_C_SOURCE 200809L
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "gemm.h"
#include "narrow.h"
#include "ops.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static float *filled(size_t count, unsigned *state) {
    float *v = malloc(count * sizeof(float));
    if (!v) {
        fprintf(stderr, "bench_gemm: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < count; i++) {
        *state = *state * 1664525u + 1013904223u;
        v[i] = (float)(*state >> 8) / 16777216.0f - 0.5f;
    }
    return v;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double worst_difference(const float *x, const float *y, size_t count) {
    double worst = 0.0;
    for (size_t i = 0; i < count; i++)
        worst = fmax(worst, fabs((double)x[i] - y[i]));
    return worst;
}

enum { FORWARD, WEIGHT_GRAD, INPUT_GRAD, PRODUCTS };
static const char *const product_name[PRODUCTS] = {"forward A W", "weight grad A^T G",
                                                   "input grad G W^T"};

/* One repetition of one product on both sides; returns the two times. */
static void run(int which, int M, int K, int N, const float *A, const float *W, const float *G,
                float *ours, float *theirs, float *work, double t[2]) {
    double t0 = now();
    if (which == FORWARD)
        nn_gemm(M, N, K, A, (size_t)K, 0, W, (size_t)N, 0.0f, ours, (size_t)N);
    else if (which == WEIGHT_GRAD)
        nn_gemm_at_b(K, N, M, A, (size_t)K, G, (size_t)N, 0.0f, ours, (size_t)N, work);
    else {
        nn_transpose(K, N, W, (size_t)N, work);
        nn_gemm(M, K, N, G, (size_t)N, 0, work, (size_t)K, 0.0f, ours, (size_t)K);
    }
    double t1 = now();
    if (which == FORWARD)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, A, K, W, N, 0.0f,
                    theirs, N);
    else if (which == WEIGHT_GRAD)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, N, M, 1.0f, A, K, G, N, 0.0f,
                    theirs, N);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, K, N, 1.0f, G, N, W, N, 0.0f,
                    theirs, K);
    t[0] = t1 - t0, t[1] = now() - t1;
}

/* One 3x3 convolution of stride 1, side x side x c to c channels, over a
 * batch of IMAGES: t[0] with the im2col of CHUNK images at a time, t[1]
 * reading the padded input in place, t[2] directly. */
#define IMAGES 64
#define CHUNK  4
static void conv_forward(int side, int c, const float *in, const float *w, float *col, float *pad,
                         float *out, double t[3]) {
    const size_t pix = (size_t)side * side, K = (size_t)9 * c, pad_row = (size_t)(side + 2) * c;
    double t0 = now();
    for (int b = 0; b < IMAGES; b += CHUNK) {
        nn_im2col(col, in + b * pix * c, CHUNK, side, side, c, 3, 1, 0, side);
        nn_gemm((int)(CHUNK * pix), c, (int)K, col, K, 0, w, (size_t)c, 0.0f, out + b * pix * c,
                (size_t)c);
    }
    double t1 = now();
    for (int b = 0; b < IMAGES; b++) {
        nn_pad_rows(pad, in + b * pix * c, side, side, c, 0, side + 2);
        for (int y = 0; y < side; y++)
            nn_gemm_runs(side, c, 3, 3 * c, pad + y * pad_row, (size_t)c, pad_row, w, (size_t)c,
                         out + (b * pix + (size_t)y * side) * c, (size_t)c);
    }
    double t2 = now();
    for (int b = 0; b < IMAGES; b++) {
        nn_pad_rows(pad, in + b * pix * c, side, side, c, 0, side + 2);
        for (int y = 0; y < side; y++)
            nn_narrow_row(side, c, c, pad + y * pad_row, pad_row, w,
                          out + (b * pix + (size_t)y * side) * c);
    }
    t[0] = t1 - t0, t[1] = t2 - t1, t[2] = now() - t2;
}

static void conv_forward_table(int reps) {
    static const int stages[][2] = {{28, 16}, {14, 32}, {7, 64}};
    printf("\n%-18s %10s %10s %10s %8s %8s %8s %8s\n", "3x3 conv forward", "im2col ms",
           "inplace ms", "direct ms", "GF/s", "GF/s", "inplace", "direct");
    printf("%-18s %10s %10s %10s %8s %8s %8s %8s\n", "", "", "", "", "inplace", "direct", "/im2col",
           "/inplace");
    unsigned state = 7;
    for (size_t s = 0; s < sizeof stages / sizeof *stages; s++) {
        int side = stages[s][0], c = stages[s][1];
        size_t pix = (size_t)side * side;
        float *in = filled(IMAGES * pix * c, &state), *w = filled((size_t)9 * c * c, &state);
        float *col = filled(CHUNK * pix * 9 * c, &state);
        float *pad = filled((size_t)(side + 2) * (side + 2) * c, &state);
        float *out = filled(IMAGES * pix * c, &state);
        double *ratio = malloc((size_t)2 * reps * sizeof(double)), best[3] = {1e30, 1e30, 1e30};
        double t[3], *ratio2 = ratio + reps;
        if (!ratio) exit(1);
        conv_forward(side, c, in, w, col, pad, out, t); /* warm-up */
        for (int r = 0; r < reps; r++) {
            conv_forward(side, c, in, w, col, pad, out, t);
            for (int i = 0; i < 3; i++)
                best[i] = fmin(best[i], t[i]);
            ratio[r] = t[1] / t[0], ratio2[r] = t[2] / t[1];
        }
        qsort(ratio, (size_t)reps, sizeof *ratio, by_value);
        qsort(ratio2, (size_t)reps, sizeof *ratio2, by_value);
        double flops = 2.0 * IMAGES * (double)pix * 9.0 * c * c;
        char label[32];
        snprintf(label, sizeof label, "%d x %d x %d x %d", IMAGES, side, side, c);
        printf("%-18s %10.3f %10.3f %10.3f %8.1f %8.1f %8.2f %8.2f\n", label, 1e3 * best[0],
               1e3 * best[1], 1e3 * best[2], flops / best[1] * 1e-9, flops / best[2] * 1e-9,
               ratio[reps / 2], ratio2[reps / 2]);
        free(in), free(w), free(col), free(pad), free(out), free(ratio);
    }
    printf("(ms: best of %d; GFLOP/s from the best; ratios: medians of the per-repetition "
           "ratios, one thread)\n",
           reps);
}

int main(int argc, char **argv) {
    int reps = argc > 1 ? atoi(argv[1]) : 15;
    if (reps < 1 || reps > 10000) {
        fprintf(stderr, "usage: bench_gemm [REPETITIONS (1-10000)]\n");
        return 2;
    }
    openblas_set_num_threads(1);
    /* M (pixels of the GEMM's samples), K (taps), N (channels): the residual
     * CNN's convolutions as its training runs them (im2col chunks of 256 KiB
     * or a whole slice), by stage. */
    static const int shapes[][3] = {{1568, 9, 16},   {784, 144, 16},  {3136, 144, 16},
                                    {1568, 144, 32}, {1568, 288, 32}, {784, 288, 64},
                                    {784, 576, 64},  {1568, 16, 32}};
    printf("%-18s %-18s %9s %9s %7s %9s\n", "M x K x N", "product", "ours GF/s", "BLAS GF/s",
           "ratio", "max diff");
    unsigned state = 1;
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        int M = shapes[s][0], K = shapes[s][1], N = shapes[s][2];
        size_t big = (size_t)M * (K > N ? K : N);
        float *A = filled((size_t)M * K, &state), *W = filled((size_t)K * N, &state);
        float *G = filled((size_t)M * N, &state), *ours = filled(big, &state);
        float *theirs = filled(big, &state), *work = filled((size_t)K * N, &state);
        double *ratio = malloc((size_t)reps * sizeof(double));
        if (!ratio) return 1;
        for (int which = 0; which < PRODUCTS; which++) {
            double best[2] = {1e30, 1e30}, t[2];
            run(which, M, K, N, A, W, G, ours, theirs, work, t); /* warm-up */
            for (int r = 0; r < reps; r++) {
                run(which, M, K, N, A, W, G, ours, theirs, work, t);
                best[0] = fmin(best[0], t[0]), best[1] = fmin(best[1], t[1]);
                ratio[r] = t[0] / t[1];
            }
            qsort(ratio, (size_t)reps, sizeof *ratio, by_value);
            size_t out = which == INPUT_GRAD ? (size_t)M * K
                         : which == FORWARD  ? (size_t)M * N
                                             : (size_t)K * N;
            double flop = 2.0 * M * K * N;
            char label[32];
            snprintf(label, sizeof label, "%d x %d x %d", M, K, N);
            printf("%-18s %-18s %9.1f %9.1f %7.2f %9.2g\n", label, product_name[which],
                   1e-9 * flop / best[0], 1e-9 * flop / best[1], ratio[reps / 2],
                   worst_difference(ours, theirs, out));
        }
        free(A), free(W), free(G), free(ours), free(theirs), free(work), free(ratio);
    }
    printf("(GF/s: best of %d; ratio: median of the per-repetition ratios ours / OpenBLAS "
           "(%s), one thread)\n",
           reps, openblas_get_corename());
    conv_forward_table(reps);
    return 0;
}
