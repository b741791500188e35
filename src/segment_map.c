/* hardheap: the segment map, one bit per segment-aligned address.
 *
 * Set when a segment is mapped, cleared before it is unmapped; read by
 * every lookup (block.h:hhi_lookup_segment) before anything else, so a
 * pointer outside every live segment is never dereferenced. */
#include "internal.h"

#include <pthread.h>

_Atomic(uintptr_t) hhi_segment_map[HH_SEGMENT_MAP_BITS / 64];

bool hhi_segment_map_add(const hh_segment_t* segment) {
  uintptr_t idx = (uintptr_t)segment >> HH_SEGMENT_SHIFT;
  if (idx >= HH_SEGMENT_MAP_BITS) return false;  /* beyond 48-bit addresses: not usable */
  atomic_fetch_or_explicit(&hhi_segment_map[idx / 64], (uintptr_t)1 << (idx % 64), memory_order_release);
  return true;
}

void hhi_segment_map_remove(const hh_segment_t* segment) {
  uintptr_t idx = (uintptr_t)segment >> HH_SEGMENT_SHIFT;
  atomic_fetch_and_explicit(&hhi_segment_map[idx / 64], ~((uintptr_t)1 << (idx % 64)), memory_order_release);
}

/* ---- the list of all segments ------------------------------------------------
 * Only statistics read it; its lock is the innermost of all (init.c), held
 * briefly by whoever maps or unmaps a segment and for a whole walk. */
static hh_segment_t* all_segments;
static pthread_mutex_t all_lock = PTHREAD_MUTEX_INITIALIZER;

void hhi_segment_register(hh_segment_t* segment) {
  pthread_mutex_lock(&all_lock);
  segment->all_prev = NULL;
  segment->all_next = all_segments;
  if (all_segments != NULL) all_segments->all_prev = segment;
  all_segments = segment;
  pthread_mutex_unlock(&all_lock);
}

void hhi_segment_unregister(hh_segment_t* segment) {
  pthread_mutex_lock(&all_lock);
  if (segment->all_prev != NULL) segment->all_prev->all_next = segment->all_next;
  else all_segments = segment->all_next;
  if (segment->all_next != NULL) segment->all_next->all_prev = segment->all_prev;
  segment->all_next = segment->all_prev = NULL;
  pthread_mutex_unlock(&all_lock);
}

void hhi_segments_visit(void (*visit)(const hh_segment_t* segment, void* arg), void* arg) {
  pthread_mutex_lock(&all_lock);
  for (const hh_segment_t* segment = all_segments; segment != NULL; segment = segment->all_next) visit(segment, arg);
  pthread_mutex_unlock(&all_lock);
}

void hhi_segment_registry_fork_prepare(void) {
  pthread_mutex_lock(&all_lock);
}

void hhi_segment_registry_fork_release(void) {
  pthread_mutex_unlock(&all_lock);
}
