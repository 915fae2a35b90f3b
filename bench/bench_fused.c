/* bench_fused: a training step of BN + ReLU and of BN + add + ReLU (forward
 * and backward), libbnorm's fused calls against the same work as separate
 * calls, the way a framework runs them (our BN, then an add pass, then a
 * ReLU pass; backward: a ReLU-backward pass that reads y, then our BN
 * backward), with the same rounds' copy bandwidth as the roofline.
 *
 *   bench_fused [--case SUBSTR] [--threads LIST]
 *
 * Per case and thread count: ROUNDS rounds, fused and unfused in turn in
 * every round, each the median of its repeats; the ratio is the median of
 * the rounds' own fused / unfused ratios. Traffic model, in tensor sizes
 * (the mask, 1/32 of one, not counted): fused forward 3 (x twice, y) + 1
 * with z, fused backward 7 (dy, g written and read twice, x twice, dx) + 0
 * with z (g is dz); unfused forward 3 + 2 per separate pass (+ 3 for the
 * add), backward 3 (ReLU backward) + 5. Not a test. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "bnorm.h"

#define ROUNDS 5

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    return v[n / 2];
}

#define TIME_MEDIAN(result, reps, body)                                                            \
    do {                                                                                           \
        double t_[32];                                                                             \
        for (int w_ = 0; w_ < 2; w_++) {                                                           \
            body;                                                                                  \
        }                                                                                          \
        for (int r_ = 0; r_ < (reps); r_++) {                                                      \
            double t0_ = now();                                                                    \
            body;                                                                                  \
            t_[r_] = now() - t0_;                                                                  \
        }                                                                                          \
        (result) = median(t_, (reps));                                                             \
    } while (0)

typedef struct {
    const char *name;
    int64_t n, c, h, w;
    bnorm_layout layout;
} bench_case;

/* The separate element-wise passes of an unfused framework, vectorized
 * (see CMakeLists.txt); an OpenMP loop only for more than one thread,
 * since the outlined loop of a one-thread region ran 2x slower here. */
#define PASS(threads, n, body)                                                                     \
    do {                                                                                           \
        if ((threads) > 1) {                                                                       \
            _Pragma("omp parallel for schedule(static) num_threads(threads)") for (long i = 0;     \
                                                                                   i < (long)(n);  \
                                                                                   i++) body;      \
        } else {                                                                                   \
            for (size_t i = 0; i < (n); i++)                                                       \
                body;                                                                              \
        }                                                                                          \
    } while (0)
static void add_pass(float *y, const float *z, size_t n, int threads) {
    PASS(threads, n, y[i] += z[i]);
}
static void relu_pass(float *y, size_t n, int threads) {
    PASS(threads, n, y[i] = y[i] > 0.0f ? y[i] : 0.0f);
}
/* dy is loaded whatever y is, so that the select vectorizes (a load under
 * the condition kept it a scalar branch). */
static void relu_backward_pass(float *g, const float *y, const float *dy, size_t n, int threads) {
    PASS(threads, n, {
        float d = dy[i];
        g[i] = y[i] > 0.0f ? d : 0.0f;
    });
}
static void copy_pass(float *dst, const float *src, size_t n, int threads) {
    PASS(threads, n, dst[i] = src[i]);
}

int main(int argc, char **argv) {
    const char *only = NULL;
    int threads[8] = {1, 2}, n_threads = 2;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--case") && i + 1 < argc) {
            only = argv[++i];
        } else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            n_threads = 0;
            for (char *t = strtok(argv[++i], ","); t && n_threads < 8; t = strtok(NULL, ","))
                threads[n_threads++] = atoi(t);
        } else {
            fprintf(stderr, "usage: %s [--case SUBSTR] [--threads 1,2]\n", argv[0]);
            return 2;
        }
    }
    const bench_case cases[] = {
        {"32x64x56x56-nchw", 32, 64, 56, 56, BNORM_LAYOUT_CHANNELS_FIRST},
        {"32x64x56x56-nhwc", 32, 64, 56, 56, BNORM_LAYOUT_CHANNELS_LAST},
        {"64x128x56x56-nchw", 64, 128, 56, 56, BNORM_LAYOUT_CHANNELS_FIRST},
        {"64x128x56x56-nhwc", 64, 128, 56, 56, BNORM_LAYOUT_CHANNELS_LAST},
    };
    size_t most = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t e = (size_t)(cases[i].n * cases[i].c * cases[i].h * cases[i].w);
        most = e > most ? e : most;
    }
    float *x = aligned_alloc(64, most * 4), *z = aligned_alloc(64, most * 4);
    float *y = aligned_alloc(64, most * 4), *dy = aligned_alloc(64, most * 4);
    float *dx = aligned_alloc(64, most * 4), *dz = aligned_alloc(64, most * 4);
    unsigned char *mask = aligned_alloc(64, most / 8 + 64);
    if (!x || !z || !y || !dy || !dx || !dz || !mask) return 1;
    for (size_t i = 0; i < most; i++) {
        uint32_t s = (uint32_t)i * 2654435761u;
        s ^= s >> 13, s *= 0x5bd1e995u, s ^= s >> 15;
        x[i] = (float)(s & 0xffff) / 65536.0f * 2.0f - 0.5f;
        z[i] = (float)(s >> 16) / 65536.0f - 0.5f, dy[i] = x[i] * 0.5f + z[i];
    }
    printf(
        "fused: bnorm_fused_* ; unfused: bnorm_forward_training + separate add and ReLU passes,\n"
        "ReLU-backward pass (reads y) + bnorm_backward_training. ms = median of repeats, best\n"
        "round; ratio = median over %d rounds of fused / unfused; %%copy = fused model GB/s / "
        "copy GB/s\n\n",
        ROUNDS);
    printf("%-19s %-4s %-9s %9s %9s %7s %7s %7s\n", "case", "thr", "ops", "fused ms", "unfused",
           "ratio", "copy", "%copy");
    for (int ti = 0; ti < n_threads; ti++)
        for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
            const bench_case *bc = &cases[ci];
            if (only && !strstr(bc->name, only)) continue;
            bnorm_shape s = bc->layout == BNORM_LAYOUT_CHANNELS_LAST
                                ? bnorm_shape_nhwc(bc->n, bc->h, bc->w, bc->c)
                                : bnorm_shape_nchw(bc->n, bc->c, bc->h, bc->w);
            bnorm_params p = bnorm_params_default();
            p.threads = threads[ti];
            size_t wsz, C = (size_t)bc->c, n = (size_t)(bc->n * bc->c * bc->h * bc->w);
            bnorm_workspace_size(&s, &p, &wsz);
            void *ws = malloc(wsz);
            float *prm = malloc(6 * C * 4), *g = prm, *b = prm + C, *sm = prm + 2 * C,
                  *si = prm + 3 * C, *dg = prm + 4 * C, *db = prm + 5 * C;
            for (size_t k = 0; k < C; k++)
                g[k] = 1.0f, b[k] = 0.1f;
            for (int add = 0; add < 2; add++) {
                bnorm_fusion fu = {BNORM_FUSE_RELU | (add ? BNORM_FUSE_ADD : 0u), BNORM_DTYPE_F32};
                double fused = INFINITY, unfused = INFINITY, copy = 0.0, ratios[ROUNDS];
                int reps = n * 4 > (64u << 20) ? 5 : 11, t = threads[ti];
                for (int r = 0; r < ROUNDS; r++) {
                    double tf, tu, tc;
                    TIME_MEDIAN(tf, reps, {
                        bnorm_fused_forward_training(&s, &p, &fu, x, z, g, b, y, sm, si, NULL, mask,
                                                     ws, wsz);
                        bnorm_fused_backward_training(&s, &p, &fu, x, dy, mask, g, sm, si, dx, dz,
                                                      dg, db, ws, wsz);
                    });
                    TIME_MEDIAN(tu, reps, {
                        bnorm_forward_training(&s, &p, x, g, b, y, sm, si, NULL, ws, wsz);
                        if (add) add_pass(y, z, n, t);
                        relu_pass(y, n, t);
                        relu_backward_pass(dz, y, dy, n, t); /* dz: the add passes g through */
                        bnorm_backward_training(&s, &p, x, dz, g, sm, si, dx, dg, db, ws, wsz);
                    });
                    TIME_MEDIAN(tc, 7, copy_pass(dx, x, n, t));
                    ratios[r] = tf / tu;
                    fused = tf < fused ? tf : fused, unfused = tu < unfused ? tu : unfused;
                    copy = 8.0 * n / tc / 1e9 > copy ? 8.0 * n / tc / 1e9 : copy;
                }
                double traffic = (3.0 + add) + 7.0; /* tensor sizes, see the header */
                double gbps = traffic * 4.0 * (double)n / fused / 1e9;
                printf("%-19s %-4d %-9s %9.3f %9.3f %7.3f %7.1f %6.0f%%\n", bc->name, t,
                       add ? "add+relu" : "relu", 1e3 * fused, 1e3 * unfused,
                       median(ratios, ROUNDS), copy, 100.0 * gbps / copy);
            }
            free(ws), free(prm);
        }
    free(x), free(z), free(y), free(dy), free(dx), free(dz), free(mask);
    return 0;
}
