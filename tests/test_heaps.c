/* Tests of first-class heaps and the deferred-free heartbeat
 * (include/hardheap.h, "first-class heaps" and hh_register_deferred_free).
 *
 *  - every allocation function of a heap, from its owning thread, with
 *    content checks; blocks belong to their heap only (hh_heap_contains),
 *    also large (> 128 KiB) and huge (> 2 MiB) ones;
 *  - hh_heap_check_owned: true for live blocks, false once freed;
 *  - hh_heap_destroy frees everything at once (process statistics go back
 *    to where they were), also for the current default heap;
 *  - hh_heap_delete keeps blocks valid and hands them to the backing heap,
 *    also while other threads are freeing them;
 *  - a thread's heaps are deleted when it exits, their blocks stay valid;
 *  - hh_heap_destroy frees only its own blocks, not those of an exited
 *    thread whose abandoned segment the heap adopted;
 *  - hh_heap_set_default / get_default / get_backing;
 *  - misuse: another thread's heap (NULL + EINVAL, refused) and destroying
 *    the backing heap (refused). The secure build aborts on every reported
 *    misuse (report.c:hh_error_message), so there these tests expect SIGABRT;
 *  - hh_heap_visit_blocks (exact block counts, early stop), hh_heap_collect;
 *  - hh_register_deferred_free: heartbeat, force from hh_collect(true), no
 *    re-entry when the callback allocates, unregistering, several threads,
 *    and the callback always gets its own argument while another thread
 *    re-registers.
 *
 * Every test runs in its own forked child (Check's fork mode). Worker threads
 * never call Check: they record the first error in their context and the
 * test's main thread asserts after joining. Hot loops use REQUIRE, which only
 * talks to Check on failure.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hardheap.h"
#include "test_util.h"

#define KiB ((size_t)1024)
#define MiB ((size_t)1024 * 1024)

/* ---- helpers ---------------------------------------------------------------- */

#define REQUIRE(cond, ...)                                               \
  do {                                                                   \
    if (!(cond)) require_failed(__FILE__, __LINE__, #cond, __VA_ARGS__); \
  } while (0)

static void require_failed(const char* file, int line, const char* cond, const char* fmt, ...)
    __attribute__((noreturn, format(printf, 4, 5)));

static void require_failed(const char* file, int line, const char* cond, const char* fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  _ck_assert_failed(file, line, "Failed", "`%s` is false: %s", cond, msg);
}

/* Hide sizes from the compiler (no -Walloc-size-larger-than, no folding). */
static size_t opaque(size_t x) {
  volatile size_t v = x;
  return v;
}

/* Sanitizer builds run less of the heavier tests (HH_TEST_SCALE=<factor>
 * overrides): they must stay within about a minute under ThreadSanitizer. */
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define HEAPS_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define HEAPS_SANITIZED 1
#endif
#endif
#ifndef HEAPS_SANITIZED
#define HEAPS_SANITIZED 0
#endif

static double test_scale(void) {
  const char* e = getenv("HH_TEST_SCALE");
  if (e != NULL && *e != 0) {
    char* end;
    double v = strtod(e, &end);
    if (end != e && v > 0 && v <= 1) return v;
  }
  return HEAPS_SANITIZED ? 0.3 : 1.0;
}

/* n scaled, at least min, at most n */
static size_t scaled(size_t n, size_t min) {
  size_t r = (size_t)((double)n * test_scale());
  if (r < min) r = min;
  return r > n ? n : r;
}

static size_t first_nonzero(const void* p, size_t n) {
  const uint8_t* b = p;
  for (size_t i = 0; i < n; i++)
    if (b[i] != 0) return i;
  return SIZE_MAX;
}

static bool is_aligned(const void* p, size_t a) { return ((uintptr_t)p & (a - 1)) == 0; }

typedef struct {
  int id;
  bool failed;
  char msg[512];
} errbox_t;

static void box_fail(errbox_t* b, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

static void box_fail(errbox_t* b, const char* fmt, ...) {
  if (b->failed) return;
  b->failed = true;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(b->msg, sizeof b->msg, fmt, ap);
  va_end(ap);
}

/* Process counters after returning everything this thread can return. */
static hh_stats_t quiesced_stats(void) {
  hh_collect(true);
  hh_stats_t s;
  memset(&s, 0xFF, sizeof s);
  hh_stats_get(&s);
  return s;
}

static void* idle_thread(void* arg) { return arg; }

/* The baseline of a test that compares statistics: first start and join a
 * few threads at once, so that the C library's cached thread stacks and
 * their TLS (allocated with malloc, i.e. by hardheap in the release build)
 * exist before the baseline is taken. */
static hh_stats_t baseline_stats(void) {
  enum { T = 6 };
  pthread_t th[T];
  for (int t = 0; t < T; t++) ck_assert_int_eq(pthread_create(&th[t], NULL, idle_thread, NULL), 0);
  for (int t = 0; t < T; t++) ck_assert_int_eq(pthread_join(th[t], NULL), 0);
  return quiesced_stats();
}

typedef struct {
  uint8_t* p;
  size_t size;
  uint64_t tag;
} item_t;

/* Mixed sizes: mostly small, some medium, a few large (> 128 KiB) and the
 * odd huge one (> 2 MiB), chosen by index so every run has some of each. */
static size_t mixed_size(rng_t* r, size_t i) {
  if (i % 997 == 500) return 2 * MiB + 1 + rng_below(r, (uint32_t)(2 * MiB)); /* huge */
  if (i % 211 == 100) return 128 * KiB + 1 + rng_below(r, (uint32_t)(900 * KiB)); /* large */
  uint32_t c = rng_below(r, 100);
  if (c < 70) return 1 + rng_below(r, 512);
  if (c < 95) return 513 + rng_below(r, 8 * 1024);
  return 8 * KiB + rng_below(r, 56 * 1024);
}

/* Allocate count blocks from heap (mixing malloc/zalloc/calloc), fill them. */
static void heap_alloc_items(hh_heap_t* heap, item_t* items, size_t count, uint64_t stream, errbox_t* box) {
  rng_t r = rng_for(stream);
  for (size_t i = 0; i < count; i++) {
    size_t n = mixed_size(&r, i);
    uint8_t* p;
    bool zero = false;
    switch (rng_below(&r, 8)) {
      case 0: p = hh_heap_zalloc(heap, n); zero = true; break;
      case 1: p = hh_heap_calloc(heap, 1, n); zero = true; break;
      default: p = hh_heap_malloc(heap, n); break;
    }
    items[i].p = p;
    items[i].size = n;
    items[i].tag = (stream << 32) ^ i;
    if (p == NULL) {
      box_fail(box, "allocation %zu of %zu bytes from heap %p failed", i, n, (void*)heap);
      continue;
    }
    if (!is_aligned(p, HH_MIN_ALIGNMENT) || hh_usable_size(p) < n) {
      box_fail(box, "block %zu = %p (size %zu) misaligned or usable %zu", i, (void*)p, n, hh_usable_size(p));
    }
    if (zero && first_nonzero(p, n) != SIZE_MAX) {
      box_fail(box, "zeroed block %zu (size %zu) has byte %zu != 0", i, n, first_nonzero(p, n));
    }
    pattern_fill(p, n, pattern_key(p, items[i].tag));
  }
}

static size_t check_item(const item_t* it) { return pattern_check(it->p, it->size, pattern_key(it->p, it->tag)); }

/* ---- 1. allocation functions of a heap ----------------------------------------- */

/* Check one block of heap h: alignment, size, ownership by h only, then fill. */
#define CHECK_HEAP_BLOCK(p, n, h, others, nothers)                                                           \
  do {                                                                                                      \
    REQUIRE((p) != NULL, "allocation of %zu bytes failed", (size_t)(n));                                    \
    REQUIRE(is_aligned((p), HH_MIN_ALIGNMENT), "%p not 16-aligned", (void*)(p));                            \
    REQUIRE(hh_usable_size(p) >= (n), "usable %zu < %zu", hh_usable_size(p), (size_t)(n));                  \
    REQUIRE(hh_heap_contains((h), (p)), "block %p (size %zu) not contained in its heap", (void*)(p),        \
            (size_t)(n));                                                                                   \
    REQUIRE(hh_heap_check_owned((h), (p)), "block %p (size %zu) not owned by its heap", (void*)(p),          \
            (size_t)(n));                                                                                   \
    for (size_t o_ = 0; o_ < (nothers); o_++) {                                                             \
      REQUIRE(!hh_heap_contains((others)[o_], (p)), "block %p (size %zu) also in heap #%zu", (void*)(p),     \
              (size_t)(n), o_);                                                                             \
      REQUIRE(!hh_heap_check_owned((others)[o_], (p)), "block %p (size %zu) also owned by heap #%zu",        \
              (void*)(p), (size_t)(n), o_);                                                                 \
    }                                                                                                       \
  } while (0)

static const size_t api_sizes[] = {0,          1,          8,          16,         17,        100,
                                   1000,       1024,       1025,       4000,       8192,      8193,
                                   20000,      65536,      128 * 1024, 128 * 1024 + 1, 300 * 1024, 1024 * 1024,
                                   2 * 1024 * 1024, 2 * 1024 * 1024 + 1, 3 * 1024 * 1024, 9 * 1024 * 1024};
#define N_API_SIZES (sizeof api_sizes / sizeof api_sizes[0])

START_TEST(test_heap_new_and_defaults) {
  hh_heap_t* backing = hh_heap_get_backing();
  ck_assert_ptr_nonnull(backing);
  ck_assert_ptr_eq(hh_heap_get_default(), backing);
  hh_heap_t* h1 = hh_heap_new();
  hh_heap_t* h2 = hh_heap_new();
  ck_assert_ptr_nonnull(h1);
  ck_assert_ptr_nonnull(h2);
  ck_assert_ptr_ne(h1, h2);
  ck_assert_ptr_ne(h1, backing);
  ck_assert_ptr_ne(h2, backing);
  /* creating heaps changes neither the default nor the backing heap */
  ck_assert_ptr_eq(hh_heap_get_default(), backing);
  ck_assert_ptr_eq(hh_heap_get_backing(), backing);
  /* an empty heap contains nothing */
  void* p = hh_malloc(64);
  ck_assert_ptr_nonnull(p);
  ck_assert(hh_heap_contains(backing, p));
  ck_assert(!hh_heap_contains(h1, p));
  ck_assert(!hh_heap_contains(h2, p));
  ck_assert(!hh_heap_contains(h1, NULL));
  ck_assert(!hh_heap_check_owned(h1, NULL));
  int on_stack = 0;
  ck_assert(!hh_heap_contains(backing, &on_stack));
  ck_assert(!hh_heap_check_owned(backing, &on_stack));
  hh_free(p);
  hh_heap_delete(h1);
  hh_heap_destroy(h2);
  hh_heap_delete(NULL);   /* ignored */
  hh_heap_destroy(NULL);  /* ignored */
  ck_assert_ptr_eq(hh_heap_get_default(), backing);
}
END_TEST

START_TEST(test_heap_alloc_functions) {
  hh_heap_t* backing = hh_heap_get_backing();
  hh_heap_t* h = hh_heap_new();
  hh_heap_t* other = hh_heap_new();
  ck_assert_ptr_nonnull(h);
  ck_assert_ptr_nonnull(other);
  hh_heap_t* others[2] = {backing, other};

  enum { KINDS = 3 };
  static item_t blocks[N_API_SIZES * KINDS];
  size_t nb = 0;
  for (size_t s = 0; s < N_API_SIZES; s++) {
    for (int kind = 0; kind < KINDS; kind++) {
      size_t n = opaque(api_sizes[s]);
      uint8_t* p = kind == 0 ? hh_heap_malloc(h, n) : kind == 1 ? hh_heap_zalloc(h, n) : hh_heap_calloc(h, n, 1);
      CHECK_HEAP_BLOCK(p, n, h, others, 2);
      if (kind != 0) REQUIRE(first_nonzero(p, n) == SIZE_MAX, "kind %d size %zu: byte %zu not zero", kind, n,
                             first_nonzero(p, n));
      blocks[nb] = (item_t){p, n, nb};
      pattern_fill(p, n, pattern_key(p, nb));
      nb++;
    }
  }
  /* all blocks live at once: none overlaps another */
  for (size_t i = 0; i < nb; i++) {
    size_t bad = check_item(&blocks[i]);
    REQUIRE(bad == SIZE_MAX, "block %zu (size %zu) corrupted at byte %zu", i, blocks[i].size, bad);
  }
  /* zero-size blocks are unique */
  ck_assert_ptr_ne(blocks[0].p, blocks[1].p);
  ck_assert(hh_heap_validate(h));
  ck_assert(hh_heap_validate(backing));

  /* freed blocks are no longer owned (nor contained, for single-block ones) */
  for (size_t i = 0; i < nb; i++) {
    uint8_t* p = blocks[i].p;
    hh_free(p);
    REQUIRE(!hh_heap_check_owned(h, p), "block %zu (size %zu) still owned after free", i, blocks[i].size);
    if (blocks[i].size > 128 * KiB)
      REQUIRE(!hh_heap_contains(h, p), "large block %zu (size %zu) still contained after free", i, blocks[i].size);
  }

  /* zeroing functions zero reused memory too */
  for (size_t s = 0; s < N_API_SIZES; s++) {
    size_t n = opaque(api_sizes[s]);
    if (n > 256 * KiB) continue;
    uint8_t* ps[32];
    for (int k = 0; k < 32; k++) {
      ps[k] = hh_heap_malloc(h, n);
      REQUIRE(ps[k] != NULL, "malloc %zu", n);
      memset(ps[k], 0xA5, n);
    }
    for (int k = 0; k < 32; k++) hh_free(ps[k]);
    for (int k = 0; k < 32; k++) {
      ps[k] = (k & 1) ? hh_heap_zalloc(h, n) : hh_heap_calloc(h, 1, n);
      CHECK_HEAP_BLOCK(ps[k], n, h, others, 2);
      REQUIRE(first_nonzero(ps[k], n) == SIZE_MAX, "reused %s block of %zu bytes: byte %zu not zero",
              (k & 1) ? "zalloc" : "calloc", n, first_nonzero(ps[k], n));
    }
    for (int k = 0; k < 32; k++) hh_free(ps[k]);
  }

  /* aligned */
  static const size_t aligns[] = {16, 32, 64, 256, 4096, 65536, 1 * 1024 * 1024, 4 * 1024 * 1024};
  static const size_t asizes[] = {1, 100, 5000, 200 * 1024, 3 * 1024 * 1024};
  for (size_t a = 0; a < sizeof aligns / sizeof aligns[0]; a++) {
    for (size_t s = 0; s < sizeof asizes / sizeof asizes[0]; s++) {
      size_t n = opaque(asizes[s]);
      uint8_t* p = hh_heap_malloc_aligned(h, n, aligns[a]);
      CHECK_HEAP_BLOCK(p, n, h, others, 2);
      REQUIRE(is_aligned(p, aligns[a]), "hh_heap_malloc_aligned(%zu, %zu) = %p", n, aligns[a], (void*)p);
      pattern_fill(p, n, pattern_key(p, 7));
      REQUIRE(pattern_check(p, n, pattern_key(p, 7)) == SIZE_MAX, "aligned block corrupted");
      hh_free(p);
    }
  }
  errno = 0;
  ck_assert_ptr_null(hh_heap_malloc_aligned(h, 16, opaque(48)));
  ck_assert_int_eq(errno, EINVAL);

  /* realloc: contents kept through every size range, moved blocks land in h */
  static const size_t chain[] = {10, 100, 3000, 70000, 200 * 1024, 1536 * 1024, 3 * 1024 * 1024,
                                 5 * 1024 * 1024, 1000, 20};
  uint8_t* p = hh_heap_realloc(h, NULL, 5);
  CHECK_HEAP_BLOCK(p, 5, h, others, 2);
  size_t cur = 5;
  pattern_fill(p, cur, pattern_key(p, 1));
  uint64_t key = pattern_key(p, 1);
  for (size_t i = 0; i < sizeof chain / sizeof chain[0]; i++) {
    size_t n = opaque(chain[i]);
    uint8_t* q = hh_heap_realloc(h, p, n);
    CHECK_HEAP_BLOCK(q, n, h, others, 2);
    size_t keep = n < cur ? n : cur;
    size_t bad = pattern_check(q, keep, key);
    REQUIRE(bad == SIZE_MAX, "realloc %zu -> %zu lost byte %zu", cur, n, bad);
    p = q;
    cur = n;
    key = pattern_key(p, 100 + i);
    pattern_fill(p, cur, key);
  }
  /* a backing-heap block reallocated through h to another size class moves into h */
  uint8_t* b = hh_malloc(100);
  ck_assert_ptr_nonnull(b);
  ck_assert(hh_heap_contains(backing, b));
  pattern_fill(b, 100, pattern_key(b, 3));
  uint64_t bkey = pattern_key(b, 3);
  uint8_t* b2 = hh_heap_realloc(h, b, 5000);
  CHECK_HEAP_BLOCK(b2, 5000, h, others, 2);
  ck_assert_uint_eq(pattern_check(b2, 100, bkey), SIZE_MAX);
  hh_free(b2);
  /* realloc to 0 frees */
  ck_assert_ptr_null(hh_heap_realloc(h, p, 0));

  /* strdup */
  char* s1 = hh_heap_strdup(h, "first-class heaps");
  CHECK_HEAP_BLOCK(s1, 18, h, others, 2);
  ck_assert_str_eq(s1, "first-class heaps");
  size_t long_len = 300 * KiB;
  char* src = hh_malloc(long_len + 1);
  ck_assert_ptr_nonnull(src);
  for (size_t i = 0; i < long_len; i++) src[i] = (char)('a' + i % 26);
  src[long_len] = 0;
  char* s2 = hh_heap_strdup(h, src);
  CHECK_HEAP_BLOCK(s2, long_len + 1, h, others, 2);
  ck_assert_int_eq(memcmp(s2, src, long_len + 1), 0);
  char* s3 = hh_heap_strdup(h, "");
  CHECK_HEAP_BLOCK(s3, 1, h, others, 2);
  ck_assert_int_eq(s3[0], 0);
  hh_free(s1);
  hh_free(s2);
  hh_free(s3);
  hh_free(src);

  /* errors */
  errno = 0;
  ck_assert_ptr_null(hh_heap_calloc(h, opaque(SIZE_MAX / 2 + 1), 2));
  ck_assert_int_eq(errno, ENOMEM);
  errno = 0;
  ck_assert_ptr_null(hh_heap_malloc(h, opaque(SIZE_MAX)));
  ck_assert_int_eq(errno, ENOMEM);
  errno = 0;
  ck_assert_ptr_null(hh_heap_zalloc(h, opaque(SIZE_MAX - 4096)));
  ck_assert_int_eq(errno, ENOMEM);

  hh_heap_delete(other);
  hh_heap_destroy(h);
}
END_TEST

typedef struct {
  errbox_t box;
  item_t* items;
  size_t count;
  size_t step;
  size_t freed;
} remote_free_ctx_t;

/* Frees items[i] for i = box.id, box.id + step, ... with content checks. */
static void* remote_free_thread(void* arg) {
  remote_free_ctx_t* ctx = arg;
  for (size_t i = (size_t)ctx->box.id; i < ctx->count; i += ctx->step) {
    item_t* it = &ctx->items[i];
    if (it->p == NULL) continue;
    size_t bad = check_item(it);
    if (bad != SIZE_MAX)
      box_fail(&ctx->box, "block %zu (size %zu) corrupted at byte %zu before remote free", i, it->size, bad);
    hh_free(it->p);
    it->p = NULL;
    ctx->freed++;
  }
  return NULL;
}

/* ---- 2. check_owned ---------------------------------------------------------------- */

START_TEST(test_heap_check_owned) {
  enum { N = 3000 };
  static item_t items[N];
  errbox_t box = {0};
  hh_heap_t* h = hh_heap_new();
  hh_heap_t* backing = hh_heap_get_backing();
  ck_assert_ptr_nonnull(h);
  heap_alloc_items(h, items, N, 11, &box);
  ck_assert_msg(!box.failed, "%s", box.msg);
  for (size_t i = 0; i < N; i++) {
    REQUIRE(hh_heap_check_owned(h, items[i].p), "live block %zu (size %zu) not owned", i, items[i].size);
    REQUIRE(!hh_heap_check_owned(backing, items[i].p), "block %zu owned by the backing heap", i);
  }
  /* free every other block: half of them from another thread (first, while
   * most pages are still full), then half here */
  static item_t remote[N / 4 + 1];
  size_t nremote = 0;
  for (size_t i = 2; i < N; i += 4) remote[nremote++] = items[i];
  remote_free_ctx_t rctx;
  memset(&rctx, 0, sizeof rctx);
  rctx.items = remote;
  rctx.count = nremote;
  rctx.step = 1;
  pthread_t th;
  ck_assert_int_eq(pthread_create(&th, NULL, remote_free_thread, &rctx), 0);
  ck_assert_int_eq(pthread_join(th, NULL), 0);
  ck_assert_msg(!rctx.box.failed, "%s", rctx.box.msg);
  ck_assert_uint_eq(rctx.freed, nremote);
  for (size_t i = 0; i < N; i += 4) hh_free(items[i].p);
  for (size_t i = 0; i < N; i++) {
    bool owned = hh_heap_check_owned(h, items[i].p);
    if (i % 2 == 0) {
      REQUIRE(!owned, "block %zu (size %zu) freed %s still owned", i, items[i].size,
              i % 4 == 0 ? "by its owner" : "by another thread");
    } else {
      REQUIRE(owned, "live block %zu (size %zu) not owned after neighbours were freed", i, items[i].size);
      size_t bad = check_item(&items[i]);
      REQUIRE(bad == SIZE_MAX, "block %zu corrupted at byte %zu", i, bad);
    }
  }
  /* reallocate in the holes: owned again */
  for (size_t i = 0; i < N; i += 2) {
    items[i].p = hh_heap_malloc(h, items[i].size);
    REQUIRE(items[i].p != NULL, "malloc");
    REQUIRE(hh_heap_check_owned(h, items[i].p), "new block %zu not owned", i);
    pattern_fill(items[i].p, items[i].size, pattern_key(items[i].p, items[i].tag));
  }
  for (size_t i = 0; i < N; i++) {
    size_t bad = check_item(&items[i]);
    REQUIRE(bad == SIZE_MAX, "block %zu corrupted at byte %zu", i, bad);
  }
  hh_heap_destroy(h);
}
END_TEST

/* ---- 3. destroy --------------------------------------------------------------------- */

START_TEST(test_heap_destroy_releases_everything) {
  enum { N = 10000 };
  static item_t items[N];
  hh_stats_t before = baseline_stats();

  hh_heap_t* h = hh_heap_new();
  ck_assert_ptr_nonnull(h);
  errbox_t box = {0};
  heap_alloc_items(h, items, N, 21, &box);
  ck_assert_msg(!box.failed, "%s", box.msg);
  size_t total = 0, large = 0, huge = 0;
  for (size_t i = 0; i < N; i++) {
    total += items[i].size;
    if (items[i].size > 2 * MiB) huge++;
    else if (items[i].size > 128 * KiB) large++;
  }
  ck_assert_uint_ge(total, 50 * MiB);
  ck_assert_uint_ge(large, 40);
  ck_assert_uint_ge(huge, 8);

  /* a tenth of the small blocks freed by another thread and a tenth here,
   * so destroy meets remote-free lists and local free lists */
  remote_free_ctx_t rctx;
  memset(&rctx, 0, sizeof rctx);
  rctx.items = items;
  rctx.count = N;
  rctx.step = 10;
  rctx.box.id = 3;
  pthread_t th;
  ck_assert_int_eq(pthread_create(&th, NULL, remote_free_thread, &rctx), 0);
  ck_assert_int_eq(pthread_join(th, NULL), 0);
  ck_assert_msg(!rctx.box.failed, "%s", rctx.box.msg);
  for (size_t i = 7; i < N; i += 10) {
    hh_free(items[i].p);
    items[i].p = NULL;
  }
  size_t live_huge = 0;
  for (size_t i = 0; i < N; i++)
    if (items[i].p != NULL && items[i].size > 2 * MiB) live_huge++;

  hh_stats_t mid;
  hh_stats_get(&mid);
  ck_assert_uint_gt(mid.pages, before.pages);
  ck_assert_uint_ge(mid.reserved, before.reserved + 50 * MiB);
  ck_assert_uint_eq(mid.huge_count, before.huge_count + live_huge);

  hh_heap_destroy(h);
  hh_stats_t after = quiesced_stats();
  printf("test_heap_destroy_releases_everything: %zu MiB in %d blocks (%zu large, %zu huge); pages %zu -> %zu -> %zu, "
         "segments %zu -> %zu -> %zu, reserved %zu KiB -> %zu KiB -> %zu KiB\n",
         total / MiB, N, large, huge, before.pages, mid.pages, after.pages, before.segments, mid.segments,
         after.segments, before.reserved / KiB, mid.reserved / KiB, after.reserved / KiB);
  ck_assert_uint_eq(after.pages, before.pages);
  ck_assert_uint_eq(after.huge_count, before.huge_count);
  ck_assert_uint_eq(after.segments, before.segments);
  ck_assert_uint_eq(after.segments_cached, 0);
  ck_assert_uint_eq(after.reserved, before.reserved);
  ck_assert_uint_le(after.committed, before.committed);

  /* the thread's default heap is untouched and works */
  ck_assert_ptr_eq(hh_heap_get_default(), hh_heap_get_backing());
  void* p = hh_malloc(1000);
  ck_assert_ptr_nonnull(p);
  ck_assert(hh_heap_contains(hh_heap_get_backing(), p));
  hh_free(p);
}
END_TEST

START_TEST(test_heap_destroy_default_heap) {
  hh_heap_t* backing = hh_heap_get_backing();
  uint8_t* keep = hh_malloc(777);
  ck_assert_ptr_nonnull(keep);
  pattern_fill(keep, 777, pattern_key(keep, 5));
  hh_stats_t before = baseline_stats();

  hh_heap_t* h = hh_heap_new();
  ck_assert_ptr_nonnull(h);
  ck_assert_ptr_eq(hh_heap_set_default(h), backing);
  ck_assert_ptr_eq(hh_heap_get_default(), h);
  ck_assert_ptr_eq(hh_heap_get_backing(), backing);
  for (int i = 0; i < 5000; i++) {
    size_t n = 1 + (size_t)(i * 37) % 20000;
    uint8_t* p = (i % 500 == 0) ? hh_malloc(3 * MiB) : hh_malloc(n);
    REQUIRE(p != NULL && hh_heap_contains(h, p), "hh_malloc with default h: %p", (void*)p);
    p[0] = 1;
  }
  hh_heap_destroy(h);
  /* the default falls back to the backing heap */
  ck_assert_ptr_eq(hh_heap_get_default(), backing);
  hh_stats_t after = quiesced_stats();
  ck_assert_uint_eq(after.pages, before.pages);
  ck_assert_uint_eq(after.huge_count, before.huge_count);
  ck_assert_uint_eq(after.reserved, before.reserved);
  void* p = hh_malloc(100);
  ck_assert_ptr_nonnull(p);
  ck_assert(hh_heap_contains(backing, p));
  ck_assert_uint_eq(pattern_check(keep, 777, pattern_key(keep, 5)), SIZE_MAX);
  hh_free(p);
  hh_free(keep);
}
END_TEST

/* ---- 4. delete ---------------------------------------------------------------------- */

START_TEST(test_heap_delete_keeps_blocks) {
  enum { N = 6000 };
  static item_t items[N];
  hh_heap_t* backing = hh_heap_get_backing();
  hh_stats_t before = baseline_stats();
  hh_heap_t* h = hh_heap_new();
  ck_assert_ptr_nonnull(h);
  ck_assert_ptr_eq(hh_heap_set_default(h), backing);
  errbox_t box = {0};
  heap_alloc_items(h, items, N, 31, &box);
  ck_assert_msg(!box.failed, "%s", box.msg);
  /* leave holes, so the backing heap later allocates among live blocks */
  for (size_t i = 0; i < N; i += 3) {
    hh_free(items[i].p);
    items[i].p = NULL;
  }

  hh_heap_delete(h);
  ck_assert_ptr_eq(hh_heap_get_default(), backing);
  for (size_t i = 0; i < N; i++) {
    if (items[i].p == NULL) continue;
    size_t bad = check_item(&items[i]);
    REQUIRE(bad == SIZE_MAX, "block %zu (size %zu) corrupted at byte %zu after delete", i, items[i].size, bad);
    REQUIRE(hh_heap_contains(backing, items[i].p), "block %zu (size %zu) not in the backing heap after delete", i,
            items[i].size);
    REQUIRE(hh_heap_check_owned(backing, items[i].p), "block %zu (size %zu) not owned by the backing heap", i,
            items[i].size);
  }
  /* the backing heap reuses the holes without touching the live blocks */
  static item_t more[N];
  heap_alloc_items(backing, more, N, 32, &box);
  ck_assert_msg(!box.failed, "%s", box.msg);
  for (size_t i = 0; i < N; i++) {
    REQUIRE(hh_heap_contains(backing, more[i].p), "new block %zu not in the backing heap", i);
    if (items[i].p == NULL) continue;
    size_t bad = check_item(&items[i]);
    REQUIRE(bad == SIZE_MAX, "old block %zu (size %zu) corrupted at byte %zu", i, items[i].size, bad);
  }
  for (size_t i = 0; i < N; i++) {
    size_t bad = check_item(&more[i]);
    REQUIRE(bad == SIZE_MAX, "new block %zu (size %zu) corrupted at byte %zu", i, more[i].size, bad);
    hh_free(more[i].p);
    if (items[i].p != NULL) {
      /* some through realloc, which must keep the contents */
      if (i % 5 == 0) {
        uint8_t* q = hh_realloc(items[i].p, items[i].size + 4000);
        REQUIRE(q != NULL, "realloc");
        REQUIRE(pattern_check(q, items[i].size, pattern_key(items[i].p, items[i].tag)) == SIZE_MAX, "realloc lost contents");
        items[i].p = q;
      }
      hh_free(items[i].p);
    }
  }
  hh_stats_t after = quiesced_stats();
  ck_assert_uint_eq(after.pages, before.pages);
  ck_assert_uint_eq(after.huge_count, before.huge_count);
  ck_assert_uint_eq(after.reserved, before.reserved);

  /* delete of the backing heap and of NULL are ignored */
  hh_heap_delete(backing);
  hh_heap_delete(NULL);
  ck_assert_ptr_eq(hh_heap_get_backing(), backing);
  void* p = hh_malloc(10);
  ck_assert(hh_heap_contains(backing, p));
  hh_free(p);
}
END_TEST

/* The heap's blocks are freed by other threads while the owner deletes it:
 * before the delete their frees go to the heap's pages (and, for full pages,
 * to its delayed-free list), after it to the backing heap's. */
#define DC_N 30000
#define DC_FREERS 3

static item_t dc_items[DC_N];
static size_t dc_n; /* DC_N, scaled */
static atomic_size_t dc_progress;
static atomic_int dc_freers_done;

typedef struct {
  errbox_t box;
  pthread_barrier_t* start;
  size_t freed;
} dc_ctx_t;

static void* dc_freer(void* arg) {
  dc_ctx_t* ctx = arg;
  pthread_barrier_wait(ctx->start);
  for (size_t i = (size_t)ctx->box.id; i < dc_n; i += DC_FREERS) {
    item_t* it = &dc_items[i];
    size_t bad = check_item(it);
    if (bad != SIZE_MAX) box_fail(&ctx->box, "block %zu (size %zu) corrupted at byte %zu", i, it->size, bad);
    hh_free(it->p);
    ctx->freed++;
    atomic_fetch_add_explicit(&dc_progress, 1, memory_order_relaxed);
    if ((i & 255) == 0) sched_yield(); /* let the owner run in between */
  }
  atomic_fetch_add_explicit(&dc_freers_done, 1, memory_order_release);
  return NULL;
}

START_TEST(test_heap_delete_while_others_free) {
  /* _i: when to delete: before the frees start, a third in, most done */
  static const unsigned delete_at_percent[] = {0, 33, 90};
  unsigned when = delete_at_percent[_i];
  hh_heap_t* backing = hh_heap_get_backing();
  hh_stats_t before = baseline_stats();
  atomic_store(&dc_progress, 0);
  atomic_store(&dc_freers_done, 0);

  hh_heap_t* h = hh_heap_new();
  ck_assert_ptr_nonnull(h);
  errbox_t box = {0};
  dc_n = scaled(DC_N, 3000);
  heap_alloc_items(h, dc_items, dc_n, 41 + _i, &box);
  ck_assert_msg(!box.failed, "%s", box.msg);

  pthread_barrier_t start;
  ck_assert_int_eq(pthread_barrier_init(&start, NULL, DC_FREERS + 1), 0);
  pthread_t th[DC_FREERS];
  dc_ctx_t ctx[DC_FREERS];
  for (int t = 0; t < DC_FREERS; t++) {
    memset(&ctx[t], 0, sizeof ctx[t]);
    ctx[t].box.id = t;
    ctx[t].start = &start;
    ck_assert_int_eq(pthread_create(&th[t], NULL, dc_freer, &ctx[t]), 0);
  }
  pthread_barrier_wait(&start);
  while (atomic_load_explicit(&dc_progress, memory_order_relaxed) < dc_n * when / 100 &&
         atomic_load_explicit(&dc_freers_done, memory_order_acquire) < DC_FREERS)
    sched_yield();
  hh_heap_delete(h);
  size_t progress_at_delete = atomic_load(&dc_progress);

  /* keep the backing heap busy meanwhile: it now owns h's pages and must
   * take in the remote frees into them */
  errbox_t mine = {0};
  rng_t r = rng_for(77);
  enum { KEEP = 512 };
  item_t keep[KEEP];
  memset(keep, 0, sizeof keep);
  size_t rounds = 0;
  do {
    for (int k = 0; k < 2000; k++) {
      uint32_t s = rng_below(&r, KEEP);
      if (keep[s].p != NULL) {
        if (check_item(&keep[s]) != SIZE_MAX) box_fail(&mine, "own block corrupted");
        hh_free(keep[s].p);
      }
      size_t n = 1 + rng_below(&r, 2048);
      keep[s].p = hh_malloc(n);
      keep[s].size = n;
      keep[s].tag = rounds * 4096 + (uint64_t)k;
      if (keep[s].p == NULL) {
        box_fail(&mine, "hh_malloc(%zu) failed", n);
        break;
      }
      if (!hh_heap_contains(backing, keep[s].p)) box_fail(&mine, "new block not in the backing heap");
      pattern_fill(keep[s].p, n, pattern_key(keep[s].p, keep[s].tag));
    }
    rounds++;
  } while (atomic_load_explicit(&dc_freers_done, memory_order_acquire) < DC_FREERS && !mine.failed);

  size_t freed = 0;
  for (int t = 0; t < DC_FREERS; t++) {
    ck_assert_int_eq(pthread_join(th[t], NULL), 0);
    ck_assert_msg(!ctx[t].box.failed, "freer %d: %s", t, ctx[t].box.msg);
    freed += ctx[t].freed;
  }
  pthread_barrier_destroy(&start);
  ck_assert_msg(!mine.failed, "owner: %s", mine.msg);
  ck_assert_uint_eq(freed, dc_n);
  for (int s = 0; s < KEEP; s++) {
    if (keep[s].p == NULL) continue;
    ck_assert_uint_eq(check_item(&keep[s]), SIZE_MAX);
    hh_free(keep[s].p);
  }
  /* every page of h came back: its remote frees were all taken in */
  hh_stats_t after = quiesced_stats();
  printf("test_heap_delete_while_others_free[%d]: deleted after %zu of %zu frees; %zu owner rounds; pages %zu -> %zu, "
         "reserved %zu KiB -> %zu KiB\n",
         _i, progress_at_delete, dc_n, rounds, before.pages, after.pages, before.reserved / KiB,
         after.reserved / KiB);
  ck_assert_uint_eq(after.pages, before.pages);
  ck_assert_uint_eq(after.huge_count, before.huge_count);
  ck_assert_uint_eq(after.reserved, before.reserved);
}
END_TEST

/* A thread that exits with heaps of its own: they are deleted, their blocks
 * stay valid and are freed here. */
#define EXIT_N 4000
static item_t exit_items[2 * EXIT_N];
static size_t exit_n; /* EXIT_N, scaled */

typedef struct {
  errbox_t box;
} exit_ctx_t;

static void* exit_with_heaps(void* arg) {
  exit_ctx_t* ctx = arg;
  hh_heap_t* h1 = hh_heap_new();
  hh_heap_t* h2 = hh_heap_new();
  if (h1 == NULL || h2 == NULL) {
    box_fail(&ctx->box, "hh_heap_new failed");
    return NULL;
  }
  heap_alloc_items(h1, exit_items, exit_n, 51, &ctx->box);
  heap_alloc_items(h2, exit_items + exit_n, exit_n, 52, &ctx->box);
  for (size_t i = 0; i < 2 * exit_n; i++) {
    hh_heap_t* want = i < exit_n ? h1 : h2;
    if (!hh_heap_contains(want, exit_items[i].p)) box_fail(&ctx->box, "block %zu not in its heap", i);
  }
  if (hh_heap_set_default(h2) == NULL) box_fail(&ctx->box, "set_default(own heap) returned NULL");
  return NULL; /* no delete: thread exit does it */
}

START_TEST(test_thread_exit_deletes_heaps) {
  exit_n = scaled(EXIT_N, 1000);
  for (int round = 0; round < 3; round++) {
    exit_ctx_t ctx;
    memset(&ctx, 0, sizeof ctx);
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, exit_with_heaps, &ctx), 0);
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    ck_assert_msg(!ctx.box.failed, "round %d: %s", round, ctx.box.msg);
    for (size_t i = 0; i < 2 * exit_n; i++) {
      size_t bad = check_item(&exit_items[i]);
      REQUIRE(bad == SIZE_MAX, "round %d: block %zu (size %zu) corrupted at byte %zu after its thread exited", round,
              i, exit_items[i].size, bad);
      hh_free(exit_items[i].p);
    }
  }
}
END_TEST

/* A heap destroys its own blocks only: blocks of a thread that exited, whose
 * abandoned segment a first-class heap adopted when it needed a page, stay
 * valid (they were never allocated from that heap). */
#define ADOPT_N 3000
#define ADOPT_LATER 12000 /* allocated after the destroy: more than the freed pages hold */
static item_t adopt_items[ADOPT_N];

static void* exit_with_live_blocks(void* arg) {
  errbox_t* box = arg;
  rng_t r = rng_for(57);
  for (size_t i = 0; i < ADOPT_N; i++) {
    size_t n = 16 + rng_below(&r, 2000); /* small blocks: pages a new heap will want */
    uint8_t* p = hh_malloc(n);
    if (p == NULL) {
      box_fail(box, "hh_malloc(%zu) failed", n);
      return NULL;
    }
    adopt_items[i] = (item_t){p, n, 5700 + i};
    pattern_fill(p, n, pattern_key(p, adopt_items[i].tag));
  }
  return NULL; /* exits with every block live: its segments are abandoned */
}

static int cmp_item_ptr(const void* a, const void* b) {
  uintptr_t x = (uintptr_t)((const item_t*)a)->p, y = (uintptr_t)((const item_t*)b)->p;
  return x < y ? -1 : x > y;
}

START_TEST(test_heap_destroy_keeps_adopted_blocks) {
  errbox_t box = {0};
  pthread_t th;
  ck_assert_int_eq(pthread_create(&th, NULL, exit_with_live_blocks, &box), 0);
  ck_assert_int_eq(pthread_join(th, NULL), 0);
  ck_assert_msg(!box.failed, "%s", box.msg);

  /* a new heap needing pages of the same size classes */
  hh_heap_t* h = hh_heap_new();
  ck_assert_ptr_nonnull(h);
  static item_t own[ADOPT_LATER];
  heap_alloc_items(h, own, 200, 58, &box);
  ck_assert_msg(!box.failed, "%s", box.msg);
  size_t adopted = 0;
  for (size_t i = 0; i < ADOPT_N; i++) adopted += hh_heap_contains(h, adopt_items[i].p);
  hh_heap_destroy(h);
  /* (no hh_collect(true) here: it would unmap a wrongly freed segment and
   * the checks below would fault instead of failing) */

  /* the exited thread's blocks must not be handed out again ... */
  qsort(adopt_items, ADOPT_N, sizeof adopt_items[0], cmp_item_ptr);
  size_t reissued = 0;
  for (size_t k = 0; k < ADOPT_LATER; k++) {
    own[k].size = 16 + (size_t)(k * 7) % 2000;
    own[k].p = hh_malloc(own[k].size);
    ck_assert_ptr_nonnull(own[k].p);
    own[k].tag = 5800 + k;
    item_t key = {own[k].p, 0, 0};
    if (bsearch(&key, adopt_items, ADOPT_N, sizeof adopt_items[0], cmp_item_ptr) != NULL) reissued++;
  }
  /* ... and must keep their contents */
  size_t corrupted = 0;
  for (size_t i = 0; i < ADOPT_N; i++) corrupted += check_item(&adopt_items[i]) != SIZE_MAX;
  printf("test_heap_destroy_keeps_adopted_blocks: %zu of %d blocks of the exited thread adopted by the new heap; "
         "after its destroy %zu were handed out again, %zu corrupted\n",
         adopted, ADOPT_N, reissued, corrupted);
  ck_assert_msg(reissued == 0 && corrupted == 0,
                "hh_heap_destroy freed blocks it did not allocate: %zu of %d live blocks of an exited thread were "
                "adopted by the heap; after destroying it %zu were handed out again and %zu corrupted",
                adopted, ADOPT_N, reissued, corrupted);
  for (size_t i = 0; i < ADOPT_N; i++) hh_free(adopt_items[i].p);
  for (size_t k = 0; k < ADOPT_LATER; k++) hh_free(own[k].p);
}
END_TEST

/* ---- 5. set_default --------------------------------------------------------------------- */

START_TEST(test_heap_set_default) {
  hh_heap_t* backing = hh_heap_get_backing();
  hh_heap_t* h = hh_heap_new();
  hh_heap_t* h2 = hh_heap_new();
  ck_assert_ptr_nonnull(h);
  ck_assert_ptr_nonnull(h2);

  ck_assert_ptr_eq(hh_heap_set_default(h), backing);
  ck_assert_ptr_eq(hh_heap_get_default(), h);
  ck_assert_ptr_eq(hh_heap_get_backing(), backing);

  /* every default-heap function now allocates from h */
  void* ps[8];
  ps[0] = hh_malloc(100);
  ps[1] = hh_zalloc(5000);
  ps[2] = hh_calloc(10, 10);
  ps[3] = hh_malloc_aligned(200, 256);
  ps[4] = hh_strdup("default");
  ps[5] = hh_realloc(NULL, 64);
  ps[6] = hh_malloc(300 * KiB);
  ps[7] = hh_malloc(3 * MiB);
  for (int i = 0; i < 8; i++) {
    ck_assert_ptr_nonnull(ps[i]);
    ck_assert_msg(hh_heap_contains(h, ps[i]), "block %d not from the new default heap", i);
    ck_assert_msg(!hh_heap_contains(backing, ps[i]), "block %d from the backing heap", i);
    ck_assert_msg(hh_heap_check_owned(h, ps[i]), "block %d not owned by the new default heap", i);
  }
  /* switching on returns the previous default */
  ck_assert_ptr_eq(hh_heap_set_default(h2), h);
  void* q = hh_malloc(100);
  ck_assert(hh_heap_contains(h2, q));
  ck_assert(!hh_heap_contains(h, q));
  /* NULL is refused and changes nothing */
  ck_assert_ptr_null(hh_heap_set_default(NULL));
  ck_assert_ptr_eq(hh_heap_get_default(), h2);
  /* setting the current default returns itself */
  ck_assert_ptr_eq(hh_heap_set_default(h2), h2);
  ck_assert_ptr_eq(hh_heap_set_default(backing), h2);
  ck_assert_ptr_eq(hh_heap_get_default(), backing);
  void* r = hh_malloc(100);
  ck_assert(hh_heap_contains(backing, r));
  /* deleting a heap that is not the default keeps the default */
  hh_heap_delete(h2);
  ck_assert_ptr_eq(hh_heap_get_default(), backing);
  ck_assert(hh_heap_contains(backing, q)); /* absorbed */
  /* deleting the default heap falls back to the backing heap */
  ck_assert_ptr_eq(hh_heap_set_default(h), backing);
  hh_heap_delete(h);
  ck_assert_ptr_eq(hh_heap_get_default(), backing);
  for (int i = 0; i < 8; i++) {
    ck_assert(hh_heap_contains(backing, ps[i]));
    hh_free(ps[i]);
  }
  hh_free(q);
  hh_free(r);
}
END_TEST

/* ---- 6. misuse: another thread's heap ---------------------------------------------------- */

enum {
  MISUSE_SET_DEFAULT,
  MISUSE_MALLOC,
  MISUSE_ZALLOC,
  MISUSE_CALLOC,
  MISUSE_REALLOC,
  MISUSE_MALLOC_ALIGNED,
  MISUSE_STRDUP,
  MISUSE_DESTROY,
  MISUSE_DELETE,
  MISUSE_VISIT,
  MISUSE_COUNT_
};
static const char* const misuse_names[] = {"set_default", "malloc",  "zalloc", "calloc", "realloc",
                                           "malloc_aligned", "strdup", "destroy", "delete", "visit"};

typedef struct {
  errbox_t box;
  int op;
  hh_heap_t* heap;   /* the main thread's heap */
  uint8_t* block;    /* a live block of heap */
  size_t block_size;
} misuse_ctx_t;

static bool count_visit(const hh_heap_t* heap, const hh_heap_area_t* area, void* block, size_t bs, void* arg) {
  (void)heap; (void)area; (void)block; (void)bs;
  (*(size_t*)arg)++;
  return true;
}

static void* misuse_thread(void* arg) {
  misuse_ctx_t* ctx = arg;
  errbox_t* box = &ctx->box;
  hh_heap_t* mine = hh_heap_get_backing();
  if (mine == NULL || mine == ctx->heap) {
    box_fail(box, "backing heap of the second thread: %p", (void*)mine);
    return NULL;
  }
  /* contains works from any thread */
  if (!hh_heap_contains(ctx->heap, ctx->block)) box_fail(box, "contains(other thread's heap, its block) false");
  if (hh_heap_contains(mine, ctx->block)) box_fail(box, "block of another thread's heap in this thread's heap");
  errno = 0;
  void* p = NULL;
  bool want_einval = true;
  switch (ctx->op) {
    case MISUSE_SET_DEFAULT:
      p = hh_heap_set_default(ctx->heap);
      want_einval = false;
      if (hh_heap_get_default() != mine) box_fail(box, "set_default(foreign) changed the default");
      break;
    case MISUSE_MALLOC: p = hh_heap_malloc(ctx->heap, 16); break;
    case MISUSE_ZALLOC: p = hh_heap_zalloc(ctx->heap, 5000); break;
    case MISUSE_CALLOC: p = hh_heap_calloc(ctx->heap, 4, 4); break;
    case MISUSE_REALLOC: p = hh_heap_realloc(ctx->heap, NULL, 100); break;
    case MISUSE_MALLOC_ALIGNED: p = hh_heap_malloc_aligned(ctx->heap, 16, 64); break;
    case MISUSE_STRDUP: p = hh_heap_strdup(ctx->heap, "not mine"); break;
    case MISUSE_DESTROY: hh_heap_destroy(ctx->heap); want_einval = false; break;
    case MISUSE_DELETE: hh_heap_delete(ctx->heap); want_einval = false; break;
    case MISUSE_VISIT: {
      size_t calls = 0;
      if (hh_heap_visit_blocks(ctx->heap, true, count_visit, &calls)) box_fail(box, "visit(foreign) returned true");
      if (calls != 0) box_fail(box, "visit(foreign) called the visitor %zu times", calls);
      want_einval = false;
      break;
    }
    default: box_fail(box, "bad op"); break;
  }
  if (p != NULL) box_fail(box, "%s with another thread's heap returned %p", misuse_names[ctx->op], p);
  if (want_einval && errno != EINVAL)
    box_fail(box, "%s with another thread's heap: errno %d, want EINVAL", misuse_names[ctx->op], errno);
  /* this thread's own heap is fine */
  void* own = hh_malloc(100);
  if (own == NULL || !hh_heap_contains(mine, own)) box_fail(box, "own allocation after misuse: %p", own);
  hh_free(own);
  return NULL;
}

START_TEST(test_heap_other_thread_refused) {
  /* In the secure build every refused use is a reported misuse and aborts:
   * the test is registered to expect SIGABRT there. */
  int op = _i;
  hh_heap_t* h = hh_heap_new();
  ck_assert_ptr_nonnull(h);
  size_t n = 3000;
  uint8_t* b = hh_heap_malloc(h, n);
  ck_assert_ptr_nonnull(b);
  pattern_fill(b, n, pattern_key(b, 1));

  misuse_ctx_t ctx;
  memset(&ctx, 0, sizeof ctx);
  ctx.op = op;
  ctx.heap = h;
  ctx.block = b;
  ctx.block_size = n;
  pthread_t th;
  ck_assert_int_eq(pthread_create(&th, NULL, misuse_thread, &ctx), 0);
  ck_assert_int_eq(pthread_join(th, NULL), 0);
  ck_assert_msg(!hh_is_secure(), "secure build: %s with another thread's heap did not abort",
                misuse_names[op]);
  ck_assert_msg(!ctx.box.failed, "%s: %s", misuse_names[op], ctx.box.msg);

  /* the heap is intact and still belongs to this thread */
  ck_assert(hh_heap_contains(h, b));
  ck_assert(hh_heap_check_owned(h, b));
  ck_assert_uint_eq(pattern_check(b, n, pattern_key(b, 1)), SIZE_MAX);
  uint8_t* c = hh_heap_malloc(h, 100);
  ck_assert_ptr_nonnull(c);
  ck_assert(hh_heap_contains(h, c));
  ck_assert_ptr_eq(hh_heap_get_default(), hh_heap_get_backing());
  hh_free(c);
  hh_free(b);
  hh_heap_destroy(h);
}
END_TEST

START_TEST(test_heap_destroy_backing_refused) {
  /* secure build: a reported misuse, the test expects SIGABRT */
  hh_heap_t* backing = hh_heap_get_backing();
  enum { N = 500 };
  static item_t items[N];
  errbox_t box = {0};
  heap_alloc_items(backing, items, N, 61, &box);
  ck_assert_msg(!box.failed, "%s", box.msg);

  hh_heap_destroy(backing);
  ck_assert_msg(!hh_is_secure(), "secure build: destroying the backing heap did not abort");

  /* refused: the heap, its blocks and the default are as before */
  ck_assert_ptr_eq(hh_heap_get_backing(), backing);
  ck_assert_ptr_eq(hh_heap_get_default(), backing);
  for (size_t i = 0; i < N; i++) {
    REQUIRE(hh_heap_check_owned(backing, items[i].p), "block %zu no longer owned", i);
    size_t bad = check_item(&items[i]);
    REQUIRE(bad == SIZE_MAX, "block %zu corrupted at byte %zu", i, bad);
  }
  static item_t more[N];
  heap_alloc_items(backing, more, N, 62, &box);
  ck_assert_msg(!box.failed, "%s", box.msg);
  for (size_t i = 0; i < N; i++) {
    REQUIRE(check_item(&items[i]) == SIZE_MAX, "old block %zu corrupted", i);
    REQUIRE(check_item(&more[i]) == SIZE_MAX, "new block %zu corrupted", i);
    hh_free(items[i].p);
    hh_free(more[i].p);
  }
}
END_TEST

/* ---- 7. visiting -------------------------------------------------------------------------- */

#define VISIT_N 1000
#define VISIT_FREE 300

typedef struct {
  const uintptr_t* live;  /* sorted addresses of the live blocks */
  const item_t* const* by_addr;
  size_t nlive;
  bool* seen;
  size_t blocks;          /* block calls */
  size_t areas;           /* area calls */
  size_t used_sum;        /* sum of area->used over area calls */
  size_t stop_after_blocks; /* return false at this block call (0 = never) */
  bool stop_at_first_area;
  size_t calls_after_stop;
  bool stopped;
  errbox_t box;
} visit_ctx_t;

static item_t visit_items[VISIT_N];
static item_t visit_freed[VISIT_FREE]; /* for diagnostics: the blocks freed before the visit */

static const char* visit_describe(const void* block) {
  for (size_t k = 0; k < VISIT_FREE; k++)
    if (visit_freed[k].p == block) return k < VISIT_FREE / 2 ? "a block freed by its owner" : "a block freed remotely";
  return "no block of ours";
}

static int cmp_uptr(const void* a, const void* b) {
  uintptr_t x = *(const uintptr_t*)a, y = *(const uintptr_t*)b;
  return x < y ? -1 : x > y;
}

static bool visitor(const hh_heap_t* heap, const hh_heap_area_t* area, void* block, size_t block_size, void* arg) {
  visit_ctx_t* v = arg;
  (void)heap;
  if (v->stopped) {
    v->calls_after_stop++;
    return false;
  }
  if (area == NULL) {
    box_fail(&v->box, "area NULL");
    return true;
  }
  if (area->block_size != block_size)
    box_fail(&v->box, "area block_size %zu != %zu", area->block_size, block_size);
  if (area->blocks == NULL || area->used * area->block_size > area->committed || area->committed > area->reserved)
    box_fail(&v->box, "inconsistent area: blocks %p reserved %zu committed %zu used %zu block_size %zu", area->blocks,
             area->reserved, area->committed, area->used, area->block_size);
  if (block == NULL) {
    v->areas++;
    v->used_sum += area->used;
    if (v->stop_at_first_area) {
      v->stopped = true;
      return false;
    }
    return true;
  }
  v->blocks++;
  uint8_t* b = block;
  if (b < (uint8_t*)area->blocks || b + block_size > (uint8_t*)area->blocks + area->reserved)
    box_fail(&v->box, "block %p outside its area [%p, +%zu)", block, area->blocks, area->reserved);
  uintptr_t key = (uintptr_t)block;
  const uintptr_t* hit = bsearch(&key, v->live, v->nlive, sizeof key, cmp_uptr);
  if (hit == NULL) {
    box_fail(&v->box, "visited block %p (size %zu) is not a live block of ours: it is %s", block, block_size,
             visit_describe(block));
  } else {
    size_t idx = (size_t)(hit - v->live);
    const item_t* it = v->by_addr[idx];
    if (v->seen[idx]) box_fail(&v->box, "block %p visited twice", block);
    v->seen[idx] = true;
    if (block_size < it->size) box_fail(&v->box, "block %p: block_size %zu < requested %zu", block, block_size, it->size);
    size_t bad = check_item(it);
    if (bad != SIZE_MAX) box_fail(&v->box, "block %p corrupted at byte %zu", block, bad);
  }
  if (v->stop_after_blocks != 0 && v->blocks == v->stop_after_blocks) {
    v->stopped = true;
    return false;
  }
  return true;
}


static uintptr_t visit_live[VISIT_N];
static const item_t* visit_by_addr[VISIT_N];
static bool visit_seen[VISIT_N];

static int cmp_item_addr(const void* a, const void* b) {
  const item_t* x = *(const item_t* const*)a;
  const item_t* y = *(const item_t* const*)b;
  return (uintptr_t)x->p < (uintptr_t)y->p ? -1 : (uintptr_t)x->p > (uintptr_t)y->p;
}

static void visit_reset(visit_ctx_t* v, size_t nlive) {
  memset(v, 0, sizeof *v);
  memset(visit_seen, 0, sizeof visit_seen);
  v->live = visit_live;
  v->by_addr = visit_by_addr;
  v->nlive = nlive;
  v->seen = visit_seen;
}

START_TEST(test_visit_blocks) {
  hh_heap_t* h = hh_heap_new();
  ck_assert_ptr_nonnull(h);
  /* an empty heap: no calls */
  visit_ctx_t v;
  visit_reset(&v, 0);
  ck_assert(hh_heap_visit_blocks(h, true, visitor, &v));
  ck_assert_uint_eq(v.areas + v.blocks, 0);
  ck_assert(!hh_heap_visit_blocks(h, true, NULL, NULL));

  /* 1000 blocks of mixed sizes (including large and huge), from the three
   * allocation functions that return block starts */
  errbox_t box = {0};
  heap_alloc_items(h, visit_items, VISIT_N, 71, &box);
  ck_assert_msg(!box.failed, "%s", box.msg);
  size_t nlarge = 0, nhuge = 0;
  for (size_t i = 0; i < VISIT_N; i++) {
    if (visit_items[i].size > 2 * MiB) nhuge++;
    else if (visit_items[i].size > 128 * KiB) nlarge++;
  }
  ck_assert_uint_ge(nlarge, 3);
  ck_assert_uint_ge(nhuge, 1);

  /* free 300 chosen at random: half here, half from another thread (their
   * frees wait on the pages' remote-free lists until the visit) */
  size_t order[VISIT_N];
  for (size_t i = 0; i < VISIT_N; i++) order[i] = i;
  rng_t r = rng_for(72);
  for (size_t i = VISIT_N - 1; i > 0; i--) {
    size_t j = rng_below(&r, (uint32_t)i + 1);
    size_t t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  static item_t remote[VISIT_FREE / 2];
  for (size_t k = 0; k < VISIT_FREE; k++) {
    item_t* it = &visit_items[order[k]];
    visit_freed[k] = *it;
    if (k < VISIT_FREE / 2) {
      hh_free(it->p);
    } else {
      remote[k - VISIT_FREE / 2] = *it;
    }
    it->p = NULL;
  }
  remote_free_ctx_t rctx;
  memset(&rctx, 0, sizeof rctx);
  rctx.items = remote;
  rctx.count = VISIT_FREE / 2;
  rctx.step = 1;
  pthread_t th;
  ck_assert_int_eq(pthread_create(&th, NULL, remote_free_thread, &rctx), 0);
  ck_assert_int_eq(pthread_join(th, NULL), 0);
  ck_assert_msg(!rctx.box.failed, "%s", rctx.box.msg);
  ck_assert_uint_eq(rctx.freed, VISIT_FREE / 2);

  size_t nlive = 0;
  for (size_t i = 0; i < VISIT_N; i++)
    if (visit_items[i].p != NULL) visit_by_addr[nlive++] = &visit_items[i];
  ck_assert_uint_eq(nlive, VISIT_N - VISIT_FREE);
  qsort(visit_by_addr, nlive, sizeof visit_by_addr[0], cmp_item_addr);
  for (size_t i = 0; i < nlive; i++) visit_live[i] = (uintptr_t)visit_by_addr[i]->p;

  /* all blocks: exactly the 700 live ones, each once */
  visit_reset(&v, nlive);
  ck_assert(hh_heap_visit_blocks(h, true, visitor, &v));
  ck_assert_msg(!v.box.failed, "%s", v.box.msg);
  printf("test_visit_blocks: %zu areas, %zu blocks, used sum %zu (%zu large, %zu huge allocated)\n", v.areas,
         v.blocks, v.used_sum, nlarge, nhuge);
  ck_assert_uint_eq(v.blocks, VISIT_N - VISIT_FREE);
  ck_assert_uint_eq(v.used_sum, VISIT_N - VISIT_FREE);
  for (size_t i = 0; i < nlive; i++) ck_assert_msg(v.seen[i], "live block %p not visited", (void*)visit_live[i]);
  size_t areas_all = v.areas;

  /* areas only */
  visit_reset(&v, nlive);
  ck_assert(hh_heap_visit_blocks(h, false, visitor, &v));
  ck_assert_msg(!v.box.failed, "%s", v.box.msg);
  ck_assert_uint_eq(v.blocks, 0);
  ck_assert_uint_eq(v.areas, areas_all);
  ck_assert_uint_eq(v.used_sum, VISIT_N - VISIT_FREE);

  /* stop after the 10th block */
  visit_reset(&v, nlive);
  v.stop_after_blocks = 10;
  ck_assert(!hh_heap_visit_blocks(h, true, visitor, &v));
  ck_assert_msg(!v.box.failed, "%s", v.box.msg);
  ck_assert_uint_eq(v.blocks, 10);
  ck_assert_uint_eq(v.calls_after_stop, 0);

  /* stop at the last block: visit still reports the stop */
  visit_reset(&v, nlive);
  v.stop_after_blocks = nlive;
  ck_assert(!hh_heap_visit_blocks(h, true, visitor, &v));
  ck_assert_uint_eq(v.blocks, nlive);
  ck_assert_uint_eq(v.calls_after_stop, 0);

  /* stop at the first area */
  visit_reset(&v, nlive);
  v.stop_at_first_area = true;
  ck_assert(!hh_heap_visit_blocks(h, true, visitor, &v));
  ck_assert_uint_eq(v.areas, 1);
  ck_assert_uint_eq(v.blocks, 0);
  ck_assert_uint_eq(v.calls_after_stop, 0);

  /* the visits changed nothing */
  for (size_t i = 0; i < nlive; i++) {
    const item_t* it = visit_by_addr[i];
    REQUIRE(hh_heap_check_owned(h, it->p), "block %p not owned after visits", (void*)it->p);
    REQUIRE(check_item(it) == SIZE_MAX, "block %p corrupted after visits", (void*)it->p);
  }
  /* free everything: no block left to visit */
  for (size_t i = 0; i < nlive; i++) hh_free(visit_by_addr[i]->p);
  visit_reset(&v, 0);
  ck_assert(hh_heap_visit_blocks(h, true, visitor, &v));
  ck_assert_msg(!v.box.failed, "%s", v.box.msg);
  ck_assert_uint_eq(v.blocks, 0);
  ck_assert_uint_eq(v.used_sum, 0);
  hh_heap_destroy(h);
}
END_TEST

/* ---- 8. hh_heap_collect -------------------------------------------------------------------- */

static bool count_areas(const hh_heap_t* heap, const hh_heap_area_t* area, void* block, size_t bs, void* arg) {
  (void)heap; (void)area; (void)bs;
  if (block == NULL) (*(size_t*)arg)++;
  return true;
}

static size_t heap_area_count(hh_heap_t* heap) {
  size_t n = 0;
  ck_assert(hh_heap_visit_blocks(heap, false, count_areas, &n));
  return n;
}

START_TEST(test_heap_collect) {
  enum { NMAX = 20000 };
  static item_t items[NMAX];
  const size_t N = scaled(NMAX, 5000);
  hh_stats_t before = baseline_stats();
  hh_heap_t* h = hh_heap_new();
  ck_assert_ptr_nonnull(h);
  errbox_t box = {0};

  /* freed here */
  heap_alloc_items(h, items, N, 81, &box);
  ck_assert_msg(!box.failed, "%s", box.msg);
  ck_assert_uint_gt(heap_area_count(h), 0);
  for (size_t i = 0; i < N; i++) hh_free(items[i].p);
  hh_heap_collect(h, true);
  ck_assert_uint_eq(heap_area_count(h), 0); /* every page of h went back */
  hh_stats_t s1 = quiesced_stats();
  ck_assert_uint_eq(s1.pages, before.pages);

  /* freed by another thread: collect must take in the remote frees */
  heap_alloc_items(h, items, N, 82, &box);
  ck_assert_msg(!box.failed, "%s", box.msg);
  hh_stats_t s2;
  hh_stats_get(&s2);
  ck_assert_uint_gt(s2.pages, before.pages);
  remote_free_ctx_t rctx;
  memset(&rctx, 0, sizeof rctx);
  rctx.items = items;
  rctx.count = N;
  rctx.step = 1;
  pthread_t th;
  ck_assert_int_eq(pthread_create(&th, NULL, remote_free_thread, &rctx), 0);
  ck_assert_int_eq(pthread_join(th, NULL), 0);
  ck_assert_msg(!rctx.box.failed, "%s", rctx.box.msg);
  size_t areas_before = heap_area_count(h);
  hh_heap_collect(h, false);
  hh_heap_collect(h, true);
  size_t areas_after = heap_area_count(h);
  hh_stats_t s3 = quiesced_stats();
  printf("test_heap_collect: pages %zu -> %zu (all freed remotely; %zu areas in the heap) -> %zu after "
         "hh_heap_collect (%zu areas)\n",
         before.pages, s2.pages, areas_before, s3.pages, areas_after);
  ck_assert_uint_eq(areas_after, 0);
  ck_assert_uint_eq(s3.pages, before.pages);
  hh_heap_delete(h);
  hh_stats_t after = quiesced_stats();
  ck_assert_uint_eq(after.reserved, before.reserved);
}
END_TEST

/* ---- 9. deferred free ----------------------------------------------------------------------- */

typedef struct {
  atomic_ulong calls;
  atomic_ulong forced;
  atomic_int max_depth;
  atomic_int bad_order;           /* non-forced heartbeat not above the previous one (same thread) */
  atomic_int bad_arg;
  atomic_int alloc_errors;
  atomic_ullong first_hb, last_hb;  /* main thread's first and last heartbeat */
  bool alloc_inside;              /* the callback allocates and frees */
  /* a lazy release queue: blocks the program let go of, freed by the callback */
  uint8_t* pending[4096];
  size_t pending_size[4096];
  atomic_size_t npending;
  atomic_size_t released;
  atomic_size_t queued;
  pthread_mutex_t mu;
} deferred_state_t;

static deferred_state_t dstate;
static _Thread_local unsigned long long tl_last_hb;
static _Thread_local unsigned long tl_calls;
/* set around hh_collect / hh_heap_collect: those call the callback with the
 * current heartbeat, which need not have advanced */
static _Thread_local bool tl_in_collect;
static _Thread_local bool tl_is_main;
static _Thread_local int tl_depth;

static void collect_expecting_callback(bool force) {
  tl_in_collect = true;
  hh_collect(force);
  tl_in_collect = false;
}

static void heap_collect_expecting_callback(hh_heap_t* heap, bool force) {
  tl_in_collect = true;
  hh_heap_collect(heap, force);
  tl_in_collect = false;
}

static void deferred_cb(bool force, unsigned long long heartbeat, void* arg) {
  deferred_state_t* st = arg;
  if (st != &dstate) {
    atomic_fetch_add(&dstate.bad_arg, 1);
    return;
  }
  int d = ++tl_depth; /* nesting on this thread */
  int m = atomic_load(&st->max_depth);
  while (d > m && !atomic_compare_exchange_weak(&st->max_depth, &m, d)) {
  }
  atomic_fetch_add(&st->calls, 1);
  if (force) atomic_fetch_add(&st->forced, 1);
  if (force && !tl_in_collect) atomic_fetch_add(&st->bad_order, 1000); /* forced outside hh_collect */
  if (tl_calls > 0) {
    /* from the slow path the heartbeat has advanced since the last call */
    bool bad = tl_in_collect ? heartbeat < tl_last_hb : heartbeat <= tl_last_hb;
    if (bad) atomic_fetch_add(&st->bad_order, 1);
  }
  if (tl_calls == 0 && tl_is_main) atomic_store(&st->first_hb, heartbeat);
  if (tl_is_main) atomic_store(&st->last_hb, heartbeat);
  tl_last_hb = heartbeat;
  tl_calls++;

  /* release what the program queued */
  pthread_mutex_lock(&st->mu);
  size_t n = atomic_load(&st->npending);
  for (size_t i = 0; i < n; i++) {
    if (pattern_check(st->pending[i], st->pending_size[i], pattern_key(st->pending[i], 0xdef)) != SIZE_MAX)
      atomic_fetch_add(&st->alloc_errors, 1);
    hh_free(st->pending[i]);
  }
  atomic_store(&st->npending, 0);
  atomic_fetch_add(&st->released, n);
  pthread_mutex_unlock(&st->mu);

  if (st->alloc_inside) {
    /* enough allocations to go through the slow path many times: the
     * callback must not be entered again */
    enum { K = 256 };
    uint8_t* ps[K];
    for (int i = 0; i < K; i++) {
      size_t sz = (i % 3 == 0) ? 4000 + (size_t)i : 48;
      ps[i] = hh_malloc(sz);
      if (ps[i] == NULL) {
        atomic_fetch_add(&st->alloc_errors, 1);
        continue;
      }
      pattern_fill(ps[i], sz, pattern_key(ps[i], (uint64_t)i));
    }
    for (int i = 0; i < K; i++) {
      if (ps[i] == NULL) continue;
      size_t sz = (i % 3 == 0) ? 4000 + (size_t)i : 48;
      if (pattern_check(ps[i], sz, pattern_key(ps[i], (uint64_t)i)) != SIZE_MAX) atomic_fetch_add(&st->alloc_errors, 1);
      hh_free(ps[i]);
    }
  }
  tl_depth--;
}

static void dstate_reset(void) {
  memset(&dstate, 0, sizeof dstate);
  pthread_mutex_init(&dstate.mu, NULL);
  tl_last_hb = 0;
  tl_calls = 0;
  tl_is_main = true;
}

/* Allocate `rounds` x 20000 blocks of mixed small/medium sizes, keeping them
 * live for a while so the slow path runs often; returns false on failure. */
static bool churn(uint64_t stream, int rounds, bool queue_releases) {
  enum { LIVE = 20000 };
  static _Thread_local uint8_t* ps[LIVE];
  static _Thread_local size_t sz[LIVE];
  rng_t r = rng_for(stream);
  bool ok = true;
  for (int round = 0; round < rounds; round++) {
    for (size_t i = 0; i < LIVE; i++) {
      sz[i] = rng_below(&r, 4) == 0 ? 1025 + rng_below(&r, 16000) : 1 + rng_below(&r, 1024);
      ps[i] = hh_malloc(sz[i]);
      if (ps[i] == NULL) return false;
      ps[i][sz[i] - 1] = (uint8_t)(i >> 3);
      ps[i][0] = (uint8_t)i;
    }
    for (size_t i = 0; i < LIVE; i++) {
      if (ps[i][0] != (uint8_t)i || (sz[i] > 1 && ps[i][sz[i] - 1] != (uint8_t)(i >> 3))) ok = false;
      if (queue_releases && i % 50 == 0) {
        /* let go lazily: the deferred-free callback frees it */
        pthread_mutex_lock(&dstate.mu);
        size_t n = atomic_load(&dstate.npending);
        if (n < sizeof dstate.pending / sizeof dstate.pending[0]) {
          pattern_fill(ps[i], sz[i], pattern_key(ps[i], 0xdef));
          dstate.pending[n] = ps[i];
          dstate.pending_size[n] = sz[i];
          atomic_store(&dstate.npending, n + 1);
          atomic_fetch_add(&dstate.queued, 1);
          ps[i] = NULL;
        }
        pthread_mutex_unlock(&dstate.mu);
        if (ps[i] == NULL) continue;
      }
      hh_free(ps[i]);
    }
  }
  return ok;
}

START_TEST(test_deferred_free_heartbeat) {
  dstate_reset();
  hh_register_deferred_free(deferred_cb, &dstate);
  int rounds = (int)scaled(10, 3);
  ck_assert(churn(91, rounds, false));
  unsigned long calls = atomic_load(&dstate.calls);
  unsigned long long first_hb = atomic_load(&dstate.first_hb), last_hb = atomic_load(&dstate.last_hb);
  printf("test_deferred_free_heartbeat: %lu calls while allocating %d blocks, heartbeat %llu .. %llu\n", calls,
         rounds * 20000, first_hb, last_hb);
  ck_assert_uint_ge(calls, 10);
  ck_assert_uint_eq(atomic_load(&dstate.forced), 0);
  ck_assert_int_eq(atomic_load(&dstate.bad_order), 0);
  ck_assert_int_eq(atomic_load(&dstate.bad_arg), 0);
  ck_assert_uint_gt(last_hb, first_hb);
  ck_assert_int_eq(atomic_load(&dstate.max_depth), 1);

  /* hh_collect(true) calls it with force, hh_collect(false) without */
  collect_expecting_callback(true);
  ck_assert_uint_eq(atomic_load(&dstate.calls), calls + 1);
  ck_assert_uint_eq(atomic_load(&dstate.forced), 1);
  collect_expecting_callback(false);
  ck_assert_uint_eq(atomic_load(&dstate.calls), calls + 2);
  ck_assert_uint_eq(atomic_load(&dstate.forced), 1);
  /* so does hh_heap_collect of a first-class heap */
  hh_heap_t* h = hh_heap_new();
  ck_assert_ptr_nonnull(h);
  heap_collect_expecting_callback(h, true);
  ck_assert_uint_eq(atomic_load(&dstate.calls), calls + 3);
  ck_assert_uint_eq(atomic_load(&dstate.forced), 2);
  hh_heap_delete(h);
  ck_assert_int_eq(atomic_load(&dstate.bad_order), 0);

  /* unregistering stops the calls */
  hh_register_deferred_free(NULL, NULL);
  unsigned long at_unregister = atomic_load(&dstate.calls);
  ck_assert(churn(92, rounds, false));
  collect_expecting_callback(true);
  collect_expecting_callback(false);
  ck_assert_uint_eq(atomic_load(&dstate.calls), at_unregister);

  /* registering again resumes them */
  hh_register_deferred_free(deferred_cb, &dstate);
  ck_assert(churn(93, 3, false));
  ck_assert_uint_gt(atomic_load(&dstate.calls), at_unregister);
  hh_register_deferred_free(NULL, NULL);
}
END_TEST

START_TEST(test_deferred_free_may_allocate) {
  dstate_reset();
  dstate.alloc_inside = true;
  hh_register_deferred_free(deferred_cb, &dstate);
  /* the program queues blocks for lazy release; the callback frees them
   * and allocates and frees blocks of its own */
  int rounds = (int)scaled(10, 3);
  ck_assert(churn(94, rounds, true));
  collect_expecting_callback(true); /* forced: releases what is still queued */
  unsigned long calls = atomic_load(&dstate.calls);
  size_t released = atomic_load(&dstate.released);
  size_t queued = atomic_load(&dstate.queued);
  printf("test_deferred_free_may_allocate: %lu calls, %zu blocks released lazily, max depth %d\n", calls, released,
         atomic_load(&dstate.max_depth));
  ck_assert_uint_ge(calls, 10);
  ck_assert_int_eq(atomic_load(&dstate.max_depth), 1); /* never re-entered */
  ck_assert_int_eq(atomic_load(&dstate.alloc_errors), 0);
  ck_assert_int_eq(atomic_load(&dstate.bad_order), 0);
  ck_assert_uint_eq(atomic_load(&dstate.npending), 0);
  ck_assert_uint_eq(released, queued);
  ck_assert_uint_ge(queued, (size_t)rounds * 20000 / 50 / 2);
  ck_assert_uint_ge(atomic_load(&dstate.forced), 1);
  hh_register_deferred_free(NULL, NULL);
}
END_TEST

#define DF_THREADS 4

typedef struct {
  errbox_t box;
  unsigned long calls;
} df_ctx_t;

static int df_rounds;

static void* df_thread(void* arg) {
  df_ctx_t* ctx = arg;
  tl_calls = 0;
  if (!churn(100 + (uint64_t)ctx->box.id, df_rounds, true)) box_fail(&ctx->box, "churn failed");
  ctx->calls = tl_calls;
  tl_in_collect = true; /* thread exit collects with force, which calls the callback */
  return NULL;
}

START_TEST(test_deferred_free_threads) {
  dstate_reset();
  dstate.alloc_inside = true;
  df_rounds = (int)scaled(4, 2);
  hh_register_deferred_free(deferred_cb, &dstate);
  pthread_t th[DF_THREADS];
  df_ctx_t ctx[DF_THREADS];
  for (int t = 0; t < DF_THREADS; t++) {
    memset(&ctx[t], 0, sizeof ctx[t]);
    ctx[t].box.id = t;
    ck_assert_int_eq(pthread_create(&th[t], NULL, df_thread, &ctx[t]), 0);
  }
  for (int t = 0; t < DF_THREADS; t++) {
    ck_assert_int_eq(pthread_join(th[t], NULL), 0);
    ck_assert_msg(!ctx[t].box.failed, "thread %d: %s", t, ctx[t].box.msg);
    /* every thread's own slow path calls the callback */
    ck_assert_msg(ctx[t].calls >= 2, "thread %d: only %lu calls", t, ctx[t].calls);
  }
  collect_expecting_callback(true);
  ck_assert_int_eq(atomic_load(&dstate.bad_order), 0);
  ck_assert_int_eq(atomic_load(&dstate.bad_arg), 0);
  ck_assert_int_eq(atomic_load(&dstate.alloc_errors), 0);
  ck_assert_int_eq(atomic_load(&dstate.max_depth), 1);
  ck_assert_uint_eq(atomic_load(&dstate.npending), 0);
  ck_assert_uint_eq(atomic_load(&dstate.released), atomic_load(&dstate.queued));
  ck_assert_uint_ge(atomic_load(&dstate.queued), (size_t)DF_THREADS * (size_t)df_rounds * 20000 / 50 / 2);
  hh_register_deferred_free(NULL, NULL);
}
END_TEST

/* Registering is one step for the caller: a callback must only ever be
 * called with the argument registered together with it, also while another
 * thread re-registers (or unregisters) at the same time. */
static int reg_a, reg_b;
static atomic_long reg_calls, reg_bad;
static atomic_int reg_stop;

static void reg_cb_a(bool force, unsigned long long heartbeat, void* arg) {
  (void)force; (void)heartbeat;
  atomic_fetch_add(&reg_calls, 1);
  if (arg != &reg_a) atomic_fetch_add(&reg_bad, 1);
}

static void reg_cb_b(bool force, unsigned long long heartbeat, void* arg) {
  (void)force; (void)heartbeat;
  atomic_fetch_add(&reg_calls, 1);
  if (arg != &reg_b) atomic_fetch_add(&reg_bad, 1);
}

static void* reg_caller(void* arg) {
  (void)arg;
  hh_free(hh_malloc(1)); /* this thread's heap exists: hh_collect calls the callback */
  while (atomic_load_explicit(&reg_stop, memory_order_relaxed) == 0) hh_collect(false);
  return NULL;
}

static double now_sec(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

START_TEST(test_deferred_free_reregister_race) {
  atomic_store(&reg_calls, 0);
  atomic_store(&reg_bad, 0);
  atomic_store(&reg_stop, 0);
  hh_register_deferred_free(reg_cb_a, &reg_a);
  pthread_t th;
  ck_assert_int_eq(pthread_create(&th, NULL, reg_caller, NULL), 0);
  double t0 = now_sec();
  unsigned long toggles = 0;
  while (now_sec() - t0 < 3.0 && atomic_load(&reg_bad) == 0) {
    for (int k = 0; k < 1000; k++, toggles++) {
      switch (toggles % 3) {
        case 0: hh_register_deferred_free(reg_cb_b, &reg_b); break;
        case 1: hh_register_deferred_free(NULL, NULL); break;
        default: hh_register_deferred_free(reg_cb_a, &reg_a); break;
      }
    }
  }
  atomic_store(&reg_stop, 1);
  ck_assert_int_eq(pthread_join(th, NULL), 0);
  hh_register_deferred_free(NULL, NULL);
  long calls = atomic_load(&reg_calls), bad = atomic_load(&reg_bad);
  printf("test_deferred_free_reregister_race: %lu registrations in %.2f s, %ld calls, %ld with another "
         "registration's argument\n",
         toggles, now_sec() - t0, calls, bad);
  ck_assert_msg(bad == 0,
                "%ld of %ld deferred-free calls got the argument of another registration (or NULL after "
                "unregistering) while the registration changed concurrently",
                bad, calls);
  ck_assert_int_gt(calls, 0);
}
END_TEST

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0); /* the figures a test prints survive its failure */
  bool secure = hh_is_secure();
  Suite* s = suite_create("hardheap_heaps");

  TCase* tc = tcase_create("heaps");
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, test_heap_new_and_defaults);
  tcase_add_test(tc, test_heap_alloc_functions);
  tcase_add_test(tc, test_heap_check_owned);
  tcase_add_test(tc, test_heap_destroy_releases_everything);
  tcase_add_test(tc, test_heap_destroy_default_heap);
  tcase_add_test(tc, test_heap_delete_keeps_blocks);
  tcase_add_loop_test(tc, test_heap_delete_while_others_free, 0, 3);
  tcase_add_test(tc, test_thread_exit_deletes_heaps);
  tcase_add_test(tc, test_heap_destroy_keeps_adopted_blocks);
  tcase_add_test(tc, test_heap_set_default);
  tcase_add_test(tc, test_visit_blocks);
  tcase_add_test(tc, test_heap_collect);
  suite_add_tcase(s, tc);

  /* misuse: refused in the default build, abort in the secure build */
  tc = tcase_create("misuse");
  tcase_set_timeout(tc, 120);
  if (secure) {
    tcase_add_loop_test_raise_signal(tc, test_heap_other_thread_refused, SIGABRT, 0, MISUSE_COUNT_);
    tcase_add_test_raise_signal(tc, test_heap_destroy_backing_refused, SIGABRT);
  } else {
    tcase_add_loop_test(tc, test_heap_other_thread_refused, 0, MISUSE_COUNT_);
    tcase_add_test(tc, test_heap_destroy_backing_refused);
  }
  suite_add_tcase(s, tc);

  tc = tcase_create("deferred_free");
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, test_deferred_free_heartbeat);
  tcase_add_test(tc, test_deferred_free_may_allocate);
  tcase_add_test(tc, test_deferred_free_threads);
  suite_add_tcase(s, tc);

  tc = tcase_create("deferred_free_race");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_deferred_free_reregister_race);
  suite_add_tcase(s, tc);

  SRunner* sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
