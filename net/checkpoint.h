/* A network as a safetensors file: every tensor under its name, and what is
 * needed to rebuild the network (architecture, BN placement, input size,
 * classes, input standardisation) as strings in __metadata__. */
#ifndef NN_CHECKPOINT_H
#define NN_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "nn.h"

/* What a model file carries besides the tensors. */
typedef struct {
    char arch[16];
    nn_bn_place bn;
    float pixel_mean, pixel_std; /* input standardisation from the training set */
} ckpt_info;

/* Writes atomically (data/atomic_file.h). Returns 0, or -1 with a message. */
int ckpt_save(const char *path, const nn_net *net, const ckpt_info *info, char *err, size_t errlen);

/* Reads a model file: checks its metadata, describes the network it names,
 * checks every tensor's name, dtype and shape against that description (and
 * that no tensor is missing or extra), and only then allocates the network
 * (within NN_MAX_NET_BYTES) and fills it. Returns 0, or -1 with a message
 * naming the file; nothing is kept on failure. */
int ckpt_load(const char *path, nn_net *net, ckpt_info *info, int max_batch, int threads, char *err,
              size_t errlen);

/* ckpt_load on a file's bytes already in memory; name is used in messages. */
int ckpt_load_bytes(const uint8_t *bytes, size_t len, const char *name, nn_net *net,
                    ckpt_info *info, int max_batch, int threads, char *err, size_t errlen);

#endif
