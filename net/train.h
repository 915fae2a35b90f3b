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

typedef struct {
    int epochs, batch;
    nn_optim opt;
    uint64_t seed;
    int progress;      /* draw a progress bar (a terminal is attached) */
    FILE *log;         /* per-epoch lines for people; may be NULL */
    FILE *csv;         /* per-epoch CSV rows; may be NULL */
    const char *label; /* run name in logs and CSV */
} nn_train_config;

typedef struct {
    int epochs_done;
    int diverged; /* a non-finite loss was seen; training stopped there */
    double train_loss[NN_MAX_EPOCHS], train_acc[NN_MAX_EPOCHS], test_acc[NN_MAX_EPOCHS];
    double seconds[NN_MAX_EPOCHS];
} nn_train_result;

/* Trains from the network's current parameters. Returns 0 (a diverged run
 * included: see res->diverged), or -1 with a message in err when memory ran
 * out or a layer refused a batch. */
int nn_train(nn_net *net, const nn_data *train, const nn_data *test, const nn_train_config *cfg,
             nn_train_result *res, char *err, size_t errlen);

/* Test-mode accuracy over the set, in batches of up to net->max_batch;
 * predictions (may be NULL) receives the class of every sample. NaN when a
 * layer refused a batch. */
double nn_evaluate(nn_net *net, const nn_data *data, int *predictions);

/* Writes the CSV header that nn_train's rows follow. */
void nn_csv_header(FILE *csv);

double nn_now(void);

#endif
