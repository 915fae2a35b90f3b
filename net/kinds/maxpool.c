/* maxpool: 2x2, stride 2; the winner of each window is kept for the backward. */
#include "kind.h"
#include "ops.h"

static int setup(nn_net *net, nn_layer *l, const nn_dims *in2, char *err, size_t errlen) {
    (void)net, (void)in2, (void)err, (void)errlen;
    l->out = (nn_dims){l->in.h / 2, l->in.w / 2, l->in.c};
    return 0;
}

static void plan(const nn_net *net, const nn_layer *l, nn_plan *need) {
    need->aux_bytes = (size_t)net->max_batch * l->out_size;
}

static void forward(const nn_pass *p, int s, int b0, int b1) {
    (void)s;
    const nn_layer *l = p->l;
    nn_maxpool_forward(l->act + (size_t)b0 * l->out_size, l->aux + (size_t)b0 * l->out_size,
                       p->in[0] + (size_t)b0 * l->in_size, b1 - b0, l->in.h, l->in.w, l->in.c);
}

static void backward(const nn_pass *p, int s, int b0, int b1, int phase) {
    (void)s, (void)phase;
    const nn_layer *l = p->l;
    if (!p->din[0]) return;
    nn_maxpool_backward(p->din[0] + (size_t)b0 * l->in_size, p->g + (size_t)b0 * l->out_size,
                        l->aux + (size_t)b0 * l->out_size, b1 - b0, l->in.h, l->in.w, l->in.c);
}

const nn_kind nn_kind_maxpool = {
    .setup = setup, .plan = plan, .forward = forward, .phases = 1, .backward = backward};
