/* The loop that cache_thrash.c and cache_scratch.c share: allocate a small
 * object, write (and read back) every byte of it REPS times, check it, free
 * it -- after the cache-thrash / cache-scratch benchmarks of the Hoard suite
 * (Berger et al., ASPLOS 2000). What is measured is mostly the writes: they
 * are fast when each thread's objects sit on cache lines of their own and
 * slow when the allocator places objects of different threads on one line
 * (false sharing), because every write then takes the line away from the
 * other core. Not a benchmark program itself (run.sh builds only *.c).
 */
#ifndef HARDHEAP_BENCH_CACHE_LOOP_H
#define HARDHEAP_BENCH_CACHE_LOOP_H

#include "bench_common.h"

#define CACHE_OBJ_SIZE 8u /* bytes per object, as in the originals */
#define CACHE_REPS 500u   /* write passes over each object */

/* Expected content of byte k after pass `rep` of an object with this tag. */
static inline unsigned char cache_byte(uint64_t tag, unsigned rep, unsigned k) {
    return (unsigned char)((tag >> (8 * (k & 7u))) + rep + k);
}

/* REPS write-and-read passes over p; returns the number of bytes that did
 * not hold what was written last (another thread writing into our object
 * means overlapping blocks). *hash gets the final contents. */
static inline unsigned cache_work(unsigned char *p, uint64_t tag, uint64_t *hash) {
    volatile unsigned char *v = p;
    unsigned bad = 0;
    for (unsigned rep = 0; rep < CACHE_REPS; rep++) {
        for (unsigned k = 0; k < CACHE_OBJ_SIZE; k++) {
            unsigned char want = cache_byte(tag, rep, k);
            v[k] = want;
            bad += v[k] != want;
        }
    }
    for (unsigned k = 0; k < CACHE_OBJ_SIZE; k++) {
        unsigned char got = v[k];
        bad += got != cache_byte(tag, CACHE_REPS - 1, k);
        *hash = bench_mix_byte(*hash, got);
    }
    return bad;
}

#endif /* HARDHEAP_BENCH_CACHE_LOOP_H */
