/* Not a test: measures, per feature, how far the training backward of two
 * values per feature (per-activation, N = 2) is from the float64 chain
 * rule, for docs/NUMERICS.md. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "bnorm.h"
#include "oracle.h"

int main(void) {
    test_rng rng = {5};
    const int F = 4096;
    bnorm_shape s = bnorm_shape_nc(2, F);
    double scales[3][2] = {{0, 1}, {1e4, 0.1}, {1, 1e-4}};
    float eps_list[3] = {1e-5f, 1e-5f, 1e-3f};
    for (int c = 0; c < 3; c++) {
        float *x = malloc(2 * F * 4), *y = malloc(2 * F * 4), *dy = malloc(2 * F * 4),
              *dx = malloc(2 * F * 4);
        double *xd = malloc(2 * F * 8), *dyd = malloc(2 * F * 8), *dxd = malloc(2 * F * 8);
        float g[4096], b[4096], sm[4096], si[4096], dg[4096], db[4096];
        double gd[4096], dgd[4096], dbd[4096];
        for (int i = 0; i < 2 * F; i++) {
            x[i] = (float)(scales[c][0] + scales[c][1] * rng_normal(&rng));
            xd[i] = x[i];
            dy[i] = (float)rng_normal(&rng);
            dyd[i] = dy[i];
        }
        for (int f = 0; f < F; f++)
            g[f] = 1, gd[f] = 1, b[f] = 0;
        for (int ref = 0; ref < 2; ref++) {
            bnorm_params p = bnorm_params_default();
            p.mode = BNORM_MODE_PER_ACTIVATION;
            p.eps = eps_list[c];
            if (ref) p.flags |= BNORM_FORCE_REFERENCE;
            size_t wsz;
            bnorm_workspace_size(&s, &p, &wsz);
            void *ws = malloc(wsz);
            bnorm_forward_training(&s, &p, x, g, b, y, sm, si, NULL, ws, wsz);
            bnorm_backward_training(&s, &p, x, dy, g, sm, si, dx, dg, db, ws, wsz);
            oracle_backward_train(&s, BNORM_MODE_PER_ACTIVATION, xd, dyd, gd, eps_list[c], dxd, dgd,
                                  dbd);
            double wdx = 0, wdg = 0, wdb = 0;
            for (int f = 0; f < F; f++) {
                double m =
                    (double)si[f] *
                    fmax(fabs(dyd[f]), fabs(dyd[F + f])); /* scale of the terms that cancel */
                double e = fmax(fabs(dx[f] - dxd[f]), fabs(dx[F + f] - dxd[F + f]));
                if (m > 0) wdx = fmax(wdx, e / m);
                if (fabs(dgd[f]) > 0) wdg = fmax(wdg, fabs(dg[f] - dgd[f]) / fabs(dgd[f]));
                if (fabs(dbd[f]) > 0) wdb = fmax(wdb, fabs(db[f] - dbd[f]) / fabs(dbd[f]));
            }
            printf("N=2 per-activation, mean %g std %g eps %g, %s: worst per-feature error: dx "
                   "%.2e of gamma*invstd*max|dy|, relative dgamma %.2e dbeta %.2e\n",
                   scales[c][0], scales[c][1], eps_list[c], ref ? "reference" : "fast", wdx, wdg,
                   wdb);
            free(ws);
        }
    }
    return 0;
}
