/* hardheap: the allocation entry points.
 *
 * hh_malloc of up to 1 KiB is: load the thread's heap, load the direct page
 * for the size, pop its free list, one test (about a dozen instructions in
 * the default build). Larger sizes look at the first page of their size
 * class before falling back to the generic path in page.c. */
#include "internal.h"

#include <unistd.h>

/* ---- fast paths ---------------------------------------------------------------*/
static inline void* page_pop(hh_heap_t* heap, hh_page_t* page, size_t size, bool zero) {
  hh_block_t* block = page->free;
  if (hh_unlikely(block == NULL)) return hh_malloc_generic(heap, size, zero, 0);
  page->free = hh_block_next(page, block);
  page->used++;
  if (zero) {
    if (page->free_is_zero) block->next = 0;
    else memset(block, 0, page->block_size);
  } else if (HARDHEAP_SECURE) {
    block->next = 0;  /* never hand out an encoded link */
  }
  return block;
}

/* Above 1 KiB: the first page of the size class, else the generic path. */
static hh_noinline void* heap_malloc_medium(hh_heap_t* heap, size_t size, bool zero) {
  if (size <= HH_MEDIUM_OBJ_SIZE_MAX) {
    hh_page_t* page = heap->pages[hh_bin(size)].first;
    if (page != NULL && page->free != NULL) return page_pop(heap, page, size, zero);
  }
  return hh_malloc_generic(heap, size, zero, 0);
}

static inline void* heap_malloc(hh_heap_t* heap, size_t size, bool zero) {
  if (hh_likely(size <= HH_SMALL_SIZE_MAX)) {
    return page_pop(heap, heap->pages_direct[hh_wsize_of(size)], size, zero);
  }
  return heap_malloc_medium(heap, size, zero);
}

void* hh_heap_malloc_zero(hh_heap_t* heap, size_t size, bool zero) {
  return heap_malloc(heap, size, zero);
}

void* hh_malloc(size_t size) {
  return heap_malloc(hh_get_default_heap(), size, false);
}

void* hh_zalloc(size_t size) {
  return heap_malloc(hh_get_default_heap(), size, true);
}

void* hh_calloc(size_t count, size_t size) {
  size_t total;
  if (hh_unlikely(hh_mul_overflow(count, size, &total))) {
    errno = ENOMEM;
    return NULL;
  }
  return heap_malloc(hh_get_default_heap(), total, true);
}

/* ---- aligned allocation ---------------------------------------------------------*/
void* hh_heap_malloc_aligned_zero(hh_heap_t* heap, size_t size, size_t alignment, bool zero) {
  if (hh_unlikely(!hh_is_power_of_two(alignment))) {
    errno = EINVAL;
    return NULL;
  }
  if (hh_unlikely(size > HH_MAX_ALLOC_SIZE || alignment > HH_MAX_ALLOC_SIZE)) {
    errno = ENOMEM;
    return NULL;
  }
  if (alignment <= HH_MIN_ALIGN) return heap_malloc(heap, size, zero);

  /* Often the next block of the size class is aligned already: blocks of a
   * power-of-two size sit at multiples of their size. */
  if (size <= HH_SMALL_SIZE_MAX) {
    hh_page_t* page = heap->pages_direct[hh_wsize_of(size)];
    if (page->free != NULL && ((uintptr_t)page->free & (alignment - 1)) == 0) {
      return page_pop(heap, page, size, zero);
    }
  }
  if (alignment > HH_SEGMENT_SIZE / 2) {
    /* a huge segment whose single block starts at an aligned address */
    return hh_malloc_generic(heap, size == 0 ? 1 : size, zero, alignment);
  }
  if (alignment > HH_SPAN_SLICE_SIZE && size <= HH_LARGE_OBJ_SIZE_MAX && size + alignment - 1 > HH_MEDIUM_OBJ_SIZE_MAX) {
    /* a large span placed at an aligned slice: an interior pointer past a
     * span's first slice would not find its page */
    return hh_malloc_generic(heap, size == 0 ? 1 : size, zero, alignment);
  }
  /* Over-allocate and hand out the aligned address inside the block; free
   * finds the block start again because the page is marked. */
  size_t oversize = size + alignment - 1;
  uint8_t* p = heap_malloc(heap, oversize, zero);
  if (p == NULL) return NULL;
  uint8_t* aligned = (uint8_t*)hh_align_up((uintptr_t)p, alignment);
  if (aligned != p) {
    hh_page_t* page = hh_segment_page_of(hh_ptr_segment(p), p);
    hh_page_flags_set(page, HH_PAGE_HAS_ALIGNED);
  }
  return aligned;
}

void* hh_malloc_aligned(size_t size, size_t alignment) {
  return hh_heap_malloc_aligned_zero(hh_get_default_heap(), size, alignment, false);
}

void* hh_zalloc_aligned(size_t size, size_t alignment) {
  return hh_heap_malloc_aligned_zero(hh_get_default_heap(), size, alignment, true);
}

void* hh_calloc_aligned(size_t count, size_t size, size_t alignment) {
  size_t total;
  if (hh_unlikely(hh_mul_overflow(count, size, &total))) {
    errno = ENOMEM;
    return NULL;
  }
  return hh_heap_malloc_aligned_zero(hh_get_default_heap(), total, alignment, true);
}

int hh_posix_memalign(void** out, size_t alignment, size_t size) {
  if (out == NULL || !hh_is_power_of_two(alignment) || alignment % sizeof(void*) != 0) return EINVAL;
  int saved_errno = errno;
  void* p = hh_malloc_aligned(size, alignment);
  if (p == NULL) {
    int err = errno;
    errno = saved_errno;
    return err == EINVAL ? EINVAL : ENOMEM;
  }
  *out = p;
  return 0;
}

void* hh_aligned_alloc(size_t alignment, size_t size) {
  return hh_malloc_aligned(size, alignment);
}

void* hh_memalign(size_t alignment, size_t size) {
  return hh_malloc_aligned(size, alignment);
}

void* hh_valloc(size_t size) {
  return hh_malloc_aligned(size, hh_os_page_size());
}

void* hh_pvalloc(size_t size) {
  size_t ps = hh_os_page_size();
  if (size > HH_MAX_ALLOC_SIZE) {
    errno = ENOMEM;
    return NULL;
  }
  size_t rounded = size == 0 ? ps : hh_align_up(size, ps);
  return hh_malloc_aligned(rounded, ps);
}

/* ---- reallocation ----------------------------------------------------------------*/
/* Resize p (alignment 0: any). Returns p itself when the new size fits its
 * block and does not waste more than half of it. */
static void* heap_realloc(hh_heap_t* heap, void* p, size_t newsize, size_t alignment) {
  if (p == NULL) {
    return alignment == 0 ? heap_malloc(heap, newsize, false) : hh_heap_malloc_aligned_zero(heap, newsize, alignment, false);
  }
  if (newsize == 0) {  /* glibc: free and return NULL */
    hh_free(p);
    return NULL;
  }
  hh_page_t* page = hh_checked_page_of(p, "realloc");
  if (page == NULL) {
    errno = EINVAL;
    return NULL;
  }
  const hh_block_t* block = hh_page_block_of(page, p);
  size_t usable = page->block_size - (size_t)((uintptr_t)p - (uintptr_t)block);
  bool aligned_ok = alignment == 0 || ((uintptr_t)p & (alignment - 1)) == 0;
  if (hh_page_segment(page)->kind >= HH_SEGMENT_LARGE) {
    /* a block with a segment of its own grows and shrinks in place */
    if (aligned_ok && p == (void*)page->page_start && newsize <= HH_MAX_ALLOC_SIZE &&
        hh_segment_single_resize(page, newsize)) {
      return p;
    }
  } else if (aligned_ok && newsize <= usable && newsize >= usable / 2) {
    return p;
  }
  void* q = alignment == 0 ? heap_malloc(heap, newsize, false) : hh_heap_malloc_aligned_zero(heap, newsize, alignment, false);
  if (q == NULL) return NULL;
  memcpy(q, p, usable < newsize ? usable : newsize);
  hh_free(p);
  return q;
}

void* hh_realloc(void* p, size_t newsize) {
  return heap_realloc(hh_get_default_heap(), p, newsize, 0);
}

void* hh_realloc_aligned(void* p, size_t newsize, size_t alignment) {
  if (!hh_is_power_of_two(alignment)) {
    errno = EINVAL;
    return NULL;
  }
  return heap_realloc(hh_get_default_heap(), p, newsize, alignment);
}

void* hh_reallocarray(void* p, size_t count, size_t size) {
  size_t total;
  if (hh_unlikely(hh_mul_overflow(count, size, &total))) {
    errno = ENOMEM;
    return NULL;
  }
  return hh_realloc(p, total);
}

void* hh_reallocf(void* p, size_t newsize) {
  void* q = hh_realloc(p, newsize);
  if (q == NULL && newsize != 0) hh_free(p);
  return q;
}

/* ---- first-class heaps ----------------------------------------------------------------*/
/* Allocation from another thread's heap would race with its owner. */
static bool heap_usable(hh_heap_t* heap) {
  if (hh_likely(hh_heap_is_mine(heap))) return true;
  if (heap != NULL) hh_error_message("allocation from heap %p by a thread that does not own it", (void*)heap);
  errno = EINVAL;
  return false;
}

void* hh_heap_malloc(hh_heap_t* heap, size_t size) {
  return heap_usable(heap) ? heap_malloc(heap, size, false) : NULL;
}

void* hh_heap_zalloc(hh_heap_t* heap, size_t size) {
  return heap_usable(heap) ? heap_malloc(heap, size, true) : NULL;
}

void* hh_heap_calloc(hh_heap_t* heap, size_t count, size_t size) {
  size_t total;
  if (hh_unlikely(hh_mul_overflow(count, size, &total))) {
    errno = ENOMEM;
    return NULL;
  }
  return hh_heap_zalloc(heap, total);
}

void* hh_heap_realloc(hh_heap_t* heap, void* p, size_t newsize) {
  return heap_usable(heap) ? heap_realloc(heap, p, newsize, 0) : NULL;
}

void* hh_heap_malloc_aligned(hh_heap_t* heap, size_t size, size_t alignment) {
  return heap_usable(heap) ? hh_heap_malloc_aligned_zero(heap, size, alignment, false) : NULL;
}

static char* heap_strndup(hh_heap_t* heap, const char* s, size_t n) {
  if (s == NULL) {
    errno = EINVAL;
    return NULL;
  }
  size_t len = strnlen(s, n);
  char* d = heap_malloc(heap, len + 1, false);
  if (d == NULL) return NULL;
  memcpy(d, s, len);
  d[len] = 0;
  return d;
}

char* hh_heap_strdup(hh_heap_t* heap, const char* s) {
  return heap_usable(heap) ? heap_strndup(heap, s, SIZE_MAX) : NULL;
}

/* ---- strings -----------------------------------------------------------------------*/
char* hh_strdup(const char* s) {
  return heap_strndup(hh_get_default_heap(), s, SIZE_MAX);
}

char* hh_strndup(const char* s, size_t n) {
  return heap_strndup(hh_get_default_heap(), s, n);
}

/* ---- sizes -------------------------------------------------------------------------*/
size_t hh_good_size(size_t size) {
  if (size <= HH_LARGE_OBJ_SIZE_MAX) return hh_bin_size(hh_bin(size));
  if (size > HH_MAX_ALLOC_SIZE) return size;
  return hh_align_up(size, hh_os_page_size());
}
