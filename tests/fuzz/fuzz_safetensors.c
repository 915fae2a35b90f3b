/* libFuzzer target: a model file's bytes through the whole loader (format,
 * metadata, description, tensor checks, allocation) and, when it loads, one
 * test-mode forward pass. */
#include <cblas.h>
#include <stdint.h>
#include <stdlib.h>

#include "checkpoint.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int once;
    if (!once) openblas_set_num_threads(1), once = 1;
    nn_net net;
    ckpt_info info;
    char err[1024];
    if (ckpt_load_bytes(data, size, "fuzz.safetensors", &net, &info, 2, 1, err, sizeof err) != 0)
        return 0;
    size_t in = (size_t)net.in_h * net.in_w * net.in_c;
    if (in <= 4096) {
        float *x = calloc(in * 2, sizeof(float));
        if (x) {
            (void)nn_forward(&net, x, 1, 0);
            (void)nn_forward(&net, x, 2, 0);
        }
        free(x);
    }
    nn_free(&net);
    return 0;
}
