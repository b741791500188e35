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
