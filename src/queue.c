/* hardheap: a heap's page queues, its direct page table, and its list of
 * single-block pages.
 *
 * A heap keeps one queue of pages per size class (plus the full queue);
 * pages_direct maps every small size to the first page of its class's
 * queue, so each edit of a queue's head refreshes it here (invariant 2 in
 * docs/design.md). Large and huge pages are freed by whichever thread frees
 * their block, so they are listed in heap->singles under a small lock. */
#include "internal.h"

#include <sched.h>

#define HH_DIRECT_EMPTY ((hh_page_t*)&hhi_page_empty)

/* pages_direct[w] for every wsize w of pq's class: its first page. */
static void queue_first_update(hh_heap_t* heap, const hh_page_queue_t* pq) {
  size_t size = pq->block_size;
  if (size > HH_SMALL_SIZE_MAX) return;
  hh_page_t* page = pq->first != NULL ? pq->first : HH_DIRECT_EMPTY;
  size_t bin = (size_t)(pq - heap->pages);
  /* the wsizes that map to this bin: (size of previous bin, size] */
  size_t start = bin <= 1 ? 0 : hhi_wsize_of(hhi_bin_size(bin - 1)) + 1;
  size_t end = hhi_wsize_of(size);
  for (size_t w = start; w <= end; w++) heap->pages_direct[w] = page;
}

hh_page_queue_t* hhi_queue_of(hh_heap_t* heap, const hh_page_t* page) {
  return &heap->pages[(hhi_page_flags(page) & HH_PAGE_IN_FULL) ? HH_BIN_FULL : page->bin];
}

void hhi_queue_remove(hh_heap_t* heap, hh_page_queue_t* pq, hh_page_t* page) {
  bool was_first = (pq->first == page);
  if (page->prev != NULL) page->prev->next = page->next;
  if (page->next != NULL) page->next->prev = page->prev;
  if (pq->last == page) pq->last = page->prev;
  if (was_first) {
    pq->first = page->next;
    queue_first_update(heap, pq);
  }
  page->next = page->prev = NULL;
}

void hhi_queue_push_front(hh_heap_t* heap, hh_page_queue_t* pq, hh_page_t* page) {
  page->prev = NULL;
  page->next = pq->first;
  if (pq->first != NULL) pq->first->prev = page; else pq->last = page;
  pq->first = page;
  queue_first_update(heap, pq);
}

void hhi_queue_push_back(hh_heap_t* heap, hh_page_queue_t* pq, hh_page_t* page) {
  page->next = NULL;
  page->prev = pq->last;
  if (pq->last != NULL) pq->last->next = page;
  pq->last = page;
  if (pq->first == NULL) {
    pq->first = page;
    queue_first_update(heap, pq);
  }
}

/* ---- single-block pages -------------------------------------------------------
 * Heap structures are never returned to the OS (they are pooled), so a
 * thread that read page->heap can always lock that heap and then re-check. */
void hhi_singles_lock(hh_heap_t* heap) {
  while (atomic_exchange_explicit(&heap->singles_lock, true, memory_order_acquire)) sched_yield();
}

void hhi_singles_unlock(hh_heap_t* heap) {
  atomic_store_explicit(&heap->singles_lock, false, memory_order_release);
}

void hhi_singles_link(hh_heap_t* heap, hh_page_t* page) {
  hhi_singles_lock(heap);
  atomic_store_explicit(&page->heap, heap, memory_order_release);
  page->prev = NULL;
  page->next = heap->singles;
  if (heap->singles != NULL) heap->singles->prev = page;
  heap->singles = page;
  hhi_singles_unlock(heap);
}

void hhi_singles_remove(hh_heap_t* heap, hh_page_t* page) {
  if (page->prev != NULL) page->prev->next = page->next; else heap->singles = page->next;
  if (page->next != NULL) page->next->prev = page->prev;
  page->next = page->prev = NULL;
  atomic_store_explicit(&page->heap, NULL, memory_order_release);
}

void hhi_singles_unlink(hh_page_t* page) {
  for (;;) {
    hh_heap_t* heap = atomic_load_explicit(&page->heap, memory_order_acquire);
    if (heap == NULL) return;
    hhi_singles_lock(heap);
    bool still_there = atomic_load_explicit(&page->heap, memory_order_relaxed) == heap;
    if (still_there) hhi_singles_remove(heap, page);
    hhi_singles_unlock(heap);
    if (still_there) return;
  }
}
