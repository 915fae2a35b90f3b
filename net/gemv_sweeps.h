/* The sweeps of gemv.c, written once for vectors of BN_W lanes
 * (simd_width.h): gemv.c includes this file at 16 lanes (AVX-512's
 * registers) and at 8 (AVX2's) and runs the instance the running copy
 * holds in registers. Each output is one chain of multiply-adds in
 * increasing k at either width. No include guard, by design. */

#include "simd_width.h" /* the vocabulary of width BN_W */

/* Accumulators a sweep: at 16 lanes, 16 (256 outputs), as many as AVX-512
 * holds in registers next to the broadcast input; at 8 lanes, 12 (96
 * outputs) of AVX2's 16. */
#define W_SWEEP_VECTORS (BN_W == 16 ? 16 : 12)

/* y[j0, j0 + nv BN_W) over rows [k0, k1): nv chains side by side, each row
 * read front to back, the row PREFETCH_ROWS ahead asked for a line at a
 * time. */
BN_INLINE void WIDTH_NAME(gemv_sweep)(const float *restrict w, int ldw, const float *restrict x,
                                      int k0, int k1, int j0, int nv, float *restrict y) {
    VW acc[16];
    for (int v = 0; v < nv; v++)
        acc[v] = (VW){0};
    for (int k = k0; k < k1; k++) {
        const float *row = w + (size_t)k * ldw + j0;
        const float *ahead =
            w + (size_t)(k + PREFETCH_ROWS < k1 ? k + PREFETCH_ROWS : k) * ldw + j0;
        const VW xk = BROADCAST_W(x[k]);
        for (int v = 0; v < nv; v++) {
            if (BN_W * v % 16 == 0) __builtin_prefetch(ahead + BN_W * v);
            acc[v] += xk * LDW(row + BN_W * v);
        }
    }
    for (int v = 0; v < nv; v++)
        STW(y + j0 + BN_W * v, acc[v]);
}

BN_INLINE void WIDTH_NAME(gemv_rows)(const float *restrict w, int ldw, const float *restrict x,
                                     int k0, int k1, int n, float *restrict y) {
    int j0 = 0;
    for (; j0 + W_SWEEP_VECTORS * BN_W <= n; j0 += W_SWEEP_VECTORS * BN_W)
        WIDTH_NAME(gemv_sweep)(w, ldw, x, k0, k1, j0, W_SWEEP_VECTORS, y);
    /* Fewer columns left: four vectors at a time, then one. */
    for (; j0 + 4 * BN_W <= n; j0 += 4 * BN_W)
        WIDTH_NAME(gemv_sweep)(w, ldw, x, k0, k1, j0, 4, y);
    for (; j0 + BN_W <= n; j0 += BN_W)
        WIDTH_NAME(gemv_sweep)(w, ldw, x, k0, k1, j0, 1, y);
    /* The last rest < BN_W columns (a 10-class output layer is all of them
     * at 16 lanes): one vector a row, its lanes past n discarded, loaded
     * whole where the rows below keep the load inside the matrix and
     * copied for the last rows. Each lane is the same chain of
     * multiply-adds as a float loop. */
    if (j0 < n) {
        const int rest = n - j0, copied = (BN_W - rest + ldw - 1) / ldw;
        const int whole_end = k1 - copied > k0 ? k1 - copied : k0;
        VW acc = {0};
        int k = k0;
        for (; k < whole_end; k++)
            acc += BROADCAST_W(x[k]) * LDW(w + (size_t)k * ldw + j0);
        for (; k < k1; k++) {
            float row[BN_W] = {0};
            memcpy(row, w + (size_t)k * ldw + j0, (size_t)rest * sizeof(float));
            acc += BROADCAST_W(x[k]) * LDW(row);
        }
        float out[BN_W];
        STW(out, acc);
        memcpy(y + j0, out, (size_t)rest * sizeof(float));
    }
}

#undef W_SWEEP_VECTORS
