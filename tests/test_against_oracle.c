/* Every mode x layout x option x kernel path against the float64 oracle,
 * over ragged shapes: C = 1, C not a multiple of 16, N = 1 with S > 1,
 * S = 1, 5-D tensors, planes split into several chunks, many row blocks and
 * feature blocks. Each output must be within 1e-5 of the oracle, relative to
 * that tensor's largest magnitude. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bnorm.h"
#include "check.h"
#include "oracle.h"

#define TOL 1e-5

typedef struct {
    int64_t n, c;
    int rank;
    int64_t sp[3];
} case_shape;

static const case_shape SHAPES[] = {
    {7, 1, 0, {0}},     {5, 17, 0, {0}},      {64, 40, 0, {0}},    {300, 24, 0, {0}},
    {3, 600, 0, {0}},   {1, 3, 2, {5, 7}},    {4, 19, 1, {1}},     {2, 3, 3, {3, 4, 5}},
    {3, 33, 2, {6, 7}}, {2, 2, 1, {4097}},    {1, 2, 2, {70, 70}}, {9, 1, 2, {3, 3}},
    {2, 5, 1, {2}},     {40, 3, 2, {11, 13}}, {37, 48, 0, {0}},    {3, 128, 2, {5, 7}},
    {21, 16, 1, {3}},   {5, 80, 2, {3, 3}},   {4, 112, 1, {5}},
};

static bnorm_shape shape_of(const case_shape *cs, bnorm_layout layout) {
    bnorm_shape shape = {0};
    shape.layout = layout;
    shape.n = cs->n;
    shape.c = cs->c;
    shape.spatial_rank = cs->rank;
    for (int k = 0; k < cs->rank; k++)
        shape.spatial[k] = cs->sp[k];
    return shape;
}

static void to_double(const float *f, double *d, size_t n) {
    for (size_t i = 0; i < n; i++)
        d[i] = f[i];
}

static void run_case(const bnorm_shape *shape, unsigned flags, bnorm_mode mode, int threads,
                     test_rng *rng, const char *label) {
    bnorm_params p = bnorm_params_default();
    p.mode = mode;
    p.flags = flags;
    p.threads = threads;
    p.flags |= BNORM_EXACT_THREADS; /* small tensors too: the split is what is tested */
    p.decay = 0.8f;
    p.eps = 1e-3f;
    oracle_dims d = oracle_dims_of(shape, mode);
    size_t T = d.total, F = d.features, wsz = 0;
    CHECK(bnorm_workspace_size(shape, &p, &wsz) == BNORM_OK, "%s: workspace size", label);
    size_t feat = 0;
    CHECK(bnorm_feature_count(shape, &p, &feat) == BNORM_OK && feat == F, "%s: features", label);
    void *ws = malloc(wsz);
    float *x = malloc(T * sizeof(float)), *y = malloc(T * sizeof(float));
    float *dy = malloc(T * sizeof(float)), *dx = malloc(T * sizeof(float));
    double *xd = malloc(T * sizeof(double)), *yd = malloc(T * sizeof(double));
    double *dyd = malloc(T * sizeof(double)), *dxd = malloc(T * sizeof(double));
    float *fbuf = malloc(8 * F * sizeof(float));
    float *gamma = fbuf, *beta = fbuf + F, *smean = fbuf + 2 * F, *sinv = fbuf + 3 * F;
    float *rmean = fbuf + 4 * F, *rvar = fbuf + 5 * F, *dgamma = fbuf + 6 * F,
          *dbeta = fbuf + 7 * F;
    double *dbuf = malloc(8 * F * sizeof(double));
    double *gd = dbuf, *bd = dbuf + F, *md = dbuf + 2 * F, *vd = dbuf + 3 * F;
    double *rmd = dbuf + 4 * F, *rvd = dbuf + 5 * F, *dgd = dbuf + 6 * F, *dbd = dbuf + 7 * F;
    const int scale = (flags & BNORM_USE_SCALE) != 0, shift = (flags & BNORM_USE_SHIFT) != 0;

    for (size_t f = 0; f < F; f++) {
        gamma[f] = (float)(0.5 + rng_uniform(rng));
        beta[f] = (float)rng_normal(rng);
        rmean[f] = 0.0f, rvar[f] = 1.0f, rmd[f] = 0.0, rvd[f] = 1.0;
    }
    to_double(gamma, gd, F);
    to_double(beta, bd, F);
    bnorm_running_stats run = {rmean, rvar, 0};

    /* Three training steps on fresh batches: statistics, y, running stats. */
    for (int step = 0; step < 3 && d.count > 1; step++) {
        for (size_t i = 0; i < T; i++) {
            size_t f = oracle_feature(shape, mode, i);
            x[i] = (float)(3.0 * rng_normal(rng) + 0.1 * (double)(f % 23) - 1.0 + step);
        }
        to_double(x, xd, T);
        bnorm_status st =
            bnorm_forward_training(shape, &p, x, gamma, beta, y, smean, sinv, &run, ws, wsz);
        CHECK(st == BNORM_OK, "%s: forward_training -> %s", label, bnorm_status_str(st));
        oracle_stats(shape, mode, xd, md, vd);
        oracle_normalize(shape, mode, xd, md, vd, scale ? gd : NULL, shift ? bd : NULL, p.eps, yd);
        double factor = (flags & BNORM_RUNNING_CUMULATIVE) ? 1.0 / (step + 1.0) : 1.0 - p.decay;
        double corr = (flags & BNORM_RUNNING_VAR_BIASED) ? 1.0 : d.count / (d.count - 1.0);
        for (size_t f = 0; f < F; f++) {
            rmd[f] = (1.0 - factor) * rmd[f] + factor * md[f];
            rvd[f] = (1.0 - factor) * rvd[f] + factor * vd[f] * corr;
            dxd[f] = 1.0 / sqrt(vd[f] + p.eps); /* scratch: expected invstd */
        }
        CHECK(oracle_rel_err_f(y, yd, T) <= TOL, "%s step %d: y err %.3g", label, step,
              oracle_rel_err_f(y, yd, T));
        CHECK(oracle_rel_err_f(smean, md, F) <= TOL, "%s: save_mean err %.3g", label,
              oracle_rel_err_f(smean, md, F));
        CHECK(oracle_rel_err_f(sinv, dxd, F) <= TOL, "%s: save_invstd err %.3g", label,
              oracle_rel_err_f(sinv, dxd, F));
        CHECK(oracle_rel_err_f(rmean, rmd, F) <= TOL, "%s: running mean err %.3g", label,
              oracle_rel_err_f(rmean, rmd, F));
        CHECK(oracle_rel_err_f(rvar, rvd, F) <= TOL, "%s: running var err %.3g", label,
              oracle_rel_err_f(rvar, rvd, F));
        CHECK(run.count == (uint64_t)step + 1, "%s: running count", label);

        /* Training backward from what the forward saved. */
        for (size_t i = 0; i < T; i++)
            dy[i] = (float)rng_normal(rng);
        to_double(dy, dyd, T);
        st = bnorm_backward_training(shape, &p, x, dy, gamma, smean, sinv, dx, dgamma, dbeta, ws,
                                     wsz);
        CHECK(st == BNORM_OK, "%s: backward_training -> %s", label, bnorm_status_str(st));
        oracle_backward_train(shape, mode, xd, dyd, scale ? gd : NULL, p.eps, dxd, dgd, dbd);
        /* With two values per feature, dx = gamma invstd dy eps / (var + eps)
         * is the small remainder of terms of size gamma invstd dy that cancel;
         * any float evaluation (PyTorch's too) loses digits to that, so there
         * the error is measured against the size of the cancelling terms. */
        double dx_err = oracle_rel_err_f(dx, dxd, T);
        if (d.count == 2) {
            double big = 0.0, err = 0.0;
            for (size_t i = 0; i < T; i++) {
                size_t f = oracle_feature(shape, mode, i);
                double term = fabs(dyd[i] * (scale ? gd[f] : 1.0) * sinv[f]);
                big = term > big ? term : big;
                err = fmax(err, fabs(dx[i] - dxd[i]));
            }
            dx_err = err / big;
        }
        CHECK(dx_err <= TOL, "%s: dx err %.3g", label, dx_err);
        if (scale)
            CHECK(oracle_rel_err_f(dgamma, dgd, F) <= TOL, "%s: dgamma err %.3g", label,
                  oracle_rel_err_f(dgamma, dgd, F));
        if (shift)
            CHECK(oracle_rel_err_f(dbeta, dbd, F) <= TOL, "%s: dbeta err %.3g", label,
                  oracle_rel_err_f(dbeta, dbd, F));
    }
    if (d.count == 1) {
        bnorm_status st =
            bnorm_forward_training(shape, &p, x, gamma, beta, y, smean, sinv, &run, ws, wsz);
        CHECK(st == BNORM_ERR_SINGLE_VALUE, "%s: one value per feature must be refused", label);
    }

    /* Inference and frozen backward with the running statistics. */
    for (size_t i = 0; i < T; i++)
        x[i] = (float)(2.0 * rng_normal(rng) + 1.0);
    for (size_t i = 0; i < T; i++)
        dy[i] = (float)rng_normal(rng);
    to_double(x, xd, T);
    to_double(dy, dyd, T);
    to_double(rmean, rmd, F);
    to_double(rvar, rvd, F);
    bnorm_status st = bnorm_forward_inference(shape, &p, x, gamma, beta, rmean, rvar, y, ws, wsz);
    CHECK(st == BNORM_OK, "%s: forward_inference -> %s", label, bnorm_status_str(st));
    oracle_normalize(shape, mode, xd, rmd, rvd, scale ? gd : NULL, shift ? bd : NULL, p.eps, yd);
    CHECK(oracle_rel_err_f(y, yd, T) <= TOL, "%s: inference y err %.3g", label,
          oracle_rel_err_f(y, yd, T));
    st = bnorm_backward_inference(shape, &p, x, dy, gamma, rmean, rvar, dx, dgamma, dbeta, ws, wsz);
    CHECK(st == BNORM_OK, "%s: backward_inference -> %s", label, bnorm_status_str(st));
    oracle_backward_frozen(shape, mode, xd, dyd, scale ? gd : NULL, rmd, rvd, p.eps, dxd, dgd, dbd);
    CHECK(oracle_rel_err_f(dx, dxd, T) <= TOL, "%s: frozen dx err %.3g", label,
          oracle_rel_err_f(dx, dxd, T));
    if (scale)
        CHECK(oracle_rel_err_f(dgamma, dgd, F) <= TOL, "%s: frozen dgamma err %.3g", label,
              oracle_rel_err_f(dgamma, dgd, F));
    if (shift)
        CHECK(oracle_rel_err_f(dbeta, dbd, F) <= TOL, "%s: frozen dbeta err %.3g", label,
              oracle_rel_err_f(dbeta, dbd, F));

    /* In place: y = x and dx = dy give the same answers. */
    memcpy(dx, x, T * sizeof(float));
    st = bnorm_forward_inference(shape, &p, dx, gamma, beta, rmean, rvar, dx, ws, wsz);
    CHECK(st == BNORM_OK && memcmp(dx, y, T * sizeof(float)) == 0, "%s: in-place inference", label);

    /* An output 4 bytes off 16-byte alignment: the streaming stores of large
     * outputs start with a scalar prologue. */
    float *shifted = malloc((T + 1) * sizeof(float));
    st = bnorm_forward_inference(shape, &p, x, gamma, beta, rmean, rvar, shifted + 1, ws, wsz);
    CHECK(st == BNORM_OK && memcmp(shifted + 1, y, T * sizeof(float)) == 0,
          "%s: inference into a misaligned output", label);
    free(shifted);

    free(ws), free(x), free(y), free(dy), free(dx), free(xd), free(yd), free(dyd), free(dxd);
    free(fbuf), free(dbuf);
}

int main(void) {
    check_cpu_or_skip();
    test_rng rng = {12345};
    const unsigned option_sets[] = {
        BNORM_USE_SCALE | BNORM_USE_SHIFT,
        BNORM_USE_SCALE,
        BNORM_USE_SHIFT | BNORM_RUNNING_VAR_BIASED,
        BNORM_RUNNING_CUMULATIVE,
        BNORM_USE_SCALE | BNORM_USE_SHIFT | BNORM_RUNNING_CUMULATIVE | BNORM_RUNNING_VAR_BIASED,
    };
    const bnorm_layout layouts[] = {BNORM_LAYOUT_NC, BNORM_LAYOUT_CHANNELS_FIRST,
                                    BNORM_LAYOUT_CHANNELS_LAST};
    const bnorm_mode modes[] = {BNORM_MODE_SPATIAL, BNORM_MODE_PER_ACTIVATION};
    int cases = 0;
    for (size_t si = 0; si < sizeof SHAPES / sizeof SHAPES[0]; si++)
        for (int li = 0; li < 3; li++) {
            if (layouts[li] == BNORM_LAYOUT_NC && SHAPES[si].rank != 0) continue;
            bnorm_shape shape = shape_of(&SHAPES[si], layouts[li]);
            for (int mi = 0; mi < 2; mi++)
                for (size_t oi = 0; oi < sizeof option_sets / sizeof option_sets[0]; oi++)
                    for (int path = 0; path < 3; path++) {
                        unsigned flags = option_sets[oi] | (path == 0 ? BNORM_FORCE_REFERENCE : 0);
                        int threads = path == 2 ? 3 : 1;
                        char label[160];
                        snprintf(label, sizeof label,
                                 "shape#%zu layout=%d mode=%d flags=0x%x threads=%d", si,
                                 (int)layouts[li], (int)modes[mi], flags, threads);
                        run_case(&shape, flags, modes[mi], threads, &rng, label);
                        cases++;
                    }
        }
    /* Tensors over the size from which outputs bypass the cache: 14 x 14
     * planes stream (a whole number of 16-byte stores each), 13 x 13 ones do
     * not, channels-last rows of a ragged width do, and so do rows of 64 and
     * of 128 features, which go through the kernels' register-held
     * coefficients (at AVX-512, 128 features only where outputs stream). */
    test_rng large_rng = {777};
    const case_shape large[] = {{128, 168, 2, {14, 14}},
                                {150, 166, 2, {13, 13}},
                                {64, 64, 2, {32, 33}},
                                {32, 128, 2, {32, 33}}};
    for (size_t si = 0; si < sizeof large / sizeof large[0]; si++)
        for (int li = 1; li < 3; li++) {
            bnorm_shape shape = shape_of(&large[si], layouts[li]);
            char label[96];
            snprintf(label, sizeof label, "large#%zu layout=%d", si, (int)layouts[li]);
            run_case(&shape, option_sets[0], BNORM_MODE_SPATIAL, 3, &large_rng, label);
            cases++;
        }
    printf("%d cases\n", cases);
    return check_finish();
}
