#include "safetensors.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atomic_file.h"

/* A JSON reader just large enough for safetensors headers. */
typedef struct {
    const char *start, *p, *end;
    const char *err;
} json;

static int fail(json *j, const char *what) {
    if (!j->err) j->err = what;
    return 0;
}

static void skip_ws(json *j) {
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\n' || *j->p == '\t' || *j->p == '\r'))
        j->p++;
}

static int expect_char(json *j, char c, const char *what) {
    skip_ws(j);
    if (j->p < j->end && *j->p == c) {
        j->p++;
        return 1;
    }
    return fail(j, what);
}

static int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* A JSON string into out (NUL-terminated). Escapes are decoded; \u gives
 * ASCII only, since no name or value this project reads needs more. A
 * string longer than cap - 1 bytes is an error, not a silent truncation:
 * two long names that agree in their first bytes must not become one. */
static int parse_string(json *j, char *out, size_t cap) {
    if (!expect_char(j, '"', "expected a string")) return 0;
    size_t n = 0;
    for (;;) {
        if (j->p >= j->end) return fail(j, "unterminated string");
        char c = *j->p++;
        if (c == '"') break;
        if ((unsigned char)c < 0x20) return fail(j, "control character in a string");
        if (c == '\\') {
            if (j->p >= j->end) return fail(j, "unterminated string");
            char e = *j->p++;
            switch (e) {
            case '"':
            case '\\':
            case '/': c = e; break;
            case 'b': c = '\b'; break;
            case 'f': c = '\f'; break;
            case 'n': c = '\n'; break;
            case 'r': c = '\r'; break;
            case 't': c = '\t'; break;
            case 'u': {
                int v = 0;
                for (int k = 0; k < 4; k++) {
                    int d = j->p < j->end ? hex_digit(*j->p++) : -1;
                    if (d < 0) return fail(j, "bad \\u escape");
                    v = v * 16 + d;
                }
                if (v == 0 || v > 0x7f) return fail(j, "\\u escape outside ASCII");
                c = (char)v;
                break;
            }
            default: return fail(j, "unknown escape in a string");
            }
        }
        if (n + 1 >= cap) return fail(j, "string too long");
        out[n++] = c;
    }
    out[n] = 0;
    return 1;
}

static int parse_uint(json *j, uint64_t *v) {
    skip_ws(j);
    if (j->p >= j->end || *j->p < '0' || *j->p > '9') return fail(j, "expected an integer >= 0");
    *v = 0;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9') {
        if (*v > (UINT64_MAX - 9) / 10) return fail(j, "integer too large");
        *v = *v * 10 + (uint64_t)(*j->p++ - '0');
    }
    return 1;
}

static int parse_uint_array(json *j, uint64_t *v, int cap, int *n) {
    *n = 0;
    if (!expect_char(j, '[', "expected '['")) return 0;
    skip_ws(j);
    if (j->p < j->end && *j->p == ']') return j->p++, 1;
    for (;;) {
        uint64_t x;
        if (!parse_uint(j, &x)) return 0;
        if (*n >= cap) return fail(j, "array too long");
        v[(*n)++] = x;
        skip_ws(j);
        if (j->p < j->end && *j->p == ',') {
            j->p++;
            continue;
        }
        return expect_char(j, ']', "expected ',' or ']'");
    }
}

/* Calls item(j, key, ctx) for each member of an object; item parses the
 * value. */
static int parse_object(json *j, int (*item)(json *, const char *, void *), void *ctx) {
    char key[ST_NAME_MAX];
    if (!expect_char(j, '{', "expected '{'")) return 0;
    skip_ws(j);
    if (j->p < j->end && *j->p == '}') return j->p++, 1;
    for (;;) {
        if (!parse_string(j, key, sizeof key) || !expect_char(j, ':', "expected ':'") ||
            !item(j, key, ctx))
            return 0;
        skip_ws(j);
        if (j->p < j->end && *j->p == ',') {
            j->p++;
            continue;
        }
        return expect_char(j, '}', "expected ',' or '}'");
    }
}

static int meta_item(json *j, const char *key, void *ctx) {
    st_header *h = ctx;
    if (h->n_meta >= ST_MAX_META) return fail(j, "too many __metadata__ entries");
    st_meta *m = &h->meta[h->n_meta];
    if (strlen(key) >= sizeof m->key) return fail(j, "__metadata__ key too long");
    for (int i = 0; i < h->n_meta; i++)
        if (!strcmp(h->meta[i].key, key)) return fail(j, "duplicate __metadata__ key");
    snprintf(m->key, sizeof m->key, "%s", key);
    if (!parse_string(j, m->value, sizeof m->value)) return 0;
    h->n_meta++;
    return 1;
}

enum { HAS_DTYPE = 1, HAS_SHAPE = 2, HAS_OFFSETS = 4 };
typedef struct {
    st_entry *e;
    unsigned seen;
} entry_ctx;

static int entry_item(json *j, const char *key, void *ctx) {
    entry_ctx *c = ctx;
    unsigned bit = !strcmp(key, "dtype")          ? HAS_DTYPE
                   : !strcmp(key, "shape")        ? HAS_SHAPE
                   : !strcmp(key, "data_offsets") ? HAS_OFFSETS
                                                  : 0;
    if (!bit) return fail(j, "unknown field in a tensor entry");
    if (c->seen & bit) return fail(j, "repeated field in a tensor entry");
    c->seen |= bit;
    if (bit == HAS_DTYPE) return parse_string(j, c->e->dtype, sizeof c->e->dtype);
    if (bit == HAS_SHAPE) return parse_uint_array(j, c->e->shape, ST_MAX_RANK, &c->e->rank);
    uint64_t off[2];
    int n;
    if (!parse_uint_array(j, off, 2, &n)) return 0;
    if (n != 2) return fail(j, "data_offsets needs two numbers");
    c->e->begin = off[0], c->e->end = off[1];
    return 1;
}

static int top_item(json *j, const char *key, void *ctx) {
    st_header *h = ctx;
    if (!strcmp(key, "__metadata__")) {
        if (h->n_meta) return fail(j, "repeated __metadata__");
        return parse_object(j, meta_item, h);
    }
    if (h->n_entries >= ST_MAX_TENSORS) return fail(j, "too many tensors");
    for (int i = 0; i < h->n_entries; i++)
        if (!strcmp(h->entries[i].name, key)) return fail(j, "duplicate tensor name");
    st_entry *e = &h->entries[h->n_entries];
    memset(e, 0, sizeof *e);
    snprintf(e->name, sizeof e->name, "%s", key);
    entry_ctx c = {e, 0};
    if (!parse_object(j, entry_item, &c)) return 0;
    if (c.seen != (HAS_DTYPE | HAS_SHAPE | HAS_OFFSETS))
        return fail(j, "a tensor entry lacks dtype, shape or data_offsets");
    h->n_entries++;
    return 1;
}

int st_header_parse(const char *text, size_t len, st_header *h, char *err, size_t errlen) {
    memset(h, 0, sizeof *h);
    json j = {text, text, text + len, NULL};
    if (parse_object(&j, top_item, h)) {
        skip_ws(&j);
        if (j.p == j.end) return 0;
        fail(&j, "trailing bytes after the JSON object");
    }
    snprintf(err, errlen, "malformed JSON header: %s near byte %zu", j.err ? j.err : "syntax error",
             (size_t)(j.p - j.start));
    memset(h, 0, sizeof *h);
    return -1;
}

static int dtype_bytes(const char *dtype) {
    static const struct {
        const char *name;
        int bytes;
    } known[] = {{"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2},    {"I64", 8},
                 {"I32", 4}, {"I16", 2}, {"I8", 1},  {"U8", 1},      {"BOOL", 1},
                 {"U16", 2}, {"U32", 4}, {"U64", 8}, {"F8_E4M3", 1}, {"F8_E5M2", 1}};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (!strcmp(dtype, known[i].name)) return known[i].bytes;
    return 0;
}

static int by_begin(const void *a, const void *b) {
    const st_entry *x = *(const st_entry *const *)a, *y = *(const st_entry *const *)b;
    return x->begin < y->begin ? -1 : x->begin > y->begin;
}

int st_parse(const uint8_t *buf, size_t len, st_header *h, const uint8_t **data, char *err,
             size_t errlen) {
    if (len < 8) {
        snprintf(err, errlen, "not a safetensors file (shorter than 8 bytes)");
        return -1;
    }
    uint64_t hlen = 0;
    for (int b = 0; b < 8; b++)
        hlen |= (uint64_t)buf[b] << (8 * b);
    if (hlen < 2 || hlen > ST_MAX_HEADER || hlen > len - 8) {
        snprintf(err, errlen, "header length %llu does not fit a %zu-byte file (limit %u)",
                 (unsigned long long)hlen, len, ST_MAX_HEADER);
        return -1;
    }
    if (st_header_parse((const char *)buf + 8, (size_t)hlen, h, err, errlen)) return -1;
    uint64_t dlen = len - 8 - hlen;
    const st_entry *order[ST_MAX_TENSORS];
    for (int i = 0; i < h->n_entries; i++) {
        const st_entry *e = &h->entries[i];
        int size = dtype_bytes(e->dtype);
        if (!size) {
            snprintf(err, errlen, "tensor %s has an unknown dtype '%s'", e->name, e->dtype);
            return -1;
        }
        uint64_t bytes = (uint64_t)size;
        for (int d = 0; d < e->rank; d++) {
            if (e->shape[d] && bytes > dlen / e->shape[d]) {
                snprintf(err, errlen, "tensor %s's shape needs more bytes than the file holds",
                         e->name);
                return -1;
            }
            bytes *= e->shape[d];
        }
        if (e->begin > e->end || e->end > dlen || e->end - e->begin != bytes) {
            snprintf(err, errlen,
                     "tensor %s has data_offsets [%llu, %llu], but its dtype and shape need "
                     "%llu bytes inside the %llu-byte data section",
                     e->name, (unsigned long long)e->begin, (unsigned long long)e->end,
                     (unsigned long long)bytes, (unsigned long long)dlen);
            return -1;
        }
        order[i] = e;
    }
    qsort(order, (size_t)h->n_entries, sizeof order[0], by_begin);
    for (int i = 1; i < h->n_entries; i++)
        if (order[i]->begin < order[i - 1]->end) {
            snprintf(err, errlen, "tensors %s and %s overlap in the data section",
                     order[i - 1]->name, order[i]->name);
            return -1;
        }
    *data = buf + 8 + hlen;
    return 0;
}

const st_entry *st_find(const st_header *h, const char *name) {
    for (int i = 0; i < h->n_entries; i++)
        if (!strcmp(h->entries[i].name, name)) return &h->entries[i];
    return NULL;
}

const char *st_meta_get(const st_header *h, const char *key) {
    for (int i = 0; i < h->n_meta; i++)
        if (!strcmp(h->meta[i].key, key)) return h->meta[i].value;
    return NULL;
}

/* printf into out at *len, counting what does not fit: with out NULL or
 * full, *len still grows by what the text would take. */
static void put(char *out, size_t cap, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void put(char *out, size_t cap, size_t *len, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = *len < cap ? vsnprintf(out + *len, cap - *len, fmt, ap) : vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    *len += n > 0 ? (size_t)n : 0;
}

/* s as a JSON string; names and values here are printable ASCII, so
 * quotes, backslashes and control characters are all that need escaping. */
static void put_string(char *out, size_t cap, size_t *len, const char *s) {
    put(out, cap, len, "\"");
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            put(out, cap, len, "\\%c", c);
        else if (c < 0x20)
            put(out, cap, len, "\\u%04x", c);
        else
            put(out, cap, len, "%c", c);
    }
    put(out, cap, len, "\"");
}

/* The header text into out (as much as cap holds); returns its length
 * before padding. */
static size_t format_header(char *out, size_t cap, const st_meta *meta, int n_meta,
                            const st_tensor *t, int n) {
    size_t len = 0;
    put(out, cap, &len, "{");
    if (n_meta) {
        put(out, cap, &len, "\"__metadata__\":{");
        for (int i = 0; i < n_meta; i++) {
            if (i) put(out, cap, &len, ",");
            put_string(out, cap, &len, meta[i].key);
            put(out, cap, &len, ":");
            put_string(out, cap, &len, meta[i].value);
        }
        put(out, cap, &len, "}");
    }
    size_t offset = 0;
    for (int i = 0; i < n; i++) {
        if (i || n_meta) put(out, cap, &len, ",");
        put_string(out, cap, &len, t[i].name);
        put(out, cap, &len, ":{\"dtype\":\"F32\",\"shape\":[");
        for (int d = 0; d < t[i].rank; d++)
            put(out, cap, &len, "%s%lld", d ? "," : "", (long long)t[i].shape[d]);
        put(out, cap, &len, "],\"data_offsets\":[%zu,%zu]}", offset, offset + t[i].count * 4);
        offset += t[i].count * 4;
    }
    put(out, cap, &len, "}");
    return len;
}

int st_write(const char *path, const st_meta *meta, int n_meta, const st_tensor *tensors, int n,
             char *err, size_t errlen) {
    size_t len = format_header(NULL, 0, meta, n_meta, tensors, n);
    size_t padded = (len + 7) / 8 * 8; /* data starts 8-byte aligned */
    char *hdr = malloc(padded + 1);
    if (!hdr) {
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    format_header(hdr, padded + 1, meta, n_meta, tensors, n);
    memset(hdr + len, ' ', padded - len);
    atomic_file af;
    if (atomic_file_open(&af, path, err, errlen)) {
        free(hdr);
        return -1;
    }
    uint8_t le[8];
    for (int b = 0; b < 8; b++)
        le[b] = (uint8_t)((uint64_t)padded >> (8 * b));
    int ok = fwrite(le, 1, 8, af.f) == 8 && fwrite(hdr, 1, padded, af.f) == padded;
    /* The stack's floats are little-endian on every platform it builds for. */
    for (int i = 0; ok && i < n; i++)
        ok = fwrite(tensors[i].data, 4, tensors[i].count, af.f) == tensors[i].count;
    free(hdr);
    if (!ok) {
        snprintf(err, errlen, "%s: write failed (%s)", path, strerror(errno));
        atomic_file_abort(&af);
        return -1;
    }
    return atomic_file_commit(&af, err, errlen);
}
