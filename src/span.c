/* hardheap: large blocks (64 KiB .. 2 MiB), spans of 64 KiB slices in
 * shared large segments.
 *
 * A block of 64 KiB .. 2 MiB is a run of slices in a large segment, so the
 * memory one large block leaves is reused by the next one of any size (a
 * segment per block faulted fresh pages in for every new block and kept
 * each segment's high-water mark resident). Any thread frees large blocks,
 * so large segments belong to no thread (thread_id 0) and every change to
 * them is made under large_lock; it is taken after a heap's singles lock,
 * never before. A span's descriptor is the one of the slice its block
 * starts in (segment_idx still names the span's first slice); the others
 * stay free, which is why no interior pointer is handed out past that
 * slice (a block starts at its span's start, or with guards may start
 * anywhere in it, see span_place; alignments above a page are placed here,
 * see hhi_span_alloc). Freed slices stay resident for the purge delay,
 * restarted by every free in the segment. */
#include "internal.h"

#include <sched.h>

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

/* ---- the guard after a large block (HH_GUARD_LARGE) ---------------------------
 * A span in use (or in a span cache) has a guard page right after its
 * block, at page_start + block_size (block sizes are whole OS pages then),
 * so a linear overflow faults within a page of the block's end. A new
 * span's block is placed against the end of the span, as far as its first
 * slice allows; a cached span takes a smaller block of another size by
 * moving the block (and its descriptor, see span_place), not the guard:
 * moving the guard costs two madvise calls and a TLB shootdown on every
 * core the process runs on, which was most of the time of a large-block
 * workload. The guard goes when the span is released. */
static void span_guard(const hh_page_t* page, bool protect) {
  if (!HH_GUARD_LARGE) return;
  uint8_t* guard = page->page_start + page->block_size;
  if (protect) (void)hhi_os_protect(guard, hhi_os_page_size());
  else (void)hhi_os_unprotect(guard, hhi_os_page_size());
}

/* Slices an alignment above a slice puts a span's start on a multiple of. */
static size_t span_align_slices(size_t alignment) {
  return alignment > HH_SPAN_SLICE_SIZE ? alignment >> HH_SPAN_SLICE_SHIFT : 1;
}

static uint8_t* span_base(const hh_page_t* page) {
  return (uint8_t*)hhi_page_segment(page) + ((size_t)page->segment_idx << HH_SPAN_SLICE_SHIFT);
}

/* The alignment a block's offset in its span keeps: a block at the span
 * start is 64 KiB-aligned, one placed against the guard only page-aligned,
 * so an alignment above a page is honoured here (alloc.c sends such
 * requests with their alignment, see malloc_aligned_counted). */
static size_t span_offset_align(size_t alignment) {
  size_t page = hhi_os_page_size();
  return alignment > page ? alignment : page;
}

/* Where a block of block_size bytes starts in a span of span_slices
 * slices: at the start without guards, else as late as leaves room for the
 * guard, starts in the first slice and keeps alignment. */
static size_t span_block_offset(size_t span_slices, size_t block_size, size_t alignment) {
  if (!HH_GUARD_LARGE) return 0;
  size_t room = (span_slices << HH_SPAN_SLICE_SHIFT) - hhi_os_page_size() - block_size;
  if (room > HH_SPAN_SLICE_SIZE - 1) room = HH_SPAN_SLICE_SIZE - 1;
  size_t align = span_offset_align(alignment);
  return room / align * align;
}

/* Can a block of block_size bytes end at page's guard as it stands? */
static bool span_guard_fits(const hh_page_t* page, size_t block_size, size_t alignment) {
  if (!HH_GUARD_LARGE) return true;  /* nothing to move */
  size_t guard_offset = (size_t)(page->page_start - span_base(page)) + page->block_size;
  return guard_offset >= block_size && (guard_offset - block_size) % span_offset_align(alignment) == 0;
}

/* A slice descriptor no block starts in any more: zero but for its own
 * index and, so that a second free of the last block that started there
 * is told a double free (free.c), that block's start and size;
 * segment_in_use stays 0. Under large_lock, or on a span the caller owns. */
static void slice_descriptor_clear(hh_segment_t* segment, hh_page_t* page) {
  uint8_t* start = page->page_start;
  size_t block_size = page->block_size;
  memset(page, 0, sizeof(*page));
  page->segment_idx = (uint16_t)(page - segment->pages);
  page->page_start = start;
  page->block_size = block_size;
}

/* Put a block of block_size bytes in a span this thread holds (its
 * cache's): against the guard where it stands if it fits, else the guard
 * moves. The descriptor moves to the slice the block now starts in, which
 * is where a pointer to the block looks (block.h:hhi_lookup_page); it is
 * returned. */
static hh_page_t* span_place(hh_page_t* page, size_t block_size, size_t alignment) {
  if (!HH_GUARD_LARGE) {
    page->block_size = block_size;  /* at the span's start, as before */
    return page;
  }
  bool keep_guard = span_guard_fits(page, block_size, alignment);
  if (!keep_guard) span_guard(page, false);
  uint8_t* start = keep_guard ? page->page_start + page->block_size - block_size
                              : span_base(page) + span_block_offset(page->span_slices, block_size, alignment);
  hh_segment_t* segment = hhi_page_segment(page);
  hh_page_t* home = hhi_lookup_page(segment, start);
  if (home != page) {
    memcpy(home, page, sizeof(*home));
    slice_descriptor_clear(segment, page);
  }
  home->page_start = start;
  home->block_size = block_size;
  if (!keep_guard) span_guard(home, true);
  return home;
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

/* The slices a span may never use: those the metadata (header,
 * descriptors, bitmaps, guard) covers even in part, and the last one when
 * it holds the segment's end guard. */
static uint64_t span_reserved_slices(const hh_segment_t* segment) {
  uint64_t reserved = 0;
  for (size_t i = 0; i < HH_SPAN_SLICES; i++) {
    size_t size;
    (void)hhi_segment_page_area(segment, &segment->pages[i], &size);
    if (size < HH_SPAN_SLICE_SIZE) reserved |= (uint64_t)1 << i;
  }
  return reserved;
}

/* With HH_PROTECT_PURGED purged slices are PROT_NONE: a stale pointer into
 * returned memory faults. Protect or open the runs of mask. */
static void span_protect_runs(hh_segment_t* segment, uint64_t mask, bool protect) {
  if (!HH_PROTECT_PURGED || (protect && !hhi_purge_protect_allowed())) return;
  while (mask != 0) {
    size_t first = (size_t)__builtin_ctzll(mask);
    size_t count = run_length(mask, first);
    uint8_t* start = (uint8_t*)segment + (first << HH_SPAN_SLICE_SHIFT);
    if (protect) (void)hhi_os_protect(start, count << HH_SPAN_SLICE_SHIFT);
    else (void)hhi_os_unprotect(start, count << HH_SPAN_SLICE_SHIFT);
    mask &= ~span_mask(first, count);
  }
}

/* Give the free resident slices of segment back to the OS. */
static void span_purge(hh_segment_t* segment) {
  uint64_t dirty = segment->span_resident & ~segment->span_used;
  while (dirty != 0) {
    size_t first = (size_t)__builtin_ctzll(dirty);
    size_t count = run_length(dirty, first);
    uint64_t mask = span_mask(first, count);
    if (hhi_os_purge((uint8_t*)segment + (first << HH_SPAN_SLICE_SHIFT), count << HH_SPAN_SLICE_SHIFT)) {
      segment->span_resident &= ~mask;
      segment->span_zero |= mask;
      hhi_stat_sub(&hhi_stats.committed, count << HH_SPAN_SLICE_SHIFT);
      span_protect_runs(segment, mask, true);
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
    memset(page, 0, sizeof(*page));
    page->segment_idx = (uint16_t)i;
    page->is_purged = (uint8_t)(((segment->span_reserved >> i) & 1) == 0 && ((segment->span_resident >> i) & 1) == 0);
  }
  segment->used = 0;
  segment->purge_pending = 0;
}

/* Outside large_lock: the freeing thread's segment cache keeps the mapping
 * (its resident slices are purged after the delay), else it is unmapped. */
static void large_segment_release(hh_segment_t* segment, hh_tld_t* tld) {
  if (tld == NULL || hhi_option_value(hh_option_segment_cache) <= 0) {
    hhi_segment_unmap(segment);
    return;
  }
  segment->tld = tld;
  atomic_store_explicit(&segment->thread_id, tld->thread_id, memory_order_relaxed);
  for (size_t i = 1; i < HH_SPAN_SLICES; i++) {
    if (!segment->pages[i].is_purged) hhi_segment_schedule_purge(segment, &segment->pages[i], false);
  }
  hhi_segment_cache_push(tld, segment);
}

/* Release empty large segments beyond keep (hh_collect, thread exit). */
static void spans_release_empty(size_t keep, hh_tld_t* tld) {
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
    large_segment_release(release, tld);
  }
}

static void large_segments_collect(bool force, hh_tld_t* tld) {
  if (!force && atomic_load_explicit(&large_purge_pending, memory_order_relaxed) == 0) return;
  if (force) {
    large_lock_acquire();
  } else if (!large_lock_try()) {
    return;  /* busy: the next heartbeat tries again */
  }
  spans_purge_expired(hhi_os_clock_ms(), force);
  large_lock_release();
  if (force) spans_release_empty(0, tld);
}

/* Mark slices [first, first + count) used (under large_lock). Returns
 * whether they all read as zero. */
static bool span_take(hh_segment_t* segment, size_t first, size_t count) {
  uint64_t mask = span_mask(first, count);
  uint64_t purged = mask & ~segment->span_resident;
  if (purged != 0) {
    hhi_stat_add(&hhi_stats.committed, &hhi_stats.committed_peak,
                (size_t)__builtin_popcountll(purged) << HH_SPAN_SLICE_SHIFT);
    span_protect_runs(segment, purged, false);
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
 * lock. Entries expire after the purge delay (hhi_spans_collect). */
static void span_release(hh_segment_t* segment, hh_page_t* page, hh_tld_t* tld);

static void span_cache_remove(hh_tld_t* tld, size_t i) {
  tld->segments.span_cache_slices -= tld->segments.span_cache[i]->span_slices;
  for (size_t j = i + 1; j < tld->segments.span_cache_count; j++) tld->segments.span_cache[j - 1] = tld->segments.span_cache[j];
  tld->segments.span_cache_count--;
}

/* A cached span of count .. 2*count slices (aligned): one whose guard
 * need not move if there is one, and of those the smallest. With
 * HH_QUARANTINE never the span freed last, and a random one of the best
 * that fit: a large block is not handed out again right after it was
 * freed. */
static hh_page_t* span_cache_take(hh_tld_t* tld, size_t count, size_t alignment, size_t block_size) {
  size_t align_slices = span_align_slices(alignment);
  size_t best = SIZE_MAX;
  bool best_keeps_guard = false;
  size_t fits = 0;
  size_t candidates = HH_QUARANTINE ? tld->segments.span_cache_count - (tld->segments.span_cache_count != 0)
                                    : tld->segments.span_cache_count;
  for (size_t i = 0; i < candidates; i++) {
    const hh_page_t* page = tld->segments.span_cache[i];
    if (page->span_slices < count || page->span_slices > 2 * count) continue;
    if (align_slices > 1 && page->segment_idx % align_slices != 0) continue;
    bool keeps_guard = span_guard_fits(page, block_size, alignment);
    if (best != SIZE_MAX && best_keeps_guard && !keeps_guard) continue;
    if (keeps_guard && !best_keeps_guard) {  /* the first that keeps its guard: the better kind */
      best = SIZE_MAX;
      fits = 0;
    }
    if (HH_QUARANTINE) {
      /* reservoir sampling: each fitting span of the best kind equally likely */
      if (hhi_random_next(&tld->choice_state) % ++fits == 0) best = i;
    } else if (best == SIZE_MAX || page->span_slices < tld->segments.span_cache[best]->span_slices) {
      best = i;
    }
    best_keeps_guard = keeps_guard;
  }
  if (best == SIZE_MAX) return NULL;
  hh_page_t* page = tld->segments.span_cache[best];
  span_cache_remove(tld, best);
  page->purge_expire = 0;
  page->is_zero_init = 0;
  return span_place(page, block_size, alignment);
}

/* Keep page in the cache; false if it does not fit (the caller frees it). */
static bool span_cache_put(hh_tld_t* tld, hh_page_t* page) {
  long delay = hhi_option_value(hh_option_purge_delay);
  if (delay == 0 || page->span_slices > HH_SPAN_CACHE_SLICES / 2) return false;
  while (tld->segments.span_cache_count == HH_SPAN_CACHE_MAX ||
         tld->segments.span_cache_slices + page->span_slices > HH_SPAN_CACHE_SLICES) {
    hh_page_t* oldest = tld->segments.span_cache[0];
    span_cache_remove(tld, 0);
    span_release(hhi_page_segment(oldest), oldest, tld);
  }
  page->purge_expire = delay < 0 ? UINT64_MAX : hhi_os_clock_ms() + (uint64_t)delay;
  tld->segments.span_cache[tld->segments.span_cache_count++] = page;
  tld->segments.span_cache_slices += page->span_slices;
  if (delay > 0) hhi_purger_notify();
  return true;
}

/* Give back cached spans whose time is up (all of them with all). */
static void span_cache_release(hh_tld_t* tld, uint64_t now, bool all) {
  size_t i = 0;
  while (i < tld->segments.span_cache_count) {
    hh_page_t* page = tld->segments.span_cache[i];
    if (all || page->purge_expire <= now) {
      span_cache_remove(tld, i);
      span_release(hhi_page_segment(page), page, tld);
    } else {
      i++;
    }
  }
}

/* A large block's size for a need of need bytes: its size class, or with
 * HH_CANARY whole OS pages (the canary then fills less than a page). */
size_t hhi_span_block_size(size_t need) {
  /* the guard right after the block needs it to end on an OS page (tracking
   * builds have guards but no canaries) */
  if (HH_CANARY || HH_GUARD_LARGE) return hhi_align_up(need, hhi_os_page_size());
  return hhi_good_size(need, hhi_os_page_size());
}

/* Slices a span needs for a block offset bytes into it: the block, and
 * with HH_GUARD_LARGE a guard page right after it. */
static size_t span_slices_at(size_t offset, size_t need) {
  size_t bytes = offset + hhi_span_block_size(need) + (HH_GUARD_LARGE ? hhi_os_page_size() : 0);
  size_t count = (bytes + HH_SPAN_SLICE_SIZE - 1) >> HH_SPAN_SLICE_SHIFT;
  return count == 0 ? 1 : count;
}

static size_t span_slices_for(size_t need) {
  return span_slices_at(0, need);
}

bool hhi_span_can_hold(size_t block_size, size_t alignment) {
  size_t first = (hhi_segment_info_size() + HH_SPAN_SLICE_SIZE - 1) >> HH_SPAN_SLICE_SHIFT;
  size_t end = HH_SPAN_SLICES - (hhi_segment_end_guard_size() != 0 ? 1 : 0);
  size_t align = span_align_slices(alignment);
  size_t start = (first + align - 1) / align * align;
  return start + span_slices_for(block_size) <= end;
}

static hh_page_t* span_alloc_under_lock(hh_tld_t* tld, size_t need, size_t alignment) {
  size_t count = span_slices_for(need);
  size_t align_slices = span_align_slices(alignment);
  hh_assert(count < HH_SPAN_SLICES && align_slices <= HH_SPAN_SLICES / 2);
  size_t block_size = hhi_span_block_size(need);
  hh_page_t* cached = span_cache_take(tld, count, alignment, block_size);
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
    segment = hhi_segment_alloc(tld, HH_SEGMENT_LARGE, 0, 0);
    if (segment == NULL) return NULL;
    tld->segments.count--;
    segment->tld = NULL;
    atomic_store_explicit(&segment->thread_id, 0, memory_order_release);
    segment->span_reserved = span_reserved_slices(segment);
    segment->span_used = segment->span_reserved;
    segment->span_resident = ~(uint64_t)0;  /* counted as committed by segment_alloc */
    segment->span_zero = segment->pages[HH_SPAN_SLICES - 2].is_zero_init ? ~segment->span_reserved : 0;
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
  page->page_start = (uint8_t*)segment + (first << HH_SPAN_SLICE_SHIFT) + span_block_offset(count, block_size, alignment);
  page->block_size = block_size;
  large_lock_release();
  span_guard(page, true);
  /* a span in a thread's span cache still counts as a page: the shared
   * counters are touched only when a span leaves or joins a segment */
  hhi_stat_add(&hhi_stats.pages, &hhi_stats.pages_peak, 1);
  return page;
}

static void span_release(hh_segment_t* segment, hh_page_t* page, hh_tld_t* tld) {
  hh_segment_t* release = NULL;
  hhi_stat_sub(&hhi_stats.pages, 1);
  span_guard(page, false);
  large_lock_acquire();
  segment->span_used &= ~span_mask(page->segment_idx, page->span_slices);
  slice_descriptor_clear(segment, page);
  segment->used--;
  long delay = hhi_option_value(hh_option_purge_delay);
  if (delay == 0) {
    span_purge(segment);
  } else if (delay > 0) {
    if (segment->span_purge_at == 0) atomic_fetch_add_explicit(&large_purge_pending, 1, memory_order_seq_cst);
    segment->span_purge_at = hhi_os_clock_ms() + (uint64_t)delay;
    hhi_purger_notify();
  }
  if (segment->used == 0 && ++large_empty_count > HH_LARGE_EMPTY_KEEP) {
    large_segment_detach(segment);
    release = segment;
  }
  large_lock_release();
  if (release != NULL) large_segment_release(release, tld);
}


/* ---- the block moments of a span (free.c, alloc.c) ------------------------------*/
static void span_free_under_lock(hh_page_t* page, hh_tld_t* tld) {
  if (tld == NULL || !span_cache_put(tld, page)) span_release(hhi_page_segment(page), page, tld);
}

bool hhi_span_resize(hh_page_t* page, size_t newsize) {
  hh_segment_t* segment = hhi_page_segment(page);
  /* Shrinking below half moves to a smaller block, so the memory is
   * returned when this one is freed rather than held behind a small block. */
  if (newsize < page->block_size / 2) return false;
  if (newsize <= page->block_size) return true;
  /* a span grows in place: into the slack of its last slice, then over the
   * free slices that follow it */
  size_t new_block = hhi_span_block_size(newsize);
  size_t count = span_slices_at((size_t)(page->page_start - span_base(page)), newsize);
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
  if (grown) {
    span_guard(page, false);
    page->block_size = new_block;
    span_guard(page, true);
  }
  return grown;
}

static void spans_collect_under_lock(hh_tld_t* tld, bool force) {
  if (tld != NULL && tld->segments.span_cache_count != 0) {
    span_cache_release(tld, force ? 0 : hhi_os_clock_ms(), force);
  }
  large_segments_collect(force, tld);
}

static void spans_thread_exit_under_lock(hh_tld_t* tld) {
  span_cache_release(tld, 0, true);
  large_segments_collect(false, tld);
}

bool hhi_spans_purge_pending(void) {
  return atomic_load_explicit(&large_purge_pending, memory_order_seq_cst) != 0;
}

void hhi_span_fork_prepare(void) {
  large_lock_acquire();
}

void hhi_span_fork_release(void) {
  large_lock_release();
}

/* Invariant 6 of docs/design.md for one large segment, under large_lock:
 * span_used is bit 0 plus exactly the slices of the spans in use, and each
 * span's descriptor is the one of the slice its block starts in. */
bool hhi_span_validate_segment(const hh_segment_t* segment) {
  const char* broken = NULL;
  const hh_page_t* where = &segment->pages[0];
  large_lock_acquire();
  uint64_t covered = segment->span_reserved;
  uint32_t spans = 0;
  for (size_t i = 1; i < HH_SPAN_SLICES && broken == NULL; i++) {
    const hh_page_t* page = &segment->pages[i];
    if (!page->segment_in_use) continue;
    where = page;
    size_t first = page->segment_idx;
    bool inside = page->span_slices != 0 && first <= i && i < first + page->span_slices &&
                  first + page->span_slices <= HH_SPAN_SLICES;
    uint64_t mask = inside ? span_mask(first, page->span_slices) : 0;
    if (mask == 0) broken = "span length out of its segment, or its descriptor outside it";
    else if (hhi_lookup_page(segment, page->page_start) != page)
      broken = "span descriptor not at the slice its block starts in";
    else if ((covered & mask) != 0) broken = "two spans share a slice";
    covered |= mask;
    spans++;
  }
  if (broken == NULL && covered != segment->span_used) broken = "span_used bitmap disagrees with the spans in use";
  if (broken == NULL && spans != segment->used) broken = "large segment used count";
  large_lock_release();
  if (broken == NULL) return true;
  hhi_misuse(HH_OP_VALIDATE, (hh_misuse_info_t){.kind = HH_MISUSE_HEAP_INVARIANT,
                                                .detail = broken,
                                                .page = where->page_start,
                                                .segment = segment,
                                                .size_class = where->block_size});
  return false;
}

/* ---- the entry points, under the thread's segment-layer lock ------------------*/
hh_page_t* hhi_span_alloc(hh_tld_t* tld, size_t need, size_t alignment) {
  hhi_tld_lock(tld);
  hh_page_t* result = span_alloc_under_lock(tld, need, alignment);
  hhi_tld_unlock(tld);
  return result;
}

void hhi_span_free(hh_page_t* page, hh_tld_t* tld) {
  hhi_tld_lock(tld);
  span_free_under_lock(page, tld);
  hhi_tld_unlock(tld);
}

void hhi_spans_collect(hh_tld_t* tld, bool force) {
  hhi_tld_lock(tld);
  spans_collect_under_lock(tld, force);
  hhi_tld_unlock(tld);
}

void hhi_spans_thread_exit(hh_tld_t* tld) {
  hhi_tld_lock(tld);
  spans_thread_exit_under_lock(tld);
  hhi_tld_unlock(tld);
}
