/*
 * nn.h - a small feed-forward network stack built on libbnorm's public API:
 * dense, 3x3 convolution (im2col + OpenBLAS sgemm), 2x2 max-pool, ReLU,
 * batch norm (per unit after dense, per channel after conv) and softmax
 * cross-entropy, trained by mini-batch SGD with momentum or Adam.
 *
 * Tensors are channels-last: a batch of images is [N][H][W][C], a batch of
 * feature vectors [N][C]. All parameters, gradients and optimizer state live
 * in one arena owned by the network. Not part of the installed library.
 *
 * Threads: the network splits each batch into `threads` slices run by OpenMP
 * and calls OpenBLAS from each slice, so OpenBLAS should be single-threaded
 * (openblas_set_num_threads(1)). Results depend on the thread count only
 * through the order of a few float sums; the same seed and thread count
 * give the same numbers. One sample in test mode through a dense-only
 * network runs on threads of its own instead (team.h), started at the first
 * such call and stopped by nn_free.
 */
#ifndef NN_H
#define NN_H

#include <stddef.h>
#include <stdint.h>

#include "bnorm.h"

typedef enum { NN_DENSE, NN_CONV3X3, NN_MAXPOOL2, NN_RELU, NN_BATCHNORM } nn_kind;
typedef enum { NN_BN_NONE, NN_BN_BEFORE_RELU, NN_BN_AFTER_RELU } nn_bn_place;
typedef enum { NN_SGD, NN_ADAM } nn_optimizer;

/* A trainable tensor: a slice of the arena, with its gradient and state. */
typedef struct {
    char name[48];
    int rank;
    int64_t shape[4];
    size_t size;
    float *value, *grad, *m, *v; /* m: momentum / Adam first moment; v: Adam second */
    int trainable;               /* 0 for running statistics */
    int m_current;               /* SGD: m already holds momentum * m + grad (nn_backward_sgd) */
} nn_tensor;

typedef struct {
    nn_kind kind;
    int in_h, in_w, in_c, out_h, out_w, out_c;
    size_t in_size, out_size;                     /* floats per sample */
    nn_tensor *weight, *bias;                     /* dense, conv (bias NULL when BN follows) */
    nn_tensor *gamma, *beta, *run_mean, *run_var; /* batchnorm */
    uint64_t bn_steps;                            /* batches folded into the running stats */
    float *save_mean, *save_invstd;               /* batchnorm [out_c] */
    float *out;                                   /* [max_batch * out_size] */
    float *col;      /* conv: im2col scratch, per thread [a few samples * H*W][9*in_c] */
    uint8_t *argmax; /* maxpool: [max_batch * out_size] */
} nn_layer;

typedef struct {
    char arch[16]; /* "mlp" or "cnn" */
    nn_bn_place bn;
    int in_h, in_w, in_c, classes;
    int max_batch;
    int threads;
    /* A convolution works through its slice of the batch this many bytes of
     * im2col rows at a time (at least one sample), so that the rows are
     * still in the core's L2 when the GEMM reads them; the backward pass
     * rebuilds them the same way. 256 KiB by default; may be lowered after
     * nn_build (the scratch is sized for the default), never raised. */
    size_t conv_chunk_bytes;
    int n_layers;
    nn_layer layers[32];
    int n_tensors;
    nn_tensor tensors[64];
    float *arena; /* every tensor's value, grad, m, v */
    size_t arena_size;
    float *grad_a, *grad_b; /* [max_batch * largest activation] */
    float *probs;           /* [max_batch * classes] softmax output */
    void *bn_ws;            /* libbnorm workspace */
    size_t bn_ws_size;
    /* Dense-only nets: the single-sample path (nn_forward of one sample in
     * test mode), split over threads by weight rows. */
    void *one_ws; /* one BN workspace per thread */
    size_t one_ws_size;
    float *one_partial;        /* [threads][one_partial_stride]: each dense layer's partial sums */
    size_t one_partial_stride; /* floats: the dense layers' widths, each rounded to 16 */
    struct nn_one_sync *one_sync; /* per-thread progress counters */
    /* Threads that run it: one per thread, at most one per CPU. May be
     * lowered after nn_build, before the first single-sample call; the
     * numbers depend on `threads` only. */
    int one_workers;
    struct nn_team *one_team; /* its threads, started at the first call */
    int one_team_failed;      /* the team could not be started: OpenMP instead */
    int one_stages;           /* handoffs per call: the dense layers but a last one */
    unsigned one_stage;       /* handoffs made by earlier calls */
    float *wgrad_partial;     /* nets with conv, threads > 1: [threads - 1][largest conv weight] */
    uint64_t adam_t;
} nn_net;

typedef struct {
    nn_optimizer kind;
    float lr;
    float momentum;          /* SGD */
    float beta1, beta2, eps; /* Adam */
} nn_optim;

/* What a network may take and ask for: descriptions beyond these are
 * refused with a message before anything is allocated. NN_MAX_NET_BYTES
 * bounds everything nn_allocate asks for (parameters, activations for
 * max_batch samples, scratch), so that a small hostile model file cannot
 * take the machine's memory. */
#define NN_MAX_INPUT_SIDE     1024
#define NN_MAX_INPUT_CHANNELS 64
#define NN_MAX_CLASSES        4096
#define NN_MAX_THREADS        BNORM_MAX_THREADS
#define NN_MAX_NET_BYTES      ((size_t)4 << 30)

/* Describes "mlp" (784-256-256-10) or "cnn" (conv32-pool-conv64-pool-dense128-dense10)
 * for inputs of in_h x in_w x in_c: layers and tensors with their shapes,
 * nothing allocated (nn_free is not needed). Returns 0, or -1 with a message
 * in err (an unknown model, inputs out of range or too small for it). */
int nn_describe(nn_net *net, const char *arch, nn_bn_place bn, int in_h, int in_w, int in_c,
                int classes, char *err, size_t errlen);
/* Allocates a described network's parameters and buffers for batches of up
 * to max_batch on `threads` threads, after checking that the total stays
 * within NN_MAX_NET_BYTES. Returns 0, or -1 with a message (nothing kept). */
int nn_allocate(nn_net *net, int max_batch, int threads, char *err, size_t errlen);
/* nn_describe, then nn_allocate. */
int nn_build(nn_net *net, const char *arch, nn_bn_place bn, int in_h, int in_w, int in_c,
             int classes, int max_batch, int threads, char *err, size_t errlen);
void nn_free(nn_net *net);
/* He initialisation of weights, zero biases, gamma 1, beta 0, running 0/1. */
void nn_init_params(nn_net *net, uint64_t seed);

/* Forward pass of n samples; returns the logits [n][classes] (owned by net),
 * or NULL when batch norm refuses the batch (training on one sample).
 * training: batch statistics and running-statistics update; otherwise test mode. */
const float *nn_forward(nn_net *net, const float *x, int n, int training);
/* Softmax cross-entropy of the logits of the last forward against labels:
 * returns the mean loss and leaves dloss/dlogits for nn_backward. */
double nn_loss(nn_net *net, const uint8_t *labels, int n, int *correct);
/* Backward through the network after nn_forward(training=1) and nn_loss.
 * Returns 0, or -1 when batch norm refuses the batch. */
int nn_backward(nn_net *net, const float *x, int n);
/* nn_backward for SGD with momentum: the weight gradients of dense and conv
 * layers go straight into the momentum buffers, m = momentum * m + dW, as
 * the GEMMs' beta, and their grad fields are left unwritten; the following
 * nn_step (SGD, the same momentum) completes the update. Equal to
 * nn_backward + nn_step up to the order of the float additions, and it
 * spares the step a read and a write of every weight. */
int nn_backward_sgd(nn_net *net, const float *x, int n, float momentum);
void nn_step(nn_net *net, const nn_optim *opt);

nn_tensor *nn_find_tensor(nn_net *net, const char *name);
/* Index of the largest of n values. */
int nn_argmax(const float *v, int n);

#endif
