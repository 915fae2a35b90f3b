/* The convolutions' matrix products (net/gemm.c) against a double sum over
 * ragged shapes: tiles of every width and height with rows and columns left
 * over, A as stored and transposed, strides wider than the rows, beta 0
 * (c not read: it holds NaN), 1 and 0.9, an empty sum, and the weight
 * gradient's product in both orientations. Each element must lie within the
 * error bound of its sum, |c - ref| <= (k + 2) 2^-24 (sum |a b| + |beta c|);
 * a term from a wrong row or column misses by far more. The columns past n
 * must stay untouched. The products that read A in place (nn_gemm_runs)
 * must give the bits of the same A gathered (and the strided ones, of the
 * weight gradient, lie within the bound). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "digest.h"
#include "filled.h"
#include "gemm.h"

#ifdef NN_TEST_NEEDS_AVX2
#define NEEDS_AVX2 1
#else
#define NEEDS_AVX2 0
#endif

#define GUARD 7 /* columns past n in each row of c */

static int failures, checked;
/* Every product's C: the 16- and 8-lane tiles must agree on it
 * (test_gemm_widths_identical). */
static unsigned long long digest = DIGEST_START;

static unsigned rng_state = 2024u;
static float *alloc(size_t count) { return filled_alloc(count, &rng_state); }

/* One product: at_b selects nn_gemm_at_b (A stored [k][m]); otherwise
 * a_transposed picks A's storage for nn_gemm. */
static void one_case(int m, int n, int k, int a_transposed, int at_b, float beta) {
    if (at_b) a_transposed = 1;
    size_t lda = (size_t)(a_transposed ? m : k) + 3, ldb = (size_t)n + 5, ldc = (size_t)n + GUARD;
    size_t a_rows = (size_t)(a_transposed ? k : m);
    float *a = alloc(a_rows * lda), *b = alloc((size_t)k * ldb), *c = alloc((size_t)m * ldc);
    float *c0 = alloc((size_t)m * ldc), *work = alloc((size_t)m * n);
    for (size_t i = 0; i < (size_t)m * ldc; i++) {
        if (beta == 0.0f && i % ldc < (size_t)n) c[i] = NAN;
        c0[i] = c[i];
    }
    if (at_b)
        nn_gemm_at_b(m, n, k, a, lda, b, ldb, beta, c, ldc, work);
    else
        nn_gemm(m, n, k, a, lda, a_transposed, b, ldb, beta, c, ldc);
    digest = digest_add(digest, c, (size_t)m * ldc);
    int bad = 0;
    for (int i = 0; i < m && !bad; i++) {
        for (int j = 0; j < n && !bad; j++) {
            double ref = 0.0, mag = 0.0;
            for (int p = 0; p < k; p++) {
                double aip = a_transposed ? a[(size_t)p * lda + i] : a[(size_t)i * lda + p];
                double t = aip * b[(size_t)p * ldb + j];
                ref += t, mag += fabs(t);
            }
            if (beta != 0.0f) {
                double t = (double)beta * c0[(size_t)i * ldc + j];
                ref += t, mag += fabs(t);
            }
            double got = c[(size_t)i * ldc + j], bound = (k + 2) * ldexp(1.0, -24) * mag;
            if (!(fabs(got - ref) <= bound)) {
                fprintf(stderr,
                        "FAIL gemm m=%d n=%d k=%d %s beta=%g: c[%d][%d] = %.9g, want %.9g\n", m, n,
                        k,
                        at_b           ? "at_b"
                        : a_transposed ? "A^T"
                                       : "A",
                        beta, i, j, got, ref);
                bad = 1;
            }
        }
        for (int j = n; j < (int)ldc && !bad; j++)
            if (memcmp(&c[(size_t)i * ldc + j], &c0[(size_t)i * ldc + j], sizeof(float))) {
                fprintf(stderr, "FAIL gemm m=%d n=%d k=%d: column %d past n written\n", m, n, k, j);
                bad = 1;
            }
    }
    failures += bad;
    checked++;
    free(a), free(b), free(c), free(c0), free(work);
}

/* |c - ref| within the bound of one_case for every element of the m x n C
 * (ldc apart) against the double sum of a [m][k] times b, beta c0. */
static int outside_bound(int m, int n, int k, const float *a, const float *b, size_t ldb,
                         float beta, const float *c0, const float *c, size_t ldc) {
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double ref = beta == 0.0f ? 0.0 : beta * (double)c0[i * ldc + j], mag = fabs(ref);
            for (int p = 0; p < k; p++) {
                double t = (double)a[(size_t)i * k + p] * b[(size_t)p * ldb + j];
                ref += t, mag += fabs(t);
            }
            if (!(fabs(c[i * ldc + j] - ref) <= (k + 2) * ldexp(1.0, -24) * mag)) return 1;
        }
    return 0;
}

/* A read in place (nn_gemm_runs): rows a_row apart in a source buffer, each
 * `runs` runs of len floats run_stride apart, against nn_gemm of the same
 * A gathered into an ordinary matrix: bit for bit where the runs have even
 * length (each element then the same chain of terms as nn_gemm's, even and
 * odd terms paired alike; an odd run leaves a term whose fusing an
 * unoptimized build may decide differently in the two copies), within the
 * bound otherwise. A run read from the wrong place, or terms summed in
 * another order, would show. */
static void runs_case(int m, int n, int runs, int len) {
    const size_t a_row = (size_t)len + 3, run_stride = (size_t)m * a_row + 5;
    const int k = runs * len;
    const size_t ldb = (size_t)n + 5, ldc = (size_t)n + GUARD;
    float *src = alloc(run_stride * (size_t)runs + 1), *b = alloc((size_t)k * ldb);
    float *a = alloc((size_t)m * k), *c = alloc((size_t)m * ldc), *want = alloc((size_t)m * ldc);
    for (int i = 0; i < m; i++)
        for (int s = 0; s < runs; s++)
            memcpy(a + (size_t)i * k + (size_t)s * len, src + i * a_row + s * run_stride,
                   (size_t)len * sizeof(float));
    memcpy(want, c, (size_t)m * ldc * sizeof(float));
    nn_gemm(m, n, k, a, (size_t)k, 0, b, ldb, 0.0f, want, ldc);
    nn_gemm_runs(m, n, runs, len, src, a_row, run_stride, b, ldb, c, ldc);
    digest = digest_add(digest, c, (size_t)m * ldc);
    checked++;
    int bad = len % 2 == 0 ? memcmp(c, want, (size_t)m * ldc * sizeof(float)) != 0
                           : outside_bound(m, n, k, a, b, ldb, 0.0f, NULL, c, ldc);
    for (int i = 0; i < m && !bad; i++)
        bad = memcmp(c + i * ldc + n, want + i * ldc + n, GUARD * sizeof(float)) != 0;
    if (bad) {
        fprintf(stderr, "FAIL runs m=%d n=%d runs=%d len=%d: %s\n", m, n, runs, len,
                len % 2 == 0 ? "not the bits of the gathered A" : "outside the bound");
        failures++;
    }
    free(src), free(b), free(a), free(c), free(want);
}

/* The weight gradient's product (nn_gemm_runs_strided): A(i, p) read with
 * rows a_row apart and each run's terms a_col apart, C accumulated with
 * beta; against a double sum within the bound of one_case, and, where runs
 * have even length, bit for bit against nn_gemm of the gathered A. */
static void strided_case(int m, int n, int runs, int len, size_t a_row, size_t a_col, float beta) {
    const int k = runs * len;
    const size_t run_stride = (size_t)len * a_col + (size_t)m * a_row + 3;
    const size_t ldb = (size_t)n + 5, ldc = (size_t)n + GUARD;
    float *src = alloc(run_stride * (size_t)runs + 1), *b = alloc((size_t)k * ldb);
    float *a = alloc((size_t)m * k), *c = alloc((size_t)m * ldc), *want = alloc((size_t)m * ldc);
    float *c0 = alloc((size_t)m * ldc);
    for (int i = 0; i < m; i++)
        for (int p = 0; p < k; p++)
            a[(size_t)i * k + p] =
                src[i * a_row + (size_t)(p / len) * run_stride + (size_t)(p % len) * a_col];
    memcpy(want, c, (size_t)m * ldc * sizeof(float));
    memcpy(c0, c, (size_t)m * ldc * sizeof(float));
    nn_gemm(m, n, k, a, (size_t)k, 0, b, ldb, beta, want, ldc);
    nn_gemm_runs_strided(m, n, runs, len, src, a_row, a_col, run_stride, b, ldb, beta, c, ldc);
    digest = digest_add(digest, c, (size_t)m * ldc);
    checked++;
    int bad = len % 2 == 0 ? memcmp(c, want, (size_t)m * ldc * sizeof(float)) != 0
                           : outside_bound(m, n, k, a, b, ldb, beta, c0, c, ldc);
    for (int i = 0; i < m && !bad; i++)
        bad = memcmp(c + i * ldc + n, c0 + i * ldc + n, GUARD * sizeof(float)) != 0;
    if (bad) {
        fprintf(stderr, "FAIL strided m=%d n=%d runs=%d len=%d a_col=%zu beta=%g\n", m, n, runs,
                len, a_col, (double)beta);
        failures++;
    }
    free(src), free(b), free(a), free(c), free(want), free(c0);
}

int main(void) {
    if (NEEDS_AVX2 && (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma"))) {
        printf("test_gemm: this CPU has no AVX2, skipped\n");
        return 77;
    }
    const int ms[] = {1, 2, 3, 5, 6, 7, 12, 13, 24, 25, 31, 50};
    const int ns[] = {1, 5, 15, 16, 17, 31, 32, 33, 48, 63, 64, 65, 80, 130, 144};
    const int ks[] = {0, 1, 2, 9, 17, 144, 300};
    const float betas[] = {0.0f, 1.0f, 0.9f};
    for (size_t i = 0; i < sizeof ms / sizeof *ms; i++)
        for (size_t j = 0; j < sizeof ns / sizeof *ns; j++)
            for (size_t p = 0; p < sizeof ks / sizeof *ks; p++) {
                float beta = betas[(i + j + p) % 3];
                one_case(ms[i], ns[j], ks[p], 0, 0, beta);
                one_case(ms[i], ns[j], ks[p], 1, 0, beta);
                one_case(ms[i], ns[j], ks[p], 1, 1, beta);
            }
    /* The convolutions' own shapes: forward, input gradient, weight gradient. */
    one_case(784, 16, 144, 0, 0, 0.0f);
    one_case(196, 144, 32, 0, 0, 0.0f);
    one_case(144, 16, 784, 1, 1, 0.9f);
    one_case(576, 64, 98, 1, 1, 1.0f);
    /* Rows of 3x3 convolutions (3 runs of 3 x channels) and of 1x1 ones. */
    const int run_ms[] = {1, 2, 5, 6, 7, 13, 14, 15, 28, 29};
    const int run_ns[] = {16, 32, 48, 64, 80, 128};
    for (size_t i = 0; i < sizeof run_ms / sizeof *run_ms; i++)
        for (size_t j = 0; j < sizeof run_ns / sizeof *run_ns; j++) {
            runs_case(run_ms[i], run_ns[j], 3, 6);
            runs_case(run_ms[i], run_ns[j], 3, 48);
            runs_case(run_ms[i], run_ns[j], 1, 16);
            runs_case(run_ms[i], run_ns[j] + 3, 1, 9); /* one run: any n, any length */
        }
    /* Channels by output pixels of one tap: rows 1 apart, pixels 1 or 2
     * channels' widths apart, a run per output row of 28, 14 or 7. */
    const int st_ms[] = {1, 2, 7, 16, 17, 32, 64};
    const int st_ns[] = {16, 32, 64, 96};
    for (size_t i = 0; i < sizeof st_ms / sizeof *st_ms; i++)
        for (size_t j = 0; j < sizeof st_ns / sizeof *st_ns; j++) {
            int m = st_ms[i], n = st_ns[j];
            strided_case(m, n, 28, 28, 1, (size_t)m, 0.0f);
            strided_case(m, n, 7, 7, 1, (size_t)2 * m, 1.0f);
            strided_case(m, n, 14, 14, 1, (size_t)m + 1, 0.9f);
        }
    if (failures) {
        fprintf(stderr, "test_gemm: %d of %d products wrong\n", failures, checked);
        return 1;
    }
    printf("test_gemm: %d products within the bound of their sums, digest %016llx\n", checked,
           digest);
    return 0;
}
