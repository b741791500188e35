/* hardheap: the segment map, one bit per segment-aligned address.
 *
 * Set when a segment is mapped, cleared before it is unmapped; read by
 * every lookup (block.h:hhi_lookup_segment) before anything else, so a
 * pointer outside every live segment is never dereferenced. */
#include "internal.h"

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
