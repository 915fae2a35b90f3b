/* softmax: the loss layer, softmax cross-entropy of its input (the logits)
 * against the labels. Its forward leaves the logits as they are; the loss
 * computes the probabilities in double and writes dloss/dlogits. */
#include <math.h>
#include <stdio.h>

#include "kind.h"

static int setup(nn_net *net, nn_layer *l, const nn_dims *in2, char *err, size_t errlen) {
    (void)in2;
    if ((int)l->in_size != net->classes) {
        snprintf(err, errlen, "softmax reads %zu values per sample, but there are %d classes",
                 l->in_size, net->classes);
        return -1;
    }
    l->out = l->in;
    return 0;
}

static void forward(const nn_pass *p, int s, int b0, int b1) {
    (void)p, (void)s, (void)b0, (void)b1;
}

static double loss(const nn_pass *p, const uint8_t *labels, int *correct) {
    const float *logits = p->in[0];
    int K = p->net->classes, right = 0, n = p->n;
    /* The gradient of the mean over the global batch, when this is a share of it. */
    float scale = (float)(p->net->loss_batch > 0 ? p->net->loss_batch : n);
    double total = 0.0;
    for (int b = 0; b < n; b++) {
        const float *z = logits + (size_t)b * K;
        float *g = p->din[0] + (size_t)b * K;
        float zmax = z[0];
        for (int k = 1; k < K; k++)
            zmax = z[k] > zmax ? z[k] : zmax;
        double sum = 0.0;
        for (int k = 0; k < K; k++)
            sum += exp((double)z[k] - zmax);
        total += -((double)z[labels[b]] - zmax - log(sum));
        right += nn_argmax(z, K) == labels[b];
        for (int k = 0; k < K; k++) {
            float prob = (float)(exp((double)z[k] - zmax) / sum);
            g[k] = (prob - (k == labels[b] ? 1.0f : 0.0f)) / scale;
        }
    }
    if (correct) *correct = right;
    return total / n;
}

const nn_kind nn_kind_softmax = {.setup = setup, .forward = forward, .phases = 0, .loss = loss};
