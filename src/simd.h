/* The library's SIMD vocabulary: 16-lane vector types, loads and stores,
 * and the runtime dispatch attribute, for every file whose loops touch
 * tensor data. */
#ifndef BNORM_SIMD_H
#define BNORM_SIMD_H

#include <stdint.h>
#include <string.h>

/* Runtime dispatch: the loops that touch tensor data are compiled three
 * times (AVX-512, AVX2, and baseline x86-64) and the loader picks the best
 * copy for the CPU it runs on, so one build runs everywhere and is fast
 * where it can be. The library is built with -ffp-contract=off, and every
 * reduction has a fixed order of lanes, so the copies round identically and
 * results do not depend on the CPU either. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(BNORM_NO_DISPATCH)
#define BN_DISPATCH __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define BN_DISPATCH
#endif
#define BN_INLINE static inline __attribute__((always_inline))

/* 16 floats: one AVX-512 register, two AVX2 registers or four SSE ones,
 * whichever copy of a function is running. Loads and stores are unaligned. */
#define VL 16
typedef float vf __attribute__((vector_size(64), aligned(4), __may_alias__));
typedef int32_t vi __attribute__((vector_size(64), aligned(4), __may_alias__));
#define LD(p)            (*(const vf *)(const void *)(p))
#define ST(p, v)         (*(vf *)(void *)(p) = (v))
#define SPLAT(s)         ((vf){0} + (s))
#define TO_LANES(dst, v) memcpy((dst), &(v), sizeof(vf))
#define LANE_INDEX       ((vi){0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15})
/* Lane j's bit, 1 << j: a lane mask to and from 16 bits. */
#define LANE_BIT ((vi){1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768})

#endif
