/* A network as a safetensors file: every tensor under its name, and what is
 * needed to rebuild the network as strings in __metadata__: its description
 * ("net", spec.h), input size, classes, input standardisation, and the name
 * of the model it was made from. Files written before descriptions were
 * saved name a built-in model ("arch": mlp or cnn) and a BN placement
 * ("bn": none, before_relu or after_relu) instead; they still load. */
#ifndef NN_CHECKPOINT_H
#define NN_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "nn.h"

/* What a model file carries besides the network. */
typedef struct {
    char model[64];              /* the model it was made from: a built-in name or a file */
    float pixel_mean, pixel_std; /* input standardisation from the training set */
} ckpt_info;

/* Writes atomically (data/atomic_file.h). Returns 0, or -1 with a message. */
int ckpt_save(const char *path, const nn_net *net, const ckpt_info *info, char *err, size_t errlen);

/* Reads a model file: checks its metadata, parses and describes the network
 * (fused: see nn_describe), checks every tensor's name, dtype and shape
 * against that description (and that none is missing or extra), and only
 * then allocates the network (within NN_MAX_NET_BYTES) and fills it.
 * Returns 0, or -1 with a message naming the file; nothing is kept on
 * failure. */
int ckpt_load(const char *path, nn_net *net, ckpt_info *info, int max_batch, int threads, char *err,
              size_t errlen);

/* ckpt_load on a file's bytes already in memory; name is used in messages. */
int ckpt_load_bytes(const uint8_t *bytes, size_t len, const char *name, nn_net *net,
                    ckpt_info *info, int max_batch, int threads, char *err, size_t errlen);

#endif
