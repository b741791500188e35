/* hardheap: statistics.
 *
 * Three sources, chosen so the allocation fast path pays one add to a
 * cache line it already holds and the free path nothing:
 *   - process counters (stats.h): relaxed atomics touched on slow paths
 *     (segments, pages, purges, OS calls);
 *   - per-heap allocation counts, added to the process totals on the
 *     heap's slow path (hhi_heap_stats_flush);
 *   - a walk of every segment's page descriptors for what is in use now,
 *     per size class and in total; frees are derived (allocated - in use).
 * Peaks of use are sampled by the walks, which also run now and then as
 * the heap grows (hhi_stats_segment_grew). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* program_invocation_short_name */
#endif
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

hh_stat_counters_t hhi_stats;

#define LOAD(field) atomic_load_explicit(&hhi_stats.field, memory_order_relaxed)

/* ---- what is in use now ------------------------------------------------------*/
/* A racy read of a word other threads write: the walk wants a snapshot,
 * not an ordering, and ThreadSanitizer is not to see it (the functions
 * that call these are left out of its instrumentation). */
__attribute__((no_sanitize("thread"))) static inline uint64_t peek64(const void* p) {
  return *(const volatile uint64_t*)p;
}
__attribute__((no_sanitize("thread"))) static inline uint32_t peek32(const void* p) {
  return *(const volatile uint32_t*)p;
}
__attribute__((no_sanitize("thread"))) static inline uint8_t peek8(const void* p) {
  return *(const volatile uint8_t*)p;
}

typedef struct usage_bin_s {
  size_t pages, blocks, capacity, bytes;
} usage_bin_t;

typedef struct usage_s {
  usage_bin_t bins[HH_BIN_LARGE_MAX + 1];
  size_t huge_blocks, huge_bytes;
} usage_t;

/* Blocks on page's remote-free list, which page->used still counts. The
 * owner may take the list at any moment and hand its blocks out, so a link
 * read here can be program data: every link must lie inside the page
 * before it is followed, and at most capacity are (the page's memory stays
 * mapped and readable in a build without bitmaps: no guard pages). Only
 * link words are read, which the tracking modes keep addressable
 * (HH_TRACK_LINK_BYTES); AddressSanitizer is told not to look anyway. */
__attribute__((no_sanitize("address", "thread"))) static size_t page_remote_pending(const hh_page_t* page,
                                                                                    uint32_t capacity) {
  const uint8_t* start = page->page_start;
  size_t block_size = page->block_size;
  if (start == NULL || block_size == 0 || capacity == 0) return 0;
  const uint8_t* end = start + (size_t)capacity * block_size;
  hh_block_t* block = hhi_thread_free_block((uintptr_t)peek64(&page->thread_free));
  size_t n = 0;
  while (block != NULL && n < capacity) {
    const uint8_t* b = (const uint8_t*)block;
    if (b < start || b >= end || (size_t)(b - start) % block_size != 0) break;
    n++;
    block = hhi_decode_link(page, block, (hh_encoded_t)peek64(&block->next));
  }
  return n;
}

/* Blocks of page handed out now. With bitmaps: live and not freed remotely
 * (exact, and the quarantine is not counted); without: page->used less the
 * remote frees waiting on the page (blocks freed remotely into a full page
 * wait on the owner heap's delayed list instead, and are still counted). */
__attribute__((no_sanitize("thread"))) static size_t page_blocks_in_use(const hh_segment_t* segment, uint32_t slot,
                                                                      const hh_page_t* page) {
  uint32_t capacity = peek32(&page->capacity);
  if (!HH_BLOCK_BITMAPS) {
    size_t used = peek32(&page->used);
    if (used > capacity) used = capacity;
    size_t pending = page_remote_pending(page, capacity);
    return used > pending ? used - pending : 0;
  }
  if (capacity > HH_PAGE_BLOCKS_MAX) capacity = HH_PAGE_BLOCKS_MAX;
  const hh_page_maps_t* maps = (const hh_page_maps_t*)((const uint8_t*)segment + HH_SEGMENT_MAPS_OFFSET) + slot;
  size_t n = 0;
  for (uint32_t w = 0; w * 64 < capacity; w++) {
    uint64_t live = peek64(&maps->live[w]);
    uint64_t remote = peek64(&maps->remote[w]);
    uint64_t bits = live & ~remote;
    if ((w + 1) * 64 > capacity) bits &= ((uint64_t)1 << (capacity % 64)) - 1;
    n += (size_t)__builtin_popcountll(bits);
  }
  return n;
}

/* Other threads change these pages while we read them: the numbers are a
 * snapshot, and every field read is bounded before it is used. The walk
 * is left out of ThreadSanitizer's view for that reason. */
__attribute__((no_sanitize("thread"))) static void usage_visit(const hh_segment_t* segment, void* arg) {
  usage_t* u = arg;
  if (segment->cookie != ((uintptr_t)segment ^ hhi_process_cookie)) return;
  uint32_t count = segment->page_count;
  if (count > HH_SMALL_PAGES_PER_SEGMENT) count = HH_SMALL_PAGES_PER_SEGMENT;
  for (uint32_t i = 0; i < count; i++) {
    const hh_page_t* page = &segment->pages[i];
    if (!page->segment_in_use) continue;
    size_t block_size = page->block_size;
    if (page->block_recip == 0) {  /* one block: large span or huge segment */
      if (peek8(&page->single_live) == 0) continue;
      /* huge: a segment of its own (an over-aligned block may have one at
       * a large size), or above the largest size class (a large block
       * grown in place) */
      if (segment->kind == HH_SEGMENT_HUGE || block_size > HH_LARGE_OBJ_SIZE_MAX) {
        u->huge_blocks++;
        u->huge_bytes += block_size;
        continue;
      }
      usage_bin_t* b = &u->bins[hhi_bin(block_size)];
      b->pages++;
      b->blocks++;
      b->capacity++;
      b->bytes += block_size;
      continue;
    }
    size_t bin = page->bin;
    if (bin == 0 || bin > HH_BIN_LARGE_MAX) continue;
    usage_bin_t* b = &u->bins[bin];
    size_t blocks = page_blocks_in_use(segment, i, page);
    b->pages++;
    b->blocks += blocks;
    b->capacity += peek32(&page->capacity);
    b->bytes += blocks * block_size;
  }
}

/* Walk every segment into *u; returns bytes and blocks in use (with the
 * guarded samples) and raises the peaks. */
static void usage_collect(usage_t* u, size_t* bytes, size_t* blocks) {
  memset(u, 0, sizeof(*u));
  hhi_segments_visit(usage_visit, u);
  size_t total = u->huge_bytes + LOAD(guarded_live_bytes), count = u->huge_blocks + LOAD(guarded_live);
  for (size_t bin = 0; bin <= HH_BIN_LARGE_MAX; bin++) {
    total += u->bins[bin].bytes;
    count += u->bins[bin].blocks;
  }
  hhi_stat_raise(&hhi_stats.in_use_peak, total);
  hhi_stat_raise(&hhi_stats.blocks_in_use_peak, count);
  atomic_store_explicit(&hhi_stats.grow_events, 0, memory_order_relaxed);
  *bytes = total;
  *blocks = count;
}

void hhi_stats_segment_grew(void) {
  size_t events = atomic_fetch_add_explicit(&hhi_stats.grow_events, 1, memory_order_relaxed) + 1;
  if (events < 1 + LOAD(segments) / 32) return;
  usage_t u;
  size_t bytes, blocks;
  usage_collect(&u, &bytes, &blocks);
}

void hhi_heap_stats_flush(hh_heap_t* heap) {
  if (heap->alloc_count == 0) return;
  atomic_fetch_add_explicit(&hhi_stats.allocated_bytes, heap->alloc_bytes, memory_order_relaxed);
  atomic_fetch_add_explicit(&hhi_stats.allocated_blocks, heap->alloc_count, memory_order_relaxed);
  heap->alloc_bytes = 0;
  heap->alloc_count = 0;
}

/* ---- from the OS ---------------------------------------------------------------*/
static size_t rss_now(void) {
  int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char buf[128];
  ssize_t n;
  do {
    n = read(fd, buf, sizeof(buf) - 1);
  } while (n < 0 && errno == EINTR);
  close(fd);
  if (n <= 0) return 0;
  buf[n] = 0;
  /* "size resident shared ...", in pages */
  const char* p = buf;
  while (*p != ' ' && *p != 0) p++;
  size_t pages = 0;
  for (p++; *p >= '0' && *p <= '9'; p++) pages = pages * 10 + (size_t)(*p - '0');
  return pages * hhi_os_page_size();
}

static size_t rss_peak(void) {
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0 || ru.ru_maxrss < 0) return 0;
  return (size_t)ru.ru_maxrss * 1024;  /* Linux gives KiB */
}

/* ---- the public calls ------------------------------------------------------------*/
/* The calling thread's heaps first, so its own allocations are all counted. */
static void flush_own_heaps(void) {
  hh_heap_t* heap = hhi_get_default_heap();
  if (!hhi_heap_is_initialized(heap)) return;
  hh_tld_t* tld = heap->tld;
  if (tld->heap_backing != NULL) hhi_heap_stats_flush(tld->heap_backing);
  for (hh_heap_t* h = tld->heaps; h != NULL; h = h->next) hhi_heap_stats_flush(h);
}

static void stats_fill(hh_stats_t* out, usage_t* u) {
  int saved_errno = errno;
  memset(out, 0, sizeof(*out));
  flush_own_heaps();
  size_t bytes, blocks;
  usage_collect(u, &bytes, &blocks);
  out->segments = LOAD(segments);
  out->segments_peak = LOAD(segments_peak);
  out->segments_cached = LOAD(segments_cached);
  out->pages = LOAD(pages);
  out->pages_peak = LOAD(pages_peak);
  out->huge_count = u->huge_blocks;  /* the blocks of huge_in_use */
  out->reserved = LOAD(reserved);
  out->reserved_peak = LOAD(reserved_peak);
  out->committed = LOAD(committed);
  out->committed_peak = LOAD(committed_peak);
  out->purged = LOAD(purged);
  out->mmap_calls = LOAD(mmap_calls);
  out->munmap_calls = LOAD(munmap_calls);
  out->guarded_sampled = LOAD(guarded_sampled);
  out->guarded_skipped = LOAD(guarded_skipped);
  out->guarded_live = LOAD(guarded_live);
  out->guarded_quarantined = LOAD(guarded_quarantined);
  out->in_use = bytes;
  out->blocks_in_use = blocks;
  out->in_use_peak = LOAD(in_use_peak);
  out->blocks_in_use_peak = LOAD(blocks_in_use_peak);
  out->huge_in_use = u->huge_bytes;
  /* another thread's unflushed allocations may be in use already */
  size_t allocated = LOAD(allocated_bytes), allocations = LOAD(allocated_blocks);
  out->allocated_total = allocated > bytes ? allocated : bytes;
  out->allocations = allocations > blocks ? allocations : blocks;
  out->freed_total = out->allocated_total - bytes;
  out->frees = out->allocations - blocks;
  out->rss = rss_now();
  hhi_stat_raise(&hhi_stats.rss_peak_seen, rss_peak());
  hhi_stat_raise(&hhi_stats.rss_peak_seen, out->rss);
  out->rss_peak = LOAD(rss_peak_seen);
  out->elapsed_ms = (size_t)(hhi_os_clock_ms() - hhi_process_start_ms);
  errno = saved_errno;
}

void hh_stats_get(hh_stats_t* out) {
  if (out == NULL) return;
  usage_t u;
  stats_fill(out, &u);
}

size_t hh_bin_count(void) {
  return HH_BIN_LARGE_MAX + 1;
}

bool hh_bin_stats_get(size_t bin, hh_bin_stats_t* out) {
  if (bin >= hh_bin_count() || out == NULL) return false;
  usage_t u;
  size_t bytes, blocks;
  flush_own_heaps();
  usage_collect(&u, &bytes, &blocks);
  out->block_size = hhi_bin_size(bin);
  out->pages = u.bins[bin].pages;
  out->blocks_used = u.bins[bin].blocks;
  out->blocks_capacity = u.bins[bin].capacity;
  out->bytes_used = u.bins[bin].bytes;
  return true;
}

/* ---- the report -------------------------------------------------------------------*/
/* n as "123 KiB", "45.6 MiB" or "1.2 GiB" (one decimal) into buf. */
static const char* human(char* buf, size_t size, size_t n) {
  static const char* const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  size_t unit = 0, scaled = n, tenth = 0;
  while (scaled >= 1024 * 10 && unit + 1 < sizeof(units) / sizeof(units[0])) {
    tenth = (scaled % 1024) * 10 / 1024;
    scaled /= 1024;
    unit++;
  }
  if (unit == 0 || scaled >= 100) hhi_format(buf, size, "%zu %s", scaled, units[unit]);
  else hhi_format(buf, size, "%zu.%zu %s", scaled, tenth, units[unit]);
  return buf;
}

void hh_stats_print_fd(int fd) {
  hh_stats_t s;
  usage_t u;
  stats_fill(&s, &u);
  char a[32], b[32], c[32], d[32], e[32];
  hhi_print_fd(fd, "hardheap %s statistics of pid %d (%s) after %zu.%03zu s:\n", HH_BUILD_NAME, (int)getpid(),
               program_invocation_short_name, s.elapsed_ms / 1000, s.elapsed_ms % 1000);
  hhi_print_fd(fd, "  in use:    %s in %zu blocks (peak %s, %zu blocks)\n", human(a, sizeof a, s.in_use),
               s.blocks_in_use, human(b, sizeof b, s.in_use_peak), s.blocks_in_use_peak);
  hhi_print_fd(fd, "  total:     %zu allocations of %s, %zu frees of %s\n", s.allocations,
               human(a, sizeof a, s.allocated_total), s.frees, human(b, sizeof b, s.freed_total));
  hhi_print_fd(fd, "  committed: %s (peak %s), reserved %s (peak %s), purged %s in total\n",
               human(a, sizeof a, s.committed), human(b, sizeof b, s.committed_peak),
               human(c, sizeof c, s.reserved), human(d, sizeof d, s.reserved_peak),
               human(e, sizeof e, s.purged));
  hhi_print_fd(fd, "  rss:       %s (peak %s)\n", human(a, sizeof a, s.rss), human(b, sizeof b, s.rss_peak));
  hhi_print_fd(fd, "  segments:  %zu (peak %zu, cached %zu, abandoned %zu); pages %zu (peak %zu); os calls: %zu mmap, "
               "%zu munmap\n",
               s.segments, s.segments_peak, s.segments_cached, hhi_segments_abandoned_count(), s.pages, s.pages_peak,
               s.mmap_calls, s.munmap_calls);
  if (hhi_guarded_enabled()) {
    hhi_print_fd(fd, "  guarded:   %zu sampled, %zu skipped, %zu live, %zu in quarantine\n", s.guarded_sampled,
                 s.guarded_skipped, s.guarded_live, s.guarded_quarantined);
  }
  hhi_print_fd(fd, "  size classes in use (block size: pages, blocks used / capacity, bytes in use):\n");
  for (size_t bin = 1; bin <= HH_BIN_LARGE_MAX; bin++) {
    const usage_bin_t* ub = &u.bins[bin];
    if (ub->pages == 0) continue;
    hhi_print_fd(fd, "  %8zu: %zu, %zu / %zu, %s\n", hhi_bin_size(bin), ub->pages, ub->blocks, ub->capacity,
                 human(a, sizeof a, ub->bytes));
  }
  if (u.huge_blocks != 0) {
    hhi_print_fd(fd, "  %8s: %zu blocks, %s\n", "huge", u.huge_blocks, human(a, sizeof a, u.huge_bytes));
  }
}

void hh_stats_print(void) {
  hh_stats_print_fd(STDERR_FILENO);
}
