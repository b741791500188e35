/* xmalloc: producer/consumer allocation across threads (in the spirit of
 * xmalloc-test from the mimalloc-bench suite).
 *
 * With T threads, P = T/2 threads are producers and the other T - P are
 * consumers. Producers allocate blocks and push them, BATCH at a time, onto a
 * shared FIFO queue (mutex + two condition variables, at most QCAP batches in
 * flight so memory in transit stays bounded); consumers pop batches, verify
 * every block and free it, then free the batch descriptor. Every block is
 * therefore freed by a different thread than the one that allocated it, and
 * the producers' heaps only get their memory back through the allocator's
 * cross-thread free path. This is the pattern of message-passing servers and
 * pipelines (a reader thread allocates requests, workers free them).
 *
 * With T = 1 the single thread alternates: it produces WINDOW batches onto
 * the queue, then consumes them, and so on (same code, no cross-thread
 * frees) -- the single-threaded baseline for the same work.
 *
 * Block sizes (per producer, fixed-seed PRNG):
 *
 *   95 %  16 ..  512 bytes
 *    5 % 513 .. 2048 bytes
 *
 * The total number of blocks is fixed (BLOCKS, split evenly over the
 * producers), not the run time. Each block carries a 64-bit tag derived from
 * (producer, serial number) in its first 8 bytes, its size xor the tag in
 * the next 4 and a tag-derived last byte; the consumer recomputes the tag from
 * the batch header and checks all three (and 16-byte alignment) before
 * freeing. The checksum is a sum over all blocks of a hash of (tag, size, last
 * byte) -- order-independent, so it does not depend on which consumer got
 * which batch -- mixed with the block count. It depends on T (the number of
 * producers decides the request sequences), not on scheduling.
 *
 * Usage: xmalloc THREADS [BLOCKS]   (default BLOCKS sized for ~1 s with glibc
 *                                    at 2 threads on a 2-core machine)
 * Output: one RESULT line, see bench_common.h. Exit 1 if any check failed.
 */
#include "bench_common.h"

#include <pthread.h>
#include <stdatomic.h>

#define BATCH 256u      /* blocks per batch */
#define QCAP 64u        /* batches in flight at most */
#define WAKE 8u         /* batches queued (free) before a consumer (producer) is woken */
#define WINDOW 16u      /* batches produced at a time with one thread */
#define MIN_SIZE 16u
#define MAX_SMALL 512u
#define MAX_SIZE 2048u
#define MAX_THREADS 256u
#define DEFAULT_BLOCKS 16000000ULL

typedef struct {
    uint32_t producer;
    uint32_t n;
    uint64_t first_serial;
    unsigned char *p[BATCH];
} batch;

static struct {
    pthread_mutex_t lock;
    pthread_cond_t not_empty;
    pthread_cond_t not_full;
    batch *ring[QCAP];
    unsigned head, count;
    unsigned producers_left;
} q = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER,
       {0}, 0, 0, 0};

typedef struct {
    char pad0[128];
    unsigned id;
    uint64_t quota;  /* producer: blocks to produce */
    uint64_t sum;    /* consumer: sum of block hashes */
    uint64_t blocks; /* consumer: blocks consumed */
    uint64_t errors;
    char pad1[128];
} worker;

static atomic_uint errors_printed;

static inline uint64_t make_tag(uint32_t producer, uint64_t serial) {
    return bench_tag(((uint64_t)producer << 44) ^ serial);
}

static uint32_t pick_size(bench_rng *r) {
    uint64_t x = bench_rng_next(r);
    uint64_t v = x >> 16;
    if (x % 100u < 95u)
        return MIN_SIZE + (uint32_t)(v % (MAX_SMALL - MIN_SIZE + 1u));
    return MAX_SMALL + 1u + (uint32_t)(v % (MAX_SIZE - MAX_SMALL));
}

static void report_error(worker *w, const char *what, const void *p, uint64_t tag) {
    if (atomic_fetch_add(&errors_printed, 1u) < 10u)
        fprintf(stderr, "xmalloc: consumer %u: %s (block %p, expected tag %016" PRIx64 ")\n",
                w->id, what, p, tag);
    w->errors++;
}

/* ---- queue ----------------------------------------------------------------- */

/* Sleeping threads are only woken once there is a useful amount of work
 * (WAKE batches, or room for WAKE batches): waking a consumer for every single
 * batch would make futex wake-ups and context switches, not the allocator,
 * the main cost. */
static void q_push(batch *b) {
    pthread_mutex_lock(&q.lock);
    while (q.count == QCAP)
        pthread_cond_wait(&q.not_full, &q.lock);
    q.ring[(q.head + q.count) % QCAP] = b;
    q.count++;
    if (q.count >= WAKE)
        pthread_cond_signal(&q.not_empty);
    pthread_mutex_unlock(&q.lock);
}

/* Next batch, or NULL once the queue is empty and every producer is done
 * (q_producer_done wakes everybody). With wait == 0 returns NULL as soon as
 * the queue is empty. */
static batch *q_pop(int wait) {
    pthread_mutex_lock(&q.lock);
    while (q.count == 0 && q.producers_left > 0 && wait)
        pthread_cond_wait(&q.not_empty, &q.lock);
    batch *b = NULL;
    if (q.count > 0) {
        b = q.ring[q.head];
        q.head = (q.head + 1) % QCAP;
        q.count--;
        if (q.count <= QCAP - WAKE)
            pthread_cond_signal(&q.not_full);
    }
    pthread_mutex_unlock(&q.lock);
    return b;
}

static void q_producer_done(void) {
    pthread_mutex_lock(&q.lock);
    if (--q.producers_left == 0)
        pthread_cond_broadcast(&q.not_empty);
    pthread_mutex_unlock(&q.lock);
}

/* ---- producing / consuming -------------------------------------------------- */

typedef struct {
    uint32_t id;
    bench_rng rng;
    uint64_t serial;
    uint64_t left;
} producer_state;

static void producer_init(producer_state *ps, uint32_t id, uint64_t quota) {
    ps->id = id;
    bench_rng_seed(&ps->rng, 0x2545F4914F6CDD1DULL ^ ((uint64_t)(id + 1) * 0x9E3779B97F4A7C15ULL));
    ps->serial = 0;
    ps->left = quota;
}

/* Allocate and fill one batch (ps->left > 0). */
static batch *produce_batch(producer_state *ps) {
    batch *b = malloc(sizeof *b);
    if (!b)
        bench_oom("malloc", sizeof *b);
    b->producer = ps->id;
    b->first_serial = ps->serial;
    b->n = ps->left < BATCH ? (uint32_t)ps->left : BATCH;
    for (uint32_t i = 0; i < b->n; i++) {
        uint32_t size = pick_size(&ps->rng);
        unsigned char *p = malloc(size);
        if (!p)
            bench_oom("malloc", size);
        uint64_t tag = make_tag(ps->id, ps->serial++);
        uint32_t sz = size ^ (uint32_t)tag;
        memcpy(p, &tag, sizeof tag);
        memcpy(p + 8, &sz, sizeof sz);
        p[size - 1] = (unsigned char)(tag ^ 0xA5u);
        b->p[i] = p;
    }
    ps->left -= b->n;
    return b;
}

static void consume_batch(worker *w, batch *b) {
    for (uint32_t i = 0; i < b->n; i++) {
        unsigned char *p = b->p[i];
        uint64_t want = make_tag(b->producer, b->first_serial + i);
        uint64_t tag;
        uint32_t sz;
        if (((uintptr_t)p & 15u) != 0)
            report_error(w, "misaligned block", p, want);
        memcpy(&tag, p, sizeof tag);
        memcpy(&sz, p + 8, sizeof sz);
        uint32_t size = sz ^ (uint32_t)want;
        unsigned char last = 0;
        if (tag != want)
            report_error(w, "tag overwritten", p, want);
        if (size < MIN_SIZE || size > MAX_SIZE) {
            report_error(w, "size field overwritten", p, want);
        } else {
            last = p[size - 1];
            if (last != (unsigned char)(want ^ 0xA5u))
                report_error(w, "last byte overwritten", p, want);
        }
        uint64_t h = bench_mix_u64(BENCH_FNV_OFFSET, tag);
        h = bench_mix_u64(h, ((uint64_t)last << 32) | size);
        w->sum += h;
        w->blocks++;
        free(p);
    }
    free(b);
}

static void *producer_thread(void *arg) {
    worker *w = arg;
    producer_state ps;
    producer_init(&ps, w->id, w->quota);
    while (ps.left > 0)
        q_push(produce_batch(&ps));
    q_producer_done();
    return NULL;
}

static void *consumer_thread(void *arg) {
    worker *w = arg;
    batch *b;
    while ((b = q_pop(1)) != NULL)
        consume_batch(w, b);
    return NULL;
}

/* T = 1: produce WINDOW batches, consume them, repeat. */
static void single_thread(worker *w, uint64_t blocks) {
    producer_state ps;
    producer_init(&ps, 0, blocks);
    while (ps.left > 0) {
        for (unsigned k = 0; k < WINDOW && ps.left > 0; k++)
            q_push(produce_batch(&ps));
        batch *b;
        while ((b = q_pop(0)) != NULL)
            consume_batch(w, b);
    }
}

int main(int argc, char **argv) {
    static const char usage[] = "usage: xmalloc THREADS [BLOCKS]";
    unsigned nthreads = (unsigned)bench_parse_arg(argc, argv, 1, 0, MAX_THREADS, usage);
    uint64_t blocks = bench_parse_arg(argc, argv, 2, DEFAULT_BLOCKS, 0, usage);
    if (argc > 3) {
        fprintf(stderr, "%s\n", usage);
        return 2;
    }

    unsigned nprod = nthreads / 2, ncons = nthreads - nprod;
    worker *w = calloc(nthreads, sizeof *w);
    pthread_t *th = calloc(nthreads, sizeof *th);
    if (!w || !th)
        bench_oom("calloc", nthreads * sizeof *w);
    for (unsigned i = 0; i < nthreads; i++)
        w[i].id = i;

    double t0 = bench_now();

    if (nthreads == 1) {
        q.producers_left = 1;
        single_thread(&w[0], blocks);
    } else {
        /* workers 0..nprod-1 produce, the rest consume */
        q.producers_left = nprod;
        for (unsigned i = 0; i < nprod; i++)
            w[i].quota = blocks / nprod + (i < blocks % nprod ? 1u : 0u);
        for (unsigned i = 0; i < nthreads; i++) {
            int rc = pthread_create(&th[i], NULL, i < nprod ? producer_thread : consumer_thread,
                                    &w[i]);
            if (rc != 0) {
                fprintf(stderr, "xmalloc: pthread_create: %s\n", strerror(rc));
                return 2;
            }
        }
        for (unsigned i = 0; i < nthreads; i++)
            pthread_join(th[i], NULL);
    }

    double t1 = bench_now();

    uint64_t sum = 0, consumed = 0, errors = 0;
    for (unsigned i = 0; i < nthreads; i++) {
        sum += w[i].sum;
        consumed += w[i].blocks;
        errors += w[i].errors;
    }
    if (consumed != blocks) {
        fprintf(stderr, "xmalloc: %" PRIu64 " blocks consumed, %" PRIu64 " produced\n", consumed,
                blocks);
        errors++;
    }
    uint64_t checksum = bench_mix_u64(bench_mix_u64(BENCH_FNV_OFFSET, sum), consumed);
    fprintf(stderr, "xmalloc: %u producer(s), %u consumer(s), %" PRIu64 " blocks\n",
            nthreads == 1 ? 1u : nprod, nthreads == 1 ? 1u : ncons, consumed);
    free(th);
    free(w);

    bench_report_threads("xmalloc", nthreads, blocks, t1 - t0, checksum, errors);
    return errors ? 1 : 0;
}
