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

/* ---- canaries (HH_CANARY) -----------------------------------------------------
 * Threat: a write past the end of what the program asked for, into the
 * block's slack or on into the next block, goes unnoticed. Every block
 * carries its requested size r in the bytes after it (a request of n bytes
 * takes a block of at least hhi_block_need(n) bytes):
 *   [r]              0: a string read past the end stops here
 *   [r+1, bs-w)      keyed fill: byte i is byte i % 8 of the block's canary word
 *   [bs-w, bs)       delta = bs - r, XOR the top bits of the canary word
 * where the size field is w = 2 bytes in blocks up to 64 KiB, 8 in larger
 * ones (so delta >= w + 1). The canary word is a keyed function of the
 * block's address (page keys), so neither the fill nor the size can be
 * rewritten blindly. Checked on free and realloc (hhi_canary_check);
 * usable_size is r. */
static inline uint64_t hhi_canary_word(const hh_page_t* page, const void* block) {
  return hhi_link_mask(page, (const uint8_t*)block + 2 * sizeof(hh_block_t));
}

static inline size_t hhi_canary_field(const hh_page_t* page) {
  return page->block_size <= HH_CANARY_SHORT_MAX ? 2 : 8;
}

/* The requested size recorded in the block (relative to its start), or
 * SIZE_MAX when the size bytes are damaged. */
static inline size_t hhi_canary_requested(const hh_page_t* page, const void* block) {
  const uint8_t* b = block;
  uint64_t word = hhi_canary_word(page, block);
  size_t field = hhi_canary_field(page);
  size_t delta;
  if (field == 2) {
    uint16_t stored;
    memcpy(&stored, b + page->block_size - 2, sizeof(stored));
    delta = (uint16_t)(stored ^ (uint16_t)(word >> 48));
  } else {
    uint64_t stored;
    memcpy(&stored, b + page->block_size - 8, sizeof(stored));
    delta = (size_t)(stored ^ word);
  }
  if (hh_unlikely(delta <= field || delta > page->block_size)) return SIZE_MAX;
  return page->block_size - delta;
}

/* The canary as whole words: the aligned 8-byte words from the one holding
 * byte r to the block's end (block sizes are multiples of 8), each with the
 * value it must have and the mask of the bytes that are canary (the first
 * word's bytes before r are the program's). A few word operations instead
 * of a loop over bytes. */
typedef struct hh_canary_words_s {
  size_t first, last;   /* offsets of the first and last word */
  uint64_t fill;        /* the keyed fill word */
  uint64_t field;       /* the size field, in place in the last word */
  uint64_t field_mask;  /* its bytes in the last word */
  uint64_t first_mask;  /* canary bytes of the first word (byte r and up) */
} hh_canary_words_t;

static inline hh_canary_words_t hhi_canary_words(const hh_page_t* page, const void* block, size_t r) {
  hh_canary_words_t c;
  uint64_t word = hhi_canary_word(page, block);
  size_t bs = page->block_size;
  c.first = r & ~(size_t)7;
  c.last = bs - 8;
  c.first_mask = ~(uint64_t)0 << (8 * (r - c.first));
  c.fill = word;
  if (hhi_canary_field(page) == 2) {
    c.field = (uint64_t)(uint16_t)((bs - r) ^ (uint16_t)(word >> 48)) << 48;
    c.field_mask = (uint64_t)0xffff << 48;
  } else {
    c.field = (uint64_t)(bs - r) ^ word;
    c.field_mask = ~(uint64_t)0;
  }
  return c;
}

/* What word at offset w must hold, and which of its bytes are canary. */
static inline uint64_t hhi_canary_expected(const hh_canary_words_t* c, size_t w, size_t r, uint64_t* care) {
  uint64_t value = c->fill;
  uint64_t mask = ~(uint64_t)0;
  if (w == c->first) {
    mask = c->first_mask;
    value &= ~((uint64_t)0xff << (8 * (r - c->first)));  /* byte r is 0 */
  }
  if (w == c->last) value = (value & ~c->field_mask) | c->field;
  *care = mask;
  return value;
}

/* The first and the last word differ from the fill (byte r, the size
 * field) and are merged with what the program owns; the words between are
 * the fill alone, a plain loop the compiler vectorises. With a 2-byte field
 * r may lie in the last word (first == last); with an 8-byte one it never
 * does. */
static inline void hhi_canary_write(const hh_page_t* page, void* block, size_t r) {
  uint8_t* b = block;
  hh_canary_words_t c = hhi_canary_words(page, block, r);
  uint64_t care;
  uint64_t value = hhi_canary_expected(&c, c.first, r, &care);
  uint64_t old;
  memcpy(&old, b + c.first, 8);
  uint64_t merged = (old & ~care) | (value & care);
  memcpy(b + c.first, &merged, 8);
  if (c.first == c.last) return;
  for (size_t w = c.first + 8; w < c.last; w += 8) memcpy(b + w, &c.fill, 8);
  value = hhi_canary_expected(&c, c.last, r, &care);
  memcpy(b + c.last, &value, 8);
}

/* Offset (from the block start) of the first damaged canary byte of a
 * block whose requested size is r, or SIZE_MAX when it is intact. The
 * words are compared without a branch each (an intact canary is the rule);
 * only a damaged one is searched for its first bad byte. */
static inline size_t hhi_canary_damage(const hh_page_t* page, const void* block, size_t r) {
  const uint8_t* b = block;
  hh_canary_words_t c = hhi_canary_words(page, block, r);
  uint64_t care, actual;
  uint64_t value = hhi_canary_expected(&c, c.first, r, &care);
  memcpy(&actual, b + c.first, 8);
  uint64_t diff = (actual ^ value) & care;
  if (c.first != c.last) {
    for (size_t w = c.first + 8; w < c.last; w += 8) {
      memcpy(&actual, b + w, 8);
      diff |= actual ^ c.fill;
    }
    value = hhi_canary_expected(&c, c.last, r, &care);
    memcpy(&actual, b + c.last, 8);
    diff |= actual ^ value;
  }
  if (hh_likely(diff == 0)) return SIZE_MAX;
  for (size_t w = c.first; w <= c.last; w += 8) {
    value = hhi_canary_expected(&c, w, r, &care);
    memcpy(&actual, b + w, 8);
    uint64_t bad = (actual ^ value) & care;
    if (bad != 0) return w + (size_t)__builtin_ctzll(bad) / 8;  /* little endian */
  }
  return SIZE_MAX;  /* not reached: some word differed */
}

/* The canary of block (handed out as p) is intact; otherwise report a heap
 * buffer overflow (out of line) and return false. */
static inline bool hhi_canary_check(const hh_page_t* page, const void* block, const void* p, hh_op_t op) {
  if (!HH_CANARY) return true;
  size_t r = hhi_canary_requested(page, block);
  if (hh_likely(r != SIZE_MAX && hhi_canary_damage(page, block, r) == SIZE_MAX)) return true;
  hhi_report_overflow(page, block, p, op, r);
  return false;
}

/* ---- zero on free (HH_ZERO_ON_FREE, HH_CHECK_FREED_ZERO) -------------------------
 * Threat: a write after free lands in a block another owner gets next. A
 * freed block of a page of many blocks is zeroed past its first word (the
 * link); when it is handed out again it must still be zero, else the write
 * is reported. Fresh memory is zero too, and a slot that changes class
 * loses the old links (hhi_segment_clear_links), so every free block of
 * such a page is zero past its first word. */
static inline void hhi_block_zero_freed(const hh_page_t* page, hh_block_t* block) {
  if (HH_ZERO_ON_FREE) memset((uint8_t*)block + sizeof(hh_block_t), 0, page->block_size - sizeof(hh_block_t));
}

/* 16 bytes at a time, four at once: a 2 KiB block is checked in about 200
 * instructions instead of 900 (the compiler does not vectorise the plain
 * loop at -O2). Blocks start 16-aligned and are multiples of 16. */
typedef uint64_t hh_zero_vec_t __attribute__((vector_size(16), aligned(16)));

/* True when the first `bytes` of the block (a multiple of 16) are zero past
 * its first word (the link). */
static inline bool hhi_block_zero_range(const hh_block_t* block, size_t bytes) {
  const uint64_t* words = (const uint64_t*)block;
  const hh_zero_vec_t* v = (const hh_zero_vec_t*)block;
  size_t n = bytes / sizeof(hh_zero_vec_t);
  hh_zero_vec_t any0 = {words[1], 0}, any1 = {0, 0}, any2 = {0, 0}, any3 = {0, 0};
  size_t i = 1;
  for (; i + 4 <= n; i += 4) {
    any0 |= v[i];
    any1 |= v[i + 1];
    any2 |= v[i + 2];
    any3 |= v[i + 3];
  }
  for (; i < n; i++) any0 |= v[i];
  any0 |= any1 | any2 | any3;
  return (any0[0] | any0[1]) == 0;
}

/* True when the whole block is zero past its link (hh_validate). */
static inline bool hhi_block_zero_past_link(const hh_page_t* page, const hh_block_t* block) {
  return hhi_block_zero_range(block, page->block_size);
}

/* The bytes of a reused block the hand-out check reads: all of a small
 * one, the head of a larger one (config.h). */
static inline size_t hhi_block_checked_bytes(const hh_page_t* page) {
  return page->block_size <= HH_FREED_CHECK_WHOLE ? page->block_size : HH_FREED_CHECK_HEAD;
}

static inline void hhi_block_check_zero(const hh_page_t* page, const hh_block_t* block) {
  if (hh_unlikely(!hhi_block_zero_range(block, hhi_block_checked_bytes(page)))) {
    hhi_report_write_after_free(page, block, sizeof(hh_block_t));
  }
}

/* ---- handing a block out ----------------------------------------------------------
 * block was just taken from page; p is the address the program gets (the
 * block itself, or an aligned address inside it) for a request of size
 * bytes. Zeroes the block when asked, never lets a link leave the
 * allocator, marks an interior address so free can tell it from a guess,
 * writes the canary, and tells the tracking tool. */
static inline void* hhi_block_hand_out(const hh_page_t* page, hh_block_t* block, void* p, size_t size, bool zero) {
  hhi_track_hand_out(block, page->block_size, zero);  /* first: the checks below read the whole block */
  if (HH_CHECK_FREED_ZERO && page->block_recip != 0) hhi_block_check_zero(page, block);
  if (zero) {
    /* Fresh memory is zero, and so is a reused block as far as the check
     * read it (freed blocks are zeroed, HH_ZERO_ON_FREE); past that a
     * write after free could linger, so the rest is cleared. Single
     * blocks are never zeroed on free. */
    if (page->free_is_zero) {
      block->next = 0;
    } else if (HH_CHECK_FREED_ZERO && page->block_recip != 0) {
      size_t checked = hhi_block_checked_bytes(page);
      block->next = 0;
      if (checked < page->block_size) memset((uint8_t*)block + checked, 0, page->block_size - checked);
    } else {
      memset(block, 0, page->block_size);
    }
  } else if (HH_CLEAR_HANDED_OUT_LINK) {
    block->next = 0;
  }
  if (HH_CHECK_POINTERS && p != (void*)block) block->next = hhi_aligned_tag(page, block, p);
  size_t offset = (size_t)((uint8_t*)p - (uint8_t*)block);
  if (HH_CANARY) hhi_canary_write(page, block, offset + size);
  hhi_track_malloc(p, size, page->block_size - offset, zero);
  return p;
}

/* ---- freeing a block on its owner thread -------------------------------------------
 * A freed block goes back on its page's local_free list (page.c also calls
 * this when a block leaves the quarantine). */
static inline void hhi_block_push_local(hh_page_t* page, hh_block_t* block, bool may_be_full) {
  hhi_block_set_next(page, block, page->local_free);
  page->local_free = block;
  page->used--;
  if (may_be_full && hh_unlikely(hhi_page_flags(page) & HH_PAGE_IN_FULL)) hhi_page_unfull(page);
  if (hh_unlikely(page->used == 0)) hhi_page_retire(page);
}

/* block (index idx, handed out as p) comes back to its owner thread; the
 * lookup checked it is handed out. may_be_full: the page may be in the full
 * queue (the caller has not tested page->flags); the fast path of free
 * passes false. */
static inline void hhi_block_free_local(hh_page_t* page, hh_block_t* block, uint32_t idx, const void* p,
                                        bool may_be_full) {
  hh_assert(atomic_load_explicit(&hhi_page_segment(page)->thread_id, memory_order_relaxed) == hhi_thread_id());
  if (!hhi_canary_check(page, block, p, HH_OP_FREE)) return;  /* going on: the block is leaked */
  if (HH_BLOCK_BITMAPS) hhi_map_owner_clear(hhi_page_maps(page)->live, idx);
  hhi_block_zero_freed(page, block);
  hhi_track_free(p, block, page->block_size);
  if (HH_QUARANTINE) {
    hhi_quarantine_put(page, block);  /* another, older block comes out */
    return;
  }
  hhi_block_push_local(page, block, may_be_full);
}

/* ---- usable size -----------------------------------------------------------------
 * Bytes the program may use at p, a pointer inside the block of ref: with
 * HH_CANARY what it asked for (the rest is the canary), else up to the
 * block's end. The canary's size and zero byte are checked (0 and a report
 * when they are damaged). */
static inline size_t hhi_block_usable_size(const hh_block_ref_t* ref, const void* p, hh_op_t op) {
  if (HH_GUARDED && hh_unlikely(ref->page == NULL)) return hhi_guarded_usable_size(ref);
  size_t offset = (size_t)((uintptr_t)p - (uintptr_t)ref->block);
  size_t usable = ref->page->block_size - offset;
  if (HH_CANARY) {
    size_t r = hhi_canary_requested(ref->page, ref->block);
    if (hh_unlikely(r == SIZE_MAX || r < offset || ((const uint8_t*)ref->block)[r] != 0)) {
      hhi_report_overflow(ref->page, ref->block, p, op, r);
      return 0;
    }
    usable = r - offset;
  }
  hhi_track_usable(p, usable);  /* the program may use all of it now */
  return usable;
}

/* Bytes from p to the end of what the block of ref can hold for the
 * program (its canary's minimum excluded): how far realloc grows in place. */
static inline size_t hhi_block_capacity(const hh_block_ref_t* ref, const void* p) {
  size_t offset = (size_t)((uintptr_t)p - (uintptr_t)ref->block);
  return ref->page->block_size - offset - (HH_CANARY ? hhi_canary_field(ref->page) + 1 : 0);
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
  if (HH_GUARDED && hh_unlikely(segment->kind == HH_SEGMENT_GUARDED)) return hhi_guarded_lookup(p, segment, op, ref);
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
