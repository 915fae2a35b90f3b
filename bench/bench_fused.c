/* bench_fused: a training step of BN + ReLU and of BN + add + ReLU (forward
 * and backward), libbnorm's fused calls against the same work as separate
 * calls, the way a framework runs them (our BN, then an add pass, then a
 * ReLU pass; backward: a ReLU-backward pass that reads y, then our BN
 * backward), and against oneDNN's batch normalization with its
 * fuse_norm_relu flag on the same data (BN + ReLU; oneDNN 2.x has no fused
 * add), with the same rounds' copy bandwidth as the roofline.
 *
 *   bench_fused [--case SUBSTR] [--threads LIST]
 *
 * Per case and thread count: ROUNDS rounds, fused, unfused, our BN alone
 * (forward and backward without ReLU or add: the fused BN + ReLU's traffic,
 * so fused / BN alone is what the fusion costs) and oneDNN in turn in every
 * round, each the median of its repeats; a ratio is the
 * median of the rounds' own ratios. Traffic model, in tensor sizes (the
 * mask, 1/32 of one, not counted): fused forward 3 (x twice, y) + 1 with z,
 * fused backward 5 (x and dy twice, dx) + 1 with z (dz written); unfused
 * forward 3 + 2 per separate pass (+ 3 for the add), backward 3 (ReLU
 * backward) + 5.
 *
 * Two rooflines, from plain loops timed in the same rounds (streams.h):
 * copy, the best copy this machine does (%copy = the fused step's traffic
 * at copy speed / its time), and the streams of the step's own passes, one
 * after another: a read of x (the statistics), a read of x (and z) with a
 * write of y and the mask, a read of x, dy and the mask (the backward
 * sums), a read of x, dy and the mask with a write of dx (and dz); the
 * mask's bits select y and dy as the library's do. /stream = fused / those
 * streams' time;
 * "reach" = the %copy of a step that ran at its streams' speed, the most
 * %copy that this traffic, in these passes, reaches here. Not a test. */
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

#ifdef BNORM_BENCH_DNNL
#include <oneapi/dnnl/dnnl.h>
#endif

#include "bnorm.h"
#include "streams.h"

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

#ifdef BNORM_BENCH_DNNL
/* oneDNN's training step of BN + ReLU on the same data and layout: forward
 * training with fuse_norm_relu (the ReLU's mask in its workspace), then the
 * backward that reads it. */
typedef struct {
    dnnl_engine_t engine;
    dnnl_stream_t stream;
    dnnl_primitive_desc_t fwd_pd, bwd_pd;
    dnnl_primitive_t fwd, bwd;
    dnnl_memory_t m[11];
    void *workspace;
    float *params;
    int ok;
} dnnl_step;

static void dnnl_step_free(dnnl_step *d) {
    for (int i = 0; i < 11; i++)
        if (d->m[i]) dnnl_memory_destroy(d->m[i]);
    if (d->fwd) dnnl_primitive_destroy(d->fwd);
    if (d->bwd) dnnl_primitive_destroy(d->bwd);
    if (d->fwd_pd) dnnl_primitive_desc_destroy(d->fwd_pd);
    if (d->bwd_pd) dnnl_primitive_desc_destroy(d->bwd_pd);
    if (d->stream) dnnl_stream_destroy(d->stream);
    if (d->engine) dnnl_engine_destroy(d->engine);
    free(d->workspace), free(d->params);
    memset(d, 0, sizeof *d);
}

static int dnnl_step_init(dnnl_step *d, const bench_case *bc, float *x, float *y, float *dy,
                          float *dx) {
    memset(d, 0, sizeof *d);
#define TRY(call)                                                                                  \
    if ((call) != dnnl_success) {                                                                  \
        fprintf(stderr, "bench_fused: oneDNN call failed: %s\n", #call);                           \
        dnnl_step_free(d);                                                                         \
        return -1;                                                                                 \
    }
    dnnl_dims_t dims = {bc->n, bc->c, bc->h, bc->w}, cdims = {bc->c};
    dnnl_memory_desc_t md, cmd;
    TRY(dnnl_engine_create(&d->engine, dnnl_cpu, 0));
    TRY(dnnl_stream_create(&d->stream, d->engine, dnnl_stream_default_flags));
    TRY(dnnl_memory_desc_init_by_tag(
        &md, 4, dims, dnnl_f32, bc->layout == BNORM_LAYOUT_CHANNELS_LAST ? dnnl_nhwc : dnnl_nchw));
    TRY(dnnl_memory_desc_init_by_tag(&cmd, 1, cdims, dnnl_f32, dnnl_a));
    unsigned flags = dnnl_use_scale | dnnl_use_shift | dnnl_fuse_norm_relu;
    dnnl_batch_normalization_desc_t bd;
    TRY(dnnl_batch_normalization_forward_desc_init(&bd, dnnl_forward_training, &md, 1e-5f, flags));
    TRY(dnnl_primitive_desc_create(&d->fwd_pd, &bd, NULL, d->engine, NULL));
    TRY(dnnl_batch_normalization_backward_desc_init(&bd, dnnl_backward, &md, &md, 1e-5f, flags));
    TRY(dnnl_primitive_desc_create(&d->bwd_pd, &bd, NULL, d->engine, d->fwd_pd));
    TRY(dnnl_primitive_create(&d->fwd, d->fwd_pd));
    TRY(dnnl_primitive_create(&d->bwd, d->bwd_pd));
    const dnnl_memory_desc_t *wmd =
        dnnl_primitive_desc_query_md(d->fwd_pd, dnnl_query_workspace_md, 0);
    size_t wbytes = wmd ? dnnl_memory_desc_get_size(wmd) : 0;
    d->workspace = aligned_alloc(64, (wbytes + 64) / 64 * 64);
    size_t C = (size_t)bc->c;
    d->params = malloc(6 * C * sizeof(float));
    if (!d->workspace || !d->params || !wmd) {
        dnnl_step_free(d);
        return -1;
    }
    for (size_t k = 0; k < 6 * C; k++)
        d->params[k] = k < C ? 1.0f : (k < 2 * C ? 0.1f : 0.0f);
    float *bufs[4] = {x, y, dy, dx};
    for (int i = 0; i < 4; i++)
        TRY(dnnl_memory_create(&d->m[i], &md, d->engine, bufs[i]));
    for (int i = 0; i < 6; i++)
        TRY(dnnl_memory_create(&d->m[4 + i], &cmd, d->engine, d->params + (size_t)i * C));
    TRY(dnnl_memory_create(&d->m[10], wmd, d->engine, d->workspace));
#undef TRY
    d->ok = 1;
    return 0;
}

/* m: 0 x, 1 y, 2 dy, 3 dx, 4 scale, 5 shift, 6 mean, 7 var, 8 diff scale,
 * 9 diff shift, 10 workspace (the ReLU mask). */
static void dnnl_step_run(dnnl_step *d) {
    dnnl_memory_t *m = d->m;
    dnnl_exec_arg_t fa[] = {{DNNL_ARG_SRC, m[0]},       {DNNL_ARG_DST, m[1]},
                            {DNNL_ARG_SCALE, m[4]},     {DNNL_ARG_SHIFT, m[5]},
                            {DNNL_ARG_MEAN, m[6]},      {DNNL_ARG_VARIANCE, m[7]},
                            {DNNL_ARG_WORKSPACE, m[10]}};
    dnnl_exec_arg_t ba[] = {{DNNL_ARG_SRC, m[0]},        {DNNL_ARG_DIFF_DST, m[2]},
                            {DNNL_ARG_SCALE, m[4]},      {DNNL_ARG_SHIFT, m[5]},
                            {DNNL_ARG_MEAN, m[6]},       {DNNL_ARG_VARIANCE, m[7]},
                            {DNNL_ARG_WORKSPACE, m[10]}, {DNNL_ARG_DIFF_SRC, m[3]},
                            {DNNL_ARG_DIFF_SCALE, m[8]}, {DNNL_ARG_DIFF_SHIFT, m[9]}};
    if (dnnl_primitive_execute(d->fwd, d->stream, 7, fa) != dnnl_success ||
        dnnl_primitive_execute(d->bwd, d->stream, 10, ba) != dnnl_success ||
        dnnl_stream_wait(d->stream) != dnnl_success)
        d->ok = 0;
}
#endif

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
        "ReLU-backward pass (reads y) + bnorm_backward_training; onednn: its batch normalization\n"
        "with fuse_norm_relu, forward training + backward (BN + ReLU only). ms = median of\n"
        "repeats, best round; ratios = median over %d rounds of each round's fused / unfused and\n"
        "fused / onednn; /bn = fused / our BN alone (forward + backward, no ReLU, no add:\n"
        "the same traffic as the fused BN + ReLU); copy = GB/s of the best copy; %%copy =\n"
        "fused model GB/s / copy GB/s; /stream = fused / the streams of its passes; reach =\n"
        "%%copy at the streams' speed (all three medians of the rounds' own)\n\n",
        ROUNDS);
    printf("%-19s %-4s %-9s %9s %9s %9s %7s %7s %7s %7s %7s %7s %7s\n", "case", "thr", "ops",
           "fused ms", "unfused", "onednn", "/unfus", "/onednn", "/bn", "copy", "%copy", "/stream",
           "reach");
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
                double fused = INFINITY, unfused = INFINITY, peer = INFINITY, copy = 0.0;
                double ratios[ROUNDS], peer_ratios[ROUNDS], bn_ratios[ROUNDS];
                double copy_shares[ROUNDS], stream_ratios[ROUNDS], reaches[ROUNDS];
                double traffic = (3.0 + add) + (5.0 + add); /* tensor sizes, see the header */
                /* The streams of the step's passes: statistics, normalize,
                 * backward sums, dx (and dz). */
                const stream_kind passes[4] = {
                    STREAM_READ1, add ? STREAM_READ2_WRITE1_MASK : STREAM_READ1_WRITE1_MASK,
                    STREAM_READ2_MASKED,
                    add ? STREAM_READ2_WRITE2_MASKED : STREAM_READ2_WRITE1_MASKED};
                int reps = n * 4 > (64u << 20) ? 5 : 11, t = threads[ti], have_peer = 0;
#ifdef BNORM_BENCH_DNNL
                dnnl_step dn;
#ifdef _OPENMP
                omp_set_num_threads(t);
#endif
                have_peer = !add && dnnl_step_init(&dn, bc, x, y, dy, dx) == 0;
#endif
                for (int r = 0; r < ROUNDS; r++) {
                    double tf, tu, tb, tc;
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
                    TIME_MEDIAN(tb, reps, {
                        bnorm_forward_training(&s, &p, x, g, b, y, sm, si, NULL, ws, wsz);
                        bnorm_backward_training(&s, &p, x, dy, g, sm, si, dx, dg, db, ws, wsz);
                    });
                    TIME_MEDIAN(tc, 7, stream_run(STREAM_COPY, x, NULL, dx, NULL, NULL, n, t));
                    /* The streams one after another, as the step's passes
                     * run: a stream timed alone runs right after itself, its
                     * most favourable company (docs/PERFORMANCE.md), so
                     * their times apart would flatter the roofline. z stands
                     * in for dy where a pass reads x and z. */
                    double ts;
                    TIME_MEDIAN(ts, 7, {
                        for (int k = 0; k < 4; k++)
                            stream_run(passes[k], x, k == 1 ? z : dy, k == 1 ? y : dx, dz, mask, n,
                                       t);
                    });
#ifdef BNORM_BENCH_DNNL
                    if (have_peer) {
                        double tp;
                        TIME_MEDIAN(tp, reps, dnnl_step_run(&dn));
                        peer_ratios[r] = tf / tp;
                        peer = tp < peer ? tp : peer;
                        have_peer = dn.ok;
                    }
#endif
                    ratios[r] = tf / tu, bn_ratios[r] = tf / tb;
                    fused = tf < fused ? tf : fused, unfused = tu < unfused ? tu : unfused;
                    copy = 8.0 * n / tc / 1e9 > copy ? 8.0 * n / tc / 1e9 : copy;
                    /* The step's traffic at this round's copy speed. */
                    double at_copy = traffic / 2.0 * tc;
                    copy_shares[r] = at_copy / tf, stream_ratios[r] = tf / ts,
                    reaches[r] = at_copy / ts;
                }
#ifdef BNORM_BENCH_DNNL
                if (!add) dnnl_step_free(&dn);
#endif
                char peer_ms[16] = "-", peer_ratio[16] = "-";
                if (have_peer) {
                    snprintf(peer_ms, sizeof peer_ms, "%.3f", 1e3 * peer);
                    snprintf(peer_ratio, sizeof peer_ratio, "%.3f", median(peer_ratios, ROUNDS));
                }
                printf("%-19s %-4d %-9s %9.3f %9.3f %9s %7.3f %7s %7.3f %7.1f %6.0f%% %7.3f "
                       "%6.0f%%\n",
                       bc->name, t, add ? "add+relu" : "relu", 1e3 * fused, 1e3 * unfused, peer_ms,
                       median(ratios, ROUNDS), peer_ratio, median(bn_ratios, ROUNDS), copy,
                       100.0 * median(copy_shares, ROUNDS), median(stream_ratios, ROUNDS),
                       100.0 * median(reaches, ROUNDS));
            }
            free(ws), free(prm);
        }
    free(x), free(z), free(y), free(dy), free(dx), free(dz), free(mask);
    return 0;
}
