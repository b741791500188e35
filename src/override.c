/* hardheap: the standard allocation names.
 *
 * Linked into the library so that preloading it (LD_PRELOAD) or linking it
 * replaces the C library's malloc family. Each name forwards to its hh_
 * counterpart; with -fno-semantic-interposition that is a single direct
 * jump. */
#include "internal.h"

#include <stdlib.h>

#define HH_EXPORT __attribute__((visibility("default")))

HH_EXPORT void* malloc(size_t size) { return hh_malloc(size); }
HH_EXPORT void* calloc(size_t count, size_t size) { return hh_calloc(count, size); }
HH_EXPORT void* realloc(void* p, size_t size) { return hh_realloc(p, size); }
HH_EXPORT void free(void* p) { hh_free(p); }
HH_EXPORT void cfree(void* p) { hh_free(p); }
HH_EXPORT void* reallocarray(void* p, size_t count, size_t size) { return hh_reallocarray(p, count, size); }
HH_EXPORT int posix_memalign(void** out, size_t alignment, size_t size) {
  return hh_posix_memalign(out, alignment, size);
}
HH_EXPORT void* aligned_alloc(size_t alignment, size_t size) { return hh_aligned_alloc(alignment, size); }
HH_EXPORT void* memalign(size_t alignment, size_t size) { return hh_memalign(alignment, size); }
HH_EXPORT void* valloc(size_t size) { return hh_valloc(size); }
HH_EXPORT void* pvalloc(size_t size) { return hh_pvalloc(size); }
HH_EXPORT size_t malloc_usable_size(void* p) { return hh_usable_size(p); }
