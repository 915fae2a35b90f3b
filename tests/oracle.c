#include "oracle.h"

#include <math.h>
#include <stdlib.h>

static size_t spatial_size(const bnorm_shape *s) {
    size_t S = 1;
    for (int i = 0; i < s->spatial_rank; i++)
        S *= (size_t)s->spatial[i];
    return S;
}

oracle_dims oracle_dims_of(const bnorm_shape *s, bnorm_mode mode) {
    oracle_dims d;
    size_t N = (size_t)s->n, C = (size_t)s->c, S = spatial_size(s);
    d.total = N * C * S;
    d.features = mode == BNORM_MODE_SPATIAL ? C : C * S;
    d.count = d.total / d.features;
    return d;
}

size_t oracle_feature(const bnorm_shape *s, bnorm_mode mode, size_t e) {
    size_t C = (size_t)s->c, S = spatial_size(s);
    if (mode == BNORM_MODE_PER_ACTIVATION) return e % (C * S);
    if (s->layout == BNORM_LAYOUT_CHANNELS_FIRST) return (e / S) % C;
    return e % C; /* NC and channels-last: channel is the fastest index */
}

void oracle_stats(const bnorm_shape *s, bnorm_mode mode, const double *x, double *mean,
                  double *var) {
    oracle_dims d = oracle_dims_of(s, mode);
    for (size_t f = 0; f < d.features; f++)
        mean[f] = var[f] = 0.0;
    for (size_t e = 0; e < d.total; e++)
        mean[oracle_feature(s, mode, e)] += x[e];
    for (size_t f = 0; f < d.features; f++)
        mean[f] /= (double)d.count;
    for (size_t e = 0; e < d.total; e++) {
        size_t f = oracle_feature(s, mode, e);
        var[f] += (x[e] - mean[f]) * (x[e] - mean[f]);
    }
    for (size_t f = 0; f < d.features; f++)
        var[f] /= (double)d.count;
}

void oracle_normalize(const bnorm_shape *s, bnorm_mode mode, const double *x, const double *mean,
                      const double *var, const double *gamma, const double *beta, double eps,
                      double *y) {
    oracle_dims d = oracle_dims_of(s, mode);
    for (size_t e = 0; e < d.total; e++) {
        size_t f = oracle_feature(s, mode, e);
        double xhat = (x[e] - mean[f]) / sqrt(var[f] + eps);
        y[e] = (gamma ? gamma[f] : 1.0) * xhat + (beta ? beta[f] : 0.0);
    }
}

void oracle_backward_train(const bnorm_shape *s, bnorm_mode mode, const double *x, const double *dy,
                           const double *gamma, double eps, double *dx, double *dgamma,
                           double *dbeta) {
    oracle_dims d = oracle_dims_of(s, mode);
    size_t F = d.features;
    double m = (double)d.count;
    double *mean = calloc(F, sizeof(double)), *var = calloc(F, sizeof(double));
    double *dvar = calloc(F, sizeof(double)), *dmean = calloc(F, sizeof(double));
    double *sum_xc = calloc(F, sizeof(double));
    oracle_stats(s, mode, x, mean, var);
    for (size_t f = 0; f < F; f++)
        dgamma[f] = dbeta[f] = 0.0;
    for (size_t e = 0; e < d.total; e++) {
        size_t f = oracle_feature(s, mode, e);
        double g = gamma ? gamma[f] : 1.0, xc = x[e] - mean[f];
        double dxhat = dy[e] * g;
        dvar[f] += dxhat * xc * -0.5 * pow(var[f] + eps, -1.5);
        dmean[f] += -dxhat / sqrt(var[f] + eps);
        sum_xc[f] += -2.0 * xc;
        dgamma[f] += dy[e] * xc / sqrt(var[f] + eps);
        dbeta[f] += dy[e];
    }
    for (size_t f = 0; f < F; f++)
        dmean[f] += dvar[f] * sum_xc[f] / m;
    for (size_t e = 0; e < d.total; e++) {
        size_t f = oracle_feature(s, mode, e);
        double g = gamma ? gamma[f] : 1.0;
        dx[e] =
            dy[e] * g / sqrt(var[f] + eps) + dvar[f] * 2.0 * (x[e] - mean[f]) / m + dmean[f] / m;
    }
    free(mean), free(var), free(dvar), free(dmean), free(sum_xc);
}

void oracle_backward_frozen(const bnorm_shape *s, bnorm_mode mode, const double *x,
                            const double *dy, const double *gamma, const double *mean,
                            const double *var, double eps, double *dx, double *dgamma,
                            double *dbeta) {
    oracle_dims d = oracle_dims_of(s, mode);
    for (size_t f = 0; f < d.features; f++)
        dgamma[f] = dbeta[f] = 0.0;
    for (size_t e = 0; e < d.total; e++) {
        size_t f = oracle_feature(s, mode, e);
        double g = gamma ? gamma[f] : 1.0, r = 1.0 / sqrt(var[f] + eps);
        dx[e] = dy[e] * g * r;
        dgamma[f] += dy[e] * (x[e] - mean[f]) * r;
        dbeta[f] += dy[e];
    }
}

double oracle_rel_err_f(const float *a, const double *b, size_t n) {
    double err = 0.0, scale = 1e-30;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - b[i]);
        if (e > err || isnan(e)) err = e;
        if (fabs(b[i]) > scale) scale = fabs(b[i]);
    }
    return err / scale;
}

double rng_uniform(test_rng *r) {
    r->state = r->state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(r->state >> 11) * (1.0 / 9007199254740992.0);
}

double rng_normal(test_rng *r) {
    double u1 = rng_uniform(r), u2 = rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}
