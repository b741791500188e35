/* hardheap: the table of heap misuse, and the one function that reports it.
 *
 * Each kind has a stable name and a fixed message; the message is a
 * template whose {fields} are filled from the facts, so every report of a
 * kind reads the same and tests can match it exactly. Reporting never
 * allocates: the line is formatted on the stack. */
#include "internal.h"

#include <stdlib.h>

#define HH_MISUSE_LINE_MAX 512

typedef struct hh_misuse_desc_s {
  const char* name;      /* stable short name (hh_misuse_name) */
  const char* message;   /* template: {field} is replaced by the fact of that name */
} hh_misuse_desc_t;

static const hh_misuse_desc_t misuse_table[HH_MISUSE_COUNT_] = {
    [HH_MISUSE_FOREIGN_POINTER] = {"foreign-pointer", "invalid {op} of {pointer}: not a pointer allocated by hardheap"},
    [HH_MISUSE_SEGMENT_CORRUPTED] = {"segment-corrupted",
                                     "invalid {op} of {pointer}: segment header at {segment} is corrupted"},
    [HH_MISUSE_FREE_PAGE] = {"free-page", "invalid {op} of {pointer}: not an allocated block (its page is free)"},
    [HH_MISUSE_NOT_A_BLOCK] = {"not-a-block",
                               "invalid {op} of {pointer}: not an allocated block (size class {size_class})"},
    [HH_MISUSE_INTERIOR_POINTER] = {"interior-pointer", "invalid {op} of {pointer}: pointer into the middle of a "
                                                        "block (size class {size_class})"},
    [HH_MISUSE_DOUBLE_FREE] = {"double-free", "double free of {pointer} (size class {size_class})"},
    [HH_MISUSE_REALLOC_FREED] = {"realloc-freed", "realloc of a freed block {pointer} (size class {size_class})"},
    [HH_MISUSE_USABLE_SIZE_FREED] = {"usable-size-freed",
                                     "usable_size of a freed block {pointer} (size class {size_class})"},
    [HH_MISUSE_FREE_LIST_CORRUPTED] = {"free-list-corrupted",
                                       "corrupted free list in the page at {page} (size class {size_class}): block "
                                       "{block} links to {value} (heap overflow or write after free?)"},
    [HH_MISUSE_FREE_LIST_NOT_FREE] = {"free-list-not-free",
                                      "corrupted free list in the page at {page} (size class {size_class}): "
                                      "{value} is not a free block (heap overflow or write after free?)"},
    [HH_MISUSE_REMOTE_LIST_CORRUPTED] = {"remote-list-corrupted",
                                         "corrupted remote-free list of the page at {page} (size class "
                                         "{size_class}): block {block} links to {value} (heap overflow or write "
                                         "after free?)"},
    [HH_MISUSE_DELAYED_LIST_CORRUPTED] = {"delayed-list-corrupted",
                                          "corrupted delayed-free list of heap {heap}: block {block} links to "
                                          "{value} (heap overflow or write after free?)"},
    [HH_MISUSE_SIZED_FREE_MISMATCH] = {"sized-free-mismatch", "sized free of {pointer} with size {size} larger "
                                                              "than its block ({usable_size} bytes)"},
    [HH_MISUSE_ALIGNED_FREE_MISALIGNED] = {"aligned-free-misaligned",
                                           "aligned sized free of {pointer}, which is not aligned to {alignment}"},
    [HH_MISUSE_HEAP_NOT_OWNED] = {"heap-not-owned", "{op} of heap {heap} by a thread that does not own it"},
    [HH_MISUSE_BACKING_HEAP_DESTROY] = {"backing-heap-destroy",
                                        "the backing heap {heap} of a thread cannot be destroyed"},
    [HH_MISUSE_HEAP_INVARIANT] = {"heap-invariant",
                                  "heap invariant broken in the page at {page} (size class {size_class}): {detail}"},
    [HH_MISUSE_HEAP_OVERFLOW] = {"heap-buffer-overflow",
                                 "heap buffer overflow past the {requested_size}-byte block at {pointer} (size class "
                                 "{size_class}): byte {offset} from its start was overwritten"},
    [HH_MISUSE_HEAP_OVERFLOW_SIZE] = {"heap-buffer-overflow-size",
                                      "heap buffer overflow past the block at {pointer} (size class {size_class}): "
                                      "its recorded size at byte {offset} from its start was overwritten"},
    [HH_MISUSE_WRITE_AFTER_FREE] = {"write-after-free",
                                    "write after free to the block at {pointer} (size class {size_class}): byte "
                                    "{offset} was written after it was freed"},
    [HH_MISUSE_HEAP_UNDERFLOW] = {"heap-buffer-underflow", "heap buffer underflow before the {requested_size}-byte "
                                                           "block at {pointer}: byte {offset} before its start "
                                                           "was overwritten"},
    [HH_MISUSE_GUARDED_OVERFLOW] = {"guarded-overflow", "heap buffer overflow: {op} of {pointer}, {offset} bytes "
                                                        "after the {requested_size}-byte block at {block} "
                                                        "(guarded sample)"},
    [HH_MISUSE_GUARDED_UNDERFLOW] = {"guarded-underflow", "heap buffer underflow: {op} of {pointer}, {offset} "
                                                          "bytes before the {requested_size}-byte block at "
                                                          "{block} (guarded sample)"},
    [HH_MISUSE_GUARDED_USE_AFTER_FREE] = {"guarded-use-after-free",
                                          "use after free: {op} of {pointer}, byte {offset} of the freed "
                                          "{requested_size}-byte block at {block} (guarded sample)"},
    [HH_MISUSE_GUARDED_WILD] = {"guarded-wild", "invalid {op} of {pointer}: in hardheap's guarded area, near "
                                                "no block"},
};

static const char* const op_names[HH_OP_COUNT_] = {
    [HH_OP_NONE] = "access",
    [HH_OP_FREE] = "free",
    [HH_OP_REALLOC] = "realloc",
    [HH_OP_USABLE_SIZE] = "usable_size",
    [HH_OP_HEAP_ALLOC] = "allocation",
    [HH_OP_HEAP_DELETE] = "delete",
    [HH_OP_HEAP_DESTROY] = "destroy",
    [HH_OP_HEAP_SET_DEFAULT] = "set_default",
    [HH_OP_HEAP_VISIT] = "visit",
    [HH_OP_VALIDATE] = "validate",
    [HH_OP_READ] = "read",
    [HH_OP_WRITE] = "write",
    [HH_OP_ACCESS] = "access",
};

hh_misuse_t hhi_misuse_freed_kind(hh_op_t op) {
  switch (op) {
    case HH_OP_REALLOC: return HH_MISUSE_REALLOC_FREED;
    case HH_OP_USABLE_SIZE: return HH_MISUSE_USABLE_SIZE_FREED;
    default: return HH_MISUSE_DOUBLE_FREE;
  }
}

const char* hh_misuse_name(hh_misuse_t kind) {
  if ((unsigned)kind >= HH_MISUSE_COUNT_) return NULL;
  return misuse_table[kind].name;
}

/* ---- the handler --------------------------------------------------------------
 * The function and its argument change together, under a small lock that
 * readers take too (reports are rare). */
static _Atomic(bool) handler_lock;
static hh_misuse_handler_fun* handler_fn;
static void* handler_arg;
static __thread bool in_handler hh_tls_initial_exec;

static void handler_lock_acquire(void) {
  while (atomic_exchange_explicit(&handler_lock, true, memory_order_acquire)) {
  }
}

static void handler_lock_release(void) {
  atomic_store_explicit(&handler_lock, false, memory_order_release);
}

hh_misuse_handler_fun* hh_set_misuse_handler(hh_misuse_handler_fun* handler, void* arg) {
  handler_lock_acquire();
  hh_misuse_handler_fun* old = handler_fn;
  handler_fn = handler;
  handler_arg = arg;
  handler_lock_release();
  return old;
}

/* ---- rendering ------------------------------------------------------------------*/
static bool field_is(const char* start, size_t len, const char* name) {
  return strlen(name) == len && memcmp(start, name, len) == 0;
}

/* Format the value of field {start, len} of info into out. */
static size_t render_field(char* out, size_t size, const char* start, size_t len, const hh_misuse_info_t* info) {
  if (field_is(start, len, "op")) return hhi_format(out, size, "%s", info->operation);
  if (field_is(start, len, "pointer")) return hhi_format(out, size, "%p", info->pointer);
  if (field_is(start, len, "block")) return hhi_format(out, size, "%p", info->block);
  if (field_is(start, len, "page")) return hhi_format(out, size, "%p", info->page);
  if (field_is(start, len, "segment")) return hhi_format(out, size, "%p", info->segment);
  if (field_is(start, len, "heap")) return hhi_format(out, size, "%p", info->heap);
  if (field_is(start, len, "size_class")) return hhi_format(out, size, "%zu", info->size_class);
  if (field_is(start, len, "usable_size")) return hhi_format(out, size, "%zu", info->usable_size);
  if (field_is(start, len, "size")) return hhi_format(out, size, "%zu", info->size);
  if (field_is(start, len, "alignment")) return hhi_format(out, size, "%zu", info->alignment);
  if (field_is(start, len, "value")) return hhi_format(out, size, "0x%zx", (size_t)info->value);
  if (field_is(start, len, "detail")) return hhi_format(out, size, "%s", info->detail);
  if (field_is(start, len, "requested_size")) return hhi_format(out, size, "%zu", info->requested_size);
  if (field_is(start, len, "offset")) return hhi_format(out, size, "%zu", info->offset);
  return hhi_format(out, size, "{?}");
}

static size_t render(char* out, size_t size, const char* template, const hh_misuse_info_t* info) {
  size_t n = 0;
  for (const char* t = template; *t != 0 && n + 1 < size; t++) {
    if (*t == '{') {
      const char* end = strchr(t, '}');
      if (end != NULL) {
        n += render_field(out + n, size - n, t + 1, (size_t)(end - t - 1), info);
        t = end;
        continue;
      }
    }
    out[n++] = *t;
  }
  out[n] = 0;
  return n;
}

/* ---- reporting ------------------------------------------------------------------*/
static _Atomic(long) errors_reported;

static void print_report(const char* message, bool always, hhi_misuse_more_fun* more, const void* more_arg) {
  long max = hhi_option_value(hh_option_max_errors);
  long n = atomic_fetch_add_explicit(&errors_reported, 1, memory_order_relaxed);
  if (always || max < 0 || n < max) {
    char line[HH_MISUSE_LINE_MAX + 32];
    size_t len = hhi_format(line, sizeof(line) - 1, "hardheap: error: %s", message);
    line[len++] = '\n';
    hhi_write_error(line, len);
    if (more != NULL) more(more_arg);
  } else if (n == max) {
    hhi_print_error("hardheap: error: further errors are not shown (HARDHEAP_MAX_ERRORS=%ld)\n", max);
  }
}

/* Where the misuse was caught: the program's frames that led to the call
 * (hardheap's own are dropped when printed). */
static void print_detecting_stack(const void* arg) {
  (void)arg;
  void* frames[HH_GUARDED_STACK_DEPTH];
  int depth = hhi_stack_capture(frames, HH_GUARDED_STACK_DEPTH);
  hhi_print_error("hardheap:   detected by thread %lu in:\n", hhi_os_thread_id());
  hhi_stack_print(frames, depth);
}

void hhi_misuse(hh_op_t op, hh_misuse_info_t facts) {
  /* only once the unwinder is loaded: loading it allocates */
  hhi_misuse_more(op, facts, hhi_stack_ready() ? print_detecting_stack : NULL, NULL);
}

void hhi_misuse_more(hh_op_t op, hh_misuse_info_t facts, hhi_misuse_more_fun* more, const void* more_arg) {
  hh_misuse_t kind = facts.kind;
  if ((unsigned)kind >= HH_MISUSE_COUNT_) hhi_fatal("misuse report of unknown kind %d", (int)kind);
  char message[HH_MISUSE_LINE_MAX];
  facts.name = misuse_table[kind].name;
  facts.operation = op_names[(unsigned)op < HH_OP_COUNT_ ? op : HH_OP_NONE];
  facts.thread_id = hhi_os_thread_id();
  if (facts.detail == NULL) facts.detail = "";
  facts.message = message;
  render(message, sizeof(message), misuse_table[kind].message, &facts);
  hhi_track_misuse(&facts);

  /* a misuse inside the handler (or while printing) gets the default policy */
  if (!in_handler) {
    handler_lock_acquire();
    hh_misuse_handler_fun* fn = handler_fn;
    void* arg = handler_arg;
    handler_lock_release();
    if (fn != NULL) {
      in_handler = true;
      bool handled = fn(&facts, arg);
      in_handler = false;
      if (handled) return;
    }
  }
  bool abort_now = hhi_option_enabled(hh_option_abort_on_misuse);
  /* a fault on a guard page kills the process whatever the options say:
   * it must not die without saying why */
  bool fatal = abort_now || hhi_misuse_is_fault(kind);
  if (fatal || hhi_option_enabled(hh_option_show_errors) || hhi_option_enabled(hh_option_verbose)) {
    print_report(message, fatal, more, more_arg);
  }
  if (abort_now) abort();
}

void hhi_misuse_on_page(hh_misuse_t kind, hh_op_t op, const void* p, const hh_page_t* page) {
  hhi_misuse(op, (hh_misuse_info_t){
                     .kind = kind,
                     .pointer = p,
                     .page = page != NULL ? page->page_start : NULL,
                     .segment = page != NULL ? (const void*)hhi_page_segment(page) : NULL,
                     .size_class = page != NULL ? page->block_size : 0,
                 });
}
