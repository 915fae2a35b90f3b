/* Plain streaming loops over tensors larger than the cache: what this
 * machine's memory delivers to the passes of a batch norm, pass by pass.
 * bench_passes and bench_fused time them beside the library's calls, in the
 * same rounds, as rooflines.
 *
 * Each stream moves the traffic of one kind of pass: read one tensor (the
 * statistics), read two (the backward sums), read one and write one (the
 * normalization), read two and write one (dx), read two and write two (dx
 * and dz), and a plain copy. Outputs are non-temporal stores, as the
 * library's large outputs are; where the CPU has AVX-512 a line goes out in
 * one 64-byte store, the library's own form there (on Zen 5, four 16-byte
 * stores per line took 5-20% longer). One core's loads from memory run at a
 * different rate than its reads-with-writes, so a pass's roofline is the
 * stream of its own traffic, not a copy.
 *
 * The fused ReLU's passes carry its mask too (bit i of byte i / 8 for value
 * i, the library's form): the forward's streams write the bits of y > 0 and
 * y through them, the backward's keep dy where the bit is set. Where the CPU
 * has AVX-512 they do it in mask registers, the library's own form there.
 * Header-only, for the benchmarks. */
#ifndef BNORM_BENCH_STREAMS_H
#define BNORM_BENCH_STREAMS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

typedef float stream_v16 __attribute__((vector_size(64), aligned(4), __may_alias__));
typedef int32_t stream_vi16 __attribute__((vector_size(64), aligned(4), __may_alias__));
typedef uint32_t stream_vu16 __attribute__((vector_size(64), aligned(4), __may_alias__));
#define STREAM_LD(p) (*(const stream_v16 *)(const void *)(p))

/* The mask's 16 bits for values [i, i + 16), and their store. */
static inline uint32_t stream_bits16(const uint8_t *m, size_t i) {
    uint16_t b;
    memcpy(&b, m + i / 8, 2);
    return b;
}
static inline void stream_put_bits16(uint8_t *m, size_t i, uint32_t bits) {
    uint16_t b = (uint16_t)bits;
    memcpy(m + i / 8, &b, 2);
}
/* v where its lane's bit is set, +0 elsewhere; and the bits of *v > 0. */
#define STREAM_KEEP(v, bits)                                                                       \
    ((stream_v16)((stream_vi16)(v) &                                                               \
                  ((stream_vi16)(((stream_vu16){0} + (uint32_t)(bits))                             \
                                 << (stream_vu16){31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20,  \
                                                  19, 18, 17, 16}) >>                              \
                   31)))
static inline uint32_t stream_positive_bits(const stream_v16 *v) {
    uint32_t bits = 0;
    for (int j = 0; j < 16; j++)
        bits |= (uint32_t)((*v)[j] > 0.0f) << j;
    return bits;
}

#if defined(__x86_64__) && defined(__GNUC__)
#define STREAMS_DISPATCH                                                                           \
    __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#define STREAM_STORE_QUARTERS(p, v)                                                                \
    do {                                                                                           \
        union {                                                                                    \
            stream_v16 w;                                                                          \
            __m128 q[4];                                                                           \
        } u_ = {(v)};                                                                              \
        for (int k_ = 0; k_ < 4; k_++)                                                             \
            _mm_stream_ps((p) + 4 * k_, u_.q[k_]);                                                 \
    } while (0)
#define STREAM_STORE_LINE(p, v) _mm512_stream_ps((p), (__m512)(v))
#define STREAM_FENCE()          _mm_sfence()
#define STREAM_LINES            1
#define STREAM_LINE_TARGET      __attribute__((target("avx512f")))
/* STREAM_KEEP and stream_positive_bits in mask registers. The empty asm
 * keeps v a register, so that the load stays a plain one rather than
 * becoming a masked load (slower from memory on Zen 5). */
STREAM_LINE_TARGET static inline stream_v16 stream_keep_line(stream_v16 v, uint32_t bits) {
    __m512 r = (__m512)v;
    __asm__("" : "+v"(r));
    return (stream_v16)_mm512_maskz_mov_ps((__mmask16)bits, r);
}
STREAM_LINE_TARGET static inline uint32_t stream_positive_line(const stream_v16 *v) {
    return _mm512_cmp_ps_mask((__m512)*v, _mm512_setzero_ps(), _CMP_GT_OQ);
}
#else
#define STREAMS_DISPATCH
#define STREAM_STORE_QUARTERS(p, v) (*(stream_v16 *)(void *)(p) = (v))
#define STREAM_FENCE()              ((void)0)
#define STREAM_LINES                0
#endif

typedef enum {
    STREAM_READ1,
    STREAM_READ2,
    STREAM_COPY,
    STREAM_READ1_WRITE1,
    STREAM_READ2_WRITE1,
    STREAM_READ2_WRITE2,
    STREAM_READ1_WRITE1_MASK,   /* + the mask written */
    STREAM_READ2_WRITE1_MASK,   /* + the mask written */
    STREAM_READ2_MASKED,        /* + the mask read */
    STREAM_READ2_WRITE1_MASKED, /* + the mask read */
    STREAM_READ2_WRITE2_MASKED, /* + the mask read */
    STREAM_KINDS
} stream_kind;

/* The reading streams, on values [i0, i1) (multiples of 64): four
 * independent sums, so that no add waits on the one before. */
STREAMS_DISPATCH static float stream_read1(const float *x, size_t i0, size_t i1) {
    stream_v16 a = {0}, b = {0}, c = {0}, d = {0};
    for (size_t i = i0; i < i1; i += 64)
        a += STREAM_LD(x + i), b += STREAM_LD(x + i + 16), c += STREAM_LD(x + i + 32),
            d += STREAM_LD(x + i + 48);
    a += b + c + d;
    return a[0] + a[15];
}
STREAMS_DISPATCH static float stream_read2(const float *x, const float *dy, size_t i0, size_t i1) {
    stream_v16 a = {0}, b = {0}, c = {0}, d = {0};
    for (size_t i = i0; i < i1; i += 32)
        a += STREAM_LD(x + i) * STREAM_LD(dy + i), b += STREAM_LD(dy + i),
            c += STREAM_LD(x + i + 16) * STREAM_LD(dy + i + 16), d += STREAM_LD(dy + i + 16);
    a += b + c + d;
    return a[0] + a[15];
}

/* The writing streams, and those that go through the mask, once per store
 * form (STORE; KEEP and POSITIVE as STREAM_KEEP and stream_positive_bits). */
#define WRITING_STREAMS(SUFFIX, ATTR, STORE, KEEP, POSITIVE)                                       \
    ATTR static void stream_copy##SUFFIX(const float *x, float *y, size_t i0, size_t i1) {         \
        for (size_t i = i0; i < i1; i += 16)                                                       \
            STORE(y + i, STREAM_LD(x + i));                                                        \
    }                                                                                              \
    ATTR static void stream_read1_write1##SUFFIX(const float *x, float *y, size_t i0, size_t i1) { \
        for (size_t i = i0; i < i1; i += 16)                                                       \
            STORE(y + i, STREAM_LD(x + i) * 1.5f + 0.5f);                                          \
    }                                                                                              \
    ATTR static void stream_read2_write1##SUFFIX(const float *x, const float *dy, float *dx,       \
                                                 size_t i0, size_t i1) {                           \
        for (size_t i = i0; i < i1; i += 16)                                                       \
            STORE(dx + i, STREAM_LD(x + i) * 1.5f + STREAM_LD(dy + i) * 0.5f + 0.25f);             \
    }                                                                                              \
    ATTR static void stream_read2_write2##SUFFIX(const float *x, const float *dy, float *dx,       \
                                                 float *dz, size_t i0, size_t i1) {                \
        for (size_t i = i0; i < i1; i += 16) {                                                     \
            STORE(dx + i, STREAM_LD(x + i) * 1.5f + STREAM_LD(dy + i) * 0.5f + 0.25f);             \
            STORE(dz + i, STREAM_LD(dy + i) * 0.5f);                                               \
        }                                                                                          \
    }                                                                                              \
    ATTR static void stream_read1_write1_mask##SUFFIX(const float *x, float *y, uint8_t *m,        \
                                                      size_t i0, size_t i1) {                      \
        for (size_t i = i0; i < i1; i += 16) {                                                     \
            stream_v16 v = STREAM_LD(x + i) * 1.5f - 0.5f;                                         \
            uint32_t bits = POSITIVE(&v);                                                          \
            stream_put_bits16(m, i, bits);                                                         \
            STORE(y + i, KEEP(v, bits));                                                           \
        }                                                                                          \
    }                                                                                              \
    ATTR static void stream_read2_write1_mask##SUFFIX(const float *x, const float *z, float *y,    \
                                                      uint8_t *m, size_t i0, size_t i1) {          \
        for (size_t i = i0; i < i1; i += 16) {                                                     \
            stream_v16 v = STREAM_LD(x + i) * 1.5f + STREAM_LD(z + i) - 0.5f;                      \
            uint32_t bits = POSITIVE(&v);                                                          \
            stream_put_bits16(m, i, bits);                                                         \
            STORE(y + i, KEEP(v, bits));                                                           \
        }                                                                                          \
    }                                                                                              \
    ATTR static float stream_read2_masked##SUFFIX(const float *x, const float *dy,                 \
                                                  const uint8_t *m, size_t i0, size_t i1) {        \
        stream_v16 a = {0}, b = {0}, c = {0}, d = {0};                                             \
        for (size_t i = i0; i < i1; i += 32) {                                                     \
            stream_v16 g0 = KEEP(STREAM_LD(dy + i), stream_bits16(m, i)),                          \
                       g1 = KEEP(STREAM_LD(dy + i + 16), stream_bits16(m, i + 16));                \
            a += STREAM_LD(x + i) * g0, b += g0, c += STREAM_LD(x + i + 16) * g1, d += g1;         \
        }                                                                                          \
        a += b + c + d;                                                                            \
        return a[0] + a[15];                                                                       \
    }                                                                                              \
    ATTR static void stream_read2_write1_masked##SUFFIX(                                           \
        const float *x, const float *dy, const uint8_t *m, float *dx, size_t i0, size_t i1) {      \
        for (size_t i = i0; i < i1; i += 16)                                                       \
            STORE(dx + i, STREAM_LD(x + i) * 1.5f +                                                \
                              KEEP(STREAM_LD(dy + i), stream_bits16(m, i)) * 0.5f + 0.25f);        \
    }                                                                                              \
    ATTR static void stream_read2_write2_masked##SUFFIX(const float *x, const float *dy,           \
                                                        const uint8_t *m, float *dx, float *dz,    \
                                                        size_t i0, size_t i1) {                    \
        for (size_t i = i0; i < i1; i += 16) {                                                     \
            stream_v16 g = KEEP(STREAM_LD(dy + i), stream_bits16(m, i));                           \
            STORE(dx + i, STREAM_LD(x + i) * 1.5f + g * 0.5f + 0.25f);                             \
            STORE(dz + i, g);                                                                      \
        }                                                                                          \
    }

WRITING_STREAMS(, STREAMS_DISPATCH, STREAM_STORE_QUARTERS, STREAM_KEEP, stream_positive_bits)
#if STREAM_LINES
WRITING_STREAMS(_lines, STREAM_LINE_TARGET, STREAM_STORE_LINE, stream_keep_line,
                stream_positive_line)
#endif

static volatile float stream_sink;

/* Stream k over n values (a multiple of 64, buffers 64-byte aligned), a
 * contiguous share of whole lines per thread: x and dy are read, out and
 * out2 written; mask (n / 8 bytes) read or written by the kinds that carry
 * it. */
static void stream_run(stream_kind k, const float *x, const float *dy, float *out, float *out2,
                       uint8_t *mask, size_t n, int threads) {
#ifdef _OPENMP
#pragma omp parallel num_threads(threads) if (threads > 1)
#endif
    {
        size_t t = 0, nt = 1;
#ifdef _OPENMP
        t = (size_t)omp_get_thread_num(), nt = (size_t)omp_get_num_threads();
#endif
        size_t blocks = n / 64, i0 = blocks * t / nt * 64, i1 = blocks * (t + 1) / nt * 64;
        int lines = 0;
#if STREAM_LINES
        lines = __builtin_cpu_supports("avx512f");
#endif
        switch (k) {
        case STREAM_READ1: stream_sink = stream_read1(x, i0, i1); break;
        case STREAM_READ2: stream_sink = stream_read2(x, dy, i0, i1); break;
#if STREAM_LINES
#define STREAM_PICK(f, ...) (lines ? f##_lines(__VA_ARGS__) : f(__VA_ARGS__))
#else
#define STREAM_PICK(f, ...) ((void)lines, f(__VA_ARGS__))
#endif
        case STREAM_COPY: STREAM_PICK(stream_copy, x, out, i0, i1); break;
        case STREAM_READ1_WRITE1: STREAM_PICK(stream_read1_write1, x, out, i0, i1); break;
        case STREAM_READ2_WRITE1: STREAM_PICK(stream_read2_write1, x, dy, out, i0, i1); break;
        case STREAM_READ2_WRITE2: STREAM_PICK(stream_read2_write2, x, dy, out, out2, i0, i1); break;
        case STREAM_READ1_WRITE1_MASK:
            STREAM_PICK(stream_read1_write1_mask, x, out, mask, i0, i1);
            break;
        case STREAM_READ2_WRITE1_MASK:
            STREAM_PICK(stream_read2_write1_mask, x, dy, out, mask, i0, i1);
            break;
        case STREAM_READ2_MASKED:
            stream_sink = STREAM_PICK(stream_read2_masked, x, dy, mask, i0, i1);
            break;
        case STREAM_READ2_WRITE1_MASKED:
            STREAM_PICK(stream_read2_write1_masked, x, dy, mask, out, i0, i1);
            break;
        default: STREAM_PICK(stream_read2_write2_masked, x, dy, mask, out, out2, i0, i1); break;
#undef STREAM_PICK
        }
        STREAM_FENCE();
    }
}

#endif
