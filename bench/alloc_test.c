/* alloc_test: mixed sizes with random lifetimes, one independent heap user
 * per thread.
 *
 * Follows the allocation shape of alloc-test (the randomized allocation
 * test of the node-dot-cpp project, run as alloc-test1 / alloc-testN in
 * mimalloc-bench): every thread makes a long stream of allocations whose
 * sizes are spread over several orders of magnitude, skewed to small, and
 * whose lifetimes are random -- most blocks die almost at once, some live
 * for hundreds of operations, a few for tens of thousands. Own code: the
 * distributions and the timing wheel below are this file's.
 *
 * Each thread (lane) counts ticks; at every tick it frees the blocks whose
 * lifetime ends at that tick and allocates one new block:
 *
 *   size:      97 %  2^b + [0, 2^b) bytes with b uniform in 3..12
 *                    (8 B .. 8 KiB, log-uniform-ish)
 *               3 %  b in 13..15 (8 KiB .. 64 KiB)
 *   lifetime:  75 %  1 .. 15 ticks
 *              20 %  16 .. 1023 ticks
 *               5 %  1024 .. 32767 ticks
 *
 * Blocks are kept on a timing wheel of WHEEL buckets (a lifetime is always
 * shorter than the wheel), so about a thousand blocks, a few MiB, are live
 * per lane. There are no cross-thread frees; what threads share is the
 * allocator. Each block gets the standard pattern (bench_common.h: tag,
 * size word, first 64 bytes, last byte), checked before it is freed.
 *
 * The total work is fixed: OPS ticks in all, split over the T lanes; each
 * lane has its own fixed-seed generator and checksum, combined in lane
 * order, so the checksum depends on T but not on scheduling.
 *
 * Usage: alloc_test THREADS [OPS]   (default OPS sized for ~1 s with glibc
 *                                    at 2 threads on a 2-core machine)
 * Output: one RESULT line, see bench_common.h. Exit 1 if any check failed.
 */
#include "bench_common.h"

#include <pthread.h>
#include <stdatomic.h>

#define WHEEL 32768u /* power of two; lifetimes are < WHEEL */
#define TOUCH 64u
#define MAX_THREADS 256u
#define DEFAULT_OPS 10000000ULL
#define NIL 0xFFFFFFFFu

typedef struct {
    unsigned char *p;
    uint64_t tag;
    uint32_t size;
    uint32_t next;
} rec;

typedef struct {
    char pad0[128];
    unsigned idx;
    uint64_t ops;
    bench_rng rng;
    rec *recs;        /* WHEEL records */
    uint32_t *bucket; /* WHEEL list heads */
    uint32_t free_rec;
    uint64_t serial;
    uint64_t checksum;
    uint64_t errors;
    uint64_t live, max_live;
    char pad1[128];
} lane;

static atomic_uint errors_printed;

static uint32_t pick_size(bench_rng *r) {
    uint64_t x = bench_rng_next(r);
    unsigned b = (x % 100u) < 97u ? 3u + (unsigned)((x >> 8) % 10u) : 13u + (unsigned)((x >> 8) % 3u);
    return (1u << b) + (uint32_t)((x >> 20) & ((1u << b) - 1u));
}

static uint32_t pick_lifetime(bench_rng *r) {
    uint64_t x = bench_rng_next(r);
    unsigned k = (unsigned)(x % 100u);
    uint64_t v = x >> 16;
    if (k < 75)
        return 1u + (uint32_t)(v % 15u);
    if (k < 95)
        return 16u + (uint32_t)(v % 1008u);
    return 1024u + (uint32_t)(v % (WHEEL - 1024u));
}

static void check_free(lane *L, rec *e) {
    if (bench_block_check(e->p, e->size, e->tag, TOUCH, &L->checksum) != 0) {
        if (atomic_fetch_add(&errors_printed, 1u) < 10u)
            fprintf(stderr, "alloc_test: lane %u: block %p (size %u) damaged while live\n",
                    L->idx, (void *)e->p, e->size);
        L->errors++;
    }
    free(e->p);
    L->live--;
}

static void *lane_main(void *arg) {
    lane *L = arg;
    for (uint64_t t = 0; t < L->ops; t++) {
        uint32_t b = (uint32_t)(t & (WHEEL - 1u));
        uint32_t i = L->bucket[b];
        L->bucket[b] = NIL;
        while (i != NIL) {
            rec *e = &L->recs[i];
            uint32_t next = e->next;
            check_free(L, e);
            e->next = L->free_rec;
            L->free_rec = i;
            i = next;
        }

        uint32_t size = pick_size(&L->rng);
        uint32_t life = pick_lifetime(&L->rng);
        i = L->free_rec;
        rec *e = &L->recs[i]; /* never NIL: at most WHEEL - 1 blocks are live */
        L->free_rec = e->next;
        e->size = size;
        e->tag = bench_tag(((uint64_t)L->idx << 48) ^ L->serial++);
        e->p = malloc(size);
        if (!e->p)
            bench_oom("malloc", size);
        if (((uintptr_t)e->p & (size >= 16 ? 15u : 7u)) != 0) {
            if (atomic_fetch_add(&errors_printed, 1u) < 10u)
                fprintf(stderr, "alloc_test: misaligned block %p\n", (void *)e->p);
            L->errors++;
        }
        bench_block_fill(e->p, size, e->tag, TOUCH);
        uint32_t d = (uint32_t)((t + life) & (WHEEL - 1u));
        e->next = L->bucket[d];
        L->bucket[d] = i;
        if (++L->live > L->max_live)
            L->max_live = L->live;
    }
    /* drain the wheel in deadline order */
    for (uint64_t t = L->ops; t < L->ops + WHEEL; t++) {
        uint32_t b = (uint32_t)(t & (WHEEL - 1u));
        for (uint32_t i = L->bucket[b]; i != NIL; i = L->recs[i].next)
            check_free(L, &L->recs[i]);
        L->bucket[b] = NIL;
    }
    if (L->live != 0) {
        fprintf(stderr, "alloc_test: lane %u: %" PRIu64 " blocks left over\n", L->idx, L->live);
        L->errors++;
    }
    return NULL;
}

int main(int argc, char **argv) {
    static const char usage[] = "usage: alloc_test THREADS [OPS]";
    unsigned nthreads = (unsigned)bench_parse_arg(argc, argv, 1, 0, MAX_THREADS, usage);
    uint64_t ops = bench_parse_arg(argc, argv, 2, DEFAULT_OPS, 0, usage);
    if (argc > 3) {
        fprintf(stderr, "%s\n", usage);
        return 2;
    }
    lane *lanes = calloc(nthreads, sizeof *lanes);
    pthread_t *th = calloc(nthreads, sizeof *th);
    if (!lanes || !th)
        bench_oom("calloc", nthreads * sizeof *lanes);
    for (unsigned t = 0; t < nthreads; t++) {
        lane *L = &lanes[t];
        L->idx = t;
        L->ops = ops / nthreads + (t < ops % nthreads ? 1u : 0u);
        bench_rng_seed(&L->rng, 0x2545F4914F6CDD1DULL ^ ((uint64_t)(t + 1) * 0x9E3779B97F4A7C15ULL));
        L->checksum = BENCH_FNV_OFFSET;
        L->recs = malloc(WHEEL * sizeof *L->recs);
        L->bucket = malloc(WHEEL * sizeof *L->bucket);
        if (!L->recs || !L->bucket)
            bench_oom("malloc", WHEEL * sizeof *L->recs);
        for (uint32_t i = 0; i < WHEEL; i++) {
            L->recs[i].next = i + 1 < WHEEL ? i + 1 : NIL;
            L->bucket[i] = NIL;
        }
        L->free_rec = 0;
    }

    double t0 = bench_now();
    for (unsigned t = 0; t < nthreads; t++) {
        int rc = pthread_create(&th[t], NULL, lane_main, &lanes[t]);
        if (rc != 0) {
            fprintf(stderr, "alloc_test: pthread_create: %s\n", strerror(rc));
            return 2;
        }
    }
    for (unsigned t = 0; t < nthreads; t++)
        pthread_join(th[t], NULL);
    double t1 = bench_now();

    uint64_t checksum = BENCH_FNV_OFFSET, errors = 0, max_live = 0;
    for (unsigned t = 0; t < nthreads; t++) {
        checksum = bench_mix_u64(checksum, lanes[t].checksum);
        errors += lanes[t].errors;
        if (lanes[t].max_live > max_live)
            max_live = lanes[t].max_live;
        free(lanes[t].recs);
        free(lanes[t].bucket);
    }
    fprintf(stderr, "alloc_test: %u lanes, at most %" PRIu64 " blocks live in one lane\n",
            nthreads, max_live);
    free(lanes);
    free(th);
    bench_report_threads("alloc_test", nthreads, ops, t1 - t0, checksum, errors);
    return errors ? 1 : 0;
}
