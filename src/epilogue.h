/* The fused ReLU and residual add (bnorm.h, "FUSED RELU AND RESIDUAL ADD")
 * on vectors of normalized values, for the kernels that apply them as they
 * normalize (rows.c, planes.c) and for the staged epilogue (fused.c). */
#ifndef BN_EPILOGUE_H
#define BN_EPILOGUE_H

#include <string.h>

#include "internal.h"
#include "simd.h"

/* The ReLU on the bits b of float lanes, with adds, ands and shifts only:
 * every dispatch level does those at any vector width, where a 16-lane
 * compare was split into scalar ones at the AVX2 level (and float
 * compares, which may trap on NaN, are not vectorized at all).
 *   POSITIVE_LANES  all ones where v > 0, i.e. 0 < b <= the bits of +inf:
 *                   t = b - 1 (unsigned) below 0x7f800000, which is the
 *                   sign bit of ~t & (t - 0x7f800000);
 *   NAN_LANES       all ones where b's magnitude is above +inf's.
 * relu(v) = v & (positive | nan): v > 0 keeps v; NaN stays NaN (its
 * feature's outputs are NaN, as everywhere in the library); everything
 * else, -0 included, is +0. ITYPE/UTYPE: the signed and unsigned lane
 * vectors of b's width. */
#define POSITIVE_LANES(b, ITYPE, UTYPE)                                                            \
    ((ITYPE)(~((UTYPE)(b)-1u) & (((UTYPE)(b)-1u) - 0x7f800000u)) >> 31)
#define NAN_LANES(b) ((0x7f800000 - ((b)&0x7fffffff)) >> 31)

/* The 16 values *vp at tensor offset o (a multiple of 8): + z, then the
 * ReLU, with the mask's bytes o / 8 and o / 8 + 1 written whole. (Vectors
 * go in and out through pointers: the baseline level's ABI has no 16-lane
 * registers to pass them in.) ep should point to a copy of the caller's
 * own: through a pointer that the mask's stores may alias, its fields were
 * loaded again for every vector. */
BN_INLINE void bn_epilogue16(const bn_epilogue *ep, vf *vp, size_t o) {
    vf v = *vp;
    if (ep->z) v += LD(ep->z + o);
    if (ep->relu) {
        vi b = (vi)v, pos = POSITIVE_LANES(b, vi, vu);
        if (ep->mask) {
            uint16_t bits = (uint16_t)LANE_SIGNS16(pos);
            memcpy(ep->mask + o / 8, &bits, 2); /* little-endian: lanes 0-7 first */
        }
        v = (vf)(b & (pos | NAN_LANES(b)));
    }
    *vp = v;
}

/* relu of the 8 float lanes whose bits are b, given their POSITIVE_LANES. */
#define RELU_BITS8(b, pos) ((v8f)((b) & ((pos) | NAN_LANES(b))))

/* The same on 8 values (one mask byte). (Compares of 8 lanes, float or
 * integer, were scalar code in the baseline x86-64 copy, whose fused
 * forward then took 1.9-5x as long: the bit tests serve every level.) */
BN_INLINE void bn_epilogue8(const bn_epilogue *ep, v8f *vp, size_t o) {
    v8f v = *vp;
    if (ep->z) v += LD8(ep->z + o);
    if (ep->relu) {
        v8i b = (v8i)v, pos = POSITIVE_LANES(b, v8i, v8u);
        if (ep->mask) ep->mask[o / 8] = (uint8_t)LANE_SIGNS8(pos);
        v = RELU_BITS8(b, pos);
    }
    *vp = v;
}

/* bn_epilogue8 on 16 values, as two vectors of 8 (lo at offset o, hi at
 * o + 8), with the mask's two bytes written in one store. */
BN_INLINE void bn_epilogue8x2(const bn_epilogue *ep, v8f *lo, v8f *hi, size_t o) {
    v8f a = *lo, b = *hi;
    if (ep->z) a += LD8(ep->z + o), b += LD8(ep->z + o + 8);
    if (ep->relu) {
        v8i ba = (v8i)a, bb = (v8i)b;
        v8i pa = POSITIVE_LANES(ba, v8i, v8u), pb = POSITIVE_LANES(bb, v8i, v8u);
        if (ep->mask) {
            uint16_t bits = (uint16_t)LANE_SIGNS16_HALVES(pa, pb);
            memcpy(ep->mask + o / 8, &bits, 2); /* little-endian: a's byte first */
        }
        a = RELU_BITS8(ba, pa), b = RELU_BITS8(bb, pb);
    }
    *lo = a, *hi = b;
}

/* AVX-512 has compares into mask registers, a 16-bit mask store and a
 * zeroing move: the ReLU and its mask in 4 instructions a vector, where the
 * portable lane arithmetic above takes about 16, which kept the fused
 * forward's normalizing loop from reaching the memory's rate
 * (docs/PERFORMANCE.md, "Fused BN + ReLU ...", latest round). The
 * kernels' dispatched copies are one C source compiled for every level, so
 * these forms live in functions of their own target, which the kernels call
 * where BN_K_RUNS(). Same bits: v > 0 (ordered) is
 * POSITIVE_LANES, the unordered compare NAN_LANES. */
#if BN_K

/* bn_epilogue16 in mask registers. */
BN_K_TARGET BN_INLINE void bn_epilogue16_k(const bn_epilogue *ep, vf *vp, size_t o) {
    vf v = *vp;
    if (ep->z) v += LD(ep->z + o);
    if (ep->relu) {
        const __m512 m = (__m512)v;
        const __mmask16 pos = _mm512_cmp_ps_mask(m, _mm512_setzero_ps(), _CMP_GT_OQ);
        if (ep->mask) memcpy(ep->mask + o / 8, &pos, 2); /* lane j is bit j */
        v = (vf)_mm512_maskz_mov_ps(pos | _mm512_cmp_ps_mask(m, m, _CMP_UNORD_Q), m);
    }
    *vp = v;
}

/* bn_epilogue8 in mask registers. */
BN_K_TARGET BN_INLINE void bn_epilogue8_k(const bn_epilogue *ep, v8f *vp, size_t o) {
    v8f v = *vp;
    if (ep->z) v += LD8(ep->z + o);
    if (ep->relu) {
        const __m256 m = (__m256)v;
        const __mmask8 pos = _mm256_cmp_ps_mask(m, _mm256_setzero_ps(), _CMP_GT_OQ);
        if (ep->mask) ep->mask[o / 8] = (uint8_t)pos;
        v = (v8f)_mm256_maskz_mov_ps(pos | _mm256_cmp_ps_mask(m, m, _CMP_UNORD_Q), m);
    }
    *vp = v;
}
#endif

/* The pieces of the fused ELEMENTWISE below: VL values a step with EPI16
 * the epilogue, and a run's last 8 values with EPI8; i_ and e_ are the
 * caller's index and copy of the epilogue. */
#define FUSED_STEPS16(out, len, o, stream, EXPR, EPI16, STS)                                       \
    do {                                                                                           \
        if (stream)                                                                                \
            for (; i_ + VL <= (len); i_ += VL) {                                                   \
                vf v_ = EXPR(LD_AT, i_);                                                           \
                EPI16(&e_, &v_, (o) + i_);                                                         \
                STS((out) + i_, v_);                                                               \
            }                                                                                      \
        else                                                                                       \
            for (; i_ + VL <= (len); i_ += VL) {                                                   \
                vf v_ = EXPR(LD_AT, i_);                                                           \
                EPI16(&e_, &v_, (o) + i_);                                                         \
                ST((out) + i_, v_);                                                                \
            }                                                                                      \
    } while (0)
#define FUSED_LAST8(out, len, o, stream, EXPR, EPI8)                                               \
    do {                                                                                           \
        if (i_ < (len)) {                                                                          \
            v8f h_ = EXPR(LD8_AT, i_);                                                             \
            EPI8(&e_, &h_, (o) + i_);                                                              \
            if (stream)                                                                            \
                ST_STREAM8((out) + i_, h_);                                                        \
            else                                                                                   \
                ST8((out) + i_, h_);                                                               \
        }                                                                                          \
    } while (0)

/* out[i] = the epilogue of EXPR(L, i) for i in [0, len), the run's first
 * value at tensor offset o: ELEMENTWISE's fused form, for runs whose values
 * fill whole mask bytes (o and len multiples of 8; with stream, out 16-byte
 * aligned). EXPR must also take LD8_AT: below AVX-512 (BN_WIDE_VECTORS) the
 * run goes 8 values at a time. */
#define ELEMENTWISE_FUSED(out, len, o, ep, stream, EXPR)                                           \
    do {                                                                                           \
        const bn_epilogue e_ = *(ep);                                                              \
        size_t i_ = 0;                                                                             \
        if (BN_WIDE_VECTORS()) FUSED_STEPS16(out, len, o, stream, EXPR, bn_epilogue16, ST_STREAM); \
        if (stream)                                                                                \
            for (; i_ + 16 <= (len); i_ += 16) {                                                   \
                v8f l_ = EXPR(LD8_AT, i_), h_ = EXPR(LD8_AT, i_ + 8);                              \
                bn_epilogue8x2(&e_, &l_, &h_, (o) + i_);                                           \
                ST_STREAM8((out) + i_, l_);                                                        \
                ST_STREAM8((out) + i_ + 8, h_);                                                    \
            }                                                                                      \
        else                                                                                       \
            for (; i_ + 16 <= (len); i_ += 16) {                                                   \
                v8f l_ = EXPR(LD8_AT, i_), h_ = EXPR(LD8_AT, i_ + 8);                              \
                bn_epilogue8x2(&e_, &l_, &h_, (o) + i_);                                           \
                ST8((out) + i_, l_);                                                               \
                ST8((out) + i_ + 8, h_);                                                           \
            }                                                                                      \
        FUSED_LAST8(out, len, o, stream, EXPR, bn_epilogue8);                                      \
    } while (0)

/* ELEMENTWISE_FUSED in AVX-512's mask registers, for functions of
 * BN_K_TARGET: the same runs, the same bits. */
#define ELEMENTWISE_FUSED_K(out, len, o, ep, stream, EXPR)                                         \
    do {                                                                                           \
        const bn_epilogue e_ = *(ep);                                                              \
        size_t i_ = 0;                                                                             \
        FUSED_STEPS16(out, len, o, stream, EXPR, bn_epilogue16_k, ST_STREAM_K);                    \
        FUSED_LAST8(out, len, o, stream, EXPR, bn_epilogue8_k);                                    \
    } while (0)

#endif
