/* libFuzzer harness misuse: heap misuse against the secure build, with a
 * misuse handler that records each report and returns true (report and
 * go on with the safe action).
 *
 * The input is a program of correct operations and misuses, all in a
 * first-class heap H made the default for the input (destroyed at its end,
 * which also throws away whatever a corrupted free list left behind),
 * plus blocks left by threads that exit (abandoned pages) and a helper
 * thread for remote frees. Misuses, and what SECURITY.md's table says the
 * secure build reports for each (the harness asserts exactly that):
 *   - double free, right after the first free, on every path (owner then
 *     owner, owner then remote, remote then owner, remote twice), small to
 *     huge, and of abandoned blocks:                          double-free
 *     (free-page when the first free emptied a small or medium page that
 *     was freed at once, its heap's retired list being full;
 *     foreign-pointer when it gave back the last span of a large segment,
 *     which was unmapped; and, like every misuse below that names a freed
 *     block, interior-pointer for an over-aligned block, whose tag went
 *     with the free)
 *   - a later free of a block freed before and not handed out again, its
 *     page still in use (a live block of the same page):      double-free
 *   - realloc / usable_size of a block just freed:      realloc-freed /
 *                                                        usable-size-freed
 *   - free / realloc / usable_size of a foreign pointer (stack, global,
 *     another allocator's block):                          foreign-pointer
 *   - of a pointer into the middle of a live block:       interior-pointer
 *     (past a large block's first 64 KiB slice: free-page; past a huge
 *     block's first 4 MiB: foreign-pointer)
 *   - of a pointer into a segment's metadata:     free-page / not-a-block
 *   - free_sized with a size larger than the block:   sized-free-mismatch
 *   - free_aligned_sized of a pointer not aligned so: aligned-free-misaligned
 *   - allocating from, destroying, deleting, visiting, validating or making
 *     default another thread's heap:                          heap-not-owned
 *   - destroying the backing heap:                     backing-heap-destroy
 *   - a write into a free block (use after free, or an overflow off the
 *     block before it) that changes its free-list link, to a value chosen
 *     by the input: the next walk of its list (hh_heap_validate) reports
 *     a corrupted list (free-list, remote-free-list, delayed-free-list or
 *     heap-invariant). Asserted for the first corruption of an input (a
 *     reported list is cut, and blocks cut off it are on no list); a link
 *     copied from another free block is not asserted (it may decode to a
 *     free block by chance, which SECURITY.md allows).
 *   - (level 2) a write past the requested size of a block of H, into its canary:
 *     the next free, remote free, realloc or usable_size of the block
 *     reports heap-overflow (or heap-overflow-size); asserted when the
 *     write changed a byte and stopped short of the canary's size field
 *     (a size field rewritten may decode to another valid request, which
 *     the check then starts from), allowed otherwise. A free that reports
 *     leaks the block; a realloc that reports fails with EINVAL.
 *   - (level 2) a write after free that leaves the link alone but makes a
 *     byte past it non-zero: reported as write-after-free by
 *     hh_heap_validate (a quarantined block) or when the block is handed
 *     out again; the harness allocates up to 512 blocks of its class to
 *     get it back and asserts the report if it does and the hand-out check
 *     reads the byte (all of a block up to 1 KiB, the first 256 bytes of a
 *     larger one), else allows none (first corruption of an input).
 * Not asserted, because SECURITY.md lists them as not detected: writes
 * into a block's slack below level 2 or into a live neighbour, writes after
 * free below level 2 that leave the link alone, double frees after the
 * block was handed out again, racing double frees, wild writes into
 * metadata.
 *
 * Checked on every allocation, misuse or not: the block is 16-aligned,
 * inside a page of H (hh_heap_contains), holds its usable size, and
 * overlaps no live block; live blocks keep their contents; correct
 * operations get no report (until a list was corrupted in the input); H
 * validates unless a list was corrupted.
 *
 * The harness links the secure library as users run it, without the
 * AddressSanitizer tracking mode (which leaves out the canary and zero on
 * free, and would see these bugs itself): ASan checks the library's code
 * and the harness, not the blocks. Guarded samples are off
 * (GUARDED_SAMPLE_RATE=0, set by re-executing): their misuses have a
 * harness of their own (guarded.c). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "fuzz_common.h"

/* Layout facts of the build (src/config.h): where pages and segments start. */
#define SEGMENT_SIZE ((uintptr_t)4 << 20)
#define SMALL_PAGE ((uintptr_t)64 << 10)
#define MEDIUM_PAGE ((uintptr_t)512 << 10)
#define SMALL_MAX ((size_t)8 << 10)
#define MEDIUM_MAX ((size_t)64 << 10)
#define LARGE_MAX ((size_t)2 << 20)
#define CANARY_SHORT_MAX ((size_t)64 << 10)  /* blocks up to this have a 2-byte size field, larger ones 8 */
#define CANARY_MIN 3                          /* bytes a request takes past its size: the zero and the size field */
#define FREED_CHECK_WHOLE ((size_t)1 << 10)   /* reused blocks up to this are checked whole on hand-out, */
#define FREED_CHECK_HEAD ((size_t)256)        /* larger ones in their first this many bytes */

#define SLOTS 64
#define FREED 64

/* Level 2 (src/config.h): a canary after every request (usable_size is the
 * request) and freed blocks zeroed past their link. Set at the first input. */
static bool canary_on;

/* The canary's minimum bytes after a request of size (src/config.h:
 * HH_CANARY_MIN, HH_CANARY_MIN_LARGE, HH_CANARY_SHORT_MAX). */
static size_t canary_min(size_t size) {
  return size + 3 <= CANARY_SHORT_MAX ? 3 : 9;
}

/* Level 2: the block size a plain request of size bytes gets at least
 * (hh_good_size is the most it could have asked for in the same block). */
static size_t block_at_least(size_t size) {
  return hh_good_size(size) + canary_min(size);
}

typedef enum { INTACT, DAMAGE_MAY_BE_SEEN, DAMAGE_SEEN } damage_t;

typedef struct slot_s {
  uint8_t* p;
  size_t size, usable;
  uint32_t seed;
  bool plain;  /* p is its block's start (not an aligned interior address) */
  bool in_h;   /* a block of H (not one an exited thread left) */
  uint64_t born;  /* clock when it was handed out */
  size_t block_lo, block_hi;  /* the sizes its block may have (usable, and alignment, bound them) */
  size_t room;      /* level 2: bytes past the request surely inside the block (its canary) */
  damage_t canary;  /* an overflow wrote into its canary: will the next check see it */
} slot_t;

typedef struct freed_s {
  uint8_t* p;  /* a block freed and not handed out again since */
  size_t usable;
  bool plain, in_h;
  uint64_t died;  /* clock when it was freed */
  size_t block_lo, block_hi;  /* as in slot_t */
} freed_t;

static slot_t slots[SLOTS];
static freed_t freed[FREED];
static size_t freed_next;
static hh_heap_t* H;
static uint32_t seed_counter;
static bool list_corrupted;  /* a write changed a free block in this input (its link; at level 2 any byte) */
static uint64_t clock_now;    /* counts hand-outs and frees */

/* ---- the report log ------------------------------------------------------------------*/
#define LOG_MAX 4096
typedef struct report_s {
  hh_misuse_t kind;
  const void* pointer;
} report_t;
static report_t log_reports[LOG_MAX];
static _Atomic(size_t) log_count;
static _Atomic(bool) log_lock;

static bool record(const hh_misuse_info_t* info, void* arg) {
  (void)arg;
  while (atomic_exchange_explicit(&log_lock, true, memory_order_acquire)) {
  }
  size_t n = atomic_load_explicit(&log_count, memory_order_relaxed);
  if (n < LOG_MAX) log_reports[n] = (report_t){info->kind, info->pointer};
  atomic_store_explicit(&log_count, n + 1, memory_order_relaxed);
  atomic_store_explicit(&log_lock, false, memory_order_release);
  return true;  /* report and go on */
}

static size_t mark(void) {
  return atomic_load_explicit(&log_count, memory_order_acquire);
}

static size_t reports_since(size_t m) {
  return mark() - m;
}

static const char* current_op = "";
static char current_detail[160];

static void show_reports(size_t m, const char* wanted) {
  char buf[512];
  snprintf(buf, sizeof buf, "misuse: in %s (%s): expected %s; got %zu report(s):", current_op, current_detail, wanted,
           reports_since(m));
  fuzz_write_err(buf);
  for (size_t i = m; i < mark() && i < LOG_MAX; i++) {
    snprintf(buf, sizeof buf, " %s(%p)", hh_misuse_name(log_reports[i].kind), log_reports[i].pointer);
    fuzz_write_err(buf);
  }
  fuzz_write_err("\n");
}

/* Exactly one report since m, of kind (and about pointer p, unless NULL). */
static void expect_one(size_t m, hh_misuse_t kind, const void* p) {
  bool ok = reports_since(m) == 1 && m < LOG_MAX && log_reports[m].kind == kind &&
            (p == NULL || log_reports[m].pointer == p);
  if (!ok) show_reports(m, hh_misuse_name(kind));
  FUZZ_CHECK(ok);
}

/* Exactly one report since m, of one of kinds. */
static void expect_one_of(size_t m, const hh_misuse_t* kinds, size_t n) {
  bool ok = false;
  if (reports_since(m) == 1 && m < LOG_MAX) {
    for (size_t i = 0; i < n; i++) ok |= log_reports[m].kind == kinds[i];
  }
  if (!ok) show_reports(m, hh_misuse_name(kinds[0]));
  FUZZ_CHECK(ok);
}

/* The report about a block just freed (usable bytes): kind; but a freed
 * over-aligned block (p inside it, not its start) has lost the tag that let
 * p in, so p is then a pointer into the middle of a block; a free that
 * emptied a small or medium page which was freed at once (its heap's
 * retired list full) leaves p in a free page slot; and one that gave back
 * the last span of a large segment may have unmapped the segment, or put it
 * in a segment cache from which it came back as a segment of small or
 * medium pages (p then in a free page slot of it). */
static void expect_freed(size_t m, hh_misuse_t kind, const void* p, bool plain, size_t block_lo, size_t block_hi) {
  if (reports_since(m) == 1 && m < LOG_MAX) {
    hh_misuse_t got = log_reports[m].kind;
    if (!plain && got == HH_MISUSE_INTERIOR_POINTER) return;
    if (block_lo <= MEDIUM_MAX && got == HH_MISUSE_FREE_PAGE) return;
    if (block_hi > MEDIUM_MAX && block_lo <= LARGE_MAX &&
        (got == HH_MISUSE_FOREIGN_POINTER || got == HH_MISUSE_FREE_PAGE)) {
      return;  /* the segment unmapped, or cached and reused for small or medium pages */
    }
  }
  expect_one(m, kind, p);
}

/* What a changed link of a free block is reported as: a corrupted list,
 * or (at levels 2-3, where a block freed on its owner thread first waits
 * in the heap's quarantine with its link word cleared) a write after free,
 * found by hh_heap_validate or when the block leaves the quarantine. */
static bool is_corruption_kind(hh_misuse_t k) {
  return k == HH_MISUSE_FREE_LIST_CORRUPTED || k == HH_MISUSE_FREE_LIST_NOT_FREE ||
         k == HH_MISUSE_REMOTE_LIST_CORRUPTED || k == HH_MISUSE_DELAYED_LIST_CORRUPTED ||
         k == HH_MISUSE_HEAP_INVARIANT || (hh_secure_level() >= 2 && k == HH_MISUSE_WRITE_AFTER_FREE);
}

/* A correct operation: no report, unless a corrupted list is being cut. */
static void expect_none(size_t m) {
  size_t n = reports_since(m);
  if (n == 0) return;
  FUZZ_CHECK(list_corrupted);
  for (size_t i = m; i < m + n && i < LOG_MAX; i++) FUZZ_CHECK(is_corruption_kind(log_reports[i].kind));
}

/* ---- the helper thread: remote frees and foreign heap calls ---------------------------*/
typedef enum { H_NONE, H_FREE, H_HEAP_MALLOC, H_HEAP_DESTROY, H_HEAP_DELETE, H_HEAP_VISIT, H_HEAP_VALIDATE,
               H_HEAP_SET_DEFAULT } helper_cmd_t;
static pthread_t helper;
static pthread_mutex_t helper_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t helper_cond = PTHREAD_COND_INITIALIZER;
static helper_cmd_t helper_cmd;
static void* helper_arg;
static void* helper_result;

static bool visit_nothing(const hh_heap_t* heap, const hh_heap_area_t* area, void* block, size_t size, void* arg) {
  (void)heap; (void)area; (void)block; (void)size; (void)arg;
  return true;
}

static void* helper_main(void* arg) {
  (void)arg;
  for (;;) {
    pthread_mutex_lock(&helper_lock);
    while (helper_cmd == H_NONE) pthread_cond_wait(&helper_cond, &helper_lock);
    helper_cmd_t cmd = helper_cmd;
    void* a = helper_arg;
    pthread_mutex_unlock(&helper_lock);
    void* result = NULL;
    switch (cmd) {
      case H_FREE: hh_free(a); break;
      case H_HEAP_MALLOC: result = hh_heap_malloc(a, 32); break;
      case H_HEAP_DESTROY: hh_heap_destroy(a); break;
      case H_HEAP_DELETE: hh_heap_delete(a); break;
      case H_HEAP_VISIT: result = (void*)(uintptr_t)hh_heap_visit_blocks(a, true, visit_nothing, NULL); break;
      case H_HEAP_VALIDATE: result = (void*)(uintptr_t)hh_heap_validate(a); break;
      case H_HEAP_SET_DEFAULT: result = hh_heap_set_default(a); break;
      case H_NONE: break;
    }
    pthread_mutex_lock(&helper_lock);
    helper_result = result;
    helper_cmd = H_NONE;
    pthread_cond_broadcast(&helper_cond);
    pthread_mutex_unlock(&helper_lock);
  }
  return NULL;
}

static void* on_helper(helper_cmd_t cmd, void* arg) {
  pthread_mutex_lock(&helper_lock);
  helper_cmd = cmd;
  helper_arg = arg;
  pthread_cond_broadcast(&helper_cond);
  while (helper_cmd != H_NONE) pthread_cond_wait(&helper_cond, &helper_lock);
  void* result = helper_result;
  pthread_mutex_unlock(&helper_lock);
  return result;
}

/* ---- the model -----------------------------------------------------------------------------*/
static void check_block(const slot_t* s) {
  FUZZ_CHECK(pattern_ok(s->p, s->size, s->seed));
}

static bool overlaps_live(const uint8_t* p, size_t n) {
  for (int i = 0; i < SLOTS; i++) {
    if (slots[i].p != NULL && overlaps(p, n, slots[i].p, slots[i].usable)) return true;
  }
  return false;
}

static void forget_freed_overlapping(const uint8_t* p, size_t n) {
  for (int i = 0; i < FREED; i++) {
    if (freed[i].p != NULL && overlaps(p, n, freed[i].p, freed[i].usable)) freed[i].p = NULL;
  }
}

static void remember_freed(const slot_t* s) {
  forget_freed_overlapping(s->p, s->usable);
  freed[freed_next++ % FREED] = (freed_t){s->p, s->usable, s->plain, s->in_h, ++clock_now, s->block_lo, s->block_hi};
}

/* A block the allocator just returned (for a request of size bytes, at
 * an alignment of align if it is not plain): where it may be. */
static void adopt(slot_t* s, uint8_t* p, size_t size, bool plain, bool in_h, size_t align) {
  FUZZ_CHECK(p != NULL && ((uintptr_t)p & (HH_MIN_ALIGNMENT - 1)) == 0);
  if (in_h) FUZZ_CHECK(hh_heap_contains(H, p));
  size_t usable = hh_usable_size(p);
  FUZZ_CHECK(usable >= size);
  if (canary_on) FUZZ_CHECK(usable == size);  /* SECURITY.md: the requested size */
  FUZZ_CHECK(!overlaps_live(p, usable));
  forget_freed_overlapping(p, usable);
  size_t lo = canary_on ? block_at_least(size) : usable;
  size_t hi = plain ? lo : lo + align;
  size_t room = plain ? lo - size : canary_min(size);
  *s = (slot_t){p, size, usable, ++seed_counter * 0x9E3779B1u, plain, in_h, ++clock_now, lo, hi, room, INTACT};
  pattern_fill(p, size, s->seed);
}

static size_t page_window(size_t usable) {
  return usable <= SMALL_MAX ? SMALL_PAGE : MEDIUM_PAGE;
}

/* A freed block of H whose page is still in use: a live plain block of H
 * shares its page and was handed out before this one was freed, so the
 * page has not been empty since, the block is on one of its lists (unless a
 * corrupted list was cut), and its memory is mapped and no live block's. */
static bool anchored(const freed_t* f) {
  if (f->p == NULL || !f->plain || !f->in_h || f->block_hi > MEDIUM_MAX) return false;
  if (overlaps_live(f->p, f->usable)) return false;
  uintptr_t window = page_window(f->block_lo);
  for (int i = 0; i < SLOTS; i++) {
    const slot_t* s = &slots[i];
    if (s->p != NULL && s->plain && s->in_h && s->usable == f->usable && s->born < f->died &&
        ((uintptr_t)s->p & ~(window - 1)) == ((uintptr_t)f->p & ~(window - 1))) {
      return true;
    }
  }
  return false;
}

static size_t rd_request(reader_t* r) {
  uint8_t b = rd_u8(r);
  if (b < 160) return (size_t)b * 3 + 1;  /* mostly small: pages with many blocks */
  return rd_size(r);
}

static void settle_damaged(slot_t* s, uint8_t how);
static void describe_slot(const char* op, const slot_t* s);

/* A live block chosen by the input; one whose canary an overflow damaged is
 * freed (or reallocated) instead, and the operation does nothing more. */
static slot_t* any_live(reader_t* r) {
  uint8_t b = rd_u8(r);
  int start = b % SLOTS;
  for (int i = 0; i < SLOTS; i++) {
    slot_t* s = &slots[(start + i) % SLOTS];
    if (s->p == NULL) continue;
    if (s->canary == INTACT) return s;
    settle_damaged(s, b / SLOTS);
    return NULL;
  }
  return NULL;
}

static freed_t* any_freed(reader_t* r, bool want_anchored) {
  int start = rd_u8(r) % FREED;
  for (int i = 0; i < FREED; i++) {
    freed_t* f = &freed[(start + i) % FREED];
    if (f->p != NULL && (!want_anchored || anchored(f))) return f;
  }
  return NULL;
}

/* ---- frees -----------------------------------------------------------------------------------*/
static void free_on(const void* p, bool remote) {
  if (remote) on_helper(H_FREE, (void*)p);
  else hh_free((void*)p);
}

static void free_slot(slot_t* s, bool remote) {
  if (s->canary != INTACT) {
    settle_damaged(s, remote);
    return;
  }
  check_block(s);
  size_t m = mark();
  free_on(s->p, remote);
  expect_none(m);
  remember_freed(s);
  memset(s, 0, sizeof(*s));
}

static const hh_misuse_t overflow_kinds[] = {HH_MISUSE_HEAP_OVERFLOW, HH_MISUSE_HEAP_OVERFLOW_SIZE};

/* One report since m, an overflow past the block handed out as p. */
static void expect_overflow(size_t m, const void* p) {
  expect_one_of(m, overflow_kinds, 2);
  FUZZ_CHECK(log_reports[m].pointer == p);
}

/* The end of a block whose canary an overflow wrote into: the free (here
 * or remote; how) or realloc that checks the canary. A free that reports
 * leaks the block; one that does not (the write may have left the checks
 * intact) was a correct free. A realloc that reports fails and leaves the
 * block as it was, damaged. */
static void settle_damaged(slot_t* s, uint8_t how) {
  describe_slot("end of an overflowed block", s);
  check_block(s);
  size_t m = mark();
  if (how % 3 == 2 && s->canary == DAMAGE_SEEN) {
    errno = 0;
    FUZZ_CHECK(hh_realloc(s->p, s->size + how) == NULL && errno == EINVAL);
    expect_overflow(m, s->p);
    check_block(s);
    return;
  }
  free_on(s->p, how & 1);
  bool seen = reports_since(m) > 0;
  if (seen || s->canary == DAMAGE_SEEN) expect_overflow(m, s->p);
  if (!seen) remember_freed(s);
  memset(s, 0, sizeof(*s));
}

/* ---- writes into free memory ------------------------------------------------------------------*/
/* Write bytes at offset k of the free block f (k + n <= its usable size). */
static void write_free(freed_t* f, size_t k, const uint8_t* bytes, size_t n, bool assert_detected) {
  uint64_t before;
  memcpy(&before, f->p, sizeof(before));
  memcpy(f->p + k, bytes, n);
  uint64_t after;
  memcpy(&after, f->p, sizeof(after));
  if (before == after) return;  /* the link is what it was: nothing to see */
  bool first = !list_corrupted;
  list_corrupted = true;
  size_t m = mark();
  bool valid = hh_heap_validate(H);
  size_t n_reports = reports_since(m);
  if (assert_detected && first) {
    FUZZ_CHECK(!valid && n_reports >= 1);
    for (size_t i = m; i < m + n_reports && i < LOG_MAX; i++) FUZZ_CHECK(is_corruption_kind(log_reports[i].kind));
  }
}

/* Level 2: f (anchored) is no longer zero past its link. The first such
 * write of an input is found by hh_heap_validate if f waits in the
 * quarantine, else when f is handed out again: up to 512 blocks of its
 * class are taken to get it back (and then freed). */
static void find_write_after_free(freed_t* f, bool seen_on_hand_out) {
  bool first = !list_corrupted;
  list_corrupted = true;
  if (!first) return;
  current_op = "write after free";
  snprintf(current_detail, sizeof current_detail, "block %p usable %zu", (void*)f->p, f->usable);
  uint8_t* target = f->p;
  size_t m = mark();
  if (!hh_heap_validate(H)) {
    expect_one(m, HH_MISUSE_WRITE_AFTER_FREE, target);
    return;
  }
  FUZZ_CHECK(reports_since(m) == 0);
  static uint8_t* taken[512];
  size_t count = 0;
  bool found = false;
  while (count < 512 && !found) {
    uint8_t* p = hh_malloc(f->usable);
    FUZZ_CHECK(p != NULL && !overlaps_live(p, f->usable));
    taken[count++] = p;
    found = p == target;
  }
  bool reported = found && seen_on_hand_out;
  if (reported) expect_one(m, HH_MISUSE_WRITE_AFTER_FREE, target);
  else FUZZ_CHECK(reports_since(m) == 0);
  forget_freed_overlapping(target, f->usable);
  for (size_t i = 0; i < count; i++) hh_free(taken[i]);
  FUZZ_CHECK(reports_since(m) == (reported ? 1 : 0));
}

/* ---- an exiting thread's blocks ------------------------------------------------------------------*/
typedef struct exiting_s {
  size_t sizes[8];
  uint8_t* blocks[8];
  int count;
} exiting_t;

static void* exiting_main(void* arg) {
  exiting_t* e = arg;
  for (int i = 0; i < e->count; i++) e->blocks[i] = hh_malloc(e->sizes[i]);
  return NULL;  /* exits with them live */
}

/* ---- the program ---------------------------------------------------------------------------------*/
static void describe_slot(const char* op, const slot_t* s) {
  current_op = op;
  snprintf(current_detail, sizeof current_detail, "block %p size %zu usable %zu plain %d in_h %d", (void*)s->p,
           s->size, s->usable, s->plain, s->in_h);
}

static void op_double_free(reader_t* r) {
  slot_t* s = any_live(r);
  uint8_t path = rd_u8(r);
  if (s == NULL) return;
  describe_slot("double free", s);
  snprintf(current_detail + strlen(current_detail), sizeof current_detail - strlen(current_detail), " path %d",
           path & 3);
  check_block(s);
  uint8_t* p = s->p;
  bool plain = s->plain;
  size_t block_lo = s->block_lo, block_hi = s->block_hi;
  bool first_remote = path & 1, second_remote = (path >> 1) & 1;
  size_t m = mark();
  free_on(p, first_remote);
  expect_none(m);
  remember_freed(s);
  memset(s, 0, sizeof(*s));
  m = mark();
  free_on(p, second_remote);
  expect_freed(m, HH_MISUSE_DOUBLE_FREE, p, plain, block_lo, block_hi);
}

static void op_free_freed(reader_t* r) {
  uint8_t how = rd_u8(r);
  freed_t* f = any_freed(r, true);
  if (f == NULL) return;
  current_op = "free of a freed block";
  snprintf(current_detail, sizeof current_detail, "block %p usable %zu died %llu remote %d", (void*)f->p, f->usable,
           (unsigned long long)f->died, how & 1);
  size_t m = mark();
  free_on(f->p, how & 1);
  expect_one(m, HH_MISUSE_DOUBLE_FREE, f->p);
}

static void op_query_freed(reader_t* r) {
  slot_t* s = any_live(r);
  if (s == NULL) return;
  describe_slot("query of a freed block", s);
  check_block(s);
  uint8_t* p = s->p;
  bool plain = s->plain;
  size_t block_lo = s->block_lo, block_hi = s->block_hi;
  size_t m = mark();
  hh_free(p);
  expect_none(m);
  remember_freed(s);
  memset(s, 0, sizeof(*s));
  m = mark();
  errno = 0;
  FUZZ_CHECK(hh_realloc(p, 100) == NULL && errno == EINVAL);
  expect_freed(m, HH_MISUSE_REALLOC_FREED, p, plain, block_lo, block_hi);
  m = mark();
  FUZZ_CHECK(hh_usable_size(p) == 0);
  expect_freed(m, HH_MISUSE_USABLE_SIZE_FREED, p, plain, block_lo, block_hi);
}

static int global_object[16];

/* free, realloc or usable_size of p: the call is refused with one report */
static size_t refused_call(const void* p, uint8_t how) {
  size_t m = mark();
  switch (how % 3) {
    case 0: hh_free((void*)p); break;
    case 1: errno = 0; FUZZ_CHECK(hh_realloc((void*)p, 10) == NULL && errno == EINVAL); break;
    default: FUZZ_CHECK(hh_usable_size(p) == 0); break;
  }
  return m;
}

static void op_invalid_pointer(reader_t* r) {
  uint8_t sub = rd_u8(r);
  uint8_t how = rd_u8(r);
  switch (sub % 4) {
    case 0: {  /* foreign: stack, global, the system allocator */
      int local[4] = {0};
      void* sys = malloc(64);
      const void* targets[3] = {&local[1], &global_object[(sub >> 2) % 16], sys};
      const void* p = targets[(sub >> 4) % 3];
      size_t m = refused_call(p, how);
      expect_one(m, HH_MISUSE_FOREIGN_POINTER, p);
      free(sys);
      return;
    }
    case 1: {  /* into the middle of a live block */
      slot_t* s = any_live(r);
      if (s == NULL || s->usable < 2) return;
      size_t k = 1 + rd_u24(r) % (s->usable - 1);
      const uint8_t* p = s->p + k;
      size_t m = refused_call(p, how);
      /* a large block's descriptor is the one of the 64 KiB slice it starts
       * in (with guards, anywhere in it): past that slice the pointer may
       * read as free */
      bool same_slice = (uintptr_t)p / SMALL_PAGE == (uintptr_t)s->p / SMALL_PAGE;
      if (s->usable <= MEDIUM_MAX || same_slice) {
        expect_one(m, HH_MISUSE_INTERIOR_POINTER, p);
      } else {
        static const hh_misuse_t far[] = {HH_MISUSE_INTERIOR_POINTER, HH_MISUSE_FREE_PAGE,
                                          HH_MISUSE_FOREIGN_POINTER, HH_MISUSE_NOT_A_BLOCK};
        expect_one_of(m, far, 4);
      }
      check_block(s);
      return;
    }
    case 2: {  /* into a segment's metadata */
      slot_t* s = any_live(r);
      if (s == NULL || !s->in_h || s->block_hi > MEDIUM_MAX) return;
      uintptr_t segment = ((uintptr_t)s->p - 1) & ~(SEGMENT_SIZE - 1);
      const void* p = (const void*)(segment + 16 * (rd_u16(r) % 512));
      if (p == (const void*)segment) p = (const uint8_t*)p + 16;
      size_t m = refused_call(p, how);
      static const hh_misuse_t meta[] = {HH_MISUSE_FREE_PAGE, HH_MISUSE_NOT_A_BLOCK};
      expect_one_of(m, meta, 2);
      return;
    }
    default: {  /* sized frees that do not match the block */
      slot_t* s = any_live(r);
      if (s == NULL) return;
      size_t m = mark();
      if (how & 1) {
        hh_free_sized(s->p, s->usable + 1 + rd_u16(r));
        expect_one(m, HH_MISUSE_SIZED_FREE_MISMATCH, s->p);
      } else {
        uintptr_t low = (uintptr_t)s->p & (~(uintptr_t)s->p + 1);  /* the alignment p has */
        hh_free_aligned_sized(s->p, (size_t)low << 1, s->size);
        expect_one(m, HH_MISUSE_ALIGNED_FREE_MISALIGNED, NULL);
      }
      check_block(s);  /* the free was ignored */
      return;
    }
  }
}

static void op_foreign_heap(reader_t* r) {
  uint8_t sub = rd_u8(r);
  size_t m = mark();
  switch (sub % 7) {
    case 0: FUZZ_CHECK(on_helper(H_HEAP_MALLOC, H) == NULL); break;
    case 1: on_helper(H_HEAP_DESTROY, H); break;
    case 2: on_helper(H_HEAP_DELETE, H); break;
    case 3: FUZZ_CHECK(on_helper(H_HEAP_VISIT, H) == NULL); break;
    case 4: FUZZ_CHECK(on_helper(H_HEAP_VALIDATE, H) == NULL); break;
    case 5: FUZZ_CHECK(on_helper(H_HEAP_SET_DEFAULT, H) == NULL); break;
    default: {
      hh_heap_destroy(hh_heap_get_backing());
      expect_one(m, HH_MISUSE_BACKING_HEAP_DESTROY, NULL);
      return;
    }
  }
  expect_one(m, HH_MISUSE_HEAP_NOT_OWNED, NULL);
  FUZZ_CHECK(hh_heap_get_default() == H);  /* nothing changed */
}

static void op_write_free(reader_t* r) {
  uint8_t sub = rd_u8(r);
  freed_t* f = any_freed(r, true);
  if (f == NULL) return;
  if (sub & 1) {  /* a chosen value over the link */
    uint8_t bytes[8];
    for (int i = 0; i < 8; i++) bytes[i] = rd_u8(r);
    size_t n = 1 + (sub >> 1) % 8;
    write_free(f, 0, bytes, n, true);
  } else if (sub & 2) {  /* a link copied from another free block */
    freed_t* g = any_freed(r, false);
    if (g == NULL || g == f || overlaps_live(g->p, 8)) return;
    if (!anchored(g)) return;  /* its memory must be mapped */
    uint8_t bytes[8];
    memcpy(bytes, g->p, 8);
    write_free(f, 0, bytes, 8, false);
  } else {  /* a write after free somewhere else in the block: found at level 2, else harmless */
    if (f->usable <= 8) return;
    size_t k = 8 + rd_u16(r) % (f->usable - 8);
    size_t n = f->usable - k < 8 ? f->usable - k : 8;
    uint8_t bytes[8];
    /* the bytes the hand-out check reads (block sizes step at powers of 2,
     * so the block is at most FREED_CHECK_WHOLE iff the request fits) */
    size_t checked = f->usable + CANARY_MIN <= FREED_CHECK_WHOLE ? SIZE_MAX : FREED_CHECK_HEAD;
    bool nonzero = false, nonzero_checked = false;
    for (size_t i = 0; i < n; i++) {
      bool changed = (bytes[i] = rd_u8(r)) != 0;
      nonzero |= changed;
      nonzero_checked |= changed && k + i < checked;
    }
    write_free(f, k, bytes, n, true);
    if (canary_on && nonzero) find_write_after_free(f, nonzero_checked);
  }
}

/* Level 2: k bytes of value written from the end of the request on (at
 * most to the end of the block), sub chooses whether usable_size looks
 * first. */
static void overflow_canary(slot_t* s, size_t k, uint8_t value, uint8_t sub) {
  describe_slot("overflow into the canary", s);
  if (k > s->room) k = s->room;
  uint8_t* tail = s->p + s->size;
  bool changed = false;
  for (size_t i = 0; i < k; i++) changed |= tail[i] != value;
  memset(tail, value, k);
  if (!changed) return;
  /* short of the size field (the last 2 bytes of the block, 8 past
   * 64 KiB), the recorded request is still right and the check sees the
   * change */
  size_t field = s->block_hi <= CANARY_SHORT_MAX ? 2 : 8;
  bool short_of_field = k + field <= s->room;
  s->canary = short_of_field ? DAMAGE_SEEN : DAMAGE_MAY_BE_SEEN;
  if (!(sub & 2)) return;
  /* usable_size checks the zero byte after the request and the size field */
  size_t m = mark();
  size_t usable = hh_usable_size(s->p);
  if (short_of_field && value != 0) {
    expect_overflow(m, s->p);
    FUZZ_CHECK(usable == 0);
  } else if (short_of_field) {
    expect_none(m);
    FUZZ_CHECK(usable == s->size);
  } else if (reports_since(m) != 0) {
    expect_overflow(m, s->p);
    FUZZ_CHECK(usable == 0);
  }
}

static void op_overflow(reader_t* r) {
  slot_t* s = any_live(r);
  uint8_t sub = rd_u8(r);
  if (s == NULL) return;
  size_t k = 1 + rd_u16(r) % 64;
  uint8_t value = rd_u8(r);
  if (canary_on) {
    /* blocks of H only: a free that reports leaks the block, and H's
     * destruction takes it back (an exited thread's would stay) */
    if (s->in_h) overflow_canary(s, k, value, sub);
    return;
  }
  /* into the slack: not detected, and harmless */
  size_t slack = s->usable - s->size;
  size_t into_slack = k < slack ? k : slack;
  memset(s->p + s->size, value, into_slack);
  if (k <= slack || !s->plain || !(sub & 1)) return;
  /* on into the next block: only when it is a free block of H's (its link) */
  uint8_t* next = s->p + s->usable;
  for (int i = 0; i < FREED; i++) {
    freed_t* f = &freed[i];
    if (f->p != next || !anchored(f)) continue;
    uint8_t bytes[8];
    size_t n = k - slack < 8 ? k - slack : 8;
    memset(bytes, value, n);
    write_free(f, 0, bytes, n, true);
    return;
  }
}

static void op_exiting_thread(reader_t* r) {
  exiting_t e;
  e.count = 1 + rd_u8(r) % 8;
  for (int i = 0; i < e.count; i++) e.sizes[i] = rd_request(r);
  pthread_t t;
  FUZZ_CHECK(pthread_create(&t, NULL, exiting_main, &e) == 0);
  FUZZ_CHECK(pthread_join(t, NULL) == 0);
  for (int i = 0, j = 0; i < e.count; i++) {
    while (j < SLOTS && slots[j].p != NULL) j++;
    if (j == SLOTS) {
      hh_free(e.blocks[i]);
      continue;
    }
    adopt(&slots[j], e.blocks[i], e.sizes[i], true, false, 0);
  }
}

static void run_op(reader_t* r) {
  uint8_t op = rd_u8(r);
  size_t m = mark();
  switch (op % 16) {
    case 0: case 1: case 2: {  /* malloc */
      slot_t* s = &slots[rd_u8(r) % SLOTS];
      if (s->p != NULL) free_slot(s, false);
      size_t n = rd_request(r);
      m = mark();
      uint8_t* p = hh_malloc(n);
      expect_none(m);
      adopt(s, p, n, true, true, 0);
      return;
    }
    case 3: {  /* aligned */
      slot_t* s = &slots[rd_u8(r) % SLOTS];
      if (s->p != NULL) free_slot(s, false);
      size_t n = rd_request(r);
      size_t align = (size_t)32 << (rd_u8(r) % 8);
      m = mark();
      uint8_t* p = hh_malloc_aligned(n, align);
      expect_none(m);
      FUZZ_CHECK(((uintptr_t)p & (align - 1)) == 0);
      adopt(s, p, n, false, true, align);
      return;
    }
    case 4: {  /* fill a class: full pages, so remote frees go to the delayed list */
      size_t n = rd_request(r) % 512 + 1;
      int count = rd_u8(r) % 48;
      for (int i = 0; i < SLOTS && count > 0; i++) {
        if (slots[i].p != NULL) continue;
        uint8_t* p = hh_malloc(n);
        expect_none(m);
        adopt(&slots[i], p, n, true, true, 0);
        count--;
      }
      return;
    }
    case 5: case 6: {  /* a correct free, here or from the helper */
      slot_t* s = any_live(r);
      if (s != NULL) free_slot(s, op & 0x10);
      return;
    }
    case 7: {  /* a correct realloc */
      slot_t* s = any_live(r);
      size_t n = rd_request(r) + 1;
      if (s == NULL || !s->in_h) return;
      check_block(s);
      uint8_t* q = hh_realloc(s->p, n);
      expect_none(m);
      FUZZ_CHECK(q != NULL);
      size_t keep = s->size < n ? s->size : n;
      FUZZ_CHECK(pattern_ok_prefix(q, keep, s->size, s->seed));
      bool plain = q == s->p ? s->plain : true;
      size_t old_lo = s->block_lo, old_hi = s->block_hi;
      if (q != s->p) remember_freed(s);
      memset(s, 0, sizeof(*s));
      adopt(s, q, n, plain, true, 0);
      if (q == s->p && canary_on) {  /* in place: the old block, which may be larger than n needs */
        s->block_lo = s->block_lo < old_lo ? s->block_lo : old_lo;
        s->block_hi = s->block_hi > old_hi ? s->block_hi : old_hi;
        s->room = canary_min(n);
      }
      return;
    }
    case 8: op_double_free(r); return;
    case 9: op_free_freed(r); return;
    case 10: op_query_freed(r); return;
    case 11: op_invalid_pointer(r); return;
    case 12: op_foreign_heap(r); return;
    case 13: op_write_free(r); return;
    case 14: op_overflow(r); return;
    default:
      if (op & 0x10) {
        op_exiting_thread(r);
      } else {
        bool ok = hh_heap_validate(H);
        FUZZ_CHECK(ok || list_corrupted);
        expect_none(m);
      }
      return;
  }
}

int LLVMFuzzerInitialize(int* argc, char*** argv);
int LLVMFuzzerInitialize(int* argc, char*** argv) {
  (void)argc;
  static const char* const no_samples[] = {"HARDHEAP_GUARDED_SAMPLE_RATE", "0", NULL};
  fuzz_restart_with(*argv, no_samples);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static bool initialised;
  if (!initialised) {
    FUZZ_CHECK(hh_is_secure());
    canary_on = hh_secure_level() >= 2;
    hh_set_misuse_handler(record, NULL);
    FUZZ_CHECK(pthread_create(&helper, NULL, helper_main, NULL) == 0);
    initialised = true;
  }
  atomic_store(&log_count, 0);
  list_corrupted = false;
  memset(slots, 0, sizeof(slots));
  memset(freed, 0, sizeof(freed));
  H = hh_heap_new();
  FUZZ_CHECK(H != NULL);
  hh_heap_t* backing = hh_heap_set_default(H);
  reader_t r = {data, size};
  while (r.left > 0) run_op(&r);
  /* H goes with its blocks (and whatever a corrupted list left); blocks of
   * exited threads are freed one by one */
  size_t m = mark();
  for (int i = 0; i < SLOTS; i++) {
    if (slots[i].p == NULL) continue;
    check_block(&slots[i]);
    if (!slots[i].in_h) hh_free(slots[i].p);
    memset(&slots[i], 0, sizeof(slots[i]));
  }
  expect_none(m);
  if (!list_corrupted) FUZZ_CHECK(hh_heap_validate(H));
  hh_heap_destroy(H);
  FUZZ_CHECK(hh_heap_get_default() == backing);
  m = mark();
  FUZZ_CHECK(hh_heap_validate(NULL));
  FUZZ_CHECK(reports_since(m) == 0);
  return 0;
}
