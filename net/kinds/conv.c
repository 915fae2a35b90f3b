/* conv: a size x size convolution (3 or 1) with stride 1 or 2 and same
 * padding, as matrix products (gemm.h) of the im2col of its input and its
 * weights [size][size][in_c][out_c], one row of the product's B per im2col
 * column. A 1x1 convolution of stride 1 needs no im2col: its input already
 * is the product's A. The others read the im2col where it lies instead of
 * writing it, wherever the shapes allow (the input padded by a pixel, once
 * per sample; nn_gemm_runs):
 *   forward: a row of a 3x3 convolution's im2col is three runs of 3 x in_c
 *     floats of the padded input (a 1x1 of stride 2: one run of in_c);
 *   weight gradient (3x3): for each tap, the padded input seen as in_c
 *     channels by output pixels, a run per output row, times the output
 *     gradient;
 *   input gradient (3x3, stride 1): the convolution of the padded output
 *     gradient with the weights turned half a turn and transposed.
 * A 3x3 convolution of stride 1 to 16 or 32 channels is no product at all
 * but computed directly (narrow.h), from the same padded input: forward,
 * weight gradient, and input gradient where the input has 16 or 32
 * channels. Elsewhere (a stride-2 input gradient, the 1x1 weight
 * gradients) the im2col is built, a chunk of samples at a time. */

#include "gemm.h"
#include "kind.h"
#include "narrow.h"
#include "ops.h"

static int setup(nn_net *net, nn_layer *l, const nn_dims *in2, char *err, size_t errlen) {
    (void)in2, (void)err, (void)errlen;
    int st = l->spec.stride;
    l->out = (nn_dims){(l->in.h + st - 1) / st, (l->in.w + st - 1) / st, l->spec.units};
    int64_t shape[4] = {l->spec.size, l->spec.size, l->in.c, l->spec.units};
    l->weight = nn_add_tensor(net, l, "weight", 4, shape, 1);
    if (l->spec.bias) l->bias = nn_add_tensor(net, l, "bias", 1, shape + 3, 1);
    return 0;
}

static int direct(const nn_layer *l) { return l->spec.size == 1 && l->spec.stride == 1; }
static int taps(const nn_layer *l) { return l->spec.size * l->spec.size * l->in.c; }
static size_t pixels(const nn_layer *l) { return (size_t)l->out.h * l->out.w; }

/* Samples per im2col chunk (net->conv_chunk_bytes): a whole slice's rows,
 * megabytes, would go out to L3 and back between im2col and the GEMM. */
static int chunk(const nn_net *net, const nn_layer *l) {
    size_t per_sample = pixels(l) * (size_t)taps(l) * sizeof(float);
    if (direct(l) || per_sample == 0 || per_sample >= net->conv_chunk_bytes) return 1;
    return (int)(net->conv_chunk_bytes / per_sample);
}

/* Whether c channels of output are narrow enough for narrow.h to beat a
 * product (64 measured even with the 64-wide product tiles: 0.96-1.05x the
 * residual CNN's step). */
static int narrow_channels(int c) { return c == 16 || c == 32; }

/* Whether the layer is a 3x3 convolution of stride 1 to 16 or 32 channels,
 * which narrow.h computes directly: forward and weight gradient, and the
 * input gradient too where the input has 16 or 32 channels. */
static int narrow(const nn_layer *l) {
    return l->spec.size == 3 && l->spec.stride == 1 && narrow_channels(l->out.c);
}

/* Whether the forward reads its input in place: a narrow() layer, and
 * every other convolution but a 1x1 of stride 1 (which is its input) where
 * the runs keep nn_gemm's sums (runs of even length: 16-wide tiles pair the
 * terms; output channels a multiple of 16: the narrow edge takes one run). */
static int in_place(const nn_layer *l) {
    if (direct(l)) return 0;
    if (narrow(l)) return 1;
    if (l->spec.size == 1) return 1;
    return l->in.c % 2 == 0 && l->out.c % 16 == 0;
}

/* Whether the input gradient of a 3x3 convolution of stride 1 is computed
 * as the convolution of the output gradient, padded by a pixel, with the
 * weights turned half a turn and transposed (runs of 3 x out_c floats, the
 * input's channels as the product's columns), instead of a product that
 * writes every pixel's 9 x in_c taps and a col2im that adds them up. */
static int flipped(const nn_layer *l) {
    return l->spec.size == 3 && l->spec.stride == 1 && l->in.c % 16 == 0 && l->out.c % 16 == 0;
}

static size_t pad_floats(const nn_layer *l) {
    if (l->spec.size != 3) return 0;
    size_t sides = (size_t)(l->in.h + 2) * (l->in.w + 2);
    int c = flipped(l) && l->out.c > l->in.c ? l->out.c : l->in.c;
    return sides * c;
}

/* A thread's scratch: the im2col chunk (or one padded input, if larger),
 * then room for the weights' transpose (the input gradient's B) or the
 * weight gradient's transpose. */
static size_t col_floats(const nn_net *net, const nn_layer *l) {
    size_t col = direct(l) ? 0 : (size_t)chunk(net, l) * pixels(l) * taps(l);
    return col > pad_floats(l) ? col : pad_floats(l);
}

/* Output rows [y0, y1) of one sample read in place: from the input padded
 * by a pixel into pad (3x3; its rows that these output rows read), or from
 * the input itself (1x1 of stride 2). */
static void forward_rows(const nn_layer *l, const float *in, float *pad, int y0, int y1,
                         float *out) {
    const int st = l->spec.stride, c = l->in.c, oc = l->out.c, ow = l->out.w;
    const float *w = l->weight->value;
    if (l->spec.size == 1) {
        for (int oy = y0; oy < y1; oy++)
            nn_gemm_runs(ow, oc, 1, c, in + (size_t)oy * st * l->in.w * c, (size_t)st * c, 0, w, oc,
                         out + (size_t)(oy - y0) * ow * oc, oc);
        return;
    }
    const size_t pad_row = (size_t)(l->in.w + 2) * c;
    nn_pad_rows(pad, in, l->in.h, l->in.w, c, y0 * st, (y1 - 1) * st + 3);
    for (int oy = y0; oy < y1; oy++) {
        float *row = out + (size_t)(oy - y0) * ow * oc;
        if (narrow(l))
            nn_narrow_row(ow, c, oc, pad + (size_t)oy * pad_row, pad_row, w, row);
        else
            nn_gemm_runs(ow, oc, 3, 3 * c, pad + (size_t)oy * st * pad_row, (size_t)st * c, pad_row,
                         w, oc, row, oc);
    }
}

static void plan(const nn_net *net, const nn_layer *l, nn_plan *need) {
    need->thread_floats = col_floats(net, l) + (size_t)taps(l) * l->out.c;
    /* Each slice but the first sums its samples' weight gradient apart. */
    if (net->threads > 1)
        need->work_bytes = (size_t)(net->threads - 1) * l->weight->size * sizeof(float);
}

static void init(nn_layer *l, nn_rng *rng) { nn_init_he(l->weight, l->out.c, rng); }

/* The GEMM's A for m samples from in: the input itself, or its im2col in col. */
static const float *columns(const nn_layer *l, float *col, const float *in, int m) {
    if (direct(l)) return in;
    nn_im2col(col, in, m, l->in.h, l->in.w, l->in.c, l->spec.size, l->spec.stride, 0, l->out.h);
    return col;
}

static void forward(const nn_pass *p, int s, int b0, int b1) {
    const nn_layer *l = p->l;
    int K = taps(l), oc = l->out.c, step = chunk(p->net, l);
    size_t pix = pixels(l);
    float *col = nn_thread_scratch(p->net, s);
    for (int b = b0; in_place(l) && b < b1; b++)
        forward_rows(l, p->in[0] + (size_t)b * l->in_size, col, 0, l->out.h,
                     l->act + (size_t)b * l->out_size);
    for (int c0 = b0; !in_place(l) && c0 < b1; c0 += step) {
        int m = b1 - c0 < step ? b1 - c0 : step;
        const float *a = columns(l, col, p->in[0] + (size_t)c0 * l->in_size, m);
        nn_gemm((int)(m * pix), oc, K, a, K, 0, l->weight->value, oc, 0.0f,
                l->act + (size_t)c0 * l->out_size, oc);
    }
    if (l->bias)
        nn_add_bias(l->act + (size_t)b0 * l->out_size, l->bias->value, (size_t)(b1 - b0) * pix, oc);
}

/* Part s of `parts` of a batch smaller than the thread count: a band of
 * each sample's output rows, with the im2col of that band only. */
static void forward_part(const nn_pass *p, int s, int parts) {
    const nn_layer *l = p->l;
    int y0 = nn_slice_begin(l->out.h, parts, s), y1 = nn_slice_begin(l->out.h, parts, s + 1);
    int K = taps(l), oc = l->out.c, ow = l->out.w;
    if (y0 == y1) return;
    size_t rows = (size_t)(y1 - y0) * ow;
    float *col = nn_thread_scratch(p->net, s);
    for (int b = 0; b < p->n; b++) {
        const float *in = p->in[0] + (size_t)b * l->in_size, *a = col;
        float *out = l->act + (size_t)b * l->out_size + (size_t)y0 * ow * oc;
        if (in_place(l)) {
            forward_rows(l, in, col, y0, y1, out);
            if (l->bias) nn_add_bias(out, l->bias->value, rows, oc);
            continue;
        }
        if (direct(l))
            a = in + (size_t)y0 * ow * l->in.c;
        else
            nn_im2col(col, in, 1, l->in.h, l->in.w, l->in.c, l->spec.size, l->spec.stride, y0, y1);
        nn_gemm((int)rows, oc, K, a, K, 0, l->weight->value, oc, 0.0f, out, oc);
        if (l->bias) nn_add_bias(out, l->bias->value, rows, oc);
    }
}

/* din of samples [b0, b1) for a flipped() layer: din[y][x][k] = the sum
 * over ky, kx, o of g_pad[y + ky][x + kx][o] * w[2 - ky][2 - kx][k][o],
 * with wt = w turned and transposed to [ky][kx][o][k] and each sample's g
 * padded into pad. */
static void input_gradient_flipped(const nn_layer *l, const float *g, float *din, float *pad,
                                   float *wt, int b0, int b1) {
    const int h = l->in.h, w = l->in.w, c = l->in.c, oc = l->out.c;
    const float *wsrc = l->weight->value;
    for (int t = 0; t < 9; t++)
        for (int o = 0; o < oc; o++)
            for (int k = 0; k < c; k++)
                wt[((size_t)t * oc + o) * c + k] = wsrc[((size_t)(8 - t) * c + k) * oc + o];
    const size_t pad_row = (size_t)(w + 2) * oc, pix = (size_t)h * w;
    for (int b = b0; b < b1; b++) {
        nn_pad_rows(pad, g + (size_t)b * pix * oc, h, w, oc, 0, h + 2);
        for (int y = 0; y < h; y++) {
            float *row = din + ((size_t)b * pix + (size_t)y * w) * c;
            if (narrow_channels(c))
                nn_narrow_row(w, oc, c, pad + (size_t)y * pad_row, pad_row, wt, row);
            else
                nn_gemm_runs(w, c, 3, 3 * oc, pad + (size_t)y * pad_row, (size_t)oc, pad_row, wt, c,
                             row, c);
        }
    }
}

/* The weight gradient of samples [b0, b1) of a 3x3 convolution (out_c a
 * multiple of 16) without its im2col: for each tap, dw[tap] (in_c x out_c)
 * += the tap's view of the padded input (channels by output pixels, a run
 * per output row) times the output gradient, sample by sample into dw (the
 * first sample onto keep * dw). */
static void weight_gradient_in_place(const nn_layer *l, const float *in, const float *g, float *pad,
                                     int b0, int b1, float keep, float *dw) {
    const int st = l->spec.stride, c = l->in.c, oc = l->out.c, oh = l->out.h, ow = l->out.w;
    const size_t pad_row = (size_t)(l->in.w + 2) * c, pix = (size_t)oh * ow;
    for (int b = b0; b < b1; b++) {
        nn_pad_rows(pad, in + (size_t)b * l->in_size, l->in.h, l->in.w, c, 0, l->in.h + 2);
        if (narrow(l)) {
            nn_narrow_weight_gradient(oh, ow, c, oc, pad, pad_row, g + (size_t)b * pix * oc,
                                      b > b0 ? 1.0f : keep, dw);
            continue;
        }
        for (int t = 0; t < 9; t++)
            nn_gemm_runs_strided(c, oc, oh, ow,
                                 pad + (size_t)(t / 3) * pad_row + (size_t)(t % 3) * c, 1,
                                 (size_t)st * c, (size_t)st * pad_row, g + (size_t)b * pix * oc, oc,
                                 b > b0 ? 1.0f : keep, dw + (size_t)t * c * oc, oc);
    }
}

/* Phase 0: the weight gradient sums over every pixel of the batch, which is
 * long: each slice sums its own samples (slice 0 into dw with beta, the
 * others into partial buffers), so that each thread packs only its part of
 * both operands. Phase 1 adds the partials in slice order, each thread over
 * its own rows of dw, then the input gradient of the slice's samples. */
static void backward(const nn_pass *p, int s, int b0, int b1, int phase) {
    const nn_layer *l = p->l;
    int K = taps(l), oc = l->out.c, step = chunk(p->net, l);
    size_t pix = pixels(l), wsize = (size_t)K * oc;
    float *partial = p->net->work, *col = nn_thread_scratch(p->net, s);
    float *wt = col + col_floats(p->net, l);
    if (phase == 0) {
        float *dst = s == 0 ? p->dw : partial + (size_t)(s - 1) * wsize;
        if (l->spec.size == 3 && oc % 16 == 0) {
            weight_gradient_in_place(l, p->in[0], p->g, col, b0, b1, s == 0 ? p->dw_beta : 0.0f,
                                     dst);
            return;
        }
        for (int c0 = b0; c0 < b1; c0 += step) {
            int m = b1 - c0 < step ? b1 - c0 : step;
            float keep = c0 > b0 ? 1.0f : s == 0 ? p->dw_beta : 0.0f;
            const float *a = columns(l, col, p->in[0] + (size_t)c0 * l->in_size, m);
            nn_gemm_at_b(K, oc, (int)(m * pix), a, K, p->g + (size_t)c0 * pix * oc, oc, keep, dst,
                         oc, wt);
        }
        return;
    }
    size_t r0 = (size_t)nn_slice_begin(K, p->T, s), r1 = (size_t)nn_slice_begin(K, p->T, s + 1);
    for (int t = 1; t < p->T; t++)
        nn_add_rows(p->dw + r0 * oc, partial + (size_t)(t - 1) * wsize + r0 * oc, (r1 - r0) * oc);
    if (p->din[0] && flipped(l)) {
        input_gradient_flipped(l, p->g, p->din[0], col, wt, b0, b1);
    } else if (p->din[0]) {
        nn_transpose(K, oc, l->weight->value, oc, wt);
    }
    for (int c0 = b0; p->din[0] && !flipped(l) && c0 < b1; c0 += step) {
        int m = b1 - c0 < step ? b1 - c0 : step;
        float *din = p->din[0] + (size_t)c0 * l->in_size;
        float *dst = direct(l) ? din : col;
        nn_gemm((int)(m * pix), K, oc, p->g + (size_t)c0 * pix * oc, oc, 0, wt, K, 0.0f, dst, K);
        if (direct(l)) continue;
        nn_col2im(din, col, m, l->in.h, l->in.w, l->in.c, l->spec.size, l->spec.stride);
    }
    if (s == 0 && l->bias) nn_bias_grad(l->bias->grad, p->g, (size_t)p->n * pix, oc);
}

const nn_kind nn_kind_conv = {.setup = setup,
                              .plan = plan,
                              .init = init,
                              .forward = forward,
                              .forward_part = forward_part,
                              .phases = 2,
                              .backward = backward,
                              .foldable = 1};
