/* The vocabulary of one vector width, for loops written once and compiled
 * at two: a file defines BN_W (16 or 8) and includes this header, then the
 * code written in it; it may include it again with the other width.
 *
 * Why two widths: a 16-lane vector that lives from one iteration of a loop
 * to the next (a sum) has no register below AVX-512, and GCC kept such
 * sums in memory, moving each through general registers: the AVX2 copy of
 * the statistics pass read 4 GB/s from cache. At 8 lanes the same sums live
 * in AVX2 registers. The code keeps the shape of the 16-lane form either
 * way: a 16-lane value is PARTS vectors of BN_W lanes (part h holds lanes
 * h * BN_W ...), and the lane reductions add the parts in LANE_SUM's order,
 * so both widths give the same bits.
 *
 *   VW, VWI            the float and int32 vectors of BN_W lanes
 *   LDW, STW           unaligned load and store
 *   LDW_MASKED(p, mask, o)    LDW(p) with +0 in the lanes whose bit of the mask
 *                             (bits o, o + 1, ...) is clear
 *   KEEP_PART(v, bits16, h)   part h of KEEP_LANES(v16, bits16) for v = part h of v16
 *   KEEP_W(v, bits), MASK_BITS_W(b)   KEEP_LANES of BN_W lanes, and the BN_W
 *                      mask bits of the whole bytes from b
 *   LAST_LANES_PART(rem, h)   part h of LAST_LANES(rem)
 *   LANE_SUM_PARTS(a, out), LANE_SUM_FLOAT_PARTS(a, out)   LANE_SUM and
 *                      LANE_SUM_FLOAT of the 16-lane value held in a[PARTS]
 *   BROADCAST_W(s)     every lane s, as an initializer (SPLAT adds s to a zero
 *                      vector, an addition per broadcast)
 *   WIDTH_NAME(f)      f with the width appended: one name per instance */
#include "simd.h"

#undef VW
#undef VWI
#undef PARTS
#undef LDW
#undef STW
#undef LDW_MASKED
#undef KEEP_PART
#undef KEEP_W
#undef MASK_BITS_W
#undef LANE_INDEX_W
#undef LAST_LANES_PART
#undef LANE_SUM_PARTS
#undef LANE_SUM_FLOAT_PARTS
#undef BROADCAST_W
#undef WIDTH_NAME

#if BN_W == 16
#define VW                           vf
#define VWI                          vi
#define LDW(p)                       LD(p)
#define STW(p, v)                    ST(p, v)
#define LDW_MASKED(p, mask, o)       LD_AT_MASKED(p, mask, o, 0)
#define KEEP_PART(v, bits16, h)      KEEP_LANES(v, bits16)
#define KEEP_W(v, bits)              KEEP_LANES(v, bits)
#define MASK_BITS_W(b)               ((uint32_t)(b)[0] | (uint32_t)(b)[1] << 8)
#define LANE_INDEX_W                 LANE_INDEX
#define LANE_SUM_PARTS(a, out)       LANE_SUM((a)[0], out)
#define LANE_SUM_FLOAT_PARTS(a, out) LANE_SUM_FLOAT((a)[0], out)
#define BROADCAST_W(s)                                                                             \
    ((vf){(s), (s), (s), (s), (s), (s), (s), (s), (s), (s), (s), (s), (s), (s), (s), (s)})
#define WIDTH_NAME(f) f##_16
#elif BN_W == 8
#define VW                           v8f
#define VWI                          v8i
#define LDW(p)                       LD8(p)
#define STW(p, v)                    ST8(p, v)
#define LDW_MASKED(p, mask, o)       LD8_AT_MASKED(p, mask, o, 0)
#define KEEP_PART(v, bits16, h)      KEEP_LANES8(v, (bits16) >> (8 * (h)))
#define KEEP_W(v, bits)              KEEP_LANES8(v, bits)
#define MASK_BITS_W(b)               ((uint32_t)(b)[0])
#define LANE_INDEX_W                 ((v8i){0, 1, 2, 3, 4, 5, 6, 7})
#define LANE_SUM_PARTS(a, out)       LANE_SUM_HALVES((a)[0], (a)[1], out)
#define LANE_SUM_FLOAT_PARTS(a, out) LANE_SUM_FLOAT_HALVES((a)[0], (a)[1], out)
#define BROADCAST_W(s)               ((v8f){(s), (s), (s), (s), (s), (s), (s), (s)})
#define WIDTH_NAME(f)                f##_8
#else
#error "BN_W must be 16 or 8"
#endif
#define PARTS (VL / BN_W)
#define LAST_LANES_PART(rem, h)                                                                    \
    (~(((LANE_INDEX_W + (int32_t)((h)*BN_W)) - (int32_t)(VL - (rem))) >> 31))
