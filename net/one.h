/*
 * one.h - one sample in test mode through a network of dense layers and
 * unit-wise layers (ReLU, sigmoid, BN with its running statistics), split
 * over threads by weight rows; a batch of one through the executor would
 * have one thread do it all, and a GEMM spend longer packing the weights
 * than using them.
 *
 * The work is cut in T = net->threads slices: slice s owns a range of every
 * dense layer's input rows, the same range of units of the layer before.
 * Its worker streams that block of each weight matrix (from its own L2,
 * call after call) into a partial sum of all outputs. Once every worker has
 * published its partials for a layer, each adds up the partials of its
 * slices' units, and carries them through the unit-wise layers that follow,
 * which are the next dense layer's rows of the same slices. Only the
 * partial sums cross cores, and a worker waits on per-worker counters, not
 * on an OpenMP barrier: a barrier costs about 1 us, a core-to-core handoff
 * about 0.25 us. The workers are a persistent team (team.h), started at the
 * first call and stopped by nn_free.
 *
 * Workers: one per slice, but no more than the CPUs (spinning workers that
 * share a core take turns in scheduler time slices); worker w runs slices
 * w, w + W, ... The numbers depend on T only: an output is the partials of
 * the T slices added in slice order, each partial in row order.
 */
#ifndef NN_ONE_H
#define NN_ONE_H

#include <stddef.h>

#include "nn.h"

/* Bytes the path needs for this network, 0 where it does not apply. */
size_t nn_one_bytes(const nn_net *net);
/* Sets net->one up where the path applies. Returns 0, or -1 when memory ran out. */
int nn_one_create(nn_net *net);
void nn_one_free(nn_net *net);
/* Lowers the number of threads that run the path (at first one per slice,
 * at most one per CPU), before its first call; the numbers depend on
 * net->threads only. */
void nn_one_set_workers(nn_net *net, int workers);
/* The logits of sample x, or NULL when a layer refused it. */
const float *nn_one_forward(nn_net *net, const float *x);

#endif
