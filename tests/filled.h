/* Test data for the network's kernels: buffers filled from a linear
 * congruential generator with values in [-1.003, 1.003], each a multiple of
 * 1/997, so that products and sums are not exact in float by accident. The
 * generator's state is the including test's own. */
#ifndef BNORM_TEST_FILLED_H
#define BNORM_TEST_FILLED_H

#include <stdio.h>
#include <stdlib.h>

static inline float filled_draw(unsigned *state) {
    *state = *state * 1664525u + 1013904223u;
    return (float)((int)(*state >> 8) % 2001 - 1000) / 997.0f;
}

/* count floats (at least one allocated), or the test exits. */
static inline float *filled_alloc(size_t count, unsigned *state) {
    float *v = malloc((count ? count : 1) * sizeof(float));
    if (!v) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < count; i++)
        v[i] = filled_draw(state);
    return v;
}

#endif
