/* The training and test sets as the network takes them: IDX images
 * standardised with the training set's pixel mean and deviation. */
#ifndef BNORM_TOOLS_DATASET_H
#define BNORM_TOOLS_DATASET_H

#include <stddef.h>

#include "train.h"

typedef struct {
    nn_data train, test;
    float mean, std; /* pixel standardisation (of the training set, or given) */
} dataset;

/* Loads the test set of dir, and its training set when need_train (at most
 * train_limit and test_limit images, 0: all); images of both must have one
 * size. Without the training set, ds->mean and ds->std must be set before.
 * Returns 0, or -1 with a message. */
int dataset_load(const char *dir, int need_train, size_t train_limit, size_t test_limit,
                 dataset *ds, char *err, size_t errlen);
void dataset_free(dataset *ds);

#endif
