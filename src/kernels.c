/* The fast kernels: chunked, multi-threaded, written as loops the compiler
 * vectorizes.
 *
 * Statistics are exact without a second trip through memory: each chunk is
 * small enough to stay in cache, so it is read twice from cache (a shifted
 * sum for an approximate mean, then deviations from that mean: the corrected
 * two-pass algorithm), and chunk results are merged in double with Chan's
 * formula. The chunks and the merge order depend on the shape only, which
 * makes the results independent of the thread count. */
#include <string.h>

#include "internal.h"

#define LANES 16

/* Runtime dispatch: the loops below that touch tensor data are compiled
 * three times (AVX-512, AVX2 + FMA, and baseline x86-64) and the loader picks
 * the best copy for the CPU it runs on, so one build runs everywhere and is
 * fast where it can be. The library is built with -ffp-contract=off, so the
 * copies round identically and results do not depend on the CPU either. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(BNORM_NO_DISPATCH)
#define BN_DISPATCH __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define BN_DISPATCH
#endif

#ifdef _OPENMP
#define PARALLEL_FOR(threads)                                                                      \
    _Pragma("omp parallel for schedule(static) num_threads(threads) if (threads > 1)")
#else
#define PARALLEL_FOR(threads)
#endif

/* A fixed-order sum of the lane accumulators. */
static double lanes_total(const float *acc) {
    double t = 0.0;
    for (int j = 0; j < LANES; j++)
        t += acc[j];
    return t;
}

/* sum(p[i] - k) over one contiguous run, accumulated in LANES floats. */
BN_DISPATCH static double run_sum_shifted(const float *p, size_t len, float k) {
    float acc[LANES] = {0};
    size_t i = 0;
    for (; i + LANES <= len; i += LANES)
        for (int j = 0; j < LANES; j++)
            acc[j] += p[i + j] - k;
    for (int j = 0; i < len; i++, j++)
        acc[j] += p[i] - k;
    return lanes_total(acc);
}

/* sum(e) and sum(e^2) for e = p[i] - k over one contiguous run. */
BN_DISPATCH static void run_sums_centered(const float *p, size_t len, float k, double *s1,
                                          double *s2) {
    float a1[LANES] = {0}, a2[LANES] = {0};
    size_t i = 0;
    for (; i + LANES <= len; i += LANES)
        for (int j = 0; j < LANES; j++) {
            float e = p[i + j] - k;
            a1[j] += e;
            a2[j] += e * e;
        }
    for (int j = 0; i < len; i++, j++) {
        float e = p[i] - k;
        a1[j] += e;
        a2[j] += e * e;
    }
    *s1 += lanes_total(a1);
    *s2 += lanes_total(a2);
}

/* sum(dy) and sum(dy * (x - mean)) over one contiguous run. */
BN_DISPATCH static void run_sums_backward(const float *x, const float *dy, size_t len, float mean,
                                          double *s0, double *s1) {
    float a0[LANES] = {0}, a1[LANES] = {0};
    size_t i = 0;
    for (; i + LANES <= len; i += LANES)
        for (int j = 0; j < LANES; j++) {
            a0[j] += dy[i + j];
            a1[j] += dy[i + j] * (x[i + j] - mean);
        }
    for (int j = 0; i < len; i++, j++) {
        a0[j] += dy[i];
        a1[j] += dy[i] * (x[i] - mean);
    }
    *s0 += lanes_total(a0);
    *s1 += lanes_total(a1);
}

/* Chunk `j` of feature `f` in the PLANES view, as a list of contiguous runs:
 * planes [n0, n1), values [s0, s1) of each. */
typedef struct {
    size_t n0, n1, s0, s1;
} plane_chunk;

static plane_chunk plane_chunk_at(const bn_view *v, const bn_chunking *ch, size_t j) {
    plane_chunk c;
    if (ch->segments > 1) {
        size_t seg = j % ch->segments;
        c.n0 = j / ch->segments;
        c.n1 = c.n0 + 1;
        c.s0 = seg * ch->segment_len;
        c.s1 = c.s0 + ch->segment_len < v->s ? c.s0 + ch->segment_len : v->s;
    } else {
        c.n0 = j * ch->planes_per_chunk;
        c.n1 = c.n0 + ch->planes_per_chunk < v->n ? c.n0 + ch->planes_per_chunk : v->n;
        c.s0 = 0;
        c.s1 = v->s;
    }
    return c;
}

static const float *plane_run(const bn_view *v, const float *x, size_t n, size_t f,
                              const plane_chunk *c) {
    return x + (n * v->features + f) * v->s + c->s0;
}

/* Chunk statistics (mean, M2) of one PLANES chunk. */
static void plane_chunk_stats(const bn_view *v, const float *x, size_t f, const plane_chunk *c,
                              double *mean, double *m2) {
    const size_t len = c->s1 - c->s0;
    const double count = (double)((c->n1 - c->n0) * len);
    const float k = *plane_run(v, x, c->n0, f, c);
    double shifted = 0.0;
    for (size_t n = c->n0; n < c->n1; n++)
        shifted += run_sum_shifted(plane_run(v, x, n, f, c), len, k);
    const float center = (float)((double)k + shifted / count);
    double s1 = 0.0, s2 = 0.0;
    for (size_t n = c->n0; n < c->n1; n++)
        run_sums_centered(plane_run(v, x, n, f, c), len, center, &s1, &s2);
    *mean = (double)center + s1 / count;
    double q = s2 - s1 * s1 / count;
    *m2 = q > 0.0 ? q : 0.0;
}

/* Chunk statistics of one ROWS tile: rows [r0, r1), features [f0, f1).
 * Lanes run across features, so each feature sums its rows in order. */
BN_DISPATCH static void rows_tile_stats(const bn_view *v, const float *x, size_t r0, size_t r1,
                                        size_t f0, size_t f1, double *mean, double *m2) {
    float k[BN_FEATURE_BLOCK], acc[BN_FEATURE_BLOCK], center[BN_FEATURE_BLOCK];
    float s1[BN_FEATURE_BLOCK], s2[BN_FEATURE_BLOCK];
    const size_t w = f1 - f0, F = v->features;
    const double count = (double)(r1 - r0);
    const float *base = x + r0 * F + f0;
    for (size_t j = 0; j < w; j++) {
        k[j] = base[j];
        acc[j] = 0.0f;
        s1[j] = 0.0f;
        s2[j] = 0.0f;
    }
    for (size_t r = 1; r < r1 - r0; r++) {
        const float *row = base + r * F;
        for (size_t j = 0; j < w; j++)
            acc[j] += row[j] - k[j];
    }
    for (size_t j = 0; j < w; j++)
        center[j] = (float)((double)k[j] + (double)acc[j] / count);
    for (size_t r = 0; r < r1 - r0; r++) {
        const float *row = base + r * F;
        for (size_t j = 0; j < w; j++) {
            float e = row[j] - center[j];
            s1[j] += e;
            s2[j] += e * e;
        }
    }
    for (size_t j = 0; j < w; j++) {
        double a = s1[j], q = (double)s2[j] - a * a / count;
        mean[j] = (double)center[j] + a / count;
        m2[j] = q > 0.0 ? q : 0.0;
    }
}

/* Chan's formula: folds a chunk (nb values, mean mb, M2 qb) into a running
 * (n, mu, q). Applied in chunk order, so the result is thread-independent. */
static void chan_add(double *n, double *mu, double *q, double nb, double mb, double qb) {
    double delta = mb - *mu, nt = *n + nb;
    *mu += delta * (nb / nt);
    *q += qb + delta * delta * (*n * nb / nt);
    *n = nt;
}

void bn_fast_batch_stats(const bn_view *v, const float *x, bn_workspace *ws, int threads) {
    const bn_chunking ch = bn_chunking_for(v);
    const size_t F = v->features;
    if (v->kind == BN_VIEW_ROWS) {
        const size_t fb = (F + BN_FEATURE_BLOCK - 1) / BN_FEATURE_BLOCK;
        const long tiles = (long)(ch.chunks * fb);
        PARALLEL_FOR(threads)
        for (long t = 0; t < tiles; t++) {
            size_t rb = (size_t)t / fb, f0 = (size_t)t % fb * BN_FEATURE_BLOCK;
            size_t f1 = f0 + BN_FEATURE_BLOCK < F ? f0 + BN_FEATURE_BLOCK : F;
            size_t r0 = rb * ch.rows_per_block;
            size_t r1 = r0 + ch.rows_per_block < v->n ? r0 + ch.rows_per_block : v->n;
            rows_tile_stats(v, x, r0, r1, f0, f1, ws->part0 + rb * F + f0, ws->part1 + rb * F + f0);
        }
        PARALLEL_FOR(threads)
        for (long f = 0; f < (long)F; f++) {
            double n = 0.0, mu = 0.0, q = 0.0;
            for (size_t j = 0; j < ch.chunks; j++) {
                size_t r0 = j * ch.rows_per_block;
                size_t rows = v->n - r0 < ch.rows_per_block ? v->n - r0 : ch.rows_per_block;
                chan_add(&n, &mu, &q, (double)rows, ws->part0[j * F + (size_t)f],
                         ws->part1[j * F + (size_t)f]);
            }
            ws->stat0[f] = mu;
            ws->stat1[f] = q / n;
        }
    } else {
        const long items = (long)(F * ch.chunks);
        PARALLEL_FOR(threads)
        for (long t = 0; t < items; t++) {
            size_t f = (size_t)t / ch.chunks, j = (size_t)t % ch.chunks;
            plane_chunk c = plane_chunk_at(v, &ch, j);
            plane_chunk_stats(v, x, f, &c, &ws->part0[t], &ws->part1[t]);
        }
        PARALLEL_FOR(threads)
        for (long f = 0; f < (long)F; f++) {
            double n = 0.0, mu = 0.0, q = 0.0;
            for (size_t j = 0; j < ch.chunks; j++) {
                plane_chunk c = plane_chunk_at(v, &ch, j);
                chan_add(&n, &mu, &q, (double)((c.n1 - c.n0) * (c.s1 - c.s0)),
                         ws->part0[(size_t)f * ch.chunks + j],
                         ws->part1[(size_t)f * ch.chunks + j]);
            }
            ws->stat0[f] = mu;
            ws->stat1[f] = q / n;
        }
    }
}

BN_DISPATCH static void normalize_row(const float *x, float *y, size_t F, const float *mean,
                                      const float *lo, const float *a, const float *b) {
    for (size_t j = 0; j < F; j++)
        y[j] = ((x[j] - mean[j]) - lo[j]) * a[j] + b[j];
}

BN_DISPATCH static void normalize_run(const float *x, float *y, size_t len, float mean, float lo,
                                      float a, float b) {
    for (size_t i = 0; i < len; i++)
        y[i] = ((x[i] - mean) - lo) * a + b;
}

void bn_fast_normalize(const bn_view *v, const float *x, const bn_workspace *ws, float *y,
                       int threads) {
    const size_t F = v->features, S = v->s;
    const float *mean = ws->mean, *lo = ws->mean_lo, *a = ws->a, *b = ws->b;
    if (v->kind == BN_VIEW_ROWS) {
        PARALLEL_FOR(threads)
        for (long r = 0; r < (long)v->n; r++)
            normalize_row(x + (size_t)r * F, y + (size_t)r * F, F, mean, lo, a, b);
    } else {
        PARALLEL_FOR(threads)
        for (long p = 0; p < (long)(v->n * F); p++) {
            size_t f = (size_t)p % F;
            normalize_run(x + (size_t)p * S, y + (size_t)p * S, S, mean[f], lo[f], a[f], b[f]);
        }
    }
}

/* Per feature j < w of a tile of `rows` rows with stride F: sum(dy) and
 * sum(dy * (x - mean)), each feature summing its rows in order. */
BN_DISPATCH static void rows_tile_backward_sums(const float *x, const float *dy, size_t rows,
                                                size_t F, size_t w, const float *mean, float *a0,
                                                float *a1) {
    memset(a0, 0, w * sizeof(float));
    memset(a1, 0, w * sizeof(float));
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * F, *dr = dy + r * F;
        for (size_t j = 0; j < w; j++) {
            a0[j] += dr[j];
            a1[j] += dr[j] * (xr[j] - mean[j]);
        }
    }
}

void bn_fast_backward_sums(const bn_view *v, const float *x, const float *dy, bn_workspace *ws,
                           int threads) {
    const bn_chunking ch = bn_chunking_for(v);
    const size_t F = v->features;
    if (v->kind == BN_VIEW_ROWS) {
        const size_t fb = (F + BN_FEATURE_BLOCK - 1) / BN_FEATURE_BLOCK;
        const long tiles = (long)(ch.chunks * fb);
        PARALLEL_FOR(threads)
        for (long t = 0; t < tiles; t++) {
            float a0[BN_FEATURE_BLOCK], a1[BN_FEATURE_BLOCK];
            size_t rb = (size_t)t / fb, f0 = (size_t)t % fb * BN_FEATURE_BLOCK;
            size_t f1 = f0 + BN_FEATURE_BLOCK < F ? f0 + BN_FEATURE_BLOCK : F, w = f1 - f0;
            size_t r0 = rb * ch.rows_per_block;
            size_t r1 = r0 + ch.rows_per_block < v->n ? r0 + ch.rows_per_block : v->n;
            rows_tile_backward_sums(x + r0 * F + f0, dy + r0 * F + f0, r1 - r0, F, w, ws->mean + f0,
                                    a0, a1);
            for (size_t j = 0; j < w; j++) {
                ws->part0[rb * F + f0 + j] = a0[j];
                ws->part1[rb * F + f0 + j] = a1[j];
            }
        }
        PARALLEL_FOR(threads)
        for (long f = 0; f < (long)F; f++) {
            double s0 = 0.0, s1 = 0.0;
            for (size_t j = 0; j < ch.chunks; j++) {
                s0 += ws->part0[j * F + (size_t)f];
                s1 += ws->part1[j * F + (size_t)f];
            }
            ws->stat0[f] = s0;
            ws->stat1[f] = s1;
        }
    } else {
        const long items = (long)(F * ch.chunks);
        PARALLEL_FOR(threads)
        for (long t = 0; t < items; t++) {
            size_t f = (size_t)t / ch.chunks, j = (size_t)t % ch.chunks;
            plane_chunk c = plane_chunk_at(v, &ch, j);
            double s0 = 0.0, s1 = 0.0;
            for (size_t n = c.n0; n < c.n1; n++)
                run_sums_backward(plane_run(v, x, n, f, &c), plane_run(v, dy, n, f, &c),
                                  c.s1 - c.s0, ws->mean[f], &s0, &s1);
            ws->part0[t] = s0;
            ws->part1[t] = s1;
        }
        PARALLEL_FOR(threads)
        for (long f = 0; f < (long)F; f++) {
            double s0 = 0.0, s1 = 0.0;
            for (size_t j = 0; j < ch.chunks; j++) {
                s0 += ws->part0[(size_t)f * ch.chunks + j];
                s1 += ws->part1[(size_t)f * ch.chunks + j];
            }
            ws->stat0[f] = s0;
            ws->stat1[f] = s1;
        }
    }
}

BN_DISPATCH static void scale_row(const float *dy, float *dx, size_t F, const float *a) {
    for (size_t j = 0; j < F; j++)
        dx[j] = a[j] * dy[j];
}

BN_DISPATCH static void dx_row(const float *x, const float *dy, float *dx, size_t F,
                               const float *mean, const float *a, const float *b, const float *c) {
    for (size_t j = 0; j < F; j++)
        dx[j] = a[j] * dy[j] + b[j] * (x[j] - mean[j]) + c[j];
}

BN_DISPATCH static void scale_run(const float *dy, float *dx, size_t len, float a) {
    for (size_t i = 0; i < len; i++)
        dx[i] = a * dy[i];
}

BN_DISPATCH static void dx_run(const float *x, const float *dy, float *dx, size_t len, float mean,
                               float a, float b, float c) {
    for (size_t i = 0; i < len; i++)
        dx[i] = a * dy[i] + b * (x[i] - mean) + c;
}

void bn_fast_backward_dx(const bn_view *v, const float *x, const float *dy, const bn_workspace *ws,
                         int frozen, float *dx, int threads) {
    const size_t F = v->features, S = v->s;
    const float *mean = ws->mean, *a = ws->a, *b = ws->b, *c = ws->c;
    if (v->kind == BN_VIEW_ROWS) {
        PARALLEL_FOR(threads)
        for (long r = 0; r < (long)v->n; r++) {
            size_t o = (size_t)r * F;
            if (frozen)
                scale_row(dy + o, dx + o, F, a);
            else
                dx_row(x + o, dy + o, dx + o, F, mean, a, b, c);
        }
    } else {
        PARALLEL_FOR(threads)
        for (long p = 0; p < (long)(v->n * F); p++) {
            size_t f = (size_t)p % F, o = (size_t)p * S;
            if (frozen)
                scale_run(dy + o, dx + o, S, a[f]);
            else
                dx_run(x + o, dy + o, dx + o, S, mean[f], a[f], b[f], c[f]);
        }
    }
}
