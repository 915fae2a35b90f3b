#include "safetensors.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ST_MAX_HEADER (1u << 24)

static const char *bn_names[] = {"none", "before_relu", "after_relu"};

int st_save(const char *path, const nn_net *net, const st_model_info *info, char *err,
            size_t errlen) {
    size_t cap = 4096 + (size_t)net->n_tensors * 256, len = 0;
    char *hdr = malloc(cap);
    if (!hdr) {
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    len += (size_t)snprintf(hdr + len, cap - len,
                            "{\"__metadata__\":{\"format\":\"bnorm\",\"arch\":\"%s\",\"bn\":\"%s\","
                            "\"in_h\":\"%d\",\"in_w\":\"%d\",\"in_c\":\"%d\",\"classes\":\"%d\","
                            "\"pixel_mean\":\"%.9g\",\"pixel_std\":\"%.9g\"}",
                            info->arch, bn_names[info->bn], net->in_h, net->in_w, net->in_c,
                            net->classes, info->pixel_mean, info->pixel_std);
    size_t offset = 0;
    for (int i = 0; i < net->n_tensors; i++) {
        const nn_tensor *t = &net->tensors[i];
        len += (size_t)snprintf(hdr + len, cap - len, ",\"%s\":{\"dtype\":\"F32\",\"shape\":[",
                                t->name);
        for (int d = 0; d < t->rank; d++)
            len += (size_t)snprintf(hdr + len, cap - len, "%s%lld", d ? "," : "",
                                    (long long)t->shape[d]);
        len += (size_t)snprintf(hdr + len, cap - len, "],\"data_offsets\":[%zu,%zu]}", offset,
                                offset + t->size * 4);
        offset += t->size * 4;
    }
    len += (size_t)snprintf(hdr + len, cap - len, "}");
    while (len % 8)
        hdr[len++] = ' '; /* data starts 8-byte aligned */

    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot create (%s)", tmp, strerror(errno));
        free(hdr);
        return -1;
    }
    uint8_t le[8];
    for (int b = 0; b < 8; b++)
        le[b] = (uint8_t)((uint64_t)len >> (8 * b));
    int ok = fwrite(le, 1, 8, f) == 8 && fwrite(hdr, 1, len, f) == len;
    /* The stack's floats are little-endian on every platform it builds for. */
    for (int i = 0; ok && i < net->n_tensors; i++)
        ok = fwrite(net->tensors[i].value, 4, net->tensors[i].size, f) == net->tensors[i].size;
    ok = ok && fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok = (fclose(f) == 0) && ok;
    free(hdr);
    if (!ok || rename(tmp, path) != 0) {
        snprintf(err, errlen, "%s: write failed (%s)", path, strerror(errno));
        remove(tmp);
        return -1;
    }
    return 0;
}

/* A JSON reader just large enough for safetensors headers. */
typedef struct {
    const char *p, *end;
    const char *err;
} json;

static void skip_ws(json *j) {
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\n' || *j->p == '\t' || *j->p == '\r'))
        j->p++;
}

static int expect_char(json *j, char c) {
    skip_ws(j);
    if (j->p < j->end && *j->p == c) {
        j->p++;
        return 1;
    }
    if (!j->err) j->err = "malformed JSON header";
    return 0;
}

/* A string without escapes beyond \" and \\, copied into out. */
static int parse_string(json *j, char *out, size_t cap) {
    if (!expect_char(j, '"')) return 0;
    size_t n = 0;
    while (j->p < j->end && *j->p != '"') {
        char c = *j->p++;
        if (c == '\\' && j->p < j->end) c = *j->p++;
        if (n + 1 < cap) out[n++] = c;
    }
    out[n] = 0;
    return expect_char(j, '"');
}

static int parse_uint(json *j, uint64_t *v) {
    skip_ws(j);
    if (j->p >= j->end || *j->p < '0' || *j->p > '9') {
        if (!j->err) j->err = "expected a non-negative integer";
        return 0;
    }
    *v = 0;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9') {
        if (*v > (UINT64_MAX - 9) / 10) {
            j->err = "integer too large";
            return 0;
        }
        *v = *v * 10 + (uint64_t)(*j->p++ - '0');
    }
    return 1;
}

static int parse_uint_array(json *j, uint64_t *v, int cap, int *n) {
    *n = 0;
    if (!expect_char(j, '[')) return 0;
    skip_ws(j);
    if (j->p < j->end && *j->p == ']') return j->p++, 1;
    do {
        uint64_t x;
        if (!parse_uint(j, &x)) return 0;
        if (*n >= cap) {
            j->err = "array too long";
            return 0;
        }
        v[(*n)++] = x;
        skip_ws(j);
    } while (j->p < j->end && *j->p == ',' && j->p++);
    return expect_char(j, ']');
}

typedef struct {
    char name[128], dtype[128];
    uint64_t shape[8], offsets[2];
    int rank, n_offsets, seen;
} st_entry;

int st_load(const char *path, nn_net *net, st_model_info *info, int max_batch, int threads,
            char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open (%s)", path, strerror(errno));
        return -1;
    }
    char *hdr = NULL;
    uint8_t *data = NULL;
    st_entry *entries = NULL;
    int n_entries = 0, rc = -1, built = 0;
    fseek(f, 0, SEEK_END);
    long fsize = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t le[8];
    if (fsize < 8 || fread(le, 1, 8, f) != 8) {
        snprintf(err, errlen, "%s: not a safetensors file (shorter than 8 bytes)", path);
        goto done;
    }
    uint64_t hlen = 0;
    for (int b = 0; b < 8; b++)
        hlen |= (uint64_t)le[b] << (8 * b);
    if (hlen < 2 || hlen > ST_MAX_HEADER || hlen > (uint64_t)fsize - 8) {
        snprintf(err, errlen, "%s: header length %llu does not fit a %ld-byte file", path,
                 (unsigned long long)hlen, fsize);
        goto done;
    }
    size_t dlen = (size_t)fsize - 8 - (size_t)hlen;
    hdr = malloc(hlen + 1);
    data = malloc(dlen ? dlen : 1);
    entries = calloc(128, sizeof *entries);
    if (!hdr || !data || !entries || fread(hdr, 1, hlen, f) != hlen ||
        fread(data, 1, dlen, f) != dlen) {
        snprintf(err, errlen, "%s: read failed", path);
        goto done;
    }
    hdr[hlen] = 0;

    json j = {hdr, hdr + hlen, NULL};
    char key[128], val[128];
    char arch[128] = "", bn[128] = "";
    int in_h = 0, in_w = 0, in_c = 0, classes = 0;
    float pmean = 0.0f, pstd = 1.0f;
    if (!expect_char(&j, '{')) goto bad_json;
    do {
        if (!parse_string(&j, key, sizeof key) || !expect_char(&j, ':')) goto bad_json;
        if (strcmp(key, "__metadata__") == 0) {
            if (!expect_char(&j, '{')) goto bad_json;
            do {
                if (!parse_string(&j, key, sizeof key) || !expect_char(&j, ':') ||
                    !parse_string(&j, val, sizeof val))
                    goto bad_json;
                if (!strcmp(key, "arch")) snprintf(arch, sizeof arch, "%s", val);
                if (!strcmp(key, "bn")) snprintf(bn, sizeof bn, "%s", val);
                if (!strcmp(key, "in_h")) in_h = atoi(val);
                if (!strcmp(key, "in_w")) in_w = atoi(val);
                if (!strcmp(key, "in_c")) in_c = atoi(val);
                if (!strcmp(key, "classes")) classes = atoi(val);
                if (!strcmp(key, "pixel_mean")) pmean = strtof(val, NULL);
                if (!strcmp(key, "pixel_std")) pstd = strtof(val, NULL);
                skip_ws(&j);
            } while (j.p < j.end && *j.p == ',' && j.p++);
            if (!expect_char(&j, '}')) goto bad_json;
        } else {
            if (n_entries >= 128) {
                snprintf(err, errlen, "%s: too many tensors", path);
                goto done;
            }
            st_entry *e = &entries[n_entries++];
            snprintf(e->name, sizeof e->name, "%s", key);
            if (!expect_char(&j, '{')) goto bad_json;
            do {
                if (!parse_string(&j, key, sizeof key) || !expect_char(&j, ':')) goto bad_json;
                if (!strcmp(key, "dtype")) {
                    if (!parse_string(&j, e->dtype, sizeof e->dtype)) goto bad_json;
                } else if (!strcmp(key, "shape")) {
                    if (!parse_uint_array(&j, e->shape, 8, &e->rank)) goto bad_json;
                } else if (!strcmp(key, "data_offsets")) {
                    if (!parse_uint_array(&j, e->offsets, 2, &e->n_offsets)) goto bad_json;
                } else {
                    j.err = "unknown field in a tensor entry";
                    goto bad_json;
                }
                skip_ws(&j);
            } while (j.p < j.end && *j.p == ',' && j.p++);
            if (!expect_char(&j, '}')) goto bad_json;
        }
        skip_ws(&j);
    } while (j.p < j.end && *j.p == ',' && j.p++);
    if (!expect_char(&j, '}')) goto bad_json;

    nn_bn_place place = NN_BN_NONE;
    int known = 0;
    for (int i = 0; i < 3; i++)
        if (!strcmp(bn, bn_names[i])) place = (nn_bn_place)i, known = 1;
    if (!known || in_h <= 0 || in_w <= 0 || in_c <= 0 || classes <= 1 || in_h > 4096 ||
        in_w > 4096 || in_c > 64 || classes > 4096 || !(pstd > 0.0f)) {
        snprintf(err, errlen,
                 "%s: __metadata__ lacks a valid arch/bn/in_h/in_w/in_c/classes/pixel_std", path);
        goto done;
    }
    if (nn_build(net, arch, place, in_h, in_w, in_c, classes, max_batch, threads, err, errlen))
        goto done;
    built = 1;
    for (int i = 0; i < net->n_tensors; i++) {
        nn_tensor *t = &net->tensors[i];
        st_entry *e = NULL;
        for (int k = 0; k < n_entries; k++)
            if (!strcmp(entries[k].name, t->name)) e = &entries[k];
        if (!e) {
            snprintf(err, errlen, "%s: tensor %s is missing", path, t->name);
            goto done;
        }
        e->seen = 1;
        if (strcmp(e->dtype, "F32") != 0) {
            snprintf(err, errlen, "%s: tensor %s has dtype %s, expected F32", path, t->name,
                     e->dtype);
            goto done;
        }
        int shape_ok = e->rank == t->rank;
        for (int d = 0; shape_ok && d < t->rank; d++)
            shape_ok = e->shape[d] == (uint64_t)t->shape[d];
        if (!shape_ok) {
            snprintf(err, errlen, "%s: tensor %s has the wrong shape for a %s network", path,
                     t->name, arch);
            goto done;
        }
        if (e->n_offsets != 2 || e->offsets[0] > e->offsets[1] || e->offsets[1] > dlen ||
            e->offsets[1] - e->offsets[0] != (uint64_t)t->size * 4) {
            snprintf(err, errlen,
                     "%s: tensor %s has data_offsets outside the data or of the "
                     "wrong length",
                     path, t->name);
            goto done;
        }
        memcpy(t->value, data + e->offsets[0], t->size * 4);
    }
    for (int k = 0; k < n_entries; k++)
        if (!entries[k].seen) {
            snprintf(err, errlen, "%s: unexpected tensor %s", path, entries[k].name);
            goto done;
        }
    memcpy(info->arch, net->arch, sizeof info->arch);
    info->bn = place;
    info->pixel_mean = pmean;
    info->pixel_std = pstd;
    rc = 0;
    goto done;
bad_json:
    snprintf(err, errlen, "%s: %s near byte %ld of the header", path,
             j.err ? j.err : "malformed JSON header", (long)(j.p - hdr));
done:
    if (rc != 0 && built) nn_free(net);
    fclose(f);
    free(hdr), free(data), free(entries);
    return rc;
}
