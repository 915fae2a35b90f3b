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
 * the mask. Streams (streams.h), in the same rounds: read one tensor, read
 * one and write one, read two, read two and write one, and the last three
 * carrying the ReLU's mask as the fused calls do (the write writes it, the
 * reads read it and keep dy through it). A training forward moves what
 * "read 1" and "read 1 write 1" move, a backward "read 2" and "read 2
 * write 1", their fused forms the same with the mask: the roofline column
 * adds those streams' times. A masked stream's roofline is the same stream
 * without the mask, so its row reads what the mask costs plain loops. Not
 * a test. */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bnorm.h"
#include "streams.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
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
    READ1_WRITE1_MASK,
    READ2_MASKED,
    READ2_WRITE1_MASKED,
    OPS
};
static const char *names[OPS] = {"inference",
                                 "inference + ReLU",
                                 "training forward",
                                 "forward + ReLU",
                                 "training backward",
                                 "backward + ReLU",
                                 "stream read 1",
                                 "stream read 1 write 1",
                                 "stream read 2",
                                 "stream read 2 write 1",
                                 "read 1 write 1 + mask",
                                 "read 2 + mask",
                                 "read 2 write 1 + mask"};

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
    void *ws = malloc(wsz ? wsz : 1);
    /* The ReLU's mask, of the fused calls (mbytes) and of the masked streams
     * (over the padded length) alike: each writes it before it reads it. */
    uint8_t *mask = aligned_alloc(64, (padded / 8 > mbytes ? padded / 8 : mbytes) + 64);
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
                default: {
                    static const stream_kind kinds[] = {STREAM_READ1,
                                                        STREAM_READ1_WRITE1,
                                                        STREAM_READ2,
                                                        STREAM_READ2_WRITE1,
                                                        STREAM_READ1_WRITE1_MASK,
                                                        STREAM_READ2_MASKED,
                                                        STREAM_READ2_WRITE1_MASKED};
                    const int writes_y = o == READ1_WRITE1 || o == READ1_WRITE1_MASK;
                    stream_run(kinds[o - READ1], x, dy, writes_y ? y : dx, NULL, mask, padded,
                               threads);
                }
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
    const double traffic[OPS] = {2, 2, 3, 3, 5, 5, 1, 2, 2, 3, 2, 2, 3};
    const double fwd_roof = med[READ1] + med[READ1_WRITE1],
                 bwd_roof = med[READ2] + med[READ2_WRITE1],
                 fwd_relu_roof = med[READ1] + med[READ1_WRITE1_MASK],
                 bwd_relu_roof = med[READ2_MASKED] + med[READ2_WRITE1_MASKED];
    const double roof[OPS] = {
        med[READ1_WRITE1], med[READ1_WRITE1], fwd_roof,          fwd_relu_roof, bwd_roof,
        bwd_relu_roof,     med[READ1],        med[READ1_WRITE1], med[READ2],    med[READ2_WRITE1],
        med[READ1_WRITE1], med[READ2],        med[READ2_WRITE1]};
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
