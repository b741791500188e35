/* hardheap: segments.
 *
 * A segment is a SEGMENT_SIZE-aligned mapping: header and page descriptors
 * at the start, then pages. Small and medium segments hold many pages of one
 * size; large segments hold spans (one large block each, a run of 64 KiB
 * slices); huge segments hold a single block.
 * Small and medium segments belong to one thread (thread_id); a thread keeps
 * the segments that still have free pages in a queue per kind and a few
 * empty ones in a cache. When a thread exits its segments are abandoned and
 * another thread that needs a segment reclaims them. Large and huge blocks
 * are freed by whichever thread frees them: large segments are shared by
 * all threads under one lock, huge ones belong to their block. */
#include "internal.h"

#include <pthread.h>
#include <sched.h>

_Atomic(uintptr_t) hh_segment_map[HH_SEGMENT_MAP_BITS / 64];
uintptr_t hh_process_cookie;

/* ---- segment map -------------------------------------------------------*/
static bool segment_map_register(hh_segment_t* segment) {
  uintptr_t idx = (uintptr_t)segment >> HH_SEGMENT_SHIFT;
  if (idx >= HH_SEGMENT_MAP_BITS) return false;  /* beyond 48-bit addresses: not usable */
  atomic_fetch_or_explicit(&hh_segment_map[idx / 64], (uintptr_t)1 << (idx % 64), memory_order_release);
  return true;
}

static void segment_map_unregister(hh_segment_t* segment) {
  uintptr_t idx = (uintptr_t)segment >> HH_SEGMENT_SHIFT;
  atomic_fetch_and_explicit(&hh_segment_map[idx / 64], ~((uintptr_t)1 << (idx % 64)), memory_order_release);
}

/* ---- geometry -------------------------------------------------------------*/
/* Bytes before page 0's blocks: the header with room for the most page
 * descriptors any kind has, so a cached segment can be re-cut for another
 * kind without moving anything, and in the secure build a PROT_NONE guard
 * page that stops a backwards overflow from page 0 reaching the metadata. */
static size_t segment_info_size(void) {
  size_t raw = sizeof(hh_segment_t) + HH_SMALL_PAGES_PER_SEGMENT * sizeof(hh_page_t);
  size_t size = hh_align_up(raw, hh_os_page_size());
  if (HARDHEAP_SECURE) size += hh_os_page_size();
  return size;
}

/* The secure build's guard between metadata and blocks (once per mapping). */
static bool segment_protect_metadata(hh_segment_t* segment) {
  if (!HARDHEAP_SECURE) return true;
  size_t ps = hh_os_page_size();
  return hh_os_protect((uint8_t*)segment + segment->info_size - ps, ps);
}

static size_t kind_page_count(hh_segment_kind_t kind) {
  switch (kind) {
    case HH_SEGMENT_SMALL: return HH_SMALL_PAGES_PER_SEGMENT;
    case HH_SEGMENT_MEDIUM: return HH_MEDIUM_PAGES_PER_SEGMENT;
    case HH_SEGMENT_LARGE: return HH_SPAN_SLICES;
    default: return 1;
  }
}

static uint32_t kind_page_shift(hh_segment_kind_t kind) {
  switch (kind) {
    case HH_SEGMENT_SMALL: return HH_SMALL_PAGE_SHIFT;
    case HH_SEGMENT_MEDIUM: return HH_MEDIUM_PAGE_SHIFT;
    case HH_SEGMENT_LARGE: return HH_SPAN_SLICE_SHIFT;
    default: return 63;  /* every offset maps to page 0 */
  }
}

/* A large segment's descriptor i is slice i: a span's block covers
 * span_slices slices from there, a free slice counts as one. */
uint8_t* hh_segment_page_area(const hh_segment_t* segment, const hh_page_t* page, size_t* size) {
  uint8_t* base = (uint8_t*)segment;
  if (segment->kind != HH_SEGMENT_HUGE) {
    size_t page_size = (size_t)1 << segment->page_shift;
    uint8_t* start = base + (size_t)page->segment_idx * page_size;
    size_t usable = page_size;
    if (segment->kind == HH_SEGMENT_LARGE && page->span_slices > 1) usable = (size_t)page->span_slices * page_size;
    if (page->segment_idx == 0) {
      start += segment->info_size;
      usable -= segment->info_size;
    }
    *size = usable;
    return start;
  }
  size_t offset = segment->block_offset != 0 ? segment->block_offset : segment->info_size;
  *size = segment->segment_size - offset;
  return base + offset;
}

/* ---- queues -----------------------------------------------------------------*/
static hh_segment_queue_t* free_queue_of(hh_tld_t* tld, const hh_segment_t* segment) {
  if (segment->kind == HH_SEGMENT_SMALL) return &tld->segments.small_free;
  if (segment->kind == HH_SEGMENT_MEDIUM) return &tld->segments.medium_free;
  return NULL;
}

static void segment_queue_push_front(hh_segment_queue_t* q, hh_segment_t* segment) {
  segment->prev = NULL;
  segment->next = q->first;
  if (q->first != NULL) q->first->prev = segment; else q->last = segment;
  q->first = segment;
  segment->in_free_queue = true;
}

static void segment_queue_push(hh_segment_queue_t* q, hh_segment_t* segment) {
  segment->next = NULL;
  segment->prev = q->last;
  if (q->last != NULL) q->last->next = segment; else q->first = segment;
  q->last = segment;
  segment->in_free_queue = true;
}

static void segment_queue_remove(hh_segment_queue_t* q, hh_segment_t* segment) {
  if (segment->prev != NULL) segment->prev->next = segment->next; else q->first = segment->next;
  if (segment->next != NULL) segment->next->prev = segment->prev; else q->last = segment->prev;
  segment->next = segment->prev = NULL;
  segment->in_free_queue = false;
}

/* ---- purging ---------------------------------------------------------------*/
static void purge_cancel(hh_segment_t* segment, hh_page_t* page) {
  page->purge_expire = 0;
  segment->purge_pending--;
  if (segment->tld != NULL) segment->tld->segments.purge_pending--;
}

static void page_purge_now(hh_segment_t* segment, hh_page_t* page) {
  size_t size;
  uint8_t* start = hh_segment_page_area(segment, page, &size);
  if (page->purge_expire != 0) purge_cancel(segment, page);
  if (page->is_purged) return;
  if (hh_os_purge(start, size)) {
    page->is_purged = 1;
    page->is_zero_init = 1;
    hh_stat_sub(&hh_stats.committed, size);
  }
}

static void page_schedule_purge(hh_segment_t* segment, hh_page_t* page, bool force) {
  long delay = hh_option_get_fast(hh_option_purge_delay);
  if (force || delay == 0) {
    page_purge_now(segment, page);
  } else if (delay > 0) {
    if (page->purge_expire == 0) {
      segment->purge_pending++;
      if (segment->tld != NULL) segment->tld->segments.purge_pending++;
    }
    page->purge_expire = hh_os_clock_ms() + (uint64_t)delay;
  }
}

/* Purge the free pages of segment whose delay expired (all with force). */
static void segment_purge_expired(hh_segment_t* segment, uint64_t now, bool force) {
  if (segment->purge_pending == 0) return;
  for (uint32_t i = 0; i < segment->page_count; i++) {
    hh_page_t* page = &segment->pages[i];
    if (page->segment_in_use || page->purge_expire == 0) continue;
    if (force || page->purge_expire <= now) page_purge_now(segment, page);
  }
}

/* ---- allocation and release of whole segments ------------------------------*/
static void segment_init_pages(hh_segment_t* segment, bool memory_is_zero) {
  for (uint32_t i = 0; i < segment->page_count; i++) {
    hh_page_t* page = &segment->pages[i];
    memset(page, 0, sizeof(*page));
    page->segment_idx = (uint16_t)i;
    page->is_zero_init = memory_is_zero;
  }
  segment->free_slots = segment->page_count >= 64 ? ~(uint64_t)0 : ((uint64_t)1 << segment->page_count) - 1;
}

static void segment_setup(hh_segment_t* segment, hh_tld_t* tld, hh_segment_kind_t kind, size_t segment_size,
                          size_t info_size, size_t block_offset) {
  segment->cookie = (uintptr_t)segment ^ hh_process_cookie;
  segment->segment_size = segment_size;
  segment->info_size = info_size;
  segment->block_offset = block_offset;
  segment->next = segment->prev = NULL;
  atomic_store_explicit(&segment->thread_id, hh_thread_id(), memory_order_relaxed);
  segment->tld = tld;
  segment->kind = kind;
  segment->page_shift = kind_page_shift(kind);
  segment->page_count = (uint32_t)kind_page_count(kind);
  segment->used = 0;
  segment->purge_pending = 0;
  segment->in_free_queue = false;
}

/* ---- the global cache of empty segments ---------------------------------------
 * An exiting thread leaves its empty segments here instead of unmapping
 * them, so the next thread (thread churn, as in servers that spawn workers)
 * reuses resident memory instead of faulting fresh pages in. Bounded, and
 * entries older than the purge delay have their memory returned to the OS.
 * Guarded by abandoned_lock (declared below; fork handlers take it). */
#define HH_GLOBAL_CACHE_MAX 4
static void segment_unmap(hh_segment_t* segment);
static pthread_mutex_t abandoned_lock = PTHREAD_MUTEX_INITIALIZER;
static hh_segment_t* global_cache;       /* newest first, linked by next */
static _Atomic(size_t) global_cache_count;  /* written under the lock, peeked without it */

/* Purge every page slot of an empty segment with one madvise. */
static void segment_purge_all(hh_segment_t* segment) {
  size_t resident = 0;
  for (uint32_t i = 0; i < segment->page_count; i++) {
    hh_page_t* page = &segment->pages[i];
    if (page->purge_expire != 0) purge_cancel(segment, page);
    if (page->is_purged) continue;
    size_t size;
    (void)hh_segment_page_area(segment, page, &size);
    resident += size;
    page->is_purged = 1;
    page->is_zero_init = 1;
  }
  if (resident == 0) return;
  if (hh_os_purge((uint8_t*)segment + segment->info_size, segment->segment_size - segment->info_size)) {
    hh_stat_sub(&hh_stats.committed, resident);
  }
}

static void global_cache_purge_expired(uint64_t now) {
  long delay = hh_option_get_fast(hh_option_purge_delay);
  if (delay < 0) return;
  for (hh_segment_t* s = global_cache; s != NULL; s = s->next) {
    if (s->cached_ms + (uint64_t)delay <= now) segment_purge_all(s);
  }
}

static void segment_to_global_cache(hh_segment_t* segment) {
  uint64_t now = hh_os_clock_ms();
  segment->tld = NULL;
  atomic_store_explicit(&segment->thread_id, 0, memory_order_release);
  segment->cached_ms = now;
  pthread_mutex_lock(&abandoned_lock);
  bool kept = atomic_load_explicit(&global_cache_count, memory_order_relaxed) < HH_GLOBAL_CACHE_MAX;
  if (kept) {
    segment->next = global_cache;
    global_cache = segment;
    atomic_fetch_add_explicit(&global_cache_count, 1, memory_order_relaxed);
    global_cache_purge_expired(now);
  }
  pthread_mutex_unlock(&abandoned_lock);
  if (!kept) {
    hh_stat_sub(&hh_stats.segments_cached, 1);
    segment_unmap(segment);
  }
}

static hh_segment_t* global_cache_pop(void) {
  if (atomic_load_explicit(&global_cache_count, memory_order_relaxed) == 0) return NULL;  /* a stale miss costs an mmap */
  pthread_mutex_lock(&abandoned_lock);
  hh_segment_t* segment = global_cache;
  if (segment != NULL) {
    global_cache = segment->next;
    atomic_fetch_sub_explicit(&global_cache_count, 1, memory_order_relaxed);
    global_cache_purge_expired(hh_os_clock_ms());
  }
  pthread_mutex_unlock(&abandoned_lock);
  return segment;
}

/* The exiting thread's empty segments go to the global cache purged: the
 * mapping is reused by the next thread (no mmap/munmap per thread), but
 * their memory is not. Handing resident segments from thread to thread kept
 * up to HH_GLOBAL_CACHE_MAX x 4 MiB resident on top of the live heaps
 * (larson at 2 threads: 24 MiB peak RSS against 16.5 MiB purged, for about
 * 15% more time). */
static void span_cache_release(hh_tld_t* tld, uint64_t now, bool all);

void hh_segments_thread_exit(hh_tld_t* tld) {
  span_cache_release(tld, 0, true);
  hh_segments_collect(tld, false);
  while (tld->segments.cache != NULL) {
    hh_segment_t* segment = tld->segments.cache;
    tld->segments.cache = segment->next;
    tld->segments.cache_count--;
    segment_purge_all(segment);  /* before the tld is detached: it cancels pending purges */
    tld->segments.purge_pending -= segment->purge_pending;
    segment_to_global_cache(segment);
  }
}

static void global_cache_flush(void) {
  for (;;) {
    hh_segment_t* segment = global_cache_pop();
    if (segment == NULL) return;
    hh_stat_sub(&hh_stats.segments_cached, 1);
    segment_unmap(segment);
  }
}

/* Take an empty segment from the thread's cache. Its page memory is zero
 * only where a page was purged, so the kind's first page decides. */
static hh_segment_t* segment_cache_pop(hh_tld_t* tld, hh_segment_kind_t kind) {
  hh_segment_t* segment = tld->segments.cache;
  if (segment != NULL) {
    tld->segments.cache = segment->next;
    tld->segments.cache_count--;
  } else {
    segment = global_cache_pop();
    if (segment == NULL) return NULL;
    segment->tld = tld;
    atomic_store_explicit(&segment->thread_id, hh_thread_id(), memory_order_relaxed);
    tld->segments.purge_pending += segment->purge_pending;
  }
  hh_stat_sub(&hh_stats.segments_cached, 1);

  /* Re-cut the segment: unpurged memory of the old layout is not zero, and
   * pages that were purged account their bytes back in. */
  size_t purged_bytes = 0;
  bool all_purged = true;
  for (uint32_t i = 0; i < segment->page_count; i++) {
    hh_page_t* page = &segment->pages[i];
    size_t size;
    (void)hh_segment_page_area(segment, page, &size);
    if (page->is_purged) purged_bytes += size; else all_purged = false;
  }
  hh_stat_add(&hh_stats.committed, &hh_stats.committed_peak, purged_bytes);
  size_t info = segment_info_size();
  tld->segments.purge_pending -= segment->purge_pending;  /* re-cutting cancels them */
  segment_setup(segment, tld, kind, HH_SEGMENT_SIZE, info, 0);
  segment_init_pages(segment, all_purged);
  return segment;
}

static hh_segment_t* segment_alloc(hh_tld_t* tld, hh_segment_kind_t kind, size_t huge_block, size_t alignment) {
  if (kind != HH_SEGMENT_HUGE) {
    hh_segment_t* cached = segment_cache_pop(tld, kind);
    if (cached != NULL) {
      tld->segments.count++;
      return cached;
    }
  }
  size_t info = segment_info_size();
  size_t segment_size = HH_SEGMENT_SIZE;
  size_t block_offset = 0;
  size_t map_alignment = HH_SEGMENT_SIZE;
  size_t align_offset = 0;
  if (kind == HH_SEGMENT_HUGE) {
    if (alignment > HH_SEGMENT_SIZE / 2) {
      /* Place the block at segment + SEGMENT_SIZE, itself aligned; the
       * (p - 1) masking in hh_ptr_segment still finds the header. */
      block_offset = HH_SEGMENT_SIZE;
      map_alignment = alignment < HH_SEGMENT_SIZE ? HH_SEGMENT_SIZE : alignment;
      align_offset = HH_SEGMENT_SIZE;
      segment_size = HH_SEGMENT_SIZE + hh_align_up(huge_block, hh_os_page_size());
    } else {
      segment_size = hh_align_up(info + huge_block, hh_os_page_size());
    }
    if (segment_size < huge_block) return NULL;  /* overflow */
  }
  hh_segment_t* segment;
  if (align_offset != 0) {
    uint8_t* p = hh_os_alloc_aligned(segment_size, map_alignment, align_offset);
    segment = (hh_segment_t*)p;
  } else {
    segment = hh_os_alloc_aligned(segment_size, map_alignment, 0);
  }
  if (segment == NULL) return NULL;
  if (!segment_map_register(segment)) {
    hh_os_free(segment, segment_size);
    return NULL;
  }
  segment_setup(segment, tld, kind, segment_size, info, block_offset);
  if (!segment_protect_metadata(segment)) {  /* out of mappings (vm.max_map_count) */
    segment_map_unregister(segment);
    hh_os_free(segment, segment_size);
    return NULL;
  }
  segment_init_pages(segment, true);
  tld->segments.count++;
  hh_stat_add(&hh_stats.segments, &hh_stats.segments_peak, 1);
  hh_stat_add(&hh_stats.reserved, &hh_stats.reserved_peak, segment_size);
  hh_stat_add(&hh_stats.committed, &hh_stats.committed_peak, segment_size);
  if (kind == HH_SEGMENT_HUGE) hh_stat_add(&hh_stats.huge_count, NULL, 1);
  return segment;
}

static void segment_unmap(hh_segment_t* segment) {
  size_t purged_bytes = 0;
  for (uint32_t i = 0; i < segment->page_count; i++) {
    if (!segment->pages[i].is_purged) continue;
    size_t size;
    (void)hh_segment_page_area(segment, &segment->pages[i], &size);
    purged_bytes += size;
  }
  segment_map_unregister(segment);
  if (segment->tld != NULL) segment->tld->segments.purge_pending -= segment->purge_pending;
  hh_stat_sub(&hh_stats.segments, 1);
  hh_stat_sub(&hh_stats.reserved, segment->segment_size);
  hh_stat_sub(&hh_stats.committed, segment->segment_size - purged_bytes);
  if (segment->kind == HH_SEGMENT_HUGE) hh_stat_sub(&hh_stats.huge_count, 1);
  segment->cookie = 0;
  hh_os_free(segment, segment->segment_size);
}

/* Keep an empty segment in the thread's cache, newest first. When the cache
 * is over its bound the oldest entry is unmapped, not the new one: the new
 * one still has resident memory that the next segment request reuses
 * without page faults, the old one has most likely been purged already. */
static void tld_cache_push(hh_tld_t* tld, hh_segment_t* segment) {
  segment->next = tld->segments.cache;
  segment->prev = NULL;
  tld->segments.cache = segment;
  tld->segments.cache_count++;
  hh_stat_add(&hh_stats.segments_cached, NULL, 1);
  size_t cache_max = (size_t)hh_option_get_fast(hh_option_segment_cache);
  while (tld->segments.cache_count > cache_max) {
    hh_segment_t** link = &tld->segments.cache;
    while ((*link)->next != NULL) link = &(*link)->next;
    hh_segment_t* oldest = *link;
    *link = NULL;
    tld->segments.cache_count--;
    hh_stat_sub(&hh_stats.segments_cached, 1);
    segment_unmap(oldest);
  }
}

/* An empty segment: keep it in the cache or give it back. */
static void segment_free(hh_segment_t* segment, hh_tld_t* tld, bool force) {
  if (segment->in_free_queue) segment_queue_remove(free_queue_of(tld, segment), segment);
  tld->segments.count--;
  if (!force && segment->kind != HH_SEGMENT_HUGE && hh_option_get_fast(hh_option_segment_cache) > 0) {
    tld_cache_push(tld, segment);
    return;
  }
  segment_unmap(segment);
}

/* ---- pages ----------------------------------------------------------------*/
static hh_page_t* segment_claim_page(hh_segment_t* segment, hh_page_t* page) {
  hh_assert(!page->segment_in_use);
  if (page->purge_expire != 0) purge_cancel(segment, page);
  if (page->is_purged) {
    size_t size;
    (void)hh_segment_page_area(segment, page, &size);
    hh_stat_add(&hh_stats.committed, &hh_stats.committed_peak, size);
    page->is_purged = 0;
  }
  page->segment_in_use = 1;
  segment->free_slots &= ~((uint64_t)1 << page->segment_idx);
  segment->used++;
  size_t size;
  page->page_start = hh_segment_page_area(segment, page, &size);
  return page;
}

/* A free slot for a page of size class bin. Best: a resident slot that last
 * held the same class, whose blocks sit at the same offsets, so the new page
 * touches no memory the old one did not (slots passed from class to class
 * end up resident to the furthest extent of any of them). Then any resident
 * slot, then a purged one. */
static hh_page_t* segment_find_free_page(hh_segment_t* segment, size_t bin) {
  hh_page_t* resident = NULL;
  hh_page_t* purged = NULL;
  for (uint64_t slots = segment->free_slots; slots != 0; slots &= slots - 1) {
    hh_page_t* page = &segment->pages[__builtin_ctzll(slots)];
    hh_assert(!page->segment_in_use);
    if (page->is_purged) {
      if (purged == NULL) purged = page;
    } else if (page->bin == bin) {
      return page;
    } else if (resident == NULL) {
      resident = page;
    }
  }
  return resident != NULL ? resident : purged;
}

static hh_page_t* multi_page_alloc(hh_heap_t* heap, hh_segment_kind_t kind, size_t bin) {
  hh_tld_t* tld = heap->tld;
  hh_segment_queue_t* q = kind == HH_SEGMENT_SMALL ? &tld->segments.small_free : &tld->segments.medium_free;
  hh_segment_t* segment = q->first;
  if (segment == NULL) {
    segment = segment_alloc(tld, kind, 0, 0);
    if (segment == NULL) return NULL;
    segment_queue_push(q, segment);
  }
  hh_page_t* page = segment_find_free_page(segment, bin);
  hh_assert(page != NULL);
  segment_claim_page(segment, page);
  if (segment->used == segment->page_count) segment_queue_remove(q, segment);
  return page;
}

/* ---- huge blocks: a segment each ---------------------------------------------*/
static hh_page_t* huge_page_alloc(hh_heap_t* heap, size_t block_size, size_t alignment) {
  hh_tld_t* tld = heap->tld;
  hh_segment_t* segment = segment_alloc(tld, HH_SEGMENT_HUGE, block_size, alignment);
  if (segment == NULL) return NULL;
  /* Huge segments have no owner: any thread's free releases them
   * (hh_segment_single_claim takes thread_id from 0 to itself). */
  tld->segments.count--;
  segment->tld = NULL;
  atomic_store_explicit(&segment->thread_id, 0, memory_order_release);
  return segment_claim_page(segment, &segment->pages[0]);
}

/* ---- large blocks: spans of 64 KiB slices in shared segments -----------------
 * A block of 64 KiB .. 2 MiB is a run of slices in a large segment, so the
 * memory one large block leaves is reused by the next one of any size (a
 * segment per block faulted fresh pages in for every new block and kept
 * each segment's high-water mark resident). Any thread frees large blocks,
 * so large segments belong to no thread (thread_id 0) and every change to
 * them is made under large_lock; it is taken after a heap's singles lock,
 * never before. A span's descriptor is the one of its first slice; the
 * others stay free, which is why no interior pointer past the first slice
 * is ever handed out (spans start 64 KiB-aligned, larger alignments are
 * placed, see span_alloc). Freed slices stay resident for the purge delay,
 * restarted by every free in the segment. */
static _Atomic(bool) large_lock;                /* a spin lock: held for a few word operations */

static void large_lock_acquire(void) {
  for (unsigned spins = 0;; spins++) {
    if (!atomic_load_explicit(&large_lock, memory_order_relaxed) &&
        !atomic_exchange_explicit(&large_lock, true, memory_order_acquire)) {
      return;
    }
    if (spins >= 64) {
      sched_yield();  /* the holder may have been preempted */
    } else {
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    }
  }
}

static bool large_lock_try(void) {
  return !atomic_load_explicit(&large_lock, memory_order_relaxed) &&
         !atomic_exchange_explicit(&large_lock, true, memory_order_acquire);
}

static void large_lock_release(void) {
  atomic_store_explicit(&large_lock, false, memory_order_release);
}
static hh_segment_t* large_segments;           /* every large segment, linked by next/prev */
static size_t large_empty_count;               /* large segments without a live span */
static _Atomic(size_t) large_purge_pending;    /* large segments with span_purge_at set */
/* Empty large segments kept in the list: another large block is likely. */
#define HH_LARGE_EMPTY_KEEP 1

static uint64_t span_mask(size_t first, size_t count) {
  uint64_t bits = count >= 64 ? ~(uint64_t)0 : (((uint64_t)1 << count) - 1);
  return bits << first;
}

/* Length of the run of set bits of bits that starts at bit start. */
static size_t run_length(uint64_t bits, size_t start) {
  uint64_t rest = ~(bits >> start);
  return rest == 0 ? HH_SPAN_SLICES - start : (size_t)__builtin_ctzll(rest);
}

/* The segment has no purge of free slices pending any more. */
static void span_purge_cancel(hh_segment_t* segment) {
  if (segment->span_purge_at != 0) {
    segment->span_purge_at = 0;
    atomic_fetch_sub_explicit(&large_purge_pending, 1, memory_order_relaxed);
  }
}

/* First run of count free slices starting at a multiple of align_slices:
 * bit i of `starts` survives the shifts iff slices i .. i+count-1 are all
 * free (a few word operations per segment instead of a scan). */
static bool span_find(const hh_segment_t* segment, size_t count, size_t align_slices, size_t* first) {
  uint64_t free_slices = ~segment->span_used;
  uint64_t starts = free_slices;
  for (size_t k = 1; k < count && starts != 0; k++) starts &= free_slices >> k;
  if (count > 1) starts &= ~(uint64_t)0 >> (count - 1);  /* the run must end inside the segment */
  if (align_slices > 1) {
    uint64_t aligned = 0;
    for (size_t i = 0; i < HH_SPAN_SLICES; i += align_slices) aligned |= (uint64_t)1 << i;
    starts &= aligned;
  }
  if (starts == 0) return false;
  *first = (size_t)__builtin_ctzll(starts);
  return true;
}

/* The tightest free run of at least count slices over all large segments
 * (ties: the lowest address in the first segment): best fit keeps the long
 * runs for long blocks, so fewer segments are needed than with first fit. */
static hh_segment_t* span_best_fit(size_t count, size_t* first) {
  hh_segment_t* best_segment = NULL;
  size_t best_len = SIZE_MAX;
  for (hh_segment_t* segment = large_segments; segment != NULL; segment = segment->next) {
    uint64_t free_slices = ~segment->span_used;
    while (free_slices != 0) {
      size_t start = (size_t)__builtin_ctzll(free_slices);
      size_t len = run_length(free_slices, start);
      if (len >= count && len < best_len) {
        best_len = len;
        best_segment = segment;
        *first = start;
        if (len == count) return segment;  /* exact fit */
      }
      free_slices &= ~span_mask(start, len);
    }
  }
  return best_segment;
}

/* Give the free resident slices of segment back to the OS. */
static void span_purge(hh_segment_t* segment) {
  uint64_t dirty = segment->span_resident & ~segment->span_used & ~(uint64_t)1;
  while (dirty != 0) {
    size_t first = (size_t)__builtin_ctzll(dirty);
    size_t count = run_length(dirty, first);
    uint64_t mask = span_mask(first, count);
    if (hh_os_purge((uint8_t*)segment + (first << HH_SPAN_SLICE_SHIFT), count << HH_SPAN_SLICE_SHIFT)) {
      segment->span_resident &= ~mask;
      segment->span_zero |= mask;
      hh_stat_sub(&hh_stats.committed, count << HH_SPAN_SLICE_SHIFT);
    }
    dirty &= ~mask;
  }
  span_purge_cancel(segment);
}

static void spans_purge_expired(uint64_t now, bool force) {
  for (hh_segment_t* s = large_segments; s != NULL; s = s->next) {
    if (s->span_purge_at != 0 && (force || s->span_purge_at <= now)) span_purge(s);
  }
}

static void large_list_remove(hh_segment_t* segment) {
  if (segment->prev != NULL) segment->prev->next = segment->next; else large_segments = segment->next;
  if (segment->next != NULL) segment->next->prev = segment->prev;
  segment->next = segment->prev = NULL;
}

/* An empty large segment leaves the list (under large_lock): its slice
 * descriptors get the residency the cache and segment_unmap account by. */
static void large_segment_detach(hh_segment_t* segment) {
  large_list_remove(segment);
  large_empty_count--;
  span_purge_cancel(segment);
  for (size_t i = 0; i < HH_SPAN_SLICES; i++) {
    hh_page_t* page = &segment->pages[i];
    uint16_t idx = page->segment_idx;
    memset(page, 0, sizeof(*page));
    page->segment_idx = idx;
    page->is_purged = (uint8_t)(i != 0 && ((segment->span_resident >> i) & 1) == 0);
  }
  segment->used = 0;
  segment->purge_pending = 0;
}

/* Outside large_lock: the freeing thread's cache keeps the mapping (its
 * resident slices are purged after the delay), else it is unmapped. */
static void large_segment_release(hh_segment_t* segment) {
  hh_heap_t* heap = hh_get_default_heap();
  if (!hh_heap_is_initialized(heap) || hh_option_get_fast(hh_option_segment_cache) <= 0) {
    segment_unmap(segment);
    return;
  }
  hh_tld_t* tld = heap->tld;
  segment->tld = tld;
  atomic_store_explicit(&segment->thread_id, hh_thread_id(), memory_order_relaxed);
  for (size_t i = 1; i < HH_SPAN_SLICES; i++) {
    if (!segment->pages[i].is_purged) page_schedule_purge(segment, &segment->pages[i], false);
  }
  tld_cache_push(tld, segment);
}

/* Release empty large segments beyond keep (hh_collect, thread exit). */
static void spans_release_empty(size_t keep) {
  for (;;) {
    hh_segment_t* release = NULL;
    large_lock_acquire();
    if (large_empty_count > keep) {
      for (hh_segment_t* s = large_segments; s != NULL; s = s->next) {
        if (s->used == 0) { release = s; break; }
      }
      if (release != NULL) large_segment_detach(release);
    }
    large_lock_release();
    if (release == NULL) return;
    large_segment_release(release);
  }
}

static void spans_collect(bool force) {
  if (!force && atomic_load_explicit(&large_purge_pending, memory_order_relaxed) == 0) return;
  if (force) {
    large_lock_acquire();
  } else if (!large_lock_try()) {
    return;  /* busy: the next heartbeat tries again */
  }
  spans_purge_expired(hh_os_clock_ms(), force);
  large_lock_release();
  if (force) spans_release_empty(0);
}

/* Mark slices [first, first + count) used (under large_lock). Returns
 * whether they all read as zero. */
static bool span_take(hh_segment_t* segment, size_t first, size_t count) {
  uint64_t mask = span_mask(first, count);
  uint64_t purged = mask & ~segment->span_resident;
  if (purged != 0) {
    hh_stat_add(&hh_stats.committed, &hh_stats.committed_peak,
                (size_t)__builtin_popcountll(purged) << HH_SPAN_SLICE_SHIFT);
  }
  bool zero = (mask & ~segment->span_zero) == 0;
  segment->span_resident |= mask;
  segment->span_zero &= ~mask;
  segment->span_used |= mask;
  return zero;
}

/* ---- the per-thread span cache ----------------------------------------------
 * A thread that frees a large block keeps its span (still marked used in
 * its segment, single_live 0) for its own next large block, which then
 * takes neither large_lock nor any shared cache line: without it, two
 * threads allocating large blocks spent most of their time waiting for the
 * lock. Entries expire after the purge delay (hh_segments_collect). */
static void span_free(hh_segment_t* segment, hh_page_t* page);

static void span_cache_remove(hh_tld_t* tld, size_t i) {
  tld->segments.span_cache_slices -= tld->segments.span_cache[i]->span_slices;
  for (size_t j = i + 1; j < tld->segments.span_cache_count; j++) tld->segments.span_cache[j - 1] = tld->segments.span_cache[j];
  tld->segments.span_cache_count--;
}

/* The smallest cached span of count .. 2*count slices (aligned). */
static hh_page_t* span_cache_take(hh_tld_t* tld, size_t count, size_t align_slices) {
  size_t best = SIZE_MAX;
  for (size_t i = 0; i < tld->segments.span_cache_count; i++) {
    const hh_page_t* page = tld->segments.span_cache[i];
    if (page->span_slices < count || page->span_slices > 2 * count) continue;
    if (align_slices > 1 && page->segment_idx % align_slices != 0) continue;
    if (best == SIZE_MAX || page->span_slices < tld->segments.span_cache[best]->span_slices) best = i;
  }
  if (best == SIZE_MAX) return NULL;
  hh_page_t* page = tld->segments.span_cache[best];
  span_cache_remove(tld, best);
  page->purge_expire = 0;
  page->is_zero_init = 0;
  return page;
}

/* Keep page in the cache; false if it does not fit (the caller frees it). */
static bool span_cache_put(hh_tld_t* tld, hh_page_t* page) {
  long delay = hh_option_get_fast(hh_option_purge_delay);
  if (delay == 0 || page->span_slices > HH_SPAN_CACHE_SLICES / 2) return false;
  while (tld->segments.span_cache_count == HH_SPAN_CACHE_MAX ||
         tld->segments.span_cache_slices + page->span_slices > HH_SPAN_CACHE_SLICES) {
    hh_page_t* oldest = tld->segments.span_cache[0];
    span_cache_remove(tld, 0);
    span_free(hh_page_segment(oldest), oldest);
  }
  page->purge_expire = delay < 0 ? UINT64_MAX : hh_os_clock_ms() + (uint64_t)delay;
  tld->segments.span_cache[tld->segments.span_cache_count++] = page;
  tld->segments.span_cache_slices += page->span_slices;
  return true;
}

/* Give back cached spans whose time is up (all of them with all). */
static void span_cache_release(hh_tld_t* tld, uint64_t now, bool all) {
  size_t i = 0;
  while (i < tld->segments.span_cache_count) {
    hh_page_t* page = tld->segments.span_cache[i];
    if (all || page->purge_expire <= now) {
      span_cache_remove(tld, i);
      span_free(hh_page_segment(page), page);
    } else {
      i++;
    }
  }
}

/* A span for a block of block_size bytes whose start is aligned to
 * alignment (at most HH_SEGMENT_SIZE / 2). */
static hh_page_t* span_alloc(hh_heap_t* heap, size_t block_size, size_t alignment) {
  size_t count = (hh_good_size(block_size) + HH_SPAN_SLICE_SIZE - 1) >> HH_SPAN_SLICE_SHIFT;
  if (count == 0) count = 1;
  size_t align_slices = alignment > HH_SPAN_SLICE_SIZE ? alignment >> HH_SPAN_SLICE_SHIFT : 1;
  hh_assert(count < HH_SPAN_SLICES && align_slices <= HH_SPAN_SLICES / 2);
  hh_page_t* cached = span_cache_take(heap->tld, count, align_slices);
  if (cached != NULL) return cached;
  size_t first = 0;
  large_lock_acquire();
  hh_segment_t* segment = large_segments;
  if (align_slices <= 1) {
    segment = span_best_fit(count, &first);
  } else {
    while (segment != NULL && !span_find(segment, count, align_slices, &first)) segment = segment->next;
  }
  if (segment == NULL) {
    /* a new large segment: mapped (or taken from this thread's cache)
     * outside the lock, since that may take the global cache's lock */
    large_lock_release();
    hh_tld_t* tld = heap->tld;
    segment = segment_alloc(tld, HH_SEGMENT_LARGE, 0, 0);
    if (segment == NULL) return NULL;
    tld->segments.count--;
    segment->tld = NULL;
    atomic_store_explicit(&segment->thread_id, 0, memory_order_release);
    segment->span_used = 1;  /* slice 0: header, page descriptors (and the secure guard) */
    segment->span_resident = ~(uint64_t)0;  /* counted as committed by segment_alloc */
    segment->span_zero = segment->pages[1].is_zero_init ? ~(uint64_t)1 : 0;
    segment->span_purge_at = 0;
    large_lock_acquire();
    segment->prev = NULL;
    segment->next = large_segments;
    if (large_segments != NULL) large_segments->prev = segment;
    large_segments = segment;
    large_empty_count++;
    bool found = span_find(segment, count, align_slices, &first);
    hh_assert(found);
    (void)found;
  }
  if (segment->used == 0) large_empty_count--;
  segment->used++;
  bool zero = span_take(segment, first, count);
  hh_page_t* page = &segment->pages[first];
  page->segment_in_use = 1;
  page->is_purged = 0;
  page->is_zero_init = zero;
  page->span_slices = (uint8_t)count;
  page->page_start = (uint8_t*)segment + (first << HH_SPAN_SLICE_SHIFT);
  large_lock_release();
  /* a span in a thread's span cache still counts as a page: the shared
   * counters are touched only when a span leaves or joins a segment */
  hh_stat_add(&hh_stats.pages, &hh_stats.pages_peak, 1);
  return page;
}

static void span_free(hh_segment_t* segment, hh_page_t* page) {
  hh_segment_t* release = NULL;
  hh_stat_sub(&hh_stats.pages, 1);
  large_lock_acquire();
  segment->span_used &= ~span_mask(page->segment_idx, page->span_slices);
  uint16_t idx = page->segment_idx;
  uint8_t* start = page->page_start;
  size_t block_size = page->block_size;
  memset(page, 0, sizeof(*page));
  page->segment_idx = idx;
  /* kept while the slice is free, so a second free of the block is
   * reported as a double free (free.c); segment_in_use stays 0 */
  page->page_start = start;
  page->block_size = block_size;
  segment->used--;
  long delay = hh_option_get_fast(hh_option_purge_delay);
  if (delay == 0) {
    span_purge(segment);
  } else if (delay > 0) {
    if (segment->span_purge_at == 0) atomic_fetch_add_explicit(&large_purge_pending, 1, memory_order_relaxed);
    segment->span_purge_at = hh_os_clock_ms() + (uint64_t)delay;
  }
  if (segment->used == 0 && ++large_empty_count > HH_LARGE_EMPTY_KEEP) {
    large_segment_detach(segment);
    release = segment;
  }
  large_lock_release();
  if (release != NULL) large_segment_release(release);
}

/* ---- single-block pages (large and huge) -------------------------------------*/
bool hh_segment_single_claim(hh_page_t* page) {
  hh_segment_t* segment = hh_page_segment(page);
  if (segment->kind == HH_SEGMENT_LARGE) {
    uint8_t live = 1;
    return atomic_compare_exchange_strong_explicit(&page->single_live, &live, 0, memory_order_acq_rel,
                                                   memory_order_relaxed);
  }
  uintptr_t unowned = 0;
  return atomic_compare_exchange_strong_explicit(&segment->thread_id, &unowned, hh_thread_id(), memory_order_acq_rel,
                                                 memory_order_relaxed);
}

void hh_segment_single_free(hh_page_t* page) {
  hh_segment_t* segment = hh_page_segment(page);
  if (segment->kind == HH_SEGMENT_LARGE) {
    hh_heap_t* heap = hh_get_default_heap();
    if (!hh_heap_is_initialized(heap) || !span_cache_put(heap->tld, page)) span_free(segment, page);
  } else {
    hh_stat_sub(&hh_stats.pages, 1);
    segment_unmap(segment);
  }
}

bool hh_segment_single_resize(hh_page_t* page, size_t newsize) {
  hh_segment_t* segment = hh_page_segment(page);
  /* Shrinking below half moves to a smaller block, so the memory is
   * returned when this one is freed rather than held behind a small block. */
  if (newsize < page->block_size / 2) return false;
  if (newsize <= page->block_size) return true;
  if (segment->kind != HH_SEGMENT_LARGE) return false;  /* huge: block_size is the whole mapping */
  /* a span grows in place: into the slack of its last slice, then over the
   * free slices that follow it */
  size_t new_block = hh_good_size(newsize);
  size_t count = (new_block + HH_SPAN_SLICE_SIZE - 1) >> HH_SPAN_SLICE_SHIFT;
  size_t first = page->segment_idx;
  if (first + count > HH_SPAN_SLICES) return false;
  bool grown = true;
  if (count > page->span_slices) {
    large_lock_acquire();
    uint64_t extra = span_mask(first + page->span_slices, count - page->span_slices);
    grown = (segment->span_used & extra) == 0;
    if (grown) {
      (void)span_take(segment, first + page->span_slices, count - page->span_slices);
      page->span_slices = (uint8_t)count;
    }
    large_lock_release();
  }
  if (grown) page->block_size = new_block;
  return grown;
}

hh_page_t* hh_segment_page_alloc(hh_heap_t* heap, size_t block_size, size_t alignment) {
  hh_page_t* page;
  if (alignment > HH_MIN_ALIGN) {
    /* placed at the alignment: a span at an aligned slice, or a huge segment */
    if (block_size <= HH_LARGE_OBJ_SIZE_MAX && alignment <= HH_SEGMENT_SIZE / 2) {
      page = span_alloc(heap, block_size, alignment);
    } else {
      page = huge_page_alloc(heap, block_size, alignment);
    }
  } else if (block_size <= HH_SMALL_OBJ_SIZE_MAX) {
    page = multi_page_alloc(heap, HH_SEGMENT_SMALL, hh_bin(block_size));
  } else if (block_size <= HH_MEDIUM_OBJ_SIZE_MAX) {
    page = multi_page_alloc(heap, HH_SEGMENT_MEDIUM, hh_bin(block_size));
  } else if (block_size <= HH_LARGE_OBJ_SIZE_MAX) {
    return span_alloc(heap, block_size, 0);  /* counts its own pages */
  } else {
    page = huge_page_alloc(heap, block_size, 0);
  }
  if (page != NULL && hh_page_segment(page)->kind != HH_SEGMENT_LARGE) {
    hh_stat_add(&hh_stats.pages, &hh_stats.pages_peak, 1);
  }
  return page;
}

void hh_segment_page_free(hh_page_t* page, bool force) {
  hh_segment_t* segment = hh_page_segment(page);
  hh_tld_t* tld = segment->tld;
  hh_stat_sub(&hh_stats.pages, 1);

  /* Reset the descriptor; the memory keeps whatever the blocks held. */
  uint16_t idx = page->segment_idx;
  uint8_t purged = page->is_purged;
  uint8_t bin = page->bin;
  uint64_t expire = page->purge_expire;
  memset(page, 0, sizeof(*page));
  page->segment_idx = idx;
  page->is_purged = purged;
  page->bin = bin;  /* the slot's last class (segment_find_free_page) */
  page->purge_expire = expire;
  segment->free_slots |= (uint64_t)1 << idx;
  segment->used--;

  hh_assert(segment->kind == HH_SEGMENT_SMALL || segment->kind == HH_SEGMENT_MEDIUM);
  page_schedule_purge(segment, page, force);
  if (segment->used == 0) {
    segment_free(segment, tld, force);
  } else {
    /* most recently freed first: its memory is still resident */
    hh_segment_queue_t* q = free_queue_of(tld, segment);
    if (segment->in_free_queue) segment_queue_remove(q, segment);
    segment_queue_push_front(q, segment);
  }
}

void hh_segments_collect(hh_tld_t* tld, bool force) {
  if (tld->segments.span_cache_count != 0) span_cache_release(tld, force ? 0 : hh_os_clock_ms(), force);
  spans_collect(force);
  if (!force && tld->segments.purge_pending == 0) return;
  uint64_t now = hh_os_clock_ms();
  hh_segment_queue_t* queues[2] = {&tld->segments.small_free, &tld->segments.medium_free};
  for (int q = 0; q < 2; q++) {
    for (hh_segment_t* s = queues[q]->first; s != NULL; s = s->next) segment_purge_expired(s, now, force);
  }
  if (force) {
    global_cache_flush();
    while (tld->segments.cache != NULL) {
      hh_segment_t* segment = tld->segments.cache;
      tld->segments.cache = segment->next;
      tld->segments.cache_count--;
      hh_stat_sub(&hh_stats.segments_cached, 1);
      segment_unmap(segment);
    }
  } else {
    for (hh_segment_t* s = tld->segments.cache; s != NULL; s = s->next) segment_purge_expired(s, now, false);
  }
}

/* ---- abandonment -------------------------------------------------------------
 * A thread that exits with live blocks leaves its segments on a global list
 * (thread_id 0). Remote frees into them keep going to the pages'
 * thread_free lists. A thread that needs a new segment first adopts one from
 * the list: its pages join that thread's heap, or are freed when all their
 * blocks have come back. */
static hh_segment_t* abandoned;           /* singly linked through next */
static _Atomic(size_t) abandoned_count;

/* Abandoning is two steps because another thread may reclaim a segment
 * the moment it is published: first every segment is detached from its
 * thread while the exiting thread still walks its pages, then all are
 * published at once, after which the exiting thread touches none of them. */
void hh_segment_abandon_prepare(hh_segment_t* segment, hh_segment_t** list) {
  hh_tld_t* tld = segment->tld;
  if (tld == NULL) return;  /* already on the list */
  if (segment->in_free_queue) segment_queue_remove(free_queue_of(tld, segment), segment);
  tld->segments.count--;
  tld->segments.purge_pending -= segment->purge_pending;
  segment->tld = NULL;
  segment->prev = NULL;
  segment->next = *list;
  *list = segment;
}

void hh_segment_abandon_publish(hh_segment_t* list) {
  if (list == NULL) return;
  size_t count = 0;
  hh_segment_t* last = list;
  for (hh_segment_t* s = list; s != NULL; s = s->next) {
    /* from here on, frees by any thread (even one that reuses the exiting
     * thread's id) are remote frees */
    atomic_store_explicit(&s->thread_id, 0, memory_order_release);
    last = s;
    count++;
  }
  pthread_mutex_lock(&abandoned_lock);
  last->next = abandoned;
  abandoned = list;
  atomic_fetch_add_explicit(&abandoned_count, count, memory_order_relaxed);
  pthread_mutex_unlock(&abandoned_lock);
}

void hh_segment_fork_prepare(void) {
  pthread_mutex_lock(&abandoned_lock);
  large_lock_acquire();
}

void hh_segment_fork_release(void) {
  large_lock_release();
  pthread_mutex_unlock(&abandoned_lock);
}

size_t hh_segments_abandoned_count(void) {
  return atomic_load_explicit(&abandoned_count, memory_order_relaxed);
}

bool hh_segment_try_reclaim(hh_heap_t* heap) {
  if (atomic_load_explicit(&abandoned_count, memory_order_relaxed) == 0) return false;
  pthread_mutex_lock(&abandoned_lock);
  hh_segment_t* segment = abandoned;
  if (segment != NULL) {
    abandoned = segment->next;
    atomic_fetch_sub_explicit(&abandoned_count, 1, memory_order_relaxed);
  }
  pthread_mutex_unlock(&abandoned_lock);
  if (segment == NULL) return false;

  hh_tld_t* tld = heap->tld;
  segment->tld = tld;
  tld->segments.purge_pending += segment->purge_pending;
  segment->next = segment->prev = NULL;
  atomic_store_explicit(&segment->thread_id, hh_thread_id(), memory_order_release);
  tld->segments.count++;
  for (uint32_t i = 0; i < segment->page_count; i++) {
    hh_page_t* page = &segment->pages[i];
    if (!page->segment_in_use) continue;
    bool last = (segment->used == 1);
    /* freeing the segment's last page frees the segment: stop touching it */
    if (hh_page_reclaim(heap, page) && last) return true;
  }
  if (segment->used < segment->page_count && free_queue_of(tld, segment) != NULL && !segment->in_free_queue) {
    segment_queue_push(free_queue_of(tld, segment), segment);
  }
  return true;
}
