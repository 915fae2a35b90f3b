/* Mini-batch training and evaluation of an nn_net on an in-memory dataset. */
#ifndef NN_TRAIN_H
#define NN_TRAIN_H

#include <stdint.h>
#include <stdio.h>

#include "nn.h"

/* Standardised images and their labels. */
typedef struct {
    size_t count;
    int h, w;
    float *x;   /* [count][h*w] */
    uint8_t *y; /* [count] */
} nn_data;

#define NN_MAX_EPOCHS 1000

typedef enum { NN_LR_CONSTANT, NN_LR_COSINE, NN_LR_STEP } nn_lr_schedule;

/* Data augmentation of the training images, drawn anew for every image of
 * every batch: a random crop of the image padded by `pad` pixels of
 * `pad_value` on each side (a shift of -pad..pad in each direction), and a
 * mirror image with probability 1/2. */
typedef struct {
    int pad;         /* 0: no crops */
    int flip;        /* horizontal flips */
    float pad_value; /* the standardised value of a background pixel */
} nn_augment;

typedef struct {
    int epochs, batch;
    nn_optim opt;
    uint64_t seed;
    int progress;      /* draw a progress bar (a terminal is attached) */
    FILE *log;         /* per-epoch lines for people; may be NULL */
    FILE *csv;         /* per-epoch CSV rows; may be NULL */
    const char *label; /* run name in logs and CSV */
    nn_augment augment;
    /* The learning rate per step: a linear warm-up from lr / warmup_steps
     * over the first warmup_epochs, then opt.lr constant, or cosine-annealed
     * to 0 at the last step, or divided by 10 at half and at three quarters
     * of the epochs. */
    nn_lr_schedule schedule;
    int warmup_epochs;
    /* Recorded every record_every steps (0: not): the mean training loss of
     * those steps, and the mean and standard deviation of the output of
     * every dense and conv layer but the last, over the batch: where BN
     * reads its input, or would. */
    int record_every;
} nn_train_config;

#define NN_MAX_SITES 64

typedef struct {
    int epochs_done;
    int diverged; /* a non-finite loss was seen; training stopped there */
    double train_loss[NN_MAX_EPOCHS], train_acc[NN_MAX_EPOCHS], test_acc[NN_MAX_EPOCHS];
    double seconds[NN_MAX_EPOCHS];
    long steps_per_epoch;
    /* With record_every (nn_train allocates; nn_train_result_free frees): */
    long records;
    double *record_step, *record_loss;
    int sites; /* dense and conv layers recorded */
    char site_name[NN_MAX_SITES][48];
    double *site_mean, *site_std; /* [records][sites] */
} nn_train_result;

void nn_train_result_free(nn_train_result *res);

/* Trains from the network's current parameters. Returns 0 (a diverged run
 * included: see res->diverged), or -1 with a message in err when memory ran
 * out or a layer refused a batch. res must be freed with
 * nn_train_result_free either way.
 *
 * With net->comm, every process runs this with the same data, seed and
 * configuration: each takes its share of every global batch of cfg->batch
 * (shares differ by at most one sample; a last batch smaller than the
 * number of processes, or than 2, is skipped), the loss is that of the
 * global batch, the gradients are summed over the processes, and every
 * replica takes the same step. The statistics in res are the global batch's. */
int nn_train(nn_net *net, const nn_data *train, const nn_data *test, const nn_train_config *cfg,
             nn_train_result *res, char *err, size_t errlen);

/* Image src (h x w) into dst: dst[y][x] = src[y + dy][x' + dx] with x' = x,
 * or w - 1 - x when flip (a mirror image), and pad_value where that falls
 * outside src. */
void nn_augment_image(float *dst, const float *src, int h, int w, int dy, int dx, int flip,
                      float pad_value);

/* The learning rate of step t (from 0) of T steps under cfg's schedule. */
float nn_scheduled_lr(const nn_train_config *cfg, long t, long T);

/* Data-parallel training (net->comm): sums every trainable tensor's
 * gradient over the processes, but those already of the global batch
 * (SyncBN's gamma and beta), packed into buckets of up to bucket_floats
 * (0: 4 MiB of floats), one allreduce each; a larger tensor goes alone.
 * Returns 0, or -1 when memory or the communication failed. */
int nn_sum_gradients(nn_net *net, size_t bucket_floats);

/* Test-mode accuracy over the set, in batches of up to net->max_batch;
 * predictions (may be NULL) receives the class of every sample. NaN when a
 * layer refused a batch. */
double nn_evaluate(nn_net *net, const nn_data *data, int *predictions);

/* Writes the CSV header that nn_train's rows follow. */
void nn_csv_header(FILE *csv);

double nn_now(void);

#endif
