/* libFuzzer harness api_ops: the input is a program of hh_ API calls, run
 * against a shadow model of every live block (pointer, requested size,
 * usable size, alignment, content seed, owning heap).
 *
 * Checked on every call: contents are preserved (each block carries a
 * pattern, verified before it is freed or resized, and the kept prefix
 * after a resize); alignment is honoured; no two live blocks overlap (over
 * their usable sizes); hh_usable_size is at least the request, never
 * changes for a live block, and equals hh_good_size for plain mallocs;
 * calloc and zalloc memory is zero; the block belongs to the heap that
 * allocated it (hh_heap_contains, hh_heap_check_owned) and to no other;
 * visiting a heap finds exactly its live blocks; impossible requests fail
 * with the documented errno. After every input hh_heap_validate(NULL) and
 * the validation of every live first-class heap must pass, and any misuse
 * report at all is a bug (the program is correct).
 *
 * Ops: malloc, zalloc, calloc, realloc, reallocarray, reallocf,
 * realloc_aligned, every aligned call (malloc/zalloc/calloc_aligned,
 * posix_memalign, aligned_alloc, memalign, valloc, pvalloc), strdup,
 * strndup, free, free_sized, free_aligned_sized, usable_size (after which
 * the program uses all of it), good_size, first-class heaps (new, delete,
 * destroy, set_default, malloc/zalloc/calloc/realloc/malloc_aligned/strdup
 * from a heap, visit, check_owned, collect), hh_collect, validate, the
 * process statistics (hh_stats_get, hh_bin_stats_get, printing), which must
 * count exactly the model's live blocks, and the options that decide when
 * memory is purged and which empty segments are kept (purge delay, segment
 * cache), so that pages and segments come back in every state: a cached
 * segment re-cut for another kind once handed out old data from calloc. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "fuzz_common.h"

#define SLOTS 64
#define HEAPS 4
#define BACKING (-1)

typedef struct slot_s {
  uint8_t* p;      /* NULL: empty */
  size_t size;     /* bytes the pattern covers (the request, or all after usable_size) */
  size_t usable;   /* hh_usable_size when it was allocated */
  size_t align;    /* alignment asked (16 for plain allocations) */
  uint32_t seed;   /* content pattern */
  int heap;        /* owning heap: index into heaps, or BACKING */
  bool plain;      /* a plain malloc: usable == good_size */
} slot_t;

static slot_t slots[SLOTS];
static hh_heap_t* heaps[HEAPS];
static int default_heap = BACKING;  /* what hh_malloc allocates from */
static uint32_t seed_counter;

static hh_heap_t* heap_ptr(int h) {
  return h == BACKING ? hh_heap_get_backing() : heaps[h];
}

/* A correct program gets no misuse report at all. */
static bool trap_on_misuse(const hh_misuse_info_t* info, void* arg) {
  (void)arg;
  fuzz_write_err("api_ops: unexpected misuse report: ");
  fuzz_write_err(info->message);
  fuzz_write_err("\n");
  __builtin_trap();
}

/* ---- the model's checks --------------------------------------------------------------*/
static void check_contents(const slot_t* s) {
  FUZZ_CHECK(pattern_ok(s->p, s->size, s->seed));
}

/* Ownership as hardheap tells it must be the model's. */
static void check_owner(const slot_t* s) {
  FUZZ_CHECK(hh_heap_contains(heap_ptr(s->heap), s->p));
  for (int h = 0; h < HEAPS; h++) {
    if (heaps[h] != NULL && h != s->heap) FUZZ_CHECK(!hh_heap_contains(heaps[h], s->p));
  }
  if (s->heap != BACKING) FUZZ_CHECK(!hh_heap_contains(hh_heap_get_backing(), s->p));
}

/* p was just handed out for size bytes at alignment align by heap h. */
static void adopt(slot_t* s, uint8_t* p, size_t size, size_t align, bool zero, int h, bool plain) {
  FUZZ_CHECK(p != NULL);
  FUZZ_CHECK(((uintptr_t)p & (HH_MIN_ALIGNMENT - 1)) == 0);
  FUZZ_CHECK(align == 0 || ((uintptr_t)p & (align - 1)) == 0);
  if (zero) FUZZ_CHECK(all_zero(p, size));
  s->p = p;
  s->size = size;
  s->align = align < HH_MIN_ALIGNMENT ? HH_MIN_ALIGNMENT : align;
  s->seed = ++seed_counter * 0x9E3779B1u;
  s->heap = h;
  s->plain = plain;
  pattern_fill(p, size, s->seed);  /* the requested bytes must be writable (ASan mode: unpoisoned) */
  s->usable = hh_usable_size(p);
  FUZZ_CHECK(s->usable >= size);
  if (plain) FUZZ_CHECK(s->usable == hh_good_size(size));
  for (int i = 0; i < SLOTS; i++) {
    if (&slots[i] != s && slots[i].p != NULL) FUZZ_CHECK(!overlaps(p, s->usable, slots[i].p, slots[i].usable));
  }
  check_owner(s);
}

static void forget(slot_t* s) {
  memset(s, 0, sizeof(*s));
}

static void release(slot_t* s, int how) {
  if (s->p == NULL) return;
  check_contents(s);
  FUZZ_CHECK(hh_usable_size(s->p) == s->usable);
  switch (how % 4) {
    case 0: hh_free(s->p); break;
    case 1: hh_free_sized(s->p, s->size); break;
    case 2: hh_free_aligned_sized(s->p, s->align, s->size); break;
    default: FUZZ_CHECK(hh_realloc(s->p, 0) == NULL); break;  /* glibc: frees */
  }
  forget(s);
}

/* ---- resizing ------------------------------------------------------------------------------*/
/* s was resized to q for n bytes (owner: h if it moved). */
static void resized(slot_t* s, uint8_t* q, size_t n, size_t align, int h_if_moved) {
  FUZZ_CHECK(q != NULL);
  size_t keep = s->size < n ? s->size : n;
  FUZZ_CHECK(pattern_ok_prefix(q, keep, s->size, s->seed));
  int owner = q == s->p ? s->heap : h_if_moved;
  forget(s);
  adopt(s, q, n, align, false, owner, false);
}

static void op_realloc(reader_t* r, slot_t* s) {
  size_t n = rd_size(r);
  uint8_t sub = rd_u8(r);
  if (s->p == NULL) {  /* realloc(NULL, n) is malloc */
    if (n == 0) return;
    adopt(s, hh_realloc(NULL, n), n, 0, false, default_heap, false);
    return;
  }
  check_contents(s);
  if (n == 0) {
    FUZZ_CHECK(hh_realloc(s->p, 0) == NULL);
    forget(s);
    return;
  }
  switch (sub % 5) {
    case 0:
      resized(s, hh_realloc(s->p, n), n, 0, default_heap);
      return;
    case 1: {  /* reallocarray, with an overflowing count now and then */
      if (sub & 0x80) {
        errno = 0;
        FUZZ_CHECK(hh_reallocarray(s->p, SIZE_MAX / 2, 3) == NULL && errno == ENOMEM);
        check_contents(s);  /* untouched */
        return;
      }
      size_t count = (size_t)(sub >> 3) % 8 + 1;
      size_t each = (n + count - 1) / count;
      resized(s, hh_reallocarray(s->p, count, each), count * each, 0, default_heap);
      return;
    }
    case 2:
      resized(s, hh_reallocf(s->p, n), n, 0, default_heap);
      return;
    case 3: {
      bool valid;
      size_t align = rd_align(r, &valid);
      if (valid && align > 64 * FUZZ_KiB) align = 64 * FUZZ_KiB;
      if (!valid) {
        errno = 0;
        FUZZ_CHECK(hh_realloc_aligned(s->p, n, align) == NULL && errno == EINVAL);
        check_contents(s);
        return;
      }
      resized(s, hh_realloc_aligned(s->p, n, align), n, align, default_heap);
      return;
    }
    default: {  /* from a first-class heap: a moved block comes from that heap */
      int h = sub >> 5 & 3;
      if (heaps[h] == NULL) h = BACKING;
      resized(s, hh_heap_realloc(heap_ptr(h), s->p, n), n, 0, h);
      return;
    }
  }
}

/* ---- aligned allocation ------------------------------------------------------------------------*/
static void op_aligned(reader_t* r, slot_t* s) {
  release(s, 0);
  uint8_t sub = rd_u8(r);
  size_t n = rd_size(r);
  bool valid;
  size_t align = rd_align(r, &valid);
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  void* p = NULL;
  bool zero = false;
  size_t size = n;
  errno = 0;
  switch (sub % 9) {
    case 0: p = hh_malloc_aligned(n, align); break;
    case 1: p = hh_zalloc_aligned(n, align); zero = true; break;
    case 2: {
      size_t count = (size_t)(sub >> 4) + 1;
      size = (n / count) * count;
      p = hh_calloc_aligned(count, n / count, align);
      zero = true;
      break;
    }
    case 3: {
      int rc = hh_posix_memalign(&p, align, n);
      bool ok = valid && align % sizeof(void*) == 0;
      FUZZ_CHECK(ok ? rc == 0 : (rc == EINVAL && errno == 0));
      if (!ok) return;
      break;
    }
    case 4: p = hh_aligned_alloc(align, n); break;
    case 5: p = hh_memalign(align, n); break;
    case 6: p = hh_valloc(n); align = page; valid = true; break;
    case 7:
      p = hh_pvalloc(n);
      align = page;
      valid = true;
      size = n == 0 ? page : (n + page - 1) / page * page;
      break;
    default: {
      int h = sub >> 4 & 3;
      if (heaps[h] == NULL) h = BACKING;
      p = hh_heap_malloc_aligned(heap_ptr(h), n, align);
      if (!valid) {
        FUZZ_CHECK(p == NULL && errno == EINVAL);
        return;
      }
      adopt(s, p, n, align, false, h, false);
      return;
    }
  }
  if (!valid) {
    FUZZ_CHECK(p == NULL && errno == EINVAL);
    return;
  }
  adopt(s, p, size, align, zero, default_heap, false);
  if (sub % 9 == 7) FUZZ_CHECK(s->usable >= size);
}

/* ---- first-class heaps ---------------------------------------------------------------------------*/
typedef struct visit_s {
  int heap;
  size_t areas, blocks;
  bool bad;
} visit_t;

static bool visitor(const hh_heap_t* heap, const hh_heap_area_t* area, void* block, size_t block_size, void* arg) {
  visit_t* v = arg;
  (void)heap;
  if (block == NULL) {
    v->areas++;
    if (area->block_size == 0 || area->committed > area->reserved || area->used * area->block_size > area->committed) {
      v->bad = true;
    }
    return true;
  }
  /* exactly one live block of the model lies in it, and it is this heap's */
  int found = 0;
  for (int i = 0; i < SLOTS; i++) {
    const slot_t* s = &slots[i];
    if (s->p != NULL && (uint8_t*)block <= s->p && s->p < (uint8_t*)block + block_size) {
      found++;
      if (s->heap != v->heap) v->bad = true;
    }
  }
  if (found != 1) v->bad = true;
  v->blocks++;
  return true;
}

static void op_visit(int h) {
  visit_t v = {h, 0, 0, false};
  FUZZ_CHECK(hh_heap_visit_blocks(heap_ptr(h), true, visitor, &v));
  FUZZ_CHECK(!v.bad);
  size_t live = 0;
  for (int i = 0; i < SLOTS; i++) live += slots[i].p != NULL && slots[i].heap == h;
  FUZZ_CHECK(v.blocks == live);
}

static void op_heap(reader_t* r) {
  uint8_t sub = rd_u8(r);
  int h = (sub >> 4) & 3;
  switch (sub % 8) {
    case 0:
      if (heaps[h] == NULL) {
        heaps[h] = hh_heap_new();
        FUZZ_CHECK(heaps[h] != NULL);
      }
      return;
    case 1:  /* delete: its blocks live on in the backing heap */
      if (heaps[h] == NULL) return;
      hh_heap_delete(heaps[h]);
      heaps[h] = NULL;
      for (int i = 0; i < SLOTS; i++) {
        if (slots[i].p != NULL && slots[i].heap == h) slots[i].heap = BACKING;
      }
      if (default_heap == h) default_heap = BACKING;
      return;
    case 2:  /* destroy: its blocks are gone */
      if (heaps[h] == NULL) return;
      for (int i = 0; i < SLOTS; i++) {
        if (slots[i].p != NULL && slots[i].heap == h) {
          check_contents(&slots[i]);
          FUZZ_CHECK(hh_heap_check_owned(heaps[h], slots[i].p));
          forget(&slots[i]);
        }
      }
      hh_heap_destroy(heaps[h]);
      heaps[h] = NULL;
      if (default_heap == h) default_heap = BACKING;
      return;
    case 3: {  /* set_default */
      int target = (sub & 0x40) || heaps[h] == NULL ? BACKING : h;
      hh_heap_t* previous = hh_heap_set_default(heap_ptr(target));
      FUZZ_CHECK(previous == heap_ptr(default_heap));
      FUZZ_CHECK(hh_heap_get_default() == heap_ptr(target));
      default_heap = target;
      return;
    }
    case 4:
      op_visit(heaps[h] == NULL ? BACKING : h);
      return;
    case 5:
      hh_heap_collect(heap_ptr(heaps[h] == NULL ? BACKING : h), (sub & 0x80) != 0);
      return;
    case 6:
      FUZZ_CHECK(hh_heap_validate(heap_ptr(heaps[h] == NULL ? BACKING : h)));
      return;
    default: {  /* check_owned agrees with the model for every live block */
      int target = heaps[h] == NULL ? BACKING : h;
      for (int i = 0; i < SLOTS; i++) {
        if (slots[i].p != NULL) FUZZ_CHECK(hh_heap_check_owned(heap_ptr(target), slots[i].p) == (slots[i].heap == target));
      }
      return;
    }
  }
}

static void op_heap_alloc(reader_t* r, slot_t* s) {
  release(s, 1);
  uint8_t sub = rd_u8(r);
  int h = (sub >> 4) & 3;
  if (heaps[h] == NULL) h = BACKING;
  hh_heap_t* heap = heap_ptr(h);
  size_t n = rd_size(r);
  switch (sub % 4) {
    case 0: adopt(s, hh_heap_malloc(heap, n), n, 0, false, h, true); return;
    case 1: adopt(s, hh_heap_zalloc(heap, n), n, 0, true, h, true); return;
    case 2: {
      size_t count = (size_t)(sub >> 6) + 1;
      adopt(s, hh_heap_calloc(heap, count, n / count), (n / count) * count, 0, true, h, true);
      return;
    }
    default: {
      char str[64];
      size_t len = n % sizeof(str);
      for (size_t i = 0; i < len; i++) str[i] = (char)('a' + (rd_u8(r) % 26));
      str[len] = 0;
      char* d = hh_heap_strdup(heap, str);
      FUZZ_CHECK(d != NULL && strcmp(d, str) == 0);
      adopt(s, (uint8_t*)d, len + 1, 0, false, h, true);
      return;
    }
  }
}

/* The statistics of a quiescent single-threaded program are exact: every
 * live block of the model is counted once, at its block size (at least its
 * usable size), and the size classes add up to the totals. */
static void op_stats(uint8_t sub) {
  size_t live = 0, usable = 0;
  for (int i = 0; i < SLOTS; i++) {
    if (slots[i].p == NULL) continue;
    live++;
    usable += slots[i].usable;
  }
  hh_stats_t st;
  hh_stats_get(&st);
  FUZZ_CHECK(st.blocks_in_use == live);
  FUZZ_CHECK(st.in_use >= usable);
  FUZZ_CHECK(st.huge_in_use <= st.in_use && st.huge_count <= live);
  FUZZ_CHECK(st.in_use_peak >= st.in_use && st.blocks_in_use_peak >= st.blocks_in_use);
  FUZZ_CHECK(st.committed <= st.reserved && st.segments <= st.segments_peak);
  size_t blocks = st.huge_count, bytes = st.huge_in_use;
  hh_bin_stats_t bin;
  for (size_t b = 0; b < hh_bin_count(); b++) {
    FUZZ_CHECK(hh_bin_stats_get(b, &bin));
    FUZZ_CHECK(bin.blocks_used <= bin.blocks_capacity);
    blocks += bin.blocks_used;
    bytes += bin.bytes_used;
  }
  FUZZ_CHECK(!hh_bin_stats_get(hh_bin_count(), &bin));
  FUZZ_CHECK(blocks == st.blocks_in_use && bytes == st.in_use);
  if (sub & 0x20) {  /* the report, allocation-free, to a file nobody reads */
    int fd = open("/dev/null", O_WRONLY);
    FUZZ_CHECK(fd >= 0);
    hh_stats_print_fd(fd);
    close(fd);
  }
}

/* ---- memory options -------------------------------------------------------------------*/
static long default_purge_delay, default_segment_cache; /* as the process started */

static void op_memory_option(uint8_t op) {
  static const long delays[4] = {0, 1, 10, 3600L * 1000};  /* ms: now, soon, the default, never */
  if (op & 0x10) FUZZ_CHECK(hh_option_set(hh_option_segment_cache, (op >> 6) * 2));  /* 0, 2, 4, 6 */
  else FUZZ_CHECK(hh_option_set(hh_option_purge_delay, delays[op >> 6]));
}

static void restore_memory_options(void) {
  FUZZ_CHECK(hh_option_set(hh_option_purge_delay, default_purge_delay));
  FUZZ_CHECK(hh_option_set(hh_option_segment_cache, default_segment_cache));
}

/* ---- the program ------------------------------------------------------------------------------------*/
static void run_op(reader_t* r) {
  uint8_t op = rd_u8(r);
  slot_t* s = &slots[rd_u8(r) % SLOTS];
  switch (op % 16) {
    case 0: case 1: {  /* malloc */
      release(s, op >> 4);
      size_t n = rd_size(r);
      adopt(s, hh_malloc(n), n, 0, false, default_heap, true);
      return;
    }
    case 2: {
      release(s, op >> 4);
      size_t n = rd_size(r);
      adopt(s, hh_zalloc(n), n, 0, true, default_heap, true);
      return;
    }
    case 3: {
      release(s, op >> 4);
      size_t count = (size_t)rd_u8(r) % 16 + 1;
      size_t n = rd_size(r) / count;
      adopt(s, hh_calloc(count, n), count * n, 0, true, default_heap, true);
      return;
    }
    case 4: case 5:
      op_realloc(r, s);
      return;
    case 6:
      op_aligned(r, s);
      return;
    case 7: case 8:
      release(s, op >> 4);
      return;
    case 9: {  /* usable_size: consistent, and then all of it is the program's */
      if (s->p == NULL) return;
      size_t u = hh_usable_size(s->p);
      FUZZ_CHECK(u == s->usable);
      check_contents(s);
      s->size = u;
      pattern_fill(s->p, u, s->seed);
      return;
    }
    case 10:
      op_heap(r);
      return;
    case 11:
      op_heap_alloc(r, s);
      return;
    case 12: {  /* strings */
      release(s, op >> 4);
      char str[80];
      size_t len = rd_u8(r) % sizeof(str);
      for (size_t i = 0; i < len; i++) str[i] = (char)(' ' + rd_u8(r) % 95);
      str[len] = 0;
      if (op & 0x10) {
        size_t n = rd_u8(r) % 100;
        char* d = hh_strndup(str, n);
        size_t want = n < len ? n : len;
        FUZZ_CHECK(d != NULL && strlen(d) == want && memcmp(d, str, want) == 0);
        adopt(s, (uint8_t*)d, want + 1, 0, false, default_heap, true);
      } else {
        char* d = hh_strdup(str);
        FUZZ_CHECK(d != NULL && strcmp(d, str) == 0);
        adopt(s, (uint8_t*)d, len + 1, 0, false, default_heap, true);
      }
      return;
    }
    case 13:
      if (op & 0x20) op_memory_option(op);
      else hh_collect((op & 0x10) != 0);
      return;
    case 14: {  /* sizes and impossible requests */
      size_t n = rd_size(r);
      FUZZ_CHECK(hh_good_size(n) >= n);
      errno = 0;
      FUZZ_CHECK(hh_malloc(SIZE_MAX - (op >> 4)) == NULL && errno == ENOMEM);
      errno = 0;
      FUZZ_CHECK(hh_calloc(SIZE_MAX / 2, 3) == NULL && errno == ENOMEM);
      errno = 0;
      volatile size_t not_a_power = 48;  /* volatile: the compiler would refuse it */
      FUZZ_CHECK(hh_malloc_aligned(n, not_a_power) == NULL && errno == EINVAL);
      FUZZ_CHECK(hh_usable_size(NULL) == 0);
      hh_free(NULL);
      return;
    }
    default:
      if (op & 0x10) op_stats(op);
      else FUZZ_CHECK(hh_heap_validate(NULL));
      return;
  }
}

static void validate_all(void) {
  FUZZ_CHECK(hh_heap_validate(NULL));
  FUZZ_CHECK(hh_heap_validate(hh_heap_get_backing()));
  for (int h = 0; h < HEAPS; h++) {
    if (heaps[h] != NULL) FUZZ_CHECK(hh_heap_validate(heaps[h]));
  }
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static bool installed;
  if (!installed) {
    hh_set_misuse_handler(trap_on_misuse, NULL);
    default_purge_delay = hh_option_get(hh_option_purge_delay);
    default_segment_cache = hh_option_get(hh_option_segment_cache);
    installed = true;
  }
  reader_t r = {data, size};
  while (r.left > 0) run_op(&r);
  validate_all();
  /* leave nothing behind: the next input starts from an empty model */
  for (int i = 0; i < SLOTS; i++) release(&slots[i], i);
  for (int h = 0; h < HEAPS; h++) {
    if (heaps[h] == NULL) continue;
    if (h & 1) hh_heap_destroy(heaps[h]);
    else hh_heap_delete(heaps[h]);
    heaps[h] = NULL;
  }
  default_heap = BACKING;
  FUZZ_CHECK(hh_heap_get_default() == hh_heap_get_backing());
  restore_memory_options();
  validate_all();
  return 0;
}
