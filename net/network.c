/* The executor: a described network's memory, forward, loss and backward.
 * It knows layers only through their kind's table (kind.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kind.h"
#include "one.h"
#include "ops.h"

#ifdef _OPENMP
#include <omp.h>
#endif

nn_tensor *nn_add_tensor(nn_net *net, const nn_layer *l, const char *what, int rank,
                         const int64_t *shape, int trainable) {
    static nn_tensor overflow; /* a describe that runs out of tensors fails after setup */
    if (net->n_tensors == NN_MAX_TENSORS) {
        net->n_tensors++;
        return &overflow;
    }
    if (net->n_tensors > NN_MAX_TENSORS) return &overflow;
    nn_tensor *t = &net->tensors[net->n_tensors++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s.%s", l->spec.name, what);
    t->rank = rank;
    t->size = 1;
    for (int i = 0; i < rank; i++)
        t->shape[i] = shape[i], t->size *= (size_t)shape[i];
    t->trainable = trainable;
    t->decay = trainable && !strcmp(what, "weight");
    return t;
}

nn_tensor *nn_find_tensor(nn_net *net, const char *name) {
    for (int i = 0; i < net->n_tensors; i++)
        if (strcmp(net->tensors[i].name, name) == 0) return &net->tensors[i];
    return NULL;
}

size_t nn_param_count(const nn_net *net) {
    size_t n = 0;
    for (int i = 0; i < net->n_tensors; i++)
        if (net->tensors[i].trainable) n += net->tensors[i].size;
    return n;
}

int nn_argmax(const float *v, int n) {
    int best = 0;
    for (int k = 1; k < n; k++)
        if (v[k] > v[best]) best = k;
    return best;
}

void nn_init_he(nn_tensor *w, int out, nn_rng *rng) {
    size_t fan_in = w->size / (size_t)out;
    float std = sqrtf(2.0f / (float)fan_in);
    for (size_t k = 0; k < w->size; k++)
        w->value[k] = std * (float)nn_rng_normal(rng);
}

int nn_same_shape(nn_net *net, nn_layer *l, const nn_dims *in2, char *err, size_t errlen) {
    (void)net, (void)in2, (void)err, (void)errlen;
    l->out = l->in;
    return 0;
}

void *nn_comm_buffer(nn_net *net, size_t bytes) {
    if (bytes > net->comm_buffer_bytes) {
        void *p = realloc(net->comm_buffer, bytes);
        if (!p) return NULL;
        net->comm_buffer = p, net->comm_buffer_bytes = bytes;
    }
    return net->comm_buffer;
}

float *nn_thread_scratch(const nn_net *net, int s) {
    return net->scratch + (size_t)s * net->thread_floats;
}

/* The output of layer i, or the network's input for -1. */
static nn_dims dims_of(const nn_net *net, int i) {
    return i < 0 ? (nn_dims){net->in_h, net->in_w, net->in_c} : net->layers[i].out;
}

/* A dense or conv layer without bias= has one unless a bn alone reads it. */
static void resolve_bias(nn_spec *spec) {
    for (int i = 0; i < spec->n; i++) {
        nn_spec_layer *l = &spec->layer[i];
        if (l->bias >= 0) continue;
        int readers = 0, bn = 0;
        for (int j = i + 1; j < spec->n; j++)
            for (int k = 0; k < spec->layer[j].n_in; k++)
                if (spec->layer[j].in[k] == i) readers++, bn = spec->layer[j].kind == NN_KIND_BN;
        l->bias = !(readers == 1 && bn);
    }
}

/* Which pool buffer holds which gradient, walking the backward: a layer's
 * inputs get a buffer when their first reader (in backward order) runs,
 * which writes it; later readers write a temporary and add it in. A
 * layer's own buffer returns to the pool once its backward has run, so a
 * plain stack needs two buffers, as ping-pong would. */
static void plan_gradients(nn_net *net) {
    int free_ids[NN_MAX_LAYERS + 2], n_free = 0, n_made = 0;
#define TAKE()   (n_free ? free_ids[--n_free] : n_made++)
#define GIVE(id) (free_ids[n_free++] = (id))
    for (int i = 0; i < net->n_layers; i++)
        net->layers[i].grad_buffer = -1;
    for (int i = net->n_layers - 1; i >= 0; i--) {
        nn_layer *l = &net->layers[i];
        l->din_buffer[0] = l->din_buffer[1] = l->add_to[0] = l->add_to[1] = -1;
        if (i < net->n_layers - 1 && l->grad_buffer < 0) continue; /* no gradient reaches it */
        int temps[2], n_temps = 0;
        for (int k = 0; k < l->spec.n_in; k++) {
            int src = l->spec.in[k];
            if (src < 0) {
                if (l->kind->needs_din) l->din_buffer[k] = temps[n_temps++] = TAKE();
            } else if (net->layers[src].grad_buffer < 0) {
                l->din_buffer[k] = net->layers[src].grad_buffer = TAKE();
            } else {
                l->din_buffer[k] = temps[n_temps++] = TAKE();
                l->add_to[k] = net->layers[src].grad_buffer;
            }
        }
        for (int t = 0; t < n_temps; t++)
            GIVE(temps[t]);
        if (l->grad_buffer >= 0) GIVE(l->grad_buffer);
    }
#undef TAKE
#undef GIVE
    net->n_grad_buffers = n_made;
    net->loss_din = net->layers[net->n_layers - 1].din_buffer[0];
}

int nn_describe(nn_net *net, const nn_spec *spec, int in_h, int in_w, int in_c, int classes,
                int fuse, char *err, size_t errlen) {
    memset(net, 0, sizeof *net);
    if (in_h < 1 || in_w < 1 || in_c < 1 || in_h > NN_MAX_INPUT_SIDE || in_w > NN_MAX_INPUT_SIDE ||
        in_c > NN_MAX_INPUT_CHANNELS || classes < 2 || classes > NN_MAX_CLASSES) {
        snprintf(err, errlen,
                 "inputs of %dx%dx%d and %d classes are outside what a network takes "
                 "(sides 1..%d, channels 1..%d, classes 2..%d)",
                 in_h, in_w, in_c, classes, NN_MAX_INPUT_SIDE, NN_MAX_INPUT_CHANNELS,
                 NN_MAX_CLASSES);
        return -1;
    }
    net->spec = *spec;
    net->fused = fuse;
    net->in_h = in_h, net->in_w = in_w, net->in_c = in_c;
    net->classes = classes;
    net->conv_chunk_bytes = 256 * 1024;
    nn_spec run = *spec;
    resolve_bias(&run);
    if (fuse) nn_spec_fuse(&run);
    net->n_layers = run.n;
    for (int i = 0; i < run.n; i++) {
        nn_layer *l = &net->layers[i];
        l->spec = run.layer[i];
        l->kind = nn_kinds[l->spec.kind];
        l->in = dims_of(net, l->spec.in[0]);
        l->in_size = (size_t)l->in.h * l->in.w * l->in.c;
        nn_dims in2 = dims_of(net, l->spec.n_in == 2 ? l->spec.in[1] : l->spec.in[0]);
        char why[256];
        if (l->kind->setup(net, l, &in2, why, sizeof why)) {
            snprintf(err, errlen, "layer %s (%s): %s", l->spec.name, nn_kind_name(l->spec.kind),
                     why);
            memset(net, 0, sizeof *net);
            return -1;
        }
        l->out_size = (size_t)l->out.h * l->out.w * l->out.c;
        if (l->out_size == 0) {
            snprintf(err, errlen,
                     "a %dx%d input is too small for this network: layer %s (%s) has nothing "
                     "left of it",
                     in_h, in_w, l->spec.name, nn_kind_name(l->spec.kind));
            memset(net, 0, sizeof *net);
            return -1;
        }
        for (int k = 0; k < l->spec.n_in; k++)
            if (l->spec.in[k] >= 0) net->layers[l->spec.in[k]].consumers++;
    }
    if (net->n_tensors > NN_MAX_TENSORS) {
        snprintf(err, errlen, "the network has more than %d tensors", NN_MAX_TENSORS);
        memset(net, 0, sizeof *net);
        return -1;
    }
    plan_gradients(net);
    return 0;
}

/* Every buffer of the network starts on a cache line, and so does every
 * tensor in the arena: a 64-byte vector load from a 16-byte-aligned malloc
 * block spans two lines, and the single-sample GEMVs, which stream weights
 * from L2, ran 1.3x slower for it. */
#define NN_ALIGN 64
static void *alloc_aligned(size_t bytes) {
    void *p = NULL;
    return posix_memalign(&p, NN_ALIGN, bytes ? bytes : NN_ALIGN) ? NULL : p;
}

static size_t round_floats(size_t n) {
    size_t per_line = NN_ALIGN / sizeof(float);
    return (n + per_line - 1) / per_line * per_line;
}

/* A buffer nn_allocate hands out: the address of the pointer that will
 * hold it (a float *, uint8_t * or void *, written with memcpy) and its size. */
typedef struct {
    void *slot;
    size_t bytes;
} alloc_request;

/* Everything a described network allocates for max_batch samples on
 * `threads` threads, with the sizes computed before any allocation, so that
 * a description that asks for too much is refused with nothing allocated.
 * Returns the number of requests (at most cap), and *total their bytes
 * (saturating). */
static int plan_buffers(nn_net *net, alloc_request *req, int cap, size_t *total) {
    int n = 0, max_batch = net->max_batch;
    double sum = 0.0; /* in double: a hostile description must not wrap size_t */
#define REQUEST(ptr, count, unit)                                                                  \
    do {                                                                                           \
        double bytes_ = (double)(count) * (double)(unit);                                          \
        sum += bytes_;                                                                             \
        if (n < cap && bytes_ < 0x1p62)                                                            \
            req[n++] = (alloc_request){(void *)&(ptr), (size_t)bytes_};                            \
    } while (0)
    double arena = 0;
    for (int i = 0; i < net->n_tensors; i++)
        arena += 4.0 * (double)round_floats(net->tensors[i].size);
    net->arena_size = arena < 0x1p60 ? (size_t)arena : 0;
    REQUEST(net->arena, arena, sizeof(float));
    size_t largest = (size_t)net->in_h * net->in_w * net->in_c, thread_floats = 0, work = 0;
    for (int i = 0; i < net->n_layers; i++) {
        nn_layer *l = &net->layers[i];
        nn_plan need = {0, 0, 0, 0};
        if (l->kind->plan) l->kind->plan(net, l, &need);
        if (l->out_size > largest) largest = l->out_size;
        REQUEST(l->act, (double)max_batch * (double)l->out_size, sizeof(float));
        if (need.stat_floats) REQUEST(l->stats, need.stat_floats, sizeof(float));
        if (need.aux_bytes) REQUEST(l->aux, need.aux_bytes, 1);
        if (need.thread_floats > thread_floats) thread_floats = need.thread_floats;
        if (need.work_bytes > work) work = need.work_bytes;
    }
    for (int b = 0; b < net->n_grad_buffers; b++)
        REQUEST(net->grad_pool[b], (double)max_batch * (double)largest, sizeof(float));
    net->thread_floats = thread_floats;
    if (thread_floats) REQUEST(net->scratch, (double)net->threads * thread_floats, sizeof(float));
    net->work_bytes = work;
    if (work) REQUEST(net->work, work, 1);
    sum += (double)nn_one_bytes(net);
#undef REQUEST
    *total = sum < 0x1p63 ? (size_t)sum : SIZE_MAX;
    return n;
}

int nn_allocate(nn_net *net, int max_batch, int threads, char *err, size_t errlen) {
    if (max_batch < 1 || threads < 1 || threads > NN_MAX_THREADS) {
        snprintf(err, errlen, "a batch of %d on %d threads (batch >= 1, threads 1..%d)", max_batch,
                 threads, NN_MAX_THREADS);
        return -1;
    }
    net->max_batch = max_batch;
    net->threads = threads;
    alloc_request req[4 * NN_MAX_LAYERS + 16];
    size_t total;
    int n = plan_buffers(net, req, (int)(sizeof req / sizeof req[0]), &total);
    if (total > NN_MAX_NET_BYTES) {
        snprintf(err, errlen,
                 "the network for %dx%dx%d inputs in batches of %d would need %.1f GiB, "
                 "over the limit of %.0f GiB",
                 net->in_h, net->in_w, net->in_c, max_batch, (double)total / (1u << 30),
                 (double)NN_MAX_NET_BYTES / (1u << 30));
        return -1;
    }
    for (int i = 0; i < n; i++) {
        void *p = alloc_aligned(req[i].bytes);
        memcpy(req[i].slot, &p, sizeof p);
        if (!p) {
            snprintf(err, errlen, "out of memory building the network");
            nn_free(net);
            return -1;
        }
    }
    memset(net->arena, 0, net->arena_size * sizeof(float));
    float *p = net->arena;
    for (int i = 0; i < net->n_tensors; i++) {
        nn_tensor *t = &net->tensors[i];
        size_t stride = round_floats(t->size);
        t->value = p, t->grad = p + stride, t->m = p + 2 * stride, t->v = p + 3 * stride;
        p += 4 * stride;
    }
    if (nn_one_create(net)) {
        snprintf(err, errlen, "out of memory building the network");
        nn_free(net);
        return -1;
    }
    return 0;
}

int nn_build(nn_net *net, const nn_spec *spec, int in_h, int in_w, int in_c, int classes, int fuse,
             int max_batch, int threads, char *err, size_t errlen) {
    if (nn_describe(net, spec, in_h, in_w, in_c, classes, fuse, err, errlen)) return -1;
    return nn_allocate(net, max_batch, threads, err, errlen);
}

int nn_build_model(nn_net *net, const char *model, nn_bn_place place, int in_h, int in_w, int in_c,
                   int classes, int max_batch, int threads, char *err, size_t errlen) {
    nn_spec *spec = malloc(sizeof *spec);
    int rc = -1;
    if (!spec)
        snprintf(err, errlen, "out of memory");
    else if (!nn_spec_for_model(model, spec, err, errlen) &&
             !nn_spec_place_bn(spec, place, err, errlen))
        rc = nn_build(net, spec, in_h, in_w, in_c, classes, 1, max_batch, threads, err, errlen);
    free(spec);
    return rc;
}

void nn_free(nn_net *net) {
    for (int i = 0; i < net->n_layers; i++) {
        nn_layer *l = &net->layers[i];
        free(l->act), free(l->stats), free(l->aux);
    }
    for (int b = 0; b < net->n_grad_buffers; b++)
        free(net->grad_pool[b]);
    nn_one_free(net);
    free(net->arena), free(net->scratch), free(net->work), free(net->comm_buffer);
    memset(net, 0, sizeof *net);
}

void nn_init_params(nn_net *net, uint64_t seed) {
    nn_rng rng;
    nn_rng_seed(&rng, seed);
    memset(net->arena, 0, net->arena_size * sizeof(float));
    for (int i = 0; i < net->n_layers; i++)
        if (net->layers[i].kind->init) net->layers[i].kind->init(&net->layers[i], &rng);
    net->adam_t = 0;
}

/* The network parallelises over slices of the batch itself and calls OpenBLAS
 * single-threaded from each slice: OpenBLAS's own threads would spin between
 * the many small GEMMs while our element-wise layers run, and two thread teams
 * on two cores fight each other. */
static int slice_count(const nn_net *net, int n) { return n < net->threads ? n : net->threads; }

static const float *act_of(const nn_net *net, const float *x, int i) {
    return i < 0 ? x : net->layers[i].act;
}

static nn_pass make_pass(nn_net *net, nn_layer *l, const float *x, int n, int training) {
    nn_pass p;
    memset(&p, 0, sizeof p);
    p.net = net, p.l = l, p.n = n, p.T = slice_count(net, n), p.training = training;
    for (int k = 0; k < l->spec.n_in; k++)
        p.in[k] = act_of(net, x, l->spec.in[k]);
    return p;
}

const float *nn_logits(const nn_net *net) {
    const nn_layer *loss = &net->layers[net->n_layers - 1];
    return net->layers[loss->spec.in[0]].act;
}

/* Part s of `parts` of layer i in test mode on n samples: its band of rows
 * (forward_part), or, for other kinds, sample slice s where there is one,
 * the whole batch's call on part 0. Returns -1 when the layer refused. */
static int forward_layer_part(nn_net *net, const float *x, int n, int i, int s, int parts) {
    nn_layer *l = &net->layers[i];
    nn_pass p = make_pass(net, l, x, n, 0);
    if (l->kind->forward_part)
        l->kind->forward_part(&p, s, parts);
    else if (l->kind->forward_batch)
        return s == 0 ? l->kind->forward_batch(&p) : 0;
    else if (s < p.T)
        l->kind->forward(&p, s, nn_slice_begin(n, p.T, s), nn_slice_begin(n, p.T, s + 1));
    return 0;
}

/* Test mode on fewer samples than threads (one sample through a CNN): one
 * parallel region for the whole network instead of one per layer, since
 * opening a region costs about as much as a small layer. Kinds with
 * forward_part run on every thread, each on its band of output rows; the
 * others on the threads of their sample slices. A barrier goes before a
 * layer only where it may read what another thread wrote: before every
 * layer but a band-local one, and before a band-local one that reads a
 * tensor not written band by band with its own rows. The numbers are
 * those of the layer-by-layer forward. */
static const float *forward_in_parts(nn_net *net, const float *x, int n) {
    const int parts = net->threads;
    unsigned char barrier[NN_MAX_LAYERS];
    int banded[NN_MAX_LAYERS]; /* rows of the bands a layer's output was written in, or 0 */
    for (int i = 0; i < net->n_layers; i++) {
        const nn_layer *l = &net->layers[i];
        banded[i] = l->kind->forward_part ? l->out.h : 0;
        barrier[i] = 0;
        for (int k = 0; k < l->spec.n_in; k++) {
            int j = l->spec.in[k];
            if (j >= 0 && !(l->kind->band_local && banded[j] == l->out.h)) barrier[i] = 1;
        }
    }
    int failed = 0;
#ifdef _OPENMP
#pragma omp parallel num_threads(parts)
    {
        const int s = omp_get_thread_num();
        for (int i = 0; i < net->n_layers; i++) {
            if (barrier[i]) {
                int stop;
#pragma omp barrier
#pragma omp atomic read
                stop = failed;
                if (stop) break;
            }
            if (forward_layer_part(net, x, n, i, s, parts)) {
#pragma omp atomic write
                failed = 1;
            }
        }
    }
#else
    (void)barrier;
    for (int i = 0; i < net->n_layers && !failed; i++)
        for (int s = 0; s < parts; s++)
            failed |= forward_layer_part(net, x, n, i, s, parts) != 0;
#endif
    return failed ? NULL : nn_logits(net);
}

const float *nn_forward(nn_net *net, const float *x, int n, int training) {
    if (n == 1 && !training && net->one) return nn_one_forward(net, x);
    if (n < net->threads && !training) return forward_in_parts(net, x, n);
    for (int i = 0; i < net->n_layers; i++) {
        nn_layer *l = &net->layers[i];
        nn_pass p = make_pass(net, l, x, n, training);
        if (l->kind->forward_batch) {
            if (l->kind->forward_batch(&p)) return NULL;
            continue;
        }
        if (p.T < net->threads && l->kind->forward_part) {
            int parts = net->threads;
#pragma omp parallel for num_threads(parts) schedule(static)
            for (int s = 0; s < parts; s++)
                l->kind->forward_part(&p, s, parts);
            continue;
        }
#pragma omp parallel for num_threads(p.T) schedule(static) if (p.T > 1)
        for (int s = 0; s < p.T; s++)
            l->kind->forward(&p, s, nn_slice_begin(n, p.T, s), nn_slice_begin(n, p.T, s + 1));
    }
    return nn_logits(net);
}

double nn_loss(nn_net *net, const uint8_t *labels, int n, int *correct) {
    nn_layer *l = &net->layers[net->n_layers - 1];
    nn_pass p = make_pass(net, l, NULL, n, 1);
    p.din[0] = net->grad_pool[net->loss_din];
    return l->kind->loss(&p, labels, correct);
}

/* sgd: the weight GEMMs accumulate into the momentum buffers (see
 * nn_backward_sgd); otherwise they overwrite the gradients. */
static int backward(nn_net *net, const float *x, int n, int sgd, float momentum) {
    for (int i = net->n_layers - 2; i >= 0; i--) {
        nn_layer *l = &net->layers[i];
        if (l->grad_buffer < 0) continue;
        nn_pass p = make_pass(net, l, x, n, 1);
        p.g = net->grad_pool[l->grad_buffer];
        for (int k = 0; k < l->spec.n_in; k++)
            p.din[k] = l->din_buffer[k] >= 0 ? net->grad_pool[l->din_buffer[k]] : NULL;
        if (l->weight) {
            p.dw = sgd ? l->weight->m : l->weight->grad;
            p.dw_beta = sgd ? momentum : 0.0f;
            l->weight->m_current = sgd;
        }
        if (l->kind->backward_batch) {
            if (l->kind->backward_batch(&p)) return -1;
        } else {
            for (int phase = 0; phase < l->kind->phases; phase++) {
#pragma omp parallel for num_threads(p.T) schedule(static) if (p.T > 1)
                for (int s = 0; s < p.T; s++)
                    l->kind->backward(&p, s, nn_slice_begin(n, p.T, s),
                                      nn_slice_begin(n, p.T, s + 1), phase);
            }
        }
        for (int k = 0; k < l->spec.n_in; k++) {
            if (l->add_to[k] < 0) continue;
            float *dst = net->grad_pool[l->add_to[k]];
            size_t size = net->layers[l->spec.in[k]].out_size;
#pragma omp parallel for num_threads(p.T) schedule(static) if (p.T > 1)
            for (int s = 0; s < p.T; s++) {
                size_t b0 = (size_t)nn_slice_begin(n, p.T, s),
                       b1 = (size_t)nn_slice_begin(n, p.T, s + 1);
                nn_add_rows(dst + b0 * size, p.din[k] + b0 * size, (b1 - b0) * size);
            }
        }
    }
    return 0;
}

int nn_backward(nn_net *net, const float *x, int n) { return backward(net, x, n, 0, 0.0f); }

int nn_backward_sgd(nn_net *net, const float *x, int n, float momentum) {
    return backward(net, x, n, 1, momentum);
}
