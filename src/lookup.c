/* hardheap: from a pointer the program passed to its block.
 *
 * Every public call that takes a pointer (free, sized free, realloc,
 * usable_size, hh_heap_contains, hh_heap_check_owned) finds its block
 * through hhi_lookup_in (block.h); the fast path of free does its first two
 * steps inline. The steps, cheapest first:
 *   1. the segment map: a pointer outside every live segment is foreign and
 *      never read;
 *   2. the page descriptor: the page must be in use and the pointer inside
 *      its blocks (a freed large span is told apart: its descriptor keeps
 *      its start and size);
 *   3. with HH_CHECK_POINTERS: the segment cookie, the bound of blocks
 *      handed out, a large block's live flag and the block boundary.
 * This file holds the entry points and the reports. */
#include "internal.h"

void hhi_lookup_fail(hh_misuse_t kind, hh_op_t op, const void* p, const hh_segment_t* segment,
                     const hh_page_t* page, uint32_t idx) {
  if (op == HH_OP_NONE) return;  /* a query: no report */
  switch (kind) {
    case HH_MISUSE_SEGMENT_CORRUPTED:
      hhi_misuse(op, (hh_misuse_info_t){.kind = kind, .pointer = p, .segment = segment});
      return;
    case HH_MISUSE_FREE_PAGE: {
      /* a large or huge block freed before keeps its start, size and flags
       * in its descriptor: say what really happened. An over-aligned block
       * was handed out inside its block, at an address its tag (in the
       * block's memory, gone now) confirmed: any address in it may be that. */
      const uint8_t* at = (const uint8_t*)p;
      bool in_block = hhi_segment_kind_is_single(segment->kind) && page->block_size != 0 &&
                      at >= page->page_start && at < page->page_start + page->block_size;
      if (in_block && (at == page->page_start || (hhi_page_flags(page) & HH_PAGE_HAS_ALIGNED))) {
        hhi_misuse_on_page(hhi_misuse_freed_kind(op), op, p, page);
      } else if (in_block) {
        hhi_misuse_on_page(HH_MISUSE_INTERIOR_POINTER, op, p, page);
      } else {
        hhi_misuse_on_page(kind, op, p, NULL);
      }
      return;
    }
    case HH_MISUSE_DOUBLE_FREE:
      /* not handed out: never (beyond what the page has threaded), or freed */
      if (!hhi_segment_kind_is_single(segment->kind) && idx >= __atomic_load_n(&page->capacity, __ATOMIC_RELAXED)) {
        hhi_misuse_on_page(HH_MISUSE_NOT_A_BLOCK, op, p, page);
      } else {
        hhi_misuse_on_page(hhi_misuse_freed_kind(op), op, p, page);
      }
      return;
    default:
      hhi_misuse_on_page(kind, op, p, page);
      return;
  }
}

static bool lookup_segment(const void* p, hh_op_t op, hh_segment_t** segment) {
  if (hh_likely(hhi_lookup_segment(p, segment))) return true;
  if (op != HH_OP_NONE) hhi_misuse_on_page(HH_MISUSE_FOREIGN_POINTER, op, p, NULL);
  return false;
}

bool hhi_page_lookup(const void* p, hh_op_t op, hh_block_ref_t* ref) {
  hh_segment_t* segment;
  return lookup_segment(p, op, &segment) && hhi_lookup_in(p, segment, op, ref, false);
}

bool hhi_block_lookup(const void* p, hh_op_t op, hh_block_ref_t* ref) {
  hh_segment_t* segment;
  return lookup_segment(p, op, &segment) && hhi_block_lookup_in(p, segment, op, ref);
}
