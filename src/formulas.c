/* The per-feature formulas of batch norm, in the order of bnorm.h's "THE
 * MATH, EXACTLY": the training forward's coefficients and running update,
 * test mode's coefficients, and the backward's. Computed in double from
 * double statistics and rounded once to float. */
#include <math.h>

#include "formulas.h"
#include "simd.h"

/* Training forward ---------------------------------------------------------- */

void bn_forward_coefficients(const bn_forward_terms *t, bn_workspace *ws, size_t f, double mean,
                             double var) {
    double invstd = 1.0 / sqrt(var + t->eps);
    if (ws) {
        float mean_hi = (float)mean;
        ws->mean[f] = mean_hi;
        ws->mean_lo[f] = (float)(mean - (double)mean_hi);
        ws->scale[f] = (float)((t->gamma ? (double)t->gamma[f] : 1.0) * invstd);
        ws->shift[f] = t->beta ? t->beta[f] : 0.0f;
    }
    t->save_mean[f] = (float)mean;
    t->save_invstd[f] = (float)invstd;
    if (t->running) {
        /* running = (1 - factor) running + factor batch, the variance
         * unbiased unless asked otherwise. */
        const double factor = t->running_factor;
        float *rm = t->running->mean, *rv = t->running->var;
        rm[f] = (float)((1.0 - factor) * (double)rm[f] + factor * mean);
        rv[f] = (float)((1.0 - factor) * (double)rv[f] + factor * (var * t->running_var_scale));
    }
}

double bn_running_factor(const bnorm_params *p, const bnorm_running_stats *running) {
    if (running && (p->flags & BNORM_RUNNING_CUMULATIVE))
        return 1.0 / ((double)running->count + 1.0);
    return 1.0 - (double)p->decay;
}

double bn_running_var_scale(const bnorm_params *p, double m) {
    return (p->flags & BNORM_RUNNING_VAR_BIASED) ? 1.0 : m / (m - 1.0);
}

/* Test mode ----------------------------------------------------------------- */

/* Vectorized, in separate loops so that each has no branch on gamma: in
 * scalar code the square roots and divisions cost more than normalizing a
 * single sample's 128 features. Square root and division are correctly
 * rounded in every instruction set, so every copy gives the same bits. */
BN_DISPATCH static void inference_coefficients(size_t features, const float *restrict mean,
                                               const float *restrict var,
                                               const float *restrict gamma,
                                               const float *restrict beta, double eps,
                                               float *restrict ws_mean, float *restrict ws_mean_lo,
                                               float *restrict ws_scale, float *restrict ws_shift) {
    for (size_t f = 0; f < features; f++) {
        ws_mean[f] = mean[f];
        ws_mean_lo[f] = 0.0f; /* the mean is a float already: nothing below it */
    }
    if (gamma)
        for (size_t f = 0; f < features; f++)
            ws_scale[f] = (float)((double)gamma[f] * (1.0 / sqrt((double)var[f] + eps)));
    else
        for (size_t f = 0; f < features; f++)
            ws_scale[f] = (float)(1.0 / sqrt((double)var[f] + eps));
    for (size_t f = 0; f < features; f++)
        ws_shift[f] = beta ? beta[f] : 0.0f;
}

void bn_inference_coefficients(size_t features, const float *mean, const float *var,
                               const float *gamma, const float *beta, double eps,
                               bn_workspace *ws) {
    inference_coefficients(features, mean, var, gamma, beta, eps, ws->mean, ws->mean_lo, ws->scale,
                           ws->shift);
}

void bn_fold_mean_lo(size_t features, bn_workspace *ws) {
    for (size_t f = 0; f < features; f++)
        ws->shift_folded[f] = ws->shift[f] - ws->mean_lo[f] * ws->scale[f];
}

/* Backward ------------------------------------------------------------------ */

double bn_backward_invstd(const bn_backward_terms *t, size_t f) {
    return t->frozen ? 1.0 / sqrt((double)t->stat[f] + t->eps) : (double)t->stat[f];
}

float bn_frozen_dy_scale(const bn_backward_terms *t, size_t f) {
    return (float)((t->gamma ? (double)t->gamma[f] : 1.0) * bn_backward_invstd(t, f));
}

double bn_sum_dy_xhat(double sum_dy, double sum_dy_xc, double delta, double invstd) {
    return (sum_dy_xc - delta * sum_dy) * invstd;
}

/* With xhat = (x - exact mean) invstd and x - exact mean = (x - ws->mean) -
 * delta:
 *   dy_scale  = g invstd
 *   xc_scale  = -g invstd^2 sum(dy xhat) / m
 *   dx_offset = -g invstd sum(dy) / m - xc_scale delta
 * Without delta, data whose mean is large against its spread lost dgamma to
 * 1e-3 (mean 1e4, std 0.1). */
void bn_backward_affine(bn_workspace *ws, size_t f, double g, double invstd, double sum_dy,
                        double sum_dy_xhat, double m, double delta) {
    double xc_scale = -g * invstd * invstd * sum_dy_xhat / m;
    ws->dy_scale[f] = (float)(g * invstd);
    ws->xc_scale[f] = (float)xc_scale;
    ws->dx_offset[f] = (float)(-g * invstd * sum_dy / m - xc_scale * delta);
}

void bn_backward_coefficients(const bn_backward_terms *t, bn_workspace *ws, size_t f) {
    double invstd = bn_backward_invstd(t, f);
    double g = t->gamma ? (double)t->gamma[f] : 1.0;
    double sum_dy = ws->sum_dy[f];
    /* Frozen statistics are exact as given: no delta. */
    double delta = t->frozen ? 0.0 : ws->sum_xc[f] / t->m;
    double sum_dy_xhat = bn_sum_dy_xhat(sum_dy, ws->sum_dy_xc[f], delta, invstd);
    bn_backward_affine(ws, f, g, invstd, sum_dy, sum_dy_xhat, t->m, delta);
    if (t->dgamma) t->dgamma[f] = (float)sum_dy_xhat;
    if (t->dbeta) t->dbeta[f] = (float)sum_dy;
}
