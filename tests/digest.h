/* A digest of a test's outputs, for tests whose builds must agree bit for
 * bit (tests/same_digest.cmake compares the "digest" lines they print). */
#ifndef BNORM_TEST_DIGEST_H
#define BNORM_TEST_DIGEST_H

#include <stddef.h>

#define DIGEST_START 14695981039346656037ULL

/* FNV-1a over the bytes of n floats. */
static inline unsigned long long digest_add(unsigned long long h, const float *p, size_t n) {
    const unsigned char *b = (const unsigned char *)p;
    for (size_t i = 0; i < n * 4; i++)
        h = (h ^ b[i]) * 1099511628211ULL;
    return h;
}

#endif
