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
 * with align_offset, address + align_offset is aligned instead. huge_pages
 * advises transparent huge pages. NULL on failure. */
void* hhi_os_alloc_aligned(size_t size, size_t alignment, size_t align_offset, bool huge_pages);
void hhi_os_free(void* p, size_t size);
/* Return the pages to the OS; they read back as zero. */
bool hhi_os_purge(void* p, size_t size);
/* Make pages inaccessible / accessible again. False when the kernel
 * refuses (ENOMEM: out of mappings, vm.max_map_count). */
bool hhi_os_protect(void* p, size_t size);
bool hhi_os_unprotect(void* p, size_t size);
/* Monotonic clock in milliseconds. */
uint64_t hhi_os_clock_ms(void);
/* Fill buf with random bytes from the kernel; false if unavailable. */
bool hhi_os_random_bytes(void* buf, size_t size);
/* The kernel's id of the calling thread (for reports). */
unsigned long hhi_os_thread_id(void);

#endif /* HH_OS_H */
