/* hardheap: the OS interface (os.c), the only code that maps, unmaps,
 * protects or advises memory, reads the clock or asks for entropy.
 * Unexpected failures are reported as warnings; ENOMEM comes back as a NULL
 * or false return so callers can fail the allocation cleanly. */
#ifndef HH_OS_H
#define HH_OS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

void hhi_os_init(void);
size_t hhi_os_page_size(void);
/* Map size bytes aligned to alignment (a power of two >= the page size);
 * with align_offset, address + align_offset is aligned instead. hint: the
 * address to try first (0: right after the previous mapping). huge_pages
 * advises transparent huge pages. charge: without MAP_NORESERVE, so that
 * the kernel's overcommit policy decides (vm.overcommit_memory 0 refuses a
 * mapping larger than RAM + swap, 2 one over the commit limit), and only
 * size bytes are charged, not the alignment's slack; without it the
 * mapping is MAP_NORESERVE. NULL on failure (ENOMEM: refused). */
void* hhi_os_alloc_aligned(size_t size, size_t alignment, size_t align_offset, uintptr_t hint, bool huge_pages,
                           bool charge);
/* size bytes (rounded to pages) between two PROT_NONE pages, tried at hint. */
void* hhi_os_alloc_guarded(size_t size, uintptr_t hint);
/* Unmap what hhi_os_alloc_guarded(size) returned, guards included. */
void hhi_os_free_guarded(void* p, size_t size);
void hhi_os_free(void* p, size_t size);
/* Return the pages to the OS; they read back as zero. */
bool hhi_os_purge(void* p, size_t size);
/* Make pages inaccessible (their contents discarded: guard markers where
 * the kernel has them, else mprotect) / read-write again. False when the
 * kernel refuses; out of mappings (ENOMEM, vm.max_map_count) is warned
 * about once, and callers go on without the guard. */
bool hhi_os_protect(void* p, size_t size);
bool hhi_os_unprotect(void* p, size_t size);
/* Purge and protect in one call, where guard markers do both (they discard
 * the pages they cover); false, nothing done, otherwise: then the caller
 * purges and protects. */
bool hhi_os_purge_protect(void* p, size_t size);
bool hhi_os_protect_read_only(void* p, size_t size);
/* Make pages inaccessible keeping their contents (mprotect, which splits
 * the kernel mapping) / read-write again (guard markers in the range stay:
 * hhi_os_unprotect removes those too). */
bool hhi_os_protect_keeping(void* p, size_t size);
bool hhi_os_unprotect_kept(void* p, size_t size);
/* Zero the resident pages of [p, p + size) (page aligned) and leave the
 * others alone, so that all of it reads as zero without returning memory
 * that is about to be reused; *zeroed: bytes written. False, nothing
 * promised, when it cannot tell (swap configured, mincore refused): the
 * caller purges instead. */
bool hhi_os_zero_resident(void* p, size_t size, size_t* zeroed);
/* True while protects use guard markers (they cost no kernel mapping). */
bool hhi_os_guard_markers(void);
/* Monotonic clock in milliseconds. */
uint64_t hhi_os_clock_ms(void);
/* Fill buf with random bytes from the kernel; false if unavailable. */
bool hhi_os_random_bytes(void* buf, size_t size);
/* The kernel's id of the calling thread (for reports). */
unsigned long hhi_os_thread_id(void);

#endif /* HH_OS_H */
