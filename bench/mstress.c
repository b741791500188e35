/* mstress: a thread pool that grows and shrinks, threads exchanging blocks
 * and leaving live blocks behind when they exit.
 *
 * Follows the allocation shape of mstress (mimalloc's own stress test,
 * test-stress.c, as run in mimalloc-bench): rounds of threads that are
 * created, allocate, free, swap blocks with each other through a shared
 * array, and are joined, so that many blocks are freed by a thread other than
 * the one that made them -- often after that thread has exited and its heap
 * has been abandoned. Own code; the pool pattern, mix and sizes are this
 * file's.
 *
 * ROUNDS rounds; round r runs a pool of n(r) threads, with n going up from 1
 * to 2 T and back down again (T = THREADS; T = 2: 1 2 3 4 3 2 1 2 ...), each
 * created for the round and joined at its end. A round's OPS / ROUNDS
 * operations are split over its threads. A thread keeps LOCAL slots of its
 * own and does, per operation (own fixed-seed generator):
 *
 *   50 %  allocate a block into a random local slot (freeing what was there)
 *   25 %  free the block in a random local slot
 *   25 %  swap a random local slot with a random slot of the shared
 *         transfer array (NTRANSFER atomic pointers, living across rounds)
 *
 * When it is done, a thread frees the blocks in its even slots and leaves
 * those in its odd slots to the next round, whose threads free them. Blocks
 * that are still in the transfer array at the end are freed by the main
 * thread.
 *
 * Sizes: 90 % 16-256 B, 9 % 257 B-4 KiB, 1 % 4-64 KiB. Every block carries
 * the standard self-describing pattern (bench_common.h), so whichever thread
 * ends up freeing it can check it without knowing who made it. Which thread
 * frees which block depends on scheduling, so the checksum is an
 * order-independent sum over the freed blocks of a hash of what was read
 * back, and the sum over the blocks made must equal the sum over the blocks
 * freed (no block lost or freed twice); both depend only on the thread
 * count's request sequences.
 *
 * Usage: mstress THREADS [OPS]   (default OPS sized for ~1 s with glibc at
 *                                 2 threads on a 2-core machine)
 * Output: one RESULT line, see bench_common.h. Exit 1 if any check failed.
 */
#include "bench_common.h"

#include <pthread.h>
#include <stdatomic.h>

#define ROUNDS 240u
#define LOCAL 256u
#define NTRANSFER 1024u
#define TOUCH 64u
#define MIN_SIZE 16u
#define MAX_SIZE 65536u
#define MAX_THREADS 128u /* the pool grows to 2 T */
#define DEFAULT_OPS 10000000ULL

typedef struct {
    char pad0[128];
    unsigned round, idx, pool;
    uint64_t ops;
    uint64_t made, freed;
    uint64_t made_sum, freed_sum, content;
    uint64_t errors;
    char pad1[128];
} worker;

static _Atomic(unsigned char *) transfer[NTRANSFER];
/* blocks left behind by round r's thread i: carry[r & 1][i][k] */
static unsigned char *carry[2][2 * MAX_THREADS][LOCAL / 2];
static unsigned carry_n[2];
static atomic_uint errors_printed;

static uint32_t pick_size(bench_rng *r) {
    uint64_t x = bench_rng_next(r);
    unsigned k = (unsigned)(x % 100u);
    uint64_t v = x >> 16;
    if (k < 90)
        return 16u + (uint32_t)(v % 241u);
    if (k < 99)
        return 257u + (uint32_t)(v % 3840u);
    return 4097u + (uint32_t)(v % (MAX_SIZE - 4096u));
}

static void check_free(worker *w, unsigned char *p) {
    size_t size;
    uint64_t tag, h = BENCH_FNV_OFFSET;
    if (bench_block_check_self(p, MIN_SIZE, MAX_SIZE, TOUCH, &size, &tag, &h) != 0) {
        if (atomic_fetch_add(&errors_printed, 1u) < 10u)
            fprintf(stderr, "mstress: round %u thread %u: block %p damaged while live\n",
                    w->round, w->idx, (void *)p);
        w->errors++;
        free(p); /* keep going: the sums will not match either */
        return;
    }
    w->freed++;
    w->freed_sum += bench_block_sum(tag, size);
    w->content += h;
    free(p);
}

static unsigned char *make_block(worker *w, bench_rng *r, uint64_t *serial) {
    uint32_t size = pick_size(r);
    unsigned char *p = malloc(size);
    if (!p)
        bench_oom("malloc", size);
    if (((uintptr_t)p & 15u) != 0) {
        if (atomic_fetch_add(&errors_printed, 1u) < 10u)
            fprintf(stderr, "mstress: misaligned block %p\n", (void *)p);
        w->errors++;
    }
    uint64_t tag = bench_tag(((uint64_t)w->round << 48) ^ ((uint64_t)w->idx << 40) ^ (*serial)++);
    bench_block_fill(p, size, tag, TOUCH);
    w->made++;
    w->made_sum += bench_block_sum(tag, size);
    return p;
}

static void *worker_main(void *arg) {
    worker *w = arg;
    unsigned char *local[LOCAL] = {0};
    bench_rng r;
    bench_rng_seed(&r, 0x2545F4914F6CDD1DULL ^ ((uint64_t)(w->round * 1000u + w->idx + 1) *
                                                0x9E3779B97F4A7C15ULL));
    uint64_t serial = 0;

    /* first, the blocks the previous round left behind */
    if (w->round > 0) {
        unsigned par = (w->round - 1) & 1u;
        for (unsigned i = w->idx; i < carry_n[par]; i += w->pool)
            for (unsigned k = 0; k < LOCAL / 2; k++)
                if (carry[par][i][k]) {
                    check_free(w, carry[par][i][k]);
                    carry[par][i][k] = NULL;
                }
    }

    for (uint64_t op = 0; op < w->ops; op++) {
        uint64_t x = bench_rng_next(&r);
        unsigned k = (unsigned)(x % 100u);
        unsigned s = (unsigned)((x >> 8) % LOCAL);
        if (k < 50) {
            if (local[s])
                check_free(w, local[s]);
            local[s] = make_block(w, &r, &serial);
        } else if (k < 75) {
            if (local[s]) {
                check_free(w, local[s]);
                local[s] = NULL;
            }
        } else {
            unsigned t = (unsigned)((x >> 24) % NTRANSFER);
            local[s] = atomic_exchange_explicit(&transfer[t], local[s], memory_order_acq_rel);
        }
    }

    unsigned par = w->round & 1u;
    for (unsigned s = 0; s < LOCAL; s++) {
        if (s & 1u)
            carry[par][w->idx][s / 2] = local[s];
        else if (local[s])
            check_free(w, local[s]);
    }
    return NULL;
}

static unsigned pool_size(unsigned round, unsigned t) {
    unsigned m = 2 * t - 1;
    if (m == 0)
        return 1;
    unsigned k = round % (2 * m);
    return 1 + (k <= m ? k : 2 * m - k);
}

int main(int argc, char **argv) {
    static const char usage[] = "usage: mstress THREADS [OPS]";
    unsigned nthreads = (unsigned)bench_parse_arg(argc, argv, 1, 0, MAX_THREADS, usage);
    uint64_t ops = bench_parse_arg(argc, argv, 2, DEFAULT_OPS, 0, usage);
    if (argc > 3) {
        fprintf(stderr, "%s\n", usage);
        return 2;
    }
    static worker w[2 * MAX_THREADS];
    static pthread_t th[2 * MAX_THREADS];
    uint64_t made = 0, freed = 0, made_sum = 0, freed_sum = 0, content = 0, errors = 0;
    uint64_t created = 0;

    double t0 = bench_now();
    for (unsigned round = 0; round < ROUNDS; round++) {
        unsigned n = pool_size(round, nthreads);
        uint64_t rops = ops / ROUNDS + (round < ops % ROUNDS ? 1u : 0u);
        for (unsigned i = 0; i < n; i++) {
            memset(&w[i], 0, sizeof w[i]);
            w[i].round = round;
            w[i].idx = i;
            w[i].pool = n;
            w[i].ops = rops / n + (i < rops % n ? 1u : 0u);
            int rc = pthread_create(&th[i], NULL, worker_main, &w[i]);
            if (rc != 0) {
                fprintf(stderr, "mstress: pthread_create: %s\n", strerror(rc));
                return 2;
            }
        }
        for (unsigned i = 0; i < n; i++) {
            pthread_join(th[i], NULL);
            made += w[i].made;
            freed += w[i].freed;
            made_sum += w[i].made_sum;
            freed_sum += w[i].freed_sum;
            content += w[i].content;
            errors += w[i].errors;
        }
        carry_n[round & 1u] = n;
        created += n;
    }
    /* what is left: the last round's carry and the transfer array */
    worker *m = &w[0];
    memset(m, 0, sizeof *m);
    m->round = ROUNDS;
    unsigned par = (ROUNDS - 1) & 1u;
    for (unsigned i = 0; i < carry_n[par]; i++)
        for (unsigned k = 0; k < LOCAL / 2; k++)
            if (carry[par][i][k])
                check_free(m, carry[par][i][k]);
    for (unsigned t = 0; t < NTRANSFER; t++) {
        unsigned char *p = atomic_exchange(&transfer[t], NULL);
        if (p)
            check_free(m, p);
    }
    freed += m->freed;
    freed_sum += m->freed_sum;
    content += m->content;
    errors += m->errors;
    double t1 = bench_now();

    if (made != freed || made_sum != freed_sum) {
        fprintf(stderr, "mstress: %" PRIu64 " blocks made, %" PRIu64 " freed (sums %016" PRIx64
                        " / %016" PRIx64 ")\n",
                made, freed, made_sum, freed_sum);
        errors++;
    }
    fprintf(stderr, "mstress: %u rounds, %" PRIu64 " threads created, %" PRIu64 " blocks\n",
            ROUNDS, created, made);
    uint64_t checksum = bench_mix_u64(bench_mix_u64(BENCH_FNV_OFFSET, content), freed);
    bench_report_threads("mstress", nthreads, ops, t1 - t0, checksum, errors);
    return errors ? 1 : 0;
}
