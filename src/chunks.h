/* Chunk geometry: where chunk j of a feature, work item t and tile t lie
 * (internal.h says how a view is cut). Inline: the kernels ask once per
 * plane or chunk, and the merges once per chunk and feature. */
#ifndef BN_CHUNKS_H
#define BN_CHUNKS_H

#include "internal.h"

static inline size_t bn_div_up(size_t a, size_t b) { return (a + b - 1) / b; }
static inline size_t bn_min_size(size_t a, size_t b) { return a < b ? a : b; }

/* Chunk j of a feature in the PLANES view: planes [n0, n1), values [s0,
 * s1) of each. */
typedef struct {
    size_t n0, n1, s0, s1;
} bn_plane_chunk;

/* Tile t of the ROWS view in tiles `width` features wide: rows [r0, r0 +
 * rows) of row block rb, features [f0, f0 + w). */
typedef struct {
    size_t rb, r0, rows, f0, w;
} bn_rows_tile;

/* Values in chunk j of any feature: bn_chunk_count. Where chunk j of
 * feature f keeps its partial results: bn_part_index. Work item t of the
 * PLANES view as (feature f, chunk j), numbered in memory order when a
 * chunk is a plane or part of one, so that each thread streams through a
 * contiguous range: bn_plane_item. */

static inline bn_plane_chunk bn_plane_chunk_at(const bn_view *v, size_t j) {
    const bn_chunking *ch = &v->ch;
    bn_plane_chunk c;
    if (ch->segments > 1) {
        size_t seg = j % ch->segments;
        c.n0 = j / ch->segments;
        c.n1 = c.n0 + 1;
        c.s0 = seg * ch->segment_len;
        c.s1 = bn_min_size(c.s0 + ch->segment_len, v->s);
    } else {
        c.n0 = j * ch->planes_per_chunk;
        c.n1 = bn_min_size(c.n0 + ch->planes_per_chunk, v->n);
        c.s0 = 0;
        c.s1 = v->s;
    }
    return c;
}

static inline double bn_chunk_count(const bn_view *v, size_t j) {
    if (v->kind == BN_VIEW_ROWS) {
        size_t r0 = j * v->ch.rows_per_block;
        return (double)bn_min_size(v->n - r0, v->ch.rows_per_block);
    }
    bn_plane_chunk c = bn_plane_chunk_at(v, j);
    return (double)((c.n1 - c.n0) * (c.s1 - c.s0));
}

static inline size_t bn_part_index(const bn_view *v, size_t f, size_t j) {
    return v->kind == BN_VIEW_ROWS ? j * v->features + f : f * v->ch.chunks + j;
}

static inline void bn_plane_item(const bn_view *v, size_t t, size_t *f, size_t *j) {
    const bn_chunking *ch = &v->ch;
    if (ch->planes_per_chunk == 1) {
        size_t seg = t % ch->segments, p = t / ch->segments;
        *f = p % v->features;
        *j = p / v->features * ch->segments + seg;
    } else {
        *f = t / ch->chunks;
        *j = t % ch->chunks;
    }
}

static inline bn_rows_tile bn_rows_tile_at(const bn_view *v, size_t width, size_t t) {
    const size_t fb = bn_div_up(v->features, width);
    bn_rows_tile tl;
    tl.rb = t / fb;
    tl.f0 = t % fb * width;
    tl.w = bn_min_size(v->features - tl.f0, width);
    tl.r0 = tl.rb * v->ch.rows_per_block;
    tl.rows = bn_min_size(v->n - tl.r0, v->ch.rows_per_block);
    return tl;
}

static inline size_t bn_rows_tile_count(const bn_view *v, size_t width) {
    return v->ch.chunks * bn_div_up(v->features, width);
}

#endif
