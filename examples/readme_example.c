#include <bnorm.h>
#include <stdio.h>
#include <stdlib.h>

int main(void) {
    /* A batch of 4 images, 2 channels, 3x3 pixels, channels-last (NHWC). */
    bnorm_shape shape = bnorm_shape_nhwc(4, 3, 3, 2);
    bnorm_params params = bnorm_params_default(); /* spatial mode, eps 1e-5, decay 0.9 */
    float x[4 * 3 * 3 * 2], y[4 * 3 * 3 * 2];
    for (int i = 0; i < 72; i++)
        x[i] = (float)(i % 7) + (i % 2) * 100.0f;
    float gamma[2] = {1, 1}, beta[2] = {0, 0}, mean[2], invstd[2];
    float run_mean[2] = {0, 0}, run_var[2] = {1, 1};
    bnorm_running_stats running = {run_mean, run_var, 0};

    size_t ws_size;
    if (bnorm_workspace_size(&shape, &params, &ws_size) != BNORM_OK) return 1;
    void *ws = malloc(ws_size);
    bnorm_status st = bnorm_forward_training(&shape, &params, x, gamma, beta, y, mean, invstd,
                                             &running, ws, ws_size);
    if (st != BNORM_OK) {
        fprintf(stderr, "bnorm: %s\n", bnorm_status_str(st));
        return 1;
    }
    printf("channel means %.3f %.3f, running means %.3f %.3f\n", mean[0], mean[1], run_mean[0],
           run_mean[1]);
    free(ws);
    return 0;
}
