/* hardheap: declarations shared between source files, grouped by the file
 * that defines them, and the small inline helpers of the hot paths.
 * Naming: hh_ public API (include/hardheap.h), hh_ too for cross-file
 * internals declared here (never exported: the library is built with hidden
 * visibility), hh_os_ for the OS layer. */
#ifndef HH_INTERNAL_H
#define HH_INTERNAL_H

#include "hardheap.h"
#include "types.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>

#define hh_likely(x) __builtin_expect(!!(x), 1)
#define hh_unlikely(x) __builtin_expect(!!(x), 0)
#define hh_noinline __attribute__((noinline))
#define hh_cold __attribute__((cold, noinline))
#define hh_attr_printf(f, a) __attribute__((format(printf, f, a)))
#define hh_tls_initial_exec __attribute__((tls_model("initial-exec")))

/* Internal assertions: on in debug builds (HH_DEBUG), compiled out otherwise.
 * Failing assertions report without allocating and abort. */
#ifndef HH_DEBUG
#define HH_DEBUG 0
#endif
#if HH_DEBUG
#define hh_assert(expr) ((expr) ? (void)0 : hh_assert_fail(#expr, __FILE__, __LINE__, __func__))
#else
#define hh_assert(expr) ((void)0)
#endif

/* ---- report.c: messages without allocation ---------------------------------*/
/* Format into buf (at most size bytes incl. NUL) like a tiny vsnprintf:
 * %s %c %d %ld %zu %zd %zx %lx %llu %p and %%. Returns the length written. */
size_t hh_vformat(char* buf, size_t size, const char* fmt, va_list args);
size_t hh_format(char* buf, size_t size, const char* fmt, ...) hh_attr_printf(3, 4);
/* Write a formatted message to stderr (no prefix). */
void hh_print(const char* fmt, ...) hh_attr_printf(1, 2);
/* "hardheap: <fmt>" when verbose is on. */
void hh_verbose_message(const char* fmt, ...) hh_attr_printf(1, 2);
/* "hardheap: warning: <fmt>" when show_errors or verbose is on. */
void hh_warning_message(const char* fmt, ...) hh_attr_printf(1, 2);
/* Heap misuse: "hardheap: error: <fmt>"; printed when show_errors or verbose
 * is on (always in the secure build), then aborts in the secure build. */
void hh_error_message(const char* fmt, ...) hh_attr_printf(1, 2);
/* Unrecoverable: always printed, then abort. */
_Noreturn void hh_fatal(const char* fmt, ...) hh_attr_printf(1, 2);
_Noreturn void hh_assert_fail(const char* expr, const char* file, int line, const char* func);

/* ---- options.c --------------------------------------------------------------*/
void hh_options_init(void);
long hh_option_get_fast(hh_option_t option);
bool hh_option_is_enabled(hh_option_t option);

/* ---- os.c: the only file that calls mmap/munmap/mprotect/madvise ---------- */
void hh_os_init(void);
size_t hh_os_page_size(void);
/* Map size bytes aligned to alignment (a power of two >= page size). With
 * align_offset, the address + align_offset is aligned instead. NULL on ENOMEM. */
void* hh_os_alloc_aligned(size_t size, size_t alignment, size_t align_offset);
void hh_os_free(void* p, size_t size);
/* Return the pages to the OS; they read back as zero. */
bool hh_os_purge(void* p, size_t size);
bool hh_os_protect(void* p, size_t size);
bool hh_os_unprotect(void* p, size_t size);
/* Monotonic clock in milliseconds. */
uint64_t hh_os_clock_ms(void);
/* Fill buf with random bytes from the kernel; false if unavailable. */
bool hh_os_random_bytes(void* buf, size_t size);

/* ---- segment.c --------------------------------------------------------------*/
/* Bitmap of segment-aligned addresses that are hardheap segments: lets free
 * recognise foreign pointers without touching their memory. 48-bit address
 * space, one bit per 4 MiB. */
#define HH_SEGMENT_MAP_BITS ((uintptr_t)1 << (48 - HH_SEGMENT_SHIFT))
extern _Atomic(uintptr_t) hh_segment_map[HH_SEGMENT_MAP_BITS / 64];
extern uintptr_t hh_process_cookie;

hh_page_t* hh_segment_page_alloc(hh_heap_t* heap, size_t block_size, size_t alignment);
void hh_segment_page_free(hh_page_t* page, bool force);
void hh_segments_collect(hh_tld_t* tld, bool force);
/* An exiting thread's empty segments go to the global cache (or the OS). */
void hh_segments_thread_exit(hh_tld_t* tld);
/* Leave segments to the abandoned list (their thread exits with live
 * blocks): prepare detaches one from its thread onto a private list
 * (idempotent), publish hands the whole list over. */
void hh_segment_abandon_prepare(hh_segment_t* segment, hh_segment_t** list);
void hh_segment_abandon_publish(hh_segment_t* list);
size_t hh_segments_abandoned_count(void);
/* Take / release the segment layer's locks around fork (init.c). */
void hh_segment_fork_prepare(void);
void hh_segment_fork_release(void);
/* Take the right to free the block of a large or huge single-block page;
 * false if another free took it already (a double free). */
bool hh_segment_single_claim(hh_page_t* page);
/* Release a claimed large or huge block: a large span's slices go back to
 * its segment, a huge segment is unmapped. */
void hh_segment_single_free(hh_page_t* page);
/* Resize the block of a single-block page in place; false if it cannot. */
bool hh_segment_single_resize(hh_page_t* page, size_t newsize);
/* Start of the memory of page and its usable size in bytes. */
uint8_t* hh_segment_page_area(const hh_segment_t* segment, const hh_page_t* page, size_t* size);
/* Abandoned segments: left by exited threads, reclaimed by allocating ones. */
bool hh_segment_try_reclaim(hh_heap_t* heap);

/* ---- page.c ----------------------------------------------------------------*/
extern const hh_page_t hh_page_empty;
size_t hh_bin_size(size_t bin);
void* hh_malloc_generic(hh_heap_t* heap, size_t size, bool zero, size_t huge_alignment);
void hh_page_collect_free(hh_page_t* page, bool force);
/* Return page to its segment; purge: give its memory back to the OS now. */
void hh_page_free(hh_page_t* page, hh_page_queue_t* pq, bool purge);
void hh_page_retire(hh_page_t* page);
void hh_page_unfull(hh_page_t* page);
void hh_page_use_delayed_free(hh_page_t* page, hh_delayed_t delay, bool override_never);
void hh_page_queue_remove(hh_heap_t* heap, hh_page_queue_t* pq, hh_page_t* page);
void hh_page_queue_push_back(hh_heap_t* heap, hh_page_queue_t* pq, hh_page_t* page);
/* Is block on one of page's free lists (free, local_free, thread_free)? */
bool hh_page_block_is_free(const hh_page_t* page, const hh_block_t* block);
hh_page_queue_t* hh_page_queue_of(hh_heap_t* heap, const hh_page_t* page);
/* Free retired pages whose time is up (all of them with free_all); purge
 * returns their memory to the OS at once instead of after the delay. */
void hh_heap_collect_retired(hh_heap_t* heap, bool free_all, bool purge);
/* Adopt a page of a reclaimed segment into heap, or free it if all its
 * blocks came back (then returns true). */
bool hh_page_reclaim(hh_heap_t* heap, hh_page_t* page);

/* ---- heap.c ----------------------------------------------------------------*/
extern const hh_heap_t hh_heap_empty;
extern hh_heap_t hh_heap_main;
extern __thread hh_heap_t* hh_heap_default hh_tls_initial_exec;
hh_heap_t* hh_heap_thread_init(void);
/* Take / release every heap lock around fork (init.c). */
void hh_heap_fork_prepare(void);
void hh_heap_fork_release(void);
/* Is heap an initialised heap of the calling thread? */
bool hh_heap_is_mine(const hh_heap_t* heap);
/* Track / untrack a large or huge single-block page in its heap (any thread). */
void hh_heap_single_link(hh_heap_t* heap, hh_page_t* page);
void hh_heap_single_unlink(hh_page_t* page);
/* Call the registered deferred-free function, unless already inside it. */
void hh_heap_deferred_free(hh_heap_t* heap, bool force);
void hh_heap_delayed_free_all(hh_heap_t* heap);
void hh_heap_queue_first_update(hh_heap_t* heap, const hh_page_queue_t* pq);
void hh_heap_process_init(void);

/* ---- alloc.c ----------------------------------------------------------------*/
void* hh_heap_malloc_zero(hh_heap_t* heap, size_t size, bool zero);
void* hh_heap_malloc_aligned_zero(hh_heap_t* heap, size_t size, size_t alignment, bool zero);

/* ---- free.c -----------------------------------------------------------------*/
void hh_free_delayed_block(hh_block_t* block);
void hh_free_block_remote(hh_page_t* page, hh_block_t* block);
/* The page owning p, or NULL (after reporting) if p is not a live hardheap
 * allocation as far as this build checks. `what` names the caller. */
hh_page_t* hh_checked_page_of(const void* p, const char* what);

/* ---- secure.c ---------------------------------------------------------------*/
void hh_secure_init(void);
uint64_t hh_random_next(uint64_t* state);
uint64_t hh_random_seed(void);
void hh_page_init_keys(hh_heap_t* heap, hh_page_t* page);
hh_cold void hh_report_corrupt_link(const hh_page_t* page, const hh_block_t* block, uintptr_t value);
bool hh_is_double_free(const hh_page_t* page, const hh_block_t* block);

/* ---- stats.c ----------------------------------------------------------------*/
typedef struct hh_stat_counters_s {
  _Atomic(size_t) segments, segments_peak, segments_cached;
  _Atomic(size_t) pages, pages_peak, huge_count;
  _Atomic(size_t) reserved, reserved_peak, committed, committed_peak;
  _Atomic(size_t) purged, mmap_calls, munmap_calls;
} hh_stat_counters_t;
extern hh_stat_counters_t hh_stats;
/* Add delta to a counter and raise its peak companion (peak may be NULL). */
void hh_stat_add(_Atomic(size_t)* counter, _Atomic(size_t)* peak, size_t delta);
void hh_stat_sub(_Atomic(size_t)* counter, size_t delta);

/* ---- init.c -----------------------------------------------------------------*/
extern bool hh_process_is_initialized;
void hh_process_init(void);

/* ============================================================================
 * Inline helpers of the hot paths
 * ========================================================================== */

/* A cheap unique id for the calling thread: the thread pointer. */
static inline uintptr_t hh_thread_id(void) {
  uintptr_t tp;
#if defined(__x86_64__)
  __asm__("movq %%fs:0, %0" : "=r"(tp));
#elif defined(__aarch64__)
  __asm__ volatile("mrs %0, tpidr_el0" : "=r"(tp));
#else
  tp = (uintptr_t)&hh_heap_default;
#endif
  return tp;
}

static inline hh_heap_t* hh_get_default_heap(void) {
  return hh_heap_default;
}

static inline bool hh_heap_is_initialized(const hh_heap_t* heap) {
  return heap != &hh_heap_empty;
}

/* The segment of p. (p - 1) rather than p so that a huge block aligned to
 * more than SEGMENT_SIZE can start exactly at segment + SEGMENT_SIZE. */
static inline hh_segment_t* hh_ptr_segment(const void* p) {
  return (hh_segment_t*)(((uintptr_t)p - 1) & ~(uintptr_t)HH_SEGMENT_MASK);
}

/* Is s a live hardheap segment? Reads only the global map, never s itself. */
static inline bool hh_segment_is_ours(const hh_segment_t* s) {
  uintptr_t idx = (uintptr_t)s >> HH_SEGMENT_SHIFT;
  if (hh_unlikely(idx >= HH_SEGMENT_MAP_BITS)) return false;
  uintptr_t word = atomic_load_explicit(&hh_segment_map[idx / 64], memory_order_relaxed);
  return ((word >> (idx % 64)) & 1) != 0;
}

static inline hh_page_t* hh_segment_page_of(const hh_segment_t* segment, const void* p) {
  size_t idx = ((uintptr_t)p - (uintptr_t)segment) >> segment->page_shift;
  return (hh_page_t*)&segment->pages[idx];
}

static inline hh_segment_t* hh_page_segment(const hh_page_t* page) {
  return (hh_segment_t*)((uintptr_t)page & ~(uintptr_t)HH_SEGMENT_MASK);
}

/* The start of the block containing p (p may be an interior aligned pointer). */
static inline hh_block_t* hh_page_block_of(const hh_page_t* page, const void* p) {
  size_t offset = (size_t)((uintptr_t)p - (uintptr_t)page->page_start);
  return (hh_block_t*)(page->page_start + offset - (offset % page->block_size));
}

/* page->flags: relaxed atomics (plain moves) because remote frees read the
 * byte while the owner changes IN_FULL; only the owner thread writes it. */
static inline uint8_t hh_page_flags(const hh_page_t* page) {
  return atomic_load_explicit(&((hh_page_t*)page)->flags, memory_order_relaxed);
}
static inline void hh_page_flags_set(hh_page_t* page, uint8_t bits) {
  atomic_store_explicit(&page->flags, (uint8_t)(hh_page_flags(page) | bits), memory_order_relaxed);
}
static inline void hh_page_flags_clear(hh_page_t* page, uint8_t bits) {
  atomic_store_explicit(&page->flags, (uint8_t)(hh_page_flags(page) & ~bits), memory_order_relaxed);
}

static inline bool hh_page_all_free(const hh_page_t* page) {
  return page->used == 0;
}

static inline hh_block_t* hh_thread_free_block(uintptr_t tf) {
  return (hh_block_t*)(tf & ~(uintptr_t)3);
}
static inline hh_delayed_t hh_thread_free_delayed(uintptr_t tf) {
  return (hh_delayed_t)(tf & 3);
}
static inline uintptr_t hh_thread_free_make(const hh_block_t* block, hh_delayed_t delayed) {
  return (uintptr_t)block | (uintptr_t)delayed;
}

/* ---- free-list link encoding ----------------------------------------------
 * Threat: a heap overflow or use-after-free write into a free block rewrites
 * its link so that malloc later returns an attacker-chosen address. In the
 * secure build the link is stored as
 *   rotl(next ^ key0 ^ block_address, key1 & 63)
 * so forging it needs both per-page secrets, a value copied from another
 * block decodes to garbage, and every decoded link must land on a block
 * boundary inside the same page or the process aborts. In the default build
 * the link is stored plainly. */
static inline uintptr_t hh_rotl(uintptr_t x, unsigned r) {
  r &= 63;
  return r == 0 ? x : (x << r) | (x >> (64 - r));
}
static inline uintptr_t hh_rotr(uintptr_t x, unsigned r) {
  r &= 63;
  return r == 0 ? x : (x >> r) | (x << (64 - r));
}

static inline hh_encoded_t hh_encode_link(const hh_page_t* page, const hh_block_t* block, const hh_block_t* next) {
  if (HH_ENCODE_FREELIST) {
    return hh_rotl((uintptr_t)next ^ page->keys[0] ^ (uintptr_t)block, (unsigned)page->keys[1]);
  }
  (void)page; (void)block;
  return (hh_encoded_t)next;
}

static inline hh_block_t* hh_decode_link(const hh_page_t* page, const hh_block_t* block, hh_encoded_t value) {
  if (HH_ENCODE_FREELIST) {
    return (hh_block_t*)(hh_rotr(value, (unsigned)page->keys[1]) ^ page->keys[0] ^ (uintptr_t)block);
  }
  (void)page; (void)block;
  return (hh_block_t*)value;
}

/* Is q a block boundary of page (or NULL)? */
static inline bool hh_page_is_valid_link(const hh_page_t* page, const hh_block_t* q) {
  if (q == NULL) return true;
  uintptr_t start = (uintptr_t)page->page_start;
  uintptr_t a = (uintptr_t)q;
  if (a < start) return false;
  size_t offset = a - start;
  return offset < (size_t)page->reserved * page->block_size && offset % page->block_size == 0;
}

/* The next free block after block; in the secure build a link that does not
 * point into the same page aborts. */
static inline hh_block_t* hh_block_next(const hh_page_t* page, const hh_block_t* block) {
  hh_block_t* next = hh_decode_link(page, block, block->next);
  hh_assert(hh_page_is_valid_link(page, next));
  if (HH_ENCODE_FREELIST && hh_unlikely(!hh_page_is_valid_link(page, next))) {
    hh_report_corrupt_link(page, block, (uintptr_t)next);
  }
  return next;
}

static inline void hh_block_set_next(const hh_page_t* page, hh_block_t* block, const hh_block_t* next) {
  block->next = hh_encode_link(page, block, next);
}

/* ---- size helpers ----------------------------------------------------------*/
/* The size class of size (see HH_BIN_* in types.h). */
static inline size_t hh_bin(size_t size) {
  if (size <= 128) return size <= HH_MIN_ALIGN ? 1 : (size + HH_MIN_ALIGN - 1) / HH_MIN_ALIGN;
  if (size > HH_LARGE_OBJ_SIZE_MAX) return HH_BIN_HUGE;
  size_t w = size - 1;
  unsigned b = 63u - (unsigned)__builtin_clzl(w);  /* floor(log2(w)) >= 7 */
  return 8u * (b - 6u) + ((w >> (b - 3u)) & 7u) + 1u;
}

static inline size_t hh_wsize_of(size_t size) {  /* size in 16-byte units, rounded up */
  return (size + HH_MIN_ALIGN - 1) / HH_MIN_ALIGN;
}
static inline size_t hh_align_up(size_t x, size_t align) {  /* align: power of two */
  return (x + align - 1) & ~(align - 1);
}
static inline bool hh_is_power_of_two(size_t x) {
  return x != 0 && (x & (x - 1)) == 0;
}
static inline bool hh_mul_overflow(size_t count, size_t size, size_t* total) {
  return __builtin_mul_overflow(count, size, total);
}

#endif /* HH_INTERNAL_H */
