/* channel_groups: can a plain channels-last (NHWC) training forward read x
 * from memory once, as oneDNN's blocked layout does, by taking the channels
 * in groups small enough that a group's values stay in the last-level cache
 * between the statistics pass and the normalize pass?
 *
 * A standalone model of the two passes (not the library's kernels: plain
 * float sums, no chunking), timed both ways on the same tensor:
 *   whole     statistics over every row, then normalize every row: x is
 *             read twice from memory, in whole rows.
 *   groups G  for each group of G channels: its statistics, then its
 *             normalization, while the group's N*H*W*G values are still in
 *             cache: x read once from memory, but in runs of G floats a
 *             row (C floats) apart.
 * Threads take whole groups (groups) or shares of the rows (whole).
 *
 *   channel_groups [N H W C] [threads]      default 64 56 56 128, 1
 *
 * Prints the median of 7 runs of each, ms and GB/s under each one's own
 * traffic (whole: 3 tensor sizes, groups: 2). Not a test. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Statistics then normalization of channels [c0, c0 + g) over rows [r0, r1)
 * of x[rows][C]; the statistics pass's sums stay in a small array. */
/* Whole rows: every channel's sums in a small array (L1), row by row. */
static void stats_rows(const float *restrict x, size_t r0, size_t r1, size_t C, float *restrict sum,
                       float *restrict sq) {
    for (size_t j = 0; j < C; j++)
        sum[j] = 0.0f, sq[j] = 0.0f;
    for (size_t r = r0; r < r1; r++) {
        const float *p = x + r * C;
        for (size_t j = 0; j < C; j++)
            sum[j] += p[j], sq[j] += p[j] * p[j];
    }
}

/* A group, 16 channels at a time with their sums in registers (a group is
 * a multiple of 16 wide). */
static void stats_cols(const float *restrict x, size_t r0, size_t r1, size_t C, size_t c0, size_t g,
                       float *restrict sum, float *restrict sq) {
    for (size_t j0 = 0; j0 < g; j0 += 16) {
        float s[16] = {0}, q[16] = {0};
        for (size_t r = r0; r < r1; r++) {
            const float *p = x + r * C + c0 + j0;
            for (size_t j = 0; j < 16; j++)
                s[j] += p[j], q[j] += p[j] * p[j];
        }
        for (size_t j = 0; j < 16; j++)
            sum[j0 + j] = s[j], sq[j0 + j] = q[j];
    }
}

static void normalize_cols(const float *restrict x, float *restrict y, size_t r0, size_t r1,
                           size_t C, size_t c0, size_t g, const float *restrict a,
                           const float *restrict b) {
    for (size_t r = r0; r < r1; r++) {
        const float *p = x + r * C + c0;
        float *q = y + r * C + c0;
        for (size_t j = 0; j < g; j++)
            q[j] = p[j] * a[j] + b[j];
    }
}

static void coefficients(const float *sum, const float *sq, size_t g, double m, float *a,
                         float *b) {
    for (size_t j = 0; j < g; j++) {
        double mean = sum[j] / m, var = sq[j] / m - mean * mean;
        a[j] = (float)(1.0 / (var + 1e-5)), b[j] = (float)(-mean * a[j]);
    }
}

int main(int argc, char **argv) {
    size_t N = 64, H = 56, W = 56, C = 128;
    int threads = 1;
    if (argc >= 5)
        N = (size_t)atol(argv[1]), H = (size_t)atol(argv[2]), W = (size_t)atol(argv[3]),
        C = (size_t)atol(argv[4]);
    if (argc >= 6) threads = atoi(argv[5]);
    if (!N || !H || !W || !C || C > 4096 || threads < 1) {
        fprintf(stderr, "usage: channel_groups [N H W C] [threads]\n");
        return 2;
    }
    const size_t rows = N * H * W, total = rows * C;
    float *x = aligned_alloc(64, total * 4), *y = aligned_alloc(64, total * 4);
    float *scratch = malloc((size_t)threads * 4 * C * sizeof(float));
    if (!x || !y || !scratch) return 1;
    for (size_t i = 0; i < total; i++)
        x[i] = (float)(i % 1013) * 1e-3f, y[i] = 0.0f;
    const double bytes = (double)total * 4.0;
    printf("%zux%zux%zux%zu NHWC (%.0f MB), %d thread(s); median of 7 runs\n", N, H, W, C,
           bytes / 1e6, threads);
    printf("%-10s %9s %9s\n", "way", "ms", "GB/s");
    static const size_t groups[] = {0, 1, 2, 4, 8, 16, 32};
    for (size_t k = 0; k < sizeof groups / sizeof groups[0]; k++) {
        const size_t G = groups[k] * 16; /* 0: whole */
        if (G > C) break;
        double t[7];
        for (int run = 0; run < 7; run++) {
            double t0 = now();
            if (!G) {
                /* Per-thread sums over a share of the rows, merged; then
                 * every row normalized. */
                float *sum = scratch, *sq = scratch + C, *a = scratch + 2 * C, *b = scratch + 3 * C;
                float *part = calloc((size_t)threads * 2 * C, sizeof(float));
#pragma omp parallel num_threads(threads)
                {
                    int tid = 0, nt = 1;
#ifdef _OPENMP
                    tid = omp_get_thread_num(), nt = omp_get_num_threads();
#endif
                    size_t r0 = rows * (size_t)tid / (size_t)nt,
                           r1 = rows * (size_t)(tid + 1) / (size_t)nt;
                    stats_rows(x, r0, r1, C, part + (size_t)tid * 2 * C,
                               part + (size_t)tid * 2 * C + C);
#pragma omp barrier
#pragma omp single
                    {
                        memset(sum, 0, 2 * C * sizeof(float));
                        for (int s = 0; s < nt; s++)
                            for (size_t j = 0; j < C; j++)
                                sum[j] += part[(size_t)s * 2 * C + j],
                                    sq[j] += part[(size_t)s * 2 * C + C + j];
                        coefficients(sum, sq, C, (double)rows, a, b);
                    }
                    normalize_cols(x, y, r0, r1, C, 0, C, a, b);
                }
                free(part);
            } else {
#pragma omp parallel for schedule(static) num_threads(threads)
                for (long gi = 0; gi < (long)(C / G); gi++) {
                    int tid = 0;
#ifdef _OPENMP
                    tid = omp_get_thread_num();
#endif
                    float *s4 = scratch + (size_t)tid * 4 * C;
                    float *sum = s4, *sq = s4 + G, *a = s4 + 2 * G, *b = s4 + 3 * G;
                    stats_cols(x, 0, rows, C, (size_t)gi * G, G, sum, sq);
                    coefficients(sum, sq, G, (double)rows, a, b);
                    normalize_cols(x, y, 0, rows, C, (size_t)gi * G, G, a, b);
                }
            }
            t[run] = now() - t0;
        }
        qsort(t, 7, sizeof(double), cmp);
        const double traffic = G ? 2.0 : 3.0;
        char name[16];
        if (G)
            snprintf(name, sizeof name, "groups %zu", G);
        else
            snprintf(name, sizeof name, "whole");
        printf("%-10s %9.3f %9.1f\n", name, 1e3 * t[3], traffic * bytes / t[3] / 1e9);
    }
    free(x), free(y), free(scratch);
    return 0;
}
