/* The element-wise steps that fuse a ReLU and a residual add with batch
 * norm (bnorm.h, "FUSED RELU AND RESIDUAL ADD"), on ranges of y: the
 * forward's epilogue for runs whose values do not fill whole mask bytes
 * (the kernels apply it themselves to the others, epilogue.h), and the
 * masking pass of the split-phase fused backward, whose first phase hands
 * the masked gradient to the caller. (The backward's kernels read dy
 * through the mask themselves: planes.c, rows.c.) */
#include <stdint.h>

#include "epilogue.h"

#ifdef _OPENMP
#include <omp.h>
#endif

/* relu(v): v > 0 keeps v; NaN stays NaN (its feature's outputs are NaN, as
 * everywhere in the library); everything else, -0 included, is +0. */
static inline float relu(float v) { return v > 0.0f ? v : (v == v ? 0.0f : v); }

/* Bits [b0, b1) of a mask byte (0 <= b0 < b1 <= 8) set from bits, the
 * others untouched. Atomic: the neighbouring range, on another thread, owns
 * the other bits of a byte its range shares with this one. */
static void put_bits(uint8_t *byte, unsigned b0, unsigned b1, unsigned bits) {
    unsigned own = ((1u << (b1 - b0)) - 1u) << b0;
    __atomic_fetch_and(byte, (uint8_t)~own, __ATOMIC_RELAXED);
    __atomic_fetch_or(byte, (uint8_t)(bits & own), __ATOMIC_RELAXED);
}

/* The ReLU epilogue on elements [k0, k1) of y, all within one mask byte,
 * from src (src[k - k0] for element k); their bits go in with put_bits. */
static void partial_byte(const bn_epilogue *ep, const float *src, float *y, size_t k0, size_t k1) {
    unsigned bits = 0;
    for (size_t k = k0; k < k1; k++) {
        float v = ep->z ? src[k - k0] + ep->z[k] : src[k - k0];
        bits |= (unsigned)(v > 0.0f) << (k % 8);
        y[k] = relu(v);
    }
    if (ep->mask)
        put_bits(ep->mask + k0 / 8, (unsigned)(k0 % 8), (unsigned)((k1 - 1) % 8 + 1), bits);
}

/* Elements [o0, o1) of y from src (src[o - o0] for element o; src may be
 * y + o0): y = relu(src + z) or src + z or relu(src); with a mask, bit o
 * of it = (src + z > 0). Whole mask bytes are plain stores. */
BN_DISPATCH static void epilogue_range(const bn_epilogue *ep, const float *src, float *y, size_t o0,
                                       size_t o1, int stream) {
    const float *restrict z = ep->z;
    if (!ep->relu) {
        for (size_t o = o0; o < o1; o++)
            y[o] = src[o - o0] + z[o];
        return;
    }
    size_t o = o0;
    /* The head: up to the first byte boundary. */
    if (o % 8 != 0) {
        size_t end = (o / 8 + 1) * 8 < o1 ? (o / 8 + 1) * 8 : o1;
        partial_byte(ep, src, y, o, end);
        o = end;
    }
    /* Whole bytes, 8 values (one byte) at a time. */
    stream = stream && STREAM_ALIGNED(y + o);
    const bn_epilogue e = *ep;
    for (; o + 8 <= o1; o += 8) {
        v8f r = LD8(src + (o - o0));
        bn_epilogue8(&e, &r, o);
        if (stream)
            ST_STREAM8(y + o, r);
        else
            ST8(y + o, r);
    }
    if (o < o1) partial_byte(ep, src + (o - o0), y, o, o1); /* the tail */
}

void bn_epilogue_apply(const bn_epilogue *ep, float *y, size_t o0, size_t o1) {
    epilogue_range(ep, y + o0, y, o0, o1, 0);
}

void bn_epilogue_from(const bn_epilogue *ep, const float *src, float *y, size_t o0, size_t o1,
                      int stream) {
    epilogue_range(ep, src, y, o0, o1, stream);
}

/* out[o] = dy[o] where bit o of mask is set, else 0, for o in [o0, o1)
 * (o0 a multiple of 8). */
BN_DISPATCH static void mask_range(const float *dy, const uint8_t *restrict mask, float *out,
                                   size_t o0, size_t o1) {
    size_t o = o0;
    for (; o + 8 <= o1; o += 8) {
        v8i keep = ((v8i){0} + mask[o / 8]) & (v8i){1, 2, 4, 8, 16, 32, 64, 128};
        ST8(out + o, (v8f)((v8i)LD8(dy + o) & (keep != 0)));
    }
    for (; o < o1; o++)
        out[o] = (mask[o / 8] >> (o % 8)) & 1u ? dy[o] : 0.0f;
}

void bn_mask_gradient(const float *dy, const uint8_t *mask, float *out, size_t total, int threads) {
    /* Ranges of whole mask bytes, so that no two threads share one. */
    const size_t bytes = (total + 7) / 8;
#ifdef _OPENMP
#pragma omp parallel num_threads(threads) if (threads > 1)
    {
        size_t t = (size_t)omp_get_thread_num(), nt = (size_t)omp_get_num_threads();
        size_t b0 = bytes * t / nt, b1 = bytes * (t + 1) / nt;
        size_t o1 = b1 * 8 < total ? b1 * 8 : total;
        if (b0 * 8 < o1) mask_range(dy, mask, out, b0 * 8, o1);
    }
#else
    (void)threads, (void)bytes;
    mask_range(dy, mask, out, 0, total);
#endif
}
