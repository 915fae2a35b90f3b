/* Saving and loading a network as safetensors: an 8-byte little-endian
 * header length, a JSON header (dtype, shape, data_offsets per tensor, and
 * string metadata under "__metadata__"), then the raw little-endian data. */
#ifndef BNORM_DATA_SAFETENSORS_H
#define BNORM_DATA_SAFETENSORS_H

#include <stddef.h>

#include "nn.h"

/* What a model file carries besides the tensors. */
typedef struct {
    char arch[16];
    nn_bn_place bn;
    float pixel_mean, pixel_std; /* input standardisation from the training set */
} st_model_info;

/* Writes atomically: a temporary file in the same directory, renamed over
 * path once complete. Returns 0, or -1 with a message in err. */
int st_save(const char *path, const nn_net *net, const st_model_info *info, char *err,
            size_t errlen);

/* Reads a file written by st_save (or any writer that follows the format):
 * builds the network it describes and fills every tensor, after checking
 * names, dtypes, shapes and offsets. Returns 0, or -1 with a message. */
int st_load(const char *path, nn_net *net, st_model_info *info, int max_batch, int threads,
            char *err, size_t errlen);

#endif
