/* espresso: single-threaded set-family manipulation in the style of a
 * two-level logic minimiser.
 *
 * Follows the allocation shape of the espresso benchmark (the Berkeley logic
 * minimiser run on a PLA, one of the classic Zorn/Grunwald allocation
 * workloads kept in mimalloc-bench): many small heap objects -- cubes,
 * i.e. bit vectors of a few machine words -- that are made and freed at a
 * high rate while covers (growable arrays of cube pointers) are built with
 * realloc one element at a time, compacted and shrunk, and a minority of
 * covers live much longer than the rest. It is not espresso: the passes
 * below are a caricature of expand / reduce / irredundant written for this
 * file, chosen for the allocation pattern, not for minimising anything.
 *
 * One iteration is a pass over a cover F of 24-63 cubes of W = 1-6 words:
 *
 *   - build F: half fresh random cubes, half copies of cubes of a random
 *     cover from a pool of POOL older results (when it has the same W);
 *   - consensus: G = the pairwise intersections of nearby cubes of F
 *     (each a new cube; too-small ones are freed at once), appended to G
 *     with realloc as G grows (capacity 4, 8, 16, ...);
 *   - irredundant: cubes of G contained in a nearby cube of G are freed and
 *     G is compacted, then its array is shrunk with realloc when it is less
 *     than half full;
 *   - expand: every cube of G is replaced by a new cube with one more bit
 *     (the old one freed);
 *   - G replaces a random cover of the pool (freed with all its cubes); F is
 *     freed.
 *
 * Objects: cubes of 24-64 bytes, cover headers of 24 bytes, cover arrays of
 * 32 bytes to a few KiB. Every cube carries a tag and a check word (a hash
 * of tag, length and bits) computed when it is made -- cubes are never
 * changed afterwards -- and verified when it is freed; every cover is
 * checked (count, capacity, each cube) when it is freed. The checksum mixes
 * the size and bits of every result cover, so it depends only on the
 * request sequence.
 *
 * Usage: espresso [passes]   (default sized for ~1 s with glibc)
 * Output: one RESULT line, see bench_common.h. Exit 1 if any check failed.
 */
#include "bench_common.h"

#define DEFAULT_PASSES 40000ULL
#define POOL 128u
#define MAXW 6u
#define WINDOW 8u

typedef struct {
    uint64_t tag;
    uint32_t nw;
    uint32_t check;
    uint64_t w[];
} cube;

typedef struct {
    cube **c;
    uint32_t n, cap;
    uint32_t nw;
    uint32_t magic;
} cover;

#define COVER_MAGIC 0xC0FEC0DEu

static uint64_t serial;
static uint64_t errors;
static uint64_t nrealloc;

static void fail(const char *what) {
    if (errors < 10)
        fprintf(stderr, "espresso: %s\n", what);
    errors++;
}

static uint32_t cube_hash(const cube *x) {
    uint64_t h = x->tag ^ x->nw;
    for (uint32_t i = 0; i < x->nw; i++)
        h = (h ^ x->w[i]) * 0x9E3779B97F4A7C15ULL;
    return (uint32_t)(h ^ (h >> 29));
}

static cube *cube_new(uint32_t nw) {
    size_t size = sizeof(cube) + (size_t)nw * sizeof(uint64_t);
    cube *x = malloc(size);
    if (!x)
        bench_oom("malloc", size);
    x->tag = bench_tag(serial++);
    x->nw = nw;
    return x;
}

static cube *cube_seal(cube *x) {
    x->check = cube_hash(x);
    return x;
}

static void cube_free(cube *x) {
    if (x->nw == 0 || x->nw > MAXW || x->check != cube_hash(x))
        fail("cube damaged while live (check word mismatch)");
    free(x);
}

static unsigned cube_bits(const cube *x) {
    unsigned n = 0;
    for (uint32_t i = 0; i < x->nw; i++)
        n += (unsigned)__builtin_popcountll(x->w[i]);
    return n;
}

static cover *cover_new(uint32_t nw) {
    cover *f = malloc(sizeof *f);
    if (!f)
        bench_oom("malloc", sizeof *f);
    f->c = NULL;
    f->n = f->cap = 0;
    f->nw = nw;
    f->magic = COVER_MAGIC;
    return f;
}

static void cover_resize(cover *f, uint32_t cap) {
    cube **c = realloc(f->c, (size_t)cap * sizeof *c);
    if (!c)
        bench_oom("realloc", (size_t)cap * sizeof *c);
    nrealloc++;
    f->c = c;
    f->cap = cap;
}

static void cover_add(cover *f, cube *x) {
    if (f->n == f->cap)
        cover_resize(f, f->cap ? f->cap * 2 : 4);
    f->c[f->n++] = x;
}

static void cover_free(cover *f) {
    if (!f)
        return;
    if (f->magic != COVER_MAGIC || f->n > f->cap) {
        fail("cover header damaged");
        return; /* its contents cannot be trusted: leak them */
    }
    for (uint32_t i = 0; i < f->n; i++) {
        if (f->c[i]->nw != f->nw)
            fail("cube of the wrong width in a cover");
        cube_free(f->c[i]);
    }
    free(f->c);
    f->magic = 0;
    free(f);
}

static cube *random_cube(bench_rng *r, uint32_t nw) {
    cube *x = cube_new(nw);
    for (uint32_t i = 0; i < nw; i++)
        x->w[i] = bench_rng_next(r) | bench_rng_next(r); /* ~75 % ones */
    return cube_seal(x);
}

static cube *cube_copy(const cube *s) {
    cube *x = cube_new(s->nw);
    memcpy(x->w, s->w, (size_t)s->nw * sizeof(uint64_t));
    return cube_seal(x);
}

/* a contained in b */
static int contained(const cube *a, const cube *b) {
    for (uint32_t i = 0; i < a->nw; i++)
        if (a->w[i] & ~b->w[i])
            return 0;
    return 1;
}

static int equal(const cube *a, const cube *b) {
    return memcmp(a->w, b->w, (size_t)a->nw * sizeof(uint64_t)) == 0;
}

static cover *pool[POOL];

static uint64_t pass(bench_rng *r, uint64_t h) {
    uint32_t nw = 1 + (uint32_t)bench_rng_below(r, MAXW);
    uint32_t n = 24 + (uint32_t)bench_rng_below(r, 40);

    /* F: fresh cubes and copies of an older result */
    cover *F = cover_new(nw);
    const cover *old = pool[bench_rng_below(r, POOL)];
    for (uint32_t i = 0; i < n; i++) {
        if ((i & 1) && old && old->nw == nw && old->n > 0)
            cover_add(F, cube_copy(old->c[bench_rng_below(r, old->n)]));
        else
            cover_add(F, random_cube(r, nw));
    }

    /* consensus of nearby pairs */
    cover *G = cover_new(nw);
    unsigned min_bits = nw * 64u * 57u / 100u;
    for (uint32_t i = 0; i < F->n; i++) {
        for (uint32_t j = i + 1; j < F->n && j <= i + 4; j++) {
            cube *x = cube_new(nw);
            for (uint32_t k = 0; k < nw; k++)
                x->w[k] = F->c[i]->w[k] & F->c[j]->w[k];
            cube_seal(x);
            if (cube_bits(x) >= min_bits)
                cover_add(G, x);
            else
                cube_free(x);
        }
    }

    /* irredundant: drop cubes contained in one of the WINDOW cubes before or
     * after them (of two equal ones the later goes) */
    uint32_t kept = 0;
    for (uint32_t i = 0; i < G->n; i++) {
        cube *x = G->c[i];
        int redundant = 0;
        uint32_t lo = i > WINDOW ? i - WINDOW : 0, hi = i + WINDOW < G->n ? i + WINDOW : G->n;
        for (uint32_t j = lo; j < hi && !redundant; j++) {
            if (j == i || !G->c[j])
                continue;
            if (contained(x, G->c[j]) && (j < i || !equal(x, G->c[j])))
                redundant = 1;
        }
        if (redundant) {
            cube_free(x);
            G->c[i] = NULL;
        }
    }
    for (uint32_t i = 0; i < G->n; i++)
        if (G->c[i])
            G->c[kept++] = G->c[i];
    G->n = kept;
    if (G->cap > 4 && G->n < G->cap / 2)
        cover_resize(G, G->n > 4 ? G->n : 4);

    /* expand: one more bit per cube */
    for (uint32_t i = 0; i < G->n; i++) {
        cube *x = cube_copy(G->c[i]);
        uint64_t b = bench_rng_below(r, nw * 64u);
        x->w[b / 64] |= 1ULL << (b % 64);
        cube_seal(x);
        cube_free(G->c[i]);
        G->c[i] = x;
    }

    h = bench_mix_u64(h, ((uint64_t)G->n << 32) | F->n);
    for (uint32_t i = 0; i < G->n; i++) {
        h = bench_mix_u64(h, G->c[i]->w[0]);
        h = bench_mix_byte(h, (unsigned char)cube_bits(G->c[i]));
    }

    unsigned slot = (unsigned)bench_rng_below(r, POOL);
    cover_free(pool[slot]);
    pool[slot] = G;
    cover_free(F);
    return h;
}

int main(int argc, char **argv) {
    uint64_t passes = bench_parse_iters(argc, argv, DEFAULT_PASSES);
    bench_rng rng;
    bench_rng_seed(&rng, 0x2545F4914F6CDD1DULL);
    uint64_t h = BENCH_FNV_OFFSET;

    double t0 = bench_now();
    for (uint64_t i = 0; i < passes; i++)
        h = pass(&rng, h);
    for (unsigned i = 0; i < POOL; i++)
        cover_free(pool[i]);
    double t1 = bench_now();

    fprintf(stderr, "espresso: %" PRIu64 " passes, %" PRIu64 " cubes, %" PRIu64 " reallocs\n",
            passes, serial, nrealloc);
    bench_report("espresso", passes, t1 - t0, h, errors);
    return errors ? 1 : 0;
}
