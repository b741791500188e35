/* hardheap: segments and their page slots.
 *
 * A segment is a SEGMENT_SIZE-aligned mapping: header and page descriptors
 * at the start, then pages. Small and medium segments hold many pages of
 * one size each and belong to one thread (thread_id); a thread keeps the
 * segments that still have free page slots in a queue per kind and a few
 * empty ones in a cache. When a thread exits with live blocks its segments
 * are abandoned, and another thread that needs a page reclaims them (the
 * page layer drives that: page.c:hhi_page_reclaim_abandoned). Huge blocks
 * get a segment each, owned by nobody until the block is freed. Large
 * segments are built here but managed by span.c. */
#include "internal.h"

#include <pthread.h>
#include <sched.h>

/* ---- the thread's segment-layer lock (internal.h:hhi_tld_lock) -------------
 * Held only for short bookkeeping and a few madvise calls, so a waiter
 * spins a little, then yields. */
void hhi_tld_lock_wait(hh_tld_t* tld, uintptr_t me) {
  for (unsigned spins = 0;; spins++) {
    uintptr_t expected = 0;
    if (atomic_load_explicit(&tld->lock_owner, memory_order_relaxed) == 0 &&
        atomic_compare_exchange_weak_explicit(&tld->lock_owner, &expected, me, memory_order_acquire,
                                              memory_order_relaxed)) {
      return;
    }
    if (spins < 64) __builtin_ia32_pause(); else sched_yield();
  }
}

/* ---- geometry -------------------------------------------------------------
 * [header | page descriptors | block bitmaps | guard] [blocks ...] [guard]
 * Bytes before the first block: the header with room for the most page
 * descriptors any kind has (a cached segment can be re-cut for another
 * kind without moving anything), the block bitmaps (HH_BLOCK_BITMAPS), and
 * with HH_GUARD_METADATA a PROT_NONE page that stops a backwards overflow
 * from the first block reaching any of it. With HH_GUARD_SEGMENT_END the
 * last OS page of every segment is PROT_NONE too, so a forward overflow
 * off its last block cannot reach whatever is mapped next. Slots that the
 * metadata covers entirely hold no page. */
size_t hhi_segment_info_size(void) {
  size_t size = hhi_align_up(HH_SEGMENT_MAPS_OFFSET + HH_SEGMENT_MAPS_SIZE, hhi_os_page_size());
  if (HH_GUARD_METADATA) size += hhi_os_page_size();
  return size;
}

size_t hhi_segment_end_guard_size(void) {
  return HH_GUARD_SEGMENT_END ? hhi_os_page_size() : 0;
}

/* ---- guard pages between pages (HH_GUARD_PAGES) -----------------------------------
 * Every page of a small or medium segment ends in a PROT_NONE page, so a
 * linear overflow off a page's last block faults. Each guard costs the
 * kernel two mappings (Linux allows 65530 per process): while the process
 * holds fewer than HH_GUARD_BUDGET guards every page gets one, then every
 * 2nd, 4th, ... (the interval doubles with each budget's worth), so 8 GiB
 * of small blocks stay at a few thousand guards. Guard markers (os.c) cost
 * no mapping: with them every page gets one, however large the heap. The
 * last page always has one: it is the segment's end guard. */
static uint32_t guard_interval_now(hh_segment_kind_t kind) {
  if (!HH_GUARD_PAGES || (kind != HH_SEGMENT_SMALL && kind != HH_SEGMENT_MEDIUM)) return 0;
  if (hhi_os_guard_markers()) return 1;
  /* every page until half the budget is spent, every 2nd page for the next
   * quarter, every 4th for the next eighth, ...: the guards of any number of
   * segments stay below HH_GUARD_BUDGET (+ one end guard per segment) */
  size_t guards = atomic_load_explicit(&hhi_stats.guards, memory_order_relaxed);
  uint32_t interval = 1;
  size_t threshold = HH_GUARD_BUDGET / 2;
  while (guards >= threshold && interval < HH_SMALL_PAGES_PER_SEGMENT) {
    interval *= 2;
    threshold += HH_GUARD_BUDGET / (2 * interval);
  }
  return interval;
}

/* Slots of segment purged and made PROT_NONE one by one. */
static size_t segment_protected_slots(const hh_segment_t* segment) {
  size_t n = 0;
  for (uint32_t i = 0; i < segment->page_count; i++) n += segment->pages[i].is_protected;
  return n;
}

/* Purged memory made PROT_NONE (HH_PROTECT_PURGED) costs mappings too
 * (without guard markers): it counts against the same budget and is skipped
 * when it is spent. span.c asks too. */
bool hhi_purge_protect_allowed(void) {
  return HH_PROTECT_PURGED && (hhi_os_guard_markers() ||
                               atomic_load_explicit(&hhi_stats.guards, memory_order_relaxed) < HH_GUARD_BUDGET);
}

/* Does slot idx end in a guard page? Not the slots the metadata covers. */
static bool slot_guarded(const hh_segment_t* segment, size_t idx) {
  if (segment->guard_interval == 0 || idx % segment->guard_interval != segment->guard_interval - 1) return false;
  size_t slot_end = (idx + 1) << segment->page_shift;
  return slot_end - hhi_os_page_size() >= segment->info_size;
}

/* The guard page of slot i (slot_guarded must hold). */
static uint8_t* slot_guard(const hh_segment_t* segment, size_t i) {
  return (uint8_t*)segment + ((i + 1) << segment->page_shift) - hhi_os_page_size();
}

/* Put up the guards between the pages of segment. Under each guard of a
 * segment re-cut from the cache the memory is purged first: a later layout
 * may put its guards elsewhere and make this page part of a page again, and
 * it takes its pages as zero when the old ones were all purged
 * (segment_cache_pop); old data that sat under a guard would break that
 * (calloc memory not zero). Fresh memory needs no purge. */
static void segment_page_guards_up(hh_segment_t* segment, bool memory_is_zero) {
  if (segment->guard_interval == 0) return;
  size_t ps = hhi_os_page_size();
  for (size_t i = 0; i + 1 < segment->page_count; i++) {
    if (!slot_guarded(segment, i)) continue;
    uint8_t* guard = slot_guard(segment, i);
    bool up = !memory_is_zero && hhi_os_purge_protect(guard, ps);
    if (!up) {
      if (!memory_is_zero) (void)hhi_os_purge(guard, ps);
      up = hhi_os_protect(guard, ps);
    }
    if (up) hhi_stat_add(&hhi_stats.guards, NULL, 1);
  }
}

/* Take them down (the last slot's guard is the end guard, which stays). */
static void segment_page_guards_down(hh_segment_t* segment) {
  if (segment->guard_interval == 0) return;
  for (size_t i = 0; i + 1 < segment->page_count; i++) {
    if (slot_guarded(segment, i) && hhi_os_unprotect(slot_guard(segment, i), hhi_os_page_size())) {
      hhi_stat_sub(&hhi_stats.guards, 1);
    }
  }
  segment->guard_interval = 0;
}

/* The guards of a new mapping (kept while the segment is cached). Out of
 * mappings the segment goes on without them (os.c warns once). */
static void segment_protect(hh_segment_t* segment) {
  size_t ps = hhi_os_page_size();
  uint8_t* base = (uint8_t*)segment;
  if (HH_GUARD_METADATA) {
    /* an aligned huge block starts SEGMENT_SIZE in: nothing before it stays writable */
    size_t front_end = segment->block_offset != 0 ? segment->block_offset : segment->info_size;
    (void)hhi_os_protect(base + segment->info_size - ps, front_end - segment->info_size + ps);
  }
  if (HH_GUARD_SEGMENT_END) (void)hhi_os_protect(base + segment->segment_size - ps, ps);
}

static size_t kind_page_count(hh_segment_kind_t kind) {
  switch (kind) {
    case HH_SEGMENT_SMALL: return HH_SMALL_PAGES_PER_SEGMENT;
    case HH_SEGMENT_MEDIUM: return HH_MEDIUM_PAGES_PER_SEGMENT;
    case HH_SEGMENT_LARGE: return HH_SPAN_SLICES;
    case HH_SEGMENT_HUGE:
    case HH_SEGMENT_GUARDED: return 1;
  }
  return 1;
}

static uint32_t kind_page_shift(hh_segment_kind_t kind) {
  switch (kind) {
    case HH_SEGMENT_SMALL: return HH_SMALL_PAGE_SHIFT;
    case HH_SEGMENT_MEDIUM: return HH_MEDIUM_PAGE_SHIFT;
    case HH_SEGMENT_LARGE: return HH_SPAN_SLICE_SHIFT;
    case HH_SEGMENT_HUGE:
    case HH_SEGMENT_GUARDED: return 63;  /* every offset maps to page 0 */
  }
  return 63;
}

/* The memory of slot page: [slot start, slot end) without the metadata in
 * front and the end guard; a large segment's descriptor i is slice i, whose
 * span covers span_slices slices (a free slice counts as one). */
uint8_t* hhi_segment_page_area(const hh_segment_t* segment, const hh_page_t* page, size_t* size) {
  uint8_t* base = (uint8_t*)segment;
  size_t blocks_end = segment->segment_size - hhi_segment_end_guard_size();
  if (segment->kind == HH_SEGMENT_HUGE) {
    size_t offset = segment->block_offset != 0 ? segment->block_offset : segment->info_size;
    *size = blocks_end - offset;
    return base + offset;
  }
  size_t page_size = (size_t)1 << segment->page_shift;
  size_t start = (size_t)page->segment_idx * page_size;
  size_t slots = segment->kind == HH_SEGMENT_LARGE && page->span_slices > 1 ? page->span_slices : 1;
  size_t end = start + slots * page_size;
  if (slot_guarded(segment, page->segment_idx)) end -= hhi_os_page_size();
  if (start < segment->info_size) start = segment->info_size;
  if (end > blocks_end) end = blocks_end;
  *size = end > start ? end - start : 0;
  return base + start;
}

/* ---- queues -----------------------------------------------------------------*/
static hh_segment_queue_t* free_queue_of(hh_tld_t* tld, const hh_segment_t* segment) {
  switch (segment->kind) {
    case HH_SEGMENT_SMALL: return &tld->segments.small_free;
    case HH_SEGMENT_MEDIUM: return &tld->segments.medium_free;
    case HH_SEGMENT_LARGE:
    case HH_SEGMENT_HUGE:
    case HH_SEGMENT_GUARDED: return NULL;
  }
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

/* The bookkeeping of a page whose memory went back to the OS (returned:
 * the madvise succeeded; is_protected: and made inaccessible with it), or
 * whose purge is no longer due. */
static void page_purged(hh_segment_t* segment, hh_page_t* page, bool returned, bool is_protected) {
  if (page->purge_expire != 0) purge_cancel(segment, page);
  if (is_protected && !page->is_protected) {
    page->is_protected = 1;
    hhi_stat_add(&hhi_stats.guards, NULL, 1);
  }
  if (page->is_purged || !returned) return;
  size_t size;
  uint8_t* start = hhi_segment_page_area(segment, page, &size);
  page->is_purged = 1;
  page->is_zero_init = 1;
  page->linked_blocks = 0;
  hhi_stat_sub(&hhi_stats.committed, size);
  /* a stale pointer into returned memory faults (claiming the slot lifts it) */
  if (!page->is_protected && hhi_purge_protect_allowed() && hhi_os_protect(start, size)) {
    page->is_protected = 1;
    hhi_stat_add(&hhi_stats.guards, NULL, 1);
  }
}

/* Return [start, start + size) to the OS, and where guard markers make it
 * the same call, protect it too (*is_protected). */
static bool purge_range(uint8_t* start, size_t size, bool* is_protected) {
  *is_protected = hhi_purge_protect_allowed() && hhi_os_purge_protect(start, size);
  return *is_protected || hhi_os_purge(start, size);
}

static void page_purge_now(hh_segment_t* segment, hh_page_t* page) {
  bool returned = false;
  bool is_protected = false;
  if (!page->is_purged) {
    size_t size;
    uint8_t* start = hhi_segment_page_area(segment, page, &size);
    returned = purge_range(start, size, &is_protected);
  }
  page_purged(segment, page, returned, is_protected);
}

void hhi_segment_schedule_purge(hh_segment_t* segment, hh_page_t* page, bool force) {
  long delay = hhi_option_value(hh_option_purge_delay);
  if (force || delay == 0) {
    page_purge_now(segment, page);
  } else if (delay > 0) {
    if (page->purge_expire == 0) {
      segment->purge_pending++;
      if (segment->tld != NULL) segment->tld->segments.purge_pending++;
    }
    page->purge_expire = hhi_os_clock_ms() + (uint64_t)delay;
    segment->purge_busy_until = page->purge_expire;
    /* due at its expiry at the earliest; the later busy_until delays only others */
    if (page->purge_expire < segment->purge_next) segment->purge_next = page->purge_expire;
    hhi_purger_notify();
  }
}

/* A free page's purge is due PURGE_DELAY after its free once its segment
 * went a PURGE_DELAY without another page free, and in any case
 * HH_PURGE_BUSY_DELAYS delays after it (config.h). */
static bool purge_due(const hh_segment_t* segment, const hh_page_t* page, uint64_t now, bool force) {
  if (page->segment_in_use || page->purge_expire == 0) return false;
  if (force) return true;
  if (page->purge_expire > now) return false;
  if (segment->purge_busy_until <= now) return true;
  uint64_t delay = (uint64_t)hhi_option_value(hh_option_purge_delay);
  return page->purge_expire + (HH_PURGE_BUSY_DELAYS - 1) * delay <= now;
}

/* The first time purge_due(segment, page) holds, if neither the busy time
 * nor the delay changes (a later free only moves busy_until later). */
static uint64_t purge_due_at(const hh_segment_t* segment, const hh_page_t* page) {
  uint64_t delay = (uint64_t)hhi_option_value(hh_option_purge_delay);
  uint64_t latest = page->purge_expire + (HH_PURGE_BUSY_DELAYS - 1) * delay;
  uint64_t when = segment->purge_busy_until < latest ? segment->purge_busy_until : latest;
  return when > page->purge_expire ? when : page->purge_expire;
}

/* Purge the free pages of segment whose delay expired (all with force).
 * Neighbouring pages go back in one madvise: a thread that exits or goes
 * idle often leaves a row of them, and every call costs the other threads
 * a TLB shootdown (larson at 2 threads: 22,000 calls where mimalloc makes
 * 3,000). A guard page between two pages ends the row, unless guard markers
 * purge it. */
static void segment_purge_expired(hh_segment_t* segment, uint64_t now, bool force) {
  if (segment->purge_pending == 0) return;
  /* every thread's collect passes here (mstress: 3% of its instructions
   * scanned slots none of which was due) */
  if (!force && now < segment->purge_next) return;
  uint64_t earliest = UINT64_MAX;
  /* A guard marker between two pages does not end the row when the row is
   * made guard markers too: installing one over a marker changes nothing
   * (mstress at 2 threads: 11,600 calls, each a TLB shootdown, where the
   * default build makes 3,900) */
  bool bridge_guards = segment->guard_interval != 0 && hhi_purge_protect_allowed() && hhi_os_guard_markers();
  uint32_t i = 0;
  while (i < segment->page_count) {
    if (!purge_due(segment, &segment->pages[i], now, force)) {
      const hh_page_t* page = &segment->pages[i];
      if (!page->segment_in_use && page->purge_expire != 0) {
        uint64_t due = purge_due_at(segment, page);
        if (due < earliest) earliest = due;
      }
      i++;
      continue;
    }
    size_t size;
    uint8_t* start = hhi_segment_page_area(segment, &segment->pages[i], &size);
    uint8_t* end = start + size;
    uint32_t j = i + 1;
    for (; j < segment->page_count && purge_due(segment, &segment->pages[j], now, force); j++) {
      uint8_t* next = hhi_segment_page_area(segment, &segment->pages[j], &size);
      if (next != end && !(bridge_guards && next == end + hhi_os_page_size())) break;
      end = next + size;
    }
    bool is_protected;
    bool returned = purge_range(start, (size_t)(end - start), &is_protected);
    for (uint32_t k = i; k < j; k++) page_purged(segment, &segment->pages[k], returned, is_protected);
    i = j;
  }
  segment->purge_next = earliest;
}

/* ---- allocation and release of whole segments ------------------------------*/
/* Fresh descriptors; free_slots has the slots that hold a page (the
 * metadata may cover the first ones). */
static void segment_init_pages(hh_segment_t* segment, bool memory_is_zero) {
  segment->free_slots = 0;
  for (uint32_t i = 0; i < segment->page_count; i++) {
    hh_page_t* page = &segment->pages[i];
    memset(page, 0, sizeof(*page));
    page->segment_idx = (uint16_t)i;
    page->is_zero_init = memory_is_zero;
    size_t area;
    (void)hhi_segment_page_area(segment, page, &area);
    if (area > 0) segment->free_slots |= (uint64_t)1 << i;
  }
}

static void segment_setup(hh_segment_t* segment, hh_tld_t* tld, hh_segment_kind_t kind, size_t segment_size,
                          size_t info_size, size_t block_offset) {
  segment->cookie = (uintptr_t)segment ^ hhi_process_cookie;
  segment->segment_size = segment_size;
  segment->info_size = info_size;
  segment->block_offset = block_offset;
  segment->next = segment->prev = NULL;
  atomic_store_explicit(&segment->thread_id, tld->thread_id, memory_order_relaxed);
  segment->tld = tld;
  segment->kind = kind;
  segment->page_shift = kind_page_shift(kind);
  segment->page_count = (uint32_t)kind_page_count(kind);
  segment->guard_interval = 0;
  segment->blocks_protected = false;
  segment->used = 0;
  segment->purge_pending = 0;
  segment->purge_busy_until = 0;
  segment->purge_next = 0;
  segment->in_free_queue = false;
}

/* ---- the global cache of empty segments ---------------------------------------
 * An exiting thread leaves its empty segments here instead of unmapping
 * them, so the next thread (thread churn, as in servers that spawn workers)
 * reuses the mapping, and while it is fresh the memory too. Bounded; an
 * entry's memory is purged PURGE_DELAY after it came (by the next cache
 * operation, a thread's collect or the background purger). Purging them at
 * once made every thread of larson refault its predecessor's memory.
 * Keeping them 10 delays was no faster and doubled larson's peak RSS.
 * Guarded by segments_lock, which also guards the abandoned list (fork
 * handlers take it). */
#define HH_GLOBAL_CACHE_MAX 4
static pthread_mutex_t segments_lock = PTHREAD_MUTEX_INITIALIZER;
static void quarantine_flush(bool all);
static void huge_cache_flush(void);
static void huge_cache_purge_expired(uint64_t now);
static hh_segment_t* huge_cache_take(size_t segment_size);
static void huge_cache_reuse(hh_segment_t* segment, hh_tld_t* tld, size_t segment_size, size_t info,
                             size_t block_offset);
static hh_segment_t* quarantine_take(size_t segment_size);
static void quarantine_reuse(hh_segment_t* segment, hh_tld_t* tld, size_t segment_size, size_t info);
static void quarantine_purge_expired(uint64_t now);
static hh_segment_t* global_cache;             /* newest first, linked by next */
static _Atomic(size_t) global_cache_count;     /* written under the lock, peeked without it */
static _Atomic(size_t) global_cache_unpurged;  /* entries not purged yet (cached_ms != 0; seq_cst: the purger) */

/* Purge every page slot of an empty segment with one madvise. */
static void segment_purge_all(hh_segment_t* segment) {
  size_t resident = 0;
  for (uint32_t i = 0; i < segment->page_count; i++) {
    hh_page_t* page = &segment->pages[i];
    if (page->purge_expire != 0) purge_cancel(segment, page);
    if (page->is_purged) continue;
    size_t size;
    (void)hhi_segment_page_area(segment, page, &size);
    resident += size;
    page->is_purged = 1;
    page->is_zero_init = 1;
    page->linked_blocks = 0;
  }
  if (resident == 0) return;
  uint8_t* blocks = (uint8_t*)segment + segment->info_size;
  size_t size = segment->segment_size - segment->info_size;
  bool is_protected = false;
  if (segment->blocks_protected ? hhi_os_purge(blocks, size) : purge_range(blocks, size, &is_protected)) {
    hhi_stat_sub(&hhi_stats.committed, resident);
    if (!segment->blocks_protected && (is_protected || (hhi_purge_protect_allowed() && hhi_os_protect(blocks, size)))) {
      segment->blocks_protected = true;  /* re-cutting lifts it */
      hhi_stat_add(&hhi_stats.guards, NULL, 1);
    }
  }
}

/* Under segments_lock. */
static void global_cache_purge_expired_locked(uint64_t now) {
  long delay = hhi_option_value(hh_option_purge_delay);
  if (delay < 0) return;
  for (hh_segment_t* s = global_cache; s != NULL; s = s->next) {
    if (s->cached_ms == 0 || s->cached_ms + (uint64_t)delay > now) continue;
    segment_purge_all(s);
    s->cached_ms = 0;
    atomic_fetch_sub_explicit(&global_cache_unpurged, 1, memory_order_seq_cst);
  }
}

static void global_cache_purge_expired(uint64_t now) {
  if (atomic_load_explicit(&global_cache_unpurged, memory_order_seq_cst) == 0) return;
  pthread_mutex_lock(&segments_lock);
  global_cache_purge_expired_locked(now);
  pthread_mutex_unlock(&segments_lock);
}

/* segment has no owner and no purge scheduled any more. */
static void segment_to_global_cache(hh_segment_t* segment) {
  uint64_t now = hhi_os_clock_ms();
  long delay = hhi_option_value(hh_option_purge_delay);
  segment->tld = NULL;
  atomic_store_explicit(&segment->thread_id, 0, memory_order_release);
  if (delay == 0) segment_purge_all(segment);
  segment->cached_ms = delay > 0 ? now : 0;  /* 0: nothing left for the purger (PURGE_DELAY=-1: never) */
  pthread_mutex_lock(&segments_lock);
  bool kept = atomic_load_explicit(&global_cache_count, memory_order_relaxed) < HH_GLOBAL_CACHE_MAX;
  if (kept) {
    segment->next = global_cache;
    global_cache = segment;
    atomic_fetch_add_explicit(&global_cache_count, 1, memory_order_relaxed);
    if (segment->cached_ms != 0) atomic_fetch_add_explicit(&global_cache_unpurged, 1, memory_order_seq_cst);
    global_cache_purge_expired_locked(now);
  }
  pthread_mutex_unlock(&segments_lock);
  if (!kept) {
    hhi_stat_sub(&hhi_stats.segments_cached, 1);
    hhi_segment_unmap(segment);
  } else if (delay > 0) {
    hhi_purger_notify();
  }
}

/* The link to the newest entry of kind in a cache list, else to the newest
 * (the caller checks the list is not empty): a segment re-cut for another
 * kind takes its guards down and puts them up again, two madvise calls a
 * page where the same kind keeps them. */
static hh_segment_t** cache_link_of_kind(hh_segment_t** list, hh_segment_kind_t kind) {
  for (hh_segment_t** link = list; *link != NULL; link = &(*link)->next) {
    if ((*link)->kind == kind) return link;
  }
  return list;
}

static hh_segment_t* global_cache_pop(hh_segment_kind_t kind) {
  if (atomic_load_explicit(&global_cache_count, memory_order_relaxed) == 0) return NULL;  /* a stale miss costs an mmap */
  pthread_mutex_lock(&segments_lock);
  hh_segment_t* segment = global_cache;
  if (segment != NULL) {
    hh_segment_t** link = cache_link_of_kind(&global_cache, kind);
    segment = *link;
    *link = segment->next;
    atomic_fetch_sub_explicit(&global_cache_count, 1, memory_order_relaxed);
    if (segment->cached_ms != 0) atomic_fetch_sub_explicit(&global_cache_unpurged, 1, memory_order_seq_cst);
    global_cache_purge_expired_locked(hhi_os_clock_ms());
  }
  pthread_mutex_unlock(&segments_lock);
  return segment;
}

static void global_cache_flush(void) {
  for (;;) {
    hh_segment_t* segment = global_cache_pop(HH_SEGMENT_SMALL);  /* any kind: all go */
    if (segment == NULL) return;
    hhi_stat_sub(&hhi_stats.segments_cached, 1);
    hhi_segment_unmap(segment);
  }
}

/* The exiting thread's empty segments go to the global cache as they are:
 * their pages' scheduled purges give way to the cache's own. */
static void segments_thread_exit_under_lock(hh_tld_t* tld) {
  hhi_segments_collect(tld, false);
  while (tld->segments.cache != NULL) {
    hh_segment_t* segment = tld->segments.cache;
    tld->segments.cache = segment->next;
    tld->segments.cache_count--;
    for (uint32_t i = 0; i < segment->page_count; i++) {
      if (segment->pages[i].purge_expire != 0) purge_cancel(segment, &segment->pages[i]);  /* while tld is attached */
    }
    segment_to_global_cache(segment);
  }
}

/* Lay a cached small or medium segment out again for its own kind: the
 * guards stay where they are, and every slot keeps its state (purged,
 * protected; a segment protected whole has each slot protected), which a
 * page's claim accounts and opens. A thread that takes over a cached
 * segment uses a few of its pages: opening all of them and putting the
 * guards up again cost mstress 128 madvise calls a segment. */
static void segment_recut_same_kind(hh_segment_t* segment, hh_tld_t* tld) {
  bool protected_whole = segment->blocks_protected;
  uint32_t guards = segment->guard_interval;
  uint64_t purged = 0, protected_slots = 0;
  for (uint32_t i = 0; i < segment->page_count; i++) {
    if (segment->pages[i].is_purged) purged |= (uint64_t)1 << i;
    if (segment->pages[i].is_protected) protected_slots |= (uint64_t)1 << i;
  }
  tld->segments.purge_pending -= segment->purge_pending;  /* re-cutting cancels them */
  segment_setup(segment, tld, segment->kind, HH_SEGMENT_SIZE, hhi_segment_info_size(), 0);
  segment->guard_interval = guards;
  segment_init_pages(segment, false);
  size_t newly_protected = 0;
  for (uint32_t i = 0; i < segment->page_count; i++) {
    hh_page_t* page = &segment->pages[i];
    uint64_t bit = (uint64_t)1 << i;
    size_t area;
    (void)hhi_segment_page_area(segment, page, &area);
    if ((purged & bit) == 0 || area == 0) continue;
    page->is_purged = 1;
    page->is_zero_init = 1;
    if ((protected_slots & bit) != 0 || protected_whole) page->is_protected = 1;
    if ((protected_slots & bit) == 0 && protected_whole) newly_protected++;
  }
  if (protected_whole) {
    hhi_stat_add(&hhi_stats.guards, NULL, newly_protected);
    hhi_stat_sub(&hhi_stats.guards, 1);
  }
}

/* Take an empty segment from the thread's cache (or the global one). Its
 * page memory is zero only where a page was purged. */
static hh_segment_t* segment_cache_pop(hh_tld_t* tld, hh_segment_kind_t kind) {
  hh_segment_t* segment = tld->segments.cache;
  if (segment != NULL) {
    hh_segment_t** link = cache_link_of_kind(&tld->segments.cache, kind);
    segment = *link;
    *link = segment->next;
    tld->segments.cache_count--;
  } else {
    segment = global_cache_pop(kind);
    if (segment == NULL) return NULL;
    segment->tld = tld;
    atomic_store_explicit(&segment->thread_id, tld->thread_id, memory_order_relaxed);
    tld->segments.purge_pending += segment->purge_pending;
  }
  hhi_stat_sub(&hhi_stats.segments_cached, 1);

  if (HH_ZERO_ON_FREE && (segment->kind == HH_SEGMENT_LARGE || segment->kind == HH_SEGMENT_HUGE)) {
    /* large blocks are not zeroed when freed: pages cut from their memory
     * must start out zero (block.h:hhi_block_check_zero) */
    segment_purge_all(segment);
  } else if (HH_CLEAR_HANDED_OUT_LINK && (segment->kind == HH_SEGMENT_SMALL || segment->kind == HH_SEGMENT_MEDIUM)) {
    /* the new layout's blocks must not start out holding the old one's links */
    for (uint32_t i = 0; i < segment->page_count; i++) hhi_segment_clear_links(segment, &segment->pages[i]);
  }
  if (segment->kind == kind && (kind == HH_SEGMENT_SMALL || kind == HH_SEGMENT_MEDIUM)) {
    segment_recut_same_kind(segment, tld);
    return segment;
  }
  /* Re-cut the segment: unpurged memory of the old layout is not zero, and
   * pages that were purged account their bytes back in. */
  size_t purged_bytes = 0;
  bool all_purged = true;
  for (uint32_t i = 0; i < segment->page_count; i++) {
    hh_page_t* page = &segment->pages[i];
    size_t size;
    (void)hhi_segment_page_area(segment, page, &size);
    if (page->is_purged) purged_bytes += size; else all_purged = false;
  }
  hhi_stat_add(&hhi_stats.committed, &hhi_stats.committed_peak, purged_bytes);
  size_t info = hhi_segment_info_size();
  tld->segments.purge_pending -= segment->purge_pending;  /* re-cutting cancels them */
  /* the guards between pages stay where the same kind wants them; purged
   * memory that was made inaccessible is opened up for the new layout */
  hh_segment_kind_t old_kind = segment->kind;
  uint32_t guards = segment->guard_interval;
  size_t protected_slots = segment_protected_slots(segment);
  /* (a large segment's purged slices are protected without a count: span.c) */
  bool reopen = segment->blocks_protected || protected_slots != 0 || (HH_PROTECT_PURGED && old_kind == HH_SEGMENT_LARGE);
  if (old_kind != kind || reopen) segment_page_guards_down(segment);
  if (reopen) {
    (void)hhi_os_unprotect((uint8_t*)segment + segment->info_size,
                           segment->segment_size - segment->info_size - hhi_segment_end_guard_size());
    hhi_stat_sub(&hhi_stats.guards, protected_slots + (segment->blocks_protected ? 1 : 0));
    segment->blocks_protected = false;
  }
  segment_setup(segment, tld, kind, HH_SEGMENT_SIZE, info, 0);
  segment->guard_interval = (old_kind == kind) ? guards : guard_interval_now(kind);
  if (old_kind != kind || reopen) segment_page_guards_up(segment, false);
  segment_init_pages(segment, all_purged);
  return segment;
}

static hh_segment_t* segment_alloc_under_lock(hh_tld_t* tld, hh_segment_kind_t kind, size_t huge_block, size_t alignment) {
  if (kind != HH_SEGMENT_HUGE) {
    hh_segment_t* cached = segment_cache_pop(tld, kind);
    if (cached != NULL) {
      tld->segments.count++;
      return cached;
    }
  }
  size_t info = hhi_segment_info_size();
  size_t segment_size = HH_SEGMENT_SIZE;
  size_t block_offset = 0;
  size_t map_alignment = HH_SEGMENT_SIZE;
  size_t align_offset = 0;
  if (kind == HH_SEGMENT_HUGE) {
    if (alignment > HH_SEGMENT_SIZE / 2) {
      /* Place the block at segment + SEGMENT_SIZE, itself aligned; the
       * (p - 1) masking in hhi_ptr_segment still finds the header. */
      block_offset = HH_SEGMENT_SIZE;
      map_alignment = alignment < HH_SEGMENT_SIZE ? HH_SEGMENT_SIZE : alignment;
      align_offset = HH_SEGMENT_SIZE;
      segment_size = HH_SEGMENT_SIZE + hhi_align_up(huge_block, hhi_os_page_size());
    } else if (alignment > hhi_os_page_size()) {
      /* aligned within the first SEGMENT_SIZE, after the metadata */
      block_offset = hhi_align_up(info, alignment);
      segment_size = block_offset + hhi_align_up(huge_block, hhi_os_page_size());
    } else {
      segment_size = hhi_align_up(info + huge_block, hhi_os_page_size());
    }
    segment_size += hhi_segment_end_guard_size();  /* a huge block's guard comes on top */
    if (segment_size < huge_block) return NULL;  /* overflow */
  }
  if (HH_HUGE_QUARANTINE_REUSE && kind == HH_SEGMENT_HUGE && block_offset == 0) {
    hh_segment_t* waited = quarantine_take(segment_size);
    if (waited != NULL) {
      quarantine_reuse(waited, tld, segment_size, info);
      tld->segments.count++;
      return waited;
    }
  }
  if (HH_HUGE_CACHE && kind == HH_SEGMENT_HUGE && map_alignment == HH_SEGMENT_SIZE) {
    hh_segment_t* cached = huge_cache_take(segment_size);
    if (cached != NULL) {
      huge_cache_reuse(cached, tld, segment_size, info, block_offset);
      tld->segments.count++;
      return cached;
    }
  }
  bool huge_pages = hhi_option_enabled(hh_option_allow_large_os_pages);
  uintptr_t hint = 0;
  if (HH_RANDOM_ADDRESSES) {
    hint = hhi_random_address(&tld->address_stream, map_alignment);
    if (hint != 0) hint -= align_offset;
  }
  /* A huge segment is one request's memory: the kernel's overcommit policy
   * judges it (charged, as glibc's mmapped chunks are), so a block that
   * cannot be backed fails with ENOMEM instead of being mapped and the
   * program killed later; shared segments, whose guards and purged pages
   * must not count, stay MAP_NORESERVE. */
  bool charge = kind == HH_SEGMENT_HUGE;
  hh_segment_t* segment = hhi_os_alloc_aligned(segment_size, map_alignment, align_offset, hint, huge_pages, charge);
  if (segment == NULL) return NULL;
  if (!hhi_segment_map_add(segment)) {
    hhi_os_free(segment, segment_size);
    return NULL;
  }
  segment_setup(segment, tld, kind, segment_size, info, block_offset);
  segment->mapping_size = segment_size;
  hhi_segment_register(segment);
  hhi_track_segment_map(segment, info, segment_size);
  segment_protect(segment);
  segment->guard_interval = guard_interval_now(kind);
  segment_page_guards_up(segment, true);
  segment_init_pages(segment, true);
  tld->segments.count++;
  hhi_stat_add(&hhi_stats.segments, &hhi_stats.segments_peak, 1);
  hhi_stat_add(&hhi_stats.reserved, &hhi_stats.reserved_peak, segment_size);
  hhi_stat_add(&hhi_stats.committed, &hhi_stats.committed_peak, segment_size);
  hhi_stats_segment_grew();
  return segment;
}

void hhi_segment_unmap(hh_segment_t* segment) {
  size_t guards = segment_protected_slots(segment) + (segment->blocks_protected ? 1 : 0);
  if (segment->guard_interval != 0) {
    for (size_t i = 0; i + 1 < segment->page_count; i++) guards += slot_guarded(segment, i);
  }
  hhi_stat_sub(&hhi_stats.guards, guards);
  size_t purged_bytes = 0;
  for (uint32_t i = 0; i < segment->page_count; i++) {
    if (!segment->pages[i].is_purged) continue;
    size_t size;
    (void)hhi_segment_page_area(segment, &segment->pages[i], &size);
    purged_bytes += size;
  }
  hhi_segment_unregister(segment);
  hhi_segment_map_remove(segment);
  if (segment->tld != NULL) segment->tld->segments.purge_pending -= segment->purge_pending;
  hhi_stat_sub(&hhi_stats.segments, 1);
  hhi_stat_sub(&hhi_stats.reserved, segment->mapping_size);
  hhi_stat_sub(&hhi_stats.committed, segment->segment_size - purged_bytes);
  segment->cookie = 0;
  hhi_track_segment_unmap(segment, segment->info_size, segment->mapping_size);
  hhi_os_free(segment, segment->mapping_size);
}

/* Keep an empty segment in the thread's cache, newest first. When the cache
 * is over its bound the oldest entry is unmapped, not the new one: the new
 * one still has resident memory that the next segment request reuses
 * without page faults, the old one has most likely been purged already. */
static void segment_cache_push_under_lock(hh_tld_t* tld, hh_segment_t* segment) {
  segment->next = tld->segments.cache;
  segment->prev = NULL;
  tld->segments.cache = segment;
  tld->segments.cache_count++;
  hhi_stat_add(&hhi_stats.segments_cached, NULL, 1);
  size_t cache_max = (size_t)hhi_option_value(hh_option_segment_cache);
  while (tld->segments.cache_count > cache_max) {
    hh_segment_t** link = &tld->segments.cache;
    while ((*link)->next != NULL) link = &(*link)->next;
    hh_segment_t* oldest = *link;
    *link = NULL;
    tld->segments.cache_count--;
    hhi_stat_sub(&hhi_stats.segments_cached, 1);
    hhi_segment_unmap(oldest);
  }
}

/* An empty small or medium segment: keep it in the cache or give it back. */
static void segment_free(hh_segment_t* segment, hh_tld_t* tld, bool force) {
  if (segment->in_free_queue) segment_queue_remove(free_queue_of(tld, segment), segment);
  tld->segments.count--;
  if (!force && hhi_option_value(hh_option_segment_cache) > 0) {
    hhi_segment_cache_push(tld, segment);
    return;
  }
  hhi_segment_unmap(segment);
}

/* ---- page slots of small and medium segments ----------------------------------*/
void hhi_segment_clear_links(hh_segment_t* segment, hh_page_t* slot) {
  if (slot->is_purged || slot->linked_blocks == 0) return;  /* purged memory reads as zero */
  /* a tracking build has no zero check to satisfy, and its checker was told
   * the old blocks are gone */
  if (HH_TRACKING) return;
  size_t block_size = hhi_bin_size(slot->bin);
  size_t area;
  uint8_t* start = hhi_segment_page_area(segment, slot, &area);
  if (block_size == 0) return;
  size_t count = area / block_size < slot->linked_blocks ? area / block_size : slot->linked_blocks;
  for (size_t i = 0; i < count; i++) ((hh_block_t*)(start + i * block_size))->next = 0;
  slot->linked_blocks = 0;
}

static hh_page_t* segment_claim_page(hh_segment_t* segment, hh_page_t* page) {
  hh_assert(!page->segment_in_use);
  if (page->purge_expire != 0) purge_cancel(segment, page);
  if (page->is_purged) {
    size_t size;
    uint8_t* start = hhi_segment_page_area(segment, page, &size);
    hhi_stat_add(&hhi_stats.committed, &hhi_stats.committed_peak, size);
    page->is_purged = 0;
    if (page->is_protected) {
      page->is_protected = 0;
      hhi_stat_sub(&hhi_stats.guards, 1);
      (void)hhi_os_unprotect(start, size);
    }
  }
  page->segment_in_use = 1;
  segment->free_slots &= ~((uint64_t)1 << page->segment_idx);
  segment->used++;
  size_t size;
  page->page_start = hhi_segment_page_area(segment, page, &size);
  hhi_stat_add(&hhi_stats.pages, &hhi_stats.pages_peak, 1);
  return page;
}

/* A free slot for a page of size class bin. Best: a resident slot that last
 * held the same class, whose blocks sit at the same offsets, so the new page
 * touches no memory the old one did not (slots passed from class to class
 * end up resident to the furthest extent of any of them). Then any resident
 * slot, then a purged one. With HH_RANDOM_SLOTS the slot is drawn at random
 * among the best ones, so where a page lands is not predictable. */
static hh_page_t* segment_find_free_page(hh_segment_t* segment, size_t bin) {
  uint64_t same = 0, resident = 0, purged = 0;
  for (uint64_t slots = segment->free_slots; slots != 0; slots &= slots - 1) {
    unsigned i = (unsigned)__builtin_ctzll(slots);
    const hh_page_t* page = &segment->pages[i];
    hh_assert(!page->segment_in_use);
    uint64_t bit = (uint64_t)1 << i;
    if (page->is_purged) purged |= bit;
    else if (page->bin == bin) same |= bit;
    else resident |= bit;
  }
  uint64_t best = same != 0 ? same : resident != 0 ? resident : purged;
  if (best == 0) return NULL;
  unsigned pick = (unsigned)__builtin_ctzll(best);
  if (HH_RANDOM_SLOTS && segment->tld != NULL && (best & (best - 1)) != 0) {
    unsigned n = (unsigned)(hhi_random_next(&segment->tld->choice_state) % (uint64_t)__builtin_popcountll(best));
    while (n-- > 0) best &= best - 1;
    pick = (unsigned)__builtin_ctzll(best);
  }
  return &segment->pages[pick];
}

static hh_page_t* segment_page_alloc_under_lock(hh_tld_t* tld, hh_segment_kind_t kind, size_t bin) {
  hh_segment_queue_t* q = kind == HH_SEGMENT_SMALL ? &tld->segments.small_free : &tld->segments.medium_free;
  hh_segment_t* segment = q->first;
  if (segment == NULL) {
    segment = hhi_segment_alloc(tld, kind, 0, 0);
    if (segment == NULL) return NULL;
    segment_queue_push(q, segment);
  }
  hh_page_t* page = segment_find_free_page(segment, bin);
  hh_assert(page != NULL);
  segment_claim_page(segment, page);
  if (segment->free_slots == 0) segment_queue_remove(q, segment);
  return page;
}

static void segment_page_free_under_lock(hh_page_t* page, bool force) {
  hh_segment_t* segment = hhi_page_segment(page);
  hh_tld_t* tld = segment->tld;
  hhi_stat_sub(&hhi_stats.pages, 1);

  /* Reset the descriptor; the memory keeps whatever the blocks held. */
  uint16_t idx = page->segment_idx;
  uint8_t purged = page->is_purged;
  uint8_t bin = page->bin;
  uint32_t linked = page->linked_blocks;
  uint64_t expire = page->purge_expire;
  memset(page, 0, sizeof(*page));
  page->segment_idx = idx;
  page->is_purged = purged;
  page->bin = bin;              /* the slot's last class (segment_find_free_page) */
  page->linked_blocks = linked; /* and how far its links go (hhi_segment_clear_links) */
  page->purge_expire = expire;
  segment->free_slots |= (uint64_t)1 << idx;
  segment->used--;

  hh_assert(segment->kind == HH_SEGMENT_SMALL || segment->kind == HH_SEGMENT_MEDIUM);
  hhi_segment_schedule_purge(segment, page, force);
  if (segment->used == 0) {
    segment_free(segment, tld, force);
  } else {
    /* most recently freed first: its memory is still resident */
    hh_segment_queue_t* q = free_queue_of(tld, segment);
    if (segment->in_free_queue) segment_queue_remove(q, segment);
    segment_queue_push_front(q, segment);
  }
}

static void segments_collect_under_lock(hh_tld_t* tld, bool force) {
  if (!force && tld->segments.purge_pending == 0) return;
  uint64_t now = hhi_os_clock_ms();
  hh_segment_queue_t* queues[2] = {&tld->segments.small_free, &tld->segments.medium_free};
  for (int q = 0; q < 2; q++) {
    for (hh_segment_t* s = queues[q]->first; s != NULL; s = s->next) segment_purge_expired(s, now, force);
  }
  if (HH_HUGE_CACHE) {
    if (force) huge_cache_flush(); else huge_cache_purge_expired(now);
  }
  if (HH_HUGE_QUARANTINE_REUSE && !force) quarantine_purge_expired(now);
  if (!force) global_cache_purge_expired(now);
  if (force) {
    global_cache_flush();
    quarantine_flush(true);
    while (tld->segments.cache != NULL) {
      hh_segment_t* segment = tld->segments.cache;
      tld->segments.cache = segment->next;
      tld->segments.cache_count--;
      hhi_stat_sub(&hhi_stats.segments_cached, 1);
      hhi_segment_unmap(segment);
    }
  } else {
    for (hh_segment_t* s = tld->segments.cache; s != NULL; s = s->next) segment_purge_expired(s, now, false);
  }
}

/* ---- huge blocks: a segment each -----------------------------------------------*/
static hh_page_t* segment_huge_alloc_under_lock(hh_tld_t* tld, size_t block_size, size_t alignment) {
  hh_segment_t* segment = hhi_segment_alloc(tld, HH_SEGMENT_HUGE, block_size, alignment);
  if (segment == NULL) return NULL;
  /* Huge segments have no owner: any thread's free releases them (the
   * page's single_live flag, page.c:hhi_single_claim). */
  tld->segments.count--;
  segment->tld = NULL;
  atomic_store_explicit(&segment->thread_id, 0, memory_order_release);
  return segment_claim_page(segment, &segment->pages[0]);
}

/* ---- the quarantine of freed huge blocks (HH_HUGE_QUARANTINE) -------------------
 * A freed huge block is made inaccessible, but its segment stays mapped
 * (and in the segment map) for a while: a use after free faults, and a
 * second free finds the descriptor, which keeps the block's start and size,
 * and is reported as a double free. Oldest first out; guarded by
 * segments_lock.
 *
 * With HH_HUGE_QUARANTINE_REUSE the block's contents are erased at once
 * (resident pages zeroed in place, the rest never touched or purged) and
 * its memory kept, and a block that has waited for
 * HH_HUGE_QUARANTINE_WAIT later huge frees may serve the next huge request
 * it fits (at least its size, at most twice it), which then gets memory
 * that is resident and zero instead of page faults. Kept memory is bounded
 * (HH_HUGE_QUARANTINE_RESIDENT, oldest purged first) and purged
 * HH_HUGE_QUARANTINE_PURGE_DELAYS times PURGE_DELAY after the free;
 * without REUSE, or where zeroing cannot be trusted (swap), the block's
 * memory is returned at once. */
static hh_segment_t* quarantine_first;   /* oldest, linked by next */
static hh_segment_t* quarantine_last;
static size_t quarantine_count;
static size_t quarantine_bytes;          /* address space of the entries */
static size_t quarantine_resident;       /* sum of the entries' quarantine_resident */
static _Atomic(size_t) quarantine_unpurged;  /* entries with memory kept (seq_cst: the purger) */

static void segment_lock(void);
static void segment_unlock(void);

/* Drop an entry's kept memory from the totals (it is purged or leaves). */
static void quarantine_forget_resident_locked(hh_segment_t* segment) {
  if (segment->quarantine_resident == 0) return;
  quarantine_resident -= segment->quarantine_resident;
  segment->quarantine_resident = 0;
  atomic_fetch_sub_explicit(&quarantine_unpurged, 1, memory_order_seq_cst);
}

/* Unlink the entry after prev (NULL: the oldest). */
static hh_segment_t* quarantine_unlink_locked(hh_segment_t* prev) {
  hh_segment_t* segment = prev != NULL ? prev->next : quarantine_first;
  if (prev != NULL) prev->next = segment->next; else quarantine_first = segment->next;
  if (quarantine_last == segment) quarantine_last = prev;
  quarantine_count--;
  quarantine_bytes -= segment->mapping_size;
  quarantine_forget_resident_locked(segment);
  return segment;
}

/* Unlink and return the oldest quarantined segment if over the bounds (all: any). */
static hh_segment_t* quarantine_evict(bool all) {
  if (quarantine_first == NULL) return NULL;
  if (!all && quarantine_count <= HH_HUGE_QUARANTINE_MAX && quarantine_bytes <= HH_HUGE_QUARANTINE_BYTES) return NULL;
  return quarantine_unlink_locked(NULL);
}

static void quarantine_flush(bool all) {
  for (;;) {
    segment_lock();
    hh_segment_t* segment = quarantine_evict(all);
    segment_unlock();
    if (segment == NULL) return;
    hhi_segment_unmap(segment);
  }
}

/* Return a quarantined block's kept memory; it stays inaccessible. */
static void quarantine_purge_locked(hh_segment_t* segment) {
  if (segment->quarantine_resident == 0) return;
  hh_page_t* page = &segment->pages[0];
  size_t size;
  uint8_t* start = hhi_segment_page_area(segment, page, &size);
  if (!hhi_os_purge(start, size)) return;
  page->is_purged = 1;
  hhi_stat_sub(&hhi_stats.committed, size);
  quarantine_forget_resident_locked(segment);
}

/* Purge what was kept for longer than its delays, then the oldest kept
 * memory while over the bound. */
static void quarantine_purge_locked_over(uint64_t now) {
  long delay = hhi_option_value(hh_option_purge_delay);
  for (hh_segment_t* s = quarantine_first; s != NULL; s = s->next) {
    bool expired = delay >= 0 && s->cached_ms + (uint64_t)delay * HH_HUGE_QUARANTINE_PURGE_DELAYS <= now;
    if (expired || quarantine_resident > HH_HUGE_QUARANTINE_RESIDENT) quarantine_purge_locked(s);
  }
}

static void quarantine_purge_expired(uint64_t now) {
  if (atomic_load_explicit(&quarantine_unpurged, memory_order_seq_cst) == 0) return;
  segment_lock();
  quarantine_purge_locked_over(now);
  segment_unlock();
}

static void quarantine_push(hh_segment_t* segment) {
  hh_page_t* page = &segment->pages[0];
  size_t size;
  uint8_t* start = hhi_segment_page_area(segment, page, &size);
  page->segment_in_use = 0;  /* page_start and block_size stay: lookup.c tells a second free */
  size_t kept = 0;
  bool erased = HH_HUGE_QUARANTINE_REUSE && hhi_os_zero_resident(start, size, &kept) && kept != 0;
  /* mprotect keeps the memory, and a reuse need not look for guard markers
   * in the block: the quarantine holds a bounded number of mappings */
  segment->quarantine_marked = !(HH_HUGE_QUARANTINE_REUSE && hhi_os_protect_keeping(start, size));
  if (!erased || segment->quarantine_marked) {
    kept = 0;
    if (hhi_os_purge(start, size)) {
      page->is_purged = 1;
      hhi_stat_sub(&hhi_stats.committed, size);
    }
  }
  if (segment->quarantine_marked) (void)hhi_os_protect(start, size);
  uint64_t now = hhi_os_clock_ms();
  segment->cached_ms = now;
  segment->quarantine_resident = kept;
  segment->next = NULL;
  segment_lock();
  if (quarantine_last != NULL) quarantine_last->next = segment; else quarantine_first = segment;
  quarantine_last = segment;
  quarantine_count++;
  quarantine_bytes += segment->mapping_size;
  if (kept != 0) {
    quarantine_resident += kept;
    atomic_fetch_add_explicit(&quarantine_unpurged, 1, memory_order_seq_cst);
    quarantine_purge_locked_over(now);
  }
  segment_unlock();
  quarantine_flush(false);
  if (kept != 0 && hhi_option_value(hh_option_purge_delay) > 0) hhi_purger_notify();
}

/* The smallest entry that has waited long enough, of at least segment_size
 * bytes and at most twice that, laid out with the block after the metadata. */
static hh_segment_t* quarantine_take(size_t segment_size) {
  segment_lock();
  size_t waited = quarantine_count > HH_HUGE_QUARANTINE_WAIT ? quarantine_count - HH_HUGE_QUARANTINE_WAIT : 0;
  hh_segment_t* best = NULL;
  hh_segment_t* best_prev = NULL;
  hh_segment_t* prev = NULL;
  size_t index = 0;
  for (hh_segment_t* s = quarantine_first; s != NULL && index < waited; prev = s, s = s->next, index++) {
    size_t size = s->mapping_size;
    if (size < segment_size || size / 2 > segment_size || s->block_offset != 0) continue;
    if (best == NULL || size < best->mapping_size) {
      best = s;
      best_prev = prev;
    }
  }
  hh_segment_t* segment = best != NULL ? quarantine_unlink_locked(best_prev) : NULL;
  segment_unlock();
  return segment;
}

/* Lay out a quarantined huge segment for a new block of segment_size
 * bytes: open what the block needs and return the zeroed memory past it.
 * Everything of the mapping past the block stays inaccessible (the old end
 * guard, the rest of a bigger old block, what earlier and bigger uses left),
 * so the block ends at a guard without one being made. Its memory is zero
 * either way (erased or purged). */
static void quarantine_reuse(hh_segment_t* segment, hh_tld_t* tld, size_t segment_size, size_t info) {
  hh_page_t* page = &segment->pages[0];
  uint8_t* base = (uint8_t*)segment;
  size_t old_size = segment->segment_size;
  size_t old_area;
  uint8_t* start = hhi_segment_page_area(segment, page, &old_area);
  bool purged = page->is_purged;
  hhi_stat_sub(&hhi_stats.committed, old_size - (purged ? old_area : 0));
  if (!purged && old_size > segment_size) (void)hhi_os_purge(base + segment_size, old_size - segment_size);
  size_t guard = hhi_segment_end_guard_size();
  uint8_t* old_end = start + old_area;
  uint8_t* new_end = base + segment_size - guard;
  if (segment->quarantine_marked) {
    (void)hhi_os_unprotect(start, (size_t)(new_end - start));
  } else {
    /* guard markers lie only past the old block: its end guard, those of
     * earlier and bigger uses of the mapping (the block was mprotected) */
    if (new_end > old_end) (void)hhi_os_unprotect(old_end, (size_t)(new_end - old_end));
    (void)hhi_os_unprotect_kept(start, (size_t)(new_end - start));
  }
  segment_setup(segment, tld, HH_SEGMENT_HUGE, segment_size, info, 0);
  segment_init_pages(segment, true);
  hhi_stat_add(&hhi_stats.committed, &hhi_stats.committed_peak, segment_size);
}

/* ---- the cache of freed huge mappings (HH_HUGE_CACHE) -------------------------
 * Without the quarantine, a freed huge block's segment stays mapped, its
 * memory resident, for the next huge request it fits: a program that keeps
 * replacing big buffers (whole files, image planes, arenas of its own) then
 * pays neither the mmap/munmap pair nor the page faults of fresh memory.
 * Bounded by entries and address space, oldest out first; an entry's memory
 * is purged PURGE_DELAY after its free (by the next cache operation, the
 * freeing thread's collect, or the background purger), so an idle process
 * keeps only the mappings; collect(force) unmaps them. A request takes the
 * smallest entry it fits that is at most twice its size, and uses only what
 * it needs of it: the rest of the mapping is purged. Newest first; guarded
 * by segments_lock. */
static hh_segment_t* huge_cache;                 /* newest first, linked by next */
static _Atomic(size_t) huge_cache_count;         /* written under the lock, peeked without it */
static size_t huge_cache_bytes;                  /* address space of the entries */
static _Atomic(size_t) huge_cache_unpurged;      /* entries whose memory is resident (seq_cst: the purger) */

/* Return an entry's memory to the OS: the block area and whatever of the
 * mapping lies beyond it (left from an earlier, bigger use). */
static void huge_cache_purge(hh_segment_t* segment) {
  hh_page_t* page = &segment->pages[0];
  if (page->is_purged) return;
  size_t size;
  uint8_t* start = hhi_segment_page_area(segment, page, &size);
  uint8_t* end = (uint8_t*)segment + segment->mapping_size;
  if (hhi_os_purge(start, (size_t)(end - start))) {
    page->is_purged = 1;
    hhi_stat_sub(&hhi_stats.committed, size);
    atomic_fetch_sub_explicit(&huge_cache_unpurged, 1, memory_order_seq_cst);
  }
}

static void huge_cache_purge_expired_locked(uint64_t now) {
  long delay = hhi_option_value(hh_option_purge_delay);
  if (delay < 0) return;
  for (hh_segment_t* s = huge_cache; s != NULL; s = s->next) {
    if (s->cached_ms + (uint64_t)delay <= now) huge_cache_purge(s);
  }
}

static void huge_cache_purge_expired(uint64_t now) {
  if (atomic_load_explicit(&huge_cache_unpurged, memory_order_seq_cst) == 0) return;
  segment_lock();
  huge_cache_purge_expired_locked(now);
  segment_unlock();
}

/* Take the entry *link points at out of the cache. */
static hh_segment_t* huge_cache_unlink_locked(hh_segment_t** link) {
  hh_segment_t* segment = *link;
  *link = segment->next;
  atomic_fetch_sub_explicit(&huge_cache_count, 1, memory_order_relaxed);
  huge_cache_bytes -= segment->mapping_size;
  if (!segment->pages[0].is_purged) atomic_fetch_sub_explicit(&huge_cache_unpurged, 1, memory_order_seq_cst);
  return segment;
}

/* Unlink the oldest entry if the cache is over its bounds (all: any). */
static hh_segment_t* huge_cache_evict_locked(bool all) {
  if (huge_cache == NULL) return NULL;
  size_t count = atomic_load_explicit(&huge_cache_count, memory_order_relaxed);
  if (!all && count <= HH_HUGE_CACHE_MAX && huge_cache_bytes <= HH_HUGE_CACHE_BYTES) return NULL;
  hh_segment_t** link = &huge_cache;
  while ((*link)->next != NULL) link = &(*link)->next;
  return huge_cache_unlink_locked(link);
}

static void huge_cache_unmap(hh_segment_t* segment) {
  hhi_stat_sub(&hhi_stats.segments_cached, 1);
  hhi_segment_unmap(segment);
}

static void huge_cache_push(hh_segment_t* segment) {
  long delay = hhi_option_value(hh_option_purge_delay);
  if (hhi_option_value(hh_option_segment_cache) == 0 || segment->mapping_size > HH_HUGE_CACHE_BYTES) {
    hhi_segment_unmap(segment);
    return;
  }
  hhi_stat_add(&hhi_stats.segments_cached, NULL, 1);
  uint64_t now = hhi_os_clock_ms();
  segment->cached_ms = now;
  segment_lock();
  segment->next = huge_cache;
  huge_cache = segment;
  atomic_fetch_add_explicit(&huge_cache_count, 1, memory_order_relaxed);
  huge_cache_bytes += segment->mapping_size;
  if (!segment->pages[0].is_purged) atomic_fetch_add_explicit(&huge_cache_unpurged, 1, memory_order_seq_cst);
  huge_cache_purge_expired_locked(now);
  bool resident = !segment->pages[0].is_purged;
  hh_segment_t* evicted = huge_cache_evict_locked(false);
  segment_unlock();
  /* segment may be another thread's (or unmapped) from here on */
  if (evicted != NULL) huge_cache_unmap(evicted);
  if (delay > 0 && resident) hhi_purger_notify();
}

/* The smallest entry of at least segment_size bytes and at most twice that. */
static hh_segment_t* huge_cache_take(size_t segment_size) {
  if (atomic_load_explicit(&huge_cache_count, memory_order_relaxed) == 0) return NULL;  /* a stale miss maps */
  segment_lock();
  hh_segment_t** best = NULL;
  for (hh_segment_t** link = &huge_cache; *link != NULL; link = &(*link)->next) {
    size_t size = (*link)->mapping_size;
    if (size < segment_size || size / 2 > segment_size) continue;
    if (best == NULL || size < (*best)->mapping_size) best = link;
  }
  hh_segment_t* segment = best != NULL ? huge_cache_unlink_locked(best) : NULL;
  segment_unlock();
  return segment;
}

/* Lay out a cached huge segment for a new block: segment_size bytes of its
 * mapping, the block at block_offset (0: after the metadata). Its memory is
 * zero only if it was purged; what lies beyond the new size is purged. */
static void huge_cache_reuse(hh_segment_t* segment, hh_tld_t* tld, size_t segment_size, size_t info,
                             size_t block_offset) {
  hhi_stat_sub(&hhi_stats.segments_cached, 1);
  hh_page_t* page = &segment->pages[0];
  bool memory_is_zero = page->is_purged;
  size_t area;
  (void)hhi_segment_page_area(segment, page, &area);
  hhi_stat_sub(&hhi_stats.committed, segment->segment_size - (memory_is_zero ? area : 0));
  if (!memory_is_zero && segment->segment_size > segment_size) {
    (void)hhi_os_purge((uint8_t*)segment + segment_size, segment->segment_size - segment_size);
  }
  segment_setup(segment, tld, HH_SEGMENT_HUGE, segment_size, info, block_offset);
  segment_init_pages(segment, memory_is_zero);
  hhi_stat_add(&hhi_stats.committed, &hhi_stats.committed_peak, segment_size);
}

static void huge_cache_flush(void) {
  for (;;) {
    segment_lock();
    hh_segment_t* segment = huge_cache_evict_locked(true);
    segment_unlock();
    if (segment == NULL) return;
    huge_cache_unmap(segment);
  }
}

bool hhi_segment_caches_purge_pending(void) {
  return atomic_load_explicit(&global_cache_unpurged, memory_order_seq_cst) != 0 ||
         (HH_HUGE_CACHE && atomic_load_explicit(&huge_cache_unpurged, memory_order_seq_cst) != 0) ||
         (HH_HUGE_QUARANTINE_REUSE && atomic_load_explicit(&quarantine_unpurged, memory_order_seq_cst) != 0);
}

void hhi_segment_caches_collect(void) {
  uint64_t now = hhi_os_clock_ms();
  global_cache_purge_expired(now);
  if (HH_HUGE_CACHE) huge_cache_purge_expired(now);
  if (HH_HUGE_QUARANTINE_REUSE) quarantine_purge_expired(now);
}

void hhi_segment_huge_free(hh_page_t* page) {
  hh_segment_t* segment = hhi_page_segment(page);
  hhi_stat_sub(&hhi_stats.pages, 1);
  if (HH_HUGE_CACHE) {
    page->segment_in_use = 0;
    huge_cache_push(segment);
    return;
  }
  if (!HH_HUGE_QUARANTINE) {
    hhi_segment_unmap(segment);
    return;
  }
  quarantine_push(segment);
}

/* ---- abandonment -------------------------------------------------------------
 * A thread that exits with live blocks leaves its segments on a global list
 * (thread_id 0). Remote frees into them keep going to the pages'
 * thread_free lists. A thread that needs a new page first adopts one from
 * the list: its pages join that thread's heap, or are freed when all their
 * blocks have come back. */
static hh_segment_t* abandoned;           /* singly linked through next, under segments_lock */
static _Atomic(size_t) abandoned_count;

/* Abandoning is two steps because another thread may reclaim a segment
 * the moment it is published: first every segment is detached from its
 * thread while the exiting thread still walks its pages, then all are
 * published at once, after which the exiting thread touches none of them. */
static void segment_abandon_prepare_under_lock(hh_segment_t* segment, hh_segment_t** list) {
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

void hhi_segment_abandon_publish(hh_segment_t* list) {
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
  pthread_mutex_lock(&segments_lock);
  last->next = abandoned;
  abandoned = list;
  atomic_fetch_add_explicit(&abandoned_count, count, memory_order_relaxed);
  pthread_mutex_unlock(&segments_lock);
}

size_t hhi_segments_abandoned_count(void) {
  return atomic_load_explicit(&abandoned_count, memory_order_relaxed);
}

static hh_segment_t* segment_reclaim_take_under_lock(hh_tld_t* tld) {
  if (atomic_load_explicit(&abandoned_count, memory_order_relaxed) == 0) return NULL;
  pthread_mutex_lock(&segments_lock);
  hh_segment_t* segment = abandoned;
  if (segment != NULL) {
    abandoned = segment->next;
    atomic_fetch_sub_explicit(&abandoned_count, 1, memory_order_relaxed);
  }
  pthread_mutex_unlock(&segments_lock);
  if (segment == NULL) return NULL;
  segment->tld = tld;
  tld->segments.purge_pending += segment->purge_pending;
  segment->next = segment->prev = NULL;
  atomic_store_explicit(&segment->thread_id, tld->thread_id, memory_order_release);
  tld->segments.count++;
  return segment;
}

static void segment_reclaim_done_under_lock(hh_segment_t* segment) {
  hh_segment_queue_t* q = free_queue_of(segment->tld, segment);
  if (segment->free_slots != 0 && q != NULL && !segment->in_free_queue) segment_queue_push(q, segment);
}

static void segment_lock(void) {
  pthread_mutex_lock(&segments_lock);
}

static void segment_unlock(void) {
  pthread_mutex_unlock(&segments_lock);
}

void hhi_segment_fork_prepare(void) {
  segment_lock();
}

void hhi_segment_fork_release(void) {
  segment_unlock();
}

bool hhi_segment_huge_resize(const hh_page_t* page, size_t newsize) {
  /* block_size is the whole mapping: it can only shrink, and not below half
   * (then a smaller block lets the memory go when this one is freed) */
  return newsize <= page->block_size && newsize >= page->block_size / 2;
}

/* ---- the entry points, under the thread's segment-layer lock ------------------*/
void hhi_segments_thread_exit(hh_tld_t* tld) {
  hhi_tld_lock(tld);
  segments_thread_exit_under_lock(tld);
  hhi_tld_unlock(tld);
}

hh_segment_t* hhi_segment_alloc(hh_tld_t* tld, hh_segment_kind_t kind, size_t huge_block, size_t alignment) {
  hhi_tld_lock(tld);
  hh_segment_t* result = segment_alloc_under_lock(tld, kind, huge_block, alignment);
  hhi_tld_unlock(tld);
  return result;
}

void hhi_segment_cache_push(hh_tld_t* tld, hh_segment_t* segment) {
  hhi_tld_lock(tld);
  segment_cache_push_under_lock(tld, segment);
  hhi_tld_unlock(tld);
}

hh_page_t* hhi_segment_page_alloc(hh_tld_t* tld, hh_segment_kind_t kind, size_t bin) {
  hhi_tld_lock(tld);
  hh_page_t* result = segment_page_alloc_under_lock(tld, kind, bin);
  hhi_tld_unlock(tld);
  return result;
}

void hhi_segment_page_free(hh_page_t* page, bool force) {
  hh_tld_t* locked = hhi_page_segment(page)->tld;
  hhi_tld_lock(locked);
  segment_page_free_under_lock(page, force);
  hhi_tld_unlock(locked);
}

void hhi_segments_collect(hh_tld_t* tld, bool force) {
  hhi_tld_lock(tld);
  segments_collect_under_lock(tld, force);
  hhi_tld_unlock(tld);
}

hh_page_t* hhi_segment_huge_alloc(hh_tld_t* tld, size_t block_size, size_t alignment) {
  hhi_tld_lock(tld);
  hh_page_t* result = segment_huge_alloc_under_lock(tld, block_size, alignment);
  hhi_tld_unlock(tld);
  return result;
}

void hhi_segment_abandon_prepare(hh_segment_t* segment, hh_segment_t** list) {
  hh_tld_t* locked = segment->tld;
  hhi_tld_lock(locked);
  segment_abandon_prepare_under_lock(segment, list);
  hhi_tld_unlock(locked);
}

hh_segment_t* hhi_segment_reclaim_take(hh_tld_t* tld) {
  hhi_tld_lock(tld);
  hh_segment_t* result = segment_reclaim_take_under_lock(tld);
  hhi_tld_unlock(tld);
  return result;
}

void hhi_segment_reclaim_done(hh_segment_t* segment) {
  hh_tld_t* locked = segment->tld;
  hhi_tld_lock(locked);
  segment_reclaim_done_under_lock(segment);
  hhi_tld_unlock(locked);
}
