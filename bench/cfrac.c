/* cfrac: single-threaded bignum arithmetic with a freshly allocated result
 * for every operation.
 *
 * Follows the allocation shape of the cfrac benchmark (factoring by the
 * continued fraction method, Morrison-Brillhart, as used in the Zorn/Grunwald
 * and mimalloc-bench suites): a multiple-precision library whose numbers are
 * immutable heap objects of a few dozen bytes, so that every add, multiply
 * and divide allocates its result and most results die a few operations
 * later. It is not that program: this one is a small bignum library written
 * for this file (32-bit limbs, schoolbook multiply, Knuth-style long
 * division) driving the same algorithm's inner loop:
 *
 *   for K numbers N (~125 bits, fixed seed), expand sqrt(N) as a continued
 *   fraction,  P' = a Q - P,  Q' = (N - P'^2) / Q,  a' = (a0 + P') / Q',
 *   keep the convergent numerators A mod N (A' = a' A + A_prev mod N), and
 *   trial-divide every Q by a factor base of the first 64 odd primes (a
 *   quotient per division) to find the smooth ones; a Q whose cofactor is
 *   below 2^30 gives a (full or partial) relation (A, Q), which is kept for
 *   a while (a ring of RING relations, the older ones freed): a minority of
 *   longer-lived objects.
 *
 * Every number is a block {tag, limb count, check word, limbs}: the check
 * word is a hash of the tag and the limbs, computed when the (immutable)
 * number is made and verified when it is freed, so an allocator that hands
 * out overlapping or live memory corrupts a check word. The arithmetic
 * checks itself too: the division for Q' must be exact, and
 * A^2 mod N must equal (-1)^k Q (the identity cfrac relies on). The
 * checksum mixes the partial quotients, the Q values and the relations
 * found: it depends only on the arithmetic, not on the allocator.
 *
 * Sizes: 20-56 bytes (1-10 limbs), almost all freed within a few
 * allocations; about 80 allocations per step.
 *
 * Usage: cfrac [steps]   (continued-fraction steps in total; default sized
 *                         for ~1 s with glibc)
 * Output: one RESULT line, see bench_common.h. Exit 1 if any check failed.
 */
#include "bench_common.h"

#define DEFAULT_STEPS 300000ULL
#define STEPS_PER_N 20000u /* steps before moving on to the next N */
#define NPRIMES 64u        /* factor base: the first NPRIMES odd primes */
#define LARGE_PRIME (1u << 30) /* a cofactor below this makes a partial relation */
#define RING 64u           /* relations kept */
#define MAXL 16u           /* limbs of the largest intermediate */

typedef struct {
    uint64_t tag;
    uint32_t n;     /* limbs in use, >= 1; the top limb is non-zero unless n == 1 */
    uint32_t check; /* hash of tag and limbs */
    uint32_t d[];   /* little-endian 32-bit limbs */
} bn;

static uint64_t serial;
static uint64_t errors;
static uint64_t allocs;

static void fail(const char *what) {
    if (errors < 10)
        fprintf(stderr, "cfrac: %s\n", what);
    errors++;
}

static uint32_t bn_hash(const bn *x) {
    uint64_t h = x->tag ^ x->n;
    for (uint32_t i = 0; i < x->n; i++)
        h = (h ^ x->d[i]) * 0x9E3779B97F4A7C15ULL;
    return (uint32_t)(h ^ (h >> 29));
}

/* A number with room for n limbs; the caller fills the limbs and calls
 * bn_seal. */
static bn *bn_new(uint32_t n) {
    size_t size = sizeof(bn) + (size_t)n * sizeof(uint32_t);
    bn *x = malloc(size);
    if (!x)
        bench_oom("malloc", size);
    allocs++;
    x->tag = bench_tag(serial++);
    x->n = n;
    return x;
}

static bn *bn_seal(bn *x) {
    while (x->n > 1 && x->d[x->n - 1] == 0)
        x->n--;
    x->check = bn_hash(x);
    return x;
}

static void bn_free(bn *x) {
    if (!x)
        return;
    if (x->n == 0 || x->n > MAXL || x->check != bn_hash(x))
        fail("number damaged while live (check word mismatch)");
    free(x);
}

static bn *bn_from_u64(uint64_t v) {
    bn *x = bn_new(2);
    x->d[0] = (uint32_t)v;
    x->d[1] = (uint32_t)(v >> 32);
    return bn_seal(x);
}

static int bn_is_zero(const bn *x) {
    return x->n == 1 && x->d[0] == 0;
}

static int bn_cmp(const bn *a, const bn *b) {
    if (a->n != b->n)
        return a->n < b->n ? -1 : 1;
    for (uint32_t i = a->n; i-- > 0;)
        if (a->d[i] != b->d[i])
            return a->d[i] < b->d[i] ? -1 : 1;
    return 0;
}

static bn *bn_add(const bn *a, const bn *b) {
    if (a->n < b->n) {
        const bn *t = a;
        a = b;
        b = t;
    }
    bn *r = bn_new(a->n + 1);
    uint64_t c = 0;
    for (uint32_t i = 0; i < a->n; i++) {
        c += (uint64_t)a->d[i] + (i < b->n ? b->d[i] : 0);
        r->d[i] = (uint32_t)c;
        c >>= 32;
    }
    r->d[a->n] = (uint32_t)c;
    return bn_seal(r);
}

/* a - b, a >= b */
static bn *bn_sub(const bn *a, const bn *b) {
    if (bn_cmp(a, b) < 0) {
        fail("negative difference");
        return bn_from_u64(0);
    }
    bn *r = bn_new(a->n);
    int64_t br = 0;
    for (uint32_t i = 0; i < a->n; i++) {
        int64_t v = (int64_t)a->d[i] - (i < b->n ? b->d[i] : 0) + br;
        r->d[i] = (uint32_t)v;
        br = v < 0 ? -1 : 0;
    }
    return bn_seal(r);
}

static bn *bn_mul(const bn *a, const bn *b) {
    bn *r = bn_new(a->n + b->n);
    memset(r->d, 0, (size_t)r->n * sizeof(uint32_t));
    for (uint32_t i = 0; i < a->n; i++) {
        uint64_t c = 0;
        for (uint32_t j = 0; j < b->n; j++) {
            c += (uint64_t)a->d[i] * b->d[j] + r->d[i + j];
            r->d[i + j] = (uint32_t)c;
            c >>= 32;
        }
        r->d[i + b->n] = (uint32_t)c;
    }
    return bn_seal(r);
}

/* Quotient of a / v for a small divisor; *rem gets the remainder. */
static bn *bn_div_small(const bn *a, uint32_t v, uint32_t *rem) {
    bn *q = bn_new(a->n);
    uint64_t r = 0;
    for (uint32_t i = a->n; i-- > 0;) {
        uint64_t cur = (r << 32) | a->d[i];
        q->d[i] = (uint32_t)(cur / v);
        r = cur % v;
    }
    *rem = (uint32_t)r;
    return bn_seal(q);
}

static unsigned clz32(uint32_t x) {
    unsigned n = 0;
    while (!(x & 0x80000000u)) {
        x <<= 1;
        n++;
    }
    return n;
}

/* Long division (Knuth, TAOCP vol. 2, 4.3.1, algorithm D): *q = a / b,
 * *r = a % b (either may be NULL). b != 0. */
static void bn_divmod(const bn *a, const bn *b, bn **q, bn **r) {
    if (bn_is_zero(b)) {
        fail("division by zero");
        if (q)
            *q = bn_from_u64(0);
        if (r)
            *r = bn_from_u64(0);
        return;
    }
    if (bn_cmp(a, b) < 0) {
        if (q)
            *q = bn_from_u64(0);
        if (r) {
            bn *c = bn_new(a->n);
            memcpy(c->d, a->d, (size_t)a->n * sizeof(uint32_t));
            *r = bn_seal(c);
        }
        return;
    }
    if (b->n == 1) {
        uint32_t rem;
        bn *qq = bn_div_small(a, b->d[0], &rem);
        if (q)
            *q = qq;
        else
            bn_free(qq);
        if (r)
            *r = bn_from_u64(rem);
        return;
    }
    uint32_t m = a->n, n = b->n;
    if (m > MAXL) {
        fail("dividend too long");
        m = MAXL;
    }
    uint32_t un[MAXL + 1], vn[MAXL], qd[MAXL];
    unsigned s = clz32(b->d[n - 1]);
    for (uint32_t i = n - 1; i > 0; i--)
        vn[i] = (b->d[i] << s) | (s ? (uint32_t)((uint64_t)b->d[i - 1] >> (32 - s)) : 0);
    vn[0] = b->d[0] << s;
    un[m] = s ? (uint32_t)((uint64_t)a->d[m - 1] >> (32 - s)) : 0;
    for (uint32_t i = m - 1; i > 0; i--)
        un[i] = (a->d[i] << s) | (s ? (uint32_t)((uint64_t)a->d[i - 1] >> (32 - s)) : 0);
    un[0] = a->d[0] << s;

    for (uint32_t j = m - n + 1; j-- > 0;) {
        uint64_t num = ((uint64_t)un[j + n] << 32) | un[j + n - 1];
        uint64_t qhat = num / vn[n - 1];
        uint64_t rhat = num % vn[n - 1];
        while (qhat > 0xFFFFFFFFull ||
               qhat * vn[n - 2] > ((rhat << 32) | un[j + n - 2])) {
            qhat--;
            rhat += vn[n - 1];
            if (rhat > 0xFFFFFFFFull)
                break;
        }
        /* multiply and subtract */
        int64_t borrow = 0;
        uint64_t carry = 0;
        for (uint32_t i = 0; i < n; i++) {
            uint64_t p = qhat * vn[i] + carry;
            carry = p >> 32;
            int64_t t = (int64_t)un[i + j] - (int64_t)(uint32_t)p + borrow;
            un[i + j] = (uint32_t)t;
            borrow = t >> 32;
        }
        int64_t t = (int64_t)un[j + n] - (int64_t)carry + borrow;
        un[j + n] = (uint32_t)t;
        if (t < 0) { /* qhat was one too large: add back */
            qhat--;
            uint64_t c = 0;
            for (uint32_t i = 0; i < n; i++) {
                c += (uint64_t)un[i + j] + vn[i];
                un[i + j] = (uint32_t)c;
                c >>= 32;
            }
            un[j + n] += (uint32_t)c;
        }
        qd[j] = (uint32_t)qhat;
    }
    if (q) {
        bn *qq = bn_new(m - n + 1);
        memcpy(qq->d, qd, (size_t)(m - n + 1) * sizeof(uint32_t));
        *q = bn_seal(qq);
    }
    if (r) {
        bn *rr = bn_new(n);
        for (uint32_t i = 0; i < n; i++)
            rr->d[i] = (un[i] >> s) | (s ? (uint32_t)((uint64_t)un[i + 1] << (32 - s)) : 0);
        *r = bn_seal(rr);
    }
}

static bn *bn_mod(const bn *a, const bn *m) {
    bn *r;
    bn_divmod(a, m, NULL, &r);
    return r;
}

/* floor(sqrt(x)) by Newton's iteration, every step allocating. */
static bn *bn_isqrt(const bn *x) {
    uint32_t bits = 32 * (x->n - 1) + (32 - clz32(x->d[x->n - 1] | 1u));
    bn *one = bn_from_u64(1);
    bn *g = bn_new((bits / 2 + 1) / 32 + 1); /* 2^(bits/2 + 1) > sqrt(x) */
    memset(g->d, 0, (size_t)g->n * sizeof(uint32_t));
    g->d[(bits / 2 + 1) / 32] = 1u << ((bits / 2 + 1) % 32);
    bn_seal(g);
    for (;;) {
        bn *q, *s, *h;
        uint32_t rem;
        bn_divmod(x, g, &q, NULL);
        s = bn_add(g, q);
        h = bn_div_small(s, 2, &rem);
        bn_free(q);
        bn_free(s);
        if (bn_cmp(h, g) >= 0) {
            bn_free(h);
            break;
        }
        bn_free(g);
        g = h;
    }
    bn_free(one);
    return g;
}

static uint64_t bn_low64(const bn *x) {
    return x->d[0] | (x->n > 1 ? (uint64_t)x->d[1] << 32 : 0);
}

/* ---- the continued fraction loop ------------------------------------------- */

static uint32_t primes[NPRIMES];

static void make_primes(void) {
    unsigned k = 0;
    for (uint32_t c = 3; k < NPRIMES; c += 2) {
        int prime = 1;
        for (unsigned i = 0; i < k && primes[i] * primes[i] <= c; i++)
            if (c % primes[i] == 0) {
                prime = 0;
                break;
            }
        if (prime)
            primes[k++] = c;
    }
}

typedef struct {
    bn *a, *q;
} relation;

static relation ring[RING];
static unsigned ring_pos;
static uint64_t nrel;

/* Divide the factor base out of q; 1 when what is left is below LARGE_PRIME
 * (a full or partial relation: the large prime variation). Every trial
 * division makes a quotient, kept when the division was exact. */
static int smooth(const bn *q) {
    uint32_t rem;
    bn *x = bn_div_small(q, 1, &rem); /* a private copy */
    while (!(x->d[0] & 1u) && !bn_is_zero(x)) {
        bn *y = bn_div_small(x, 2, &rem);
        bn_free(x);
        x = y;
    }
    for (unsigned i = 0; i < NPRIMES; i++) {
        for (;;) {
            bn *y = bn_div_small(x, primes[i], &rem);
            if (rem != 0) {
                bn_free(y);
                break;
            }
            bn_free(x);
            x = y;
        }
    }
    int ok = x->n == 1 && x->d[0] < LARGE_PRIME;
    bn_free(x);
    return ok;
}

static uint64_t expand(const bn *N, uint64_t steps, uint64_t h) {
    bn *a0 = bn_isqrt(N);
    {
        bn *sq = bn_mul(a0, a0);
        int c = bn_cmp(sq, N);
        bn_free(sq);
        if (c > 0)
            fail("isqrt too large");
        if (c == 0) { /* a perfect square has no expansion */
            bn_free(a0);
            return h;
        }
    }
    bn *P = bn_from_u64(0), *Q = bn_from_u64(1), *a = bn_div_small(a0, 1, &(uint32_t){0});
    bn *A_prev = bn_from_u64(1), *A = bn_mod(a0, N);
    for (uint64_t k = 1; k <= steps; k++) {
        /* P' = a Q - P;  Q' = (N - P'^2) / Q */
        bn *aQ = bn_mul(a, Q);
        bn *P1 = bn_sub(aQ, P);
        bn_free(aQ);
        bn *P1sq = bn_mul(P1, P1);
        bn *num = bn_sub(N, P1sq);
        bn_free(P1sq);
        bn *Q1, *rem;
        bn_divmod(num, Q, &Q1, &rem);
        bn_free(num);
        if (!bn_is_zero(rem))
            fail("inexact division for Q'");
        bn_free(rem);
        /* A_{k-1}^2 mod N == (-1)^k Q_k */
        bn *Asq = bn_mul(A, A);
        bn *Asqm = bn_mod(Asq, N);
        bn_free(Asq);
        bn *want = (k & 1) ? bn_sub(N, Q1) : bn_div_small(Q1, 1, &(uint32_t){0});
        if (bn_cmp(Asqm, want) != 0)
            fail("convergent identity A^2 = (-1)^k Q (mod N) violated");
        bn_free(want);
        bn_free(Asqm);
        /* a' = (a0 + P') / Q' */
        bn *s = bn_add(a0, P1);
        bn *a1;
        bn_divmod(s, Q1, &a1, NULL);
        bn_free(s);
        /* A' = a' A + A_prev  mod N */
        bn *t = bn_mul(a1, A);
        bn *t2 = bn_add(t, A_prev);
        bn_free(t);
        bn *A1 = bn_mod(t2, N);
        bn_free(t2);

        h = bench_mix_u64(h, bn_low64(a1));
        h = bench_mix_u64(h, bn_low64(Q1));
        if (smooth(Q1)) {
            nrel++;
            relation *rel = &ring[ring_pos++ % RING];
            bn_free(rel->a);
            bn_free(rel->q);
            rel->a = bn_div_small(A, 1, &(uint32_t){0});
            rel->q = bn_div_small(Q1, 1, &(uint32_t){0});
            h = bench_mix_u64(h, k);
        }

        bn_free(P);
        P = P1;
        bn_free(Q);
        Q = Q1;
        bn_free(a);
        a = a1;
        bn_free(A_prev);
        A_prev = A;
        A = A1;
    }
    bn_free(P);
    bn_free(Q);
    bn_free(a);
    bn_free(A_prev);
    bn_free(A);
    bn_free(a0);
    return h;
}

int main(int argc, char **argv) {
    uint64_t steps = bench_parse_iters(argc, argv, DEFAULT_STEPS);
    bench_rng rng;
    bench_rng_seed(&rng, 0x2545F4914F6CDD1DULL);
    uint64_t h = BENCH_FNV_OFFSET;
    make_primes();

    double t0 = bench_now();
    for (uint64_t done = 0; done < steps;) {
        uint64_t n = steps - done < STEPS_PER_N ? steps - done : STEPS_PER_N;
        /* N: a product of two random ~62-bit odd numbers */
        bn *x = bn_from_u64((bench_rng_next(&rng) >> 2) | 1u);
        bn *y = bn_from_u64((bench_rng_next(&rng) >> 2) | 1u);
        bn *N = bn_mul(x, y);
        bn_free(x);
        bn_free(y);
        h = expand(N, n, h);
        bn_free(N);
        done += n;
    }
    for (unsigned i = 0; i < RING; i++) {
        bn_free(ring[i].a);
        bn_free(ring[i].q);
    }
    double t1 = bench_now();

    h = bench_mix_u64(h, nrel);
    fprintf(stderr, "cfrac: %" PRIu64 " steps, %" PRIu64 " relations, %" PRIu64 " allocations\n",
            steps, nrel, allocs);
    bench_report("cfrac", steps, t1 - t0, h, errors);
    return errors ? 1 : 0;
}
