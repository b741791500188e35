/* hardheap: a hardened general-purpose memory allocator.
 *
 * Public API. Every function here is thread-safe. The standard malloc family
 * (malloc, free, ...) is also provided by the library under its usual names;
 * the hh_ names below are always available, also when another allocator owns
 * the standard names.
 *
 * Error conventions (the same for every function that allocates):
 *  - On failure NULL is returned and errno is set to ENOMEM. Sizes that can
 *    never be satisfied (larger than PTRDIFF_MAX, or an overflowing
 *    count * size product) count as failures.
 *  - Alignment must be a power of two; otherwise NULL is returned with errno
 *    EINVAL. hh_posix_memalign returns the error code instead and leaves errno
 *    untouched, as POSIX requires.
 *  - hh_free(NULL) does nothing. A pointer that hardheap did not hand out is
 *    reported (when HARDHEAP_SHOW_ERRORS is set) and ignored in the default
 *    build; the secure build (libhardheap-secure) aborts on it.
 *  - Every returned pointer is aligned to at least HH_MIN_ALIGNMENT bytes, and
 *    a zero-size request returns a unique pointer that can be freed.
 */
#ifndef HARDHEAP_H
#define HARDHEAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HH_VERSION_MAJOR 0
#define HH_VERSION_MINOR 1
#define HH_VERSION_PATCH 0
/* major*10000 + minor*100 + patch */
#define HH_VERSION (HH_VERSION_MAJOR * 10000 + HH_VERSION_MINOR * 100 + HH_VERSION_PATCH)

/* Minimum alignment of every allocation. */
#define HH_MIN_ALIGNMENT 16

#if defined(__GNUC__) || defined(__clang__)
#define HH_API __attribute__((visibility("default")))
#define HH_MALLOC_ATTR __attribute__((malloc, warn_unused_result))
#define HH_ALLOC_SIZE(n) __attribute__((alloc_size(n)))
#define HH_ALLOC_SIZE2(n, m) __attribute__((alloc_size(n, m)))
#define HH_ALLOC_ALIGN(n) __attribute__((alloc_align(n)))
#else
#define HH_API
#define HH_MALLOC_ATTR
#define HH_ALLOC_SIZE(n)
#define HH_ALLOC_SIZE2(n, m)
#define HH_ALLOC_ALIGN(n)
#endif

/* ---- basic allocation ---------------------------------------------------- */

/* Allocate size bytes of uninitialised memory. */
HH_API void* hh_malloc(size_t size) HH_MALLOC_ATTR HH_ALLOC_SIZE(1);
/* Allocate size bytes of zeroed memory. */
HH_API void* hh_zalloc(size_t size) HH_MALLOC_ATTR HH_ALLOC_SIZE(1);
/* Allocate count*size zeroed bytes; NULL + ENOMEM if the product overflows. */
HH_API void* hh_calloc(size_t count, size_t size) HH_MALLOC_ATTR HH_ALLOC_SIZE2(1, 2);
/* Resize p to newsize bytes, keeping the first min(old, new) bytes.
 * hh_realloc(NULL, n) is hh_malloc(n). hh_realloc(p, 0) frees p and returns
 * NULL (glibc behaviour). On failure p is untouched, NULL + ENOMEM. */
HH_API void* hh_realloc(void* p, size_t newsize) HH_ALLOC_SIZE(2);
/* hh_realloc(p, count*size) with overflow check (NULL + ENOMEM, p untouched). */
HH_API void* hh_reallocarray(void* p, size_t count, size_t size) HH_ALLOC_SIZE2(2, 3);
/* Like hh_realloc, but frees p when the reallocation fails (BSD reallocf). */
HH_API void* hh_reallocf(void* p, size_t newsize) HH_ALLOC_SIZE(2);
/* Free memory from any hardheap allocation function. NULL is a no-op. */
HH_API void hh_free(void* p);

/* C23 sized deallocation: free p, which was allocated with size bytes
 * (and alignment, for the aligned variant). The secure build checks the size
 * against the block and reports a mismatch. */
HH_API void hh_free_sized(void* p, size_t size);
HH_API void hh_free_aligned_sized(void* p, size_t alignment, size_t size);

/* Copy a string into a new allocation (NULL + ENOMEM on failure). */
HH_API char* hh_strdup(const char* s) HH_MALLOC_ATTR;
/* Copy at most n bytes of s, always NUL-terminated. */
HH_API char* hh_strndup(const char* s, size_t n) HH_MALLOC_ATTR;

/* ---- aligned allocation --------------------------------------------------- */

/* size bytes aligned to alignment (a power of two, any size; NULL + EINVAL
 * otherwise). Can be freed with hh_free. */
HH_API void* hh_malloc_aligned(size_t size, size_t alignment) HH_MALLOC_ATTR HH_ALLOC_SIZE(1) HH_ALLOC_ALIGN(2);
HH_API void* hh_zalloc_aligned(size_t size, size_t alignment) HH_MALLOC_ATTR HH_ALLOC_SIZE(1) HH_ALLOC_ALIGN(2);
HH_API void* hh_calloc_aligned(size_t count, size_t size, size_t alignment) HH_MALLOC_ATTR HH_ALLOC_SIZE2(1, 2) HH_ALLOC_ALIGN(3);
/* Resize keeping the alignment; the same rules as hh_realloc. */
HH_API void* hh_realloc_aligned(void* p, size_t newsize, size_t alignment) HH_ALLOC_SIZE(2) HH_ALLOC_ALIGN(3);

/* POSIX: alignment must be a power of two and a multiple of sizeof(void*),
 * else EINVAL; ENOMEM when out of memory. Returns 0 on success. errno is
 * never changed. */
HH_API int hh_posix_memalign(void** out, size_t alignment, size_t size);
/* C11: alignment must be a power of two (NULL + EINVAL otherwise); any size
 * is accepted, as C17 DR 460 allows. */
HH_API void* hh_aligned_alloc(size_t alignment, size_t size) HH_MALLOC_ATTR HH_ALLOC_SIZE(2) HH_ALLOC_ALIGN(1);
/* Legacy: like hh_aligned_alloc. */
HH_API void* hh_memalign(size_t alignment, size_t size) HH_MALLOC_ATTR HH_ALLOC_SIZE(2) HH_ALLOC_ALIGN(1);
/* Page-aligned allocation of size bytes. */
HH_API void* hh_valloc(size_t size) HH_MALLOC_ATTR HH_ALLOC_SIZE(1);
/* Page-aligned allocation of size rounded up to whole pages (0 -> one page). */
HH_API void* hh_pvalloc(size_t size) HH_MALLOC_ATTR;

/* ---- sizes ---------------------------------------------------------------- */

/* Bytes usable at p (>= the size requested; exactly the size requested
 * from secure level 2 on, where the rest of the block is its canary). 0 for
 * NULL. */
HH_API size_t hh_usable_size(const void* p);
/* The most an allocation of size bytes could ask for and still get the same
 * block, so callers can grow buffers to it without waste (malloc of the
 * result has that usable size). Returns size itself when size is too large
 * to be allocated. */
HH_API size_t hh_good_size(size_t size);

/* ---- first-class heaps ------------------------------------------------------
 * Every thread has a default heap that hh_malloc uses. More heaps can be
 * created to group allocations: freed all at once (hh_heap_destroy) or handed
 * back to the thread's backing heap (hh_heap_delete). A heap belongs to the
 * thread that created it: only that thread may allocate from it (others get
 * NULL + EINVAL and a report; the secure build aborts instead), but its
 * blocks can be freed with hh_free from any thread. When a thread exits, its
 * heaps are deleted. */
typedef struct hh_heap_s hh_heap_t;

/* A new empty heap owned by the calling thread (NULL + ENOMEM on failure). */
HH_API hh_heap_t* hh_heap_new(void);
/* Delete heap; its live blocks stay valid and now belong to the thread's
 * backing heap. NULL and the backing heap itself are ignored. */
HH_API void hh_heap_delete(hh_heap_t* heap);
/* Free every block of heap at once and delete it. Blocks of heap must not be
 * used, or freed by other threads, afterwards (undefined). */
HH_API void hh_heap_destroy(hh_heap_t* heap);
/* Make heap the calling thread's default (what hh_malloc and malloc use);
 * returns the previous default. NULL returns NULL; another thread's heap is
 * reported and returns NULL (the secure build aborts). */
HH_API hh_heap_t* hh_heap_set_default(hh_heap_t* heap);
/* The calling thread's default heap. */
HH_API hh_heap_t* hh_heap_get_default(void);
/* The calling thread's backing heap (its initial default). */
HH_API hh_heap_t* hh_heap_get_backing(void);

HH_API void* hh_heap_malloc(hh_heap_t* heap, size_t size) HH_MALLOC_ATTR HH_ALLOC_SIZE(2);
HH_API void* hh_heap_zalloc(hh_heap_t* heap, size_t size) HH_MALLOC_ATTR HH_ALLOC_SIZE(2);
HH_API void* hh_heap_calloc(hh_heap_t* heap, size_t count, size_t size) HH_MALLOC_ATTR HH_ALLOC_SIZE2(2, 3);
/* Resize p; a moved block is allocated from heap. */
HH_API void* hh_heap_realloc(hh_heap_t* heap, void* p, size_t newsize) HH_ALLOC_SIZE(3);
HH_API void* hh_heap_malloc_aligned(hh_heap_t* heap, size_t size, size_t alignment) HH_MALLOC_ATTR HH_ALLOC_SIZE(2)
    HH_ALLOC_ALIGN(3);
HH_API char* hh_heap_strdup(hh_heap_t* heap, const char* s) HH_MALLOC_ATTR;

/* Does p point into memory that heap manages (O(1), any thread)? */
HH_API bool hh_heap_contains(const hh_heap_t* heap, const void* p);
/* Does p point into a block of heap that is currently allocated? Walks the
 * page's free lists: call it from the heap's thread. */
HH_API bool hh_heap_check_owned(hh_heap_t* heap, const void* p);

/* One area of a heap: a page holding blocks of one size. */
typedef struct hh_heap_area_s {
  void* blocks;         /* start of the area's first block */
  size_t reserved;      /* bytes the area can hold */
  size_t committed;     /* bytes of blocks handed out so far (capacity * block_size) */
  size_t used;          /* blocks currently allocated */
  size_t block_size;    /* bytes per block */
} hh_heap_area_t;

/* Visitor: called once per area with block == NULL, then (if asked) once per
 * allocated block. Return false to stop the visit. Must not allocate from or
 * free into the visited heap. */
typedef bool(hh_block_visit_fun)(const hh_heap_t* heap, const hh_heap_area_t* area, void* block, size_t block_size,
                                 void* arg);
/* Visit heap's areas and, with visit_all_blocks, its allocated blocks (from
 * the heap's thread). Returns false if the visitor stopped early. */
HH_API bool hh_heap_visit_blocks(hh_heap_t* heap, bool visit_all_blocks, hh_block_visit_fun* visitor, void* arg);

/* hh_collect for one heap of the calling thread. */
HH_API void hh_heap_collect(hh_heap_t* heap, bool force);

/* A function the allocator calls now and then from its slow path (the
 * "heartbeat"), for programs that free memory lazily, e.g. reference-count
 * release queues. heartbeat counts slow-path calls; force is true when
 * called from hh_collect(true). It may allocate and free (it is not
 * re-entered). It is also called, with force, when a thread exits.
 * Registering NULL removes it. */
typedef void(hh_deferred_free_fun)(bool force, unsigned long long heartbeat, void* arg);
HH_API void hh_register_deferred_free(hh_deferred_free_fun* fn, void* arg);

/* ---- maintenance and statistics ------------------------------------------- */

/* Return unused memory: free empty pages of the calling thread's heap and,
 * with force, purge and release cached segments at once. */
HH_API void hh_collect(bool force);

/* Process-wide statistics. Bytes in use are counted from every page of
 * every thread (live threads' heaps, abandoned segments, large and huge
 * blocks, guarded samples), so they are exact in a quiescent program;
 * while other threads run they are a snapshot that may lag by the frees
 * those threads have not collected yet. Sizes are block sizes (what
 * malloc_usable_size would say in the default build), not the requested
 * sizes. Totals of allocations are kept per heap and added to the process
 * totals on each heap's slow path, so another live thread's last few
 * thousand allocations may be missing from them. Peaks of bytes in use are
 * sampled (at every stats call and as the heap grows by segments), not
 * tracked on every allocation: a short spike between samples is missed. */
typedef struct hh_stats_s {
  size_t segments;           /* segments currently mapped (incl. huge and cached) */
  size_t segments_peak;      /* highest value of segments */
  size_t segments_cached;    /* empty segments kept for reuse */
  size_t pages;              /* pages currently in use by a heap */
  size_t pages_peak;         /* highest value of pages */
  size_t huge_count;         /* huge blocks live now: the blocks of huge_in_use */
  size_t reserved;           /* bytes of address space mapped from the OS */
  size_t reserved_peak;      /* highest value of reserved */
  size_t committed;          /* bytes mapped and not purged (upper bound of RSS) */
  size_t committed_peak;     /* highest value of committed */
  size_t purged;             /* total bytes returned to the OS with madvise */
  size_t mmap_calls;         /* total mmap calls */
  size_t munmap_calls;       /* total munmap calls */
  size_t guarded_sampled;    /* allocations placed in a guarded slot, in total */
  size_t guarded_skipped;    /* samples not taken because the slots were all in use */
  size_t guarded_live;       /* guarded blocks live now */
  size_t guarded_quarantined; /* freed guarded blocks still kept inaccessible */
  /* use by the program, all threads */
  size_t in_use;             /* bytes of blocks allocated and not freed, all threads */
  size_t in_use_peak;        /* highest value of in_use seen (sampled) */
  size_t blocks_in_use;      /* blocks allocated and not freed */
  size_t blocks_in_use_peak; /* highest value of blocks_in_use seen (sampled) */
  size_t huge_in_use;        /* the part of in_use in huge blocks (own mapping: above 2 MiB, or over-aligned) */
  size_t allocated_total;    /* bytes of all blocks ever allocated */
  size_t freed_total;        /* bytes of all blocks ever freed (allocated_total - in_use) */
  size_t allocations;        /* blocks ever allocated */
  size_t frees;              /* blocks ever freed */
  size_t rss;                /* resident set size of the process now (bytes; 0 if the OS does not say) */
  size_t rss_peak;           /* highest resident set size of the process (bytes; 0 if unknown) */
  size_t elapsed_ms;         /* milliseconds since hardheap initialised */
} hh_stats_t;

/* Fill *out with the current process-wide statistics (walks every
 * segment: microseconds per GiB of heap; allocation-free). */
HH_API void hh_stats_get(hh_stats_t* out);

/* One size class, across all threads. */
typedef struct hh_bin_stats_s {
  size_t block_size;         /* bytes per block in this class (0 = unused class) */
  size_t pages;              /* pages of this class in use by any heap */
  size_t blocks_used;        /* blocks allocated and not freed */
  size_t blocks_capacity;    /* blocks the pages can hold now (lazily extended) */
  size_t bytes_used;         /* bytes of those blocks (a large block counts its own size) */
} hh_bin_stats_t;

/* Number of size classes; valid bins are 0 .. hh_bin_count()-1. */
HH_API size_t hh_bin_count(void);
/* Fill *out with the process-wide numbers of bin (huge blocks are in
 * hh_stats_t.huge_in_use, not in a bin); false if bin is out of range. */
HH_API bool hh_bin_stats_get(size_t bin, hh_bin_stats_t* out);

/* Print statistics (the process counters and every size class in use) to
 * stderr, or to fd. The header names the PID and the program. Allocation-free,
 * safe to call at any time. */
HH_API void hh_stats_print(void);
HH_API void hh_stats_print_fd(int fd);

/* ---- heap misuse ---------------------------------------------------------------
 * Every misuse the allocator can detect has one kind, one fixed message and
 * a set of facts. By default a misuse is printed as one line
 * "hardheap: error: <message>" (SHOW_ERRORS) and then, in the secure build
 * (ABORT_ON_MISUSE), the process aborts; the default build goes on after
 * the documented safe action (the free is ignored, realloc returns NULL
 * with EINVAL, usable_size returns 0, a corrupted list is cut). A program,
 * test or fuzzer can install a handler that sees every report first. */
typedef enum hh_misuse_e {
  HH_MISUSE_FOREIGN_POINTER,     /* "invalid <op> of <p>: not a pointer allocated by hardheap" */
  HH_MISUSE_SEGMENT_CORRUPTED,   /* "invalid <op> of <p>: segment header at <s> is corrupted" */
  HH_MISUSE_FREE_PAGE,           /* "invalid <op> of <p>: not an allocated block (its page is free)" */
  HH_MISUSE_NOT_A_BLOCK,         /* "invalid <op> of <p>: not an allocated block (size class <n>)" */
  HH_MISUSE_INTERIOR_POINTER,    /* "invalid <op> of <p>: pointer into the middle of a block (size class <n>)" */
  HH_MISUSE_DOUBLE_FREE,         /* "double free of <p> (size class <n>)" */
  HH_MISUSE_REALLOC_FREED,       /* "realloc of a freed block <p> (size class <n>)" */
  HH_MISUSE_USABLE_SIZE_FREED,   /* "usable_size of a freed block <p> (size class <n>)" */
  HH_MISUSE_FREE_LIST_CORRUPTED, /* "corrupted free list in the page at <page> (size class <n>): block <b>
                                    links to <v> (heap overflow or write after free?)" */
  HH_MISUSE_FREE_LIST_NOT_FREE,  /* "corrupted free list in the page at <page> (size class <n>): <v> is not
                                    a free block (heap overflow or write after free?)" */
  HH_MISUSE_REMOTE_LIST_CORRUPTED, /* "corrupted remote-free list of the page at <page> (size class <n>):
                                    block <b> links to <v> (heap overflow or write after free?)" */
  HH_MISUSE_DELAYED_LIST_CORRUPTED, /* "corrupted delayed-free list of heap <h>: block <b> links to <v> (heap
                                    overflow or write after free?)" */
  HH_MISUSE_SIZED_FREE_MISMATCH, /* "sized free of <p> with size <n> larger than its block (<m> bytes)" */
  HH_MISUSE_ALIGNED_FREE_MISALIGNED, /* "aligned sized free of <p>, which is not aligned to <a>" */
  HH_MISUSE_HEAP_NOT_OWNED,      /* "<op> of heap <h> by a thread that does not own it" */
  HH_MISUSE_BACKING_HEAP_DESTROY, /* "the backing heap <h> of a thread cannot be destroyed" */
  HH_MISUSE_HEAP_INVARIANT,      /* "heap invariant broken in the page at <page> (size class <n>): <detail>" */
  HH_MISUSE_HEAP_OVERFLOW,       /* "heap buffer overflow past the <r>-byte block at <p> (size class <n>): byte
                                    <k> from its start was overwritten" */
  HH_MISUSE_HEAP_OVERFLOW_SIZE,  /* "heap buffer overflow past the block at <p> (size class <n>): its recorded
                                    size at byte <k> from its start was overwritten" */
  HH_MISUSE_WRITE_AFTER_FREE,    /* "write after free to the block at <p> (size class <n>): byte <k> was
                                    written after it was freed" */
  HH_MISUSE_HEAP_UNDERFLOW,      /* "heap buffer underflow before the <r>-byte block at <p>: byte <k> before its
                                    start was overwritten" (the slack of a guarded sample, seen on free) */
  /* Faults on the guard pages of a sampled guarded block (GUARDED_SAMPLE_RATE); <op> is read, write or
     access. The report goes on with where the block was allocated (and freed), and the process dies of
     the fault whatever the handler returns. */
  HH_MISUSE_GUARDED_OVERFLOW,    /* "heap buffer overflow: <op> of <p>, <k> bytes after the <r>-byte block at
                                    <b> (guarded sample)" */
  HH_MISUSE_GUARDED_UNDERFLOW,   /* "heap buffer underflow: <op> of <p>, <k> bytes before the <r>-byte block
                                    at <b> (guarded sample)" */
  HH_MISUSE_GUARDED_USE_AFTER_FREE, /* "use after free: <op> of <p>, byte <k> of the freed <r>-byte block at
                                    <b> (guarded sample)" */
  HH_MISUSE_GUARDED_WILD,        /* "invalid <op> of <p>: in hardheap's guarded area, near no block" */
  HH_MISUSE_COUNT_               /* number of kinds */
} hh_misuse_t;

/* The facts of one report. Fields that do not apply are 0 / NULL. Valid
 * only during the handler call. */
typedef struct hh_misuse_info_s {
  hh_misuse_t kind;          /* what was detected */
  const char* name;          /* stable short name of the kind, e.g. "double-free" */
  const char* operation;     /* the call that detected it: "free", "realloc", "usable_size", ... */
  const char* message;       /* the report line, without the "hardheap: error: " prefix */
  const char* detail;        /* heap invariants: which one broke */
  const void* pointer;       /* the pointer the program passed */
  const void* block;         /* start of the block concerned */
  const void* page;          /* start of the blocks of the page concerned */
  const void* segment;       /* the segment concerned */
  const void* heap;          /* the first-class heap concerned */
  size_t size_class;         /* block size of the page */
  size_t usable_size;        /* bytes usable at pointer */
  size_t size;               /* a size the program passed (sized free) */
  size_t alignment;          /* an alignment the program passed */
  size_t requested_size;     /* the size the program asked for (heap buffer overflows) */
  size_t offset;             /* offset from pointer of the first damaged byte; guarded faults: bytes from
                                the block's edge (after free: from its start) */
  uintptr_t value;           /* a corrupted value read from the heap (a free-list link) */
  unsigned long thread_id;   /* kernel id of the thread that detected it */
} hh_misuse_info_t;

/* Return true when the misuse was handled: the allocator then takes its
 * safe action and prints nothing; false lets the default policy apply. The
 * handler must not allocate from hardheap. */
typedef bool(hh_misuse_handler_fun)(const hh_misuse_info_t* info, void* arg);
/* Install handler (NULL removes it); returns the previous one. */
HH_API hh_misuse_handler_fun* hh_set_misuse_handler(hh_misuse_handler_fun* handler, void* arg);
/* Stable short name of a kind ("double-free", ...); NULL when out of range. */
HH_API const char* hh_misuse_name(hh_misuse_t kind);

/* Check the invariants of heap (NULL: the calling thread's default heap)
 * and of the pages and segments it holds: list links, counts, bitmaps, the
 * free lists of every page. From the heap's own thread. Returns true when
 * they hold; otherwise reports HH_MISUSE_HEAP_INVARIANT (or the corruption
 * it found) and returns false. Costs a walk of every free list. */
HH_API bool hh_heap_validate(hh_heap_t* heap);

/* ---- options -------------------------------------------------------------- */

/* Options are read once from the environment at start-up, from HARDHEAP_NAME
 * or the alias MIMALLOC_NAME (HARDHEAP_ wins). Values are integers; booleans
 * accept 1/0, on/off, yes/no, true/false. A bad value is reported on stderr
 * and the default is kept. */
typedef enum hh_option_e {
  hh_option_verbose,              /* VERBOSE: print informational messages (0) */
  hh_option_show_stats,           /* SHOW_STATS: print statistics at exit (0) */
  hh_option_show_errors,          /* SHOW_ERRORS: print heap-misuse errors and warnings (1; cannot be
                                     turned off in the secure build) */
  hh_option_max_errors,           /* MAX_ERRORS: errors printed before the rest are suppressed (16;
                                     -1 = all); the secure build aborts at the first */
  hh_option_purge_delay,          /* PURGE_DELAY: ms before an empty page is returned to the OS;
                                     0 = at once, -1 = never (10) */
  hh_option_allow_large_os_pages, /* ALLOW_LARGE_OS_PAGES: advise transparent huge pages for segments (0) */
  hh_option_segment_cache,        /* SEGMENT_CACHE: empty segments each thread keeps for reuse (4) */
  hh_option_guarded_sample_rate,  /* GUARDED_SAMPLE_RATE: place about one in N allocations in a slot of its
                                     own between PROT_NONE pages (0 = never, 1 = every eligible one;
                                     5000 in the secure build, 0 in the default build) */
  hh_option_guarded_sample_seed,  /* GUARDED_SAMPLE_SEED: seed of the sampling; the same seed and input
                                     sample the same allocations; 0 = random (0) */
  hh_option_abort_on_misuse,      /* ABORT_ON_MISUSE: abort after reporting a heap misuse (1 in the secure
                                     build, 0 in the default build) */
  hh_option_guarded_min,          /* GUARDED_MIN: smallest request sampled, bytes (0) */
  hh_option_guarded_max,          /* GUARDED_MAX: largest request sampled, bytes (1 MiB) */
  hh_option_guarded_precise,      /* GUARDED_PRECISE: a sampled block ends exactly at its guard page instead
                                     of at 16-byte alignment (0) */
  hh_option_guarded_underflow,    /* GUARDED_UNDERFLOW: percent of samples placed right after a guard page,
                                     so that an underflow faults (25) */
  hh_option_guarded_slots,        /* GUARDED_SLOTS: most guarded blocks live at once; further samples are
                                     skipped and counted (1024) */
  hh_option_guarded_quarantine,   /* GUARDED_QUARANTINE: freed guarded blocks kept inaccessible before
                                     their slot is used again (256) */
  hh_option_background_purge,     /* BACKGROUND_PURGE: a background thread returns the memory of idle
                                     threads within the purge delay (1); started on a slow path once
                                     the process holds 2 segments, never before its constructors ran */
  hh_option_count_                /* number of options */
} hh_option_t;

/* Current value of an option (0 for an unknown option). */
HH_API long hh_option_get(hh_option_t option);
/* Change an option at run time. Returns false for an unknown option or an
 * out-of-range value. */
HH_API bool hh_option_set(hh_option_t option, long value);

/* Library version as HH_VERSION computes it. */
HH_API int hh_version(void);
/* True when this is the secure build (libhardheap-secure). */
HH_API bool hh_is_secure(void);
/* The build's secure level: 0 for libhardheap; 1 (integrity: guarded
 * metadata, unforgeable free lists, double frees caught), 2 (also canaries
 * after every block, zero on free, a quarantine before reuse), 3 (also
 * guard pages between pages) for libhardheap-secure. From level 2 on,
 * hh_usable_size is exactly what was asked for (the rest is the canary). */
HH_API int hh_secure_level(void);

#ifdef __cplusplus
}
#endif

#endif /* HARDHEAP_H */
