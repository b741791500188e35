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
 *   hhi_lookup_in           pointer -> (segment, page, block), validated
 * The fast paths stay a single test; the secure checks sit inside these. */
#ifndef HH_BLOCK_H
#define HH_BLOCK_H

#include "internal.h"

/* ---- block indices ----------------------------------------------------------
 * The index of the block at offset of a page, by a multiplication instead
 * of a division: exact for every offset below 2^19 and block size up to
 * 2^16 (types.h:block_recip). Single-block pages have recip 0: index 0. */
static inline uint32_t hhi_block_index(const hh_page_t* page, size_t offset) {
  return (uint32_t)(((uint64_t)offset * page->block_recip) >> 35);
}

static inline uint32_t hhi_block_recip(size_t block_size) {
  return (uint32_t)((((uint64_t)1 << 35) + block_size - 1) / block_size);
}

/* ---- free-list link encoding ------------------------------------------------
 * Threat: a heap overflow or use-after-free write into a free block rewrites
 * its link so that malloc later returns an attacker-chosen address, or
 * copies a link read from another free block. With HH_ENCODE_FREELIST a
 * link is stored as next ^ mask(block), where
 *   mask(block) = rotl((block ^ key0) * key1, 29)    (key1 odd)
 * is a keyed function of the block's own address that is not linear in it:
 * a link copied from block C into block B decodes to
 *   next(C) ^ mask(C) ^ mask(B),
 * an unpredictable address that the checks below reject unless it happens to
 * be a free block of the page. Keys come from ChaCha20 (random.c). Every
 * decoded link must stay within the blocks the page has threaded; with
 * HH_BLOCK_BITMAPS every block taken from a list must also be a free block
 * of the page (hhi_page_pop), so even a correctly forged link can only
 * name a block that is free anyway. The fast build stores links plainly. */
static inline uintptr_t hhi_rotl(uintptr_t x, unsigned r) {
  r &= 63;
  return r == 0 ? x : (x << r) | (x >> (64 - r));
}

static inline uintptr_t hhi_link_mask(const hh_page_t* page, const void* block) {
  if (!HH_ENCODE_FREELIST) return 0;
  return hhi_rotl(((uintptr_t)block ^ page->keys[0]) * page->keys[1], 29);
}

static inline hh_encoded_t hhi_encode_link(const hh_page_t* page, const hh_block_t* block, const hh_block_t* next) {
  return (uintptr_t)next ^ hhi_link_mask(page, block);
}

static inline hh_block_t* hhi_decode_link(const hh_page_t* page, const hh_block_t* block, hh_encoded_t value) {
  return (hh_block_t*)(value ^ hhi_link_mask(page, block));
}

/* The word a block handed out at an interior (aligned) address p carries in
 * its first word, where the link was: free and realloc accept an interior
 * pointer only when it matches, so a pointer into the middle of any other
 * block of the page is still refused. */
static inline uintptr_t hhi_aligned_tag(const hh_page_t* page, const hh_block_t* block, const void* p) {
  return hhi_link_mask(page, (const uint8_t*)block + sizeof(hh_block_t)) ^ (uintptr_t)p;
}

/* Is q NULL or a block boundary among the blocks page has threaded? */
static inline bool hhi_page_is_valid_link(const hh_page_t* page, const hh_block_t* q) {
  if (q == NULL) return true;
  size_t offset = (size_t)((uintptr_t)q - (uintptr_t)page->page_start);
  return offset < (size_t)page->capacity * page->block_size &&
         (size_t)hhi_block_index(page, offset) * page->block_size == offset;
}

/* The link of a free block: the next block of its list. With
 * HH_ENCODE_FREELIST a link that is not a block of the page is reported and
 * the list cut there (NULL). Every list walk reads links through this. */
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

/* ---- block bitmaps (types.h: hh_page_maps_t) ------------------------------------*/
static inline hh_page_maps_t* hhi_page_maps(const hh_page_t* page) {
  return (hh_page_maps_t*)((uint8_t*)hhi_page_segment(page) + HH_SEGMENT_MAPS_OFFSET) + page->segment_idx;
}

static inline bool hhi_map_test(_Atomic(uint64_t)* map, uint32_t idx) {
  return ((atomic_load_explicit(&map[idx / 64], memory_order_relaxed) >> (idx % 64)) & 1) != 0;
}

/* live bits: only the owner writes, so a load and a store (no RMW). */
static inline void hhi_map_owner_set(_Atomic(uint64_t)* map, uint32_t idx) {
  uint64_t w = atomic_load_explicit(&map[idx / 64], memory_order_relaxed);
  atomic_store_explicit(&map[idx / 64], w | ((uint64_t)1 << (idx % 64)), memory_order_relaxed);
}

static inline void hhi_map_owner_clear(_Atomic(uint64_t)* map, uint32_t idx) {
  uint64_t w = atomic_load_explicit(&map[idx / 64], memory_order_relaxed);
  atomic_store_explicit(&map[idx / 64], w & ~((uint64_t)1 << (idx % 64)), memory_order_relaxed);
}

/* Is the block at idx handed out (live and not freed by another thread)? */
static inline bool hhi_block_is_live(const hh_page_t* page, uint32_t idx) {
  hh_page_maps_t* maps = hhi_page_maps(page);
  return hhi_map_test(maps->live, idx) && !hhi_map_test(maps->remote, idx);
}

/* ---- taking a block from a page ------------------------------------------------
 * With HH_BLOCK_BITMAPS the head of a free list is checked before it is
 * read: it must be a block boundary among the blocks the page has threaded
 * and not handed out (its live bit clear). That proves every link that led
 * to it, so a forged or duplicated link can at most name a block that is
 * free anyway, and no block is ever handed out twice. The check makes no
 * call, so the fast path keeps its registers; a failing head goes to the
 * slow path, which reports it (hhi_page_pop_bad). */
static inline bool hhi_page_head_ok(const hh_page_t* page, const hh_block_t* block) {
  if (!HH_BLOCK_BITMAPS) return true;
  size_t offset = (size_t)((const uint8_t*)block - page->page_start);
  uint32_t idx = hhi_block_index(page, offset);
  if (hh_unlikely(offset >= (size_t)page->capacity * page->block_size || (size_t)idx * page->block_size != offset)) {
    return false;
  }
  _Atomic(uint64_t)* word = &hhi_page_maps(page)->live[idx / 64];
  uint64_t bit = (uint64_t)1 << (idx % 64);
  uint64_t bits = atomic_load_explicit(word, memory_order_relaxed);
  if (hh_unlikely((bits & bit) != 0)) return false;
  atomic_store_explicit(word, bits | bit, memory_order_relaxed);
  return true;
}

/* Take block, the checked head of page's free list. */
static inline hh_block_t* hhi_page_take(hh_page_t* page, hh_block_t* block) {
  page->free = hhi_decode_link(page, block, block->next);  /* checked when it is the head */
  page->used++;
  return block;
}

/* The next free block of page (page->free must not be empty); NULL when
 * the head was not a free block (reported, the list cut). */
static inline hh_block_t* hhi_page_pop(hh_page_t* page) {
  hh_block_t* block = page->free;
  if (hh_unlikely(!hhi_page_head_ok(page, block))) return hhi_page_pop_bad(page);
  return hhi_page_take(page, block);
}

/* ---- handing a block out ----------------------------------------------------------
 * block was just taken from page; p is the address the program gets (the
 * block itself, or an aligned address inside it) for a request of size
 * bytes. Zeroes the block when asked, never lets a link leave the
 * allocator, marks an interior address so free can tell it from a guess,
 * and tells the tracking tool. */
static inline void* hhi_block_hand_out(const hh_page_t* page, hh_block_t* block, void* p, size_t size, bool zero) {
  hhi_track_hand_out(block, page->block_size, zero);
  if (zero) {
    if (page->free_is_zero) block->next = 0;
    else memset(block, 0, page->block_size);
  } else if (HH_CLEAR_HANDED_OUT_LINK) {
    block->next = 0;
  }
  if (HH_CHECK_POINTERS && p != (void*)block) block->next = hhi_aligned_tag(page, block, p);
  hhi_track_malloc(p, size, page->block_size - (size_t)((uint8_t*)p - (uint8_t*)block), zero);
  return p;
}

/* ---- freeing a block on its owner thread -------------------------------------------
 * block (index idx, handed out as p) comes back to its owner thread; the
 * lookup checked it is handed out. may_be_full: the page may be in the full
 * queue (the caller has not tested page->flags); the fast path of free
 * passes false. */
static inline void hhi_block_free_local(hh_page_t* page, hh_block_t* block, uint32_t idx, const void* p,
                                        bool may_be_full) {
  hh_assert(atomic_load_explicit(&hhi_page_segment(page)->thread_id, memory_order_relaxed) == hhi_thread_id());
  if (HH_BLOCK_BITMAPS) hhi_map_owner_clear(hhi_page_maps(page)->live, idx);
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
  size_t usable = ref->page->block_size - (size_t)((uintptr_t)p - (uintptr_t)ref->block);
  hhi_track_usable(p, usable);  /* the program may use all of it now */
  return usable;
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
 * and p inside its blocks. With validate (HH_CHECK_POINTERS) also: the
 * segment cookie; the bound of blocks handed out (the owner compares with
 * capacity; other threads read only fields fixed while the page is in
 * use: reserved); an interior pointer only where the block was handed out
 * at exactly that address (its tag); and that the block is handed out (the
 * live bitmap, a single block's live flag). Reports (lookup.c) and returns
 * false when p does not qualify. */
static inline bool hhi_lookup_in(const void* p, hh_segment_t* segment, hh_op_t op, hh_block_ref_t* ref,
                                 bool validate) {
  if (validate && hh_unlikely(segment->cookie != ((uintptr_t)segment ^ hhi_process_cookie))) {
    hhi_lookup_fail(HH_MISUSE_SEGMENT_CORRUPTED, op, p, segment, NULL, 0);
    return false;
  }
  hh_page_t* page = hhi_lookup_page(segment, p);
  if (hh_unlikely(!page->segment_in_use || page->block_size == 0)) {
    hhi_lookup_fail(HH_MISUSE_FREE_PAGE, op, p, segment, page, 0);
    return false;
  }
  bool is_owner = atomic_load_explicit(&segment->thread_id, memory_order_relaxed) == hhi_thread_id();
  size_t offset = (size_t)((const uint8_t*)p - page->page_start);
  uint32_t limit = (validate && is_owner) ? page->capacity : page->reserved;
  if (hh_unlikely((const uint8_t*)p < page->page_start || offset >= (size_t)limit * page->block_size)) {
    /* in the segment's metadata, past the end of a huge block, or a block
     * never handed out */
    hhi_lookup_fail(HH_MISUSE_NOT_A_BLOCK, op, p, segment, page, 0);
    return false;
  }
  uint32_t idx = hhi_block_index(page, offset);
  hh_block_t* block = (hh_block_t*)(page->page_start + (size_t)idx * page->block_size);
  if (validate) {
    if (hh_unlikely((const void*)block != p) &&
        (!(hhi_page_flags(page) & HH_PAGE_HAS_ALIGNED) || block->next != hhi_aligned_tag(page, block, p))) {
      hhi_lookup_fail(HH_MISUSE_INTERIOR_POINTER, op, p, segment, page, idx);
      return false;
    }
    bool live = hhi_segment_kind_is_single(segment->kind)
                    ? atomic_load_explicit(&page->single_live, memory_order_relaxed) != 0
                    : !HH_BLOCK_BITMAPS || hhi_block_is_live(page, idx);
    if (hh_unlikely(!live)) {
      hhi_lookup_fail(HH_MISUSE_DOUBLE_FREE, op, p, segment, page, idx);
      return false;
    }
  }
  ref->segment = segment;
  ref->page = page;
  ref->block = block;
  ref->idx = idx;
  ref->is_owner = is_owner;
  return true;
}

/* hhi_block_lookup for a p whose segment the caller found in the map. */
static inline bool hhi_block_lookup_in(const void* p, hh_segment_t* segment, hh_op_t op, hh_block_ref_t* ref) {
  return hhi_lookup_in(p, segment, op, ref, HH_CHECK_POINTERS);
}

#endif /* HH_BLOCK_H */
