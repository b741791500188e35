/* rptest: batches of blocks with a size distribution skewed to small, random
 * lifetimes, a quarter of them freed by another thread.
 *
 * Follows the allocation shape of rptest, the benchmark that ships with
 * rpmalloc (as run in mimalloc-bench): every thread allocates blocks in
 * batches, sizes drawn from a distribution weighted heavily towards small
 * blocks with a long tail, keeps them alive for a random number of loops,
 * and hands part of them over to another thread that frees them. Own code;
 * the batch sizes, weights and hand-over rule are this file's.
 *
 * T threads; thread i, in each of its loops:
 *
 *   - frees the batches that other threads sent to its inbox;
 *   - allocates a batch descriptor and BATCH blocks, sizes:
 *       45 % 16-64 B, 30 % 65-256 B, 15 % 257 B-1 KiB, 7 % 1-4 KiB,
 *       2.5 % 4-16 KiB, 0.5 % 16-64 KiB;
 *   - gives the batch a lifetime of 1-MAXLIFE loops (timing wheel);
 *   - retires the batches whose lifetime ends: 25 % are sent to the inbox of
 *     thread i + 1 (mod T), the rest are freed by thread i itself.
 *
 * A sender whose target inbox is full (INBOX_MAX batches) empties its own
 * inbox while it waits, so the ring of threads cannot deadlock; a thread that
 * is done keeps emptying its inbox until every thread is done. With T = 1
 * the thread sends to itself (no cross-thread frees: the baseline).
 *
 * Every block carries the standard self-describing pattern (bench_common.h)
 * and is checked before it is freed. The blocks a thread makes depend only
 * on its own generator, but who frees them when depends on scheduling, so
 * the checksum is an order-independent sum of hashes of what was read back,
 * and the sum over the blocks made must equal the sum over the blocks freed.
 *
 * Usage: rptest THREADS [BLOCKS]   (total blocks; default sized for ~1 s with
 *                                   glibc at 2 threads on a 2-core machine)
 * Output: one RESULT line, see bench_common.h. Exit 1 if any check failed.
 */
#include "bench_common.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#define BATCH 32u
#define MAXLIFE 16u
#define INBOX_MAX 64u
#define TOUCH 64u
#define MIN_SIZE 16u
#define MAX_SIZE 65536u
#define MAX_THREADS 256u
#define DEFAULT_BLOCKS 3000000ULL

typedef struct batch {
    struct batch *next;
    uint32_t n;
    uint32_t from;
    unsigned char *p[BATCH];
} batch;

typedef struct {
    char pad0[128];
    pthread_mutex_t lock;
    batch *head, *tail;
    unsigned count;
    char pad1[128];
} inbox;

typedef struct {
    char pad0[128];
    unsigned idx;
    uint64_t loops;
    uint64_t made, freed, made_sum, freed_sum, content;
    uint64_t sent, errors;
    char pad1[128];
} worker;

static inbox *inboxes;
static unsigned nthreads;
static atomic_uint done;
static atomic_uint errors_printed;

static uint32_t pick_size(bench_rng *r) {
    uint64_t x = bench_rng_next(r);
    unsigned k = (unsigned)(x % 1000u);
    uint64_t v = x >> 16;
    if (k < 450)
        return 16u + (uint32_t)(v % 49u);
    if (k < 750)
        return 65u + (uint32_t)(v % 192u);
    if (k < 900)
        return 257u + (uint32_t)(v % 768u);
    if (k < 970)
        return 1025u + (uint32_t)(v % 3072u);
    if (k < 995)
        return 4097u + (uint32_t)(v % 12288u);
    return 16385u + (uint32_t)(v % 49152u);
}

static void free_batch(worker *w, batch *b) {
    for (uint32_t i = 0; i < b->n; i++) {
        size_t size;
        uint64_t tag, h = BENCH_FNV_OFFSET;
        if (bench_block_check_self(b->p[i], MIN_SIZE, MAX_SIZE, TOUCH, &size, &tag, &h) != 0) {
            if (atomic_fetch_add(&errors_printed, 1u) < 10u)
                fprintf(stderr, "rptest: thread %u: block %p from thread %u damaged while live\n",
                        w->idx, (void *)b->p[i], b->from);
            w->errors++;
        } else {
            w->freed++;
            w->freed_sum += bench_block_sum(tag, size);
            w->content += h;
        }
        free(b->p[i]);
    }
    free(b);
}

static void drain(worker *w) {
    inbox *in = &inboxes[w->idx];
    pthread_mutex_lock(&in->lock);
    batch *b = in->head;
    in->head = in->tail = NULL;
    in->count = 0;
    pthread_mutex_unlock(&in->lock);
    while (b) {
        batch *next = b->next;
        free_batch(w, b);
        b = next;
    }
}

static void send(worker *w, batch *b) {
    inbox *to = &inboxes[(w->idx + 1) % nthreads];
    b->next = NULL;
    for (;;) {
        pthread_mutex_lock(&to->lock);
        if (to->count < INBOX_MAX) {
            if (to->tail)
                to->tail->next = b;
            else
                to->head = b;
            to->tail = b;
            to->count++;
            pthread_mutex_unlock(&to->lock);
            w->sent++;
            return;
        }
        pthread_mutex_unlock(&to->lock);
        drain(w); /* make room in our own inbox while we wait */
        sched_yield();
    }
}

static void retire(worker *w, bench_rng *r, batch *b) {
    if (bench_rng_below(r, 100) < 25)
        send(w, b);
    else
        free_batch(w, b);
}

static void *worker_main(void *arg) {
    worker *w = arg;
    bench_rng r;
    bench_rng_seed(&r, 0x2545F4914F6CDD1DULL ^ ((uint64_t)(w->idx + 1) * 0x9E3779B97F4A7C15ULL));
    batch *wheel[MAXLIFE + 1] = {0};
    uint64_t serial = 0;

    for (uint64_t loop = 0; loop < w->loops; loop++) {
        drain(w);
        batch *b = malloc(sizeof *b);
        if (!b)
            bench_oom("malloc", sizeof *b);
        b->n = BATCH;
        b->from = w->idx;
        for (uint32_t i = 0; i < BATCH; i++) {
            uint32_t size = pick_size(&r);
            unsigned char *p = malloc(size);
            if (!p)
                bench_oom("malloc", size);
            if (((uintptr_t)p & 15u) != 0) {
                if (atomic_fetch_add(&errors_printed, 1u) < 10u)
                    fprintf(stderr, "rptest: misaligned block %p\n", (void *)p);
                w->errors++;
            }
            uint64_t tag = bench_tag(((uint64_t)w->idx << 48) ^ serial++);
            bench_block_fill(p, size, tag, TOUCH);
            w->made++;
            w->made_sum += bench_block_sum(tag, size);
            b->p[i] = p;
        }
        unsigned life = 1 + (unsigned)bench_rng_below(&r, MAXLIFE);
        unsigned slot = (unsigned)((loop + life) % (MAXLIFE + 1));
        b->next = wheel[slot];
        wheel[slot] = b;

        slot = (unsigned)((loop + 1) % (MAXLIFE + 1));
        batch *due = wheel[slot];
        wheel[slot] = NULL;
        while (due) {
            batch *next = due->next;
            retire(w, &r, due);
            due = next;
        }
    }
    for (uint64_t loop = w->loops; loop < w->loops + MAXLIFE + 1; loop++) {
        unsigned slot = (unsigned)((loop + 1) % (MAXLIFE + 1));
        batch *due = wheel[slot];
        wheel[slot] = NULL;
        while (due) {
            batch *next = due->next;
            retire(w, &r, due);
            due = next;
        }
    }
    atomic_fetch_add(&done, 1u);
    while (atomic_load(&done) < nthreads) {
        drain(w);
        sched_yield();
    }
    drain(w); /* every send happened before its sender counted itself done */
    return NULL;
}

int main(int argc, char **argv) {
    static const char usage[] = "usage: rptest THREADS [BLOCKS]";
    nthreads = (unsigned)bench_parse_arg(argc, argv, 1, 0, MAX_THREADS, usage);
    uint64_t blocks = bench_parse_arg(argc, argv, 2, DEFAULT_BLOCKS, 0, usage);
    if (argc > 3) {
        fprintf(stderr, "%s\n", usage);
        return 2;
    }
    uint64_t loops = (blocks + BATCH - 1) / BATCH;
    inboxes = calloc(nthreads, sizeof *inboxes);
    worker *w = calloc(nthreads, sizeof *w);
    pthread_t *th = calloc(nthreads, sizeof *th);
    if (!inboxes || !w || !th)
        bench_oom("calloc", nthreads * sizeof *inboxes);
    for (unsigned i = 0; i < nthreads; i++) {
        pthread_mutex_init(&inboxes[i].lock, NULL);
        w[i].idx = i;
        w[i].loops = loops / nthreads + (i < loops % nthreads ? 1u : 0u);
    }

    double t0 = bench_now();
    for (unsigned i = 0; i < nthreads; i++) {
        int rc = pthread_create(&th[i], NULL, worker_main, &w[i]);
        if (rc != 0) {
            fprintf(stderr, "rptest: pthread_create: %s\n", strerror(rc));
            return 2;
        }
    }
    for (unsigned i = 0; i < nthreads; i++)
        pthread_join(th[i], NULL);
    double t1 = bench_now();

    uint64_t made = 0, freed = 0, made_sum = 0, freed_sum = 0, content = 0, sent = 0, errors = 0;
    for (unsigned i = 0; i < nthreads; i++) {
        made += w[i].made;
        freed += w[i].freed;
        made_sum += w[i].made_sum;
        freed_sum += w[i].freed_sum;
        content += w[i].content;
        sent += w[i].sent;
        errors += w[i].errors;
    }
    if (made != freed || made_sum != freed_sum) {
        fprintf(stderr, "rptest: %" PRIu64 " blocks made, %" PRIu64 " freed intact\n", made, freed);
        errors++;
    }
    fprintf(stderr, "rptest: %u threads, %" PRIu64 " blocks, %" PRIu64 " batches handed over\n",
            nthreads, made, sent);
    uint64_t checksum = bench_mix_u64(bench_mix_u64(BENCH_FNV_OFFSET, content), freed);
    for (unsigned i = 0; i < nthreads; i++)
        pthread_mutex_destroy(&inboxes[i].lock);
    free(inboxes);
    free(w);
    free(th);
    bench_report_threads("rptest", nthreads, blocks, t1 - t0, checksum, errors);
    return errors ? 1 : 0;
}
