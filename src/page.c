/* hardheap: pages, size classes and the generic (slow) allocation path.
 *
 * A heap keeps one queue of pages per size class. The fast path allocates
 * from the first page of a queue (via pages_direct); when that page's free
 * list is empty the generic path here runs: it is also the heartbeat that
 * folds deferred work in (delayed frees, retired pages, purging). */
#include "internal.h"

#include <sched.h>

/* The page the fast path sees when a queue is empty: free == NULL sends
 * every allocation to hh_malloc_generic. */
const hh_page_t hh_page_empty = {0};

/* ---- size classes ----------------------------------------------------------*/
size_t hh_bin_size(size_t bin) {
  if (bin == 0) return 0;
  if (bin <= 8) return bin * HH_MIN_ALIGN;
  if (bin > HH_BIN_LARGE_MAX) return 0;
  size_t b = (bin - 1) / 8 + 6;
  size_t i = (bin - 1) % 8;
  return ((size_t)1 << b) + (i + 1) * ((size_t)1 << (b - 3));
}

/* ---- queues -----------------------------------------------------------------*/
hh_page_queue_t* hh_page_queue_of(hh_heap_t* heap, const hh_page_t* page) {
  return &heap->pages[(hh_page_flags(page) & HH_PAGE_IN_FULL) ? HH_BIN_FULL : page->bin];
}

void hh_page_queue_remove(hh_heap_t* heap, hh_page_queue_t* pq, hh_page_t* page) {
  bool was_first = (pq->first == page);
  if (page->prev != NULL) page->prev->next = page->next;
  if (page->next != NULL) page->next->prev = page->prev;
  if (pq->last == page) pq->last = page->prev;
  if (was_first) {
    pq->first = page->next;
    hh_heap_queue_first_update(heap, pq);
  }
  page->next = page->prev = NULL;
}

static void queue_push_front(hh_heap_t* heap, hh_page_queue_t* pq, hh_page_t* page) {
  page->prev = NULL;
  page->next = pq->first;
  if (pq->first != NULL) pq->first->prev = page; else pq->last = page;
  pq->first = page;
  hh_heap_queue_first_update(heap, pq);
}

void hh_page_queue_push_back(hh_heap_t* heap, hh_page_queue_t* pq, hh_page_t* page) {
  page->next = NULL;
  page->prev = pq->last;
  if (pq->last != NULL) pq->last->next = page;
  pq->last = page;
  if (pq->first == NULL) {
    pq->first = page;
    hh_heap_queue_first_update(heap, pq);
  }
}

/* ---- delayed-free state -----------------------------------------------------*/
void hh_page_use_delayed_free(hh_page_t* page, hh_delayed_t delay, bool override_never) {
  uintptr_t tf = atomic_load_explicit(&page->thread_free, memory_order_relaxed);
  for (;;) {
    hh_delayed_t old = hh_thread_free_delayed(tf);
    if (old == HH_DELAYED_FREEING) {
      /* a remote thread is between two steps of its push: wait it out */
      sched_yield();
      tf = atomic_load_explicit(&page->thread_free, memory_order_relaxed);
      continue;
    }
    if (old == delay || (old == HH_NEVER_DELAYED_FREE && !override_never)) return;
    uintptr_t desired = hh_thread_free_make(hh_thread_free_block(tf), delay);
    if (atomic_compare_exchange_weak_explicit(&page->thread_free, &tf, desired, memory_order_release,
                                              memory_order_relaxed)) {
      return;
    }
  }
}

/* ---- collecting frees --------------------------------------------------------*/
static bool list_contains(const hh_page_t* page, const hh_block_t* list, const hh_block_t* block) {
  size_t steps = 0;
  for (const hh_block_t* b = list; b != NULL; b = hh_block_next(page, b)) {
    if (b == block) return true;
    if (++steps > page->capacity) break;  /* a cycle: reported when the list is collected */
  }
  return false;
}

bool hh_page_block_is_free(const hh_page_t* page, const hh_block_t* block) {
  if (list_contains(page, page->free, block) || list_contains(page, page->local_free, block)) return true;
  uintptr_t tf = atomic_load_explicit(&((hh_page_t*)page)->thread_free, memory_order_acquire);
  return list_contains(page, hh_thread_free_block(tf), block);
}

/* Move the remote frees of page onto its local_free list. */
static void page_collect_thread_free(hh_page_t* page) {
  uintptr_t tf = atomic_load_explicit(&page->thread_free, memory_order_relaxed);
  hh_block_t* head;
  do {
    head = hh_thread_free_block(tf);
    if (head == NULL) return;
  } while (!atomic_compare_exchange_weak_explicit(&page->thread_free, &tf,
                                                  hh_thread_free_make(NULL, hh_thread_free_delayed(tf)),
                                                  memory_order_acq_rel, memory_order_relaxed));
  /* Walk to the tail; more blocks than the page ever handed out means a
   * cycle (a remote double free) or a corrupted link. */
  uint32_t count = 1;
  hh_block_t* tail = head;
  hh_block_t* next;
  while ((next = hh_block_next(page, tail)) != NULL) {
    if (hh_unlikely(count >= page->capacity)) {
      hh_error_message("corrupted remote-free list of the page at %p (size class %zu): double free from "
                       "another thread?", (void*)page->page_start, page->block_size);
      return;  /* default build: leak the list rather than loop */
    }
    tail = next;
    count++;
  }
  hh_block_set_next(page, tail, page->local_free);
  page->local_free = head;
  page->used -= count;
}

void hh_page_collect_free(hh_page_t* page, bool force) {
  if (hh_thread_free_block(atomic_load_explicit(&page->thread_free, memory_order_relaxed)) != NULL) {
    page_collect_thread_free(page);
  }
  if (page->local_free == NULL) return;
  if (page->free == NULL) {
    page->free = page->local_free;
    page->local_free = NULL;
    page->free_is_zero = 0;
  } else if (force) {
    hh_block_t* tail = page->local_free;
    hh_block_t* next;
    while ((next = hh_block_next(page, tail)) != NULL) tail = next;
    hh_block_set_next(page, tail, page->free);
    page->free = page->local_free;
    page->local_free = NULL;
    page->free_is_zero = 0;
  }
}

/* ---- extending ----------------------------------------------------------------*/
/* Thread the next blocks of the page onto its (empty) free list: a few KiB
 * at a time, so untouched memory costs nothing. The secure build links
 * them in random order so the allocation sequence is not predictable. */
static void page_extend(hh_heap_t* heap, hh_page_t* page) {
  hh_assert(page->free == NULL && page->capacity < page->reserved);
  size_t bs = page->block_size;
  size_t n = HH_EXTEND_BYTES / bs;
  if (n == 0) n = 1;
  if (n > page->reserved - page->capacity) n = page->reserved - page->capacity;
  uint8_t* first = page->page_start + (size_t)page->capacity * bs;

  if (HARDHEAP_SECURE && n > 1) {
    uint16_t order[HH_EXTEND_BYTES / HH_MIN_ALIGN];
    for (size_t i = 0; i < n; i++) order[i] = (uint16_t)i;
    for (size_t i = n - 1; i > 0; i--) {
      size_t j = (size_t)(hh_random_next(&heap->random) % (i + 1));
      uint16_t t = order[i]; order[i] = order[j]; order[j] = t;
    }
    for (size_t i = 0; i + 1 < n; i++) {
      hh_block_set_next(page, (hh_block_t*)(first + order[i] * bs), (hh_block_t*)(first + order[i + 1] * bs));
    }
    hh_block_set_next(page, (hh_block_t*)(first + order[n - 1] * bs), NULL);
    page->free = (hh_block_t*)(first + order[0] * bs);
  } else {
    for (size_t i = 0; i + 1 < n; i++) {
      hh_block_set_next(page, (hh_block_t*)(first + i * bs), (hh_block_t*)(first + (i + 1) * bs));
    }
    hh_block_set_next(page, (hh_block_t*)(first + (n - 1) * bs), NULL);
    page->free = (hh_block_t*)first;
  }
  (void)heap;
  page->capacity += (uint32_t)n;
  page->free_is_zero = page->is_zero_init;
}

/* ---- fresh pages -----------------------------------------------------------*/
static void page_init(hh_heap_t* heap, hh_page_t* page, size_t block_size, size_t bin) {
  hh_segment_t* segment = hh_page_segment(page);
  size_t area;
  (void)hh_segment_page_area(segment, page, &area);
  if (segment->kind == HH_SEGMENT_HUGE) {
    page->block_size = area;
  } else if (segment->kind == HH_SEGMENT_LARGE) {
    /* the size class, not the whole span: the slack in its last slice is
     * never touched (so never resident) until realloc grows into it */
    page->block_size = hh_good_size(block_size);
  } else {
    page->block_size = block_size;
  }
  page->bin = (uint8_t)bin;
  page->reserved = (bin == HH_BIN_HUGE) ? 1 : (uint32_t)(area / page->block_size);
  page->capacity = 0;
  page->used = 0;
  atomic_store_explicit(&page->flags, 0, memory_order_relaxed);
  page->free = NULL;
  page->local_free = NULL;
  page->is_retired = 0;
  page->next = page->prev = NULL;
  atomic_store_explicit(&page->thread_free, hh_thread_free_make(NULL, HH_NO_DELAYED_FREE), memory_order_relaxed);
  atomic_store_explicit(&page->heap, heap, memory_order_release);
  hh_page_init_keys(heap, page);
  hh_assert(page->reserved > 0);
}

static hh_page_t* page_fresh(hh_heap_t* heap, hh_page_queue_t* pq, size_t block_size, size_t bin) {
  hh_page_t* page = hh_segment_page_alloc(heap, block_size, 0);
  if (page == NULL) return NULL;
  page_init(heap, page, block_size, bin);
  heap->page_count++;
  queue_push_front(heap, pq, page);
  page_extend(heap, page);
  return page;
}

/* ---- full pages ---------------------------------------------------------------*/
static bool page_to_full(hh_heap_t* heap, hh_page_t* page, hh_page_queue_t* pq) {
  /* From now on remote frees tell the heap; then collect what arrived before
   * the switch, which may make the page usable after all. */
  hh_page_use_delayed_free(page, HH_USE_DELAYED_FREE, false);
  hh_page_collect_free(page, false);
  if (page->free != NULL) {
    hh_page_use_delayed_free(page, HH_NO_DELAYED_FREE, false);
    return false;
  }
  hh_page_queue_remove(heap, pq, page);
  hh_page_flags_set(page, HH_PAGE_IN_FULL);
  hh_page_queue_push_back(heap, &heap->pages[HH_BIN_FULL], page);
  return true;
}

/* A page in the full queue got a block back: move it to its size class. */
void hh_page_unfull(hh_page_t* page) {
  if (!(hh_page_flags(page) & HH_PAGE_IN_FULL)) return;
  hh_heap_t* heap = atomic_load_explicit(&page->heap, memory_order_relaxed);
  hh_page_use_delayed_free(page, HH_NO_DELAYED_FREE, false);
  hh_page_queue_remove(heap, &heap->pages[HH_BIN_FULL], page);
  hh_page_flags_clear(page, HH_PAGE_IN_FULL);
  hh_page_queue_push_back(heap, &heap->pages[page->bin], page);
}

/* ---- freeing pages -------------------------------------------------------------*/
static void retired_remove(hh_heap_t* heap, hh_page_t* page) {
  for (size_t i = 0; i < heap->retired_count; i++) {
    if (heap->retired[i] == page) {
      heap->retired[i] = heap->retired[--heap->retired_count];
      break;
    }
  }
  page->is_retired = 0;
}

void hh_page_free(hh_page_t* page, hh_page_queue_t* pq, bool force) {
  hh_heap_t* heap = atomic_load_explicit(&page->heap, memory_order_relaxed);
  if (page->is_retired != 0) retired_remove(heap, page);
  hh_page_queue_remove(heap, pq, page);
  heap->page_count--;
  hh_segment_page_free(page, force);
}

/* The page's last block was freed. Small and medium pages are kept a few
 * generic-path calls (the next malloc of the class would need the page
 * again, and returning it to the segment costs); large ones go at once. */
void hh_page_retire(hh_page_t* page) {
  hh_heap_t* heap = atomic_load_explicit(&page->heap, memory_order_relaxed);
  uint64_t expire = heap->tld->heartbeat + HH_RETIRE_CYCLES;
  if (page->is_retired != 0) {
    page->retire_at = expire;  /* emptied again: a new lease */
    return;
  }
  if (page->block_size <= HH_MEDIUM_OBJ_SIZE_MAX && heap->retired_count < HH_RETIRED_MAX) {
    page->is_retired = 1;
    page->retire_at = expire;
    if (heap->retired_count == 0 || expire < heap->retired_check) heap->retired_check = expire;
    heap->retired[heap->retired_count++] = page;
    return;
  }
  hh_page_free(page, hh_page_queue_of(heap, page), false);
}

/* Called from the generic path only once the earliest lease is up
 * (heap->retired_check), so most calls do not touch the pages at all. A
 * page that is in use again stays listed until then. */
void hh_heap_collect_retired(hh_heap_t* heap, bool free_all, bool purge) {
  uint64_t now = heap->tld->heartbeat;
  uint64_t next = UINT64_MAX;
  size_t i = 0;
  while (i < heap->retired_count) {
    hh_page_t* page = heap->retired[i];
    if (!hh_page_all_free(page)) {
      retired_remove(heap, page);  /* in use again */
    } else if (free_all || page->retire_at <= now) {
      retired_remove(heap, page);
      hh_page_free(page, hh_page_queue_of(heap, page), purge);
    } else {
      if (page->retire_at < next) next = page->retire_at;
      i++;
    }
  }
  heap->retired_check = next;
}

/* ---- adopting pages of reclaimed segments ----------------------------------------*/
bool hh_page_reclaim(hh_heap_t* heap, hh_page_t* page) {
  atomic_store_explicit(&page->heap, heap, memory_order_release);
  hh_page_use_delayed_free(page, HH_NO_DELAYED_FREE, true);
  hh_page_flags_clear(page, HH_PAGE_IN_FULL);
  page->is_retired = 0;
  hh_page_collect_free(page, false);
  heap->page_count++;
  hh_page_queue_t* pq = &heap->pages[page->bin];
  hh_page_queue_push_back(heap, pq, page);
  if (!hh_page_all_free(page)) return false;
  hh_page_free(page, pq, false);
  return true;
}

/* ---- finding a page --------------------------------------------------------------*/
static hh_page_t* queue_find_free(hh_heap_t* heap, hh_page_queue_t* pq, size_t bin) {
  for (int attempt = 0; attempt < 2; attempt++) {
    hh_page_t* page = pq->first;
    while (page != NULL) {
      hh_page_t* next = page->next;
      hh_page_collect_free(page, false);
      if (page->free != NULL) return page;
      if (page->capacity < page->reserved) {
        /* Reuse before extending: blocks freed into the next page (one
         * that came back from the full queue) are resident already. */
        if (next != NULL) {
          hh_page_collect_free(next, false);
          if (next->free != NULL) {
            hh_page_queue_remove(heap, pq, next);
            queue_push_front(heap, pq, next);
            return next;
          }
        }
        page_extend(heap, page);
        return page;
      }
      if (!page_to_full(heap, page, pq)) return page;
      page = next;
    }
    /* Before mapping new memory, adopt a segment some exited thread left.
     * Its blocks go to the backing heap, never to a first-class heap, which
     * hh_heap_destroy could then free from under their owners. */
    if (attempt == 0 && !hh_segment_try_reclaim(heap->tld->heap_backing)) break;
  }
  return page_fresh(heap, pq, pq->block_size, bin);
}

/* Blocks above the medium size get a segment of their own (large: a
 * cached 4 MiB segment the block can grow in; huge: sized to fit). */
static hh_page_t* single_page_alloc(hh_heap_t* heap, size_t size, size_t alignment) {
  hh_page_t* page = hh_segment_page_alloc(heap, size, alignment);
  if (page == NULL) return NULL;
  page_init(heap, page, size, HH_BIN_HUGE);
  /* The single free of their block, from any thread, releases the segment
   * directly (free.c:free_single); the heap only lists them, for
   * hh_heap_destroy and hh_heap_visit_blocks. */
  atomic_store_explicit(&page->thread_free, hh_thread_free_make(NULL, HH_NEVER_DELAYED_FREE), memory_order_relaxed);
  atomic_store_explicit(&page->single_live, 1, memory_order_relaxed);
  page_extend(heap, page);
  hh_heap_single_link(heap, page);
  return page;
}

static hh_page_t* find_page(hh_heap_t* heap, size_t size, size_t huge_alignment) {
  if (size > HH_MEDIUM_OBJ_SIZE_MAX || huge_alignment > HH_MIN_ALIGN) return single_page_alloc(heap, size, huge_alignment);
  size_t bin = hh_bin(size);
  return queue_find_free(heap, &heap->pages[bin], bin);
}

/* Take the first block of a page known to have one. */
static void* page_take_block(hh_page_t* page, bool zero) {
  hh_block_t* block = page->free;
  page->free = hh_block_next(page, block);
  page->used++;
  if (zero) {
    if (page->free_is_zero) block->next = 0;
    else memset(block, 0, page->block_size);
  } else if (HARDHEAP_SECURE) {
    block->next = 0;  /* do not hand out the encoded link */
  }
  return block;
}

void* hh_malloc_generic(hh_heap_t* heap, size_t size, bool zero, size_t huge_alignment) {
  if (hh_unlikely(!hh_heap_is_initialized(heap))) {
    heap = hh_heap_thread_init();
    if (heap == NULL) {
      errno = ENOMEM;
      return NULL;
    }
  }
  if (hh_unlikely(size > HH_MAX_ALLOC_SIZE)) {
    errno = ENOMEM;
    return NULL;
  }
  hh_tld_t* tld = heap->tld;
  tld->heartbeat++;
  if (atomic_load_explicit(&heap->thread_delayed_free, memory_order_relaxed) != NULL) hh_heap_delayed_free_all(heap);
  if (heap->retired_count != 0 && tld->heartbeat >= heap->retired_check) hh_heap_collect_retired(heap, false, false);
  if ((tld->heartbeat & 63) == 0) {
    hh_segments_collect(tld, false);
    hh_heap_deferred_free(heap, false);
  }

  hh_page_t* page = find_page(heap, size, huge_alignment);
  if (hh_unlikely(page == NULL)) {
    hh_heap_collect(heap, true);
    page = find_page(heap, size, huge_alignment);
    if (page == NULL) {
      errno = ENOMEM;
      return NULL;
    }
  }
  return page_take_block(page, zero);
}
