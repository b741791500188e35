/* realloc_heavy: single-threaded realloc-driven growth and shrinking.
 *
 * Models string builders, dynamic arrays and I/O buffers. NACTIVE buffers are
 * live at any time; every iteration advances one randomly chosen buffer by
 * one growth step. There are three kinds of buffer:
 *
 *   exact     (45 %): realloc(p, len + n) on every append of 1..64 bytes,
 *                     as naive string-building code does; final size
 *                     16 B .. 16 KiB (log-uniform).
 *   amortized (35 %): appends of 1..max(256, capacity/4) bytes into a
 *                     capacity that doubles when full (std::vector / sds /
 *                     GString / read-into-growing-buffer style);
 *                     final size 64 B .. 1 MiB (log-uniform).
 *   doubling  (20 %): the buffer doubles on every step, from 16 B up to a
 *                     final size of 16 B .. 1 MiB (log-uniform), e.g. a
 *                     read-whole-file loop.
 *
 * Appended bytes are really written (a per-buffer pattern, 64-byte runs),
 * so realloc's copy cost is part of what is measured, as in real code. When a
 * buffer reaches its final size its contents are verified (sampled), it is
 * shrunk with realloc to 1/2 and then to 1/8 of its size (verifying the kept
 * prefix each time) and freed, and a new buffer of a random kind takes its
 * place. After every growing realloc the first byte and the last previously
 * written byte are checked, so a realloc that loses or misplaces data is
 * caught immediately.
 *
 * Between growth steps, half of the iterations also replace one block in a
 * ring of NSMALL small (16..512 B) allocations, so the heap is never
 * trivially empty and in-place growth is sometimes blocked by a neighbour.
 *
 * Usage: realloc_heavy [iterations]   (default sized for ~1 s with glibc)
 * Output: one RESULT line, see bench_common.h. Exit 1 if any check failed.
 */
#include "bench_common.h"

#define NACTIVE 32u
#define NSMALL 2048u
#define DEFAULT_ITERS 1300000ULL

enum kind { K_EXACT, K_AMORTIZED, K_DOUBLING };

typedef struct {
    unsigned char *p;
    size_t len;    /* bytes written (valid content) */
    size_t cap;    /* bytes requested from the allocator */
    size_t target; /* final length */
    uint32_t id;
    enum kind kind;
} buffer;

typedef struct {
    unsigned char *p;
    size_t size;
    uint64_t tag;
} small_block;

static buffer bufs[NACTIVE];
static small_block smalls[NSMALL];
static uint64_t errors;
static uint64_t checksum = BENCH_FNV_OFFSET;
static uint32_t next_id = 1;
static uint64_t n_realloc, n_finished, bytes_appended;

/* Content of byte i of buffer `id`: one value per 64-byte run. */
static inline unsigned char pat(uint32_t id, size_t i) {
    uint32_t x = id * 0x9E3779B1u + (uint32_t)(i >> 6) * 0x85EBCA77u;
    x ^= x >> 13;
    x *= 0xC2B2AE35u;
    x ^= x >> 16;
    return (unsigned char)x;
}

static void fill_pattern(unsigned char *p, uint32_t id, size_t from, size_t to) {
    size_t i = from;
    while (i < to) {
        size_t end = ((i >> 6) + 1) << 6;
        if (end > to)
            end = to;
        memset(p + i, pat(id, i), end - i);
        i = end;
    }
}

static void fail(const char *what, const buffer *b, size_t at) {
    if (errors < 10)
        fprintf(stderr,
                "realloc_heavy: %s (buffer id %u kind %d ptr %p len %zu at %zu)\n",
                what, b->id, (int)b->kind, (void *)b->p, b->len, at);
    errors++;
}

static inline void check_byte(const buffer *b, size_t i, const char *what) {
    unsigned char got = b->p[i];
    checksum = bench_mix_byte(checksum, got);
    if (got != pat(b->id, i))
        fail(what, b, i);
}

/* Sampled verification of [0, len): both ends of every 4th 64-byte run, and
 * the last byte. */
static void verify(const buffer *b, size_t len, const char *what) {
    if (len == 0)
        return;
    for (size_t run = 0; run < len; run += 256) {
        check_byte(b, run, what);
        size_t e = run + 63 < len ? run + 63 : len - 1;
        check_byte(b, e, what);
    }
    check_byte(b, len - 1, what);
}

/* Log-uniform size in [lo, hi]. */
static size_t log_uniform(bench_rng *r, size_t lo, size_t hi) {
    unsigned span = 0;
    while ((lo << (span + 1)) <= hi)
        span++;
    unsigned k = (unsigned)bench_rng_below(r, span + 1);
    size_t base = lo << k;
    size_t top = base * 2 - 1 < hi ? base * 2 - 1 : hi;
    return base + (size_t)bench_rng_below(r, top - base + 1);
}

static void *xrealloc(void *p, size_t n) {
    void *q = realloc(p, n);
    if (!q)
        bench_oom("realloc", n);
    n_realloc++;
    return q;
}

static void start_buffer(buffer *b, bench_rng *r) {
    unsigned k = (unsigned)bench_rng_below(r, 100);
    b->id = next_id++;
    b->p = NULL;
    b->len = b->cap = 0;
    if (k < 45) {
        b->kind = K_EXACT;
        b->target = log_uniform(r, 16, 16 << 10);
    } else if (k < 80) {
        b->kind = K_AMORTIZED;
        b->target = log_uniform(r, 64, 1 << 20);
    } else {
        b->kind = K_DOUBLING;
        b->target = log_uniform(r, 16, 1 << 20);
    }
}

static void finish_buffer(buffer *b) {
    verify(b, b->len, "content lost while growing");
    /* shrink to 1/2, then to 1/8 (at least 16 bytes), keeping the prefix */
    size_t half = b->len / 2 > 16 ? b->len / 2 : 16;
    if (half < b->len) {
        b->p = xrealloc(b->p, half);
        b->len = b->cap = half;
        verify(b, b->len, "content lost by shrinking realloc (1/2)");
    }
    size_t eighth = b->len / 4 > 16 ? b->len / 4 : 16;
    if (eighth < b->len) {
        b->p = xrealloc(b->p, eighth);
        b->len = b->cap = eighth;
        verify(b, b->len, "content lost by shrinking realloc (1/8)");
    }
    checksum = bench_mix_u64(checksum, b->id);
    free(b->p);
    b->p = NULL;
    n_finished++;
}

/* Advance buffer b by one growth step. */
static void grow_step(buffer *b, bench_rng *r) {
    size_t old = b->len, newlen;
    switch (b->kind) {
    case K_EXACT:
        newlen = old + 1 + (size_t)bench_rng_below(r, 64);
        if (newlen > b->target)
            newlen = b->target;
        b->p = xrealloc(b->p, newlen);
        b->cap = newlen;
        break;
    case K_AMORTIZED:
        /* appends of 1..max(256, cap/4) bytes: several appends per
         * capacity doubling even for large buffers */
        newlen = old + 1 + (size_t)bench_rng_below(r, b->cap / 4 > 256 ? b->cap / 4 : 256);
        if (newlen > b->target)
            newlen = b->target;
        if (newlen > b->cap) {
            size_t cap = b->cap ? b->cap : 16;
            while (cap < newlen)
                cap *= 2;
            b->p = xrealloc(b->p, cap);
            b->cap = cap;
        }
        break;
    default: /* K_DOUBLING */
        newlen = old ? old * 2 : 16;
        if (newlen > b->target)
            newlen = b->target;
        b->p = xrealloc(b->p, newlen);
        b->cap = newlen;
        break;
    }
    if (old) { /* the data written so far must have survived the realloc */
        if (b->p[0] != pat(b->id, 0))
            fail("first byte lost by growing realloc", b, 0);
        if (b->p[old - 1] != pat(b->id, old - 1))
            fail("last byte lost by growing realloc", b, old - 1);
    }
    fill_pattern(b->p, b->id, old, newlen);
    bytes_appended += newlen - old;
    b->len = newlen;
}

static void small_churn(bench_rng *r) {
    small_block *s = &smalls[bench_rng_below(r, NSMALL)];
    if (s->p) {
        uint64_t got;
        memcpy(&got, s->p, sizeof got);
        if (got != s->tag || s->p[s->size - 1] != (unsigned char)s->tag) {
            if (errors < 10)
                fprintf(stderr, "realloc_heavy: small block %p corrupted\n",
                        (void *)s->p);
            errors++;
        }
        checksum = bench_mix_u64(checksum, got);
        free(s->p);
    }
    s->size = 16 + (size_t)bench_rng_below(r, 497);
    s->p = malloc(s->size);
    if (!s->p)
        bench_oom("malloc", s->size);
    s->tag = bench_rng_next(r);
    memcpy(s->p, &s->tag, sizeof s->tag);
    s->p[s->size - 1] = (unsigned char)s->tag;
}

int main(int argc, char **argv) {
    uint64_t iters = bench_parse_iters(argc, argv, DEFAULT_ITERS);
    bench_rng rng;
    bench_rng_seed(&rng, 0x5DEECE66DULL);

    double t0 = bench_now();

    for (unsigned i = 0; i < NSMALL / 2; i++)
        small_churn(&rng);
    for (unsigned i = 0; i < NACTIVE; i++)
        start_buffer(&bufs[i], &rng);

    for (uint64_t it = 0; it < iters; it++) {
        buffer *b = &bufs[bench_rng_below(&rng, NACTIVE)];
        grow_step(b, &rng);
        if (b->len >= b->target) {
            finish_buffer(b);
            start_buffer(b, &rng);
        }
        if (bench_rng_next(&rng) & 1)
            small_churn(&rng);
    }

    for (unsigned i = 0; i < NACTIVE; i++) {
        buffer *b = &bufs[i];
        if (b->p) {
            verify(b, b->len, "content lost while growing");
            free(b->p);
            b->p = NULL;
        }
    }
    for (unsigned i = 0; i < NSMALL; i++) {
        free(smalls[i].p);
        smalls[i].p = NULL;
    }

    double t1 = bench_now();

    checksum = bench_mix_u64(checksum, n_realloc);
    checksum = bench_mix_u64(checksum, n_finished);
    checksum = bench_mix_u64(checksum, bytes_appended);
    fprintf(stderr, "realloc_heavy: %" PRIu64 " reallocs, %" PRIu64
                    " buffers completed, %" PRIu64 " MiB appended\n",
            n_realloc, n_finished, bytes_appended >> 20);
    bench_report("realloc_heavy", iters, t1 - t0, checksum, errors);
    return errors ? 1 : 0;
}
