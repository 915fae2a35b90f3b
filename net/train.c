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
    size_t *order = malloc((N ? N : 1) * sizeof(size_t));
    float *xb = malloc((size_t)cfg->batch * in * sizeof(float));
    uint8_t *yb = malloc((size_t)cfg->batch);
    int rc = 0;
    if (!order || !xb || !yb) {
        snprintf(err, errlen, "out of memory for the training batches");
        free(order), free(xb), free(yb);
        return -1;
    }
    nn_rng rng;
    nn_rng_seed(&rng, cfg->seed * 7919u + 17u);
    for (size_t i = 0; i < N; i++)
        order[i] = i;
    int epochs = cfg->epochs < NN_MAX_EPOCHS ? cfg->epochs : NN_MAX_EPOCHS;
    for (int e = 0; e < epochs && !res->diverged; e++) {
        double t0 = nn_now(), loss_sum = 0.0;
        size_t seen = 0, right = 0;
        for (size_t i = N - 1; i > 0; i--) { /* Fisher-Yates */
            size_t j = (size_t)nn_rng_below(&rng, i + 1), t = order[i];
            order[i] = order[j], order[j] = t;
        }
        size_t steps = 0;
        for (size_t s = 0; s < N; s += (size_t)cfg->batch) {
            int n = (int)(N - s < (size_t)cfg->batch ? N - s : (size_t)cfg->batch);
            if (n < 2) break; /* batch statistics need two samples */
            for (int b = 0; b < n; b++) {
                memcpy(xb + (size_t)b * in, train->x + order[s + (size_t)b] * in,
                       in * sizeof(float));
                yb[b] = train->y[order[s + (size_t)b]];
            }
            int correct = 0;
            if (!nn_forward(net, xb, n, 1)) {
                snprintf(err, errlen, "batch norm refused a training batch of %d", n);
                rc = -1;
                break;
            }
            double loss = nn_loss(net, yb, n, &correct);
            if (!isfinite(loss)) {
                res->diverged = 1;
                break;
            }
            if (cfg->opt.kind == NN_SGD ? nn_backward_sgd(net, xb, n, cfg->opt.momentum)
                                        : nn_backward(net, xb, n)) {
                snprintf(err, errlen, "batch norm refused the backward pass of a batch of %d", n);
                rc = -1;
                break;
            }
            nn_step(net, &cfg->opt);
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
