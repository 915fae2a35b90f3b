/*
 * kind.h - what a layer kind is: a table of operations, one file per kind
 * under net/kinds/. The executor (network.c) calls these and nothing else,
 * so a new kind is a new file and a line in nn_kinds[].
 *
 * The executor splits a batch of n samples into T slices, slice s covering
 * samples [n*s/T, n*(s+1)/T), and runs a kind's slice functions on T OpenMP
 * threads; a kind whose work does not split by samples (batch norm needs
 * the whole batch's statistics) gives batch functions instead, which may
 * use threads of their own.
 */
#ifndef NN_KIND_H
#define NN_KIND_H

#include <stddef.h>
#include <stdint.h>

#include "nn.h"
#include "rng.h"

/* One call of a layer's forward or backward. */
typedef struct {
    nn_net *net;
    nn_layer *l;
    const float *in[2]; /* the inputs' activations, [n][in_size] */
    const float *g;     /* backward: the gradient of the output */
    float *din[2];      /* backward: where the inputs' gradients go; NULL: not needed */
    float *dw;          /* backward: where the weight gradient goes (grad, or m with SGD) */
    float dw_beta;      /* backward: dw = dW + dw_beta * dw */
    int n, T;
    int training;
} nn_pass;

struct nn_kind {
    /* Shapes and parameters: sets l->out from l->in (and the other
     * input's dims), and adds the layer's tensors (nn_add_tensor). Returns
     * 0, or -1 with a message saying why the layer does not fit. */
    int (*setup)(nn_net *net, nn_layer *l, const nn_dims *in2, char *err, size_t errlen);
    /* What the layer needs besides its output, for batches of max_batch
     * (NULL: nothing). */
    void (*plan)(const nn_net *net, const nn_layer *l, nn_plan *need);
    /* Initial parameters (the generator is shared, in layer order). */
    void (*init)(nn_layer *l, nn_rng *rng);

    /* Forward on samples [b0, b1), slice s; or on the whole batch. */
    void (*forward)(const nn_pass *p, int s, int b0, int b1);
    int (*forward_batch)(const nn_pass *p);
    /* Optional, for a batch of fewer samples than threads (one sample in
     * test mode): the forward of part s of `parts`, split inside the
     * samples, so that every thread has work: part s writes the band of
     * output rows nn_band (every sample's). band_local: part s reads only
     * the same band of inputs of its own shape, which part s of the layers
     * before wrote, so the executor needs no barrier before it. */
    void (*forward_part)(const nn_pass *p, int s, int parts);
    int band_local;
    /* Backward: `phases` rounds over the slices, each round after every
     * slice finished the one before; or on the whole batch. */
    int phases;
    void (*backward)(const nn_pass *p, int s, int b0, int b1, int phase);
    int (*backward_batch)(const nn_pass *p);
    /* The backward writes every input's gradient, even the network's
     * input (the executor then gives it a buffer to throw away). */
    int needs_din;

    /* The loss layer (last): from the logits of the forward (in[0]),
     * returns the mean loss over the batch, counts the right answers, and
     * writes dloss/dlogits into p->din[0]. */
    double (*loss)(const nn_pass *p, const uint8_t *labels, int *correct);

    /* One sample in test mode, for networks where every layer has one of:
     * unit-wise kinds compute out[c] for c in [c0, c1) from in; a dense
     * kind adds rows [r0, r1) of its weights times in[r0..r1) into a
     * partial sum of every output, and `finish` adds T slices' partials
     * (stride floats apart) into out[c0..c1). ws: a BN workspace. */
    int (*one_units)(const nn_layer *l, const float *in, float *out, int c0, int c1, void *ws,
                     size_t ws_size);
    void (*one_rows)(const nn_layer *l, const float *in, int r0, int r1, float *partial);
    void (*one_finish)(const nn_layer *l, const float *partials, size_t stride, int T, int c0,
                       int c1);

    /* A BN reading this layer alone folds into it: weights [fan_in][out]
     * (out last), and a bias. */
    int foldable;
};

extern const nn_kind *const nn_kinds[NN_KIND_COUNT];

/* Slice s's share of the per-thread scratch. */
float *nn_thread_scratch(const nn_net *net, int s);
/* The first sample of slice s of T over n. */
static inline int nn_slice_begin(int n, int T, int s) { return (int)((int64_t)n * s / T); }

/* Part s of `parts` of a layer's output rows: the values [*begin, *end)
 * of each sample's output ([h][w][c], so a band of whole rows). */
static inline void nn_band(const nn_layer *l, int s, int parts, size_t *begin, size_t *end) {
    size_t row = (size_t)l->out.w * l->out.c;
    *begin = (size_t)nn_slice_begin(l->out.h, parts, s) * row;
    *end = (size_t)nn_slice_begin(l->out.h, parts, s + 1) * row;
}

/* setup of a kind whose output has its input's shape and which has no
 * parameters (ReLU, sigmoid). */
int nn_same_shape(nn_net *net, nn_layer *l, const nn_dims *in2, char *err, size_t errlen);

/* He-normal weights: N(0, 2 / fan_in), fan_in = size / out. */
void nn_init_he(nn_tensor *w, int out, nn_rng *rng);

#endif
