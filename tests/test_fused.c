/* Fused BN + add + ReLU: forward (training and inference) and backward
 * against the float64 oracle composed from unfused operations, for every
 * mode, layout and op combination, reference and fast paths; bit-identical
 * across thread counts and to the unfused calls followed by the same float
 * add and ReLU; streamed outputs identical to cached ones; every bad
 * argument refused with nothing written. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bnorm.h"
#include "check.h"
#include "oracle.h"

#define TOL 1e-5

typedef struct {
    float *y, *dx, *dz, *dg, *db, *sm, *si, *rm, *rv, *yi;
    unsigned char *mask;
} outputs;

static void alloc_outputs(outputs *o, size_t T, size_t F, size_t mask_bytes) {
    o->y = calloc(T, 4), o->dx = calloc(T, 4), o->dz = calloc(T, 4), o->yi = calloc(T, 4);
    o->dg = calloc(F, 4), o->db = calloc(F, 4), o->sm = calloc(F, 4), o->si = calloc(F, 4);
    o->rm = calloc(F, 4), o->rv = calloc(F, 4), o->mask = calloc(mask_bytes + 1, 1);
}

static void free_outputs(outputs *o) {
    free(o->y), free(o->dx), free(o->dz), free(o->yi), free(o->dg), free(o->db), free(o->sm);
    free(o->si), free(o->rm), free(o->rv), free(o->mask);
}

static int bit(const unsigned char *mask, size_t i) { return (mask[i / 8] >> (i % 8)) & 1; }

/* Training forward, inference forward (from the running statistics) and
 * backward, with `extra` flags and `threads`. */
static void run_fused(const bnorm_shape *s, bnorm_mode mode, unsigned ops, unsigned extra,
                      int threads, const float *x, const float *z, const float *dy,
                      const float *gamma, const float *beta, outputs *o) {
    bnorm_params p = bnorm_params_default();
    p.mode = mode, p.threads = threads, p.eps = 1e-3f;
    p.flags |= extra | BNORM_EXACT_THREADS;
    bnorm_fusion fu = {ops, BNORM_DTYPE_F32};
    size_t wsz, F;
    bnorm_workspace_size(s, &p, &wsz);
    bnorm_feature_count(s, &p, &F);
    void *ws = malloc(wsz);
    for (size_t f = 0; f < F; f++)
        o->rm[f] = 0.0f, o->rv[f] = 1.0f;
    bnorm_running_stats run = {o->rm, o->rv, 0};
    bnorm_status st = bnorm_fused_forward_training(s, &p, &fu, x, z, gamma, beta, o->y, o->sm,
                                                   o->si, &run, o->mask, ws, wsz);
    CHECK(st == BNORM_OK, "fused forward: %s", bnorm_status_str(st));
    st = bnorm_fused_forward_inference(s, &p, &fu, x, z, gamma, beta, o->rm, o->rv, o->yi, ws, wsz);
    CHECK(st == BNORM_OK, "fused inference: %s", bnorm_status_str(st));
    st = bnorm_fused_backward_training(s, &p, &fu, x, dy, o->mask, gamma, o->sm, o->si, o->dx,
                                       o->dz, o->dg, o->db, ws, wsz);
    CHECK(st == BNORM_OK, "fused backward: %s", bnorm_status_str(st));
    free(ws);
}

static int same_bits(const void *a, const void *b, size_t bytes) { return !memcmp(a, b, bytes); }

/* Whether fused is, bit for bit, the unfused output yu followed by the
 * same float add and ReLU. */
static int same_as_unfused(const float *yu, const float *z, unsigned ops, const float *fused,
                           size_t T) {
    int same = 1;
    for (size_t i = 0; i < T; i++) {
        float v = (ops & BNORM_FUSE_ADD) ? yu[i] + z[i] : yu[i];
        float want = (ops & BNORM_FUSE_RELU) ? (v > 0.0f ? v : 0.0f) : v;
        same &= memcmp(&want, &fused[i], 4) == 0;
    }
    return same;
}

static void check_case(const bnorm_shape *s, bnorm_mode mode, unsigned ops, test_rng *rng) {
    oracle_dims d = oracle_dims_of(s, mode);
    size_t T = d.total, F = d.features, MB;
    CHECK(bnorm_fused_mask_size(s, &MB) == BNORM_OK && MB == (T + 7) / 8, "mask size");
    float *x = malloc(T * 4), *z = malloc(T * 4), *dy = malloc(T * 4);
    float *gamma = malloc(F * 4), *beta = malloc(F * 4);
    double *xd = malloc(T * 8), *zd = malloc(T * 8), *pre = malloc(T * 8), *g = malloc(T * 8);
    double *dxd = malloc(T * 8), *gd = malloc(F * 8), *bd = malloc(F * 8);
    double *mean = malloc(F * 8), *var = malloc(F * 8), *dgd = malloc(F * 8), *dbd = malloc(F * 8);
    for (size_t i = 0; i < T; i++) {
        x[i] = (float)(2.0 + rng_normal(rng)), xd[i] = x[i];
        z[i] = (float)(0.5 * rng_normal(rng)), zd[i] = (ops & BNORM_FUSE_ADD) ? z[i] : 0.0;
        dy[i] = (float)rng_normal(rng);
    }
    for (size_t f = 0; f < F; f++) {
        gamma[f] = (float)(1.0 + 0.3 * rng_normal(rng)), gd[f] = gamma[f];
        beta[f] = (float)(0.2 * rng_normal(rng)), bd[f] = beta[f];
    }
    outputs ref, one, three;
    alloc_outputs(&ref, T, F, MB), alloc_outputs(&one, T, F, MB), alloc_outputs(&three, T, F, MB);
    run_fused(s, mode, ops, BNORM_FORCE_REFERENCE, 1, x, z, dy, gamma, beta, &ref);
    run_fused(s, mode, ops, 0, 1, x, z, dy, gamma, beta, &one);
    run_fused(s, mode, ops, 0, 3, x, z, dy, gamma, beta, &three);

    /* The oracle: pre = bn(x) + z, y = relu(pre), g = dy where pre > 0. */
    oracle_stats(s, mode, xd, mean, var);
    oracle_normalize(s, mode, xd, mean, var, gd, bd, 1e-3f, pre);
    int relu = (ops & BNORM_FUSE_RELU) != 0, mask_ok = 1;
    double *yd = malloc(T * 8);
    for (size_t i = 0; i < T; i++) {
        pre[i] += zd[i];
        int on = pre[i] > 0.0;
        /* Within rounding of the kink the float computation may go either
         * way: the library's own bit decides there. */
        if (relu && fabs(pre[i]) < 1e-5) on = bit(ref.mask, i);
        if (relu && fabs(pre[i]) >= 1e-5) mask_ok &= bit(ref.mask, i) == on;
        yd[i] = relu ? (on ? pre[i] : 0.0) : pre[i];
        g[i] = relu && !on ? 0.0 : dy[i];
    }
    double *gdd = malloc(T * 8);
    for (size_t i = 0; i < T; i++)
        gdd[i] = g[i];
    oracle_backward_train(s, mode, xd, gdd, gd, 1e-3f, dxd, dgd, dbd);
    const outputs *paths[2] = {&ref, &one};
    for (int k = 0; k < 2; k++) {
        const outputs *o = paths[k];
        double ey = oracle_rel_err_f(o->y, yd, T), edx = oracle_rel_err_f(o->dx, dxd, T);
        double edg = oracle_rel_err_f(o->dg, dgd, F), edb = oracle_rel_err_f(o->db, dbd, F);
        double edz = (ops & BNORM_FUSE_ADD) ? oracle_rel_err_f(o->dz, g, T) : 0.0;
        CHECK(ey <= TOL && edx <= TOL && edg <= TOL && edb <= TOL && edz <= TOL,
              "%s, layout %d mode %d ops %u: y %.2g dx %.2g dgamma %.2g dbeta %.2g dz %.2g",
              k ? "fast" : "reference", s->layout, mode, ops, ey, edx, edg, edb, edz);
    }
    CHECK(mask_ok || !relu, "layout %d mode %d ops %u: mask differs from the oracle's", s->layout,
          mode, ops);
    /* Threads change no bit, and the fast and reference masks agree. */
    CHECK(same_bits(one.y, three.y, T * 4) && same_bits(one.dx, three.dx, T * 4) &&
              same_bits(one.dg, three.dg, F * 4) && same_bits(one.db, three.db, F * 4) &&
              same_bits(one.yi, three.yi, T * 4) &&
              (!(ops & BNORM_FUSE_ADD) || same_bits(one.dz, three.dz, T * 4)) &&
              (!relu || same_bits(one.mask, three.mask, MB)),
          "layout %d mode %d ops %u: 1 and 3 threads differ", s->layout, mode, ops);
    /* The fused forward is the unfused one followed by the same float add
     * and ReLU, bit for bit; inference likewise from the running stats. */
    bnorm_params p = bnorm_params_default();
    p.mode = mode, p.eps = 1e-3f;
    size_t wsz;
    bnorm_workspace_size(s, &p, &wsz);
    void *ws = malloc(wsz);
    float *yu = malloc(T * 4), *sm = malloc(F * 4), *si = malloc(F * 4);
    bnorm_forward_training(s, &p, x, gamma, beta, yu, sm, si, NULL, ws, wsz);
    CHECK(same_as_unfused(yu, z, ops, one.y, T),
          "layout %d mode %d ops %u: fused y differs from unfused + add + relu", s->layout, mode,
          ops);
    bnorm_forward_inference(s, &p, x, gamma, beta, one.rm, one.rv, yu, ws, wsz);
    CHECK(same_as_unfused(yu, z, ops, one.yi, T),
          "layout %d mode %d ops %u: fused inference differs from unfused", s->layout, mode, ops);
    /* The fused backward, which reads dy through the mask in its kernels,
     * is the unfused backward of the masked gradient bit for bit, and dz is
     * that gradient; on both paths, and in place (dx = dy). */
    float *gm = malloc(T * 4), *dxu = malloc(T * 4), *dgu = malloc(F * 4), *dbu = malloc(F * 4);
    float *dxi = malloc(T * 4), *dzi = malloc(T * 4), *dgi = malloc(F * 4), *dbi = malloc(F * 4);
    for (size_t i = 0; i < T; i++)
        gm[i] = !relu || bit(one.mask, i) ? dy[i] : 0.0f;
    bnorm_fusion fu = {ops, BNORM_DTYPE_F32};
    for (int path = 0; path < 2; path++) {
        bnorm_params q = p;
        q.flags |= path ? BNORM_FORCE_REFERENCE : 0u;
        const outputs *o = path ? &ref : &one;
        bnorm_backward_training(s, &q, x, gm, gamma, o->sm, o->si, dxu, dgu, dbu, ws, wsz);
        CHECK(same_bits(dxu, o->dx, T * 4) && same_bits(dgu, o->dg, F * 4) &&
                  same_bits(dbu, o->db, F * 4) &&
                  (!(ops & BNORM_FUSE_ADD) || same_bits(gm, o->dz, T * 4)),
              "%s, layout %d mode %d ops %u: fused backward differs from the unfused backward "
              "of the masked gradient",
              path ? "reference" : "fast", s->layout, mode, ops);
        memcpy(dxi, dy, T * 4);
        bnorm_status st = bnorm_fused_backward_training(s, &q, &fu, x, dxi, o->mask, gamma, o->sm,
                                                        o->si, dxi, dzi, dgi, dbi, ws, wsz);
        CHECK(st == BNORM_OK && same_bits(dxi, o->dx, T * 4) && same_bits(dgi, o->dg, F * 4) &&
                  (!(ops & BNORM_FUSE_ADD) || same_bits(dzi, o->dz, T * 4)),
              "%s, layout %d mode %d ops %u: the fused backward in place differs",
              path ? "reference" : "fast", s->layout, mode, ops);
    }
    free(gm), free(dxu), free(dgu), free(dbu), free(dxi), free(dzi), free(dgi), free(dbi);
    free(ws), free(yu), free(sm), free(si);
    free_outputs(&ref), free_outputs(&one), free_outputs(&three);
    free(x), free(z), free(dy), free(gamma), free(beta), free(xd), free(zd), free(pre), free(g);
    free(dxd), free(gd), free(bd), free(mean), free(var), free(dgd), free(dbd), free(yd), free(gdd);
}

/* Every bad argument: a status, and not one output byte written. */
static void check_errors(void) {
    bnorm_shape s = bnorm_shape_nchw(2, 3, 2, 2);
    bnorm_params p = bnorm_params_default();
    float x[24] = {0}, z[24] = {0}, dy[24] = {0}, g[3] = {1, 1, 1}, b[3] = {0};
    float y[24], dx[24], dz[24], sm[3], si[3], dg[3], db[3];
    unsigned char mask[3], ws[8192];
    for (int i = 0; i < 24; i++)
        x[i] = (float)i, dy[i] = 1.0f;
    memset(y, 0x5a, sizeof y), memset(dx, 0x5a, sizeof dx), memset(dz, 0x5a, sizeof dz);
    memset(mask, 0x5a, sizeof mask), memset(sm, 0x5a, sizeof sm), memset(si, 0x5a, sizeof si);
    memset(dg, 0x5a, sizeof dg), memset(db, 0x5a, sizeof db);
    bnorm_fusion both = {BNORM_FUSE_RELU | BNORM_FUSE_ADD, BNORM_DTYPE_F32};
    bnorm_fusion bad_ops = {0x4, BNORM_DTYPE_F32}, bad_type = {BNORM_FUSE_RELU, (bnorm_dtype)1};
    CHECK(bnorm_fused_forward_training(&s, &p, NULL, x, z, g, b, y, sm, si, NULL, mask, ws,
                                       sizeof ws) == BNORM_ERR_NULL_POINTER,
          "NULL fusion");
    CHECK(bnorm_fused_forward_training(&s, &p, &bad_ops, x, z, g, b, y, sm, si, NULL, mask, ws,
                                       sizeof ws) == BNORM_ERR_INVALID_FLAGS,
          "unknown op");
    CHECK(bnorm_fused_forward_training(&s, &p, &bad_type, x, z, g, b, y, sm, si, NULL, mask, ws,
                                       sizeof ws) == BNORM_ERR_INVALID_DTYPE,
          "unknown dtype");
    CHECK(bnorm_fused_forward_training(&s, &p, &both, x, NULL, g, b, y, sm, si, NULL, mask, ws,
                                       sizeof ws) == BNORM_ERR_NULL_POINTER,
          "add without z");
    CHECK(bnorm_fused_forward_training(&s, &p, &both, x, z, g, b, y, sm, si, NULL, NULL, ws,
                                       sizeof ws) == BNORM_ERR_NULL_POINTER,
          "relu without mask");
    CHECK(bnorm_fused_forward_training(&s, &p, &both, x, z, g, b, y, sm, si, NULL, mask, ws, 16) ==
              BNORM_ERR_WORKSPACE_TOO_SMALL,
          "short workspace");
    CHECK(bnorm_fused_forward_inference(&s, &p, &both, x, NULL, g, b, sm, si, y, ws, sizeof ws) ==
              BNORM_ERR_NULL_POINTER,
          "inference add without z");
    CHECK(bnorm_fused_backward_training(&s, &p, &both, x, dy, NULL, g, g, g, dx, dz, dg, db, ws,
                                        sizeof ws) == BNORM_ERR_NULL_POINTER,
          "backward relu without mask");
    CHECK(bnorm_fused_backward_training(&s, &p, &both, x, dy, mask, g, g, g, dx, NULL, dg, db, ws,
                                        sizeof ws) == BNORM_ERR_NULL_POINTER,
          "backward add without dz");
    /* The BN checks come before the mask is applied into dz. */
    CHECK(bnorm_fused_backward_training(&s, &p, &both, x, dy, mask, g, g, g, dx, dz, dg, db, ws,
                                        16) == BNORM_ERR_WORKSPACE_TOO_SMALL,
          "backward short workspace");
    bnorm_shape one = bnorm_shape_nc(1, 3);
    CHECK(bnorm_fused_backward_training(&one, &p, &both, x, dy, mask, g, g, g, dx, dz, dg, db, ws,
                                        sizeof ws) == BNORM_ERR_SINGLE_VALUE,
          "backward single value");
    int untouched = 1;
    const unsigned char *bufs[] = {(void *)y,  (void *)dx, (void *)dz, mask,
                                   (void *)sm, (void *)si, (void *)dg, (void *)db};
    size_t sizes[] = {sizeof y,  sizeof dx, sizeof dz, sizeof mask,
                      sizeof sm, sizeof si, sizeof dg, sizeof db};
    for (int k = 0; k < 8; k++)
        for (size_t i = 0; i < sizes[k]; i++)
            untouched &= bufs[k][i] == 0x5a;
    CHECK(untouched, "a refused call wrote an output");
    size_t mb;
    CHECK(bnorm_fused_mask_size(&s, NULL) == BNORM_ERR_NULL_POINTER, "mask size NULL");
    bnorm_shape bad = bnorm_shape_nc(0, 3);
    CHECK(bnorm_fused_mask_size(&bad, &mb) == BNORM_ERR_INVALID_DIMENSION, "mask size bad shape");
}

/* Tensors above the size from which y and dx stream to memory: the fused
 * kernels' streaming loops against their cached ones (BNORM_CACHED_OUTPUTS),
 * which the small cases above hold to the oracle. Runs of a multiple of 16
 * and of 8 but not 16 values, both layouts. */
static void check_streamed(void) {
    const bnorm_shape shapes[] = {
        bnorm_shape_nchw(4, 16, 256, 264), bnorm_shape_nchw(64, 24, 56, 57),
        bnorm_shape_nhwc(8, 64, 66, 128), bnorm_shape_nhwc(8, 64, 64, 136)};
    test_rng rng = {5};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        oracle_dims d = oracle_dims_of(&shapes[si], BNORM_MODE_SPATIAL);
        size_t T = d.total, F = d.features, MB = (T + 7) / 8;
        float *x = malloc(T * 4), *z = malloc(T * 4), *dy = malloc(T * 4);
        float *gamma = malloc(F * 4), *beta = malloc(F * 4);
        for (size_t i = 0; i < T; i++)
            x[i] = (float)rng_normal(&rng), z[i] = (float)rng_normal(&rng), dy[i] = x[i] - z[i];
        for (size_t f = 0; f < F; f++)
            gamma[f] = (float)(1.0 + 0.3 * rng_normal(&rng)), beta[f] = (float)rng_normal(&rng);
        for (unsigned ops = BNORM_FUSE_RELU; ops <= (BNORM_FUSE_RELU | BNORM_FUSE_ADD);
             ops += BNORM_FUSE_ADD) {
            outputs streamed, cached;
            alloc_outputs(&streamed, T, F, MB), alloc_outputs(&cached, T, F, MB);
            run_fused(&shapes[si], BNORM_MODE_SPATIAL, ops, 0, 2, x, z, dy, gamma, beta, &streamed);
            run_fused(&shapes[si], BNORM_MODE_SPATIAL, ops, BNORM_CACHED_OUTPUTS, 2, x, z, dy,
                      gamma, beta, &cached);
            CHECK(same_bits(streamed.y, cached.y, T * 4) &&
                      same_bits(streamed.yi, cached.yi, T * 4) &&
                      same_bits(streamed.mask, cached.mask, MB) &&
                      same_bits(streamed.dx, cached.dx, T * 4) &&
                      same_bits(streamed.dz, cached.dz, T * 4),
                  "streamed shape %zu ops %u: outputs differ from the cached ones", si, ops);
            free_outputs(&streamed), free_outputs(&cached);
        }
        free(x), free(z), free(dy), free(gamma), free(beta);
    }
}

/* The ReLU at the values where formulations differ: +-inf, NaN of either
 * sign, exact +0 and values a few ulps either side of it, reached through
 * the residual z = special - bn(x). Every path must give, bit for bit,
 * v = bn(x) + z, then v where v > 0 or v is NaN and +0 elsewhere, with the
 * mask bit v > 0. Runs of a multiple of 16, of 8 but not 16, and ragged
 * ones, both layouts, fast and reference paths. */
static void check_special_values(void) {
    const bnorm_shape shapes[] = {bnorm_shape_nchw(2, 3, 8, 16), bnorm_shape_nchw(2, 3, 4, 6),
                                  bnorm_shape_nchw(2, 3, 5, 7),  bnorm_shape_nhwc(2, 4, 4, 24),
                                  bnorm_shape_nhwc(2, 3, 3, 40), bnorm_shape_nc(33, 40)};
    const float special[] = {INFINITY, -INFINITY, NAN,     -NAN, 0.0f, 1e-45f,
                             -1e-45f,  1e-38f,    -1e-38f, 1.0f, -1.0f};
    const size_t NS = sizeof special / sizeof special[0];
    test_rng rng = {17};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        oracle_dims d = oracle_dims_of(&shapes[si], BNORM_MODE_SPATIAL);
        size_t T = d.total, F = d.features, MB = (T + 7) / 8;
        float *x = malloc(T * 4), *z = malloc(T * 4), *dy = malloc(T * 4), *yu = malloc(T * 4);
        float *gamma = malloc(F * 4), *beta = malloc(F * 4), *sm = malloc(F * 4),
              *sv = malloc(F * 4);
        for (size_t i = 0; i < T; i++)
            x[i] = (float)rng_normal(&rng), dy[i] = (float)rng_normal(&rng);
        for (size_t f = 0; f < F; f++)
            gamma[f] = (float)(1.0 + 0.3 * rng_normal(&rng)), beta[f] = (float)rng_normal(&rng);
        for (unsigned path = 0; path < 2; path++) {
            bnorm_params p = bnorm_params_default();
            p.eps = 1e-3f, p.threads = 2, p.flags |= BNORM_EXACT_THREADS;
            if (path) p.flags |= BNORM_FORCE_REFERENCE;
            size_t wsz;
            bnorm_workspace_size(&shapes[si], &p, &wsz);
            void *ws = malloc(wsz);
            bnorm_status st =
                bnorm_forward_training(&shapes[si], &p, x, gamma, beta, yu, sm, sv, NULL, ws, wsz);
            CHECK(st == BNORM_OK, "unfused forward: %s", bnorm_status_str(st));
            free(ws);
            /* z = the special value less bn(x), so that bn(x) + z is near it. */
            for (size_t i = 0; i < T; i++)
                z[i] = special[i % NS] - yu[i];
            outputs o;
            alloc_outputs(&o, T, F, MB);
            run_fused(&shapes[si], BNORM_MODE_SPATIAL, BNORM_FUSE_RELU | BNORM_FUSE_ADD,
                      path ? BNORM_FORCE_REFERENCE : 0, 2, x, z, dy, gamma, beta, &o);
            int ok = 1;
            for (size_t i = 0; i < T; i++) {
                float v = yu[i] + z[i];
                float want = (v > 0.0f || v != v) ? v : 0.0f;
                ok &= memcmp(&want, &o.y[i], 4) == 0 && bit(o.mask, i) == (v > 0.0f);
            }
            CHECK(ok, "special values, shape %zu, %s path: y or mask not relu(bn(x) + z)", si,
                  path ? "reference" : "fast");
            free_outputs(&o);
        }
        free(x), free(z), free(dy), free(yu), free(gamma), free(beta), free(sm), free(sv);
    }
}

int main(void) {
    check_cpu_or_skip();
    test_rng rng = {31};
    bnorm_shape shapes[] = {
        bnorm_shape_nc(37, 1),          bnorm_shape_nc(29, 133),
        bnorm_shape_nchw(3, 5, 13, 13), bnorm_shape_nchw(2, 17, 8, 9),
        bnorm_shape_nhwc(3, 7, 5, 19),  bnorm_shape_nhwc(2, 4, 4, 64),
        bnorm_shape_nchw(1, 3, 70, 70), bnorm_shape_nchw(2, 3, 65, 67),
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        for (int mode = 0; mode < 2; mode++)
            for (unsigned ops = 0; ops < 4; ops++) {
                if (shapes[i].n == 1 && mode == BNORM_MODE_PER_ACTIVATION) continue;
                check_case(&shapes[i], (bnorm_mode)mode, ops, &rng);
            }
    check_streamed();
    check_special_values();
    check_errors();
    return check_finish();
}
