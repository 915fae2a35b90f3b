/* relu: max(x, 0); the backward reads the layer's own output. */
#include "kind.h"
#include "ops.h"

static void forward(const nn_pass *p, int s, int b0, int b1) {
    (void)s;
    size_t size = p->l->out_size;
    nn_relu_forward(p->l->act + (size_t)b0 * size, p->in[0] + (size_t)b0 * size,
                    (size_t)(b1 - b0) * size);
}

static void forward_part(const nn_pass *p, int s, int parts) {
    size_t size = p->l->out_size, k0, k1;
    nn_band(p->l, s, parts, &k0, &k1);
    for (int b = 0; b < p->n; b++)
        nn_relu_forward(p->l->act + (size_t)b * size + k0, p->in[0] + (size_t)b * size + k0,
                        k1 - k0);
}

static void backward(const nn_pass *p, int s, int b0, int b1, int phase) {
    (void)s, (void)phase;
    size_t size = p->l->out_size;
    if (!p->din[0]) return;
    nn_relu_backward(p->din[0] + (size_t)b0 * size, p->l->act + (size_t)b0 * size,
                     p->g + (size_t)b0 * size, (size_t)(b1 - b0) * size);
}

static int one_units(const nn_layer *l, const float *in, float *out, int c0, int c1, void *ws,
                     size_t ws_size) {
    (void)l, (void)ws, (void)ws_size;
    for (int c = c0; c < c1; c++)
        out[c] = in[c] > 0.0f ? in[c] : 0.0f;
    return 0;
}

const nn_kind nn_kind_relu = {.setup = nn_same_shape,
                              .forward = forward,
                              .forward_part = forward_part,
                              .band_local = 1,
                              .phases = 1,
                              .backward = backward,
                              .one_units = one_units};
