/* The formulas of batch norm, each written once (bnorm.h, "THE MATH,
 * EXACTLY"; formulas.c has the per-feature ones). The kernels of both paths
 * apply the element-wise ones below to their operands, vectors or scalars
 * alike; nothing else in the library computes a coefficient. */
#ifndef BN_FORMULAS_H
#define BN_FORMULAS_H

#include <stddef.h>

#include "internal.h"

/* ---------------------------------------------------------------------------
 * Element-wise, per value of feature f
 * ------------------------------------------------------------------------- */

/* y = (x - mean) * scale + shift, with the mean given as a float and the
 * float rounding error below it, so that x - mean stays exact when the mean
 * is large against the spread. */
#define BN_NORMALIZE(x, mean, mean_lo, scale, shift)                                               \
    ((((x) - (mean)) - (mean_lo)) * (scale) + (shift))
/* The same with shift_folded = shift - mean_lo * scale computed once per
 * feature (bn_fold_mean_lo): one operand fewer per value, which matters in
 * the rows view, where every coefficient is a vector load of its own. */
#define BN_NORMALIZE_FOLDED(x, mean, scale, shift_folded)                                          \
    (((x) - (mean)) * (scale) + (shift_folded))
/* The training backward, dx = dy_scale * dy + xc_scale * (x - mean) +
 * dx_offset (bn_backward_coefficients says what each coefficient is). */
#define BN_DX(x, dy, mean, dy_scale, xc_scale, dx_offset)                                          \
    ((dy_scale) * (dy) + (xc_scale) * ((x) - (mean)) + (dx_offset))
/* The backward with frozen statistics: dx = dy * gamma * invstd. */
#define BN_DX_FROZEN(dy, dy_scale) ((dy_scale) * (dy))

/* ---------------------------------------------------------------------------
 * Statistics, per chunk of a feature's values
 * ------------------------------------------------------------------------- */

/* A chunk's mean and M2 = sum((x - mean)^2) from its count values'
 * deviations e = x - center: s1 = sum(e), s2 = sum(e^2) (the corrected
 * two-pass algorithm: exact when the center is near the mean). */
static inline void bn_chunk_moments(float center, double s1, double s2, double count, double *mean,
                                    double *m2) {
    *mean = (double)center + s1 / count;
    double q = s2 - s1 * s1 / count;
    *m2 = q > 0.0 ? q : 0.0;
}

/* Chan's formula: folds a chunk of nb values (mean mb, M2 qb) into the
 * running (n, mu, q). Exact enough to merge in any fixed order. Its weights
 * depend on the counts only, so a caller merging many features' chunks of
 * equal counts computes them once (bn_chan_weights) and folds each feature
 * with bn_chan_fold: the same operations as bn_chan_merge. */
typedef struct {
    double mean; /* nb / (n + nb): the chunk's weight in the mean */
    double m2;   /* n * nb / (n + nb): delta^2's weight in M2 */
} bn_chan_weight;

static inline bn_chan_weight bn_chan_weights(double n, double nb) {
    const double nt = n + nb;
    return (bn_chan_weight){nb / nt, n * nb / nt};
}

static inline void bn_chan_fold(double *mu, double *q, bn_chan_weight w, double mb, double qb) {
    double delta = mb - *mu;
    *mu += delta * w.mean;
    *q += qb + delta * delta * w.m2;
}

static inline void bn_chan_merge(double *n, double *mu, double *q, double nb, double mb,
                                 double qb) {
    bn_chan_fold(mu, q, bn_chan_weights(*n, nb), mb, qb);
    *n += nb;
}

/* ---------------------------------------------------------------------------
 * Per feature (formulas.c)
 * ------------------------------------------------------------------------- */

/* What the training forward's coefficients need beyond the statistics. */
typedef struct {
    const float *gamma, *beta; /* NULL: 1 and 0 */
    double eps;
    double running_factor;    /* bn_running_factor */
    double running_var_scale; /* bn_running_var_scale */
    float *save_mean, *save_invstd;
    bnorm_running_stats *running; /* NULL: no update */
} bn_forward_terms;

/* invstd = 1 / sqrt(var + eps); into ws (when not NULL) the normalize
 * coefficients mean, mean_lo, scale = gamma * invstd and shift = beta;
 * save_mean, save_invstd; and the running update of feature f. */
void bn_forward_coefficients(const bn_forward_terms *t, bn_workspace *ws, size_t f, double mean,
                             double var);

/* The running-average weight of this step's statistics: 1 - decay, or
 * 1 / (t + 1) when cumulative. */
double bn_running_factor(const bnorm_params *p, const bnorm_running_stats *running);
/* The running variance's scale: m / (m - 1) (unbiased) or 1 (biased). */
double bn_running_var_scale(const bnorm_params *p, double m);

/* Test mode, every feature at once: mean, mean_lo = 0, scale = gamma /
 * sqrt(var + eps), shift = beta (gamma, beta NULL: 1, 0). */
void bn_inference_coefficients(size_t features, const float *mean, const float *var,
                               const float *gamma, const float *beta, double eps, bn_workspace *ws);

/* ws->shift_folded = shift - mean_lo * scale, for BN_NORMALIZE_FOLDED. */
void bn_fold_mean_lo(size_t features, bn_workspace *ws);

/* What the backward's coefficients need beyond the sums. */
typedef struct {
    const float *gamma; /* NULL: 1 */
    const float *stat;  /* save_invstd (training) or the frozen variance */
    int frozen;
    double eps, m;
    float *dgamma, *dbeta; /* NULL when not wanted */
} bn_backward_terms;

/* invstd of feature f: saved, or from the frozen variance. */
double bn_backward_invstd(const bn_backward_terms *t, size_t f);
/* The frozen backward's dy_scale = gamma * invstd, known before any sum. */
float bn_frozen_dy_scale(const bn_backward_terms *t, size_t f);

/* sum(dy * xhat) from sums about ws->mean: the exact batch mean is
 * ws->mean + delta, so sum(dy * (x - exact mean)) = sum_dy_xc - delta *
 * sum_dy. */
double bn_sum_dy_xhat(double sum_dy, double sum_dy_xc, double delta, double invstd);

/* dx = dy_scale dy + xc_scale (x - ws->mean) + dx_offset for feature f, from
 * gamma g, invstd, sum(dy), sum(dy * xhat), m and delta = exact mean -
 * ws->mean[f]: bnorm.h's dx = g invstd / m (m dy - sum(dy) - xhat
 * sum(dy xhat)), expanded about ws->mean. */
void bn_backward_affine(bn_workspace *ws, size_t f, double g, double invstd, double sum_dy,
                        double sum_dy_xhat, double m, double delta);

/* From ws->sum_dy, sum_dy_xc and sum_xc of feature f: its dx coefficients,
 * dgamma = sum(dy * xhat) and dbeta = sum(dy). */
void bn_backward_coefficients(const bn_backward_terms *t, bn_workspace *ws, size_t f);

#endif
