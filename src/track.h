/* hardheap: tracking hooks for memory checkers.
 *
 * Called at the moments of a block's life (block.h) and where the allocator
 * itself reads or writes memory it has handed out or holds free, so that a
 * checker (AddressSanitizer, Valgrind memcheck) can be told in one place
 * each. With no tracking mode built in they compile to nothing.
 *
 * The build picks a mode (CMake HH_TRACK=asan|valgrind defines one of
 * HH_TRACK_ASAN, HH_TRACK_VALGRIND); the hooks' bodies are in track.c.
 *
 * What a checker is told (both modes):
 *   - a block handed out is addressable for exactly the bytes requested; the
 *     slack between the request and the end of the block is not (until the
 *     program asks hh_usable_size or realloc, which may use all of it);
 *   - a free block, and a block threaded onto a free list but never handed
 *     out, is not addressable, EXCEPT its first HH_TRACK_LINK_BYTES bytes:
 *     the free-list link lives there and the allocator reads and writes it
 *     on every path (pop, push, remote free, collection, validation,
 *     clear_links), and a block's first word is also where an aligned
 *     block's tag is checked. Leaving that one word addressable keeps every
 *     allocator access legal without a hook around each of them; the price
 *     is that a use after free of exactly those bytes is not reported.
 *   - a heap destroyed with hh_heap_destroy frees each of its blocks.
 *   - ASan: an unmapped segment forgets its poisoning (ASan keeps the shadow
 *     of unmapped memory, which a later mapping at the same address would
 *     inherit); live segments are LeakSanitizer root regions, so objects of
 *     the system allocator referenced only from hardheap blocks are not
 *     reported as leaked.
 *   - Valgrind: blocks are MALLOCLIKE/FREELIKE blocks (leak check, invalid
 *     free, use after free with the stack of the free); a segment's
 *     metadata is hidden from the leak scan (a page descriptor holds the
 *     address of its first block, which would make that block look
 *     reachable); misuse reports about pointers passed to free or realloc
 *     are passed on as invalid frees, so --error-exitcode counts them.
 *
 * Rule for code that touches block memory: write a free block or the slack
 * of a live block only through the link word, or before hhi_track_free /
 * after hhi_track_hand_out, or call a hook that makes the bytes
 * addressable first. Under ASan the library is instrumented, so any other
 * access is reported as a bug in hardheap. */
#ifndef HH_TRACK_H
#define HH_TRACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hardheap.h"

#if defined(HH_TRACK_ASAN) && defined(HH_TRACK_VALGRIND)
#error "only one tracking mode can be built"
#endif
#if defined(HH_TRACK_ASAN)
#define HH_TRACK_MODE 1
#define HH_TRACK_NAME "asan"
#elif defined(HH_TRACK_VALGRIND)
#define HH_TRACK_MODE 2
#define HH_TRACK_NAME "valgrind"
#else
#define HH_TRACK_MODE 0
#define HH_TRACK_NAME "none"
#endif

/* Bytes at the start of every block that stay addressable (the link word). */
#define HH_TRACK_LINK_BYTES 8

#if HH_TRACK_MODE != 0
void hhi_track_malloc_impl(const void* p, size_t size, size_t usable, bool zero);
void hhi_track_free_impl(const void* p, const void* block, size_t block_size);
void hhi_track_resize_impl(const void* p, size_t old_size, size_t new_size);
void hhi_track_usable_impl(const void* p, size_t usable);
void hhi_track_hand_out_impl(const void* block, size_t block_size, bool zero);
void hhi_track_extend_impl(const uint8_t* page_start, uint32_t capacity, size_t count, size_t block_size,
                           uint32_t reserved);
void hhi_track_heap_destroy_impl(hh_heap_t* heap);
void hhi_track_segment_map_impl(const void* segment, size_t info_size, size_t size);
void hhi_track_segment_unmap_impl(const void* segment, size_t info_size, size_t size);
void hhi_track_misuse_impl(const hh_misuse_info_t* facts);
#define HH_TRACK_CALL(call) call
#else
#define HH_TRACK_CALL(call) ((void)0)
#endif

/* p (inside block) was handed out for a request of size bytes, of which
 * usable may be used; zero: its contents are zero. */
static inline void hhi_track_malloc(const void* p, size_t size, size_t usable, bool zero) {
  (void)p; (void)size; (void)usable; (void)zero;
  HH_TRACK_CALL(hhi_track_malloc_impl(p, size, usable, zero));
}
/* p, handed out inside block (block_size bytes), was freed. */
static inline void hhi_track_free(const void* p, const void* block, size_t block_size) {
  (void)p; (void)block; (void)block_size;
  HH_TRACK_CALL(hhi_track_free_impl(p, block, block_size));
}
/* The block at p changed size in place (realloc): old_size is what the
 * program could use before (its usable size, which hhi_track_usable has
 * granted it), new_size what it may use now. */
static inline void hhi_track_resize(const void* p, size_t old_size, size_t new_size) {
  (void)p; (void)old_size; (void)new_size;
  HH_TRACK_CALL(hhi_track_resize_impl(p, old_size, new_size));
}
/* The program was told it may use usable bytes at p (block.h:
 * hhi_block_usable_size: hh_usable_size, realloc, sized free). */
static inline void hhi_track_usable(const void* p, size_t usable) {
  (void)p; (void)usable;
  HH_TRACK_CALL(hhi_track_usable_impl(p, usable));
}
/* block (block_size bytes) was taken from a free list and is about to be
 * prepared for the program (block.h:hhi_block_hand_out); zero: the
 * allocator clears all of it first. Before hhi_track_malloc. */
static inline void hhi_track_hand_out(const void* block, size_t block_size, bool zero) {
  (void)block; (void)block_size; (void)zero;
  HH_TRACK_CALL(hhi_track_hand_out_impl(block, block_size, zero));
}
/* count blocks of block_size bytes from index capacity of the page at
 * page_start (reserved blocks in all) are about to be threaded onto its
 * free list (page.c:page_extend); capacity 0: the page is new. */
static inline void hhi_track_extend(const uint8_t* page_start, uint32_t capacity, size_t count, size_t block_size,
                                    uint32_t reserved) {
  (void)page_start; (void)capacity; (void)count; (void)block_size; (void)reserved;
  HH_TRACK_CALL(hhi_track_extend_impl(page_start, capacity, count, block_size, reserved));
}
/* Every block of heap is about to be freed at once (hh_heap_destroy). */
static inline void hhi_track_heap_destroy(hh_heap_t* heap) {
  (void)heap;
  HH_TRACK_CALL(hhi_track_heap_destroy_impl(heap));
}
/* A segment of size bytes, whose first info_size bytes are metadata, was
 * mapped (segment.c:hhi_segment_alloc) / is about to be unmapped. */
static inline void hhi_track_segment_map(const void* segment, size_t info_size, size_t size) {
  (void)segment; (void)info_size; (void)size;
  HH_TRACK_CALL(hhi_track_segment_map_impl(segment, info_size, size));
}
static inline void hhi_track_segment_unmap(const void* segment, size_t info_size, size_t size) {
  (void)segment; (void)info_size; (void)size;
  HH_TRACK_CALL(hhi_track_segment_unmap_impl(segment, info_size, size));
}
/* A misuse is being reported (misuse.c:hhi_misuse). */
static inline void hhi_track_misuse(const hh_misuse_info_t* facts) {
  (void)facts;
  HH_TRACK_CALL(hhi_track_misuse_impl(facts));
}

#endif /* HH_TRACK_H */
