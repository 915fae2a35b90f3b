/* Every layer kind inside small networks described for the purpose, and
 * the built-in residual network: the gradient of every trainable tensor
 * against central finite differences; fused BN against the same network
 * unfused; folded BN against the network it was folded from; a model file
 * of before descriptions were saved, against a float64 forward pass. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "checkpoint.h"
#include "nn.h"
#include "oracle.h"
#include "safetensors.h"

#define BATCH 6

static int build(nn_net *net, const char *text, int h, int w, int fuse, int max_batch,
                 int threads) {
    static nn_spec spec;
    char err[512];
    if (nn_spec_parse(text, strlen(text), "test", &spec, err, sizeof err) ||
        nn_build(net, &spec, h, w, 1, 10, fuse, max_batch, threads, err, sizeof err)) {
        CHECK(0, "build: %s", err);
        return -1;
    }
    return 0;
}

/* Initial parameters, then every rank-1 tensor moved off its initial value
 * (gamma, beta, biases), so that none of them sits at a special point. */
static void init(nn_net *net, test_rng *rng) {
    nn_init_params(net, 5);
    for (int i = 0; i < net->n_tensors; i++)
        if (net->tensors[i].trainable && net->tensors[i].rank == 1)
            for (size_t k = 0; k < net->tensors[i].size; k++)
                net->tensors[i].value[k] += (float)(0.3 * rng_normal(rng));
}

static double loss_at(nn_net *net, const float *x, const uint8_t *y) {
    nn_forward(net, x, BATCH, 1);
    return nn_loss(net, y, BATCH, NULL);
}

/* Per tensor, the derivative along a random direction: sampling single
 * entries drowns in float rounding, a direction sums enough signal. tol is
 * relative to the sum of |gradient * direction|. */
static void check_gradients(nn_net *net, const float *x, const uint8_t *y, const char *what,
                            double tol, test_rng *rng) {
    loss_at(net, x, y);
    CHECK(nn_backward(net, x, BATCH) == 0, "%s: backward refused", what);
    for (int t = 0; t < net->n_tensors; t++) {
        nn_tensor *T = &net->tensors[t];
        if (!T->trainable) continue;
        float *keep = malloc(T->size * sizeof(float)), *dir = malloc(T->size * sizeof(float));
        double ana = 0.0, scale = 0.0;
        for (size_t k = 0; k < T->size; k++) {
            keep[k] = T->value[k];
            dir[k] = (float)rng_normal(rng);
            ana += (double)T->grad[k] * dir[k];
            scale += fabs((double)T->grad[k] * dir[k]);
        }
        double h = 1e-2;
        for (size_t k = 0; k < T->size; k++)
            T->value[k] = keep[k] + (float)h * dir[k];
        double lp = loss_at(net, x, y);
        for (size_t k = 0; k < T->size; k++)
            T->value[k] = keep[k] - (float)h * dir[k];
        double lm = loss_at(net, x, y);
        memcpy(T->value, keep, T->size * sizeof(float));
        double num = (lp - lm) / (2.0 * h);
        CHECK(fabs(num - ana) <= tol * scale + 1e-5,
              "%s %s: analytic %.6g, finite differences %.6g (scale %.3g)", what, T->name, ana, num,
              scale);
        free(keep), free(dir);
    }
}

static void random_batch(float *x, uint8_t *y, int pixels, test_rng *rng) {
    for (int i = 0; i < BATCH * pixels; i++)
        x[i] = (float)rng_normal(rng);
    for (int i = 0; i < BATCH; i++)
        y[i] = (uint8_t)(rng_uniform(rng) * 10);
}

/* Smooth networks (sigmoid, average pool) so that no kink sits between the
 * finite-difference points: the tolerance can then be tight. */
static const char *const smooth[] = {
    /* stride-2 3x3, 1x1 of stride 1 and 2, BN per channel and per unit */
    "conv channels=4 stride=2\nbn\nsigmoid\nconv channels=5 size=1\nbn\nsigmoid\n"
    "conv channels=3 size=1 stride=2\nsigmoid\navgpool\ndense units=6\nbn\nsigmoid\n"
    "dense units=classes\nsoftmax\n",
    /* one output read by three layers (a), and two adds */
    "a: conv channels=4\nsigmoid\nconv channels=4\nbn\nadd skip=a\nc: sigmoid\n"
    "conv channels=4 from=a\nadd skip=c\nsigmoid\navgpool\ndense units=classes\nsoftmax\n",
    /* a dense layer on a conv's pixels, with and without bias */
    "conv channels=3 stride=2 bias=yes\nbn\nsigmoid\ndense units=7 bias=no\nsigmoid\n"
    "dense units=classes\nsoftmax\n",
};

static void check_kinds(test_rng *rng) {
    float x[BATCH * 7 * 5];
    uint8_t y[BATCH];
    for (size_t d = 0; d < sizeof smooth / sizeof smooth[0]; d++)
        for (int fuse = 0; fuse <= 1; fuse++) {
            nn_net net;
            /* 7x5: odd sides, so stride 2 rounds up (7 -> 4 -> 2, 5 -> 3 -> 2). */
            if (build(&net, smooth[d], 7, 5, fuse, BATCH, 1 + fuse)) continue;
            init(&net, rng);
            random_batch(x, y, 35, rng);
            char what[64];
            snprintf(what, sizeof what, "network %zu%s", d, fuse ? " fused" : "");
            check_gradients(&net, x, y, what, 1e-2, rng);
            nn_free(&net);
        }
}

/* The built-in residual network at 8x8 (stride 2 twice: 8 -> 4 -> 2),
 * its ReLUs made sigmoids so that no kink spoils the finite differences
 * (with ReLU, the fused forms are checked against the unfused ones below). */
static void check_resnet(test_rng *rng) {
    float x[BATCH * 64];
    uint8_t y[BATCH];
    static nn_spec spec;
    nn_net net;
    char err[512];
    CHECK(nn_spec_for_model("resnet", &spec, err, sizeof err) == 0, "%s", err);
    for (int i = 0; i < spec.n; i++)
        if (spec.layer[i].kind == NN_KIND_RELU) spec.layer[i].kind = NN_KIND_SIGMOID;
    CHECK(nn_build(&net, &spec, 8, 8, 1, 10, 1, BATCH, 2, err, sizeof err) == 0, "%s", err);
    init(&net, rng);
    random_batch(x, y, 64, rng);
    check_gradients(&net, x, y, "resnet (sigmoid)", 1e-2, rng);
    nn_free(&net);
}

/* Fused BN+ReLU and BN+add+ReLU against the same network unfused, over a
 * few SGD steps: the same numbers (the fused calls compute the same
 * formulas, and the gradients of the skip connection are added in the same
 * pairs). */
static void check_fused_same(const char *model, int threads, test_rng *rng) {
    static nn_spec spec;
    nn_net a, b;
    char err[512];
    float x[BATCH * 64];
    uint8_t y[BATCH];
    CHECK(nn_spec_for_model(model, &spec, err, sizeof err) == 0, "%s", err);
    CHECK(nn_build(&a, &spec, 8, 8, 1, 10, 0, BATCH, threads, err, sizeof err) == 0, "%s", err);
    CHECK(nn_build(&b, &spec, 8, 8, 1, 10, 1, BATCH, threads, err, sizeof err) == 0, "%s", err);
    CHECK(b.n_layers < a.n_layers, "%s: nothing fused (%d layers)", model, b.n_layers);
    nn_init_params(&a, 9);
    nn_init_params(&b, 9);
    nn_optim opt = {NN_SGD, 0.05f, 0.9f, 0.9f, 0.999f, 1e-8f, 5e-4f};
    for (int step = 0; step < 3; step++) {
        random_batch(x, y, 64, rng);
        nn_forward(&a, x, BATCH, 1), nn_forward(&b, x, BATCH, 1);
        double la = nn_loss(&a, y, BATCH, NULL), lb = nn_loss(&b, y, BATCH, NULL);
        CHECK(la == lb, "%s step %d: loss %.9g unfused, %.9g fused", model, step, la, lb);
        nn_backward_sgd(&a, x, BATCH, opt.momentum), nn_backward_sgd(&b, x, BATCH, opt.momentum);
        nn_step(&a, &opt), nn_step(&b, &opt);
    }
    int same = a.n_tensors == b.n_tensors;
    for (int t = 0; same && t < a.n_tensors; t++)
        same = memcmp(a.tensors[t].value, b.tensors[t].value, a.tensors[t].size * 4) == 0;
    CHECK(same, "%s, %d threads: fused training moved the parameters elsewhere", model, threads);
    nn_free(&a), nn_free(&b);
}

/* A folded network against the one it was folded from, in test mode on a
 * batch and one sample at a time, after a few training steps so that the
 * running statistics are far from 0 and 1; plus a channel with a variance
 * near 0 and a gamma of 0. Bound: each folded weight is the float nearest
 * W * scale, so a logit moves by a few float roundings of the sums it is
 * made of; 1e-4 of the largest logit leaves room for that and no more. */
static void check_fold(const char *model, test_rng *rng) {
    static nn_spec spec;
    nn_net net, folded;
    char err[512];
    float x[BATCH * 64];
    uint8_t y[BATCH];
    CHECK(nn_spec_for_model(model, &spec, err, sizeof err) == 0, "%s", err);
    CHECK(nn_build(&net, &spec, 8, 8, 1, 10, 1, BATCH, 2, err, sizeof err) == 0, "%s", err);
    init(&net, rng);
    nn_optim opt = {NN_SGD, 0.05f, 0.9f, 0.9f, 0.999f, 1e-8f, 0.0f};
    for (int step = 0; step < 5; step++) {
        random_batch(x, y, 64, rng);
        for (int i = 0; i < BATCH * 64; i++)
            x[i] = 3.0f * x[i] + 1.5f;
        nn_forward(&net, x, BATCH, 1);
        nn_loss(&net, y, BATCH, NULL);
        nn_backward(&net, x, BATCH);
        nn_step(&net, &opt);
    }
    for (int l = 0; l < net.n_layers; l++)
        if (net.layers[l].gamma) {
            net.layers[l].gamma->value[0] = 0.0f;
            net.layers[l].run_var->value[net.layers[l].out.c - 1] = 1e-9f;
            break;
        }
    int bn_before = 0, bn_after = 0;
    for (int i = 0; i < net.spec.n; i++)
        bn_before += net.spec.layer[i].kind == NN_KIND_BN;
    CHECK(nn_fold(&net, &folded, BATCH, 2, err, sizeof err) == 0, "fold: %s", err);
    for (int i = 0; i < folded.spec.n; i++)
        bn_after += folded.spec.layer[i].kind == NN_KIND_BN;
    CHECK(bn_before > 0 && bn_after == 0, "%s: %d of %d BN layers left after folding", model,
          bn_after, bn_before);
    float want[BATCH * 10], got[BATCH * 10];
    memcpy(want, nn_forward(&net, x, BATCH, 0), sizeof want);
    memcpy(got, nn_forward(&folded, x, BATCH, 0), sizeof got);
    double worst = 0.0, top = 0.0;
    for (int k = 0; k < BATCH * 10; k++) {
        worst = fmax(worst, fabs((double)got[k] - want[k]));
        top = fmax(top, fabs((double)want[k]));
    }
    CHECK(worst <= 1e-4 * top, "%s: folded logits off by %.3g (largest %.3g)", model, worst, top);
    for (int b = 0; b < BATCH; b++) {
        const float *z = nn_forward(&folded, x + b * 64, 1, 0);
        double off = 0.0;
        for (int k = 0; z && k < 10; k++)
            off = fmax(off, fabs((double)z[k] - want[b * 10 + k]));
        CHECK(z && off <= 1e-4 * top, "%s: folded single sample %d off by %.3g", model, b, off);
    }
    nn_free(&net), nn_free(&folded);
}

/* Every layer's output before the first dense layer for batches of m
 * samples, against `saved`, the outputs of the whole batch; returns how
 * many layer outputs of how many (*layers) differ in any bit. (A dense
 * layer is one OpenBLAS call over the batch, whose kernel, and so its
 * rounding, depends on the number of rows.) */
static int parts_differ(nn_net *net, const float *x, int m, float **saved, int *layers) {
    int differ = 0;
    for (int b = 0; b + m <= BATCH; b += m) {
        if (!nn_forward(net, x + b * 64, m, 0)) return -1;
        for (int i = 0; i < net->n_layers - 1; i++) {
            if (net->layers[i].spec.kind == NN_KIND_DENSE) break;
            size_t n = (size_t)m * net->layers[i].out_size;
            *layers += 1;
            differ += memcmp(net->layers[i].act, saved[i] + b * net->layers[i].out_size,
                             n * sizeof(float)) != 0;
        }
    }
    return differ;
}

/* Fewer samples than threads in test mode run as one parallel region, the
 * convolutions, ReLUs and adds split by output rows over the threads
 * (forward_part), the other layers on one thread, with barriers only where
 * a thread reads what another wrote: every layer's output, for one sample
 * and for threads - 1 samples, bit for bit against the same samples in a
 * batch, split by samples (each output is the same sum in the same order
 * either way; the channel counts are multiples of 16), in the network as
 * trained (fused BN, one thread) and folded (no BN: a chain of convolutions,
 * ReLUs and adds with no barrier between a convolution and its ReLU). Three
 * threads on 8x8 images leave a thread without rows in the last stage. */
static void check_parts(const char *model, int threads, test_rng *rng) {
    static nn_spec spec;
    nn_net net, folded;
    char err[512];
    float x[BATCH * 64];
    uint8_t y[BATCH];
    /* A model name, or a description (with a 1x1 convolution of stride 1,
     * which reads its input rows in place). */
    if (strchr(model, '\n'))
        CHECK(nn_spec_parse(model, strlen(model), "test", &spec, err, sizeof err) == 0, "%s", err);
    else
        CHECK(nn_spec_for_model(model, &spec, err, sizeof err) == 0, "%s", err);
    CHECK(nn_build(&net, &spec, 8, 8, 1, 10, 1, BATCH, threads, err, sizeof err) == 0, "%s", err);
    init(&net, rng);
    random_batch(x, y, 64, rng);
    CHECK(nn_fold(&net, &folded, BATCH, threads, err, sizeof err) == 0, "%s", err);
    nn_net *nets[2] = {&net, &folded};
    for (int k = 0; k < 2; k++) {
        nn_net *nk = nets[k];
        nn_forward(nk, x, BATCH, 0);
        float *saved[NN_MAX_LAYERS] = {0};
        int ok = 1;
        for (int i = 0; i < nk->n_layers - 1; i++) {
            size_t bytes = (size_t)BATCH * nk->layers[i].out_size * sizeof(float);
            saved[i] = malloc(bytes);
            if (saved[i]) memcpy(saved[i], nk->layers[i].act, bytes);
            ok &= saved[i] != NULL;
        }
        CHECK(ok, "out of memory");
        for (int m = 1; ok && m < threads; m++) {
            int layers = 0, differ = parts_differ(nk, x, m, saved, &layers);
            CHECK(layers > 0 && differ == 0,
                  "%s%s, %d threads, %d samples at a time: %d of %d layer outputs differ from the "
                  "batch's",
                  model, k ? " folded" : "", threads, m, differ, layers);
        }
        for (int i = 0; i < nk->n_layers - 1; i++)
            free(saved[i]);
    }
    nn_free(&net), nn_free(&folded);
}

/* A model file as the version before descriptions wrote it (architecture
 * "mlp", BN before ReLU, tensors layers.K.*), loaded and run against a
 * float64 forward pass computed here. */
static void check_legacy_mlp(const char *dir, test_rng *rng) {
    enum { IN = 16, H = 256, OUT = 10 };
    static float w0[IN * H], w3[H * H], w6[H * OUT], b6[OUT], bn[2][4][H];
    for (int i = 0; i < IN * H; i++)
        w0[i] = (float)(0.3 * rng_normal(rng));
    for (int i = 0; i < H * H; i++)
        w3[i] = (float)(0.1 * rng_normal(rng));
    for (int i = 0; i < H * OUT; i++)
        w6[i] = (float)(0.1 * rng_normal(rng));
    for (int i = 0; i < OUT; i++)
        b6[i] = (float)rng_normal(rng);
    for (int l = 0; l < 2; l++)
        for (int c = 0; c < H; c++) {
            bn[l][0][c] = (float)(1.0 + 0.2 * rng_normal(rng));
            bn[l][1][c] = (float)(0.2 * rng_normal(rng));
            bn[l][2][c] = (float)(0.5 * rng_normal(rng));
            bn[l][3][c] = (float)(0.5 + rng_uniform(rng));
        }
    int64_t s_w0[2] = {IN, H}, s_w3[2] = {H, H}, s_w6[2] = {H, OUT}, s_h = H, s_o = OUT;
    st_tensor t[] = {
        {"layers.0.weight", 2, s_w0, w0, IN * H},
        {"layers.1.gamma", 1, &s_h, bn[0][0], H},
        {"layers.1.beta", 1, &s_h, bn[0][1], H},
        {"layers.1.running_mean", 1, &s_h, bn[0][2], H},
        {"layers.1.running_var", 1, &s_h, bn[0][3], H},
        {"layers.3.weight", 2, s_w3, w3, H * H},
        {"layers.4.gamma", 1, &s_h, bn[1][0], H},
        {"layers.4.beta", 1, &s_h, bn[1][1], H},
        {"layers.4.running_mean", 1, &s_h, bn[1][2], H},
        {"layers.4.running_var", 1, &s_h, bn[1][3], H},
        {"layers.6.weight", 2, s_w6, w6, H * OUT},
        {"layers.6.bias", 1, &s_o, b6, OUT},
    };
    static st_meta meta[9] = {{"format", "bnorm"}, {"arch", "mlp"},       {"bn", "before_relu"},
                              {"in_h", "4"},       {"in_w", "4"},         {"in_c", "1"},
                              {"classes", "10"},   {"pixel_mean", "0.5"}, {"pixel_std", "0.25"}};
    char path[512], err[1024];
    snprintf(path, sizeof path, "%s/legacy_mlp.safetensors", dir);
    CHECK(st_write(path, meta, 9, t, 12, err, sizeof err) == 0, "write: %s", err);
    nn_net net;
    ckpt_info info;
    if (ckpt_load(path, &net, &info, 4, 2, err, sizeof err)) {
        CHECK(0, "legacy mlp: %s", err);
        return;
    }
    CHECK(strcmp(info.model, "mlp") == 0 && info.pixel_std == 0.25f, "legacy metadata");
    float x[IN];
    for (int i = 0; i < IN; i++)
        x[i] = (float)rng_normal(rng);
    double a[H], b[H], z[OUT];
    const float *ws[2] = {w0, w3};
    int fan[2] = {IN, H};
    for (int k = 0; k < IN; k++)
        a[k] = x[k];
    for (int l = 0; l < 2; l++) {
        for (int j = 0; j < H; j++) {
            double s = 0.0;
            for (int k = 0; k < fan[l]; k++)
                s += a[k] * ws[l][k * H + j];
            double v = bn[l][0][j] * (s - bn[l][2][j]) / sqrt(bn[l][3][j] + 1e-5) + bn[l][1][j];
            b[j] = v > 0 ? v : 0;
        }
        memcpy(a, b, sizeof a);
    }
    for (int j = 0; j < OUT; j++) {
        z[j] = b6[j];
        for (int k = 0; k < H; k++)
            z[j] += a[k] * w6[k * OUT + j];
    }
    for (int one = 0; one <= 1; one++) {
        float xs[4 * IN];
        for (int r = 0; r < 4; r++)
            memcpy(xs + r * IN, x, sizeof x);
        const float *got = nn_forward(&net, xs, one ? 1 : 4, 0);
        double off = 0.0, top = 0.0;
        for (int j = 0; got && j < OUT; j++)
            off = fmax(off, fabs(got[j] - z[j])), top = fmax(top, fabs(z[j]));
        CHECK(got && off <= 1e-5 * top, "legacy mlp (%s): logits off by %.3g of %.3g",
              one ? "one sample" : "batch", off, top);
    }
    nn_free(&net);
}

int main(void) {
    test_rng rng = {4242};
    check_kinds(&rng);
    check_resnet(&rng);
    for (int threads = 1; threads <= 3; threads += 2) {
        check_fused_same("resnet", threads, &rng);
        check_fused_same("cnn", threads, &rng);
        check_fused_same("mlp", threads, &rng);
    }
    for (int threads = 2; threads <= 3; threads++) {
        check_parts("resnet", threads, &rng);
        check_parts("cnn", threads, &rng);
        check_parts("conv channels=16\nbn\nrelu\nconv channels=32 size=1 bias=yes\nbn\nrelu\n"
                    "avgpool\ndense units=10\nsoftmax\n",
                    threads, &rng);
    }
    check_fold("mlp", &rng);
    check_fold("cnn", &rng);
    check_fold("resnet", &rng);
    check_fold("deep-cnn", &rng);
    char dir[] = "/tmp/bnorm-test-layers-XXXXXX";
    if (mkdtemp(dir)) {
        check_legacy_mlp(dir, &rng);
        char path[600];
        snprintf(path, sizeof path, "%s/legacy_mlp.safetensors", dir);
        remove(path);
        rmdir(dir);
    }
    return check_finish();
}
