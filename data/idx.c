#include "idx.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#define IDX_MAGIC_LABELS 0x00000801u
#define IDX_MAGIC_IMAGES 0x00000803u
#define IDX_MAX_BYTES    ((size_t)1 << 31)

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Reads the whole (decompressed) file; gzread passes plain files through. */
static uint8_t *read_all(const char *path, size_t *len, char *err, size_t errlen) {
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        snprintf(err, errlen, "%s: is a directory", path);
        return NULL;
    }
    gzFile f = gzopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open (%s)", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    uint8_t *buf = malloc(cap);
    for (;;) {
        if (!buf) break;
        if (n == cap) {
            uint8_t *nb = cap >= IDX_MAX_BYTES ? NULL : realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb, cap *= 2;
        }
        int got = gzread(f, buf + n, (unsigned)(cap - n));
        if (got < 0) {
            int code;
            snprintf(err, errlen, "%s: corrupt or truncated compressed data (%s)", path,
                     gzerror(f, &code));
            free(buf);
            gzclose(f);
            return NULL;
        }
        if (got == 0) break;
        n += (size_t)got;
    }
    gzclose(f);
    if (!buf) snprintf(err, errlen, "%s: too large or out of memory", path);
    *len = n;
    return buf;
}

/* Checks the header and returns the item count and item dims. */
static int parse_header(const char *path, const uint8_t *buf, size_t len, uint32_t magic, int ndims,
                        uint32_t *dims, char *err, size_t errlen) {
    size_t hdr = 4 + 4 * (size_t)ndims;
    if (len < hdr) {
        snprintf(err, errlen, "%s: truncated header (%zu bytes)", path, len);
        return -1;
    }
    if (be32(buf) != magic) {
        snprintf(err, errlen, "%s: wrong magic number 0x%08x (expected 0x%08x, an IDX %s file)",
                 path, be32(buf), magic, ndims == 1 ? "label" : "image");
        return -1;
    }
    size_t expect = 1;
    for (int i = 0; i < ndims; i++) {
        dims[i] = be32(buf + 4 + 4 * i);
        if (dims[i] == 0 || (i > 0 && dims[i] > 4096)) {
            snprintf(err, errlen, "%s: dimension %d is %u", path, i, dims[i]);
            return -1;
        }
        expect *= dims[i];
    }
    if (len - hdr != expect) {
        snprintf(err, errlen, "%s: header says %zu data bytes but the file has %zu (%s)", path,
                 expect, len - hdr, len - hdr < expect ? "truncated" : "trailing data");
        return -1;
    }
    return 0;
}

int idx_parse(const uint8_t *ib, size_t ilen, const uint8_t *lb, size_t llen,
              const char *images_name, const char *labels_name, idx_set *set, char *err,
              size_t errlen) {
    memset(set, 0, sizeof *set);
    uint32_t idims[3], ldims[1];
    if (parse_header(images_name, ib, ilen, IDX_MAGIC_IMAGES, 3, idims, err, errlen) ||
        parse_header(labels_name, lb, llen, IDX_MAGIC_LABELS, 1, ldims, err, errlen))
        return -1;
    if (idims[0] != ldims[0]) {
        snprintf(err, errlen, "%s has %u images but %s has %u labels", images_name, idims[0],
                 labels_name, ldims[0]);
        return -1;
    }
    for (uint32_t i = 0; i < ldims[0]; i++)
        if (lb[8 + i] > 9) {
            snprintf(err, errlen, "%s: label %u of item %u is out of range 0..9", labels_name,
                     lb[8 + i], i);
            return -1;
        }
    set->pixels = malloc(ilen - 16);
    set->labels = malloc(llen - 8);
    if (!set->pixels || !set->labels) {
        snprintf(err, errlen, "%s: out of memory", images_name);
        idx_free(set);
        return -1;
    }
    set->count = idims[0];
    set->rows = (int)idims[1];
    set->cols = (int)idims[2];
    memcpy(set->pixels, ib + 16, ilen - 16);
    memcpy(set->labels, lb + 8, llen - 8);
    return 0;
}

int idx_load(const char *images_path, const char *labels_path, idx_set *set, char *err,
             size_t errlen) {
    memset(set, 0, sizeof *set);
    size_t ilen = 0, llen = 0;
    uint8_t *ib = read_all(images_path, &ilen, err, errlen);
    if (!ib) return -1;
    uint8_t *lb = read_all(labels_path, &llen, err, errlen);
    if (!lb) {
        free(ib);
        return -1;
    }
    int rc = idx_parse(ib, ilen, lb, llen, images_path, labels_path, set, err, errlen);
    free(ib);
    free(lb);
    return rc;
}

void idx_free(idx_set *set) {
    free(set->pixels);
    free(set->labels);
    memset(set, 0, sizeof *set);
}

int idx_load_dir(const char *dir, int test, idx_set *set, char *err, size_t errlen) {
    const char *stem = test ? "t10k" : "train";
    char ip[4096], lp[4096];
    for (int gz = 1; gz >= 0; gz--) {
        snprintf(ip, sizeof ip, "%s/%s-images-idx3-ubyte%s", dir, stem, gz ? ".gz" : "");
        snprintf(lp, sizeof lp, "%s/%s-labels-idx1-ubyte%s", dir, stem, gz ? ".gz" : "");
        FILE *f = fopen(ip, "rb");
        if (f) {
            fclose(f);
            return idx_load(ip, lp, set, err, errlen);
        }
    }
    snprintf(err, errlen,
             "%s: no %s-images-idx3-ubyte[.gz] (install dataset-fashion-mnist or "
             "pass --data DIR)",
             dir, stem);
    return -1;
}
