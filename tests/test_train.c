/* The training protocol's pieces against what they are defined to be: the
 * learning-rate schedules at the points where their values are known in
 * closed form, and the augmentation's crops and mirror images pixel by
 * pixel; and an augmented, scheduled run that learns. */
#include <math.h>
#include <string.h>

#include "check.h"
#include "train.h"

static void check_schedules(void) {
    nn_train_config cfg = {.epochs = 10, .opt = {.lr = 0.2f}};
    long T = 1000; /* 100 steps per epoch */
    cfg.schedule = NN_LR_CONSTANT;
    CHECK(nn_scheduled_lr(&cfg, 0, T) == 0.2f && nn_scheduled_lr(&cfg, 999, T) == 0.2f, "constant");
    cfg.warmup_epochs = 2; /* 200 steps: step t gives lr (t + 1) / 200 */
    CHECK(fabsf(nn_scheduled_lr(&cfg, 0, T) - 0.001f) < 1e-9f &&
              fabsf(nn_scheduled_lr(&cfg, 99, T) - 0.1f) < 1e-7f &&
              nn_scheduled_lr(&cfg, 199, T) == 0.2f && nn_scheduled_lr(&cfg, 200, T) == 0.2f,
          "warm-up: %g %g %g", nn_scheduled_lr(&cfg, 0, T), nn_scheduled_lr(&cfg, 99, T),
          nn_scheduled_lr(&cfg, 199, T));
    cfg.schedule = NN_LR_COSINE; /* after warm-up: 0.1 (1 + cos(pi (t - 200) / 800)) */
    CHECK(fabsf(nn_scheduled_lr(&cfg, 200, T) - 0.2f) < 1e-7f &&
              fabsf(nn_scheduled_lr(&cfg, 600, T) - 0.1f) < 1e-7f &&
              fabsf(nn_scheduled_lr(&cfg, 400, T) - 0.1f * (1.0f + sqrtf(0.5f))) < 1e-6f &&
              nn_scheduled_lr(&cfg, 999, T) < 1e-5f,
          "cosine: %g %g %g %g", nn_scheduled_lr(&cfg, 200, T), nn_scheduled_lr(&cfg, 400, T),
          nn_scheduled_lr(&cfg, 600, T), nn_scheduled_lr(&cfg, 999, T));
    cfg.schedule = NN_LR_STEP, cfg.warmup_epochs = 0; /* /10 from epoch 5, /100 from epoch 7.5 */
    CHECK(nn_scheduled_lr(&cfg, 499, T) == 0.2f &&
              fabsf(nn_scheduled_lr(&cfg, 500, T) - 0.02f) < 1e-8f &&
              fabsf(nn_scheduled_lr(&cfg, 699, T) - 0.02f) < 1e-8f &&
              fabsf(nn_scheduled_lr(&cfg, 700, T) - 0.002f) < 1e-9f,
          "step: %g %g %g", nn_scheduled_lr(&cfg, 499, T), nn_scheduled_lr(&cfg, 500, T),
          nn_scheduled_lr(&cfg, 700, T));
}

static void check_augment(void) {
    enum { H = 5, W = 7 };
    float src[H * W], dst[H * W], back[H * W];
    for (int i = 0; i < H * W; i++)
        src[i] = (float)i;
    nn_augment_image(dst, src, H, W, 0, 0, 0, -1.0f);
    CHECK(memcmp(dst, src, sizeof src) == 0, "no shift, no flip: a copy");
    nn_augment_image(dst, src, H, W, 0, 0, 1, -1.0f);
    nn_augment_image(back, dst, H, W, 0, 0, 1, -1.0f);
    CHECK(memcmp(back, src, sizeof src) == 0 && dst[0] == src[W - 1] && dst[W + 2] == src[W + 4],
          "a mirror image, twice the original");
    int dy = 2, dx = -1, bad = 0;
    nn_augment_image(dst, src, H, W, dy, dx, 0, -1.0f);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            int sy = y + dy, sx = x + dx;
            float want = sy >= 0 && sy < H && sx >= 0 && sx < W ? (float)(sy * W + sx) : -1.0f;
            bad += dst[y * W + x] != want;
        }
    CHECK(bad == 0, "a crop shifted by (2, -1): %d pixels wrong", bad);
}

/* Four classes told apart by where a bright square sits; augmentation by
 * crops of 1 pixel and mirror images keeps that learnable, and a cosine
 * schedule with warm-up gets the MLP there. */
static void check_run(void) {
    enum { N = 400, S = 8 };
    static float x[N * S * S];
    static uint8_t y[N];
    for (int i = 0; i < N; i++) {
        y[i] = (uint8_t)(i % 4);
        int oy = y[i] < 2 ? 1 : 5;
        for (int k = 0; k < S * S; k++)
            x[i * S * S + k] = -0.5f + 0.01f * (float)((i * 7 + k * 13) % 17);
        for (int u = 0; u < 2; u++)
            for (int v = 0; v < 8; v++)
                if (y[i] % 2 == 0 || v < 4) x[i * S * S + (oy + u) * S + v] = 2.0f;
    }
    nn_data data = {N, S, S, x, y};
    nn_net net;
    char err[256];
    CHECK(nn_build_model(&net, "mlp", NN_BN_KEEP, S, S, 1, 10, 32, 1, err, sizeof err) == 0, "%s",
          err);
    nn_init_params(&net, 1);
    nn_train_config cfg = {.epochs = 6,
                           .batch = 32,
                           .opt = {NN_SGD, 0.05f, 0.9f, 0.9f, 0.999f, 1e-8f, 5e-4f},
                           .seed = 1,
                           .label = "t",
                           .augment = {1, 1, -0.5f},
                           .schedule = NN_LR_COSINE,
                           .warmup_epochs = 1,
                           .record_every = 5};
    static nn_train_result res;
    CHECK(nn_train(&net, &data, &data, &cfg, &res, err, sizeof err) == 0, "%s", err);
    CHECK(res.test_acc[res.epochs_done - 1] > 0.95, "augmented run: %.3f",
          res.test_acc[res.epochs_done - 1]);
    long steps = res.steps_per_epoch * cfg.epochs;
    CHECK(res.records == steps / 5 && res.record_step[0] == 5 && res.sites == 2,
          "records: %ld of %ld steps, %d sites", res.records, steps, res.sites);
    nn_train_result_free(&res);
    nn_free(&net);
}

int main(void) {
    check_schedules();
    check_augment();
    check_run();
    return check_finish();
}
