/* The loop that glibc_simple.c and glibc_thread.c share, after the shape of
 * glibc's own malloc micro-benchmark bench-malloc-simple (benchtests/ in the
 * glibc sources): allocate N blocks of one small size in a tight loop, then
 * free them all in allocation order, for every combination of
 * N in {25, 100, 400, 1600} and size in {16, 32, 64, 128} bytes. Own code;
 * only the size/count grid is taken from that benchmark's description.
 *
 * Each block gets the standard pattern's header (tag and size word, plus the
 * last byte; bench_common.h), checked before it is freed, so the loop stays
 * a malloc/free loop with a minimum of memory traffic. Not a benchmark
 * program itself (run.sh builds only *.c).
 */
#ifndef HARDHEAP_BENCH_GLIBC_LOOP_H
#define HARDHEAP_BENCH_GLIBC_LOOP_H

#include "bench_common.h"

#define GLIBC_MAX_N 1600u
#define GLIBC_ALLOCS_PER_ROUND (4u * (25u + 100u + 400u + 1600u))

static const unsigned glibc_counts[4] = {25, 100, 400, 1600};
static const unsigned glibc_sizes[4] = {16, 32, 64, 128};

/* One round of the grid. ptrs has room for GLIBC_MAX_N pointers; *serial
 * numbers the blocks (tags); returns the number of damaged blocks. */
static inline uint64_t glibc_round(unsigned char **ptrs, uint64_t lane, uint64_t *serial,
                                   uint64_t *hash) {
    uint64_t bad = 0;
    for (unsigned c = 0; c < 4; c++) {
        for (unsigned s = 0; s < 4; s++) {
            unsigned n = glibc_counts[c], size = glibc_sizes[s];
            uint64_t first = *serial;
            for (unsigned i = 0; i < n; i++) {
                unsigned char *p = malloc(size);
                if (!p)
                    bench_oom("malloc", size);
                bench_block_fill(p, size, bench_tag((lane << 48) ^ (first + i)), 16);
                ptrs[i] = p;
            }
            for (unsigned i = 0; i < n; i++) {
                unsigned char *p = ptrs[i];
                bad += ((uintptr_t)p & 15u) != 0;
                bad += bench_block_check(p, size, bench_tag((lane << 48) ^ (first + i)), 16,
                                         hash) != 0;
                free(p);
            }
            *serial = first + n;
        }
    }
    return bad;
}

#endif /* HARDHEAP_BENCH_GLIBC_LOOP_H */
