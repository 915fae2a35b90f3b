/* avgpool: the global average of each channel over the pixels. */
#include "kind.h"

static int setup(nn_net *net, nn_layer *l, const nn_dims *in2, char *err, size_t errlen) {
    (void)net, (void)in2, (void)err, (void)errlen;
    l->out = (nn_dims){1, 1, l->in.c};
    return 0;
}

static void forward(const nn_pass *p, int s, int b0, int b1) {
    (void)s;
    const nn_layer *l = p->l;
    int c = l->in.c;
    size_t pix = (size_t)l->in.h * l->in.w;
    float inv = 1.0f / (float)pix;
    for (int b = b0; b < b1; b++) {
        const float *in = p->in[0] + (size_t)b * l->in_size;
        float *out = l->act + (size_t)b * c;
        for (int k = 0; k < c; k++)
            out[k] = in[k];
        for (size_t q = 1; q < pix; q++)
            for (int k = 0; k < c; k++)
                out[k] += in[q * c + k];
        for (int k = 0; k < c; k++)
            out[k] *= inv;
    }
}

static void backward(const nn_pass *p, int s, int b0, int b1, int phase) {
    (void)s, (void)phase;
    const nn_layer *l = p->l;
    if (!p->din[0]) return;
    int c = l->in.c;
    size_t pix = (size_t)l->in.h * l->in.w;
    float inv = 1.0f / (float)pix;
    for (int b = b0; b < b1; b++) {
        const float *g = p->g + (size_t)b * c;
        float *din = p->din[0] + (size_t)b * l->in_size;
        for (size_t q = 0; q < pix; q++)
            for (int k = 0; k < c; k++)
                din[q * c + k] = g[k] * inv;
    }
}

const nn_kind nn_kind_avgpool = {
    .setup = setup, .forward = forward, .phases = 1, .backward = backward};
