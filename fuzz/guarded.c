/* libFuzzer harness: sampled guarded allocations (secure build, sampling at
 * rate 1, no tracking mode: that one leaves samples out).
 *
 * The input is one bug on one guarded block: an overflow or underflow read
 * or write at a chosen distance, a use after free at a chosen offset, a
 * double free, a free of a chosen interior pointer, realloc or usable_size
 * of the freed block. The bug runs in a child process (a fault must not
 * end the fuzzer) whose misuse handler writes what it was told into shared
 * memory and exits. The child allocates, checks that the block is where a
 * sample must be (against the guard after it or before it, the slot's other
 * pages inaccessible), picks the distance inside the slot and its guards
 * and writes down the report that must follow; the parent checks the
 * report: the kind, the distance or offset, the block, "(guarded sample)"
 * in the line of a fault; and no report at all for a read of the block's
 * own slack, which cannot fault. When the input's last byte asks for it,
 * the handler declines the report instead: the child then prints it (to a
 * memory file the parent reads) and dies of the abort or the fault, and
 * the parent checks the printed report too: the line, the frames of the
 * call that caught it, and where the block was allocated and freed. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fuzz_common.h"

#define PAGE 4096u
#define REPORTED 42        /* the child's exit status after a report */
#define ABORTED 43         /* the child's exit status when it aborted after printing a report */
#define SLOT_CLASSES 9     /* guarded slots of 1 .. 256 pages */

typedef enum {
  BUG_OVERFLOW_WRITE,
  BUG_OVERFLOW_READ,
  BUG_UNDERFLOW_WRITE,
  BUG_UNDERFLOW_READ,
  BUG_UAF_WRITE,
  BUG_UAF_READ,
  BUG_DOUBLE_FREE,
  BUG_INTERIOR_FREE,
  BUG_REALLOC_FREED,
  BUG_USABLE_SIZE_FREED,
  BUG_COUNT
} bug_t;

/* What the child's handler saw, in memory shared with the parent. */
typedef struct {
  int reports;
  hh_misuse_t kind;
  size_t offset;
  const void* block;
  char message[256];
  /* what the child decided once it saw where its block is */
  uintptr_t p;           /* where the block is */
  size_t distance;       /* of the bad access from the block's edge, or the interior offset */
  hh_misuse_t expect;    /* the report it must get (HH_MISUSE_COUNT_: none) */
  size_t expect_offset;  /* its offset (0: not checked) */
  bool fault;            /* the report comes from a fault */
} seen_t;

static seen_t* seen;
static bool print_mode;  /* this input's report is declined, printed, and read back */
static int printed_fd = -1;  /* where the child's stderr goes in print mode */

/* The coverage build (scripts/fuzz-coverage.sh) writes the child's profile
 * too: the fault handler and the reports run only in children. */
int __llvm_profile_write_file(void) __attribute__((weak));
static _Noreturn void child_exit(int code) {
  if (__llvm_profile_write_file != NULL) __llvm_profile_write_file();
  _exit(code);
}

static bool record(const hh_misuse_info_t* info, void* arg) {
  (void)arg;
  seen->reports++;
  seen->kind = info->kind;
  seen->offset = info->offset;
  seen->block = info->block;
  size_t n = strlen(info->message);
  if (n >= sizeof seen->message) n = sizeof seen->message - 1;
  memcpy(seen->message, info->message, n);
  seen->message[n] = 0;
  if (print_mode) return false;  /* print it, then die as the build says */
  child_exit(REPORTED);  /* _exit is async-signal-safe: this may run in the fault handler */
}

static void on_abort(int sig) {
  (void)sig;
  child_exit(ABORTED);
}

int LLVMFuzzerInitialize(int* argc, char*** argv);
int LLVMFuzzerInitialize(int* argc, char*** argv) {
  (void)argc;
  static const char* const sampling[] = {"HARDHEAP_GUARDED_SAMPLE_RATE", "1", "HARDHEAP_GUARDED_SAMPLE_SEED", "1", NULL};
  fuzz_restart_with(*argv, sampling);
  seen = mmap(NULL, sizeof *seen, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  FUZZ_CHECK(seen != MAP_FAILED);
  printed_fd = memfd_create("guarded-report", MFD_CLOEXEC);
  FUZZ_CHECK(printed_fd >= 0);
  return 0;
}

static uintptr_t page_down(uintptr_t a) { return a & ~(uintptr_t)(PAGE - 1); }
static uintptr_t page_up(uintptr_t a) { return (a + PAGE - 1) & ~(uintptr_t)(PAGE - 1); }

/* Bytes of data of the slot a block of size bytes at alignment align gets. */
static uintptr_t slot_bytes(size_t size, size_t align, bool left) {
  size_t extent = size + (left ? 0 : align - 1);
  size_t pages = (extent + PAGE - 1) / PAGE;
  size_t cls = 0;
  while (((size_t)1 << cls) < pages) cls++;
  FUZZ_CHECK(cls < SLOT_CLASSES);
  return ((uintptr_t)1 << cls) * PAGE;
}

static volatile uint8_t sink;

/* Start of the data of the slot of slot_bytes bytes that holds p: a guarded
 * segment (4 MiB-aligned) has a header page and a guard page, then slots of
 * data and a guard each (src/types.h). */
static uintptr_t slot_start_of(uintptr_t p, uintptr_t slot_bytes) {
  uintptr_t first = (p & ~(uintptr_t)((4u << 20) - 1)) + 2 * PAGE;
  uintptr_t stride = slot_bytes + PAGE;
  return first + (p - first) / stride * stride;
}

/* Where p is and which report the bug must get; false when p is not where
 * a sample would be. */
static bool plan(bug_t bug, uintptr_t p, size_t size, size_t align, size_t raw_distance) {
  uintptr_t open = page_down(p), open_end = page_up(p + size);
  /* placed at its slot's start (after a guard), or so that it ends at
   * most align - 1 bytes before its slot's end (before a guard) */
  uintptr_t left_bytes = slot_bytes(size, align, true), right_bytes = slot_bytes(size, align, false);
  bool left = p == slot_start_of(p, left_bytes);
  bool right = slot_start_of(p, right_bytes) + right_bytes == open_end &&
               open_end - (p + size) < (align > 16 ? align : 16);
  if (p % align != 0 || !(left || right)) return false;
  uintptr_t slot_start = right ? slot_start_of(p, right_bytes) : p;
  uintptr_t slot_end = right ? open_end : p + left_bytes;
  seen->p = p;
  seen->expect = HH_MISUSE_COUNT_;
  switch (bug) {
    case BUG_OVERFLOW_WRITE:
    case BUG_OVERFLOW_READ: {
      size_t d = raw_distance % (slot_end + PAGE - (p + size));  /* up to the end of the guard after the slot */
      seen->distance = d;
      if (p + size + d >= open_end) {
        seen->fault = true;
        seen->expect = HH_MISUSE_GUARDED_OVERFLOW;
        seen->expect_offset = d;
      } else if (bug == BUG_OVERFLOW_WRITE) {
        seen->expect = HH_MISUSE_HEAP_OVERFLOW;  /* in the slack: found at free */
        seen->expect_offset = size + d;
      }
      break;
    }
    case BUG_UNDERFLOW_WRITE:
    case BUG_UNDERFLOW_READ: {
      size_t d = 1 + raw_distance % (p - (slot_start - PAGE));  /* down to the start of the guard before it */
      seen->distance = d;
      if (p - d < open) {
        seen->fault = true;
        seen->expect = HH_MISUSE_GUARDED_UNDERFLOW;
      } else if (bug == BUG_UNDERFLOW_WRITE) {
        seen->expect = HH_MISUSE_HEAP_UNDERFLOW;
      }
      seen->expect_offset = d;
      break;
    }
    case BUG_UAF_WRITE:
    case BUG_UAF_READ:
      seen->distance = raw_distance % size;
      seen->fault = true;
      seen->expect = HH_MISUSE_GUARDED_USE_AFTER_FREE;
      seen->expect_offset = seen->distance;
      break;
    case BUG_DOUBLE_FREE: seen->expect = HH_MISUSE_DOUBLE_FREE; break;
    case BUG_INTERIOR_FREE:
      seen->distance = 1 + raw_distance % size;
      seen->expect = seen->distance < size ? HH_MISUSE_INTERIOR_POINTER : HH_MISUSE_NOT_A_BLOCK;
      break;
    case BUG_REALLOC_FREED: seen->expect = HH_MISUSE_REALLOC_FREED; break;
    case BUG_USABLE_SIZE_FREED: seen->expect = HH_MISUSE_USABLE_SIZE_FREED; break;
    default: break;
  }
  return true;
}

/* The child: allocate, plan, run the bug, free what should be freed. */
static _Noreturn void child(bug_t bug, size_t size, size_t align, size_t raw_distance) {
  if (print_mode) {
    /* the report to the memory file; a fault kills the child plainly (not
     * through libFuzzer's handler, which would call it a crash), an abort
     * ends it with ABORTED */
    if (dup2(printed_fd, 2) < 0) child_exit(6);
    signal(SIGSEGV, SIG_DFL);
    signal(SIGBUS, SIG_DFL);
    signal(SIGABRT, on_abort);
  }
  hh_set_misuse_handler(record, NULL);
  hh_stats_t before, after;
  hh_stats_get(&before);
  uint8_t* p = align == 16 ? hh_malloc(size) : hh_malloc_aligned(size, align);
  if (p == NULL) child_exit(3);
  hh_stats_get(&after);
  if (after.guarded_sampled != before.guarded_sampled + 1) child_exit(4);  /* not sampled */
  if (!plan(bug, (uintptr_t)p, size, align, raw_distance)) child_exit(5);
  size_t distance = seen->distance;
  volatile uint8_t* v = p;
  switch (bug) {
    case BUG_OVERFLOW_WRITE: v[size + distance] = 0x2a; break;
    case BUG_OVERFLOW_READ: sink = v[size + distance]; break;
    case BUG_UNDERFLOW_WRITE: *(v - distance) = 0x2a; break;
    case BUG_UNDERFLOW_READ: sink = *(v - distance); break;
    case BUG_UAF_WRITE: hh_free(p); v[distance] = 0x2a; break;
    case BUG_UAF_READ: hh_free(p); sink = v[distance]; break;
    case BUG_DOUBLE_FREE: hh_free(p); hh_free(p); break;
    case BUG_INTERIOR_FREE: hh_free(p + distance); break;
    case BUG_REALLOC_FREED: hh_free(p); (void)hh_realloc(p, size + 1); break;
    case BUG_USABLE_SIZE_FREED: hh_free(p); (void)hh_usable_size(p); break;
    default: break;
  }
  /* a bug that did not fault: free the block (its slack is checked) */
  if (bug <= BUG_UNDERFLOW_READ) hh_free(p);
  child_exit(0);
}

/* The report as the child printed it: its line, the frames of the call
 * that caught it, and the block's history. */
static void check_printed(bug_t bug) {
  static char text[65536];
  ssize_t n = pread(printed_fd, text, sizeof text - 1, 0);
  FUZZ_CHECK(n > 0);
  text[n] = 0;
  char line[300];
  snprintf(line, sizeof line, "hardheap: error: %s\n", seen->message);
  bool ok = strstr(text, line) != NULL && strstr(text, "    #0 0x") != NULL;
  /* a pointer near no block (an interior free off the block) has no history */
  if (seen->expect != HH_MISUSE_NOT_A_BLOCK) {
    bool freed_first = bug == BUG_UAF_WRITE || bug == BUG_UAF_READ || bug == BUG_DOUBLE_FREE ||
                       bug == BUG_REALLOC_FREED || bug == BUG_USABLE_SIZE_FREED;
    ok = ok && strstr(text, "was allocated by thread") != NULL;
    if (freed_first) ok = ok && strstr(text, "and freed by thread") != NULL;
  }
  if (!ok) {
    fuzz_write_err("guarded: the printed report lacks a part; it was:\n");
    fuzz_write_err(text);
  }
  FUZZ_CHECK(ok);
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size_in);
int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size_in) {
  reader_t r = {data, size_in};
  bug_t bug = (bug_t)(rd_u8(&r) % BUG_COUNT);
  size_t size = 1 + rd_u24(&r) % (1u << 18);  /* up to 256 KiB: slots of up to 64 pages */
  uint8_t align_choice = rd_u8(&r);
  size_t align = align_choice < 192 ? 16 : (size_t)16 << (align_choice % 9);  /* 16 .. 4096 */
  size_t raw_distance = rd_u24(&r);
  print_mode = rd_u8(&r) >= 192;

  memset(seen, 0, sizeof *seen);
  if (print_mode) {
    FUZZ_CHECK(ftruncate(printed_fd, 0) == 0 && lseek(printed_fd, 0, SEEK_SET) == 0);
  }
  pid_t pid = fork();
  FUZZ_CHECK(pid >= 0);
  if (pid == 0) child(bug, size, align, raw_distance);
  int status;
  pid_t waited;
  do waited = waitpid(pid, &status, 0);
  while (waited < 0 && errno == EINTR);  /* libFuzzer's timeout alarm */
  FUZZ_CHECK(waited == pid);
  if (seen->p == 0) {
    char line[160];
    snprintf(line, sizeof line, "size %zu align %zu: child status %#x before the bug (3: NULL, 4: not sampled, "
             "5: not against a guard)\n", size, align, (unsigned)status);
    fuzz_write_err(line);
  }
  FUZZ_CHECK(seen->p != 0);
  if (seen->expect == HH_MISUSE_COUNT_) {
    FUZZ_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    FUZZ_CHECK(seen->reports == 0);
    return 0;
  }
  bool reported = WIFEXITED(status) && WEXITSTATUS(status) == REPORTED && seen->reports == 1;
  if (print_mode) {
    bool died = (WIFEXITED(status) && WEXITSTATUS(status) == ABORTED) ||
                (WIFSIGNALED(status) && (WTERMSIG(status) == SIGSEGV || WTERMSIG(status) == SIGBUS));
    reported = died && seen->reports == 1;
    if (reported) check_printed(bug);
  }
  if (!reported || seen->kind != seen->expect ||
      (seen->expect_offset != 0 && seen->offset != seen->expect_offset)) {
    char line[400];
    snprintf(line, sizeof line, "bug %d size %zu align %zu distance %zu: want kind %d offset %zu; status %#x, got: %s\n",
             (int)bug, size, align, seen->distance, (int)seen->expect, seen->expect_offset, (unsigned)status,
             seen->message);
    fuzz_write_err(line);
  }
  FUZZ_CHECK(reported);
  FUZZ_CHECK(seen->kind == seen->expect);
  if (seen->expect_offset != 0) FUZZ_CHECK(seen->offset == seen->expect_offset);
  if (seen->expect != HH_MISUSE_NOT_A_BLOCK) FUZZ_CHECK(seen->block == (const void*)seen->p);
  if (seen->fault) FUZZ_CHECK(strstr(seen->message, "(guarded sample)") != NULL);
  return 0;
}
