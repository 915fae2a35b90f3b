/* bench_bn: libbnorm's kernels side by side with oneDNN's batch_normalization
 * primitive and PyTorch's batch norm (through bench/torch_bn.py), on the same
 * shapes and layouts, with the same run's copy bandwidth as the roofline.
 *
 *   bench_bn [--quick] [--case SUBSTR] [--threads LIST] [--csv FILE] [--no-torch]
 *            [--torch SCRIPT] [--cached-outputs]
 *
 * --cached-outputs times ours with BNORM_CACHED_OUTPUTS (ordinary stores for
 * large outputs too).
 *
 * Per case and thread count: the best of ROUNDS medians over repeats after
 * warm-up, ours, oneDNN and PyTorch taking turns in every round; the
 * effective bandwidth under the traffic model (inference 2 tensor sizes,
 * training forward 3, backward 5, frozen backward 3), its ratio to a copy
 * measured in the same rounds, and ours / peer. Not a test: the numbers
 * depend on the machine and its load. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#ifdef BNORM_BENCH_DNNL
#include <oneapi/dnnl/dnnl.h>
#endif

#include "bnorm.h"

enum { OP_FWD_TRAIN, OP_INFER, OP_BWD, OP_BWD_FROZEN, N_OPS };
static const char *op_names[N_OPS] = {"train-fwd", "infer", "bwd", "bwd-frozen"};
static const int op_traffic[N_OPS] = {3, 2, 5, 3}; /* tensor sizes moved */

typedef struct {
    const char *name;
    int64_t n, c, h, w;
    bnorm_layout layout;
} bench_case;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Repeats per round: every case runs ROUNDS rounds of ours, oneDNN, oneDNN
 * blocked and PyTorch in turn, each the same number of repeats, and each
 * takes the best of its per-round medians, so that a slow minute of the
 * machine (its speed drifts by up to 1.6x) does not fall on one
 * implementation only. */
#define ROUNDS 3
static int repeats_for(size_t bytes) { return bytes > (64u << 20) ? 5 : 13; }

static void keep_best(double best[N_OPS], const double round[N_OPS], int first) {
    for (int o = 0; o < N_OPS; o++)
        if (first || round[o] < best[o] || isnan(best[o])) best[o] = round[o];
}

#define TIME_MEDIAN(result, reps, body)                                                            \
    do {                                                                                           \
        double t_[64];                                                                             \
        for (int w_ = 0; w_ < 3; w_++) {                                                           \
            body;                                                                                  \
        }                                                                                          \
        for (int r_ = 0; r_ < (reps); r_++) {                                                      \
            double t0_ = now();                                                                    \
            body;                                                                                  \
            t_[r_] = now() - t0_;                                                                  \
        }                                                                                          \
        qsort(t_, (size_t)(reps), sizeof(double), cmp_double);                                     \
        (result) = t_[(reps) / 2];                                                                 \
    } while (0)

static void copy_once(float *dst, const float *src, size_t count, int threads) {
    (void)threads;
#pragma omp parallel for schedule(static) num_threads(threads)
    for (long i = 0; i < (long)count; i++)
        dst[i] = src[i];
}

/* The roofline: a plain copy of the largest tensor (beyond the last-level
 * cache), read once and written once. */
static double copy_gbps(float *dst, const float *src, size_t count, int threads) {
    double t;
    TIME_MEDIAN(t, 15, copy_once(dst, src, count, threads));
    return 2.0 * (double)count * sizeof(float) / t / 1e9;
}

static void fill(float *p, size_t n, unsigned seed) {
#pragma omp parallel for schedule(static)
    for (long i = 0; i < (long)n; i++) {
        uint32_t s = (uint32_t)i * 2654435761u + seed;
        s ^= s >> 13, s *= 0x5bd1e995u, s ^= s >> 15;
        p[i] = (float)(s & 0xffff) / 65536.0f * 2.0f - 0.5f;
    }
}

/* ---- ours ---- */
static unsigned ours_extra_flags; /* --cached-outputs: BNORM_CACHED_OUTPUTS */
static void bench_ours(const bench_case *bc, int threads, float *x, float *y, float *dy, float *dx,
                       double out[N_OPS]) {
    bnorm_shape s = bc->layout == BNORM_LAYOUT_NC ? bnorm_shape_nc(bc->n, bc->c)
                    : bc->layout == BNORM_LAYOUT_CHANNELS_LAST
                        ? bnorm_shape_nhwc(bc->n, bc->h, bc->w, bc->c)
                        : bnorm_shape_nchw(bc->n, bc->c, bc->h, bc->w);
    bnorm_params p = bnorm_params_default();
    p.threads = threads;
    p.flags |= ours_extra_flags;
    size_t wsz = 0;
    bnorm_workspace_size(&s, &p, &wsz);
    void *ws = malloc(wsz);
    size_t C = (size_t)bc->c, bytes = (size_t)bc->n * C * bc->h * bc->w * 4;
    float *f = malloc(8 * C * sizeof(float));
    float *gamma = f, *beta = f + C, *mean = f + 2 * C, *invstd = f + 3 * C, *rm = f + 4 * C,
          *rv = f + 5 * C, *dg = f + 6 * C, *db = f + 7 * C;
    for (size_t k = 0; k < C; k++)
        gamma[k] = 1.0f + 0.01f * (float)(k % 7), beta[k] = 0.1f, rm[k] = 0.0f, rv[k] = 1.0f;
    bnorm_running_stats run = {rm, rv, 0};
    int reps = repeats_for(bytes);
    TIME_MEDIAN(out[OP_FWD_TRAIN], reps,
                bnorm_forward_training(&s, &p, x, gamma, beta, y, mean, invstd, &run, ws, wsz));
    TIME_MEDIAN(out[OP_INFER], reps,
                bnorm_forward_inference(&s, &p, x, gamma, beta, rm, rv, y, ws, wsz));
    TIME_MEDIAN(out[OP_BWD], reps,
                bnorm_backward_training(&s, &p, x, dy, gamma, mean, invstd, dx, dg, db, ws, wsz));
    TIME_MEDIAN(out[OP_BWD_FROZEN], reps,
                bnorm_backward_inference(&s, &p, x, dy, gamma, rm, rv, dx, dg, db, ws, wsz));
    free(ws), free(f);
}

/* ---- oneDNN ---- */
#ifdef BNORM_BENCH_DNNL
#define DNNL_OK(call)                                                                              \
    do {                                                                                           \
        if ((call) != dnnl_success) {                                                              \
            fprintf(stderr, "bench_bn: oneDNN call failed: %s\n", #call);                          \
            goto fail;                                                                             \
        }                                                                                          \
    } while (0)

static dnnl_engine_t engine;
static dnnl_stream_t stream;

static int dnnl_failed;
static void dnnl_run(dnnl_primitive_t prim, int nargs, const dnnl_exec_arg_t *args) {
    dnnl_status_t st = dnnl_primitive_execute(prim, stream, nargs, args);
    if (st == dnnl_success) st = dnnl_stream_wait(stream);
    if (st != dnnl_success && !dnnl_failed) {
        fprintf(stderr, "bench_bn: a oneDNN primitive failed (status %d)\n", (int)st);
        dnnl_failed = 1;
    }
}

/* tag: the oneDNN layout of the data; NC cases are given as (N, C, 1, 1)
 * channels-last, the form oneDNN handles best. */
static int bench_dnnl(const bench_case *bc, dnnl_format_tag_t tag, float *x, float *y, float *dy,
                      float *dx, double out[N_OPS]) {
    dnnl_dims_t dims = {bc->n, bc->c, bc->h, bc->w};
    dnnl_memory_desc_t md, cmd;
    dnnl_primitive_desc_t fwd_pd = NULL, inf_pd = NULL, bwd_pd = NULL, bwf_pd = NULL;
    dnnl_primitive_t fwd = NULL, inf = NULL, bwd = NULL, bwf = NULL;
    dnnl_memory_t m[16] = {0};
    int ok = 0;
    size_t C = (size_t)bc->c, bytes = (size_t)bc->n * C * bc->h * bc->w * 4;
    float *f = malloc(8 * C * sizeof(float));
    for (size_t k = 0; k < 8 * C; k++)
        f[k] = k < C ? 1.0f : (k >= 5 * C && k < 6 * C ? 1.0f : 0.0f);
    float *blocked[4] = {0};
    DNNL_OK(dnnl_memory_desc_init_by_tag(&md, 4, dims, dnnl_f32, tag));
    dnnl_dims_t cdims = {bc->c};
    DNNL_OK(dnnl_memory_desc_init_by_tag(&cmd, 1, cdims, dnnl_f32, dnnl_a));
    /* A blocked layout has its own size (channels padded to 16): own buffers. */
    size_t md_bytes = dnnl_memory_desc_get_size(&md);
    float *bufs[4] = {x, y, dy, dx};
    if (md_bytes != bytes)
        for (int i = 0; i < 4; i++) {
            blocked[i] = aligned_alloc(64, (md_bytes + 63) / 64 * 64);
            fill(blocked[i], md_bytes / 4, 7u + (unsigned)i);
            bufs[i] = blocked[i];
        }
    unsigned flags = dnnl_use_scale | dnnl_use_shift;
    dnnl_batch_normalization_desc_t d;
    DNNL_OK(
        dnnl_batch_normalization_forward_desc_init(&d, dnnl_forward_training, &md, 1e-5f, flags));
    DNNL_OK(dnnl_primitive_desc_create(&fwd_pd, &d, NULL, engine, NULL));
    DNNL_OK(dnnl_batch_normalization_forward_desc_init(&d, dnnl_forward_inference, &md, 1e-5f,
                                                       flags | dnnl_use_global_stats));
    DNNL_OK(dnnl_primitive_desc_create(&inf_pd, &d, NULL, engine, NULL));
    DNNL_OK(dnnl_batch_normalization_backward_desc_init(&d, dnnl_backward, &md, &md, 1e-5f, flags));
    DNNL_OK(dnnl_primitive_desc_create(&bwd_pd, &d, NULL, engine, fwd_pd));
    DNNL_OK(dnnl_batch_normalization_backward_desc_init(&d, dnnl_backward, &md, &md, 1e-5f,
                                                        flags | dnnl_use_global_stats));
    DNNL_OK(dnnl_primitive_desc_create(&bwf_pd, &d, NULL, engine, fwd_pd));
    DNNL_OK(dnnl_primitive_create(&fwd, fwd_pd));
    DNNL_OK(dnnl_primitive_create(&inf, inf_pd));
    DNNL_OK(dnnl_primitive_create(&bwd, bwd_pd));
    DNNL_OK(dnnl_primitive_create(&bwf, bwf_pd));
    for (int i = 0; i < 4; i++)
        DNNL_OK(dnnl_memory_create(&m[i], &md, engine, bufs[i]));
    for (int i = 0; i < 8; i++)
        DNNL_OK(dnnl_memory_create(&m[4 + i], &cmd, engine, f + (size_t)i * C));
    /* m: 0 x, 1 y, 2 dy, 3 dx, 4 scale, 5 shift, 6 mean, 7 var, 8 diff scale, 9 diff shift */
    dnnl_exec_arg_t fa[] = {{DNNL_ARG_SRC, m[0]},   {DNNL_ARG_DST, m[1]},
                            {DNNL_ARG_SCALE, m[4]}, {DNNL_ARG_SHIFT, m[5]},
                            {DNNL_ARG_MEAN, m[6]},  {DNNL_ARG_VARIANCE, m[7]}};
    dnnl_exec_arg_t ba[] = {
        {DNNL_ARG_SRC, m[0]},      {DNNL_ARG_DIFF_DST, m[2]},   {DNNL_ARG_SCALE, m[4]},
        {DNNL_ARG_SHIFT, m[5]},    {DNNL_ARG_MEAN, m[6]},       {DNNL_ARG_VARIANCE, m[7]},
        {DNNL_ARG_DIFF_SRC, m[3]}, {DNNL_ARG_DIFF_SCALE, m[8]}, {DNNL_ARG_DIFF_SHIFT, m[9]}};
    int reps = repeats_for(bytes);
    TIME_MEDIAN(out[OP_FWD_TRAIN], reps, dnnl_run(fwd, 6, fa));
    TIME_MEDIAN(out[OP_INFER], reps, dnnl_run(inf, 6, fa));
    TIME_MEDIAN(out[OP_BWD], reps, dnnl_run(bwd, 9, ba));
    TIME_MEDIAN(out[OP_BWD_FROZEN], reps, dnnl_run(bwf, 9, ba));
    ok = 1;
fail:
    for (int i = 0; i < 16; i++)
        if (m[i]) dnnl_memory_destroy(m[i]);
    dnnl_primitive_t ps[] = {fwd, inf, bwd, bwf};
    dnnl_primitive_desc_t pds[] = {fwd_pd, inf_pd, bwd_pd, bwf_pd};
    for (int i = 0; i < 4; i++) {
        if (ps[i]) dnnl_primitive_destroy(ps[i]);
        if (pds[i]) dnnl_primitive_desc_destroy(pds[i]);
    }
    for (int i = 0; i < 4; i++)
        free(blocked[i]);
    free(f);
    return ok ? 0 : -1;
}
#endif

/* ---- PyTorch: one process of bench/torch_bn.py --serve, asked for a round of
 * timings between ours and oneDNN's, so that it is timed in the same minutes
 * and keeps the best of its rounds like them ---- */
typedef struct {
    FILE *to, *from;
    pid_t pid;
    int failed;
} torch_peer;

static void torch_fail(torch_peer *tp) {
    if (!tp->failed)
        fprintf(stderr, "bench_bn: the PyTorch peer failed (python3-torch installed?); "
                        "its column is left empty\n");
    tp->failed = 1;
}

static void torch_start(torch_peer *tp, const char *script) {
    /* Debian's python3-torch lives beside the system interpreter. */
    const char *python = getenv("BNORM_PYTHON") ? getenv("BNORM_PYTHON") : "/usr/bin/python3";
    int in[2], out[2];
    memset(tp, 0, sizeof *tp);
    if (pipe(in) != 0) {
        torch_fail(tp);
        return;
    }
    if (pipe(out) != 0) {
        close(in[0]), close(in[1]);
        torch_fail(tp);
        return;
    }
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(in[0], STDIN_FILENO), dup2(out[1], STDOUT_FILENO);
        close(in[0]), close(in[1]), close(out[0]), close(out[1]);
        /* PyTorch allocates its outputs on every call. glibc is told to
         * serve every block from the heap (no mmap, whose blocks go back to
         * the kernel when freed) and never to trim it, so freed outputs are
         * reused and the peer is timed without page faults, on buffers as
         * hot as ours: with glibc's defaults its outputs over 32 MiB cost it
         * 10x here. */
        setenv("OPENBLAS_NUM_THREADS", "1", 1);
        setenv("MALLOC_MMAP_MAX_", "0", 1);
        setenv("MALLOC_TRIM_THRESHOLD_", "4294967296", 1);
        execl(python, python, script, "--serve", (char *)NULL);
        _exit(127);
    }
    close(in[0]), close(out[1]);
    if (pid < 0) {
        close(in[1]), close(out[0]);
        torch_fail(tp);
        return;
    }
    tp->pid = pid;
    tp->to = fdopen(in[1], "w");
    tp->from = fdopen(out[0], "r");
    if (!tp->to || !tp->from) torch_fail(tp);
}

/* One round of the four operations on a case; NaN where it gave none. */
static void torch_round(torch_peer *tp, const bench_case *bc, int threads, int reps,
                        double out[N_OPS]) {
    for (int o = 0; o < N_OPS; o++)
        out[o] = NAN;
    if (tp->failed) return;
    fprintf(tp->to, "%s:%lld,%lld,%lld,%lld:%s %d %d\n", bc->name, (long long)bc->n,
            (long long)bc->c, (long long)bc->h, (long long)bc->w,
            bc->layout == BNORM_LAYOUT_CHANNELS_FIRST ? "nchw" : "nhwc", threads, reps);
    if (fflush(tp->to) != 0) {
        torch_fail(tp);
        return;
    }
    char line[512];
    while (fgets(line, sizeof line, tp->from)) {
        if (!strncmp(line, "end", 3)) return;
        char key[128];
        double ms;
        const char *op;
        if (sscanf(line, "%127s %lf", key, &ms) == 2 && (op = strrchr(key, '/')) != NULL) {
            for (int o = 0; o < N_OPS; o++)
                if (!strcmp(op + 1, op_names[o])) out[o] = ms / 1e3;
        } else {
            fprintf(stderr, "bench_bn: the PyTorch peer said: %s", line);
        }
    }
    torch_fail(tp);
}

static void torch_stop(torch_peer *tp) {
    if (tp->to) fclose(tp->to); /* end of its input: it exits */
    if (tp->from) fclose(tp->from);
    if (tp->pid > 0) waitpid(tp->pid, NULL, 0);
}

int main(int argc, char **argv) {
    int quick = 0, use_torch = 1, threads[8] = {1, 2}, n_threads = 2;
    const char *only = NULL;
    const char *csv_path = "bench_bn.csv", *script = BNORM_BENCH_TORCH_SCRIPT;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick"))
            quick = 1;
        else if (!strcmp(argv[i], "--case") && i + 1 < argc)
            only = argv[++i];
        else if (!strcmp(argv[i], "--no-torch"))
            use_torch = 0;
        else if (!strcmp(argv[i], "--cached-outputs"))
            ours_extra_flags |= BNORM_CACHED_OUTPUTS;
        else if (!strcmp(argv[i], "--csv") && i + 1 < argc)
            csv_path = argv[++i];
        else if (!strcmp(argv[i], "--torch") && i + 1 < argc)
            script = argv[++i];
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            n_threads = 0;
            for (char *t = strtok(argv[++i], ","); t && n_threads < 8; t = strtok(NULL, ","))
                threads[n_threads++] = atoi(t) > 0 ? atoi(t) : 1;
        } else {
            fprintf(stderr,
                    "usage: %s [--quick] [--case SUBSTR] [--threads 1,2] [--csv FILE] [--no-torch] "
                    "[--torch SCRIPT] [--cached-outputs]\n",
                    argv[0]);
            return 2;
        }
    }
    bench_case all[] = {
        {"32x64x56x56-nchw", 32, 64, 56, 56, BNORM_LAYOUT_CHANNELS_FIRST},
        {"32x64x56x56-nhwc", 32, 64, 56, 56, BNORM_LAYOUT_CHANNELS_LAST},
        {"256x256x14x14-nchw", 256, 256, 14, 14, BNORM_LAYOUT_CHANNELS_FIRST},
        {"256x256x14x14-nhwc", 256, 256, 14, 14, BNORM_LAYOUT_CHANNELS_LAST},
        {"64x128x56x56-nchw", 64, 128, 56, 56, BNORM_LAYOUT_CHANNELS_FIRST},
        {"64x128x56x56-nhwc", 64, 128, 56, 56, BNORM_LAYOUT_CHANNELS_LAST},
        {"1024x4096-nc", 1024, 4096, 1, 1, BNORM_LAYOUT_NC},
    };
    int n_cases = quick ? 2 : (int)(sizeof all / sizeof all[0]);
    if (quick) all[1] = all[6];
    if (only) {
        int kept = 0;
        for (int i = 0; i < n_cases; i++)
            if (strstr(all[i].name, only)) all[kept++] = all[i];
        n_cases = kept;
        if (!kept) {
            fprintf(stderr, "bench_bn: no case matches '%s'\n", only);
            return 2;
        }
    }
    size_t max_elems = 0;
    for (int i = 0; i < n_cases; i++) {
        size_t e = (size_t)(all[i].n * all[i].c * all[i].h * all[i].w);
        if (e > max_elems) max_elems = e;
    }
    float *x = aligned_alloc(64, max_elems * 4), *y = aligned_alloc(64, max_elems * 4);
    float *dy = aligned_alloc(64, max_elems * 4), *dx = aligned_alloc(64, max_elems * 4);
    if (!x || !y || !dy || !dx) {
        fprintf(stderr, "bench_bn: out of memory\n");
        return 1;
    }
    fill(x, max_elems, 1), fill(y, max_elems, 2), fill(dy, max_elems, 3), fill(dx, max_elems, 4);

#ifdef BNORM_BENCH_DNNL
    if (dnnl_engine_create(&engine, dnnl_cpu, 0) != dnnl_success ||
        dnnl_stream_create(&stream, engine, dnnl_stream_default_flags) != dnnl_success) {
        fprintf(stderr, "bench_bn: cannot start oneDNN\n");
        return 1;
    }
    const char *dnnl_state = "oneDNN batch_normalization primitive";
#else
    const char *dnnl_state = "oneDNN not built in (install libdnnl-dev and reconfigure)";
#endif

    FILE *csv = fopen(csv_path, "w");
    if (!csv) {
        fprintf(stderr, "bench_bn: cannot write %s\n", csv_path);
        return 1;
    }
    fprintf(csv, "case,threads,op,impl,ms,gbps,copy_gbps\n");
    torch_peer torch_proc = {0};
    if (use_torch) {
        signal(SIGPIPE, SIG_IGN); /* a peer that died is reported, not fatal */
        torch_start(&torch_proc, script);
    }
    printf("peers: %s; PyTorch %s\n", dnnl_state,
           use_torch ? "native_batch_norm via bench/torch_bn.py, in every round after ours and "
                       "oneDNN's"
                     : "not run");
    printf("traffic model (tensor sizes moved): train-fwd 3, infer 2, bwd 5, bwd-frozen 3\n");
    printf("each time: the best of %d rounds' medians, implementations in turn in every round\n"
           "GB/s = model bytes / time; copy = copy bandwidth (GB/s) in the same rounds; %%copy = "
           "GB/s / copy\n\n",
           ROUNDS);
    for (int ti = 0; ti < n_threads; ti++) {
        int t = threads[ti];
#ifdef _OPENMP
        omp_set_num_threads(t);
#endif
        printf("== %d thread%s\n", t, t > 1 ? "s" : "");
        printf("%-20s %-10s %8s %7s %5s %6s | %8s %8s %8s | %8s %6s %8s\n", "case", "op", "ours ms",
               "GB/s", "copy", "%copy", "oneDNN", "ratio", "blocked", "torch", "ratio", "");
        for (int i = 0; i < n_cases; i++) {
            const bench_case *bc = &all[i];
            double ours[N_OPS], dn[N_OPS], blk[N_OPS], pt[N_OPS], r[N_OPS], copy = 0.0;
            size_t bytes = (size_t)(bc->n * bc->c * bc->h * bc->w) * 4;
            for (int o = 0; o < N_OPS; o++)
                dn[o] = blk[o] = pt[o] = NAN;
            for (int round = 0; round < ROUNDS; round++) {
                double c = copy_gbps(y, x, max_elems, t);
                copy = c > copy ? c : copy;
                bench_ours(bc, t, x, y, dy, dx, r);
                keep_best(ours, r, round == 0);
#ifdef BNORM_BENCH_DNNL
                dnnl_format_tag_t tag =
                    bc->layout == BNORM_LAYOUT_CHANNELS_FIRST ? dnnl_nchw : dnnl_nhwc;
                if (bench_dnnl(bc, tag, x, y, dy, dx, r) == 0) keep_best(dn, r, 0);
                /* The blocked layout for every image shape, channels-last
                 * included: the target is to match it on the same shape,
                 * whatever layout the caller's tensor is in. */
                if (bc->layout != BNORM_LAYOUT_NC && bc->c % 16 == 0 &&
                    bench_dnnl(bc, dnnl_nChw16c, x, y, dy, dx, r) == 0)
                    keep_best(blk, r, 0);
#endif
                if (use_torch) {
                    torch_round(&torch_proc, bc, t, repeats_for(bytes), r);
                    keep_best(pt, r, 0);
                }
                /* The copy again at the end of the round: a slow moment that
                 * caught its first measurement (seen right after PyTorch's
                 * child process, at 2 threads) must not set the roofline. */
                c = copy_gbps(y, x, max_elems, t);
                copy = c > copy ? c : copy;
            }
            for (int o = 0; o < N_OPS; o++) {
                double gbps = op_traffic[o] * (double)bytes / ours[o] / 1e9;
                double tm = 1e3 * pt[o];
                printf("%-20s %-10s %8.3f %7.1f %5.1f %5.0f%% | %8.3f %8.2f %8.3f | %8.3f %6.2f\n",
                       bc->name, op_names[o], 1e3 * ours[o], gbps, copy, 100.0 * gbps / copy,
                       1e3 * dn[o], ours[o] / dn[o], 1e3 * blk[o], tm, 1e3 * ours[o] / tm);
                fprintf(csv, "%s,%d,%s,bnorm,%.4f,%.2f,%.2f\n", bc->name, t, op_names[o],
                        1e3 * ours[o], gbps, copy);
                if (!isnan(dn[o]))
                    fprintf(csv, "%s,%d,%s,onednn,%.4f,%.2f,%.2f\n", bc->name, t, op_names[o],
                            1e3 * dn[o], op_traffic[o] * (double)bytes / dn[o] / 1e9, copy);
                if (!isnan(blk[o]))
                    fprintf(csv, "%s,%d,%s,onednn-nChw16c,%.4f,%.2f,%.2f\n", bc->name, t,
                            op_names[o], 1e3 * blk[o], op_traffic[o] * (double)bytes / blk[o] / 1e9,
                            copy);
                if (!isnan(tm))
                    fprintf(csv, "%s,%d,%s,pytorch,%.4f,%.2f,%.2f\n", bc->name, t, op_names[o], tm,
                            op_traffic[o] * (double)bytes / (tm * 1e-3) / 1e9, copy);
            }
        }
        printf("\n");
    }
    printf("ratio = ours / peer time (below 1: ours is faster); blocked = oneDNN nChw16c ms\n");
    if (use_torch) torch_stop(&torch_proc);
    fclose(csv);
    printf("wrote %s\n", csv_path);
    free(x), free(y), free(dy), free(dx);
    return 0;
}
