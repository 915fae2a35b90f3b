/* The fast path's passes (internal.h, bn_passes): the view's kernels
 * (planes.c, rows.c) on work items shared among threads, and the chunks'
 * results merged in chunk order, so that results do not depend on the
 * thread count.
 *
 * Passes over memory: the training forward reads x once for the statistics
 * and once to normalize, in memory order both times; the second read hits
 * cache when the tensor fits in the last-level cache. The backward likewise
 * reads (x, dy) once for its sums and once for dx. With frozen statistics
 * dx = dy_scale * dy does not depend on the sums, so the sums and dx come
 * out of a single pass. (Taking a few channels at a time, so that the
 * second read would always hit cache, was slower here: docs/PERFORMANCE.md.) */
#include "formulas.h"
#include "parallel.h"
#include "simd.h"
#include "views.h"

/* Outputs of tensors at least this large are written with non-temporal
 * stores: they will not be read back before they would have been evicted,
 * and going around the cache keeps the input there and spares the line
 * reads that ordinary stores cost. Smaller outputs (a network's
 * activations, read by the next layer right away) stay in cache. */
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

/* PLANES work items per call of a dispatched function: the per-item cost is then a few adds. */
#define PLANE_ITEMS_PER_BLOCK 64

/* Features [f0, f1) merged from their chunks' results, a chunk at a time,
 * in chunk order: the ROWS view keeps them as [chunk][feature], so a range
 * of features lies side by side, and each chunk's Chan weights are computed
 * once for the range (every feature's chunk j holds as many values). Merged
 * feature by feature, the ROWS view's merge strode through the chunks with
 * two divisions per chunk and feature: 3-4% of a training forward of
 * 200704 x 128 (docs/PERFORMANCE.md). The PLANES view, [feature][chunk],
 * merges one feature per call. Each feature gets the same operations in
 * the same order either way. */
static void merge_stats(const bn_view *v, bn_workspace *ws, size_t f0, size_t f1) {
    double *mu = ws->batch_mean, *q = ws->batch_var, n = 0.0;
    for (size_t f = f0; f < f1; f++)
        mu[f] = 0.0, q[f] = 0.0;
    for (size_t j = 0; j < v->ch.chunks; j++) {
        const double nb = bn_chunk_count(v, j);
        const bn_chan_weight w = bn_chan_weights(n, nb);
        for (size_t f = f0; f < f1; f++) {
            const size_t i = bn_part_index(v, f, j);
            bn_chan_fold(&mu[f], &q[f], w, ws->part0[i], ws->part1[i]);
        }
        n += nb;
    }
    for (size_t f = f0; f < f1; f++)
        q[f] = q[f] / n;
}

static void merge_sums(const bn_view *v, bn_workspace *ws, size_t f0, size_t f1) {
    for (size_t f = f0; f < f1; f++)
        ws->sum_dy[f] = 0.0, ws->sum_dy_xc[f] = 0.0, ws->sum_xc[f] = 0.0;
    for (size_t j = 0; j < v->ch.chunks; j++)
        for (size_t f = f0; f < f1; f++) {
            const size_t i = bn_part_index(v, f, j);
            ws->sum_dy[f] += ws->part0[i], ws->sum_dy_xc[f] += ws->part1[i];
            ws->sum_xc[f] += ws->part2[i];
        }
}

/* merge(v, ws, f0, f1) over every feature: ranges of features in the ROWS
 * view, one feature at a time in the PLANES view. */
#define MERGE_FEATURES(merge)                                                                      \
    do {                                                                                           \
        if (v->kind == BN_VIEW_ROWS)                                                               \
            PARALLEL_RANGES(F, lo, hi, merge(v, ws, (size_t)lo, (size_t)hi););                     \
        else                                                                                       \
            PARALLEL_FOR(f, F, merge(v, ws, (size_t)f, (size_t)f + 1););                           \
    } while (0)

static void fast_batch_stats(const bn_view *v, const float *x, bn_workspace *ws, int threads) {
    const size_t F = v->features;
    if (v->kind == BN_VIEW_ROWS) {
        PARALLEL_FOR(t, bn_rows_tile_count(v, BN_ROWS_STRIP), {
            bn_rows_tile tl = bn_rows_tile_at(v, BN_ROWS_STRIP, (size_t)t);
            bn_rows_stats(v, x, ws, &tl);
        });
    } else {
        const size_t items = F * v->ch.chunks;
        PARALLEL_FOR(b, (items + PLANE_ITEMS_PER_BLOCK - 1) / PLANE_ITEMS_PER_BLOCK, {
            size_t t0 = (size_t)b * PLANE_ITEMS_PER_BLOCK;
            size_t t1 = t0 + PLANE_ITEMS_PER_BLOCK < items ? t0 + PLANE_ITEMS_PER_BLOCK : items;
            bn_planes_stats(v, x, ws, t0, t1);
        });
    }
    MERGE_FEATURES(merge_stats);
}

static void fast_backward_sums(const bn_view *v, const float *x, const bn_grad *g, bn_workspace *ws,
                               float *frozen_dx, int threads) {
    const size_t F = v->features;
    if (v->kind == BN_VIEW_ROWS) {
        const size_t width = bn_rows_backward_width(F);
        PARALLEL_FOR(t, bn_rows_tile_count(v, width), {
            bn_rows_tile tl = bn_rows_tile_at(v, width, (size_t)t);
            bn_rows_backward(v, x, g, frozen_dx, ws, &tl);
        });
    } else {
        const size_t items = F * v->ch.chunks;
        PARALLEL_FOR(b, (items + PLANE_ITEMS_PER_BLOCK - 1) / PLANE_ITEMS_PER_BLOCK, {
            size_t t0 = (size_t)b * PLANE_ITEMS_PER_BLOCK;
            size_t t1 = t0 + PLANE_ITEMS_PER_BLOCK < items ? t0 + PLANE_ITEMS_PER_BLOCK : items;
            bn_planes_backward(v, x, g, frozen_dx, ws, t0, t1);
        });
    }
    MERGE_FEATURES(merge_sums);
}

/* The element-wise passes go through the tensor in runs (rows, or planes)
 * handed out in blocks, one dispatched call per block; each thread takes a
 * contiguous share of blocks, so that it streams through one range of
 * memory. */
#define RUN_BLOCK_VALUES 4096 /* values per block: a call per 128-value row cost 10-20% */

typedef struct {
    size_t runs, len, per_block;
    long blocks;
} run_blocks;

static run_blocks run_blocks_of(const bn_view *v) {
    run_blocks b;
    b.runs = v->kind == BN_VIEW_ROWS ? v->n : v->n * v->features;
    b.len = v->kind == BN_VIEW_ROWS ? v->features : v->s;
    b.per_block = b.len >= RUN_BLOCK_VALUES ? 1 : RUN_BLOCK_VALUES / b.len;
    b.blocks = (long)((b.runs + b.per_block - 1) / b.per_block);
    return b;
}

/* A fused epilogue goes where it costs least. Runs of a multiple of 8
 * values (every row, or plane, fills whole mask bytes) take it in the
 * normalizing kernel, vector by vector, and y streams to memory from
 * registers. Other runs are normalized a block at a time into a staging
 * buffer in L1, and the epilogue writes y from there (writing y through the
 * cache and reading it back cost a read of y from memory); blocks of longer
 * runs (planes of more than 4096 values) normalize in place first. */
#define STAGE_VALUES RUN_BLOCK_VALUES

static void fast_normalize(const bn_view *v, const float *x, bn_workspace *ws, float *y,
                           const bn_epilogue *ep, int threads) {
    const run_blocks rb = run_blocks_of(v);
    const int stream = stream_outputs(v);
    const int direct = ep && rb.len % 8 == 0 && (!stream || STREAM_ALIGNED(y));
    const int staged = ep && !direct && rb.per_block * rb.len <= STAGE_VALUES;
    const bn_epilogue *kernel_ep = direct ? ep : NULL;
    if (v->kind == BN_VIEW_ROWS) bn_fold_mean_lo(v->features, ws);
    PARALLEL_RANGES(rb.blocks, lo, hi, {
        _Alignas(64) float stage[STAGE_VALUES];
        for (long b = lo; b < hi; b++) {
            size_t r0 = (size_t)b * rb.per_block;
            size_t r1 = r0 + rb.per_block < rb.runs ? r0 + rb.per_block : rb.runs;
            float *out = staged ? stage : y + r0 * rb.len;
            int stream_out = ep && !direct ? 0 : stream;
            if (v->kind == BN_VIEW_ROWS)
                bn_rows_normalize(v, x, ws, out, r0, r1, kernel_ep, stream_out);
            else
                bn_planes_normalize(v, x, ws, out, r0, r1, kernel_ep, stream_out);
            if (staged)
                bn_epilogue_from(ep, stage, y, r0 * rb.len, r1 * rb.len, stream);
            else if (ep && !direct)
                bn_epilogue_apply(ep, y, r0 * rb.len, r1 * rb.len);
        }
        if (stream) STREAM_FENCE();
    });
}

static void fast_backward_dx(const bn_view *v, const float *x, const bn_grad *g,
                             const bn_workspace *ws, float *dx, int threads) {
    const run_blocks rb = run_blocks_of(v);
    const int stream = stream_outputs(v);
    PARALLEL_RANGES(rb.blocks, lo, hi, {
        for (long b = lo; b < hi; b++) {
            size_t r0 = (size_t)b * rb.per_block;
            size_t r1 = r0 + rb.per_block < rb.runs ? r0 + rb.per_block : rb.runs;
            if (v->kind == BN_VIEW_ROWS)
                bn_rows_dx(v, x, g, ws, dx, r0, r1, stream);
            else
                bn_planes_dx(v, x, g, ws, dx, r0, r1, stream);
        }
        if (stream) STREAM_FENCE();
    });
}

const bn_passes bn_fast_passes = {fast_batch_stats, fast_normalize, fast_backward_sums,
                                  fast_backward_dx};
