/* hardheap: the freeing entry points.
 *
 * The fast path (fast build, owner thread, page neither full nor holding
 * aligned blocks) is the segment map test and the local push of block.h.
 * Everything else goes through the validating lookup (lookup.c) and then
 * the block moment for the segment's kind: local or remote free for pages
 * of many blocks, claim and release for large and huge blocks. */
#include "internal.h"

/* A large or huge block: whoever frees it claims it (large: the page's
 * live flag, huge: the segment's owner id); a second claimant has a double
 * free. */
static void free_single(const hh_block_ref_t* ref, void* p) {
  hh_page_t* page = ref->page;
  if (!hhi_canary_check(page, ref->block, p, HH_OP_FREE)) return;  /* going on: the block is leaked */
  if (!hhi_single_claim(page)) {
    hhi_misuse_on_page(HH_MISUSE_DOUBLE_FREE, HH_OP_FREE, p, page);
    return;
  }
  hhi_track_free(p, page->page_start, page->block_size);
  hhi_singles_unlink(page);
  hhi_single_free(page, hhi_current_tld());
}

static inline void free_ref(const hh_block_ref_t* ref, void* p) {
  switch (ref->segment->kind) {
    case HH_SEGMENT_SMALL:
    case HH_SEGMENT_MEDIUM:
      if (ref->is_owner) hhi_block_free_local(ref->page, ref->block, ref->idx, p, true);
      else hhi_block_free_remote(ref->page, ref->block, ref->idx, p);
      return;
    case HH_SEGMENT_LARGE:
    case HH_SEGMENT_HUGE:
      free_single(ref, p);
      return;
    case HH_SEGMENT_GUARDED:
      hhi_guarded_free(ref, p);
      return;
  }
}

void hhi_free_ref(const hh_block_ref_t* ref, void* p) {
  free_ref(ref, p);
}

static hh_noinline void free_generic(void* p, hh_segment_t* segment) {
  hh_block_ref_t ref;
  if (hhi_block_lookup_in(p, segment, HH_OP_FREE, &ref)) free_ref(&ref, p);
}

void hh_free(void* p) {
  if (hh_unlikely(p == NULL)) return;
  hh_segment_t* segment;
  if (hh_unlikely(!hhi_lookup_segment(p, &segment))) {
    hhi_misuse_on_page(HH_MISUSE_FOREIGN_POINTER, HH_OP_FREE, p, NULL);
    return;
  }
  hh_page_t* page = hhi_lookup_page(segment, p);
  if (!HH_CHECK_POINTERS &&
      hh_likely(atomic_load_explicit(&segment->thread_id, memory_order_relaxed) == hhi_thread_id() &&
                hhi_page_flags(page) == 0)) {
    hhi_block_free_local(page, (hh_block_t*)p, 0, p, false);
    return;
  }
  free_generic(p, segment);
}

/* ---- sized deallocation ------------------------------------------------------------*/
void hh_free_sized(void* p, size_t size) {
  if (HH_CHECK_POINTERS && p != NULL) {
    /* a size larger than the block means the caller freed the wrong object */
    hh_block_ref_t ref;
    if (!hhi_block_lookup(p, HH_OP_FREE, &ref)) return;
    size_t usable = hhi_block_usable_size(&ref, p, HH_OP_FREE);
    if (size > usable) {
      hhi_misuse(HH_OP_FREE, (hh_misuse_info_t){.kind = HH_MISUSE_SIZED_FREE_MISMATCH,
                                                .pointer = p,
                                                .page = ref.page != NULL ? ref.page->page_start : NULL,
                                                .size_class = ref.page != NULL ? ref.page->block_size : usable,
                                                .size = size,
                                                .usable_size = usable});
      return;
    }
    free_ref(&ref, p);
    return;
  }
  hh_free(p);
}

void hh_free_aligned_sized(void* p, size_t alignment, size_t size) {
  if (HH_CHECK_POINTERS && p != NULL && hhi_is_power_of_two(alignment) && ((uintptr_t)p & (alignment - 1)) != 0) {
    hhi_misuse(HH_OP_FREE, (hh_misuse_info_t){.kind = HH_MISUSE_ALIGNED_FREE_MISALIGNED,
                                              .pointer = p,
                                              .alignment = alignment});
    return;
  }
  hh_free_sized(p, size);
}

/* ---- usable size -------------------------------------------------------------------*/
size_t hh_usable_size(const void* p) {
  if (p == NULL) return 0;
  hh_block_ref_t ref;
  if (!hhi_block_lookup(p, HH_OP_USABLE_SIZE, &ref)) return 0;
  return hhi_block_usable_size(&ref, p, HH_OP_USABLE_SIZE);
}
