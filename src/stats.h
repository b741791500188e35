/* hardheap: process-wide counters. Relaxed atomics, touched only on slow
 * paths (segments, pages, purges, OS calls); stats.c reads them out. */
#ifndef HH_STATS_H
#define HH_STATS_H

#include <stdatomic.h>
#include <stddef.h>

typedef struct hh_stat_counters_s {
  _Atomic(size_t) segments, segments_peak, segments_cached;  /* mapped segments (incl. cached) */
  _Atomic(size_t) pages, pages_peak;                         /* pages in use */
  _Atomic(size_t) reserved, reserved_peak;                   /* bytes of address space mapped */
  _Atomic(size_t) committed, committed_peak;                 /* bytes mapped and not purged */
  _Atomic(size_t) purged, mmap_calls, munmap_calls;          /* totals */
  _Atomic(size_t) guards;                                    /* guard pages between pages now (HH_GUARD_PAGES) */
  _Atomic(size_t) guarded_sampled, guarded_skipped;          /* guarded samples taken, not taken (totals) */
  _Atomic(size_t) guarded_live, guarded_quarantined;         /* guarded slots live, in quarantine now */
  _Atomic(size_t) guarded_live_bytes;                        /* requested bytes of the live guarded blocks */
  _Atomic(size_t) allocated_bytes, allocated_blocks;         /* totals flushed from the heaps */
  _Atomic(size_t) in_use_peak, blocks_in_use_peak;           /* highest in-use values a walk saw */
  _Atomic(size_t) rss_peak_seen;                             /* highest RSS the OS reported to a stats call */
  _Atomic(size_t) grow_events;                               /* segment allocations since the last walk */
} hh_stat_counters_t;
extern hh_stat_counters_t hhi_stats;

/* Raise peak to now if it is lower. */
static inline void hhi_stat_raise(_Atomic(size_t)* peak, size_t now) {
  size_t old = atomic_load_explicit(peak, memory_order_relaxed);
  while (old < now && !atomic_compare_exchange_weak_explicit(peak, &old, now, memory_order_relaxed,
                                                             memory_order_relaxed)) {
  }
}

/* Add delta to a counter and raise its peak companion (peak may be NULL). */
static inline void hhi_stat_add(_Atomic(size_t)* counter, _Atomic(size_t)* peak, size_t delta) {
  size_t now = atomic_fetch_add_explicit(counter, delta, memory_order_relaxed) + delta;
  if (peak != NULL) hhi_stat_raise(peak, now);
}

static inline void hhi_stat_sub(_Atomic(size_t)* counter, size_t delta) {
  atomic_fetch_sub_explicit(counter, delta, memory_order_relaxed);
}

/* Add a heap's allocation counts to the process totals (its slow path,
 * and before the heap goes away). */
struct hh_heap_s;
void hhi_heap_stats_flush(struct hh_heap_s* heap);
/* The slow path flushes a heap's counts once they reach these (so the
 * totals lag by at most this much per live heap). */
#define HH_STATS_FLUSH_BLOCKS 4096
#define HH_STATS_FLUSH_BYTES ((size_t)4 << 20)
/* A segment was mapped: now and then, walk the segments to sample the
 * peak in use (amortised: a walk per segments/32 new mappings; reusing a
 * cached segment does not count). */
void hhi_stats_segment_grew(void);

#endif /* HH_STATS_H */
