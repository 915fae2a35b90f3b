#include "image.h"

#include "read_file.h"

#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const uint8_t *p, *end;
} cursor;

static int is_space(uint8_t c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Skips whitespace and '#' comments (to the end of their line), which
 * Netpbm allows between any two header tokens and, in P2, between samples. */
static void skip_separators(cursor *c) {
    while (c->p < c->end) {
        if (*c->p == '#') {
            while (c->p < c->end && *c->p != '\n' && *c->p != '\r')
                c->p++;
        } else if (is_space(*c->p)) {
            c->p++;
        } else {
            break;
        }
    }
}

/* A decimal number 0..limit after separators; -1 when there is none, it has
 * a sign, or it is too large. */
static long read_number(cursor *c, long limit) {
    skip_separators(c);
    if (c->p >= c->end || *c->p < '0' || *c->p > '9') return -1;
    long v = 0;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
        v = v * 10 + (*c->p++ - '0');
        if (v > limit) return -1;
    }
    if (c->p < c->end && !is_space(*c->p) && *c->p != '#') return -1; /* "12x" */
    return v;
}

static int decode_pgm(const uint8_t *buf, size_t len, const char *name, int h, int w, float *px,
                      char *err, size_t errlen) {
    cursor c = {buf + 2, buf + len};
    int binary = buf[1] == '5';
    long pw = read_number(&c, 1L << 20), ph = read_number(&c, 1L << 20);
    long maxv = read_number(&c, 65535);
    if (pw < 1 || ph < 1 || maxv < 1) {
        snprintf(err, errlen, "%s: bad PGM header (width, height and maxval must be numbers >= 1)",
                 name);
        return -1;
    }
    if (maxv > 255) {
        snprintf(err, errlen, "%s: 16-bit PGM (maxval %ld); only 8-bit samples are read", name,
                 maxv);
        return -1;
    }
    if (pw != w || ph != h) {
        snprintf(err, errlen, "%s: image is %ldx%ld, expected %dx%d", name, pw, ph, w, h);
        return -1;
    }
    size_t count = (size_t)h * (size_t)w;
    float *tmp = malloc(count * sizeof(float));
    if (!tmp) {
        snprintf(err, errlen, "%s: out of memory", name);
        return -1;
    }
    if (binary) {
        /* Exactly one whitespace byte separates maxval from the samples. */
        if (c.p >= c.end || !is_space(*c.p) || (size_t)(c.end - c.p - 1) < count) {
            snprintf(err, errlen, "%s: truncated pixel data (%zu samples needed)", name, count);
            free(tmp);
            return -1;
        }
        c.p++;
        for (size_t i = 0; i < count; i++) {
            if (c.p[i] > maxv) {
                snprintf(err, errlen, "%s: sample %zu is %u, above maxval %ld", name, i, c.p[i],
                         maxv);
                free(tmp);
                return -1;
            }
            tmp[i] = (float)c.p[i] * 255.0f / (float)maxv;
        }
    } else {
        for (size_t i = 0; i < count; i++) {
            long v = read_number(&c, maxv);
            if (v < 0) {
                snprintf(err, errlen,
                         "%s: sample %zu is missing, negative, not a number or above maxval %ld",
                         name, i, maxv);
                free(tmp);
                return -1;
            }
            tmp[i] = (float)v * 255.0f / (float)maxv;
        }
    }
    memcpy(px, tmp, count * sizeof(float));
    free(tmp);
    return 0;
}

static int decode_png(const uint8_t *buf, size_t len, const char *name, int h, int w, float *px,
                      char *err, size_t errlen) {
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_memory(&img, buf, len)) {
        snprintf(err, errlen, "%s: bad PNG (%s)", name, img.message);
        return -1;
    }
    if ((long)img.width != w || (long)img.height != h) {
        snprintf(err, errlen, "%s: image is %ux%u, expected %dx%d", name, img.width, img.height, w,
                 h);
        png_image_free(&img);
        return -1;
    }
    img.format = PNG_FORMAT_GRAY;
    size_t count = (size_t)h * (size_t)w;
    uint8_t *gray = malloc(count);
    if (!gray) {
        snprintf(err, errlen, "%s: out of memory", name);
        png_image_free(&img);
        return -1;
    }
    if (!png_image_finish_read(&img, NULL, gray, 0, NULL)) {
        snprintf(err, errlen, "%s: bad PNG (%s)", name, img.message);
        png_image_free(&img);
        free(gray);
        return -1;
    }
    for (size_t i = 0; i < count; i++)
        px[i] = gray[i];
    free(gray);
    return 0;
}

int image_decode_gray(const uint8_t *buf, size_t len, const char *name, int h, int w, float *px,
                      char *err, size_t errlen) {
    if (h < 1 || w < 1) {
        snprintf(err, errlen, "%s: expected size %dx%d is empty", name, w, h);
        return -1;
    }
    if (len >= 8 && !png_sig_cmp(buf, 0, 8))
        return decode_png(buf, len, name, h, w, px, err, errlen);
    if (len >= 2 && buf[0] == 'P' && (buf[1] == '5' || buf[1] == '2'))
        return decode_pgm(buf, len, name, h, w, px, err, errlen);
    snprintf(err, errlen, "%s: not a PNG or PGM (P5, P2) image", name);
    return -1;
}

int image_read_gray(const char *path, int h, int w, float *px, char *err, size_t errlen) {
    uint8_t *buf;
    size_t len;
    if (read_whole_file(path, IMAGE_MAX_FILE, "image", &buf, &len, err, errlen)) return -1;
    int rc = image_decode_gray(buf, len, path, h, w, px, err, errlen);
    free(buf);
    return rc;
}
