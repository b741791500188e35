/* hardheap: the OS layer. The only file that maps, unmaps, protects or
 * advises memory. Unexpected failures are reported; ENOMEM comes back as a
 * NULL / false return so callers can fail the allocation cleanly. */
#include "internal.h"

#include <sys/mman.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

static size_t os_page_size = 4096;

/* Where the next aligned mapping is tried first: mapping right after the
 * previous one usually lands aligned and costs one mmap instead of three. */
static _Atomic(uintptr_t) aligned_hint;

void hh_os_init(void) {
  long ps = sysconf(_SC_PAGESIZE);
  if (ps > 0 && hh_is_power_of_two((size_t)ps)) os_page_size = (size_t)ps;
}

size_t hh_os_page_size(void) {
  return os_page_size;
}

static void* os_mmap(void* hint, size_t size) {
  void* p = mmap(hint, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  hh_stat_add(&hh_stats.mmap_calls, NULL, 1);
  if (p == MAP_FAILED) {
    if (errno != ENOMEM) hh_warning_message("mmap of %zu bytes failed (errno %d)", size, errno);
    return NULL;
  }
  return p;
}

static void os_munmap(void* p, size_t size) {
  if (size == 0) return;
  hh_stat_add(&hh_stats.munmap_calls, NULL, 1);
  if (munmap(p, size) != 0) hh_warning_message("munmap of %p (%zu bytes) failed (errno %d)", p, size, errno);
}

static void os_advise_huge(void* p, size_t size) {
#ifdef MADV_HUGEPAGE
  if (hh_option_is_enabled(hh_option_allow_large_os_pages)) (void)madvise(p, size, MADV_HUGEPAGE);
#else
  (void)p; (void)size;
#endif
}

void* hh_os_alloc_aligned(size_t size, size_t alignment, size_t align_offset) {
  hh_assert(hh_is_power_of_two(alignment) && alignment >= os_page_size);
  size = hh_align_up(size, os_page_size);
  if (size == 0 || size > HH_MAX_ALLOC_SIZE + 2 * HH_SEGMENT_SIZE) return NULL;

  /* First try right after the previous mapping. */
  uintptr_t hint = atomic_load_explicit(&aligned_hint, memory_order_relaxed);
  if (hint != 0) {
    uintptr_t want = hh_align_up(hint + align_offset, alignment) - align_offset;
    uint8_t* p = os_mmap((void*)want, size);
    if (p != NULL) {
      if ((uintptr_t)p == want) {
        atomic_store_explicit(&aligned_hint, (uintptr_t)p + size, memory_order_relaxed);
        os_advise_huge(p, size);
        return p;
      }
      os_munmap(p, size);
    }
  }

  /* Over-allocate and trim both ends. */
  size_t over = size + alignment;
  if (over < size) return NULL;
  uint8_t* raw = os_mmap(NULL, over);
  if (raw == NULL) return NULL;
  uintptr_t start = hh_align_up((uintptr_t)raw + align_offset, alignment) - align_offset;
  if (start < (uintptr_t)raw) start += alignment;
  size_t head = start - (uintptr_t)raw;
  size_t tail = over - head - size;
  os_munmap(raw, head);
  os_munmap((uint8_t*)start + size, tail);
  atomic_store_explicit(&aligned_hint, start + size, memory_order_relaxed);
  os_advise_huge((void*)start, size);
  return (void*)start;
}

void hh_os_free(void* p, size_t size) {
  os_munmap(p, hh_align_up(size, os_page_size));
}

bool hh_os_purge(void* p, size_t size) {
  if (size == 0) return true;
  if (madvise(p, size, MADV_DONTNEED) != 0) {
    hh_warning_message("madvise(DONTNEED) of %p (%zu bytes) failed (errno %d)", p, size, errno);
    return false;
  }
  hh_stat_add(&hh_stats.purged, NULL, size);
  return true;
}

static bool os_mprotect(void* p, size_t size, int prot) {
  if (mprotect(p, size, prot) != 0) {
    /* ENOMEM here means the process ran out of mappings (vm.max_map_count) */
    hh_warning_message("mprotect of %p (%zu bytes) failed (errno %d)", p, size, errno);
    return false;
  }
  return true;
}

bool hh_os_protect(void* p, size_t size) {
  return os_mprotect(p, size, PROT_NONE);
}

bool hh_os_unprotect(void* p, size_t size) {
  return os_mprotect(p, size, PROT_READ | PROT_WRITE);
}

/* The precise clock: with the coarse one (a 4 ms tick) purges ran up to
 * 40% late, which cost larson at 4 threads about 1.5 MiB of peak RSS for a
 * 1% gain on realloc_heavy. */
uint64_t hh_os_clock_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

bool hh_os_random_bytes(void* buf, size_t size) {
  uint8_t* out = buf;
  while (size > 0) {
    ssize_t n = getrandom(out, size, GRND_NONBLOCK);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    out += n;
    size -= (size_t)n;
  }
  return true;
}
