/* bnorm: train, evaluate and compare networks with batch normalization on
 * Fashion-MNIST (or any MNIST-format data). */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "atomic_file.h"
#include "chart.h"
#ifdef BNORM_WITH_MPI
#include "mpi_comm.h"
#endif
#include "checkpoint.h"
#include "dataset.h"
#include "idx.h"
#include "image.h"
#include "nn.h"
#include "paper.h"
#include "plot.h"
#include "train.h"

static const char *CLASS_NAMES[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                      "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

#define EVAL_BATCH     500
#define MAX_POSITIONAL 256

typedef struct {
    const char *model, *optimizer, *save, *log, *data, *out, *schedule, *preset, *lrs;
    int no_bn, bn_after, no_fuse, fold, flip, distributed, local_bn, epochs, batch, threads, index;
    double lr, high_lr, momentum, weight_decay;
    long long seed, train_limit, test_limit, steps, every, unit, crop_pad, warmup;
    int lr_given, momentum_given, model_given, epochs_given;
} options;

static void usage_train(FILE *f) {
    fprintf(f,
            "usage: bnorm train [--model NAME|FILE] [--no-bn] [--bn-after-activation]\n"
            "                   [--no-fuse] [--epochs N] [--batch N] [--lr X]\n"
            "                   [--optimizer sgd|adam] [--momentum X] [--weight-decay X]\n"
            "                   [--lr-schedule constant|cosine|step] [--warmup EPOCHS]\n"
            "                   [--crop-pad N] [--flip] [--seed N] [--threads N]\n"
            "                   [--save FILE] [--log FILE.csv] [--data DIR]\n"
            "                   [--train-limit N] [--test-limit N] [--distributed [--local-bn]]\n"
            "Trains with mini-batches and reports, per epoch, the training loss and accuracy\n"
            "and the test accuracy in test mode (running statistics). --model takes a\n"
            "built-in model ('bnorm models' lists them) or a network description file\n"
            "(docs/NETWORKS.md). BN followed by ReLU (or by an add and a ReLU) runs as one\n"
            "fused call unless --no-fuse. --crop-pad N trains on random crops of the images\n"
            "padded by N pixels, --flip on random mirror images; --lr-schedule cosine anneals\n"
            "the learning rate to 0 at the last step, step divides it by 10 at half and at\n"
            "three quarters of the epochs, after a linear warm-up over --warmup epochs.\n"
            "--distributed (under mpirun, in a build with -DBNORM_MPI=ON): data-parallel\n"
            "training, each process on its share of every batch of --batch, the BN layers\n"
            "synchronized over the processes (--local-bn: each share's own statistics), the\n"
            "gradients summed; the process of rank 0 logs and saves.\n"
            "Defaults: mlp, BN as described, 10 epochs, batch 64, SGD lr 0.01 momentum 0.9\n"
            "(Adam: lr 0.001), no weight decay, seed 1, threads = all cores,\n"
            "data " IDX_DEFAULT_DIR ".\n");
}
static void usage_eval(FILE *f) {
    fprintf(f, "usage: bnorm eval FILE [--data DIR] [--threads N] [--test-limit N]\n"
               "Test accuracy of a saved model in test mode, batched and one sample at a time\n"
               "with BN folded into the layer before it (the predictions must agree), and the\n"
               "confusion matrix.\n");
}
static void usage_predict(FILE *f) {
    fprintf(f, "usage: bnorm predict FILE IMAGE...   (28x28 grayscale PNG or PGM)\n"
               "       bnorm predict FILE --index K [--data DIR]   (test-set image K)\n"
               "Prints the predicted class and the probability of every class.\n");
}
static void usage_models(FILE *f) {
    fprintf(f,
            "usage: bnorm models\n"
            "Lists the built-in models with their parameter counts (28x28 inputs, 10 classes).\n");
}
static void usage_export(FILE *f) {
    fprintf(f, "usage: bnorm export --fold MODEL OUT\n"
               "Writes OUT, an inference model computing what MODEL computes with every batch\n"
               "norm that follows a dense or conv layer folded into that layer's weights and\n"
               "bias. eval and predict take it like any model.\n");
}
static void usage_compare(FILE *f) {
    fprintf(f, "usage: bnorm compare [--model NAME|FILE[,...]] [--lrs X,Y,...] [--epochs N]\n"
               "                     [--lr X] [--high-lr X] [--preset depth] [--batch N]\n"
               "                     [--seed N] [--threads N] [--out DIR] [--data DIR]\n"
               "                     [--train-limit N] [--test-limit N]\n"
               "Trains each network with and without batch norm at each learning rate; writes\n"
               "DIR/compare.csv (per epoch), DIR/compare-steps.csv (training loss and the mean\n"
               "and deviation of each dense/conv layer's output, BN's input, per 1/20 epoch) and\n"
               "the learning curves DIR/compare[-MODEL].png (and .svg), and prints what BN\n"
               "bought. Defaults: mlp, 10 epochs, lr 0.01 and --high-lr 0.5, out bnorm-compare.\n"
               "--preset depth: deep-mlp and deep-cnn (20 layers) at lr 0.01, 0.05 and 0.2,\n"
               "3 epochs on 10000 training images unless given.\n");
}
static void usage_paper(FILE *f) {
    fprintf(f, "usage: bnorm paper [--steps N] [--every N] [--batch N] [--lr X] [--momentum X]\n"
               "                   [--unit K] [--seed N] [--threads N] [--out DIR] [--data DIR]\n"
               "                   [--train-limit N] [--test-limit N]\n"
               "The BN paper's Figure 1 (Ioffe and Szegedy 2015): a 784-100-100-100-10 sigmoid\n"
               "MLP trained with and without BN by SGD; every N steps, the test accuracy and the\n"
               "15th/50th/85th percentiles of the input to sigmoid K of the last hidden layer\n"
               "over the test images. Writes DIR/paper.csv and DIR/paper.png (and .svg).\n"
               "Defaults: 50000 steps of 60, every 500, plain SGD (lr 0.1, momentum 0), unit 0,\n"
               "out bnorm-paper.\n");
}
static void usage(FILE *f) {
    fprintf(f,
            "usage: bnorm <command> [options]\n\n"
            "commands:\n"
            "  train     train a network with or without batch norm\n"
            "  models    list the built-in networks\n"
            "  export    fold batch norm into the layers before it, for inference\n"
            "  eval      test accuracy and confusion matrix of a saved model\n"
            "  predict   classify 28x28 grayscale images with a saved model\n"
            "  compare   with vs without BN at a normal and a high learning rate\n"
            "  paper     the BN paper's Figure 1: accuracy and a sigmoid's input over training\n\n"
            "'bnorm <command> --help' describes each.\n");
}

static int parse_int(const char *s, long long lo, long long hi, long long *out) {
    char *end;
    long long v = strtoll(s, &end, 10);
    if (*s == 0 || *end != 0 || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

static int parse_double(const char *s, double lo, double hi, double *out) {
    char *end;
    double v = strtod(s, &end);
    if (*s == 0 || *end != 0 || !(v >= lo && v <= hi)) return -1;
    *out = v;
    return 0;
}

/* Parses --options; positional arguments are collected in pos. Returns 0,
 * 1 for --help, or -1 after printing an error. */
static int parse_options(int argc, char **argv, options *o, const char **pos, int *npos) {
    *npos = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long long n = 0;
        double d = 0.0;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) return 1;
        if (strncmp(a, "--", 2) != 0) {
            if (*npos == MAX_POSITIONAL) {
                fprintf(stderr, "bnorm: more than %d arguments\n", MAX_POSITIONAL);
                return -1;
            }
            pos[(*npos)++] = a;
            continue;
        }
        if (!strcmp(a, "--no-bn")) {
            o->no_bn = 1;
            continue;
        }
        if (!strcmp(a, "--bn-after-activation")) {
            o->bn_after = 1;
            continue;
        }
        if (!strcmp(a, "--no-fuse")) {
            o->no_fuse = 1;
            continue;
        }
        if (!strcmp(a, "--fold")) {
            o->fold = 1;
            continue;
        }
        if (!strcmp(a, "--flip")) {
            o->flip = 1;
            continue;
        }
        if (!strcmp(a, "--distributed")) {
            o->distributed = 1;
            continue;
        }
        if (!strcmp(a, "--local-bn")) {
            o->local_bn = 1;
            continue;
        }
        if (!v) {
            fprintf(stderr, "bnorm: %s needs a value\n", a);
            return -1;
        }
        i++;
        /* Numeric options and their ranges, which an error message states. */
        static const struct {
            const char *name;
            long long lo, hi;
        } ints[] = {{"--epochs", 1, NN_MAX_EPOCHS},
                    {"--batch", 2, 4096},
                    {"--threads", 0, NN_MAX_THREADS},
                    {"--index", 0, 1 << 30},
                    {"--seed", 0, 1LL << 62},
                    {"--train-limit", 2, 1LL << 40},
                    {"--test-limit", 1, 1LL << 40},
                    {"--steps", 1, 100000000},
                    {"--every", 1, 100000000},
                    {"--unit", 0, 99},
                    {"--crop-pad", 0, 8},
                    {"--warmup", 0, NN_MAX_EPOCHS}};
        static const struct {
            const char *name;
            double lo, hi;
        } reals[] = {{"--lr", 1e-9, 100.0},
                     {"--high-lr", 1e-9, 100.0},
                     {"--momentum", 0.0, 0.9999},
                     {"--weight-decay", 0.0, 1.0}};
        for (size_t k = 0; k < sizeof ints / sizeof ints[0]; k++)
            if (!strcmp(a, ints[k].name)) {
                if (parse_int(v, ints[k].lo, ints[k].hi, &n)) {
                    fprintf(stderr,
                            "bnorm: invalid value '%s' for %s (expected an integer from %lld to "
                            "%lld)\n",
                            v, a, ints[k].lo, ints[k].hi);
                    return -1;
                }
            }
        for (size_t k = 0; k < sizeof reals / sizeof reals[0]; k++)
            if (!strcmp(a, reals[k].name)) {
                if (parse_double(v, reals[k].lo, reals[k].hi, &d)) {
                    fprintf(stderr,
                            "bnorm: invalid value '%s' for %s (expected a number from %g to %g)\n",
                            v, a, reals[k].lo, reals[k].hi);
                    return -1;
                }
            }
        if (!strcmp(a, "--model"))
            o->model = v, o->model_given = 1;
        else if (!strcmp(a, "--optimizer"))
            o->optimizer = v;
        else if (!strcmp(a, "--save"))
            o->save = v;
        else if (!strcmp(a, "--log"))
            o->log = v;
        else if (!strcmp(a, "--data"))
            o->data = v;
        else if (!strcmp(a, "--out"))
            o->out = v;
        else if (!strcmp(a, "--epochs"))
            o->epochs = (int)n, o->epochs_given = 1;
        else if (!strcmp(a, "--batch"))
            o->batch = (int)n;
        else if (!strcmp(a, "--threads"))
            o->threads = (int)n;
        else if (!strcmp(a, "--index"))
            o->index = (int)n;
        else if (!strcmp(a, "--seed"))
            o->seed = n;
        else if (!strcmp(a, "--train-limit"))
            o->train_limit = n;
        else if (!strcmp(a, "--test-limit"))
            o->test_limit = n;
        else if (!strcmp(a, "--steps"))
            o->steps = n;
        else if (!strcmp(a, "--every"))
            o->every = n;
        else if (!strcmp(a, "--unit"))
            o->unit = n;
        else if (!strcmp(a, "--crop-pad"))
            o->crop_pad = n;
        else if (!strcmp(a, "--warmup"))
            o->warmup = n;
        else if (!strcmp(a, "--lr-schedule"))
            o->schedule = v;
        else if (!strcmp(a, "--preset"))
            o->preset = v;
        else if (!strcmp(a, "--lrs"))
            o->lrs = v;
        else if (!strcmp(a, "--lr"))
            o->lr = d, o->lr_given = 1;
        else if (!strcmp(a, "--high-lr"))
            o->high_lr = d;
        else if (!strcmp(a, "--momentum"))
            o->momentum = d, o->momentum_given = 1;
        else if (!strcmp(a, "--weight-decay"))
            o->weight_decay = d;
        else {
            fprintf(stderr, "bnorm: unknown option %s\n", a);
            return -1;
        }
    }
    if (strcmp(o->optimizer, "sgd") && strcmp(o->optimizer, "adam")) {
        fprintf(stderr, "bnorm: --optimizer must be sgd or adam, not '%s'\n", o->optimizer);
        return -1;
    }
    if (strcmp(o->schedule, "constant") && strcmp(o->schedule, "cosine") &&
        strcmp(o->schedule, "step")) {
        fprintf(stderr, "bnorm: --lr-schedule must be constant, cosine or step, not '%s'\n",
                o->schedule);
        return -1;
    }
    if (o->no_bn && o->bn_after) {
        fprintf(stderr, "bnorm: --no-bn and --bn-after-activation exclude each other\n");
        return -1;
    }
    return 0;
}

static int resolve_threads(int t) {
    if (t > 0) return t;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > NN_MAX_THREADS ? NN_MAX_THREADS : (int)n;
}

typedef dataset loaded_data;

/* The processes of `bnorm train --distributed` (NULL otherwise). */
static nn_comm *world;

static int all_ok(int ok) {
#ifdef BNORM_WITH_MPI
    return mpi_comm_all_ok(world, ok);
#else
    return ok;
#endif
}

static void abort_all(int code) {
#ifdef BNORM_WITH_MPI
    mpi_comm_abort(code);
#endif
    exit(code);
}
static void free_loaded(loaded_data *ld) { dataset_free(ld); }

/* Loads the test set, and the training set when need_train. */
static int load_data(const options *o, loaded_data *ld, int need_train) {
    char err[1024];
    if (dataset_load(o->data ? o->data : IDX_DEFAULT_DIR, need_train, (size_t)o->train_limit,
                     (size_t)o->test_limit, ld, err, sizeof err)) {
        fprintf(stderr, "bnorm: %s\n", err);
        return -1;
    }
    return 0;
}

static void free_data(nn_data *d) {
    free(d->x), free(d->y);
    memset(d, 0, sizeof *d);
}

/* The network --model names, with BN where `place` puts it. Returns 0, or
 * the exit code after a message: 2 for a name that is no model, 1 for a
 * description file that cannot be used. */
static int model_spec(const char *model, nn_bn_place place, nn_spec *spec) {
    char err[1024];
    if (nn_spec_for_model(model, spec, err, sizeof err) ||
        nn_spec_place_bn(spec, place, err, sizeof err)) {
        fprintf(stderr, "bnorm: %s\n", err);
        return strchr(model, '/') || strchr(model, '.') ? 1 : 2;
    }
    return 0;
}

static const char *place_name(nn_bn_place place) {
    return place == NN_BN_NONE    ? "no BN"
           : place == NN_BN_AFTER ? "BN after the activation"
                                  : "BN as described";
}

static nn_optim make_optim(const options *o, double lr) {
    nn_optim opt = {NN_SGD, (float)lr, (float)o->momentum,    0.9f,
                    0.999f, 1e-8f,     (float)o->weight_decay};
    if (!strcmp(o->optimizer, "adam")) opt.kind = NN_ADAM;
    return opt;
}

/* The training protocol the options give, for a run labelled `label`. */
static nn_train_config train_config(const options *o, double lr, const dataset *ld, FILE *csv,
                                    const char *label) {
    nn_train_config cfg = {.epochs = o->epochs,
                           .batch = o->batch,
                           .opt = make_optim(o, lr),
                           .seed = (uint64_t)o->seed,
                           .progress = isatty(STDERR_FILENO),
                           .log = stdout,
                           .csv = csv,
                           .label = label};
    cfg.augment.pad = (int)o->crop_pad;
    cfg.augment.flip = o->flip;
    cfg.augment.pad_value = -ld->mean / ld->std; /* a black pixel, standardised */
    cfg.schedule = !strcmp(o->schedule, "cosine") ? NN_LR_COSINE
                   : !strcmp(o->schedule, "step") ? NN_LR_STEP
                                                  : NN_LR_CONSTANT;
    cfg.warmup_epochs = (int)o->warmup;
    return cfg;
}

static int cmd_train(int argc, char **argv, options *o) {
    const char *pos[MAX_POSITIONAL];
    int npos, r = parse_options(argc, argv, o, pos, &npos);
    if (r) return r > 0 ? (usage_train(stdout), 0) : (usage_train(stderr), 2);
    if (npos) {
        fprintf(stderr, "bnorm train: unexpected argument '%s'\n", pos[0]);
        return 2;
    }
    if (!o->lr_given) o->lr = strcmp(o->optimizer, "adam") ? 0.01 : 0.001;
    if (o->local_bn && !o->distributed) {
        fprintf(stderr, "bnorm: --local-bn goes with --distributed\n");
        return 2;
    }
    if (o->distributed && !world) {
        fprintf(stderr, "bnorm: --distributed needs a bnorm built with MPI (cmake -DBNORM_MPI=ON) "
                        "and started by mpirun\n");
        return 2;
    }
    int lead = !world || world->rank == 0; /* logs and saves */
    nn_bn_place bn = o->no_bn ? NN_BN_NONE : o->bn_after ? NN_BN_AFTER : NN_BN_KEEP;
    static nn_spec spec;
    int bad = model_spec(o->model, bn, &spec);
    if (bad) return bad;
    loaded_data ld = {0};
    int loaded = load_data(o, &ld, 1) == 0;
    if (world && !all_ok(loaded)) {
        if (loaded)
            fprintf(stderr, "bnorm: rank %d: another process could not load its data; stopping\n",
                    world->rank);
        free_loaded(&ld);
        return 1;
    }
    if (!loaded) return 1;
    if (world && o->batch < world->size) {
        if (lead)
            fprintf(stderr, "bnorm: a batch of %d cannot be shared by %d processes\n", o->batch,
                    world->size);
        free_loaded(&ld);
        return 2;
    }
    char err[1024];
    /* The log is written beside its final name and renamed into place at the
     * end, so that a reader never sees half of it. */
    atomic_file csv = {0};
    if (o->log && lead && atomic_file_open(&csv, o->log, err, sizeof err)) {
        fprintf(stderr, "bnorm: %s\n", err);
        free_loaded(&ld);
        return 1;
    }
    if (csv.f) nn_csv_header(csv.f);
    int threads = resolve_threads(o->threads);
    openblas_set_num_threads(1); /* the network splits batches itself */
    static nn_net net;
    int max_batch = o->batch > EVAL_BATCH ? o->batch : EVAL_BATCH;
    int fuse = !o->no_fuse;
    if (nn_build(&net, &spec, ld.train.h, ld.train.w, 1, 10, fuse, max_batch, threads, err,
                 sizeof err)) {
        fprintf(stderr, "bnorm: %s\n", err);
        atomic_file_abort(&csv);
        free_loaded(&ld);
        return 1;
    }
    nn_init_params(&net, (uint64_t)o->seed);
    net.comm = world, net.sync_bn = !o->local_bn;
    if (lead)
        printf("training %s (%s%s, %zu parameters), %zu training and %zu test images, batch %d, "
               "%s lr %g, %d threads\n",
               o->model, place_name(bn), fuse ? "" : ", not fused", nn_param_count(&net),
               ld.train.count, ld.test.count, o->batch, o->optimizer, o->lr, threads);
    if (lead && world)
        printf("data-parallel over %d processes, shares of %d-%d samples, %s\n", world->size,
               o->batch / world->size, (o->batch + world->size - 1) / world->size,
               o->local_bn ? "BN on each share alone (--local-bn)"
                           : "BN synchronized over the global batch");
    nn_train_config cfg = train_config(o, o->lr, &ld, csv.f, o->model);
    if (!lead) cfg.log = NULL, cfg.progress = 0;
    static nn_train_result res;
    int rc = 0;
    if (nn_train(&net, &ld.train, &ld.test, &cfg, &res, err, sizeof err)) {
        if (world) {
            /* The others wait in a collective: stop them all, with the reason. */
            fprintf(stderr, "bnorm: rank %d: %s; stopping every process\n", world->rank, err);
            fflush(stderr);
            abort_all(1);
        }
        fprintf(stderr, "bnorm: %s\n", err);
        atomic_file_abort(&csv);
        rc = 1;
    } else if (csv.f && atomic_file_commit(&csv, err, sizeof err)) {
        fprintf(stderr, "bnorm: %s\n", err);
        rc = 1;
    }
    if (rc == 0 && res.diverged) {
        if (lead)
            fprintf(stderr, "bnorm: training diverged (non-finite loss) in epoch %d\n",
                    res.epochs_done);
        rc = 1;
    } else if (o->save && rc == 0 && lead) {
        ckpt_info info;
        snprintf(info.model, sizeof info.model, "%s", o->model);
        info.pixel_mean = ld.mean, info.pixel_std = ld.std;
        if (ckpt_save(o->save, &net, &info, err, sizeof err)) {
            fprintf(stderr, "bnorm: %s\n", err);
            rc = 1;
        } else {
            printf("saved %s\n", o->save);
        }
    }
#ifdef BNORM_WITH_MPI
    if (world && lead && rc == 0) {
        double sync, grads, train = 0.0;
        mpi_comm_seconds(&sync, &grads);
        for (int e = 0; e < res.epochs_done; e++)
            train += res.seconds[e];
        long steps = res.steps_per_epoch * res.epochs_done;
        printf("rank 0: %.2f ms per step; in the collectives: BN synchronization %.3f ms "
               "(%.1f%%), gradient sums %.3f ms (%.1f%%)\n",
               1e3 * train / (double)steps, 1e3 * sync / (double)steps, 100.0 * sync / train,
               1e3 * grads / (double)steps, 100.0 * grads / train);
    }
#endif
    nn_train_result_free(&res);
    nn_free(&net);
    free_loaded(&ld);
    return rc;
}

static int load_model(const char *path, int max_batch, int threads, nn_net *net, ckpt_info *info) {
    char err[1024];
    if (ckpt_load(path, net, info, max_batch, threads, err, sizeof err)) {
        fprintf(stderr, "bnorm: %s\n", err);
        return -1;
    }
    if (net->classes != 10 || net->in_c != 1 || net->in_h > 64 || net->in_w > 64) {
        fprintf(stderr,
                "bnorm: %s: a model for %dx%dx%d inputs and %d classes; this tool "
                "handles 10-class grayscale images up to 64x64\n",
                path, net->in_h, net->in_w, net->in_c, net->classes);
        nn_free(net);
        return -1;
    }
    return 0;
}

/* The test images must be of the size the model was trained on. */
static int check_fits(const char *model, const nn_net *net, const nn_data *d, const options *o) {
    if (d->h == net->in_h && d->w == net->in_w) return 0;
    fprintf(stderr, "bnorm: %s takes %dx%d images, but the test images in %s are %dx%d\n", model,
            net->in_w, net->in_h, o->data ? o->data : IDX_DEFAULT_DIR, d->w, d->h);
    return -1;
}

static int cmd_eval(int argc, char **argv, options *o) {
    const char *pos[MAX_POSITIONAL];
    int npos, r = parse_options(argc, argv, o, pos, &npos);
    if (r) return r > 0 ? (usage_eval(stdout), 0) : (usage_eval(stderr), 2);
    if (npos != 1) {
        usage_eval(stderr);
        return 2;
    }
    int threads = resolve_threads(o->threads);
    openblas_set_num_threads(1); /* the network splits batches itself */
    static nn_net net, folded;
    ckpt_info info;
    char err[1024];
    if (load_model(pos[0], EVAL_BATCH, threads, &net, &info)) return 1;
    if (nn_fold(&net, &folded, 1, threads, err, sizeof err)) {
        fprintf(stderr, "bnorm: %s: %s\n", pos[0], err);
        nn_free(&net);
        return 1;
    }
    loaded_data ld = {0};
    ld.mean = info.pixel_mean, ld.std = info.pixel_std;
    if (load_data(o, &ld, 0)) {
        nn_free(&net), nn_free(&folded);
        return 1;
    }
    size_t n = ld.test.count;
    int *batched = malloc(n * sizeof(int)), *single = malloc(n * sizeof(int));
    if (check_fits(pos[0], &net, &ld.test, o) || !batched || !single) {
        if (!batched || !single) fprintf(stderr, "bnorm: out of memory\n");
        free(batched), free(single), nn_free(&net), nn_free(&folded), free_loaded(&ld);
        return 1;
    }
    double t0 = nn_now();
    double acc = nn_evaluate(&net, &ld.test, batched);
    double t1 = nn_now();
    size_t px = (size_t)ld.test.h * ld.test.w, right1 = 0, disagree = 0;
    for (size_t i = 0; i < n && acc == acc; i++) {
        const float *logits = nn_forward(&folded, ld.test.x + i * px, 1, 0);
        if (!logits) {
            acc = NAN;
            break;
        }
        single[i] = nn_argmax(logits, net.classes);
        right1 += single[i] == ld.test.y[i];
        disagree += single[i] != batched[i];
    }
    double t2 = nn_now();
    if (acc != acc) {
        fprintf(stderr, "bnorm: %s: batch norm refused the model's statistics\n", pos[0]);
        free(batched), free(single), nn_free(&net), nn_free(&folded), free_loaded(&ld);
        return 1;
    }
    int bn_layers = 0, bn_left = 0;
    for (int i = 0; i < net.spec.n; i++)
        bn_layers += net.spec.layer[i].kind == NN_KIND_BN;
    for (int i = 0; i < folded.spec.n; i++)
        bn_left += folded.spec.layer[i].kind == NN_KIND_BN;
    printf("model %s: %s, %d layers, %zu parameters, %d batch norm layers (%d folded for "
           "single samples)\n",
           pos[0], info.model[0] ? info.model : "?", net.spec.n, nn_param_count(&net), bn_layers,
           bn_layers - bn_left);
    printf("test accuracy (test mode, batches of %d): %.2f%% on %zu images (%.1f us/image)\n",
           EVAL_BATCH, 100.0 * acc, n, 1e6 * (t1 - t0) / (double)n);
    printf("test accuracy (one sample at a time, BN folded): %.2f%% (%.1f us/image)\n",
           100.0 * (double)right1 / (double)n, 1e6 * (t2 - t1) / (double)n);
    printf("batched and single-sample predictions %s (%zu differ)\n",
           disagree ? "DISAGREE" : "agree on every image", disagree);
    int conf[10][10] = {{0}};
    for (size_t i = 0; i < n; i++)
        conf[ld.test.y[i]][batched[i]]++;
    printf("\nconfusion matrix (rows: true class, columns: predicted)\n%-12s", "");
    for (int k = 0; k < 10; k++)
        printf(" %5d", k);
    printf("\n");
    for (int t = 0; t < 10; t++) {
        printf("%d %-10s", t, CLASS_NAMES[t]);
        for (int k = 0; k < 10; k++)
            printf(" %5d", conf[t][k]);
        printf("\n");
    }
    free(batched), free(single), nn_free(&net), nn_free(&folded);
    free_data(&ld.test);
    return disagree ? 1 : 0;
}

static void print_prediction(const char *what, const float *logits, int classes) {
    int best = nn_argmax(logits, classes);
    double sum = 0.0;
    for (int k = 0; k < classes; k++)
        sum += exp((double)logits[k] - logits[best]);
    printf("%s: %s (%.1f%%)\n", what, CLASS_NAMES[best], 100.0 / sum);
    for (int k = 0; k < classes; k++)
        printf("  %-12s %6.2f%%\n", CLASS_NAMES[k],
               100.0 * exp((double)logits[k] - logits[best]) / sum);
}

static int cmd_predict(int argc, char **argv, options *o) {
    const char *pos[MAX_POSITIONAL];
    o->index = -1;
    int npos, r = parse_options(argc, argv, o, pos, &npos);
    if (r) return r > 0 ? (usage_predict(stdout), 0) : (usage_predict(stderr), 2);
    if (npos < 1 || (npos == 1 && o->index < 0) || (npos > 1 && o->index >= 0)) {
        usage_predict(stderr);
        return 2;
    }
    static nn_net trained, net;
    ckpt_info info;
    char err[1024];
    openblas_set_num_threads(1);
    if (load_model(pos[0], 1, 1, &trained, &info)) return 1;
    /* One sample at a time, with BN folded into the layers before it. */
    int folded = nn_fold(&trained, &net, 1, 1, err, sizeof err);
    nn_free(&trained);
    if (folded) {
        fprintf(stderr, "bnorm: %s: %s\n", pos[0], err);
        return 1;
    }
    int rc = 0, h = net.in_h, w = net.in_w;
    float *px = malloc((size_t)h * w * sizeof(float));
    if (!px) {
        fprintf(stderr, "bnorm: out of memory\n");
        nn_free(&net);
        return 1;
    }
    if (o->index >= 0) {
        loaded_data ld = {0};
        ld.mean = info.pixel_mean, ld.std = info.pixel_std;
        if (load_data(o, &ld, 0)) {
            free(px), nn_free(&net);
            return 1;
        }
        const float *logits = NULL;
        if (check_fits(pos[0], &net, &ld.test, o)) {
            rc = 1;
        } else if ((size_t)o->index >= ld.test.count) {
            fprintf(stderr, "bnorm: --index %d is beyond the %zu test images\n", o->index,
                    ld.test.count);
            rc = 1;
        } else if (!(logits = nn_forward(&net, ld.test.x + (size_t)o->index * h * w, 1, 0))) {
            fprintf(stderr, "bnorm: %s: batch norm refused the model's statistics\n", pos[0]);
            rc = 1;
        } else {
            char what[64];
            snprintf(what, sizeof what, "test image %d (true class: %s)", o->index,
                     CLASS_NAMES[ld.test.y[o->index]]);
            print_prediction(what, logits, net.classes);
        }
        free_loaded(&ld);
    }
    for (int i = 1; i < npos; i++) {
        if (image_read_gray(pos[i], h, w, px, err, sizeof err)) {
            fprintf(stderr, "bnorm: %s\n", err);
            rc = 1;
            continue;
        }
        for (int k = 0; k < h * w; k++)
            px[k] = (px[k] / 255.0f - info.pixel_mean) / info.pixel_std;
        const float *logits = nn_forward(&net, px, 1, 0);
        if (!logits) {
            fprintf(stderr, "bnorm: %s: batch norm refused the model's statistics\n", pos[0]);
            rc = 1;
            break;
        }
        print_prediction(pos[i], logits, net.classes);
    }
    free(px);
    nn_free(&net);
    return rc;
}

/* The first step at the end of an epoch whose test accuracy reaches
 * target, or 0. */
static long steps_to(const nn_train_result *r, double target) {
    for (int e = 0; e < r->epochs_done; e++)
        if (r->test_acc[e] >= target) return (long)(e + 1) * r->steps_per_epoch;
    return 0;
}

#define MAX_RUNS 32

/* Splits a comma-separated list into at most cap items (in place). */
static int split_list(char *list, char **items, int cap) {
    int n = 0;
    for (char *tok = strtok(list, ","); tok && n < cap; tok = strtok(NULL, ","))
        items[n++] = tok;
    return n;
}

/* The charts of one model's runs: training loss per step, test accuracy per
 * epoch, and the spread of each dense/conv layer's output (BN's input, or
 * where BN would read) over training, with and without BN at the first
 * learning rate. */
static int compare_charts(const char *base, const char *model, const nn_train_result *res,
                          char (*labels)[64], const int *is_bn, int first, int count, char *err,
                          size_t errlen) {
    static chart_series loss[MAX_RUNS], acc[MAX_RUNS], sites[2][2][NN_MAX_SITES];
    static double epochs[NN_MAX_EPOCHS], *series[2][2][NN_MAX_SITES]; /* [bn][mean, std] */
    for (int e = 0; e < NN_MAX_EPOCHS; e++)
        epochs[e] = e + 1;
    int side_run[2] = {-1, -1};
    for (int k = 0; k < count; k++) {
        const nn_train_result *r = &res[first + k];
        loss[k] =
            (chart_series){labels[first + k], (int)r->records, r->record_step, r->record_loss, k,
                           !is_bn[first + k]};
        acc[k] = (chart_series){labels[first + k], r->epochs_done, epochs, r->test_acc, k,
                                !is_bn[first + k]};
        if (side_run[is_bn[first + k]] < 0) side_run[is_bn[first + k]] = first + k;
    }
    int rc = -1, n_sites[2] = {0, 0};
    for (int b = 0; b < 2; b++) {
        if (side_run[b] < 0) continue;
        const nn_train_result *r = &res[side_run[b]];
        n_sites[b] = r->sites;
        for (int q = 0; q < r->sites; q++)
            for (int v = 0; v < 2; v++) {
                double *y = series[b][v][q] = malloc(((size_t)r->records + 1) * sizeof(double));
                if (!y) goto done;
                for (long i = 0; i < r->records; i++)
                    y[i] = (v ? r->site_std : r->site_mean)[i * r->sites + q];
                /* The first and last layers named; colours run from blue to grey with depth. */
                sites[b][v][q] =
                    (chart_series){q == 0 || q == r->sites - 1 ? r->site_name[q] : NULL,
                                   (int)r->records,
                                   r->record_step,
                                   y,
                                   q * 7 / (r->sites > 1 ? r->sites - 1 : 1),
                                   0};
            }
    }
    char t1[128], t2[128];
    snprintf(t1, sizeof t1, "%s: training loss", model);
    snprintf(t2, sizeof t2, "%s: test accuracy", model);
    const char *stat = "over the batch, per layer";
    chart_panel panels[6] = {
        {t1, "training steps", "loss (mean of the steps recorded)", 1, 0, loss, count},
        {t2, "epoch", "test accuracy (test mode)", 0, 1, acc, count},
        {"with BN: std of BN's input", "training steps", stat, 1, 0, sites[1][1], n_sites[1]},
        {"without BN: std of the same layers", "training steps", stat, 1, 0, sites[0][1],
         n_sites[0]},
        {"with BN: mean of BN's input", "training steps", stat, 0, 0, sites[1][0], n_sites[1]},
        {"without BN: mean of the same layers", "training steps", stat, 0, 0, sites[0][0],
         n_sites[0]},
    };
    rc = chart_write(base, panels, 6, 2, err, errlen);
done:
    for (int b = 0; b < 2; b++)
        for (int v = 0; v < 2; v++)
            for (int q = 0; q < n_sites[b]; q++)
                free(series[b][v][q]), series[b][v][q] = NULL;
    return rc;
}

static int cmd_compare(int argc, char **argv, options *o) {
    const char *pos[MAX_POSITIONAL];
    int npos, r = parse_options(argc, argv, o, pos, &npos);
    if (r) return r > 0 ? (usage_compare(stdout), 0) : (usage_compare(stderr), 2);
    if (npos) {
        fprintf(stderr, "bnorm compare: unexpected argument '%s'\n", pos[0]);
        return 2;
    }
    /* The runs: every model, with and without BN, at every learning rate. */
    static char model_list[1024], lr_list[1024];
    char *models[8], *lr_items[8];
    double lrs[8];
    int depth = o->preset && !strcmp(o->preset, "depth");
    if (o->preset && !depth) {
        fprintf(stderr, "bnorm: --preset must be depth, not '%s'\n", o->preset);
        return 2;
    }
    snprintf(model_list, sizeof model_list, "%s",
             o->model_given ? o->model
             : depth        ? "deep-mlp,deep-cnn"
                            : o->model);
    if (o->lrs)
        snprintf(lr_list, sizeof lr_list, "%s", o->lrs);
    else if (depth)
        snprintf(lr_list, sizeof lr_list, "0.01,0.05,0.2");
    else
        snprintf(lr_list, sizeof lr_list, "%g,%g", o->lr_given ? o->lr : 0.01, o->high_lr);
    if (depth && !o->train_limit) o->train_limit = 10000;
    if (depth && !o->epochs_given) o->epochs = 3;
    int n_models = split_list(model_list, models, 8), n_lrs = split_list(lr_list, lr_items, 8);
    for (int i = 0; i < n_lrs; i++)
        if (parse_double(lr_items[i], 1e-9, 100.0, &lrs[i])) {
            fprintf(stderr, "bnorm: invalid learning rate '%s' in --lrs\n", lr_items[i]);
            return 2;
        }
    if (!n_models || !n_lrs) {
        fprintf(stderr, "bnorm: --model and --lrs need at least one item each\n");
        return 2;
    }
    static nn_spec specs[8][2];
    for (int m = 0; m < n_models; m++) {
        int bad = model_spec(models[m], NN_BN_KEEP, &specs[m][1]);
        if (!bad) bad = model_spec(models[m], NN_BN_NONE, &specs[m][0]);
        if (bad) return bad;
    }
    const char *out = o->out ? o->out : "bnorm-compare";
    char csv_path[4096], steps_path[4096], err[1024];
    if (mkdir_p(out, err, sizeof err)) {
        fprintf(stderr, "bnorm: %s\n", err);
        return 1;
    }
    snprintf(csv_path, sizeof csv_path, "%s/compare.csv", out);
    snprintf(steps_path, sizeof steps_path, "%s/compare-steps.csv", out);
    loaded_data ld = {0};
    if (load_data(o, &ld, 1)) return 1;
    atomic_file csv, steps;
    if (atomic_file_open(&csv, csv_path, err, sizeof err)) {
        fprintf(stderr, "bnorm: %s\n", err);
        free_loaded(&ld);
        return 1;
    }
    if (atomic_file_open(&steps, steps_path, err, sizeof err)) {
        fprintf(stderr, "bnorm: %s\n", err);
        atomic_file_abort(&csv);
        free_loaded(&ld);
        return 1;
    }
    nn_csv_header(csv.f);
    fprintf(steps.f, "run,step,train_loss,layer,input_mean,input_std\n");
    int threads = resolve_threads(o->threads);
    openblas_set_num_threads(1); /* the network splits batches itself */
    static nn_train_result res[MAX_RUNS];
    static char labels[MAX_RUNS][64];
    int is_bn[MAX_RUNS], n_runs = 0, failed = 0;
    int max_batch = o->batch > EVAL_BATCH ? o->batch : EVAL_BATCH;
    printf("compare: %s with and without BN, lr %s, %d epochs, batch %d, SGD momentum %.2f, %zu "
           "training images, %d threads\n",
           o->model_given || !depth ? o->model : "deep-mlp and deep-cnn", o->lrs ? o->lrs : "",
           o->epochs, o->batch, o->momentum, ld.train.count, threads);
    for (int m = 0; m < n_models && !failed; m++)
        for (int l = 0; l < n_lrs && !failed; l++)
            for (int bn = 1; bn >= 0 && !failed; bn--) {
                int run = n_runs++;
                snprintf(labels[run], sizeof labels[run], "%s %s lr=%g", models[m],
                         bn ? "BN" : "no-BN", lrs[l]);
                is_bn[run] = bn;
                static nn_net net;
                failed = nn_build(&net, &specs[m][bn], ld.train.h, ld.train.w, 1, 10, !o->no_fuse,
                                  max_batch, threads, err, sizeof err);
                if (failed) break;
                nn_init_params(&net, (uint64_t)o->seed);
                nn_train_config cfg = train_config(o, lrs[l], &ld, csv.f, labels[run]);
                long per_epoch = ((long)ld.train.count + o->batch - 1) / o->batch;
                cfg.record_every = (int)(per_epoch / 20 > 1 ? per_epoch / 20 : 1);
                failed = nn_train(&net, &ld.train, &ld.test, &cfg, &res[run], err, sizeof err);
                nn_free(&net);
                const nn_train_result *rr = &res[run];
                for (long i = 0; i < rr->records; i++)
                    for (int q = 0; q < (rr->sites ? rr->sites : 1); q++)
                        fprintf(steps.f, "%s,%.0f,%.6g,%s,%.6g,%.6g\n", labels[run],
                                rr->record_step[i], rr->record_loss[i],
                                rr->sites ? rr->site_name[q] : "",
                                rr->sites ? rr->site_mean[i * rr->sites + q] : NAN,
                                rr->sites ? rr->site_std[i * rr->sites + q] : NAN);
            }
    int ok = !failed;
    if (failed) {
        fprintf(stderr, "bnorm: %s\n", err);
        atomic_file_abort(&csv), atomic_file_abort(&steps);
    } else if (atomic_file_commit(&csv, err, sizeof err) ||
               atomic_file_commit(&steps, err, sizeof err)) {
        fprintf(stderr, "bnorm: %s\n", err);
        ok = 0;
    }
    char figures[MAX_RUNS][4200];
    int n_fig = 0;
    for (int m = 0; ok && m < n_models; m++) {
        if (n_models == 1)
            snprintf(figures[n_fig], sizeof figures[n_fig], "%s/compare", out);
        else
            snprintf(figures[n_fig], sizeof figures[n_fig], "%s/compare-%s", out, models[m]);
        if (compare_charts(figures[n_fig], models[m], res, labels, is_bn, m * n_lrs * 2, n_lrs * 2,
                           err, sizeof err)) {
            fprintf(stderr, "bnorm: %s\n", err);
            ok = 0;
        }
        n_fig++;
    }
    if (ok) {
        printf("\nwhat batch norm bought\n%-32s %10s %10s %11s %11s  %s\n", "run", "final acc",
               "best acc", "steps->80%", "steps->85%", "status");
        for (int run = 0; run < n_runs; run++) {
            const nn_train_result *rr = &res[run];
            char s80[24] = "never", s85[24] = "never";
            if (steps_to(rr, 0.80)) snprintf(s80, sizeof s80, "%ld", steps_to(rr, 0.80));
            if (steps_to(rr, 0.85)) snprintf(s85, sizeof s85, "%ld", steps_to(rr, 0.85));
            double final = rr->epochs_done ? rr->test_acc[rr->epochs_done - 1] : NAN, best = 0.0;
            for (int e = 0; e < rr->epochs_done; e++)
                if (rr->test_acc[e] > best) best = rr->test_acc[e];
            const char *status = rr->diverged ? "DIVERGED (non-finite loss)"
                                 : best < 0.2 ? "never left chance"
                                              : "ok";
            printf("%-32s %9.2f%% %9.2f%% %11s %11s  %s\n", labels[run], 100.0 * final,
                   100.0 * best, s80, s85, status);
        }
        printf("(steps counted at the end of the epoch whose test accuracy first reached the "
               "mark; %ld steps per epoch)\n",
               res[0].steps_per_epoch);
        printf("\n");
        for (int f = 0; f < n_fig; f++)
            printf("learning curves: %s.png (and .svg)\n", figures[f]);
        printf("per-epoch CSV:   %s\nper-step CSV:    %s\n", csv_path, steps_path);
    }
    for (int run = 0; run < n_runs; run++)
        nn_train_result_free(&res[run]);
    free_loaded(&ld);
    return ok ? 0 : 1;
}

static int cmd_paper(int argc, char **argv, options *o) {
    const char *pos[MAX_POSITIONAL];
    o->batch = 60;
    int npos, r = parse_options(argc, argv, o, pos, &npos);
    if (r) return r > 0 ? (usage_paper(stdout), 0) : (usage_paper(stderr), 2);
    if (npos) {
        fprintf(stderr, "bnorm paper: unexpected argument '%s'\n", pos[0]);
        return 2;
    }
    paper_config cfg = {o->steps ? o->steps : 50000,
                        o->every ? o->every : 500,
                        o->batch,
                        o->lr_given ? (float)o->lr : 0.1f,
                        o->momentum_given ? (float)o->momentum : 0.0f,
                        (int)o->unit,
                        resolve_threads(o->threads),
                        (unsigned long long)o->seed,
                        o->out ? o->out : "bnorm-paper"};
    char err[1024];
    if (mkdir_p(cfg.out, err, sizeof err)) {
        fprintf(stderr, "bnorm: %s\n", err);
        return 1;
    }
    loaded_data ld = {0};
    if (load_data(o, &ld, 1)) return 1;
    openblas_set_num_threads(1);
    int rc = paper_run(&cfg, &ld.train, &ld.test, stdout, err, sizeof err);
    if (rc) fprintf(stderr, "bnorm: %s\n", err);
    free_loaded(&ld);
    return rc ? 1 : 0;
}

static int cmd_models(int argc, char **argv, options *o) {
    const char *pos[MAX_POSITIONAL];
    int npos, r = parse_options(argc, argv, o, pos, &npos);
    if (r || npos) return r > 0 ? (usage_models(stdout), 0) : (usage_models(stderr), 2);
    printf("%-10s %7s %11s  %s\n", "model", "layers", "parameters", "");
    for (int i = 0; i < nn_builtin_model_count; i++) {
        static nn_spec spec;
        static nn_net net;
        char err[1024];
        const nn_builtin_model *m = &nn_builtin_models[i];
        if (nn_spec_parse(m->text, strlen(m->text), m->name, &spec, err, sizeof err) ||
            nn_describe(&net, &spec, 28, 28, 1, 10, 0, err, sizeof err)) {
            fprintf(stderr, "bnorm: %s\n", err);
            return 1;
        }
        printf("%-10s %7d %11zu  %s\n", m->name, spec.n, nn_param_count(&net), m->summary);
    }
    printf("\n--model also takes a description file; see docs/NETWORKS.md.\n");
    return 0;
}

static int cmd_export(int argc, char **argv, options *o) {
    const char *pos[MAX_POSITIONAL];
    int npos, r = parse_options(argc, argv, o, pos, &npos);
    if (r) return r > 0 ? (usage_export(stdout), 0) : (usage_export(stderr), 2);
    if (npos != 2 || !o->fold) {
        usage_export(stderr);
        return 2;
    }
    static nn_net net, folded;
    ckpt_info info;
    char err[1024];
    openblas_set_num_threads(1);
    if (load_model(pos[0], 1, 1, &net, &info)) return 1;
    int rc = 0;
    if (nn_fold(&net, &folded, 1, 1, err, sizeof err)) {
        fprintf(stderr, "bnorm: %s: %s\n", pos[0], err);
        rc = 1;
    } else if (ckpt_save(pos[1], &folded, &info, err, sizeof err)) {
        fprintf(stderr, "bnorm: %s\n", err);
        rc = 1;
    } else {
        int before = 0, after = 0;
        for (int i = 0; i < net.spec.n; i++)
            before += net.spec.layer[i].kind == NN_KIND_BN;
        for (int i = 0; i < folded.spec.n; i++)
            after += folded.spec.layer[i].kind == NN_KIND_BN;
        printf("folded %d of %d batch norm layers; wrote %s (%d layers, %zu parameters)\n",
               before - after, before, pos[1], folded.spec.n, nn_param_count(&folded));
    }
    nn_free(&folded);
    nn_free(&net);
    return rc;
}

int main(int argc, char **argv) {
    options o = {0};
    o.model = "mlp", o.optimizer = "sgd", o.schedule = "constant", o.epochs = 10, o.batch = 64,
    o.index = -1;
    o.lr = 0.01, o.high_lr = 0.5, o.momentum = 0.9, o.seed = 1;
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "train")) {
#ifdef BNORM_WITH_MPI
        static nn_comm comm;
        int distributed = 0;
        for (int i = 2; i < argc; i++)
            distributed |= !strcmp(argv[i], "--distributed");
        if (distributed) {
            char err[256];
            if (mpi_comm_start(&argc, &argv, &comm, err, sizeof err)) {
                fprintf(stderr, "bnorm: %s\n", err);
                return 1;
            }
            world = &comm;
            int rc = cmd_train(argc - 2, argv + 2, &o);
            /* A process that stops early would leave the others in a collective. */
            if (!all_ok(rc == 0) && rc == 0) rc = 1;
            mpi_comm_stop();
            return rc;
        }
#endif
        return cmd_train(argc - 2, argv + 2, &o);
    }
    if (!strcmp(cmd, "eval")) return cmd_eval(argc - 2, argv + 2, &o);
    if (!strcmp(cmd, "predict")) return cmd_predict(argc - 2, argv + 2, &o);
    if (!strcmp(cmd, "compare")) return cmd_compare(argc - 2, argv + 2, &o);
    if (!strcmp(cmd, "models")) return cmd_models(argc - 2, argv + 2, &o);
    if (!strcmp(cmd, "paper")) return cmd_paper(argc - 2, argv + 2, &o);
    if (!strcmp(cmd, "export")) return cmd_export(argc - 2, argv + 2, &o);
    fprintf(stderr, "bnorm: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
