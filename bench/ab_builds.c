/* Two builds of the shared library in one process, taking turns: the
 * training forward and backward, fused (BN + ReLU, or BN + add + ReLU) and
 * plain, of each build, and the median of the per-round ratios B / A. Run
 * as separate processes, two builds can read 20-50% apart on a shared
 * machine with no change between them: loaded side by side and timed in
 * alternating order, they see the same phases of the machine.
 *
 *   ab_builds LIB_A LIB_B nchw|nhwc N C H W THREADS ROUNDS ADD
 *
 * LIB_A and LIB_B are paths to libbnorm.so files of the two builds (copies
 * under two names). OPS=0123 in the environment picks operations: 0 fused
 * forward, 1 fused backward, 2 plain forward, 3 plain backward. Never a
 * test. */
#define _POSIX_C_SOURCE 200809L
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bnorm.h"

typedef struct {
    bnorm_shape (*shape_nchw)(int64_t, int64_t, int64_t, int64_t);
    bnorm_shape (*shape_nhwc)(int64_t, int64_t, int64_t, int64_t);
    bnorm_params (*params_default)(void);
    bnorm_status (*workspace_size)(const bnorm_shape *, const bnorm_params *, size_t *);
    bnorm_status (*forward)(const bnorm_shape *, const bnorm_params *, const bnorm_fusion *,
                            const void *, const void *, const float *, const float *, void *,
                            float *, float *, bnorm_running_stats *, void *, void *, size_t);
    bnorm_status (*backward)(const bnorm_shape *, const bnorm_params *, const bnorm_fusion *,
                             const void *, const void *, const void *, const float *, const float *,
                             const float *, void *, void *, float *, float *, void *, size_t);
} library;

static int load(const char *path, library *l) {
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        fprintf(stderr, "ab_builds: %s\n", dlerror());
        return -1;
    }
    *(void **)&l->shape_nchw = dlsym(h, "bnorm_shape_nchw");
    *(void **)&l->shape_nhwc = dlsym(h, "bnorm_shape_nhwc");
    *(void **)&l->params_default = dlsym(h, "bnorm_params_default");
    *(void **)&l->workspace_size = dlsym(h, "bnorm_workspace_size");
    *(void **)&l->forward = dlsym(h, "bnorm_fused_forward_training");
    *(void **)&l->backward = dlsym(h, "bnorm_fused_backward_training");
    if (!l->shape_nchw || !l->shape_nhwc || !l->params_default || !l->workspace_size ||
        !l->forward || !l->backward) {
        fprintf(stderr, "ab_builds: %s lacks an entry point\n", path);
        return -1;
    }
    return 0;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof v[0], by_value);
    return v[n / 2];
}

#define MAX_ROUNDS 64

int main(int argc, char **argv) {
    if (argc != 11) {
        fprintf(stderr, "usage: ab_builds LIB_A LIB_B nchw|nhwc N C H W THREADS ROUNDS ADD\n");
        return 2;
    }
    library lib[2];
    if (load(argv[1], &lib[0]) || load(argv[2], &lib[1])) return 1;
    if (lib[0].forward == lib[1].forward) {
        fprintf(stderr, "ab_builds: both paths loaded one library; copy them under two names\n");
        return 1;
    }
    const int nhwc = !strcmp(argv[3], "nhwc");
    const int64_t N = atol(argv[4]), C = atol(argv[5]), H = atol(argv[6]), W = atol(argv[7]);
    const int threads = atoi(argv[8]), rounds = atoi(argv[9]), add = atoi(argv[10]);
    if (N < 1 || C < 1 || H < 1 || W < 1 || rounds < 1 || rounds > MAX_ROUNDS) {
        fprintf(stderr, "ab_builds: bad sizes or rounds (1..%d)\n", MAX_ROUNDS);
        return 2;
    }
    const char *ops = getenv("OPS") ? getenv("OPS") : "0123";
    bnorm_shape s = nhwc ? lib[0].shape_nhwc(N, H, W, C) : lib[0].shape_nchw(N, C, H, W);
    bnorm_params p = lib[0].params_default();
    p.threads = threads;
    size_t wsz, n = (size_t)(N * C * H * W), c = (size_t)C;
    if (lib[0].workspace_size(&s, &p, &wsz) != BNORM_OK) return 1;
    float *x = aligned_alloc(64, n * 4), *z = aligned_alloc(64, n * 4);
    float *y = aligned_alloc(64, n * 4), *dy = aligned_alloc(64, n * 4);
    float *dx = aligned_alloc(64, n * 4), *dz = aligned_alloc(64, n * 4);
    unsigned char *mask = aligned_alloc(64, (n / 8 + 64) / 64 * 64);
    float *prm = malloc(6 * c * sizeof(float));
    void *ws = malloc(wsz);
    if (!x || !z || !y || !dy || !dx || !dz || !mask || !prm || !ws) return 1;
    float *gamma = prm, *beta = prm + c, *sm = prm + 2 * c, *si = prm + 3 * c, *dg = prm + 4 * c,
          *db = prm + 5 * c;
    for (size_t k = 0; k < c; k++)
        gamma[k] = 1.0f, beta[k] = 0.1f;
    for (size_t i = 0; i < n; i++) {
        uint32_t u = (uint32_t)i * 2654435761u;
        u ^= u >> 13, u *= 0x5bd1e995u, u ^= u >> 15;
        x[i] = (float)(u & 0xffff) / 65536.0f * 2.0f - 0.5f;
        z[i] = (float)(u >> 16) / 65536.0f - 0.5f, dy[i] = x[i] * 0.5f + z[i];
    }
    const bnorm_fusion fused = {BNORM_FUSE_RELU | (add ? BNORM_FUSE_ADD : 0u), BNORM_DTYPE_F32};
    const bnorm_fusion plain = {0, BNORM_DTYPE_F32};
    static double t[MAX_ROUNDS][2][4];
    /* Two warm-up rounds; the order of A and B alternates from round to round. */
    for (int r = -2; r < rounds; r++)
        for (int turn = 0; turn < 2; turn++) {
            const int k = (r & 1) ? 1 - turn : turn;
            const library *l = &lib[k];
            for (int op = 0; op < 4; op++) {
                if (!strchr(ops, '0' + op)) continue;
                const bnorm_fusion *fu = op < 2 ? &fused : &plain;
                double best = 1e30;
                for (int rep = 0; rep < 3; rep++) {
                    double t0 = now();
                    if (op % 2 == 0)
                        l->forward(&s, &p, fu, x, z, gamma, beta, y, sm, si, NULL,
                                   op < 2 ? mask : NULL, ws, wsz);
                    else
                        l->backward(&s, &p, fu, x, dy, op < 2 ? mask : NULL, gamma, sm, si, dx,
                                    op < 2 ? dz : NULL, dg, db, ws, wsz);
                    double d = now() - t0;
                    best = d < best ? d : best;
                }
                if (r >= 0) t[r][k][op] = best;
            }
        }
    const char *names[4] = {"fused forward", "fused backward", "plain forward", "plain backward"};
    printf("%s %s, %d thread(s), %d rounds (best of 3 calls each), %s\n", argv[3],
           add ? "add+relu" : "relu", threads, rounds, "ms = median over rounds");
    for (int op = 0; op < 4; op++) {
        if (!strchr(ops, '0' + op)) continue;
        double a[MAX_ROUNDS], b[MAX_ROUNDS], q[MAX_ROUNDS];
        for (int r = 0; r < rounds; r++)
            a[r] = t[r][0][op], b[r] = t[r][1][op], q[r] = b[r] / a[r];
        double qm = median(q, rounds);
        printf("%-15s A %8.3f ms  B %8.3f ms  B/A %.3f (%.3f-%.3f)\n", names[op],
               1e3 * median(a, rounds), 1e3 * median(b, rounds), qm, q[0], q[rounds - 1]);
    }
    free(x), free(z), free(y), free(dy), free(dx), free(dz), free(mask), free(prm), free(ws);
    return 0;
}
