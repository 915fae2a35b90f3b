/* The BN paper's Figure 1, reproduced (paper.h). */
#include "paper.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "atomic_file.h"
#include "chart.h"
#include "nn.h"
#include "rng.h"

typedef struct {
    long n;                           /* records */
    double *step, *acc, *p[3], *loss; /* loss: mean training loss since the record before */
    int diverged;
} paper_trace;

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* The q-th percentile (0..100) of n sorted values, linearly interpolated. */
static double percentile(const float *sorted, size_t n, double q) {
    double at = q / 100.0 * (double)(n - 1);
    size_t i = (size_t)at;
    double f = at - (double)i;
    return i + 1 < n ? sorted[i] * (1.0 - f) + sorted[i + 1] * f : sorted[n - 1];
}

/* The layer whose output the last sigmoid reads. */
static int sigmoid_input(const nn_net *net) {
    for (int i = net->n_layers - 1; i >= 0; i--)
        if (net->layers[i].spec.kind == NN_KIND_SIGMOID) return net->layers[i].spec.in[0];
    return -1;
}

/* Test accuracy, and the chosen unit's sigmoid input over the test set. */
static void record(nn_net *net, const nn_data *test, int unit, float *values, paper_trace *t,
                   long step, double loss) {
    int src = sigmoid_input(net);
    size_t in = (size_t)test->h * test->w, right = 0, k = 0;
    const nn_layer *l = &net->layers[src];
    for (size_t s = 0; s < test->count; s += (size_t)net->max_batch) {
        int n = (int)(test->count - s < (size_t)net->max_batch ? test->count - s
                                                               : (size_t)net->max_batch);
        const float *logits = nn_forward(net, test->x + s * in, n, 0);
        for (int b = 0; logits && b < n; b++) {
            right += nn_argmax(logits + (size_t)b * net->classes, net->classes) ==
                     test->y[s + (size_t)b];
            values[k++] = l->act[(size_t)b * l->out_size + (size_t)unit];
        }
    }
    qsort(values, k, sizeof *values, cmp_float);
    long r = t->n++;
    t->step[r] = (double)step;
    t->acc[r] = (double)right / (double)test->count;
    t->loss[r] = loss;
    static const double q[3] = {15, 50, 85};
    for (int j = 0; j < 3; j++)
        t->p[j][r] = k ? percentile(values, k, q[j]) : NAN;
}

static int train_one(const paper_config *cfg, const nn_spec *spec, const nn_data *train,
                     const nn_data *test, paper_trace *t, FILE *log, const char *name, char *err,
                     size_t errlen) {
    static nn_net net;
    int max_batch = 500 > cfg->batch ? 500 : cfg->batch;
    if (nn_build(&net, spec, train->h, train->w, 1, 10, 1, max_batch, cfg->threads, err, errlen))
        return -1;
    nn_init_params(&net, cfg->seed);
    float *values = malloc(test->count * sizeof(float) + sizeof(float));
    size_t in = (size_t)train->h * train->w, N = train->count, *order = malloc(N * sizeof *order);
    float *xb = malloc((size_t)cfg->batch * in * sizeof(float));
    uint8_t *yb = malloc((size_t)cfg->batch);
    int rc = -1;
    if (!values || !order || !xb || !yb) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    nn_optim opt = {NN_SGD, cfg->lr, cfg->momentum, 0.9f, 0.999f, 1e-8f, 0.0f};
    nn_rng rng;
    nn_rng_seed(&rng, cfg->seed * 7919u + 17u);
    for (size_t i = 0; i < N; i++)
        order[i] = i;
    size_t pos = N; /* shuffle before the first batch */
    double loss_sum = 0.0;
    long loss_n = 0;
    record(&net, test, cfg->unit, values, t, 0, NAN);
    for (long step = 1; step <= cfg->steps; step++) {
        if (pos + (size_t)cfg->batch > N) {
            for (size_t i = N - 1; i > 0; i--) {
                size_t j = (size_t)nn_rng_below(&rng, i + 1), tmp = order[i];
                order[i] = order[j], order[j] = tmp;
            }
            pos = 0;
        }
        for (int b = 0; b < cfg->batch; b++) {
            memcpy(xb + (size_t)b * in, train->x + order[pos + (size_t)b] * in, in * sizeof(float));
            yb[b] = train->y[order[pos + (size_t)b]];
        }
        pos += (size_t)cfg->batch;
        if (!nn_forward(&net, xb, cfg->batch, 1)) {
            snprintf(err, errlen, "batch norm refused a batch");
            goto done;
        }
        double loss = nn_loss(&net, yb, cfg->batch, NULL);
        if (!isfinite(loss)) {
            t->diverged = 1;
            fprintf(log, "%s: non-finite loss at step %ld; stopped\n", name, step);
            break;
        }
        loss_sum += loss, loss_n++;
        nn_backward_sgd(&net, xb, cfg->batch, opt.momentum);
        nn_step(&net, &opt);
        if (step % cfg->every == 0 || step == cfg->steps) {
            record(&net, test, cfg->unit, values, t, step, loss_sum / (double)loss_n);
            loss_sum = 0.0, loss_n = 0;
            long r = t->n - 1;
            if (step % (cfg->every * 10) == 0 || step == cfg->steps)
                fprintf(log,
                        "%-8s step %6ld  test acc %6.2f%%  sigmoid input p15 %7.3f  p50 %7.3f  p85 "
                        "%7.3f\n",
                        name, step, 100.0 * t->acc[r], t->p[0][r], t->p[1][r], t->p[2][r]);
        }
    }
    rc = 0;
done:
    free(values), free(order), free(xb), free(yb);
    nn_free(&net);
    return rc;
}

/* The first recorded step whose test accuracy reaches target, or -1. */
static long steps_to(const paper_trace *t, double target) {
    for (long r = 0; r < t->n; r++)
        if (t->acc[r] >= target) return (long)t->step[r];
    return -1;
}

/* The spread of the middle 70% (p85 - p15) over the records after the
 * first (the untrained network): its smallest and largest. */
static void spread(const paper_trace *t, double *lo, double *hi) {
    *lo = INFINITY, *hi = -INFINITY;
    for (long r = 1; r < t->n; r++) {
        double s = t->p[2][r] - t->p[0][r];
        *lo = fmin(*lo, s), *hi = fmax(*hi, s);
    }
}

int paper_run(const paper_config *cfg, const nn_data *train, const nn_data *test, FILE *log,
              char *err, size_t errlen) {
    const nn_builtin_model *m = nn_find_builtin_model("paper-mlp");
    static nn_spec specs[2];
    if (nn_spec_parse(m->text, strlen(m->text), m->name, &specs[1], err, errlen)) return -1;
    specs[0] = specs[1];
    if (nn_spec_place_bn(&specs[0], NN_BN_NONE, err, errlen)) return -1;
    long cap = cfg->steps / cfg->every + 2;
    paper_trace t[2];
    memset(t, 0, sizeof t);
    int rc = -1;
    for (int r = 0; r < 2; r++) {
        double **fields[] = {&t[r].step, &t[r].acc, &t[r].p[0], &t[r].p[1], &t[r].p[2], &t[r].loss};
        for (int f = 0; f < 6; f++)
            if (!(*fields[f] = calloc((size_t)cap, sizeof(double)))) {
                snprintf(err, errlen, "out of memory");
                goto done;
            }
    }
    const char *names[2] = {"without BN", "with BN"};
    fprintf(log,
            "paper: 784-100-100-100-10 sigmoid MLP, with and without BN, %ld steps of %d, SGD lr "
            "%g momentum %g, unit %d of the last hidden layer, %zu training and %zu test images\n",
            cfg->steps, cfg->batch, cfg->lr, cfg->momentum, cfg->unit, train->count, test->count);
    for (int r = 1; r >= 0; r--)
        if (train_one(cfg, &specs[r], train, test, &t[r], log, names[r], err, errlen)) goto done;

    char path[4096];
    snprintf(path, sizeof path, "%s/paper.csv", cfg->out);
    atomic_file csv;
    if (atomic_file_open(&csv, path, err, errlen)) goto done;
    fprintf(csv.f, "run,step,test_acc,train_loss,p15,p50,p85\n");
    for (int r = 0; r < 2; r++)
        for (long i = 0; i < t[r].n; i++)
            fprintf(csv.f, "%s,%.0f,%.4f,%.6g,%.6g,%.6g,%.6g\n", r ? "bn" : "plain", t[r].step[i],
                    t[r].acc[i], t[r].loss[i], t[r].p[0][i], t[r].p[1][i], t[r].p[2][i]);
    if (atomic_file_commit(&csv, err, errlen)) goto done;

    chart_series acc[2], pct[2][3];
    for (int r = 0; r < 2; r++) {
        acc[r] = (chart_series){names[r], (int)t[r].n, t[r].step, t[r].acc, r, 0};
        static const char *pn[3] = {"15th percentile", "50th (median)", "85th percentile"};
        for (int j = 0; j < 3; j++)
            pct[r][j] = (chart_series){pn[j],         (int)t[r].n - 1, t[r].step + 1,
                                       t[r].p[j] + 1, j == 1 ? 0 : 7,  j != 1};
    }
    char title_b[64], title_c[64];
    snprintf(title_b, sizeof title_b, "(b) without BN: unit %d's input", cfg->unit);
    snprintf(title_c, sizeof title_c, "(c) with BN: unit %d's input", cfg->unit);
    chart_panel panels[3] = {
        {"(a) test accuracy", "training steps", "test accuracy", 0, 1, acc, 2},
        {title_b, "training steps", "sigmoid input", 0, 0, pct[0], 3},
        {title_c, "training steps", "sigmoid input", 0, 0, pct[1], 3},
    };
    snprintf(path, sizeof path, "%s/paper", cfg->out);
    if (chart_write(path, panels, 3, 3, err, errlen)) goto done;

    fprintf(log, "\n%-12s %10s %10s %10s %10s %18s %16s\n", "run", "final acc", "best acc",
            "steps->80%", "steps->85%", "median: first->end", "p85-p15 range");
    for (int r = 1; r >= 0; r--) {
        double best = 0.0, lo, hi;
        for (long i = 0; i < t[r].n; i++)
            best = fmax(best, t[r].acc[i]);
        spread(&t[r], &lo, &hi);
        char median[40];
        snprintf(median, sizeof median, "%.3f -> %.3f", t[r].n > 1 ? t[r].p[1][1] : NAN,
                 t[r].p[1][t[r].n - 1]);
        char s80[16] = "never", s85[16] = "never";
        if (steps_to(&t[r], 0.80) >= 0) snprintf(s80, sizeof s80, "%ld", steps_to(&t[r], 0.80));
        if (steps_to(&t[r], 0.85) >= 0) snprintf(s85, sizeof s85, "%ld", steps_to(&t[r], 0.85));
        fprintf(log, "%-12s %9.2f%% %9.2f%% %10s %10s %18s %7.3f-%-8.3f%s\n", names[r],
                100.0 * t[r].acc[t[r].n - 1], 100.0 * best, s80, s85, median, lo, hi,
                t[r].diverged ? " (diverged)" : "");
    }
    fprintf(log,
            "(median: of the sigmoid's input, after the first %ld steps and at the end;\n"
            " p85-p15 range: the smallest and largest spread of its middle 70%%)\n\n"
            "figure: %s/paper.png (and .svg)\nCSV:    %s/paper.csv\n",
            cfg->every, cfg->out, cfg->out);
    rc = 0;
done:
    for (int r = 0; r < 2; r++) {
        free(t[r].step), free(t[r].acc), free(t[r].loss);
        for (int j = 0; j < 3; j++)
            free(t[r].p[j]);
    }
    return rc;
}
