/* Small tensors, where the cost of a call is its overhead rather than its
 * memory traffic: microseconds per call of training forward and inference
 * on an (N, C) batch, the best of 5 batches of 2000 calls (N = 1: inference
 * only, as for one sample of a deployed model).
 *
 *   bench_small N C [threads] [--exact]     e.g. bench_small 64 256 2
 *
 * --exact sets BNORM_EXACT_THREADS, so that `threads` are used however
 * small the tensor; without it the library picks at most one thread per
 * 128 Ki values. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bnorm.h"

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

#define CALLS 2000

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s N C [threads] [--exact]\n", argv[0]);
        return 2;
    }
    const long n = atol(argv[1]), c = atol(argv[2]);
    const int threads = argc > 3 ? atoi(argv[3]) : 1;
    const int exact = argc > 4 && strcmp(argv[4], "--exact") == 0;
    if (n < 1 || c < 1 || threads < 0) {
        fprintf(stderr, "bench_small: N >= 1, C >= 1, threads >= 0\n");
        return 2;
    }
    const size_t total = (size_t)(n * c);
    float *x = malloc(total * sizeof(float)), *y = malloc(total * sizeof(float));
    float *par = calloc(6 * (size_t)c, sizeof(float));
    if (!x || !y || !par) return 1;
    float *gamma = par, *beta = par + c, *mean = par + 2 * c, *invstd = par + 3 * c;
    float *rmean = par + 4 * c, *rvar = par + 5 * c;
    for (size_t i = 0; i < total; i++)
        x[i] = 0.1f * (float)(i % 17);
    for (long f = 0; f < c; f++)
        gamma[f] = 1.0f, rvar[f] = 1.0f;
    bnorm_shape shape = bnorm_shape_nc(n, c);
    bnorm_params p = bnorm_params_default();
    p.threads = threads;
    if (exact) p.flags |= BNORM_EXACT_THREADS;
    size_t wsz = 0;
    if (bnorm_workspace_size(&shape, &p, &wsz) != BNORM_OK) return 1;
    void *ws = malloc(wsz);
    bnorm_running_stats run = {rmean, rvar, 0};
    double best_train = 1e30, best_infer = 1e30;
    for (int rep = 0; rep < 5; rep++) {
        double t = seconds();
        for (int r = 0; r < CALLS && n > 1; r++) /* training needs two values per feature */
            bnorm_forward_training(&shape, &p, x, gamma, beta, y, mean, invstd, &run, ws, wsz);
        t = (seconds() - t) / CALLS;
        best_train = t < best_train ? t : best_train;
        t = seconds();
        for (int r = 0; r < CALLS; r++)
            bnorm_forward_inference(&shape, &p, x, gamma, beta, rmean, rvar, y, ws, wsz);
        t = (seconds() - t) / CALLS;
        best_infer = t < best_infer ? t : best_infer;
    }
    printf("%ldx%ld, threads %d%s: training forward %.2f us, inference %.2f us\n", n, c, threads,
           exact ? " (exact)" : "", 1e6 * best_train, 1e6 * best_infer);
    free(x), free(y), free(par), free(ws);
    return 0;
}
