/* Concurrency stress tests for hardheap. Every block is filled with a pattern
 * derived from its address and checked before it is freed, by whichever
 * thread frees it.
 *
 *  1. N threads (N = 2, 4, 8, 16, 32) allocating random sizes (mostly small,
 *     some medium up to 64 KiB, a few large up to 1 MiB) and handing 0%, 25%
 *     or 100% of their blocks to other threads (per-thread mutex-protected
 *     inboxes), which check and free them.
 *  2. Producer/consumer: one thread allocates, three free (every free is
 *     remote), while the producer's pages are full (the delayed-free path);
 *     the reserved memory must stay bounded while 1 GiB goes through.
 *  3. Thread churn: 100,000 short-lived threads in total, a few at a time,
 *     freeing blocks of their predecessors and leaving some for their
 *     successors; the process RSS must stay bounded.
 *  4. hh_heap_delete with live blocks: thread A's heap's blocks are handed to
 *     B and C, A deletes the heap and exits, B and C free them (while A
 *     deletes, or after A is gone).
 *
 * The amount of work is scaled down under ThreadSanitizer and
 * AddressSanitizer (detected at compile time) or by HH_TEST_SCALE=<factor>
 * (e.g. 0.1); each test prints what it ran and what it measured.
 *
 * Worker threads never call Check: they record the first error in their
 * context and the test's main thread asserts after joining.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
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

/* ---- sanitizers and scale ------------------------------------------------------ */

#if defined(__SANITIZE_THREAD__)
#define STRESS_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define STRESS_TSAN 1
#endif
#endif
#ifndef STRESS_TSAN
#define STRESS_TSAN 0
#endif

#if defined(__SANITIZE_ADDRESS__)
#define STRESS_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define STRESS_ASAN 1
#endif
#endif
#ifndef STRESS_ASAN
#define STRESS_ASAN 0
#endif

static const char* build_kind(void) { return STRESS_TSAN ? "tsan" : STRESS_ASAN ? "asan" : "plain"; }

/* Work factor: 1 in a plain build, less under a sanitizer (the given
 * defaults); HH_TEST_SCALE=<factor> overrides it. */
static double test_scale_or(double tsan_default, double asan_default) {
  const char* e = getenv("HH_TEST_SCALE");
  if (e != NULL && *e != 0) {
    char* end;
    double v = strtod(e, &end);
    if (end != e && v > 0 && v <= 100) return v;
  }
  if (STRESS_TSAN) return tsan_default;
  if (STRESS_ASAN) return asan_default;
  return 1.0;
}

static double test_scale(void) { return test_scale_or(0.1, 0.25); }

static size_t scaled(size_t n, size_t min) {
  double v = (double)n * test_scale();
  size_t r = (size_t)v;
  return r < min ? min : r;
}

static double now_sec(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- helpers ------------------------------------------------------------------- */

/* Roughly log-uniform in [lo, hi]. */
static size_t log_uniform(rng_t* r, size_t lo, size_t hi) {
  unsigned lo_bits = 63u - (unsigned)__builtin_clzll((unsigned long long)lo);
  unsigned hi_bits = 63u - (unsigned)__builtin_clzll((unsigned long long)hi);
  unsigned b = lo_bits + rng_below(r, hi_bits - lo_bits + 1);
  size_t base = (size_t)1 << b;
  size_t n = base + rng_below(r, (uint32_t)base);
  if (n < lo) n = lo;
  if (n > hi) n = hi;
  return n;
}

/* Mostly small, some medium up to 64 KiB, a few large up to 1 MiB. */
static size_t stress_size(rng_t* r) {
  uint32_t c = rng_below(r, 1000);
  if (c < 600) return 1 + rng_below(r, 256);
  if (c < 940) return 257 + rng_below(r, 768);
  if (c < 998) return log_uniform(r, 1025, 64 * KiB);
  return log_uniform(r, 128 * KiB + 1, 1 * MiB);
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

typedef struct {
  uint8_t* p;
  size_t size;
  uint64_t tag;
} item_t;

/* Allocate n bytes with a randomly chosen function, check the result and fill
 * it. NULL (after recording the error) on failure. */
static uint8_t* alloc_checked(rng_t* r, size_t n, uint64_t tag, errbox_t* box) {
  uint8_t* p;
  bool zero = false;
  size_t align = HH_MIN_ALIGNMENT;
  switch (rng_below(r, 16)) {
    case 0: p = hh_calloc(1, n); zero = true; break;
    case 1: p = hh_zalloc(n); zero = true; break;
    case 2:
      align = (size_t)32 << rng_below(r, 6);
      p = hh_malloc_aligned(n, align);
      break;
    default: p = hh_malloc(n); break;
  }
  if (p == NULL) {
    box_fail(box, "allocation of %zu bytes failed (errno %d)", n, errno);
    return NULL;
  }
  if (!is_aligned(p, align) || hh_usable_size(p) < n) {
    box_fail(box, "block %p of %zu bytes: alignment %zu, usable %zu", (void*)p, n, align, hh_usable_size(p));
  }
  if (zero) {
    for (size_t i = 0; i < n; i++)
      if (p[i] != 0) {
        box_fail(box, "zeroed block %p of %zu bytes has byte %zu = 0x%02x", (void*)p, n, i, p[i]);
        break;
      }
  }
  pattern_fill(p, n, pattern_key(p, tag));
  return p;
}

/* Check an item's contents and free it (sometimes through a realloc first). */
static bool check_and_free(const item_t* it, rng_t* r, errbox_t* box, const char* who) {
  size_t bad = pattern_check(it->p, it->size, pattern_key(it->p, it->tag));
  if (bad != SIZE_MAX) {
    box_fail(box, "%s: block %p (size %zu, tag %llx) corrupted at byte %zu", who, (void*)it->p, it->size,
             (unsigned long long)it->tag, bad);
    hh_free(it->p);
    return false;
  }
  if (r != NULL && rng_below(r, 16) == 0) {
    /* realloc by a thread that may not own the block: moves it into this
     * thread's heap (or resizes in place), keeping the prefix */
    size_t n = 1 + rng_below(r, 3000);
    uint8_t* q = hh_realloc(it->p, n);
    if (q == NULL) {
      box_fail(box, "%s: realloc(%p, %zu) failed", who, (void*)it->p, n);
      hh_free(it->p);
      return false;
    }
    size_t keep = n < it->size ? n : it->size;
    bad = pattern_check(q, keep, pattern_key(it->p, it->tag));
    if (bad != SIZE_MAX) box_fail(box, "%s: realloc %zu -> %zu lost byte %zu", who, it->size, n, bad);
    hh_free(q);
    return bad == SIZE_MAX;
  }
  hh_free(it->p);
  return true;
}

static void* idle_thread(void* arg) { return arg; }

/* Start and join a few threads, so the C library's thread-stack cache (and
 * the TLS it allocates with malloc) exists before a baseline is measured. */
static void warm_up_threads(int n) {
  pthread_t th[64];
  if (n > 64) n = 64;
  for (int t = 0; t < n; t++) ck_assert_int_eq(pthread_create(&th[t], NULL, idle_thread, NULL), 0);
  for (int t = 0; t < n; t++) ck_assert_int_eq(pthread_join(th[t], NULL), 0);
}

static hh_stats_t quiesced_stats(void) {
  hh_collect(true);
  hh_stats_t s;
  memset(&s, 0, sizeof s);
  hh_stats_get(&s);
  return s;
}

static size_t growth(size_t before, size_t after) { return after > before ? after - before : 0; }

/* ---- 1. N threads, a fraction of the frees remote ------------------------------------ */

#define MT_MAX_THREADS 32
#define MT_SLOTS 256
#define MT_INBOX_CAP 4096
#define MT_TOTAL_ALLOCS 400000 /* per configuration, over all threads (scaled) */

typedef struct {
  pthread_mutex_t mu;
  size_t count;
  item_t items[MT_INBOX_CAP];
} inbox_t;

typedef struct mt_shared_s mt_shared_t;

typedef struct {
  errbox_t box;
  mt_shared_t* shared;
  uint64_t allocs;
  uint64_t frees_local;
  uint64_t frees_received;
  uint64_t sent;
  uint64_t bytes;
  size_t max_inbox;
  item_t drained[MT_INBOX_CAP];
} mt_ctx_t;

struct mt_shared_s {
  int nthreads;
  unsigned remote_pct;
  size_t allocs_per_thread;
  pthread_barrier_t start;
  atomic_int finished;
  inbox_t inbox[MT_MAX_THREADS];
  mt_ctx_t ctx[MT_MAX_THREADS];
};

static mt_shared_t mt;

/* Take everything out of my inbox, check and free it. */
static void mt_drain(mt_ctx_t* ctx, rng_t* r) {
  inbox_t* in = &ctx->shared->inbox[ctx->box.id];
  pthread_mutex_lock(&in->mu);
  size_t n = in->count;
  memcpy(ctx->drained, in->items, n * sizeof(item_t));
  in->count = 0;
  pthread_mutex_unlock(&in->mu);
  if (n > ctx->max_inbox) ctx->max_inbox = n;
  for (size_t i = 0; i < n; i++) {
    check_and_free(&ctx->drained[i], r, &ctx->box, "receiver");
    ctx->frees_received++;
  }
}

/* Hand it to another thread; while that thread's inbox is full, serve mine. */
static void mt_send(mt_ctx_t* ctx, rng_t* r, item_t it) {
  int n = ctx->shared->nthreads;
  int to = (ctx->box.id + 1 + (int)rng_below(r, (uint32_t)n - 1)) % n;
  inbox_t* in = &ctx->shared->inbox[to];
  for (;;) {
    pthread_mutex_lock(&in->mu);
    if (in->count < MT_INBOX_CAP) {
      in->items[in->count++] = it;
      pthread_mutex_unlock(&in->mu);
      ctx->sent++;
      return;
    }
    pthread_mutex_unlock(&in->mu);
    mt_drain(ctx, r);
    sched_yield();
  }
}

static void mt_release(mt_ctx_t* ctx, rng_t* r, item_t it) {
  if (ctx->shared->remote_pct > 0 && rng_below(r, 100) < ctx->shared->remote_pct) {
    mt_send(ctx, r, it);
  } else {
    check_and_free(&it, r, &ctx->box, "owner");
    ctx->frees_local++;
  }
}

static void* mt_thread(void* arg) {
  mt_ctx_t* ctx = arg;
  mt_shared_t* sh = ctx->shared;
  rng_t r = rng_for(((uint64_t)sh->nthreads << 40) ^ ((uint64_t)sh->remote_pct << 32) ^ (uint64_t)ctx->box.id);
  item_t slots[MT_SLOTS];
  memset(slots, 0, sizeof slots);
  pthread_barrier_wait(&sh->start);
  for (size_t op = 0; ctx->allocs < sh->allocs_per_thread && !ctx->box.failed; op++) {
    if ((op & 31) == 0) mt_drain(ctx, &r);
    uint32_t s = rng_below(&r, MT_SLOTS);
    if (slots[s].p != NULL) {
      mt_release(ctx, &r, slots[s]);
      slots[s].p = NULL;
    }
    size_t n = stress_size(&r);
    uint64_t tag = ((uint64_t)ctx->box.id << 48) ^ op;
    uint8_t* p = alloc_checked(&r, n, tag, &ctx->box);
    if (p == NULL) break;
    slots[s] = (item_t){p, n, tag};
    ctx->allocs++;
    ctx->bytes += n;
  }
  for (uint32_t s = 0; s < MT_SLOTS; s++) {
    if (slots[s].p == NULL) continue;
    mt_release(ctx, &r, slots[s]);
  }
  /* while the others still free into this heap's pages */
  if (!hh_heap_validate(NULL)) box_fail(&ctx->box, "heap invariants broken (see the report above)");
  atomic_fetch_add_explicit(&sh->finished, 1, memory_order_release);
  /* keep serving my inbox until nobody can send any more */
  while (atomic_load_explicit(&sh->finished, memory_order_acquire) < sh->nthreads) {
    mt_drain(ctx, &r);
    sched_yield();
  }
  mt_drain(ctx, &r);
  return NULL;
}

static const int mt_threads[] = {2, 4, 8, 16, 32};
static const unsigned mt_remote[] = {0, 25, 100};
#define MT_CONFIGS 15

START_TEST(test_threads_remote_fraction) {
  int nthreads = mt_threads[_i / 3];
  unsigned pct = mt_remote[_i % 3];
  warm_up_threads(nthreads);
  hh_stats_t before = quiesced_stats();

  memset(&mt, 0, sizeof mt);
  mt.nthreads = nthreads;
  mt.remote_pct = pct;
  mt.allocs_per_thread = scaled(MT_TOTAL_ALLOCS, 2000 * (size_t)nthreads) / (size_t)nthreads;
  ck_assert_int_eq(pthread_barrier_init(&mt.start, NULL, (unsigned)nthreads), 0);
  for (int t = 0; t < nthreads; t++) ck_assert_int_eq(pthread_mutex_init(&mt.inbox[t].mu, NULL), 0);

  double t0 = now_sec();
  pthread_t th[MT_MAX_THREADS];
  for (int t = 0; t < nthreads; t++) {
    mt.ctx[t].box.id = t;
    mt.ctx[t].shared = &mt;
    ck_assert_int_eq(pthread_create(&th[t], NULL, mt_thread, &mt.ctx[t]), 0);
  }
  for (int t = 0; t < nthreads; t++) ck_assert_int_eq(pthread_join(th[t], NULL), 0);
  double secs = now_sec() - t0;

  uint64_t allocs = 0, local = 0, received = 0, sent = 0, bytes = 0;
  size_t max_inbox = 0;
  for (int t = 0; t < nthreads; t++) {
    mt_ctx_t* c = &mt.ctx[t];
    ck_assert_msg(!c->box.failed, "%d threads, %u%% remote: thread %d: %s", nthreads, pct, t, c->box.msg);
    ck_assert_uint_eq(c->allocs, mt.allocs_per_thread);
    ck_assert_uint_eq(mt.inbox[t].count, 0);
    allocs += c->allocs;
    local += c->frees_local;
    received += c->frees_received;
    sent += c->sent;
    bytes += c->bytes;
    if (c->max_inbox > max_inbox) max_inbox = c->max_inbox;
  }
  /* every block was freed exactly once: by its owner or by its receiver */
  ck_assert_uint_eq(sent, received);
  ck_assert_uint_eq(local + received, allocs);
  if (pct == 0) ck_assert_uint_eq(sent, 0);
  if (pct == 100) ck_assert_uint_eq(local, 0);
  if (pct == 25) {
    ck_assert_uint_gt(sent, allocs / 8);
    ck_assert_uint_lt(sent, allocs / 2);
  }

  hh_stats_t after = quiesced_stats();
  printf("test_threads_remote_fraction: %2d threads, %3u%% remote (%s build, scale %.2f): %llu allocations "
         "(%llu MiB), %llu freed remotely, max inbox %zu, %.2f s; reserved %zu MiB -> %zu MiB (peak %zu MiB)\n",
         nthreads, pct, build_kind(), test_scale(), (unsigned long long)allocs,
         (unsigned long long)(bytes / MiB), (unsigned long long)received, max_inbox, secs, before.reserved / MiB,
         after.reserved / MiB, after.reserved_peak / MiB);
  /* Everything was freed; what exited threads left behind (segments whose
   * last blocks were freed after their owner exited) is bounded. */
  ck_assert_msg(growth(before.reserved, after.reserved) < 256 * MiB, "reserved grew by %zu MiB",
                growth(before.reserved, after.reserved) / MiB);

  for (int t = 0; t < nthreads; t++) pthread_mutex_destroy(&mt.inbox[t].mu);
  pthread_barrier_destroy(&mt.start);
}
END_TEST

/* ---- 2. producer / consumers ------------------------------------------------------------ */

#define PC_CONSUMERS 3
#define PC_QCAP 8192
#define PC_BATCH 32
#define PC_BYTES ((size_t)1024 * MiB) /* moved through the queue (scaled) */

typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t not_empty, not_full, all_consumed;
  item_t items[PC_QCAP];
  size_t head, count;
  bool producer_done;
  uint64_t produced, consumed;
} pc_queue_t;

static pc_queue_t pcq;

typedef struct {
  errbox_t box;
  uint64_t count;
  uint64_t bytes;
  size_t target_bytes;
  size_t full_bursts;
} pc_ctx_t;

static void pc_push_batch(const item_t* batch, size_t n) {
  pthread_mutex_lock(&pcq.mu);
  while (pcq.count + n > PC_QCAP) pthread_cond_wait(&pcq.not_full, &pcq.mu);
  for (size_t i = 0; i < n; i++) pcq.items[(pcq.head + pcq.count + i) % PC_QCAP] = batch[i];
  pcq.count += n;
  pcq.produced += n;
  pthread_cond_broadcast(&pcq.not_empty);
  pthread_mutex_unlock(&pcq.mu);
}

/* Up to max items; 0 when the producer is done and the queue is empty. */
static size_t pc_pop_batch(item_t* out, size_t max) {
  pthread_mutex_lock(&pcq.mu);
  while (pcq.count == 0 && !pcq.producer_done) pthread_cond_wait(&pcq.not_empty, &pcq.mu);
  size_t n = pcq.count < max ? pcq.count : max;
  for (size_t i = 0; i < n; i++) out[i] = pcq.items[(pcq.head + i) % PC_QCAP];
  pcq.head = (pcq.head + n) % PC_QCAP;
  pcq.count -= n;
  if (n > 0) pthread_cond_broadcast(&pcq.not_full);
  pthread_mutex_unlock(&pcq.mu);
  return n;
}

static void* pc_producer(void* arg) {
  pc_ctx_t* ctx = arg;
  rng_t r = rng_for(4242);
  item_t batch[PC_BATCH];
  size_t nb = 0;
  uint64_t i = 0;
  while (ctx->bytes < ctx->target_bytes && !ctx->box.failed) {
    size_t n;
    if ((i / 2048) % 8 == 1) {
      /* bursts of one small size class: its pages fill up completely (the
       * full queue) while the consumers free their blocks */
      n = 48;
      if (i % 2048 == 0) ctx->full_bursts++;
    } else {
      uint32_t c = rng_below(&r, 100);
      n = c < 70 ? 16 + rng_below(&r, 497) : c < 95 ? 513 + rng_below(&r, 7680) : 8 * KiB + rng_below(&r, 56 * 1024);
    }
    uint64_t tag = i;
    uint8_t* p = alloc_checked(&r, n, tag, &ctx->box);
    if (p == NULL) break;
    batch[nb++] = (item_t){p, n, tag};
    ctx->count++;
    ctx->bytes += n;
    i++;
    if (nb == PC_BATCH) {
      pc_push_batch(batch, nb);
      nb = 0;
    }
  }
  if (nb > 0) pc_push_batch(batch, nb);
  pthread_mutex_lock(&pcq.mu);
  pcq.producer_done = true;
  pthread_cond_broadcast(&pcq.not_empty);
  /* stay alive until every block came back, so none of the producer's
   * segments is abandoned with live blocks: its exit then returns them */
  while (pcq.consumed < pcq.produced) pthread_cond_wait(&pcq.all_consumed, &pcq.mu);
  pthread_mutex_unlock(&pcq.mu);
  return NULL;
}

static void* pc_consumer(void* arg) {
  pc_ctx_t* ctx = arg;
  item_t batch[PC_BATCH];
  size_t n;
  while ((n = pc_pop_batch(batch, PC_BATCH)) > 0) {
    for (size_t i = 0; i < n; i++) {
      check_and_free(&batch[i], NULL, &ctx->box, "consumer");
      ctx->count++;
      ctx->bytes += batch[i].size;
    }
    pthread_mutex_lock(&pcq.mu);
    pcq.consumed += n;
    if (pcq.consumed == pcq.produced && pcq.producer_done) pthread_cond_broadcast(&pcq.all_consumed);
    pthread_mutex_unlock(&pcq.mu);
  }
  return NULL;
}

START_TEST(test_producer_consumers) {
  warm_up_threads(PC_CONSUMERS + 1);
  hh_stats_t before = quiesced_stats();
  memset(&pcq, 0, sizeof pcq);
  ck_assert_int_eq(pthread_mutex_init(&pcq.mu, NULL), 0);
  ck_assert_int_eq(pthread_cond_init(&pcq.not_empty, NULL), 0);
  ck_assert_int_eq(pthread_cond_init(&pcq.not_full, NULL), 0);
  ck_assert_int_eq(pthread_cond_init(&pcq.all_consumed, NULL), 0);

  pc_ctx_t prod, cons[PC_CONSUMERS];
  memset(&prod, 0, sizeof prod);
  prod.target_bytes = scaled(PC_BYTES, 16 * MiB);
  double t0 = now_sec();
  pthread_t pth, cth[PC_CONSUMERS];
  for (int t = 0; t < PC_CONSUMERS; t++) {
    memset(&cons[t], 0, sizeof cons[t]);
    cons[t].box.id = t;
    ck_assert_int_eq(pthread_create(&cth[t], NULL, pc_consumer, &cons[t]), 0);
  }
  ck_assert_int_eq(pthread_create(&pth, NULL, pc_producer, &prod), 0);
  ck_assert_int_eq(pthread_join(pth, NULL), 0);
  for (int t = 0; t < PC_CONSUMERS; t++) ck_assert_int_eq(pthread_join(cth[t], NULL), 0);
  double secs = now_sec() - t0;

  ck_assert_msg(!prod.box.failed, "producer: %s", prod.box.msg);
  uint64_t consumed = 0, cbytes = 0;
  for (int t = 0; t < PC_CONSUMERS; t++) {
    ck_assert_msg(!cons[t].box.failed, "consumer %d: %s", t, cons[t].box.msg);
    consumed += cons[t].count;
    cbytes += cons[t].bytes;
  }
  ck_assert_uint_eq(consumed, prod.count);
  ck_assert_uint_eq(cbytes, prod.bytes);
  ck_assert_uint_ge(prod.bytes, prod.target_bytes);
  ck_assert_uint_eq(pcq.count, 0);
  ck_assert_uint_ge(prod.full_bursts, 1);

  hh_stats_t after = quiesced_stats();
  size_t peak_growth = growth(before.reserved, after.reserved_peak);
  size_t end_growth = growth(before.reserved, after.reserved);
  printf("test_producer_consumers (%s build, scale %.2f): %llu blocks, %llu MiB through 1 producer and %d "
         "consumers in %.2f s; reserved %zu MiB before, peak %zu MiB (+%zu MiB), after %zu MiB (+%zu MiB)\n",
         build_kind(), test_scale(), (unsigned long long)prod.count, (unsigned long long)(prod.bytes / MiB),
         PC_CONSUMERS, secs, before.reserved / MiB, after.reserved_peak / MiB, peak_growth / MiB,
         after.reserved / MiB, end_growth / MiB);
  /* At most PC_QCAP + 2 batches of blocks (< 8200 x 64 KiB, ~25 MiB on
   * average) are live at once: memory freed remotely, also into full pages,
   * must be reused rather than accumulate. */
  ck_assert_msg(peak_growth < 128 * MiB, "reserved peaked %zu MiB above the start while moving %llu MiB",
                peak_growth / MiB, (unsigned long long)(prod.bytes / MiB));
  ck_assert_msg(end_growth < 64 * MiB, "reserved grew by %zu MiB", end_growth / MiB);

  pthread_cond_destroy(&pcq.all_consumed);
  pthread_cond_destroy(&pcq.not_full);
  pthread_cond_destroy(&pcq.not_empty);
  pthread_mutex_destroy(&pcq.mu);
}
END_TEST

/* ---- 3. thread churn ------------------------------------------------------------------- */

#define CHURN_THREADS 100000 /* in total (scaled) */
#define CHURN_BLOCKS 50      /* allocated by each thread */
#define CHURN_LEAVE 5        /* left live for later threads */
#define CHURN_MAILBOX 64

typedef struct {
  pthread_mutex_t mu;
  item_t items[CHURN_MAILBOX];
  size_t count;
  uint64_t left, taken; /* totals, under mu */
} mailbox_t;

static mailbox_t mailbox;

typedef struct {
  errbox_t box;
  uint64_t seq;      /* global number of this thread */
  uint64_t allocs, frees;
} churn_ctx_t;

static void* churn_thread(void* arg) {
  churn_ctx_t* ctx = arg;
  rng_t r = rng_for(ctx->seq + 1);
  /* free what earlier threads left (their owners have exited or are running) */
  item_t inherited[8];
  size_t ni = 0;
  pthread_mutex_lock(&mailbox.mu);
  while (ni < 8 && mailbox.count > 0) inherited[ni++] = mailbox.items[--mailbox.count];
  mailbox.taken += ni;
  pthread_mutex_unlock(&mailbox.mu);
  for (size_t i = 0; i < ni; i++) {
    check_and_free(&inherited[i], &r, &ctx->box, "successor");
    ctx->frees++;
  }

  item_t mine[CHURN_BLOCKS];
  for (size_t i = 0; i < CHURN_BLOCKS; i++) {
    size_t n;
    uint32_t c = rng_below(&r, 100);
    if (c < 70) n = 1 + rng_below(&r, 512);
    else if (c < 97) n = 513 + rng_below(&r, 16 * 1024);
    else n = 16 * KiB + rng_below(&r, 48 * 1024);
    if (i == 0 && ctx->seq % 64 == 0) n = 128 * KiB + 1 + rng_below(&r, 512 * 1024); /* now and then a large one */
    uint64_t tag = (ctx->seq << 8) | i;
    uint8_t* p = alloc_checked(&r, n, tag, &ctx->box);
    if (p == NULL) return NULL;
    mine[i] = (item_t){p, n, tag};
    ctx->allocs++;
  }
  /* free most in random order, leave a few for the next threads */
  for (size_t i = CHURN_BLOCKS - 1; i > 0; i--) {
    size_t j = rng_below(&r, (uint32_t)i + 1);
    item_t t = mine[i];
    mine[i] = mine[j];
    mine[j] = t;
  }
  size_t leave = CHURN_LEAVE;
  pthread_mutex_lock(&mailbox.mu);
  while (leave > 0 && mailbox.count < CHURN_MAILBOX) {
    mailbox.items[mailbox.count++] = mine[CHURN_BLOCKS - leave];
    mailbox.left++;
    leave--;
  }
  pthread_mutex_unlock(&mailbox.mu);
  size_t keep = CHURN_LEAVE - leave; /* items handed over */
  for (size_t i = 0; i < CHURN_BLOCKS - keep; i++) {
    check_and_free(&mine[i], &r, &ctx->box, "owner");
    ctx->frees++;
  }
  return NULL;
}

static long vm_rss_kib(void) {
  FILE* f = fopen("/proc/self/status", "r");
  if (f == NULL) return -1;
  char line[256];
  long kib = -1;
  while (fgets(line, sizeof line, f) != NULL) {
    if (strncmp(line, "VmRSS:", 6) == 0) {
      kib = strtol(line + 6, NULL, 10);
      break;
    }
  }
  fclose(f);
  return kib;
}

START_TEST(test_thread_churn) {
  /* VmRSS is read after the first 1% of the threads (warm-up: C library
   * stack cache, heap pool) and at the end. Measured in the release build on
   * 2 CPUs: +196 KiB (2124 -> 2320 KiB) at commit 35e5f27, 21-53 s for the
   * 100,000 threads (each thread mapped and unmapped about one segment);
   * +420 KiB and 13.8 s with the global segment cache then in progress. */
  /* thread creation is slow under the sanitizers: fewer threads there */
  double scale = test_scale_or(0.03, 0.1);
  size_t total = (size_t)((double)CHURN_THREADS * scale);
  if (total < 1000) total = 1000;
  memset(&mailbox, 0, sizeof mailbox);
  ck_assert_int_eq(pthread_mutex_init(&mailbox.mu, NULL), 0);
  pthread_attr_t attr;
  ck_assert_int_eq(pthread_attr_init(&attr), 0);
  ck_assert_int_eq(pthread_attr_setstacksize(&attr, 512 * KiB), 0);

  enum { WAVE_MAX = 4 };
  churn_ctx_t ctx[WAVE_MAX];
  pthread_t th[WAVE_MAX];
  rng_t r = rng_for(99);
  uint64_t seq = 0, allocs = 0, frees = 0;
  long rss_before = -1;
  hh_stats_t before;
  memset(&before, 0, sizeof before);
  size_t warm = total / 100; /* the first 1% warms up thread caches; measured from there */
  double t0 = now_sec();
  while (seq < total) {
    if (seq >= warm && rss_before < 0) {
      rss_before = vm_rss_kib();
      before = quiesced_stats();
    }
    int wave = 2 + (int)rng_below(&r, WAVE_MAX - 1);
    if ((size_t)wave > total - seq) wave = (int)(total - seq);
    for (int t = 0; t < wave; t++) {
      memset(&ctx[t], 0, sizeof ctx[t]);
      ctx[t].box.id = t;
      ctx[t].seq = seq++;
      int rc = pthread_create(&th[t], &attr, churn_thread, &ctx[t]);
      ck_assert_msg(rc == 0, "pthread_create of thread %llu failed: %d", (unsigned long long)ctx[t].seq, rc);
    }
    for (int t = 0; t < wave; t++) {
      ck_assert_int_eq(pthread_join(th[t], NULL), 0);
      ck_assert_msg(!ctx[t].box.failed, "thread %llu: %s", (unsigned long long)ctx[t].seq, ctx[t].box.msg);
      allocs += ctx[t].allocs;
      frees += ctx[t].frees;
    }
  }
  double secs = now_sec() - t0;
  /* what is still in the mailbox is freed here */
  errbox_t mainbox;
  memset(&mainbox, 0, sizeof mainbox);
  for (size_t i = 0; i < mailbox.count; i++) {
    check_and_free(&mailbox.items[i], NULL, &mainbox, "main");
    frees++;
  }
  ck_assert_msg(!mainbox.failed, "%s", mainbox.msg);
  uint64_t left = mailbox.left, taken = mailbox.taken;
  size_t remaining = mailbox.count;
  mailbox.count = 0;
  hh_stats_t after = quiesced_stats();
  long rss_after = vm_rss_kib();
  ck_assert_int_ge(rss_before, 0);
  ck_assert_int_ge(rss_after, 0);
  long rss_growth = rss_after > rss_before ? rss_after - rss_before : 0;
  printf("test_thread_churn (%s build, scale %.2f): %llu threads (2-%d at a time), %llu blocks allocated, "
         "%llu handed to later threads, %.2f s (%.0f us per thread); VmRSS %ld KiB -> %ld KiB (+%ld KiB); "
         "reserved %zu MiB -> %zu MiB, committed %zu MiB -> %zu MiB, segments %zu -> %zu, %.1f mmap and %.1f munmap "
         "calls per thread\n",
         build_kind(), scale, (unsigned long long)seq, WAVE_MAX, (unsigned long long)allocs,
         (unsigned long long)left, secs, secs * 1e6 / (double)seq, rss_before, rss_after, rss_growth,
         before.reserved / MiB, after.reserved / MiB, before.committed / MiB, after.committed / MiB, before.segments,
         after.segments, (double)(after.mmap_calls - before.mmap_calls) / (double)(seq - warm),
         (double)(after.munmap_calls - before.munmap_calls) / (double)(seq - warm));
  ck_assert_uint_eq(seq, total);
  ck_assert_uint_eq(allocs, (uint64_t)total * CHURN_BLOCKS);
  ck_assert_uint_eq(frees, allocs);
  ck_assert_uint_eq(taken + remaining, left);
  ck_assert_uint_gt(taken, total); /* most threads freed blocks of earlier ones */
  /* Under a sanitizer its runtime keeps state of every thread that ever ran
   * (about 6 KiB each under ASan), so only hardheap's own figure is tight there. */
  long rss_limit_kib = (STRESS_ASAN || STRESS_TSAN) ? 256 * 1024 : 64 * 1024;
  ck_assert_msg(rss_growth < rss_limit_kib, "VmRSS grew by %ld KiB over %llu threads (limit %ld KiB)", rss_growth,
                (unsigned long long)seq, rss_limit_kib);
  ck_assert_msg(growth(before.committed, after.committed) < 64 * MiB, "committed grew by %zu MiB",
                growth(before.committed, after.committed) / MiB);
  ck_assert_msg(growth(before.reserved, after.reserved) < 64 * MiB, "reserved grew by %zu MiB",
                growth(before.reserved, after.reserved) / MiB);
  pthread_attr_destroy(&attr);
  pthread_mutex_destroy(&mailbox.mu);
}
END_TEST

/* ---- 4. hh_heap_delete, then other threads free ------------------------------------------- */

#define HD_BLOCKS 20000 /* per round (scaled) */
#define HD_ROUNDS 24

typedef struct {
  item_t* items;
  size_t count;
  pthread_barrier_t* ready; /* owner + freers: the blocks are there */
  atomic_int* go;           /* freers wait for it when not concurrent */
  bool concurrent;
  errbox_t box;
  size_t freed;
} hd_freer_t;

typedef struct {
  errbox_t box;
  item_t* items;            /* HD_BLOCKS, the first half for B, the second for C */
  size_t count;
  pthread_barrier_t* ready;
  uint64_t round;
} hd_owner_t;

static void* hd_owner(void* arg) {
  hd_owner_t* o = arg;
  rng_t r = rng_for(7000 + o->round);
  hh_heap_t* backing = hh_heap_get_backing();
  hh_heap_t* h = hh_heap_new();
  if (h == NULL) {
    box_fail(&o->box, "hh_heap_new failed");
    pthread_barrier_wait(o->ready);
    return NULL;
  }
  /* half from h directly, half through hh_malloc with h as the default */
  if (hh_heap_set_default(h) != backing) box_fail(&o->box, "set_default did not return the backing heap");
  for (size_t i = 0; i < o->count; i++) {
    size_t n = stress_size(&r);
    if (i == o->count / 3) n = 3 * MiB + 12345;  /* a huge block */
    uint64_t tag = (o->round << 32) | i;
    uint8_t* p;
    switch (i % 4) {
      case 0: p = hh_heap_malloc(h, n); break;
      case 1: p = hh_heap_zalloc(h, n); break;
      case 2: p = hh_malloc(n); break;
      default: p = hh_heap_malloc_aligned(h, n, 64); break;
    }
    if (p == NULL || !hh_heap_contains(h, p)) {
      box_fail(&o->box, "block %zu (%zu bytes) = %p not from the heap", i, n, (void*)p);
      o->items[i] = (item_t){NULL, 0, 0};
      continue;
    }
    pattern_fill(p, n, pattern_key(p, tag));
    o->items[i] = (item_t){p, n, tag};
  }
  pthread_barrier_wait(o->ready); /* freers may start now */
  hh_heap_delete(h);
  if (hh_heap_get_default() != backing) box_fail(&o->box, "default not back to the backing heap after delete");
  /* use the backing heap (which now owns h's pages) a little before exiting */
  item_t own[256];
  for (size_t i = 0; i < 256; i++) {
    size_t n = 1 + rng_below(&r, 2000);
    own[i] = (item_t){alloc_checked(&r, n, i, &o->box), n, i};
    if (own[i].p == NULL) return NULL;
  }
  for (size_t i = 0; i < 256; i++) check_and_free(&own[i], NULL, &o->box, "owner");
  return NULL; /* exit: the backing heap's pages, with h's live blocks, are abandoned */
}

static void* hd_freer(void* arg) {
  hd_freer_t* f = arg;
  pthread_barrier_wait(f->ready);
  if (!f->concurrent) {
    while (atomic_load_explicit(f->go, memory_order_acquire) == 0) sched_yield();
  }
  rng_t r = rng_for((uint64_t)(uintptr_t)f->items);
  for (size_t i = 0; i < f->count; i++) {
    if (f->items[i].p == NULL) continue;
    check_and_free(&f->items[i], &r, &f->box, "freer");
    f->items[i].p = NULL;
    f->freed++;
  }
  return NULL;
}

START_TEST(test_heap_delete_then_remote_free) {
  size_t nblocks = scaled(HD_BLOCKS, 2000);
  size_t rounds = scaled(HD_ROUNDS, 4);
  item_t* items = calloc(nblocks, sizeof(item_t));
  ck_assert_ptr_nonnull(items);
  warm_up_threads(4);
  hh_stats_t before = quiesced_stats();
  double t0 = now_sec();
  size_t total_freed = 0;
  for (size_t round = 0; round < rounds; round++) {
    bool concurrent = round % 2 == 0;
    pthread_barrier_t ready;
    ck_assert_int_eq(pthread_barrier_init(&ready, NULL, 3), 0);
    atomic_int go = 0;
    hd_owner_t o;
    memset(&o, 0, sizeof o);
    o.items = items;
    o.count = nblocks;
    o.ready = &ready;
    o.round = round;
    hd_freer_t f[2];
    for (int k = 0; k < 2; k++) {
      memset(&f[k], 0, sizeof f[k]);
      f[k].items = items + (k == 0 ? 0 : nblocks / 2);
      f[k].count = k == 0 ? nblocks / 2 : nblocks - nblocks / 2;
      f[k].ready = &ready;
      f[k].go = &go;
      f[k].concurrent = concurrent;
    }
    pthread_t a, b[2];
    ck_assert_int_eq(pthread_create(&a, NULL, hd_owner, &o), 0);
    for (int k = 0; k < 2; k++) ck_assert_int_eq(pthread_create(&b[k], NULL, hd_freer, &f[k]), 0);
    ck_assert_int_eq(pthread_join(a, NULL), 0);
    atomic_store_explicit(&go, 1, memory_order_release); /* A has deleted its heap and exited */
    for (int k = 0; k < 2; k++) ck_assert_int_eq(pthread_join(b[k], NULL), 0);
    pthread_barrier_destroy(&ready);
    ck_assert_msg(!o.box.failed, "round %zu: owner: %s", round, o.box.msg);
    for (int k = 0; k < 2; k++) {
      ck_assert_msg(!f[k].box.failed, "round %zu (%s): freer %d: %s", round, concurrent ? "concurrent" : "after exit",
                    k, f[k].box.msg);
      total_freed += f[k].freed;
    }
    ck_assert_uint_eq(f[0].freed + f[1].freed, nblocks);
  }
  double secs = now_sec() - t0;
  hh_stats_t after = quiesced_stats();
  printf("test_heap_delete_then_remote_free (%s build, scale %.2f): %zu rounds x %zu blocks in %.2f s; reserved "
         "%zu MiB -> %zu MiB (peak %zu MiB), segments %zu -> %zu\n",
         build_kind(), test_scale(), rounds, nblocks, secs, before.reserved / MiB, after.reserved / MiB,
         after.reserved_peak / MiB, before.segments, after.segments);
  ck_assert_uint_eq(total_freed, rounds * nblocks);
  /* each round's owner reclaims what the previous rounds abandoned */
  ck_assert_msg(growth(before.reserved, after.reserved) < 128 * MiB, "reserved grew by %zu MiB over %zu rounds",
                growth(before.reserved, after.reserved) / MiB, rounds);
  free(items);
}
END_TEST

/* ---- 5. threads exit while others reclaim what they abandon ---------------------------- */

/* A thread that exits with live blocks leaves its segments to whichever
 * thread needs a page next. Here two threads keep needing pages (each round
 * a fresh first-class heap, whose first allocation of every size class looks
 * for an abandoned segment to adopt, then deleted into the backing heap)
 * while other threads exit with live blocks spread over ~100 pages in
 * several segments; the exited threads' blocks are then checked and freed by
 * the main thread. */
#define AR_ROUNDS 40 /* scaled */
#define AR_EXITERS 2
#define AR_RECLAIMERS 2
#define AR_BLOCKS 2800
#define AR_KEEP_EVERY 8

static const size_t ar_sizes[] = {32, 200, 1000, 3000, 7000, 12000, 24000};
#define AR_NSIZES (sizeof ar_sizes / sizeof ar_sizes[0])

typedef struct {
  errbox_t box;
  uint64_t seed;
  item_t kept[AR_BLOCKS / AR_KEEP_EVERY + 1];
  size_t nkept;
} ar_exiter_t;

typedef struct {
  errbox_t box;
  atomic_int* stop;
  uint64_t rounds;
} ar_reclaimer_t;

static void* ar_exiter(void* arg) {
  ar_exiter_t* e = arg;
  rng_t r = rng_for(e->seed);
  static _Thread_local item_t all[AR_BLOCKS];
  for (size_t i = 0; i < AR_BLOCKS; i++) {
    size_t n = ar_sizes[i % AR_NSIZES] - rng_below(&r, 16);
    uint64_t tag = (e->seed << 16) | i;
    uint8_t* p = alloc_checked(&r, n, tag, &e->box);
    if (p == NULL) return NULL;
    all[i] = (item_t){p, n, tag};
  }
  for (size_t i = 0; i < AR_BLOCKS; i++) {
    if ((i / AR_NSIZES) % AR_KEEP_EVERY == 0) {
      e->kept[e->nkept++] = all[i]; /* one of every size in every 8 stays live */
    } else {
      check_and_free(&all[i], NULL, &e->box, "exiter");
    }
  }
  if (!hh_heap_validate(NULL)) box_fail(&e->box, "heap invariants broken (see the report above)");
  return NULL; /* exit: every page still has live blocks and is abandoned */
}

static void* ar_reclaimer(void* arg) {
  ar_reclaimer_t* c = arg;
  rng_t r = rng_for(0xAB0000 + (uint64_t)c->box.id);
  enum { K = 2 * AR_NSIZES };
  item_t mine[K];
  while (atomic_load_explicit(c->stop, memory_order_acquire) == 0 && !c->box.failed) {
    hh_heap_t* h = hh_heap_new();
    if (h == NULL) {
      box_fail(&c->box, "hh_heap_new failed");
      return NULL;
    }
    for (size_t i = 0; i < K; i++) {
      size_t n = ar_sizes[i % AR_NSIZES] - rng_below(&r, 16);
      uint64_t tag = (c->rounds << 16) | i;
      uint8_t* p = hh_heap_malloc(h, n);
      if (p == NULL) {
        box_fail(&c->box, "hh_heap_malloc(%zu) failed", n);
        return NULL;
      }
      pattern_fill(p, n, pattern_key(p, tag));
      mine[i] = (item_t){p, n, tag};
    }
    hh_heap_delete(h);
    for (size_t i = 0; i < K; i++) check_and_free(&mine[i], NULL, &c->box, "reclaimer");
    if (++c->rounds % 4096 == 0) {
      if (!hh_heap_validate(NULL)) box_fail(&c->box, "heap invariants broken after reclaiming");
      hh_collect(false);
    }
  }
  return NULL;
}

START_TEST(test_exit_while_others_reclaim) {
  size_t rounds = scaled(AR_ROUNDS, 10);
  atomic_int stop = 0;
  ar_reclaimer_t rec[AR_RECLAIMERS];
  pthread_t rth[AR_RECLAIMERS];
  for (int t = 0; t < AR_RECLAIMERS; t++) {
    memset(&rec[t], 0, sizeof rec[t]);
    rec[t].box.id = t;
    rec[t].stop = &stop;
    ck_assert_int_eq(pthread_create(&rth[t], NULL, ar_reclaimer, &rec[t]), 0);
  }
  static ar_exiter_t ex[AR_EXITERS];
  errbox_t mainbox;
  memset(&mainbox, 0, sizeof mainbox);
  double t0 = now_sec();
  size_t kept_total = 0;
  for (size_t round = 0; round < rounds && !mainbox.failed; round++) {
    pthread_t eth[AR_EXITERS];
    for (int t = 0; t < AR_EXITERS; t++) {
      memset(&ex[t], 0, sizeof ex[t]);
      ex[t].box.id = t;
      ex[t].seed = round * AR_EXITERS + (uint64_t)t + 1;
      ck_assert_int_eq(pthread_create(&eth[t], NULL, ar_exiter, &ex[t]), 0);
    }
    for (int t = 0; t < AR_EXITERS; t++) {
      ck_assert_int_eq(pthread_join(eth[t], NULL), 0);
      ck_assert_msg(!ex[t].box.failed, "round %zu: exiting thread %d: %s", round, t, ex[t].box.msg);
    }
    for (int t = 0; t < AR_EXITERS; t++) {
      for (size_t i = 0; i < ex[t].nkept; i++) check_and_free(&ex[t].kept[i], NULL, &mainbox, "main");
      kept_total += ex[t].nkept;
    }
  }
  atomic_store_explicit(&stop, 1, memory_order_release);
  uint64_t reclaimer_rounds = 0;
  for (int t = 0; t < AR_RECLAIMERS; t++) {
    ck_assert_int_eq(pthread_join(rth[t], NULL), 0);
    ck_assert_msg(!rec[t].box.failed, "reclaimer %d: %s", t, rec[t].box.msg);
    reclaimer_rounds += rec[t].rounds;
  }
  ck_assert_msg(!mainbox.failed, "%s", mainbox.msg);
  double secs = now_sec() - t0;
  printf("test_exit_while_others_reclaim (%s build, scale %.2f): %zu threads exited with %zu live blocks, "
         "%llu reclaimer rounds, %.2f s\n",
         build_kind(), test_scale(), rounds * AR_EXITERS, kept_total, (unsigned long long)reclaimer_rounds, secs);
  ck_assert_uint_eq(kept_total, rounds * AR_EXITERS * (AR_BLOCKS / AR_KEEP_EVERY));
  ck_assert_uint_gt(reclaimer_rounds, 0);
}
END_TEST

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0); /* the figures a test prints survive its failure */
  Suite* s = suite_create("hardheap_stress");
  printf("hardheap stress tests: %s build of the %s library, work scale %.2f\n", build_kind(),
         hh_is_secure() ? "secure" : "default", test_scale());
  fflush(stdout);

  TCase* tc = tcase_create("stress_threads");
  tcase_set_timeout(tc, 300);
  tcase_add_loop_test(tc, test_threads_remote_fraction, 0, MT_CONFIGS);
  suite_add_tcase(s, tc);

  tc = tcase_create("stress_producer_consumer");
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, test_producer_consumers);
  suite_add_tcase(s, tc);

  tc = tcase_create("stress_thread_churn");
  tcase_set_timeout(tc, 600);
  tcase_add_test(tc, test_thread_churn);
  suite_add_tcase(s, tc);

  tc = tcase_create("stress_abandon_reclaim");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_exit_while_others_reclaim);
  suite_add_tcase(s, tc);

  tc = tcase_create("stress_heap_delete");
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, test_heap_delete_then_remote_free);
  suite_add_tcase(s, tc);

  SRunner* sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
