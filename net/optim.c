/* Optimizers: SGD with momentum and Adam, with optional L2 weight decay on
 * the weights of dense and conv layers (as PyTorch's weight_decay: added to
 * the gradient before the momentum or the moments). */
#include <math.h>

#include "nn.h"

void nn_step(nn_net *net, const nn_optim *opt) {
    if (opt->kind == NN_ADAM) net->adam_t++;
    double c1 = 1.0 - pow(opt->beta1, (double)net->adam_t);
    double c2 = 1.0 - pow(opt->beta2, (double)net->adam_t);
    float lr_t = (float)(opt->lr * sqrt(c2) / c1), eps_t = opt->eps * (float)sqrt(c2);
    /* Element-wise, so every thread takes its share of every tensor and none
     * waits for another: a serial update here leaves the other thread
     * spinning against it for a tenth of the step. */
#pragma omp parallel num_threads(net->threads) if (net->threads > 1)
    for (int i = 0; i < net->n_tensors; i++) {
        nn_tensor *t = &net->tensors[i];
        if (!t->trainable) continue;
        float wd = t->decay ? opt->weight_decay : 0.0f;
        if (opt->kind == NN_SGD && t->m_current && wd == 0.0f) {
#pragma omp for schedule(static) nowait
            for (size_t k = 0; k < t->size; k++)
                t->value[k] -= opt->lr * t->m[k];
        } else if (opt->kind == NN_SGD && t->m_current) {
#pragma omp for schedule(static) nowait
            for (size_t k = 0; k < t->size; k++) {
                t->m[k] += wd * t->value[k];
                t->value[k] -= opt->lr * t->m[k];
            }
        } else if (opt->kind == NN_SGD) {
#pragma omp for schedule(static) nowait
            for (size_t k = 0; k < t->size; k++) {
                t->m[k] = opt->momentum * t->m[k] +
                          (wd != 0.0f ? t->grad[k] + wd * t->value[k] : t->grad[k]);
                t->value[k] -= opt->lr * t->m[k];
            }
        } else {
#pragma omp for schedule(static) nowait
            for (size_t k = 0; k < t->size; k++) {
                float g = wd != 0.0f ? t->grad[k] + wd * t->value[k] : t->grad[k];
                t->m[k] = opt->beta1 * t->m[k] + (1.0f - opt->beta1) * g;
                t->v[k] = opt->beta2 * t->v[k] + (1.0f - opt->beta2) * g * g;
                t->value[k] -= lr_t * t->m[k] / (sqrtf(t->v[k]) + eps_t);
            }
        }
    }
}
