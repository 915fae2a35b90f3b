/*
 * dispatch.h - NN_DISPATCH marks a function to be compiled once per x86-64
 * level (AVX-512, AVX2, baseline); the loader picks the copy for the CPU it
 * runs on, so one build is fast where it can be and runs everywhere.
 * NN_NO_DISPATCH (or another architecture) builds a single copy.
 */
#ifndef NN_DISPATCH_H
#define NN_DISPATCH_H

#if defined(__x86_64__) && !defined(NN_NO_DISPATCH)
#define NN_DISPATCH __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define NN_DISPATCH
#endif

#endif
