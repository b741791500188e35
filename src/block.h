/* hardheap: the moments of a block's life, one function each.
 *
 * Every path that takes a block from a page, hands it to the program, frees
 * it on its owner thread, pushes it from another thread, measures it or
 * finds it from a pointer goes through the functions here (the out-of-line
 * ones live in page.c and lookup.c). A defence, a tracking hook or a check
 * is added in one of them and nowhere else:
 *   hhi_page_pop            take the next free block of a page (owner)
 *   hhi_block_hand_out      prepare a taken block for the program
 *   hhi_block_free_local    give a block back on its owner thread
 *   hhi_block_free_remote   give a block back from another thread (page.c)
 *   hhi_block_usable_size   bytes the program may use at a pointer
 *   hhi_block_lookup        pointer -> (segment, page, block), validated (lookup.c)
 * The fast paths stay a single test; the secure checks sit inside these. */
#ifndef HH_BLOCK_H
#define HH_BLOCK_H

#include "internal.h"

/* ---- free-list link encoding ----------------------------------------------
 * Threat: a heap overflow or use-after-free write into a free block rewrites
 * its link so that malloc later returns an attacker-chosen address. With
 * HH_ENCODE_FREELIST the link is stored as
 *   rotl(next ^ key0 ^ block_address, key1 & 63)
 * so writing a chosen link needs both per-page secrets, and every decoded
 * link must land on a block boundary inside the same page or the process
 * aborts. The encoding is linear in the block address, so a link copied
 * from one free block into another of the same page decodes to an address
 * of that page: the boundary check stops it only when it misses a block. In
 * the fast build links are stored plainly. */
static inline uintptr_t hhi_rotl(uintptr_t x, unsigned r) {
  r &= 63;
  return r == 0 ? x : (x << r) | (x >> (64 - r));
}
static inline uintptr_t hhi_rotr(uintptr_t x, unsigned r) {
  r &= 63;
  return r == 0 ? x : (x >> r) | (x << (64 - r));
}

static inline hh_encoded_t hhi_encode_link(const hh_page_t* page, const hh_block_t* block, const hh_block_t* next) {
  if (HH_ENCODE_FREELIST) {
    return hhi_rotl((uintptr_t)next ^ page->keys[0] ^ (uintptr_t)block, (unsigned)page->keys[1]);
  }
  (void)page; (void)block;
  return (hh_encoded_t)next;
}

static inline hh_block_t* hhi_decode_link(const hh_page_t* page, const hh_block_t* block, hh_encoded_t value) {
  if (HH_ENCODE_FREELIST) {
    return (hh_block_t*)(hhi_rotr(value, (unsigned)page->keys[1]) ^ page->keys[0] ^ (uintptr_t)block);
  }
  (void)page; (void)block;
  return (hh_block_t*)value;
}

/* Is q NULL or a block boundary of page? */
static inline bool hhi_page_is_valid_link(const hh_page_t* page, const hh_block_t* q) {
  if (q == NULL) return true;
  uintptr_t start = (uintptr_t)page->page_start;
  uintptr_t a = (uintptr_t)q;
  if (a < start) return false;
  size_t offset = a - start;
  return offset < (size_t)page->reserved * page->block_size && offset % page->block_size == 0;
}

/* The link of a free block: the next block of its list. With
 * HH_ENCODE_FREELIST a link that leaves the page is reported and the list
 * cut there (NULL). Every list walk and pop reads links through this. */
static inline hh_block_t* hhi_block_next(const hh_page_t* page, const hh_block_t* block) {
  hh_block_t* next = hhi_decode_link(page, block, block->next);
  hh_assert(HH_ENCODE_FREELIST || hhi_page_is_valid_link(page, next));  /* else a reported misuse */
  if (HH_ENCODE_FREELIST && hh_unlikely(!hhi_page_is_valid_link(page, next))) {
    hhi_report_corrupt_link(page, block, (uintptr_t)next);
    return NULL;
  }
  return next;
}

static inline void hhi_block_set_next(const hh_page_t* page, hh_block_t* block, const hh_block_t* next) {
  block->next = hhi_encode_link(page, block, next);
}

/* ---- taking a block from a page ------------------------------------------------*/
/* The next free block of page (page->free must not be empty). */
static inline hh_block_t* hhi_page_pop(hh_page_t* page) {
  hh_block_t* block = page->free;
  page->free = hhi_block_next(page, block);
  page->used++;
  return block;
}

/* ---- handing a block out ----------------------------------------------------------
 * block was just taken from page; p is the address the program gets (the
 * block itself, or an aligned address inside it) for a request of size
 * bytes. Zeroes the block when asked, never lets a link leave the
 * allocator, and tells the tracking tool. */
static inline void* hhi_block_hand_out(const hh_page_t* page, hh_block_t* block, void* p, size_t size, bool zero) {
  if (zero) {
    if (page->free_is_zero) block->next = 0;
    else memset(block, 0, page->block_size);
  } else if (HH_CLEAR_HANDED_OUT_LINK) {
    block->next = 0;
  }
  hhi_track_malloc(p, size, page->block_size - (size_t)((uint8_t*)p - (uint8_t*)block), zero);
  return p;
}

/* ---- freeing a block on its owner thread -------------------------------------------
 * Double-free test: a cheap filter inline (a block on a free list has a
 * first word that decodes to a valid link of its page; hand-out clears that
 * word), the exact walk of the page's lists out of line (page.c). */
static inline bool hhi_block_is_double_free(const hh_page_t* page, const hh_block_t* block) {
  if (!hhi_page_is_valid_link(page, hhi_decode_link(page, block, block->next))) return false;
  return hhi_page_block_is_free(page, block);
}

/* block (handed out as p) comes back to its owner thread. may_be_full: the
 * page may be in the full queue (the caller has not tested page->flags);
 * the fast path of free passes false. */
static inline void hhi_block_free_local(hh_page_t* page, hh_block_t* block, const void* p, bool may_be_full) {
  hh_assert(atomic_load_explicit(&hhi_page_segment(page)->thread_id, memory_order_relaxed) == hhi_thread_id());
  if (HH_DETECT_DOUBLE_FREE && hh_unlikely(hhi_block_is_double_free(page, block))) {
    hhi_misuse_on_page(HH_MISUSE_DOUBLE_FREE, HH_OP_FREE, p, page);
    return;
  }
  hhi_track_free(p, block, page->block_size);
  hhi_block_set_next(page, block, page->local_free);
  page->local_free = block;
  page->used--;
  if (may_be_full && hh_unlikely(hhi_page_flags(page) & HH_PAGE_IN_FULL)) hhi_page_unfull(page);
  if (hh_unlikely(page->used == 0)) hhi_page_retire(page);
}

/* ---- usable size -----------------------------------------------------------------
 * Bytes the program may use at p, a pointer inside the block of ref. */
static inline size_t hhi_block_usable_size(const hh_block_ref_t* ref, const void* p) {
  return ref->page->block_size - (size_t)((uintptr_t)p - (uintptr_t)ref->block);
}

/* ---- from a pointer to its block -------------------------------------------------
 * The first stage of every lookup: *segment gets the segment p would belong
 * to; true if the segment map has it (p itself is never read). */
static inline bool hhi_lookup_segment(const void* p, hh_segment_t** segment) {
  *segment = hhi_ptr_segment(p);
  return hhi_segment_map_contains(*segment);
}

/* The second stage: the page descriptor covering p in segment. */
static inline hh_page_t* hhi_lookup_page(const hh_segment_t* segment, const void* p) {
  size_t idx = ((uintptr_t)p - (uintptr_t)segment) >> segment->page_shift;
  return (hh_page_t*)&segment->pages[idx];
}

/* The rest, for a p whose segment is in the map: the page must be in use
 * and p inside its blocks; with validate (HH_CHECK_POINTERS) also the
 * segment cookie, the bound of blocks handed out (the owner may compare
 * against capacity; other threads read only fields fixed while the page is
 * in use: reserved), a large block's live flag, and the block boundary
 * (interior pointers only on pages that handed out aligned ones). Reports
 * (lookup.c) and returns false when p does not qualify. */
static inline bool hhi_lookup_in(const void* p, hh_segment_t* segment, hh_op_t op, hh_block_ref_t* ref,
                                 bool validate) {
  if (validate && hh_unlikely(segment->cookie != ((uintptr_t)segment ^ hhi_process_cookie))) {
    return hhi_lookup_fail(HH_MISUSE_SEGMENT_CORRUPTED, op, p, segment, NULL);
  }
  hh_page_t* page = hhi_lookup_page(segment, p);
  if (hh_unlikely(!page->segment_in_use || page->block_size == 0)) {
    return hhi_lookup_fail(HH_MISUSE_FREE_PAGE, op, p, segment, page);
  }
  bool is_owner = atomic_load_explicit(&segment->thread_id, memory_order_relaxed) == hhi_thread_id();
  size_t offset = (size_t)((const uint8_t*)p - page->page_start);
  uint32_t limit = (validate && is_owner) ? page->capacity : page->reserved;
  if (hh_unlikely((const uint8_t*)p < page->page_start || offset >= (size_t)limit * page->block_size)) {
    /* in the segment's metadata, past the end of a huge block, or a block
     * never handed out */
    return hhi_lookup_fail(HH_MISUSE_NOT_A_BLOCK, op, p, segment, page);
  }
  hh_block_t* block = (hh_block_t*)((const uint8_t*)p - offset % page->block_size);
  if (validate) {
    if (segment->kind == HH_SEGMENT_LARGE &&
        hh_unlikely(atomic_load_explicit(&page->single_live, memory_order_relaxed) == 0)) {
      /* a freed span waiting in some thread's span cache */
      return hhi_lookup_fail(HH_MISUSE_FREE_PAGE, op, p, segment, page);
    }
    if (hh_unlikely((const void*)block != p && !(hhi_page_flags(page) & HH_PAGE_HAS_ALIGNED))) {
      return hhi_lookup_fail(HH_MISUSE_INTERIOR_POINTER, op, p, segment, page);
    }
  }
  ref->segment = segment;
  ref->page = page;
  ref->block = block;
  ref->is_owner = is_owner;
  return true;
}

/* hhi_block_lookup for a p whose segment the caller found in the map. */
static inline bool hhi_block_lookup_in(const void* p, hh_segment_t* segment, hh_op_t op, hh_block_ref_t* ref) {
  return hhi_lookup_in(p, segment, op, ref, HH_CHECK_POINTERS);
}

#endif /* HH_BLOCK_H */
