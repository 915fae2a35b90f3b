/* The project's SIMD vocabulary: 16-lane vector types, loads and stores,
 * lane reductions in a fixed order, non-temporal stores, and the runtime
 * dispatch attribute, for every file whose loops touch tensor data (the
 * library's kernels and the network's element-wise layers alike). */
#ifndef BN_SIMD_H
#define BN_SIMD_H

#include <stdint.h>
#include <string.h>
#if defined(__x86_64__) || defined(__SSE__)
#include <immintrin.h>
#define BN_HAVE_STREAM 1
#endif

/* Runtime dispatch: the loops that touch tensor data are compiled three
 * times (AVX-512, AVX2, and baseline x86-64) and the loader picks the best
 * copy for the CPU it runs on, so one build runs everywhere and is fast
 * where it can be. The library is built with -ffp-contract=off, and every
 * reduction has a fixed order of lanes, so the copies round identically and
 * results do not depend on the CPU either. BNORM_NO_DISPATCH (or another
 * architecture) builds a single copy. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(BNORM_NO_DISPATCH)
#define BN_DISPATCH __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define BN_DISPATCH
#endif
#define BN_INLINE static inline __attribute__((always_inline))

/* Whether the copy that runs holds 16 lanes in one register (AVX-512). Where
 * it does not, GCC carries a 16-lane vector as two or four registers through
 * arithmetic, but one that is reinterpreted between float and integer lanes
 * (the fused ReLU's mask and select) went through memory: loops that do so
 * take 8 lanes at a time there. A run-time test in the dispatched build
 * (the copy the loader picked is the one for this CPU), a constant in a
 * single-copy build. */
#if defined(BNORM_WIDE_VECTORS) /* the tests' choice, to run both forms anywhere */
#define BN_WIDE_VECTORS() BNORM_WIDE_VECTORS
#elif defined(__x86_64__) && defined(__GNUC__) && !defined(BNORM_NO_DISPATCH)
#define BN_WIDE_VECTORS() __builtin_cpu_supports("avx512f")
#elif defined(__AVX512F__)
#define BN_WIDE_VECTORS() 1
#else
#define BN_WIDE_VECTORS() 0
#endif

/* 16 floats: one AVX-512 register, two AVX2 registers or four SSE ones,
 * whichever copy of a function is running. Loads and stores are unaligned.
 * A scalar operand of an arithmetic operator is broadcast to every lane, so
 * one expression serves a vector and its scalar tail alike. */
#define VL 16
typedef float vf __attribute__((vector_size(64), aligned(4), __may_alias__));
typedef int32_t vi __attribute__((vector_size(64), aligned(4), __may_alias__));
#define LD(p)            (*(const vf *)(const void *)(p))
#define ST(p, v)         (*(vf *)(void *)(p) = (v))
#define SPLAT(s)         ((vf){0} + (s))
#define TO_LANES(dst, v) memcpy((dst), &(v), sizeof(vf))
#define LANE_INDEX       ((vi){0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15})
/* All ones in the last `rem` lanes (j >= VL - rem), zeros before: the
 * sign of j - (VL - rem), spread. (The comparison LANE_INDEX >= VL - rem
 * gives the same bits, but crashed GCC 12 under -fsanitize in one inlining
 * context.) */
#define LAST_LANES(rem) (~((LANE_INDEX - (int32_t)(VL - (rem))) >> 31))

/* 8 lanes: one mask byte's worth. */
typedef float v8f __attribute__((vector_size(32), aligned(4), __may_alias__));
typedef int32_t v8i __attribute__((vector_size(32), aligned(4), __may_alias__));
#define LD8(p)    (*(const v8f *)(const void *)(p))
#define ST8(p, v) (*(v8f *)(void *)(p) = (v))
typedef uint32_t vu __attribute__((vector_size(64), aligned(4), __may_alias__));
typedef uint32_t v8u __attribute__((vector_size(32), aligned(4), __may_alias__));

/* Bit j = the sign bit of lane j of a lane mask (lanes all ones or all
 * zeros), for 8 lanes (v8i) and 16 (vi): on x86, the lanes packed to bytes
 * with saturation and their signs gathered by one SSE2 movemask, which
 * every x86-64 level has (a horizontal OR of weighted lanes took three
 * times the instructions). */
#if defined(__x86_64__) || defined(__SSE2__)
#define QUARTER_(m, q)                                                                             \
    ((__m128i)__builtin_shufflevector((m), (m), 4 * q, 4 * q + 1, 4 * q + 2, 4 * q + 3))
#define LANE_SIGNS8(m)                                                                             \
    ((unsigned)_mm_movemask_epi8(                                                                  \
         _mm_packs_epi16(_mm_packs_epi32(QUARTER_(m, 0), QUARTER_(m, 1)), _mm_setzero_si128())) &  \
     0xffu)
#define LANE_SIGNS16(m)                                                                            \
    ((unsigned)_mm_movemask_epi8(                                                                  \
        _mm_packs_epi16(_mm_packs_epi32(QUARTER_(m, 0), QUARTER_(m, 1)),                           \
                        _mm_packs_epi32(QUARTER_(m, 2), QUARTER_(m, 3)))))
/* LANE_SIGNS16 of the lanes lo (0-7) and hi (8-15), two v8i. */
#define LANE_SIGNS16_HALVES(lo, hi)                                                                \
    ((unsigned)_mm_movemask_epi8(                                                                  \
        _mm_packs_epi16(_mm_packs_epi32(QUARTER_(lo, 0), QUARTER_(lo, 1)),                         \
                        _mm_packs_epi32(QUARTER_(hi, 0), QUARTER_(hi, 1)))))
#else
static inline unsigned lane_signs_(const int32_t *lanes, int n) {
    unsigned bits = 0;
    for (int j = 0; j < n; j++)
        bits |= (unsigned)(lanes[j] < 0) << j;
    return bits;
}
#define LANE_SIGNS8(m)  lane_signs_((const int32_t *)&(m), 8)
#define LANE_SIGNS16(m) lane_signs_((const int32_t *)&(m), 16)
#define LANE_SIGNS16_HALVES(lo, hi)                                                                \
    (lane_signs_((const int32_t *)&(lo), 8) | lane_signs_((const int32_t *)&(hi), 8) << 8)
#endif

/* The 16 bits [o, o + 16) of a bit mask (bit o of byte o / 8), as bits 0-15;
 * reads only the bytes that hold them. */
static inline uint32_t mask_bits16(const uint8_t *mask, size_t o) {
    const uint8_t *b = mask + o / 8;
    const unsigned shift = (unsigned)(o % 8);
    uint32_t w = (uint32_t)b[0] | (uint32_t)b[1] << 8;
    if (shift) w |= (uint32_t)b[2] << 16;
    return (w >> shift) & 0xffffu;
}
/* The same for the 32 bits [o, o + 32): four bytes, or five when o is not a
 * multiple of 8. */
static inline uint32_t mask_bits32(const uint8_t *mask, size_t o) {
    const uint8_t *b = mask + o / 8;
    const unsigned shift = (unsigned)(o % 8);
    uint32_t w = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    if (shift) w = w >> shift | (uint32_t)b[4] << (32 - shift);
    return w;
}
/* The same for the 8 bits [o, o + 8), as bits 0-7: one byte, or two when o
 * is not a multiple of 8 (the mask's last byte may hold o's bit). */
static inline uint32_t mask_bits8(const uint8_t *mask, size_t o) {
    const uint8_t *b = mask + o / 8;
    const unsigned shift = (unsigned)(o % 8);
    uint32_t w = b[0];
    if (shift) w |= (uint32_t)b[1] << 8;
    return (w >> shift) & 0xffu;
}
/* v with the lanes whose bit of `bits` is clear set to +0: lane j's bit
 * shifted into its sign and spread over the lane. Not a comparison: GCC
 * turns a comparison into an AVX-512 mask register and folds the load of v
 * into a masked load, and masked loads streaming from memory ran at 0.55x
 * the speed of plain ones on Zen 5 (docs/PERFORMANCE.md, "Zen 5: masked
 * loads and line-wide stores"). */
#define LANE_TO_SIGN ((vu){31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16})
#define KEEP_LANES(v, bits)                                                                        \
    ((vf)((vi)(v) & ((vi)(((vu){0} + (uint32_t)(bits)) << LANE_TO_SIGN) >> 31)))
/* The same on 8 lanes, with bits 0-7 of `bits`. */
#define KEEP_LANES8(v, bits)                                                                       \
    ((v8f)((v8i)(v) &                                                                              \
           ((v8i)(((v8u){0} + (uint32_t)(bits)) << (v8u){31, 30, 29, 28, 27, 26, 25, 24}) >> 31)))
/* Bit o of a mask. */
#define MASK_BIT(mask, o) (((mask)[(o) / 8] >> ((o) % 8)) & 1u)

/* The lanes of v summed in a fixed tree order (lane j + lane j + 8, then
 * j + 4, j + 2, j + 1), in double (LANE_SUM) or float (LANE_SUM_FLOAT):
 * short, so that per-plane reductions stay cheap, and written with
 * whole-vector halves so that it compiles to a few shuffles and adds at
 * every dispatch level. */
typedef float vf8 __attribute__((vector_size(32)));
typedef float vf4 __attribute__((vector_size(16)));
typedef float vf2 __attribute__((vector_size(8)));
typedef double vd8 __attribute__((vector_size(64)));
typedef double vd4 __attribute__((vector_size(32)));
typedef double vd2 __attribute__((vector_size(16)));
#define LANE_SUM(v, out)                                                                           \
    do {                                                                                           \
        vf8 l_ = __builtin_shufflevector((v), (v), 0, 1, 2, 3, 4, 5, 6, 7);                        \
        vf8 h_ = __builtin_shufflevector((v), (v), 8, 9, 10, 11, 12, 13, 14, 15);                  \
        vd8 a_ = __builtin_convertvector(l_, vd8) + __builtin_convertvector(h_, vd8);              \
        vd4 b_ = __builtin_shufflevector(a_, a_, 0, 1, 2, 3) +                                     \
                 __builtin_shufflevector(a_, a_, 4, 5, 6, 7);                                      \
        vd2 c_ = __builtin_shufflevector(b_, b_, 0, 1) + __builtin_shufflevector(b_, b_, 2, 3);    \
        (out) = c_[0] + c_[1];                                                                     \
    } while (0)
/* LANE_SUM of the 16-lane vector whose lanes 0-7 are lo and 8-15 hi. */
#define LANE_SUM_HALVES(lo, hi, out)                                                               \
    do {                                                                                           \
        vd8 a_ = __builtin_convertvector((lo), vd8) + __builtin_convertvector((hi), vd8);          \
        vd4 b_ = __builtin_shufflevector(a_, a_, 0, 1, 2, 3) +                                     \
                 __builtin_shufflevector(a_, a_, 4, 5, 6, 7);                                      \
        vd2 c_ = __builtin_shufflevector(b_, b_, 0, 1) + __builtin_shufflevector(b_, b_, 2, 3);    \
        (out) = c_[0] + c_[1];                                                                     \
    } while (0)
#define LANE_SUM_FLOAT(v, out)                                                                     \
    LANE_SUM_FLOAT_HALVES(__builtin_shufflevector((v), (v), 0, 1, 2, 3, 4, 5, 6, 7),               \
                          __builtin_shufflevector((v), (v), 8, 9, 10, 11, 12, 13, 14, 15), out)
#define LANE_SUM_FLOAT_HALVES(lo, hi, out)                                                         \
    do {                                                                                           \
        vf8 a_ = (lo) + (hi);                                                                      \
        vf4 b_ = __builtin_shufflevector(a_, a_, 0, 1, 2, 3) +                                     \
                 __builtin_shufflevector(a_, a_, 4, 5, 6, 7);                                      \
        vf2 c_ = __builtin_shufflevector(b_, b_, 0, 1) + __builtin_shufflevector(b_, b_, 2, 3);    \
        (out) = c_[0] + c_[1];                                                                     \
    } while (0)

/* Non-temporal stores of 16 floats at a 16-byte aligned p, as four SSE
 * stores that the write-combining buffers merge into whole lines (SSE
 * stores exist at every dispatch level); ST_STREAM8 stores 8 (a v8f),
 * ST_STREAM4 4 floats from an array. STREAM_FENCE orders them before the
 * stores of another thread. */
#ifdef BN_HAVE_STREAM
typedef union {
    vf v;
    __m128 q[VL / 4];
} vf_parts;
#define ST_STREAM(p, value)                                                                        \
    do {                                                                                           \
        vf_parts u_;                                                                               \
        u_.v = (value);                                                                            \
        for (int q_ = 0; q_ < VL / 4; q_++)                                                        \
            _mm_stream_ps((p) + 4 * q_, u_.q[q_]);                                                 \
    } while (0)
typedef union {
    v8f v;
    __m128 q[2];
} v8f_parts;
#define ST_STREAM8(p, value)                                                                       \
    do {                                                                                           \
        v8f_parts u_;                                                                              \
        u_.v = (value);                                                                            \
        _mm_stream_ps((p), u_.q[0]);                                                               \
        _mm_stream_ps((p) + 4, u_.q[1]);                                                           \
    } while (0)
#define STREAM_FENCE()    _mm_sfence()
#define STREAM_ALIGNED(p) ((uintptr_t)(p) % 16 == 0)
#define ST_STREAM4(p, v4) _mm_stream_ps((p), _mm_loadu_ps(v4))
#else
#define ST_STREAM(p, value)  ST(p, value)
#define ST_STREAM8(p, value) ST8(p, value)
#define ST_STREAM4(p, v4)    memcpy((p), (v4), 4 * sizeof(float))
#define STREAM_FENCE()       ((void)0)
#define STREAM_ALIGNED(p)    1
#endif

/* AVX-512's own instructions, for the loops they pay in: the dispatched
 * copies are one C source compiled for every level, which cannot hold
 * AVX-512 intrinsics, so those loops run in functions of their own target
 * (BN_K_TARGET), which a dispatched copy calls where BN_K_RUNS(). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(BNORM_NO_DISPATCH)
#define BN_K        1
#define BN_K_RUNS() (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl"))
#elif defined(__AVX512F__) && defined(__AVX512VL__)
#define BN_K        1
#define BN_K_RUNS() 1
#else
#define BN_K 0
#endif
#if BN_K
#define BN_K_TARGET __attribute__((target("avx512f,avx512vl")))
/* ST_STREAM in BN_K_TARGET functions: a vector that fills a line goes out in
 * one 64-byte non-temporal store. Four 16-byte ones cost the passes that
 * stream their output 5-10% of their time on Zen 5 (docs/PERFORMANCE.md,
 * "Zen 5: masked loads and line-wide stores"). */
#define ST_STREAM_K(p, value)                                                                      \
    do {                                                                                           \
        float *p_ = (p);                                                                           \
        if ((uintptr_t)p_ % 64 == 0)                                                               \
            _mm512_stream_ps(p_, (__m512)(value));                                                 \
        else                                                                                       \
            ST_STREAM(p_, value);                                                                  \
    } while (0)
#endif

/* out[i] = EXPR(L, i) for i in [0, len), where EXPR is a macro that loads
 * its operands at i with L: LD_AT (16 lanes) or LOAD_AT (one value). The
 * formula is thus written once and serves the vectors and the scalar tail
 * alike. With `stream`, what can be is stored non-temporally: a scalar head
 * up to 16-byte alignment, whole vectors, then groups of 4. */
#define LD_AT(p, i)   LD((p) + (i))
#define LOAD_AT(p, i) ((p)[i])
/* The same loads of p, masked by the bits of a mask that stand for offset
 * o + i (+0 where the bit is clear). */
#define LD_AT_MASKED(p, mask, o, i)   KEEP_LANES(LD((p) + (i)), mask_bits16((mask), (o) + (i)))
#define LOAD_AT_MASKED(p, mask, o, i) (MASK_BIT((mask), (o) + (i)) ? (p)[i] : 0.0f)
#define LD8_AT_MASKED(p, mask, o, i)  KEEP_LANES8(LD8((p) + (i)), mask_bits8((mask), (o) + (i)))
/* ELEMENTWISE with W lanes a step: L_AT loads them, ST_W and ST_STREAM_W
 * store them. */
#define ELEMENTWISE_BY(out, len, stream, EXPR, W, L_AT, ST_W, ST_STREAM_W)                         \
    do {                                                                                           \
        size_t i_ = 0;                                                                             \
        if (stream) {                                                                              \
            for (; i_ < (len) && !STREAM_ALIGNED((out) + i_); i_++)                                \
                (out)[i_] = EXPR(LOAD_AT, i_);                                                     \
            for (; i_ + (W) <= (len); i_ += (W))                                                   \
                ST_STREAM_W((out) + i_, EXPR(L_AT, i_));                                           \
            for (; i_ + 4 <= (len); i_ += 4) {                                                     \
                float t_[4];                                                                       \
                for (size_t j_ = 0; j_ < 4; j_++)                                                  \
                    t_[j_] = EXPR(LOAD_AT, i_ + j_);                                               \
                ST_STREAM4((out) + i_, t_);                                                        \
            }                                                                                      \
        }                                                                                          \
        for (; i_ + (W) <= (len); i_ += (W))                                                       \
            ST_W((out) + i_, EXPR(L_AT, i_));                                                      \
        for (; i_ < (len); i_++)                                                                   \
            (out)[i_] = EXPR(LOAD_AT, i_);                                                         \
    } while (0)
/* 16 values a step where the copy that runs holds them in one register
 * (BN_WIDE_VECTORS), 8 elsewhere: below AVX-512, a 16-lane value stored
 * to memory went through the stack, and one reinterpreted between float
 * and integer lanes (a masked load) too. EXPR thus takes LD_AT, LD8_AT
 * (8 lanes) and LOAD_AT; the same value at every i either way. */
#define LD8_AT(p, i) LD8((p) + (i))
#define ELEMENTWISE(out, len, stream, EXPR)                                                        \
    do {                                                                                           \
        if (BN_WIDE_VECTORS())                                                                     \
            ELEMENTWISE_BY(out, len, stream, EXPR, VL, LD_AT, ST, ST_STREAM);                      \
        else                                                                                       \
            ELEMENTWISE_BY(out, len, stream, EXPR, 8, LD8_AT, ST8, ST_STREAM8);                    \
    } while (0)
/* ELEMENTWISE in BN_K_TARGET functions. */
#define ELEMENTWISE_K(out, len, stream, EXPR)                                                      \
    ELEMENTWISE_BY(out, len, stream, EXPR, VL, LD_AT, ST, ST_STREAM_K)

#endif
