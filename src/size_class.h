/* hardheap: size classes, as pure functions every layer may use.
 *
 * 16-byte steps up to 128 bytes, then eight classes per power of two, so a
 * request of n >= 128 bytes wastes less than n/8 (12.5%). Large blocks
 * (above the medium size) are rounded to their class too; huge blocks to
 * whole OS pages (hhi_good_size). */
#ifndef HH_SIZE_CLASS_H
#define HH_SIZE_CLASS_H

#include "config.h"

#include <stdbool.h>

static inline size_t hhi_align_up(size_t x, size_t align) {  /* align: power of two */
  return (x + align - 1) & ~(align - 1);
}
static inline bool hhi_is_power_of_two(size_t x) {
  return x != 0 && (x & (x - 1)) == 0;
}
static inline bool hhi_mul_overflow(size_t count, size_t size, size_t* total) {
  return __builtin_mul_overflow(count, size, total);
}

/* size in 16-byte units, rounded up: the index into heap->pages_direct */
static inline size_t hhi_wsize_of(size_t size) {
  return (size + HH_MIN_ALIGN - 1) / HH_MIN_ALIGN;
}

/* The size class of size: 1 .. HH_BIN_LARGE_MAX, or HH_BIN_HUGE above 2 MiB. */
static inline size_t hhi_bin(size_t size) {
  if (size <= 128) return size <= HH_MIN_ALIGN ? 1 : (size + HH_MIN_ALIGN - 1) / HH_MIN_ALIGN;
  if (size > HH_LARGE_OBJ_SIZE_MAX) return HH_BIN_HUGE;
  size_t w = size - 1;
  unsigned b = 63u - (unsigned)__builtin_clzl(w);  /* floor(log2(w)) >= 7 */
  return 8u * (b - 6u) + ((w >> (b - 3u)) & 7u) + 1u;
}

/* The block size of a bin (0 for bin 0 and the bins past HH_BIN_LARGE_MAX). */
static inline size_t hhi_bin_size(size_t bin) {
  if (bin == 0 || bin > HH_BIN_LARGE_MAX) return 0;
  if (bin <= 8) return bin * HH_MIN_ALIGN;
  size_t b = (bin - 1) / 8 + 6;
  size_t i = (bin - 1) % 8;
  return ((size_t)1 << b) + (i + 1) * ((size_t)1 << (b - 3));
}

/* The block bytes a request of size bytes needs: with HH_CANARY the
 * canary's minimum after it (blocks above the medium size carry a longer
 * size field). size must be at most HH_MAX_ALLOC_SIZE. */
static inline size_t hhi_block_need(size_t size) {
  if (!HH_CANARY) return size;
  return size + HH_CANARY_MIN <= HH_CANARY_SHORT_MAX ? size + HH_CANARY_MIN : size + HH_CANARY_MIN_LARGE;
}

/* What a request of size bytes really gets: its class size up to 2 MiB,
 * whole OS pages above (page_size: the OS page size). */
static inline size_t hhi_good_size(size_t size, size_t page_size) {
  if (size <= HH_LARGE_OBJ_SIZE_MAX) return hhi_bin_size(hhi_bin(size));
  if (size > HH_MAX_ALLOC_SIZE) return size;
  return hhi_align_up(size, page_size);
}

#endif /* HH_SIZE_CLASS_H */
