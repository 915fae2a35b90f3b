/* The BN paper's first experiment (Ioffe and Szegedy 2015, Figure 1): a
 * fully connected network of 3 hidden layers of 100 sigmoid units trained
 * with and without BN by mini-batch SGD, recording at regular steps the
 * test accuracy and the 15th, 50th and 85th percentiles of the input to one
 * sigmoid of the last hidden layer over the test images. */
#ifndef BNORM_TOOLS_PAPER_H
#define BNORM_TOOLS_PAPER_H

#include <stdio.h>

#include "train.h"

typedef struct {
    long steps, every; /* training steps; record every `every` of them */
    int batch;
    float lr, momentum;
    int unit; /* of the last hidden layer */
    int threads;
    unsigned long long seed;
    const char *out; /* directory */
} paper_config;

/* Runs both trainings and writes OUT/paper.csv and OUT/paper.{svg,png};
 * prints progress and a summary to `log`. Returns 0, or -1 with a message. */
int paper_run(const paper_config *cfg, const nn_data *train, const nn_data *test, FILE *log,
              char *err, size_t errlen);

#endif
