/* hardheap: pages and their free lists.
 *
 * A page holds blocks of one size class in three lists: free (malloc pops
 * it), local_free (the owner's frees, moved to free in bulk) and the atomic
 * thread_free (other threads' frees, collected by the owner). This file
 * grows pages (extension), collects their lists, moves pages between their
 * class queue and the full queue, retires empty ones, adopts the pages of
 * abandoned segments, and finds a page with a free block for the generic
 * allocation path. The block moments themselves are in block.h. */
#include "internal.h"

#include <sched.h>

/* The page the fast path sees when a queue is empty: free == NULL sends
 * every allocation to the generic path. */
const hh_page_t hhi_page_empty = {0};

/* ---- reports ----------------------------------------------------------------*/
void hhi_report_corrupt_link(const hh_page_t* page, const hh_block_t* block, uintptr_t value) {
  hhi_misuse(HH_OP_NONE, (hh_misuse_info_t){
                             .kind = HH_MISUSE_FREE_LIST_CORRUPTED,
                             .block = block,
                             .page = page->page_start,
                             .segment = hhi_page_segment(page),
                             .size_class = page->block_size,
                             .value = value,
                         });
}

hh_block_t* hhi_page_pop_bad(hh_page_t* page) {
  hh_block_t* bad = page->free;
  hhi_misuse(HH_OP_NONE, (hh_misuse_info_t){
                             .kind = HH_MISUSE_FREE_LIST_NOT_FREE,
                             .page = page->page_start,
                             .segment = hhi_page_segment(page),
                             .size_class = page->block_size,
                             .value = (uintptr_t)bad,
                         });
  page->free = NULL;  /* going on: the rest of the list is lost */
  return NULL;
}

void hhi_report_overflow(const hh_page_t* page, const void* block, const void* p, hh_op_t op, size_t requested) {
  size_t start = (size_t)((const uint8_t*)p - (const uint8_t*)block);
  if (requested == SIZE_MAX) {
    hhi_misuse(op, (hh_misuse_info_t){.kind = HH_MISUSE_HEAP_OVERFLOW_SIZE,
                                      .pointer = p,
                                      .block = block,
                                      .page = page->page_start,
                                      .size_class = page->block_size,
                                      .offset = page->block_size - hhi_canary_field(page) - start});
    return;
  }
  size_t damaged = hhi_canary_damage(page, block, requested);
  if (damaged == SIZE_MAX) damaged = requested;  /* the zero byte, seen by usable_size */
  hhi_misuse(op, (hh_misuse_info_t){.kind = HH_MISUSE_HEAP_OVERFLOW,
                                    .pointer = p,
                                    .block = block,
                                    .page = page->page_start,
                                    .size_class = page->block_size,
                                    .requested_size = requested - start,
                                    .offset = damaged - start});
}

void hhi_report_write_after_free(const hh_page_t* page, const hh_block_t* block, size_t from) {
  const uint8_t* b = (const uint8_t*)block;
  size_t offset = from;
  while (offset < page->block_size && b[offset] == 0) offset++;
  hhi_misuse(HH_OP_NONE, (hh_misuse_info_t){.kind = HH_MISUSE_WRITE_AFTER_FREE,
                                            .pointer = block,
                                            .block = block,
                                            .page = page->page_start,
                                            .size_class = page->block_size,
                                            .offset = offset});
}

static hh_cold void report_remote_list(const hh_page_t* page, const hh_block_t* block, const hh_block_t* bad) {
  hhi_misuse(HH_OP_NONE, (hh_misuse_info_t){
                             .kind = HH_MISUSE_REMOTE_LIST_CORRUPTED,
                             .block = block,
                             .page = page->page_start,
                             .segment = hhi_page_segment(page),
                             .size_class = page->block_size,
                             .value = (uintptr_t)bad,
                         });
}

/* ---- delayed-free state -----------------------------------------------------*/
void hhi_page_use_delayed_free(hh_page_t* page, hh_delayed_t delay, bool override_never) {
  uintptr_t tf = atomic_load_explicit(&page->thread_free, memory_order_relaxed);
  for (;;) {
    hh_delayed_t old = hhi_thread_free_delayed(tf);
    if (old == HH_DELAYED_FREEING) {
      /* a remote thread is between two steps of its push: wait it out */
      sched_yield();
      tf = atomic_load_explicit(&page->thread_free, memory_order_relaxed);
      continue;
    }
    if (old == delay || (old == HH_NEVER_DELAYED_FREE && !override_never)) return;
    uintptr_t desired = hhi_thread_free_make(hhi_thread_free_block(tf), delay);
    if (atomic_compare_exchange_weak_explicit(&page->thread_free, &tf, desired, memory_order_release,
                                              memory_order_relaxed)) {
      return;
    }
  }
}

/* ---- the block moment "freed by another thread" -------------------------------
 * With HH_BLOCK_BITMAPS the remote bit is set first, with one atomic OR:
 * a block freed twice by other threads, or after its owner took it back,
 * is caught here and never reaches a list. */
static hh_cold void report_remote_double_free(const hh_page_t* page, uint32_t idx, const void* p) {
  /* never handed out (beyond what the page has threaded), or freed before */
  uint32_t capacity = __atomic_load_n(&page->capacity, __ATOMIC_RELAXED);
  hhi_misuse_on_page(idx >= capacity ? HH_MISUSE_NOT_A_BLOCK : HH_MISUSE_DOUBLE_FREE, HH_OP_FREE, p, page);
}

void hhi_block_free_remote(hh_page_t* page, hh_block_t* block, uint32_t idx, const void* p) {
  if (!hhi_canary_check(page, block, p, HH_OP_FREE)) return;  /* going on: the block is leaked */
  if (HH_BLOCK_BITMAPS) {
    hh_page_maps_t* maps = hhi_page_maps(page);
    uint64_t bit = (uint64_t)1 << (idx % 64);
    if (hh_unlikely(!hhi_map_test(maps->live, idx)) ||
        hh_unlikely(atomic_fetch_or_explicit(&maps->remote[idx / 64], bit, memory_order_relaxed) & bit)) {
      report_remote_double_free(page, idx, p);
      return;
    }
  }
  hhi_block_zero_freed(page, block);
  hhi_track_free(p, block, page->block_size);
  uintptr_t tf = atomic_load_explicit(&page->thread_free, memory_order_relaxed);
  bool use_delayed;
  uintptr_t desired;
  do {
    use_delayed = (hhi_thread_free_delayed(tf) == HH_USE_DELAYED_FREE);
    if (hh_unlikely(use_delayed)) {
      /* claim the page's delayed slot; the block goes to the heap instead */
      desired = hhi_thread_free_make(hhi_thread_free_block(tf), HH_DELAYED_FREEING);
    } else {
      hhi_block_set_next(page, block, hhi_thread_free_block(tf));
      desired = hhi_thread_free_make(block, hhi_thread_free_delayed(tf));
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
      hhi_block_set_next(page, block, head);
    } while (!atomic_compare_exchange_weak_explicit(&heap->thread_delayed_free, &head, block,
                                                    memory_order_release, memory_order_relaxed));
  }
  /* leave the DELAYED_FREEING state */
  tf = atomic_load_explicit(&page->thread_free, memory_order_relaxed);
  do {
    desired = hhi_thread_free_make(hhi_thread_free_block(tf), HH_NO_DELAYED_FREE);
  } while (!atomic_compare_exchange_weak_explicit(&page->thread_free, &tf, desired, memory_order_release,
                                                  memory_order_relaxed));
  if (heap == NULL) {
    /* no owner any more (abandoned meanwhile): an ordinary remote free, the
     * remote bit already set */
    uintptr_t t = atomic_load_explicit(&page->thread_free, memory_order_relaxed);
    do {
      hhi_block_set_next(page, block, hhi_thread_free_block(t));
      desired = hhi_thread_free_make(block, hhi_thread_free_delayed(t));
    } while (!atomic_compare_exchange_weak_explicit(&page->thread_free, &t, desired, memory_order_release,
                                                    memory_order_relaxed));
  }
}

/* The owner takes back a block another thread freed (collected from
 * thread_free or a delayed list): with HH_BLOCK_BITMAPS it must be live and
 * remotely freed, else the list that held it is corrupt (false). */
static inline bool take_back_remote(hh_page_t* page, const hh_block_t* block) {
  if (!HH_BLOCK_BITMAPS) return true;
  size_t offset = (size_t)((const uint8_t*)block - page->page_start);
  uint32_t idx = hhi_block_index(page, offset);
  hh_page_maps_t* maps = hhi_page_maps(page);
  uint64_t bit = (uint64_t)1 << (idx % 64);
  if (hh_unlikely(offset >= (size_t)page->capacity * page->block_size || (size_t)idx * page->block_size != offset ||
                  !hhi_map_test(maps->live, idx) || !hhi_map_test(maps->remote, idx))) {
    return false;
  }
  atomic_fetch_and_explicit(&maps->remote[idx / 64], ~bit, memory_order_relaxed);
  hhi_map_owner_clear(maps->live, idx);
  return true;
}

void hhi_page_free_delayed_block(const hh_block_ref_t* ref) {
  hh_page_t* page = ref->page;
  hh_block_t* block = ref->block;
  hhi_page_collect_free(page, false);  /* brings `used` up to date first */
  if (!take_back_remote(page, block)) {
    report_remote_list(page, NULL, block);
    return;
  }
  hhi_block_set_next(page, block, page->local_free);
  page->local_free = block;
  page->used--;
  if (hh_unlikely(hhi_page_flags(page) & HH_PAGE_IN_FULL)) hhi_page_unfull(page);
  if (hh_unlikely(page->used == 0)) hhi_page_retire(page);
}

/* ---- the quarantine (HH_QUARANTINE) ----------------------------------------------
 * Threat: a freed block handed out again at once lets a use after free (or
 * a double free after reuse) hit a new object at a predictable place. A
 * block freed on its owner thread first takes a random slot of its heap's
 * quarantine, and the block it displaces goes back to its page; the
 * quarantine also gives up blocks while it holds more than
 * HH_QUARANTINE_BYTES. A quarantined block is still counted in its page's
 * `used` (so its page stays in use), its live bit is clear (a second free is
 * a double free) and it is zero past its first word (a write to it is found
 * when it is handed out again). */
static void quarantine_release(hh_page_t* page, hh_block_t* block) {
  /* Only the link word, cleared when the block came in, is checked here: the
   * rest is checked when the block is handed out (hhi_block_hand_out), and
   * a third pass over every freed block cost a fifth of the secure
   * build's CPU time on mixed sizes (alloc_test). */
  if (hh_unlikely(block->next != 0)) {
    hhi_report_write_after_free(page, block, 0);
    return;  /* going on: the block is leaked */
  }
  hhi_block_push_local(page, block, true);
}

static hh_page_t* quarantined_page(const hh_block_t* block) {
  return hhi_lookup_page(hhi_ptr_segment(block), block);
}

void hhi_quarantine_put(hh_page_t* page, hh_block_t* block) {
  hh_heap_t* heap = atomic_load_explicit(&page->heap, memory_order_relaxed);
  block->next = 0;
  size_t slot = (size_t)(hhi_random_next(&heap->quarantine_state) % HH_QUARANTINE_SLOTS);
  hh_block_t* old = heap->quarantine[slot];
  heap->quarantine[slot] = block;
  heap->quarantine_bytes += page->block_size;
  if (old != NULL) {
    hh_page_t* old_page = quarantined_page(old);
    heap->quarantine_bytes -= old_page->block_size;
    quarantine_release(old_page, old);
  }
  /* over its bytes: give up the others, at random too, until under */
  while (hh_unlikely(heap->quarantine_bytes > HH_QUARANTINE_BYTES)) {
    size_t j = (size_t)(hhi_random_next(&heap->quarantine_state) % HH_QUARANTINE_SLOTS);
    hh_block_t* b = heap->quarantine[j];
    if (b == NULL || b == block) continue;
    heap->quarantine[j] = NULL;
    hh_page_t* b_page = quarantined_page(b);
    heap->quarantine_bytes -= b_page->block_size;
    quarantine_release(b_page, b);
  }
}

void hhi_quarantine_flush(hh_heap_t* heap) {
  if (!HH_QUARANTINE) return;
  for (size_t i = 0; i < HH_QUARANTINE_SLOTS; i++) {
    hh_block_t* b = heap->quarantine[i];
    if (b == NULL) continue;
    heap->quarantine[i] = NULL;
    quarantine_release(quarantined_page(b), b);
  }
  heap->quarantine_bytes = 0;
}

void hhi_quarantine_drop(hh_heap_t* heap) {
  for (size_t i = 0; i < HH_QUARANTINE_SLOTS; i++) heap->quarantine[i] = NULL;
  heap->quarantine_bytes = 0;
}

/* Every quarantined block still as it came in (zero, past its first word
 * too when HH_CHECK_FREED_ZERO); a write after free to one is reported. */
bool hhi_quarantine_validate(const hh_heap_t* heap) {
  if (!HH_QUARANTINE) return true;
  for (size_t i = 0; i < HH_QUARANTINE_SLOTS; i++) {
    const hh_block_t* b = heap->quarantine[i];
    if (b == NULL) continue;
    const hh_page_t* page = hhi_lookup_page(hhi_ptr_segment(b), b);
    if (b->next != 0 || (HH_CHECK_FREED_ZERO && !hhi_block_zero_past_link(page, b))) {
      hhi_report_write_after_free(page, b, 0);
      return false;
    }
  }
  return true;
}

size_t hhi_quarantine_count(const hh_page_t* page) {
  if (!HH_QUARANTINE) return 0;
  const hh_heap_t* heap = atomic_load_explicit(&((hh_page_t*)page)->heap, memory_order_relaxed);
  if (heap == NULL) return 0;
  size_t count = 0;
  for (size_t i = 0; i < HH_QUARANTINE_SLOTS; i++) {
    const hh_block_t* b = heap->quarantine[i];
    if (b != NULL && hhi_lookup_page(hhi_ptr_segment(b), b) == page) count++;
  }
  return count;
}

/* ---- collecting frees --------------------------------------------------------*/
static bool list_contains(const hh_page_t* page, const hh_block_t* list, const hh_block_t* block) {
  size_t steps = 0;
  for (const hh_block_t* b = list; b != NULL; b = hhi_block_next(page, b)) {
    if (b == block) return true;
    if (++steps > page->capacity) break;  /* a cycle: reported when the list is collected */
  }
  return false;
}

bool hhi_page_block_is_free(const hh_page_t* page, const hh_block_t* block) {
  if (HH_BLOCK_BITMAPS) {
    return !hhi_block_is_live(page, hhi_block_index(page, (size_t)((const uint8_t*)block - page->page_start)));
  }
  if (list_contains(page, page->free, block) || list_contains(page, page->local_free, block)) return true;
  uintptr_t tf = atomic_load_explicit(&((hh_page_t*)page)->thread_free, memory_order_acquire);
  return list_contains(page, hhi_thread_free_block(tf), block);
}

bool hhi_page_free_map(const hh_page_t* page, uint64_t* map, size_t counts[3]) {
  memset(map, 0, HH_PAGE_BLOCKS_MAX / 8);
  uintptr_t tf = atomic_load_explicit(&((hh_page_t*)page)->thread_free, memory_order_acquire);
  const hh_block_t* lists[3] = {page->free, page->local_free, hhi_thread_free_block(tf)};
  for (int l = 0; l < 3; l++) {
    counts[l] = 0;
    for (const hh_block_t* b = lists[l]; b != NULL; b = hhi_block_next(page, b)) {
      /* checked before b is read: a bad link in the fast build is not followed */
      size_t offset = (size_t)((const uint8_t*)b - page->page_start);
      if ((const uint8_t*)b < page->page_start || offset % page->block_size != 0) return false;
      size_t idx = offset / page->block_size;
      if (idx >= page->capacity || (map[idx / 64] & ((uint64_t)1 << (idx % 64))) != 0) return false;
      map[idx / 64] |= (uint64_t)1 << (idx % 64);
      counts[l]++;
    }
  }
  return true;
}

/* Move the remote frees of page onto its local_free list. Each block is
 * taken back (take_back_remote); the walk is bounded by the blocks the page
 * ever handed out, so a loop is reported rather than followed. */
static void page_collect_thread_free(hh_page_t* page) {
  uintptr_t tf = atomic_load_explicit(&page->thread_free, memory_order_relaxed);
  hh_block_t* head;
  do {
    head = hhi_thread_free_block(tf);
    if (head == NULL) return;
  } while (!atomic_compare_exchange_weak_explicit(&page->thread_free, &tf,
                                                  hhi_thread_free_make(NULL, hhi_thread_free_delayed(tf)),
                                                  memory_order_acq_rel, memory_order_relaxed));
  if (!take_back_remote(page, head)) {
    report_remote_list(page, NULL, head);
    return;  /* going on: leak the list rather than trust it */
  }
  uint32_t count = 1;
  hh_block_t* tail = head;
  hh_block_t* next;
  while ((next = hhi_decode_link(page, tail, tail->next)) != NULL) {
    if (hh_unlikely(count >= page->capacity || !hhi_page_is_valid_link(page, next) || !take_back_remote(page, next))) {
      report_remote_list(page, tail, next);
      break;
    }
    tail = next;
    count++;
  }
  hhi_block_set_next(page, tail, page->local_free);
  page->local_free = head;
  page->used -= count;
}

void hhi_page_collect_free(hh_page_t* page, bool force) {
  if (hhi_thread_free_block(atomic_load_explicit(&page->thread_free, memory_order_relaxed)) != NULL) {
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
    size_t steps = 0;
    while ((next = hhi_block_next(page, tail)) != NULL && ++steps <= page->capacity) tail = next;
    hhi_block_set_next(page, tail, page->free);
    page->free = page->local_free;
    page->local_free = NULL;
    page->free_is_zero = 0;
  }
}

/* ---- extending ----------------------------------------------------------------*/
/* Thread the next blocks of the page onto its (empty) free list: a few KiB
 * at a time, so untouched memory costs nothing. With HH_RANDOMIZE_EXTEND
 * they are linked in random order so the allocation sequence is not
 * predictable. */
static void page_extend(hh_heap_t* heap, hh_page_t* page) {
  hh_assert(page->free == NULL && page->capacity < page->reserved);
  size_t bs = page->block_size;
  size_t n = HH_EXTEND_BYTES / bs;
  if (n == 0) n = 1;
  if (n > page->reserved - page->capacity) n = page->reserved - page->capacity;
  uint8_t* first = page->page_start + (size_t)page->capacity * bs;
  hhi_track_extend(page->page_start, page->capacity, n, bs, page->reserved);

  if (HH_RANDOMIZE_EXTEND && n > 1) {
    uint16_t order[HH_EXTEND_BYTES / HH_MIN_ALIGN];
    uint64_t state = hhi_random_shuffle_seed(heap);
    for (size_t i = 0; i < n; i++) order[i] = (uint16_t)i;
    for (size_t i = n - 1; i > 0; i--) {
      size_t j = (size_t)(hhi_random_next(&state) % (i + 1));
      uint16_t t = order[i]; order[i] = order[j]; order[j] = t;
    }
    for (size_t i = 0; i + 1 < n; i++) {
      hhi_block_set_next(page, (hh_block_t*)(first + order[i] * bs), (hh_block_t*)(first + order[i + 1] * bs));
    }
    hhi_block_set_next(page, (hh_block_t*)(first + order[n - 1] * bs), NULL);
    page->free = (hh_block_t*)(first + order[0] * bs);
  } else {
    for (size_t i = 0; i + 1 < n; i++) {
      hhi_block_set_next(page, (hh_block_t*)(first + i * bs), (hh_block_t*)(first + (i + 1) * bs));
    }
    hhi_block_set_next(page, (hh_block_t*)(first + (n - 1) * bs), NULL);
    page->free = (hh_block_t*)first;
  }
  (void)heap;
  page->capacity += (uint32_t)n;
  if (page->capacity > page->linked_blocks) page->linked_blocks = page->capacity;
  page->free_is_zero = page->is_zero_init;
}

/* ---- fresh pages -----------------------------------------------------------*/
static void page_init(hh_heap_t* heap, hh_page_t* page, size_t block_size, size_t bin) {
  hh_segment_t* segment = hhi_page_segment(page);
  size_t area;
  (void)hhi_segment_page_area(segment, page, &area);
  bool single = hhi_segment_kind_is_single(segment->kind);
  switch (segment->kind) {
    case HH_SEGMENT_SMALL:
    case HH_SEGMENT_MEDIUM:
      /* a resident slot that held another class keeps that class's encoded
       * links at block starts this page will not overwrite */
      if (HH_CLEAR_HANDED_OUT_LINK && page->bin != bin && !page->is_zero_init) hhi_segment_clear_links(segment, page);
      if (page->bin != bin) page->linked_blocks = 0;
      page->block_size = block_size;
      break;
    case HH_SEGMENT_LARGE:
      /* the size class, not the whole span: the slack in its last slice is
       * never touched (so never resident) until realloc grows into it */
      page->block_size = hhi_span_block_size(block_size);
      break;
    case HH_SEGMENT_HUGE:
      page->block_size = area;
      break;
    case HH_SEGMENT_GUARDED:
      hh_assert(!"guarded segments have no pages");
      break;
  }
  page->bin = (uint8_t)bin;
  page->reserved = single ? 1 : (uint32_t)(area / page->block_size);
  page->block_recip = single ? 0 : hhi_block_recip(page->block_size);
  page->capacity = 0;
  page->used = 0;
  atomic_store_explicit(&page->flags, 0, memory_order_relaxed);
  page->free = NULL;
  page->local_free = NULL;
  page->is_retired = 0;
  page->next = page->prev = NULL;
  atomic_store_explicit(&page->thread_free, hhi_thread_free_make(NULL, HH_NO_DELAYED_FREE), memory_order_relaxed);
  atomic_store_explicit(&page->heap, heap, memory_order_release);
  hhi_page_init_keys(heap, page);
  /* a destroyed heap's page may leave bits behind */
  if (HH_BLOCK_BITMAPS && !single) memset(hhi_page_maps(page), 0, sizeof(hh_page_maps_t));
  hh_assert(page->reserved > 0);
}

static hh_page_t* page_fresh(hh_heap_t* heap, hh_page_queue_t* pq, size_t block_size, size_t bin) {
  hh_segment_kind_t kind = block_size <= HH_SMALL_OBJ_SIZE_MAX ? HH_SEGMENT_SMALL : HH_SEGMENT_MEDIUM;
  hh_page_t* page = hhi_segment_page_alloc(heap->tld, kind, bin);
  if (page == NULL) return NULL;
  page_init(heap, page, block_size, bin);
  heap->page_count++;
  hhi_queue_push_front(heap, pq, page);
  page_extend(heap, page);
  return page;
}

/* ---- full pages ---------------------------------------------------------------*/
static bool page_to_full(hh_heap_t* heap, hh_page_t* page, hh_page_queue_t* pq) {
  /* From now on remote frees tell the heap; then collect what arrived before
   * the switch, which may make the page usable after all. */
  hhi_page_use_delayed_free(page, HH_USE_DELAYED_FREE, false);
  hhi_page_collect_free(page, false);
  if (page->free != NULL) {
    hhi_page_use_delayed_free(page, HH_NO_DELAYED_FREE, false);
    return false;
  }
  hhi_queue_remove(heap, pq, page);
  hhi_page_flags_set(page, HH_PAGE_IN_FULL);
  hhi_queue_push_back(heap, &heap->pages[HH_BIN_FULL], page);
  return true;
}

/* A page in the full queue got a block back: move it to its size class. */
void hhi_page_unfull(hh_page_t* page) {
  if (!(hhi_page_flags(page) & HH_PAGE_IN_FULL)) return;
  hh_heap_t* heap = atomic_load_explicit(&page->heap, memory_order_relaxed);
  hhi_page_use_delayed_free(page, HH_NO_DELAYED_FREE, false);
  hhi_queue_remove(heap, &heap->pages[HH_BIN_FULL], page);
  hhi_page_flags_clear(page, HH_PAGE_IN_FULL);
  hhi_queue_push_back(heap, &heap->pages[page->bin], page);
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

void hhi_page_free(hh_page_t* page, hh_page_queue_t* pq, bool force) {
  hh_heap_t* heap = atomic_load_explicit(&page->heap, memory_order_relaxed);
  if (page->is_retired != 0) retired_remove(heap, page);
  hhi_queue_remove(heap, pq, page);
  heap->page_count--;
  hhi_segment_page_free(page, force);
}

/* The page's last block was freed. Small and medium pages are kept a few
 * generic-path calls (the next malloc of the class would need the page
 * again, and returning it to the segment costs); others go at once. */
void hhi_page_retire(hh_page_t* page) {
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
  hhi_page_free(page, hhi_queue_of(heap, page), false);
}

/* Called from the generic path only once the earliest lease is up
 * (heap->retired_check), so most calls do not touch the pages at all. A
 * page that is in use again stays listed until then. */
void hhi_page_collect_retired(hh_heap_t* heap, bool free_all, bool purge) {
  uint64_t now = heap->tld->heartbeat;
  uint64_t next = UINT64_MAX;
  size_t i = 0;
  while (i < heap->retired_count) {
    hh_page_t* page = heap->retired[i];
    if (!hhi_page_all_free(page)) {
      retired_remove(heap, page);  /* in use again */
    } else if (free_all || page->retire_at <= now) {
      retired_remove(heap, page);
      hhi_page_free(page, hhi_queue_of(heap, page), purge);
    } else {
      if (page->retire_at < next) next = page->retire_at;
      i++;
    }
  }
  heap->retired_check = next;
}

/* ---- adopting pages of abandoned segments ----------------------------------------*/
/* Adopt a page into heap, or free it if all its blocks came back (true). */
static bool page_reclaim(hh_heap_t* heap, hh_page_t* page) {
  atomic_store_explicit(&page->heap, heap, memory_order_release);
  hhi_page_use_delayed_free(page, HH_NO_DELAYED_FREE, true);
  hhi_page_flags_clear(page, HH_PAGE_IN_FULL);
  page->is_retired = 0;
  hhi_page_collect_free(page, false);
  heap->page_count++;
  hh_page_queue_t* pq = &heap->pages[page->bin];
  hhi_queue_push_back(heap, pq, page);
  if (!hhi_page_all_free(page)) return false;
  hhi_page_free(page, pq, false);
  return true;
}

bool hhi_page_reclaim_abandoned(hh_heap_t* heap) {
  hh_segment_t* segment = hhi_segment_reclaim_take(heap->tld);
  if (segment == NULL) return false;
  for (uint32_t i = 0; i < segment->page_count; i++) {
    hh_page_t* page = &segment->pages[i];
    if (!page->segment_in_use) continue;
    bool last = (segment->used == 1);
    /* freeing the segment's last page frees the segment: stop touching it */
    if (page_reclaim(heap, page) && last) return true;
  }
  hhi_segment_reclaim_done(segment);
  return true;
}

/* ---- finding a page --------------------------------------------------------------*/
static hh_page_t* queue_find_free(hh_heap_t* heap, hh_page_queue_t* pq, size_t bin) {
  for (int attempt = 0; attempt < 2; attempt++) {
    hh_page_t* page = pq->first;
    while (page != NULL) {
      hh_page_t* next = page->next;
      hhi_page_collect_free(page, false);
      if (page->free != NULL) return page;
      if (page->capacity < page->reserved) {
        /* Reuse before extending: blocks freed into the next page (one
         * that came back from the full queue) are resident already. */
        if (next != NULL) {
          hhi_page_collect_free(next, false);
          if (next->free != NULL) {
            hhi_queue_remove(heap, pq, next);
            hhi_queue_push_front(heap, pq, next);
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
    if (attempt == 0 && !hhi_page_reclaim_abandoned(heap->tld->heap_backing)) break;
  }
  return page_fresh(heap, pq, pq->block_size, bin);
}

/* Blocks above the medium size get a page of their own: a span of a large
 * segment, or a huge segment; so do blocks aligned beyond what fits a
 * small or medium block. */
static hh_page_t* single_page_alloc(hh_heap_t* heap, size_t size, size_t alignment) {
  hh_page_t* page;
  if (size <= HH_LARGE_OBJ_SIZE_MAX && alignment <= HH_SEGMENT_SIZE / 2 && hhi_span_can_hold(size, alignment)) {
    page = hhi_span_alloc(heap->tld, size, alignment);
  } else {
    page = hhi_segment_huge_alloc(heap->tld, size, alignment);
  }
  if (page == NULL) return NULL;
  page_init(heap, page, size, HH_BIN_HUGE);
  /* The single free of their block, from any thread, releases the page
   * directly (free.c:free_single); the heap only lists them, for
   * hh_heap_destroy and hh_heap_visit_blocks. */
  atomic_store_explicit(&page->thread_free, hhi_thread_free_make(NULL, HH_NEVER_DELAYED_FREE), memory_order_relaxed);
  hhi_singles_link(heap, page);
  return page;
}

hh_block_t* hhi_page_take_single(hh_page_t* page) {
  page->capacity = 1;
  page->used = 1;
  page->free_is_zero = page->is_zero_init;  /* calloc of fresh memory need not clear it */
  atomic_store_explicit(&page->single_live, 1, memory_order_relaxed);
  return (hh_block_t*)page->page_start;
}

bool hhi_single_claim(hh_page_t* page) {
  uint8_t live = 1;
  return atomic_compare_exchange_strong_explicit(&page->single_live, &live, 0, memory_order_acq_rel,
                                                 memory_order_relaxed);
}

void hhi_single_free(hh_page_t* page, hh_tld_t* tld) {
  switch (hhi_page_segment(page)->kind) {
    case HH_SEGMENT_LARGE: hhi_span_free(page, tld); return;
    case HH_SEGMENT_HUGE: hhi_segment_huge_free(page); return;
    case HH_SEGMENT_SMALL:
    case HH_SEGMENT_MEDIUM:
    case HH_SEGMENT_GUARDED: break;
  }
  hh_assert(!"not a single-block page");
}

bool hhi_single_resize(hh_page_t* page, size_t newsize) {
  switch (hhi_page_segment(page)->kind) {
    case HH_SEGMENT_LARGE: return hhi_span_resize(page, newsize);
    case HH_SEGMENT_HUGE: return hhi_segment_huge_resize(page, newsize);
    case HH_SEGMENT_SMALL:
    case HH_SEGMENT_MEDIUM:
    case HH_SEGMENT_GUARDED: break;
  }
  return false;
}

size_t hhi_single_block_size(size_t need) {
  return need <= HH_LARGE_OBJ_SIZE_MAX ? hhi_span_block_size(need) : hhi_align_up(need, hhi_os_page_size());
}

hh_page_t* hhi_page_find(hh_heap_t* heap, size_t size, size_t alignment) {
  if (size > HH_MEDIUM_OBJ_SIZE_MAX || alignment > HH_MIN_ALIGN) return single_page_alloc(heap, size, alignment);
  size_t bin = hhi_bin(size);
  return queue_find_free(heap, &heap->pages[bin], bin);
}
