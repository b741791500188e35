/* hardheap: the allocation entry points and the generic (slow) path.
 *
 * hh_malloc of up to 1 KiB is: load the thread's heap, load the direct page
 * for the size, pop its free list, one test, count the block for the
 * statistics (19 instructions in the fast build, ret included). Larger sizes look at the first page of their size
 * class before falling back to the generic path, which is also the
 * heartbeat that folds deferred work in (delayed frees, retired pages,
 * purging). */
#include "internal.h"

/* ---- the generic path --------------------------------------------------------
 * Sizes: `size` is what the program asked for; the block must hold
 * hhi_block_need(size) (the canary's minimum added with HH_CANARY). */

/* A page of heap with a free block of need bytes, after the heartbeat's
 * housekeeping; NULL (errno ENOMEM) when out of memory. heap is initialised
 * first if it is the empty placeholder. */
static inline __attribute__((always_inline)) hh_page_t* page_generic(hh_heap_t** pheap, size_t need,
                                                                    size_t alignment) {
  hh_heap_t* heap = *pheap;
  if (hh_unlikely(!hhi_heap_is_initialized(heap))) {
    heap = hhi_heap_thread_init();
    if (heap == NULL) {
      errno = ENOMEM;
      return NULL;
    }
    *pheap = heap;
  }
  hhi_purger_maybe_start();  /* first: nothing is held here, and starting it may allocate */
  hh_tld_t* tld = heap->tld;
  tld->heartbeat++;
  if (hh_unlikely(heap->alloc_count >= HH_STATS_FLUSH_BLOCKS || heap->alloc_bytes >= HH_STATS_FLUSH_BYTES)) {
    hhi_heap_stats_flush(heap);  /* not every time: the process totals are shared cache lines */
  }
  if (atomic_load_explicit(&heap->thread_delayed_free, memory_order_relaxed) != NULL) hhi_heap_delayed_free_all(heap);
  if (heap->retired_count != 0 && tld->heartbeat >= heap->retired_check) hhi_page_collect_retired(heap, false, false);
  if ((tld->heartbeat & 63) == 0) {
    hhi_tld_collect(tld, false);
    hhi_heap_deferred_free(heap, false);
  }

  hh_page_t* page = hhi_page_find(heap, need, alignment);
  if (hh_unlikely(page == NULL)) {
    hh_heap_collect(heap, true);
    page = hhi_page_find(heap, need, alignment);
    if (page == NULL) {
      errno = ENOMEM;
      return NULL;
    }
  }
  return page;
}

/* The block of a page the generic path found: a single-block page has no
 * free list to pop. */
static inline hh_block_t* page_take(hh_page_t* page) {
  if (page->block_recip == 0) return hhi_page_take_single(page);
  return hhi_page_pop(page);
}

hh_noinline void* hhi_malloc_generic(hh_heap_t* heap, size_t size, bool zero, size_t alignment) {
  if (hh_unlikely(size > HH_MAX_ALLOC_SIZE)) {
    errno = ENOMEM;
    return NULL;
  }
  for (;;) {
    hh_page_t* page = page_generic(&heap, hhi_block_need(size), alignment);
    if (page == NULL) return NULL;
    hh_block_t* block = page_take(page);
    /* NULL: a corrupted free list, reported and cut (HH_BLOCK_BITMAPS) */
    if (hh_likely(block != NULL)) {
      hhi_heap_count_alloc(heap, page->block_size);
      return hhi_block_hand_out(page, block, block, size, zero);
    }
  }
}

/* ---- fast paths ---------------------------------------------------------------*/
/* count * size, or false with errno ENOMEM when it overflows. */
static inline bool array_size(size_t count, size_t size, size_t* total) {
  if (hh_likely(!hhi_mul_overflow(count, size, total))) return true;
  errno = ENOMEM;
  return false;
}

/* The head of page's list failed its check: report, cut, allocate elsewhere. */
static void* malloc_aligned_counted(hh_heap_t* heap, size_t size, size_t alignment, bool zero);

/* The page's head was not a free block (reported, the list cut): serve
 * the request elsewhere, with the alignment it asked for (the aligned fast
 * path comes here too: a misuse handler that goes on got a misaligned
 * block, found by fuzz/misuse). */
static hh_noinline void* malloc_bad_head(hh_heap_t* heap, hh_page_t* page, size_t size, bool zero,
                                         size_t alignment) {
  (void)hhi_page_pop_bad(page);
  if (alignment > HH_MIN_ALIGN) return malloc_aligned_counted(heap, size, alignment, zero);
  return hhi_malloc_generic(heap, size, zero, 0);
}

/* ---- guarded samples (HH_GUARDED) -------------------------------------------
 * Every allocation of an initialised heap counts down heap's
 * guarded_countdown once; at 0 the request may go to guarded.c instead. */
static inline bool sample_due(hh_heap_t* heap) {
  return HH_GUARDED && hh_unlikely(--heap->guarded_countdown == 0);
}

/* A guarded block for the request, or NULL to allocate it normally. */
static hh_noinline void* malloc_sampled(hh_heap_t* heap, size_t size, bool zero, size_t alignment) {
  void* p = hhi_guarded_malloc(heap, size, zero, alignment);
  if (p != NULL) hhi_guarded_fault_arm();
  return p;
}

/* The generic path for a request not counted yet. */
static hh_noinline void* malloc_generic_counted(hh_heap_t* heap, size_t size, bool zero, size_t alignment) {
  if (HH_GUARDED && hhi_heap_is_initialized(heap) && sample_due(heap)) {
    void* p = malloc_sampled(heap, size, zero, alignment);
    if (p != NULL) return p;
  }
  return hhi_malloc_generic(heap, size, zero, 0);  /* alignment <= 16 here: every block has it */
}

/* Counted and declined: the page's head may have changed meanwhile (taking
 * the stacks can allocate), so the generic path looks again. */
static hh_noinline void* malloc_sample_or_generic(hh_heap_t* heap, size_t size, bool zero, size_t alignment) {
  void* p = malloc_sampled(heap, size, zero, alignment);
  if (p != NULL) return p;
  if (alignment > HH_MIN_ALIGN) return malloc_aligned_counted(heap, size, alignment, zero);
  return hhi_malloc_generic(heap, size, zero, 0);  /* every block is aligned to 16 */
}

/* alignment: what the caller asked for (a sample must honour it); 0 = the
 * default alignment. */
static inline void* page_malloc_aligned(hh_heap_t* heap, hh_page_t* page, size_t size, bool zero,
                                        size_t alignment) {
  hh_block_t* block = page->free;
  if (hh_unlikely(block == NULL)) return malloc_generic_counted(heap, size, zero, alignment);
  /* only a real heap has a page with a free block: the countdown is writable */
  if (sample_due(heap)) return malloc_sample_or_generic(heap, size, zero, alignment);
  if (hh_unlikely(!hhi_page_head_ok(page, block))) return malloc_bad_head(heap, page, size, zero, alignment);
  hhi_page_take(page, block);
  hhi_heap_count_alloc(heap, page->block_size);
  return hhi_block_hand_out(page, block, block, size, zero);
}

static inline void* page_malloc(hh_heap_t* heap, hh_page_t* page, size_t size, bool zero) {
  return page_malloc_aligned(heap, page, size, zero, 0);
}

/* Sizes whose block comes from pages_direct (with the canary's minimum). */
#define HH_DIRECT_SIZE_MAX (HH_SMALL_SIZE_MAX - (HH_CANARY ? HH_CANARY_MIN : 0))

/* Above that: the first page of the size class, else the generic path. */
static hh_noinline void* heap_malloc_medium(hh_heap_t* heap, size_t size, bool zero) {
  if (size <= HH_MEDIUM_OBJ_SIZE_MAX) {
    size_t need = hhi_block_need(size);
    if (need <= HH_MEDIUM_OBJ_SIZE_MAX) {
      hh_page_t* page = heap->pages[hhi_bin(need)].first;
      if (page != NULL) return page_malloc(heap, page, size, zero);
    }
  }
  return malloc_generic_counted(heap, size, zero, 0);
}

static inline void* heap_malloc(hh_heap_t* heap, size_t size, bool zero) {
  if (hh_likely(size <= HH_DIRECT_SIZE_MAX)) {
    return page_malloc(heap, heap->pages_direct[hhi_wsize_of(hhi_block_need(size))], size, zero);
  }
  return heap_malloc_medium(heap, size, zero);
}

/* heap_malloc for an explicit alignment of at most 16, which a sample must
 * keep too (GUARDED_PRECISE drops only the default alignment). */
static inline void* heap_malloc_min_aligned(hh_heap_t* heap, size_t size, bool zero, size_t alignment) {
  if (HH_GUARDED && size <= HH_DIRECT_SIZE_MAX) {
    return page_malloc_aligned(heap, heap->pages_direct[hhi_wsize_of(hhi_block_need(size))], size, zero, alignment);
  }
  return heap_malloc(heap, size, zero);
}

void* hh_malloc(size_t size) {
  return heap_malloc(hhi_get_default_heap(), size, false);
}

void* hh_zalloc(size_t size) {
  return heap_malloc(hhi_get_default_heap(), size, true);
}

void* hh_calloc(size_t count, size_t size) {
  size_t total;
  if (!array_size(count, size, &total)) return NULL;
  return heap_malloc(hhi_get_default_heap(), total, true);
}

/* ---- aligned allocation ---------------------------------------------------------*/
/* Take a block of at least need bytes (not handed out yet); *ppage gets its page. */
static hh_block_t* heap_take(hh_heap_t* heap, size_t need, hh_page_t** ppage) {
  hh_page_t* page = NULL;
  if (need <= HH_SMALL_SIZE_MAX) page = heap->pages_direct[hhi_wsize_of(need)];
  else if (need <= HH_MEDIUM_OBJ_SIZE_MAX) page = heap->pages[hhi_bin(need)].first;
  for (;;) {
    if (page == NULL || page->free == NULL) {
      page = page_generic(&heap, need, 0);
      if (page == NULL) return NULL;
    }
    hh_block_t* block = page_take(page);
    if (hh_likely(block != NULL)) {
      hhi_heap_count_alloc(heap, page->block_size);
      *ppage = page;
      return block;
    }
    page = NULL;  /* a corrupted list was cut: find another page */
  }
}

/* The alignment every large block has: a span's start (64 KiB), or with
 * guards only a page, since the block then ends at its guard (span.c). */
static size_t large_block_alignment(void) {
  return HH_GUARD_LARGE ? hhi_os_page_size() : HH_SPAN_SLICE_SIZE;
}

/* An aligned request, already counted for sampling (alignment > 16). */
static void* malloc_aligned_counted(hh_heap_t* heap, size_t size, size_t alignment, bool zero) {
  if (alignment > HH_SEGMENT_SIZE / 2) {
    /* a huge segment whose single block starts at an aligned address */
    return hhi_malloc_generic(heap, size == 0 ? 1 : size, zero, alignment);
  }
  if (alignment > large_block_alignment() && size <= HH_LARGE_OBJ_SIZE_MAX &&
      size + alignment - 1 > HH_MEDIUM_OBJ_SIZE_MAX) {
    /* a large block placed aligned in its span: an aligned address inside
     * an over-allocated one could lie past the slice the block starts in,
     * where no pointer finds its page */
    return hhi_malloc_generic(heap, size == 0 ? 1 : size, zero, alignment);
  }
  /* Over-allocate and hand out the aligned address inside the block; free
   * finds the block start again because the page is marked. */
  hh_page_t* page;
  hh_block_t* block = heap_take(heap, hhi_block_need(size + alignment - 1), &page);
  if (block == NULL) return NULL;
  uint8_t* aligned = (uint8_t*)hhi_align_up((uintptr_t)block, alignment);
  if (aligned != (uint8_t*)block) hhi_page_flags_set(page, HH_PAGE_HAS_ALIGNED);
  return hhi_block_hand_out(page, block, aligned, size, zero);
}

static void* heap_malloc_aligned(hh_heap_t* heap, size_t size, size_t alignment, bool zero) {
  if (hh_unlikely(!hhi_is_power_of_two(alignment))) {
    errno = EINVAL;
    return NULL;
  }
  if (hh_unlikely(size > HH_MAX_ALLOC_SIZE || alignment > HH_MAX_ALLOC_SIZE)) {
    errno = ENOMEM;
    return NULL;
  }
  if (alignment <= HH_MIN_ALIGN) return heap_malloc_min_aligned(heap, size, zero, alignment);

  /* Often the next block of the size class is aligned already: blocks of a
   * power-of-two size sit at multiples of their size. */
  if (size <= HH_DIRECT_SIZE_MAX) {
    hh_page_t* page = heap->pages_direct[hhi_wsize_of(hhi_block_need(size))];
    if (page->free != NULL && ((uintptr_t)page->free & (alignment - 1)) == 0) {
      return page_malloc_aligned(heap, page, size, zero, alignment);
    }
  }
  if (HH_GUARDED && hhi_heap_is_initialized(heap) && sample_due(heap)) {
    void* p = malloc_sampled(heap, size, zero, alignment);
    if (p != NULL) return p;
  }
  return malloc_aligned_counted(heap, size, alignment, zero);
}

void* hh_malloc_aligned(size_t size, size_t alignment) {
  return heap_malloc_aligned(hhi_get_default_heap(), size, alignment, false);
}

void* hh_zalloc_aligned(size_t size, size_t alignment) {
  return heap_malloc_aligned(hhi_get_default_heap(), size, alignment, true);
}

void* hh_calloc_aligned(size_t count, size_t size, size_t alignment) {
  size_t total;
  if (!array_size(count, size, &total)) return NULL;
  return heap_malloc_aligned(hhi_get_default_heap(), total, alignment, true);
}

int hh_posix_memalign(void** out, size_t alignment, size_t size) {
  if (out == NULL || !hhi_is_power_of_two(alignment) || alignment % sizeof(void*) != 0) return EINVAL;
  int saved_errno = errno;
  void* p = hh_malloc_aligned(size, alignment);
  if (p == NULL) {
    int err = errno;
    errno = saved_errno;
    return err == EINVAL ? EINVAL : ENOMEM;
  }
  *out = p;
  return 0;
}

void* hh_aligned_alloc(size_t alignment, size_t size) {
  return hh_malloc_aligned(size, alignment);
}

void* hh_memalign(size_t alignment, size_t size) {
  return hh_malloc_aligned(size, alignment);
}

void* hh_valloc(size_t size) {
  return hh_malloc_aligned(size, hhi_os_page_size());
}

void* hh_pvalloc(size_t size) {
  size_t ps = hhi_os_page_size();
  if (size > HH_MAX_ALLOC_SIZE) {
    errno = ENOMEM;
    return NULL;
  }
  size_t rounded = size == 0 ? ps : hhi_align_up(size, ps);
  return hh_malloc_aligned(rounded, ps);
}

/* ---- reallocation ----------------------------------------------------------------*/
static void* heap_alloc_like(hh_heap_t* heap, size_t size, size_t alignment) {
  return alignment == 0 ? heap_malloc(heap, size, false) : heap_malloc_aligned(heap, size, alignment, false);
}

/* Resize p (alignment 0: any). Returns p itself when the new size fits its
 * block and does not waste more than half of it. */
static void* heap_realloc(hh_heap_t* heap, void* p, size_t newsize, size_t alignment) {
  if (p == NULL) return heap_alloc_like(heap, newsize, alignment);
  if (newsize == 0) {  /* glibc: free and return NULL */
    hh_free(p);
    return NULL;
  }
  hh_block_ref_t ref;
  if (!hhi_block_lookup(p, HH_OP_REALLOC, &ref)) {
    errno = EINVAL;
    return NULL;
  }
  if (HH_GUARDED && ref.page == NULL) {
    /* a guarded block always moves: its old address faults from now on */
    size_t requested = hhi_guarded_usable_size(&ref);
    void* q = heap_alloc_like(heap, newsize, alignment);
    if (q == NULL) return NULL;
    memcpy(q, p, requested < newsize ? requested : newsize);
    hhi_free_ref(&ref, p);
    return q;
  }
  if (!hhi_canary_check(ref.page, ref.block, p, HH_OP_REALLOC)) {
    errno = EINVAL;  /* going on: the damaged block is left alone */
    return NULL;
  }
  size_t usable = hhi_block_usable_size(&ref, p, HH_OP_REALLOC);
  size_t offset = (size_t)((uint8_t*)p - (uint8_t*)ref.block);
  bool aligned_ok = alignment == 0 || ((uintptr_t)p & (alignment - 1)) == 0;
  bool in_place = false;
  if (hhi_segment_kind_is_single(ref.segment->kind)) {
    /* a block with a page of its own grows and shrinks in place */
    in_place = aligned_ok && offset == 0 && newsize <= HH_MAX_ALLOC_SIZE &&
               hhi_single_resize(ref.page, hhi_block_need(newsize));
  } else {
    size_t capacity = hhi_block_capacity(&ref, p);
    in_place = aligned_ok && newsize <= capacity && newsize >= capacity / 2;
  }
  if (in_place) {
    if (HH_CANARY) hhi_canary_write(ref.page, ref.block, offset + newsize);
    hhi_track_resize(p, usable, newsize);
    return p;
  }
  void* q = heap_alloc_like(heap, newsize, alignment);
  if (q == NULL) return NULL;
  memcpy(q, p, usable < newsize ? usable : newsize);
  hhi_free_ref(&ref, p);
  return q;
}

void* hh_realloc(void* p, size_t newsize) {
  return heap_realloc(hhi_get_default_heap(), p, newsize, 0);
}

void* hh_realloc_aligned(void* p, size_t newsize, size_t alignment) {
  if (!hhi_is_power_of_two(alignment)) {
    errno = EINVAL;
    return NULL;
  }
  return heap_realloc(hhi_get_default_heap(), p, newsize, alignment);
}

void* hh_reallocarray(void* p, size_t count, size_t size) {
  size_t total;
  if (!array_size(count, size, &total)) return NULL;
  return hh_realloc(p, total);
}

void* hh_reallocf(void* p, size_t newsize) {
  void* q = hh_realloc(p, newsize);
  if (q == NULL && newsize != 0) hh_free(p);
  return q;
}

/* ---- first-class heaps ----------------------------------------------------------------*/
/* Allocation from another thread's heap would race with its owner. */
static bool heap_usable(hh_heap_t* heap) {
  if (hh_likely(hhi_heap_is_mine(heap))) return true;
  if (heap != NULL) hhi_misuse(HH_OP_HEAP_ALLOC, (hh_misuse_info_t){.kind = HH_MISUSE_HEAP_NOT_OWNED, .heap = heap});
  errno = EINVAL;
  return false;
}

void* hh_heap_malloc(hh_heap_t* heap, size_t size) {
  return heap_usable(heap) ? heap_malloc(heap, size, false) : NULL;
}

void* hh_heap_zalloc(hh_heap_t* heap, size_t size) {
  return heap_usable(heap) ? heap_malloc(heap, size, true) : NULL;
}

void* hh_heap_calloc(hh_heap_t* heap, size_t count, size_t size) {
  size_t total;
  if (!array_size(count, size, &total)) return NULL;
  return hh_heap_zalloc(heap, total);
}

void* hh_heap_realloc(hh_heap_t* heap, void* p, size_t newsize) {
  return heap_usable(heap) ? heap_realloc(heap, p, newsize, 0) : NULL;
}

void* hh_heap_malloc_aligned(hh_heap_t* heap, size_t size, size_t alignment) {
  return heap_usable(heap) ? heap_malloc_aligned(heap, size, alignment, false) : NULL;
}

static char* heap_strndup(hh_heap_t* heap, const char* s, size_t n) {
  if (s == NULL) {
    errno = EINVAL;
    return NULL;
  }
  size_t len = strnlen(s, n);
  char* d = heap_malloc(heap, len + 1, false);
  if (d == NULL) return NULL;
  memcpy(d, s, len);
  d[len] = 0;
  return d;
}

char* hh_heap_strdup(hh_heap_t* heap, const char* s) {
  return heap_usable(heap) ? heap_strndup(heap, s, SIZE_MAX) : NULL;
}

/* ---- strings -----------------------------------------------------------------------*/
char* hh_strdup(const char* s) {
  return heap_strndup(hhi_get_default_heap(), s, SIZE_MAX);
}

char* hh_strndup(const char* s, size_t n) {
  return heap_strndup(hhi_get_default_heap(), s, n);
}

/* ---- sizes -------------------------------------------------------------------------*/
/* What the program may use when it asks for size bytes: the block's size,
 * less the canary's minimum with HH_CANARY. */
size_t hh_good_size(size_t size) {
  if (size > HH_MAX_ALLOC_SIZE) return size;
  size_t need = hhi_block_need(size);
  size_t block = need <= HH_MEDIUM_OBJ_SIZE_MAX ? hhi_good_size(need, hhi_os_page_size())
                                                : hhi_single_block_size(need);
  return block - (need - size);
}
