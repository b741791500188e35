/* large_mt: threads that allocate and free large buffers (I/O buffers,
 * decoded images, compression windows) of 128 KiB to 512 KiB.
 *
 * The work is divided into T lanes (T = thread count), one thread per lane.
 * Each lane owns a table of NSLOTS slots. Every operation picks a random slot,
 * verifies and frees the block in it (if any), and allocates a replacement of
 * a random size, uniform in [MIN_SIZE, MAX_SIZE] = [128 KiB + 1, 512 KiB]
 * bytes, into it. There is no cross-thread hand-off: every block is freed by
 * the thread that allocated it, so what is measured is the allocator's large
 * block path itself and whatever state it shares between threads for it. The
 * slots that are still occupied when a lane's operations are done are
 * verified and freed by the lane's thread at the end.
 *
 * A real program touches the memory it asks for, so every new block is
 * written to on each of its 4 KiB pages: a 16-byte tag derived from (lane,
 * serial number) at offset 0, the size at offset 16, a tag-derived byte at
 * every multiple of PAGE_STRIDE bytes and a tag-derived last byte. Page faults
 * on memory that is fresh from the kernel (or was returned to it and has to
 * be faulted in again) are therefore part of the measurement. Before a block
 * is freed all of these are read back and checked, as is 16-byte alignment.
 *
 * The total amount of work is fixed (not the run time): OPS operations in
 * all, split evenly over the lanes. Each lane has its own fixed-seed PRNG and
 * its own checksum, which mixes the tags, sizes and bytes read back; the
 * lanes' checksums are combined in lane order, so the checksum does not
 * depend on scheduling. (It does depend on T, since the work is split into T
 * lanes.)
 *
 * Usage: large_mt THREADS [OPS]   (default OPS sized for ~1 s with glibc at
 *                                  2 threads on a 2-core machine)
 * Output: one RESULT line, see bench_common.h. Exit 1 if any check failed.
 */
#include "bench_common.h"

#include <pthread.h>
#include <stdatomic.h>

#define NSLOTS 64u                     /* live blocks per lane (at most) */
#define MIN_SIZE (131072u + 1u)        /* just above 128 KiB */
#define MAX_SIZE (131072u + 393216u)   /* 512 KiB */
#define PAGE_STRIDE 4096u              /* one written byte per 4 KiB page */
#define HDR_SIZE 24u                   /* 16-byte tag + 8-byte size */
#define MAX_THREADS 256u
#define DEFAULT_OPS 300000ULL

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
    uint64_t ops;
    uint64_t checksum;
    uint64_t errors;
    char pad1[128];
} lane;

static atomic_uint errors_printed;

static inline uint64_t make_tag(uint64_t x) {
    return bench_tag(x);
}

/* Second half of the 16-byte tag. */
static inline uint64_t tag_hi(uint64_t tag) {
    return ~tag ^ 0x5DEECE66DULL;
}

/* Byte written at offset k * PAGE_STRIDE (k >= 1). */
static inline unsigned char page_byte(uint64_t tag, uint32_t k) {
    return (unsigned char)((tag >> ((k & 7u) * 8u)) + k);
}

static inline unsigned char last_byte(uint64_t tag) {
    return (unsigned char)(tag ^ 0xA5u);
}

static uint32_t pick_size(bench_rng *r) {
    return MIN_SIZE + (uint32_t)bench_rng_below(r, MAX_SIZE - MIN_SIZE + 1u);
}

static void report_error(lane *L, const char *what, const slot *s) {
    if (atomic_fetch_add(&errors_printed, 1u) < 10u)
        fprintf(stderr, "large_mt: lane %u: %s (block %p size %u)\n", L->idx, what,
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
    uint64_t hi = tag_hi(s->tag), sz = s->size;
    memcpy(s->p, &s->tag, sizeof s->tag);
    memcpy(s->p + 8, &hi, sizeof hi);
    memcpy(s->p + 16, &sz, sizeof sz);
    uint32_t k = 1;
    for (uint32_t off = PAGE_STRIDE; off < s->size - 1u; off += PAGE_STRIDE, k++)
        s->p[off] = page_byte(s->tag, k);
    s->p[s->size - 1u] = last_byte(s->tag);
}

static void check_and_free(lane *L, slot *s) {
    if (!s->p)
        return;
    uint64_t tag, hi, sz;
    memcpy(&tag, s->p, sizeof tag);
    memcpy(&hi, s->p + 8, sizeof hi);
    memcpy(&sz, s->p + 16, sizeof sz);
    if (tag != s->tag || hi != tag_hi(s->tag))
        report_error(L, "tag overwritten", s);
    if (sz != s->size)
        report_error(L, "size field overwritten", s);
    uint64_t h = bench_mix_u64(L->checksum, tag);
    h = bench_mix_u64(h, hi);
    h = bench_mix_u64(h, sz);
    int page_bad = 0;
    uint32_t k = 1;
    for (uint32_t off = PAGE_STRIDE; off < s->size - 1u; off += PAGE_STRIDE, k++) {
        unsigned char b = s->p[off];
        if (b != page_byte(s->tag, k))
            page_bad = 1;
        h = bench_mix_byte(h, b);
    }
    if (page_bad)
        report_error(L, "page byte overwritten", s);
    unsigned char last = s->p[s->size - 1u];
    if (last != last_byte(s->tag))
        report_error(L, "last byte overwritten", s);
    L->checksum = bench_mix_byte(h, last);
    free(s->p);
    s->p = NULL;
}

static void *lane_thread(void *arg) {
    lane *L = arg;
    for (uint64_t i = 0; i < L->ops; i++) {
        slot *s = &L->slots[bench_rng_below(&L->rng, NSLOTS)];
        check_and_free(L, s);
        alloc_into(L, s);
    }
    for (unsigned i = 0; i < NSLOTS; i++)
        check_and_free(L, &L->slots[i]);
    return NULL;
}

int main(int argc, char **argv) {
    static const char usage[] = "usage: large_mt THREADS [OPS]";
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
        bench_rng_seed(&L->rng, 0x2545F4914F6CDD1DULL ^ ((uint64_t)(t + 1) * 0x9E3779B97F4A7C15ULL));
        L->checksum = BENCH_FNV_OFFSET;
        L->ops = ops / nthreads + (t < ops % nthreads ? 1u : 0u);
    }

    double t0 = bench_now();

    for (unsigned t = 0; t < nthreads; t++) {
        int rc = pthread_create(&th[t], NULL, lane_thread, &lanes[t]);
        if (rc != 0) {
            fprintf(stderr, "large_mt: pthread_create: %s\n", strerror(rc));
            return 2;
        }
    }
    for (unsigned t = 0; t < nthreads; t++) {
        int rc = pthread_join(th[t], NULL);
        if (rc != 0) {
            fprintf(stderr, "large_mt: pthread_join: %s\n", strerror(rc));
            return 2;
        }
    }

    double t1 = bench_now();

    uint64_t checksum = BENCH_FNV_OFFSET, errors = 0, blocks = 0;
    for (unsigned t = 0; t < nthreads; t++) {
        checksum = bench_mix_u64(checksum, lanes[t].checksum);
        errors += lanes[t].errors;
        blocks += lanes[t].serial;
    }
    fprintf(stderr, "large_mt: %u lanes, %" PRIu64 " blocks of %u..%u bytes\n", nthreads,
            blocks, (unsigned)MIN_SIZE, (unsigned)MAX_SIZE);
    free(th);
    free(lanes);

    bench_report_threads("large_mt", nthreads, ops, t1 - t0, checksum, errors);
    return errors ? 1 : 0;
}
