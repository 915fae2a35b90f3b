/* Results against fixtures computed by PyTorch (see
 * fixtures/make_torch_fixtures.py): training forward with several steps of
 * running statistics (exponential and cumulative, unbiased and biased),
 * inference, training backward and frozen backward, in NC, channels-first
 * and channels-last, 4-D and 5-D. Every kernel path is compared. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bnorm.h"
#include "check.h"

#define TOL        1e-5
#define MAX_ARRAYS 32

typedef struct {
    char name[32];
    size_t count;
    float *v;
} array;

typedef struct {
    char name[64], kind[16], layout[8], mode[16], flags[32], spatial[64];
    double eps, decay;
    int steps;
    long n, c;
    array arrays[MAX_ARRAYS];
    int narrays;
} fixture;

static const float *get(const fixture *fx, const char *name, size_t want) {
    for (int i = 0; i < fx->narrays; i++)
        if (strcmp(fx->arrays[i].name, name) == 0) {
            CHECK(fx->arrays[i].count == want, "%s: array %s has %zu values, want %zu", fx->name,
                  name, fx->arrays[i].count, want);
            return fx->arrays[i].count == want ? fx->arrays[i].v : NULL;
        }
    CHECK(0, "%s: array %s missing", fx->name, name);
    return NULL;
}

static double rel_err(const float *a, const float *b, size_t n) {
    double e = 0.0, s = 1e-30;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        e = (d > e || isnan(d)) ? d : e;
        s = fmax(s, fabs(b[i]));
    }
    return e / s;
}

#define EXPECT_CLOSE(fx, what, got, want, n)                                                       \
    do {                                                                                           \
        const float *w_ = (want);                                                                  \
        if (w_) {                                                                                  \
            double e_ = rel_err(got, w_, n);                                                       \
            CHECK(e_ <= TOL, "%s (%s): %s differs from PyTorch by %.3g", fx->name, path, what,     \
                  e_);                                                                             \
        }                                                                                          \
    } while (0)

static bnorm_shape shape_of(const fixture *fx) {
    bnorm_shape s = {0};
    s.layout = strcmp(fx->layout, "nc") == 0   ? BNORM_LAYOUT_NC
               : strcmp(fx->layout, "cf") == 0 ? BNORM_LAYOUT_CHANNELS_FIRST
                                               : BNORM_LAYOUT_CHANNELS_LAST;
    s.n = fx->n;
    s.c = fx->c;
    if (strcmp(fx->spatial, "-") != 0) {
        const char *p = fx->spatial;
        while (*p) {
            s.spatial[s.spatial_rank++] = strtol(p, (char **)&p, 10);
            if (*p == ',') p++;
        }
    }
    return s;
}

static void run_fixture(const fixture *fx, int path_id) {
    const char *path = path_id == 0   ? "reference"
                       : path_id == 1 ? "fast, 1 thread"
                                      : "fast, 2 threads";
    bnorm_shape shape = shape_of(fx);
    bnorm_params p = bnorm_params_default();
    p.mode = strcmp(fx->mode, "spatial") == 0 ? BNORM_MODE_SPATIAL : BNORM_MODE_PER_ACTIVATION;
    p.eps = (float)fx->eps;
    p.decay = (float)fx->decay;
    p.threads = path_id == 2 ? 2 : 1;
    if (path_id == 0) p.flags |= BNORM_FORCE_REFERENCE;
    if (strstr(fx->flags, "biased")) p.flags |= BNORM_RUNNING_VAR_BIASED;
    if (strstr(fx->flags, "cumulative")) p.flags |= BNORM_RUNNING_CUMULATIVE;
    size_t F = 0, wsz = 0;
    CHECK(bnorm_feature_count(&shape, &p, &F) == BNORM_OK, "%s: bad shape", fx->name);
    bnorm_workspace_size(&shape, &p, &wsz);
    size_t T = (size_t)fx->n * (size_t)fx->c;
    for (int i = 0; i < shape.spatial_rank; i++)
        T *= (size_t)shape.spatial[i];
    void *ws = malloc(wsz);
    float *out = malloc(T * 4), *f1 = malloc(F * 4), *f2 = malloc(F * 4), *f3 = malloc(F * 4);
    float *f4 = malloc(F * 4);
    const float *gamma = get(fx, "gamma", F), *beta = get(fx, "beta", F);
    char nm[32];
    if (!gamma || !beta) goto done;

    if (strcmp(fx->kind, "train") == 0) {
        for (size_t f = 0; f < F; f++)
            f3[f] = 0.0f, f4[f] = 1.0f;
        bnorm_running_stats run = {f3, f4, 0};
        for (int k = 0; k < fx->steps; k++) {
            snprintf(nm, sizeof nm, "x%d", k);
            const float *x = get(fx, nm, T);
            if (!x) break;
            bnorm_status st =
                bnorm_forward_training(&shape, &p, x, gamma, beta, out, f1, f2, &run, ws, wsz);
            CHECK(st == BNORM_OK, "%s: %s", fx->name, bnorm_status_str(st));
            snprintf(nm, sizeof nm, "y%d", k);
            EXPECT_CLOSE(fx, nm, out, get(fx, nm, T), T);
            snprintf(nm, sizeof nm, "mean%d", k);
            EXPECT_CLOSE(fx, nm, f1, get(fx, nm, F), F);
            snprintf(nm, sizeof nm, "invstd%d", k);
            EXPECT_CLOSE(fx, nm, f2, get(fx, nm, F), F);
            snprintf(nm, sizeof nm, "running_mean%d", k);
            EXPECT_CLOSE(fx, nm, f3, get(fx, nm, F), F);
            snprintf(nm, sizeof nm, "running_var%d", k);
            EXPECT_CLOSE(fx, nm, f4, get(fx, nm, F), F);
        }
    } else if (strcmp(fx->kind, "infer") == 0) {
        const float *x = get(fx, "x0", T), *mean = get(fx, "mean", F), *var = get(fx, "var", F);
        if (x && mean && var) {
            bnorm_status st =
                bnorm_forward_inference(&shape, &p, x, gamma, beta, mean, var, out, ws, wsz);
            CHECK(st == BNORM_OK, "%s: %s", fx->name, bnorm_status_str(st));
            EXPECT_CLOSE(fx, "y", out, get(fx, "y0", T), T);
        }
    } else {
        const float *x = get(fx, "x0", T), *dy = get(fx, "dy", T);
        if (!x || !dy) goto done;
        bnorm_status st;
        if (strcmp(fx->kind, "bwd_train") == 0) {
            float *y = malloc(T * 4), *sm = malloc(F * 4), *si = malloc(F * 4);
            st = bnorm_forward_training(&shape, &p, x, gamma, beta, y, sm, si, NULL, ws, wsz);
            if (st == BNORM_OK)
                st =
                    bnorm_backward_training(&shape, &p, x, dy, gamma, sm, si, out, f1, f2, ws, wsz);
            free(y), free(sm), free(si);
        } else {
            const float *mean = get(fx, "mean", F), *var = get(fx, "var", F);
            if (!mean || !var) goto done;
            st =
                bnorm_backward_inference(&shape, &p, x, dy, gamma, mean, var, out, f1, f2, ws, wsz);
        }
        CHECK(st == BNORM_OK, "%s: %s", fx->name, bnorm_status_str(st));
        EXPECT_CLOSE(fx, "dx", out, get(fx, "dx", T), T);
        EXPECT_CLOSE(fx, "dgamma", f1, get(fx, "dgamma", F), F);
        EXPECT_CLOSE(fx, "dbeta", f2, get(fx, "dbeta", F), F);
    }
done:
    free(ws), free(out), free(f1), free(f2), free(f3), free(f4);
}

static void free_fixture(fixture *fx) {
    for (int i = 0; i < fx->narrays; i++)
        free(fx->arrays[i].v);
    fx->narrays = 0;
}

/* Parses "key=value" tokens of a case line. */
static void parse_header(fixture *fx, char *line) {
    memset(fx, 0, sizeof *fx);
    char *tok = strtok(line, " \n");
    tok = strtok(NULL, " \n");
    snprintf(fx->name, sizeof fx->name, "%s", tok ? tok : "?");
    while ((tok = strtok(NULL, " \n"))) {
        char *eq = strchr(tok, '=');
        if (!eq) continue;
        *eq = 0;
        const char *v = eq + 1;
        if (!strcmp(tok, "kind")) snprintf(fx->kind, sizeof fx->kind, "%s", v);
        if (!strcmp(tok, "layout")) snprintf(fx->layout, sizeof fx->layout, "%s", v);
        if (!strcmp(tok, "mode")) snprintf(fx->mode, sizeof fx->mode, "%s", v);
        if (!strcmp(tok, "flags")) snprintf(fx->flags, sizeof fx->flags, "%s", v);
        if (!strcmp(tok, "spatial")) snprintf(fx->spatial, sizeof fx->spatial, "%s", v);
        if (!strcmp(tok, "eps")) fx->eps = atof(v);
        if (!strcmp(tok, "decay")) fx->decay = atof(v);
        if (!strcmp(tok, "steps")) fx->steps = atoi(v);
        if (!strcmp(tok, "n")) fx->n = atol(v);
        if (!strcmp(tok, "c")) fx->c = atol(v);
    }
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s torch_bn.txt\n", argv[0]);
        return 2;
    }
    FILE *f = fopen(argv[1], "r");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", argv[1]);
        return 2;
    }
    static char line[1 << 20];
    fixture fx;
    memset(&fx, 0, sizeof fx);
    int cases = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#') continue;
        if (strncmp(line, "case ", 5) == 0) {
            parse_header(&fx, line);
        } else if (strncmp(line, "end", 3) == 0) {
            for (int path = 0; path < 3; path++)
                run_fixture(&fx, path);
            free_fixture(&fx);
            cases++;
        } else if (fx.narrays < MAX_ARRAYS) {
            array *a = &fx.arrays[fx.narrays++];
            char *p = line;
            int used = 0;
            sscanf(p, "%31s %zu%n", a->name, &a->count, &used);
            p += used;
            a->v = malloc(a->count * sizeof(float));
            for (size_t i = 0; i < a->count; i++)
                a->v[i] = strtof(p, &p);
        }
    }
    fclose(f);
    CHECK(cases == 16, "expected 16 fixture cases, read %d", cases);
    printf("%d PyTorch cases\n", cases);
    return check_finish();
}
