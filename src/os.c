/* hardheap: the OS layer. The only file that maps, unmaps, protects or
 * advises memory. Unexpected failures are reported; ENOMEM comes back as a
 * NULL / false return so callers can fail the allocation cleanly.
 *
 * Mappings are MAP_NORESERVE (guard pages and purged memory are not
 * charged against the kernel's commit accounting), except those made with
 * charge (huge blocks): without MAP_NORESERVE the kernel applies its
 * overcommit policy to them, as to glibc's mmapped chunks, and refuses with
 * ENOMEM a block it cannot back. vm.overcommit_memory 0 (heuristic)
 * refuses an obviously too large one (current kernels: larger than RAM +
 * swap), 1 never refuses, 2 (strict) refuses one over the commit limit;
 * mode 2 ignores MAP_NORESERVE and charges every writable mapping anyway. */
#include "os.h"
#include "report.h"
#include "size_class.h"
#include "stats.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/random.h>
#include <sys/sysinfo.h>
#include <time.h>
#include <unistd.h>

static size_t os_page_size = 4096;

/* Where the next aligned mapping is tried first: mapping right after the
 * previous one usually lands aligned and costs one mmap instead of three. */
static _Atomic(uintptr_t) aligned_hint;

void hhi_os_init(void) {
  long ps = sysconf(_SC_PAGESIZE);
  if (ps > 0 && hhi_is_power_of_two((size_t)ps)) os_page_size = (size_t)ps;
}

size_t hhi_os_page_size(void) {
  return os_page_size;
}

/* A read-write private mapping; charge: without MAP_NORESERVE. NULL on
 * failure, errno kept (ENOMEM, a refusal of the kernel, is not warned about). */
static void* os_mmap(void* hint, size_t size, bool charge) {
  int flags = MAP_PRIVATE | MAP_ANONYMOUS | (charge ? 0 : MAP_NORESERVE);
  void* p = mmap(hint, size, PROT_READ | PROT_WRITE, flags, -1, 0);
  hhi_stat_add(&hhi_stats.mmap_calls, NULL, 1);
  if (p == MAP_FAILED) {
    if (errno != ENOMEM) hhi_warning_message("mmap of %zu bytes failed (errno %d)", size, errno);
    return NULL;
  }
  return p;
}

/* Address space only: an inaccessible mapping is charged under no
 * overcommit policy (the kernel accounts private writable mappings). */
static void* os_reserve(size_t size) {
  void* p = mmap(NULL, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  hhi_stat_add(&hhi_stats.mmap_calls, NULL, 1);
  if (p == MAP_FAILED) {
    if (errno != ENOMEM) hhi_warning_message("mmap of %zu bytes failed (errno %d)", size, errno);
    return NULL;
  }
  return p;
}

static void os_munmap(void* p, size_t size) {
  if (size == 0) return;
  hhi_stat_add(&hhi_stats.munmap_calls, NULL, 1);
  if (munmap(p, size) != 0) hhi_warning_message("munmap of %p (%zu bytes) failed (errno %d)", p, size, errno);
}

static void os_advise_huge(void* p, size_t size, bool huge_pages) {
#ifdef MADV_HUGEPAGE
  if (huge_pages) (void)madvise(p, size, MADV_HUGEPAGE);
#else
  (void)p; (void)size; (void)huge_pages;
#endif
}

/* The first address at or above raw where address + align_offset is aligned. */
static uintptr_t os_aligned_start(uintptr_t raw, size_t alignment, size_t align_offset) {
  uintptr_t start = hhi_align_up(raw + align_offset, alignment) - align_offset;
  if (start < raw) start += alignment;
  return start;
}

/* A mapping at its final place: remember where the next one may go. */
static void* os_placed(void* p, size_t size, uintptr_t hint, bool huge_pages) {
  if (hint == 0) atomic_store_explicit(&aligned_hint, (uintptr_t)p + size, memory_order_relaxed);
  os_advise_huge(p, size, huge_pages);
  return p;
}

void* hhi_os_alloc_aligned(size_t size, size_t alignment, size_t align_offset, uintptr_t hint, bool huge_pages,
                           bool charge) {
  size = hhi_align_up(size, os_page_size);
  if (size == 0 || size > HH_MAX_ALLOC_SIZE + 2 * HH_SEGMENT_SIZE) return NULL;
  size_t over = size + alignment;
  if (over < size) return NULL;

  /* First try the caller's address (random placement), else right after the
   * previous mapping: both usually land aligned and cost one mmap. */
  uintptr_t want = hint;
  if (want == 0) {
    uintptr_t previous = atomic_load_explicit(&aligned_hint, memory_order_relaxed);
    if (previous != 0) want = hhi_align_up(previous + align_offset, alignment) - align_offset;
  }
  if (want != 0) {
    uint8_t* p = os_mmap((void*)want, size, charge);
    if (p != NULL) {
      if ((uintptr_t)p == want) return os_placed(p, size, hint, huge_pages);
      os_munmap(p, size);
    } else if (errno == ENOMEM) {
      /* refused (commit check, address space, vm.max_map_count): a larger
       * mapping would be too */
      return NULL;
    }
  }

  if (charge) {
    /* Only size bytes may be charged: a block the kernel would allow must
     * not be refused for the alignment's slack. An inaccessible reservation
     * finds an aligned place, the block is mapped there once it is given
     * back; another thread may take the place meanwhile, then try again. */
    for (int attempt = 0; attempt < 3; attempt++) {
      uint8_t* raw = os_reserve(over);
      if (raw == NULL) return NULL;
      uintptr_t start = os_aligned_start((uintptr_t)raw, alignment, align_offset);
      os_munmap(raw, over);
      uint8_t* p = os_mmap((void*)start, size, true);
      if (p == NULL) return NULL;
      if ((uintptr_t)p == start) return os_placed(p, size, hint, huge_pages);
      os_munmap(p, size);
    }
  }

  /* Over-allocate and trim both ends. */
  uint8_t* raw = os_mmap(NULL, over, charge);
  if (raw == NULL) return NULL;
  uintptr_t start = os_aligned_start((uintptr_t)raw, alignment, align_offset);
  size_t head = start - (uintptr_t)raw;
  size_t tail = over - head - size;
  os_munmap(raw, head);
  os_munmap((uint8_t*)start + size, tail);
  return os_placed((void*)start, size, hint, huge_pages);
}

void* hhi_os_alloc_guarded(size_t size, uintptr_t hint) {
  size = hhi_align_up(size, os_page_size);
  uint8_t* base = hhi_os_alloc_aligned(size + 2 * os_page_size, os_page_size, 0, hint, false, false);
  if (base == NULL) return NULL;
  (void)hhi_os_protect(base, os_page_size);
  (void)hhi_os_protect(base + os_page_size + size, os_page_size);
  return base + os_page_size;
}

void hhi_os_free_guarded(void* p, size_t size) {
  os_munmap((uint8_t*)p - os_page_size, hhi_align_up(size, os_page_size) + 2 * os_page_size);
}

void hhi_os_free(void* p, size_t size) {
  os_munmap(p, hhi_align_up(size, os_page_size));
}

bool hhi_os_purge(void* p, size_t size) {
  if (size == 0) return true;
  if (madvise(p, size, MADV_DONTNEED) != 0) {
    hhi_warning_message("madvise(DONTNEED) of %p (%zu bytes) failed (errno %d)", p, size, errno);
    return false;
  }
  hhi_stat_add(&hhi_stats.purged, NULL, size);
  return true;
}

static _Atomic(bool) protect_failed_once;

static bool os_mprotect(void* p, size_t size, int prot) {
  if (mprotect(p, size, prot) == 0) return true;
  if (errno == ENOMEM) {
    /* out of mappings (vm.max_map_count): say so once, go on without */
    if (!atomic_exchange_explicit(&protect_failed_once, true, memory_order_relaxed)) {
      hhi_warning_message("mprotect failed: out of memory mappings (vm.max_map_count); going on without some "
                          "guard pages");
    }
  } else {
    hhi_warning_message("mprotect of %p (%zu bytes) failed (errno %d)", p, size, errno);
  }
  return false;
}

/* Guard markers (madvise MADV_GUARD_INSTALL, Linux 6.13): page-table
 * entries that fault on access without splitting the mapping. mprotect
 * splits it, takes the process's mmap lock for writing and costs a
 * kernel mapping per guard: with two threads allocating large blocks (a
 * guard moved per block) the secure build spent most of its time waiting
 * for that lock and in TLB shootdowns. Installing a marker discards the
 * pages' contents, which no caller keeps across a protect: guards, purged
 * memory and freed blocks. With markers a guard costs no kernel mapping,
 * so the guard budget (segment.c) does not apply. The tracking builds keep
 * mprotect (a memory checker knows it). Kernels without markers say EINVAL
 * once, and every protect goes through mprotect from then on. */
#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif
#ifndef MADV_GUARD_REMOVE
#define MADV_GUARD_REMOVE 103
#endif
static _Atomic(bool) markers_unavailable = HH_TRACKING || HH_WITHOUT_GUARD_MARKERS;
static _Atomic(bool) markers_used;    /* some range may hold markers */
static _Atomic(bool) mprotect_used;   /* some range may be PROT_NONE */

static bool os_madvise_retry(void* p, size_t size, int advice) {
  int r;
  do {
    r = madvise(p, size, advice);
  } while (r != 0 && errno == EINTR);
  return r == 0;
}

bool hhi_os_guard_markers(void) {
  return !atomic_load_explicit(&markers_unavailable, memory_order_relaxed);
}

/* Guard markers over [p, p + size): 1 done, 0 refused, -1 the kernel has none. */
static int os_install_markers(void* p, size_t size) {
  if (atomic_load_explicit(&markers_unavailable, memory_order_relaxed)) return -1;
  if (os_madvise_retry(p, size, MADV_GUARD_INSTALL)) {
    atomic_store_explicit(&markers_used, true, memory_order_relaxed);
    return 1;
  }
  if (errno != EINVAL) {
    hhi_warning_message("madvise(GUARD_INSTALL) of %p (%zu bytes) failed (errno %d)", p, size, errno);
    return 0;
  }
  atomic_store_explicit(&markers_unavailable, true, memory_order_relaxed);
  return -1;
}

bool hhi_os_protect(void* p, size_t size) {
  int markers = os_install_markers(p, size);
  if (markers >= 0) return markers == 1;
  atomic_store_explicit(&mprotect_used, true, memory_order_relaxed);
  return os_mprotect(p, size, PROT_NONE);
}

bool hhi_os_purge_protect(void* p, size_t size) {
  if (size == 0 || os_install_markers(p, size) != 1) return false;
  hhi_stat_add(&hhi_stats.purged, NULL, size);  /* installing markers discards the pages under them */
  return true;
}

bool hhi_os_protect_keeping(void* p, size_t size) {
  atomic_store_explicit(&mprotect_used, true, memory_order_relaxed);
  return os_mprotect(p, size, PROT_NONE);
}

bool hhi_os_unprotect_kept(void* p, size_t size) {
  return os_mprotect(p, size, PROT_READ | PROT_WRITE);
}

/* A page the kernel swapped out is not resident, and would come back with
 * its old contents: with swap configured nothing is trusted to mincore. */
static bool os_swap_configured(void) {
  struct sysinfo info;
  return sysinfo(&info) != 0 || info.totalswap != 0;
}

bool hhi_os_zero_resident(void* p, size_t size, size_t* zeroed) {
  *zeroed = 0;
  if (os_swap_configured()) return false;
  uint8_t* start = p;
  size_t pages = (size + os_page_size - 1) / os_page_size;
  unsigned char resident[1024];  /* on the stack (4 MiB a call): this runs without allocating */
  size_t total = 0;
  for (size_t first = 0; first < pages; first += sizeof(resident)) {
    size_t count = pages - first < sizeof(resident) ? pages - first : sizeof(resident);
    uint8_t* chunk = start + first * os_page_size;
    if (mincore(chunk, count * os_page_size, resident) != 0) return false;
    for (size_t i = 0; i < count;) {
      if ((resident[i] & 1) == 0) { i++; continue; }
      size_t run = i;
      while (run < count && (resident[run] & 1) != 0) run++;
      size_t from = (first + i) * os_page_size;
      size_t to = (first + run) * os_page_size < size ? (first + run) * os_page_size : size;
      memset(start + from, 0, to - from);
      total += to - from;
      i = run;
    }
  }
  if (os_swap_configured()) return false;  /* turned on meanwhile: a page may have gone out unseen */
  *zeroed = total;
  return true;
}

bool hhi_os_unprotect(void* p, size_t size) {
  bool ok = true;
  if (atomic_load_explicit(&markers_used, memory_order_relaxed) && !os_madvise_retry(p, size, MADV_GUARD_REMOVE)) {
    hhi_warning_message("madvise(GUARD_REMOVE) of %p (%zu bytes) failed (errno %d)", p, size, errno);
    ok = false;
  }
  if (atomic_load_explicit(&mprotect_used, memory_order_relaxed)) ok &= os_mprotect(p, size, PROT_READ | PROT_WRITE);
  return ok;
}

bool hhi_os_protect_read_only(void* p, size_t size) {
  return os_mprotect(p, size, PROT_READ);
}

/* The precise clock: with the coarse one (a 4 ms tick) purges ran up to
 * 40% late, which cost larson at 4 threads about 1.5 MiB of peak RSS for a
 * 1% gain on realloc_heavy. */
uint64_t hhi_os_clock_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

bool hhi_os_random_bytes(void* buf, size_t size) {
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

unsigned long hhi_os_thread_id(void) {
  return (unsigned long)syscall(SYS_gettid);
}
