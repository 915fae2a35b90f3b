/* Training steps of a built-in model (or a description file) on synthetic
 * inputs: forward, loss and the SGD backward of a batch, timed one by one
 * after a warm-up step; prints the best and the mean in ms. For A/B
 * comparisons of the network code: run two builds in alternation.
 *
 *   bench_step [MODEL] [BATCH] [THREADS] [STEPS]      defaults: resnet 64 2 30
 */
#define _POSIX_C_SOURCE 200809L
#include <cblas.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "nn.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv) {
    const char *model = argc > 1 ? argv[1] : "resnet";
    int batch = argc > 2 ? atoi(argv[2]) : 64, threads = argc > 3 ? atoi(argv[3]) : 2;
    int steps = argc > 4 ? atoi(argv[4]) : 30;
    if (batch < 2 || threads < 1 || steps < 1) {
        fprintf(stderr, "usage: bench_step [MODEL] [BATCH >= 2] [THREADS] [STEPS]\n");
        return 2;
    }
    /* As the bnorm command does (nn.h): the network splits batches itself,
     * and OpenBLAS's own threads beside its threads made the MLP's steps
     * 5x slower on average on 2 cores. */
    openblas_set_num_threads(1);
    nn_net net;
    char err[256];
    if (nn_build_model(&net, model, NN_BN_KEEP, 28, 28, 1, 10, batch, threads, err, sizeof err)) {
        fprintf(stderr, "bench_step: %s\n", err);
        return 1;
    }
    nn_init_params(&net, 1);
    float *x = malloc((size_t)batch * 784 * sizeof(float));
    uint8_t *y = malloc((size_t)batch);
    if (!x || !y) return 1;
    for (size_t i = 0; i < (size_t)batch * 784; i++)
        x[i] = (float)((i * 2654435761u) % 1000) / 500.0f - 1.0f;
    for (int i = 0; i < batch; i++)
        y[i] = (uint8_t)(i % 10);
    double best = 1e30, total = 0.0;
    int correct;
    for (int s = 0; s <= steps; s++) {
        double t0 = now();
        if (!nn_forward(&net, x, batch, 1)) return 1;
        nn_loss(&net, y, batch, &correct);
        if (nn_backward_sgd(&net, x, batch, 0.9f)) return 1;
        double t = now() - t0;
        if (s == 0) continue; /* first touch of every buffer */
        total += t;
        if (t < best) best = t;
    }
    printf("%s, batch %d, %d threads: step best %.3f ms, mean %.3f ms over %d steps\n", model,
           batch, threads, 1e3 * best, 1e3 * total / steps, steps);
    nn_free(&net), free(x), free(y);
    return 0;
}
