/* The whole network's gradient against central finite differences, for the
 * MLP and the CNN with BN before ReLU, after ReLU and without BN: every
 * layer's backward pass (dense, conv, max-pool, ReLU, batch norm, softmax
 * cross-entropy) lies on the path to the first layer's weights. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "nn.h"
#include "one.h"
#include "oracle.h"
#include "train.h"

#define BATCH 6

/* A batch of BATCH hw x hw inputs drawn from rng, and labels
 * (i + shift) * mult % 10. */
static void random_batch(float *x, uint8_t *y, int hw, int mult, int shift, test_rng *rng) {
    for (int i = 0; i < BATCH * hw * hw; i++)
        x[i] = (float)rng_normal(rng);
    for (int i = 0; i < BATCH; i++)
        y[i] = (uint8_t)((i + shift) * mult % 10);
}

static double loss_at(nn_net *net, const float *x, const uint8_t *y) {
    nn_forward(net, x, BATCH, 1);
    return nn_loss(net, y, BATCH, NULL);
}

static void check_net(const char *arch, nn_bn_place bn, test_rng *rng) {
    nn_net net;
    char err[256];
    int hw = 8;
    CHECK(nn_build_model(&net, arch, bn, hw, hw, 1, 10, BATCH, 1, err, sizeof err) == 0, "%s", err);
    nn_init_params(&net, 5);
    for (int i = 0; i < net.n_tensors; i++) /* non-trivial gamma and beta */
        if (net.tensors[i].trainable && net.tensors[i].rank == 1)
            for (size_t k = 0; k < net.tensors[i].size; k++)
                net.tensors[i].value[k] += (float)(0.3 * rng_normal(rng));
    float x[BATCH * 64];
    uint8_t y[BATCH];
    random_batch(x, y, hw, 3, 0, rng);
    loss_at(&net, x, y);
    nn_backward(&net, x, BATCH);
    /* Per tensor, the derivative along a random direction: sampling single
     * entries drowns in float rounding, a direction sums enough signal. */
    for (int t = 0; t < net.n_tensors; t++) {
        nn_tensor *T = &net.tensors[t];
        if (!T->trainable) continue;
        float *keep = malloc(T->size * sizeof(float)), *dir = malloc(T->size * sizeof(float));
        double ana = 0.0, scale = 0.0;
        for (size_t k = 0; k < T->size; k++) {
            keep[k] = T->value[k];
            dir[k] = (float)rng_normal(rng);
            ana += (double)T->grad[k] * dir[k];
            scale += fabs((double)T->grad[k] * dir[k]);
        }
        double h = 1e-4;
        for (size_t k = 0; k < T->size; k++)
            T->value[k] = keep[k] + (float)h * dir[k];
        double lp = loss_at(&net, x, y);
        for (size_t k = 0; k < T->size; k++)
            T->value[k] = keep[k] - (float)h * dir[k];
        double lm = loss_at(&net, x, y);
        for (size_t k = 0; k < T->size; k++)
            T->value[k] = keep[k];
        double num = (lp - lm) / (2.0 * h);
        CHECK(fabs(num - ana) <= 1e-2 * scale + 1e-5,
              "%s bn=%d %s: analytic %.6g, finite differences %.6g (scale %.3g)", arch, bn, T->name,
              ana, num, scale);
        free(keep), free(dir);
    }
    nn_free(&net);
}

/* The batch split over threads: 1 thread against 3 and 4 on a batch of 6
 * (slices of 2 and of 1-2 samples; rows of the dense weight gradients split
 * unevenly too, and the conv weight gradients summed from per-slice
 * partials; on 3 threads the convolutions go one sample at a time through
 * their im2col scratch). Logits and every gradient agree up to float
 * rounding. */
static void check_slices(const char *arch, test_rng *rng) {
    nn_net one, many;
    char err[256];
    int hw = 8;
    float x[BATCH * 64];
    uint8_t y[BATCH];
    random_batch(x, y, hw, 7, 0, rng);
    CHECK(nn_build_model(&one, arch, NN_BN_KEEP, hw, hw, 1, 10, BATCH, 1, err, sizeof err) == 0,
          "%s", err);
    nn_init_params(&one, 9);
    float z1[BATCH * 10];
    memcpy(z1, nn_forward(&one, x, BATCH, 1), sizeof z1);
    nn_loss(&one, y, BATCH, NULL);
    nn_backward(&one, x, BATCH);
    for (int threads = 3; threads <= 4; threads++) {
        CHECK(nn_build_model(&many, arch, NN_BN_KEEP, hw, hw, 1, 10, BATCH, threads, err,
                             sizeof err) == 0,
              "%s", err);
        nn_init_params(&many, 9);
        if (threads == 3) many.conv_chunk_bytes = 1; /* convolutions one sample at a time */
        const float *zt = nn_forward(&many, x, BATCH, 1);
        nn_loss(&many, y, BATCH, NULL);
        nn_backward(&many, x, BATCH);
        double worst = 0.0;
        for (int k = 0; k < BATCH * 10; k++)
            worst = fmax(worst, fabs((double)z1[k] - zt[k]) / (1.0 + fabs((double)z1[k])));
        CHECK(worst < 1e-5, "%s %d threads: logits differ by %.3g", arch, threads, worst);
        for (int t = 0; t < one.n_tensors; t++) {
            const nn_tensor *a = &one.tensors[t], *b = &many.tensors[t];
            if (!a->trainable) continue;
            double amax = 0.0, diff = 0.0;
            for (size_t k = 0; k < a->size; k++) {
                amax = fmax(amax, fabs((double)a->grad[k]));
                diff = fmax(diff, fabs((double)a->grad[k] - b->grad[k]));
            }
            CHECK(amax > 0.0 && diff <= 1e-5 * amax,
                  "%s %d threads: %s gradient differs by %.3g of %.3g", arch, threads, a->name,
                  diff, amax);
        }
        nn_free(&many);
    }
    nn_free(&one);
}

/* Test mode, one sample at a time: a dense-only network takes its own path
 * (weight rows split over threads, partial sums exchanged between them),
 * checked against the batched test-mode forward (GEMMs) of the same network
 * on 1 to 4 threads, for each place of BN, with running statistics and
 * parameters that training has moved away from their initial values. The
 * CNN, which takes the batched path for one sample too, is checked the same
 * way. */
static void check_single_sample(const char *arch, nn_bn_place bn, test_rng *rng) {
    char err[256];
    int hw = 8;
    float x[BATCH * 64];
    uint8_t y[BATCH];
    random_batch(x, y, hw, 3, 0, rng);
    for (int threads = 1; threads <= 4; threads++) {
        /* workers 0: as nn_build chose (one per slice, at most one per CPU);
         * then fewer, each running several slices: the same bits. */
        float first[2 * BATCH * 10];
        for (int workers = 0; workers < threads; workers++) {
            nn_net net;
            CHECK(nn_build_model(&net, arch, bn, hw, hw, 1, 10, BATCH, threads, err, sizeof err) ==
                      0,
                  "%s", err);
            if (workers) nn_one_set_workers(&net, workers);
            nn_init_params(&net, 5);
            nn_optim opt = {NN_SGD, 0.05f, 0.9f, 0.0f, 0.0f, 0.0f, 0.0f};
            for (int step = 0; step < 3; step++) {
                nn_forward(&net, x, BATCH, 1);
                nn_loss(&net, y, BATCH, NULL);
                nn_backward(&net, x, BATCH);
                nn_step(&net, &opt);
            }
            float zb[BATCH * 10], zs[2 * BATCH * 10];
            memcpy(zb, nn_forward(&net, x, BATCH, 0), sizeof zb);
            double worst = 0.0;
            int refused = 0;
            for (int round = 0; round < 2; round++) /* the stage counters move on between calls */
                for (int b = 0; b < BATCH; b++) {
                    const float *z = nn_forward(&net, x + b * hw * hw, 1, 0);
                    if (!z) {
                        refused = 1;
                        continue;
                    }
                    memcpy(zs + (round * BATCH + b) * 10, z, 10 * sizeof(float));
                    for (int k = 0; k < 10; k++)
                        worst = fmax(worst, fabs((double)z[k] - zb[b * 10 + k]) /
                                                (1.0 + fabs((double)zb[b * 10 + k])));
                }
            CHECK(!refused, "%s: one sample refused", arch);
            CHECK(worst < 1e-5, "%s bn %d, %d threads: one sample differs by %.3g", arch, (int)bn,
                  threads, worst);
            if (workers == 0)
                memcpy(first, zs, sizeof first);
            else
                CHECK(memcmp(first, zs, sizeof first) == 0,
                      "%s bn %d, %d threads: %d workers give other bits", arch, (int)bn, threads,
                      workers);
            nn_free(&net);
        }
    }
}

/* SGD with the gradient GEMMs writing into the momentum buffers
 * (nn_backward_sgd + nn_step) against the update computed here in double
 * from nn_backward's plain gradients, over three steps so that the
 * momentum carried from one step to the next is exercised too. */
static void check_fused_sgd(const char *arch, int threads, test_rng *rng) {
    nn_net plain, fused;
    char err[256];
    int hw = 8;
    nn_optim opt = {NN_SGD, 0.05f, 0.9f, 0.9f, 0.999f, 1e-8f, 0.0f};
    CHECK(nn_build_model(&plain, arch, NN_BN_KEEP, hw, hw, 1, 10, BATCH, threads, err,
                         sizeof err) == 0,
          "%s", err);
    CHECK(nn_build_model(&fused, arch, NN_BN_KEEP, hw, hw, 1, 10, BATCH, threads, err,
                         sizeof err) == 0,
          "%s", err);
    nn_init_params(&plain, 3);
    nn_init_params(&fused, 3);
    double *vel = calloc(plain.arena_size, sizeof(double));
    float x[BATCH * 64];
    uint8_t y[BATCH];
    for (int step = 0; step < 3; step++) {
        random_batch(x, y, hw, 3, step, rng);
        /* The plain network follows the fused one's weights, so both take
         * gradients at the same point; the oracle keeps its own velocity. */
        memcpy(plain.arena, fused.arena, plain.arena_size * sizeof(float));
        nn_forward(&plain, x, BATCH, 1);
        nn_loss(&plain, y, BATCH, NULL);
        nn_backward(&plain, x, BATCH);
        nn_forward(&fused, x, BATCH, 1);
        nn_loss(&fused, y, BATCH, NULL);
        nn_backward_sgd(&fused, x, BATCH, opt.momentum);
        nn_step(&fused, &opt);
        size_t off = 0;
        for (int t = 0; t < plain.n_tensors; t++) {
            const nn_tensor *a = &plain.tensors[t], *b = &fused.tensors[t];
            double worst = 0.0, amax = 0.0;
            for (size_t k = 0; a->trainable && k < a->size; k++) {
                double *v = vel + off + k;
                *v = 0.9 * *v + a->grad[k];
                double want = (double)a->value[k] - 0.05 * *v;
                amax = fmax(amax, fabs(*v));
                worst = fmax(worst, fabs(want - b->value[k]) / (1.0 + fabs(want)));
            }
            off += a->size;
            CHECK(worst <= 1e-6, "%s %d threads step %d: fused SGD %s off by %.3g (velocity %.3g)",
                  arch, threads, step, a->name, worst, amax);
        }
    }
    free(vel);
    nn_free(&plain), nn_free(&fused);
}

/* Training refuses data and batches that do not fit the network, with a
 * message, instead of reading past its buffers. */
static void check_train_refuses(void) {
    nn_net net;
    char err[512] = "";
    CHECK(nn_build_model(&net, "mlp", NN_BN_KEEP, 8, 8, 1, 10, 16, 1, err, sizeof err) == 0, "%s",
          err);
    float x[32 * 64] = {0};
    uint8_t y[32] = {0};
    nn_data good = {32, 8, 8, x, y}, wrong = {32, 4, 16, x, y}, small = {32, 4, 4, x, y};
    nn_train_config cfg = {.epochs = 1,
                           .batch = 32,
                           .opt = {NN_SGD, 0.01f, 0.9f, 0.9f, 0.999f, 1e-8f, 0.0f},
                           .seed = 1,
                           .label = "t"};
    static nn_train_result res;
    CHECK(nn_train(&net, &good, &good, &cfg, &res, err, sizeof err) == -1 &&
              strstr(err, "batches of 32"),
          "a batch above max_batch: '%s'", err);
    cfg.batch = 16;
    CHECK(nn_train(&net, &small, &small, &cfg, &res, err, sizeof err) == -1 && strstr(err, "4x4"),
          "smaller images: '%s'", err);
    CHECK(nn_train(&net, &good, &wrong, &cfg, &res, err, sizeof err) == -1,
          "test images of another shape accepted");
    CHECK(nn_train(&net, &good, &good, &cfg, &res, err, sizeof err) == 0, "fitting data: %s", err);
    nn_train_result_free(&res);
    nn_free(&net);
}

int main(void) {
    test_rng rng = {31337};
    const char *archs[] = {"mlp", "cnn"};
    /* This order of placements draws the random numbers that the kinks of
     * ReLU and max-pool leave alone in the finite differences. */
    const nn_bn_place places[] = {NN_BN_NONE, NN_BN_KEEP, NN_BN_AFTER};
    for (int a = 0; a < 2; a++)
        for (int bn = 0; bn < 3; bn++)
            check_net(archs[a], places[bn], &rng);
    for (int a = 0; a < 2; a++)
        check_slices(archs[a], &rng);
    for (int a = 0; a < 2; a++)
        for (int bn = 0; bn < 3; bn++)
            check_single_sample(archs[a], places[bn], &rng);
    for (int a = 0; a < 2; a++)
        for (int threads = 1; threads <= 3; threads += 2)
            check_fused_sgd(archs[a], threads, &rng);
    check_train_refuses();
    return check_finish();
}
