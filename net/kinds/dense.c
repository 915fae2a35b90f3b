/* dense: out[b] = W^T in[b] + bias, W stored [in][out]. */
#include <cblas.h>

#include "gemv.h"
#include "kind.h"
#include "ops.h"

static int setup(nn_net *net, nn_layer *l, const nn_dims *in2, char *err, size_t errlen) {
    (void)in2, (void)err, (void)errlen;
    int units = l->spec.units ? l->spec.units : net->classes;
    l->out = (nn_dims){1, 1, units};
    int64_t shape[2] = {(int64_t)l->in_size, units};
    l->weight = nn_add_tensor(net, l, "weight", 2, shape, 1);
    if (l->spec.bias) l->bias = nn_add_tensor(net, l, "bias", 1, shape + 1, 1);
    return 0;
}

static void init(nn_layer *l, nn_rng *rng) { nn_init_he(l->weight, l->out.c, rng); }

static void forward(const nn_pass *p, int s, int b0, int b1) {
    (void)s;
    const nn_layer *l = p->l;
    int n = b1 - b0, units = l->out.c;
    float *out = l->act + (size_t)b0 * units;
    const float *in = p->in[0] + (size_t)b0 * l->in_size;
    if (n == 1) /* sgemm would first pack all of W; sgemv streams it once */
        cblas_sgemv(CblasRowMajor, CblasTrans, (int)l->in_size, units, 1.0f, l->weight->value,
                    units, in, 1, 0.0f, out, 1);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, units, (int)l->in_size, 1.0f, in,
                    (int)l->in_size, l->weight->value, units, 0.0f, out, units);
    if (l->bias) nn_add_bias(out, l->bias->value, (size_t)n, units);
}

/* The weight gradient's rows split over the slices (no reduction needed,
 * and each thread writes one contiguous block: split by columns, two
 * threads' GEMMs wrote interleaved parts of every row and ran no faster
 * than one); the input gradient by samples. Slice 0 also sums the bias
 * gradient, over the whole batch in row order. */
static void backward(const nn_pass *p, int s, int b0, int b1, int phase) {
    (void)phase;
    const nn_layer *l = p->l;
    int units = l->out.c, in_size = (int)l->in_size, nb = b1 - b0;
    int r0 = nn_slice_begin(in_size, p->T, s), r1 = nn_slice_begin(in_size, p->T, s + 1);
    if (r1 > r0)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r1 - r0, units, p->n, 1.0f,
                    p->in[0] + r0, in_size, p->g, units, p->dw_beta, p->dw + (size_t)r0 * units,
                    units);
    if (p->din[0] && nb)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nb, in_size, units, 1.0f,
                    p->g + (size_t)b0 * units, units, l->weight->value, units, 0.0f,
                    p->din[0] + (size_t)b0 * in_size, in_size);
    if (s == 0 && l->bias) nn_bias_grad(l->bias->grad, p->g, (size_t)p->n, units);
}

static void one_rows(const nn_layer *l, const float *in, int r0, int r1, float *partial) {
    nn_gemv_rows(l->weight->value, l->out.c, in, r0, r1, l->out.c, partial);
}

static void one_finish(const nn_layer *l, const float *partials, size_t stride, int T, int c0,
                       int c1) {
    /* The other threads' partials were just written by other cores: ask for
     * all their lines at once, so that the transfers overlap instead of
     * following the loop one miss at a time. */
    for (int t = 0; t < T; t++)
        for (int c = c0; c < c1; c += 16)
            __builtin_prefetch(partials + (size_t)t * stride + c);
    for (int c = c0; c < c1; c++) {
        float sum = partials[c];
        for (int t = 1; t < T; t++)
            sum += partials[(size_t)t * stride + c];
        l->act[c] = l->bias ? sum + l->bias->value[c] : sum;
    }
}

const nn_kind nn_kind_dense = {.setup = setup,
                               .init = init,
                               .forward = forward,
                               .phases = 1,
                               .backward = backward,
                               .one_rows = one_rows,
                               .one_finish = one_finish,
                               .foldable = 1};
