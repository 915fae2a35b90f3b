/* The chunk geometry: how a view's values of each feature are cut into
 * chunks (internal.h), and where a chunk, a work item or a tile lies. */
#include "internal.h"

static size_t div_up(size_t a, size_t b) { return (a + b - 1) / b; }
static size_t min_size(size_t a, size_t b) { return a < b ? a : b; }

bn_chunking bn_chunking_for(const bn_view *v) {
    bn_chunking ch = {0};
    if (v->kind == BN_VIEW_ROWS) {
        ch.rows_per_block = BN_ROWS_PER_BLOCK;
        ch.chunks = div_up(v->n, BN_ROWS_PER_BLOCK);
        ch.segments = 1;
    } else if (v->s >= BN_CHUNK_VALUES) {
        ch.segments = div_up(v->s, BN_CHUNK_VALUES);
        ch.segment_len = div_up(v->s, ch.segments);
        ch.planes_per_chunk = 1;
        ch.chunks = v->n * ch.segments;
    } else {
        /* A plane of a useful length is a chunk of its own, so the kernels
         * can take planes in memory order. */
        ch.segments = 1;
        ch.segment_len = v->s;
        ch.planes_per_chunk = v->s >= BN_MIN_PLANE ? 1 : BN_CHUNK_VALUES / v->s;
        ch.chunks = div_up(v->n, ch.planes_per_chunk);
    }
    return ch;
}

bn_plane_chunk bn_plane_chunk_at(const bn_view *v, size_t j) {
    const bn_chunking *ch = &v->ch;
    bn_plane_chunk c;
    if (ch->segments > 1) {
        size_t seg = j % ch->segments;
        c.n0 = j / ch->segments;
        c.n1 = c.n0 + 1;
        c.s0 = seg * ch->segment_len;
        c.s1 = min_size(c.s0 + ch->segment_len, v->s);
    } else {
        c.n0 = j * ch->planes_per_chunk;
        c.n1 = min_size(c.n0 + ch->planes_per_chunk, v->n);
        c.s0 = 0;
        c.s1 = v->s;
    }
    return c;
}

double bn_chunk_count(const bn_view *v, size_t j) {
    if (v->kind == BN_VIEW_ROWS) {
        size_t r0 = j * v->ch.rows_per_block;
        return (double)min_size(v->n - r0, v->ch.rows_per_block);
    }
    bn_plane_chunk c = bn_plane_chunk_at(v, j);
    return (double)((c.n1 - c.n0) * (c.s1 - c.s0));
}

size_t bn_part_index(const bn_view *v, size_t f, size_t j) {
    return v->kind == BN_VIEW_ROWS ? j * v->features + f : f * v->ch.chunks + j;
}

void bn_plane_item(const bn_view *v, size_t t, size_t *f, size_t *j) {
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

bn_rows_tile bn_rows_tile_at(const bn_view *v, size_t width, size_t t) {
    const size_t fb = div_up(v->features, width);
    bn_rows_tile tl;
    tl.rb = t / fb;
    tl.f0 = t % fb * width;
    tl.w = min_size(v->features - tl.f0, width);
    tl.r0 = tl.rb * v->ch.rows_per_block;
    tl.rows = min_size(v->n - tl.r0, v->ch.rows_per_block);
    return tl;
}

size_t bn_rows_tile_count(const bn_view *v, size_t width) {
    return v->ch.chunks * div_up(v->features, width);
}
