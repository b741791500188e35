/* hardheap: sampled guarded allocations (HH_GUARDED).
 *
 * About one allocation in GUARDED_SAMPLE_RATE gets a slot of its own, its
 * block placed against a PROT_NONE page: most samples end at the guard
 * after them (an overflow faults on its first byte past the block with
 * GUARDED_PRECISE, within 15 bytes otherwise: the slack is filled and
 * checked on free), GUARDED_UNDERFLOW percent start at the guard before
 * them. A freed slot is made inaccessible and kept so for the next
 * GUARDED_QUARANTINE frees, so a use after free faults too. Each slot keeps
 * the stacks of its allocation and free for the report (guarded_fault.c
 * for faults; here for double and invalid frees).
 *
 * Each heap counts its allocations down to the next sample (alloc.c); the
 * interval is uniform in [1, 2 * rate - 1], from a splitmix64 stream seeded
 * by GUARDED_SAMPLE_SEED and the heap's creation order, so the same seed
 * samples the same allocations of a program that runs the same way.
 * First-class heaps do not sample (hh_heap_destroy frees their pages
 * wholesale, which would leave their guarded blocks behind).
 *
 * Slots come in classes of 1, 2, 4, ... OS pages; a guarded segment holds
 * slots of one class (types.h:hh_guarded_segment_t). Segments are never
 * given back: the slots are few (GUARDED_SLOTS live at once, plus the
 * quarantine) and their address space is the history the reports read.
 * State changes are under one spin lock, except LIVE -> QUARANTINED, a
 * compare-and-swap so that two racing frees of one block are caught. */
#include "internal.h"

#include <sched.h>

#define HH_GUARDED_CLASSES 9     /* slots of 1 .. 256 OS pages (1 MiB with 4 KiB pages) */
#define HH_GUARDED_FILL 0xd5     /* the bytes of a slot's open pages outside its block */

static struct {
  bool enabled;                  /* rate > 0 in a build with HH_GUARDED */
  long rate;                     /* GUARDED_SAMPLE_RATE */
  uint64_t seed;                 /* GUARDED_SAMPLE_SEED, or a random one */
  size_t min, max;               /* sizes sampled */
  bool precise;                  /* GUARDED_PRECISE */
  unsigned underflow;            /* GUARDED_UNDERFLOW percent */
  size_t slots_max;              /* GUARDED_SLOTS */
  size_t quarantine_max;         /* GUARDED_QUARANTINE */
} config;

static _Atomic(uint64_t) heap_ordinal;   /* sampling heaps created so far */

static _Atomic(bool) guarded_lock;       /* guards everything below */
static hh_guarded_segment_t* growing[HH_GUARDED_CLASSES];  /* segment with untouched slots, per class */
static hh_guarded_slot_t* free_slots[HH_GUARDED_CLASSES];  /* reusable slots, per class */
static size_t free_count[HH_GUARDED_CLASSES];            /* ... and how many */
static uint64_t choice_state;            /* splitmix64 state of the reuse choices */
static size_t live_count;                /* slots LIVE */
static hh_guarded_slot_t** quarantine;   /* ring of QUARANTINED slots, oldest at quarantine_head */
static size_t quarantine_head, quarantine_count;

static void lock_acquire(void) {
  for (;;) {
    if (!atomic_load_explicit(&guarded_lock, memory_order_relaxed) &&
        !atomic_exchange_explicit(&guarded_lock, true, memory_order_acquire)) {
      return;
    }
    sched_yield();
  }
}

static void lock_release(void) {
  atomic_store_explicit(&guarded_lock, false, memory_order_release);
}

void hhi_guarded_fork_prepare(void) {
  lock_acquire();
}

void hhi_guarded_fork_release(void) {
  lock_release();
}

/* This thread is placing a sample or loading the unwinder: what it
 * allocates meanwhile (the dynamic loader does, while it loads libgcc_s)
 * is not sampled, or the loader would be entered again from inside itself. */
static __thread bool placing hh_tls_initial_exec;

void hhi_guarded_start(void) {
  /* the unwinder loaded before a sample or a misuse report of the secure
   * build needs it */
  if (!config.enabled && HH_SECURE_LEVEL == 0) return;
  placing = true;
  hhi_stack_init();
  placing = false;
  hhi_guarded_fault_arm();  /* in place before the program's own fault handlers (if sampling) */
}

/* ---- configuration and the sampling intervals ---------------------------------*/
static size_t class_bytes(unsigned cls) {
  return ((size_t)1 << cls) * hhi_os_page_size();
}

void hhi_guarded_init(void) {
  long rate = hhi_option_value(hh_option_guarded_sample_rate);
  config.enabled = HH_GUARDED && rate > 0;
  config.rate = rate;
  config.seed = (uint64_t)hhi_option_value(hh_option_guarded_sample_seed);
  if (config.seed == 0 && !hhi_os_random_bytes(&config.seed, sizeof(config.seed))) {
    config.seed = hhi_os_clock_ms() ^ (uint64_t)(uintptr_t)&config;
  }
  if (config.seed == 0) config.seed = 1;
  config.min = (size_t)hhi_option_value(hh_option_guarded_min);
  config.max = (size_t)hhi_option_value(hh_option_guarded_max);
  size_t largest = class_bytes(HH_GUARDED_CLASSES - 1) - HH_MIN_ALIGN;
  if (config.max > largest) config.max = largest;
  config.precise = hhi_option_enabled(hh_option_guarded_precise);
  config.underflow = (unsigned)hhi_option_value(hh_option_guarded_underflow);
  config.slots_max = (size_t)hhi_option_value(hh_option_guarded_slots);
  config.quarantine_max = (size_t)hhi_option_value(hh_option_guarded_quarantine);
  if (config.enabled) {
    hhi_verbose_message("guarded sampling: one in %ld allocations of %zu..%zu bytes, seed %llu", rate, config.min,
                        config.max, (unsigned long long)config.seed);
  }
}

bool hhi_guarded_enabled(void) {
  return config.enabled;
}

static uint64_t next_interval(hh_heap_t* heap) {
  uint64_t span = 2 * (uint64_t)config.rate - 1;
  return 1 + hhi_random_next(&heap->guarded_state) % span;
}

void hhi_guarded_heap_init(hh_heap_t* heap, bool samples) {
  if (!config.enabled || !samples) {
    heap->guarded_countdown = UINT64_MAX;  /* 2^64 allocations: never */
    return;
  }
  uint64_t ordinal = atomic_fetch_add_explicit(&heap_ordinal, 1, memory_order_relaxed);
  heap->guarded_state = config.seed ^ (ordinal * 0x9e3779b97f4a7c15ull);
  heap->guarded_countdown = next_interval(heap);
}

/* ---- segments and slots ------------------------------------------------------------*/
static hh_guarded_segment_t* segment_info(const hh_segment_t* segment) {
  return (hh_guarded_segment_t*)((uint8_t*)segment + HH_GUARDED_INFO_OFFSET);
}

static uint8_t* slot_data(const hh_guarded_segment_t* gs, const hh_guarded_slot_t* slot) {
  return gs->first_data + (size_t)slot->index * gs->stride;
}

static uint32_t slots_used(const hh_guarded_segment_t* gs) {
  return atomic_load_explicit(&gs->table->slots_used, memory_order_acquire);
}

/* Layout of a segment of class cls: a header (segment header, page
 * descriptor, guarded info) rounded to pages, then a guard and n * (data +
 * guard). */
static uint32_t slots_fitting(unsigned cls, size_t* header_bytes) {
  size_t page = hhi_os_page_size();
  size_t header = hhi_align_up(HH_GUARDED_INFO_OFFSET + sizeof(hh_guarded_segment_t), page);
  *header_bytes = header;
  return (uint32_t)((HH_SEGMENT_SIZE - header - page) / (class_bytes(cls) + page));
}

static hh_guarded_segment_t* segment_new(unsigned cls) {
  size_t header;
  uint32_t n = slots_fitting(cls, &header);
  if (n == 0) return NULL;
  size_t table_bytes = sizeof(hh_guarded_table_t) + n * sizeof(hh_guarded_slot_t);
  uintptr_t hint = HH_RANDOM_ADDRESSES ? hhi_random_address(NULL, hhi_os_page_size()) : 0;
  hh_guarded_table_t* table = hhi_os_alloc_guarded(table_bytes, hint);
  if (table == NULL) return NULL;
  hint = HH_RANDOM_ADDRESSES ? hhi_random_address(NULL, HH_SEGMENT_SIZE) : 0;
  uint8_t* base = hhi_os_alloc_aligned(HH_SEGMENT_SIZE, HH_SEGMENT_SIZE, 0, hint, false, false);
  /* everything past the header starts inaccessible: guards and free data */
  if (base == NULL || !hhi_os_protect(base + header, HH_SEGMENT_SIZE - header)) {
    if (base != NULL) hhi_os_free(base, HH_SEGMENT_SIZE);
    hhi_os_free_guarded(table, table_bytes);
    return NULL;
  }
  hh_segment_t* segment = (hh_segment_t*)base;
  segment->cookie = (uintptr_t)segment ^ hhi_process_cookie;
  segment->segment_size = segment->mapping_size = HH_SEGMENT_SIZE;
  segment->info_size = header;
  segment->kind = HH_SEGMENT_GUARDED;
  segment->page_shift = 63;  /* every address maps to the one page descriptor, never in use */
  segment->page_count = 1;
  hh_guarded_segment_t* gs = segment_info(segment);
  gs->segment = segment;
  gs->size_class = cls;
  gs->slot_count = n;
  gs->slot_pages = (size_t)1 << cls;
  gs->stride = class_bytes(cls) + hhi_os_page_size();
  gs->first_data = base + header + hhi_os_page_size();
  gs->table = table;
  for (uint32_t i = 0; i < n; i++) {
    table->slots[i].index = i;
    table->slots[i].owner = gs;
  }
  if (!hhi_segment_map_add(segment)) {
    hhi_os_free(base, HH_SEGMENT_SIZE);
    hhi_os_free_guarded(table, table_bytes);
    return NULL;
  }
  /* nothing in the header changes from now on: a stray write into it
   * faults (and is reported as a wild access) instead of forging it */
  (void)hhi_os_protect_read_only(base, header);
  hhi_stat_add(&hhi_stats.reserved, &hhi_stats.reserved_peak, HH_SEGMENT_SIZE);
  return gs;
}

/* Reuse takes one of the first HH_GUARDED_REUSE_CHOICE free slots at
 * random (or an untouched one, when there are): which slot a freed block's
 * address goes to next is not known in advance. */
#define HH_GUARDED_REUSE_CHOICE 16

static hh_guarded_slot_t* free_list_take(unsigned cls) {
  size_t choices = free_count[cls] < HH_GUARDED_REUSE_CHOICE ? free_count[cls] : HH_GUARDED_REUSE_CHOICE;
  size_t pick = (size_t)(hhi_random_next(&choice_state) % choices);
  hh_guarded_slot_t** link = &free_slots[cls];
  while (pick-- > 0) link = &(*link)->next_free;
  hh_guarded_slot_t* slot = *link;
  *link = slot->next_free;
  free_count[cls]--;
  return slot;
}

/* A FREE slot of class cls, under the lock; NULL when no memory. */
static hh_guarded_slot_t* slot_take(unsigned cls) {
  if (choice_state == 0) choice_state = config.seed ^ 0x5851f42d4c957f2dull;
  hh_guarded_segment_t* gs = growing[cls];
  bool fresh = gs != NULL && slots_used(gs) < gs->slot_count;
  if (free_count[cls] != 0 && (!fresh || hhi_random_next(&choice_state) % 2 == 0)) return free_list_take(cls);
  if (!fresh) {
    gs = segment_new(cls);
    if (gs == NULL) return NULL;
    growing[cls] = gs;
  }
  uint32_t index = slots_used(gs);
  atomic_store_explicit(&gs->table->slots_used, index + 1, memory_order_release);
  return &gs->table->slots[index];
}

static void slot_release(hh_guarded_slot_t* slot) {
  unsigned cls = slot->owner->size_class;
  atomic_store_explicit(&slot->state, HH_GUARDED_FREE, memory_order_relaxed);
  slot->next_free = free_slots[cls];
  free_slots[cls] = slot;
  free_count[cls]++;
}

/* The slot whose data holds p, or NULL (header, guard, past the end). */
static hh_guarded_slot_t* slot_at(const hh_guarded_segment_t* gs, const void* p, bool* in_guard) {
  const uint8_t* a = p;
  *in_guard = false;
  if (a < gs->first_data) return NULL;
  size_t offset = (size_t)(a - gs->first_data);
  size_t index = offset / gs->stride;
  if (index >= slots_used(gs)) return NULL;
  *in_guard = offset % gs->stride >= gs->slot_pages * hhi_os_page_size();
  return &gs->table->slots[index];
}

/* Slots of up to two pages keep their pages when freed (inaccessible all
 * the same): giving them back and faulting them in again cost more than
 * clearing a small block at its next use. */
static bool purged_on_free(const hh_guarded_segment_t* gs) {
  return gs->slot_pages > 2;
}

/* ---- allocation ------------------------------------------------------------------*/
/* Place a block of size bytes in a new slot, aligned to alignment (0: the
 * default alignment, none with GUARDED_PRECISE). */
static void* guarded_place(hh_heap_t* heap, size_t size, size_t alignment, bool left) {
  size_t page = hhi_os_page_size();
  /* an alignment the program asked for is kept even by GUARDED_PRECISE */
  size_t align = alignment != 0 ? alignment : (config.precise ? 1 : HH_MIN_ALIGN);
  if (!config.precise && align < HH_MIN_ALIGN) align = HH_MIN_ALIGN;
  size_t extent = (size == 0 ? 1 : size) + (left ? 0 : align - 1);
  size_t pages = (extent + page - 1) / page;
  unsigned cls = 0;
  while (((size_t)1 << cls) < pages) cls++;
  if (cls >= HH_GUARDED_CLASSES) return NULL;

  void* frames[HH_GUARDED_STACK_DEPTH];
  int depth = hhi_stack_capture(frames, HH_GUARDED_STACK_DEPTH);  /* outside the lock: it may allocate */

  lock_acquire();
  hh_guarded_slot_t* slot = live_count < config.slots_max ? slot_take(cls) : NULL;
  if (slot != NULL) {
    live_count++;
    atomic_store_explicit(&slot->state, HH_GUARDED_LIVE, memory_order_relaxed);
  }
  lock_release();
  if (slot == NULL) {
    hhi_stat_add(&hhi_stats.guarded_skipped, NULL, 1);
    return NULL;
  }

  hh_guarded_segment_t* gs = slot->owner;
  uint8_t* data = slot_data(gs, slot);
  uint8_t* data_end = data + gs->slot_pages * page;
  uint8_t* block = left ? data : (uint8_t*)((uintptr_t)(data_end - (size == 0 ? 1 : size)) & ~(uintptr_t)(align - 1));
  uint8_t* open = (uint8_t*)((uintptr_t)block & ~(uintptr_t)(page - 1));
  uint8_t* open_end = (uint8_t*)hhi_align_up((uintptr_t)block + (size == 0 ? 1 : size), page);
  if (!hhi_os_unprotect(open, (size_t)(open_end - open))) {
    lock_acquire();
    live_count--;
    slot_release(slot);
    lock_release();
    hhi_stat_add(&hhi_stats.guarded_skipped, NULL, 1);
    return NULL;
  }
  /* calloc needs the block zero: slots purged at their last free (and
   * fresh ones) read as zero already, small ones are cleared here; the slack
   * around the block is filled, checked on free */
  if (!purged_on_free(gs)) memset(block, 0, size);
  memset(open, HH_GUARDED_FILL, (size_t)(block - open));
  memset(block + size, HH_GUARDED_FILL, (size_t)(open_end - block - size));

  slot->used_before = true;
  slot->heap = heap;
  slot->block = block;
  slot->requested = size;
  slot->open_offset = (size_t)(open - data);
  slot->open_size = (size_t)(open_end - open);
  slot->alloc_thread = hhi_os_thread_id();
  slot->free_thread = 0;
  slot->alloc_depth = (uint8_t)depth;
  slot->free_depth = 0;
  memcpy(slot->alloc_stack, frames, (size_t)depth * sizeof(void*));
  hhi_stat_add(&hhi_stats.guarded_sampled, NULL, 1);
  hhi_stat_add(&hhi_stats.guarded_live, NULL, 1);
  hhi_stat_add(&hhi_stats.guarded_live_bytes, NULL, size);
  return block;
}

void* hhi_guarded_malloc(hh_heap_t* heap, size_t size, bool zero, size_t alignment) {
  (void)zero;  /* guarded blocks are always zero */
  if (size < config.min || size > config.max || alignment > hhi_os_page_size()) {
    heap->guarded_countdown = 1;  /* the next allocation is a candidate instead */
    return NULL;
  }
  /* taking the stack may allocate (the unwinder's first use loads it):
   * those allocations are not sampled */
  if (placing) {
    heap->guarded_countdown = 1;
    return NULL;
  }
  heap->guarded_countdown = next_interval(heap);
  bool left = hhi_random_next(&heap->guarded_state) % 100 < config.underflow;
  int saved_errno = errno;
  placing = true;
  void* p = guarded_place(heap, size, alignment, left);
  placing = false;
  errno = saved_errno;
  if (p != NULL) {
    hhi_heap_count_alloc(heap, size);
    hhi_track_malloc(p, size, size, true);
  }
  return p;
}

/* ---- reports ------------------------------------------------------------------------*/
static void print_history(const void* arg) {
  const hh_guarded_history_t* h = arg;
  if (h->now_label != NULL) {
    hhi_print_error("hardheap:   %s, by thread %lu:\n", h->now_label, hhi_os_thread_id());
    hhi_stack_print(h->now_stack, h->now_depth);
  }
  const hh_guarded_slot_t* slot = h->slot;
  if (slot != NULL && slot->used_before) {
    hhi_print_error("hardheap:   the %zu-byte block at %p was allocated by thread %lu:\n", slot->requested,
                    (void*)slot->block, slot->alloc_thread);
    hhi_stack_print(slot->alloc_stack, slot->alloc_depth);
    if (atomic_load_explicit(&slot->state, memory_order_relaxed) != HH_GUARDED_LIVE && slot->free_thread != 0) {
      hhi_print_error("hardheap:   and freed by thread %lu:\n", slot->free_thread);
      hhi_stack_print(slot->free_stack, slot->free_depth);
    }
  }
  hhi_print_error("hardheap:   guarded sampling one in %ld, seed %llu (HARDHEAP_GUARDED_SAMPLE_SEED=%llu samples "
                  "the same allocations of the same run again)\n",
                  config.rate, (unsigned long long)config.seed, (unsigned long long)config.seed);
}

static void report(hh_op_t op, hh_misuse_info_t facts, const hh_guarded_slot_t* slot, const char* now_label) {
  hh_guarded_history_t h = {.slot = slot, .now_label = now_label};
  h.now_depth = hhi_stack_capture(h.now_stack, HH_GUARDED_STACK_DEPTH);
  hhi_misuse_more(op, facts, print_history, &h);
}

void hhi_guarded_report_fault(hh_op_t op, hh_misuse_info_t facts, const hh_guarded_slot_t* slot, void* const* stack,
                              int depth) {
  hh_guarded_history_t h = {.slot = slot, .now_label = "the access", .now_depth = depth};
  memcpy(h.now_stack, stack, (size_t)depth * sizeof(void*));
  hhi_misuse_more(op, facts, print_history, &h);
}

static const char* op_label(hh_op_t op) {
  switch (op) {
    case HH_OP_REALLOC: return "the realloc";
    case HH_OP_USABLE_SIZE: return "the usable_size";
    default: return "the free";
  }
}

/* ---- from a pointer to its slot -----------------------------------------------------*/
bool hhi_guarded_lookup(const void* p, hh_segment_t* segment, hh_op_t op, hh_block_ref_t* ref) {
  if (hh_unlikely(segment->cookie != ((uintptr_t)segment ^ hhi_process_cookie))) {
    if (op != HH_OP_NONE) {
      hhi_misuse(op, (hh_misuse_info_t){.kind = HH_MISUSE_SEGMENT_CORRUPTED, .pointer = p, .segment = segment});
    }
    return false;
  }
  hh_guarded_segment_t* gs = segment_info(segment);
  bool in_guard;
  hh_guarded_slot_t* slot = slot_at(gs, p, &in_guard);
  uint8_t state = slot == NULL ? HH_GUARDED_FREE : atomic_load_explicit(&slot->state, memory_order_acquire);
  if (slot != NULL && !in_guard && p == slot->block && slot->used_before) {
    if (state == HH_GUARDED_LIVE) {
      ref->segment = segment;
      ref->page = NULL;
      ref->block = (hh_block_t*)slot->block;
      ref->idx = slot->index;
      ref->is_owner = false;
      return true;
    }
    if (op != HH_OP_NONE) {
      report(op, (hh_misuse_info_t){.kind = hhi_misuse_freed_kind(op), .pointer = p, .block = p,
                                    .segment = segment, .size_class = slot->requested,
                                    .requested_size = slot->requested},
             slot, op == HH_OP_FREE ? "the second free" : op_label(op));
    }
    return false;
  }
  if (op == HH_OP_NONE) return false;
  bool inside = slot != NULL && !in_guard && state == HH_GUARDED_LIVE && (const uint8_t*)p > slot->block &&
                (const uint8_t*)p < slot->block + slot->requested;
  report(op, (hh_misuse_info_t){.kind = inside ? HH_MISUSE_INTERIOR_POINTER : HH_MISUSE_NOT_A_BLOCK,
                                .pointer = p, .block = inside ? slot->block : NULL, .segment = segment,
                                .size_class = inside ? slot->requested : 0},
         inside ? slot : NULL, op_label(op));
  return false;
}

static hh_guarded_slot_t* ref_slot(const hh_block_ref_t* ref) {
  return &segment_info(ref->segment)->table->slots[ref->idx];
}

size_t hhi_guarded_usable_size(const hh_block_ref_t* ref) {
  return ref_slot(ref)->requested;
}

const hh_heap_t* hhi_guarded_owner(const void* p) {
  hh_segment_t* segment = hhi_ptr_segment(p);
  if (!hhi_segment_map_contains(segment) || segment->kind != HH_SEGMENT_GUARDED) return NULL;
  bool in_guard;
  const hh_guarded_slot_t* slot = slot_at(segment_info(segment), p, &in_guard);
  if (slot == NULL || in_guard || atomic_load_explicit(&slot->state, memory_order_acquire) != HH_GUARDED_LIVE) {
    return NULL;
  }
  const uint8_t* a = p;
  if (a < slot->block || a >= slot->block + (slot->requested == 0 ? 1 : slot->requested)) return NULL;
  return slot->heap;
}

/* ---- free ---------------------------------------------------------------------------*/
/* False when a byte of the open pages outside the block lost its fill;
 * *damaged: the nearest such byte's offset from the block (negative: before it). */
/* True when [from, to) holds only the fill; a word at a time (the slack
 * before a right-placed block, or after a left-placed one, is up to a page). */
static bool fill_intact(const uint8_t* from, const uint8_t* to) {
  const uint64_t fill = 0x0101010101010101ull * HH_GUARDED_FILL;
  while (from < to && ((uintptr_t)from & 7) != 0) {
    if (*from++ != HH_GUARDED_FILL) return false;
  }
  for (; from + 8 <= to; from += 8) {
    uint64_t word;
    memcpy(&word, from, sizeof(word));
    if (word != fill) return false;
  }
  for (; from < to; from++) {
    if (*from != HH_GUARDED_FILL) return false;
  }
  return true;
}

static bool slack_intact(const hh_guarded_slot_t* slot, const uint8_t* data, ptrdiff_t* damaged) {
  const uint8_t* open = data + slot->open_offset;
  const uint8_t* open_end = open + slot->open_size;
  if (hh_likely(fill_intact(open, slot->block) && fill_intact(slot->block + slot->requested, open_end))) {
    return true;
  }
  /* damaged: find the byte nearest to the block on either side */
  for (const uint8_t* b = slot->block + slot->requested; b < open_end; b++) {
    if (*b != HH_GUARDED_FILL) {
      *damaged = b - slot->block;
      return false;
    }
  }
  for (const uint8_t* b = slot->block; b-- > open;) {
    if (*b != HH_GUARDED_FILL) {
      *damaged = b - slot->block;
      return false;
    }
  }
  return true;
}

static void quarantine_push(hh_guarded_slot_t* slot) {
  if (config.quarantine_max != 0 && quarantine == NULL) {
    quarantine = hhi_os_alloc_aligned(config.quarantine_max * sizeof(hh_guarded_slot_t*), hhi_os_page_size(), 0,
                                      0, false, false);
  }
  if (quarantine == NULL) {  /* no quarantine: the slot is reusable at once, still inaccessible */
    slot_release(slot);
    return;
  }
  if (quarantine_count == config.quarantine_max) {
    slot_release(quarantine[quarantine_head]);
    quarantine_head = (quarantine_head + 1) % config.quarantine_max;
    quarantine_count--;
    hhi_stat_sub(&hhi_stats.guarded_quarantined, 1);
  }
  quarantine[(quarantine_head + quarantine_count) % config.quarantine_max] = slot;
  quarantine_count++;
  hhi_stat_add(&hhi_stats.guarded_quarantined, NULL, 1);
}

void hhi_guarded_free(const hh_block_ref_t* ref, void* p) {
  hh_guarded_slot_t* slot = ref_slot(ref);
  hh_guarded_segment_t* gs = segment_info(ref->segment);
  uint8_t* data = slot_data(gs, slot);
  /* claim the block first: of two racing frees one wins, and the loser
   * reports a double free without touching pages the winner closes */
  uint8_t expected = HH_GUARDED_LIVE;
  if (!atomic_compare_exchange_strong_explicit(&slot->state, &expected, HH_GUARDED_FREEING,
                                               memory_order_acq_rel, memory_order_relaxed)) {
    report(HH_OP_FREE, (hh_misuse_info_t){.kind = HH_MISUSE_DOUBLE_FREE, .pointer = p, .block = p,
                                          .size_class = slot->requested, .requested_size = slot->requested},
           slot, "the second free");
    return;
  }
  ptrdiff_t damaged;
  if (hh_unlikely(!slack_intact(slot, data, &damaged))) {
    atomic_store_explicit(&slot->state, HH_GUARDED_LIVE, memory_order_release);
    hh_misuse_t kind = damaged < 0 ? HH_MISUSE_HEAP_UNDERFLOW : HH_MISUSE_HEAP_OVERFLOW;
    report(HH_OP_FREE, (hh_misuse_info_t){.kind = kind, .pointer = p, .block = p,
                                          .size_class = slot->requested, .requested_size = slot->requested,
                                          .offset = damaged < 0 ? (size_t)-damaged : (size_t)damaged},
           slot, "found at its free");
    return;  /* going on: the block is leaked */
  }
  hhi_track_free(p, p, slot->requested);
  hhi_stat_sub(&hhi_stats.guarded_live_bytes, slot->requested);
  slot->free_thread = hhi_os_thread_id();
  slot->free_depth = (uint8_t)hhi_stack_capture(slot->free_stack, HH_GUARDED_STACK_DEPTH);
  /* inaccessible before anything else: a racing use faults from now on */
  uint8_t* open = data + slot->open_offset;
  (void)hhi_os_protect(open, slot->open_size);
  if (purged_on_free(gs)) (void)hhi_os_purge(open, slot->open_size);
  atomic_store_explicit(&slot->state, HH_GUARDED_QUARANTINED, memory_order_release);
  lock_acquire();
  live_count--;
  quarantine_push(slot);
  lock_release();
  hhi_stat_sub(&hhi_stats.guarded_live, 1);
}

/* ---- faults -------------------------------------------------------------------------*/
/* A block being freed counts as live until its pages close. */
static bool holds_block(const hh_guarded_slot_t* slot) {
  if (slot == NULL) return false;
  uint8_t state = atomic_load_explicit(&slot->state, memory_order_acquire);
  return state == HH_GUARDED_LIVE || state == HH_GUARDED_FREEING;
}

/* Distance from the block of slot to a, when slot is live. */
static bool live_overflow(const hh_guarded_slot_t* slot, const uint8_t* a, size_t* distance) {
  if (!holds_block(slot)) return false;
  const uint8_t* end = slot->block + slot->requested;
  if (a < end) return false;
  *distance = (size_t)(a - end);
  return true;
}

static bool live_underflow(const hh_guarded_slot_t* slot, const uint8_t* a, size_t* distance) {
  if (!holds_block(slot)) return false;
  if (a >= slot->block) return false;
  *distance = (size_t)(slot->block - a);
  return true;
}

bool hhi_guarded_describe(const void* addr, hh_guarded_fault_t* out) {
  hh_segment_t* segment = hhi_ptr_segment(addr);
  if (!hhi_segment_map_contains(segment) || segment->kind != HH_SEGMENT_GUARDED ||
      segment->cookie != ((uintptr_t)segment ^ hhi_process_cookie)) {
    return false;
  }
  const hh_guarded_segment_t* gs = segment_info(segment);
  const uint8_t* a = addr;
  *out = (hh_guarded_fault_t){.kind = HH_MISUSE_GUARDED_WILD};
  size_t page = hhi_os_page_size();
  /* the slots either side of a: the one whose data or trailing guard holds
   * it, and the next one (a guard lies between them) */
  const hh_guarded_slot_t* before = NULL;
  const hh_guarded_slot_t* after = NULL;
  if (a < gs->first_data) {
    if (a >= gs->first_data - page && slots_used(gs) > 0) after = &gs->table->slots[0];
  } else {
    size_t offset = (size_t)(a - gs->first_data);
    size_t index = offset / gs->stride;
    if (index < slots_used(gs)) {
      const hh_guarded_slot_t* slot = &gs->table->slots[index];
      if (offset % gs->stride < gs->slot_pages * page) {
        /* in the slot's data, outside what is open */
        size_t distance;
        if (live_overflow(slot, a, &distance) || live_underflow(slot, a, &distance)) {
          out->kind = a < slot->block ? HH_MISUSE_GUARDED_UNDERFLOW : HH_MISUSE_GUARDED_OVERFLOW;
          out->slot = slot;
          out->offset = distance;
          return true;
        }
        if (slot->used_before && a >= slot->block && a < slot->block + (slot->requested == 0 ? 1 : slot->requested)) {
          out->kind = HH_MISUSE_GUARDED_USE_AFTER_FREE;
          out->slot = slot;
          out->offset = (size_t)(a - slot->block);
          return true;
        }
        if (slot->used_before) out->slot = slot;  /* near a freed block: its history helps */
        return true;
      }
      before = slot;
      if (index + 1 < slots_used(gs)) after = &gs->table->slots[index + 1];
    }
  }
  size_t over = SIZE_MAX, under = SIZE_MAX;
  bool has_over = live_overflow(before, a, &over);
  bool has_under = live_underflow(after, a, &under);
  if (has_over && (!has_under || over <= under)) {
    out->kind = HH_MISUSE_GUARDED_OVERFLOW;
    out->slot = before;
    out->offset = over;
  } else if (has_under) {
    out->kind = HH_MISUSE_GUARDED_UNDERFLOW;
    out->slot = after;
    out->offset = under;
  } else if (before != NULL && before->used_before) {
    out->slot = before;
  } else if (after != NULL && after->used_before) {
    out->slot = after;
  }
  return true;
}
