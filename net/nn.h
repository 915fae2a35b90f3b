/*
 * nn.h - a network as data: a list of layers read from a description
 * (spec.h), each an instance of a layer kind (kind.h), run by one executor
 * (network.c) that knows no kind: it plans the activations, the gradient
 * buffers and the scratch, runs every layer's forward on slices of the
 * batch on OpenMP threads, and the backward in reverse order, adding up the
 * gradients of an output read by several layers.
 *
 * Tensors are channels-last: a batch of images is [N][H][W][C], a batch of
 * feature vectors [N][C]. All parameters, gradients and optimizer state live
 * in one arena owned by the network. Not part of the installed library.
 *
 * Threads: the executor splits each batch into `threads` slices and calls
 * OpenBLAS from each slice, so OpenBLAS should be single-threaded
 * (openblas_set_num_threads(1)). Results depend on the thread count only
 * through the order of a few float sums; the same seed and thread count
 * give the same numbers. One sample in test mode through a network of dense
 * and element-wise layers runs on threads of its own instead (one.c).
 */
#ifndef NN_H
#define NN_H

#include <stddef.h>
#include <stdint.h>

#include "bnorm.h"
#include "spec.h"

typedef enum { NN_SGD, NN_ADAM } nn_optimizer;

/* A trainable tensor: a slice of the arena, with its gradient and state. */
typedef struct {
    char name[NN_NAME_MAX + 16];
    int rank;
    int64_t shape[4];
    size_t size;
    float *value, *grad, *m, *v; /* m: momentum / Adam first moment; v: Adam second */
    int trainable;               /* 0 for running statistics */
    int decay;                   /* weight decay applies (the weights of dense and conv) */
    int m_current;               /* SGD: m already holds momentum * m + grad (nn_backward_sgd) */
    int global;                  /* its gradient is already that of the global batch (SyncBN) */
} nn_tensor;

typedef struct {
    int h, w, c;
} nn_dims;

typedef struct nn_kind nn_kind;

/* Data-parallel training: K processes each hold a replica of the network
 * and a share of every global batch. The network calls these collectives,
 * which a communication layer provides (tools/mpi_comm.c over MPI); every
 * process calls them in the same order. Each returns 0, or -1 when the
 * communication failed. */
typedef struct {
    int rank, size;
    void *ctx;
    /* recv[r * count + i] = process r's send[i], for every r */
    int (*allgather)(void *ctx, const double *send, int count, double *recv);
    /* buf[i] = the sum of every process's buf[i] */
    int (*allreduce)(void *ctx, double *buf, int count);
    int (*allreduce_floats)(void *ctx, float *buf, size_t count);
} nn_comm;

/* A layer: the description's line, resolved, with its shapes and buffers. */
typedef struct {
    nn_spec_layer spec; /* kind, name, inputs, attributes */
    const nn_kind *kind;
    nn_dims in, out;                              /* of input 0 and of the output */
    size_t in_size, out_size;                     /* floats per sample */
    nn_tensor *weight, *bias;                     /* dense, conv */
    nn_tensor *gamma, *beta, *run_mean, *run_var; /* batchnorm */
    uint64_t bn_steps;                            /* batches folded into the running stats */
    float *stats;  /* kind's per-layer floats (BN: saved mean, invstd) */
    uint8_t *aux;  /* kind's per-batch bytes (max-pool argmax, BN's ReLU mask) */
    float *act;    /* the output activations, [max_batch * out_size] */
    int consumers; /* layers that read act */
    /* Executor: the gradient buffers (indices into grad_pool, -1: none).
     * grad_buffer holds act's gradient; the backward writes input k's into
     * din_buffer[k], which is then added into add_to[k] where another
     * reader of that input wrote its share first. */
    int grad_buffer, din_buffer[2], add_to[2];
} nn_layer;

/* What a layer asks of the executor beyond its output (kind->plan). */
typedef struct {
    size_t stat_floats;   /* per layer, kept from forward to backward */
    size_t aux_bytes;     /* per layer, for a batch of max_batch */
    size_t thread_floats; /* scratch per thread, shared by all layers */
    size_t work_bytes;    /* whole-batch scratch, shared by all layers */
} nn_plan;

typedef struct nn_net {
    nn_spec spec; /* as described (placement applied), before fusion: what is saved */
    int fused;    /* BN+ReLU and BN+add+ReLU run as libbnorm's fused calls */
    int in_h, in_w, in_c, classes;
    int max_batch;
    int threads;
    /* A convolution works through its slice of the batch this many bytes of
     * im2col rows at a time (at least one sample), so that the rows are
     * still in the core's L2 when the GEMM reads them. 256 KiB by default;
     * may be lowered after nn_allocate, never raised. */
    size_t conv_chunk_bytes;
    int n_layers;
    nn_layer layers[NN_MAX_LAYERS];
    int n_tensors;
    nn_tensor tensors[NN_MAX_TENSORS];
    float *arena; /* every tensor's value, grad, m, v */
    size_t arena_size;
    int n_grad_buffers;
    float *grad_pool[NN_MAX_LAYERS + 2]; /* [max_batch * largest activation] each */
    float *scratch;                      /* [threads][thread_floats] */
    size_t thread_floats;
    void *work; /* whole-batch scratch: BN workspace, conv weight-gradient partials */
    size_t work_bytes;
    int loss_din; /* the pool buffer of dloss/dlogits */
    /* Data-parallel training (NULL: one process). sync_bn: BN layers use the
     * statistics of the global batch (SyncBN); otherwise each process's
     * share alone. loss_batch: the global batch the loss averages over (0:
     * the local one). */
    const nn_comm *comm;
    int sync_bn;
    int loss_batch;
    void *comm_buffer; /* nn_comm_buffer's, kept from call to call */
    size_t comm_buffer_bytes;
    struct nn_one *one; /* the single-sample path (one.c), NULL where it does not apply */
    uint64_t adam_t;
} nn_net;

typedef struct {
    nn_optimizer kind;
    float lr;
    float momentum;          /* SGD */
    float beta1, beta2, eps; /* Adam */
    float weight_decay;      /* L2, on weights only (not biases, not BN's gamma and beta) */
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

/* Resolves a description for inputs of in_h x in_w x in_c and `classes`
 * classes: every layer's shapes and tensors, nothing allocated (nn_free is
 * not needed). fuse: run BN followed by ReLU, or by an add and a ReLU, as
 * one fused layer (the same numbers). Returns 0, or -1 with a message in err
 * (inputs out of range, a layer that does not fit its input). */
int nn_describe(nn_net *net, const nn_spec *spec, int in_h, int in_w, int in_c, int classes,
                int fuse, char *err, size_t errlen);
/* Allocates a described network's parameters and buffers for batches of up
 * to max_batch on `threads` threads, after checking that the total stays
 * within NN_MAX_NET_BYTES. Returns 0, or -1 with a message (nothing kept). */
int nn_allocate(nn_net *net, int max_batch, int threads, char *err, size_t errlen);
/* nn_describe, then nn_allocate. */
int nn_build(nn_net *net, const nn_spec *spec, int in_h, int in_w, int in_c, int classes, int fuse,
             int max_batch, int threads, char *err, size_t errlen);
/* nn_build of a built-in model or a description file (nn_spec_for_model)
 * with BN where `place` puts it, fused. */
int nn_build_model(nn_net *net, const char *model, nn_bn_place place, int in_h, int in_w, int in_c,
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
/* One optimizer step over every trainable tensor (optim.c). */
void nn_step(nn_net *net, const nn_optim *opt);

/* A network for inference that computes what src computes, with every BN
 * that reads a dense or conv layer (read by nothing else) folded into that
 * layer's weights and bias (libbnorm's bnorm_fold_into_layer, in double);
 * the other tensors copied. Its description (dst->spec) is src's without
 * those BN layers, and its layers keep their names. Allocated for batches
 * of max_batch on `threads` threads. Returns 0, or -1 with a message. */
int nn_fold(const nn_net *src, nn_net *dst, int max_batch, int threads, char *err, size_t errlen);

/* A buffer of at least `bytes` for the data of one collective at a time
 * (SyncBN's records and sums, a bucket of gradients), owned by the network
 * and kept for the next step; NULL when memory ran out. */
void *nn_comm_buffer(nn_net *net, size_t bytes);

/* Adds a tensor to a network being described (for kinds' setup). */
nn_tensor *nn_add_tensor(nn_net *net, const nn_layer *l, const char *what, int rank,
                         const int64_t *shape, int trainable);
nn_tensor *nn_find_tensor(nn_net *net, const char *name);
/* Number of parameters a described network trains. */
size_t nn_param_count(const nn_net *net);
/* Index of the largest of n values. */
int nn_argmax(const float *v, int n);

/* The logits of the last forward. */
const float *nn_logits(const nn_net *net);

#endif
