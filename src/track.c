/* hardheap: the tracking modes (track.h says what each hook means and what
 * a checker is told).
 *
 *   asan      AddressSanitizer's public poisoning interface: handed-out
 *             bytes addressable, slack and free blocks poisoned (but the
 *             link word), shadow of unmapped segments cleared, segments
 *             registered as LeakSanitizer root regions.
 *   valgrind  memcheck client requests: MALLOCLIKE/FREELIKE/RESIZEINPLACE
 *             blocks, NOACCESS slack and free blocks (but the link word),
 *             segment metadata hidden from the leak scan, misuse reports
 *             forwarded. Memcheck wants a block's exact current size to
 *             resize it and hardheap does not keep requested sizes, so this
 *             mode keeps them in a side table (pointer -> size), which also
 *             finds the blocks of a heap being destroyed.
 *
 * Built without a mode, this file is empty. */
#include "internal.h"

#if HH_TRACK_MODE == 1 /* ---------------------------------------------------- asan */

#include <pthread.h>
#include <sanitizer/asan_interface.h>
#include <sanitizer/lsan_interface.h>
#include <sys/mman.h>

static void poison(const void* p, size_t n) {
  if (n != 0) __asan_poison_memory_region(p, n);
}

static void unpoison(const void* p, size_t n) {
  if (n != 0) __asan_unpoison_memory_region(p, n);
}

/* A block that is free: all of it but its link word. */
static void poison_free_block(const uint8_t* block, size_t block_size) {
  poison(block + HH_TRACK_LINK_BYTES, block_size - HH_TRACK_LINK_BYTES);
  unpoison(block, HH_TRACK_LINK_BYTES);
}

void hhi_track_malloc_impl(const void* p, size_t size, size_t usable, bool zero) {
  (void)zero;
  /* in this order: unpoisoning leaves a partial last granule as it finds
   * it, poisoning the slack then trims it to exactly size */
  unpoison(p, size);
  poison((const uint8_t*)p + size, usable - size);
}

void hhi_track_free_impl(const void* p, const void* block, size_t block_size) {
  (void)p;
  poison_free_block(block, block_size);
}

void hhi_track_resize_impl(const void* p, size_t old_size, size_t new_size) {
  unpoison(p, new_size);
  if (new_size < old_size) poison((const uint8_t*)p + new_size, old_size - new_size);
}

void hhi_track_usable_impl(const void* p, size_t usable) {
  unpoison(p, usable);
}

void hhi_track_hand_out_impl(const void* block, size_t block_size, bool zero) {
  /* cleared whole (then trimmed by hhi_track_malloc), or at least its link
   * word; a single block's first word may lie where an earlier layout of
   * the memory had poisoned it */
  unpoison(block, zero ? block_size : HH_TRACK_LINK_BYTES);
}

void hhi_track_extend_impl(const uint8_t* page_start, uint32_t capacity, size_t count, size_t block_size,
                           uint32_t reserved) {
  /* a new page: none of it is addressable, whatever its slot held before
   * (another class, a span, an unmapped segment's shadow) */
  if (capacity == 0) poison(page_start, (size_t)reserved * block_size);
  const uint8_t* first = page_start + (size_t)capacity * block_size;
  for (size_t i = 0; i < count; i++) poison_free_block(first + i * block_size, block_size);
}

static void destroy_page(const hh_page_t* page) {
  for (uint32_t i = 0; i < page->capacity; i++) {
    poison_free_block(page->page_start + (size_t)i * page->block_size, page->block_size);
  }
}

void hhi_track_heap_destroy_impl(hh_heap_t* heap) {
  for (size_t bin = 0; bin < HH_BIN_COUNT; bin++) {
    for (const hh_page_t* page = heap->pages[bin].first; page != NULL; page = page->next) destroy_page(page);
  }
  hhi_singles_lock(heap);
  for (const hh_page_t* page = heap->singles; page != NULL; page = page->next) destroy_page(page);
  hhi_singles_unlock(heap);
}

/* LSan's root-region list has a lock of its own that fork does not know
 * about: a child forked while another thread registers a segment would wait
 * on it for ever when it maps one. Ours is held across fork. */
static pthread_mutex_t root_regions_lock = PTHREAD_MUTEX_INITIALIZER;
static void root_regions_lock_acquire(void) { pthread_mutex_lock(&root_regions_lock); }
static void root_regions_lock_release(void) { pthread_mutex_unlock(&root_regions_lock); }

__attribute__((constructor)) static void root_regions_atfork(void) {
  pthread_atfork(root_regions_lock_acquire, root_regions_lock_release, root_regions_lock_release);
}

void hhi_track_segment_map_impl(const void* segment, size_t info_size, size_t size) {
  (void)info_size;
  root_regions_lock_acquire();
  __lsan_register_root_region(segment, size);
  root_regions_lock_release();
}

/* Forget the poisoning of [p, p + n): ASan keeps the shadow of unmapped
 * memory, which a later mapping at the same address would inherit. The
 * whole pages of shadow are given back to the OS (they read as zero,
 * unpoisoned, as ASan's own allocator does it) rather than cleared: with
 * segments at random addresses, clearing would keep shadow resident for
 * every address a segment ever had. */
static void forget_shadow(const void* p, size_t n) {
  size_t scale, offset;
  __asan_get_shadow_mapping(&scale, &offset);
  uintptr_t page = hhi_os_page_size();
  uintptr_t beg = ((uintptr_t)p >> scale) + offset;
  uintptr_t end = (((uintptr_t)p + n) >> scale) + offset;
  uintptr_t a = (beg + page - 1) & ~(page - 1), b = end & ~(page - 1);
  if (a >= b) {
    unpoison(p, n);
    return;
  }
  const uint8_t* app_a = (const uint8_t*)((a - offset) << scale);
  const uint8_t* app_b = (const uint8_t*)((b - offset) << scale);
  unpoison(p, (size_t)(app_a - (const uint8_t*)p));
  if (madvise((void*)a, b - a, MADV_DONTNEED) != 0) unpoison(app_a, (size_t)(app_b - app_a));
  unpoison(app_b, (size_t)((const uint8_t*)p + n - app_b));
}

void hhi_track_segment_unmap_impl(const void* segment, size_t info_size, size_t size) {
  (void)info_size;
  root_regions_lock_acquire();
  __lsan_unregister_root_region(segment, size);
  root_regions_lock_release();
  forget_shadow(segment, size);
}

void hhi_track_misuse_impl(const hh_misuse_info_t* facts) {
  (void)facts;  /* hardheap's own report (and handler) is all there is */
}

#elif HH_TRACK_MODE == 2 /* ---------------------------------------------- valgrind */

#include <pthread.h>
#include <sys/mman.h>
#include <valgrind/memcheck.h>

/* ---- the side table: requested size of every block handed out ----------------
 * Open addressing keyed by the pointer handed out. Keys are stored XORed
 * with a constant so that the leak scan, which reads this mapping like any
 * other, does not take them for pointers to the blocks. One lock: under
 * Valgrind threads run one at a time anyway. */
#define KEY_SCRAMBLE ((uintptr_t)0xa5a5000000000000ull)
#define KEY_EMPTY ((uintptr_t)0)
#define KEY_DELETED ((uintptr_t)1)

typedef struct entry_s {
  uintptr_t key;  /* p ^ KEY_SCRAMBLE, or EMPTY / DELETED */
  size_t size;    /* bytes the program may use at p */
} entry_t;

static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static entry_t* table;
static size_t table_cap;      /* power of two, 0 before the first block */
static size_t table_used;     /* live entries */
static size_t table_deleted;  /* tombstones */

static void table_lock_acquire(void) { pthread_mutex_lock(&table_lock); }
static void table_lock_release(void) { pthread_mutex_unlock(&table_lock); }

/* fork: the child must not inherit a held lock */
__attribute__((constructor)) static void table_atfork(void) {
  pthread_atfork(table_lock_acquire, table_lock_release, table_lock_release);
}

static size_t slot_of(uintptr_t key, size_t cap) {
  return (size_t)(((key >> 4) * UINT64_C(0x9E3779B97F4A7C15)) >> 20) & (cap - 1);
}

static entry_t* table_find(const void* p) {
  if (table_cap == 0) return NULL;
  uintptr_t key = (uintptr_t)p ^ KEY_SCRAMBLE;
  for (size_t i = slot_of(key, table_cap), n = 0; n < table_cap; i = (i + 1) & (table_cap - 1), n++) {
    if (table[i].key == key) return &table[i];
    if (table[i].key == KEY_EMPTY) return NULL;
  }
  return NULL;
}

static void table_put_raw(entry_t* t, size_t cap, uintptr_t key, size_t size) {
  size_t i = slot_of(key, cap);
  while (t[i].key != KEY_EMPTY && t[i].key != KEY_DELETED && t[i].key != key) i = (i + 1) & (cap - 1);
  t[i].key = key;
  t[i].size = size;
}

static bool table_grow(void) {
  size_t cap = table_cap == 0 ? 4096 : (table_used * 4 > table_cap ? table_cap * 2 : table_cap);
  entry_t* t = mmap(NULL, cap * sizeof(entry_t), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (t == MAP_FAILED) return false;
  for (size_t i = 0; i < table_cap; i++) {
    if (table[i].key != KEY_EMPTY && table[i].key != KEY_DELETED) table_put_raw(t, cap, table[i].key, table[i].size);
  }
  if (table != NULL) munmap(table, table_cap * sizeof(entry_t));
  table = t;
  table_cap = cap;
  table_deleted = 0;
  return true;
}

static void table_put(const void* p, size_t size) {
  if ((table_used + table_deleted + 1) * 2 > table_cap && !table_grow()) return;  /* resize then misses it */
  uintptr_t key = (uintptr_t)p ^ KEY_SCRAMBLE;
  entry_t* e = table_find(p);
  if (e != NULL) {
    e->size = size;  /* handed out again without a free we saw (a double free at level 0) */
    return;
  }
  size_t i = slot_of(key, table_cap);
  while (table[i].key != KEY_EMPTY && table[i].key != KEY_DELETED) i = (i + 1) & (table_cap - 1);
  if (table[i].key == KEY_DELETED) table_deleted--;
  table[i].key = key;
  table[i].size = size;
  table_used++;
}

static void table_remove(entry_t* e) {
  e->key = KEY_DELETED;
  table_used--;
  table_deleted++;
}

/* The block holding p (a pointer into a live segment) and its size. */
static bool block_of(const void* p, const uint8_t** block, size_t* block_size, const hh_page_t** ppage) {
  hh_segment_t* segment;
  if (!hhi_lookup_segment(p, &segment)) return false;
  const hh_page_t* page = hhi_lookup_page(segment, p);
  if (!page->segment_in_use || page->block_size == 0 || (const uint8_t*)p < page->page_start) return false;
  *block = (const uint8_t*)hhi_page_block_of(page, p);
  *block_size = page->block_size;
  *ppage = page;
  return true;
}

/* A block that is free: all of it but its link word. */
static void noaccess_free_block(const uint8_t* block, size_t block_size) {
  VALGRIND_MAKE_MEM_NOACCESS(block + HH_TRACK_LINK_BYTES, block_size - HH_TRACK_LINK_BYTES);
  VALGRIND_MAKE_MEM_UNDEFINED(block, HH_TRACK_LINK_BYTES);
}

void hhi_track_malloc_impl(const void* p, size_t size, size_t usable, bool zero) {
  table_lock_acquire();
  table_put(p, size);
  table_lock_release();
  VALGRIND_MALLOCLIKE_BLOCK(p, size, 0, zero);
  if (usable > size) VALGRIND_MAKE_MEM_NOACCESS((const uint8_t*)p + size, usable - size);
}

void hhi_track_free_impl(const void* p, const void* block, size_t block_size) {
  table_lock_acquire();
  entry_t* e = table_find(p);
  if (e != NULL) table_remove(e);
  table_lock_release();
  VALGRIND_FREELIKE_BLOCK(p, 0);  /* memcheck reports it if p is not a live block */
  noaccess_free_block(block, block_size);
}

/* Resize the tracked block at p to new_size, from the size memcheck has. */
static void resize_to(const void* p, size_t new_size) {
  table_lock_acquire();
  entry_t* e = table_find(p);
  size_t old_size = e != NULL ? e->size : new_size;
  if (e != NULL) e->size = new_size;
  table_lock_release();
  if (e != NULL && old_size != new_size) VALGRIND_RESIZEINPLACE_BLOCK(p, old_size, new_size, 0);
}

void hhi_track_resize_impl(const void* p, size_t old_size, size_t new_size) {
  resize_to(p, new_size);
  if (new_size < old_size) VALGRIND_MAKE_MEM_NOACCESS((const uint8_t*)p + new_size, old_size - new_size);
}

void hhi_track_usable_impl(const void* p, size_t usable) {
  table_lock_acquire();
  entry_t* e = table_find(p);
  bool grow = e != NULL && e->size < usable;
  table_lock_release();
  if (grow) resize_to(p, usable);
}

void hhi_track_hand_out_impl(const void* block, size_t block_size, bool zero) {
  /* about to be cleared whole, or at least its link word (see asan) */
  VALGRIND_MAKE_MEM_UNDEFINED(block, zero ? block_size : HH_TRACK_LINK_BYTES);
}

void hhi_track_extend_impl(const uint8_t* page_start, uint32_t capacity, size_t count, size_t block_size,
                           uint32_t reserved) {
  if (capacity == 0) VALGRIND_MAKE_MEM_NOACCESS(page_start, (size_t)reserved * block_size);
  const uint8_t* first = page_start + (size_t)capacity * block_size;
  for (size_t i = 0; i < count; i++) noaccess_free_block(first + i * block_size, block_size);
}

void hhi_track_heap_destroy_impl(hh_heap_t* heap) {
  table_lock_acquire();
  for (size_t i = 0; i < table_cap; i++) {
    uintptr_t key = table[i].key;
    if (key == KEY_EMPTY || key == KEY_DELETED) continue;
    const void* p = (const void*)(key ^ KEY_SCRAMBLE);
    const uint8_t* block;
    size_t block_size;
    const hh_page_t* page;
    if (!block_of(p, &block, &block_size, &page)) continue;
    if (atomic_load_explicit(&((hh_page_t*)page)->heap, memory_order_relaxed) != heap) continue;
    table_remove(&table[i]);
    VALGRIND_FREELIKE_BLOCK(p, 0);
    noaccess_free_block(block, block_size);
  }
  table_lock_release();
}

void hhi_track_segment_map_impl(const void* segment, size_t info_size, size_t size) {
  (void)size;
  /* the page descriptors hold the address of each page's first block (and
   * of every large block): the leak scan must not count those */
  VALGRIND_DISABLE_ADDR_ERROR_REPORTING_IN_RANGE(segment, info_size);
}

void hhi_track_segment_unmap_impl(const void* segment, size_t info_size, size_t size) {
  (void)size;
  VALGRIND_ENABLE_ADDR_ERROR_REPORTING_IN_RANGE(segment, info_size);
}

void hhi_track_misuse_impl(const hh_misuse_info_t* facts) {
  if (facts->pointer == NULL) return;
  switch (facts->kind) {
    case HH_MISUSE_FOREIGN_POINTER:
    case HH_MISUSE_SEGMENT_CORRUPTED:
    case HH_MISUSE_FREE_PAGE:
    case HH_MISUSE_NOT_A_BLOCK:
    case HH_MISUSE_INTERIOR_POINTER:
    case HH_MISUSE_DOUBLE_FREE:
    case HH_MISUSE_REALLOC_FREED:
      /* not a live block to memcheck either: it reports an invalid free
       * (with what it knows of the address) and changes nothing */
      if (strcmp(facts->operation, "usable_size") == 0) {
        (void)VALGRIND_CHECK_MEM_IS_ADDRESSABLE(facts->pointer, 1);
      } else {
        VALGRIND_FREELIKE_BLOCK(facts->pointer, 0);
      }
      return;
    case HH_MISUSE_USABLE_SIZE_FREED:
      (void)VALGRIND_CHECK_MEM_IS_ADDRESSABLE(facts->pointer, 1);
      return;
    default:
      return;
  }
}

#else /* ------------------------------------------------------------------- none */

typedef int hhi_track_none_t;  /* a translation unit may not be empty */

#endif
