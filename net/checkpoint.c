#include "checkpoint.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "read_file.h"
#include "safetensors.h"

int ckpt_save(const char *path, const nn_net *net, const ckpt_info *info, char *err,
              size_t errlen) {
    enum { N_META = 9 };
    st_meta *meta = malloc(N_META * sizeof *meta);
    st_tensor *tensors = malloc(NN_MAX_TENSORS * sizeof *tensors);
    int rc = -1, n_meta = 0;
    if (!meta || !tensors) {
        snprintf(err, errlen, "%s: out of memory", path);
        goto done;
    }
#define META(k, ...)                                                                               \
    do {                                                                                           \
        snprintf(meta[n_meta].key, sizeof meta[n_meta].key, "%s", k);                              \
        snprintf(meta[n_meta].value, sizeof meta[n_meta].value, __VA_ARGS__);                      \
        n_meta++;                                                                                  \
    } while (0)
    META("format", "bnorm");
    META("model", "%s", info->model);
    META("in_h", "%d", net->in_h);
    META("in_w", "%d", net->in_w);
    META("in_c", "%d", net->in_c);
    META("classes", "%d", net->classes);
    META("pixel_mean", "%.9g", info->pixel_mean);
    META("pixel_std", "%.9g", info->pixel_std);
#undef META
    snprintf(meta[n_meta].key, sizeof meta[n_meta].key, "net");
    if (nn_spec_format(&net->spec, meta[n_meta].value, sizeof meta[n_meta].value) < 0) {
        snprintf(err, errlen, "%s: the network's description is over %d bytes", path,
                 ST_META_VALUE - 1);
        goto done;
    }
    n_meta++;
    for (int i = 0; i < net->n_tensors; i++) {
        const nn_tensor *t = &net->tensors[i];
        tensors[i] = (st_tensor){t->name, t->rank, t->shape, t->value, t->size};
    }
    rc = st_write(path, meta, n_meta, tensors, net->n_tensors, err, errlen);
done:
    free(meta), free(tensors);
    return rc;
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

/* The description a file carries, or for the files of before, the
 * built-in model and placement it names. */
static int file_spec(const st_header *h, const char *name, nn_spec *spec, char *model,
                     size_t model_len, char *err, size_t errlen) {
    static const char *const legacy_places[] = {"none", "before_relu", "after_relu"};
    static const nn_bn_place places[] = {NN_BN_NONE, NN_BN_KEEP, NN_BN_AFTER};
    const char *text = st_meta_get(h, "net");
    char why[512];
    if (text) {
        const char *m = st_meta_get(h, "model");
        snprintf(model, model_len, "%s", m ? m : "");
        char what[300];
        snprintf(what, sizeof what, "%s: __metadata__ net", name);
        return nn_spec_parse(text, strlen(text), what, spec, err, errlen);
    }
    const char *arch = st_meta_get(h, "arch"), *bn = st_meta_get(h, "bn");
    const nn_builtin_model *b = NULL;
    if (arch && (!strcmp(arch, "mlp") || !strcmp(arch, "cnn"))) b = nn_find_builtin_model(arch);
    int place = -1;
    for (int i = 0; bn && i < 3; i++)
        if (!strcmp(bn, legacy_places[i])) place = i;
    if (!b || place < 0) {
        snprintf(err, errlen,
                 "%s: __metadata__ has no network description (net), nor a model of before "
                 "them (arch mlp or cnn, bn none, before_relu or after_relu)",
                 name);
        return -1;
    }
    snprintf(model, model_len, "%s", arch);
    if (nn_spec_parse(b->text, strlen(b->text), arch, spec, why, sizeof why) ||
        nn_spec_place_bn(spec, places[place], why, sizeof why)) {
        snprintf(err, errlen, "%s: %s", name, why);
        return -1;
    }
    return 0;
}

int ckpt_load_bytes(const uint8_t *bytes, size_t len, const char *name, nn_net *net,
                    ckpt_info *info, int max_batch, int threads, char *err, size_t errlen) {
    memset(net, 0, sizeof *net);
    st_header *h = malloc(sizeof *h);
    nn_spec *spec = malloc(sizeof *spec);
    int rc = -1;
    char why[768];
    const uint8_t *data;
    if (!h || !spec) {
        snprintf(err, errlen, "%s: out of memory", name);
        goto done;
    }
    if (st_parse(bytes, len, h, &data, why, sizeof why)) {
        snprintf(err, errlen, "%s: %s", name, why);
        goto done;
    }
    int in_h, in_w, in_c, classes;
    float pmean, pstd;
    if (meta_int(h, "in_h", 1, NN_MAX_INPUT_SIDE, &in_h) ||
        meta_int(h, "in_w", 1, NN_MAX_INPUT_SIDE, &in_w) ||
        meta_int(h, "in_c", 1, NN_MAX_INPUT_CHANNELS, &in_c) ||
        meta_int(h, "classes", 2, NN_MAX_CLASSES, &classes) ||
        meta_float(h, "pixel_mean", &pmean) || meta_float(h, "pixel_std", &pstd) ||
        !(pstd > 0.0f)) {
        snprintf(err, errlen,
                 "%s: __metadata__ lacks a valid in_h and in_w (1..%d), in_c (1..%d), classes "
                 "(2..%d), pixel_mean or pixel_std (> 0)",
                 name, NN_MAX_INPUT_SIDE, NN_MAX_INPUT_CHANNELS, NN_MAX_CLASSES);
        goto done;
    }
    if (file_spec(h, name, spec, info->model, sizeof info->model, err, errlen)) goto done;
    if (nn_describe(net, spec, in_h, in_w, in_c, classes, 1, why, sizeof why)) {
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
            snprintf(err, errlen, "%s: tensor %s has the wrong shape for the network it describes",
                     name, t->name);
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
    info->pixel_mean = pmean;
    info->pixel_std = pstd;
    rc = 0;
done:
    if (rc) memset(net, 0, sizeof *net);
    free(h), free(spec);
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
