/* hardheap: the standard allocation names.
 *
 * Linked into the library so that preloading it (LD_PRELOAD) or linking it
 * replaces the C library's whole malloc family, including glibc's internal
 * __libc_ entry points and its introspection calls, so programs that call
 * them keep working. Each name forwards to its hh_ counterpart; linked with
 * -Bsymbolic-functions the forward is one direct jump, not a PLT call. */
#include "internal.h"

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>

#define HH_EXPORT __attribute__((visibility("default")))

/* ---- the standard family ---------------------------------------------------------*/
HH_EXPORT void* malloc(size_t size) { return hh_malloc(size); }
HH_EXPORT void* calloc(size_t count, size_t size) { return hh_calloc(count, size); }
HH_EXPORT void* realloc(void* p, size_t size) { return hh_realloc(p, size); }
HH_EXPORT void free(void* p) { hh_free(p); }
HH_EXPORT void cfree(void* p);
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

/* C23 */
HH_EXPORT void free_sized(void* p, size_t size);
HH_EXPORT void free_sized(void* p, size_t size) { hh_free_sized(p, size); }
HH_EXPORT void free_aligned_sized(void* p, size_t alignment, size_t size);
HH_EXPORT void free_aligned_sized(void* p, size_t alignment, size_t size) { hh_free_aligned_sized(p, alignment, size); }

/* ---- glibc's internal names (used by some libraries and by dlsym users) ----------*/
#define HH_DECLARE_AND_EXPORT(ret, name, params) HH_EXPORT ret name params; HH_EXPORT ret name params
HH_DECLARE_AND_EXPORT(void*, __libc_malloc, (size_t size)) { return hh_malloc(size); }
HH_DECLARE_AND_EXPORT(void*, __libc_calloc, (size_t count, size_t size)) { return hh_calloc(count, size); }
HH_DECLARE_AND_EXPORT(void*, __libc_realloc, (void* p, size_t size)) { return hh_realloc(p, size); }
HH_DECLARE_AND_EXPORT(void, __libc_free, (void* p)) { hh_free(p); }
HH_DECLARE_AND_EXPORT(void, __libc_cfree, (void* p)) { hh_free(p); }
HH_DECLARE_AND_EXPORT(void*, __libc_memalign, (size_t alignment, size_t size)) { return hh_memalign(alignment, size); }
HH_DECLARE_AND_EXPORT(void*, __libc_valloc, (size_t size)) { return hh_valloc(size); }
HH_DECLARE_AND_EXPORT(void*, __libc_pvalloc, (size_t size)) { return hh_pvalloc(size); }
HH_DECLARE_AND_EXPORT(int, __posix_memalign, (void** out, size_t alignment, size_t size)) {
  return hh_posix_memalign(out, alignment, size);
}

/* ---- glibc's tuning and introspection calls: sane answers ------------------------*/
/* Tuning knobs of glibc's allocator do not apply: accept and ignore them. */
HH_EXPORT int mallopt(int param, int value) {
  (void)param; (void)value;
  return 1;
}

/* Give memory back to the OS now; returns 1 because some may have been. */
HH_EXPORT int malloc_trim(size_t pad) {
  (void)pad;
  hh_collect(true);
  return 1;
}

HH_EXPORT void malloc_stats(void) { hh_stats_print(); }

/* glibc's meanings on hardheap's numbers: arena = bytes held from the OS
 * for ordinary blocks (committed, huge mappings left out), uordblks =
 * bytes of those blocks in use, fordblks = the rest of arena (free bytes
 * held), hblks/hblkhd = huge blocks (their own mappings) and their bytes,
 * ordblks = blocks in use. */
static struct mallinfo2 info_now(void) {
  hh_stats_t s;
  hh_stats_get(&s);
  struct mallinfo2 mi;
  memset(&mi, 0, sizeof(mi));
  size_t ordinary_in_use = s.in_use - s.huge_in_use;
  size_t arena = s.committed > s.huge_in_use ? s.committed - s.huge_in_use : 0;
  if (arena < ordinary_in_use) arena = ordinary_in_use;
  mi.arena = arena;
  mi.ordblks = s.blocks_in_use > s.huge_count ? s.blocks_in_use - s.huge_count : 0;
  mi.hblks = s.huge_count;
  mi.hblkhd = s.huge_in_use;
  mi.uordblks = ordinary_in_use;
  mi.fordblks = arena - ordinary_in_use;
  mi.keepcost = 0;
  return mi;
}

HH_EXPORT struct mallinfo2 mallinfo2(void) { return info_now(); }

HH_EXPORT struct mallinfo mallinfo(void) {
  struct mallinfo2 m2 = info_now();
  struct mallinfo mi;
  memset(&mi, 0, sizeof(mi));
  /* the old structure has int fields: saturate rather than wrap */
  mi.arena = m2.arena > INT32_MAX ? INT32_MAX : (int)m2.arena;
  mi.ordblks = m2.ordblks > INT32_MAX ? INT32_MAX : (int)m2.ordblks;
  mi.hblks = m2.hblks > INT32_MAX ? INT32_MAX : (int)m2.hblks;
  mi.hblkhd = m2.hblkhd > INT32_MAX ? INT32_MAX : (int)m2.hblkhd;
  mi.uordblks = m2.uordblks > INT32_MAX ? INT32_MAX : (int)m2.uordblks;
  mi.fordblks = m2.fordblks > INT32_MAX ? INT32_MAX : (int)m2.fordblks;
  return mi;
}

/* XML in the shape of glibc's, with hardheap's numbers. */
HH_EXPORT int malloc_info(int options, FILE* stream) {
  if (options != 0 || stream == NULL) {
    errno = EINVAL;
    return -1;
  }
  hh_stats_t s;
  hh_stats_get(&s);
  fprintf(stream,
          "<malloc version=\"hardheap-%d.%d.%d\">\n"
          "<total type=\"mmap\" count=\"%zu\" size=\"%zu\"/>\n"
          "<system type=\"current\" size=\"%zu\"/>\n"
          "<system type=\"max\" size=\"%zu\"/>\n"
          "<aspace type=\"total\" size=\"%zu\"/>\n"
          "<aspace type=\"mprotect\" size=\"%zu\"/>\n"
          "</malloc>\n",
          HH_VERSION_MAJOR, HH_VERSION_MINOR, HH_VERSION_PATCH, s.segments, s.reserved, s.committed,
          s.committed_peak, s.reserved, s.committed);
  return 0;
}
