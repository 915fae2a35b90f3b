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

/*
 * How a view's values of each feature are cut into chunks, whose partial
 * results are merged in a fixed order. The cut depends on the view only,
 * never on the thread count, which is what makes results bit-identical for
 * any number of threads (chunks.c).
 *   ROWS    a chunk is a block of `rows_per_block` rows. The statistics take
 *           strips of that block up to 256 features wide as their units of
 *           parallel work; the backward, whole rows of up to 128 features
 *           or tiles of `BN_FEATURE_BLOCK` (the sums fit in registers).
 *   PLANES  a chunk is one plane (`planes_per_chunk` planes of one feature
 *           when planes are shorter than BN_MIN_PLANE), or, for planes over
 *           BN_CHUNK_VALUES, one of `segments` equal parts of a plane.
 */
typedef struct {
    size_t chunks;           /* chunks per feature */
    size_t rows_per_block;   /* ROWS */
    size_t planes_per_chunk; /* PLANES, when segments == 1 */
    size_t segments;         /* PLANES: parts per plane (>= 1) */
    size_t segment_len;      /* PLANES: values per part, the last may be shorter */
} bn_chunking;

typedef struct {
    bn_view_kind kind;
    size_t n;           /* rows (ROWS) or batch (PLANES) */
    size_t features;    /* features */
    size_t s;           /* plane size (PLANES); 1 for ROWS */
    size_t m;           /* values per feature: n * s */
    size_t total;       /* n * features * s */
    int cached_outputs; /* BNORM_CACHED_OUTPUTS: never non-temporal stores */
    bn_chunking ch;     /* computed once, when the view is made */
} bn_view;

/* Workspace carved out of the caller's buffer, each array 64-byte aligned,
 * [features] unless said otherwise. The forward and the backward give the
 * same arrays the names of what they hold (formulas.h says how each is
 * computed). */
typedef struct {
    float *mean;    /* the mean the kernels centre x on, rounded to float */
    float *mean_lo; /* forward: exact mean - (double)mean, so x - mean stays exact */
    union {
        float *scale;    /* forward: gamma * invstd */
        float *dy_scale; /* backward: the coefficient of dy in dx */
    };
    union {
        float *shift;    /* forward: beta */
        float *xc_scale; /* backward: the coefficient of x - mean in dx */
    };
    union {
        float *shift_folded; /* forward, rows view: shift - mean_lo * scale */
        float *dx_offset;    /* backward: the constant term of dx */
    };
    union {
        double *batch_mean; /* forward: the exact batch mean */
        double *sum_dy;     /* backward */
    };
    union {
        double *batch_var; /* forward: the biased batch variance */
        double *sum_dy_xc; /* backward: sum(dy * (x - mean)) */
    };
    double *sum_xc; /* backward: sum(x - mean), m times the saved mean's rounding */
    /* [chunks * features] per-chunk results, at bn_part_index: */
    double *part0; /* chunk mean, or sum(dy) */
    double *part1; /* chunk M2, or sum(dy * (x - mean)) */
    double *part2; /* backward: sum(x - mean) */
} bn_workspace;

size_t bn_workspace_bytes(const bn_view *v);
bn_workspace bn_workspace_carve(const bn_view *v, void *base);

/* Chunk geometry (chunks.c). */
#define BN_FEATURE_BLOCK  64   /* features per backward tile: 4 vectors of sums in registers */
#define BN_ROWS_PER_BLOCK 256  /* rows per chunk: a block's strip stays in L2 between passes */
#define BN_CHUNK_VALUES   4096 /* longest plane taken whole: its second pass hits L1/L2 */
#define BN_MIN_PLANE      64   /* shorter planes are grouped: per-chunk overhead dominates */

bn_chunking bn_chunking_for(const bn_view *v);
/* Where chunks, work items and tiles lie: chunks.h. */

/* The API layer's helpers (api.c), shared by every file of entry points. */
/* Validates shape and params and maps them onto one of the two views. */
bnorm_status bn_make_view(const bnorm_shape *shape, const bnorm_params *p, bn_view *v);
bnorm_status bn_check_workspace(const bn_view *v, const void *ws, size_t size);

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
/* The same with the normalized values of [o0, o1) read from src[0, o1 - o0)
 * instead of y, and y written with non-temporal stores where stream. */
void bn_epilogue_from(const bn_epilogue *ep, const float *src, float *y, size_t o0, size_t o1,
                      int stream);
/* out = dy where the mask bit is set, 0 elsewhere, over total elements; out
 * may be dy. */
void bn_mask_gradient(const float *dy, const uint8_t *mask, float *out, size_t total, int threads);

/* The gradient a backward pass differentiates: g = dy, or, with the fused
 * ReLU's mask, dy where the mask's bit is set and +0 elsewhere; the sums
 * pass also writes g to g_out when given (the fused add's dz). */
typedef struct {
    const float *dy;
    const uint8_t *mask; /* NULL: g = dy */
    float *g_out;        /* NULL: not written */
} bn_grad;

/*
 * The few passes over tensor data that every call is made of, one instance
 * per path: the scalar reference (reference.c: one thread, plain loops,
 * double accumulation) and the fast kernels (fast.c: chunked, threaded,
 * vectorized; the same results within rounding, identical for any thread
 * count). bn_passes_for chooses, and says how many threads to use.
 */
typedef struct {
    /* ws->batch_mean and batch_var of every feature. */
    void (*batch_stats)(const bn_view *v, const float *x, bn_workspace *ws, int threads);
    /* y = BN_NORMALIZE(x) with ws's forward coefficients (ws->shift_folded
     * is scratch), then the epilogue (NULL: none) on each block while it is
     * in cache; with one, y is written through the cache. */
    void (*normalize)(const bn_view *v, const float *x, bn_workspace *ws, float *y,
                      const bn_epilogue *ep, int threads);
    /* ws->sum_dy (sum(g)), sum_dy_xc and sum_xc about ws->mean, and g to
     * g->g_out. With frozen_dx (the frozen backward, ws->dy_scale set
     * beforehand), dx = BN_DX_FROZEN in the same pass, and sum_xc may be
     * left 0. */
    void (*backward_sums)(const bn_view *v, const float *x, const bn_grad *g, bn_workspace *ws,
                          float *frozen_dx, int threads);
    /* dx = BN_DX of g with ws's backward coefficients. */
    void (*backward_dx)(const bn_view *v, const float *x, const bn_grad *g, const bn_workspace *ws,
                        float *dx, int threads);
} bn_passes;

extern const bn_passes bn_reference_passes, bn_fast_passes;

/* The passes this call uses (BNORM_FORCE_REFERENCE: the reference), and
 * the threads they may use (1 inside a parallel region or for the
 * reference). */
const bn_passes *bn_passes_for(const bnorm_params *p, const bn_view *v, int *threads);

#endif
