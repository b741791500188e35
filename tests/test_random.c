/* Randomized allocation test for hardheap.
 *
 * A table of NSLOTS slots is driven by a fixed-seed xorshift PRNG through at
 * least a million mixed operations: every allocation function, realloc in
 * all its forms, and free. Every live block carries a pattern derived from
 * its address and slot, byte i = ((addr >> 4) ^ i ^ slot) & 0xff, which is
 * checked in full before the block is freed or resized (for a resize, the
 * preserved prefix is checked after the move, then the block is refilled).
 * Every CHECK_EVERY operations all live blocks are verified, their
 * [ptr, ptr + usable_size) intervals are sorted and checked for overlap, and
 * hh_collect runs, after which everything is verified again.
 *
 * The seed is printed at start; set HH_TEST_SEED (decimal or 0x hex) to
 * replay a failing run with another seed.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hardheap.h"

#define KiB ((size_t)1024)
#define MiB ((size_t)1024 * 1024)

#define NSLOTS 10000
#define CHECK_EVERY 100000
#define DEFAULT_SEED UINT64_C(0x5DEECE66D2545F49)

#define REQUIRE(cond, ...)                                                  \
  do {                                                                      \
    if (!(cond)) require_failed(__FILE__, __LINE__, #cond, __VA_ARGS__);    \
  } while (0)

static uint64_t g_seed; /* seed of the run in progress, for messages */
static uint64_t g_op;   /* operation in progress, for messages */

static void require_failed(const char* file, int line, const char* cond, const char* fmt, ...)
    __attribute__((noreturn, format(printf, 4, 5)));

static void require_failed(const char* file, int line, const char* cond, const char* fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  _ck_assert_failed(file, line, "Failed", "`%s` is false: %s [seed 0x%016" PRIx64 ", op %" PRIu64 "]",
                    cond, msg, g_seed, g_op);
}

/* ---- PRNG: xorshift64* ----------------------------------------------------- */

typedef struct {
  uint64_t s;
} rng_t;

static uint64_t rng_next(rng_t* r) {
  uint64_t x = r->s;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  r->s = x;
  return x * UINT64_C(0x2545F4914F6CDD1D);
}

static uint32_t rng_below(rng_t* r, uint32_t n) { return (uint32_t)((rng_next(r) >> 32) % n); }

static uint64_t base_seed(void) {
  const char* e = getenv("HH_TEST_SEED");
  if (e != NULL && *e != '\0') {
    uint64_t v = strtoull(e, NULL, 0);
    if (v != 0) return v;
  }
  return DEFAULT_SEED;
}

/* ---- patterns ------------------------------------------------------------ */

static inline uint8_t pattern_key(const void* p, size_t slot) {
  return (uint8_t)(((uintptr_t)p >> 4) ^ slot);
}

/* The pattern repeats every 256 bytes: byte i is key ^ (i & 0xff). */
static void make_template(uint8_t t[256], uint8_t key) {
  for (unsigned j = 0; j < 256; j++) t[j] = (uint8_t)(key ^ j);
}

static void pattern_fill(uint8_t* p, size_t n, uint8_t key) {
  uint8_t t[256];
  make_template(t, key);
  size_t off = 0;
  while (off < n) {
    size_t c = n - off < 256 ? n - off : 256;
    memcpy(p + off, t, c);
    off += c;
  }
}

/* Index of the first byte that differs from the pattern, or SIZE_MAX. */
static size_t pattern_check(const uint8_t* p, size_t n, uint8_t key) {
  uint8_t t[256];
  make_template(t, key);
  size_t off = 0;
  while (off < n) {
    size_t c = n - off < 256 ? n - off : 256;
    if (memcmp(p + off, t, c) != 0) {
      for (size_t j = 0; j < c; j++)
        if (p[off + j] != t[j]) return off + j;
    }
    off += c;
  }
  return SIZE_MAX;
}

static const uint8_t zeros[4096];

static size_t first_nonzero(const uint8_t* p, size_t n) {
  size_t off = 0;
  while (off < n) {
    size_t c = n - off < sizeof zeros ? n - off : sizeof zeros;
    if (memcmp(p + off, zeros, c) != 0) {
      for (size_t j = 0; j < c; j++)
        if (p[off + j] != 0) return off + j;
    }
    off += c;
  }
  return SIZE_MAX;
}

/* ---- the slot table ------------------------------------------------------ */

typedef struct {
  uint8_t* p;
  size_t size;   /* requested bytes */
  size_t usable; /* hh_usable_size at allocation */
  size_t align;  /* alignment that must hold (>= HH_MIN_ALIGNMENT) */
} slot_t;

static slot_t slots[NSLOTS];

typedef enum {
  OP_MALLOC, OP_CALLOC, OP_ZALLOC, OP_MALLOC_ALIGNED, OP_ZALLOC_ALIGNED, OP_CALLOC_ALIGNED,
  OP_ALIGNED_ALLOC, OP_POSIX_MEMALIGN, OP_MEMALIGN, OP_REALLOC_NULL, OP_VALLOC,
  OP_REALLOC_ALIGNED_NULL, OP_FREE, OP_REALLOC_ZERO, OP_REALLOC, OP_REALLOC_ALIGNED,
  OP_REALLOCARRAY, OP_REALLOCF, OP_COUNT_
} op_t;

static const char* const op_names[OP_COUNT_] = {
    "malloc",      "calloc",         "zalloc",           "malloc_aligned", "zalloc_aligned",
    "calloc_aligned", "aligned_alloc", "posix_memalign", "memalign",       "realloc(NULL)",
    "valloc",      "realloc_aligned(NULL)", "free",     "realloc(p,0)",   "realloc",
    "realloc_aligned", "reallocarray", "reallocf"};

static uint64_t op_counts[OP_COUNT_];
static size_t g_page;

/* Skewed: mostly 1..1024 (log-uniform), some up to 64 KiB, rarely up to 4 MiB. */
static size_t draw_size(rng_t* r) {
  uint32_t c = rng_below(r, 10000);
  if (c < 40) return 0;
  if (c < 9000) {
    uint32_t bits = 1 + rng_below(r, 10); /* 2 .. 1024 */
    return 1 + rng_below(r, 1u << bits);
  }
  if (c < 9990) {
    uint32_t bits = 11 + rng_below(r, 6); /* 2 KiB .. 64 KiB */
    return 1025 + rng_below(r, (1u << bits) - 1024);
  }
  return 64 * KiB + 1 + rng_below(r, (uint32_t)(4 * MiB - 64 * KiB));
}

static size_t draw_align(rng_t* r) {
  if (rng_below(r, 100) == 0) return (size_t)1 << (13 + rng_below(r, 5)); /* 8 KiB .. 128 KiB */
  return (size_t)1 << rng_below(r, 13);                                  /* 1 .. 4 KiB */
}

static size_t eff_align(size_t a) { return a < HH_MIN_ALIGNMENT ? HH_MIN_ALIGNMENT : a; }

static void verify_slot(size_t i, const char* when) {
  slot_t* s = &slots[i];
  size_t bad = pattern_check(s->p, s->size, pattern_key(s->p, i));
  REQUIRE(bad == SIZE_MAX,
          "%s: slot %zu block %p (size %zu, usable %zu): byte %zu is 0x%02x, expected 0x%02x", when,
          i, (void*)s->p, s->size, s->usable, bad, bad == SIZE_MAX ? 0u : s->p[bad],
          (unsigned)(uint8_t)(pattern_key(s->p, i) ^ bad));
  size_t u = hh_usable_size(s->p);
  REQUIRE(u == s->usable, "%s: slot %zu block %p: usable_size changed from %zu to %zu", when, i,
          (void*)s->p, s->usable, u);
}

/* Record a freshly returned block in slot i; zeroed says whether the
 * function promised zeroed memory. */
static void install(size_t i, op_t op, void* p, size_t size, size_t align, bool zeroed) {
  REQUIRE(p != NULL, "%s(size %zu, alignment %zu) for slot %zu returned NULL (errno %d)",
          op_names[op], size, align, i, errno);
  REQUIRE(((uintptr_t)p & (eff_align(align) - 1)) == 0,
          "%s(size %zu, alignment %zu) returned misaligned %p", op_names[op], size, align, p);
  size_t u = hh_usable_size(p);
  REQUIRE(u >= size, "%s(size %zu): usable_size %zu is too small", op_names[op], size, u);
  if (zeroed) {
    size_t nz = first_nonzero(p, size);
    REQUIRE(nz == SIZE_MAX, "%s(size %zu) = %p: byte %zu is not zero", op_names[op], size, p, nz);
  }
  slot_t* s = &slots[i];
  s->p = p;
  s->size = size;
  s->usable = u;
  s->align = eff_align(align);
  pattern_fill(s->p, size, pattern_key(p, i));
}

static void do_alloc(rng_t* r, size_t i) {
  size_t size = draw_size(r);
  size_t align = HH_MIN_ALIGNMENT;
  uint32_t c = rng_below(r, 100);
  op_t op;
  void* p = NULL;
  bool zeroed = false;
  if (c < 45) {
    op = OP_MALLOC;
    p = hh_malloc(size);
  } else if (c < 53) {
    op = OP_CALLOC;
    zeroed = true;
    size_t elem = (size % 8 == 0 && size > 0) ? 8 : 1;
    p = rng_below(r, 2) ? hh_calloc(size / elem, elem) : hh_calloc(elem, size / elem);
  } else if (c < 60) {
    op = OP_ZALLOC;
    zeroed = true;
    p = hh_zalloc(size);
  } else if (c < 67) {
    op = OP_MALLOC_ALIGNED;
    align = draw_align(r);
    p = hh_malloc_aligned(size, align);
  } else if (c < 71) {
    op = OP_ZALLOC_ALIGNED;
    zeroed = true;
    align = draw_align(r);
    p = hh_zalloc_aligned(size, align);
  } else if (c < 75) {
    op = OP_CALLOC_ALIGNED;
    zeroed = true;
    align = draw_align(r);
    p = hh_calloc_aligned(size, 1, align);
  } else if (c < 80) {
    op = OP_ALIGNED_ALLOC;
    align = draw_align(r);
    p = hh_aligned_alloc(align, size);
  } else if (c < 84) {
    op = OP_POSIX_MEMALIGN;
    align = draw_align(r);
    if (align < sizeof(void*)) align = sizeof(void*);
    int rc = hh_posix_memalign(&p, align, size);
    REQUIRE(rc == 0, "posix_memalign(alignment %zu, size %zu) returned %d", align, size, rc);
  } else if (c < 87) {
    op = OP_MEMALIGN;
    align = draw_align(r);
    p = hh_memalign(align, size);
  } else if (c < 94) {
    op = OP_REALLOC_NULL;
    p = hh_realloc(NULL, size);
  } else if (c < 96) {
    op = OP_VALLOC;
    align = g_page;
    p = hh_valloc(size);
  } else {
    op = OP_REALLOC_ALIGNED_NULL;
    align = draw_align(r);
    p = hh_realloc_aligned(NULL, size, align);
  }
  op_counts[op]++;
  install(i, op, p, size, align, zeroed);
}

static void do_free_or_resize(rng_t* r, size_t i) {
  slot_t* s = &slots[i];
  verify_slot(i, "before free/realloc");
  uint32_t c = rng_below(r, 100);
  if (c < 57) {
    op_counts[OP_FREE]++;
    hh_free(s->p);
    s->p = NULL;
    return;
  }
  if (c < 60) {
    op_counts[OP_REALLOC_ZERO]++;
    void* q = hh_realloc(s->p, 0);
    REQUIRE(q == NULL, "realloc(%p, 0) returned %p instead of freeing", (void*)s->p, q);
    s->p = NULL;
    return;
  }
  size_t nsize = draw_size(r);
  size_t align = HH_MIN_ALIGNMENT;
  op_t op;
  void* q;
  if (c < 78) {
    op = OP_REALLOC;
    q = hh_realloc(s->p, nsize);
  } else if (c < 86) {
    op = OP_REALLOC_ALIGNED;
    align = s->align > HH_MIN_ALIGNMENT && rng_below(r, 2) ? s->align : draw_align(r);
    q = hh_realloc_aligned(s->p, nsize, align);
  } else if (c < 93) {
    op = OP_REALLOCARRAY;
    size_t elem = (nsize % 4 == 0 && nsize > 0) ? 4 : 1;
    q = hh_reallocarray(s->p, nsize / elem, elem);
  } else {
    op = OP_REALLOCF;
    q = hh_reallocf(s->p, nsize);
  }
  op_counts[op]++;
  if (nsize == 0) {
    /* Resizing to zero frees, like realloc(p, 0). */
    REQUIRE(q == NULL, "%s(%p, 0) returned %p, expected NULL", op_names[op], (void*)s->p, q);
    s->p = NULL;
    return;
  }
  REQUIRE(q != NULL, "%s(%p, %zu -> %zu) failed (errno %d)", op_names[op], (void*)s->p, s->size,
          nsize, errno);
  size_t keep = s->size < nsize ? s->size : nsize;
  size_t bad = pattern_check(q, keep, pattern_key(s->p, i));
  REQUIRE(bad == SIZE_MAX, "%s(%p -> %p, %zu -> %zu) slot %zu: preserved byte %zu is wrong",
          op_names[op], (void*)s->p, q, s->size, nsize, i, bad);
  install(i, op, q, nsize, align, false);
}

typedef struct {
  uintptr_t start, end;
  size_t slot;
} ival_t;

static int cmp_ival(const void* a, const void* b) {
  const ival_t* x = a;
  const ival_t* y = b;
  return x->start < y->start ? -1 : x->start > y->start;
}

static ival_t ivals[NSLOTS];

/* Verify every live block and that no two live blocks overlap. */
static size_t full_check(const char* when) {
  size_t n = 0;
  for (size_t i = 0; i < NSLOTS; i++) {
    if (slots[i].p == NULL) continue;
    verify_slot(i, when);
    size_t len = slots[i].usable > 0 ? slots[i].usable : 1;
    ivals[n].start = (uintptr_t)slots[i].p;
    ivals[n].end = (uintptr_t)slots[i].p + len;
    ivals[n].slot = i;
    n++;
  }
  qsort(ivals, n, sizeof ivals[0], cmp_ival);
  for (size_t k = 1; k < n; k++) {
    const ival_t* a = &ivals[k - 1];
    const ival_t* b = &ivals[k];
    REQUIRE(a->end <= b->start,
            "%s: live blocks overlap: slot %zu [%p, +%zu) (requested %zu) and slot %zu [%p, +%zu) "
            "(requested %zu)",
            when, a->slot, (void*)a->start, (size_t)(a->end - a->start), slots[a->slot].size,
            b->slot, (void*)b->start, (size_t)(b->end - b->start), slots[b->slot].size);
  }
  return n;
}

static void run_random(uint64_t seed, uint64_t nops) {
  g_seed = seed;
  g_op = 0;
  g_page = (size_t)sysconf(_SC_PAGESIZE);
  printf("test_random: seed=0x%016" PRIx64 " ops=%" PRIu64 " slots=%d (%s build)\n", seed, nops,
         NSLOTS, hh_is_secure() ? "secure" : "default");
  fflush(stdout);
  memset(slots, 0, sizeof slots);
  memset(op_counts, 0, sizeof op_counts);
  rng_t r = {seed};
  size_t max_live = 0;
  for (g_op = 0; g_op < nops; g_op++) {
    size_t i = rng_below(&r, NSLOTS);
    if (slots[i].p == NULL)
      do_alloc(&r, i);
    else
      do_free_or_resize(&r, i);
    if ((g_op + 1) % CHECK_EVERY == 0) {
      size_t live = full_check("periodic check");
      if (live > max_live) max_live = live;
      REQUIRE(hh_heap_validate(NULL), "heap invariants broken (the report above says which)");
      hh_collect((g_op + 1) % (2 * CHECK_EVERY) == 0);
      full_check("check after hh_collect");
    }
  }
  full_check("final check");
  REQUIRE(hh_heap_validate(NULL), "heap invariants broken at the end");
  for (size_t i = 0; i < NSLOTS; i++) {
    if (slots[i].p == NULL) continue;
    verify_slot(i, "final free");
    hh_free(slots[i].p);
    slots[i].p = NULL;
  }
  hh_collect(true);
  printf("test_random: done, max live blocks %zu;", max_live);
  for (int k = 0; k < OP_COUNT_; k++) printf(" %s=%" PRIu64, op_names[k], op_counts[k]);
  printf("\n");
  fflush(stdout);
}

START_TEST(test_random_mixed) {
  run_random(base_seed(), 1000000);
}
END_TEST

START_TEST(test_random_purge_at_once) {
  /* The same workload with empty pages returned to the OS immediately, so
   * purging and recommitting run all the time. */
  ck_assert(hh_option_set(hh_option_purge_delay, 0));
  ck_assert_int_eq(hh_option_get(hh_option_purge_delay), 0);
  run_random(base_seed() ^ UINT64_C(0x9E3779B97F4A7C15), 300000);
}
END_TEST

int main(void) {
  printf("test_random: base seed 0x%016" PRIx64 " (override with HH_TEST_SEED)\n", base_seed());
  fflush(stdout);
  Suite* s = suite_create("hardheap_random");
  TCase* tc = tcase_create("random");
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, test_random_mixed);
  tcase_add_test(tc, test_random_purge_at_once);
  suite_add_tcase(s, tc);
  SRunner* sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
