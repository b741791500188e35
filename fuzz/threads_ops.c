/* libFuzzer harness threads_ops: api_ops' model across 2-4 threads.
 *
 * The first input byte picks the number of threads (2-4: the fuzzer's own
 * thread is thread 0, the others are workers started per input). The rest
 * is a schedule: each op names the thread that runs it, and the threads
 * run one at a time, handing a token over (mutex and condition variable),
 * so an input replays the same interleaving every time. Ops: allocate
 * (default heap, or the thread's first-class heap), free and realloc from
 * any thread (cross-thread frees, and frees into full pages, which take
 * the delayed-free path), fill a size class (so pages get full), a
 * thread's first-class heap's life, collect, validate, a thread exiting
 * with live blocks (its pages are abandoned, then reclaimed by whoever
 * allocates next) and starting again. One op is a burst: every thread at
 * once frees the blocks the input assigns to it and churns blocks of its
 * own between two barriers; what each thread does is fixed by the input,
 * only the interleaving is left to the machine.
 *
 * Checked: contents (a pattern per block, verified by whichever thread
 * frees it), alignment, no overlap between live blocks, usable sizes;
 * every thread validates its heaps at the end of the input; a misuse
 * report is a bug. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>

#include "fuzz_common.h"

#define THREADS_MAX 4
#define SLOTS 256
#define ABANDONED (-2)

typedef struct slot_s {
  uint8_t* p;
  size_t size;
  size_t usable;
  uint32_t seed;
  int thread;      /* thread that allocated it */
  bool from_heap;  /* from that thread's first-class heap */
} slot_t;

static slot_t slots[SLOTS];
static uint32_t seed_counter;

/* ---- threads and the token ----------------------------------------------------------*/
typedef enum { CMD_NONE, CMD_RUN, CMD_BURST, CMD_EXIT } cmd_t;

typedef struct worker_s {
  pthread_t thread;
  bool alive;
  cmd_t cmd;
  reader_t* reader;      /* CMD_RUN: the op to read and run */
  uint8_t op;
  uint8_t burst_seed;
  bool done;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  hh_heap_t* heap;       /* the thread's first-class heap, if any */
} worker_t;

static worker_t workers[THREADS_MAX];
static int nthreads;
static pthread_barrier_t burst_barrier;
static int burst_parties;

static bool trap_on_misuse(const hh_misuse_info_t* info, void* arg) {
  (void)arg;
  fuzz_write_err("threads_ops: unexpected misuse report: ");
  fuzz_write_err(info->message);
  fuzz_write_err("\n");
  __builtin_trap();
}

static void run_op(int t, uint8_t op, reader_t* r);
static void burst(int t, uint8_t seed);

static void* worker_main(void* arg) {
  worker_t* w = arg;
  int t = (int)(w - workers);
  for (;;) {
    pthread_mutex_lock(&w->lock);
    while (w->cmd == CMD_NONE) pthread_cond_wait(&w->cond, &w->lock);
    cmd_t cmd = w->cmd;
    pthread_mutex_unlock(&w->lock);
    if (cmd == CMD_RUN) run_op(t, w->op, w->reader);
    else if (cmd == CMD_BURST) burst(t, w->burst_seed);
    pthread_mutex_lock(&w->lock);
    w->cmd = CMD_NONE;
    w->done = true;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
    if (cmd == CMD_EXIT) return NULL;
  }
}

static void post(int t, cmd_t cmd) {
  worker_t* w = &workers[t];
  pthread_mutex_lock(&w->lock);
  w->done = false;
  w->cmd = cmd;
  pthread_cond_broadcast(&w->cond);
  pthread_mutex_unlock(&w->lock);
}

static void wait_done(int t) {
  worker_t* w = &workers[t];
  pthread_mutex_lock(&w->lock);
  while (!w->done) pthread_cond_wait(&w->cond, &w->lock);
  pthread_mutex_unlock(&w->lock);
}

static void spawn(int t) {
  worker_t* w = &workers[t];
  w->cmd = CMD_NONE;
  w->done = false;
  w->heap = NULL;
  FUZZ_CHECK(pthread_create(&w->thread, NULL, worker_main, w) == 0);
  w->alive = true;
}

/* The thread exits with whatever it still has live: its heap is deleted
 * into its backing heap, whose pages are abandoned. */
static void retire(int t) {
  worker_t* w = &workers[t];
  post(t, CMD_EXIT);
  FUZZ_CHECK(pthread_join(w->thread, NULL) == 0);
  w->alive = false;
  w->heap = NULL;
  for (int i = 0; i < SLOTS; i++) {
    if (slots[i].p != NULL && slots[i].thread == t) {
      slots[i].thread = ABANDONED;
      slots[i].from_heap = false;
    }
  }
}

/* Run op on thread t (the token goes there and comes back). */
static void on_thread(int t, uint8_t op, reader_t* r) {
  if (t == 0) {
    run_op(0, op, r);
    return;
  }
  if (!workers[t].alive) spawn(t);
  workers[t].op = op;
  workers[t].reader = r;
  post(t, CMD_RUN);
  wait_done(t);
}

/* ---- the ops --------------------------------------------------------------------------*/
static void check_block(const slot_t* s) {
  FUZZ_CHECK(pattern_ok(s->p, s->size, s->seed));
}

static void adopt(slot_t* s, uint8_t* p, size_t size, int t, bool from_heap) {
  FUZZ_CHECK(p != NULL && ((uintptr_t)p & (HH_MIN_ALIGNMENT - 1)) == 0);
  s->p = p;
  s->size = size;
  s->seed = ++seed_counter * 0x85EBCA6Bu;
  s->thread = t;
  s->from_heap = from_heap;
  pattern_fill(p, size, s->seed);
  s->usable = hh_usable_size(p);
  FUZZ_CHECK(s->usable >= size);
  for (int i = 0; i < SLOTS; i++) {
    if (&slots[i] != s && slots[i].p != NULL) FUZZ_CHECK(!overlaps(p, s->usable, slots[i].p, slots[i].usable));
  }
}

static void release(slot_t* s) {
  if (s->p == NULL) return;
  check_block(s);
  FUZZ_CHECK(hh_usable_size(s->p) == s->usable);
  hh_free(s->p);
  memset(s, 0, sizeof(*s));
}

static size_t small_size(reader_t* r) {
  uint8_t b = rd_u8(r);
  if (b < 200) return (size_t)b * 4 + rd_u8(r) % 4;  /* small classes: many blocks per page */
  return rd_size(r);
}

static void run_op(int t, uint8_t op, reader_t* r) {
  worker_t* w = &workers[t];
  slot_t* s = &slots[rd_u8(r) % SLOTS];
  switch (op % 10) {
    case 0: case 1: {  /* allocate here */
      release(s);
      size_t n = small_size(r);
      bool from_heap = (op & 0x10) && w->heap != NULL;
      uint8_t* p;
      if (op & 0x20) {
        p = hh_malloc_aligned(n, (size_t)32 << (op >> 6));
        FUZZ_CHECK(p != NULL && ((uintptr_t)p & (((size_t)32 << (op >> 6)) - 1)) == 0);
        from_heap = false;
      } else {
        p = from_heap ? hh_heap_malloc(w->heap, n) : hh_malloc(n);
      }
      adopt(s, p, n, t, from_heap);
      return;
    }
    case 2: case 3:  /* free here: a remote free when another thread allocated it */
      release(s);
      return;
    case 4: {  /* realloc here: a moved block comes from this thread's heap */
      if (s->p == NULL) return;
      check_block(s);
      size_t n = small_size(r) + 1;
      uint8_t* q = hh_realloc(s->p, n);
      FUZZ_CHECK(q != NULL);
      size_t keep = s->size < n ? s->size : n;
      FUZZ_CHECK(pattern_ok_prefix(q, keep, s->size, s->seed));
      int owner = q == s->p ? s->thread : t;
      bool from_heap = q == s->p && s->from_heap;
      memset(s, 0, sizeof(*s));
      adopt(s, q, n, owner, from_heap);
      return;
    }
    case 5: {  /* fill a size class: its pages get full */
      size_t n = small_size(r) % 1024 + 1;
      int count = rd_u8(r) % 64 + 1;
      for (int i = 0; i < SLOTS && count > 0; i++) {
        slot_t* f = &slots[(i + (int)(s - slots)) % SLOTS];
        if (f->p != NULL) continue;
        adopt(f, hh_malloc(n), n, t, false);
        count--;
      }
      return;
    }
    case 6: {  /* this thread's first-class heap: new, or destroy with its blocks */
      if (w->heap == NULL) {
        w->heap = hh_heap_new();
        FUZZ_CHECK(w->heap != NULL);
        return;
      }
      for (int i = 0; i < SLOTS; i++) {
        if (slots[i].p != NULL && slots[i].thread == t && slots[i].from_heap) {
          check_block(&slots[i]);
          FUZZ_CHECK(hh_heap_contains(w->heap, slots[i].p));
          memset(&slots[i], 0, sizeof(slots[i]));
        }
      }
      if (op & 0x10) {
        FUZZ_CHECK(hh_heap_validate(w->heap));
        hh_heap_destroy(w->heap);
      } else {
        hh_heap_delete(w->heap);  /* its blocks are gone from the model anyway */
      }
      w->heap = NULL;
      return;
    }
    case 7:
      hh_collect((op & 0x10) != 0);
      return;
    case 8:
      FUZZ_CHECK(hh_heap_validate(NULL));
      if (w->heap != NULL) FUZZ_CHECK(hh_heap_validate(w->heap));
      return;
    default: {  /* usable size: consistent, then all of it is the program's */
      if (s->p == NULL) return;
      size_t u = hh_usable_size(s->p);
      FUZZ_CHECK(u == s->usable);
      check_block(s);
      s->size = u;
      pattern_fill(s->p, u, s->seed);
      return;
    }
  }
}

/* Every thread at once: free the slots whose index hashes to this thread
 * (cross-thread frees racing with the owners' own work), and churn a few
 * blocks of its own, checking them. */
static void burst(int t, uint8_t seed) {
  (void)pthread_barrier_wait(&burst_barrier);
  uint8_t* mine[32];
  uint32_t tag = (uint32_t)t * 0x27d4eb2du + seed;
  for (int round = 0; round < 4; round++) {
    for (int i = 0; i < 32; i++) {
      size_t n = (size_t)((i * 37 + seed + t) % 120) + 1;
      mine[i] = hh_malloc(n);
      FUZZ_CHECK(mine[i] != NULL);
      pattern_fill(mine[i], n, tag + (uint32_t)i);
    }
    for (int i = round; i < SLOTS; i += 4) {
      slot_t* s = &slots[i];
      if (s->p != NULL && (int)((i * 7u + seed) % (unsigned)burst_parties) == t) {
        check_block(s);
        hh_free(s->p);
        memset(s, 0, sizeof(*s));
      }
    }
    for (int i = 0; i < 32; i++) {
      size_t n = (size_t)((i * 37 + seed + t) % 120) + 1;
      FUZZ_CHECK(pattern_ok(mine[i], n, tag + (uint32_t)i));
      hh_free(mine[i]);
    }
  }
  (void)pthread_barrier_wait(&burst_barrier);
}

static void run_burst(uint8_t seed) {
  for (int t = 1; t < nthreads; t++) {
    if (!workers[t].alive) spawn(t);
  }
  burst_parties = nthreads;
  FUZZ_CHECK(pthread_barrier_init(&burst_barrier, NULL, (unsigned)nthreads) == 0);
  for (int t = 1; t < nthreads; t++) {
    workers[t].burst_seed = seed;
    post(t, CMD_BURST);
  }
  burst(0, seed);
  for (int t = 1; t < nthreads; t++) wait_done(t);
  pthread_barrier_destroy(&burst_barrier);
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static bool initialised;
  if (!initialised) {
    hh_set_misuse_handler(trap_on_misuse, NULL);
    for (int t = 0; t < THREADS_MAX; t++) {
      pthread_mutex_init(&workers[t].lock, NULL);
      pthread_cond_init(&workers[t].cond, NULL);
    }
    initialised = true;
  }
  reader_t r = {data, size};
  nthreads = 2 + rd_u8(&r) % (THREADS_MAX - 1);
  for (int t = 1; t < nthreads; t++) spawn(t);
  while (r.left > 0) {
    uint8_t sched = rd_u8(&r);
    int t = sched % nthreads;
    uint8_t op = rd_u8(&r);
    if ((sched >> 4) == 15) {
      run_burst(op);
    } else if ((sched >> 4) == 14 && t != 0) {
      if (workers[t].alive) retire(t);  /* exits with its blocks live */
      else spawn(t);
    } else {
      on_thread(t, op, &r);
    }
  }
  /* every thread validates its own heaps, then all blocks go (from thread 0:
   * remote frees for the others' blocks) and the workers exit */
  uint8_t validate_op = 8;
  for (int t = 0; t < nthreads; t++) {
    if (t == 0 || workers[t].alive) on_thread(t, validate_op, &(reader_t){NULL, 0});
  }
  for (int i = 0; i < SLOTS; i++) release(&slots[i]);
  for (int t = 0; t < nthreads; t++) {
    if (workers[t].heap != NULL && (t == 0 || workers[t].alive)) {
      on_thread(t, 6, &(reader_t){NULL, 0});  /* destroy it, now empty */
    }
  }
  for (int t = 1; t < nthreads; t++) {
    if (workers[t].alive) retire(t);
  }
  FUZZ_CHECK(hh_heap_validate(NULL));
  return 0;
}
