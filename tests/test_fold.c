/* Folding BN into the layer before it: the folded layer's output against
 * the layer followed by test-mode BN, computed in double from the unfolded
 * parameters, within the rounding bound of the folded parameters; var near
 * 0, gamma 0, no bias, ragged channel counts, both weight orders, in place;
 * bad arguments refused with nothing written. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bnorm.h"
#include "check.h"
#include "oracle.h"

/* One case: C output channels of K inputs each, a batch of N input rows. */
static void check_case(int C, int K, int with_bias, int in_place, bnorm_weight_order order,
                       test_rng *rng) {
    const int N = 5;
    size_t wn = (size_t)C * K;
    float *w = malloc(wn * sizeof(float)), *w2 = malloc(wn * sizeof(float));
    float *b = malloc(C * sizeof(float)), *b2 = malloc(C * sizeof(float));
    float *g = malloc(C * sizeof(float)), *be = malloc(C * sizeof(float));
    float *mu = malloc(C * sizeof(float)), *var = malloc(C * sizeof(float));
    float *x = malloc((size_t)N * K * sizeof(float));
    float eps = 1e-5f;
    for (size_t i = 0; i < wn; i++)
        w[i] = (float)rng_normal(rng);
    for (int o = 0; o < C; o++) {
        b[o] = (float)rng_normal(rng);
        g[o] = o % 5 == 1 ? 0.0f : (float)(1.0 + 0.5 * rng_normal(rng)); /* gamma 0 */
        be[o] = (float)rng_normal(rng);
        mu[o] = (float)(3.0 * rng_normal(rng));
        var[o] = o % 4 == 2 ? 1e-12f : (float)(0.01 + fabs(rng_normal(rng))); /* var ~ 0 */
    }
    for (int i = 0; i < N * K; i++)
        x[i] = (float)rng_normal(rng);
    float *wo = w2, *bo = b2; /* in place: the inputs are these copies too */
    memcpy(w2, w, wn * sizeof(float));
    memcpy(b2, b, C * sizeof(float));
    bnorm_status st =
        bnorm_fold_into_layer(C, K, order, in_place ? w2 : w,
                              with_bias ? (in_place ? b2 : b) : NULL, g, be, mu, var, eps, wo, bo);
    CHECK(st == BNORM_OK, "fold: %s", bnorm_status_str(st));
    double worst = 0.0;
    for (int n = 0; n < N; n++)
        for (int o = 0; o < C; o++) {
            double lin = with_bias ? b[o] : 0.0, folded = bo[o], mag = fabs(bo[o]);
            for (int k = 0; k < K; k++) {
                size_t i = order == BNORM_WEIGHTS_OUT_FIRST ? (size_t)o * K + k : (size_t)k * C + o;
                lin += (double)w[i] * x[n * K + k];
                folded += (double)wo[i] * x[n * K + k];
                mag += fabs((double)wo[i] * x[n * K + k]);
            }
            double ref = g[o] * (lin - mu[o]) / sqrt((double)var[o] + eps) + be[o];
            /* Each folded parameter is rounded once (2^-24 relative); 2^-23
             * leaves room for the double sums. */
            double err = fabs(folded - ref), bound = 0x1p-23 * mag + 1e-300;
            if (err / bound > worst) worst = err / bound;
        }
    CHECK(worst <= 1.0, "C %d K %d bias %d order %d: error %.2f of the rounding bound", C, K,
          with_bias, (int)order, worst);
    /* The per-feature pair gives the same map. */
    float *scale = malloc(C * sizeof(float)), *shift = malloc(C * sizeof(float));
    CHECK(bnorm_fold_scale_shift(C, g, be, mu, var, eps, scale, shift) == BNORM_OK, "pair");
    int pair_ok = 1;
    for (int o = 0; o < C; o++) {
        double a = g[o] / sqrt((double)var[o] + eps), sh = be[o] - mu[o] * a;
        pair_ok &=
            fabs(scale[o] - a) <= 0x1p-24 * fabs(a) && fabs(shift[o] - sh) <= 0x1p-24 * fabs(sh);
    }
    CHECK(pair_ok, "C %d: scale/shift off by more than one rounding", C);
    free(w), free(w2), free(b), free(b2), free(g), free(be), free(mu), free(var), free(x);
    free(scale), free(shift);
}

static void check_errors(void) {
    float w[6] = {1, 2, 3, 4, 5, 6}, out[6] = {7, 7, 7, 7, 7, 7}, bo[2] = {7, 7};
    float g[2] = {1, 1}, be[2] = {0, 0}, mu[2] = {0, 0}, var[2] = {1, 1};
    CHECK(bnorm_fold_into_layer(2, 3, BNORM_WEIGHTS_OUT_FIRST, NULL, NULL, g, be, mu, var, 1e-5f,
                                out, bo) == BNORM_ERR_NULL_POINTER,
          "NULL weight");
    CHECK(bnorm_fold_into_layer(2, 3, BNORM_WEIGHTS_OUT_FIRST, w, NULL, g, be, NULL, var, 1e-5f,
                                out, bo) == BNORM_ERR_NULL_POINTER,
          "NULL mean");
    CHECK(bnorm_fold_into_layer(0, 3, BNORM_WEIGHTS_OUT_FIRST, w, NULL, g, be, mu, var, 1e-5f, out,
                                bo) == BNORM_ERR_INVALID_DIMENSION,
          "0 channels");
    CHECK(bnorm_fold_into_layer(2, -1, BNORM_WEIGHTS_OUT_FIRST, w, NULL, g, be, mu, var, 1e-5f, out,
                                bo) == BNORM_ERR_INVALID_DIMENSION,
          "negative fan_in");
    CHECK(bnorm_fold_into_layer(2, INT64_MAX, BNORM_WEIGHTS_OUT_FIRST, w, NULL, g, be, mu, var,
                                1e-5f, out, bo) == BNORM_ERR_DIMENSION_OVERFLOW,
          "overflow");
    CHECK(bnorm_fold_into_layer(2, 3, (bnorm_weight_order)7, w, NULL, g, be, mu, var, 1e-5f, out,
                                bo) == BNORM_ERR_INVALID_LAYOUT,
          "unknown order");
    CHECK(bnorm_fold_into_layer(2, 3, BNORM_WEIGHTS_OUT_FIRST, w, NULL, g, be, mu, var, 0.0f, out,
                                bo) == BNORM_ERR_INVALID_EPS,
          "eps 0");
    CHECK(bnorm_fold_scale_shift(2, g, be, mu, var, NAN, out, bo) == BNORM_ERR_INVALID_EPS,
          "NaN eps");
    int untouched = bo[0] == 7 && bo[1] == 7;
    for (int i = 0; i < 6; i++)
        untouched &= out[i] == 7;
    CHECK(untouched, "an error wrote an output");
    /* NULL gamma and beta are 1 and 0. */
    float sc[2], sh[2];
    mu[1] = 2, var[1] = 3;
    CHECK(bnorm_fold_scale_shift(2, NULL, NULL, mu, var, 1e-5f, sc, sh) == BNORM_OK, "NULLs");
    CHECK(sc[1] == (float)(1.0 / sqrt(3.0 + (double)1e-5f)) &&
              sh[1] == (float)(-2.0 / sqrt(3.0 + (double)1e-5f)),
          "NULL gamma/beta: %g %g", sc[1], sh[1]);
}

int main(void) {
    test_rng rng = {77};
    const int Cs[] = {1, 7, 16, 33}, Ks[] = {1, 9, 27, 300};
    for (int ci = 0; ci < 4; ci++)
        for (int ki = 0; ki < 4; ki++)
            for (int order = 0; order < 2; order++)
                for (int bias = 0; bias < 2; bias++)
                    check_case(Cs[ci], Ks[ki], bias, (ci + ki) % 2, (bnorm_weight_order)order,
                               &rng);
    check_errors();
    return check_finish();
}
