/* Every bad input gets its own status code, from every entry point, and no
 * output (y, dx, saved and running statistics, gradients) is touched. */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bnorm.h"
#include "check.h"

#define T_MAX    4096
#define F_MAX    64
#define SENTINEL 12345.0f

enum { OP_TRAIN, OP_INFER, OP_BWD_TRAIN, OP_BWD_INFER, OP_COUNT };
static const char *OP_NAMES[] = {"forward_training", "forward_inference", "backward_training",
                                 "backward_inference"};

typedef struct {
    bnorm_shape shape;
    bnorm_params params;
    const float *x, *dy, *gamma, *beta, *mean, *var;
    float *y, *smean, *sinv, *dgamma, *dbeta;
    bnorm_running_stats *running;
    void *ws;
    size_t ws_size;
} call;

static float X[T_MAX], DY[T_MAX], G[F_MAX], B[F_MAX], M[F_MAX], V[F_MAX];
static float OUT[T_MAX], SMEAN[F_MAX], SINV[F_MAX], DG[F_MAX], DB[F_MAX], RM[F_MAX], RV[F_MAX];
static unsigned char WS[1 << 16];
static bnorm_running_stats RUN;

static call good_call(void) {
    call c;
    c.shape = bnorm_shape_nchw(4, 3, 2, 5);
    c.params = bnorm_params_default();
    c.x = X, c.dy = DY, c.gamma = G, c.beta = B, c.mean = M, c.var = V;
    c.y = OUT, c.smean = SMEAN, c.sinv = SINV, c.dgamma = DG, c.dbeta = DB;
    RUN.mean = RM, RUN.var = RV, RUN.count = 7;
    c.running = &RUN;
    c.ws = WS, c.ws_size = sizeof WS;
    return c;
}

static void fill_sentinels(void) {
    for (int i = 0; i < T_MAX; i++)
        OUT[i] = SENTINEL;
    for (int i = 0; i < F_MAX; i++)
        SMEAN[i] = SINV[i] = DG[i] = DB[i] = RM[i] = RV[i] = SENTINEL;
    RUN.count = 7;
}

static int untouched(void) {
    for (int i = 0; i < T_MAX; i++)
        if (OUT[i] != SENTINEL) return 0;
    for (int i = 0; i < F_MAX; i++)
        if (SMEAN[i] != SENTINEL || SINV[i] != SENTINEL || DG[i] != SENTINEL || DB[i] != SENTINEL ||
            RM[i] != SENTINEL || RV[i] != SENTINEL)
            return 0;
    return RUN.count == 7;
}

static bnorm_status invoke(int op, const call *c) {
    switch (op) {
    case OP_TRAIN:
        return bnorm_forward_training(&c->shape, &c->params, c->x, c->gamma, c->beta, c->y,
                                      c->smean, c->sinv, c->running, c->ws, c->ws_size);
    case OP_INFER:
        return bnorm_forward_inference(&c->shape, &c->params, c->x, c->gamma, c->beta, c->mean,
                                       c->var, c->y, c->ws, c->ws_size);
    case OP_BWD_TRAIN:
        return bnorm_backward_training(&c->shape, &c->params, c->x, c->dy, c->gamma, c->mean,
                                       c->var, c->y, c->dgamma, c->dbeta, c->ws, c->ws_size);
    default:
        return bnorm_backward_inference(&c->shape, &c->params, c->x, c->dy, c->gamma, c->mean,
                                        c->var, c->y, c->dgamma, c->dbeta, c->ws, c->ws_size);
    }
}

/* Runs `c` through the ops in `mask`, expecting `want` and untouched outputs. */
static void expect(const char *what, unsigned mask, const call *c, bnorm_status want) {
    for (int op = 0; op < OP_COUNT; op++) {
        if (!(mask & (1u << op))) continue;
        fill_sentinels();
        bnorm_status got = invoke(op, c);
        CHECK(got == want, "%s, %s: got %d (%s), want %d (%s)", what, OP_NAMES[op], got,
              bnorm_status_str(got), want, bnorm_status_str(want));
        CHECK(untouched(), "%s, %s: an output was written on error", what, OP_NAMES[op]);
    }
}

#define ALL      0xFu
#define TRAINING ((1u << OP_TRAIN) | (1u << OP_BWD_TRAIN))

int main(void) {
    for (int i = 0; i < T_MAX; i++)
        X[i] = (float)(i % 7), DY[i] = 1.0f;
    for (int i = 0; i < F_MAX; i++)
        G[i] = 1.0f, B[i] = 0.0f, M[i] = 0.5f, V[i] = 2.0f;

    /* The good call works: the harness itself can tell success. */
    for (int op = 0; op < OP_COUNT; op++) {
        call c = good_call();
        fill_sentinels();
        CHECK(invoke(op, &c) == BNORM_OK, "good call fails for %s", OP_NAMES[op]);
        CHECK(!untouched(), "good call for %s wrote nothing", OP_NAMES[op]);
    }

    call c;
    /* NULL pointers, one at a time. */
    c = good_call(), c.x = NULL, expect("x NULL", ALL, &c, BNORM_ERR_NULL_POINTER);
    c = good_call(), c.y = NULL, expect("y/dx NULL", ALL, &c, BNORM_ERR_NULL_POINTER);
    c = good_call(), c.gamma = NULL;
    expect("gamma NULL with USE_SCALE", ALL, &c, BNORM_ERR_NULL_POINTER);
    c = good_call(), c.beta = NULL;
    expect("beta NULL with USE_SHIFT", (1u << OP_TRAIN) | (1u << OP_INFER), &c,
           BNORM_ERR_NULL_POINTER);
    c = good_call(), c.smean = NULL,
    expect("save_mean NULL", 1u << OP_TRAIN, &c, BNORM_ERR_NULL_POINTER);
    c = good_call(), c.sinv = NULL,
    expect("save_invstd NULL", 1u << OP_TRAIN, &c, BNORM_ERR_NULL_POINTER);
    c = good_call(), c.mean = NULL;
    expect("mean NULL", (1u << OP_INFER) | (1u << OP_BWD_TRAIN) | (1u << OP_BWD_INFER), &c,
           BNORM_ERR_NULL_POINTER);
    c = good_call(), c.var = NULL;
    expect("var/invstd NULL", (1u << OP_INFER) | (1u << OP_BWD_TRAIN) | (1u << OP_BWD_INFER), &c,
           BNORM_ERR_NULL_POINTER);
    c = good_call(), c.dy = NULL;
    expect("dy NULL", (1u << OP_BWD_TRAIN) | (1u << OP_BWD_INFER), &c, BNORM_ERR_NULL_POINTER);
    c = good_call(), c.dgamma = NULL;
    expect("dgamma NULL", (1u << OP_BWD_TRAIN) | (1u << OP_BWD_INFER), &c, BNORM_ERR_NULL_POINTER);
    c = good_call(), c.dbeta = NULL;
    expect("dbeta NULL", (1u << OP_BWD_TRAIN) | (1u << OP_BWD_INFER), &c, BNORM_ERR_NULL_POINTER);
    c = good_call(), c.ws = NULL, expect("workspace NULL", ALL, &c, BNORM_ERR_NULL_POINTER);
    {
        bnorm_running_stats bad = {RM, NULL, 7};
        c = good_call(), c.running = &bad;
        expect("running->var NULL", 1u << OP_TRAIN, &c, BNORM_ERR_NULL_POINTER);
    }
    {
        size_t n = 0;
        CHECK(bnorm_workspace_size(NULL, &c.params, &n) == BNORM_ERR_NULL_POINTER, "shape NULL");
        CHECK(bnorm_workspace_size(&c.shape, NULL, &n) == BNORM_ERR_NULL_POINTER, "params NULL");
        CHECK(bnorm_workspace_size(&c.shape, &c.params, NULL) == BNORM_ERR_NULL_POINTER,
              "bytes NULL");
        CHECK(bnorm_feature_count(&c.shape, &c.params, NULL) == BNORM_ERR_NULL_POINTER,
              "features NULL");
    }

    /* Dimensions. */
    c = good_call(), c.shape.n = 0, expect("N = 0", ALL, &c, BNORM_ERR_INVALID_DIMENSION);
    c = good_call(), c.shape.c = -3, expect("C < 0", ALL, &c, BNORM_ERR_INVALID_DIMENSION);
    c = good_call(), c.shape.spatial[1] = 0, expect("W = 0", ALL, &c, BNORM_ERR_INVALID_DIMENSION);
    c = good_call(), c.shape.spatial[0] = -1;
    expect("H < 0", ALL, &c, BNORM_ERR_INVALID_DIMENSION);
    c = good_call(), c.shape.n = INT64_MAX / 2, c.shape.c = 1 << 20;
    expect("N*C*S overflows", ALL, &c, BNORM_ERR_DIMENSION_OVERFLOW);
    c = good_call(), c.shape.spatial[0] = INT64_MAX, c.shape.spatial[1] = 3;
    expect("S overflows", ALL, &c, BNORM_ERR_DIMENSION_OVERFLOW);
    c = good_call(), c.shape.spatial_rank = BNORM_MAX_SPATIAL + 1;
    expect("rank too large", ALL, &c, BNORM_ERR_INVALID_RANK);
    c = good_call(), c.shape.spatial_rank = -1;
    expect("rank negative", ALL, &c, BNORM_ERR_INVALID_RANK);

    /* Layout and mode. */
    c = good_call(), c.shape.layout = (bnorm_layout)7;
    expect("unknown layout", ALL, &c, BNORM_ERR_INVALID_LAYOUT);
    c = good_call(), c.shape.layout = BNORM_LAYOUT_NC;
    expect("NC with spatial dims", ALL, &c, BNORM_ERR_INVALID_LAYOUT);
    c = good_call(), c.params.mode = (bnorm_mode)2;
    expect("unknown mode", ALL, &c, BNORM_ERR_INVALID_MODE);

    /* Parameters. */
    const float bad_eps[] = {0.0f, -1e-5f, NAN, INFINITY};
    for (int i = 0; i < 4; i++) {
        c = good_call(), c.params.eps = bad_eps[i];
        expect("bad eps", ALL, &c, BNORM_ERR_INVALID_EPS);
    }
    const float bad_decay[] = {-0.01f, 1.01f, NAN, -INFINITY};
    for (int i = 0; i < 4; i++) {
        c = good_call(), c.params.decay = bad_decay[i];
        expect("bad decay", ALL, &c, BNORM_ERR_INVALID_DECAY);
    }
    c = good_call(), c.params.flags |= 0x100u;
    expect("unknown flag", ALL, &c, BNORM_ERR_INVALID_FLAGS);
    c = good_call(), c.params.threads = -2;
    expect("negative threads", ALL, &c, BNORM_ERR_INVALID_THREADS);
    /* Asked of the OpenMP runtime, INT_MAX threads made it print "out of
     * memory" and exit the process. */
    c = good_call(), c.params.threads = INT_MAX, c.params.flags |= BNORM_EXACT_THREADS;
    expect("INT_MAX threads", ALL, &c, BNORM_ERR_INVALID_THREADS);
    c = good_call(), c.params.threads = BNORM_MAX_THREADS + 1;
    expect("BNORM_MAX_THREADS + 1 threads", ALL, &c, BNORM_ERR_INVALID_THREADS);

    /* One value per feature: training is undefined, inference is fine. */
    c = good_call(), c.shape = bnorm_shape_nc(1, 5);
    expect("NC with N = 1", TRAINING, &c, BNORM_ERR_SINGLE_VALUE);
    c = good_call(), c.shape = bnorm_shape_nchw(1, 5, 1, 1);
    expect("NCHW 1x5x1x1", TRAINING, &c, BNORM_ERR_SINGLE_VALUE);
    c = good_call(), c.shape = bnorm_shape_nhwc(1, 1, 1, 5);
    expect("NHWC 1x1x1x5", TRAINING, &c, BNORM_ERR_SINGLE_VALUE);
    c = good_call(), c.shape = bnorm_shape_nchw(1, 5, 2, 2),
    c.params.mode = BNORM_MODE_PER_ACTIVATION;
    expect("per-activation with N = 1", TRAINING, &c, BNORM_ERR_SINGLE_VALUE);
    c = good_call(), c.shape = bnorm_shape_nc(1, 5);
    fill_sentinels();
    CHECK(invoke(OP_INFER, &c) == BNORM_OK, "inference on a batch of one must work");
    CHECK(invoke(OP_BWD_INFER, &c) == BNORM_OK, "frozen backward on a batch of one must work");

    /* Workspace. */
    {
        c = good_call();
        size_t need = 0;
        CHECK(bnorm_workspace_size(&c.shape, &c.params, &need) == BNORM_OK && need > 0,
              "workspace size");
        c.ws_size = need - 1;
        expect("workspace one byte short", ALL, &c, BNORM_ERR_WORKSPACE_TOO_SMALL);
        c.ws_size = need;
        fill_sentinels();
        CHECK(invoke(OP_TRAIN, &c) == BNORM_OK, "exactly the reported workspace must do");
    }

    /* Every code has its own message, and unknown codes are named too. */
    for (int a = 0; a <= BNORM_ERR_WORKSPACE_TOO_SMALL; a++) {
        const char *sa = bnorm_status_str((bnorm_status)a);
        CHECK(sa && *sa && strcmp(sa, "unknown status code") != 0, "status %d has no message", a);
        for (int b = 0; b < a; b++)
            CHECK(strcmp(sa, bnorm_status_str((bnorm_status)b)) != 0,
                  "statuses %d and %d share "
                  "a message",
                  a, b);
    }
    CHECK(strcmp(bnorm_status_str((bnorm_status)999), "unknown status code") == 0,
          "unknown status");
    return check_finish();
}
