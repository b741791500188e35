/* larson: multi-threaded server workload with thread churn (after Larson &
 * Krishnan, "Memory allocation for long-running server applications",
 * ISMM 1998, and the larson benchmark derived from it).
 *
 * The work is divided into T lanes (T = thread count). Each lane owns a table
 * of NSLOTS live blocks. Every operation frees the block in a randomly chosen
 * slot and allocates a replacement of a random size into it:
 *
 *   90 %   16 .. 1024 bytes
 *   10 % 1025 .. 4096 bytes
 *
 * A lane is worked on by one thread at a time. After EPOCH_OPS operations
 * that thread hands the whole table to a newly created thread and exits; the
 * new thread joins its predecessor and carries on. So, as in the original
 * larson, blocks allocated by one thread are freed by another, and the
 * allocator sees a steady stream of threads that start, allocate, exit while
 * their blocks are still live, and whose blocks are later freed by somebody
 * else (heap abandonment and reclaim, remote frees, per-thread cache
 * teardown). The tables are first filled by the main thread, so the first
 * frees of every lane are cross-thread too.
 *
 * The total amount of work is fixed (not the run time): OPS operations in
 * all, split evenly over the lanes, so the time for that work is what is
 * reported and the checksum is comparable between allocators. Each lane has
 * its own fixed-seed PRNG and is processed strictly sequentially, so the
 * request sequence -- and the checksum, which is combined over the lanes in
 * lane order -- does not depend on scheduling. (It does depend on T, since
 * the work is split into T lanes.)
 *
 * Each new block gets a 64-bit tag in its first 8 bytes, its size (xor the
 * tag) in the next 4 and a tag-derived last byte; all three are checked before
 * the block is freed, as is 16-byte alignment. The checksum mixes the tags and
 * last bytes read back.
 *
 * Usage: larson THREADS [OPS]   (default OPS sized for ~1 s with glibc at
 *                                2 threads on a 2-core machine)
 * Output: one RESULT line, see bench_common.h. Exit 1 if any check failed.
 */
#include "bench_common.h"

#include <pthread.h>
#include <stdatomic.h>

#define NSLOTS 1000u       /* live blocks per lane */
#define EPOCH_OPS 10000u   /* operations per thread before the hand-off */
#define MIN_SIZE 16u
#define MAX_SMALL 1024u
#define MAX_SIZE 4096u
#define MAX_THREADS 256u
#define DEFAULT_OPS 30000000ULL

typedef struct {
    unsigned char *p;
    uint64_t tag;
    uint32_t size;
} slot;

typedef struct {
    char pad0[128]; /* keep lanes' hot fields on separate cache lines */
    slot slots[NSLOTS];
    bench_rng rng;
    unsigned idx;
    uint64_t serial;
    uint64_t ops_left;
    uint64_t checksum;
    uint64_t errors;
    uint64_t threads; /* threads that have worked on this lane */
    pthread_t prev;   /* predecessor, to be joined by the next thread */
    int has_prev;
    pthread_t last; /* the thread that finished the lane */
    char pad1[128];
} lane;

static pthread_mutex_t done_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t done_cond = PTHREAD_COND_INITIALIZER;
static unsigned lanes_done;
static atomic_uint errors_printed;

static uint32_t pick_size(bench_rng *r) {
    uint64_t x = bench_rng_next(r);
    uint64_t v = x >> 16;
    if (x % 100u < 90u)
        return MIN_SIZE + (uint32_t)(v % (MAX_SMALL - MIN_SIZE + 1u));
    return MAX_SMALL + 1u + (uint32_t)(v % (MAX_SIZE - MAX_SMALL));
}

static inline uint64_t make_tag(uint64_t x) {
    return bench_tag(x);
}

static void report_error(lane *L, const char *what, const slot *s) {
    if (atomic_fetch_add(&errors_printed, 1u) < 10u)
        fprintf(stderr, "larson: lane %u: %s (block %p size %u)\n", L->idx, what,
                (void *)s->p, (unsigned)s->size);
    L->errors++;
}

static void alloc_into(lane *L, slot *s) {
    s->size = pick_size(&L->rng);
    s->p = malloc(s->size);
    if (!s->p)
        bench_oom("malloc", s->size);
    if (((uintptr_t)s->p & 15u) != 0)
        report_error(L, "misaligned block", s);
    s->tag = make_tag(((uint64_t)L->idx << 48) ^ L->serial++);
    uint32_t sz = s->size ^ (uint32_t)s->tag;
    memcpy(s->p, &s->tag, sizeof s->tag);
    memcpy(s->p + 8, &sz, sizeof sz);
    s->p[s->size - 1] = (unsigned char)(s->tag ^ 0xA5u);
}

static void check_and_free(lane *L, slot *s) {
    uint64_t tag;
    uint32_t sz;
    memcpy(&tag, s->p, sizeof tag);
    memcpy(&sz, s->p + 8, sizeof sz);
    unsigned char last = s->p[s->size - 1];
    if (tag != s->tag)
        report_error(L, "tag overwritten", s);
    if ((sz ^ (uint32_t)s->tag) != s->size)
        report_error(L, "size field overwritten", s);
    if (last != (unsigned char)(s->tag ^ 0xA5u))
        report_error(L, "last byte overwritten", s);
    L->checksum = bench_mix_u64(L->checksum, tag);
    L->checksum = bench_mix_byte(L->checksum, last);
    free(s->p);
    s->p = NULL;
}

static void *lane_thread(void *arg) {
    lane *L = arg;
    if (L->has_prev) {
        int rc = pthread_join(L->prev, NULL);
        if (rc != 0) {
            fprintf(stderr, "larson: pthread_join: %s\n", strerror(rc));
            exit(2);
        }
    }
    L->threads++;

    uint64_t n = L->ops_left < EPOCH_OPS ? L->ops_left : EPOCH_OPS;
    for (uint64_t i = 0; i < n; i++) {
        slot *s = &L->slots[bench_rng_below(&L->rng, NSLOTS)];
        check_and_free(L, s);
        alloc_into(L, s);
    }
    L->ops_left -= n;

    if (L->ops_left > 0) {
        /* hand the table to a new thread; it joins us */
        L->prev = pthread_self();
        L->has_prev = 1;
        pthread_t next;
        int rc = pthread_create(&next, NULL, lane_thread, L);
        if (rc != 0) {
            fprintf(stderr, "larson: pthread_create: %s\n", strerror(rc));
            exit(2);
        }
        return NULL; /* L belongs to the new thread now */
    }

    for (unsigned i = 0; i < NSLOTS; i++)
        check_and_free(L, &L->slots[i]);
    L->last = pthread_self();
    pthread_mutex_lock(&done_lock);
    lanes_done++;
    pthread_cond_signal(&done_cond);
    pthread_mutex_unlock(&done_lock);
    return NULL;
}

int main(int argc, char **argv) {
    static const char usage[] = "usage: larson THREADS [OPS]";
    unsigned nthreads = (unsigned)bench_parse_arg(argc, argv, 1, 0, MAX_THREADS, usage);
    uint64_t ops = bench_parse_arg(argc, argv, 2, DEFAULT_OPS, 0, usage);
    if (argc > 3) {
        fprintf(stderr, "%s\n", usage);
        return 2;
    }

    lane *lanes = calloc(nthreads, sizeof *lanes);
    if (!lanes)
        bench_oom("calloc", nthreads * sizeof *lanes);

    double t0 = bench_now();

    /* the main thread fills every table, as in the original larson */
    for (unsigned t = 0; t < nthreads; t++) {
        lane *L = &lanes[t];
        L->idx = t;
        bench_rng_seed(&L->rng, 0x2545F4914F6CDD1DULL ^ ((uint64_t)(t + 1) * 0x9E3779B97F4A7C15ULL));
        L->checksum = BENCH_FNV_OFFSET;
        L->ops_left = ops / nthreads + (t < ops % nthreads ? 1u : 0u);
        for (unsigned i = 0; i < NSLOTS; i++)
            alloc_into(L, &L->slots[i]);
    }
    for (unsigned t = 0; t < nthreads; t++) {
        pthread_t th;
        int rc = pthread_create(&th, NULL, lane_thread, &lanes[t]);
        if (rc != 0) {
            fprintf(stderr, "larson: pthread_create: %s\n", strerror(rc));
            return 2;
        }
    }
    pthread_mutex_lock(&done_lock);
    while (lanes_done < nthreads)
        pthread_cond_wait(&done_cond, &done_lock);
    pthread_mutex_unlock(&done_lock);
    for (unsigned t = 0; t < nthreads; t++)
        pthread_join(lanes[t].last, NULL);

    double t1 = bench_now();

    uint64_t checksum = BENCH_FNV_OFFSET, errors = 0, threads_total = 0;
    for (unsigned t = 0; t < nthreads; t++) {
        checksum = bench_mix_u64(checksum, lanes[t].checksum);
        errors += lanes[t].errors;
        threads_total += lanes[t].threads;
    }
    fprintf(stderr, "larson: %u lanes, %" PRIu64 " worker threads created in total\n",
            nthreads, threads_total);
    free(lanes);

    bench_report_threads("larson", nthreads, ops, t1 - t0, checksum, errors);
    return errors ? 1 : 0;
}
