/* The kernels' threading: loops and regions that fork only for more than
 * one thread. A region entered with one thread (an `if` clause) still costs
 * the OpenMP runtime about a microsecond, more than the whole of a small
 * batch's work. The variable `threads` must be in scope. */
#ifndef BN_PARALLEL_H
#define BN_PARALLEL_H

#ifdef _OPENMP
#include <omp.h>
/* for (i = 0; i < count; i++) body, iterations shared as schedule(static). */
#define PARALLEL_FOR(i, count, ...)                                                                \
    do {                                                                                           \
        const long n_ = (long)(count);                                                             \
        if (threads > 1) {                                                                         \
            _Pragma("omp parallel for schedule(static) num_threads(threads)") for (long i = 0;     \
                                                                                   i < n_; i++) {  \
                __VA_ARGS__                                                                        \
            }                                                                                      \
        } else {                                                                                   \
            for (long i = 0; i < n_; i++) {                                                        \
                __VA_ARGS__                                                                        \
            }                                                                                      \
        }                                                                                          \
    } while (0)
/* Items [lo, hi) of `count` for each thread, a contiguous share as
 * schedule(static) would give it, so that a body may fence the thread's own
 * non-temporal stores. With one thread, the whole range on the calling
 * thread, which may itself be a thread of the caller's parallel region. */
#define PARALLEL_RANGES(count, lo, hi, ...)                                                        \
    do {                                                                                           \
        const long n_ = (long)(count);                                                             \
        if (threads > 1) {                                                                         \
            _Pragma("omp parallel num_threads(threads)") {                                         \
                long t_ = omp_get_thread_num(), nt_ = omp_get_num_threads();                       \
                long q_ = n_ / nt_, r_ = n_ % nt_;                                                 \
                long lo = t_ * q_ + (t_ < r_ ? t_ : r_), hi = lo + q_ + (t_ < r_ ? 1 : 0);         \
                __VA_ARGS__                                                                        \
            }                                                                                      \
        } else {                                                                                   \
            long lo = 0, hi = n_;                                                                  \
            __VA_ARGS__                                                                            \
        }                                                                                          \
    } while (0)
#else
#define PARALLEL_FOR(i, count, ...)                                                                \
    do {                                                                                           \
        (void)threads;                                                                             \
        for (long i = 0; i < (long)(count); i++) {                                                 \
            __VA_ARGS__                                                                            \
        }                                                                                          \
    } while (0)
#define PARALLEL_RANGES(count, lo, hi, ...)                                                        \
    do {                                                                                           \
        long lo = 0, hi = (long)(count);                                                           \
        (void)threads;                                                                             \
        __VA_ARGS__                                                                                \
    } while (0)
#endif

#endif
