/* One sample through a dense layer: the row-range GEMV of gemv.h. */
#include "gemv.h"

#include <string.h>

#include "simd.h"

/* Rows ahead to prefetch. The L2 streams a block of rows to a GEMV that
 * reads them in order at about two thirds of the rate it does when each row
 * is asked for 8 rows ahead (a 392 x 256 block from L2, one thread: 6700-6900
 * against 4700-6000 TSC ticks per call, mean of 2000). */
#define PREFETCH_ROWS 8

/* The sweeps at 16 lanes and at 8 (gemv_sweeps.h). */
#define BN_W 16
#include "gemv_sweeps.h"
#undef BN_W
#define BN_W 8
#include "gemv_sweeps.h"
#undef BN_W

BN_DISPATCH static void gemv_rows(const float *restrict w, int ldw, const float *restrict x, int k0,
                                  int k1, int n, float *restrict y) {
    if (BN_WIDE_VECTORS())
        gemv_rows_16(w, ldw, x, k0, k1, n, y);
    else
        gemv_rows_8(w, ldw, x, k0, k1, n, y);
}

/* The exported name calls the dispatched copy: clang emits the dispatch of
 * a target_clones function only where its own file calls it. */
void nn_gemv_rows(const float *w, int ldw, const float *x, int k0, int k1, int n, float *y) {
    gemv_rows(w, ldw, x, k0, k1, n, y);
}
