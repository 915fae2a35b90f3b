/* How a view's values of each feature are cut into chunks (internal.h);
 * chunks.h says where a chunk, a work item or a tile lies. */
#include "chunks.h"

bn_chunking bn_chunking_for(const bn_view *v) {
    bn_chunking ch = {0};
    if (v->kind == BN_VIEW_ROWS) {
        ch.rows_per_block = BN_ROWS_PER_BLOCK;
        ch.chunks = bn_div_up(v->n, BN_ROWS_PER_BLOCK);
        ch.segments = 1;
    } else if (v->s >= BN_CHUNK_VALUES) {
        ch.segments = bn_div_up(v->s, BN_CHUNK_VALUES);
        ch.segment_len = bn_div_up(v->s, ch.segments);
        ch.planes_per_chunk = 1;
        ch.chunks = v->n * ch.segments;
    } else {
        /* A plane of a useful length is a chunk of its own, so the kernels
         * can take planes in memory order. */
        ch.segments = 1;
        ch.segment_len = v->s;
        ch.planes_per_chunk = v->s >= BN_MIN_PLANE ? 1 : BN_CHUNK_VALUES / v->s;
        ch.chunks = bn_div_up(v->n, ch.planes_per_chunk);
    }
    return ch;
}
