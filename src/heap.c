/* hardheap: heaps.
 *
 * Each thread allocates from its own heap, found through one thread-local
 * pointer. Before a thread's first allocation that pointer is &hh_heap_empty,
 * whose every page is the empty page, so the first malloc falls into the
 * generic path which creates the heap. The first thread (the one that starts
 * the process) gets the static hh_heap_main, so allocation works before TLS
 * destructors or constructors could run. */
#include "internal.h"

#include <pthread.h>

#define HH_DIRECT_EMPTY ((hh_page_t*)&hh_page_empty)

const hh_heap_t hh_heap_empty = {
    .tld = NULL,
    .pages_direct = {[0 ... HH_PAGES_DIRECT - 1] = HH_DIRECT_EMPTY},
};

__thread hh_heap_t* hh_heap_default hh_tls_initial_exec = (hh_heap_t*)&hh_heap_empty;

hh_heap_t hh_heap_main;
static hh_tld_t tld_main;
static atomic_bool main_heap_claimed;

/* A thread's heap and tld live together in one OS allocation; those of
 * exited threads are kept on a list for the next thread. */
typedef struct hh_thread_data_s {
  hh_heap_t heap;
  hh_tld_t tld;
  struct hh_thread_data_s* next_free;  /* link while on the free list */
} hh_thread_data_t;

static pthread_mutex_t thread_data_lock = PTHREAD_MUTEX_INITIALIZER;
static hh_thread_data_t* thread_data_free;
static pthread_key_t thread_key;
static bool thread_key_ready;

static void thread_done(void* value);

void hh_heap_process_init(void) {
  if (pthread_key_create(&thread_key, thread_done) == 0) thread_key_ready = true;
}

/* ---- direct pages --------------------------------------------------------*/
void hh_heap_queue_first_update(hh_heap_t* heap, const hh_page_queue_t* pq) {
  size_t size = pq->block_size;
  if (size > HH_SMALL_SIZE_MAX) return;
  hh_page_t* page = pq->first != NULL ? pq->first : HH_DIRECT_EMPTY;
  size_t bin = (size_t)(pq - heap->pages);
  /* the wsizes that map to this bin: (size of previous bin, size] */
  size_t start = bin <= 1 ? 0 : hh_wsize_of(hh_bin_size(bin - 1)) + 1;
  size_t end = hh_wsize_of(size);
  for (size_t w = start; w <= end; w++) heap->pages_direct[w] = page;
}

static void heap_init(hh_heap_t* heap, hh_tld_t* tld) {
  memset(heap, 0, sizeof(*heap));
  memset(tld, 0, sizeof(*tld));
  heap->tld = tld;
  tld->heap_backing = heap;
  for (size_t w = 0; w < HH_PAGES_DIRECT; w++) heap->pages_direct[w] = HH_DIRECT_EMPTY;
  for (size_t bin = 0; bin <= HH_BIN_LARGE_MAX; bin++) heap->pages[bin].block_size = hh_bin_size(bin);
  heap->pages[HH_BIN_HUGE].block_size = HH_LARGE_OBJ_SIZE_MAX + HH_MIN_ALIGN;
  heap->pages[HH_BIN_FULL].block_size = HH_LARGE_OBJ_SIZE_MAX + 2 * HH_MIN_ALIGN;
  heap->thread_id = hh_thread_id();
  heap->random = hh_random_seed();
  heap->keys[0] = hh_random_next(&heap->random);
  heap->keys[1] = hh_random_next(&heap->random);
}

static hh_thread_data_t* thread_data_alloc(void) {
  pthread_mutex_lock(&thread_data_lock);
  hh_thread_data_t* td = thread_data_free;
  if (td != NULL) thread_data_free = td->next_free;
  pthread_mutex_unlock(&thread_data_lock);
  if (td != NULL) return td;
  return hh_os_alloc_aligned(sizeof(hh_thread_data_t), hh_os_page_size(), 0);
}

static void thread_data_release(hh_thread_data_t* td) {
  pthread_mutex_lock(&thread_data_lock);
  td->next_free = thread_data_free;
  thread_data_free = td;
  pthread_mutex_unlock(&thread_data_lock);
}

hh_heap_t* hh_heap_thread_init(void) {
  hh_process_init();
  hh_heap_t* heap = hh_heap_default;
  if (hh_heap_is_initialized(heap)) return heap;
  bool expected = false;
  if (atomic_compare_exchange_strong(&main_heap_claimed, &expected, true)) {
    heap = &hh_heap_main;
    heap_init(heap, &tld_main);
  } else {
    hh_thread_data_t* td = thread_data_alloc();
    if (td == NULL) return NULL;
    heap = &td->heap;
    heap_init(heap, &td->tld);
  }
  hh_heap_default = heap;
  /* after setting the default: pthread_setspecific may itself allocate */
  if (thread_key_ready) pthread_setspecific(thread_key, heap);
  return heap;
}

/* ---- delayed frees ------------------------------------------------------------*/
void hh_heap_delayed_free_all(hh_heap_t* heap) {
  hh_block_t* block = atomic_exchange_explicit(&heap->thread_delayed_free, NULL, memory_order_acquire);
  while (block != NULL) {
    hh_page_t* page = hh_segment_page_of(hh_ptr_segment(block), block);
    hh_block_t* next = hh_decode_link(page, block, block->next);
    if (HH_CHECK_FREE && next != NULL && !hh_segment_is_ours(hh_ptr_segment(next))) {
      hh_report_corrupt_link(page, block, (uintptr_t)next);
    }
    hh_free_delayed_block(block);
    block = next;
  }
}

/* ---- collection ---------------------------------------------------------------*/
typedef void (*hh_page_visitor_t)(hh_heap_t* heap, hh_page_queue_t* pq, hh_page_t* page, bool force);

/* Call fn on every page of heap; fn may free the page it is given. */
static void heap_visit_pages(hh_heap_t* heap, hh_page_visitor_t fn, bool force) {
  for (size_t bin = 0; bin < HH_BIN_COUNT; bin++) {
    hh_page_queue_t* pq = &heap->pages[bin];
    hh_page_t* page = pq->first;
    while (page != NULL) {
      hh_page_t* next = page->next;
      fn(heap, pq, page, force);
      page = next;
    }
  }
}

static void page_collect_visitor(hh_heap_t* heap, hh_page_queue_t* pq, hh_page_t* page, bool force) {
  (void)heap;
  hh_page_collect_free(page, force);
  if (hh_page_all_free(page)) {
    hh_page_free(page, pq, force);
  }
}

void hh_heap_collect(hh_heap_t* heap, bool force) {
  if (!hh_heap_is_initialized(heap)) return;
  hh_heap_delayed_free_all(heap);
  hh_heap_collect_retired(heap, force);
  heap_visit_pages(heap, page_collect_visitor, force);
  hh_segments_collect(heap->tld, force);
}

void hh_collect(bool force) {
  hh_heap_collect(hh_get_default_heap(), force);
}

/* ---- thread exit ---------------------------------------------------------------*/
static void page_never_delayed_visitor(hh_heap_t* heap, hh_page_queue_t* pq, hh_page_t* page, bool force) {
  (void)heap; (void)pq; (void)force;
  hh_page_use_delayed_free(page, HH_NEVER_DELAYED_FREE, false);
}

static void page_abandon_visitor(hh_heap_t* heap, hh_page_queue_t* pq, hh_page_t* page, bool force) {
  (void)heap; (void)pq; (void)force;
  atomic_store_explicit(&page->heap, NULL, memory_order_release);
  hh_segment_abandon(hh_page_segment(page));
}

static void thread_done(void* value) {
  hh_heap_t* heap = value;
  if (heap == NULL || !hh_heap_is_initialized(heap)) return;
  /* 1. stop remote frees from targeting this heap (waits out pushes in flight),
   * 2. take in what they sent and free every empty page,
   * 3. leave the rest to whichever thread reclaims it. */
  heap_visit_pages(heap, page_never_delayed_visitor, false);
  hh_heap_collect(heap, true);
  heap_visit_pages(heap, page_abandon_visitor, false);
  hh_segments_collect(heap->tld, true);
  hh_heap_default = (hh_heap_t*)&hh_heap_empty;
  if (heap == &hh_heap_main) {
    heap_init(heap, &tld_main);  /* clean, but unowned: main_heap_claimed stays set */
  } else {
    thread_data_release((hh_thread_data_t*)((uint8_t*)heap - offsetof(hh_thread_data_t, heap)));
  }
}
