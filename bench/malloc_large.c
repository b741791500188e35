/* malloc_large: single-threaded allocation of very large blocks (5-25 MiB)
 * that are touched only in part.
 *
 * Follows the allocation shape of malloc-large from mimalloc-bench: a small
 * table of buffers of 5 to 25 MiB, one of which is replaced by a new buffer
 * of a random size in every iteration -- the pattern of programs that
 * allocate whole-file buffers, image planes or arenas of their own. Own
 * code; the table size and the touching scheme are this file's.
 *
 * NSLOTS slots; every iteration picks one at random, checks and frees the
 * buffer in it (if any) and allocates a new one of a uniform random size in
 * [5 MiB, 25 MiB]. Like most real users of such buffers the program writes
 * only part of each: the standard pattern (bench_common.h) over the first
 * 4 KiB, one 8-byte word every STRIDE bytes (a tag-derived value) and the
 * last byte -- about 6 % of the pages. All of it is read back and checked
 * before the buffer is freed, as is 16-byte alignment.
 *
 * What it measures: how the allocator gets and returns huge blocks (a
 * mapping per block, reuse of freed address space, in-place reuse of a
 * bigger freed block), the page faults on touched memory that is fresh from
 * the kernel, and how much of the untouched or freed memory is counted in
 * the peak RSS.
 *
 * Usage: malloc_large [iterations]   (default sized for ~1 s with glibc)
 * Output: one RESULT line, see bench_common.h. Exit 1 if any check failed.
 */
#include "bench_common.h"

#define NSLOTS 20u
#define MIN_SIZE (5u << 20)
#define MAX_SIZE (25u << 20)
#define HEAD 4096u
#define STRIDE 65536u
#define DEFAULT_ITERS 5000ULL

typedef struct {
    unsigned char *p;
    size_t size;
    uint64_t tag;
} slot;

static slot slots[NSLOTS];
static uint64_t errors;
static uint64_t checksum = BENCH_FNV_OFFSET;

static inline uint64_t stride_word(uint64_t tag, size_t off) {
    return bench_tag(tag ^ off);
}

static void fill(slot *s) {
    bench_block_fill(s->p, s->size, s->tag, HEAD);
    for (size_t off = STRIDE; off + 8 <= s->size - 1; off += STRIDE) {
        uint64_t v = stride_word(s->tag, off);
        memcpy(s->p + off, &v, sizeof v);
    }
}

static void check_free(slot *s) {
    unsigned bad = bench_block_check(s->p, s->size, s->tag, HEAD, &checksum);
    for (size_t off = STRIDE; off + 8 <= s->size - 1; off += STRIDE) {
        uint64_t v;
        memcpy(&v, s->p + off, sizeof v);
        bad += v != stride_word(s->tag, off);
        checksum = bench_mix_u64(checksum, v);
    }
    if (bad) {
        if (errors < 10)
            fprintf(stderr, "malloc_large: buffer %p (size %zu) damaged while live\n",
                    (void *)s->p, s->size);
        errors++;
    }
    free(s->p);
    s->p = NULL;
}

int main(int argc, char **argv) {
    uint64_t iters = bench_parse_iters(argc, argv, DEFAULT_ITERS);
    bench_rng rng;
    bench_rng_seed(&rng, 0x2545F4914F6CDD1DULL);

    double t0 = bench_now();
    for (uint64_t it = 0; it < iters; it++) {
        slot *s = &slots[bench_rng_below(&rng, NSLOTS)];
        if (s->p)
            check_free(s);
        s->size = MIN_SIZE + (size_t)bench_rng_below(&rng, MAX_SIZE - MIN_SIZE + 1u);
        s->tag = bench_tag(it);
        s->p = malloc(s->size);
        if (!s->p)
            bench_oom("malloc", s->size);
        if (((uintptr_t)s->p & 15u) != 0) {
            fprintf(stderr, "malloc_large: misaligned buffer %p\n", (void *)s->p);
            errors++;
        }
        fill(s);
    }
    for (unsigned i = 0; i < NSLOTS; i++)
        if (slots[i].p)
            check_free(&slots[i]);
    double t1 = bench_now();

    bench_report("malloc_large", iters, t1 - t0, checksum, errors);
    return errors ? 1 : 0;
}
