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

bool hhi_lookup_fail(hh_misuse_t kind, hh_op_t op, const void* p, const hh_segment_t* segment,
                     const hh_page_t* page) {
  if (op == HH_OP_NONE) return false;  /* a query: no report */
  switch (kind) {
    case HH_MISUSE_SEGMENT_CORRUPTED:
      hhi_misuse(op, (hh_misuse_info_t){.kind = kind, .pointer = p, .segment = segment});
      return false;
    case HH_MISUSE_FREE_PAGE:
      /* a large block freed before keeps its start and size in the
       * descriptor of its first slice: say what really happened */
      if (segment->kind == HH_SEGMENT_LARGE && page->page_start == (const uint8_t*)p && page->block_size != 0) {
        kind = op == HH_OP_REALLOC       ? HH_MISUSE_REALLOC_FREED
               : op == HH_OP_USABLE_SIZE ? HH_MISUSE_USABLE_SIZE_FREED
                                         : HH_MISUSE_DOUBLE_FREE;
        hhi_misuse_on_page(kind, op, p, page);
        return false;
      }
      hhi_misuse_on_page(kind, op, p, NULL);
      return false;
    default:
      hhi_misuse_on_page(kind, op, p, page);
      return false;
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
