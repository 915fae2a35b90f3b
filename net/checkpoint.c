#include "checkpoint.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "read_file.h"
#include "safetensors.h"

static const char *bn_names[] = {"none", "before_relu", "after_relu"};

int ckpt_save(const char *path, const nn_net *net, const ckpt_info *info, char *err,
              size_t errlen) {
    st_meta meta[9];
    int n_meta = 0;
#define META(k, ...)                                                                               \
    do {                                                                                           \
        snprintf(meta[n_meta].key, sizeof meta[n_meta].key, "%s", k);                              \
        snprintf(meta[n_meta].value, sizeof meta[n_meta].value, __VA_ARGS__);                      \
        n_meta++;                                                                                  \
    } while (0)
    META("format", "bnorm");
    META("arch", "%s", info->arch);
    META("bn", "%s", bn_names[info->bn]);
    META("in_h", "%d", net->in_h);
    META("in_w", "%d", net->in_w);
    META("in_c", "%d", net->in_c);
    META("classes", "%d", net->classes);
    META("pixel_mean", "%.9g", info->pixel_mean);
    META("pixel_std", "%.9g", info->pixel_std);
#undef META
    st_tensor tensors[sizeof net->tensors / sizeof net->tensors[0]];
    for (int i = 0; i < net->n_tensors; i++) {
        const nn_tensor *t = &net->tensors[i];
        tensors[i] = (st_tensor){t->name, t->rank, t->shape, t->value, t->size};
    }
    return st_write(path, meta, n_meta, tensors, net->n_tensors, err, errlen);
}

/* A metadata integer in [lo, hi], written as plain decimal digits. */
static int meta_int(const st_header *h, const char *key, int lo, int hi, int *out) {
    const char *v = st_meta_get(h, key);
    if (!v || !*v) return -1;
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (*end || errno || n < lo || n > hi) return -1;
    *out = (int)n;
    return 0;
}

static int meta_float(const st_header *h, const char *key, float *out) {
    const char *v = st_meta_get(h, key);
    if (!v || !*v) return -1;
    char *end;
    float f = strtof(v, &end);
    if (*end || f != f || f > 3.4e38f || f < -3.4e38f) return -1;
    *out = f;
    return 0;
}

int ckpt_load_bytes(const uint8_t *bytes, size_t len, const char *name, nn_net *net,
                    ckpt_info *info, int max_batch, int threads, char *err, size_t errlen) {
    memset(net, 0, sizeof *net);
    st_header *h = malloc(sizeof *h);
    if (!h) {
        snprintf(err, errlen, "%s: out of memory", name);
        return -1;
    }
    int rc = -1;
    char why[768];
    const uint8_t *data;
    if (st_parse(bytes, len, h, &data, why, sizeof why)) {
        snprintf(err, errlen, "%s: %s", name, why);
        goto done;
    }
    const char *arch = st_meta_get(h, "arch"), *bn = st_meta_get(h, "bn");
    int in_h, in_w, in_c, classes, place = -1;
    float pmean, pstd;
    for (int i = 0; bn && i < 3; i++)
        if (!strcmp(bn, bn_names[i])) place = i;
    if (!arch || place < 0 || meta_int(h, "in_h", 1, NN_MAX_INPUT_SIDE, &in_h) ||
        meta_int(h, "in_w", 1, NN_MAX_INPUT_SIDE, &in_w) ||
        meta_int(h, "in_c", 1, NN_MAX_INPUT_CHANNELS, &in_c) ||
        meta_int(h, "classes", 2, NN_MAX_CLASSES, &classes) ||
        meta_float(h, "pixel_mean", &pmean) || meta_float(h, "pixel_std", &pstd) ||
        !(pstd > 0.0f)) {
        snprintf(err, errlen,
                 "%s: __metadata__ lacks a valid arch, bn (none, before_relu, after_relu), "
                 "in_h and in_w (1..%d), in_c (1..%d), classes (2..%d), pixel_mean or "
                 "pixel_std (> 0)",
                 name, NN_MAX_INPUT_SIDE, NN_MAX_INPUT_CHANNELS, NN_MAX_CLASSES);
        goto done;
    }
    if (nn_describe(net, arch, (nn_bn_place)place, in_h, in_w, in_c, classes, why, sizeof why)) {
        snprintf(err, errlen, "%s: %s", name, why);
        goto done;
    }
    /* Every tensor against the description, before anything is allocated. */
    for (int i = 0; i < net->n_tensors; i++) {
        const nn_tensor *t = &net->tensors[i];
        const st_entry *e = st_find(h, t->name);
        if (!e) {
            snprintf(err, errlen, "%s: tensor %s is missing", name, t->name);
            goto done;
        }
        if (strcmp(e->dtype, "F32") != 0) {
            snprintf(err, errlen, "%s: tensor %s has dtype %s, expected F32", name, t->name,
                     e->dtype);
            goto done;
        }
        int shape_ok = e->rank == t->rank;
        for (int d = 0; shape_ok && d < t->rank; d++)
            shape_ok = e->shape[d] == (uint64_t)t->shape[d];
        if (!shape_ok) {
            snprintf(err, errlen, "%s: tensor %s has the wrong shape for a %s network", name,
                     t->name, arch);
            goto done;
        }
    }
    if (h->n_entries != net->n_tensors) {
        for (int k = 0; k < h->n_entries; k++)
            if (!nn_find_tensor(net, h->entries[k].name)) {
                snprintf(err, errlen, "%s: unexpected tensor %s", name, h->entries[k].name);
                goto done;
            }
    }
    if (nn_allocate(net, max_batch, threads, why, sizeof why)) {
        snprintf(err, errlen, "%s: %s", name, why);
        memset(net, 0, sizeof *net);
        goto done;
    }
    for (int i = 0; i < net->n_tensors; i++) {
        nn_tensor *t = &net->tensors[i];
        memcpy(t->value, data + st_find(h, t->name)->begin, t->size * sizeof(float));
    }
    memcpy(info->arch, net->arch, sizeof info->arch);
    info->bn = (nn_bn_place)place;
    info->pixel_mean = pmean;
    info->pixel_std = pstd;
    rc = 0;
done:
    if (rc) memset(net, 0, sizeof *net);
    free(h);
    return rc;
}

int ckpt_load(const char *path, nn_net *net, ckpt_info *info, int max_batch, int threads, char *err,
              size_t errlen) {
    uint8_t *bytes;
    size_t len;
    memset(net, 0, sizeof *net);
    /* The size is checked before the buffer is allocated; ckpt_load_bytes
     * checks the format before the network is looked at. */
    if (read_whole_file(path, (size_t)ST_MAX_FILE, "model file", &bytes, &len, err, errlen))
        return -1;
    int rc = ckpt_load_bytes(bytes, len, path, net, info, max_batch, threads, err, errlen);
    free(bytes);
    return rc;
}
