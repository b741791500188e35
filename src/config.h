/* hardheap: the build configuration, in one place.
 *
 * The build sets one number, HARDHEAP_SECURE (the secure level); every
 * defence is a flag derived from it here, read with a plain `if` so both
 * branches always compile. No other source file reads HARDHEAP_SECURE.
 * The layout constants and the checks that tie them to the types live here
 * too, so a change that breaks an assumption fails to compile.
 *
 * The secure ladder (each level includes the ones below it):
 *   0  fast: checks only what costs nothing (a pointer outside every
 *      segment is never dereferenced, nor one outside its page's blocks
 *      off the fast path); misuse is reported and ignored.
 *   1  integrity: metadata out of reach and free lists that cannot be
 *      forged. Every segment ends in a guard page and one sits between its
 *      metadata and its first block; segments and thread data are mapped at
 *      random addresses, thread data between guard pages; free-list links
 *      are masked with a keyed non-linear function of the block address and
 *      keys come from ChaCha20; per-page bitmaps of live and remotely freed
 *      blocks make every pop, free, remote free and list walk a bit test, so
 *      double frees are caught on every path and no block is handed out
 *      twice; every free, realloc and usable_size validates its pointer;
 *      new blocks are threaded in random order; freed huge blocks stay
 *      mapped inaccessible for a while; misuse aborts.
 *   2  overflows and reuse: a canary after every block's requested size
 *      (a zero byte, a keyed fill, the keyed size), checked on free and
 *      realloc; freed blocks are zeroed and found still zero when handed out
 *      again (a write after free); a freed block waits in a small random
 *      quarantine before it can be reused; page slots are chosen at random.
 *   3  guard pages: a PROT_NONE page between pages (every page while the
 *      process's mapping budget allows, then every k-th), after every large
 *      block, and over purged memory.
 * libhardheap is level 0; libhardheap-secure is HH_SECURE_LEVEL_MAX unless
 * the build asks for another (cmake -DHARDHEAP_SECURE_LEVEL=N). */
#ifndef HH_CONFIG_H
#define HH_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#ifndef HARDHEAP_SECURE
#define HARDHEAP_SECURE 0
#endif
#define HH_SECURE_LEVEL_MAX 3
#if HARDHEAP_SECURE < 0 || HARDHEAP_SECURE > HH_SECURE_LEVEL_MAX
#error "HARDHEAP_SECURE must be a level from 0 to HH_SECURE_LEVEL_MAX"
#endif
#define HH_SECURE_LEVEL HARDHEAP_SECURE

/* ---- level 1: integrity -------------------------------------------------- */
#define HH_ENCODE_FREELIST (HH_SECURE_LEVEL >= 1)      /* block.h: hhi_link_mask, links checked on every walk */
#define HH_BLOCK_BITMAPS (HH_SECURE_LEVEL >= 1)        /* types.h: hh_page_maps_t; block.h: pop, free, lookup */
#define HH_CHECK_POINTERS (HH_SECURE_LEVEL >= 1)       /* block.h: hhi_lookup_in validates every pointer */
#define HH_RANDOMIZE_EXTEND (HH_SECURE_LEVEL >= 1)     /* page.c: page_extend */
#define HH_CLEAR_HANDED_OUT_LINK (HH_SECURE_LEVEL >= 1) /* block.h: hhi_block_hand_out; page.c: stale links */
#define HH_GUARD_METADATA (HH_SECURE_LEVEL >= 1)       /* segment.c: guard after the metadata */
#define HH_GUARD_SEGMENT_END (HH_SECURE_LEVEL >= 1)    /* segment.c: guard in a segment's last OS page */
#define HH_RANDOM_ADDRESSES (HH_SECURE_LEVEL >= 1)     /* segment.c, heap.c: random mapping hints */
#define HH_GUARD_THREAD_DATA (HH_SECURE_LEVEL >= 1)    /* heap.c: thread data between guard pages */
#define HH_HUGE_QUARANTINE (HH_SECURE_LEVEL >= 1)      /* segment.c: freed huge blocks kept inaccessible */
#define HH_MISUSE_ABORTS_BY_DEFAULT (HH_SECURE_LEVEL >= 1) /* options.c: ABORT_ON_MISUSE default */

/* A memory checker's tracking mode (track.h) sees overflows into slack and
 * uses after free itself, and must not see the allocator touch the bytes
 * it was told are off limits: canaries, zeroing freed blocks and checking
 * them on reuse, and guarded samples are left out. */
#if defined(HH_TRACK_ASAN) || defined(HH_TRACK_VALGRIND)
#define HH_TRACKING 1
#else
#define HH_TRACKING 0
#endif

/* Valgrind reports the background purger's thread-local block (allocated
 * by pthread_create, alive at exit) as possibly lost, and a program run
 * under it gains nothing from memory returned early: the Valgrind tracking
 * build starts without the purger (options.c: BACKGROUND_PURGE default). */
#if defined(HH_TRACK_VALGRIND)
#define HH_BACKGROUND_PURGE_BY_DEFAULT 0
#else
#define HH_BACKGROUND_PURGE_BY_DEFAULT 1
#endif

/* Measuring a defence's cost (bench/README.md): -DHH_WITHOUT_<NAME>=1
 * leaves one out of a build that would have it. Not for production. */
#ifndef HH_WITHOUT_CANARY
#define HH_WITHOUT_CANARY 0
#endif
#ifndef HH_WITHOUT_ZERO_ON_FREE
#define HH_WITHOUT_ZERO_ON_FREE 0
#endif
#ifndef HH_WITHOUT_QUARANTINE
#define HH_WITHOUT_QUARANTINE 0
#endif
#ifndef HH_WITHOUT_GUARD_PAGES
#define HH_WITHOUT_GUARD_PAGES 0
#endif
/* -DHH_WITHOUT_GUARD_MARKERS=1: protect with mprotect even where the kernel
 * has guard markers (os.c), as on kernels before 6.13. */
#ifndef HH_WITHOUT_GUARD_MARKERS
#define HH_WITHOUT_GUARD_MARKERS 0
#endif

/* ---- level 2: overflows and reuse ------------------------------------------ */
#define HH_CANARY (HH_SECURE_LEVEL >= 2 && !HH_TRACKING && !HH_WITHOUT_CANARY) /* block.h: hhi_canary_write / hhi_canary_check */
#define HH_ZERO_ON_FREE (HH_SECURE_LEVEL >= 2 && !HH_TRACKING && !HH_WITHOUT_ZERO_ON_FREE) /* block.h: freed blocks zeroed past their link */
#define HH_CHECK_FREED_ZERO (HH_ZERO_ON_FREE)          /* block.h: hand-out finds a reused block still zero */
#define HH_QUARANTINE (HH_SECURE_LEVEL >= 2 && !HH_WITHOUT_QUARANTINE) /* page.c: freed blocks wait before reuse */
#define HH_RANDOM_SLOTS (HH_SECURE_LEVEL >= 2)         /* segment.c: random page slot, large block offset */

/* ---- level 3: guard pages -------------------------------------------------- */
#define HH_GUARD_PAGES (HH_SECURE_LEVEL >= 3 && !HH_WITHOUT_GUARD_PAGES) /* segment.c: a guard after every page (budgeted) */
#define HH_GUARD_LARGE (HH_SECURE_LEVEL >= 3 && !HH_WITHOUT_GUARD_PAGES) /* span.c: a guard right after every large block */
#define HH_PROTECT_PURGED (HH_SECURE_LEVEL >= 3)       /* segment.c: purged page slots PROT_NONE */

/* ---- sampled guarded allocations ---------------------------------------------
 * Its own switch: on in the secure build, off in the fast one unless the
 * build asks for it (-DHARDHEAP_GUARDED=1). guarded.c, guarded_fault.c. */
#ifndef HARDHEAP_GUARDED
#define HARDHEAP_GUARDED (HH_SECURE_LEVEL >= 1 && !HH_TRACKING)
#endif
#define HH_GUARDED (HARDHEAP_GUARDED != 0)
/* The sample rate when GUARDED_SAMPLE_RATE is not set: the secure build
 * always samples a little (GWP-ASan runs at about one in 5000 in
 * production); the fast build only when asked. */
#define HH_GUARDED_DEFAULT_RATE (HH_GUARDED && HH_SECURE_LEVEL >= 1 ? 5000 : 0)
/* Return addresses each guarded slot keeps of its allocation and of its
 * free, for the reports. */
#define HH_GUARDED_STACK_DEPTH 24  /* frames kept, hardheap's own (3-5) included */

/* Bytes a request needs beyond its size with HH_CANARY: the zero byte and
 * the canary's size bytes, two in a block of up to HH_CANARY_SHORT_MAX
 * bytes, eight in larger ones (block.h). */
#define HH_CANARY_MIN 3
#define HH_CANARY_MIN_LARGE 9
#define HH_CANARY_SHORT_MAX ((size_t)1 << 16)
/* How much of a reused block the hand-out check reads (HH_CHECK_FREED_ZERO):
 * all of a block up to HH_FREED_CHECK_WHOLE bytes, the first
 * HH_FREED_CHECK_HEAD bytes of a larger one (where a stale pointer's fields
 * are). Reading all of every large block on each reuse cost a fifth of the
 * secure build's time on mixed sizes up to 64 KiB (alloc_test). */
#define HH_FREED_CHECK_WHOLE ((size_t)1024)
#define HH_FREED_CHECK_HEAD ((size_t)256)
/* Blocks a heap's quarantine holds (HH_QUARANTINE), and at most this many
 * bytes of them: a freed block waits for a random number of later frees. */
#define HH_QUARANTINE_SLOTS 32
#define HH_QUARANTINE_BYTES ((size_t)256 * 1024)
/* Guard pages between pages (HH_GUARD_PAGES) cost two kernel mappings each;
 * every page gets one until this many guards exist, then every 2nd, 4th,
 * ... (Linux's default limit is 65530 mappings per process). */
#define HH_GUARD_BUDGET 8192
#define HH_BUILD_NAME (HH_SECURE_LEVEL == 0 ? "default" : "secure")
#define HH_ERRORS_ALWAYS_SHOWN (HH_SECURE_LEVEL >= 1)    /* options.c: SHOW_ERRORS cannot be turned off */

/* Freed huge blocks kept mapped but inaccessible (HH_HUGE_QUARANTINE), at
 * most this many and this many bytes of address space; the oldest is
 * unmapped first. Outside a memory checker's tracking mode a freed block's
 * memory is zeroed where resident and kept, and the block may serve a new
 * huge request once HH_HUGE_QUARANTINE_WAIT later huge blocks have been
 * freed (HH_HUGE_QUARANTINE_REUSE): returning the memory at once cost a
 * page fault per touched page of every new huge block (malloc_large: 1.2
 * million of them, 2.1x mimalloc's time). At most
 * HH_HUGE_QUARANTINE_RESIDENT bytes stay resident, oldest purged first, and
 * none for longer than HH_HUGE_QUARANTINE_PURGE_DELAYS times PURGE_DELAY: a
 * block cannot be reused before it has waited, and with a single delay
 * malloc_large's blocks were purged just before their reuse (2.8x the
 * page faults). */
#define HH_HUGE_QUARANTINE_MAX 16
#define HH_HUGE_QUARANTINE_BYTES ((size_t)1 << 30)
#define HH_HUGE_QUARANTINE_REUSE (HH_HUGE_QUARANTINE && !HH_TRACKING)
#define HH_HUGE_QUARANTINE_WAIT 8
#define HH_HUGE_QUARANTINE_RESIDENT ((size_t)128 << 20)
#define HH_HUGE_QUARANTINE_PURGE_DELAYS 10

/* Without the quarantine (and without a memory checker's tracking mode,
 * whose users want a freed huge block to fault), freed huge blocks' mappings
 * are kept for reuse by the next huge request they fit (segment.c: the
 * huge cache): at most this many, this much address space, and a mapping
 * at most twice what the request needs. SEGMENT_CACHE=0 turns it off. */
#define HH_HUGE_CACHE (!HH_HUGE_QUARANTINE && !HH_TRACKING)
#define HH_HUGE_CACHE_MAX 8
#define HH_HUGE_CACHE_BYTES ((size_t)512 << 20)

/* A free page slot of a segment that had another page freed within the
 * last PURGE_DELAY keeps its memory (a thread churning through the pages of
 * one segment refaulted what it purged: larson 5x more purged bytes), but
 * never for more than this many delays after its own free (segment.c). */
#define HH_PURGE_BUSY_DELAYS 10

/* ---- compiler helpers ------------------------------------------------------ */
#define hh_likely(x) __builtin_expect(!!(x), 1)
#define hh_unlikely(x) __builtin_expect(!!(x), 0)
#define hh_noinline __attribute__((noinline))
#define hh_cold __attribute__((cold, noinline))
#define hhi_attr_printf(f, a) __attribute__((format(printf, f, a)))
#define hh_tls_initial_exec __attribute__((tls_model("initial-exec")))

/* ---- debug checks ----------------------------------------------------------
 * Internal assertions (HH_DEBUG=1) are independent of the level. */
#ifndef HH_DEBUG
#define HH_DEBUG 0
#endif

/* ---- layout ------------------------------------------------------------------*/
#define HH_INTPTR_SIZE 8
#define HH_MIN_ALIGN 16                           /* every block is 16-byte aligned */
#define HH_SEGMENT_SHIFT 22                       /* 4 MiB segments */
#define HH_SMALL_PAGE_SHIFT 16                    /* 64 KiB small pages */
#define HH_MEDIUM_PAGE_SHIFT 19                   /* 512 KiB medium pages */
#define HH_SEGMENT_SIZE ((size_t)1 << HH_SEGMENT_SHIFT)
#define HH_SEGMENT_MASK (HH_SEGMENT_SIZE - 1)
#define HH_SMALL_PAGE_SIZE ((size_t)1 << HH_SMALL_PAGE_SHIFT)
#define HH_MEDIUM_PAGE_SIZE ((size_t)1 << HH_MEDIUM_PAGE_SHIFT)
#define HH_SMALL_PAGES_PER_SEGMENT (HH_SEGMENT_SIZE / HH_SMALL_PAGE_SIZE)   /* 64 */
#define HH_MEDIUM_PAGES_PER_SEGMENT (HH_SEGMENT_SIZE / HH_MEDIUM_PAGE_SIZE) /* 8 */

#define HH_SMALL_OBJ_SIZE_MAX (HH_SMALL_PAGE_SIZE / 8)    /* 8 KiB: >= 8 blocks per small page */
/* 64 KiB: >= 8 blocks per medium page. With canaries one class more
 * (72 KiB, 7 a page), so a 64 KiB request plus its canary is still a
 * medium block rather than a two-slice span. */
#define HH_MEDIUM_OBJ_SIZE_MAX (HH_SECURE_LEVEL >= 2 ? (size_t)73728 : HH_MEDIUM_PAGE_SIZE / 8)
#define HH_LARGE_OBJ_SIZE_MAX (HH_SEGMENT_SIZE / 2)       /* 2 MiB: largest block asked from spans */
#define HH_SPAN_SLICE_SHIFT HH_SMALL_PAGE_SHIFT           /* large segments are cut into 64 KiB slices */
#define HH_SPAN_SLICE_SIZE ((size_t)1 << HH_SPAN_SLICE_SHIFT)
#define HH_SPAN_SLICES (HH_SEGMENT_SIZE / HH_SPAN_SLICE_SIZE) /* 64: one bit each in a uint64_t */
/* Freed spans each thread keeps for its next large blocks: at most this many,
 * covering at most HH_SPAN_CACHE_SLICES slices (6 MiB) in all. */
#define HH_SPAN_CACHE_MAX 16
#define HH_SPAN_CACHE_SLICES 96
/* Sizes above this get a huge segment of their own. */
#define HH_HUGE_OBJ_SIZE_MIN (HH_LARGE_OBJ_SIZE_MAX + 1)
/* Largest request ever accepted: beyond it sizes would overflow internally. */
#define HH_MAX_ALLOC_SIZE ((size_t)PTRDIFF_MAX - 2 * HH_SEGMENT_SIZE)

/* The direct page table covers sizes up to 1 KiB in 16-byte steps. */
#define HH_SMALL_SIZE_MAX 1024
#define HH_PAGES_DIRECT (HH_SMALL_SIZE_MAX / HH_MIN_ALIGN + 1)  /* 65 entries */

/* Size classes ("bins", size_class.h): 16-byte steps up to 128 bytes, then
 * eight classes per power of two. Bin 0 is unused; HH_BIN_HUGE marks
 * single-block (large and huge) pages, which are listed in heap->singles
 * rather than queued; HH_BIN_FULL is the queue of pages with no free block. */
#define HH_BIN_LARGE_MAX 120          /* bin of HH_LARGE_OBJ_SIZE_MAX (2 MiB) */
#define HH_BIN_HUGE (HH_BIN_LARGE_MAX + 1)
#define HH_BIN_FULL (HH_BIN_HUGE + 1)
#define HH_BIN_COUNT (HH_BIN_FULL + 1)

/* Pages are extended (their free list threaded) at most this many bytes at a
 * time, so a fresh page costs page faults only for what is used. */
#define HH_EXTEND_BYTES (4 * 1024)
/* A page found empty stays in its queue for this many generic-path calls
 * before it is returned to its segment, so alloc/free of one block does not
 * thrash the segment. */
#define HH_RETIRE_CYCLES 16
/* At most this many empty pages per heap wait to be retired. */
#define HH_RETIRED_MAX 16
/* Most blocks any page with many blocks holds (a small page of 16-byte blocks). */
#define HH_PAGE_BLOCKS_MAX (HH_SMALL_PAGE_SIZE / HH_MIN_ALIGN)
/* The segment map covers a 48-bit address space, one bit per segment. */
#define HH_ADDRESS_BITS 48

/* ---- checks on the configuration --------------------------------------------*/
_Static_assert((HH_MIN_ALIGN & (HH_MIN_ALIGN - 1)) == 0 && HH_MIN_ALIGN >= 2 * sizeof(void*),
               "blocks hold a link and keep two tag bits free in thread_free");
_Static_assert(HH_SMALL_PAGES_PER_SEGMENT <= 64, "segment->free_slots is one uint64_t bit per page slot");
_Static_assert(HH_SPAN_SLICES == 64, "span_used/span_resident/span_zero are one uint64_t bit per slice");
_Static_assert(HH_SPAN_SLICES <= UINT8_MAX, "page->span_slices is a uint8_t");
_Static_assert(HH_SMALL_PAGES_PER_SEGMENT <= UINT16_MAX, "page->segment_idx is a uint16_t");
_Static_assert(HH_BIN_COUNT <= 256, "page->bin is a uint8_t");
/* the bin of 2 MiB, by hh_bin's formula: w = 2^21 - 1, b = 20 */
_Static_assert(8 * (20 - 6) + 7 + 1 == HH_BIN_LARGE_MAX, "HH_BIN_LARGE_MAX is hh_bin(HH_LARGE_OBJ_SIZE_MAX)");
_Static_assert(HH_EXTEND_BYTES / HH_MIN_ALIGN <= 65536, "page.c:page_extend shuffles with uint16_t indices");
_Static_assert(HH_SMALL_OBJ_SIZE_MAX < HH_MEDIUM_OBJ_SIZE_MAX && HH_MEDIUM_OBJ_SIZE_MAX < HH_LARGE_OBJ_SIZE_MAX,
               "size kinds are ordered");
_Static_assert(HH_MEDIUM_PAGE_SIZE / HH_SMALL_OBJ_SIZE_MAX <= HH_PAGE_BLOCKS_MAX, "medium pages hold fewer blocks");
_Static_assert(HH_PAGES_DIRECT == HH_SMALL_SIZE_MAX / HH_MIN_ALIGN + 1, "pages_direct covers 0 .. HH_SMALL_SIZE_MAX");
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the canary fill (block.h) assumes a little-endian machine"
#endif

#endif /* HH_CONFIG_H */
