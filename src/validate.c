/* hardheap: invariant checks of pages, segments and heaps.
 *
 * The invariants are the ones written above the structures in types.h and
 * listed in docs/design.md section 6. These functions only read (and walk
 * free lists through the validating accessor); tests call them after
 * randomized runs, the fuzzers after every input (hh_heap_validate). A
 * broken invariant is reported as HH_MISUSE_HEAP_INVARIANT with the rule
 * that broke. */
#include "internal.h"

/* Report that rule broke on page (may be NULL) and return false. */
static hh_cold bool broken(const hh_page_t* page, const char* rule) {
  hhi_misuse(HH_OP_VALIDATE, (hh_misuse_info_t){
                                 .kind = HH_MISUSE_HEAP_INVARIANT,
                                 .detail = rule,
                                 .page = page != NULL ? page->page_start : NULL,
                                 .segment = page != NULL ? (const void*)hhi_page_segment(page) : NULL,
                                 .size_class = page != NULL ? page->block_size : 0,
                             });
  return false;
}

#define CHECK(cond, page, rule) \
  do {                          \
    if (!(cond)) return broken((page), (rule)); \
  } while (0)

/* ---- pages --------------------------------------------------------------------*/
/* Does the list from b end in NULL? A walk through hhi_block_next stops
 * (after reporting it) at a link that leaves the page, which would
 * otherwise look like the list's end. */
static bool list_ends(const hh_page_t* page, const hh_block_t* b) {
  for (size_t steps = 0; b != NULL && steps <= page->capacity; steps++) {
    const hh_block_t* next = hhi_decode_link(page, b, b->next);
    if (!hhi_page_is_valid_link(page, next)) return false;
    b = next;
  }
  return b == NULL;
}

bool hhi_validate_page(const hh_page_t* page) {
  const hh_segment_t* segment = hhi_page_segment(page);
  CHECK(page->segment_in_use, page, "page in a heap but its slot is free");
  CHECK(page->block_size != 0, page, "page without a block size");
  CHECK(page->capacity <= page->reserved, page, "capacity above reserved");
  size_t area;
  uint8_t* start = hhi_segment_page_area(segment, page, &area);
  if (segment->kind == HH_SEGMENT_LARGE) {
    /* a large block lies in its span and its descriptor is the one of the
     * slice it starts in (span.c:span_place) */
    CHECK(page->page_start >= start && (size_t)(page->page_start - start) + page->block_size <= area &&
              hhi_lookup_page(segment, page->page_start) == page,
          page, "large block outside its span or not in its descriptor's slice");
  } else {
    CHECK(page->page_start == start, page, "page_start is not the start of its slot");
  }
  if (hhi_segment_kind_is_single(segment->kind)) {
    CHECK(page->bin == HH_BIN_HUGE, page, "single-block page not of bin HH_BIN_HUGE");
    CHECK(page->reserved == 1 && page->capacity == 1 && page->used <= 1, page, "single-block page counts");
    CHECK(page->free == NULL || page->used == 0, page, "single-block page both free and used");
    /* live 0 with used 1: another thread claimed the block and is about to
     * unlink the page (free.c:free_single), which it does under the lock
     * this check is made under */
    uint8_t live = atomic_load_explicit(&((hh_page_t*)page)->single_live, memory_order_relaxed);
    CHECK(live == page->used || (live == 0 && page->used == 1), page, "single-block page live flag");
    return true;
  }
  CHECK(page->block_size == hhi_bin_size(page->bin), page, "block size is not the size of the page's bin");
  CHECK(page->reserved == area / page->block_size, page, "reserved is not the blocks that fit the slot");
  uint64_t map[HH_PAGE_BLOCKS_MAX / 64];
  size_t counts[3];
  CHECK(hhi_page_free_map(page, map, counts), page,
        "free lists hold a block twice, off a boundary or beyond capacity");
  uintptr_t tf_head = atomic_load_explicit(&((hh_page_t*)page)->thread_free, memory_order_acquire);
  CHECK(list_ends(page, page->free) && list_ends(page, page->local_free) &&
            list_ends(page, hhi_thread_free_block(tf_head)),
        page, "a free-list link leaves the page");
  /* used still counts the blocks on thread_free (and on a heap's delayed list) */
  CHECK((size_t)page->used + counts[0] + counts[1] == page->capacity, page,
        "used + |free| + |local_free| != capacity");
  CHECK(counts[2] <= page->used, page, "more remote frees than blocks in use");
  if (HH_BLOCK_BITMAPS) {
    /* the bitmaps agree with the lists: listed on free or local_free =>
     * not live; on thread_free => live and remote; live count == used */
    hh_page_maps_t* maps = hhi_page_maps(page);
    uintptr_t tf = atomic_load_explicit(&((hh_page_t*)page)->thread_free, memory_order_acquire);
    const hh_block_t* remote_head = hhi_thread_free_block(tf);
    size_t live = 0;
    for (uint32_t w = 0; w < HH_PAGE_BLOCKS_MAX / 64; w++) {
      uint64_t bits = atomic_load_explicit(&maps->live[w], memory_order_relaxed);
      live += (size_t)__builtin_popcountll(bits);
      CHECK(w * 64 < page->capacity || bits == 0, page, "live bits beyond capacity");
    }
    CHECK(live + hhi_quarantine_count(page) == page->used, page,
          "live bitmap count and quarantined blocks are not used");
    for (uint32_t i = 0; i < page->capacity; i++) {
      bool listed = (map[i / 64] >> (i % 64)) & 1;
      bool is_live = hhi_map_test(maps->live, i);
      bool is_remote = hhi_map_test(maps->remote, i);
      if (listed && !is_remote) CHECK(!is_live, page, "a block on free or local_free is marked live");
      if (is_remote) CHECK(is_live, page, "a remotely freed block is not marked live");
    }
    for (const hh_block_t* b = remote_head; b != NULL; b = hhi_block_next(page, b)) {
      uint32_t i = hhi_block_index(page, (size_t)((const uint8_t*)b - page->page_start));
      CHECK(hhi_map_test(maps->remote, i), page, "a block on thread_free is not marked remotely freed");
    }
  }
  return true;
}

/* ---- segments ------------------------------------------------------------------*/
bool hhi_validate_segment(const hh_segment_t* segment) {
  const hh_page_t* first = &segment->pages[0];
  CHECK(segment->cookie == ((uintptr_t)segment ^ hhi_process_cookie), first, "segment cookie");
  CHECK(hhi_segment_map_contains(segment), first, "segment missing from the segment map");
  switch (segment->kind) {
    case HH_SEGMENT_SMALL:
    case HH_SEGMENT_MEDIUM: {
      uint32_t used = 0;
      for (uint32_t i = 0; i < segment->page_count; i++) {
        const hh_page_t* page = &segment->pages[i];
        CHECK(page->segment_idx == i, page, "page descriptor index");
        bool slot_free = ((segment->free_slots >> i) & 1) != 0;
        size_t area;
        (void)hhi_segment_page_area(segment, page, &area);
        CHECK(slot_free == (!page->segment_in_use && area > 0), page,
              "free_slots bitmap disagrees with segment_in_use");
        if (page->segment_in_use) used++;
      }
      CHECK(used == segment->used, first, "segment used count");
      CHECK((segment->free_slots != 0) == segment->in_free_queue || segment->tld == NULL, first,
            "segment with free slots not in its thread's free queue");
      return true;
    }
    case HH_SEGMENT_LARGE:
      return hhi_span_validate_segment(segment);
    case HH_SEGMENT_HUGE:
      CHECK(segment->page_count == 1 && segment->pages[0].segment_in_use, first, "huge segment page");
      return true;
    case HH_SEGMENT_GUARDED:
      CHECK(segment->page_count == 1 && !segment->pages[0].segment_in_use, first, "guarded segment page");
      return true;
  }
  return true;
}

/* ---- heaps ------------------------------------------------------------------------*/
static bool validate_queue(hh_heap_t* heap, size_t bin, size_t* pages, size_t* retired) {
  const hh_page_queue_t* pq = &heap->pages[bin];
  const hh_page_t* prev = NULL;
  for (const hh_page_t* page = pq->first; page != NULL; page = page->next) {
    CHECK(page->prev == prev, page, "page queue back link");
    CHECK(atomic_load_explicit(&((hh_page_t*)page)->heap, memory_order_relaxed) == heap, page,
          "page in a queue of another heap");
    bool in_full = (hhi_page_flags(page) & HH_PAGE_IN_FULL) != 0;
    if (bin == HH_BIN_FULL) {
      CHECK(in_full, page, "page in the full queue without IN_FULL");
    } else {
      CHECK(!in_full && page->bin == bin, page, "page in the queue of another size class");
    }
    if (!hhi_validate_page(page) || !hhi_validate_segment(hhi_page_segment(page))) return false;
    if (page->is_retired) (*retired)++;
    (*pages)++;
    if (*pages > ((size_t)1 << 40)) return broken(page, "page queue does not end");
    prev = page;
  }
  CHECK(pq->last == prev, prev, "page queue tail");
  return true;
}

bool hhi_validate_heap(hh_heap_t* heap) {
  size_t pages = 0, retired = 0;
  for (size_t bin = 1; bin < HH_BIN_COUNT; bin++) {
    if (!validate_queue(heap, bin, &pages, &retired)) return false;
  }
  CHECK(pages == heap->page_count, NULL, "heap page_count is not the pages in its queues");
  CHECK(retired == heap->retired_count, NULL, "pages marked retired are not the retired list");
  for (size_t i = 0; i < heap->retired_count; i++) {
    CHECK(heap->retired[i]->is_retired, heap->retired[i], "retired list holds a page not marked retired");
  }
  for (size_t w = 0; w < HH_PAGES_DIRECT; w++) {
    const hh_page_t* first = heap->pages[hhi_bin(w * HH_MIN_ALIGN)].first;
    const hh_page_t* expected = first != NULL ? first : &hhi_page_empty;
    CHECK(heap->pages_direct[w] == expected, first, "pages_direct is not the first page of its size class");
  }
  bool ok = true;
  hhi_singles_lock(heap);
  for (const hh_page_t* page = heap->singles; page != NULL && ok; page = page->next) {
    ok = atomic_load_explicit(&((hh_page_t*)page)->heap, memory_order_relaxed) == heap
             ? hhi_validate_page(page)
             : broken(page, "single-block page listed in another heap");
  }
  hhi_singles_unlock(heap);
  if (!ok) return false;
  /* the delayed list: every link a block of one of this heap's pages */
  size_t steps = 0;
  for (const hh_block_t* b = atomic_load_explicit(&heap->thread_delayed_free, memory_order_acquire); b != NULL;) {
    hh_block_ref_t ref;
    if (!hhi_page_lookup(b, HH_OP_NONE, &ref)) return broken(NULL, "delayed-free list leaves the heap");
    CHECK(ref.block == b, ref.page, "delayed-free list link off a block boundary");
    CHECK(++steps < ((size_t)1 << 32), ref.page, "delayed-free list does not end");
    b = hhi_decode_link(ref.page, b, b->next);
  }
  return hhi_quarantine_validate(heap);
}

bool hh_heap_validate(hh_heap_t* heap) {
  if (heap == NULL) heap = hhi_get_default_heap();
  if (!hhi_heap_is_initialized(heap)) return true;  /* nothing allocated yet */
  if (!hhi_heap_is_mine(heap)) {
    hhi_misuse(HH_OP_VALIDATE, (hh_misuse_info_t){.kind = HH_MISUSE_HEAP_NOT_OWNED, .heap = heap});
    return false;
  }
  return hhi_validate_heap(heap);
}
