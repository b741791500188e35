/* hardheap: declarations shared between source files, grouped by the file
 * that defines them, and the small inline helpers of the hot paths.
 *
 * Naming: hh_ is the public API (include/hardheap.h); hhi_ is every
 * cross-file internal (hidden: the library is built with hidden
 * visibility, and the prefix tells a user of the static library what is
 * not theirs); hhi_os_ is the OS layer (os.h). Types keep hh_..._t.
 *
 * Layers, bottom to top; a file calls only into its own layer or below:
 *   support   config.h, size_class.h, format.c, options.c, report.c,
 *             misuse.c, stats.h, random.c, track.h (usable from every layer)
 *   os        os.c
 *   segment   segment_map.c, segment.c (segments, page slots, huge), span.c
 *   queue     queue.c (a heap's page queues, pages_direct, singles list)
 *   page      page.c (pages, their free lists, the block moments of block.h)
 *   heap      heap.c (heaps, thread data, delayed frees, first-class heaps)
 *   entry     alloc.c, free.c, lookup.c, validate.c, stats.c, init.c,
 *             override.c (the public calls) */
#ifndef HH_INTERNAL_H
#define HH_INTERNAL_H

#include "hardheap.h"
#include "config.h"
#include "types.h"
#include "size_class.h"
#include "os.h"
#include "stats.h"
#include "options.h"
#include "report.h"
#include "track.h"

#include <errno.h>
#include <string.h>

/* Internal assertions: on in debug builds (HH_DEBUG), compiled out otherwise.
 * Failing assertions report without allocating and abort. */
#if HH_DEBUG
#define hh_assert(expr) ((expr) ? (void)0 : hhi_assert_fail(#expr, __FILE__, __LINE__, __func__))
#else
#define hh_assert(expr) ((void)0)
#endif

/* ---- random.c: randomness, keys, the process cookie -------------------------*/
extern uintptr_t hhi_process_cookie;
void hhi_random_init(void);
/* splitmix64 step: fast, invertible; only for shuffles seeded per batch
 * and the quarantine's slot choice. Inline: the quarantine draws one per
 * free in the secure build. */
static inline uint64_t hhi_random_next(uint64_t* state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
/* The next 64 bits of a ChaCha20 stream. */
uint64_t hhi_chacha_next(hh_chacha_t* ctx);
/* Key ctx from the output of another stream (stream: the nonce, one per purpose). */
void hhi_chacha_derive(hh_chacha_t* ctx, hh_chacha_t* from, uint32_t stream);
/* Key heap's streams: from the kernel, or (from != NULL) from from's key stream. */
void hhi_random_heap_init(hh_heap_t* heap, hh_heap_t* from);
/* Fresh free-list keys for a page of heap. */
void hhi_page_init_keys(hh_heap_t* heap, hh_page_t* page);
/* A seed for the shuffle of one batch of new blocks. */
uint64_t hhi_random_shuffle_seed(hh_heap_t* heap);
/* A random address aligned to alignment for a new mapping, from stream (or
 * the kernel when stream is NULL); 0 when none can be had. */
uintptr_t hhi_random_address(hh_chacha_t* stream, size_t alignment);

/* ---- segment_map.c: which 4 MiB-aligned addresses are hardheap segments ------
 * One bit per segment-aligned address of a 48-bit address space: free finds
 * out whether a pointer is ours without touching its memory. */
#define HH_SEGMENT_MAP_BITS ((uintptr_t)1 << (HH_ADDRESS_BITS - HH_SEGMENT_SHIFT))
extern _Atomic(uintptr_t) hhi_segment_map[HH_SEGMENT_MAP_BITS / 64];
/* False if the address is beyond the map (then the segment is unusable). */
bool hhi_segment_map_add(const hh_segment_t* segment);
void hhi_segment_map_remove(const hh_segment_t* segment);
/* The list of all segments but guarded ones, for statistics: a registered
 * segment stays mapped until it is unregistered, which waits for a walk in
 * progress. visit is called under the list's lock: it must not allocate
 * or take another hardheap lock. */
void hhi_segment_register(hh_segment_t* segment);
void hhi_segment_unregister(hh_segment_t* segment);
void hhi_segments_visit(void (*visit)(const hh_segment_t* segment, void* arg), void* arg);
void hhi_segment_registry_fork_prepare(void);
void hhi_segment_registry_fork_release(void);

static inline bool hhi_segment_map_contains(const hh_segment_t* segment) {
  uintptr_t idx = (uintptr_t)segment >> HH_SEGMENT_SHIFT;
  if (hh_unlikely(idx >= HH_SEGMENT_MAP_BITS)) return false;
  uintptr_t word = atomic_load_explicit(&hhi_segment_map[idx / 64], memory_order_relaxed);
  return ((word >> (idx % 64)) & 1) != 0;
}

/* ---- stack.c: call stacks for guarded reports ---------------------------------
 * Return addresses only; printed as symbol and module + offset. */
/* Load the unwinder now (its first use allocates). */
void hhi_stack_init(void);
/* Up to max return addresses of the caller, leading hardheap frames left out. */
int hhi_stack_capture(void** frames, int max);
/* The unwinder is loaded (hhi_stack_init ran): capturing no longer allocates. */
bool hhi_stack_ready(void);
/* The same from a signal handler, starting at the faulting pc. */
int hhi_stack_capture_from(void** frames, int max, const void* pc);
void hhi_stack_print(void* const* frames, int count);

/* ---- segment.c: segments, their page slots, huge blocks ------------------------*/
/* A page of a small or medium segment of tld for blocks of class bin. */
hh_page_t* hhi_segment_page_alloc(hh_tld_t* tld, hh_segment_kind_t kind, size_t bin);
/* Give a small or medium page slot back; force: purge its memory now. */
void hhi_segment_page_free(hh_page_t* page, bool force);
/* A huge segment for one block of block_size bytes aligned to alignment. */
hh_page_t* hhi_segment_huge_alloc(hh_tld_t* tld, size_t block_size, size_t alignment);
/* Release a claimed huge block: unmap its segment, with HH_HUGE_CACHE keep
 * its mapping for a later huge block, with HH_HUGE_QUARANTINE keep it
 * mapped inaccessible for a while. */
void hhi_segment_huge_free(hh_page_t* page);
/* Some entry of the global cache of empty segments or of the huge cache
 * still holds resident memory; purge those whose delay is over (the
 * background purger). */
bool hhi_segment_caches_purge_pending(void);
void hhi_segment_caches_collect(void);
/* Can the huge block of page serve newsize bytes in place (realloc)? */
bool hhi_segment_huge_resize(const hh_page_t* page, size_t newsize);
/* Zero the link words the last page of a free slot left at its block
 * starts (its class and capacity are kept while the slot is free). */
void hhi_segment_clear_links(hh_segment_t* segment, hh_page_t* slot);
/* Bytes of metadata (and guard) before a segment's first block, and of the
 * guard at its end: the same for every kind. */
size_t hhi_segment_info_size(void);
size_t hhi_segment_end_guard_size(void);
/* Start of the memory of page and its usable size in bytes. */
uint8_t* hhi_segment_page_area(const hh_segment_t* segment, const hh_page_t* page, size_t* size);
/* Purge expired free page slots of tld (all of them, and the cache, with force). */
void hhi_segments_collect(hh_tld_t* tld, bool force);
/* An exiting thread's empty segments go to the global cache (or the OS). */
void hhi_segments_thread_exit(hh_tld_t* tld);
/* Leave segments to the abandoned list (their thread exits with live
 * blocks): prepare detaches one from its thread onto a private list
 * (idempotent), publish hands the whole list over. */
void hhi_segment_abandon_prepare(hh_segment_t* segment, hh_segment_t** list);
void hhi_segment_abandon_publish(hh_segment_t* list);
size_t hhi_segments_abandoned_count(void);
/* Adopt one abandoned segment into tld (NULL if there is none); its pages
 * are then the caller's to reclaim, after which reclaim_done requeues it. */
hh_segment_t* hhi_segment_reclaim_take(hh_tld_t* tld);
void hhi_segment_reclaim_done(hh_segment_t* segment);
/* Take / release the segment layer's lock around fork (init.c). */
void hhi_segment_fork_prepare(void);
void hhi_segment_fork_release(void);
/* For span.c, which builds large segments out of these: */
hh_segment_t* hhi_segment_alloc(hh_tld_t* tld, hh_segment_kind_t kind, size_t huge_block, size_t alignment);
void hhi_segment_unmap(hh_segment_t* segment);
void hhi_segment_cache_push(hh_tld_t* tld, hh_segment_t* segment);
void hhi_segment_schedule_purge(hh_segment_t* segment, hh_page_t* page, bool force);
/* HH_PROTECT_PURGED, and the guard budget not spent (or guard markers):
 * purged memory may be made inaccessible. */
bool hhi_purge_protect_allowed(void);

/* ---- guarded.c: sampled guarded allocations (HH_GUARDED) -------------------------*/
void hhi_guarded_init(void);
/* Sampling is on (HH_GUARDED and GUARDED_SAMPLE_RATE > 0). */
bool hhi_guarded_enabled(void);
/* At library start: load the unwinder (unsampled) and install the fault handler. */
void hhi_guarded_start(void);
/* Start heap's countdown (samples: it is a thread's backing heap). */
void hhi_guarded_heap_init(hh_heap_t* heap, bool samples);
/* heap's countdown reached 0: a guarded block for the request, or NULL
 * (errno kept) when this request is not sampled after all. */
void* hhi_guarded_malloc(hh_heap_t* heap, size_t size, bool zero, size_t alignment);
/* hhi_lookup_in for a guarded segment: the live block at p (ref->page NULL,
 * ref->idx its slot), else false after the report (none for HH_OP_NONE). */
bool hhi_guarded_lookup(const void* p, hh_segment_t* segment, hh_op_t op, hh_block_ref_t* ref);
void hhi_guarded_free(const hh_block_ref_t* ref, void* p);
size_t hhi_guarded_usable_size(const hh_block_ref_t* ref);
/* The heap that allocated the live guarded block holding p, or NULL. */
const hh_heap_t* hhi_guarded_owner(const void* p);
/* What a fault at addr was; false when addr is not in a guarded segment. */
bool hhi_guarded_describe(const void* addr, hh_guarded_fault_t* out);
/* A fault's report, with the faulting stack. */
void hhi_guarded_report_fault(hh_op_t op, hh_misuse_info_t facts, const hh_guarded_slot_t* slot, void* const* stack,
                              int depth);
void hhi_guarded_fork_prepare(void);
void hhi_guarded_fork_release(void);
/* guarded_fault.c: put the fault handler in front of the program's (again,
 * if the program replaced it since). */
void hhi_guarded_fault_arm(void);

/* ---- span.c: large blocks, spans of 64 KiB slices in shared segments ---------*/
/* A span for a block of block_size bytes aligned to alignment (at most
 * SEGMENT_SIZE / 2); tld's span cache is tried first. */
hh_page_t* hhi_span_alloc(hh_tld_t* tld, size_t block_size, size_t alignment);
/* The block size of a span for a need of need bytes. */
size_t hhi_span_block_size(size_t need);
/* Can a span hold block_size bytes aligned to alignment at all (the
 * metadata and guard slices leave room)? Otherwise it needs a huge segment. */
bool hhi_span_can_hold(size_t block_size, size_t alignment);
/* Release a claimed span: into tld's span cache (tld may be NULL), else
 * back to its segment. */
void hhi_span_free(hh_page_t* page, hh_tld_t* tld);
/* Grow or shrink a large block in place; false if it cannot. */
bool hhi_span_resize(hh_page_t* page, size_t newsize);
/* Expire tld's cached spans and purge free slices (all of them with force). */
void hhi_spans_collect(hh_tld_t* tld, bool force);
void hhi_spans_thread_exit(hh_tld_t* tld);
void hhi_span_fork_prepare(void);
void hhi_span_fork_release(void);
/* validate.c's check of a large segment (takes the span lock). */
bool hhi_span_validate_segment(const hh_segment_t* segment);

/* ---- queue.c: a heap's page queues and its list of single-block pages ---------*/
hh_page_queue_t* hhi_queue_of(hh_heap_t* heap, const hh_page_t* page);
void hhi_queue_remove(hh_heap_t* heap, hh_page_queue_t* pq, hh_page_t* page);
void hhi_queue_push_front(hh_heap_t* heap, hh_page_queue_t* pq, hh_page_t* page);
void hhi_queue_push_back(hh_heap_t* heap, hh_page_queue_t* pq, hh_page_t* page);
/* Large and huge pages, freed by any thread, are listed under a lock. */
void hhi_singles_lock(hh_heap_t* heap);
void hhi_singles_unlock(hh_heap_t* heap);
void hhi_singles_link(hh_heap_t* heap, hh_page_t* page);
/* Unlink page from whatever heap lists it (any thread). */
void hhi_singles_unlink(hh_page_t* page);
/* Unlink page from heap, whose lock the caller holds. */
void hhi_singles_remove(hh_heap_t* heap, hh_page_t* page);

/* ---- page.c: pages and their free lists -----------------------------------------*/
extern const hh_page_t hhi_page_empty;
/* A page of heap with a free block for size bytes (aligned to alignment if
 * above HH_MIN_ALIGN: single-block pages placed there); NULL when out of memory. */
hh_page_t* hhi_page_find(hh_heap_t* heap, size_t size, size_t alignment);
void hhi_page_collect_free(hh_page_t* page, bool force);
/* Return page to its segment; purge: give its memory back to the OS now. */
void hhi_page_free(hh_page_t* page, hh_page_queue_t* pq, bool purge);
void hhi_page_retire(hh_page_t* page);
void hhi_page_unfull(hh_page_t* page);
void hhi_page_use_delayed_free(hh_page_t* page, hh_delayed_t delay, bool override_never);
/* Is block on one of page's free lists (free, local_free, thread_free)? */
bool hhi_page_block_is_free(const hh_page_t* page, const hh_block_t* block);
/* Mark in map (HH_PAGE_BLOCKS_MAX bits) the index of every block on the
 * page's lists free, local_free and thread_free, and count each list into
 * counts[0..2]; false if a block is listed twice, lies off a block boundary
 * or beyond capacity (a corrupted list). */
bool hhi_page_free_map(const hh_page_t* page, uint64_t* map, size_t counts[3]);
/* The block of a fresh single-block page (large or huge). */
hh_block_t* hhi_page_take_single(hh_page_t* page);
/* Take the right to free the block of a large or huge page (any thread);
 * false if another free took it already (a double free). */
bool hhi_single_claim(hh_page_t* page);
/* Release a claimed large or huge block; tld: the freeing thread's, or NULL. */
void hhi_single_free(hh_page_t* page, hh_tld_t* tld);
/* Can the large or huge block of page serve need bytes in place? */
bool hhi_single_resize(hh_page_t* page, size_t need);
/* The block size a single-block page gets for need bytes. */
size_t hhi_single_block_size(size_t need);
/* Free retired pages whose time is up (all of them with free_all); purge
 * returns their memory to the OS at once instead of after the delay. */
void hhi_page_collect_retired(hh_heap_t* heap, bool free_all, bool purge);
/* Adopt one abandoned segment's pages into heap; false if there was none. */
bool hhi_page_reclaim_abandoned(hh_heap_t* heap);
/* The block moment "freed by another thread" (block.h); idx: its index. */
void hhi_block_free_remote(hh_page_t* page, hh_block_t* block, uint32_t idx, const void* p);
/* HH_QUARANTINE: put a freed block of page (owner thread) into its heap's
 * quarantine; a random older one leaves it for its page's free list. */
void hhi_quarantine_put(hh_page_t* page, hh_block_t* block);
bool hhi_quarantine_validate(const hh_heap_t* heap);
/* Release every block of heap's quarantine (collect, thread exit, delete). */
void hhi_quarantine_flush(hh_heap_t* heap);
/* Forget heap's quarantine: its pages are being freed (destroy). */
void hhi_quarantine_drop(hh_heap_t* heap);
/* Blocks of page in its heap's quarantine (validate.c). */
size_t hhi_quarantine_count(const hh_page_t* page);
/* A block of a heap's delayed list (found with hhi_page_lookup), freed now
 * by its owner. */
void hhi_page_free_delayed_block(const hh_block_ref_t* ref);
/* Report a link that leaves its page (block.h:hhi_block_next). */
hh_cold void hhi_report_corrupt_link(const hh_page_t* page, const hh_block_t* block, uintptr_t value);
/* The head of page's free list is not a free block (block.h:hhi_page_pop):
 * report, cut the list, return NULL. */
hh_cold hh_block_t* hhi_page_pop_bad(hh_page_t* page);
/* A block's canary is damaged (requested: its recorded size, or SIZE_MAX
 * when the size bytes themselves are): a heap buffer overflow. */
hh_cold void hhi_report_overflow(const hh_page_t* page, const void* block, const void* p, hh_op_t op,
                                 size_t requested);
/* A freed block is not zero from byte `from` on, where it was zeroed when
 * freed: a write after free. */
hh_cold void hhi_report_write_after_free(const hh_page_t* page, const hh_block_t* block, size_t from);

/* ---- heap.c -------------------------------------------------------------------*/
extern const hh_heap_t hhi_heap_empty;
extern hh_heap_t hhi_heap_main;
extern __thread hh_heap_t* hhi_heap_default hh_tls_initial_exec;
hh_heap_t* hhi_heap_thread_init(void);
void hhi_heap_process_init(void);
/* Take / release every heap lock around fork (init.c). */
void hhi_heap_fork_prepare(void);
void hhi_heap_fork_release(void);
/* In a forked child: fresh random streams for the thread's heaps. */
void hhi_heap_fork_child_reseed(void);
/* Is heap an initialised heap of the calling thread? */
bool hhi_heap_is_mine(const hh_heap_t* heap);
/* Call the registered deferred-free function, unless already inside it. */
void hhi_heap_deferred_free(hh_heap_t* heap, bool force);
/* Free the blocks other threads left on heap's delayed list. */
void hhi_heap_delayed_free_all(hh_heap_t* heap);
/* Expire and purge the segment layer's memory held for tld (all with force). */
void hhi_tld_collect(hh_tld_t* tld, bool force);

/* Count a block of bytes handed out by heap (stats.c adds the counts to
 * the process totals); the fast path's heap line is hot already. */
static inline void hhi_heap_count_alloc(hh_heap_t* heap, size_t bytes) {
  heap->alloc_bytes += bytes;
  heap->alloc_count++;
}

/* ---- purge.c: the background purger ----------------------------------------------
 * One thread, started lazily from the allocation slow path, that runs the
 * expired purges of threads which stopped allocating (they would otherwise
 * keep their freed memory until their next slow path). */
extern _Atomic(int) hhi_purger_state;  /* HH_PURGER_*: read on every slow path */
#define HH_PURGER_NONE 0      /* not started (yet, or in a forked child) */
#define HH_PURGER_RUNNING 1   /* started, or being started */
#define HH_PURGER_OFF 2       /* BACKGROUND_PURGE=0, PURGE_DELAY <= 0, or it could not start */
void hhi_purger_start(void);
static inline void hhi_purger_maybe_start(void) {
  if (hh_likely(atomic_load_explicit(&hhi_purger_state, memory_order_relaxed) != HH_PURGER_NONE)) return;
  hhi_purger_start();
}
/* A purge was scheduled for later: wake the purger if it sleeps. */
extern _Atomic(bool) hhi_purger_sleeping;
void hhi_purger_wake(void);
static inline void hhi_purger_notify(void) {
  /* seq_cst: see purge.c for why this load cannot miss a purger going to sleep */
  if (hh_unlikely(atomic_load_explicit(&hhi_purger_sleeping, memory_order_seq_cst))) hhi_purger_wake();
}
void hhi_purger_fork_prepare(void);
void hhi_purger_fork_parent(void);
void hhi_purger_fork_child(void);
/* The constructor has run: threads may be started (init.c). */
extern bool hhi_process_started;
/* heap.c: call visit on every thread's data (under the thread data lock). */
void hhi_tlds_visit(void (*visit)(hh_tld_t* tld, void* arg), void* arg);
/* span.c: some large segment has a purge scheduled. */
bool hhi_spans_purge_pending(void);

/* ---- alloc.c --------------------------------------------------------------------*/
void* hhi_malloc_generic(hh_heap_t* heap, size_t size, bool zero, size_t alignment);

/* ---- free.c ---------------------------------------------------------------------*/
/* Free the block of ref (found by hhi_block_lookup), handed out as p. */
void hhi_free_ref(const hh_block_ref_t* ref, void* p);

/* ---- lookup.c: pointer -> (segment, page, block) -----------------------------------
 * The validating lookup every public call that takes a pointer goes through.
 * hhi_page_lookup finds the page (in use) covering p; hhi_block_lookup also
 * proves that p is a live block as far as this build checks (boundary,
 * bounds, liveness). Both report the misuse (op; HH_OP_NONE: silently) and
 * return false when p does not qualify. */
bool hhi_page_lookup(const void* p, hh_op_t op, hh_block_ref_t* ref);
bool hhi_block_lookup(const void* p, hh_op_t op, hh_block_ref_t* ref);
/* The report of a failed lookup (block.h:hhi_lookup_in).
 * kind HH_MISUSE_DOUBLE_FREE stands for "the block is not handed out"; the
 * report names it by op (realloc, usable_size) and by whether the block was
 * ever handed out (idx: its index). */
hh_cold void hhi_lookup_fail(hh_misuse_t kind, hh_op_t op, const void* p, const hh_segment_t* segment,
                             const hh_page_t* page, uint32_t idx);

/* ---- validate.c: invariant checks (types.h) ---------------------------------------
 * Each returns true when the invariants hold, else reports and returns false. */
bool hhi_validate_page(const hh_page_t* page);
bool hhi_validate_segment(const hh_segment_t* segment);
bool hhi_validate_heap(hh_heap_t* heap);

/* ---- init.c ---------------------------------------------------------------------*/
extern bool hhi_process_is_initialized;
extern uint64_t hhi_process_start_ms;  /* hhi_os_clock_ms at initialisation (stats.c: elapsed time) */
void hhi_process_init(void);

/* ============================================================================
 * Inline helpers of the hot paths
 * ========================================================================== */

/* A cheap unique id for the calling thread: the thread pointer. */
static inline uintptr_t hhi_thread_id(void) {
  uintptr_t tp;
#if defined(__x86_64__)
  __asm__("movq %%fs:0, %0" : "=r"(tp));
#elif defined(__aarch64__)
  __asm__ volatile("mrs %0, tpidr_el0" : "=r"(tp));
#else
  tp = (uintptr_t)&hhi_heap_default;
#endif
  return tp;
}

/* ---- the segment-layer lock of a thread (segment.c) -----------------------------
 * Every segment.c / span.c entry point that touches a thread's segment
 * queues, caches or span cache holds that thread's lock; the owner takes it
 * uncontended (one atomic compare-and-swap) unless the background purger
 * (purge.c) is purging for it. Recursive: entry points call each other. */
void hhi_tld_lock_wait(hh_tld_t* tld, uintptr_t me);
static inline void hhi_tld_lock(hh_tld_t* tld) {
  if (tld == NULL) return;
  uintptr_t me = hhi_thread_id();
  if (atomic_load_explicit(&tld->lock_owner, memory_order_relaxed) == me) {
    tld->lock_depth++;
    return;
  }
  uintptr_t expected = 0;
  if (hh_unlikely(!atomic_compare_exchange_strong_explicit(&tld->lock_owner, &expected, me, memory_order_acquire,
                                                           memory_order_relaxed))) {
    hhi_tld_lock_wait(tld, me);
  }
  tld->lock_depth = 1;
}
static inline bool hhi_tld_trylock(hh_tld_t* tld) {
  uintptr_t expected = 0;
  if (!atomic_compare_exchange_strong_explicit(&tld->lock_owner, &expected, hhi_thread_id(), memory_order_acquire,
                                               memory_order_relaxed)) {
    return false;
  }
  tld->lock_depth = 1;
  return true;
}
static inline void hhi_tld_unlock(hh_tld_t* tld) {
  if (tld == NULL) return;
  if (--tld->lock_depth == 0) atomic_store_explicit(&tld->lock_owner, 0, memory_order_release);
}

static inline hh_heap_t* hhi_get_default_heap(void) {
  return hhi_heap_default;
}

static inline bool hhi_heap_is_initialized(const hh_heap_t* heap) {
  return heap != &hhi_heap_empty;
}

/* The thread data of the calling thread, or NULL before its first allocation. */
static inline hh_tld_t* hhi_current_tld(void) {
  hh_heap_t* heap = hhi_get_default_heap();
  return hhi_heap_is_initialized(heap) ? heap->tld : NULL;
}

/* The segment a pointer would belong to. (p - 1) rather than p so that a
 * huge block aligned to more than SEGMENT_SIZE can start exactly at
 * segment + SEGMENT_SIZE. */
static inline hh_segment_t* hhi_ptr_segment(const void* p) {
  return (hh_segment_t*)(((uintptr_t)p - 1) & ~(uintptr_t)HH_SEGMENT_MASK);
}

static inline hh_segment_t* hhi_page_segment(const hh_page_t* page) {
  return (hh_segment_t*)((uintptr_t)page & ~(uintptr_t)HH_SEGMENT_MASK);
}

/* Does the segment hold many pages (small/medium) or single blocks? One
 * switch, so a new kind does not compile until it is handled here. */
static inline bool hhi_segment_kind_is_single(hh_segment_kind_t kind) {
  switch (kind) {
    case HH_SEGMENT_SMALL:
    case HH_SEGMENT_MEDIUM:
      return false;
    case HH_SEGMENT_LARGE:
    case HH_SEGMENT_HUGE:
    case HH_SEGMENT_GUARDED:  /* one block per slot */
      return true;
  }
  return true;
}

/* The start of the block containing p (p may be an interior aligned pointer). */
static inline hh_block_t* hhi_page_block_of(const hh_page_t* page, const void* p) {
  size_t offset = (size_t)((uintptr_t)p - (uintptr_t)page->page_start);
  return (hh_block_t*)(page->page_start + offset - (offset % page->block_size));
}

/* page->flags: relaxed atomics (plain moves) because remote frees read the
 * byte while the owner changes IN_FULL; only the owner thread writes it. */
static inline uint8_t hhi_page_flags(const hh_page_t* page) {
  return atomic_load_explicit(&((hh_page_t*)page)->flags, memory_order_relaxed);
}
static inline void hhi_page_flags_set(hh_page_t* page, uint8_t bits) {
  atomic_store_explicit(&page->flags, (uint8_t)(hhi_page_flags(page) | bits), memory_order_relaxed);
}
static inline void hhi_page_flags_clear(hh_page_t* page, uint8_t bits) {
  atomic_store_explicit(&page->flags, (uint8_t)(hhi_page_flags(page) & ~bits), memory_order_relaxed);
}

static inline bool hhi_page_all_free(const hh_page_t* page) {
  return page->used == 0;
}

static inline hh_block_t* hhi_thread_free_block(uintptr_t tf) {
  return (hh_block_t*)(tf & ~(uintptr_t)3);
}
static inline hh_delayed_t hhi_thread_free_delayed(uintptr_t tf) {
  return (hh_delayed_t)(tf & 3);
}
static inline uintptr_t hhi_thread_free_make(const hh_block_t* block, hh_delayed_t delayed) {
  return (uintptr_t)block | (uintptr_t)delayed;
}

#include "block.h"

#endif /* HH_INTERNAL_H */
