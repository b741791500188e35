/* hardheap: freeing.
 *
 * The fast path (owner thread, page neither full nor holding aligned
 * blocks) pushes the block on the page's local_free list: one map lookup,
 * one compare, two stores. Everything else goes out of line: remote frees
 * push onto the page's atomic thread_free list with one CAS, huge blocks
 * release their segment, and the secure build validates every pointer. */
#include "internal.h"

/* ---- reports ----------------------------------------------------------------*/
static hh_cold void report_foreign(const void* p, const char* what) {
  hh_error_message("invalid %s of %p: not a pointer allocated by hardheap", what, p);
}

/* ---- secure validation -----------------------------------------------------*/
/* Is p the start (or, on pages with aligned blocks, inside) of a block the
 * page handed out? Reports and returns false otherwise. */
static hh_cold bool report_invalid(const hh_page_t* page, const void* p, const char* what, const char* why) {
  hh_error_message("invalid %s of %p: %s (size class %zu)", what, p, why, page->block_size);
  return false;
}

/* A freed large span keeps its start and size (segment.c:span_free). */
static hh_cold bool report_span_freed(const hh_page_t* page, const void* p, const char* what) {
  if (strcmp(what, "free") == 0) {
    hh_error_message("double free of %p (size class %zu)", p, page->block_size);
  } else {
    hh_error_message("invalid %s of %p: the block was freed (size class %zu)", what, p, page->block_size);
  }
  return false;
}

/* p's page descriptor is not in use: p is a large block freed before (its
 * span's first descriptor keeps start and size) or no block at all. */
static hh_cold bool report_unused_page(const hh_segment_t* segment, const hh_page_t* page, const void* p,
                                       const char* what, const char* not_a_block) {
  if (segment->kind == HH_SEGMENT_LARGE && page->page_start == (const uint8_t*)p && page->block_size != 0) {
    return report_span_freed(page, p, what);
  }
  hh_error_message("invalid %s of %p: %s", what, p, not_a_block);
  return false;
}

/* The owner may compare against capacity (blocks ever handed out); other
 * threads read only fields fixed while the page is in use (reserved). */
static bool page_check_pointer(const hh_segment_t* segment, const hh_page_t* page, const void* p, const char* what,
                               bool is_owner) {
  if (hh_unlikely(segment->cookie != ((uintptr_t)segment ^ hh_process_cookie))) {
    hh_error_message("invalid %s of %p: segment header at %p is corrupted", what, p, (const void*)segment);
    return false;
  }
  if (hh_unlikely(!page->segment_in_use || page->block_size == 0)) {
    return report_unused_page(segment, page, p, what, "not an allocated block (its page is free)");
  }
  if (segment->kind == HH_SEGMENT_LARGE && hh_unlikely(atomic_load_explicit(&((hh_page_t*)page)->single_live,
                                                                           memory_order_relaxed) == 0)) {
    /* a freed span waiting in some thread's span cache */
    if (page->page_start == (const uint8_t*)p) return report_span_freed(page, p, what);
    return report_invalid(page, p, what, "not an allocated block");
  }
  uintptr_t start = (uintptr_t)page->page_start;
  uintptr_t a = (uintptr_t)p;
  uint32_t limit = is_owner ? page->capacity : page->reserved;
  if (hh_unlikely(a < start || a - start >= (uintptr_t)limit * page->block_size)) {
    return report_invalid(page, p, what, "not an allocated block");
  }
  if (hh_unlikely(!(hh_page_flags(page) & HH_PAGE_HAS_ALIGNED) && (a - start) % page->block_size != 0)) {
    return report_invalid(page, p, what, "pointer into the middle of a block");
  }
  return true;
}

/* ---- freeing a block on its owner thread ------------------------------------------*/
static void free_block_local(hh_page_t* page, hh_block_t* block) {
  hh_assert(atomic_load_explicit(&hh_page_segment(page)->thread_id, memory_order_relaxed) == hh_thread_id());
  hh_assert(atomic_load_explicit(&page->heap, memory_order_relaxed) != NULL &&
            atomic_load_explicit(&page->heap, memory_order_relaxed)->thread_id == hh_thread_id());
  if (HH_CHECK_FREE && hh_unlikely(hh_is_double_free(page, block))) {
    hh_error_message("double free of %p (size class %zu)", (void*)block, page->block_size);
    return;
  }
  hh_block_set_next(page, block, page->local_free);
  page->local_free = block;
  page->used--;
  if (hh_unlikely(hh_page_flags(page) & HH_PAGE_IN_FULL)) hh_page_unfull(page);
  if (hh_unlikely(page->used == 0)) hh_page_retire(page);
}

/* ---- freeing a block of another thread's page ------------------------------------*/
void hh_free_block_remote(hh_page_t* page, hh_block_t* block) {
  uintptr_t tf = atomic_load_explicit(&page->thread_free, memory_order_relaxed);
  bool use_delayed;
  uintptr_t desired;
  do {
    use_delayed = (hh_thread_free_delayed(tf) == HH_USE_DELAYED_FREE);
    if (hh_unlikely(use_delayed)) {
      /* claim the page's delayed slot; the block goes to the heap instead */
      desired = hh_thread_free_make(hh_thread_free_block(tf), HH_DELAYED_FREEING);
    } else {
      hh_block_set_next(page, block, hh_thread_free_block(tf));
      desired = hh_thread_free_make(block, hh_thread_free_delayed(tf));
    }
  } while (!atomic_compare_exchange_weak_explicit(&page->thread_free, &tf, desired, memory_order_release,
                                                  memory_order_relaxed));
  if (hh_likely(!use_delayed)) return;

  /* The page is in its owner's full queue: tell the owner through its heap's
   * delayed list, so it moves the page back where allocation finds it. */
  hh_heap_t* heap = atomic_load_explicit(&page->heap, memory_order_acquire);
  if (heap != NULL) {
    hh_block_t* head = atomic_load_explicit(&heap->thread_delayed_free, memory_order_relaxed);
    do {
      block->next = hh_encode_link(page, block, head);
    } while (!atomic_compare_exchange_weak_explicit(&heap->thread_delayed_free, &head, block,
                                                    memory_order_release, memory_order_relaxed));
  }
  /* leave the DELAYED_FREEING state */
  tf = atomic_load_explicit(&page->thread_free, memory_order_relaxed);
  do {
    desired = hh_thread_free_make(hh_thread_free_block(tf), HH_NO_DELAYED_FREE);
  } while (!atomic_compare_exchange_weak_explicit(&page->thread_free, &tf, desired, memory_order_release,
                                                  memory_order_relaxed));
  if (heap == NULL) {
    /* no owner any more (abandoned meanwhile): an ordinary remote free */
    hh_free_block_remote(page, block);
  }
}

/* A block from the heap's delayed list, freed now by the owner. */
void hh_free_delayed_block(hh_block_t* block) {
  hh_page_t* page = hh_segment_page_of(hh_ptr_segment(block), block);
  hh_page_collect_free(page, false);  /* brings `used` up to date first */
  free_block_local(page, block);
}

/* ---- large and huge blocks -------------------------------------------------------*/
static void free_single(hh_segment_t* segment, hh_page_t* page, void* p) {
  /* Large spans share their segment, so the page of a pointer past a span's
   * first slice is a free descriptor: check before claiming anything. */
  if (segment->kind == HH_SEGMENT_LARGE && hh_unlikely(!page->segment_in_use)) {
    (void)report_unused_page(segment, page, p, "free", "not an allocated block");
    return;
  }
  if (segment->kind == HH_SEGMENT_LARGE &&
      hh_unlikely((uint8_t*)p < page->page_start || (uint8_t*)p >= page->page_start + page->block_size)) {
    hh_error_message("invalid free of %p: not an allocated block", p);
    return;
  }
  /* Whoever frees the block claims it (large: the page's live flag, huge:
   * the segment's owner id); a second claimant has a double free. */
  if (!hh_segment_single_claim(page)) {
    hh_error_message("double free of %p (size class %zu)", p, page->block_size);
    return;
  }
  hh_heap_single_unlink(page);
  hh_segment_single_free(page);
}

/* ---- the entry point -------------------------------------------------------------*/
static hh_noinline void free_generic(hh_segment_t* segment, hh_page_t* page, void* p) {
  bool is_owner = atomic_load_explicit(&segment->thread_id, memory_order_relaxed) == hh_thread_id();
  if (HH_CHECK_FREE && !page_check_pointer(segment, page, p, "free", is_owner)) return;
  hh_block_t* block = (hh_page_flags(page) & HH_PAGE_HAS_ALIGNED) ? hh_page_block_of(page, p) : (hh_block_t*)p;
  if (segment->kind >= HH_SEGMENT_LARGE) {
    free_single(segment, page, p);
  } else if (is_owner) {
    free_block_local(page, block);
  } else {
    hh_free_block_remote(page, block);
  }
}

void hh_free(void* p) {
  if (hh_unlikely(p == NULL)) return;
  hh_segment_t* segment = hh_ptr_segment(p);
  if (hh_unlikely(!hh_segment_is_ours(segment))) {
    report_foreign(p, "free");
    return;
  }
  hh_page_t* page = hh_segment_page_of(segment, p);
  if (!HH_CHECK_FREE &&
      hh_likely(atomic_load_explicit(&segment->thread_id, memory_order_relaxed) == hh_thread_id() && hh_page_flags(page) == 0)) {
    hh_block_t* block = (hh_block_t*)p;
    hh_assert(atomic_load_explicit(&page->heap, memory_order_relaxed) != NULL &&
              atomic_load_explicit(&page->heap, memory_order_relaxed)->thread_id == hh_thread_id());
    hh_block_set_next(page, block, page->local_free);
    page->local_free = block;
    if (hh_unlikely(--page->used == 0)) hh_page_retire(page);
    return;
  }
  free_generic(segment, page, p);
}

/* ---- sized deallocation ------------------------------------------------------------*/
void hh_free_sized(void* p, size_t size) {
  if (HH_CHECK_FREE && p != NULL) {
    /* a size larger than the block means the caller freed the wrong object */
    hh_page_t* page = hh_checked_page_of(p, "free");
    if (page == NULL) return;
    size_t usable = page->block_size - (size_t)((uintptr_t)p - (uintptr_t)hh_page_block_of(page, p));
    if (size > usable) {
      hh_error_message("sized free of %p with size %zu larger than its block (%zu bytes)", p, size, usable);
      return;
    }
  }
  hh_free(p);
}

void hh_free_aligned_sized(void* p, size_t alignment, size_t size) {
  if (HH_CHECK_FREE && p != NULL && hh_is_power_of_two(alignment) && ((uintptr_t)p & (alignment - 1)) != 0) {
    hh_error_message("aligned sized free of %p, which is not aligned to %zu", p, alignment);
    return;
  }
  hh_free_sized(p, size);
}

/* ---- pointer lookups for realloc and usable_size --------------------------------*/
hh_page_t* hh_checked_page_of(const void* p, const char* what) {
  hh_segment_t* segment = hh_ptr_segment(p);
  if (hh_unlikely(!hh_segment_is_ours(segment))) {
    report_foreign(p, what);
    return NULL;
  }
  hh_page_t* page = hh_segment_page_of(segment, p);
  bool is_owner = atomic_load_explicit(&segment->thread_id, memory_order_relaxed) == hh_thread_id();
  if (HH_CHECK_FREE && !page_check_pointer(segment, page, p, what, is_owner)) return NULL;
  if (!HH_CHECK_FREE && hh_unlikely(!page->segment_in_use || page->block_size == 0)) {
    /* even the default build must not divide by a free page's block size */
    (void)report_unused_page(segment, page, p, what, "not an allocated block");
    return NULL;
  }
  return page;
}

size_t hh_usable_size(const void* p) {
  if (p == NULL) return 0;
  hh_page_t* page = hh_checked_page_of(p, "usable_size");
  if (page == NULL) return 0;
  const hh_block_t* block = hh_page_block_of(page, p);
  return page->block_size - (size_t)((uintptr_t)p - (uintptr_t)block);
}
