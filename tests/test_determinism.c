/* Outputs must be bit-identical for 1, 2, 3 and 8 threads, on shapes big
 * enough to be split into many chunks and tiles, and with or without
 * BNORM_CACHED_OUTPUTS on tensors whose outputs bypass the cache. The digest
 * it prints of every output lets the build compare the library's dispatch
 * levels, which must be bit-identical too (tests/same_digest.cmake). */
#include <stdlib.h>
#include <string.h>

#include "bnorm.h"
#include "check.h"
#include "digest.h"
#include "oracle.h"

typedef struct {
    float *y, *mean, *invstd, *rmean, *rvar, *dx, *dgamma, *dbeta, *yi, *dxi;
} outputs;

static void run(const bnorm_shape *shape, bnorm_mode mode, int threads, unsigned extra_flags,
                const float *x, const float *dy, const float *gamma, const float *beta,
                outputs *o) {
    bnorm_params p = bnorm_params_default();
    p.mode = mode;
    p.threads = threads;
    p.flags |= BNORM_EXACT_THREADS | extra_flags;
    size_t F, wsz;
    bnorm_feature_count(shape, &p, &F);
    bnorm_workspace_size(shape, &p, &wsz);
    void *ws = malloc(wsz);
    for (size_t f = 0; f < F; f++)
        o->rmean[f] = 0.0f, o->rvar[f] = 1.0f;
    bnorm_running_stats run = {o->rmean, o->rvar, 0};
    bnorm_status st =
        bnorm_forward_training(shape, &p, x, gamma, beta, o->y, o->mean, o->invstd, &run, ws, wsz);
    CHECK(st == BNORM_OK, "forward_training: %s", bnorm_status_str(st));
    st = bnorm_backward_training(shape, &p, x, dy, gamma, o->mean, o->invstd, o->dx, o->dgamma,
                                 o->dbeta, ws, wsz);
    CHECK(st == BNORM_OK, "backward_training: %s", bnorm_status_str(st));
    st = bnorm_forward_inference(shape, &p, x, gamma, beta, o->rmean, o->rvar, o->yi, ws, wsz);
    CHECK(st == BNORM_OK, "forward_inference: %s", bnorm_status_str(st));
    st = bnorm_backward_inference(shape, &p, x, dy, gamma, o->rmean, o->rvar, o->dxi, o->dgamma,
                                  o->dbeta, ws, wsz);
    CHECK(st == BNORM_OK, "backward_inference: %s", bnorm_status_str(st));
    free(ws);
}

static outputs alloc_outputs(size_t T, size_t F) {
    outputs o;
    o.y = malloc(T * 4), o.dx = malloc(T * 4), o.yi = malloc(T * 4), o.dxi = malloc(T * 4);
    o.mean = malloc(F * 4), o.invstd = malloc(F * 4), o.rmean = malloc(F * 4);
    o.rvar = malloc(F * 4), o.dgamma = malloc(F * 4), o.dbeta = malloc(F * 4);
    return o;
}

static void free_outputs(outputs *o) {
    free(o->y), free(o->dx), free(o->yi), free(o->dxi), free(o->mean), free(o->invstd);
    free(o->rmean), free(o->rvar), free(o->dgamma), free(o->dbeta);
}

static int same(const float *a, const float *b, size_t n) { return memcmp(a, b, n * 4) == 0; }

static int same_outputs(const outputs *o, const outputs *base, size_t T, size_t F) {
    return same(o->y, base->y, T) && same(o->dx, base->dx, T) && same(o->yi, base->yi, T) &&
           same(o->dxi, base->dxi, T) && same(o->mean, base->mean, F) &&
           same(o->invstd, base->invstd, F) && same(o->rmean, base->rmean, F) &&
           same(o->rvar, base->rvar, F) && same(o->dgamma, base->dgamma, F) &&
           same(o->dbeta, base->dbeta, F);
}

static void fill_inputs(test_rng *rng, size_t T, size_t F, float *x, float *dy, float *g,
                        float *b) {
    for (size_t i = 0; i < T; i++)
        x[i] = (float)(rng_normal(rng) * 2.0 + 5.0);
    for (size_t i = 0; i < T; i++)
        dy[i] = (float)rng_normal(rng);
    for (size_t f = 0; f < F; f++)
        g[f] = (float)rng_uniform(rng) + 0.5f;
    for (size_t f = 0; f < F; f++)
        b[f] = (float)rng_normal(rng);
}

static unsigned long long digest_outputs(unsigned long long h, const outputs *o, size_t T,
                                         size_t F) {
    const float *big[] = {o->y, o->dx, o->yi, o->dxi};
    const float *small[] = {o->mean, o->invstd, o->rmean, o->rvar, o->dgamma, o->dbeta};
    for (int i = 0; i < 4; i++)
        h = digest_add(h, big[i], T);
    for (int i = 0; i < 6; i++)
        h = digest_add(h, small[i], F);
    return h;
}

int main(void) {
    check_cpu_or_skip();
    bnorm_shape shapes[6];
    shapes[0] = bnorm_shape_nc(1000, 37);
    shapes[1] = bnorm_shape_nchw(6, 17, 33, 65);
    shapes[2] = bnorm_shape_nhwc(5, 31, 29, 19);
    shapes[3] = bnorm_shape_nc(40, 1100);
    shapes[4] = bnorm_shape_nchw(3, 2, 100, 90); /* planes split into segments */
    shapes[5] = bnorm_shape_nchw(700, 3, 1, 3);  /* many planes per chunk */
    test_rng rng = {777};
    unsigned long long digest = DIGEST_START;
    for (int si = 0; si < 6; si++)
        for (int mode = 0; mode < 2; mode++) {
            oracle_dims d = oracle_dims_of(&shapes[si], (bnorm_mode)mode);
            size_t T = d.total, F = d.features;
            float *x = malloc(T * 4), *dy = malloc(T * 4), *g = malloc(F * 4), *b = malloc(F * 4);
            fill_inputs(&rng, T, F, x, dy, g, b);
            outputs base = alloc_outputs(T, F);
            run(&shapes[si], (bnorm_mode)mode, 1, 0, x, dy, g, b, &base);
            digest = digest_outputs(digest, &base, T, F);
            const int counts[] = {2, 3, 8};
            for (int k = 0; k < 3; k++) {
                outputs o = alloc_outputs(T, F);
                run(&shapes[si], (bnorm_mode)mode, counts[k], 0, x, dy, g, b, &o);
                CHECK(same_outputs(&o, &base, T, F),
                      "shape %d mode %d: %d threads differ from 1 thread", si, mode, counts[k]);
                free_outputs(&o);
            }
            free_outputs(&base);
            free(x), free(dy), free(g), free(b);
        }
    /* Outputs of 17 MB go around the cache unless BNORM_CACHED_OUTPUTS says
     * otherwise: the store is all that may change, never a value. */
    const bnorm_shape streamed[] = {bnorm_shape_nchw(64, 16, 64, 65),
                                    bnorm_shape_nhwc(4, 130, 128, 64)};
    for (int si = 0; si < 2; si++) {
        oracle_dims d = oracle_dims_of(&streamed[si], BNORM_MODE_SPATIAL);
        size_t T = d.total, F = d.features;
        float *x = malloc(T * 4), *dy = malloc(T * 4), *g = malloc(F * 4), *b = malloc(F * 4);
        fill_inputs(&rng, T, F, x, dy, g, b);
        outputs base = alloc_outputs(T, F), o = alloc_outputs(T, F);
        run(&streamed[si], BNORM_MODE_SPATIAL, 2, 0, x, dy, g, b, &base);
        run(&streamed[si], BNORM_MODE_SPATIAL, 2, BNORM_CACHED_OUTPUTS, x, dy, g, b, &o);
        CHECK(same_outputs(&o, &base, T, F),
              "streamed shape %d: BNORM_CACHED_OUTPUTS changes values", si);
        digest = digest_outputs(digest, &base, T, F);
        free_outputs(&base), free_outputs(&o);
        free(x), free(dy), free(g), free(b);
    }
    printf("digest %016llx\n", digest);
    return check_finish();
}
