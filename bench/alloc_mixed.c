/* alloc_mixed: single-threaded malloc/free churn of mixed small sizes.
 *
 * Models the steady state of a typical C program: a working set of WS live
 * blocks (a few thousand) in which, every iteration, one randomly chosen
 * block is freed and replaced by a new block of a random size:
 *
 *   60 %   8 ..  128 bytes
 *   32 % 129 .. 1024 bytes
 *    8 %  1 KiB .. 8 KiB
 *
 * Each new block gets a 64-bit tag in its first 8 bytes, its first
 * min(size, 64) bytes are written (so the allocator's memory is actually
 * touched, as a real program would) and its last byte is written too. When the
 * block is freed the tag, one filler byte and the last byte are read back and
 * checked: overlapping blocks, short allocations or a free list that hands
 * out live memory show up as errors (and as a different checksum).
 * Alignment is checked as well (16 bytes for sizes >= 16, 8 below).
 *
 * Usage: alloc_mixed [iterations]   (default sized for ~1 s with glibc)
 * Output: one RESULT line, see bench_common.h. Exit 1 if any check failed.
 */
#include "bench_common.h"

#define WS 4096u /* live working-set size (power of two) */
#define TOUCH 64u /* bytes written at the start of each block */
#define DEFAULT_ITERS 25000000ULL

typedef struct {
    unsigned char *p;
    size_t size;
    uint64_t tag;
} slot;

static slot slots[WS];
static uint64_t errors;
static uint64_t checksum = BENCH_FNV_OFFSET;

static size_t pick_size(bench_rng *r) {
    uint64_t x = bench_rng_next(r);
    unsigned bucket = (unsigned)(x % 100u);
    uint64_t v = x >> 16;
    if (bucket < 60)
        return 8 + (size_t)(v % 121u); /* 8..128 */
    if (bucket < 92)
        return 129 + (size_t)(v % 896u); /* 129..1024 */
    return 1025 + (size_t)(v % 7168u); /* 1025..8192 */
}

static inline uint64_t make_tag(uint64_t serial) {
    return bench_tag(serial);
}

static void report_error(const char *what, const slot *s) {
    if (errors < 10)
        fprintf(stderr, "alloc_mixed: %s (block %p size %zu)\n", what, (void *)s->p,
                s->size);
    errors++;
}

static void fill_block(slot *s, uint64_t serial) {
    size_t size = s->size;
    unsigned char *p = s->p;
    size_t align = size >= 16 ? 16 : 8;
    if (((uintptr_t)p & (align - 1)) != 0)
        report_error("misaligned block", s);
    s->tag = make_tag(serial);
    memcpy(p, &s->tag, sizeof s->tag);
    size_t n = size < TOUCH ? size : TOUCH;
    memset(p + 8, (int)(s->tag >> 56), n - 8);
    if (size > 8) /* for size 8 the last byte belongs to the tag */
        p[size - 1] = (unsigned char)(s->tag ^ 0xA5u);
}

/* Expected content of byte i (>= 8) of a block written by fill_block. */
static inline unsigned char expected_byte(const slot *s, size_t i) {
    return i == s->size - 1 ? (unsigned char)(s->tag ^ 0xA5u)
                            : (unsigned char)(s->tag >> 56);
}

static void check_and_free(slot *s) {
    uint64_t got;
    memcpy(&got, s->p, sizeof got);
    if (got != s->tag)
        report_error("tag overwritten", s);
    unsigned char mid = 0, last = 0;
    if (s->size > 8) {
        mid = s->p[8];
        last = s->p[s->size - 1];
        if (mid != expected_byte(s, 8))
            report_error("filler byte overwritten", s);
        if (last != expected_byte(s, s->size - 1))
            report_error("last byte overwritten", s);
    }
    checksum = bench_mix_u64(checksum, got);
    checksum = bench_mix_byte(checksum, last);
    checksum = bench_mix_byte(checksum, mid);
    free(s->p);
    s->p = NULL;
}

int main(int argc, char **argv) {
    uint64_t iters = bench_parse_iters(argc, argv, DEFAULT_ITERS);
    bench_rng rng;
    bench_rng_seed(&rng, 0x2545F4914F6CDD1DULL);
    uint64_t serial = 0;

    double t0 = bench_now();

    for (unsigned i = 0; i < WS; i++) {
        slot *s = &slots[i];
        s->size = pick_size(&rng);
        s->p = malloc(s->size);
        if (!s->p)
            bench_oom("malloc", s->size);
        fill_block(s, serial++);
    }

    for (uint64_t it = 0; it < iters; it++) {
        slot *s = &slots[bench_rng_next(&rng) & (WS - 1)];
        check_and_free(s);
        s->size = pick_size(&rng);
        s->p = malloc(s->size);
        if (!s->p)
            bench_oom("malloc", s->size);
        fill_block(s, serial++);
    }

    for (unsigned i = 0; i < WS; i++)
        check_and_free(&slots[i]);

    double t1 = bench_now();

    bench_report("alloc_mixed", iters, t1 - t0, checksum, errors);
    return errors ? 1 : 0;
}
