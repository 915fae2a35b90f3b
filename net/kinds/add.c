/* add: the residual join, out = in + skip; both inputs get the gradient. */
#include <stdio.h>
#include <string.h>

#include "kind.h"

static int setup(nn_net *net, nn_layer *l, const nn_dims *in2, char *err, size_t errlen) {
    (void)net;
    if (in2->h != l->in.h || in2->w != l->in.w || in2->c != l->in.c) {
        snprintf(err, errlen, "add joins %dx%dx%d with %dx%dx%d: the shapes must match", l->in.h,
                 l->in.w, l->in.c, in2->h, in2->w, in2->c);
        return -1;
    }
    l->out = l->in;
    return 0;
}

static void add(float *out, const float *a, const float *b, size_t count) {
    for (size_t k = 0; k < count; k++)
        out[k] = a[k] + b[k];
}

static void forward(const nn_pass *p, int s, int b0, int b1) {
    (void)s;
    size_t size = p->l->out_size, off = (size_t)b0 * size;
    add(p->l->act + off, p->in[0] + off, p->in[1] + off, (size_t)(b1 - b0) * size);
}

static void forward_part(const nn_pass *p, int s, int parts) {
    size_t size = p->l->out_size, k0, k1;
    nn_band(p->l, s, parts, &k0, &k1);
    for (int b = 0; b < p->n; b++) {
        size_t off = (size_t)b * size + k0;
        add(p->l->act + off, p->in[0] + off, p->in[1] + off, k1 - k0);
    }
}

static void backward(const nn_pass *p, int s, int b0, int b1, int phase) {
    (void)s, (void)phase;
    size_t size = p->l->out_size, off = (size_t)b0 * size;
    for (int i = 0; i < 2; i++)
        if (p->din[i])
            memcpy(p->din[i] + off, p->g + off, (size_t)(b1 - b0) * size * sizeof(float));
}

const nn_kind nn_kind_add = {.setup = setup,
                             .forward = forward,
                             .forward_part = forward_part,
                             .band_local = 1,
                             .phases = 1,
                             .backward = backward};
