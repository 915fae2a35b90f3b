/* How a view is cut into chunks, and how the caller's workspace is carved. */
#include <stdint.h>

#include "internal.h"

#define ALIGN 64

static size_t div_up(size_t a, size_t b) { return (a + b - 1) / b; }
static size_t align_up(size_t a) { return (a + ALIGN - 1) / ALIGN * ALIGN; }

bn_chunking bn_chunking_for(const bn_view *v) {
    bn_chunking ch = {0};
    if (v->kind == BN_VIEW_ROWS) {
        /* A block of 256 rows is at most 256 KiB per 256 features, so the
         * statistics' second pass over it hits L2, and float lane sums stay
         * short. */
        size_t rows = BN_ROWS_PER_BLOCK;
        ch.rows_per_block = rows;
        ch.chunks = div_up(v->n, rows);
        ch.segments = 1;
    } else if (v->s >= BN_CHUNK_VALUES) {
        ch.segments = div_up(v->s, BN_CHUNK_VALUES);
        ch.segment_len = div_up(v->s, ch.segments);
        ch.planes_per_chunk = 1;
        ch.chunks = v->n * ch.segments;
    } else {
        /* A plane of a useful length is a chunk of its own, so the kernels
         * can take planes in memory order; short planes are grouped, as
         * their per-chunk overhead would dominate. */
        ch.segments = 1;
        ch.segment_len = v->s;
        ch.planes_per_chunk = v->s >= BN_MIN_PLANE ? 1 : BN_CHUNK_VALUES / v->s;
        ch.chunks = div_up(v->n, ch.planes_per_chunk);
    }
    return ch;
}

/* The sizes were checked for overflow when the view was made. */
size_t bn_workspace_bytes(const bn_view *v) {
    size_t f = v->features;
    size_t parts = bn_chunking_for(v).chunks * f;
    return ALIGN + 5 * align_up(f * sizeof(float)) + 3 * align_up(f * sizeof(double)) +
           3 * align_up(parts * sizeof(double));
}

bn_workspace bn_workspace_carve(const bn_view *v, void *base) {
    size_t f = v->features;
    size_t parts = bn_chunking_for(v).chunks * f;
    char *p = (char *)base;
    p += (ALIGN - (uintptr_t)p % ALIGN) % ALIGN;
    bn_workspace ws;
    ws.mean = (float *)p, p += align_up(f * sizeof(float));
    ws.mean_lo = (float *)p, p += align_up(f * sizeof(float));
    ws.a = (float *)p, p += align_up(f * sizeof(float));
    ws.b = (float *)p, p += align_up(f * sizeof(float));
    ws.c = (float *)p, p += align_up(f * sizeof(float));
    ws.stat0 = (double *)p, p += align_up(f * sizeof(double));
    ws.stat1 = (double *)p, p += align_up(f * sizeof(double));
    ws.stat2 = (double *)p, p += align_up(f * sizeof(double));
    ws.part0 = (double *)p, p += align_up(parts * sizeof(double));
    ws.part1 = (double *)p, p += align_up(parts * sizeof(double));
    ws.part2 = (double *)p;
    return ws;
}
