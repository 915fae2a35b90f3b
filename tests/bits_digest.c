/* Not a test: a digest of every output of every entry point over a grid of
 * shapes (ragged sides, short and long planes, narrow and wide rows, more
 * chunks than threads), layouts, modes, flags, fusions, split-phase calls,
 * reference and fast paths, and 1, 2 and 3 threads. A restructuring of the
 * kernels that must not change a bit is shown by the same lines before and
 * after it:
 *
 *   bits_digest > before.txt   (old build)
 *   bits_digest > after.txt    (new build);  cmp before.txt after.txt
 *
 * One line per (shape, mode, path) so that a difference says where it is. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bnorm.h"

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ULL;
    return h;
}

static uint64_t state = 88172645463325252ULL;
static double uniform(void) {
    state ^= state << 13, state ^= state >> 7, state ^= state << 17;
    return (double)(state >> 11) / 9007199254740992.0;
}

static void fill(float *p, size_t n, double center, double spread) {
    for (size_t i = 0; i < n; i++)
        p[i] = (float)(center + spread * (2.0 * uniform() - 1.0));
}

static void die(const char *what, bnorm_status st) {
    fprintf(stderr, "%s: %s\n", what, bnorm_status_str(st));
    exit(1);
}

#define CALL(expr)                                                                                 \
    do {                                                                                           \
        bnorm_status st_ = (expr);                                                                 \
        if (st_ != BNORM_OK) die(#expr, st_);                                                      \
    } while (0)

/* Every call on one shape with one params; the digest of all outputs. */
static uint64_t digest_case(const bnorm_shape *shape, const bnorm_params *p, double center) {
    size_t F, W, M;
    CALL(bnorm_feature_count(shape, p, &F));
    CALL(bnorm_workspace_size(shape, p, &W));
    CALL(bnorm_fused_mask_size(shape, &M));
    size_t T = (size_t)shape->n * (size_t)shape->c;
    for (int i = 0; i < shape->spatial_rank; i++)
        T *= (size_t)shape->spatial[i];
    /* Zeroed: without BNORM_USE_SCALE a call leaves dgamma alone, and the
     * digest must not read memory that nothing wrote. */
    float *x = calloc(T, 4), *dy = calloc(T, 4), *z = calloc(T, 4), *y = calloc(T, 4);
    float *dx = calloc(T, 4), *dz = calloc(T, 4), *g = calloc(T, 4);
    float *pf = calloc(F * 10, 4);
    float *gamma = pf, *beta = pf + F, *sm = pf + 2 * F, *si = pf + 3 * F, *rm = pf + 4 * F;
    float *rv = pf + 5 * F, *dg = pf + 6 * F, *db = pf + 7 * F;
    double *rec = calloc(2 * F + 1, sizeof(double)), *sums = calloc(2 * F, sizeof(double));
    unsigned char *mask = calloc(M, 1);
    void *ws = calloc(W, 1);
    fill(x, T, center, 3.0);
    fill(dy, T, 0.0, 1.0);
    fill(z, T, 0.0, 2.0);
    fill(gamma, F, 1.0, 0.5);
    fill(beta, F, 0.0, 0.5);
    fill(rm, F, 0.0, 1.0);
    fill(rv, F, 1.5, 0.5);
    uint64_t h = 14695981039346656037ULL;
    bnorm_running_stats run = {rm, rv, 3};
#define DIGEST(ptr, count) h = fnv(h, (ptr), (count) * sizeof(*(ptr)))
    CALL(bnorm_forward_training(shape, p, x, gamma, beta, y, sm, si, &run, ws, W));
    DIGEST(y, T), DIGEST(sm, F), DIGEST(si, F), DIGEST(rm, F), DIGEST(rv, F);
    CALL(bnorm_backward_training(shape, p, x, dy, gamma, sm, si, dx, dg, db, ws, W));
    DIGEST(dx, T), DIGEST(dg, F), DIGEST(db, F);
    CALL(bnorm_forward_inference(shape, p, x, gamma, beta, rm, rv, y, ws, W));
    DIGEST(y, T);
    CALL(bnorm_backward_inference(shape, p, x, dy, gamma, rm, rv, dx, dg, db, ws, W));
    DIGEST(dx, T), DIGEST(dg, F), DIGEST(db, F);
    for (unsigned ops = 1; ops <= 3; ops++) {
        bnorm_fusion fu = {ops, BNORM_DTYPE_F32};
        memset(mask, 0, M);
        CALL(bnorm_fused_forward_training(shape, p, &fu, x, z, gamma, beta, y, sm, si, &run, mask,
                                          ws, W));
        DIGEST(y, T), DIGEST(sm, F), DIGEST(si, F), DIGEST(rm, F), DIGEST(rv, F);
        if (ops & BNORM_FUSE_RELU) DIGEST(mask, M);
        CALL(bnorm_fused_backward_training(shape, p, &fu, x, dy, mask, gamma, sm, si, dx, dz, dg,
                                           db, ws, W));
        DIGEST(dx, T), DIGEST(dg, F), DIGEST(db, F);
        if (ops & BNORM_FUSE_ADD) DIGEST(dz, T);
        CALL(bnorm_fused_forward_inference(shape, p, &fu, x, z, gamma, beta, rm, rv, y, ws, W));
        DIGEST(y, T);
    }
    /* In place. */
    memcpy(y, x, T * 4);
    CALL(bnorm_forward_training(shape, p, y, gamma, beta, y, sm, si, &run, ws, W));
    DIGEST(y, T);
    memcpy(dx, dy, T * 4);
    CALL(bnorm_backward_training(shape, p, x, dx, gamma, sm, si, dx, dg, db, ws, W));
    DIGEST(dx, T);
    /* The split-phase calls on the whole batch as one share. */
    CALL(bnorm_local_moments(shape, p, x, rec, ws, W));
    DIGEST(rec, 2 * F + 1);
    CALL(bnorm_merge_moments((int64_t)F, 1, rec, rec));
    CALL(bnorm_forward_training_global(shape, p, x, gamma, beta, rec, y, sm, si, &run, ws, W));
    DIGEST(y, T), DIGEST(sm, F), DIGEST(si, F), DIGEST(rm, F), DIGEST(rv, F);
    CALL(bnorm_backward_local_sums(shape, p, x, dy, rec, sums, ws, W));
    DIGEST(sums, 2 * F);
    CALL(bnorm_backward_apply(shape, p, x, dy, gamma, rec, sums, dx, dg, db, ws, W));
    DIGEST(dx, T), DIGEST(dg, F), DIGEST(db, F);
    bnorm_fusion fu = {BNORM_FUSE_RELU | BNORM_FUSE_ADD, BNORM_DTYPE_F32};
    CALL(bnorm_fused_forward_training_global(shape, p, &fu, x, z, gamma, beta, rec, y, sm, si, &run,
                                             mask, ws, W));
    DIGEST(y, T), DIGEST(mask, M);
    CALL(bnorm_fused_backward_local_sums(shape, p, &fu, x, dy, mask, rec, g, sums, ws, W));
    DIGEST(g, T), DIGEST(sums, 2 * F);
#undef DIGEST
    free(x), free(dy), free(z), free(y), free(dx), free(dz), free(g), free(pf), free(rec);
    free(sums), free(mask), free(ws);
    return h;
}

int main(void) {
    /* {n, c, h, w}; w = 0: NC. */
    static const int64_t shapes[][4] = {
        {2, 1, 0, 0},    {7, 3, 0, 0},    {300, 17, 0, 0},  {257, 129, 0, 0}, {64, 300, 0, 0},
        {3, 5, 1, 1},    {2, 3, 3, 5},    {5, 7, 7, 7},     {4, 16, 8, 8},    {3, 20, 14, 14},
        {2, 6, 65, 67},  {1, 2, 130, 70}, {33, 64, 4, 4},   {9, 96, 5, 3},    {2, 48, 28, 28},
        {64, 128, 2, 1}, {2, 33, 17, 9},  {16, 256, 14, 14}};
    static const unsigned flag_sets[] = {BNORM_USE_SCALE | BNORM_USE_SHIFT, 0,
                                         BNORM_USE_SCALE | BNORM_RUNNING_VAR_BIASED |
                                             BNORM_RUNNING_CUMULATIVE,
                                         BNORM_USE_SHIFT | BNORM_CACHED_OUTPUTS};
    uint64_t all = 14695981039346656037ULL;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int layout = 0; layout < 3; layout++) {
            const int64_t *d = shapes[s];
            if ((d[2] == 0) != (layout == 0)) continue;
            bnorm_shape shape = layout == 0   ? bnorm_shape_nc(d[0], d[1])
                                : layout == 1 ? bnorm_shape_nchw(d[0], d[1], d[2], d[3])
                                              : bnorm_shape_nhwc(d[0], d[2], d[3], d[1]);
            for (int mode = 0; mode < 2; mode++)
                for (int ref = 0; ref < 2; ref++) {
                    uint64_t h = 14695981039346656037ULL;
                    for (int threads = 1; threads <= 3; threads++) {
                        if (ref && threads > 1) break;
                        for (size_t fs = 0; fs < sizeof flag_sets / sizeof flag_sets[0]; fs++) {
                            bnorm_params p = bnorm_params_default();
                            p.mode = mode ? BNORM_MODE_PER_ACTIVATION : BNORM_MODE_SPATIAL;
                            p.threads = threads;
                            p.flags = flag_sets[fs] | BNORM_EXACT_THREADS |
                                      (ref ? BNORM_FORCE_REFERENCE : 0);
                            if (shape.n < 2 && mode) continue;
                            uint64_t c = digest_case(&shape, &p, fs == 1 ? 1e4 : 0.5);
                            h = fnv(h, &c, sizeof c);
                        }
                    }
                    printf("%lldx%lldx%lldx%lld layout %d mode %d %s %016llx\n", (long long)d[0],
                           (long long)d[1], (long long)d[2], (long long)d[3], layout, mode,
                           ref ? "reference" : "fast", (unsigned long long)h);
                    all = fnv(all, &h, sizeof h);
                }
        }
    /* Tensors past the non-temporal store threshold: each layout, and
     * planes short enough for the fused forward's staging buffer. */
    for (int layout = 1; layout < 4; layout++) {
        bnorm_shape shape = layout == 1   ? bnorm_shape_nchw(8, 64, 96, 96)
                            : layout == 2 ? bnorm_shape_nhwc(8, 96, 96, 64)
                                          : bnorm_shape_nchw(32, 64, 48, 48);
        bnorm_params p = bnorm_params_default();
        p.threads = 2;
        p.flags |= BNORM_EXACT_THREADS;
        uint64_t c = digest_case(&shape, &p, 2.0);
        printf("large layout %d %016llx\n", layout, (unsigned long long)c);
        all = fnv(all, &c, sizeof c);
    }
    printf("digest %016llx\n", (unsigned long long)all);
    return 0;
}
