/* bench_passes: libbnorm's calls on a tensor larger than the cache, pass
 * by pass, beside plain streaming loops with the same memory traffic: the
 * roofline each pass could reach on this machine and thread count.
 *
 *   bench_passes [nchw|nhwc] [N C H W] [threads] [rounds]
 *
 * Calls, each timed in every round in turn (best of 3 calls; the table
 * gives the median over rounds): inference (normalize only) and training
 * forward (statistics, then normalize), plain and with the fused ReLU
 * (which writes its mask), and the training backward, plain and through
 * the mask. Streams, in the same rounds: read one tensor (a sum), read one
 * and write one (y = a * x + b, non-temporal stores, as the library's large
 * outputs), read two (a dot product), read two and write one. A training
 * forward moves what "read 1" and "read 1 write 1" move, a backward "read
 * 2" and "read 2 write 1": the roofline column adds those streams' times.
 * One core's loads from memory run at a different rate than its
 * reads-with-writes, so a pass's roofline is the stream of its own traffic,
 * not a copy. Not a test. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

#include "bnorm.h"

typedef float v16 __attribute__((vector_size(64), aligned(4), __may_alias__));
#if defined(__x86_64__) && defined(__GNUC__)
#define STREAMS_DISPATCH                                                                           \
    __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#define STORE_STREAM(p, v)                                                                         \
    do {                                                                                           \
        union {                                                                                    \
            v16 w;                                                                                 \
            __m128 q[4];                                                                           \
        } u_ = {(v)};                                                                              \
        for (int k_ = 0; k_ < 4; k_++)                                                             \
            _mm_stream_ps((p) + 4 * k_, u_.q[k_]);                                                 \
    } while (0)
#define FENCE() _mm_sfence()
#else
#define STREAMS_DISPATCH
#define STORE_STREAM(p, v) (*(v16 *)(void *)(p) = (v))
#define FENCE()            ((void)0)
#endif
#define LDV(p) (*(const v16 *)(const void *)(p))

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* The streams, on values [i0, i1) (multiples of 64). */
STREAMS_DISPATCH static float read1(const float *x, size_t i0, size_t i1) {
    v16 a = {0}, b = {0}, c = {0}, d = {0};
    for (size_t i = i0; i < i1; i += 64)
        a += LDV(x + i), b += LDV(x + i + 16), c += LDV(x + i + 32), d += LDV(x + i + 48);
    a += b + c + d;
    return a[0] + a[15];
}
STREAMS_DISPATCH static void read1_write1(const float *x, float *y, size_t i0, size_t i1) {
    for (size_t i = i0; i < i1; i += 16)
        STORE_STREAM(y + i, LDV(x + i) * 1.5f + 0.5f);
}
STREAMS_DISPATCH static float read2(const float *x, const float *dy, size_t i0, size_t i1) {
    v16 a = {0}, b = {0}, c = {0}, d = {0};
    for (size_t i = i0; i < i1; i += 32)
        a += LDV(x + i) * LDV(dy + i), b += LDV(dy + i), c += LDV(x + i + 16) * LDV(dy + i + 16),
            d += LDV(dy + i + 16);
    a += b + c + d;
    return a[0] + a[15];
}
STREAMS_DISPATCH static void read2_write1(const float *x, const float *dy, float *dx, size_t i0,
                                          size_t i1) {
    for (size_t i = i0; i < i1; i += 16)
        STORE_STREAM(dx + i, LDV(x + i) * 1.5f + LDV(dy + i) * 0.5f + 0.25f);
}

#if defined(__x86_64__) && defined(__GNUC__)
/* The writing streams with each line in one 64-byte non-temporal store, where
 * the CPU has them (AVX-512), as the library's streaming passes store it:
 * on Zen 5, four 16-byte stores per line took 5-20% longer. */
#define LINE_STREAMS 1
#define LINE_TARGET  __attribute__((target("avx512f")))
LINE_TARGET static void read1_write1_lines(const float *x, float *y, size_t i0, size_t i1) {
    for (size_t i = i0; i < i1; i += 16)
        _mm512_stream_ps(y + i, (__m512)(LDV(x + i) * 1.5f + 0.5f));
}
LINE_TARGET static void read2_write1_lines(const float *x, const float *dy, float *dx, size_t i0,
                                           size_t i1) {
    for (size_t i = i0; i < i1; i += 16)
        _mm512_stream_ps(dx + i, (__m512)(LDV(x + i) * 1.5f + LDV(dy + i) * 0.5f + 0.25f));
}
#else
#define LINE_STREAMS 0
#endif

static volatile float sink;

/* stream k over the tensor, a contiguous share per thread. */
static void run_stream(int k, const float *x, const float *dy, float *out, size_t n, int threads) {
#ifdef _OPENMP
#pragma omp parallel num_threads(threads) if (threads > 1)
#endif
    {
        size_t t = 0, nt = 1;
#ifdef _OPENMP
        t = (size_t)omp_get_thread_num(), nt = (size_t)omp_get_num_threads();
#endif
        size_t blocks = n / 64, i0 = blocks * t / nt * 64, i1 = blocks * (t + 1) / nt * 64;
        /* Each thread's share is whole lines of 64-byte aligned buffers: the
         * line stores stay aligned. */
        int lines = 0;
#if LINE_STREAMS
        lines = k % 2 == 1 && __builtin_cpu_supports("avx512f");
        if (lines && k == 1) read1_write1_lines(x, out, i0, i1);
        if (lines && k == 3) read2_write1_lines(x, dy, out, i0, i1);
#endif
        if (!lines) switch (k) {
            case 0: sink = read1(x, i0, i1); break;
            case 1: read1_write1(x, out, i0, i1); break;
            case 2: sink = read2(x, dy, i0, i1); break;
            default: read2_write1(x, dy, out, i0, i1); break;
            }
        FENCE();
    }
}

enum {
    INFER,
    INFER_RELU,
    FWD,
    FWD_RELU,
    BWD,
    BWD_RELU,
    READ1,
    READ1_WRITE1,
    READ2,
    READ2_WRITE1,
    OPS
};
static const char *names[OPS] = {
    "inference",         "inference + ReLU",     "training forward", "forward + ReLU",
    "training backward", "backward + ReLU",      "stream read 1",    "stream read 1 write 1",
    "stream read 2",     "stream read 2 write 1"};

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    const int nhwc = argc > 1 && strcmp(argv[1], "nhwc") == 0;
    int64_t N = 64, C = 128, H = 56, W = 56;
    if (argc > 5) N = atoll(argv[2]), C = atoll(argv[3]), H = atoll(argv[4]), W = atoll(argv[5]);
    const int threads = argc > 6 ? atoi(argv[6]) : 1, rounds = argc > 7 ? atoi(argv[7]) : 7;
    if (N < 1 || C < 1 || H < 1 || W < 1 || threads < 1 || rounds < 1 || rounds > 64) {
        fprintf(stderr, "usage: %s [nchw|nhwc] [N C H W] [threads] [rounds <= 64]\n", argv[0]);
        return 2;
    }
    const bnorm_shape sh = nhwc ? bnorm_shape_nhwc(N, H, W, C) : bnorm_shape_nchw(N, C, H, W);
    const size_t n = (size_t)(N * C * H * W), c = (size_t)C, padded = (n + 63) / 64 * 64;
    bnorm_params p = bnorm_params_default();
    p.threads = threads;
    size_t wsz = 0, mbytes = 0;
    if (bnorm_workspace_size(&sh, &p, &wsz) != BNORM_OK ||
        bnorm_fused_mask_size(&sh, &mbytes) != BNORM_OK) {
        fprintf(stderr, "bench_passes: bad shape\n");
        return 2;
    }
    float *x = aligned_alloc(64, padded * 4), *y = aligned_alloc(64, padded * 4),
          *dy = aligned_alloc(64, padded * 4), *dx = aligned_alloc(64, padded * 4);
    float *prm = malloc(8 * c * sizeof(float));
    void *ws = malloc(wsz ? wsz : 1), *mask = malloc(mbytes);
    if (!x || !y || !dy || !dx || !prm || !ws || !mask) {
        fprintf(stderr, "bench_passes: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < padded; i++) {
        x[i] = (float)((i * 2654435761u) % 1000) / 500.0f - 1.0f;
        dy[i] = (float)((i * 40503u) % 1000) / 500.0f - 1.0f;
        y[i] = dx[i] = 0.0f;
    }
    float *g = prm, *b = prm + c, *sm = prm + 2 * c, *si = prm + 3 * c, *rm = prm + 4 * c,
          *rv = prm + 5 * c, *dg = prm + 6 * c, *db = prm + 7 * c;
    for (size_t k = 0; k < c; k++)
        g[k] = 1.0f, b[k] = 0.1f, rm[k] = 0.0f, rv[k] = 1.0f;
    const bnorm_fusion relu = {BNORM_FUSE_RELU, BNORM_DTYPE_F32};
    static double t[OPS][64];
    for (int r = 0; r < rounds; r++)
        for (int o = 0; o < OPS; o++) {
            double best = 1e30;
            for (int k = 0; k < 3; k++) {
                double t0 = now();
                bnorm_status st = BNORM_OK;
                switch (o) {
                case INFER:
                    st = bnorm_forward_inference(&sh, &p, x, g, b, rm, rv, y, ws, wsz);
                    break;
                case INFER_RELU:
                    st = bnorm_fused_forward_inference(&sh, &p, &relu, x, NULL, g, b, rm, rv, y, ws,
                                                       wsz);
                    break;
                case FWD:
                    st = bnorm_forward_training(&sh, &p, x, g, b, y, sm, si, NULL, ws, wsz);
                    break;
                case FWD_RELU:
                    st = bnorm_fused_forward_training(&sh, &p, &relu, x, NULL, g, b, y, sm, si,
                                                      NULL, mask, ws, wsz);
                    break;
                case BWD:
                    st = bnorm_backward_training(&sh, &p, x, dy, g, sm, si, dx, dg, db, ws, wsz);
                    break;
                case BWD_RELU:
                    st = bnorm_fused_backward_training(&sh, &p, &relu, x, dy, mask, g, sm, si, dx,
                                                       NULL, dg, db, ws, wsz);
                    break;
                default: run_stream(o - READ1, x, dy, o == READ1_WRITE1 ? y : dx, padded, threads);
                }
                double dt = now() - t0;
                if (st != BNORM_OK) {
                    fprintf(stderr, "bench_passes: %s\n", bnorm_status_str(st));
                    return 1;
                }
                best = dt < best ? dt : best;
            }
            t[o][r] = best;
        }
    double med[OPS];
    for (int o = 0; o < OPS; o++) {
        qsort(t[o], (size_t)rounds, sizeof(double), cmp_double);
        med[o] = t[o][rounds / 2];
    }
    const double mb = 4.0 * (double)n / 1e6;
    const double traffic[OPS] = {2, 2, 3, 3, 5, 5, 1, 2, 2, 3};
    const double fwd_roof = med[READ1] + med[READ1_WRITE1],
                 bwd_roof = med[READ2] + med[READ2_WRITE1];
    const double roof[OPS] = {med[READ1_WRITE1], med[READ1_WRITE1], fwd_roof,   fwd_roof,
                              bwd_roof,          bwd_roof,          med[READ1], med[READ1_WRITE1],
                              med[READ2],        med[READ2_WRITE1]};
    printf("%s %lldx%lldx%lldx%lld (%.1f MB), %d thread(s), median of %d rounds\n",
           nhwc ? "nhwc" : "nchw", (long long)N, (long long)C, (long long)H, (long long)W, mb,
           threads, rounds);
    printf("%-22s %9s %9s %12s %10s\n", "", "ms", "GB/s", "roofline ms", "/roofline");
    for (int o = 0; o < OPS; o++)
        printf("%-22s %9.3f %9.1f %12.3f %10.2f\n", names[o], 1e3 * med[o],
               traffic[o] * mb / 1e3 / med[o], 1e3 * roof[o], med[o] / roof[o]);
    free(x), free(y), free(dy), free(dx), free(prm), free(ws), free(mask);
    return 0;
}
