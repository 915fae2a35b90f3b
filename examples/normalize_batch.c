/* Normalizes mini-batches of a small dense layer's activations, prints the
 * statistics, then shows training mode against test mode on one sample. */
#include <stdio.h>
#include <stdlib.h>

#include "bnorm.h"

#define N 8 /* batch */
#define C 4 /* hidden units: one mean, variance, gamma and beta each */

static float uniform(unsigned *state) {
    *state = *state * 1664525u + 1013904223u;
    return (float)(*state >> 8) / 16777216.0f;
}

static int fail(const char *what, bnorm_status st) {
    fprintf(stderr, "%s: %s\n", what, bnorm_status_str(st));
    return 1;
}

int main(void) {
    bnorm_shape shape = bnorm_shape_nc(N, C);
    bnorm_params params = bnorm_params_default(); /* eps 1e-5, decay 0.9 */
    float gamma[C] = {1.0f, 1.0f, 2.0f, 0.5f}, beta[C] = {0.0f, 0.0f, 1.0f, -1.0f};
    float running_mean[C] = {0}, running_var[C] = {1, 1, 1, 1};
    bnorm_running_stats running = {running_mean, running_var, 0};
    float x[N * C], y[N * C], mean[C], invstd[C];
    size_t ws_size;
    bnorm_status st = bnorm_workspace_size(&shape, &params, &ws_size);
    if (st != BNORM_OK) return fail("workspace size", st);
    void *ws = malloc(ws_size);
    unsigned rng = 1;

    /* Unit c has mean 10*c and spread c+1, far from normalized. */
    for (int step = 0; step < 50; step++) {
        for (int n = 0; n < N; n++)
            for (int c = 0; c < C; c++)
                x[n * C + c] = 10.0f * c + (c + 1) * (2.0f * uniform(&rng) - 1.0f) * 1.7f;
        st = bnorm_forward_training(&shape, &params, x, gamma, beta, y, mean, invstd, &running, ws,
                                    ws_size);
        if (st != BNORM_OK) return fail("forward_training", st);
        if (step == 0) {
            printf("first batch (training mode)\n unit   batch mean  batch std   y[0]      y[1]\n");
            for (int c = 0; c < C; c++)
                printf(" %d   %10.4f  %9.4f  %8.4f  %8.4f\n", c, mean[c], 1.0f / invstd[c], y[c],
                       y[C + c]);
        }
    }
    printf("\nafter %llu batches: running statistics (decay %.2f)\n unit   mean       var\n",
           (unsigned long long)running.count, params.decay);
    for (int c = 0; c < C; c++)
        printf(" %d   %9.4f  %9.4f\n", c, running_mean[c], running_var[c]);

    /* One test sample. Training mode has no statistics to take from a batch of one. */
    bnorm_shape one = bnorm_shape_nc(1, C);
    float sample[C] = {1.0f, 12.0f, 20.0f, 27.0f}, out[C];
    st = bnorm_forward_training(&one, &params, sample, gamma, beta, out, mean, invstd, NULL, ws,
                                ws_size);
    printf("\none sample, training mode: %s\n", bnorm_status_str(st));
    st = bnorm_forward_inference(&one, &params, sample, gamma, beta, running_mean, running_var, out,
                                 ws, ws_size);
    if (st != BNORM_OK) return fail("forward_inference", st);
    printf("one sample, test mode (running statistics):\n");
    for (int c = 0; c < C; c++)
        printf(" unit %d: x = %6.2f -> y = %8.4f\n", c, sample[c], out[c]);
    free(ws);
    return 0;
}
