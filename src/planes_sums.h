/* The PLANES view's accumulating passes, statistics and backward sums,
 * written once for vectors of BN_W lanes (simd_width.h): planes.c includes
 * this file once per width and calls planes_stats_W / planes_backward_W of
 * the width the running copy holds in registers. No include guard, by
 * design.
 *
 * A run's ragged end (rem < VL values, in a run of at least VL) joins the
 * vector sums as the vector that ends the run, with the lanes already
 * counted masked off (LAST_LANES keeps the last rem): a scalar loop's
 * double adds would sit on the critical path of every short plane. */

#include "simd_width.h" /* the vocabulary of width BN_W */

/* One step of run_sum_shifted's main loop (4 vectors at p + i into a0..a3)
 * and one of run_sums_centered's (2 vectors at p + i, less vk, into e1a..e2b):
 * written once, for the runs alone and for the loop that interleaves them. */
#define SHIFTED_STEP(p, i)                                                                         \
    for (int h = 0; h < PARTS; h++) {                                                              \
        const float *q = (p) + (i) + h * BN_W;                                                     \
        a0[h] += LDW(q), a1[h] += LDW(q + VL), a2[h] += LDW(q + 2 * VL);                           \
        a3[h] += LDW(q + 3 * VL);                                                                  \
    }
#define CENTERED_STEP(p, i, vk)                                                                    \
    for (int h = 0; h < PARTS; h++) {                                                              \
        VW ea = LDW((p) + (i) + h * BN_W) - (vk), eb = LDW((p) + (i) + VL + h * BN_W) - (vk);      \
        e1a[h] += ea, e2a[h] += ea * ea;                                                           \
        e1b[h] += eb, e2b[h] += eb * eb;                                                           \
    }

/* sum(p[i] - k) over one run, in float, from value i on, the vector sums of
 * the values before i in a0..a3: it only places the center that the exact
 * pass measures deviations from, and it is on the critical path of every
 * plane. The values are summed as they are and k taken off the total (one
 * add per vector, not a subtract and an add: the add pipes are this pass's
 * bound on short planes); the center it gives is off by a few float ulps of
 * the mean, which the exact pass's sum of deviations absorbs. */
BN_INLINE double WIDTH_NAME(sum_shifted_from)(const float *p, size_t len, float k, size_t i,
                                              VW a0[PARTS], VW a1[PARTS], VW a2[PARTS],
                                              VW a3[PARTS]) {
    for (; i + 4 * VL <= len; i += 4 * VL)
        SHIFTED_STEP(p, i);
    for (; i + VL <= len; i += VL)
        for (int h = 0; h < PARTS; h++)
            a0[h] += LDW(p + i + h * BN_W);
    if (i < len && len >= VL) {
        for (int h = 0; h < PARTS; h++)
            a1[h] += (VW)((VWI)LDW(p + len - VL + h * BN_W) & LAST_LANES_PART(len - i, h));
        i = len;
    }
    for (int h = 0; h < PARTS; h++)
        a0[h] = (a0[h] + a1[h]) + (a2[h] + a3[h]);
    float s;
    LANE_SUM_FLOAT_PARTS(a0, s);
    for (; i < len; i++)
        s += p[i];
    return (double)s - (double)len * (double)k;
}

BN_INLINE double WIDTH_NAME(run_sum_shifted)(const float *p, size_t len, float k) {
    VW a0[PARTS] = {{0}}, a1[PARTS] = {{0}}, a2[PARTS] = {{0}}, a3[PARTS] = {{0}};
    return WIDTH_NAME(sum_shifted_from)(p, len, k, 0, a0, a1, a2, a3);
}

/* sum(e) and sum(e^2) for e = p[i] - k over one run, from value i on, the
 * vector sums of the values before i in e1a..e2b; added to *s1, *s2. */
BN_INLINE void WIDTH_NAME(sums_centered_from)(const float *p, size_t len, float k, size_t i,
                                              VW e1a[PARTS], VW e1b[PARTS], VW e2a[PARTS],
                                              VW e2b[PARTS], double *s1, double *s2) {
    const VW vk = (VW){0} + k;
    for (; i + 2 * VL <= len; i += 2 * VL)
        CENTERED_STEP(p, i, vk);
    for (; i + VL <= len; i += VL)
        for (int h = 0; h < PARTS; h++) {
            VW e = LDW(p + i + h * BN_W) - vk;
            e1a[h] += e, e2a[h] += e * e;
        }
    if (i < len && len >= VL) {
        for (int h = 0; h < PARTS; h++) {
            VW e = (VW)((VWI)(LDW(p + len - VL + h * BN_W) - vk) & LAST_LANES_PART(len - i, h));
            e1b[h] += e, e2b[h] += e * e;
        }
        i = len;
    }
    for (int h = 0; h < PARTS; h++)
        e1a[h] += e1b[h], e2a[h] += e2b[h];
    double t1, t2;
    LANE_SUM_PARTS(e1a, t1);
    LANE_SUM_PARTS(e2a, t2);
    for (; i < len; i++) {
        float e = p[i] - k;
        t1 += (double)e, t2 += (double)(e * e);
    }
    *s1 += t1, *s2 += t2;
}

BN_INLINE void WIDTH_NAME(run_sums_centered)(const float *p, size_t len, float k, double *s1,
                                             double *s2) {
    VW e1a[PARTS] = {{0}}, e1b[PARTS] = {{0}}, e2a[PARTS] = {{0}}, e2b[PARTS] = {{0}};
    WIDTH_NAME(sums_centered_from)(p, len, k, 0, e1a, e1b, e2a, e2b, s1, s2);
}

/* run_sums_centered over the run at p and run_sum_shifted over the run at
 * next, both of len values, in one loop, with the same sums. Run one after
 * the other, the first pass's loads from memory fill the core's window and
 * the second pass (from L1) waits behind them with memory idle; interleaved,
 * the loads from memory keep going while the cached run is summed. */
BN_INLINE double WIDTH_NAME(run_sums_centered_and_shifted)(const float *p, float center, double *s1,
                                                           double *s2, const float *next, float k,
                                                           size_t len) {
    VW a0[PARTS] = {{0}}, a1[PARTS] = {{0}}, a2[PARTS] = {{0}}, a3[PARTS] = {{0}};
    VW e1a[PARTS] = {{0}}, e1b[PARTS] = {{0}}, e2a[PARTS] = {{0}}, e2b[PARTS] = {{0}};
    const VW vk = (VW){0} + center;
    size_t i = 0;
    for (; i + 4 * VL <= len; i += 4 * VL) {
        SHIFTED_STEP(next, i);
        CENTERED_STEP(p, i, vk);
        CENTERED_STEP(p, i + 2 * VL, vk);
    }
    WIDTH_NAME(sums_centered_from)(p, len, center, i, e1a, e1b, e2a, e2b, s1, s2);
    return WIDTH_NAME(sum_shifted_from)(next, len, k, i, a0, a1, a2, a3);
}
#undef SHIFTED_STEP
#undef CENTERED_STEP

/* sum(g), sum(g * (x - mean)) and sum(x - mean) over one run, added to *s0,
 * *s1, *s2, with g = dy (mask NULL) or the masked dy, at offset o of the
 * tensor; g is written to gout when given. When dx is given (frozen
 * statistics: the mean is exact and s2 is not needed), dx = BN_DX_FROZEN
 * in the same pass instead of s2. */
/* Part h of the gradient's 16 values at p, whose mask bits (from
 * mask_bits16) are `bits`. */
#define GRAD_PART(p, mask, bits, h) ((mask) ? KEEP_PART(LDW(p), bits, h) : LDW(p))
#define MASK_BITS16(mask, o)        ((mask) ? mask_bits16((mask), (o)) : 0u)
BN_INLINE void WIDTH_NAME(run_backward)(const float *x, const float *dy, const uint8_t *mask,
                                        size_t o, float *gout, float *dx, size_t len, float mean,
                                        float a, double *s0, double *s1, double *s2) {
    const VW vm = (VW){0} + mean, va = (VW){0} + a;
    VW d0a[PARTS] = {{0}}, d0b[PARTS] = {{0}}, d1a[PARTS] = {{0}}, d1b[PARTS] = {{0}},
       d2a[PARTS] = {{0}}, d2b[PARTS] = {{0}};
    size_t i = 0;
    /* The run's mask bytes, and where its first bit sits in the first:
     * every step of 2 * VL values starts at the same bit of a byte. */
    const uint8_t *mrun = mask ? mask + o / 8 : NULL;
    const size_t mshift = o % 8;
    for (; i + 2 * VL <= len; i += 2 * VL) {
        const uint32_t m32 = mask ? mask_bits32(mrun + i / 8, mshift) : 0u, ma = m32 & 0xffffu,
                       mb = m32 >> 16;
        for (int h = 0; h < PARTS; h++) {
            const size_t ia = i + h * BN_W, ib = ia + VL;
            VW ga = GRAD_PART(dy + ia, mask, ma, h), gb = GRAD_PART(dy + ib, mask, mb, h);
            VW ea = LDW(x + ia) - vm, eb = LDW(x + ib) - vm;
            d0a[h] += ga, d1a[h] += ga * ea;
            d0b[h] += gb, d1b[h] += gb * eb;
            if (gout) STW(gout + ia, ga), STW(gout + ib, gb);
            if (dx)
                STW(dx + ia, BN_DX_FROZEN(ga, va)), STW(dx + ib, BN_DX_FROZEN(gb, va));
            else
                d2a[h] += ea, d2b[h] += eb;
        }
    }
    for (; i + VL <= len; i += VL) {
        const uint32_t m = MASK_BITS16(mask, o + i);
        for (int h = 0; h < PARTS; h++) {
            const size_t ih = i + h * BN_W;
            VW g = GRAD_PART(dy + ih, mask, m, h), e = LDW(x + ih) - vm;
            d0a[h] += g, d1a[h] += g * e;
            if (gout) STW(gout + ih, g);
            if (dx)
                STW(dx + ih, BN_DX_FROZEN(g, va));
            else
                d2a[h] += e;
        }
    }
    if (i < len && len >= VL) {
        const uint32_t m = MASK_BITS16(mask, o + len - VL);
        for (int h = 0; h < PARTS; h++) {
            const size_t ih = len - VL + h * BN_W;
            const VWI keep = LAST_LANES_PART(len - i, h);
            VW g = GRAD_PART(dy + ih, mask, m, h), e = LDW(x + ih) - vm;
            d0b[h] += (VW)((VWI)g & keep);
            d1b[h] += (VW)((VWI)(g * e) & keep);
            if (gout) STW(gout + ih, g); /* the lanes already written get the same values */
            if (!dx) d2b[h] += (VW)((VWI)e & keep);
        }
        for (; dx && i < len; i++)
            dx[i] = BN_DX_FROZEN(grad1_at(dy, mask, o, i), a);
        i = len;
    }
    for (int h = 0; h < PARTS; h++)
        d0a[h] += d0b[h], d1a[h] += d1b[h], d2a[h] += d2b[h];
    double t0, t1, t2 = 0.0;
    LANE_SUM_PARTS(d0a, t0);
    LANE_SUM_PARTS(d1a, t1);
    if (!dx) LANE_SUM_PARTS(d2a, t2);
    for (; i < len; i++) {
        float g = grad1_at(dy, mask, o, i);
        t0 += (double)g, t1 += (double)(g * (x[i] - mean));
        if (gout) gout[i] = g;
        if (dx)
            dx[i] = BN_DX_FROZEN(g, a);
        else
            t2 += (double)(x[i] - mean);
    }
    *s0 += t0, *s1 += t1, *s2 += t2;
}
#undef GRAD_PART
#undef MASK_BITS16

/* Chunk statistics (mean, M2) of one PLANES chunk. */
BN_INLINE void WIDTH_NAME(plane_chunk_stats)(const bn_view *v, const float *x, size_t f,
                                             const bn_plane_chunk *c, double *mean, double *m2) {
    const size_t len = c->s1 - c->s0;
    const double count = (double)((c->n1 - c->n0) * len);
    const float k = x[plane_offset(v, c->n0, f) + c->s0];
    double shifted = 0.0;
    for (size_t n = c->n0; n < c->n1; n++)
        shifted += WIDTH_NAME(run_sum_shifted)(x + plane_offset(v, n, f) + c->s0, len, k);
    /* The reciprocal does not wait for the data: one multiply, not a
     * division, between the two passes. */
    const float center = (float)((double)k + shifted * (1.0 / count));
    double s1 = 0.0, s2 = 0.0;
    for (size_t n = c->n0; n < c->n1; n++)
        WIDTH_NAME(run_sums_centered)(x + plane_offset(v, n, f) + c->s0, len, center, &s1, &s2);
    bn_chunk_moments(center, s1, s2, count, mean, m2);
}

/* Backward sums of one PLANES chunk (run_backward's, g from gr). */
BN_INLINE void WIDTH_NAME(plane_chunk_backward)(const bn_view *v, const float *x, const bn_grad *gr,
                                                float *dx, size_t f, const bn_plane_chunk *c,
                                                float mean, float a, double *s0, double *s1,
                                                double *s2) {
    const size_t len = c->s1 - c->s0;
    *s0 = 0.0, *s1 = 0.0, *s2 = 0.0;
    for (size_t n = c->n0; n < c->n1; n++) {
        size_t o = plane_offset(v, n, f) + c->s0;
        WIDTH_NAME(run_backward)
        (x + o, gr->dy + o, gr->mask, o, gr->g_out ? gr->g_out + o : NULL, dx ? dx + o : NULL, len,
         mean, a, s0, s1, s2);
    }
}

BN_INLINE void WIDTH_NAME(planes_stats)(const bn_view *v, const float *x, bn_workspace *ws,
                                        size_t t0, size_t t1) {
    if (v->ch.planes_per_chunk == 1 && v->ch.segments == 1 && t0 < t1) {
        /* Whole planes, consecutive in memory: the next plane's first pass
         * runs in the same loop as this plane's second, so that memory is
         * read without pause and the next center's reduction runs under work
         * that does not wait for it. The arithmetic per plane is
         * plane_chunk_stats' own. */
        const size_t F = v->features, S = v->s;
        const double count = (double)S, inv = 1.0 / count;
        size_t f = t0 % F, n = t0 / F;
        const float *p = x + t0 * S;
        float k = p[0];
        double shifted = WIDTH_NAME(run_sum_shifted)(p, S, k);
        for (size_t t = t0; t < t1; t++, p += S) {
            const float center = (float)((double)k + shifted * inv);
            double s1 = 0.0, s2 = 0.0;
            if (t + 1 < t1) {
                k = p[S];
                shifted =
                    WIDTH_NAME(run_sums_centered_and_shifted)(p, center, &s1, &s2, p + S, k, S);
            } else {
                WIDTH_NAME(run_sums_centered)(p, S, center, &s1, &s2);
            }
            size_t i = f * v->ch.chunks + n;
            bn_chunk_moments(center, s1, s2, count, &ws->part0[i], &ws->part1[i]);
            if (++f == F) f = 0, n++;
        }
        return;
    }
    FOR_PLANE_ITEMS(v, t0, t1, {
        size_t i = bn_part_index(v, f, j);
        WIDTH_NAME(plane_chunk_stats)(v, x, f, &c, &ws->part0[i], &ws->part1[i]);
    });
}

BN_INLINE void WIDTH_NAME(planes_backward)(const bn_view *v, const float *x, const bn_grad *gr,
                                           float *frozen_dx, bn_workspace *ws, size_t t0,
                                           size_t t1) {
    if (!gr->mask && !gr->g_out) {
        /* The plain backward: g is dy, nothing else to write. */
        const bn_grad plain = {gr->dy, NULL, NULL};
        FOR_PLANE_ITEMS(v, t0, t1, {
            size_t i = bn_part_index(v, f, j);
            if (frozen_dx) WIDTH_NAME(plane_chunk_backward)
            (v, x, &plain, frozen_dx, f, &c, ws->mean[f], ws->dy_scale[f], &ws->part0[i],
             &ws->part1[i], &ws->part2[i]);
            else WIDTH_NAME(plane_chunk_backward)(v, x, &plain, NULL, f, &c, ws->mean[f], 0.0f,
                                                  &ws->part0[i], &ws->part1[i], &ws->part2[i]);
        });
        return;
    }
    if (gr->mask && !gr->g_out && !frozen_dx) {
        /* The fused BN + ReLU's training backward: g is dy through the mask,
         * nothing to write. A copy of its own, as the plain backward has, was
         * 4-8% faster from memory than the general one. (The three loops
         * folded into one inlined helper compiled this case 1.4x slower:
         * they stay written out.) */
        const bn_grad masked = {gr->dy, gr->mask, NULL};
        FOR_PLANE_ITEMS(v, t0, t1, {
            size_t i = bn_part_index(v, f, j);
            WIDTH_NAME(plane_chunk_backward)
            (v, x, &masked, NULL, f, &c, ws->mean[f], 0.0f, &ws->part0[i], &ws->part1[i],
             &ws->part2[i]);
        });
        return;
    }
    FOR_PLANE_ITEMS(v, t0, t1, {
        size_t i = bn_part_index(v, f, j);
        WIDTH_NAME(plane_chunk_backward)
        (v, x, gr, frozen_dx, f, &c, ws->mean[f], frozen_dx ? ws->dy_scale[f] : 0.0f, &ws->part0[i],
         &ws->part1[i], &ws->part2[i]);
    });
}
