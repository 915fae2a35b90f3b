/* The direct 3x3 convolutions to 16 and 32 channels (net/narrow.c) against double
 * sums over ragged shapes: rows of every tile width with pixels left over,
 * input channels in and out of whole blocks, padded rows wider than the
 * image, and, for the weight gradient, beta 0 (dw not read: it holds NaN),
 * 1 and 0.9. Each value must lie within the error bound of its sum,
 * |got - ref| <= (terms + 2) 2^-24 (sum |terms|); a term from a wrong tap,
 * pixel or channel misses by far more. Outputs past the row must stay
 * untouched. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "digest.h"
#include "filled.h"
#include "narrow.h"

#ifdef NN_TEST_NEEDS_AVX2
#define NEEDS_AVX2 1
#else
#define NEEDS_AVX2 0
#endif

static int OC, failures, checked;
/* Every output: the 16- and 8-lane tiles must agree on it
 * (test_narrow_widths_identical). */
static unsigned long long digest = DIGEST_START;

static unsigned rng_state = 77u;
static float *alloc(size_t count) { return filled_alloc(count, &rng_state); }

static int within(double got, double ref, double mag, int terms) {
    return fabs(got - ref) <= (terms + 2) * ldexp(1.0, -24) * mag;
}

/* Channel i of the padded input that tap t (ky = t / 3, kx = t % 3) of
 * output pixel (y, x) reads. */
static double tap(const float *pad, size_t pad_row, int c, int y, int x, int t, int i) {
    return pad[(size_t)(y + t / 3) * pad_row + (size_t)(x + t % 3) * c + i];
}

/* oh output rows of width ow from a padded input (oh + 2) x (ow + 2 + extra)
 * of c channels: every row through nn_narrow_row, against the double sums. */
static void row_case(int oh, int ow, int c, int extra) {
    size_t pad_row = (size_t)(ow + 2 + extra) * c, row_out = (size_t)ow * OC + OC;
    float *pad = alloc((size_t)(oh + 2) * pad_row), *w = alloc((size_t)9 * c * OC);
    float *out = alloc((size_t)oh * row_out), *guard = alloc((size_t)oh * OC);
    for (int y = 0; y < oh; y++)
        for (int o = 0; o < OC; o++)
            guard[(size_t)y * OC + o] = out[(size_t)y * row_out + (size_t)ow * OC + o];
    for (int y = 0; y < oh; y++)
        nn_narrow_row(ow, c, OC, pad + (size_t)y * pad_row, pad_row, w, out + (size_t)y * row_out);
    digest = digest_add(digest, out, (size_t)oh * row_out);
    int bad = 0;
    for (int y = 0; y < oh && !bad; y++)
        for (int x = 0; x < ow && !bad; x++)
            for (int o = 0; o < OC && !bad; o++) {
                double ref = 0.0, mag = 0.0;
                for (int t = 0; t < 9; t++)
                    for (int i = 0; i < c; i++) {
                        double v =
                            tap(pad, pad_row, c, y, x, t, i) * w[((size_t)t * c + i) * OC + o];
                        ref += v, mag += fabs(v);
                    }
                double got = out[(size_t)y * row_out + (size_t)x * OC + o];
                checked++;
                if (!within(got, ref, mag, 9 * c)) {
                    fprintf(stderr,
                            "FAIL row oc=%d oh=%d ow=%d c=%d: out[%d][%d][%d] = %.9g, want %.9g\n",
                            OC, oh, ow, c, y, x, o, got, ref);
                    bad = 1;
                }
            }
    for (int y = 0; y < oh && !bad; y++)
        for (int o = 0; o < OC && !bad; o++)
            if (out[(size_t)y * row_out + (size_t)ow * OC + o] != guard[(size_t)y * OC + o]) {
                fprintf(stderr, "FAIL row oc=%d oh=%d ow=%d c=%d: wrote past the row\n", OC, oh, ow,
                        c);
                bad = 1;
            }
    failures += bad;
    free(pad), free(w), free(out), free(guard);
}

static void weight_case(int oh, int ow, int c, int extra, float beta) {
    size_t pad_row = (size_t)(ow + 2 + extra) * c, size = (size_t)9 * c * OC;
    float *pad = alloc((size_t)(oh + 2) * pad_row), *g = alloc((size_t)oh * ow * OC);
    float *dw = alloc(size), *dw0 = alloc(size);
    for (size_t i = 0; i < size; i++) {
        if (beta == 0.0f) dw[i] = NAN;
        dw0[i] = dw[i];
    }
    nn_narrow_weight_gradient(oh, ow, c, OC, pad, pad_row, g, beta, dw);
    digest = digest_add(digest, dw, size);
    int bad = 0, terms = oh * ow + 1;
    for (int t = 0; t < 9 && !bad; t++)
        for (int i = 0; i < c && !bad; i++)
            for (int o = 0; o < OC && !bad; o++) {
                size_t at = ((size_t)t * c + i) * OC + o;
                double ref = 0.0, mag = 0.0;
                if (beta != 0.0f) ref = (double)beta * dw0[at], mag = fabs(ref);
                for (int y = 0; y < oh; y++)
                    for (int x = 0; x < ow; x++) {
                        double v =
                            tap(pad, pad_row, c, y, x, t, i) * g[((size_t)y * ow + x) * OC + o];
                        ref += v, mag += fabs(v);
                    }
                checked++;
                if (!within(dw[at], ref, mag, terms)) {
                    fprintf(stderr,
                            "FAIL weights oc=%d oh=%d ow=%d c=%d beta=%g: dw[%d][%d][%d] = %.9g, "
                            "want %.9g\n",
                            OC, oh, ow, c, beta, t, i, o, dw[at], ref);
                    bad = 1;
                }
            }
    failures += bad;
    free(pad), free(g), free(dw), free(dw0);
}

int main(void) {
#if defined(__x86_64__) && defined(__GNUC__)
    if (NEEDS_AVX2 && !__builtin_cpu_supports("avx2")) {
        printf("test_narrow: skipped, the CPU has no AVX2\n");
        return 77;
    }
#endif
    static const int widths[] = {1, 2, 3, 4, 5, 7, 8, 9, 13, 14, 15, 16, 27, 28, 29, 31};
    static const int channels[] = {1, 2, 3, 5, 8, 9, 13, 16, 17, 32};
    for (OC = 16; OC <= 64; OC += 16) {
        for (size_t a = 0; a < sizeof widths / sizeof widths[0]; a++)
            for (size_t b = 0; b < sizeof channels / sizeof channels[0]; b++) {
                int ow = widths[a], c = channels[b];
                row_case(2, ow, c, (int)(a % 3));
                weight_case(1 + (int)(b % 3), ow, c, (int)(b % 2), b % 3 == 0 ? 0.0f : 0.9f);
            }
        weight_case(28, 28, 16, 0, 1.0f);
        weight_case(5, 14, 16, 3, 0.0f);
    }
    if (failures) {
        fprintf(stderr, "test_narrow: %d of the cases failed\n", failures);
        return 1;
    }
    printf("test_narrow: %d values within their bounds, digest %016llx\n", checked, digest);
    return 0;
}
