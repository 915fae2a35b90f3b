/* An independent float64 oracle for batch normalization, written from the
 * textbook definitions (Ioffe & Szegedy 2015) with its own indexing, so that
 * it shares no code or algebra with the library. */
#ifndef BNORM_TEST_ORACLE_H
#define BNORM_TEST_ORACLE_H

#include <stddef.h>

#include "bnorm.h"

typedef struct {
    size_t total;    /* elements of x */
    size_t features; /* statistics sets */
    size_t count;    /* values per feature */
} oracle_dims;

oracle_dims oracle_dims_of(const bnorm_shape *s, bnorm_mode mode);
/* Feature of the element at linear offset e of x. */
size_t oracle_feature(const bnorm_shape *s, bnorm_mode mode, size_t e);

/* Batch mean and biased variance. */
void oracle_stats(const bnorm_shape *s, bnorm_mode mode, const double *x, double *mean,
                  double *var);
/* y = gamma (x - mean) / sqrt(var + eps) + beta; gamma/beta NULL = 1/0. */
void oracle_normalize(const bnorm_shape *s, bnorm_mode mode, const double *x, const double *mean,
                      const double *var, const double *gamma, const double *beta, double eps,
                      double *y);
/* Training backward, by the chain rule through mean and variance. */
void oracle_backward_train(const bnorm_shape *s, bnorm_mode mode, const double *x, const double *dy,
                           const double *gamma, double eps, double *dx, double *dgamma,
                           double *dbeta);
/* Backward with frozen mean/var. */
void oracle_backward_frozen(const bnorm_shape *s, bnorm_mode mode, const double *x,
                            const double *dy, const double *gamma, const double *mean,
                            const double *var, double eps, double *dx, double *dgamma,
                            double *dbeta);

/* max |a - b| / max(|b|, tiny): the error of a relative to b's scale. */
double oracle_rel_err_f(const float *a, const double *b, size_t n);

/* Deterministic pseudo-random numbers for the tests. */
typedef struct {
    unsigned long long state;
} test_rng;
double rng_uniform(test_rng *r); /* [0, 1) */
double rng_normal(test_rng *r);  /* N(0, 1) */

#endif
