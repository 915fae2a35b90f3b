/* A small, seedable generator (splitmix64) so runs are reproducible. */
#ifndef NN_RNG_H
#define NN_RNG_H

#include <math.h>
#include <stdint.h>

typedef struct {
    uint64_t s;
} nn_rng;

static inline void nn_rng_seed(nn_rng *r, uint64_t seed) { r->s = seed ^ 0x9E3779B97F4A7C15ULL; }

static inline uint64_t nn_rng_next(nn_rng *r) {
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* Uniform in [0, 1). */
static inline double nn_rng_uniform(nn_rng *r) { return (double)(nn_rng_next(r) >> 11) * 0x1p-53; }

static inline double nn_rng_normal(nn_rng *r) {
    double u1 = nn_rng_uniform(r), u2 = nn_rng_uniform(r);
    return sqrt(-2.0 * log(1.0 - u1)) * cos(6.283185307179586 * u2);
}

/* Uniform integer in [0, n). */
static inline uint64_t nn_rng_below(nn_rng *r, uint64_t n) { return nn_rng_next(r) % n; }

#endif
