/* One sample through a dense layer: the row-range GEMV of gemv.h. */
#include "gemv.h"

#include <string.h>

#include "simd.h"

/* Sixteen accumulators (256 outputs) are as many as AVX-512 holds in
 * registers next to the broadcast input; each weight row is then read once,
 * front to back. A wider layer takes several sweeps of 256 columns. */
#define SWEEP 256

/* Rows ahead to prefetch. The L2 streams a block of rows to a GEMV that
 * reads them in order at about two thirds of the rate it does when each row
 * is asked for 8 rows ahead (a 392 x 256 block from L2, one thread: 6700-6900
 * against 4700-6000 TSC ticks per call, mean of 2000). */
#define PREFETCH_ROWS 8

BN_DISPATCH static void gemv_rows(const float *restrict w, int ldw, const float *restrict x, int k0,
                                  int k1, int n, float *restrict y) {
    int j0 = 0;
    for (; j0 + SWEEP <= n; j0 += SWEEP) {
        vf acc[SWEEP / VL] = {{0}};
        for (int k = k0; k < k1; k++) {
            const float *row = w + (size_t)k * ldw + j0;
            const float *ahead =
                w + (size_t)(k + PREFETCH_ROWS < k1 ? k + PREFETCH_ROWS : k) * ldw + j0;
            vf xk = SPLAT(x[k]);
            for (int v = 0; v < SWEEP / VL; v++) {
                __builtin_prefetch(ahead + VL * v);
                acc[v] += xk * LD(row + VL * v);
            }
        }
        memcpy(y + j0, acc, sizeof acc);
    }
    /* Fewer than 256 columns left: whole vectors one at a time. */
    for (; j0 + VL <= n; j0 += VL) {
        vf acc = {0};
        for (int k = k0; k < k1; k++)
            acc += SPLAT(x[k]) * LD(w + (size_t)k * ldw + j0);
        memcpy(y + j0, &acc, sizeof acc);
    }
    /* The last rest < 16 columns (a 10-class output layer is all of them):
     * one vector a row, its lanes past n discarded, loaded whole where the
     * rows below keep the load inside the matrix and copied for the last
     * rows. Each lane is the same chain of multiply-adds as a float loop. */
    if (j0 < n) {
        const int rest = n - j0, copied = (VL - rest + ldw - 1) / ldw;
        const int whole_end = k1 - copied > k0 ? k1 - copied : k0;
        vf acc = {0};
        int k = k0;
        for (; k < whole_end; k++)
            acc += SPLAT(x[k]) * LD(w + (size_t)k * ldw + j0);
        for (; k < k1; k++) {
            float row[VL] = {0};
            memcpy(row, w + (size_t)k * ldw + j0, (size_t)rest * sizeof(float));
            acc += SPLAT(x[k]) * LD(row);
        }
        float out[VL];
        TO_LANES(out, acc);
        memcpy(y + j0, out, (size_t)rest * sizeof(float));
    }
}

/* The exported name calls the dispatched copy: clang emits the dispatch of
 * a target_clones function only where its own file calls it. */
void nn_gemv_rows(const float *w, int ldw, const float *x, int k0, int k1, int n, float *y) {
    gemv_rows(w, ldw, x, k0, k1, n, y);
}
