/*
 * bnorm.h - batch normalization kernels for float32 tensors.
 *
 * libbnorm normalizes a tensor x per feature, using either the statistics
 * of the current mini-batch (training) or given statistics (inference):
 *
 *     y = gamma * (x - mean) / sqrt(var + eps) + beta
 *
 * THE MATH, EXACTLY
 *   m        number of values that share one set of statistics:
 *            N * S for BNORM_MODE_SPATIAL, N for BNORM_MODE_PER_ACTIVATION
 *            (S = product of the spatial dimensions, 1 for an NC tensor).
 *   mean     batch mean, sum(x) / m.
 *   var      BIASED batch variance, sum((x - mean)^2) / m. This is what the
 *            forward pass normalizes with (as PyTorch, TensorFlow, Theano,
 *            cuDNN and oneDNN do).
 *   invstd   1 / sqrt(var + eps). Training forward saves mean and invstd
 *            (never the variance) for the backward pass.
 *   running  running = decay * running + (1 - decay) * batch_statistic,
 *            the lecture's convention, default decay = 0.9. The running
 *            variance uses the UNBIASED estimate var * m / (m - 1) by
 *            default (PyTorch, cuDNN, Theano); BNORM_RUNNING_VAR_BIASED
 *            selects the biased one (ONNX, Keras). BNORM_RUNNING_CUMULATIVE
 *            replaces decay with 1 - 1/(t + 1) at step t, so after t steps
 *            the running statistics are the exact mean of the t batch
 *            statistics.
 *
 *   Conventions of other libraries, for the same update:
 *     | library           | parameter                 | equals        | default |
 *     | bnorm (lecture)   | decay                     | decay         | 0.9     |
 *     | PyTorch           | momentum                  | 1 - decay     | 0.1     |
 *     | ONNX, Keras, TF   | momentum                  | decay         | 0.9/0.99|
 *     | Theano            | running_average_factor    | 1 - decay     | 0.1     |
 *     | cuDNN             | exponentialAverageFactor  | 1 - decay     | -       |
 *   PyTorch's momentum=None (cumulative average) is BNORM_RUNNING_CUMULATIVE.
 *
 *   Backward (training), with xhat = (x - mean) * invstd:
 *     dbeta  = sum(dy)
 *     dgamma = sum(dy * xhat)
 *     dx     = gamma * invstd / m * (m * dy - dbeta - xhat * dgamma)
 *   Backward (inference, statistics frozen), with invstd from the given var:
 *     dx = dy * gamma * invstd; dgamma and dbeta as above.
 *   dx, dgamma and dbeta are OVERWRITTEN, never accumulated into.
 *
 * FUNCTIONAL EQUIVALENTS
 *   tf.nn.batch_normalization(x, mean, var, offset, scale, eps)
 *       = bnorm_forward_inference (per-activation or spatial mode).
 *   theano batch_normalization_train(x, gamma, beta, axes, eps, factor)
 *       = bnorm_forward_training with decay = 1 - factor; axes 'spatial'
 *         or 'per-activation' = bnorm_mode. Theano returns invstd too.
 *   theano batch_normalization_test(x, gamma, beta, mean, var, axes, eps)
 *       = bnorm_forward_inference.
 *
 * MEMORY AND ERRORS
 *   The caller owns every buffer; the library never allocates, never
 *   prints and never exits. Scratch memory is a caller-provided workspace
 *   whose size bnorm_workspace_size() reports (any alignment; 64-byte
 *   aligned is best). Every function checks its arguments first and, on
 *   any error, returns a status without writing to any output.
 *   y may be the same buffer as x, and dx the same as dy (in place); other
 *   overlaps between inputs and outputs are not supported.
 *
 * NON-FINITE DATA
 *   NaN or Inf in x makes the statistics of the features it belongs to NaN,
 *   and with them that feature's outputs (and running statistics); other
 *   features are unaffected. Nothing crashes. An Inf in gamma or beta
 *   propagates to the outputs of its feature only.
 *
 * THREADS AND DETERMINISM
 *   bnorm_params.threads says how many threads a call may use (1 = the
 *   calling thread only), 0 = one per core. The library never starts more,
 *   and starts fewer for small tensors: one thread per 128 Ki values at the
 *   most, since waking a thread costs more than normalizing fewer values
 *   (BNORM_EXACT_THREADS turns that off, for tests and scaling studies).
 *   Called from inside an OpenMP parallel region it runs on the calling
 *   thread. Results are bit-identical for any thread count: every reduction
 *   runs in a fixed order that depends only on the shape.
 *
 * LARGE OUTPUTS
 *   y of both forward passes and dx of the training backward are written
 *   with non-temporal stores for tensors of 16 MiB and more (channels-first
 *   planes that are not a whole number of 16-byte stores, such as 13 x 13,
 *   excepted), which go around the cache: the output is not read
 *   back before it would be evicted, the input stays in cache for a second
 *   pass, and the memory is spared the read of each output line that an
 *   ordinary store costs. BNORM_CACHED_OUTPUTS writes them through the cache
 *   instead: for a caller that reads the output right away while it still
 *   fits in the cache, or on a machine whose memory is contended, where
 *   non-temporal stores can be the slower ones. Calls in place (y == x,
 *   dx == dy) and the fused calls always write through the cache. The
 *   values are the same either way.
 */
#ifndef BNORM_H
#define BNORM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32) && defined(BNORM_SHARED)
#ifdef BNORM_BUILDING
#define BNORM_API __declspec(dllexport)
#else
#define BNORM_API __declspec(dllimport)
#endif
#elif defined(__GNUC__)
#define BNORM_API __attribute__((visibility("default")))
#else
#define BNORM_API
#endif

#define BNORM_VERSION_MAJOR 0
#define BNORM_VERSION_MINOR 2
#define BNORM_VERSION_PATCH 0

/* Status codes. The numbers are stable; new codes are only ever added. */
typedef enum {
    BNORM_OK = 0,
    BNORM_ERR_NULL_POINTER = 1,         /* a required pointer is NULL */
    BNORM_ERR_INVALID_DIMENSION = 2,    /* a dimension is zero or negative */
    BNORM_ERR_DIMENSION_OVERFLOW = 3,   /* N*C*S does not fit in size_t */
    BNORM_ERR_INVALID_RANK = 4,         /* spatial_rank outside 0..BNORM_MAX_SPATIAL */
    BNORM_ERR_INVALID_LAYOUT = 5,       /* unknown layout, or NC with spatial dims */
    BNORM_ERR_INVALID_MODE = 6,         /* unknown bnorm_mode */
    BNORM_ERR_INVALID_EPS = 7,          /* eps <= 0, NaN or infinite */
    BNORM_ERR_INVALID_DECAY = 8,        /* decay outside [0, 1] or NaN */
    BNORM_ERR_INVALID_FLAGS = 9,        /* unknown bits in flags */
    BNORM_ERR_INVALID_THREADS = 10,     /* threads < 0 or > BNORM_MAX_THREADS */
    BNORM_ERR_SINGLE_VALUE = 11,        /* training with one value per feature */
    BNORM_ERR_WORKSPACE_TOO_SMALL = 12, /* workspace smaller than required */
    BNORM_ERR_INVALID_DTYPE = 13        /* a data type this version does not handle */
} bnorm_status;

/* A short English sentence naming the status; never NULL. */
BNORM_API const char *bnorm_status_str(bnorm_status status);

/* Memory layout of x, y, dy and dx (row-major, densely packed).
 *   NC              x[n][c]; spatial_rank must be 0.
 *   CHANNELS_FIRST  x[n][c][s...]: NCW, NCHW, NCDHW, ...
 *   CHANNELS_LAST   x[n][s...][c]: NWC, NHWC, NDHWC, ...
 * With spatial_rank 0 the three layouts describe the same memory. */
typedef enum {
    BNORM_LAYOUT_NC = 0,
    BNORM_LAYOUT_CHANNELS_FIRST = 1,
    BNORM_LAYOUT_CHANNELS_LAST = 2
} bnorm_layout;

/* Which values share statistics, gamma and beta.
 *   SPATIAL         one set per channel, over N and every spatial position
 *                   (convolutions; the lecture's "gamma is size C").
 *                   Parameter arrays hold C floats.
 *   PER_ACTIVATION  one set per (channel, spatial position), over N only
 *                   (dense layers; Theano 'per-activation', cuDNN
 *                   PER_ACTIVATION). Parameter arrays hold C*S floats,
 *                   ordered like one sample of x in its layout. */
typedef enum { BNORM_MODE_SPATIAL = 0, BNORM_MODE_PER_ACTIVATION = 1 } bnorm_mode;

#define BNORM_MAX_SPATIAL 6

/* The most threads a call may be given: more are refused
 * (BNORM_ERR_INVALID_THREADS), since a runtime asked for millions of
 * threads ends the process, and a library must not. threads = 0 (one per
 * core) is capped at this too. */
#define BNORM_MAX_THREADS 256

/* The shape of x. Dimensions are signed so that a negative value can be
 * reported as an error rather than wrapped to a huge size. */
typedef struct {
    bnorm_layout layout;
    int64_t n;                          /* batch size, >= 1 */
    int64_t c;                          /* channels, >= 1 */
    int spatial_rank;                   /* 0 .. BNORM_MAX_SPATIAL */
    int64_t spatial[BNORM_MAX_SPATIAL]; /* [0 .. spatial_rank), each >= 1 */
} bnorm_shape;

/* Flags for bnorm_params.flags. */
#define BNORM_USE_SCALE          0x1u  /* gamma is given; without it gamma = 1 and no dgamma */
#define BNORM_USE_SHIFT          0x2u  /* beta is given; without it beta = 0 and no dbeta */
#define BNORM_RUNNING_VAR_BIASED 0x4u  /* running var from the biased variance */
#define BNORM_RUNNING_CUMULATIVE 0x8u  /* cumulative average instead of decay */
#define BNORM_FORCE_REFERENCE    0x10u /* use the scalar reference kernels */
#define BNORM_EXACT_THREADS      0x20u /* exactly params.threads, however small the tensor */
#define BNORM_CACHED_OUTPUTS     0x40u /* write y and dx through the cache, however large */

typedef struct {
    bnorm_mode mode; /* default BNORM_MODE_SPATIAL */
    float eps;       /* > 0, default 1e-5 */
    float decay;     /* in [0, 1], default 0.9 (PyTorch momentum 0.1) */
    unsigned flags;  /* default BNORM_USE_SCALE | BNORM_USE_SHIFT */
    int threads;     /* 0..BNORM_MAX_THREADS, default 1; 0 = one per core */
} bnorm_params;

/* Running ("global") statistics, updated by each training forward pass.
 * count is the number of batches folded in so far: the training forward
 * increments it, and BNORM_RUNNING_CUMULATIVE uses it as the step t. It
 * stops at UINT64_MAX rather than wrapping to 0 (which would make the
 * cumulative average forget every batch before).
 * Start with mean = 0, var = 1, count = 0 (what PyTorch does). */
typedef struct {
    float *mean; /* [features] */
    float *var;  /* [features] */
    uint64_t count;
} bnorm_running_stats;

/* The defaults documented in bnorm_params. */
BNORM_API bnorm_params bnorm_params_default(void);

/* Shape helpers; they do not validate (the kernels do). */
BNORM_API bnorm_shape bnorm_shape_nc(int64_t n, int64_t c);
BNORM_API bnorm_shape bnorm_shape_nchw(int64_t n, int64_t c, int64_t h, int64_t w);
BNORM_API bnorm_shape bnorm_shape_nhwc(int64_t n, int64_t h, int64_t w, int64_t c);

/* Validates shape and params and reports the number of features: the length
 * of gamma, beta, dgamma, dbeta, save_mean, save_invstd and the running and
 * inference statistics (C in spatial mode, C*S in per-activation mode). */
BNORM_API bnorm_status bnorm_feature_count(const bnorm_shape *shape, const bnorm_params *params,
                                           size_t *features);

/* Validates shape and params and reports the bytes of workspace that any of
 * the four operations below needs for this shape and mode. It does not
 * depend on params->threads, so one workspace serves every thread count. */
BNORM_API bnorm_status bnorm_workspace_size(const bnorm_shape *shape, const bnorm_params *params,
                                            size_t *bytes);

/* Training forward: batch statistics, y, saved statistics and, when running
 * is not NULL, the running-statistics update.
 *   x            [shape]              input
 *   gamma, beta  [features]           needed when USE_SCALE / USE_SHIFT
 *   y            [shape]              output (may be x)
 *   save_mean    [features]           output: batch mean
 *   save_invstd  [features]           output: 1 / sqrt(biased var + eps)
 *   running      optional             mean, var updated; count incremented
 * Fails with BNORM_ERR_SINGLE_VALUE when each feature has one value. */
BNORM_API bnorm_status bnorm_forward_training(const bnorm_shape *shape, const bnorm_params *params,
                                              const float *x, const float *gamma, const float *beta,
                                              float *y, float *save_mean, float *save_invstd,
                                              bnorm_running_stats *running, void *workspace,
                                              size_t workspace_size);

/* Inference forward: y = gamma * (x - mean) / sqrt(var + eps) + beta with the
 * given statistics (usually the running ones). Any batch size, including 1.
 * params->decay is not used. */
BNORM_API bnorm_status bnorm_forward_inference(const bnorm_shape *shape, const bnorm_params *params,
                                               const float *x, const float *gamma,
                                               const float *beta, const float *mean,
                                               const float *var, float *y, void *workspace,
                                               size_t workspace_size);

/* Training backward, from what bnorm_forward_training saved.
 *   dy            [shape]      gradient of the loss with respect to y
 *   dx            [shape]      output (may be dy)
 *   dgamma        [features]   output, needed when USE_SCALE
 *   dbeta         [features]   output, needed when USE_SHIFT
 * beta is not an input: the gradient does not depend on it. */
BNORM_API bnorm_status bnorm_backward_training(const bnorm_shape *shape, const bnorm_params *params,
                                               const float *x, const float *dy, const float *gamma,
                                               const float *save_mean, const float *save_invstd,
                                               float *dx, float *dgamma, float *dbeta,
                                               void *workspace, size_t workspace_size);

/* Backward of inference mode (statistics frozen, e.g. fine-tuning with BN
 * layers frozen): mean and var are constants, so dx = dy * gamma * invstd. */
BNORM_API bnorm_status bnorm_backward_inference(const bnorm_shape *shape,
                                                const bnorm_params *params, const float *x,
                                                const float *dy, const float *gamma,
                                                const float *mean, const float *var, float *dx,
                                                float *dgamma, float *dbeta, void *workspace,
                                                size_t workspace_size);

/* FUSED RELU AND RESIDUAL ADD
 *
 * In networks BN is followed by a ReLU, and in residual blocks its output is
 * first added to the skip connection z (a tensor of x's shape and layout):
 *     y = relu(bn(x) + z)    (BNORM_FUSE_ADD | BNORM_FUSE_RELU)
 *     y = relu(bn(x))        (BNORM_FUSE_RELU)
 *     y = bn(x) + z          (BNORM_FUSE_ADD)
 * The fused calls do it in one pass over memory: each block of y gets the
 * add and the ReLU while it is in registers, or still in cache, from being
 * normalized (large outputs stream to memory, as the unfused calls' do).
 * relu(v) is v for v > 0, NaN for NaN, +0 otherwise.
 *
 * The training forward with a ReLU writes a bit mask (bit i of byte i / 8
 * is 1 where the ReLU's input, element i of the tensor in memory order, was
 * > 0), of bnorm_fused_mask_size() bytes of caller memory; the backward
 * reads it instead of y: a bit per value rather than 32. The backward takes
 * dy of the fused output y and gives, with g = dy where the mask is set and
 * 0 elsewhere (the gradient at exactly 0 is 0, as PyTorch's):
 *     dz = g                 (with BNORM_FUSE_ADD)
 *     dx, dgamma, dbeta      the BN backward of g
 * The statistics, saved values and running update are those of the
 * unfused call.
 *
 * Tensor arguments (x, z, y, dy, dx, dz) are typed void *: their element
 * type is bnorm_fusion.dtype, float32 only in this version; per-feature
 * arrays (gamma, beta, statistics, gradients) stay float32 whatever the
 * data type, as in the mixed-precision practice of cuDNN and PyTorch.
 * y may be x, and dx may be dy; y must not be z, nor dz be dy. */
#define BNORM_FUSE_RELU 0x1u
#define BNORM_FUSE_ADD  0x2u

typedef enum { BNORM_DTYPE_F32 = 0 } bnorm_dtype;

typedef struct {
    unsigned ops;      /* BNORM_FUSE_RELU, BNORM_FUSE_ADD, both or none */
    bnorm_dtype dtype; /* of the tensors; BNORM_DTYPE_F32 */
} bnorm_fusion;

/* Bytes of the ReLU mask for a tensor of this shape: ceil(N*C*S / 8). */
BNORM_API bnorm_status bnorm_fused_mask_size(const bnorm_shape *shape, size_t *bytes);

/* Training forward with the fused add and ReLU.
 *   z          [shape] residual input, needed with BNORM_FUSE_ADD
 *   relu_mask  [bnorm_fused_mask_size] output, needed with BNORM_FUSE_RELU
 * The other arguments are those of bnorm_forward_training. */
BNORM_API bnorm_status bnorm_fused_forward_training(
    const bnorm_shape *shape, const bnorm_params *params, const bnorm_fusion *fusion, const void *x,
    const void *z, const float *gamma, const float *beta, void *y, float *save_mean,
    float *save_invstd, bnorm_running_stats *running, void *relu_mask, void *workspace,
    size_t workspace_size);

/* Inference forward with the fused add and ReLU (no mask is written). */
BNORM_API bnorm_status bnorm_fused_forward_inference(
    const bnorm_shape *shape, const bnorm_params *params, const bnorm_fusion *fusion, const void *x,
    const void *z, const float *gamma, const float *beta, const float *mean, const float *var,
    void *y, void *workspace, size_t workspace_size);

/* Training backward of the fused forward.
 *   dy         [shape] gradient of the loss with respect to the fused y
 *   relu_mask  what the forward wrote, needed with BNORM_FUSE_RELU
 *   dx         [shape] output (may be dy)
 *   dz         [shape] output, needed with BNORM_FUSE_ADD
 * The other arguments are those of bnorm_backward_training. */
BNORM_API bnorm_status bnorm_fused_backward_training(
    const bnorm_shape *shape, const bnorm_params *params, const bnorm_fusion *fusion, const void *x,
    const void *dy, const void *relu_mask, const float *gamma, const float *save_mean,
    const float *save_invstd, void *dx, void *dz, float *dgamma, float *dbeta, void *workspace,
    size_t workspace_size);

/* SYNCHRONIZED BATCH NORM (data-parallel training)
 *
 * When K processes each hold a share of a global batch (shares of any size,
 * empty ones included, split along N), these split-phase calls let any
 * communication layer give every process the statistics and gradients of
 * one call on the whole batch. The library itself does no communication.
 *
 * The moments record of a share, BNORM_MOMENTS_DOUBLES(features) doubles:
 *   record[0]                      count: values per feature in the share
 *   record[1 .. features]          mean of each feature (0 if count is 0)
 *   record[1 + features .. 2F]     M2 = sum((x - mean)^2) of each feature
 * Records merge exactly, by Chan's formula in double, in the order given.
 *
 * Forward, per BN layer:
 *   1. bnorm_local_moments          the share's record
 *   2. allgather the records        2C + 1 doubles per process
 *   3. bnorm_merge_moments          the K records in rank order: the same
 *                                   global record on every process
 *   4. bnorm_forward_training_global   y, saved statistics, running update
 * Backward, per BN layer:
 *   5. bnorm_backward_local_sums    2C doubles: sum(dy), sum(dy * xhat)
 *   6. allreduce (sum) the sums     2C doubles
 *   7. bnorm_backward_apply         dx of the share, dgamma, dbeta
 * xhat is taken about the global record's mean in double, so the backward
 * is as exact as bnorm_backward_training. A communication layer that would
 * rather allreduce 3C values in the forward can reduce (count, count * mean,
 * M2 + count * mean^2) and rebuild the record, at the price of the
 * cancellation that the record avoids.
 *
 * Equivalence: merging the records of K shares gives the statistics of the
 * whole batch, and the outputs of steps 4 and 7 match bnorm_forward_training
 * and bnorm_backward_training on it, within 1e-6 of each tensor's largest
 * magnitude, 4e-6 for dgamma (the float32 sums within a chunk run over
 * other chunks when the batch is cut); tests/test_sync.c checks it for
 * uneven and empty shares.
 *
 * shape->n may be 0 in these calls (an empty share): x, y, dy and dx may
 * then be NULL, and the workspace too. */
#define BNORM_MOMENTS_DOUBLES(features) (2 * (features) + 1)

/* The moments record of this share (count 0 for an empty one). */
BNORM_API bnorm_status bnorm_local_moments(const bnorm_shape *shape, const bnorm_params *params,
                                           const float *x, double *record, void *workspace,
                                           size_t workspace_size);

/* Merges `count` records of `features` features, stored one after another,
 * in that order, into merged (which may be the first record). Fails with
 * BNORM_ERR_INVALID_DIMENSION for a negative or non-finite count. */
BNORM_API bnorm_status bnorm_merge_moments(int64_t features, int count, const double *records,
                                           double *merged);

/* Training forward of this share with the global statistics: y, the saved
 * mean and invstd, and the running statistics updated with the global
 * count (the unbiased variance uses the global m). Fails with
 * BNORM_ERR_SINGLE_VALUE when the global count is below 2. */
BNORM_API bnorm_status bnorm_forward_training_global(
    const bnorm_shape *shape, const bnorm_params *params, const float *x, const float *gamma,
    const float *beta, const double *global, float *y, float *save_mean, float *save_invstd,
    bnorm_running_stats *running, void *workspace, size_t workspace_size);

/* The share's backward sums: sums[f] = sum(dy), sums[features + f] =
 * sum(dy * xhat), xhat from the global record and params->eps. */
BNORM_API bnorm_status bnorm_backward_local_sums(const bnorm_shape *shape,
                                                 const bnorm_params *params, const float *x,
                                                 const float *dy, const double *global,
                                                 double *sums, void *workspace,
                                                 size_t workspace_size);

/* dx of this share from the summed sums of every share; dgamma = the global
 * sum(dy * xhat) and dbeta = the global sum(dy), as bnorm_backward_training
 * gives them for the whole batch. */
BNORM_API bnorm_status bnorm_backward_apply(const bnorm_shape *shape, const bnorm_params *params,
                                            const float *x, const float *dy, const float *gamma,
                                            const double *global, const double *global_sums,
                                            float *dx, float *dgamma, float *dbeta, void *workspace,
                                            size_t workspace_size);

/* SyncBN with the fused add and ReLU (see FUSED RELU AND RESIDUAL ADD).
 * The forward is bnorm_forward_training_global's, then y = relu(y + z) (or
 * what fusion names) with the ReLU mask written, as
 * bnorm_fused_forward_training does for one process. */
BNORM_API bnorm_status bnorm_fused_forward_training_global(
    const bnorm_shape *shape, const bnorm_params *params, const bnorm_fusion *fusion, const void *x,
    const void *z, const float *gamma, const float *beta, const double *global, void *y,
    float *save_mean, float *save_invstd, bnorm_running_stats *running, void *relu_mask,
    void *workspace, size_t workspace_size);

/* The fused backward's first phase: g = dy where the mask is set and 0
 * elsewhere (with BNORM_FUSE_RELU; dy itself otherwise), written to g
 * ([shape]; may be dy; with BNORM_FUSE_ADD it is dz), and the share's sums
 * of g, as bnorm_backward_local_sums. After the allreduce, the second phase
 * is bnorm_backward_apply with g for dy. */
BNORM_API bnorm_status bnorm_fused_backward_local_sums(const bnorm_shape *shape,
                                                       const bnorm_params *params,
                                                       const bnorm_fusion *fusion, const void *x,
                                                       const void *dy, const void *relu_mask,
                                                       const double *global, void *g, double *sums,
                                                       void *workspace, size_t workspace_size);

/* FOLDING FOR INFERENCE
 *
 * In test mode BN is an affine map per feature, y = scale * x + shift with
 *     scale = gamma / sqrt(var + eps),   shift = beta - mean * scale,
 * so it can be folded into the dense or convolution layer before it: with
 * that layer's weights W (one row of fan_in weights per output channel)
 * and bias b (0 when it has none),
 *     W'[o][k] = W[o][k] * scale[o],   b'[o] = (b[o] - mean[o]) * scale[o] + beta[o],
 * and the folded layer alone gives what the layer followed by BN gave, up
 * to rounding. Everything is computed in double and rounded once.
 * gamma NULL means 1 and beta NULL means 0 (as without BNORM_USE_SCALE /
 * BNORM_USE_SHIFT). eps must be > 0 and finite. */

/* The per-feature pair, for callers that fold themselves.
 *   scale, shift  [features] outputs */
BNORM_API bnorm_status bnorm_fold_scale_shift(int64_t features, const float *gamma,
                                              const float *beta, const float *mean,
                                              const float *var, float eps, float *scale,
                                              float *shift);

/* Where the output channel sits in a layer's weight array. */
typedef enum {
    BNORM_WEIGHTS_OUT_FIRST = 0, /* W[out][fan_in]: PyTorch's Linear and Conv ([out][in][kh][kw]) */
    BNORM_WEIGHTS_OUT_LAST =
        1 /* W[fan_in][out]: channels-last stacks ([kh][kw][in][out], [in][out]) */
} bnorm_weight_order;

/* Folds BN into the layer before it.
 *   weight      [out_channels * fan_in] in `order`
 *   bias        [out_channels], or NULL for a layer without bias
 *   gamma, beta, mean, var  [out_channels] (gamma, beta may be NULL)
 *   weight_out  [out_channels * fan_in], same order; may be weight
 *   bias_out    [out_channels]; may be bias
 * Nothing is written on error. */
BNORM_API bnorm_status bnorm_fold_into_layer(int64_t out_channels, int64_t fan_in,
                                             bnorm_weight_order order, const float *weight,
                                             const float *bias, const float *gamma,
                                             const float *beta, const float *mean, const float *var,
                                             float eps, float *weight_out, float *bias_out);

#ifdef __cplusplus
}
#endif

#endif /* BNORM_H */
