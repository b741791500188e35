/* hardheap: heaps.
 *
 * Each thread allocates from its own heap, found through one thread-local
 * pointer. Before a thread's first allocation that pointer is &hhi_heap_empty,
 * whose every page is the empty page, so the first malloc falls into the
 * generic path which creates the heap. The first thread (the one that starts
 * the process) gets the static hhi_heap_main, so allocation works before TLS
 * destructors or constructors could run. */
#include "internal.h"

#include <pthread.h>

#define HH_DIRECT_EMPTY ((hh_page_t*)&hhi_page_empty)

const hh_heap_t hhi_heap_empty = {
    .tld = NULL,
    .pages_direct = {[0 ... HH_PAGES_DIRECT - 1] = HH_DIRECT_EMPTY},
};

__thread hh_heap_t* hhi_heap_default hh_tls_initial_exec = (hh_heap_t*)&hhi_heap_empty;

hh_heap_t hhi_heap_main;
static hh_tld_t tld_main;
static atomic_bool main_heap_claimed;

/* A thread's heap and tld live together in one OS allocation; those of
 * exited threads are kept on a list for the next thread. */
typedef struct hh_thread_data_s {
  hh_heap_t heap;
  hh_tld_t tld;
  struct hh_thread_data_s* next_free;  /* link while on the free list */
  struct hh_thread_data_s* next_all;   /* link in the list of every thread data ever mapped */
} hh_thread_data_t;

static pthread_mutex_t thread_data_lock = PTHREAD_MUTEX_INITIALIZER;
static hh_thread_data_t* thread_data_free;
static hh_thread_data_t* thread_data_all;   /* never shrinks: heap memory is never unmapped */
static pthread_key_t thread_key;
static bool thread_key_ready;

static void thread_done(void* value);

void hhi_heap_process_init(void) {
  if (pthread_key_create(&thread_key, thread_done) == 0) thread_key_ready = true;
}

/* Initialise heap as a heap of the thread whose data is tld. */

static void heap_init(hh_heap_t* heap, hh_tld_t* tld) {
  /* a first-class heap is keyed from its thread's heap (no system call) */
  hh_heap_t* key_from = tld->heap_backing != heap ? tld->heap_backing : NULL;
  hhi_singles_lock(heap);
  memset(heap, 0, offsetof(hh_heap_t, singles_lock));
  hhi_singles_unlock(heap);
  heap->tld = tld;
  for (size_t w = 0; w < HH_PAGES_DIRECT; w++) heap->pages_direct[w] = HH_DIRECT_EMPTY;
  for (size_t bin = 0; bin <= HH_BIN_LARGE_MAX; bin++) heap->pages[bin].block_size = hhi_bin_size(bin);
  heap->pages[HH_BIN_HUGE].block_size = HH_LARGE_OBJ_SIZE_MAX + HH_MIN_ALIGN;
  heap->pages[HH_BIN_FULL].block_size = HH_LARGE_OBJ_SIZE_MAX + 2 * HH_MIN_ALIGN;
  heap->thread_id = hhi_thread_id();
  hhi_random_heap_init(heap, key_from);
  heap->quarantine_state = hhi_random_shuffle_seed(heap);
  /* a thread's own heap samples; first-class heaps do not (guarded.c) */
  hhi_guarded_heap_init(heap, tld->heap_backing == NULL || tld->heap_backing == heap);
}

static hh_thread_data_t* thread_data_alloc(void) {
  pthread_mutex_lock(&thread_data_lock);
  hh_thread_data_t* td = thread_data_free;
  if (td != NULL) thread_data_free = td->next_free;
  pthread_mutex_unlock(&thread_data_lock);
  if (td != NULL) return td;
  if (HH_GUARD_THREAD_DATA) {
    /* away from every block, between guard pages: an overflow off a block
     * cannot reach another thread's pages_direct */
    uintptr_t hint = HH_RANDOM_ADDRESSES ? hhi_random_address(NULL, hhi_os_page_size()) : 0;
    td = hhi_os_alloc_guarded(sizeof(hh_thread_data_t), hint);
  } else {
    td = hhi_os_alloc_aligned(sizeof(hh_thread_data_t), hhi_os_page_size(), 0, 0, false, false);
  }
  if (td == NULL) return NULL;
  pthread_mutex_lock(&thread_data_lock);
  hh_thread_data_t** link = &thread_data_all;  /* sorted by address: fork's lock order */
  while (*link != NULL && *link < td) link = &(*link)->next_all;
  td->next_all = *link;
  *link = td;
  pthread_mutex_unlock(&thread_data_lock);
  return td;
}

void hhi_tlds_visit(void (*visit)(hh_tld_t* tld, void* arg), void* arg) {
  pthread_mutex_lock(&thread_data_lock);
  visit(&tld_main, arg);
  for (hh_thread_data_t* td = thread_data_all; td != NULL; td = td->next_all) visit(&td->tld, arg);
  pthread_mutex_unlock(&thread_data_lock);
}

static void thread_data_release(hh_thread_data_t* td) {
  pthread_mutex_lock(&thread_data_lock);
  td->next_free = thread_data_free;
  thread_data_free = td;
  pthread_mutex_unlock(&thread_data_lock);
}

hh_heap_t* hhi_heap_thread_init(void) {
  hhi_process_init();
  hh_heap_t* heap = hhi_heap_default;
  if (hhi_heap_is_initialized(heap)) return heap;
  bool expected = false;
  hh_tld_t* tld;
  if (atomic_compare_exchange_strong(&main_heap_claimed, &expected, true)) {
    heap = &hhi_heap_main;
    tld = &tld_main;
  } else {
    hh_thread_data_t* td = thread_data_alloc();
    if (td == NULL) return NULL;
    heap = &td->heap;
    tld = &td->tld;
  }
  /* the purger may still be looking at a previous thread's use of it */
  hhi_tld_lock(tld);
  memset(tld, 0, offsetof(hh_tld_t, lock_owner));
  tld->thread_id = hhi_thread_id();
  heap_init(heap, tld);
  tld->heap_backing = heap;
  hhi_chacha_derive(&tld->address_stream, &heap->keys_stream, 3);
  tld->choice_state = hhi_chacha_next(&tld->address_stream);
  atomic_store_explicit(&tld->active, true, memory_order_relaxed);
  hhi_tld_unlock(tld);
  hhi_heap_default = heap;
  /* after setting the default: pthread_setspecific may itself allocate */
  if (thread_key_ready) pthread_setspecific(thread_key, heap);
  return heap;
}

/* ---- delayed frees ------------------------------------------------------------
 * Other threads push blocks of this heap's full pages here (page.c:
 * hhi_block_free_remote), links encoded with the block's page keys. */
void hhi_heap_delayed_free_all(hh_heap_t* heap) {
  hh_block_t* block = atomic_exchange_explicit(&heap->thread_delayed_free, NULL, memory_order_acquire);
  hh_block_t* prev = NULL;
  size_t steps = 0;
  while (block != NULL) {
    /* every link is checked like a pointer passed to free: a block of a
     * page of this heap (then page.c checks it was freed remotely) */
    hh_block_ref_t ref;
    if (hh_unlikely(!hhi_page_lookup(block, HH_OP_NONE, &ref) || ref.block != block ||
                    atomic_load_explicit(&ref.page->heap, memory_order_relaxed) != heap ||
                    hhi_segment_kind_is_single(ref.segment->kind) || ++steps > ((size_t)1 << 40))) {
      hhi_misuse(HH_OP_NONE, (hh_misuse_info_t){.kind = HH_MISUSE_DELAYED_LIST_CORRUPTED,
                                                .heap = heap,
                                                .block = prev,
                                                .value = (uintptr_t)block});
      return;  /* going on: the rest of the list is lost */
    }
    hh_block_t* next = hhi_decode_link(ref.page, block, block->next);
    hhi_page_free_delayed_block(&ref);
    prev = block;
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
  hhi_page_collect_free(page, force);
  if (hhi_page_all_free(page)) {
    hhi_page_free(page, pq, force);
  }
}

void hhi_tld_collect(hh_tld_t* tld, bool force) {
  hhi_spans_collect(tld, force);
  hhi_segments_collect(tld, force);
}

void hh_heap_collect(hh_heap_t* heap, bool force) {
  if (!hhi_heap_is_mine(heap)) return;
  hhi_quarantine_flush(heap);
  hhi_heap_deferred_free(heap, force);
  hhi_heap_delayed_free_all(heap);
  hhi_page_collect_retired(heap, force, force);
  heap_visit_pages(heap, page_collect_visitor, force);
  hhi_tld_collect(heap->tld, force);
}

void hh_collect(bool force) {
  hh_heap_collect(hhi_get_default_heap(), force);
}

/* Let go of every single-block page of heap (they become unlisted). */
static void singles_release_all(hh_heap_t* heap) {
  hhi_singles_lock(heap);
  while (heap->singles != NULL) hhi_singles_remove(heap, heap->singles);
  hhi_singles_unlock(heap);
}

/* ---- fork -------------------------------------------------------------------------
 * A child of a multi-threaded parent has only the forking thread: every lock
 * another thread held at fork time would stay held forever. So the parent
 * takes every allocator lock before fork and both sides release them. */
/* Heap locks are taken in address order (thread_data_all is kept sorted by
 * address, and the static main heap is slotted in), the same order as
 * heap_absorb's, so fork cannot deadlock with a heap being deleted. */
static pthread_mutex_t deferred_lock;

void hhi_heap_fork_prepare(void) {
  pthread_mutex_lock(&deferred_lock);
  pthread_mutex_lock(&thread_data_lock);
  bool main_locked = false;
  for (hh_thread_data_t* td = thread_data_all; td != NULL; td = td->next_all) {
    if (!main_locked && &hhi_heap_main < &td->heap) {
      hhi_singles_lock(&hhi_heap_main);
      main_locked = true;
    }
    hhi_singles_lock(&td->heap);
  }
  if (!main_locked) hhi_singles_lock(&hhi_heap_main);
}

void hhi_heap_fork_release(void) {
  for (hh_thread_data_t* td = thread_data_all; td != NULL; td = td->next_all) hhi_singles_unlock(&td->heap);
  hhi_singles_unlock(&hhi_heap_main);
  pthread_mutex_unlock(&thread_data_lock);
  pthread_mutex_unlock(&deferred_lock);
}

void hhi_heap_fork_child_reseed(void) {
  hh_heap_t* heap = hhi_heap_default;
  if (!hhi_heap_is_initialized(heap) || heap->tld == NULL) return;
  hh_tld_t* tld = heap->tld;
  hh_heap_t* backing = tld->heap_backing;
  hhi_random_heap_init(backing, NULL);
  hhi_chacha_derive(&tld->address_stream, &backing->keys_stream, 3);
  tld->choice_state = hhi_chacha_next(&tld->address_stream);
  for (hh_heap_t* h = tld->heaps; h != NULL; h = h->next) hhi_random_heap_init(h, backing);
}

/* ---- deferred free --------------------------------------------------------------*/
/* The function and its argument change together: writers (serialised by a
 * mutex) bump a sequence number around the update; readers retry until they
 * saw an even, unchanged sequence, so they never pair one registration's
 * function with another's argument. */
static pthread_mutex_t deferred_lock = PTHREAD_MUTEX_INITIALIZER;  /* declared above, for fork */
static _Atomic(unsigned long) deferred_seq;
static _Atomic(hh_deferred_free_fun*) deferred_fn;
static _Atomic(void*) deferred_arg;

void hh_register_deferred_free(hh_deferred_free_fun* fn, void* arg) {
  pthread_mutex_lock(&deferred_lock);
  atomic_fetch_add_explicit(&deferred_seq, 1, memory_order_relaxed);  /* odd: update under way */
  atomic_thread_fence(memory_order_release);
  atomic_store_explicit(&deferred_fn, fn, memory_order_relaxed);
  atomic_store_explicit(&deferred_arg, arg, memory_order_relaxed);
  atomic_fetch_add_explicit(&deferred_seq, 1, memory_order_release);  /* even: done */
  pthread_mutex_unlock(&deferred_lock);
}

void hhi_heap_deferred_free(hh_heap_t* heap, bool force) {
  if (atomic_load_explicit(&deferred_fn, memory_order_relaxed) == NULL || heap->tld->in_deferred) return;
  hh_deferred_free_fun* fn;
  void* arg;
  for (;;) {
    unsigned long before = atomic_load_explicit(&deferred_seq, memory_order_acquire);
    fn = atomic_load_explicit(&deferred_fn, memory_order_relaxed);
    arg = atomic_load_explicit(&deferred_arg, memory_order_relaxed);
    atomic_thread_fence(memory_order_acquire);
    if ((before & 1) == 0 && atomic_load_explicit(&deferred_seq, memory_order_relaxed) == before) break;
    sched_yield();
  }
  if (fn == NULL) return;
  heap->tld->in_deferred = true;
  fn(force, (unsigned long long)heap->tld->heartbeat, arg);
  heap->tld->in_deferred = false;
}

/* ---- first-class heaps -----------------------------------------------------------*/
bool hhi_heap_is_mine(const hh_heap_t* heap) {
  return heap != NULL && hhi_heap_is_initialized(heap) && heap->tld != NULL && heap->thread_id == hhi_thread_id();
}

static bool heap_check_mine(const hh_heap_t* heap, hh_op_t op) {
  if (hhi_heap_is_mine(heap)) return true;
  if (heap != NULL) hhi_misuse(op, (hh_misuse_info_t){.kind = HH_MISUSE_HEAP_NOT_OWNED, .heap = heap});
  return false;
}

hh_heap_t* hh_heap_new(void) {
  hh_heap_t* current = hhi_heap_thread_init();
  hh_thread_data_t* td = current == NULL ? NULL : thread_data_alloc();
  if (td == NULL) {
    errno = ENOMEM;
    return NULL;
  }
  hh_tld_t* tld = current->tld;
  hh_heap_t* heap = &td->heap;
  heap_init(heap, tld);
  heap->next = tld->heaps;
  tld->heaps = heap;
  return heap;
}

static void page_never_delayed_visitor(hh_heap_t* heap, hh_page_queue_t* pq, hh_page_t* page, bool force) {
  (void)heap; (void)pq; (void)force;
  hhi_page_use_delayed_free(page, HH_NEVER_DELAYED_FREE, false);
}

/* Move every page of `from` into `into` (both of the calling thread). */
static void heap_absorb(hh_heap_t* into, hh_heap_t* from) {
  hhi_quarantine_flush(from);
  /* no remote free may target from's delayed list once we start moving */
  heap_visit_pages(from, page_never_delayed_visitor, false);
  hhi_heap_delayed_free_all(from);
  for (size_t i = 0; i < from->retired_count; i++) from->retired[i]->is_retired = 0;
  from->retired_count = 0;
  for (size_t bin = 0; bin < HH_BIN_COUNT; bin++) {
    hh_page_queue_t* pq = &from->pages[bin];
    hh_page_t* page;
    while ((page = pq->first) != NULL) {
      hhi_queue_remove(from, pq, page);
      hhi_page_flags_clear(page, HH_PAGE_IN_FULL);
      atomic_store_explicit(&page->heap, into, memory_order_release);
      hhi_queue_push_back(into, &into->pages[page->bin], page);
      hhi_page_use_delayed_free(page, HH_NO_DELAYED_FREE, true);
      from->page_count--;
      into->page_count++;
    }
  }
  /* two locks: always in address order (see hh_heap_fork_prepare) */
  hhi_singles_lock(from < into ? from : into);
  hhi_singles_lock(from < into ? into : from);
  hh_page_t* page = from->singles;
  while (page != NULL) {
    hh_page_t* next = page->next;
    atomic_store_explicit(&page->heap, into, memory_order_release);
    page->prev = NULL;
    page->next = into->singles;
    if (into->singles != NULL) into->singles->prev = page;
    into->singles = page;
    page = next;
  }
  from->singles = NULL;
  hhi_singles_unlock(into);
  hhi_singles_unlock(from);
}

/* Unlink a first-class heap from its thread and return its memory to the pool. */
static void heap_release(hh_heap_t* heap) {
  hh_tld_t* tld = heap->tld;
  hhi_heap_stats_flush(heap);
  for (hh_heap_t** link = &tld->heaps; *link != NULL; link = &(*link)->next) {
    if (*link == heap) {
      *link = heap->next;
      break;
    }
  }
  if (hhi_heap_default == heap) hhi_heap_default = tld->heap_backing;
  heap->tld = NULL;
  heap->thread_id = 0;
  thread_data_release((hh_thread_data_t*)((uint8_t*)heap - offsetof(hh_thread_data_t, heap)));
}

void hh_heap_delete(hh_heap_t* heap) {
  if (heap == NULL || !heap_check_mine(heap, HH_OP_HEAP_DELETE)) return;
  hh_heap_t* backing = heap->tld->heap_backing;
  if (heap == backing) return;
  heap_absorb(backing, heap);
  heap_release(heap);
}

static void page_destroy_visitor(hh_heap_t* heap, hh_page_queue_t* pq, hh_page_t* page, bool force) {
  (void)force;
  hhi_queue_remove(heap, pq, page);
  heap->page_count--;
  /* live blocks were never zeroed: with HH_ZERO_ON_FREE their memory goes */
  hhi_segment_page_free(page, HH_ZERO_ON_FREE && page->used != 0);
}

void hh_heap_destroy(hh_heap_t* heap) {
  if (heap == NULL || !heap_check_mine(heap, HH_OP_HEAP_DESTROY)) return;
  if (heap == heap->tld->heap_backing) {
    hhi_misuse(HH_OP_HEAP_DESTROY, (hh_misuse_info_t){.kind = HH_MISUSE_BACKING_HEAP_DESTROY, .heap = heap});
    return;
  }
  hhi_track_heap_destroy(heap);
  for (size_t i = 0; i < heap->retired_count; i++) heap->retired[i]->is_retired = 0;
  heap->retired_count = 0;
  hhi_quarantine_drop(heap);  /* its blocks' pages go now */
  heap_visit_pages(heap, page_destroy_visitor, false);
  hhi_singles_lock(heap);
  while (heap->singles != NULL) {
    hh_page_t* page = heap->singles;
    hhi_singles_remove(heap, page);
    if (hhi_single_claim(page)) hhi_single_free(page, heap->tld);
  }
  hhi_singles_unlock(heap);
  heap_release(heap);
}

hh_heap_t* hh_heap_set_default(hh_heap_t* heap) {
  if (!heap_check_mine(heap, HH_OP_HEAP_SET_DEFAULT)) return NULL;
  hh_heap_t* old = hhi_heap_default;
  hhi_heap_default = heap;
  return old;
}

hh_heap_t* hh_heap_get_default(void) {
  return hhi_heap_thread_init();
}

hh_heap_t* hh_heap_get_backing(void) {
  hh_heap_t* heap = hhi_heap_thread_init();
  return heap == NULL ? NULL : heap->tld->heap_backing;
}

bool hh_heap_contains(const hh_heap_t* heap, const void* p) {
  hh_block_ref_t ref;
  if (heap == NULL) return false;
  if (HH_GUARDED) {
    const hh_heap_t* owner = hhi_guarded_owner(p);
    if (owner != NULL) return owner == heap;
  }
  if (!hhi_page_lookup(p, HH_OP_NONE, &ref)) return false;
  return atomic_load_explicit(&ref.page->heap, memory_order_acquire) == heap;
}

bool hh_heap_check_owned(hh_heap_t* heap, const void* p) {
  if (!hhi_heap_is_mine(heap)) return false;
  hhi_heap_delayed_free_all(heap);  /* remote frees into full pages wait there */
  if (HH_GUARDED) {
    const hh_heap_t* owner = hhi_guarded_owner(p);
    if (owner != NULL) return owner == heap;
  }
  hh_block_ref_t ref;
  if (!hhi_page_lookup(p, HH_OP_NONE, &ref)) return false;
  hh_page_t* page = ref.page;
  if (atomic_load_explicit(&page->heap, memory_order_acquire) != heap) return false;
  if ((size_t)((uint8_t*)ref.block - page->page_start) >= (size_t)page->capacity * page->block_size) return false;
  if (page->reserved == 1) return true;  /* single-block page: listed means allocated */
  return !hhi_page_block_is_free(page, ref.block);
}

/* Visit one page: the area, then (with all) its allocated blocks. */
static bool visit_page(hh_heap_t* heap, hh_page_t* page, bool all, hh_block_visit_fun* visitor, void* arg) {
  hhi_page_collect_free(page, false);  /* bring `used` up to date */
  hh_heap_area_t area = {page->page_start, (size_t)page->reserved * page->block_size,
                         (size_t)page->capacity * page->block_size, page->used, page->block_size};
  if (!visitor(heap, &area, NULL, page->block_size, arg)) return false;
  if (!all || page->used == 0) return true;
  if (page->reserved == 1) return visitor(heap, &area, page->page_start, page->block_size, arg);
  /* mark the free blocks, then visit the others */
  uint64_t free_map[HH_PAGE_BLOCKS_MAX / 64];
  size_t counts[3];
  if (!hhi_page_free_map(page, free_map, counts)) return false;  /* corrupted: do not guess */
  for (size_t idx = 0; idx < page->capacity; idx++) {
    if (free_map[idx / 64] & ((uint64_t)1 << (idx % 64))) continue;
    if (!visitor(heap, &area, page->page_start + idx * page->block_size, page->block_size, arg)) return false;
  }
  return true;
}

bool hh_heap_visit_blocks(hh_heap_t* heap, bool visit_all_blocks, hh_block_visit_fun* visitor, void* arg) {
  if (visitor == NULL || !heap_check_mine(heap, HH_OP_HEAP_VISIT)) return false;
  hhi_heap_delayed_free_all(heap);  /* remote frees into full pages wait there */
  hhi_quarantine_flush(heap);       /* and freed blocks in the quarantine */
  for (size_t bin = 0; bin < HH_BIN_COUNT; bin++) {
    for (hh_page_t* page = heap->pages[bin].first; page != NULL; page = page->next) {
      if (!visit_page(heap, page, visit_all_blocks, visitor, arg)) return false;
    }
  }
  bool go_on = true;
  hhi_singles_lock(heap);
  for (hh_page_t* page = heap->singles; page != NULL && go_on; page = page->next) {
    go_on = visit_page(heap, page, visit_all_blocks, visitor, arg);
  }
  hhi_singles_unlock(heap);
  return go_on;
}

/* ---- thread exit ---------------------------------------------------------------*/
static void thread_done(void* value) {
  hh_heap_t* heap = value;
  if (heap == NULL || !hhi_heap_is_initialized(heap)) return;
  hh_tld_t* tld = heap->tld;
  hhi_heap_default = heap;
  /* the thread's other heaps hand their blocks to the backing heap */
  while (tld->heaps != NULL) {
    hh_heap_t* h = tld->heaps;
    heap_absorb(heap, h);
    heap_release(h);
  }
  hhi_quarantine_flush(heap);
  /* 1. stop remote frees from targeting this heap (waits out pushes in flight),
   * 2. take in what they sent and free every empty page,
   * 3. leave the rest to whichever thread reclaims it. */
  heap_visit_pages(heap, page_never_delayed_visitor, false);
  hhi_heap_deferred_free(heap, true);
  hhi_heap_delayed_free_all(heap);
  /* Free every empty page, but leave purging to the delay: a new thread
   * usually wants the same memory right away (thread churn). */
  hhi_page_collect_retired(heap, true, false);
  heap_visit_pages(heap, page_collect_visitor, false);
  hh_segment_t* abandoned = NULL;
  for (size_t bin = 0; bin < HH_BIN_COUNT; bin++) {
    for (hh_page_t* page = heap->pages[bin].first; page != NULL; page = page->next) {
      atomic_store_explicit(&page->heap, NULL, memory_order_release);
      hhi_segment_abandon_prepare(hhi_page_segment(page), &abandoned);
    }
  }
  hhi_segment_abandon_publish(abandoned);  /* the pages are not ours to touch after this */
  singles_release_all(heap);
  hhi_spans_thread_exit(tld);
  hhi_segments_thread_exit(tld);
  hhi_tld_lock(tld);
  atomic_store_explicit(&tld->active, false, memory_order_relaxed);
  hhi_tld_unlock(tld);
  hhi_heap_stats_flush(heap);
  hhi_heap_default = (hh_heap_t*)&hhi_heap_empty;
  if (heap == &hhi_heap_main) {
    heap_init(heap, &tld_main);  /* clean, but unowned: main_heap_claimed stays set */
    heap->thread_id = 0;
  } else {
    thread_data_release((hh_thread_data_t*)((uint8_t*)heap - offsetof(hh_thread_data_t, heap)));
  }
}
