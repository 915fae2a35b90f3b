/* One sample through a dense layer: the row-range GEMV of gemv.h. */
#include "gemv.h"

#include <string.h>

#include "simd.h"

/* Sixteen accumulators (256 outputs) are as many as AVX-512 holds in
 * registers next to the broadcast input; each weight row is then read once,
 * front to back, which is the order the L2 streams it fastest. A wider layer
 * takes several sweeps of 256 columns. */
#define SWEEP 256

BN_DISPATCH static void gemv_rows(const float *restrict w, int ldw, const float *restrict x, int k0,
                                  int k1, int n, float *restrict y) {
    int j0 = 0;
    for (; j0 + SWEEP <= n; j0 += SWEEP) {
        vf acc[SWEEP / VL] = {{0}};
        for (int k = k0; k < k1; k++) {
            const float *row = w + (size_t)k * ldw + j0;
            vf xk = SPLAT(x[k]);
            for (int v = 0; v < SWEEP / VL; v++)
                acc[v] += xk * LD(row + VL * v);
        }
        memcpy(y + j0, acc, sizeof acc);
    }
    /* Fewer than 256 columns left: whole vectors one at a time, then floats
     * (a 10-class output layer is all floats: ten independent sums). */
    for (; j0 + VL <= n; j0 += VL) {
        vf acc = {0};
        for (int k = k0; k < k1; k++)
            acc += SPLAT(x[k]) * LD(w + (size_t)k * ldw + j0);
        memcpy(y + j0, &acc, sizeof acc);
    }
    if (j0 < n) {
        float acc[16] = {0};
        int rest = n - j0;
        for (int k = k0; k < k1; k++) {
            const float *row = w + (size_t)k * ldw + j0;
            for (int j = 0; j < rest; j++)
                acc[j] += x[k] * row[j];
        }
        memcpy(y + j0, acc, (size_t)rest * sizeof(float));
    }
}

/* The exported name calls the dispatched copy: clang emits the dispatch of
 * a target_clones function only where its own file calls it. */
void nn_gemv_rows(const float *w, int ldw, const float *x, int k0, int k1, int n, float *y) {
    gemv_rows(w, ldw, x, k0, k1, n, y);
}
