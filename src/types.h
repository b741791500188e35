/* hardheap: every type shared between the source files, with the layout
 * constants they depend on. Read docs/design.md for the picture; this file is
 * the reference for each field.
 *
 * Memory is taken from the OS in segments: SEGMENT_SIZE-aligned regions whose
 * first bytes hold the segment header (hh_segment_t) followed by its page
 * descriptors (hh_page_t). The rest of the segment is cut into pages of equal
 * size; every page holds blocks of a single size class. From any block pointer
 * p the segment is (p - 1) & ~SEGMENT_MASK and the page index is a shift, so
 * no header is stored in front of blocks.
 */
#ifndef HH_TYPES_H
#define HH_TYPES_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

/* ---- randomness --------------------------------------------------------------
 * A ChaCha20 stream (random.c): keyed per heap from the kernel. */
typedef struct hh_chacha_s {
  uint32_t input[16];               /* constants, key, 64-bit block counter, nonce (the stream) */
  uint32_t output[16];              /* the current block of the stream */
  uint32_t used;                    /* words of output already drawn */
} hh_chacha_t;

typedef struct hh_page_s hh_page_t;
typedef struct hh_segment_s hh_segment_t;
typedef struct hh_heap_s hh_heap_t;
typedef struct hh_tld_s hh_tld_t;

/* ---- blocks -----------------------------------------------------------------
 * A free block holds one word: the link to the next free block, encoded in
 * the secure build (internal.h:hh_block_next). An allocated block has no
 * header at all. */
typedef uintptr_t hh_encoded_t;
typedef struct hh_block_s {
  hh_encoded_t next; /* encoded link to the next free block, or encoded NULL */
} hh_block_t;

/* ---- thread_free word ------------------------------------------------------
 * page->thread_free holds the head of the remote-free list in its high bits
 * and a delayed-free state in its low two bits (blocks are 16-aligned). The
 * state tells a remote thread where its free goes:
 *   USE_DELAYED  the page sits in the owner's full queue: push the block onto
 *                the owning heap's thread_delayed_free list instead, so the
 *                owner learns the page has room again (then NO_DELAYED)
 *   FREEING      transient, while a remote thread reads page->heap
 *   NO_DELAYED   normal: push onto the page's own thread_free list
 *   NEVER        like NO_DELAYED, and not switched by page_to_full: single-block
 *                pages, and every page while its heap is deleted or abandoned */
typedef enum hh_delayed_e {
  HH_USE_DELAYED_FREE = 0,
  HH_DELAYED_FREEING = 1,
  HH_NO_DELAYED_FREE = 2,
  HH_NEVER_DELAYED_FREE = 3
} hh_delayed_t;

/* ---- pages ------------------------------------------------------------------
 * Invariant (for a page in use, with thread_free drained):
 *   used + |free| + |local_free| == capacity <= reserved
 * Remote frees on thread_free are still counted in used until the owner
 * collects them (page.c:page_collect_thread_free). */
struct hh_page_s {
  /* hot fields first: block.h:hhi_page_pop and hhi_block_free_local touch only these */
  hh_block_t* free;                 /* blocks ready to allocate (popped by malloc) */
  uint32_t used;                    /* blocks handed out and not yet freed (incl. thread_free) */
  _Atomic(uint8_t) flags;           /* HH_PAGE_IN_FULL | HH_PAGE_HAS_ALIGNED: one test in free; written by
                                       the owner only, read by remote frees (relaxed) */
  uint8_t free_is_zero;             /* every block on `free` is zero except its link word */
  uint8_t segment_in_use;           /* page is handed out to a heap (segment.c) */
  uint8_t is_zero_init;             /* page memory was fresh from the OS or purged (segment.c) */
  uint8_t is_purged;                /* free page slot whose memory was returned to the OS */
  uint8_t span_slices;              /* large spans: 64 KiB slices the span covers (span.c) */
  _Atomic(uint8_t) single_live;     /* large and huge: 1 while the block is allocated; the free that
                                       takes it to 0 releases it, a second one is a double free */
  uint8_t is_protected;             /* free slot purged and made PROT_NONE (HH_PROTECT_PURGED) */
  uint32_t block_recip;             /* ceil(2^35 / block_size): block index = offset * recip >> 35,
                                       exact for every offset of a page (block.h:hhi_block_index) */
  hh_block_t* local_free;           /* blocks freed by the owning thread, moved to free in bulk */
  size_t block_size;                /* size of every block in this page (bytes) */
  uint8_t* page_start;              /* first block; page 0 starts after the segment header */
  uint32_t capacity;                /* blocks threaded into the lists so far (lazy extension) */
  uint32_t reserved;                /* blocks that fit in the page */
  _Atomic(uintptr_t) thread_free;   /* remote-free list head | hh_delayed_t in low 2 bits */
  _Atomic(hh_heap_t*) heap;         /* owning heap; read by remote threads for delayed free */
  uintptr_t keys[2];                /* per-page keys of the link encoding (block.h:hhi_link_mask);
                                       keys[1] is odd */
  hh_page_t* next;                  /* next page in its heap queue */
  hh_page_t* prev;                  /* previous page in its heap queue */
  uint16_t segment_idx;             /* index of this page in segment->pages; a large span's: of its first
                                       slice (its descriptor is the slice's its block starts in, span.c) */
  uint8_t bin;                      /* size class (HH_BIN_HUGE for single-block pages); kept while the
                                       slot is free: the slot's last class */
  uint8_t is_retired;               /* != 0 iff the page is in heap->retired */
  uint32_t linked_blocks;           /* blocks of class `bin` from the slot's start that may still hold
                                       a link: the high-water capacity of its pages of that class, kept
                                       while the slot is free; 0 once its memory is purged */
  uint64_t purge_expire;            /* ms timestamp when this free page slot is purged, 0 = none */
  uint64_t retire_at;               /* retired pages: tld heartbeat at which the page is freed */
};
_Static_assert(sizeof(struct hh_page_s) == 128, "hh_page_t must stay 128 bytes (block.h:hhi_lookup_page)");

/* ---- block bitmaps (HH_BLOCK_BITMAPS) ---------------------------------------------
 * Out of the blocks' reach, in the segment's metadata after the page
 * descriptors: two bitmaps per page slot, bit i for block i of the page.
 *   live    owner-written: set when a block is taken from a free list,
 *           cleared when the owner takes it back (its own free, or the
 *           collection of a remote free)
 *   remote  set (atomic OR) by the thread that frees the block remotely,
 *           cleared (atomic AND) by the owner when it collects it
 * Invariant (page in use): block i is handed out  <=>  live && !remote;
 *   on free or local_free  <=>  !live;  on thread_free or a heap's delayed
 *   list  <=>  live && remote.
 * So a free of a block that is not handed out, a pop of a block that is,
 * and a remote list holding a block nobody freed are each one bit test. */
typedef struct hh_page_maps_s {
  _Atomic(uint64_t) live[HH_PAGE_BLOCKS_MAX / 64];    /* only the owner writes (relaxed stores) */
  _Atomic(uint64_t) remote[HH_PAGE_BLOCKS_MAX / 64];  /* any thread sets, the owner clears */
} hh_page_maps_t;

/* page->flags bits (kept in one byte so hh_free tests both at once) */
#define HH_PAGE_IN_FULL 0x01      /* page is in the heap's full queue */
#define HH_PAGE_HAS_ALIGNED 0x02  /* some block was handed out at an interior aligned address */

/* ---- segments ----------------------------------------------------------------*/
typedef enum hh_segment_kind_e {
  HH_SEGMENT_SMALL,   /* 64 small pages */
  HH_SEGMENT_MEDIUM,  /* 8 medium pages */
  HH_SEGMENT_LARGE,   /* spans: blocks of 64 KiB .. 2 MiB asked, each a run of 64 KiB slices
                         (slice 0 holds the header); shared by all threads, under one lock */
  HH_SEGMENT_HUGE,    /* one page, one block, any size; segment_size fits the block */
  HH_SEGMENT_GUARDED  /* sampled guarded blocks, each in a slot between PROT_NONE pages (guarded.c);
                         owned by no thread, never in a queue or cache */
} hh_segment_kind_t;

/* Invariant: used == number of pages with segment_in_use; a segment with
 * used < page_count (small/medium) is in its tld's free queue for its kind. */
struct hh_segment_s {
  uintptr_t cookie;                 /* segment address ^ process cookie: validates the header */
  size_t segment_size;              /* bytes of the mapping this segment uses (>= SEGMENT_SIZE) */
  size_t mapping_size;              /* bytes mapped: segment_size, or more for a huge segment that
                                       reuses a bigger freed one's mapping (segment.c: huge cache) */
  size_t info_size;                 /* bytes of header + page array (+ guard), page 0 starts after */
  size_t block_offset;              /* huge aligned segments: offset of the block, else 0 */
  hh_segment_t* next;               /* next segment in the tld free queue or cache */
  hh_segment_t* prev;               /* previous segment in the tld free queue */
  _Atomic(uintptr_t) thread_id;     /* owning thread (hh_thread_id); 0 when abandoned, and for live
                                       large/huge segments, which whoever frees the block claims */
  hh_tld_t* tld;                    /* owning thread's data (for queue membership) */
  hh_segment_kind_t kind;           /* page layout */
  uint32_t page_shift;              /* log2 of the page size; 63 for large/huge (one page) */
  uint32_t page_count;              /* pages in this segment */
  uint32_t guard_interval;          /* HH_GUARD_PAGES: every slot i with i % guard_interval ==
                                       guard_interval - 1 ends in a PROT_NONE page; 0 = none */
  uint32_t used;                    /* pages in use */
  uint64_t free_slots;              /* small/medium: bit i set = pages[i] is free (not segment_in_use) */
  uint32_t purge_pending;           /* free pages with a purge_expire set */
  uint64_t purge_busy_until;        /* ms: a page was freed here less than PURGE_DELAY before,
                                       free pages keep their memory until then (segment.c) */
  uint64_t purge_next;              /* ms: no scheduled page purge is due before this (a lower
                                       bound, so a collect skips the segment without a scan) */
  bool in_free_queue;               /* linked in tld->small_free / medium_free */
  bool blocks_protected;            /* HH_PROTECT_PURGED: purged whole and made PROT_NONE (cached) */
  uint64_t cached_ms;               /* when it entered the global or huge cache (segment.c), for purging;
                                       global cache: 0 once purged or if it never will be */
  size_t quarantine_resident;       /* huge, in the quarantine: bytes of its freed block kept resident
                                       (zeroed, PROT_NONE), 0 once purged */
  bool quarantine_marked;           /* huge, in the quarantine: its block is guard-marked
                                       (hhi_os_protect), not only mprotected */
  uint64_t span_reserved;           /* large: bit i set = slice i is metadata or guard, never a span */
  uint64_t span_used;               /* large: bit i set = slice i belongs to a span, or is reserved */
  uint64_t span_resident;           /* large: bit i set = slice i's memory may be resident (not purged) */
  uint64_t span_zero;               /* large: bit i set = slice i is known to read as zero */
  uint64_t span_purge_at;           /* large: ms time to purge the free resident slices, 0 = none */
  hh_segment_t* all_next;           /* the list of every small, medium, large and huge segment
                                       (segment_map.c), under its lock: statistics walk it */
  hh_segment_t* all_prev;           /* previous in that list */
  hh_page_t pages[];                /* page descriptors, page_count of them */
};

/* Where a segment's metadata lies: header, page descriptors, then (with
 * HH_BLOCK_BITMAPS) the block bitmaps of its page slots, then (with
 * HH_GUARD_METADATA) a guard page; blocks start at info_size. */
#define HH_SEGMENT_DESCRIPTORS_SIZE (sizeof(hh_segment_t) + HH_SMALL_PAGES_PER_SEGMENT * sizeof(hh_page_t))
#define HH_SEGMENT_MAPS_OFFSET ((HH_SEGMENT_DESCRIPTORS_SIZE + 4095) & ~(size_t)4095)
#define HH_SEGMENT_MAPS_SIZE (HH_BLOCK_BITMAPS ? HH_SMALL_PAGES_PER_SEGMENT * sizeof(hh_page_maps_t) : 0)
_Static_assert(HH_MEDIUM_PAGES_PER_SEGMENT <= HH_SMALL_PAGES_PER_SEGMENT, "every slot kind has its bitmaps");

/* ---- guarded slots (guarded.c) ------------------------------------------------
 * A guarded segment holds the slots of one size class (slot_pages OS pages
 * of data each): [header | guard | data 0 | guard | data 1 | guard | ... |
 * data n-1 | guard]. The header is read-only once set up; the slot records
 * (what changes) live in a mapping of their own elsewhere, between guard
 * pages, so no access near a block reaches them. A slot's data pages are
 * PROT_NONE except the ones under its live block, so the block's far side
 * is inaccessible too when the block is smaller than the slot. */
typedef enum hh_guarded_state_e {
  HH_GUARDED_FREE,        /* never used, or out of the quarantine: reusable */
  HH_GUARDED_LIVE,        /* holds a block the program has */
  HH_GUARDED_FREEING,     /* a free won the race for it and is checking its slack */
  HH_GUARDED_QUARANTINED  /* freed, inaccessible, waiting before reuse */
} hh_guarded_state_t;

struct hh_guarded_segment_s;
typedef struct hh_guarded_slot_s {
  _Atomic(uint8_t) state;                 /* hh_guarded_state_t; read without the lock by the fault handler */
  bool used_before;                       /* it held a block once: the history below is about that block */
  uint8_t alloc_depth, free_depth;        /* frames in alloc_stack, free_stack */
  uint32_t index;                         /* its index in the segment */
  struct hh_guarded_segment_s* owner;     /* the segment whose data it is */
  struct hh_guarded_slot_s* next_free;    /* next slot on its class's free list */
  hh_heap_t* heap;                        /* heap that allocated it (hh_heap_contains) */
  uint8_t* block;                         /* where the block starts */
  size_t requested;                       /* bytes the program asked for */
  size_t open_offset, open_size;          /* accessible pages of the data while live: offset, bytes */
  unsigned long alloc_thread, free_thread; /* kernel thread ids */
  void* alloc_stack[HH_GUARDED_STACK_DEPTH]; /* return addresses where it was allocated */
  void* free_stack[HH_GUARDED_STACK_DEPTH];  /* ... and freed */
} hh_guarded_slot_t;

/* Follows the segment header (kind HH_SEGMENT_GUARDED, one page descriptor
 * never in use, so that page lookups fail) at HH_GUARDED_INFO_OFFSET. */
typedef struct hh_guarded_segment_s {
  hh_segment_t* segment;                  /* the segment header this follows */
  struct hh_guarded_segment_s* next;      /* next guarded segment (guarded.c's list) */
  uint32_t size_class;                    /* index of the class: slot_pages = 1 << size_class */
  uint32_t slot_count;                    /* slots in this segment */
  size_t slot_pages;                      /* OS pages of data per slot */
  size_t stride;                          /* bytes from one slot's data to the next: (slot_pages + 1) pages */
  uint8_t* first_data;                    /* data of slot 0; slot i at first_data + i * stride */
  struct hh_guarded_table_s* table;       /* the slot records, in their own mapping */
} hh_guarded_segment_t;

/* The mutable part of a guarded segment, mapped apart from it. */
typedef struct hh_guarded_table_s {
  _Atomic(uint32_t) slots_used;           /* slots handed out at least once (the rest are untouched) */
  hh_guarded_slot_t slots[];              /* slot_count of them */
} hh_guarded_table_t;
/* What a fault on a guarded segment's address was (guarded.c:hhi_guarded_describe). */
typedef struct hh_guarded_fault_s {
  int kind;                               /* hh_misuse_t: GUARDED_OVERFLOW, _UNDERFLOW, _USE_AFTER_FREE, _WILD */
  const hh_guarded_slot_t* slot;          /* the block concerned, or NULL (wild, never used) */
  size_t offset;                          /* bytes past its end / before its start / into it */
} hh_guarded_fault_t;

/* A guarded report's history lines: the stack that caught it, then the
 * slot's allocation and free. */
typedef struct hh_guarded_history_s {
  const hh_guarded_slot_t* slot;          /* the block, or NULL */
  const char* now_label;                  /* what caught it ("the access", "the second free") */
  int now_depth;                          /* frames in now_stack */
  void* now_stack[HH_GUARDED_STACK_DEPTH]; /* where it was caught */
} hh_guarded_history_t;

#define HH_GUARDED_INFO_OFFSET (sizeof(hh_segment_t) + sizeof(hh_page_t))

/* ---- heaps ------------------------------------------------------------------*/
/* A queue of pages of one size class, most recently useful first. */
typedef struct hh_page_queue_s {
  hh_page_t* first;     /* page allocated from first (pages_direct points here) */
  hh_page_t* last;      /* tail */
  size_t block_size;    /* block size of the bin (the queue's size class) */
} hh_page_queue_t;

/* Invariant: for every wsize w < HH_PAGES_DIRECT,
 *   pages_direct[w] == first page of pages[bin(w*16)], or &hh_page_empty. */
struct hh_heap_s {
  hh_tld_t* tld;                                 /* thread-local data of the owning thread */
  size_t alloc_count;                            /* blocks handed out since the last flush into the
                                                    process totals (stats.c:hhi_heap_stats_flush); not
                                                    next to alloc_bytes, so the two adds of the fast path
                                                    stay two adds and are not merged into vector code */
  uint64_t guarded_countdown;                    /* HH_GUARDED: allocations until the next sample (0 never
                                                    stays: UINT64_MAX when this heap does not sample) */
  size_t alloc_bytes;                            /* block bytes handed out since the last flush */
  hh_page_t* pages_direct[HH_PAGES_DIRECT];      /* fast path: wsize -> page to allocate from */
  hh_page_queue_t pages[HH_BIN_COUNT];           /* per-bin page queues (+ unused huge slot) + full */
  _Atomic(hh_block_t*) thread_delayed_free;      /* remote frees into full pages (free.c) */
  uintptr_t thread_id;                           /* owning thread, hh_thread_id() */
  hh_chacha_t keys_stream;                       /* ChaCha20 stream of free-list keys (random.c) */
  hh_chacha_t shuffle_stream;                    /* ChaCha20 stream of shuffle seeds (random.c) */
  size_t page_count;                             /* pages owned by this heap */
  hh_page_t* retired[HH_RETIRED_MAX];            /* empty pages kept a while (page.c:hh_page_retire) */
  size_t retired_count;                          /* entries used in retired */
  uint64_t retired_check;                        /* heartbeat of the earliest retire_at in retired */
  hh_page_t* singles;                            /* large/huge single-block pages (linked by next/prev) */
  hh_block_t* quarantine[HH_QUARANTINE_SLOTS];   /* HH_QUARANTINE: freed blocks of this heap's pages waiting
                                                    for reuse (NULL = empty slot); still counted in their
                                                    page's `used`, live bit clear (page.c) */
  size_t quarantine_bytes;                       /* block bytes in quarantine */
  uint64_t quarantine_state;                     /* splitmix64 state choosing the slot a free evicts */
  uint64_t guarded_state;                        /* splitmix64 state of this heap's sampling intervals and
                                                    placements (seeded from GUARDED_SAMPLE_SEED) */
  hh_heap_t* next;                               /* next first-class heap of the same thread */
  /* last: heap.c:heap_init re-initialises a pooled heap up to here, under
   * this lock, because a remote free may still be releasing it */
  _Atomic(bool) singles_lock;                    /* guards singles: remote frees unlink from it */
};

/* ---- thread-local data ----------------------------------------------------*/
/* Segment bookkeeping of one thread. */
typedef struct hh_segment_queue_s {
  hh_segment_t* first;  /* head */
  hh_segment_t* last;   /* tail */
} hh_segment_queue_t;

typedef struct hh_segments_tld_s {
  hh_segment_queue_t small_free;   /* small segments with a free page */
  hh_segment_queue_t medium_free;  /* medium segments with a free page */
  hh_segment_t* cache;             /* empty 4 MiB segments kept for reuse (singly linked) */
  size_t cache_count;              /* segments in cache */
  size_t count;                    /* segments owned by this thread */
  size_t purge_pending;            /* free page slots of this thread waiting for their purge */
  hh_page_t* span_cache[HH_SPAN_CACHE_MAX]; /* large spans this thread freed, oldest first, kept for
                                       reuse without large_lock (segment.c); purge_expire = expiry */
  size_t span_cache_count;         /* entries used in span_cache */
  size_t span_cache_slices;        /* slices held by span_cache */
} hh_segments_tld_t;

struct hh_tld_s {
  uintptr_t thread_id;             /* the thread's hhi_thread_id, given to the segments it owns */
  uint64_t heartbeat;              /* generic-path calls, drives retire and purge */
  hh_heap_t* heap_backing;         /* the thread's initial default heap */
  hh_heap_t* heaps;                /* the thread's first-class heaps (hh_heap_new), via heap->next */
  bool in_deferred;                /* inside the deferred-free callback: do not re-enter it */
  hh_chacha_t address_stream;      /* random mapping addresses (segment.c, HH_RANDOM_ADDRESSES) */
  uint64_t choice_state;           /* splitmix64 state of random page-slot and span choices
                                      (HH_RANDOM_SLOTS), seeded from address_stream */
  hh_segments_tld_t segments;      /* segment queues and cache */
  /* last: kept when a thread's data is reused (heap.c:hhi_heap_thread_init
   * clears the fields above under this lock) */
  _Atomic(uintptr_t) lock_owner;   /* the segment-layer lock: hhi_thread_id of the holder, 0 = free;
                                      the owner takes it around every segment.c/span.c call, the
                                      background purger (purge.c) to purge for an idle thread */
  uint32_t lock_depth;             /* nested acquisitions by the holder */
  _Atomic(bool) active;            /* a live thread's data: the purger looks at it */
  uint64_t purger_heartbeat;       /* the heartbeat the purger saw last (purge.c; only it writes) */
};

/* ---- pointer lookups ---------------------------------------------------------
 * The operations a program passes pointers and heaps to, as misuse reports
 * name them (misuse.c:op_names). */
typedef enum hh_op_e {
  HH_OP_NONE,          /* internal walks: no public call involved */
  HH_OP_FREE,          /* free, free_sized, free_aligned_sized, hh_heap_destroy's blocks */
  HH_OP_REALLOC,       /* realloc and its variants */
  HH_OP_USABLE_SIZE,   /* malloc_usable_size */
  HH_OP_HEAP_ALLOC,    /* allocation from a first-class heap */
  HH_OP_HEAP_DELETE,   /* hh_heap_delete */
  HH_OP_HEAP_DESTROY,  /* hh_heap_destroy */
  HH_OP_HEAP_SET_DEFAULT, /* hh_heap_set_default */
  HH_OP_HEAP_VISIT,    /* hh_heap_visit_blocks */
  HH_OP_VALIDATE,      /* hh_heap_validate */
  HH_OP_READ,          /* a load that faulted on a guard page (guarded_fault.c) */
  HH_OP_WRITE,         /* a store that faulted on a guard page */
  HH_OP_ACCESS,        /* a faulting access not known to be a load or a store */
  HH_OP_COUNT_
} hh_op_t;

/* What lookup.c:hhi_block_lookup found for a pointer a program passed in.
 * Valid only when the lookup succeeded. */
typedef struct hh_block_ref_s {
  hh_segment_t* segment;  /* the pointer's segment (set in the segment map) */
  hh_page_t* page;        /* the page descriptor covering the pointer */
  hh_block_t* block;      /* start of the block holding the pointer */
  uint32_t idx;           /* index of the block in its page */
  bool is_owner;          /* the calling thread owns the segment (local free) */
} hh_block_ref_t;

#endif /* HH_TYPES_H */
