/* The statistics pass of the kernels alone, without the normalization that
 * follows it in training forward: where the per-plane cost of short planes
 * shows. Uses the library's internal entry point. S = 1 times the rows view
 * (channels-last or NC: N*H*W rows of C features).
 *
 *   bench_stats N C S [threads]      e.g. bench_stats 256 256 196 1
 *   bench_stats R C 1 [threads]      e.g. bench_stats 50176 256 1 1
 *
 * Prints the best of 15 calls after one warm-up, in ms, GB/s of x read, and
 * ns per plane. A tensor that fits in the cache measures the kernel's own
 * cost; a large one, the memory. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "internal.h"

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s N C S [threads]\n", argv[0]);
        return 2;
    }
    const long n = atol(argv[1]), c = atol(argv[2]), s = atol(argv[3]);
    const int threads = argc > 4 ? atoi(argv[4]) : 1;
    if (n < 1 || c < 1 || s < 1 || threads < 1) {
        fprintf(stderr, "bench_stats: N, C, S and threads must be positive\n");
        return 2;
    }
    bn_view v = {s > 1 ? BN_VIEW_PLANES : BN_VIEW_ROWS,
                 (size_t)n,
                 (size_t)c,
                 (size_t)s,
                 (size_t)(n * s),
                 (size_t)(n * c * s),
                 0,
                 {0}};
    v.ch = bn_chunking_for(&v);
    float *x = malloc(v.total * sizeof(float));
    void *buf = malloc(bn_workspace_bytes(&v));
    if (!x || !buf) {
        fprintf(stderr, "bench_stats: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < v.total; i++)
        x[i] = 1.0f + 0.01f * (float)(i % 977);
    bn_workspace ws = bn_workspace_carve(&v, buf);
    bn_fast_passes.batch_stats(&v, x, &ws, threads);
    double best = 1e30;
    for (int r = 0; r < 15; r++) {
        double t = seconds();
        bn_fast_passes.batch_stats(&v, x, &ws, threads);
        t = seconds() - t;
        if (t < best) best = t;
    }
    printf("stats %ldx%ldx%ld, %d thread(s): %.3f ms  %.1f GB/s  %.1f ns per %s\n", n, c, s,
           threads, 1e3 * best, (double)(v.total * sizeof(float)) / best / 1e9,
           1e9 * best / (double)(s > 1 ? n * c : n), s > 1 ? "plane" : "row");
    free(x), free(buf);
    return 0;
}
