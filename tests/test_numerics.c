/* Numerically hard inputs: a large mean with a small spread, constant
 * channels, nearly constant channels, and NaN/Inf in the data. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bnorm.h"
#include "check.h"
#include "oracle.h"

/* Batch variance as the library reports it: the running variance after one
 * step with decay 0 and the biased estimate is exactly the batch variance. */
static bnorm_status batch_var(const bnorm_shape *s, bnorm_mode mode, unsigned extra, const float *x,
                              float *y, float *var, float *mean) {
    bnorm_params p = bnorm_params_default();
    p.mode = mode;
    p.decay = 0.0f;
    p.threads = 2;
    p.flags =
        BNORM_USE_SCALE | BNORM_USE_SHIFT | BNORM_RUNNING_VAR_BIASED | BNORM_EXACT_THREADS | extra;
    size_t F, wsz;
    bnorm_feature_count(s, &p, &F);
    bnorm_workspace_size(s, &p, &wsz);
    float *prm = calloc(4 * F, sizeof(float)), *gamma = prm, *beta = prm + F, *smean = prm + 2 * F,
          *sinv = prm + 3 * F;
    for (size_t f = 0; f < F; f++)
        gamma[f] = 1.5f, beta[f] = 0.25f * (float)f;
    for (size_t f = 0; f < F; f++)
        mean[f] = 0.0f, var[f] = 1.0f;
    void *ws = malloc(wsz);
    bnorm_running_stats run = {mean, var, 0};
    bnorm_status st = bnorm_forward_training(s, &p, x, gamma, beta, y, smean, sinv, &run, ws, wsz);
    free(ws), free(prm);
    return st;
}

static void large_mean(const bnorm_shape *s, bnorm_mode mode, unsigned extra, test_rng *rng) {
    oracle_dims d = oracle_dims_of(s, mode);
    float *x = malloc(d.total * 4), *y = malloc(d.total * 4);
    double *xd = malloc(d.total * 8);
    float *var = malloc(d.features * 4), *mean = malloc(d.features * 4);
    double *vd = malloc(d.features * 8), *md = malloc(d.features * 8);
    for (size_t i = 0; i < d.total; i++) {
        x[i] = (float)(1e4 + 0.1 * rng_normal(rng));
        xd[i] = x[i];
    }
    CHECK(batch_var(s, mode, extra, x, y, var, mean) == BNORM_OK, "large mean: status");
    oracle_stats(s, mode, xd, md, vd);
    double worst = 0.0;
    for (size_t f = 0; f < d.features; f++)
        worst = fmax(worst, fabs(var[f] - vd[f]) / vd[f]);
    CHECK(worst <= 1e-4, "large mean, layout %d mode %d flags %x: var rel err %.3g", s->layout,
          mode, extra, worst);

    /* The case must be hard: the naive float E[x^2] - E[x]^2 fails it. */
    if (mode == BNORM_MODE_SPATIAL && s->layout == BNORM_LAYOUT_NC) {
        float sx = 0.0f, sxx = 0.0f;
        size_t C = (size_t)s->c;
        for (size_t i = 0; i < d.total; i += C)
            sx += x[i], sxx += x[i] * x[i];
        float mu = sx / (float)d.count, naive = sxx / (float)d.count - mu * mu;
        CHECK(fabs(naive - vd[0]) / vd[0] > 1e-2, "the naive formula was expected to fail");
    }
    free(x), free(y), free(xd), free(var), free(mean), free(vd), free(md);
}

static void constant_channels(const bnorm_shape *s, bnorm_mode mode, unsigned extra) {
    oracle_dims d = oracle_dims_of(s, mode);
    float *x = malloc(d.total * 4), *y = malloc(d.total * 4);
    float *var = malloc(d.features * 4), *mean = malloc(d.features * 4);
    for (size_t i = 0; i < d.total; i++)
        x[i] = 3.7f + 1234.5f * (float)oracle_feature(s, mode, i);
    CHECK(batch_var(s, mode, extra, x, y, var, mean) == BNORM_OK, "constant: status");
    int ok = 1;
    for (size_t f = 0; f < d.features; f++)
        ok &= var[f] == 0.0f;
    CHECK(ok, "constant channel: variance must be exactly 0 (layout %d mode %d)", s->layout, mode);
    ok = 1;
    for (size_t i = 0; i < d.total; i++)
        ok &= y[i] == 0.25f * (float)oracle_feature(s, mode, i);
    CHECK(ok, "constant channel: y must equal beta exactly (layout %d mode %d)", s->layout, mode);
    free(x), free(y), free(var), free(mean);
}

static void nearly_constant(const bnorm_shape *s, bnorm_mode mode, unsigned extra, test_rng *rng) {
    oracle_dims d = oracle_dims_of(s, mode);
    float *x = malloc(d.total * 4), *y = malloc(d.total * 4);
    float *var = malloc(d.features * 4), *mean = malloc(d.features * 4);
    for (size_t i = 0; i < d.total; i++)
        x[i] = nextafterf(1e6f, rng_uniform(rng) < 0.5 ? 0.0f : 2e6f);
    CHECK(batch_var(s, mode, extra, x, y, var, mean) == BNORM_OK, "nearly constant: status");
    int ok = 1;
    for (size_t f = 0; f < d.features; f++)
        ok &= var[f] >= 0.0f;
    CHECK(ok, "variance must never be negative");
    free(x), free(y), free(var), free(mean);
}

static void non_finite(unsigned extra) {
    /* NC, 3 channels: channel 1 gets a NaN, channel 2 an Inf. */
    bnorm_shape s = bnorm_shape_nc(50, 3);
    float x[150], y[150], var[3], mean[3], y_clean[150], var_clean[3], mean_clean[3];
    test_rng rng = {9};
    for (int i = 0; i < 150; i++)
        x[i] = (float)rng_normal(&rng);
    CHECK(batch_var(&s, BNORM_MODE_SPATIAL, extra, x, y_clean, var_clean, mean_clean) == BNORM_OK,
          "clean: status");
    x[3 * 17 + 1] = NAN;
    x[3 * 30 + 2] = INFINITY;
    CHECK(batch_var(&s, BNORM_MODE_SPATIAL, extra, x, y, var, mean) == BNORM_OK,
          "non-finite data is not an error");
    int ch0 = mean[0] == mean_clean[0] && var[0] == var_clean[0], nan1 = 1, nan2 = 1;
    for (int r = 0; r < 50; r++) {
        ch0 &= y[3 * r] == y_clean[3 * r];
        nan1 &= isnan(y[3 * r + 1]);
        nan2 &= isnan(y[3 * r + 2]);
    }
    CHECK(ch0, "a NaN in one channel must not change another channel");
    CHECK(nan1 && isnan(mean[1]) && isnan(var[1]), "NaN must propagate to its channel");
    CHECK(nan2 && isnan(var[2]), "Inf makes its channel's variance and outputs NaN");
}

/* The training backward on data whose mean is large against its spread:
 * dx, dgamma and dbeta within 1e-5 of the float64 chain rule, relative to
 * each tensor's largest magnitude. Centering on the float32 saved mean
 * alone left dgamma 1e-3 off (mean 1e4, std 0.1). */
static void exact_backward(const bnorm_shape *s, bnorm_mode mode, unsigned extra, double center,
                           double spread, float eps, test_rng *rng) {
    oracle_dims d = oracle_dims_of(s, mode);
    size_t T = d.total, F = d.features;
    float *x = malloc(T * 4), *y = malloc(T * 4), *dy = malloc(T * 4), *dx = malloc(T * 4);
    double *xd = malloc(T * 8), *dyd = malloc(T * 8), *dxd = malloc(T * 8);
    float *gamma = malloc(F * 4), *beta = malloc(F * 4), *sm = malloc(F * 4), *si = malloc(F * 4);
    float *dg = malloc(F * 4), *db = malloc(F * 4);
    double *gd = malloc(F * 8), *dgd = malloc(F * 8), *dbd = malloc(F * 8);
    for (size_t i = 0; i < T; i++) {
        x[i] = (float)(center + spread * rng_normal(rng)), xd[i] = x[i];
        dy[i] = (float)(rng_normal(rng) + 0.5), dyd[i] = dy[i]; /* sum(dy) far from 0 */
    }
    for (size_t f = 0; f < F; f++)
        gamma[f] = (float)(1.0 + 0.25 * rng_normal(rng)), gd[f] = gamma[f], beta[f] = 0.5f;
    bnorm_params p = bnorm_params_default();
    p.mode = mode, p.eps = eps, p.threads = 3;
    p.flags |= BNORM_EXACT_THREADS | extra;
    size_t wsz;
    CHECK(bnorm_workspace_size(s, &p, &wsz) == BNORM_OK, "workspace size");
    void *ws = malloc(wsz);
    CHECK(bnorm_forward_training(s, &p, x, gamma, beta, y, sm, si, NULL, ws, wsz) == BNORM_OK &&
              bnorm_backward_training(s, &p, x, dy, gamma, sm, si, dx, dg, db, ws, wsz) == BNORM_OK,
          "status");
    oracle_backward_train(s, mode, xd, dyd, gd, eps, dxd, dgd, dbd);
    double edx = oracle_rel_err_f(dx, dxd, T), edg = oracle_rel_err_f(dg, dgd, F),
           edb = oracle_rel_err_f(db, dbd, F);
    CHECK(edx <= 1e-5 && edg <= 1e-5 && edb <= 1e-5,
          "exact backward, layout %d mode %d flags %x, mean %g std %g eps %g: dx %.2g dgamma "
          "%.2g dbeta %.2g",
          s->layout, mode, extra, center, spread, eps, edx, edg, edb);
    free(x), free(y), free(dy), free(dx), free(xd), free(dyd), free(dxd), free(gamma), free(beta);
    free(sm), free(si), free(dg), free(db), free(gd), free(dgd), free(dbd), free(ws);
}

/* The cumulative average's step count at its largest: it must stay there,
 * not wrap to 0, where the next batch's statistics would replace the
 * average of every batch before. */
static void count_saturates(unsigned extra) {
    bnorm_shape s = bnorm_shape_nc(4, 2);
    bnorm_params p = bnorm_params_default();
    p.flags |= BNORM_RUNNING_CUMULATIVE | extra;
    float x[8] = {10, -3, 11, -1, 12, 0, 13, 2}, y[8], mean[2], invstd[2];
    float gamma[2] = {1, 1}, beta[2] = {0, 0}, rmean[2] = {0.5f, 0.25f}, rvar[2] = {2, 3};
    bnorm_running_stats run = {rmean, rvar, UINT64_MAX};
    char ws[4096];
    size_t need;
    CHECK(bnorm_workspace_size(&s, &p, &need) == BNORM_OK && need <= sizeof ws, "workspace");
    for (int step = 0; step < 2; step++)
        CHECK(bnorm_forward_training(&s, &p, x, gamma, beta, y, mean, invstd, &run, ws,
                                     sizeof ws) == BNORM_OK,
              "status");
    CHECK(run.count == UINT64_MAX, "count wrapped to %llu", (unsigned long long)run.count);
    CHECK(rmean[0] == 0.5f && rmean[1] == 0.25f && rvar[0] == 2.0f && rvar[1] == 3.0f,
          "a weight of 2^-64 moved the running statistics to %g %g %g %g", rmean[0], rmean[1],
          rvar[0], rvar[1]);
}

int main(void) {
    test_rng rng = {4242};
    bnorm_shape shapes[4];
    shapes[0] = bnorm_shape_nc(5000, 3);
    shapes[1] = bnorm_shape_nchw(4, 3, 40, 50);
    shapes[2] = bnorm_shape_nhwc(4, 40, 50, 3);
    shapes[3] = bnorm_shape_nchw(2, 2, 90, 90);
    for (int ref = 0; ref < 2; ref++) {
        unsigned extra = ref ? BNORM_FORCE_REFERENCE : 0;
        for (int i = 0; i < 4; i++) {
            large_mean(&shapes[i], BNORM_MODE_SPATIAL, extra, &rng);
            constant_channels(&shapes[i], BNORM_MODE_SPATIAL, extra);
            constant_channels(&shapes[i], BNORM_MODE_PER_ACTIVATION, extra);
            nearly_constant(&shapes[i], BNORM_MODE_SPATIAL, extra, &rng);
        }
        bnorm_shape pa = bnorm_shape_nc(3000, 7);
        large_mean(&pa, BNORM_MODE_PER_ACTIVATION, extra, &rng);
        non_finite(extra);
        count_saturates(extra);
        bnorm_shape hard[4] = {bnorm_shape_nc(3000, 7), bnorm_shape_nchw(4, 3, 40, 50),
                               bnorm_shape_nhwc(4, 40, 50, 3), bnorm_shape_nchw(6, 5, 3, 70)};
        for (int i = 0; i < 4; i++)
            for (int mode = 0; mode < 2; mode++) {
                exact_backward(&hard[i], (bnorm_mode)mode, extra, 1e4, 0.1, 1e-5f, &rng);
                exact_backward(&hard[i], (bnorm_mode)mode, extra, 1.0, 1e-4, 1e-3f, &rng);
            }
    }
    return check_finish();
}
