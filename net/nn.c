/* The network: construction, forward, loss, backward and optimizer step. */
#include "nn.h"

#include <cblas.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gemv.h"
#include "ops.h"
#include "rng.h"
#include "team.h"

#ifdef _OPENMP
#include <omp.h>
#endif

/* One per thread of the single-sample path (forward_one), a cache line each. */
struct nn_one_sync {
    _Alignas(64) atomic_uint stage; /* the last stage whose partials this thread published */
};

static nn_tensor *add_tensor(nn_net *net, const char *name, int rank, const int64_t *shape,
                             int trainable) {
    nn_tensor *t = &net->tensors[net->n_tensors++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->rank = rank;
    t->size = 1;
    for (int i = 0; i < rank; i++)
        t->shape[i] = shape[i], t->size *= (size_t)shape[i];
    t->trainable = trainable;
    return t;
}

static nn_layer *add_layer(nn_net *net, nn_kind kind, int out_h, int out_w, int out_c) {
    nn_layer *prev = net->n_layers ? &net->layers[net->n_layers - 1] : NULL;
    nn_layer *l = &net->layers[net->n_layers++];
    memset(l, 0, sizeof *l);
    l->kind = kind;
    l->in_h = prev ? prev->out_h : net->in_h;
    l->in_w = prev ? prev->out_w : net->in_w;
    l->in_c = prev ? prev->out_c : net->in_c;
    l->out_h = out_h, l->out_w = out_w, l->out_c = out_c;
    l->in_size = (size_t)l->in_h * l->in_w * l->in_c;
    l->out_size = (size_t)out_h * out_w * out_c;
    return l;
}

static void add_dense(nn_net *net, int units, int with_bias) {
    char name[48];
    int idx = net->n_layers;
    nn_layer *l = add_layer(net, NN_DENSE, 1, 1, units);
    int64_t wshape[2] = {(int64_t)l->in_size, units};
    snprintf(name, sizeof name, "layers.%d.weight", idx);
    l->weight = add_tensor(net, name, 2, wshape, 1);
    if (with_bias) {
        snprintf(name, sizeof name, "layers.%d.bias", idx);
        l->bias = add_tensor(net, name, 1, wshape + 1, 1);
    }
}

static void add_conv(nn_net *net, int channels, int with_bias) {
    char name[48];
    int idx = net->n_layers;
    nn_layer *prev = idx ? &net->layers[idx - 1] : NULL;
    int h = prev ? prev->out_h : net->in_h, w = prev ? prev->out_w : net->in_w;
    nn_layer *l = add_layer(net, NN_CONV3X3, h, w, channels);
    /* [kh][kw][in_c][out_c]: one row of the GEMM's B per im2col column. */
    int64_t wshape[4] = {3, 3, l->in_c, channels};
    snprintf(name, sizeof name, "layers.%d.weight", idx);
    l->weight = add_tensor(net, name, 4, wshape, 1);
    if (with_bias) {
        snprintf(name, sizeof name, "layers.%d.bias", idx);
        l->bias = add_tensor(net, name, 1, wshape + 3, 1);
    }
}

static void add_simple(nn_net *net, nn_kind kind) {
    nn_layer *prev = &net->layers[net->n_layers - 1];
    if (kind == NN_MAXPOOL2)
        add_layer(net, kind, prev->out_h / 2, prev->out_w / 2, prev->out_c);
    else
        add_layer(net, kind, prev->out_h, prev->out_w, prev->out_c);
}

static void add_batchnorm(nn_net *net) {
    char name[48];
    int idx = net->n_layers;
    add_simple(net, NN_BATCHNORM);
    nn_layer *l = &net->layers[idx];
    int64_t c = l->out_c;
    snprintf(name, sizeof name, "layers.%d.gamma", idx);
    l->gamma = add_tensor(net, name, 1, &c, 1);
    snprintf(name, sizeof name, "layers.%d.beta", idx);
    l->beta = add_tensor(net, name, 1, &c, 1);
    snprintf(name, sizeof name, "layers.%d.running_mean", idx);
    l->run_mean = add_tensor(net, name, 1, &c, 0);
    snprintf(name, sizeof name, "layers.%d.running_var", idx);
    l->run_var = add_tensor(net, name, 1, &c, 0);
}

/* A linear map followed by its activation, with BN where asked. */
static void add_block(nn_net *net, int conv, int width) {
    int bn_before = net->bn == NN_BN_BEFORE_RELU;
    if (conv)
        add_conv(net, width, !bn_before);
    else
        add_dense(net, width, !bn_before);
    if (bn_before) add_batchnorm(net);
    add_simple(net, NN_RELU);
    if (net->bn == NN_BN_AFTER_RELU) add_batchnorm(net);
}

/* Samples per im2col chunk (net->conv_chunk_bytes): a whole slice's rows,
 * megabytes, would go out to L3 and back between im2col and the GEMM. */
static int conv_chunk(const nn_net *net, const nn_layer *l) {
    size_t per_sample = (size_t)l->out_h * l->out_w * 9 * l->in_c * sizeof(float);
    if (per_sample == 0 || per_sample >= net->conv_chunk_bytes) return 1;
    return (int)(net->conv_chunk_bytes / per_sample);
}

/* Slice s's im2col scratch: conv_chunk samples' rows. */
static float *conv_scratch(const nn_net *net, const nn_layer *l, int s) {
    return l->col + (size_t)s * conv_chunk(net, l) * l->out_h * l->out_w * 9 * l->in_c;
}

static bnorm_shape bn_shape(const nn_layer *l, int n) {
    if (l->out_h == 1 && l->out_w == 1) return bnorm_shape_nc(n, l->out_c);
    return bnorm_shape_nhwc(n, l->out_h, l->out_w, l->out_c);
}

static bnorm_params bn_params(const nn_net *net, const nn_layer *l, int n) {
    bnorm_params p = bnorm_params_default(); /* decay 0.9 = PyTorch momentum 0.1 */
    /* A dense layer's batch (64 x 256 floats) is done before a thread team
     * would have started; a conv layer's (64 x 28 x 28 x 32) is worth splitting. */
    p.threads = (size_t)n * l->out_size >= 65536 ? net->threads : 1;
    return p;
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
/* The CPUs this process may run on (at least 1). */
static int available_cpus(void) {
#ifdef _OPENMP
    int n = omp_get_num_procs();
#else
    long n = sysconf(_SC_NPROCESSORS_ONLN);
#endif
    return n > 1 ? (int)n : 1;
}

static size_t round_floats(size_t n) {
    size_t per_line = NN_ALIGN / sizeof(float);
    return (n + per_line - 1) / per_line * per_line;
}

int nn_describe(nn_net *net, const char *arch, nn_bn_place bn, int in_h, int in_w, int in_c,
                int classes, char *err, size_t errlen) {
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
    snprintf(net->arch, sizeof net->arch, "%s", arch);
    net->bn = bn;
    net->in_h = in_h, net->in_w = in_w, net->in_c = in_c;
    net->classes = classes;
    net->conv_chunk_bytes = 256 * 1024;
    if (strcmp(arch, "mlp") == 0) {
        add_block(net, 0, 256);
        add_block(net, 0, 256);
    } else if (strcmp(arch, "cnn") == 0) {
        add_block(net, 1, 32);
        add_simple(net, NN_MAXPOOL2);
        add_block(net, 1, 64);
        add_simple(net, NN_MAXPOOL2);
        add_block(net, 0, 128);
    } else {
        snprintf(err, errlen, "unknown model '%s' (expected mlp or cnn)", arch);
        memset(net, 0, sizeof *net);
        return -1;
    }
    add_dense(net, classes, 1);
    for (int i = 0; i < net->n_layers; i++)
        if (net->layers[i].out_size == 0) {
            snprintf(err, errlen,
                     "a %dx%d input is too small for the %s network: its pooling leaves "
                     "nothing (at least 4x4 needed)",
                     in_h, in_w, arch);
            memset(net, 0, sizeof *net);
            return -1;
        }
    return 0;
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
    int n = 0, max_batch = net->max_batch, threads = net->threads;
    double sum = 0.0; /* in double: a hostile description must not wrap size_t */
#define REQUEST(ptr, count, unit)                                                                  \
    do {                                                                                           \
        double bytes_ = (double)(count) * (double)(unit);                                          \
        sum += bytes_;                                                                             \
        if (n < cap && bytes_ < 0x1p62)                                                            \
            req[n++] = (alloc_request){(void *)&(ptr), (size_t)bytes_};                            \
    } while (0)
    size_t arena = 0;
    for (int i = 0; i < net->n_tensors; i++)
        arena += 4 * round_floats(net->tensors[i].size);
    net->arena_size = arena;
    REQUEST(net->arena, arena, sizeof(float));
    size_t largest = (size_t)net->in_h * net->in_w * net->in_c, ws_need = 0, most_conv = 0;
    int has_conv = 0;
    for (int i = 0; i < net->n_layers; i++) {
        nn_layer *l = &net->layers[i];
        if (l->out_size > largest) largest = l->out_size;
        REQUEST(l->out, (double)max_batch * (double)l->out_size, sizeof(float));
        if (l->kind == NN_CONV3X3) {
            has_conv = 1;
            if (l->weight->size > most_conv) most_conv = l->weight->size;
            double rows = (double)threads * conv_chunk(net, l) * l->out_h * l->out_w;
            REQUEST(l->col, rows * 9 * l->in_c, sizeof(float));
        }
        if (l->kind == NN_MAXPOOL2) REQUEST(l->argmax, (double)max_batch * l->out_size, 1);
        if (l->kind == NN_BATCHNORM) {
            REQUEST(l->save_mean, l->out_c, sizeof(float));
            REQUEST(l->save_invstd, l->out_c, sizeof(float));
            bnorm_shape s = bn_shape(l, max_batch);
            bnorm_params p = bn_params(net, l, max_batch);
            size_t need = 0;
            if (bnorm_workspace_size(&s, &p, &need) != BNORM_OK) sum += 0x1p63;
            if (need > ws_need) ws_need = need;
        }
    }
    REQUEST(net->grad_a, (double)max_batch * largest, sizeof(float));
    REQUEST(net->grad_b, (double)max_batch * largest, sizeof(float));
    REQUEST(net->probs, (double)max_batch * net->classes, sizeof(float));
    net->bn_ws_size = ws_need;
    if (ws_need) REQUEST(net->bn_ws, ws_need, 1);
    if (threads > 1 && has_conv)
        REQUEST(net->wgrad_partial, (double)(threads - 1) * most_conv, sizeof(float));
    if (!has_conv) { /* the single-sample path: see forward_one */
        size_t one = 64;
        for (int i = 0; i < net->n_layers; i++) {
            nn_layer *l = &net->layers[i];
            bnorm_shape s = bnorm_shape_nc(1, l->out_c);
            bnorm_params p = bnorm_params_default();
            size_t need;
            if (bnorm_workspace_size(&s, &p, &need) == BNORM_OK && need > one) one = need;
            if (l->kind == NN_DENSE) {
                net->one_stages += i < net->n_layers - 1; /* see forward_one_worker */
                net->one_partial_stride += round_floats((size_t)l->out_c);
            }
        }
        net->one_ws_size = (one + 63) / 64 * 64;
        REQUEST(net->one_ws, threads, net->one_ws_size);
        REQUEST(net->one_partial, (double)threads * net->one_partial_stride, sizeof(float));
        REQUEST(net->one_sync, threads, sizeof(struct nn_one_sync));
    }
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
    alloc_request req[4 * 32 + 16];
    size_t total;
    int n = plan_buffers(net, req, (int)(sizeof req / sizeof req[0]), &total);
    if (total > NN_MAX_NET_BYTES) {
        snprintf(err, errlen,
                 "the %s network for %dx%dx%d inputs in batches of %d would need %.1f GiB, "
                 "over the limit of %.0f GiB",
                 net->arch, net->in_h, net->in_w, net->in_c, max_batch, (double)total / (1u << 30),
                 (double)NN_MAX_NET_BYTES / (1u << 30));
        return -1;
    }
    for (int i = 0; i < n; i++) {
        void *p = alloc_aligned(req[i].bytes);
        memcpy(req[i].slot, &p, sizeof p);
        if (!p) {
            snprintf(err, errlen, "out of memory building the %s network", net->arch);
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
    if (net->one_ws) {
        net->one_workers = threads < available_cpus() ? threads : available_cpus();
        for (int t = 0; t < threads; t++)
            atomic_init(&net->one_sync[t].stage, 0u);
    }
    return 0;
}

int nn_build(nn_net *net, const char *arch, nn_bn_place bn, int in_h, int in_w, int in_c,
             int classes, int max_batch, int threads, char *err, size_t errlen) {
    if (nn_describe(net, arch, bn, in_h, in_w, in_c, classes, err, errlen)) return -1;
    return nn_allocate(net, max_batch, threads, err, errlen);
}

void nn_free(nn_net *net) {
    for (int i = 0; i < net->n_layers; i++) {
        nn_layer *l = &net->layers[i];
        free(l->out), free(l->col), free(l->argmax), free(l->save_mean), free(l->save_invstd);
    }
    free(net->arena), free(net->grad_a), free(net->grad_b), free(net->probs), free(net->bn_ws);
    nn_team_stop(net->one_team);
    free(net->one_ws), free(net->one_partial), free(net->one_sync), free(net->wgrad_partial);
    memset(net, 0, sizeof *net);
}

void nn_init_params(nn_net *net, uint64_t seed) {
    nn_rng rng;
    nn_rng_seed(&rng, seed);
    memset(net->arena, 0, net->arena_size * sizeof(float));
    for (int i = 0; i < net->n_layers; i++) {
        nn_layer *l = &net->layers[i];
        if (l->weight) {
            size_t fan_in = l->weight->size / (size_t)l->out_c;
            float std = sqrtf(2.0f / (float)fan_in);
            for (size_t k = 0; k < l->weight->size; k++)
                l->weight->value[k] = std * (float)nn_rng_normal(&rng);
        }
        if (l->gamma) {
            for (int c = 0; c < l->out_c; c++)
                l->gamma->value[c] = 1.0f, l->run_var->value[c] = 1.0f;
            l->bn_steps = 0;
        }
    }
    net->adam_t = 0;
}

/* The network parallelises over slices of the batch itself and calls OpenBLAS
 * single-threaded from each slice: OpenBLAS's own threads would spin between
 * the many small GEMMs while our element-wise layers run, and two thread teams
 * on two cores fight each other. Slice s of T covers samples [n*s/T, n*(s+1)/T). */
static int slice_count(const nn_net *net, int n) { return n < net->threads ? n : net->threads; }
static int slice_begin(int n, int T, int s) { return (int)((int64_t)n * s / T); }

/* The forward of a non-BN layer on samples [b0, b1). */
static void layer_forward_slice(const nn_net *net, nn_layer *l, const float *in, int s, int b0,
                                int b1) {
    int n = b1 - b0;
    size_t pix = (size_t)l->out_h * l->out_w;
    switch (l->kind) {
    case NN_DENSE: {
        float *out = l->out + (size_t)b0 * l->out_c;
        if (n == 1) /* sgemm would first pack all of W; sgemv streams it once */
            cblas_sgemv(CblasRowMajor, CblasTrans, (int)l->in_size, l->out_c, 1.0f,
                        l->weight->value, l->out_c, in + (size_t)b0 * l->in_size, 1, 0.0f, out, 1);
        else
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, l->out_c, (int)l->in_size,
                        1.0f, in + (size_t)b0 * l->in_size, (int)l->in_size, l->weight->value,
                        l->out_c, 0.0f, out, l->out_c);
        if (l->bias) nn_add_bias(out, l->bias->value, (size_t)n, l->out_c);
        break;
    }
    case NN_CONV3X3: {
        int K = 9 * l->in_c, step = conv_chunk(net, l);
        float *col = conv_scratch(net, l, s);
        for (int c0 = b0; c0 < b1; c0 += step) {
            int m = b1 - c0 < step ? b1 - c0 : step;
            nn_im2col3x3(col, in + (size_t)c0 * l->in_size, m, l->in_h, l->in_w, l->in_c);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)(m * pix), l->out_c, K,
                        1.0f, col, K, l->weight->value, l->out_c, 0.0f,
                        l->out + (size_t)c0 * l->out_size, l->out_c);
        }
        if (l->bias)
            nn_add_bias(l->out + (size_t)b0 * l->out_size, l->bias->value, (size_t)n * pix,
                        l->out_c);
        break;
    }
    case NN_MAXPOOL2:
        nn_maxpool_forward(l->out + (size_t)b0 * l->out_size, l->argmax + (size_t)b0 * l->out_size,
                           in + (size_t)b0 * l->in_size, n, l->in_h, l->in_w, l->in_c);
        break;
    case NN_RELU:
        nn_relu_forward(l->out + (size_t)b0 * l->out_size, in + (size_t)b0 * l->in_size,
                        (size_t)n * l->out_size);
        break;
    case NN_BATCHNORM: break; /* whole-batch statistics: see nn_forward */
    }
}

/* One sample in test mode through a dense-only network. The work is cut in
 * T = net->threads slices: slice s owns a range of every dense layer's input
 * rows, the same range of units of the layer before. Its worker streams that
 * block of each weight matrix (from its own L2, call after call) into a
 * partial sum of all outputs. Once every worker has published its partials
 * for a layer, each adds up the partials of its slices' units, and carries
 * them through the bias, test-mode BN and ReLU, which work unit by unit, so
 * they are the next dense layer's rows of the same slices. Only the partial
 * sums cross cores, and a worker waits on per-worker counters, not on an
 * OpenMP barrier: here a barrier costs about 1 us, a core-to-core handoff
 * about 0.25 us.
 *
 * Workers: one per slice, but no more than the CPUs (spinning workers that
 * share a core take turns in scheduler time slices); worker w runs slices
 * w, w + W, ... The numbers depend on T only: an output is the partials of
 * the T slices added in slice order, each partial in row order. */
/* Waits until workers [0, W) have all published stage `target`. */
static void wait_for_stage(struct nn_one_sync *sync, int W, unsigned target) {
    for (int t = 0; t < W; t++)
        nn_wait_counter(&sync[t].stage, target);
}

/* Out[c0..c1) of a dense layer: the T slices' partials in slice order, plus
 * the bias. */
static void sum_partials(const nn_net *net, nn_layer *l, const float *partials, int c0, int c1) {
    size_t stride = net->one_partial_stride;
    for (int c = c0; c < c1; c++) {
        float sum = partials[c];
        for (int t = 1; t < net->threads; t++)
            sum += partials[(size_t)t * stride + c];
        l->out[c] = l->bias ? sum + l->bias->value[c] : sum;
    }
}

typedef struct {
    nn_net *net;
    const float *x;
    unsigned base; /* this call's first stage number */
    int failed;
} one_job;

/* The share of worker w of W. A network that ends in a dense layer (every
 * one built here) leaves that layer's partials to be summed after the
 * workers are done, which spares one handoff. */
static void forward_one_worker(one_job *job, int w, int W) {
    nn_net *net = job->net;
    const int T = net->threads;
    void *ws = (char *)net->one_ws + (size_t)w * net->one_ws_size;
    float *partials = net->one_partial;
    unsigned stage = job->base;
    const float *in = job->x;
    for (int i = 0; i < net->n_layers; i++) {
        nn_layer *l = &net->layers[i];
        if (l->kind == NN_DENSE) {
            for (int s = w; s < T; s += W)
                nn_gemv_rows(l->weight->value, l->out_c, in, slice_begin((int)l->in_size, T, s),
                             slice_begin((int)l->in_size, T, s + 1), l->out_c,
                             partials + (size_t)s * net->one_partial_stride);
            if (i == net->n_layers - 1) break;
            stage++;
            if (W > 1) {
                atomic_store_explicit(&net->one_sync[w].stage, stage, memory_order_release);
                wait_for_stage(net->one_sync, W, stage);
            }
            for (int s = w; s < T; s += W)
                sum_partials(net, l, partials, slice_begin(l->out_c, T, s),
                             slice_begin(l->out_c, T, s + 1));
            partials += round_floats((size_t)l->out_c); /* each stage has its own */
        } else {
            for (int s = w; s < T; s += W) {
                int c0 = slice_begin(l->out_c, T, s), c1 = slice_begin(l->out_c, T, s + 1);
                if (c1 == c0) continue;
                if (l->kind == NN_RELU) {
                    for (int c = c0; c < c1; c++)
                        l->out[c] = in[c] > 0.0f ? in[c] : 0.0f;
                    continue;
                }
                bnorm_shape sh = bnorm_shape_nc(1, c1 - c0);
                bnorm_params p = bnorm_params_default();
                if (bnorm_forward_inference(&sh, &p, in + c0, l->gamma->value + c0,
                                            l->beta->value + c0, l->run_mean->value + c0,
                                            l->run_var->value + c0, l->out + c0, ws,
                                            net->one_ws_size) != BNORM_OK) {
#pragma omp atomic write
                    job->failed = 1;
                }
            }
        }
        in = l->out;
    }
}

static void one_job_worker(void *arg, int w, int W) { forward_one_worker(arg, w, W); }

/* Workers: a team of persistent threads (team.h), started at the first call,
 * since an OpenMP region costs about as much as the whole pass; OpenMP only
 * where the team could not be started. */
static int forward_one(nn_net *net, const float *x) {
    one_job job = {net, x, net->one_stage, 0};
    net->one_stage += (unsigned)net->one_stages;
    if (net->one_team && !nn_team_alive(net->one_team)) { /* inherited through fork() */
        nn_team_stop(net->one_team);
        net->one_team = NULL;
    }
    if (net->one_workers > 1 && !net->one_team && !net->one_team_failed) {
        net->one_team = nn_team_start(net->one_workers);
        net->one_team_failed = net->one_team == NULL;
    }
    if (net->one_workers <= 1) {
        forward_one_worker(&job, 0, 1);
    } else if (net->one_team) {
        nn_team_run(net->one_team, one_job_worker, &job);
    } else {
#pragma omp parallel num_threads(net->one_workers)
        {
            int w = 0, W = 1;
#ifdef _OPENMP
            w = omp_get_thread_num(), W = omp_get_num_threads();
#endif
            forward_one_worker(&job, w, W);
        }
    }
    nn_layer *last = &net->layers[net->n_layers - 1];
    if (last->kind == NN_DENSE)
        sum_partials(net, last,
                     net->one_partial + net->one_partial_stride - round_floats((size_t)last->out_c),
                     0, last->out_c);
    return job.failed ? -1 : 0;
}

const float *nn_forward(nn_net *net, const float *x, int n, int training) {
    if (n == 1 && !training && net->one_ws)
        return forward_one(net, x) ? NULL : net->layers[net->n_layers - 1].out;
    const float *in = x;
    int T = slice_count(net, n);
    for (int i = 0; i < net->n_layers; i++) {
        nn_layer *l = &net->layers[i];
        if (l->kind != NN_BATCHNORM) {
#pragma omp parallel for num_threads(T) schedule(static) if (T > 1)
            for (int s = 0; s < T; s++)
                layer_forward_slice(net, l, in, s, slice_begin(n, T, s), slice_begin(n, T, s + 1));
        } else {
            bnorm_shape s = bn_shape(l, n);
            bnorm_params p = bn_params(net, l, n);
            bnorm_status st;
            if (training) {
                bnorm_running_stats run = {l->run_mean->value, l->run_var->value, l->bn_steps};
                st = bnorm_forward_training(&s, &p, in, l->gamma->value, l->beta->value, l->out,
                                            l->save_mean, l->save_invstd, &run, net->bn_ws,
                                            net->bn_ws_size);
                l->bn_steps = run.count;
            } else {
                st = bnorm_forward_inference(&s, &p, in, l->gamma->value, l->beta->value,
                                             l->run_mean->value, l->run_var->value, l->out,
                                             net->bn_ws, net->bn_ws_size);
            }
            if (st != BNORM_OK) return NULL;
        }
        in = l->out;
    }
    return in;
}

double nn_loss(nn_net *net, const uint8_t *labels, int n, int *correct) {
    const float *logits = net->layers[net->n_layers - 1].out;
    int K = net->classes, right = 0;
    double loss = 0.0;
    for (int b = 0; b < n; b++) {
        const float *z = logits + (size_t)b * K;
        float *p = net->probs + (size_t)b * K;
        float zmax = z[0];
        for (int k = 1; k < K; k++)
            zmax = z[k] > zmax ? z[k] : zmax;
        double sum = 0.0;
        for (int k = 0; k < K; k++)
            sum += exp((double)z[k] - zmax);
        for (int k = 0; k < K; k++)
            p[k] = (float)(exp((double)z[k] - zmax) / sum);
        loss += -((double)z[labels[b]] - zmax - log(sum));
        right += nn_argmax(z, K) == labels[b];
        float *g = net->grad_a + (size_t)b * K;
        for (int k = 0; k < K; k++)
            g[k] = (p[k] - (k == labels[b] ? 1.0f : 0.0f)) / (float)n;
    }
    if (correct) *correct = right;
    return loss / n;
}

/* Slice s of T of a non-BN layer's backward; dw = dW + beta * dw.
 * Phase 0, the weight gradient: a dense layer's rows of dw split over the
 * slices (no reduction needed, and each thread writes one contiguous block:
 * split by columns, the two threads' GEMMs wrote interleaved parts of every
 * row and ran no faster than one); a conv's split by samples (see below).
 * Phase 1: the input gradient of the slice's samples. A conv's phase 1
 * also adds up the partial weight gradients that every slice's phase 0
 * writes, so its phases run one after the other; phase -1 runs both for the
 * other kinds. */
static void layer_backward_slice(const nn_net *net, nn_layer *l, const float *in, const float *g,
                                 float *din, int need_din, float *dw, float beta, int n, int T,
                                 int s, int phase) {
    int b0 = slice_begin(n, T, s), b1 = slice_begin(n, T, s + 1), nb = b1 - b0;
    size_t pix = (size_t)l->out_h * l->out_w;
    switch (l->kind) {
    case NN_DENSE:
        if (phase <= 0) {
            int r0 = slice_begin((int)l->in_size, T, s),
                r1 = slice_begin((int)l->in_size, T, s + 1);
            if (r1 > r0)
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r1 - r0, l->out_c, n, 1.0f,
                            in + r0, (int)l->in_size, g, l->out_c, beta, dw + (size_t)r0 * l->out_c,
                            l->out_c);
        }
        if (phase != 0 && need_din && nb)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nb, (int)l->in_size, l->out_c,
                        1.0f, g + (size_t)b0 * l->out_c, l->out_c, l->weight->value, l->out_c, 0.0f,
                        din + (size_t)b0 * l->in_size, (int)l->in_size);
        break;
    case NN_CONV3X3: {
        int K = 9 * l->in_c;
        size_t wsize = (size_t)K * l->out_c;
        float *partial = net->wgrad_partial;
        /* The weight gradient sums over every pixel of the batch, which is
         * long: each slice sums its own samples (slice 0 into dw with beta,
         * the others into partial buffers), so that each thread packs only
         * its part of both operands; phase 1 adds the partials in slice
         * order, each thread over its own rows of dw. */
        int step = conv_chunk(net, l);
        float *col = conv_scratch(net, l, s);
        if (phase == 0) {
            float *dst = s == 0 ? dw : partial + (size_t)(s - 1) * wsize;
            for (int c0 = b0; c0 < b1; c0 += step) {
                int m = b1 - c0 < step ? b1 - c0 : step;
                float keep = c0 > b0 ? 1.0f : s == 0 ? beta : 0.0f;
                nn_im2col3x3(col, in + (size_t)c0 * l->in_size, m, l->in_h, l->in_w, l->in_c);
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, l->out_c, (int)(m * pix),
                            1.0f, col, K, g + (size_t)c0 * pix * l->out_c, l->out_c, keep, dst,
                            l->out_c);
            }
        }
        if (phase == 1) {
            size_t r0 = (size_t)slice_begin(K, T, s), r1 = (size_t)slice_begin(K, T, s + 1);
            for (int t = 1; t < T; t++)
                nn_add_rows(dw + r0 * l->out_c, partial + (size_t)(t - 1) * wsize + r0 * l->out_c,
                            (r1 - r0) * l->out_c);
        }
        for (int c0 = b0; phase == 1 && need_din && c0 < b1; c0 += step) {
            int m = b1 - c0 < step ? b1 - c0 : step;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)(m * pix), K, l->out_c, 1.0f,
                        g + (size_t)c0 * pix * l->out_c, l->out_c, l->weight->value, l->out_c, 0.0f,
                        col, K);
            nn_col2im3x3(din + (size_t)c0 * l->in_size, col, m, l->in_h, l->in_w, l->in_c);
        }
        break;
    }
    case NN_MAXPOOL2:
        nn_maxpool_backward(din + (size_t)b0 * l->in_size, g + (size_t)b0 * l->out_size,
                            l->argmax + (size_t)b0 * l->out_size, nb, l->in_h, l->in_w, l->in_c);
        break;
    case NN_RELU:
        nn_relu_backward(din + (size_t)b0 * l->out_size, l->out + (size_t)b0 * l->out_size,
                         g + (size_t)b0 * l->out_size, (size_t)nb * l->out_size);
        break;
    case NN_BATCHNORM: break;
    }
}

/* fused: the weight GEMMs accumulate into the momentum buffers (see
 * nn_backward_sgd); otherwise they overwrite the gradients. */
static int backward(nn_net *net, const float *x, int n, int fused, float momentum) {
    float *g = net->grad_a, *din = net->grad_b;
    int T = slice_count(net, n);
    for (int i = net->n_layers - 1; i >= 0; i--) {
        nn_layer *l = &net->layers[i];
        const float *in = i ? net->layers[i - 1].out : x;
        int need_din = i > 0;
        if (l->kind != NN_BATCHNORM) {
            int first = l->kind == NN_CONV3X3 ? 0 : -1, last = l->kind == NN_CONV3X3 ? 1 : -1;
            float *dw = NULL, beta = 0.0f;
            if (l->weight) {
                dw = fused ? l->weight->m : l->weight->grad;
                beta = fused ? momentum : 0.0f;
                l->weight->m_current = fused;
            }
            for (int phase = first; phase <= last; phase++) {
#pragma omp parallel for num_threads(T) schedule(static) if (T > 1)
                for (int s = 0; s < T; s++)
                    layer_backward_slice(net, l, in, g, din, need_din, dw, beta, n, T, s, phase);
            }
            if (l->bias) nn_bias_grad(l->bias->grad, g, (size_t)n * l->out_h * l->out_w, l->out_c);
        } else {
            bnorm_shape s = bn_shape(l, n);
            bnorm_params p = bn_params(net, l, n);
            if (bnorm_backward_training(&s, &p, in, g, l->gamma->value, l->save_mean,
                                        l->save_invstd, din, l->gamma->grad, l->beta->grad,
                                        net->bn_ws, net->bn_ws_size) != BNORM_OK)
                return -1;
        }
        float *t = g;
        g = din;
        din = t;
    }
    return 0;
}

int nn_backward(nn_net *net, const float *x, int n) { return backward(net, x, n, 0, 0.0f); }

int nn_backward_sgd(nn_net *net, const float *x, int n, float momentum) {
    return backward(net, x, n, 1, momentum);
}

void nn_step(nn_net *net, const nn_optim *opt) {
    if (opt->kind == NN_ADAM) net->adam_t++;
    double c1 = 1.0 - pow(opt->beta1, (double)net->adam_t);
    double c2 = 1.0 - pow(opt->beta2, (double)net->adam_t);
    float lr_t = (float)(opt->lr * sqrt(c2) / c1), eps_t = opt->eps * (float)sqrt(c2);
    /* Element-wise, so every thread takes its share of every tensor and none
     * waits for another: a serial update here leaves the other thread
     * spinning against it for a tenth of the step. */
#pragma omp parallel num_threads(net->threads) if (net->threads > 1)
    for (int i = 0; i < net->n_tensors; i++) {
        nn_tensor *t = &net->tensors[i];
        if (!t->trainable) continue;
        if (opt->kind == NN_SGD && t->m_current) {
#pragma omp for schedule(static) nowait
            for (size_t k = 0; k < t->size; k++)
                t->value[k] -= opt->lr * t->m[k];
        } else if (opt->kind == NN_SGD) {
#pragma omp for schedule(static) nowait
            for (size_t k = 0; k < t->size; k++) {
                t->m[k] = opt->momentum * t->m[k] + t->grad[k];
                t->value[k] -= opt->lr * t->m[k];
            }
        } else {
#pragma omp for schedule(static) nowait
            for (size_t k = 0; k < t->size; k++) {
                t->m[k] = opt->beta1 * t->m[k] + (1.0f - opt->beta1) * t->grad[k];
                t->v[k] = opt->beta2 * t->v[k] + (1.0f - opt->beta2) * t->grad[k] * t->grad[k];
                t->value[k] -= lr_t * t->m[k] / (sqrtf(t->v[k]) + eps_t);
            }
        }
    }
}

nn_tensor *nn_find_tensor(nn_net *net, const char *name) {
    for (int i = 0; i < net->n_tensors; i++)
        if (strcmp(net->tensors[i].name, name) == 0) return &net->tensors[i];
    return NULL;
}

int nn_argmax(const float *v, int n) {
    int best = 0;
    for (int k = 1; k < n; k++)
        if (v[k] > v[best]) best = k;
    return best;
}
