/* Gradients against central finite differences of the float64 forward pass.
 * The loss is L = sum(w * y) for fixed random w, so dL/dy = w. Checked for
 * training mode (statistics depend on x) and frozen mode, in both modes and
 * layouts; the oracle's own backward is checked the same way. */
#include <math.h>
#include <stdlib.h>

#include "bnorm.h"
#include "check.h"
#include "oracle.h"

#define EPS 1e-3

static double loss(const bnorm_shape *s, bnorm_mode mode, int frozen, const double *x,
                   const double *g, const double *b, const double *fm, const double *fv,
                   const double *w, double *ybuf, double *mbuf, double *vbuf) {
    oracle_dims d = oracle_dims_of(s, mode);
    if (frozen) {
        oracle_normalize(s, mode, x, fm, fv, g, b, EPS, ybuf);
    } else {
        oracle_stats(s, mode, x, mbuf, vbuf);
        oracle_normalize(s, mode, x, mbuf, vbuf, g, b, EPS, ybuf);
    }
    double l = 0.0;
    for (size_t i = 0; i < d.total; i++)
        l += w[i] * ybuf[i];
    return l;
}

/* Central difference of the loss with respect to p[i]. */
static double numeric(double *p, size_t i, const bnorm_shape *s, bnorm_mode mode, int frozen,
                      double *x, double *g, double *b, const double *fm, const double *fv,
                      const double *w, double *ybuf, double *mbuf, double *vbuf) {
    double keep = p[i], h = 1e-5 * fmax(1.0, fabs(keep));
    p[i] = keep + h;
    double lp = loss(s, mode, frozen, x, g, b, fm, fv, w, ybuf, mbuf, vbuf);
    p[i] = keep - h;
    double lm = loss(s, mode, frozen, x, g, b, fm, fv, w, ybuf, mbuf, vbuf);
    p[i] = keep;
    return (lp - lm) / (2.0 * h);
}

static double max_rel(const double *a, const double *b, size_t n) {
    double e = 0.0, sc = 1e-30;
    for (size_t i = 0; i < n; i++)
        e = fmax(e, fabs(a[i] - b[i])), sc = fmax(sc, fabs(b[i]));
    return e / sc;
}

static void gradcheck(const bnorm_shape *s, bnorm_mode mode, int frozen, test_rng *rng) {
    oracle_dims d = oracle_dims_of(s, mode);
    size_t T = d.total, F = d.features;
    double *x = malloc(T * 8), *w = malloc(T * 8), *ybuf = malloc(T * 8);
    double *g = malloc(F * 8), *b = malloc(F * 8), *fm = malloc(F * 8), *fv = malloc(F * 8);
    double *mbuf = malloc(F * 8), *vbuf = malloc(F * 8);
    double *num_dx = malloc(T * 8), *num_dg = malloc(F * 8), *num_db = malloc(F * 8);
    double *or_dx = malloc(T * 8), *or_dg = malloc(F * 8), *or_db = malloc(F * 8);
    float *xf = malloc(T * 4), *wf = malloc(T * 4), *dxf = malloc(T * 4), *yf = malloc(T * 4);
    float *gf = malloc(F * 4), *bf = malloc(F * 4), *mf = malloc(F * 4), *sf = malloc(F * 4);
    float *dgf = malloc(F * 4), *dbf = malloc(F * 4);

    /* Inputs are float-representable so both sides see the same numbers. */
    for (size_t i = 0; i < T; i++)
        x[i] = xf[i] = (float)(rng_normal(rng) * 1.5 + 0.3);
    for (size_t i = 0; i < T; i++)
        w[i] = wf[i] = (float)rng_normal(rng);
    for (size_t f = 0; f < F; f++) {
        g[f] = gf[f] = (float)(0.5 + rng_uniform(rng));
        b[f] = bf[f] = (float)rng_normal(rng);
        fm[f] = mf[f] = (float)(0.2 * rng_normal(rng));
        fv[f] = sf[f] = (float)(0.5 + rng_uniform(rng));
    }
    for (size_t i = 0; i < T; i++)
        num_dx[i] = numeric(x, i, s, mode, frozen, x, g, b, fm, fv, w, ybuf, mbuf, vbuf);
    for (size_t f = 0; f < F; f++) {
        num_dg[f] = numeric(g, f, s, mode, frozen, x, g, b, fm, fv, w, ybuf, mbuf, vbuf);
        num_db[f] = numeric(b, f, s, mode, frozen, x, g, b, fm, fv, w, ybuf, mbuf, vbuf);
    }

    if (frozen)
        oracle_backward_frozen(s, mode, x, w, g, fm, fv, EPS, or_dx, or_dg, or_db);
    else
        oracle_backward_train(s, mode, x, w, g, EPS, or_dx, or_dg, or_db);
    CHECK(max_rel(or_dx, num_dx, T) < 1e-7 && max_rel(or_dg, num_dg, F) < 1e-7 &&
              max_rel(or_db, num_db, F) < 1e-7,
          "oracle backward disagrees with finite differences (frozen=%d)", frozen);

    bnorm_params p = bnorm_params_default();
    p.mode = mode;
    p.eps = (float)EPS;
    size_t wsz;
    bnorm_workspace_size(s, &p, &wsz);
    void *ws = malloc(wsz);
    for (int ref = 0; ref < 2; ref++) {
        p.flags = BNORM_USE_SCALE | BNORM_USE_SHIFT | (ref ? BNORM_FORCE_REFERENCE : 0);
        bnorm_status st;
        if (frozen) {
            st = bnorm_backward_inference(s, &p, xf, wf, gf, mf, sf, dxf, dgf, dbf, ws, wsz);
        } else {
            float *smean = malloc(F * 4), *sinv = malloc(F * 4);
            st = bnorm_forward_training(s, &p, xf, gf, bf, yf, smean, sinv, NULL, ws, wsz);
            if (st == BNORM_OK)
                st =
                    bnorm_backward_training(s, &p, xf, wf, gf, smean, sinv, dxf, dgf, dbf, ws, wsz);
            free(smean), free(sinv);
        }
        CHECK(st == BNORM_OK, "backward: %s", bnorm_status_str(st));
        double edx = oracle_rel_err_f(dxf, num_dx, T), edg = oracle_rel_err_f(dgf, num_dg, F);
        double edb = oracle_rel_err_f(dbf, num_db, F);
        CHECK(edx < 2e-5 && edg < 2e-5 && edb < 2e-5,
              "layout %d mode %d frozen %d ref %d: dx %.3g dgamma %.3g dbeta %.3g", s->layout, mode,
              frozen, ref, edx, edg, edb);
    }
    free(ws);
    free(x), free(w), free(ybuf), free(g), free(b), free(fm), free(fv), free(mbuf), free(vbuf);
    free(num_dx), free(num_dg), free(num_db), free(or_dx), free(or_dg), free(or_db);
    free(xf), free(wf), free(dxf), free(yf), free(gf), free(bf), free(mf), free(sf), free(dgf);
    free(dbf);
}

int main(void) {
    test_rng rng = {2024};
    bnorm_shape shapes[4];
    shapes[0] = bnorm_shape_nc(9, 5);
    shapes[1] = bnorm_shape_nchw(3, 4, 3, 5);
    shapes[2] = bnorm_shape_nhwc(3, 3, 5, 4);
    shapes[3] = bnorm_shape_nchw(1, 2, 4, 4);
    for (int i = 0; i < 4; i++)
        for (int mode = 0; mode < 2; mode++)
            for (int frozen = 0; frozen < 2; frozen++) {
                if (mode == BNORM_MODE_PER_ACTIVATION && shapes[i].n == 1 && !frozen) continue;
                gradcheck(&shapes[i], (bnorm_mode)mode, frozen, &rng);
            }
    return check_finish();
}
