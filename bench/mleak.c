/* mleak: single-threaded churn in which a steady trickle of blocks is
 * leaked.
 *
 * Follows the allocation shape of mleak from mimalloc-bench: a program that
 * keeps allocating and freeing while losing a small, steady fraction of its
 * blocks, so that its heap grows all the time and the leaked blocks end up
 * scattered between live and reusable memory. Own code; the rates and sizes
 * are this file's.
 *
 * A working set of WS live blocks; every iteration frees a random block of
 * it and allocates a replacement (sizes: 70 % 16-256 B, 25 % 257 B-2 KiB,
 * 5 % 2-16 KiB). One allocation in LEAK_EVERY (chosen by the generator) is
 * leaked instead: its pointer goes onto a leak list -- an array that grows
 * with realloc -- and it is never freed. After the loop the leaked blocks
 * are checked (an allocator that reused leaked memory shows up here) but
 * deliberately not freed, and the working set is freed.
 *
 * Every block carries the standard pattern (bench_common.h), checked before
 * it is freed; the checksum mixes what was read back from freed and leaked
 * blocks, so it depends only on the request sequence. Peak RSS grows with
 * the iteration count (about 8 MiB of leaked blocks per million iterations).
 *
 * Usage: mleak [iterations]   (default sized for ~1 s with glibc)
 * Output: one RESULT line, see bench_common.h. Exit 1 if any check failed.
 */
#include "bench_common.h"

#define WS 2048u
#define LEAK_EVERY 100u
#define TOUCH 64u
#define DEFAULT_ITERS 6000000ULL

typedef struct {
    unsigned char *p;
    size_t size;
    uint64_t tag;
} blk;

static blk ws[WS];
static blk *leaks;
static size_t nleaks, cap_leaks;
static uint64_t errors;
static uint64_t checksum = BENCH_FNV_OFFSET;
static uint64_t serial;

static size_t pick_size(bench_rng *r) {
    uint64_t x = bench_rng_next(r);
    unsigned k = (unsigned)(x % 100u);
    uint64_t v = x >> 16;
    if (k < 70)
        return 16 + (size_t)(v % 241u);
    if (k < 95)
        return 257 + (size_t)(v % 1792u);
    return 2049 + (size_t)(v % 14336u);
}

static void make(blk *b, bench_rng *r) {
    b->size = pick_size(r);
    b->tag = bench_tag(serial++);
    b->p = malloc(b->size);
    if (!b->p)
        bench_oom("malloc", b->size);
    if (((uintptr_t)b->p & 15u) != 0) {
        fprintf(stderr, "mleak: misaligned block %p\n", (void *)b->p);
        errors++;
    }
    bench_block_fill(b->p, b->size, b->tag, TOUCH);
}

static void check(const blk *b, const char *what) {
    if (bench_block_check(b->p, b->size, b->tag, TOUCH, &checksum) != 0) {
        if (errors < 10)
            fprintf(stderr, "mleak: %s block %p (size %zu) damaged\n", what, (void *)b->p,
                    b->size);
        errors++;
    }
}

int main(int argc, char **argv) {
    uint64_t iters = bench_parse_iters(argc, argv, DEFAULT_ITERS);
    bench_rng rng;
    bench_rng_seed(&rng, 0x2545F4914F6CDD1DULL);

    double t0 = bench_now();
    for (unsigned i = 0; i < WS; i++)
        make(&ws[i], &rng);
    for (uint64_t it = 0; it < iters; it++) {
        uint64_t x = bench_rng_next(&rng);
        blk *b = &ws[x % WS];
        if ((x >> 32) % LEAK_EVERY == 0) {
            if (nleaks == cap_leaks) {
                size_t cap = cap_leaks ? 2 * cap_leaks : 256;
                blk *n = realloc(leaks, cap * sizeof *n);
                if (!n)
                    bench_oom("realloc", cap * sizeof *n);
                leaks = n;
                cap_leaks = cap;
            }
            leaks[nleaks++] = *b; /* leaked: never freed */
        } else {
            check(b, "live");
            free(b->p);
        }
        make(b, &rng);
    }
    for (size_t i = 0; i < nleaks; i++)
        check(&leaks[i], "leaked");
    for (unsigned i = 0; i < WS; i++) {
        check(&ws[i], "live");
        free(ws[i].p);
    }
    double t1 = bench_now();

    fprintf(stderr, "mleak: %zu blocks leaked\n", nleaks);
    checksum = bench_mix_u64(checksum, nleaks);
    bench_report("mleak", iters, t1 - t0, checksum, errors);
    return errors ? 1 : 0;
}
