/* One sample in test mode, split over threads by weight rows (one.h). */
#include "one.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kind.h"
#include "team.h"

#ifdef _OPENMP
#include <omp.h>
#endif

/* One per thread, a cache line each. */
struct one_sync {
    _Alignas(64) atomic_uint stage; /* the last stage whose partials this thread published */
};

struct nn_one {
    void *ws; /* one BN workspace per thread */
    size_t ws_size;
    float *partial;        /* [threads][stride]: each dense layer's partial sums */
    size_t stride;         /* floats: the dense layers' widths, each rounded to 16 */
    struct one_sync *sync; /* per-thread progress counters */
    int workers;           /* threads that run it: at most one per CPU */
    nn_team *team;         /* its threads, started at the first call */
    int team_failed;       /* the team could not be started: OpenMP instead */
    int stages;            /* handoffs per call: the dense layers but a last one */
    unsigned stage;        /* handoffs made by earlier calls */
};

static size_t round16(size_t n) { return (n + 15) / 16 * 16; }

/* The CPUs this process may run on (at least 1). */
static int available_cpus(void) {
#ifdef _OPENMP
    int n = omp_get_num_procs();
#else
    long n = sysconf(_SC_NPROCESSORS_ONLN);
#endif
    return n > 1 ? (int)n : 1;
}

/* The layers before the loss, each reading the one before it. */
static int applies(const nn_net *net) {
    for (int i = 0; i < net->n_layers - 1; i++) {
        const nn_layer *l = &net->layers[i];
        if (l->spec.n_in != 1 || l->spec.in[0] != i - 1) return 0;
        if (!l->kind->one_units && !l->kind->one_rows) return 0;
    }
    return net->n_layers >= 2;
}

/* Sizes: per-thread workspace, partial stride, stages. */
static void measure(const nn_net *net, size_t *ws_size, size_t *stride, int *stages) {
    size_t ws = 64;
    *stride = 0, *stages = 0;
    for (int i = 0; i < net->n_layers - 1; i++) {
        const nn_layer *l = &net->layers[i];
        bnorm_shape s = bnorm_shape_nc(1, (int64_t)l->out_size);
        bnorm_params p = bnorm_params_default();
        size_t need;
        if (bnorm_workspace_size(&s, &p, &need) == BNORM_OK && need > ws) ws = need;
        if (l->kind->one_rows) {
            *stages += i < net->n_layers - 2;
            *stride += round16(l->out_size);
        }
    }
    *ws_size = (ws + 63) / 64 * 64;
}

size_t nn_one_bytes(const nn_net *net) {
    if (!applies(net)) return 0;
    size_t ws, stride;
    int stages;
    measure(net, &ws, &stride, &stages);
    return (size_t)net->threads * (ws + stride * sizeof(float) + sizeof(struct one_sync));
}

int nn_one_create(nn_net *net) {
    if (!applies(net)) return 0;
    struct nn_one *o = calloc(1, sizeof *o);
    if (!o) return -1;
    net->one = o;
    measure(net, &o->ws_size, &o->stride, &o->stages);
    int T = net->threads;
    if (posix_memalign(&o->ws, 64, (size_t)T * o->ws_size)) o->ws = NULL;
    void *p = NULL, *q = NULL;
    if (posix_memalign(&p, 64, (size_t)T * o->stride * sizeof(float) + 64)) p = NULL;
    if (posix_memalign(&q, 64, (size_t)T * sizeof(struct one_sync))) q = NULL;
    o->partial = p, o->sync = q;
    if (!o->ws || !o->partial || !o->sync) return -1;
    o->workers = T < available_cpus() ? T : available_cpus();
    for (int t = 0; t < T; t++)
        atomic_init(&o->sync[t].stage, 0u);
    return 0;
}

void nn_one_free(nn_net *net) {
    struct nn_one *o = net->one;
    if (!o) return;
    nn_team_stop(o->team);
    free(o->ws), free(o->partial), free(o->sync), free(o);
    net->one = NULL;
}

void nn_one_set_workers(nn_net *net, int workers) {
    if (net->one && workers >= 1 && workers < net->one->workers) net->one->workers = workers;
}

typedef struct {
    nn_net *net;
    const float *x;
    unsigned base; /* this call's first stage number */
    int failed;
} one_job;

/* Waits until workers [0, W) have all published stage `target`. */
static void wait_for_stage(struct one_sync *sync, int W, unsigned target) {
    for (int t = 0; t < W; t++)
        nn_wait_counter(&sync[t].stage, target);
}

/* The share of worker w of W. A network that ends in a dense layer leaves
 * that layer's partials to be summed after the workers are done, which
 * spares one handoff. */
static void worker(one_job *job, int w, int W) {
    nn_net *net = job->net;
    struct nn_one *o = net->one;
    const int T = net->threads, last = net->n_layers - 2;
    void *ws = (char *)o->ws + (size_t)w * o->ws_size;
    float *partials = o->partial;
    unsigned stage = job->base;
    const float *in = job->x;
    for (int i = 0; i <= last; i++) {
        nn_layer *l = &net->layers[i];
        if (l->kind->one_rows) {
            for (int s = w; s < T; s += W)
                l->kind->one_rows(l, in, nn_slice_begin((int)l->in_size, T, s),
                                  nn_slice_begin((int)l->in_size, T, s + 1),
                                  partials + (size_t)s * o->stride);
            if (i == last) break;
            stage++;
            if (W > 1) {
                atomic_store_explicit(&o->sync[w].stage, stage, memory_order_release);
                wait_for_stage(o->sync, W, stage);
            }
            for (int s = w; s < T; s += W)
                l->kind->one_finish(l, partials, o->stride, T,
                                    nn_slice_begin((int)l->out_size, T, s),
                                    nn_slice_begin((int)l->out_size, T, s + 1));
            partials += round16(l->out_size); /* each stage has its own */
        } else {
            for (int s = w; s < T; s += W)
                if (l->kind->one_units(l, in, l->act, nn_slice_begin((int)l->out_size, T, s),
                                       nn_slice_begin((int)l->out_size, T, s + 1), ws,
                                       o->ws_size)) {
#pragma omp atomic write
                    job->failed = 1;
                }
        }
        in = l->act;
    }
}

static void team_worker(void *arg, int w, int W) { worker(arg, w, W); }

/* Workers: a team of persistent threads (team.h), started at the first call,
 * since an OpenMP region costs about as much as the whole pass; OpenMP only
 * where the team could not be started. */
const float *nn_one_forward(nn_net *net, const float *x) {
    struct nn_one *o = net->one;
    one_job job = {net, x, o->stage, 0};
    o->stage += (unsigned)o->stages;
    if (o->team && !nn_team_alive(o->team)) { /* inherited through fork() */
        nn_team_stop(o->team);
        o->team = NULL;
    }
    if (o->workers > 1 && !o->team && !o->team_failed) {
        o->team = nn_team_start(o->workers);
        o->team_failed = o->team == NULL;
    }
    if (o->workers <= 1) {
        worker(&job, 0, 1);
    } else if (o->team) {
        nn_team_run(o->team, team_worker, &job);
    } else {
#pragma omp parallel num_threads(o->workers)
        {
            int w = 0, W = 1;
#ifdef _OPENMP
            w = omp_get_thread_num(), W = omp_get_num_threads();
#endif
            worker(&job, w, W);
        }
    }
    nn_layer *last = &net->layers[net->n_layers - 2];
    if (last->kind->one_rows)
        last->kind->one_finish(last, o->partial + o->stride - round16(last->out_size), o->stride,
                               net->threads, 0, (int)last->out_size);
    return job.failed ? NULL : last->act;
}
