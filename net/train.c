#include "train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rng.h"

double nn_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void nn_csv_header(FILE *csv) {
    fprintf(csv, "run,epoch,train_loss,train_acc,test_acc,seconds,diverged\n");
}

double nn_evaluate(nn_net *net, const nn_data *data, int *predictions) {
    size_t in = (size_t)data->h * data->w, right = 0;
    for (size_t s = 0; s < data->count; s += (size_t)net->max_batch) {
        int n = (int)(data->count - s < (size_t)net->max_batch ? data->count - s
                                                               : (size_t)net->max_batch);
        const float *logits = nn_forward(net, data->x + s * in, n, 0);
        if (!logits) return NAN;
        for (int b = 0; b < n; b++) {
            int k = nn_argmax(logits + (size_t)b * net->classes, net->classes);
            right += k == data->y[s + (size_t)b];
            if (predictions) predictions[s + (size_t)b] = k;
        }
    }
    return (double)right / (double)data->count;
}

static void progress_bar(const char *label, int epoch, int epochs, size_t done, size_t total,
                         double loss) {
    int width = 30, fill = (int)((double)width * (double)done / (double)total);
    fprintf(stderr, "\r%s epoch %d/%d [", label, epoch, epochs);
    for (int i = 0; i < width; i++)
        fputc(i < fill ? '=' : ' ', stderr);
    fprintf(stderr, "] %3d%% loss %.4f", (int)(100.0 * (double)done / (double)total), loss);
    fflush(stderr);
}

void nn_train_result_free(nn_train_result *res) {
    free(res->record_step), free(res->record_loss), free(res->site_mean), free(res->site_std);
    res->record_step = res->record_loss = res->site_mean = res->site_std = NULL;
    res->records = 0;
}

void nn_augment_image(float *dst, const float *src, int h, int w, int dy, int dx, int flip,
                      float pad_value) {
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int sy = y + dy, sx = (flip ? w - 1 - x : x) + dx;
            dst[y * w + x] = sy >= 0 && sy < h && sx >= 0 && sx < w ? src[sy * w + sx] : pad_value;
        }
}

float nn_scheduled_lr(const nn_train_config *cfg, long t, long T) {
    float lr = cfg->opt.lr;
    long per_epoch = T / (cfg->epochs > 0 ? cfg->epochs : 1), warm = cfg->warmup_epochs * per_epoch;
    if (t < warm) return lr * (float)(t + 1) / (float)warm;
    if (cfg->schedule == NN_LR_COSINE && T > warm)
        return (float)(0.5 * lr *
                       (1.0 + cos(3.141592653589793 * (double)(t - warm) / (double)(T - warm))));
    if (cfg->schedule == NN_LR_STEP) {
        int epoch = per_epoch ? (int)(t / per_epoch) : 0;
        if (epoch >= cfg->epochs * 3 / 4) return lr * 0.01f;
        if (epoch >= cfg->epochs / 2) return lr * 0.1f;
    }
    return lr;
}

/* The layers recorded: dense and conv, but the last of them (the classifier). */
static int find_sites(const nn_net *net, int *site, nn_train_result *res) {
    int n = 0, last = -1;
    for (int i = 0; i < net->n_layers; i++)
        if (net->layers[i].weight) last = i;
    for (int i = 0; i < last && n < NN_MAX_SITES; i++)
        if (net->layers[i].weight) {
            snprintf(res->site_name[n], sizeof res->site_name[n], "%s", net->layers[i].spec.name);
            site[n++] = i;
        }
    return n;
}

static void record_sites(const nn_net *net, const int *site, int n_sites, int batch, double *mean,
                         double *std) {
    for (int k = 0; k < n_sites; k++) {
        const nn_layer *l = &net->layers[site[k]];
        size_t count = (size_t)batch * l->out_size;
        double sum = 0.0, sq = 0.0;
        for (size_t i = 0; i < count; i++)
            sum += l->act[i];
        double mu = sum / (double)count;
        for (size_t i = 0; i < count; i++)
            sq += (l->act[i] - mu) * (l->act[i] - mu);
        mean[k] = mu, std[k] = sqrt(sq / (double)count);
    }
}

/* Gradients go over in buckets of up to this many floats: one collective
 * per tensor paid its latency about 70 times a step for the residual CNN. */
#define NN_BUCKET_FLOATS ((size_t)1 << 20)

/* Sums bucket[0, used) over the processes and copies it back into the
 * gradients of tensors [first, last). */
static int flush_bucket(nn_net *net, float *bucket, size_t used, int first, int last) {
    if (used && net->comm->allreduce_floats(net->comm->ctx, bucket, used)) return -1;
    size_t at = 0;
    for (int i = first; i < last; i++) {
        nn_tensor *t = &net->tensors[i];
        if (!t->trainable || t->global) continue;
        memcpy(t->grad, bucket + at, t->size * sizeof(float));
        at += t->size;
    }
    return 0;
}

int nn_sum_gradients(nn_net *net, size_t bucket_floats) {
    size_t total = 0, most = bucket_floats ? bucket_floats : NN_BUCKET_FLOATS;
    for (int i = 0; i < net->n_tensors; i++)
        if (net->tensors[i].trainable && !net->tensors[i].global) total += net->tensors[i].size;
    size_t cap = total < most ? total : most;
    float *bucket = nn_comm_buffer(net, (cap ? cap : 1) * sizeof(float));
    if (!bucket) return -1;
    size_t used = 0;
    int first = 0, rc = 0;
    for (int i = 0; i < net->n_tensors && !rc; i++) {
        nn_tensor *t = &net->tensors[i];
        if (!t->trainable || t->global) continue;
        if (t->size > cap) { /* a tensor larger than a bucket goes alone, in place */
            rc = flush_bucket(net, bucket, used, first, i) ||
                 net->comm->allreduce_floats(net->comm->ctx, t->grad, t->size);
            used = 0, first = i + 1;
            continue;
        }
        if (used + t->size > cap) {
            rc = flush_bucket(net, bucket, used, first, i);
            used = 0, first = i;
        }
        memcpy(bucket + used, t->grad, t->size * sizeof(float));
        used += t->size;
    }
    if (!rc) rc = flush_bucket(net, bucket, used, first, net->n_tensors);
    return rc ? -1 : 0;
}

int nn_train(nn_net *net, const nn_data *train, const nn_data *test, const nn_train_config *cfg,
             nn_train_result *res, char *err, size_t errlen) {
    memset(res, 0, sizeof *res);
    size_t in = (size_t)train->h * train->w, N = train->count;
    if (cfg->batch > net->max_batch || train->h != net->in_h || train->w != net->in_w ||
        net->in_c != 1 || test->h != train->h || test->w != train->w) {
        snprintf(err, errlen,
                 "batches of %d %dx%d images (test images %dx%d) do not fit a network built "
                 "for batches of %d %dx%dx%d inputs",
                 cfg->batch, train->h, train->w, test->h, test->w, net->max_batch, net->in_h,
                 net->in_w, net->in_c);
        return -1;
    }
    int epochs = cfg->epochs < NN_MAX_EPOCHS ? cfg->epochs : NN_MAX_EPOCHS;
    long per_epoch = 0;
    for (size_t s = 0; s < N; s += (size_t)cfg->batch)
        per_epoch += N - s >= 2;
    long total_steps = per_epoch * epochs, step = 0;
    res->steps_per_epoch = per_epoch;
    int site[NN_MAX_SITES];
    long cap = cfg->record_every > 0 ? total_steps / cfg->record_every + 1 : 0;
    res->sites = cap ? find_sites(net, site, res) : 0;
    size_t *order = malloc((N ? N : 1) * sizeof(size_t));
    float *xb = malloc((size_t)cfg->batch * in * sizeof(float));
    uint8_t *yb = malloc((size_t)cfg->batch);
    if (cap) {
        res->record_step = malloc((size_t)cap * sizeof(double));
        res->record_loss = malloc((size_t)cap * sizeof(double));
        res->site_mean = malloc((size_t)(cap * (res->sites ? res->sites : 1)) * sizeof(double));
        res->site_std = malloc((size_t)(cap * (res->sites ? res->sites : 1)) * sizeof(double));
    }
    int rc = 0;
    if (!order || !xb || !yb ||
        (cap && (!res->record_step || !res->record_loss || !res->site_mean || !res->site_std))) {
        snprintf(err, errlen, "out of memory for the training batches");
        free(order), free(xb), free(yb);
        return -1;
    }
    nn_rng rng, aug_rng; /* augmentation draws apart: without it, the same batches as ever */
    nn_rng_seed(&rng, cfg->seed * 7919u + 17u);
    nn_rng_seed(&aug_rng, cfg->seed * 104729u + 7u);
    for (size_t i = 0; i < N; i++)
        order[i] = i;
    nn_optim opt = cfg->opt;
    int rank = net->comm ? net->comm->rank : 0, K = net->comm ? net->comm->size : 1;
    double record_loss = 0.0;
    long record_n = 0;
    for (int e = 0; e < epochs && !res->diverged; e++) {
        double t0 = nn_now(), loss_sum = 0.0;
        size_t seen = 0, right = 0;
        for (size_t i = N - 1; i > 0; i--) { /* Fisher-Yates */
            size_t j = (size_t)nn_rng_below(&rng, i + 1), t = order[i];
            order[i] = order[j], order[j] = t;
        }
        size_t steps = 0;
        for (size_t s = 0; s < N; s += (size_t)cfg->batch) {
            /* The global batch [s, s + n_global); this process's share of it is
             * [lo, hi) (all of it without a communicator). */
            int n_global = (int)(N - s < (size_t)cfg->batch ? N - s : (size_t)cfg->batch);
            if (n_global < (K > 2 ? K : 2)) break; /* batch statistics need two samples */
            int lo = (int)((int64_t)n_global * rank / K),
                hi = (int)((int64_t)n_global * (rank + 1) / K);
            int n = hi - lo;
            const nn_augment *aug = &cfg->augment;
            /* Every process draws the augmentation of the whole global batch, so
             * that its share is augmented as one process would augment it. */
            for (int b = 0; b < n_global; b++) {
                const float *src = train->x + order[s + (size_t)b] * in;
                int dy = 0, dx = 0, flip = 0;
                if (aug->pad > 0 || aug->flip) {
                    int span = 2 * aug->pad + 1;
                    dy = aug->pad ? (int)nn_rng_below(&aug_rng, (uint64_t)span) - aug->pad : 0;
                    dx = aug->pad ? (int)nn_rng_below(&aug_rng, (uint64_t)span) - aug->pad : 0;
                    flip = aug->flip && (nn_rng_next(&aug_rng) & 1);
                }
                if (b < lo || b >= hi) continue;
                if (aug->pad > 0 || aug->flip)
                    nn_augment_image(xb + (size_t)(b - lo) * in, src, train->h, train->w, dy, dx,
                                     flip, aug->pad_value);
                else
                    memcpy(xb + (size_t)(b - lo) * in, src, in * sizeof(float));
                yb[b - lo] = train->y[order[s + (size_t)b]];
            }
            int correct = 0;
            net->loss_batch = net->comm ? n_global : 0;
            if (!nn_forward(net, xb, n, 1)) {
                snprintf(err, errlen, "batch norm refused a training batch of %d", n);
                rc = -1;
                break;
            }
            double loss = nn_loss(net, yb, n, &correct);
            if (net->comm) { /* the global batch's mean loss and right answers */
                double totals[2] = {loss * n, (double)correct};
                if (net->comm->allreduce(net->comm->ctx, totals, 2)) {
                    snprintf(err, errlen, "the communication between processes failed");
                    rc = -1;
                    break;
                }
                loss = totals[0] / n_global, correct = (int)totals[1], n = n_global;
            }
            if (!isfinite(loss)) {
                res->diverged = 1;
                break;
            }
            if (cap && record_n == 0 && res->sites && res->records < cap)
                record_sites(net, site, res->sites, hi - lo,
                             res->site_mean + res->records * res->sites,
                             res->site_std + res->records * res->sites);
            /* With SGD on one process, the weight-gradient GEMMs write into the
             * momentum (nn_backward_sgd); with several, the gradients are summed
             * over the processes first. */
            int failed = net->comm ? nn_backward(net, xb, hi - lo) || nn_sum_gradients(net, 0)
                         : cfg->opt.kind == NN_SGD ? nn_backward_sgd(net, xb, n, cfg->opt.momentum)
                                                   : nn_backward(net, xb, n);
            if (failed) {
                snprintf(err, errlen,
                         "batch norm or the communication refused the backward pass "
                         "of a batch of %d",
                         n);
                rc = -1;
                break;
            }
            opt.lr = nn_scheduled_lr(cfg, step, total_steps);
            nn_step(net, &opt);
            step++;
            if (cap) {
                record_loss += loss, record_n++;
                if (record_n == cfg->record_every && res->records < cap) {
                    res->record_step[res->records] = (double)step;
                    res->record_loss[res->records++] = record_loss / (double)record_n;
                    record_loss = 0.0, record_n = 0;
                }
            }
            loss_sum += loss * n, seen += (size_t)n, right += (size_t)correct;
            if (cfg->progress && (++steps % 20 == 0 || s + (size_t)n >= N))
                progress_bar(cfg->label, e + 1, epochs, s + (size_t)n, N, loss_sum / (double)seen);
        }
        if (cfg->progress) fputc('\n', stderr);
        if (rc) break;
        double secs = nn_now() - t0;
        res->train_loss[e] = seen ? loss_sum / (double)seen : NAN;
        res->train_acc[e] = seen ? (double)right / (double)seen : 0.0;
        res->test_acc[e] = res->diverged ? NAN : nn_evaluate(net, test, NULL);
        res->seconds[e] = secs;
        res->epochs_done = e + 1;
        if (res->diverged) res->train_loss[e] = NAN;
        if (cfg->log)
            fprintf(
                cfg->log,
                "%s epoch %2d  train loss %-8.4f train acc %6.2f%%  test acc %6.2f%%  %.1fs%s\n",
                cfg->label, e + 1, res->train_loss[e], 100.0 * res->train_acc[e],
                100.0 * res->test_acc[e], secs,
                res->diverged ? "  DIVERGED (non-finite loss)" : "");
        if (cfg->csv)
            fprintf(cfg->csv, "%s,%d,%.6g,%.6g,%.6g,%.3f,%d\n", cfg->label, e + 1,
                    res->train_loss[e], res->train_acc[e], res->test_acc[e], secs, res->diverged);
    }
    free(order), free(xb), free(yb);
    return rc;
}
