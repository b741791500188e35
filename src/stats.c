/* hardheap: statistics.
 *
 * Process-wide counters are relaxed atomics touched only on slow paths
 * (segments, pages, purges, mmap calls). Per-size-class numbers are not
 * counted at all on the fast path: they are read off the calling thread's
 * page queues when asked for. */
#include "internal.h"

hh_stat_counters_t hhi_stats;

#define LOAD(field) atomic_load_explicit(&hhi_stats.field, memory_order_relaxed)

void hh_stats_get(hh_stats_t* out) {
  if (out == NULL) return;
  out->segments = LOAD(segments);
  out->segments_peak = LOAD(segments_peak);
  out->segments_cached = LOAD(segments_cached);
  out->pages = LOAD(pages);
  out->pages_peak = LOAD(pages_peak);
  out->huge_count = LOAD(huge_count);
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
}

size_t hh_bin_count(void) {
  return HH_BIN_LARGE_MAX + 1;
}

bool hh_bin_stats_get(size_t bin, hh_bin_stats_t* out) {
  if (bin >= hh_bin_count() || out == NULL) return false;
  memset(out, 0, sizeof(*out));
  out->block_size = hhi_bin_size(bin);
  hh_heap_t* heap = hhi_get_default_heap();
  if (!hhi_heap_is_initialized(heap)) return true;
  /* pages of this class are in its queue or in the full queue */
  const hh_page_queue_t* queues[2] = {&heap->pages[bin], &heap->pages[HH_BIN_FULL]};
  for (int q = 0; q < 2; q++) {
    for (const hh_page_t* page = queues[q]->first; page != NULL; page = page->next) {
      if (page->bin != bin) continue;
      out->pages++;
      out->blocks_used += page->used;
      out->blocks_capacity += page->reserved;
    }
  }
  return true;
}

static void print_bytes_line(const char* name, size_t now, size_t peak) {
  hhi_print("  %s %zu KiB (peak %zu KiB)\n", name, now / 1024, peak / 1024);
}

void hh_stats_print(void) {
  hh_stats_t s;
  hh_stats_get(&s);
  hhi_print("hardheap %s statistics (process):\n", HH_BUILD_NAME);
  hhi_print("  segments:  %zu (peak %zu, cached %zu, huge %zu, abandoned %zu)\n", s.segments, s.segments_peak,
           s.segments_cached, s.huge_count, hhi_segments_abandoned_count());
  hhi_print("  pages:     %zu (peak %zu)\n", s.pages, s.pages_peak);
  print_bytes_line("reserved: ", s.reserved, s.reserved_peak);
  print_bytes_line("committed:", s.committed, s.committed_peak);
  hhi_print("  purged:    %zu KiB in total\n", s.purged / 1024);
  hhi_print("  os calls:  %zu mmap, %zu munmap\n", s.mmap_calls, s.munmap_calls);
  if (hhi_guarded_enabled()) {
    hhi_print("  guarded:   %zu sampled, %zu skipped, %zu live, %zu in quarantine\n", s.guarded_sampled,
              s.guarded_skipped, s.guarded_live, s.guarded_quarantined);
  }
  hhi_print("size classes of this thread's heap (block size: pages, blocks used / capacity, bytes in use):\n");
  size_t total_used = 0;
  for (size_t bin = 1; bin < hh_bin_count(); bin++) {
    hh_bin_stats_t b;
    if (!hh_bin_stats_get(bin, &b) || b.pages == 0) continue;
    total_used += b.blocks_used * b.block_size;
    hhi_print("  %zu: %zu, %zu / %zu, %zu\n", b.block_size, b.pages, b.blocks_used, b.blocks_capacity,
             b.blocks_used * b.block_size);
  }
  hhi_print("  in use in this heap (excluding huge blocks): %zu KiB\n", total_used / 1024);
}
