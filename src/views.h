/* The fast kernels of each memory view, on a range of work items of one
 * thread: planes.c (channels-first, a feature's values in contiguous runs)
 * and rows.c (a feature's values down a column). fast.c shares the items
 * among threads and merges the chunks' results. */
#ifndef BN_VIEWS_H
#define BN_VIEWS_H

#include "chunks.h"

/* PLANES: work items are (feature, chunk) pairs, bn_plane_item's order. */
/* part0 = chunk mean, part1 = chunk M2 of items [t0, t1). */
void bn_planes_stats(const bn_view *v, const float *x, bn_workspace *ws, size_t t0, size_t t1);
/* part0..2 = the chunk's sum(g), sum(g * (x - mean)), sum(x - mean), and g
 * to gr->g_out; with frozen_dx, dx = BN_DX_FROZEN in the same pass instead
 * of part2. */
void bn_planes_backward(const bn_view *v, const float *x, const bn_grad *gr, float *frozen_dx,
                        bn_workspace *ws, size_t t0, size_t t1);
/* y, or dx, for planes [p0, p1) (plane p is n * features + f). normalize
 * writes plane p0 at y[0] (the caller offsets y), so that it can also fill
 * a staging buffer; with ep, it applies the fused epilogue to each vector
 * as it goes (planes of a multiple of 8 values; with stream, y 16-byte
 * aligned). */
void bn_planes_normalize(const bn_view *v, const float *x, const bn_workspace *ws, float *y,
                         size_t p0, size_t p1, const bn_epilogue *ep, int stream);
void bn_planes_dx(const bn_view *v, const float *x, const bn_grad *gr, const bn_workspace *ws,
                  float *dx, size_t p0, size_t p1, int stream);

/* ROWS: work items are tiles (bn_rows_tile_at). */
/* Widest tile of the statistics: a strip of this many features. */
#define BN_ROWS_STRIP 256
/* The backward's tile width for rows of F features. */
size_t bn_rows_backward_width(size_t F);
/* Chunk mean and M2 of tile tl, in tiles BN_ROWS_STRIP wide. */
void bn_rows_stats(const bn_view *v, const float *x, bn_workspace *ws, const bn_rows_tile *tl);
/* Backward sums of tile tl (bn_rows_backward_width wide); with frozen_dx,
 * dx = BN_DX_FROZEN in the same pass instead of the third sum. */
void bn_rows_backward(const bn_view *v, const float *x, const bn_grad *gr, float *frozen_dx,
                      bn_workspace *ws, const bn_rows_tile *tl);
/* y, or dx, for rows [r0, r1). normalize takes ws->shift_folded and writes
 * row r0 at y[0] (the caller offsets y); with ep, as bn_planes_normalize
 * (rows of a multiple of 8 features). */
void bn_rows_normalize(const bn_view *v, const float *x, const bn_workspace *ws, float *y,
                       size_t r0, size_t r1, const bn_epilogue *ep, int stream);
void bn_rows_dx(const bn_view *v, const float *x, const bn_grad *gr, const bn_workspace *ws,
                float *dx, size_t r0, size_t r1, int stream);

#endif
