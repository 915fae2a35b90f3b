/* Synchronized BN: a batch cut into K shares (uneven, empty ones included),
 * each share's record, the records merged in rank order, the forward from
 * the global record, the backward's local sums added up and applied, must
 * give what one call on the whole batch gives, within 1e-6 of each
 * tensor's largest magnitude (4e-6 for dgamma): y, saved mean and invstd,
 * running statistics, dx, dgamma, dbeta; with the fused ReLU and add, dz
 * and the ReLU mask too. Reference and fast paths, 1 and 3 threads. Merging
 * is exact to the order given, empty records change no bit, and bad
 * arguments are refused. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bnorm.h"
#include "check.h"
#include "oracle.h"

#define TOL 1e-6

/* max |a - b| / max |b| */
static double rel(const float *a, const float *b, size_t n) {
    double err = 0.0, mag = 1e-30;
    for (size_t i = 0; i < n; i++) {
        err = fmax(err, fabs((double)a[i] - b[i]));
        mag = fmax(mag, fabs((double)b[i]));
    }
    return err / mag;
}

static bnorm_shape with_n(bnorm_shape s, int64_t n) {
    s.n = n;
    return s;
}

/* ops: the fused ReLU and add (bnorm_fused_*_global against the fused
 * calls on the whole batch), or 0. */
static void check_partition(const bnorm_shape *whole, bnorm_mode mode, const int *shares, int K,
                            unsigned extra, int threads, double center, unsigned ops,
                            test_rng *rng) {
    bnorm_params p = bnorm_params_default();
    p.mode = mode, p.threads = threads, p.eps = 1e-3f;
    p.flags |= extra | BNORM_EXACT_THREADS;
    oracle_dims d = oracle_dims_of(whole, mode);
    size_t T = d.total, F = d.features, per = T / (size_t)whole->n, wsz;
    CHECK(bnorm_workspace_size(whole, &p, &wsz) == BNORM_OK, "workspace");
    void *ws = malloc(wsz);
    float *x = malloc(T * 4), *dy = malloc(T * 4), *g = malloc(F * 4), *b = malloc(F * 4);
    float *y1 = malloc(T * 4), *dx1 = malloc(T * 4), *yk = malloc(T * 4), *dxk = malloc(T * 4);
    float *st = malloc(16 * F * 4), *z = malloc(T * 4), *dz1 = malloc(T * 4), *gk = malloc(T * 4);
    size_t mask_bytes = T / 8 + 1;
    uint8_t *mask1 = calloc(mask_bytes, 1), *maskk = calloc(mask_bytes, 1);
    bnorm_fusion fu = {ops, BNORM_DTYPE_F32};
    float *sm1 = st, *si1 = st + F, *rm1 = st + 2 * F, *rv1 = st + 3 * F, *dg1 = st + 4 * F,
          *db1 = st + 5 * F, *smk = st + 6 * F, *sik = st + 7 * F, *rmk = st + 8 * F,
          *rvk = st + 9 * F, *dgk = st + 10 * F, *dbk = st + 11 * F;
    for (size_t i = 0; i < T; i++)
        x[i] = (float)(center + rng_normal(rng)), dy[i] = (float)(0.3 + rng_normal(rng)),
        z[i] = (float)(0.5 * rng_normal(rng));
    for (size_t f = 0; f < F; f++) {
        g[f] = (float)(1.0 + 0.2 * rng_normal(rng)), b[f] = (float)rng_normal(rng);
        rm1[f] = rmk[f] = 0.5f, rv1[f] = rvk[f] = 2.0f;
    }
    /* One call on the whole batch. */
    bnorm_running_stats r1 = {rm1, rv1, 0}, rk = {rmk, rvk, 0};
    if (ops)
        CHECK(bnorm_fused_forward_training(whole, &p, &fu, x, z, g, b, y1, sm1, si1, &r1, mask1, ws,
                                           wsz) == BNORM_OK &&
                  bnorm_fused_backward_training(whole, &p, &fu, x, dy, mask1, g, sm1, si1, dx1, dz1,
                                                dg1, db1, ws, wsz) == BNORM_OK,
              "whole batch, fused");
    else
        CHECK(bnorm_forward_training(whole, &p, x, g, b, y1, sm1, si1, &r1, ws, wsz) == BNORM_OK &&
                  bnorm_backward_training(whole, &p, x, dy, g, sm1, si1, dx1, dg1, db1, ws, wsz) ==
                      BNORM_OK,
              "whole batch");
    /* K shares. */
    size_t R = 2 * F + 1;
    double *records = malloc((size_t)K * R * sizeof(double)), *global = malloc(R * sizeof(double));
    double *sums = calloc(2 * F, sizeof(double)), *local = malloc(2 * F * sizeof(double));
    int ok = 1;
    for (int k = 0, n0 = 0; k < K; n0 += shares[k++]) {
        bnorm_shape s = with_n(*whole, shares[k]);
        ok &= bnorm_local_moments(&s, &p, shares[k] ? x + (size_t)n0 * per : NULL,
                                  records + (size_t)k * R, ws, wsz) == BNORM_OK;
    }
    ok &= bnorm_merge_moments((int64_t)F, K, records, global) == BNORM_OK;
    for (int k = 0, n0 = 0; k < K; n0 += shares[k++]) {
        bnorm_shape s = with_n(*whole, shares[k]);
        size_t o = (size_t)n0 * per;
        bnorm_running_stats *run = k == 0 ? &rk : NULL; /* one process's copy */
        float *xs = shares[k] ? x + o : NULL, *ys = shares[k] ? yk + o : NULL;
        if (ops) {
            /* Each share's mask starts at its own first element. */
            uint8_t *share_mask = calloc(mask_bytes, 1);
            ok &= bnorm_fused_forward_training_global(&s, &p, &fu, xs, shares[k] ? z + o : NULL, g,
                                                      b, global, ys, smk, sik, run, share_mask, ws,
                                                      wsz) == BNORM_OK;
            for (size_t i = 0; i < (size_t)shares[k] * per; i++)
                if (share_mask[i / 8] >> (i % 8) & 1)
                    maskk[(o + i) / 8] |= (uint8_t)(1 << ((o + i) % 8));
            ok &= bnorm_fused_backward_local_sums(&s, &p, &fu, xs, shares[k] ? dy + o : NULL,
                                                  share_mask, global, shares[k] ? gk + o : NULL,
                                                  local, ws, wsz) == BNORM_OK;
            free(share_mask);
        } else {
            ok &= bnorm_forward_training_global(&s, &p, xs, g, b, global, ys, smk, sik, run, ws,
                                                wsz) == BNORM_OK;
            ok &= bnorm_backward_local_sums(&s, &p, xs, shares[k] ? dy + o : NULL, global, local,
                                            ws, wsz) == BNORM_OK;
        }
        for (size_t i = 0; i < 2 * F; i++)
            sums[i] += local[i]; /* the allreduce */
    }
    for (int k = 0, n0 = 0; k < K; n0 += shares[k++]) {
        bnorm_shape s = with_n(*whole, shares[k]);
        size_t o = (size_t)n0 * per;
        const float *gs = shares[k] ? (ops ? gk : dy) + o : NULL;
        ok &= bnorm_backward_apply(&s, &p, shares[k] ? x + o : NULL, gs, g, global, sums,
                                   shares[k] ? dxk + o : NULL, dgk, dbk, ws, wsz) == BNORM_OK;
    }
    CHECK(ok, "a split-phase call failed");
    CHECK(global[0] == (double)d.count, "global count %g, expected %zu", global[0], d.count);
    double e[9] = {
        rel(yk, y1, T),   rel(smk, sm1, F), rel(sik, si1, F),
        rel(rmk, rm1, F), rel(rvk, rv1, F), rel(dxk, dx1, T),
        rel(dgk, dg1, F), rel(dbk, db1, F), ops & BNORM_FUSE_ADD ? rel(gk, dz1, T) : 0.0};
    if (ops) {
        /* The masks agree but where y + z sits within rounding of 0. */
        size_t differ = 0;
        for (size_t i = 0; i < T; i++)
            differ += ((mask1[i / 8] ^ maskk[i / 8]) >> (i % 8) & 1) && fabs(yk[i]) > 1e-5;
        CHECK(differ == 0, "fused K %d: %zu mask bits differ", K, differ);
    }
    /* dgamma's float32 sums within a chunk run over other chunks when the
     * batch is cut: 4x the bound for it (measured: up to 1.1e-6). */
    double worst = 0.0;
    for (int i = 0; i < 9; i++)
        worst = fmax(worst, i == 6 ? e[i] / 4 : e[i]);
    CHECK(worst <= TOL && rk.count == 1,
          "layout %d mode %d K %d flags %x threads %d mean %g ops %u: y %.2g mean %.2g invstd %.2g "
          "running %.2g %.2g dx %.2g dgamma %.2g dbeta %.2g dz %.2g",
          whole->layout, mode, K, extra, threads, center, ops, e[0], e[1], e[2], e[3], e[4], e[5],
          e[6], e[7], e[8]);
    free(ws), free(x), free(dy), free(g), free(b), free(y1), free(dx1), free(yk), free(dxk);
    free(st), free(records), free(global), free(sums), free(local);
    free(z), free(dz1), free(gk), free(mask1), free(maskk);
}

/* Merging: an empty record anywhere changes no bit; the order given is the
 * order used, so the same records give the same bits; bad counts refused. */
static void check_merge(void) {
    double a[7] = {3, 1.0, -2.0, 5.0, 0.5, 0, 0}, b[7] = {4, 1.5, -1.0, 2.0, 7.0, 0, 0};
    double z[7] = {0}, ab[14], azb[21], m1[7], m2[7];
    memcpy(ab, a, 5 * 8), memcpy(ab + 5, b, 5 * 8);
    memcpy(azb, a, 5 * 8), memcpy(azb + 5, z, 5 * 8), memcpy(azb + 10, b, 5 * 8);
    CHECK(bnorm_merge_moments(2, 2, ab, m1) == BNORM_OK &&
              bnorm_merge_moments(2, 3, azb, m2) == BNORM_OK && !memcmp(m1, m2, 5 * 8),
          "an empty record changed the merge");
    /* Chan against the direct formula: means 1 and 1.5 of 3 and 4 values. */
    double mu = (3 * 1.0 + 4 * 1.5) / 7,
           q = 5.0 + 2.0 + 3 * (1.0 - mu) * (1.0 - mu) + 4 * (1.5 - mu) * (1.5 - mu);
    CHECK(m1[0] == 7 && fabs(m1[1] - mu) < 1e-15 && fabs(m1[3] - q) < 1e-14, "merge values");
    double bad[5] = {-1, 0, 0, 0, 0}, out[5] = {9, 9, 9, 9, 9};
    CHECK(bnorm_merge_moments(2, 1, bad, out) == BNORM_ERR_INVALID_DIMENSION && out[0] == 9,
          "negative count");
    bad[0] = NAN;
    CHECK(bnorm_merge_moments(2, 1, bad, out) == BNORM_ERR_INVALID_DIMENSION && out[1] == 9,
          "NaN count");
    CHECK(bnorm_merge_moments(0, 1, a, out) == BNORM_ERR_INVALID_DIMENSION, "0 features");
    CHECK(bnorm_merge_moments(2, 1, NULL, out) == BNORM_ERR_NULL_POINTER, "NULL records");
    /* A global batch of one value per feature cannot be trained on. */
    bnorm_shape s = bnorm_shape_nc(1, 2);
    bnorm_params p = bnorm_params_default();
    double one[5] = {1, 0.5, 0.5, 0, 0};
    float x[2] = {1, 2}, y[2] = {7, 7}, sm[2] = {7, 7}, si[2] = {7, 7}, g[2] = {1, 1}, bb[2] = {0};
    char ws[4096];
    CHECK(bnorm_forward_training_global(&s, &p, x, g, bb, one, y, sm, si, NULL, ws, sizeof ws) ==
                  BNORM_ERR_SINGLE_VALUE &&
              y[0] == 7 && sm[0] == 7,
          "global count 1");
    bnorm_shape neg = bnorm_shape_nc(-1, 2);
    double rec[5];
    CHECK(bnorm_local_moments(&neg, &p, x, rec, ws, sizeof ws) == BNORM_ERR_INVALID_DIMENSION,
          "negative share");
    CHECK(bnorm_local_moments(&s, &p, NULL, rec, ws, sizeof ws) == BNORM_ERR_NULL_POINTER,
          "NULL x in a non-empty share");
}

int main(void) {
    check_cpu_or_skip();
    test_rng rng = {99};
    bnorm_shape shapes[] = {bnorm_shape_nchw(7, 5, 6, 5), bnorm_shape_nhwc(7, 4, 3, 9),
                            bnorm_shape_nc(7, 33), bnorm_shape_nchw(7, 3, 70, 70)};
    const int p1[] = {7}, p2[] = {3, 4}, p3[] = {2, 0, 5}, p4[] = {0, 1, 6, 0},
              p5[] = {1, 1, 1, 1, 1, 1, 1};
    const int *parts[] = {p1, p2, p3, p4, p5}, sizes[] = {1, 2, 3, 4, 7};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        for (int mode = 0; mode < 2; mode++)
            for (int k = 0; k < 5; k++) {
                check_partition(&shapes[i], (bnorm_mode)mode, parts[k], sizes[k], 0, 1, 0.0, 0,
                                &rng);
                check_partition(&shapes[i], (bnorm_mode)mode, parts[k], sizes[k], 0, 3, 1e3, 0,
                                &rng);
                check_partition(&shapes[i], (bnorm_mode)mode, parts[k], sizes[k],
                                BNORM_FORCE_REFERENCE, 1, 0.0, 0, &rng);
                /* The fused forms: ReLU and add, and each alone. */
                static const unsigned fused[] = {BNORM_FUSE_RELU | BNORM_FUSE_ADD, BNORM_FUSE_RELU,
                                                 BNORM_FUSE_ADD};
                check_partition(&shapes[i], (bnorm_mode)mode, parts[k], sizes[k], 0, 3, 0.0,
                                fused[k % 3], &rng);
                check_partition(&shapes[i], (bnorm_mode)mode, parts[k], sizes[k],
                                BNORM_FORCE_REFERENCE, 1, 0.0, fused[(k + 1) % 3], &rng);
            }
    check_merge();
    return check_finish();
}
