/* Light multi-threading sanity tests for hardheap.
 *
 *  - several threads allocating and freeing at once, with content checks;
 *  - blocks allocated by threads at the same time are distinct;
 *  - blocks freed by another thread after their owner exited, and the
 *    memory of exited threads adopted and reused by new threads;
 *  - blocks freed by other threads while their owner keeps allocating
 *    (mutex-protected queue), with a bound on memory growth so that remotely
 *    freed memory must actually be reused.
 *
 * Worker threads never call Check directly: they record the first error in
 * their context and the main thread of the test reports it after joining.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hardheap.h"
#include "test_util.h"

#define KiB ((size_t)1024)
#define MiB ((size_t)1024 * 1024)

#define NTHREADS 8

/* ---- helpers ---------------------------------------------------------------- */

/* Mostly tiny, some up to 1 KiB, a few up to 8 KiB. */
static size_t small_size(rng_t* r) {
  uint32_t c = rng_below(r, 100);
  if (c < 60) return 1 + rng_below(r, 128);
  if (c < 95) return 1 + rng_below(r, 1024);
  return 1 + rng_below(r, 8192);
}

static inline uint8_t key_of(const void* p, uint64_t tag) {
  return (uint8_t)(((uintptr_t)p >> 4) ^ tag ^ (tag >> 8) ^ (tag >> 16));
}

/* byte i of a block is key ^ (i & 0xff) ^ (i >> 8) */
static inline uint8_t pat(uint8_t key, size_t i) { return (uint8_t)(key ^ i ^ (i >> 8)); }

static void fill(uint8_t* p, size_t n, uint8_t key) {
  for (size_t i = 0; i < n; i++) p[i] = pat(key, i);
}

static size_t check(const uint8_t* p, size_t n, uint8_t key) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != pat(key, i)) return i;
  return SIZE_MAX;
}

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

static bool aligned16(const void* p) { return ((uintptr_t)p & (HH_MIN_ALIGNMENT - 1)) == 0; }

/* ---- 1. concurrent churn -------------------------------------------------------- */

#define CHURN_ALLOCS 100000 /* allocations per thread (plus as many frees) */
#define CHURN_SLOTS 256

typedef struct {
  errbox_t box;
  pthread_barrier_t* start;
  uint64_t allocs;
} churn_ctx_t;

static void* churn_thread(void* arg) {
  churn_ctx_t* ctx = arg;
  errbox_t* box = &ctx->box;
  rng_t r = rng_for((uint64_t)ctx->box.id + 1);
  uint8_t* ps[CHURN_SLOTS] = {0};
  size_t sz[CHURN_SLOTS] = {0};
  pthread_barrier_wait(ctx->start);
  for (uint64_t op = 0; ctx->allocs < CHURN_ALLOCS && !box->failed; op++) {
    uint32_t i = rng_below(&r, CHURN_SLOTS);
    uint64_t tag = ((uint64_t)ctx->box.id << 16) | i;
    if (ps[i] != NULL) {
      size_t bad = check(ps[i], sz[i], key_of(ps[i], tag));
      if (bad != SIZE_MAX) {
        box_fail(box, "op %llu: block %p (size %zu, slot %u) corrupted at byte %zu",
                 (unsigned long long)op, (void*)ps[i], sz[i], i, bad);
        break;
      }
      if (rng_below(&r, 8) == 0) { /* resize instead of free */
        size_t n = small_size(&r);
        uint8_t* q = hh_realloc(ps[i], n);
        if (q == NULL) {
          box_fail(box, "op %llu: hh_realloc(%zu -> %zu) failed", (unsigned long long)op, sz[i], n);
          break;
        }
        size_t keep = n < sz[i] ? n : sz[i];
        bad = check(q, keep, key_of(ps[i], tag));
        if (bad != SIZE_MAX) {
          box_fail(box, "op %llu: hh_realloc(%zu -> %zu) lost byte %zu", (unsigned long long)op,
                   sz[i], n, bad);
          break;
        }
        ps[i] = q;
        sz[i] = n;
        fill(q, n, key_of(q, tag));
        continue;
      }
      hh_free(ps[i]);
      ps[i] = NULL;
      continue;
    }
    size_t n = small_size(&r);
    uint8_t* p;
    bool zero = false;
    switch (rng_below(&r, 10)) {
      case 0: p = hh_calloc(1, n); zero = true; break;
      case 1: p = hh_zalloc(n); zero = true; break;
      case 2: p = hh_malloc_aligned(n, (size_t)32 << rng_below(&r, 5)); break;
      default: p = hh_malloc(n); break;
    }
    if (p == NULL || !aligned16(p) || hh_usable_size(p) < n) {
      box_fail(box, "op %llu: allocation of %zu bytes returned %p (usable %zu)",
               (unsigned long long)op, n, (void*)p, p ? hh_usable_size(p) : 0);
      break;
    }
    for (size_t k = 0; zero && k < n; k++)
      if (p[k] != 0) {
        box_fail(box, "op %llu: zeroed block of %zu bytes has byte %zu = 0x%02x",
                 (unsigned long long)op, n, k, p[k]);
        break;
      }
    ps[i] = p;
    sz[i] = n;
    fill(p, n, key_of(p, tag));
    ctx->allocs++;
  }
  for (uint32_t i = 0; i < CHURN_SLOTS; i++) {
    if (ps[i] == NULL) continue;
    uint64_t tag = ((uint64_t)ctx->box.id << 16) | i;
    size_t bad = check(ps[i], sz[i], key_of(ps[i], tag));
    if (bad != SIZE_MAX)
      box_fail(box, "final: block %p (size %zu) corrupted at byte %zu", (void*)ps[i], sz[i], bad);
    hh_free(ps[i]);
  }
  return NULL;
}

START_TEST(test_concurrent_churn) {
  pthread_t th[NTHREADS];
  churn_ctx_t ctx[NTHREADS];
  pthread_barrier_t start;
  ck_assert_int_eq(pthread_barrier_init(&start, NULL, NTHREADS), 0);
  for (int t = 0; t < NTHREADS; t++) {
    memset(&ctx[t], 0, sizeof ctx[t]);
    ctx[t].box.id = t;
    ctx[t].start = &start;
    ck_assert_int_eq(pthread_create(&th[t], NULL, churn_thread, &ctx[t]), 0);
  }
  for (int t = 0; t < NTHREADS; t++) ck_assert_int_eq(pthread_join(th[t], NULL), 0);
  pthread_barrier_destroy(&start);
  for (int t = 0; t < NTHREADS; t++) {
    ck_assert_msg(!ctx[t].box.failed, "thread %d: %s", t, ctx[t].box.msg);
    ck_assert_uint_eq(ctx[t].allocs, CHURN_ALLOCS);
  }
}
END_TEST

/* ---- 2. blocks handed out concurrently are distinct ------------------------------ */

#define DISTINCT_PER_THREAD 2000

typedef struct {
  errbox_t box;
  pthread_barrier_t* barrier;
  uint8_t** ps;
  size_t* sz;
} distinct_ctx_t;

static void* distinct_thread(void* arg) {
  distinct_ctx_t* ctx = arg;
  rng_t r = rng_for(1000 + (uint64_t)ctx->box.id);
  pthread_barrier_wait(ctx->barrier);
  for (size_t i = 0; i < DISTINCT_PER_THREAD; i++) {
    size_t n = 1 + rng_below(&r, 4096);
    uint8_t* p = hh_malloc(n);
    ctx->ps[i] = p;
    ctx->sz[i] = n;
    if (p == NULL) {
      box_fail(&ctx->box, "hh_malloc(%zu) failed", n);
      continue;
    }
    fill(p, n, key_of(p, ((uint64_t)ctx->box.id << 16) | i));
  }
  /* Wait until every thread has allocated and filled all of its blocks. */
  pthread_barrier_wait(ctx->barrier);
  for (size_t i = 0; i < DISTINCT_PER_THREAD; i++) {
    if (ctx->ps[i] == NULL) continue;
    size_t bad = check(ctx->ps[i], ctx->sz[i], key_of(ctx->ps[i], ((uint64_t)ctx->box.id << 16) | i));
    if (bad != SIZE_MAX)
      box_fail(&ctx->box, "block %zu at %p (size %zu) overwritten at byte %zu", i,
               (void*)ctx->ps[i], ctx->sz[i], bad);
  }
  return NULL; /* the blocks stay live; the main thread frees them */
}

typedef struct {
  uintptr_t start, end;
} ival_t;

static int cmp_ival(const void* a, const void* b) {
  const ival_t* x = a;
  const ival_t* y = b;
  return x->start < y->start ? -1 : x->start > y->start;
}

START_TEST(test_concurrent_blocks_distinct) {
  static uint8_t* ps[NTHREADS][DISTINCT_PER_THREAD];
  static size_t sz[NTHREADS][DISTINCT_PER_THREAD];
  static ival_t iv[NTHREADS * DISTINCT_PER_THREAD];
  pthread_t th[NTHREADS];
  distinct_ctx_t ctx[NTHREADS];
  pthread_barrier_t barrier;
  ck_assert_int_eq(pthread_barrier_init(&barrier, NULL, NTHREADS), 0);
  for (int t = 0; t < NTHREADS; t++) {
    memset(&ctx[t], 0, sizeof ctx[t]);
    ctx[t].box.id = t;
    ctx[t].barrier = &barrier;
    ctx[t].ps = ps[t];
    ctx[t].sz = sz[t];
    ck_assert_int_eq(pthread_create(&th[t], NULL, distinct_thread, &ctx[t]), 0);
  }
  for (int t = 0; t < NTHREADS; t++) ck_assert_int_eq(pthread_join(th[t], NULL), 0);
  pthread_barrier_destroy(&barrier);
  for (int t = 0; t < NTHREADS; t++)
    ck_assert_msg(!ctx[t].box.failed, "thread %d: %s", t, ctx[t].box.msg);

  size_t n = 0;
  for (int t = 0; t < NTHREADS; t++)
    for (size_t i = 0; i < DISTINCT_PER_THREAD; i++) {
      iv[n].start = (uintptr_t)ps[t][i];
      iv[n].end = (uintptr_t)ps[t][i] + hh_usable_size(ps[t][i]);
      n++;
    }
  qsort(iv, n, sizeof iv[0], cmp_ival);
  for (size_t k = 1; k < n; k++)
    ck_assert_msg(iv[k - 1].end <= iv[k].start,
                  "blocks from different threads overlap: [%p, %p) and [%p, %p)",
                  (void*)iv[k - 1].start, (void*)iv[k - 1].end, (void*)iv[k].start,
                  (void*)iv[k].end);

  /* The owners have exited: verify once more and free from this thread. */
  for (int t = 0; t < NTHREADS; t++)
    for (size_t i = 0; i < DISTINCT_PER_THREAD; i++) {
      size_t bad = check(ps[t][i], sz[t][i], key_of(ps[t][i], ((uint64_t)t << 16) | i));
      ck_assert_msg(bad == SIZE_MAX, "thread %d block %zu corrupted at byte %zu after exit", t, i,
                    bad);
      hh_free(ps[t][i]);
    }
}
END_TEST

/* ---- 3. free in other threads after the owner exited ----------------------------- */

#define HANDOFF_N 40000
#define CONSUMERS 4

typedef struct {
  uint8_t* p;
  size_t size;
} item_t;

static item_t handoff[2 * HANDOFF_N];

static void alloc_items(item_t* items, size_t count, uint64_t stream, errbox_t* box) {
  rng_t r = rng_for(stream);
  for (size_t i = 0; i < count; i++) {
    size_t n = (i % 100 == 99) ? 16 * KiB + rng_below(&r, 112 * KiB) : small_size(&r);
    uint8_t* p = hh_malloc(n);
    if (p == NULL) {
      box_fail(box, "hh_malloc(%zu) failed", n);
      items[i].p = NULL;
      continue;
    }
    items[i].p = p;
    items[i].size = n;
    fill(p, n, key_of(p, stream ^ i));
  }
}

typedef struct {
  errbox_t box;
} producer_ctx_t;

static void* handoff_producer(void* arg) {
  producer_ctx_t* ctx = arg;
  alloc_items(handoff, HANDOFF_N, 7, &ctx->box);
  return NULL;
}

typedef struct {
  errbox_t box;
  size_t freed;
} consumer_ctx_t;

static void* handoff_consumer(void* arg) {
  consumer_ctx_t* ctx = arg;
  /* Interleaved, so neighbouring blocks are freed by different threads. */
  for (size_t i = (size_t)ctx->box.id; i < 2 * HANDOFF_N; i += CONSUMERS) {
    item_t* it = &handoff[i];
    if (it->p == NULL) continue;
    uint64_t stream = i < HANDOFF_N ? 7 : 8;
    size_t idx = i < HANDOFF_N ? i : i - HANDOFF_N;
    size_t bad = check(it->p, it->size, key_of(it->p, stream ^ idx));
    if (bad != SIZE_MAX) {
      box_fail(&ctx->box, "block %zu at %p (size %zu) corrupted at byte %zu", i, (void*)it->p,
               it->size, bad);
      continue;
    }
    hh_free(it->p);
    it->p = NULL;
    ctx->freed++;
  }
  return NULL;
}

START_TEST(test_free_after_owner_exit) {
  /* Half of the blocks come from a thread that has exited by the time they
   * are freed, half from this (live) thread. */
  pthread_t prod;
  producer_ctx_t pctx;
  memset(&pctx, 0, sizeof pctx);
  ck_assert_int_eq(pthread_create(&prod, NULL, handoff_producer, &pctx), 0);
  ck_assert_int_eq(pthread_join(prod, NULL), 0);
  ck_assert_msg(!pctx.box.failed, "producer: %s", pctx.box.msg);

  errbox_t mainbox;
  memset(&mainbox, 0, sizeof mainbox);
  alloc_items(handoff + HANDOFF_N, HANDOFF_N, 8, &mainbox);
  ck_assert_msg(!mainbox.failed, "main: %s", mainbox.msg);

  pthread_t th[CONSUMERS];
  consumer_ctx_t cctx[CONSUMERS];
  for (int t = 0; t < CONSUMERS; t++) {
    memset(&cctx[t], 0, sizeof cctx[t]);
    cctx[t].box.id = t;
    ck_assert_int_eq(pthread_create(&th[t], NULL, handoff_consumer, &cctx[t]), 0);
  }
  size_t freed = 0;
  for (int t = 0; t < CONSUMERS; t++) {
    ck_assert_int_eq(pthread_join(th[t], NULL), 0);
    ck_assert_msg(!cctx[t].box.failed, "consumer %d: %s", t, cctx[t].box.msg);
    freed += cctx[t].freed;
  }
  ck_assert_uint_eq(freed, 2 * HANDOFF_N);

  /* This thread's heap still works after its blocks were freed remotely, and
   * the blocks it hands out now are sound. */
  alloc_items(handoff, HANDOFF_N, 9, &mainbox);
  ck_assert_msg(!mainbox.failed, "main, second round: %s", mainbox.msg);
  for (size_t i = 0; i < HANDOFF_N; i++) {
    size_t bad = check(handoff[i].p, handoff[i].size, key_of(handoff[i].p, 9 ^ i));
    ck_assert_msg(bad == SIZE_MAX, "second round block %zu corrupted at byte %zu", i, bad);
    hh_free(handoff[i].p);
  }
}
END_TEST

/* ---- 4. heaps of exited threads are adopted by new threads ---------------------- */

#define ADOPT_ROUNDS 12
#define ADOPT_BLOCKS 24000

static item_t adopt_items[ADOPT_BLOCKS];

typedef struct {
  errbox_t box;
  uint64_t stream;
  size_t bytes;
} adopt_ctx_t;

static void* adopt_worker(void* arg) {
  adopt_ctx_t* ctx = arg;
  /* Several segments' worth of small and medium blocks, all left live when
   * the thread exits. */
  alloc_items(adopt_items, ADOPT_BLOCKS, ctx->stream, &ctx->box);
  for (size_t i = 0; i < ADOPT_BLOCKS; i++) ctx->bytes += adopt_items[i].size;
  return NULL;
}

START_TEST(test_exited_thread_memory_reused) {
  /* Each round a new thread allocates ~27 MiB and exits with all of it live;
   * this thread then checks and frees every block, so the next thread finds
   * abandoned segments that are completely free and adopts them. */
  hh_stats_t before, after;
  hh_stats_get(&before);
  size_t total = 0;
  for (int round = 0; round < ADOPT_ROUNDS; round++) {
    adopt_ctx_t ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.box.id = round;
    ctx.stream = 100 + (uint64_t)round;
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, adopt_worker, &ctx), 0);
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    ck_assert_msg(!ctx.box.failed, "round %d: worker: %s", round, ctx.box.msg);
    total += ctx.bytes;
    for (size_t i = 0; i < ADOPT_BLOCKS; i++) {
      item_t* it = &adopt_items[i];
      size_t bad = check(it->p, it->size, key_of(it->p, ctx.stream ^ i));
      ck_assert_msg(bad == SIZE_MAX, "round %d: block %zu at %p (size %zu) corrupted at byte %zu",
                    round, i, (void*)it->p, it->size, bad);
      hh_free(it->p);
      it->p = NULL;
    }
  }
  hh_collect(true);
  hh_stats_get(&after);
  size_t growth = after.reserved > before.reserved ? after.reserved - before.reserved : 0;
  /* ~320 MiB went through short-lived threads; what they left behind must be
   * adopted and reused rather than accumulate. */
  printf("test_exited_thread_memory_reused: %zu MiB through %d threads, reserved grew by %zu MiB\n",
         total / MiB, ADOPT_ROUNDS, growth / MiB);
  ck_assert_uint_ge(total, 256 * MiB);
  ck_assert_msg(growth < 128 * MiB, "reserved memory grew by %zu MiB over %d thread lifetimes",
                growth / MiB, ADOPT_ROUNDS);
}
END_TEST

/* ---- 5. free in other threads while the owner keeps allocating ------------------- */

#define QCAP 1024
#define Q_PRODUCERS 4
#define Q_CONSUMERS 4
#define Q_PER_PRODUCER 100000

typedef struct {
  uint8_t* p;
  size_t size;
  uint64_t tag;
} qitem_t;

typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t not_empty, not_full;
  qitem_t items[QCAP];
  size_t head, count;
  int producers_left;
} queue_t;

static queue_t q;

static void q_push(qitem_t it) {
  pthread_mutex_lock(&q.mu);
  while (q.count == QCAP) pthread_cond_wait(&q.not_full, &q.mu);
  q.items[(q.head + q.count) % QCAP] = it;
  q.count++;
  pthread_cond_signal(&q.not_empty);
  pthread_mutex_unlock(&q.mu);
}

/* false when the queue is empty and every producer is done */
static bool q_pop(qitem_t* out) {
  pthread_mutex_lock(&q.mu);
  while (q.count == 0 && q.producers_left > 0) pthread_cond_wait(&q.not_empty, &q.mu);
  if (q.count == 0) {
    pthread_mutex_unlock(&q.mu);
    return false;
  }
  *out = q.items[q.head];
  q.head = (q.head + 1) % QCAP;
  q.count--;
  pthread_cond_signal(&q.not_full);
  pthread_mutex_unlock(&q.mu);
  return true;
}

typedef struct {
  errbox_t box;
  uint64_t count;
  uint64_t bytes;
} qctx_t;

static void* q_producer(void* arg) {
  qctx_t* ctx = arg;
  rng_t r = rng_for(5000 + (uint64_t)ctx->box.id);
  for (uint64_t i = 0; i < Q_PER_PRODUCER; i++) {
    size_t n = rng_below(&r, 10) < 7 ? 1 + rng_below(&r, 1024) : 1025 + rng_below(&r, 15 * 1024);
    uint8_t* p = rng_below(&r, 4) == 0 ? hh_calloc(n, 1) : hh_malloc(n);
    if (p == NULL || !aligned16(p)) {
      box_fail(&ctx->box, "allocation %llu of %zu bytes returned %p", (unsigned long long)i, n,
               (void*)p);
      break;
    }
    uint64_t tag = ((uint64_t)ctx->box.id << 32) | i;
    fill(p, n, key_of(p, tag));
    q_push((qitem_t){p, n, tag});
    ctx->count++;
    ctx->bytes += n;
  }
  pthread_mutex_lock(&q.mu);
  q.producers_left--;
  pthread_cond_broadcast(&q.not_empty);
  pthread_mutex_unlock(&q.mu);
  return NULL;
}

static void* q_consumer(void* arg) {
  qctx_t* ctx = arg;
  qitem_t it;
  while (q_pop(&it)) {
    size_t bad = check(it.p, it.size, key_of(it.p, it.tag));
    if (bad != SIZE_MAX)
      box_fail(&ctx->box, "block %p (size %zu, producer %u, #%u) corrupted at byte %zu",
               (void*)it.p, it.size, (unsigned)(it.tag >> 32), (unsigned)it.tag, bad);
    else if (hh_usable_size(it.p) < it.size)
      box_fail(&ctx->box, "block %p: usable_size %zu < %zu seen from another thread", (void*)it.p,
               hh_usable_size(it.p), it.size);
    hh_free(it.p);
    ctx->count++;
  }
  return NULL;
}

START_TEST(test_free_in_other_thread_concurrently) {
  hh_stats_t before, after;
  hh_stats_get(&before);

  memset(&q, 0, sizeof q);
  ck_assert_int_eq(pthread_mutex_init(&q.mu, NULL), 0);
  ck_assert_int_eq(pthread_cond_init(&q.not_empty, NULL), 0);
  ck_assert_int_eq(pthread_cond_init(&q.not_full, NULL), 0);
  q.producers_left = Q_PRODUCERS;

  pthread_t prod[Q_PRODUCERS], cons[Q_CONSUMERS];
  qctx_t pctx[Q_PRODUCERS], cctx[Q_CONSUMERS];
  for (int t = 0; t < Q_CONSUMERS; t++) {
    memset(&cctx[t], 0, sizeof cctx[t]);
    cctx[t].box.id = t;
    ck_assert_int_eq(pthread_create(&cons[t], NULL, q_consumer, &cctx[t]), 0);
  }
  for (int t = 0; t < Q_PRODUCERS; t++) {
    memset(&pctx[t], 0, sizeof pctx[t]);
    pctx[t].box.id = t;
    ck_assert_int_eq(pthread_create(&prod[t], NULL, q_producer, &pctx[t]), 0);
  }
  uint64_t produced = 0, consumed = 0, bytes = 0;
  for (int t = 0; t < Q_PRODUCERS; t++) {
    ck_assert_int_eq(pthread_join(prod[t], NULL), 0);
    produced += pctx[t].count;
    bytes += pctx[t].bytes;
  }
  for (int t = 0; t < Q_CONSUMERS; t++) {
    ck_assert_int_eq(pthread_join(cons[t], NULL), 0);
    consumed += cctx[t].count;
  }
  for (int t = 0; t < Q_PRODUCERS; t++)
    ck_assert_msg(!pctx[t].box.failed, "producer %d: %s", t, pctx[t].box.msg);
  for (int t = 0; t < Q_CONSUMERS; t++)
    ck_assert_msg(!cctx[t].box.failed, "consumer %d: %s", t, cctx[t].box.msg);
  ck_assert_uint_eq(produced, (uint64_t)Q_PRODUCERS * Q_PER_PRODUCER);
  ck_assert_uint_eq(consumed, produced);
  ck_assert_uint_eq(q.count, 0);

  /* At most QCAP blocks (< 16 MiB) were live at any time, while more than
   * 1 GiB went through the heaps: memory freed by other threads must have
   * been reused, not kept. The bound leaves room for per-thread caches. */
  hh_collect(true);
  hh_stats_get(&after);
  size_t growth = after.reserved > before.reserved ? after.reserved - before.reserved : 0;
  printf("test_free_in_other_thread_concurrently: %llu blocks, %llu MiB allocated, reserved "
         "grew by %zu MiB (peak %zu MiB)\n",
         (unsigned long long)produced, (unsigned long long)(bytes / MiB), growth / MiB,
         after.reserved_peak / MiB);
  ck_assert_uint_ge(bytes, 1024 * MiB);
  ck_assert_msg(growth < 384 * MiB,
                "reserved memory grew by %zu MiB after %llu MiB of blocks freed remotely",
                growth / MiB, (unsigned long long)(bytes / MiB));

  pthread_cond_destroy(&q.not_empty);
  pthread_cond_destroy(&q.not_full);
  pthread_mutex_destroy(&q.mu);
}
END_TEST

int main(void) {
  Suite* s = suite_create("hardheap_threads_basic");
  TCase* tc = tcase_create("threads");
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, test_concurrent_churn);
  tcase_add_test(tc, test_concurrent_blocks_distinct);
  tcase_add_test(tc, test_free_after_owner_exit);
  tcase_add_test(tc, test_exited_thread_memory_reused);
  tcase_add_test(tc, test_free_in_other_thread_concurrently);
  suite_add_tcase(s, tc);
  SRunner* sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
