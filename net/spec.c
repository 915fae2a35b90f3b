/* Network descriptions: parsing, formatting and the rewrites (spec.h). */
#include "spec.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "read_file.h"

static const char *const kind_names[NN_KIND_COUNT] = {
    "dense", "conv", "maxpool", "avgpool", "relu", "sigmoid", "bn", "add", "softmax"};

/* The keys each kind takes (every kind also takes from=). */
enum {
    KEY_UNITS = 1,
    KEY_CHANNELS = 2,
    KEY_SIZE = 4,
    KEY_STRIDE = 8,
    KEY_BIAS = 16,
    KEY_SKIP = 32
};
static const unsigned kind_keys[NN_KIND_COUNT] = {
    [NN_KIND_DENSE] = KEY_UNITS | KEY_BIAS,
    [NN_KIND_CONV] = KEY_CHANNELS | KEY_SIZE | KEY_STRIDE | KEY_BIAS,
    [NN_KIND_ADD] = KEY_SKIP,
};
static const char *const key_names[] = {"units", "channels", "size", "stride", "bias", "skip"};

const char *nn_kind_name(nn_kind_id kind) {
    return kind >= 0 && kind < NN_KIND_COUNT ? kind_names[kind] : "?";
}

typedef struct {
    const char *what;
    int line;
    char *err;
    size_t errlen;
} parse_ctx;

static int fail(const parse_ctx *c, int col, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(const parse_ctx *c, int col, const char *fmt, ...) {
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(c->err, c->errlen, "%s:%d:%d: %s", c->what, c->line, col, msg);
    return -1;
}

static int is_name_char(int ch) { return isalnum(ch) || ch == '_' || ch == '.' || ch == '-'; }

/* The layer a reference names, or -1 for "input"; -2 when none before `before`. */
static int find_name(const nn_spec *spec, int before, const char *name) {
    if (!strcmp(name, "input")) return -1;
    for (int i = 0; i < before; i++)
        if (!strcmp(spec->layer[i].name, name)) return i;
    return -2;
}

/* A decimal integer in [lo, hi], the whole token. */
static int parse_number(const char *s, int lo, int hi, int *out) {
    if (!*s) return -1;
    long v = 0;
    for (const char *p = s; *p; p++) {
        if (!isdigit((unsigned char)*p)) return -1;
        v = v * 10 + (*p - '0');
        if (v > hi) return -1;
    }
    if (v < lo) return -1;
    *out = (int)v;
    return 0;
}

/* One KEY=VALUE token at column col of layer l (index i). */
static int parse_key(const parse_ctx *c, nn_spec *spec, int i, char *tok, int col) {
    nn_spec_layer *l = &spec->layer[i];
    char *eq = strchr(tok, '=');
    if (!eq || eq == tok) return fail(c, col, "expected KEY=VALUE, found '%s'", tok);
    *eq = '\0';
    const char *key = tok, *val = eq + 1;
    int vcol = col + (int)(val - tok);
    if (!strcmp(key, "from")) {
        int at = find_name(spec, i, val);
        if (at == -2) return fail(c, vcol, "no layer named '%s' before this line", val);
        l->in[0] = at;
        return 0;
    }
    unsigned bit = 0;
    for (unsigned k = 0; k < sizeof key_names / sizeof key_names[0]; k++)
        if (!strcmp(key, key_names[k])) bit = 1u << k;
    if (!(bit & kind_keys[l->kind])) {
        char list[128] = "";
        for (unsigned k = 0; k < sizeof key_names / sizeof key_names[0]; k++)
            if (kind_keys[l->kind] & (1u << k))
                snprintf(list + strlen(list), sizeof list - strlen(list), "%s=, ", key_names[k]);
        return fail(c, col, "%s takes no key '%s' (expected %sfrom=)", kind_names[l->kind], key,
                    list);
    }
    switch (bit) {
    case KEY_UNITS:
        if (!strcmp(val, "classes")) {
            l->units = 0;
            return 0;
        } /* fall through */
    case KEY_CHANNELS:
        if (parse_number(val, 1, NN_MAX_UNITS, &l->units))
            return fail(c, vcol, "expected a number from 1 to %d%s, found '%s'", NN_MAX_UNITS,
                        bit == KEY_UNITS ? " or 'classes'" : "", val);
        return 0;
    case KEY_SIZE:
        if (strcmp(val, "1") && strcmp(val, "3"))
            return fail(c, vcol, "expected size 1 or 3, found '%s'", val);
        l->size = val[0] - '0';
        return 0;
    case KEY_STRIDE:
        if (strcmp(val, "1") && strcmp(val, "2"))
            return fail(c, vcol, "expected stride 1 or 2, found '%s'", val);
        l->stride = val[0] - '0';
        return 0;
    case KEY_BIAS:
        if (strcmp(val, "yes") && strcmp(val, "no"))
            return fail(c, vcol, "expected bias=yes or bias=no, found '%s'", val);
        l->bias = val[0] == 'y';
        return 0;
    default: { /* KEY_SKIP */
        int at = find_name(spec, i, val);
        if (at == -2) return fail(c, vcol, "no layer named '%s' before this line", val);
        l->in[1] = at;
        l->n_in = 2;
        return 0;
    }
    }
}

/* One line (NUL-terminated, comment removed). */
static int parse_line(parse_ctx *c, nn_spec *spec, char *s) {
    int i = spec->n;
    char *tok[32];
    int col[32], n = 0;
    for (char *p = s; *p;) {
        while (*p == ' ' || *p == '\t' || *p == '\r')
            p++;
        if (!*p) break;
        if (n == 32) return fail(c, (int)(p - s) + 1, "too many words on a line");
        col[n] = (int)(p - s) + 1;
        tok[n++] = p;
        while (*p && *p != ' ' && *p != '\t' && *p != '\r')
            p++;
        if (*p) *p++ = '\0';
    }
    if (n == 0) return 0;
    if (i == NN_MAX_LAYERS) return fail(c, 1, "too many layers (at most %d)", NN_MAX_LAYERS);
    nn_spec_layer *l = &spec->layer[i];
    memset(l, 0, sizeof *l);
    l->line = c->line;
    int t = 0;
    size_t len = strlen(tok[0]);
    if (tok[0][len - 1] == ':') {
        tok[0][len - 1] = '\0';
        if (len == 1) return fail(c, col[0], "expected a label before ':'");
        if (len > NN_NAME_MAX)
            return fail(c, col[0], "a label of at most %d characters", NN_NAME_MAX - 1);
        for (size_t k = 0; k + 1 < len; k++)
            if (!is_name_char((unsigned char)tok[0][k]))
                return fail(c, col[0] + (int)k,
                            "a label is letters, digits and '_', '.', '-'; found '%c'", tok[0][k]);
        if (!strcmp(tok[0], "input"))
            return fail(c, col[0], "'input' names the network's input, not a layer");
        snprintf(l->name, sizeof l->name, "%s", tok[0]);
        l->labelled = 1;
        t = 1;
        if (n == 1) return fail(c, col[0] + (int)len, "expected a layer kind after the label");
    }
    int kind = -1;
    for (int k = 0; k < NN_KIND_COUNT; k++)
        if (!strcmp(tok[t], kind_names[k])) kind = k;
    if (kind < 0)
        return fail(c, col[t],
                    "expected a layer kind (dense, conv, maxpool, avgpool, relu, sigmoid, bn, "
                    "add, softmax), found '%s'",
                    tok[t]);
    if (i > 0 && spec->layer[i - 1].kind == NN_KIND_SOFTMAX)
        return fail(c, col[t], "softmax must be the last layer");
    l->kind = (nn_kind_id)kind;
    l->n_in = 1;
    l->in[0] = i - 1;
    l->in[1] = -1;
    l->units = -1;
    l->size = 3, l->stride = 1, l->bias = -1;
    int end = col[n - 1] + (int)strlen(tok[n - 1]); /* before parse_key cuts the tokens */
    for (int k = t + 1; k < n; k++)
        if (parse_key(c, spec, i, tok[k], col[k])) return -1;
    if ((l->kind == NN_KIND_DENSE || l->kind == NN_KIND_CONV) && l->units < 0)
        return fail(c, end, "%s needs %s=", kind_names[kind],
                    l->kind == NN_KIND_DENSE ? "units" : "channels");
    if (l->kind == NN_KIND_ADD && l->n_in != 2) return fail(c, end, "add needs skip=LABEL");
    if (l->kind == NN_KIND_ADD && l->in[1] == l->in[0])
        return fail(c, end, "add joins two different layers");
    if (l->units < 0) l->units = 0;
    spec->n++;
    return 0;
}

static int consumers(const nn_spec *spec, int i, int *first);

/* Names unlabelled layers layers.K by position; -1 when two share a name. */
static int name_layers(nn_spec *spec, int *dup) {
    for (int i = 0; i < spec->n; i++)
        if (!spec->layer[i].labelled)
            snprintf(spec->layer[i].name, sizeof spec->layer[i].name, "layers.%d", i);
    for (int i = 0; i < spec->n; i++)
        for (int j = 0; j < i; j++)
            if (!strcmp(spec->layer[i].name, spec->layer[j].name)) {
                *dup = i;
                return -1;
            }
    return 0;
}

int nn_spec_parse(const char *text, size_t len, const char *what, nn_spec *spec, char *err,
                  size_t errlen) {
    memset(spec, 0, sizeof *spec);
    parse_ctx c = {what, 0, err, errlen};
    if (len > NN_MAX_SPEC_LEN)
        return fail(&c, 0, "a description of at most %d bytes, this one has %zu", NN_MAX_SPEC_LEN,
                    len);
    char line[512];
    size_t pos = 0;
    while (pos < len) {
        c.line++;
        size_t end = pos;
        while (end < len && text[end] != '\n')
            end++;
        size_t n = end - pos;
        if (n >= sizeof line)
            return fail(&c, (int)sizeof line, "a line of at most %zu characters", sizeof line - 1);
        for (size_t k = 0; k < n; k++) {
            unsigned char ch = (unsigned char)text[pos + k];
            if (ch == '#') {
                n = k;
                break;
            }
            if (!(ch == '\t' || ch == '\r' || (ch >= 0x20 && ch < 0x7f)))
                return fail(&c, (int)k + 1, "a character that is not printable ASCII (0x%02x)", ch);
        }
        memcpy(line, text + pos, n);
        line[n] = '\0';
        pos = end + 1;
        /* Names are needed while parsing, for from= and skip=. */
        int dup;
        name_layers(spec, &dup);
        if (parse_line(&c, spec, line)) return -1;
    }
    c.line++;
    if (spec->n == 0) return fail(&c, 1, "expected at least one layer, found none");
    if (spec->layer[spec->n - 1].kind != NN_KIND_SOFTMAX)
        return fail(&c, 1, "expected the last layer to be softmax");
    for (int i = 0; i + 1 < spec->n; i++) {
        int first;
        if (consumers(spec, i, &first) == 0) {
            c.line = spec->layer[i].line;
            return fail(&c, 1, "the output of %s (%s) is never used", spec->layer[i].name,
                        kind_names[spec->layer[i].kind]);
        }
    }
    int dup;
    if (name_layers(spec, &dup)) {
        c.line = spec->layer[dup].line;
        return fail(&c, 1, "the name '%s' is taken by another layer", spec->layer[dup].name);
    }
    return 0;
}

/* Whether some layer reads layer i other than as the next line's input. */
static int referenced_out_of_order(const nn_spec *spec, int i) {
    for (int j = 0; j < spec->n; j++)
        for (int k = 0; k < spec->layer[j].n_in; k++)
            if (spec->layer[j].in[k] == i && (k == 1 || j != i + 1)) return 1;
    return 0;
}

static const char *ref_name(const nn_spec *spec, int i) {
    return i < 0 ? "input" : spec->layer[i].name;
}

int nn_spec_format(const nn_spec *spec, char *out, size_t cap) {
    size_t len = 0;
#define PUT(...)                                                                                   \
    do {                                                                                           \
        int n_ = snprintf(out + (len < cap ? len : cap), len < cap ? cap - len : 0, __VA_ARGS__);  \
        len += n_ > 0 ? (size_t)n_ : 0;                                                            \
    } while (0)
    for (int i = 0; i < spec->n; i++) {
        const nn_spec_layer *l = &spec->layer[i];
        if (l->labelled || referenced_out_of_order(spec, i)) PUT("%s: ", l->name);
        PUT("%s", kind_names[l->kind]);
        if (l->kind == NN_KIND_DENSE) {
            if (l->units)
                PUT(" units=%d", l->units);
            else
                PUT(" units=classes");
        }
        if (l->kind == NN_KIND_CONV) {
            PUT(" channels=%d", l->units);
            if (l->size != 3) PUT(" size=%d", l->size);
            if (l->stride != 1) PUT(" stride=%d", l->stride);
        }
        if ((l->kind == NN_KIND_DENSE || l->kind == NN_KIND_CONV) && l->bias >= 0)
            PUT(" bias=%s", l->bias ? "yes" : "no");
        if (l->in[0] != i - 1) PUT(" from=%s", ref_name(spec, l->in[0]));
        if (l->n_in == 2) PUT(" skip=%s", ref_name(spec, l->in[1]));
        PUT("\n");
    }
#undef PUT
    return len < cap ? (int)len : -1;
}

/* The layers that read layer i's output: their count, and the first. */
static int consumers(const nn_spec *spec, int i, int *first) {
    int n = 0;
    *first = -1;
    for (int j = 0; j < spec->n; j++)
        for (int k = 0; k < spec->layer[j].n_in; k++)
            if (spec->layer[j].in[k] == i) {
                if (*first < 0) *first = j;
                n++;
            }
    return n;
}

void nn_spec_remove_layer(nn_spec *spec, int i) {
    int src = spec->layer[i].in[0];
    for (int j = 0; j < spec->n; j++)
        for (int k = 0; k < spec->layer[j].n_in; k++) {
            int *in = &spec->layer[j].in[k];
            if (*in == i)
                *in = src;
            else if (*in > i)
                (*in)--;
        }
    memmove(&spec->layer[i], &spec->layer[i + 1],
            (size_t)(spec->n - i - 1) * sizeof spec->layer[0]);
    spec->n--;
}

/* Moves layer i (one input, read by nobody now) to just after layer `after`
 * (> i), reading it, and has `after`'s other readers read it instead. */
static void move_after(nn_spec *spec, int i, int after) {
    nn_spec_layer moved = spec->layer[i];
    nn_spec_remove_layer(spec, i);
    after--; /* it shifted down */
    int at = after + 1;
    for (int j = 0; j < spec->n; j++)
        for (int k = 0; k < spec->layer[j].n_in; k++) {
            int *in = &spec->layer[j].in[k];
            if (*in == after)
                *in = at; /* the moved layer, once inserted */
            else if (*in > after)
                (*in)++;
        }
    memmove(&spec->layer[at + 1], &spec->layer[at], (size_t)(spec->n - at) * sizeof spec->layer[0]);
    moved.in[0] = after;
    spec->layer[at] = moved;
    spec->n++;
}

/* The activation (ReLU or sigmoid) that the bn at i leads to, reading it
 * alone, directly or as the main input (the first) of an add read by that
 * activation alone; -1 if none. */
static int activation_after(const nn_spec *spec, int i) {
    int next, at = i;
    if (consumers(spec, at, &next) != 1) return -1;
    if (spec->layer[next].kind == NN_KIND_ADD) {
        if (spec->layer[next].in[0] != at) return -1;
        at = next;
        if (consumers(spec, at, &next) != 1) return -1;
    }
    nn_kind_id k = spec->layer[next].kind;
    return k == NN_KIND_RELU || k == NN_KIND_SIGMOID ? next : -1;
}

int nn_spec_place_bn(nn_spec *spec, nn_bn_place place, char *err, size_t errlen) {
    if (place == NN_BN_NONE) {
        for (int i = spec->n - 1; i >= 0; i--)
            if (spec->layer[i].kind == NN_KIND_BN) nn_spec_remove_layer(spec, i);
    } else if (place == NN_BN_AFTER) {
        /* The bn layers to move, by name (indices shift as they move). */
        char names[NN_MAX_LAYERS][NN_NAME_MAX];
        int n_move = 0;
        for (int i = 0; i < spec->n; i++)
            if (spec->layer[i].kind == NN_KIND_BN && activation_after(spec, i) >= 0)
                memcpy(names[n_move++], spec->layer[i].name, NN_NAME_MAX);
        for (int m = 0; m < n_move; m++)
            for (int i = 0; i < spec->n; i++)
                if (!strcmp(spec->layer[i].name, names[m])) {
                    move_after(spec, i, activation_after(spec, i));
                    break;
                }
    }
    int dup;
    if (name_layers(spec, &dup)) {
        snprintf(err, errlen, "after moving batch norm, two layers are named '%s'",
                 spec->layer[dup].name);
        return -1;
    }
    return 0;
}

void nn_spec_fuse(nn_spec *spec) {
    for (int i = 0; i < spec->n; i++) {
        nn_spec_layer *bn = &spec->layer[i];
        if (bn->kind != NN_KIND_BN || bn->relu || bn->n_in != 1) continue;
        int next;
        if (consumers(spec, i, &next) != 1) continue;
        if (spec->layer[next].kind == NN_KIND_ADD) {
            int add = next;
            const nn_spec_layer *a = &spec->layer[add];
            if (consumers(spec, add, &next) != 1 || spec->layer[next].kind != NN_KIND_RELU)
                continue;
            /* The skip must be ready when the bn runs: computed before it. */
            int skip = a->in[0] == i ? a->in[1] : a->in[0];
            if (skip >= i) continue;
            bn->n_in = 2;
            bn->in[1] = skip;
            bn->relu = 1;
            spec->layer[add].in[0] = i;       /* so that removing it leaves its readers on the bn */
            nn_spec_remove_layer(spec, next); /* the relu: its readers read the add */
            nn_spec_remove_layer(spec, add);  /* the add: its readers read the bn */
        } else if (spec->layer[next].kind == NN_KIND_RELU) {
            bn->relu = 1;
            nn_spec_remove_layer(spec, next);
        }
    }
}

int nn_spec_for_model(const char *model, nn_spec *spec, char *err, size_t errlen) {
    const nn_builtin_model *b = nn_find_builtin_model(model);
    if (b) return nn_spec_parse(b->text, strlen(b->text), model, spec, err, errlen);
    if (!strchr(model, '/') && !strchr(model, '.')) {
        char names[256] = "";
        for (int i = 0; i < nn_builtin_model_count; i++)
            snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? ", " : "",
                     nn_builtin_models[i].name);
        snprintf(err, errlen, "unknown model '%s' (built-in: %s; or a description file)", model,
                 names);
        return -1;
    }
    uint8_t *text;
    size_t len;
    if (read_whole_file(model, NN_MAX_SPEC_LEN, "network description", &text, &len, err, errlen))
        return -1;
    int rc = nn_spec_parse((const char *)text, len, model, spec, err, errlen);
    free(text);
    return rc;
}
