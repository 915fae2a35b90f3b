/* Internal declarations shared by the API layer and the kernels. */
#ifndef BNORM_INTERNAL_H
#define BNORM_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "bnorm.h"

/*
 * Every shape and mode reduces to one of two memory views:
 *   ROWS    x[r][f], r < rows, f < features: the statistics of feature f run
 *           down a column. NC, channels-last (rows = N*S) and every
 *           per-activation case (features = C*S).
 *   PLANES  x[n][f][s]: the statistics of feature f cover N contiguous planes
 *           of S values. Channels-first in spatial mode.
 */
typedef enum { BN_VIEW_ROWS, BN_VIEW_PLANES } bn_view_kind;

typedef struct {
    bn_view_kind kind;
    size_t n;           /* rows (ROWS) or batch (PLANES) */
    size_t features;    /* features */
    size_t s;           /* plane size (PLANES); 1 for ROWS */
    size_t m;           /* values per feature: n * s */
    size_t total;       /* n * features * s */
    int cached_outputs; /* BNORM_CACHED_OUTPUTS: never non-temporal stores */
} bn_view;

/*
 * How the fast kernels split each feature's m values into chunks. The split
 * depends on the view only, never on the thread count, which is what makes
 * results bit-identical for any number of threads.
 *   ROWS    a chunk is a block of `rows_per_block` rows. The statistics take
 *           strips of that block up to 256 features wide as their units of
 *           parallel work; the backward, whole rows of up to 128 features
 *           or tiles of `BN_FEATURE_BLOCK` (the sums fit in registers).
 *   PLANES  a chunk is one plane (`planes_per_chunk` planes of one feature
 *           when planes are shorter than BN_MIN_PLANE), or, for planes over
 *           BN_CHUNK_VALUES, one of `segments` equal parts of a plane.
 */
#define BN_FEATURE_BLOCK  64
#define BN_ROWS_PER_BLOCK 256
#define BN_CHUNK_VALUES   4096
#define BN_MIN_PLANE      64

typedef struct {
    size_t chunks;           /* chunks per feature */
    size_t rows_per_block;   /* ROWS */
    size_t planes_per_chunk; /* PLANES, when segments == 1 */
    size_t segments;         /* PLANES: parts per plane (>= 1) */
    size_t segment_len;      /* PLANES: values per part, the last may be shorter */
} bn_chunking;

bn_chunking bn_chunking_for(const bn_view *v);

/* Workspace carved out of the caller's buffer, each array 64-byte aligned. */
typedef struct {
    float *mean;    /* [features] mean rounded to float */
    float *mean_lo; /* [features] mean - (double)mean[f], so x - mean stays exact */
    float *a;       /* [features] scale of x (forward) or of dy (backward) */
    float *b;       /* [features] beta (forward) or coefficient of x - mean */
    float *c;       /* [features] constant term of dx */
    double *stat0;  /* [features] merged mean or sum(dy) */
    double *stat1;  /* [features] merged variance or sum(dy * (x - mean)) */
    double *stat2;  /* [features] backward: sum(x - mean), the saved mean's rounding times m */
    double *part0;  /* [chunks * features] per-chunk mean or sum(dy) */
    double *part1;  /* [chunks * features] per-chunk M2 or sum(dy * (x - mean)) */
    double *part2;  /* [chunks * features] backward: per-chunk sum(x - mean) */
} bn_workspace;

size_t bn_workspace_bytes(const bn_view *v);
bn_workspace bn_workspace_carve(const bn_view *v, void *base);

/*
 * Called once per feature f as soon as its sums are in ws->stat0[f] and
 * ws->stat1[f]: fills that feature's coefficients (forward: mean, mean_lo,
 * a, b; backward: a, b, c) and whatever per-feature outputs the caller
 * keeps. It may run on any thread, for different features at once.
 */
typedef void (*bn_coefficients_fn)(const void *ctx, bn_workspace *ws, size_t f);

/* The API layer's helpers (api.c), shared by every file of entry points. */
/* Validates shape and params and maps them onto one of the two views. */
bnorm_status bn_make_view(const bnorm_shape *shape, const bnorm_params *p, bn_view *v);
bnorm_status bn_check_workspace(const bn_view *v, const void *ws, size_t size);
/* Threads a call on this view may use (1 inside a parallel region). */
int bn_resolve_threads(const bnorm_params *p, const bn_view *v);
int bn_use_reference(const bnorm_params *p);
/* ws->mean, mean_lo, a (= gamma * invstd) and b (= beta) from a mean and
 * invstd given in double; gamma NULL means 1, beta NULL means 0. */
void bn_set_affine(bn_workspace *ws, size_t f, double mean, double invstd, const float *gamma,
                   const float *beta);

/* The running-average weight of this step's statistics (decay or the
 * cumulative 1 / (t + 1)), and the variance's scale (m / (m - 1) unbiased,
 * 1 biased). */
double bn_running_factor(const bnorm_params *p, const bnorm_running_stats *running);
double bn_running_var_scale(const bnorm_params *p, double m);
/* running = (1 - factor) running + factor (mean, var) for feature f. */
void bn_running_update(bnorm_running_stats *running, size_t f, double factor, double mean,
                       double var);
/* The training backward's coefficients of feature f, dx = a dy + b (x -
 * ws->mean) + c, from gamma, invstd, sum(dy), sum(dy * xhat) about the
 * exact mean, m, and delta = exact mean - ws->mean. */
void bn_backward_affine(bn_workspace *ws, size_t f, double g, double invstd, double sum_dy,
                        double sum_dy_xhat, double m, double delta);

/* What a fused forward does to y after normalizing it (bnorm.h, "FUSED
 * RELU AND RESIDUAL ADD"): y = y + z when z is given, then ReLU when relu,
 * with bit o of mask (when given) set where the ReLU's input was > 0. */
typedef struct {
    const float *z;
    int relu;
    uint8_t *mask;
} bn_epilogue;

/* The fusion's own checks, before any of the call's. */
bnorm_status bn_check_fusion(const bnorm_fusion *fusion);

/* The epilogue on elements [o0, o1) of y (linear offsets). Mask bits of a
 * byte that another range shares are written atomically, so ranges may be
 * done by different threads. */
void bn_epilogue_apply(const bn_epilogue *ep, float *y, size_t o0, size_t o1);
/* out = dy where the mask bit is set, 0 elsewhere, over total elements; out
 * may be dy. */
void bn_mask_gradient(const float *dy, const uint8_t *mask, float *out, size_t total, int threads);

/* The scalar reference, one thread, double accumulation. */
void bn_ref_batch_stats(const bn_view *v, const float *x, bn_workspace *ws);
/* y = ((x - mean[f]) - mean_lo[f]) * a[f] + b[f] */
void bn_ref_normalize(const bn_view *v, const float *x, const bn_workspace *ws, float *y);
/* ws->stat0 = sum(dy), ws->stat1 = sum(dy * (x - ws->mean[f])) and
 * ws->stat2 = sum(x - ws->mean[f]), per feature. */
void bn_ref_backward_sums(const bn_view *v, const float *x, const float *dy, bn_workspace *ws);
/* dx = a[f] * dy + b[f] * (x - mean[f]) + c[f]; when frozen, dx = a[f] * dy. */
void bn_ref_backward_dx(const bn_view *v, const float *x, const float *dy, const bn_workspace *ws,
                        int frozen, float *dx);

/* The fast kernels: the same results within rounding, identical for any
 * thread count. */
void bn_fast_batch_stats(const bn_view *v, const float *x, bn_workspace *ws, int threads);
/* Test-mode coefficients of every feature from the running statistics:
 * mean, mean_lo (0), a = gamma / sqrt(var + eps) (gamma NULL: 1), b = beta
 * (NULL: 0). The same bits as the reference's scalar loop (square root and
 * division are correctly rounded in every instruction set), at a fraction
 * of its cost where features are many and values per feature few. */
void bn_fast_inference_coefficients(size_t features, const float *mean, const float *var,
                                    const float *gamma, const float *beta, double eps,
                                    bn_workspace *ws);
/* Uses ws->c as scratch in the rows view. With an epilogue (NULL: none),
 * each block of y gets it right after it is normalized, and y is written
 * through the cache. */
void bn_fast_normalize(const bn_view *v, const float *x, bn_workspace *ws, float *y,
                       const bn_epilogue *ep, int threads);
/* Statistics, coefficients for every feature, then y (and the epilogue). */
void bn_fast_forward_training(const bn_view *v, const float *x, bn_workspace *ws,
                              bn_coefficients_fn coefficients, const void *ctx, float *y,
                              const bn_epilogue *ep, int threads);
/* The three sums of the training backward alone, into ws->stat0..2. */
void bn_fast_backward_sums(const bn_view *v, const float *x, const float *dy, bn_workspace *ws,
                           int threads);
/* dx = a * dy + b * (x - mean) + c with the coefficients in ws. */
void bn_fast_backward_dx(const bn_view *v, const float *x, const float *dy, const bn_workspace *ws,
                         float *dx, int threads);
/* The three sums (stat2 only when not frozen), coefficients for every
 * feature, then dx. With `frozen`, ws->a must hold every feature's scale
 * beforehand: dx = a * dy comes out of the same pass as the sums. */
void bn_fast_backward(const bn_view *v, const float *x, const float *dy, bn_workspace *ws,
                      int frozen, bn_coefficients_fn coefficients, const void *ctx, float *dx,
                      int threads);

#endif
