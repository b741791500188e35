/* Shared helpers for the hardheap benchmark programs (bench/<name>.c).
 *
 * Everything here is deliberately allocator-neutral: a fixed-seed xorshift
 * generator (so every allocator sees exactly the same request sequence), a
 * monotonic clock, a 64-bit FNV-1a style checksum, and the one-line result
 * report that bench/run.sh parses:
 *
 *   RESULT bench=<name> [threads=<t>] iters=<n> time_s=<x> maxrss_kb=<y>
 *          checksum=<hex> errors=<n> malloc_from=<path of the object that
 *          defines malloc>
 *
 * (printed on one line; threads= only from the multi-threaded programs).
 * The checksum depends only on the request sequence and on the bytes read
 * back from the blocks, so every correct allocator prints the same value for
 * the same iteration count (and thread count). Multi-threaded programs must
 * keep it independent of scheduling.
 */
#ifndef HARDHEAP_BENCH_COMMON_H
#define HARDHEAP_BENCH_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* dladdr, clock_gettime */
#endif

#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

/* ---- deterministic PRNG: xorshift64 (Marsaglia 13/7/17), fixed seed ------ */

typedef struct {
    uint64_t s;
} bench_rng;

static inline void bench_rng_seed(bench_rng *r, uint64_t seed) {
    r->s = seed ? seed : 0x9E3779B97F4A7C15ULL;
}

static inline uint64_t bench_rng_next(bench_rng *r) {
    uint64_t x = r->s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    r->s = x;
    return x;
}

/* Uniform-ish value in [0, n) (n > 0); modulo bias is irrelevant here. */
static inline uint64_t bench_rng_below(bench_rng *r, uint64_t n) {
    return (bench_rng_next(r) >> 11) % n;
}

/* ---- block tags ---------------------------------------------------------- */

/* A well-mixed 64-bit tag for serial number x (splitmix64 finalizer): what
 * the programs write into each block and check before freeing it. */
static inline uint64_t bench_tag(uint64_t x) {
    uint64_t z = x + 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* ---- checksum ------------------------------------------------------------ */


#define BENCH_FNV_OFFSET 0xcbf29ce484222325ULL
#define BENCH_FNV_PRIME 0x100000001b3ULL

static inline uint64_t bench_mix_u64(uint64_t h, uint64_t v) {
    for (int i = 0; i < 8; i++) {
        h ^= (v >> (8 * i)) & 0xffu;
        h *= BENCH_FNV_PRIME;
    }
    return h;
}

static inline uint64_t bench_mix_byte(uint64_t h, unsigned char b) {
    h ^= b;
    h *= BENCH_FNV_PRIME;
    return h;
}

/* ---- standard block pattern ---------------------------------------------- */

/* The newer programs (cfrac, espresso, ..., glibc_thread) write one layout
 * into the blocks they allocate and check it before freeing them:
 *
 *   [0, 8)              the block's 64-bit tag
 *   [8, 16)             size ^ bench_tag(tag)      (blocks of >= 16 bytes)
 *   [16, min(size, touch))  filler byte (tag >> 56)
 *   [size - 1]          tag ^ 0xA5                 (blocks of > 16 bytes, or
 *                                                   9..15 bytes)
 *
 * A block of >= 16 bytes describes itself: a thread that receives it from
 * another thread can recover its size from the tag (bench_block_check_self)
 * without being told. Overlapping blocks, short blocks and free lists that
 * hand out live memory overwrite one of the checked fields. */

#define BENCH_BLOCK_MIN 8u

static inline void bench_block_fill(unsigned char *p, size_t size, uint64_t tag, size_t touch) {
    memcpy(p, &tag, sizeof tag);
    if (size >= 16) {
        uint64_t w = (uint64_t)size ^ bench_tag(tag);
        memcpy(p + 8, &w, sizeof w);
        size_t n = size < touch ? size : touch;
        if (n > 16)
            memset(p + 16, (int)(tag >> 56), n - 16);
    }
    if (size > 16 || (size > 8 && size < 16))
        p[size - 1] = (unsigned char)(tag ^ 0xA5u);
}

/* Number of damaged fields (0 when intact); *hash gets the fields mixed in
 * (only the values read back, so it is the same under every allocator when
 * nothing is damaged). */
static inline unsigned bench_block_check(const unsigned char *p, size_t size, uint64_t tag,
                                         size_t touch, uint64_t *hash) {
    unsigned bad = 0;
    uint64_t got, h = *hash;
    memcpy(&got, p, sizeof got);
    bad += got != tag;
    h = bench_mix_u64(h, got);
    if (size >= 16) {
        uint64_t w;
        memcpy(&w, p + 8, sizeof w);
        bad += (w ^ bench_tag(tag)) != (uint64_t)size;
        size_t n = size < touch ? size : touch;
        if (n > 16) {
            unsigned char f = (unsigned char)(tag >> 56);
            size_t at[3] = {16, 16 + (n - 16) / 2, n - 1};
            for (int i = 0; i < 3; i++)
                bad += at[i] != size - 1 && p[at[i]] != f; /* the last byte is not filler */
        }
    }
    if (size > 16 || (size > 8 && size < 16)) {
        unsigned char last = p[size - 1];
        bad += last != (unsigned char)(tag ^ 0xA5u);
        h = bench_mix_byte(h, last);
    }
    *hash = h;
    return bad;
}

/* For a block of >= 16 bytes whose size is not known to the checker: reads
 * tag and size from the block itself. Returns the number of damaged fields;
 * a size outside [min_size, max_size] counts as damage and nothing beyond
 * the header is read. *size_out / *tag_out get what was read. */
static inline unsigned bench_block_check_self(const unsigned char *p, size_t min_size,
                                              size_t max_size, size_t touch, size_t *size_out,
                                              uint64_t *tag_out, uint64_t *hash) {
    uint64_t tag, w;
    memcpy(&tag, p, sizeof tag);
    memcpy(&w, p + 8, sizeof w);
    uint64_t size = w ^ bench_tag(tag);
    *tag_out = tag;
    *size_out = (size_t)size;
    if (size < min_size || size > max_size || min_size < 16)
        return 1;
    return bench_block_check(p, (size_t)size, tag, touch, hash);
}

/* Order-independent summary of a block (tag, size): threaded programs whose
 * blocks are freed by whichever thread ends up holding them add this up
 * once when the block is made and once when it is checked; the two sums must
 * agree (no block lost or freed twice) and do not depend on scheduling. */
static inline uint64_t bench_block_sum(uint64_t tag, size_t size) {
    return bench_tag(tag ^ ((uint64_t)size * 0xD6E8FEB86659FD93ULL));
}

/* ---- time / memory ------------------------------------------------------- */

static inline double bench_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline long bench_maxrss_kb(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return -1;
    return ru.ru_maxrss; /* kilobytes on Linux */
}

/* Path of the shared object that provides the malloc this program calls, so
 * run.sh can verify that an LD_PRELOAD actually took effect (ld.so only warns
 * when a preload fails and then silently falls back to glibc). */
static inline const char *bench_malloc_origin(void) {
    void *(*volatile fn)(size_t) = malloc;
    Dl_info info;
    memset(&info, 0, sizeof info);
    if (dladdr((void *)(uintptr_t)fn, &info) && info.dli_fname && info.dli_fname[0])
        return info.dli_fname;
    return "unknown";
}

/* Parse argv[1] as a positive iteration count, or return dflt. */
static inline uint64_t bench_parse_iters(int argc, char **argv, uint64_t dflt) {
    if (argc < 2)
        return dflt;
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(argv[1], &end, 10);
    if (errno || end == argv[1] || *end != '\0' || v == 0) {
        fprintf(stderr, "usage: %s [iterations>0]\n", argv[0]);
        exit(2);
    }
    return (uint64_t)v;
}

/* Parse argv[idx] as a positive integer no larger than max (0: no limit).
 * A missing argument gives dflt, or is a usage error when dflt is 0. */
static inline uint64_t bench_parse_arg(int argc, char **argv, int idx, uint64_t dflt,
                                       uint64_t max, const char *usage) {
    if (argc <= idx) {
        if (dflt == 0) {
            fprintf(stderr, "%s\n", usage);
            exit(2);
        }
        return dflt;
    }
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(argv[idx], &end, 10);
    if (errno || end == argv[idx] || *end != '\0' || v == 0 || (max && v > max)) {
        fprintf(stderr, "%s\n", usage);
        exit(2);
    }
    return (uint64_t)v;
}

static inline void bench_report(const char *name, uint64_t iters, double secs,
                                uint64_t checksum, uint64_t errors) {
    printf("RESULT bench=%s iters=%" PRIu64 " time_s=%.6f maxrss_kb=%ld "
           "checksum=%016" PRIx64 " errors=%" PRIu64 " malloc_from=%s\n",
           name, iters, secs, bench_maxrss_kb(), checksum, errors,
           bench_malloc_origin());
    fflush(stdout);
}

/* Same as bench_report, plus the thread count (multi-threaded programs). */
static inline void bench_report_threads(const char *name, unsigned threads, uint64_t iters,
                                        double secs, uint64_t checksum, uint64_t errors) {
    printf("RESULT bench=%s threads=%u iters=%" PRIu64 " time_s=%.6f maxrss_kb=%ld "
           "checksum=%016" PRIx64 " errors=%" PRIu64 " malloc_from=%s\n",
           name, threads, iters, secs, bench_maxrss_kb(), checksum, errors,
           bench_malloc_origin());
    fflush(stdout);
}

/* Out of memory is never expected in these benchmarks: treat it as fatal
 * (distinct exit code so run.sh reports it as a failure, not a timing). */
static inline void bench_oom(const char *what, size_t size) {
    fprintf(stderr, "FATAL: %s(%zu) returned NULL\n", what, size);
    exit(3);
}

#endif /* HARDHEAP_BENCH_COMMON_H */
