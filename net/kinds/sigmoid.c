/* sigmoid: 1 / (1 + exp(-x)); the backward reads the layer's own output,
 * dsigmoid/dx = y (1 - y). */
#include <math.h>

#include "kind.h"

static float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

static void forward(const nn_pass *p, int s, int b0, int b1) {
    (void)s;
    size_t size = p->l->out_size;
    const float *in = p->in[0] + (size_t)b0 * size;
    float *out = p->l->act + (size_t)b0 * size;
    for (size_t k = 0; k < (size_t)(b1 - b0) * size; k++)
        out[k] = sigmoid(in[k]);
}

static void forward_part(const nn_pass *p, int s, int parts) {
    size_t size = p->l->out_size, k0, k1;
    nn_band(p->l, s, parts, &k0, &k1);
    for (int b = 0; b < p->n; b++)
        for (size_t k = (size_t)b * size + k0; k < (size_t)b * size + k1; k++)
            p->l->act[k] = sigmoid(p->in[0][k]);
}

static void backward(const nn_pass *p, int s, int b0, int b1, int phase) {
    (void)s, (void)phase;
    size_t size = p->l->out_size;
    if (!p->din[0]) return;
    const float *y = p->l->act + (size_t)b0 * size, *g = p->g + (size_t)b0 * size;
    float *din = p->din[0] + (size_t)b0 * size;
    for (size_t k = 0; k < (size_t)(b1 - b0) * size; k++)
        din[k] = g[k] * y[k] * (1.0f - y[k]);
}

static int one_units(const nn_layer *l, const float *in, float *out, int c0, int c1, void *ws,
                     size_t ws_size) {
    (void)l, (void)ws, (void)ws_size;
    for (int c = c0; c < c1; c++)
        out[c] = sigmoid(in[c]);
    return 0;
}

const nn_kind nn_kind_sigmoid = {.setup = nn_same_shape,
                                 .forward = forward,
                                 .forward_part = forward_part,
                                 .band_local = 1,
                                 .phases = 1,
                                 .backward = backward,
                                 .one_units = one_units};
