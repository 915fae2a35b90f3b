/* A minimal test harness: CHECK records a failure and goes on, so one run
 * reports every broken case; check_finish() prints the tally and gives the
 * exit status. */
#ifndef BNORM_TEST_CHECK_H
#define BNORM_TEST_CHECK_H

#include <stdio.h>
#include <stdlib.h>

static int check_passed, check_failed;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (cond) {                                                                                \
            check_passed++;                                                                        \
        } else {                                                                                   \
            check_failed++;                                                                        \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                   \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)

static inline int check_finish(void) {
    printf("%d passed, %d failed\n", check_passed, check_failed);
    return check_failed ? 1 : 0;
}

/* A test linked against a library built for one x86-64 level skips
 * (exit 77) on a CPU without that level. */
static inline void check_cpu_or_skip(void) {
#if defined(BNORM_TEST_NEEDS_AVX2) && defined(__x86_64__)
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) {
        printf("skipped: this CPU lacks AVX2 and FMA\n");
        exit(77);
    }
#endif
}

#endif
