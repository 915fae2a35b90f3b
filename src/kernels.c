/* The fast kernels: chunked, multi-threaded, written with 16-lane vector
 * types so that every loop keeps its accumulators in registers.
 *
 * Statistics are exact without a second trip through memory: each chunk is
 * small enough to stay in cache, so it is read twice from cache (a shifted
 * sum for an approximate mean, then deviations from that mean: the corrected
 * two-pass algorithm), and chunk results are merged in double with Chan's
 * formula. The chunks and the merge order depend on the shape only, which
 * makes the results independent of the thread count.
 *
 * Passes over memory: training forward reads x once for the statistics and
 * once to normalize, in memory order both times; the second read hits cache
 * when the tensor fits in the last-level cache. (Taking a few channels at a
 * time so that it always would was slower here: see docs/PERFORMANCE.md.)
 * Backward likewise reads (x, dy) once for its two sums and once for dx.
 * With frozen statistics dx = a * dy does not depend on the sums, so the
 * sums and dx come out of a single pass. */
#include <math.h>
#include <stdint.h>
#include <string.h>
#if defined(__x86_64__) || defined(__SSE__)
#include <immintrin.h>
#define BN_HAVE_STREAM 1
#endif

#include "internal.h"
#include "simd.h"

/* Loops and regions that fork only for more than one thread: a region
 * entered with one thread (an `if` clause) still costs the OpenMP runtime
 * about a microsecond, more than the whole of a small batch's work. The
 * variable `threads` must be in scope. */
#ifdef _OPENMP
#include <omp.h>
#define PARALLEL_FOR(i, count, ...)                                                                \
    do {                                                                                           \
        const long n_ = (long)(count);                                                             \
        if (threads > 1) {                                                                         \
            _Pragma("omp parallel for schedule(static) num_threads(threads)") for (long i = 0;     \
                                                                                   i < n_; i++) {  \
                __VA_ARGS__                                                                        \
            }                                                                                      \
        } else {                                                                                   \
            for (long i = 0; i < n_; i++) {                                                        \
                __VA_ARGS__                                                                        \
            }                                                                                      \
        }                                                                                          \
    } while (0)
/* Items [lo, hi) of `count` for each thread, a contiguous share as
 * schedule(static) would give it; the body then fences the thread's own
 * non-temporal stores. With one thread, the whole range on the calling
 * thread, which may itself be a thread of the caller's parallel region. */
#define PARALLEL_RANGES(count, lo, hi, ...)                                                        \
    do {                                                                                           \
        const long n_ = (long)(count);                                                             \
        if (threads > 1) {                                                                         \
            _Pragma("omp parallel num_threads(threads)") {                                         \
                long t_ = omp_get_thread_num(), nt_ = omp_get_num_threads();                       \
                long q_ = n_ / nt_, r_ = n_ % nt_;                                                 \
                long lo = t_ * q_ + (t_ < r_ ? t_ : r_), hi = lo + q_ + (t_ < r_ ? 1 : 0);         \
                __VA_ARGS__                                                                        \
            }                                                                                      \
        } else {                                                                                   \
            long lo = 0, hi = n_;                                                                  \
            __VA_ARGS__                                                                            \
        }                                                                                          \
    } while (0)
#else
#define PARALLEL_FOR(i, count, ...)                                                                \
    do {                                                                                           \
        (void)threads;                                                                             \
        for (long i = 0; i < (long)(count); i++) {                                                 \
            __VA_ARGS__                                                                            \
        }                                                                                          \
    } while (0)
#define PARALLEL_RANGES(count, lo, hi, ...)                                                        \
    do {                                                                                           \
        long lo = 0, hi = (long)(count);                                                           \
        (void)threads;                                                                             \
        __VA_ARGS__                                                                                \
    } while (0)
#endif

/* The lanes of v summed in double, in a fixed tree order (lane j + lane
 * j + 8, then j + 4, j + 2, j + 1): short, so that per-plane reductions stay
 * cheap, and written with whole-vector halves so that it compiles to a few
 * shuffles and adds at every dispatch level. */
typedef float vf8 __attribute__((vector_size(32)));
typedef double vd8 __attribute__((vector_size(64)));
typedef double vd4 __attribute__((vector_size(32)));
typedef double vd2 __attribute__((vector_size(16)));
#define LANE_SUM(v, out)                                                                           \
    do {                                                                                           \
        vf8 l_ = __builtin_shufflevector((v), (v), 0, 1, 2, 3, 4, 5, 6, 7);                        \
        vf8 h_ = __builtin_shufflevector((v), (v), 8, 9, 10, 11, 12, 13, 14, 15);                  \
        vd8 a_ = __builtin_convertvector(l_, vd8) + __builtin_convertvector(h_, vd8);              \
        vd4 b_ = __builtin_shufflevector(a_, a_, 0, 1, 2, 3) +                                     \
                 __builtin_shufflevector(a_, a_, 4, 5, 6, 7);                                      \
        vd2 c_ = __builtin_shufflevector(b_, b_, 0, 1) + __builtin_shufflevector(b_, b_, 2, 3);    \
        (out) = c_[0] + c_[1];                                                                     \
    } while (0)

/* Outputs of tensors at least this large are written with non-temporal
 * stores: they will not be read back before they would have been evicted,
 * and going around the cache keeps the input there and spares the line
 * reads that ordinary stores cost. Smaller outputs (a network's activations,
 * read by the next layer right away) stay in cache. */
#define BN_STREAM_BYTES (16u << 20)

/* Whether to stream a view's outputs. The stores are 16 bytes wide down to
 * the end of every run, so consecutive planes fill whole lines between them
 * as long as a plane is a whole number of 16-byte stores; otherwise a line
 * at each plane boundary would be written partly streamed and partly
 * cached, which costs more than streaming saves. */
static int stream_outputs(const bn_view *v) {
    if (v->cached_outputs || v->total * sizeof(float) < BN_STREAM_BYTES) return 0;
    return v->kind == BN_VIEW_ROWS || v->s % 4 == 0;
}

/* Non-temporal stores of 16 floats at a 16-byte aligned p, as four SSE
 * stores that the write-combining buffers merge into whole lines; SSE
 * stores exist at every dispatch level. */
#ifdef BN_HAVE_STREAM
typedef union {
    vf v;
    __m128 q[VL / 4];
} vf_parts;
#define ST_STREAM(p, value)                                                                        \
    do {                                                                                           \
        vf_parts u_;                                                                               \
        u_.v = (value);                                                                            \
        for (int q_ = 0; q_ < VL / 4; q_++)                                                        \
            _mm_stream_ps((p) + 4 * q_, u_.q[q_]);                                                 \
    } while (0)
#define STREAM_FENCE()    _mm_sfence()
#define STREAM_ALIGNED(p) ((uintptr_t)(p) % 16 == 0)
#define ST_STREAM4(p, v4) _mm_stream_ps((p), _mm_loadu_ps(v4))
#else
#define ST_STREAM(p, value) ST(p, value)
#define ST_STREAM4(p, v4)   memcpy((p), (v4), 4 * sizeof(float))
#define STREAM_FENCE()      ((void)0)
#define STREAM_ALIGNED(p)   1
#endif

/* A chunk's mean and M2 from its count values' deviations from `center`:
 * s1 = sum(e), s2 = sum(e^2). */
static inline void chunk_moments(float center, double s1, double s2, double count, double *mean,
                                 double *m2) {
    *mean = (double)center + s1 / count;
    double q = s2 - s1 * s1 / count;
    *m2 = q > 0.0 ? q : 0.0;
}

/* ---------------------------------------------------------------------------
 * Contiguous runs (the channels-first view: one plane, or part of one)
 * ------------------------------------------------------------------------- */

/* A run's ragged end (rem < VL values, in a run of at least VL) joins the
 * vector sums as the vector that ends the run, with the lanes already
 * counted masked off (LANE_INDEX >= VL - rem keeps the last rem): a scalar
 * loop's double adds would sit on the critical path of every short plane. */

/* The lanes of v summed in float, in the same tree order as LANE_SUM. */
typedef float vf4 __attribute__((vector_size(16)));
typedef float vf2 __attribute__((vector_size(8)));
#define LANE_SUM_FLOAT(v, out)                                                                     \
    do {                                                                                           \
        vf8 a_ = __builtin_shufflevector((v), (v), 0, 1, 2, 3, 4, 5, 6, 7) +                       \
                 __builtin_shufflevector((v), (v), 8, 9, 10, 11, 12, 13, 14, 15);                  \
        vf4 b_ = __builtin_shufflevector(a_, a_, 0, 1, 2, 3) +                                     \
                 __builtin_shufflevector(a_, a_, 4, 5, 6, 7);                                      \
        vf2 c_ = __builtin_shufflevector(b_, b_, 0, 1) + __builtin_shufflevector(b_, b_, 2, 3);    \
        (out) = c_[0] + c_[1];                                                                     \
    } while (0)

/* sum(p[i] - k) over one run, in float: it only places the center that the
 * exact pass measures deviations from, and it is on the critical path of
 * every plane. The values are summed as they are and k taken off the total
 * (one add per vector, not a subtract and an add: the add pipes are this
 * pass's bound on short planes); the center it gives is off by a few float
 * ulps of the mean, which the exact pass's sum of deviations absorbs. */
BN_INLINE double run_sum_shifted(const float *p, size_t len, float k) {
    vf a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
    size_t i = 0;
    for (; i + 4 * VL <= len; i += 4 * VL) {
        a0 += LD(p + i);
        a1 += LD(p + i + VL);
        a2 += LD(p + i + 2 * VL);
        a3 += LD(p + i + 3 * VL);
    }
    for (; i + VL <= len; i += VL)
        a0 += LD(p + i);
    if (i < len && len >= VL) {
        vi keep = LANE_INDEX >= (int)(VL - (len - i));
        a1 += (vf)((vi)LD(p + len - VL) & keep);
        i = len;
    }
    a0 = (a0 + a1) + (a2 + a3);
    float s;
    LANE_SUM_FLOAT(a0, s);
    for (; i < len; i++)
        s += p[i];
    return (double)s - (double)len * (double)k;
}

/* sum(e) and sum(e^2) for e = p[i] - k over one run, added to *s1, *s2. */
BN_INLINE void run_sums_centered(const float *p, size_t len, float k, double *s1, double *s2) {
    const vf vk = SPLAT(k);
    vf e1a = {0}, e1b = {0}, e2a = {0}, e2b = {0};
    size_t i = 0;
    for (; i + 2 * VL <= len; i += 2 * VL) {
        vf ea = LD(p + i) - vk, eb = LD(p + i + VL) - vk;
        e1a += ea, e2a += ea * ea;
        e1b += eb, e2b += eb * eb;
    }
    for (; i + VL <= len; i += VL) {
        vf e = LD(p + i) - vk;
        e1a += e, e2a += e * e;
    }
    if (i < len && len >= VL) {
        vi keep = LANE_INDEX >= (int)(VL - (len - i));
        vf e = (vf)((vi)(LD(p + len - VL) - vk) & keep);
        e1b += e, e2b += e * e;
        i = len;
    }
    e1a += e1b, e2a += e2b;
    double t1, t2;
    LANE_SUM(e1a, t1);
    LANE_SUM(e2a, t2);
    for (; i < len; i++) {
        float e = p[i] - k;
        t1 += (double)e, t2 += (double)(e * e);
    }
    *s1 += t1, *s2 += t2;
}

/* sum(dy), sum(dy * (x - mean)) and sum(x - mean) over one run, added to
 * *s0, *s1, *s2; when dx is given (frozen statistics: the mean is exact and
 * s2 is not needed), dx = a * dy in the same pass instead of s2. */
BN_INLINE void run_backward(const float *x, const float *dy, float *dx, size_t len, float mean,
                            float a, double *s0, double *s1, double *s2) {
    const vf vm = SPLAT(mean), va = SPLAT(a);
    vf d0a = {0}, d0b = {0}, d1a = {0}, d1b = {0}, d2a = {0}, d2b = {0};
    size_t i = 0;
    for (; i + 2 * VL <= len; i += 2 * VL) {
        vf ga = LD(dy + i), gb = LD(dy + i + VL);
        vf ea = LD(x + i) - vm, eb = LD(x + i + VL) - vm;
        d0a += ga, d1a += ga * ea;
        d0b += gb, d1b += gb * eb;
        if (dx)
            ST(dx + i, va * ga), ST(dx + i + VL, va * gb);
        else
            d2a += ea, d2b += eb;
    }
    for (; i + VL <= len; i += VL) {
        vf g = LD(dy + i), e = LD(x + i) - vm;
        d0a += g, d1a += g * e;
        if (dx)
            ST(dx + i, va * g);
        else
            d2a += e;
    }
    if (i < len && len >= VL) {
        vi keep = LANE_INDEX >= (int)(VL - (len - i));
        vf g = LD(dy + len - VL), e = LD(x + len - VL) - vm;
        d0b += (vf)((vi)g & keep);
        d1b += (vf)((vi)(g * e) & keep);
        if (!dx) d2b += (vf)((vi)e & keep);
        for (; dx && i < len; i++)
            dx[i] = a * dy[i];
        i = len;
    }
    d0a += d0b, d1a += d1b, d2a += d2b;
    double t0, t1, t2 = 0.0;
    LANE_SUM(d0a, t0);
    LANE_SUM(d1a, t1);
    if (!dx) LANE_SUM(d2a, t2);
    for (; i < len; i++) {
        t0 += (double)dy[i], t1 += (double)(dy[i] * (x[i] - mean));
        if (dx)
            dx[i] = a * dy[i];
        else
            t2 += (double)(x[i] - mean);
    }
    *s0 += t0, *s1 += t1, *s2 += t2;
}

BN_INLINE void run_normalize(const float *x, float *y, size_t len, float mean, float lo, float a,
                             float b, int stream) {
    const vf vm = SPLAT(mean), vlo = SPLAT(lo), va = SPLAT(a), vb = SPLAT(b);
    size_t i = 0;
    if (stream) {
        for (; i < len && !STREAM_ALIGNED(y + i); i++)
            y[i] = ((x[i] - mean) - lo) * a + b;
        for (; i + VL <= len; i += VL)
            ST_STREAM(y + i, ((LD(x + i) - vm) - vlo) * va + vb);
        for (; i + 4 <= len; i += 4) {
            float t[4];
            for (int j = 0; j < 4; j++)
                t[j] = ((x[i + j] - mean) - lo) * a + b;
            ST_STREAM4(y + i, t);
        }
    }
    for (; i + VL <= len; i += VL)
        ST(y + i, ((LD(x + i) - vm) - vlo) * va + vb);
    for (; i < len; i++)
        y[i] = ((x[i] - mean) - lo) * a + b;
}

BN_INLINE void run_dx(const float *x, const float *dy, float *dx, size_t len, float mean, float a,
                      float b, float c, int stream) {
    const vf vm = SPLAT(mean), va = SPLAT(a), vb = SPLAT(b), vc = SPLAT(c);
    size_t i = 0;
    if (stream) {
        for (; i < len && !STREAM_ALIGNED(dx + i); i++)
            dx[i] = a * dy[i] + b * (x[i] - mean) + c;
        for (; i + VL <= len; i += VL)
            ST_STREAM(dx + i, va * LD(dy + i) + vb * (LD(x + i) - vm) + vc);
        for (; i + 4 <= len; i += 4) {
            float t[4];
            for (int j = 0; j < 4; j++)
                t[j] = a * dy[i + j] + b * (x[i + j] - mean) + c;
            ST_STREAM4(dx + i, t);
        }
    }
    for (; i + VL <= len; i += VL)
        ST(dx + i, va * LD(dy + i) + vb * (LD(x + i) - vm) + vc);
    for (; i < len; i++)
        dx[i] = a * dy[i] + b * (x[i] - mean) + c;
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

static size_t plane_offset(const bn_view *v, size_t n, size_t f) {
    return (n * v->features + f) * v->s;
}

/* Chunk statistics (mean, M2) of one PLANES chunk. */
BN_INLINE void plane_chunk_stats(const bn_view *v, const float *x, size_t f, const plane_chunk *c,
                                 double *mean, double *m2) {
    const size_t len = c->s1 - c->s0;
    const double count = (double)((c->n1 - c->n0) * len);
    const float k = x[plane_offset(v, c->n0, f) + c->s0];
    double shifted = 0.0;
    for (size_t n = c->n0; n < c->n1; n++)
        shifted += run_sum_shifted(x + plane_offset(v, n, f) + c->s0, len, k);
    /* The reciprocal does not wait for the data: one multiply, not a
     * division, between the two passes. */
    const float center = (float)((double)k + shifted * (1.0 / count));
    double s1 = 0.0, s2 = 0.0;
    for (size_t n = c->n0; n < c->n1; n++)
        run_sums_centered(x + plane_offset(v, n, f) + c->s0, len, center, &s1, &s2);
    chunk_moments(center, s1, s2, count, mean, m2);
}

/* Backward sums of one PLANES chunk, and dx = a * dy when frozen. */
BN_INLINE void plane_chunk_backward(const bn_view *v, const float *x, const float *dy, float *dx,
                                    size_t f, const plane_chunk *c, float mean, float a, double *s0,
                                    double *s1, double *s2) {
    const size_t len = c->s1 - c->s0;
    *s0 = 0.0, *s1 = 0.0, *s2 = 0.0;
    for (size_t n = c->n0; n < c->n1; n++) {
        size_t o = plane_offset(v, n, f) + c->s0;
        if (dx)
            run_backward(x + o, dy + o, dx + o, len, mean, a, s0, s1, s2);
        else
            run_backward(x + o, dy + o, NULL, len, mean, 0.0f, s0, s1, s2);
    }
}

/* ---------------------------------------------------------------------------
 * Tiles (the rows view: a feature's values run down a column)
 *
 * A tile is a block of rows by at most BN_FEATURE_BLOCK features. Each lane
 * is one feature and sums its rows in order, so the vector paths and the
 * scalar path for ragged features round the same way.
 * ------------------------------------------------------------------------- */

#define TILE_GROUPS (BN_FEATURE_BLOCK / VL)

/* The rows view's statistics go through a block of rows in strips of up to
 * ROWS_STRIP features (whole rows where there are no more): a first pass
 * adds up each feature's values, with the sums in registers, and places the
 * centers; a second pass, over tiles of BN_FEATURE_BLOCK features, sums the
 * deviations from them while the strip is still in L2. The first pass thus
 * reads memory in runs of up to 1 KiB: read as 256-byte strips of each row,
 * a tile's width, the same bytes came at half the speed (13 GB/s against 27
 * for 256-feature rows on one thread).
 *
 * The first pass's sums are plain float sums: they only place the centers,
 * within a few float ulps of the means, and the second pass's sum of
 * deviations corrects for that. */
#define ROWS_STRIP   256
#define STRIP_GROUPS (ROWS_STRIP / VL)

/* sums[j] = the sum of base[r * F + j] over R rows, for ng groups of VL
 * features; in registers where ng is a constant. */
BN_INLINE void strip_sums_groups(const float *base, size_t R, size_t F, int ng, float *sums) {
    vf acc[STRIP_GROUPS];
    for (int q = 0; q < ng; q++)
        acc[q] = (vf){0};
    for (size_t r = 0; r < R; r++)
        for (int q = 0; q < ng; q++)
            acc[q] += LD(base + r * F + q * VL);
    for (int q = 0; q < ng; q++)
        ST(sums + q * VL, acc[q]);
}

/* Centers of w <= ROWS_STRIP features: each feature's float sum over R rows
 * in row order (lane or scalar alike), divided by R. */
BN_INLINE void strip_centers(const float *base, size_t R, size_t F, size_t w, float *center) {
    size_t j = 0;
    if (w == ROWS_STRIP) {
        strip_sums_groups(base, R, F, STRIP_GROUPS, center);
        j = w;
    }
    for (; j + 4 * VL <= w; j += 4 * VL)
        strip_sums_groups(base + j, R, F, 4, center + j);
    for (; j + VL <= w; j += VL)
        strip_sums_groups(base + j, R, F, 1, center + j);
    for (; j < w; j++) {
        float sum = 0.0f;
        for (size_t r = 0; r < R; r++)
            sum += base[r * F + j];
        center[j] = sum;
    }
    for (j = 0; j < w; j++)
        center[j] = (float)((double)center[j] / (double)R);
}

/* Chunk statistics of ng groups of VL features (columns from `base`, R rows
 * with stride F) from their deviations from `center`. */
BN_INLINE void tile_stats_groups(const float *base, size_t R, size_t F, int ng, const float *center,
                                 double *mean, double *m2) {
    vf k[TILE_GROUPS], s1[TILE_GROUPS], s2[TILE_GROUPS];
    const double count = (double)R;
    for (int q = 0; q < ng; q++)
        k[q] = LD(center + q * VL), s1[q] = (vf){0}, s2[q] = (vf){0};
    for (size_t r = 0; r < R; r++)
        for (int q = 0; q < ng; q++) {
            vf e = LD(base + r * F + q * VL) - k[q];
            s1[q] += e, s2[q] += e * e;
        }
    float t1[VL], t2[VL];
    for (int q = 0; q < ng; q++) {
        TO_LANES(t1, s1[q]);
        TO_LANES(t2, s2[q]);
        for (int j = 0; j < VL; j++)
            chunk_moments(center[q * VL + j], t1[j], t2[j], count, &mean[q * VL + j],
                          &m2[q * VL + j]);
    }
}

/* The same for one feature, for the columns left over after the groups. */
static void tile_stats_column(const float *base, size_t R, size_t F, float center, double *mean,
                              double *m2) {
    float s1 = 0.0f, s2 = 0.0f;
    for (size_t r = 0; r < R; r++) {
        float e = base[r * F] - center;
        s1 += e, s2 += e * e;
    }
    chunk_moments(center, s1, s2, (double)R, mean, m2);
}

/* Chunk statistics of a strip: R rows by w <= ROWS_STRIP features. */
BN_DISPATCH static void strip_stats(const float *base, size_t R, size_t F, size_t w, double *mean,
                                    double *m2) {
    float center[ROWS_STRIP];
    strip_centers(base, R, F, w, center);
    size_t j = 0;
    for (; j + BN_FEATURE_BLOCK <= w; j += BN_FEATURE_BLOCK)
        tile_stats_groups(base + j, R, F, TILE_GROUPS, center + j, mean + j, m2 + j);
    for (; j + 2 * VL <= w; j += 2 * VL)
        tile_stats_groups(base + j, R, F, 2, center + j, mean + j, m2 + j);
    for (; j + VL <= w; j += VL)
        tile_stats_groups(base + j, R, F, 1, center + j, mean + j, m2 + j);
    for (; j < w; j++)
        tile_stats_column(base + j, R, F, center[j], mean + j, m2 + j);
}

/* Rows of up to ROW_GROUPS * VL features are narrow enough to keep what a
 * pass needs per feature in registers. The backward takes them whole, and
 * wider rows in tiles of BN_FEATURE_BLOCK features. A whole row's two sums
 * and its means still fit in registers at 128 features, and memory is then
 * read in whole rows rather than 256-byte strips: 200704 x 128, one thread,
 * backward 18.2 -> 14.8 ms and frozen 11.2 -> 10.4 (medians of 6 alternating
 * runs). At 256 features, 512-byte strips gained nothing over 256-byte
 * ones, and whole rows with the sums in L1 lost. */
#define ROW_GROUPS 8

/* Backward sums of ng groups of features over R rows: sum(dy),
 * sum(dy * (x - mean)) and sum(x - mean); with dx (frozen statistics),
 * dx = a * dy in the same pass instead of the third sum. */
BN_INLINE void tile_backward_groups(const float *x, const float *dy, float *dx, size_t R, size_t F,
                                    int ng, const float *mean, const float *a, double *s0,
                                    double *s1, double *s2) {
    vf vm[ROW_GROUPS], va[ROW_GROUPS], d0[ROW_GROUPS], d1[ROW_GROUPS], d2[ROW_GROUPS];
    for (int q = 0; q < ng; q++) {
        vm[q] = LD(mean + q * VL), d0[q] = (vf){0}, d1[q] = (vf){0}, d2[q] = (vf){0};
        va[q] = dx ? LD(a + q * VL) : (vf){0};
    }
    for (size_t r = 0; r < R; r++)
        for (int q = 0; q < ng; q++) {
            size_t o = r * F + q * VL;
            vf g = LD(dy + o), e = LD(x + o) - vm[q];
            d0[q] += g, d1[q] += g * e;
            if (dx)
                ST(dx + o, va[q] * g);
            else
                d2[q] += e;
        }
    float t0[VL], t1[VL], t2[VL];
    for (int q = 0; q < ng; q++) {
        TO_LANES(t0, d0[q]);
        TO_LANES(t1, d1[q]);
        TO_LANES(t2, d2[q]);
        for (int j = 0; j < VL; j++)
            s0[q * VL + j] = t0[j], s1[q * VL + j] = t1[j], s2[q * VL + j] = t2[j];
    }
}

static void tile_backward_column(const float *x, const float *dy, float *dx, size_t R, size_t F,
                                 float mean, float a, double *s0, double *s1, double *s2) {
    float d0 = 0.0f, d1 = 0.0f, d2 = 0.0f;
    for (size_t r = 0; r < R; r++) {
        float g = dy[r * F], e = x[r * F] - mean;
        d0 += g, d1 += g * e;
        if (dx)
            dx[r * F] = a * g;
        else
            d2 += e;
    }
    *s0 = d0, *s1 = d1, *s2 = d2;
}

BN_INLINE void tile_backward(const float *x, const float *dy, float *dx, size_t R, size_t F,
                             size_t w, const float *mean, const float *a, double *s0, double *s1,
                             double *s2) {
    size_t j = 0;
    for (; j + ROW_GROUPS * VL <= w; j += ROW_GROUPS * VL)
        tile_backward_groups(x + j, dy + j, dx ? dx + j : NULL, R, F, ROW_GROUPS, mean + j, a + j,
                             s0 + j, s1 + j, s2 + j);
    for (; j + BN_FEATURE_BLOCK <= w; j += BN_FEATURE_BLOCK)
        tile_backward_groups(x + j, dy + j, dx ? dx + j : NULL, R, F, TILE_GROUPS, mean + j, a + j,
                             s0 + j, s1 + j, s2 + j);
    for (; j + 2 * VL <= w; j += 2 * VL)
        tile_backward_groups(x + j, dy + j, dx ? dx + j : NULL, R, F, 2, mean + j, a + j, s0 + j,
                             s1 + j, s2 + j);
    for (; j + VL <= w; j += VL)
        tile_backward_groups(x + j, dy + j, dx ? dx + j : NULL, R, F, 1, mean + j, a + j, s0 + j,
                             s1 + j, s2 + j);
    for (; j < w; j++)
        tile_backward_column(x + j, dy + j, dx ? dx + j : NULL, R, F, mean[j], a[j], s0 + j, s1 + j,
                             s2 + j);
}

BN_DISPATCH static void tile_backward_sums(const float *x, const float *dy, size_t R, size_t F,
                                           size_t w, const float *mean, double *s0, double *s1,
                                           double *s2) {
    tile_backward(x, dy, NULL, R, F, w, mean, mean, s0, s1, s2);
}

BN_DISPATCH static void tile_backward_frozen(const float *x, const float *dy, float *dx, size_t R,
                                             size_t F, size_t w, const float *mean, const float *a,
                                             double *s0, double *s1, double *s2) {
    tile_backward(x, dy, dx, R, F, w, mean, a, s0, s1, s2);
}

/* y = (x - mean) * a + b2, with b2 = b - lo * a folded in beforehand: one
 * load fewer per vector than the planes' form, which matters here, where
 * every coefficient is a vector load of its own. */
BN_INLINE void row_normalize(const float *x, float *y, size_t F, const float *mean, const float *a,
                             const float *b2, int stream) {
    size_t j = 0;
    if (stream) {
        for (; j < F && !STREAM_ALIGNED(y + j); j++)
            y[j] = (x[j] - mean[j]) * a[j] + b2[j];
        for (; j + VL <= F; j += VL)
            ST_STREAM(y + j, (LD(x + j) - LD(mean + j)) * LD(a + j) + LD(b2 + j));
    }
    for (; j + VL <= F; j += VL)
        ST(y + j, (LD(x + j) - LD(mean + j)) * LD(a + j) + LD(b2 + j));
    for (; j < F; j++)
        y[j] = (x[j] - mean[j]) * a[j] + b2[j];
}

BN_INLINE void row_dx(const float *x, const float *dy, float *dx, size_t F, const float *mean,
                      const float *a, const float *b, const float *c, int stream) {
    size_t j = 0;
    if (stream) {
        for (; j < F && !STREAM_ALIGNED(dx + j); j++)
            dx[j] = a[j] * dy[j] + b[j] * (x[j] - mean[j]) + c[j];
        for (; j + VL <= F; j += VL)
            ST_STREAM(dx + j,
                      LD(a + j) * LD(dy + j) + LD(b + j) * (LD(x + j) - LD(mean + j)) + LD(c + j));
    }
    for (; j + VL <= F; j += VL)
        ST(dx + j, LD(a + j) * LD(dy + j) + LD(b + j) * (LD(x + j) - LD(mean + j)) + LD(c + j));
    for (; j < F; j++)
        dx[j] = a[j] * dy[j] + b[j] * (x[j] - mean[j]) + c[j];
}

/* One switch case per group count, so that each call has a constant one. */
#define GROUP_COUNTS_1_TO_4(CASE) CASE(1) CASE(2) CASE(3) CASE(4)
#define GROUP_COUNTS_1_TO_8(CASE) GROUP_COUNTS_1_TO_4(CASE) CASE(5) CASE(6) CASE(7) CASE(8)

/* Rows of ng * VL features (ng <= ROW_GROUPS; dx: ROW_GROUPS / 2) with every
 * coefficient vector held in registers for the whole block: one row at a
 * time took three (normalize) or four (dx) coefficient loads per vector of
 * output beside one or two of data, and the load pipes, not memory, set the
 * pace of narrow channels-last rows that sit in cache. The same arithmetic
 * per value as the one-row forms, so the same bits. (Four rows per
 * coefficient load, interleaved, was 1.6x slower: the non-temporal stores no
 * longer went out in address order.) */
BN_INLINE void rows_normalize_hoisted(const float *x, float *y, size_t R, int ng, const float *mean,
                                      const float *a, const float *b2, int stream) {
    vf vm[ROW_GROUPS], va[ROW_GROUPS], vb[ROW_GROUPS];
    const size_t F = (size_t)ng * VL;
    for (int q = 0; q < ng; q++)
        vm[q] = LD(mean + q * VL), va[q] = LD(a + q * VL), vb[q] = LD(b2 + q * VL);
    for (size_t r = 0; r < R; r++)
        for (int q = 0; q < ng; q++) {
            vf out = (LD(x + r * F + q * VL) - vm[q]) * va[q] + vb[q];
            if (stream)
                ST_STREAM(y + r * F + q * VL, out);
            else
                ST(y + r * F + q * VL, out);
        }
}

BN_INLINE void rows_dx_hoisted(const float *x, const float *dy, float *dx, size_t R, int ng,
                               const float *mean, const float *a, const float *b, const float *c,
                               int stream) {
    vf vm[ROW_GROUPS / 2], va[ROW_GROUPS / 2], vb[ROW_GROUPS / 2], vc[ROW_GROUPS / 2];
    const size_t F = (size_t)ng * VL;
    for (int q = 0; q < ng; q++)
        vm[q] = LD(mean + q * VL), va[q] = LD(a + q * VL), vb[q] = LD(b + q * VL),
        vc[q] = LD(c + q * VL);
    for (size_t r = 0; r < R; r++)
        for (int q = 0; q < ng; q++) {
            size_t o = r * F + q * VL;
            vf out = va[q] * LD(dy + o) + vb[q] * (LD(x + o) - vm[q]) + vc[q];
            if (stream)
                ST_STREAM(dx + o, out);
            else
                ST(dx + o, out);
        }
}

/* ---------------------------------------------------------------------------
 * Merging chunk results, in chunk order
 * ------------------------------------------------------------------------- */

/* Chan's formula: folds a chunk (nb values, mean mb, M2 qb) into a running
 * (n, mu, q). */
static void chan_add(double *n, double *mu, double *q, double nb, double mb, double qb) {
    double delta = mb - *mu, nt = *n + nb;
    *mu += delta * (nb / nt);
    *q += qb + delta * delta * (*n * nb / nt);
    *n = nt;
}

/* Values in chunk j of any feature. */
static double chunk_count(const bn_view *v, const bn_chunking *ch, size_t j) {
    if (v->kind == BN_VIEW_ROWS) {
        size_t r0 = j * ch->rows_per_block;
        return (double)(v->n - r0 < ch->rows_per_block ? v->n - r0 : ch->rows_per_block);
    }
    plane_chunk c = plane_chunk_at(v, ch, j);
    return (double)((c.n1 - c.n0) * (c.s1 - c.s0));
}

/* Where chunk j of feature f keeps its partial results. */
static size_t part_index(const bn_view *v, const bn_chunking *ch, size_t f, size_t j) {
    return v->kind == BN_VIEW_ROWS ? j * v->features + f : f * ch->chunks + j;
}

static void merge_stats(const bn_view *v, const bn_chunking *ch, bn_workspace *ws, size_t f) {
    double n = 0.0, mu = 0.0, q = 0.0;
    for (size_t j = 0; j < ch->chunks; j++) {
        size_t i = part_index(v, ch, f, j);
        chan_add(&n, &mu, &q, chunk_count(v, ch, j), ws->part0[i], ws->part1[i]);
    }
    ws->stat0[f] = mu;
    ws->stat1[f] = q / n;
}

static void merge_sums(const bn_view *v, const bn_chunking *ch, bn_workspace *ws, size_t f) {
    double s0 = 0.0, s1 = 0.0, s2 = 0.0;
    for (size_t j = 0; j < ch->chunks; j++) {
        size_t i = part_index(v, ch, f, j);
        s0 += ws->part0[i], s1 += ws->part1[i], s2 += ws->part2[i];
    }
    ws->stat0[f] = s0;
    ws->stat1[f] = s1;
    ws->stat2[f] = s2;
}

/* ---------------------------------------------------------------------------
 * The passes
 * ------------------------------------------------------------------------- */

/* Tile `t` of the rows view, in tiles `width` features wide: rows [r0, r0 +
 * rows) of row block rb, features [f0, f0 + w). The statistics take strips
 * (ROWS_STRIP wide), the backward BN_FEATURE_BLOCK-wide tiles. */
typedef struct {
    size_t rb, r0, rows, f0, w;
} rows_tile;

static rows_tile rows_tile_at(const bn_view *v, const bn_chunking *ch, size_t width, size_t t) {
    const size_t fb = (v->features + width - 1) / width;
    rows_tile tl;
    tl.rb = t / fb;
    tl.f0 = t % fb * width;
    tl.w = v->features - tl.f0 < width ? v->features - tl.f0 : width;
    tl.r0 = tl.rb * ch->rows_per_block;
    tl.rows = v->n - tl.r0 < ch->rows_per_block ? v->n - tl.r0 : ch->rows_per_block;
    return tl;
}

static size_t rows_tile_count(const bn_view *v, const bn_chunking *ch, size_t width) {
    return ch->chunks * ((v->features + width - 1) / width);
}

/* Work item t of the PLANES view as (feature, chunk). When a chunk is one
 * plane or part of one, items are numbered in memory order, so that each
 * thread streams through a contiguous range; the partial results still go
 * to part_index(f, j), so the merge order is the same. */
static void plane_item(const bn_view *v, const bn_chunking *ch, size_t t, size_t *f, size_t *j) {
    if (ch->planes_per_chunk == 1) {
        size_t seg = t % ch->segments, p = t / ch->segments;
        *f = p % v->features;
        *j = p / v->features * ch->segments + seg;
    } else {
        *f = t / ch->chunks;
        *j = t % ch->chunks;
    }
}

/* PLANES work items are handed out in blocks of this many, each block one
 * call of a dispatched function, so that the per-item cost is a few adds. */
#define PLANE_ITEMS_PER_BLOCK 64

/* Runs body for items [t0, t1) with f, j and the chunk c set. One plane per
 * chunk, the common case, walks (n, f) with counters instead of divisions. */
#define FOR_PLANE_ITEMS(v, ch, t0, t1, body)                                                       \
    do {                                                                                           \
        if ((ch)->planes_per_chunk == 1 && (ch)->segments == 1) {                                  \
            size_t f = (t0) % (v)->features, j = (t0) / (v)->features;                             \
            for (size_t t_ = (t0); t_ < (t1); t_++) {                                              \
                plane_chunk c = {j, j + 1, 0, (v)->s};                                             \
                body;                                                                              \
                if (++f == (v)->features) f = 0, j++;                                              \
            }                                                                                      \
        } else {                                                                                   \
            for (size_t t_ = (t0); t_ < (t1); t_++) {                                              \
                size_t f, j;                                                                       \
                plane_item((v), (ch), t_, &f, &j);                                                 \
                plane_chunk c = plane_chunk_at((v), (ch), j);                                      \
                body;                                                                              \
            }                                                                                      \
        }                                                                                          \
    } while (0)

/* How far ahead of the plane being summed its successors are prefetched.
 * The hardware prefetchers stop at every 4 KiB page, a 196-value plane
 * carries a hundred-odd instructions of reductions that keep the demand
 * loads of the next page from issuing early, and the statistics of
 * 256x256x14x14 read memory at 23 GB/s on one thread without it, 34 GB/s
 * with it (`bench/ab_stats.sh`, 6 alternating runs: 2.20 -> 1.52 ms; 2
 * threads 1.13 -> 0.83 ms). 12 KiB was the best of 3-50 KiB. */
#define PLANE_PREFETCH_BYTES 12288
BN_DISPATCH static void plane_items_stats(const bn_view *v, const bn_chunking *ch, const float *x,
                                          bn_workspace *ws, size_t t0, size_t t1) {
    if (ch->planes_per_chunk == 1 && ch->segments == 1 && t0 < t1) {
        /* Whole planes, consecutive in memory: the next plane's first pass
         * is issued before this plane's second, so that its reduction runs
         * under work that does not wait for it. The arithmetic per plane is
         * plane_chunk_stats' own. */
        const size_t F = v->features, S = v->s;
        const double count = (double)S, inv = 1.0 / count;
        size_t f = t0 % F, n = t0 / F;
        const float *p = x + t0 * S;
        float k = p[0];
        double shifted = run_sum_shifted(p, S, k);
        for (size_t t = t0; t < t1; t++, p += S) {
            for (size_t b = 0; b < S * sizeof(float); b += 64) /* may point past x: harmless */
                __builtin_prefetch((const void *)((uintptr_t)p + PLANE_PREFETCH_BYTES + b));
            const float center = (float)((double)k + shifted * inv);
            if (t + 1 < t1) k = p[S], shifted = run_sum_shifted(p + S, S, k);
            double s1 = 0.0, s2 = 0.0;
            run_sums_centered(p, S, center, &s1, &s2);
            size_t i = f * ch->chunks + n;
            chunk_moments(center, s1, s2, count, &ws->part0[i], &ws->part1[i]);
            if (++f == F) f = 0, n++;
        }
        return;
    }
    FOR_PLANE_ITEMS(v, ch, t0, t1, {
        size_t i = part_index(v, ch, f, j);
        plane_chunk_stats(v, x, f, &c, &ws->part0[i], &ws->part1[i]);
    });
}

BN_DISPATCH static void plane_items_backward(const bn_view *v, const bn_chunking *ch,
                                             const float *x, const float *dy, float *dx,
                                             bn_workspace *ws, size_t t0, size_t t1) {
    FOR_PLANE_ITEMS(v, ch, t0, t1, {
        size_t i = part_index(v, ch, f, j);
        plane_chunk_backward(v, x, dy, dx, f, &c, ws->mean[f], dx ? ws->a[f] : 0.0f, &ws->part0[i],
                             &ws->part1[i], &ws->part2[i]);
    });
}

void bn_fast_batch_stats(const bn_view *v, const float *x, bn_workspace *ws, int threads) {
    const bn_chunking ch = bn_chunking_for(v);
    const size_t F = v->features;
    if (v->kind == BN_VIEW_ROWS) {
        const long strips = (long)rows_tile_count(v, &ch, ROWS_STRIP);
        PARALLEL_FOR(t, strips, {
            rows_tile tl = rows_tile_at(v, &ch, ROWS_STRIP, (size_t)t);
            size_t p = tl.rb * F + tl.f0;
            strip_stats(x + tl.r0 * F + tl.f0, tl.rows, F, tl.w, ws->part0 + p, ws->part1 + p);
        });
    } else {
        const size_t items = F * ch.chunks;
        const long blocks = (long)((items + PLANE_ITEMS_PER_BLOCK - 1) / PLANE_ITEMS_PER_BLOCK);
        PARALLEL_FOR(b, blocks, {
            size_t t0 = (size_t)b * PLANE_ITEMS_PER_BLOCK;
            size_t t1 = t0 + PLANE_ITEMS_PER_BLOCK < items ? t0 + PLANE_ITEMS_PER_BLOCK : items;
            plane_items_stats(v, &ch, x, ws, t0, t1);
        });
    }
    PARALLEL_FOR(f, F, merge_stats(v, &ch, ws, (size_t)f););
}

/* The element-wise passes go through the tensor in runs (rows, or planes)
 * handed out in blocks of about this many values, one dispatched call per
 * block: a call per run cost 10-20% on 128-value rows. */
#define RUN_BLOCK_VALUES 4096

static size_t runs_per_block(const bn_view *v) {
    size_t len = v->kind == BN_VIEW_ROWS ? v->features : v->s;
    return len >= RUN_BLOCK_VALUES ? 1 : RUN_BLOCK_VALUES / len;
}

/* y for runs [r0, r1): rows of the rows view, or planes (n * F + f). */
BN_DISPATCH static void normalize_runs(const bn_view *v, const float *x, const bn_workspace *ws,
                                       float *y, size_t r0, size_t r1, int stream) {
    const size_t F = v->features;
    if (v->kind == BN_VIEW_ROWS) {
        if (F % VL == 0 && F / VL <= ROW_GROUPS && (!stream || STREAM_ALIGNED(y))) {
            const float *xb = x + r0 * F;
            float *yb = y + r0 * F;
            const size_t R = r1 - r0;
            switch ((F / VL) * 2 + (stream != 0)) {
#define NORMALIZE_CASE(ng)                                                                         \
    case 2 * ng: rows_normalize_hoisted(xb, yb, R, ng, ws->mean, ws->a, ws->c, 0); break;          \
    case 2 * ng + 1: rows_normalize_hoisted(xb, yb, R, ng, ws->mean, ws->a, ws->c, 1); break;
                GROUP_COUNTS_1_TO_8(NORMALIZE_CASE)
#undef NORMALIZE_CASE
            }
            return;
        }
        for (size_t r = r0; r < r1; r++)
            row_normalize(x + r * F, y + r * F, F, ws->mean, ws->a, ws->c, stream);
        return;
    }
    const size_t S = v->s;
    for (size_t p = r0, f = r0 % F; p < r1; p++) {
        run_normalize(x + p * S, y + p * S, S, ws->mean[f], ws->mean_lo[f], ws->a[f], ws->b[f],
                      stream);
        if (++f == F) f = 0;
    }
}

BN_DISPATCH static void dx_runs(const bn_view *v, const float *x, const float *dy,
                                const bn_workspace *ws, float *dx, size_t r0, size_t r1,
                                int stream) {
    const size_t F = v->features;
    if (v->kind == BN_VIEW_ROWS) {
        if (F % VL == 0 && F / VL <= ROW_GROUPS / 2 && (!stream || STREAM_ALIGNED(dx))) {
            const size_t o = r0 * F, R = r1 - r0;
            switch ((F / VL) * 2 + (stream != 0)) {
#define DX_CASE(ng)                                                                                \
    case 2 * ng:                                                                                   \
        rows_dx_hoisted(x + o, dy + o, dx + o, R, ng, ws->mean, ws->a, ws->b, ws->c, 0);           \
        break;                                                                                     \
    case 2 * ng + 1:                                                                               \
        rows_dx_hoisted(x + o, dy + o, dx + o, R, ng, ws->mean, ws->a, ws->b, ws->c, 1);           \
        break;
                GROUP_COUNTS_1_TO_4(DX_CASE)
#undef DX_CASE
            }
            return;
        }
        for (size_t r = r0; r < r1; r++)
            row_dx(x + r * F, dy + r * F, dx + r * F, F, ws->mean, ws->a, ws->b, ws->c, stream);
        return;
    }
    const size_t S = v->s;
    for (size_t p = r0, f = r0 % F; p < r1; p++) {
        run_dx(x + p * S, dy + p * S, dx + p * S, S, ws->mean[f], ws->a[f], ws->b[f], ws->c[f],
               stream);
        if (++f == F) f = 0;
    }
}

/* Runs this many in all, each thread a contiguous share of blocks, so that
 * it streams through one range of memory. */
static size_t run_count(const bn_view *v) {
    return v->kind == BN_VIEW_ROWS ? v->n : v->n * v->features;
}

/* The loop of the per-feature square roots and divisions: in scalar code
 * they cost more than normalizing a single sample's 128 features. Separate
 * loops, so that each vectorizes without a branch on gamma. */
BN_DISPATCH static void inference_coefficients(size_t features, const float *restrict mean,
                                               const float *restrict var,
                                               const float *restrict gamma,
                                               const float *restrict beta, double eps,
                                               float *restrict ws_mean, float *restrict ws_mean_lo,
                                               float *restrict ws_a, float *restrict ws_b) {
    for (size_t f = 0; f < features; f++) {
        ws_mean[f] = mean[f];
        ws_mean_lo[f] = 0.0f; /* the mean is a float already: nothing below it */
    }
    if (gamma)
        for (size_t f = 0; f < features; f++)
            ws_a[f] = (float)((double)gamma[f] * (1.0 / sqrt((double)var[f] + eps)));
    else
        for (size_t f = 0; f < features; f++)
            ws_a[f] = (float)(1.0 / sqrt((double)var[f] + eps));
    for (size_t f = 0; f < features; f++)
        ws_b[f] = beta ? beta[f] : 0.0f;
}

void bn_fast_inference_coefficients(size_t features, const float *mean, const float *var,
                                    const float *gamma, const float *beta, double eps,
                                    bn_workspace *ws) {
    inference_coefficients(features, mean, var, gamma, beta, eps, ws->mean, ws->mean_lo, ws->a,
                           ws->b);
}

void bn_fast_normalize(const bn_view *v, const float *x, bn_workspace *ws, float *y,
                       const bn_epilogue *ep, int threads) {
    const size_t runs = run_count(v), per = runs_per_block(v);
    const size_t len = v->kind == BN_VIEW_ROWS ? v->features : v->s;
    const long blocks = (long)((runs + per - 1) / per);
    /* A fused epilogue reads the block back at once: it must stay in cache. */
    const int stream = ep ? 0 : stream_outputs(v);
    if (v->kind == BN_VIEW_ROWS)
        for (size_t f = 0; f < v->features; f++)
            ws->c[f] = ws->b[f] - ws->mean_lo[f] * ws->a[f];
    PARALLEL_RANGES(blocks, lo, hi, {
        for (long b = lo; b < hi; b++) {
            size_t r0 = (size_t)b * per, r1 = r0 + per < runs ? r0 + per : runs;
            normalize_runs(v, x, ws, y, r0, r1, stream);
            if (ep) bn_epilogue_apply(ep, y, r0 * len, r1 * len);
        }
        if (stream) STREAM_FENCE();
    });
}

void bn_fast_forward_training(const bn_view *v, const float *x, bn_workspace *ws,
                              bn_coefficients_fn coefficients, const void *ctx, float *y,
                              const bn_epilogue *ep, int threads) {
    bn_fast_batch_stats(v, x, ws, threads);
    for (size_t f = 0; f < v->features; f++)
        coefficients(ctx, ws, f);
    bn_fast_normalize(v, x, ws, y, ep, threads);
}

/* The sums of the backward into ws->stat0..2; with dx (frozen), also
 * dx = a * dy in the same pass. */
static void backward_sums(const bn_view *v, const float *x, const float *dy, bn_workspace *ws,
                          int frozen, float *dx, int threads) {
    const bn_chunking ch = bn_chunking_for(v);
    const size_t F = v->features;
    if (v->kind == BN_VIEW_ROWS) {
        const size_t width = F <= ROW_GROUPS * VL ? ROW_GROUPS * VL : BN_FEATURE_BLOCK;
        const long tiles = (long)rows_tile_count(v, &ch, width);
        PARALLEL_FOR(t, tiles, {
            rows_tile tl = rows_tile_at(v, &ch, width, (size_t)t);
            size_t o = tl.r0 * F + tl.f0, p = tl.rb * F + tl.f0;
            if (frozen)
                tile_backward_frozen(x + o, dy + o, dx + o, tl.rows, F, tl.w, ws->mean + tl.f0,
                                     ws->a + tl.f0, ws->part0 + p, ws->part1 + p, ws->part2 + p);
            else
                tile_backward_sums(x + o, dy + o, tl.rows, F, tl.w, ws->mean + tl.f0, ws->part0 + p,
                                   ws->part1 + p, ws->part2 + p);
        });
    } else {
        const size_t items = F * ch.chunks;
        const long blocks = (long)((items + PLANE_ITEMS_PER_BLOCK - 1) / PLANE_ITEMS_PER_BLOCK);
        PARALLEL_FOR(b, blocks, {
            size_t t0 = (size_t)b * PLANE_ITEMS_PER_BLOCK;
            size_t t1 = t0 + PLANE_ITEMS_PER_BLOCK < items ? t0 + PLANE_ITEMS_PER_BLOCK : items;
            plane_items_backward(v, &ch, x, dy, frozen ? dx : NULL, ws, t0, t1);
        });
    }
    PARALLEL_FOR(f, F, merge_sums(v, &ch, ws, (size_t)f););
}

void bn_fast_backward_sums(const bn_view *v, const float *x, const float *dy, bn_workspace *ws,
                           int threads) {
    backward_sums(v, x, dy, ws, 0, NULL, threads);
}

void bn_fast_backward_dx(const bn_view *v, const float *x, const float *dy, const bn_workspace *ws,
                         float *dx, int threads) {
    const size_t runs = run_count(v), per = runs_per_block(v);
    const long blocks = (long)((runs + per - 1) / per);
    const int stream = stream_outputs(v);
    PARALLEL_RANGES(blocks, lo, hi, {
        for (long b = lo; b < hi; b++) {
            size_t r0 = (size_t)b * per, r1 = r0 + per < runs ? r0 + per : runs;
            dx_runs(v, x, dy, ws, dx, r0, r1, stream);
        }
        if (stream) STREAM_FENCE();
    });
}

void bn_fast_backward(const bn_view *v, const float *x, const float *dy, bn_workspace *ws,
                      int frozen, bn_coefficients_fn coefficients, const void *ctx, float *dx,
                      int threads) {
    backward_sums(v, x, dy, ws, frozen, frozen ? dx : NULL, threads);
    for (size_t f = 0; f < v->features; f++)
        coefficients(ctx, ws, f);
    if (!frozen) bn_fast_backward_dx(v, x, dy, ws, dx, threads);
}
