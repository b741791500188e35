/* The misuse table and its handler (include/hardheap.h, src/misuse.c).
 *
 * Every kind has a distinct stable name; a handler installed with
 * hh_set_misuse_handler sees each report first with its kind, operation,
 * facts and the exact report line, and returning true lets the program go
 * on after the documented safe action (so the secure build can
 * report-and-continue). A handler that returns false leaves the default
 * policy: the line is printed on stderr, and ABORT_ON_MISUSE decides
 * whether the process aborts. hh_heap_validate holds after ordinary use and
 * reports a broken free list. Every test runs in its own process (Check's
 * fork mode), so a corrupted heap never reaches the next one.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hardheap.h"

static volatile uintptr_t sink;
static void* launder(void* p) {
  sink = (uintptr_t)p;
  return (void*)sink;
}

/* Flip bits of the byte at p, past the requested size: the overflow a buggy
 * program makes. Not instrumented: in the ASan tracking build that slack
 * is poisoned, and the point here is what the canary check on free sees. */
__attribute__((no_sanitize("address"))) static void overflow_byte(void* p, size_t offset, unsigned char bits) {
  ((volatile unsigned char*)launder(p))[offset] ^= bits;
}

/* ---- a handler that records the last report ------------------------------------*/
typedef struct seen_s {
  int count;
  hh_misuse_info_t info;  /* copied; message and detail copied below */
  char message[512];
  char operation[32];
  bool handled;           /* what the handler returns */
} seen_t;

static seen_t seen;

static bool record(const hh_misuse_info_t* info, void* arg) {
  seen_t* s = arg;
  s->count++;
  s->info = *info;
  snprintf(s->message, sizeof s->message, "%s", info->message);
  snprintf(s->operation, sizeof s->operation, "%s", info->operation != NULL ? info->operation : "");
  return s->handled;
}

static void watch(void) {
  memset(&seen, 0, sizeof seen);
  seen.handled = true;
  hh_set_misuse_handler(record, &seen);
}

static void expect_report(hh_misuse_t kind, const char* operation, const char* message) {
  ck_assert_int_eq(seen.count, 1);
  ck_assert_int_eq(seen.info.kind, kind);
  ck_assert_str_eq(seen.info.name, hh_misuse_name(kind));
  ck_assert_str_eq(seen.operation, operation);
  ck_assert_str_eq(seen.message, message);
  ck_assert_uint_ne(seen.info.thread_id, 0);
}

/* ---- the table ---------------------------------------------------------------*/
START_TEST(test_names_distinct) {
  for (int a = 0; a < HH_MISUSE_COUNT_; a++) {
    const char* name = hh_misuse_name((hh_misuse_t)a);
    ck_assert_ptr_nonnull(name);
    ck_assert_uint_gt(strlen(name), 3);
    for (int b = 0; b < a; b++) ck_assert_str_ne(name, hh_misuse_name((hh_misuse_t)b));
  }
  ck_assert_ptr_null(hh_misuse_name(HH_MISUSE_COUNT_));
  ck_assert_ptr_null(hh_misuse_name((hh_misuse_t)-1));
}
END_TEST

START_TEST(test_handler_replaced_and_removed) {
  ck_assert(hh_set_misuse_handler(record, &seen) == NULL);
  ck_assert(hh_set_misuse_handler(NULL, NULL) == record);
  ck_assert(hh_set_misuse_handler(NULL, NULL) == NULL);
}
END_TEST

/* ---- reports every build makes -------------------------------------------------*/
START_TEST(test_foreign_free) {
  watch();
  int on_stack[4];
  char expected[128];
  snprintf(expected, sizeof expected, "invalid free of %p: not a pointer allocated by hardheap", (void*)on_stack);
  hh_free(launder(on_stack));
  expect_report(HH_MISUSE_FOREIGN_POINTER, "free", expected);
  ck_assert_ptr_eq(seen.info.pointer, on_stack);
  /* the safe actions of realloc and usable_size */
  ck_assert_ptr_null(hh_realloc(launder(on_stack), 100));
  ck_assert_int_eq(seen.count, 2);
  ck_assert_str_eq(seen.operation, "realloc");
  ck_assert_uint_eq(hh_usable_size(launder(on_stack)), 0);
  ck_assert_str_eq(seen.operation, "usable_size");
}
END_TEST

static void* alloc_from(void* heap) {
  return hh_heap_malloc(heap, 64);
}

START_TEST(test_heap_not_owned) {
  hh_heap_t* heap = hh_heap_new();
  watch();
  pthread_t t;
  void* result = (void*)1;
  ck_assert_int_eq(pthread_create(&t, NULL, alloc_from, heap), 0);
  ck_assert_int_eq(pthread_join(t, &result), 0);
  ck_assert_ptr_null(result);
  char expected[128];
  snprintf(expected, sizeof expected, "allocation of heap %p by a thread that does not own it", (void*)heap);
  expect_report(HH_MISUSE_HEAP_NOT_OWNED, "allocation", expected);
  ck_assert_ptr_eq(seen.info.heap, heap);
}
END_TEST

START_TEST(test_destroy_backing_heap) {
  hh_heap_t* backing = hh_heap_get_backing();
  void* p = hh_malloc(100);
  watch();
  hh_heap_destroy(backing);
  char expected[128];
  snprintf(expected, sizeof expected, "the backing heap %p of a thread cannot be destroyed", (void*)backing);
  expect_report(HH_MISUSE_BACKING_HEAP_DESTROY, "destroy", expected);
  memset(p, 1, 100);  /* still alive: the destroy was refused */
  hh_free(p);
}
END_TEST

/* Sizes are chosen so their size class is the same with and without
 * canaries (which take a few bytes after the request). */
START_TEST(test_large_double_free) {
  void* keep = hh_malloc(327671);
  void* p = hh_malloc(327671);
  hh_free(p);
  watch();
  hh_free(launder(p));
  char expected[128];
  snprintf(expected, sizeof expected, "double free of %p (size class 327680)", p);
  expect_report(HH_MISUSE_DOUBLE_FREE, "free", expected);
  ck_assert_uint_eq(seen.info.size_class, 327680);
  hh_free(keep);
}
END_TEST

/* A handler that declines leaves the default policy: printed, then (with
 * ABORT_ON_MISUSE off) the program goes on. */
START_TEST(test_declined_report_is_printed) {
  ck_assert(hh_option_set(hh_option_abort_on_misuse, 0));
  watch();
  seen.handled = false;
  int err_pipe[2];
  ck_assert_int_eq(pipe(err_pipe), 0);
  int saved = dup(2);
  dup2(err_pipe[1], 2);
  int on_stack[2];
  hh_free(launder(on_stack));
  dup2(saved, 2);
  close(err_pipe[1]);
  char out[4096] = {0};
  ssize_t n = read(err_pipe[0], out, sizeof out - 1);
  ck_assert_int_gt(n, 0);
  char expected[160];
  snprintf(expected, sizeof expected, "hardheap: error: invalid free of %p: not a pointer allocated by hardheap\n",
           (void*)on_stack);
  ck_assert_msg(strncmp(out, expected, strlen(expected)) == 0, "got: %s", out);
  /* the secure build (its unwinder loaded at start) says where it was caught */
  const char* rest = out + strlen(expected);
  if (hh_is_secure()) {
    ck_assert_msg(strncmp(rest, "hardheap:   detected by thread ", 31) == 0, "got: %s", out);
    ck_assert_msg(strstr(rest, "    #0 0x") != NULL, "no frames: %s", out);
  } else {
    ck_assert_str_eq(rest, "");
  }
  ck_assert_int_eq(seen.count, 1);
}
END_TEST

START_TEST(test_abort_on_misuse_option) {
  ck_assert(hh_option_set(hh_option_abort_on_misuse, 1));
  int on_stack[2];
  hh_free(launder(on_stack));  /* reported, then abort: SIGABRT */
}
END_TEST

/* ---- reports of the secure build ---------------------------------------------------*/
START_TEST(test_secure_small_double_free_continues) {
  if (!hh_is_secure()) return;
  void* keep = hh_malloc(40);
  void* p = hh_malloc(40);
  hh_free(p);
  watch();
  hh_free(launder(p));
  char expected[128];
  snprintf(expected, sizeof expected, "double free of %p (size class 48)", p);
  expect_report(HH_MISUSE_DOUBLE_FREE, "free", expected);
  /* the second free was ignored: the block comes back once, not twice */
  void* a = hh_malloc(40);
  void* b = hh_malloc(40);
  ck_assert_ptr_ne(a, b);
  ck_assert_int_eq(seen.count, 1);
  hh_free(a);
  hh_free(b);
  hh_free(keep);
  ck_assert(hh_heap_validate(NULL));
}
END_TEST

START_TEST(test_secure_interior_pointer) {
  if (!hh_is_secure()) return;
  char* p = hh_malloc(56);
  watch();
  hh_free(launder(p + 16));
  char expected[128];
  snprintf(expected, sizeof expected, "invalid free of %p: pointer into the middle of a block (size class 64)",
           (void*)(p + 16));
  expect_report(HH_MISUSE_INTERIOR_POINTER, "free", expected);
  memset(p, 2, 56);  /* not freed */
  hh_free(p);
}
END_TEST

START_TEST(test_secure_sized_free) {
  if (!hh_is_secure()) return;
  void* p = hh_malloc(64);
  watch();
  hh_free_sized(launder(p), 65);
  char expected[128];
  snprintf(expected, sizeof expected, "sized free of %p with size 65 larger than its block (64 bytes)", p);
  expect_report(HH_MISUSE_SIZED_FREE_MISMATCH, "free", expected);
  ck_assert_uint_eq(seen.info.size, 65);
  ck_assert_uint_eq(seen.info.usable_size, 64);
  hh_free_sized(p, 64);
  ck_assert_int_eq(seen.count, 1);
}
END_TEST

START_TEST(test_secure_freed_large_block) {
  if (!hh_is_secure()) return;
  void* keep = hh_malloc(327671);
  void* p = hh_malloc(327671);
  hh_free(p);
  watch();
  ck_assert_ptr_null(hh_realloc(launder(p), 10));
  char expected[128];
  snprintf(expected, sizeof expected, "realloc of a freed block %p (size class 327680)", p);
  expect_report(HH_MISUSE_REALLOC_FREED, "realloc", expected);
  ck_assert_uint_eq(hh_usable_size(launder(p)), 0);
  ck_assert_int_eq(seen.info.kind, HH_MISUSE_USABLE_SIZE_FREED);
  hh_free(keep);
}
END_TEST

/* A huge block asked for with a large alignment is handed out inside its
 * block (its segment's header comes first): after the free, that address
 * is still known as a freed block's, while another address inside the
 * freed block is not one that was handed out. */
START_TEST(test_secure_freed_aligned_huge_block) {
  if (!hh_is_secure()) return;
  size_t alignment = (size_t)1 << 20;
  char* p = hh_malloc_aligned((size_t)3 << 20, alignment);
  ck_assert_ptr_nonnull(p);
  ck_assert_uint_eq((uintptr_t)p % alignment, 0);
  char* plain = hh_malloc((size_t)3 << 20);
  ck_assert_ptr_nonnull(plain);
  hh_free(p);
  hh_free(plain);
  watch();
  errno = 0;
  ck_assert_ptr_null(hh_realloc(launder(p), 100));
  ck_assert_int_eq(errno, EINVAL);
  ck_assert_int_eq(seen.count, 1);
  ck_assert_int_eq(seen.info.kind, HH_MISUSE_REALLOC_FREED);
  ck_assert_ptr_eq(seen.info.pointer, p);
  ck_assert_uint_eq(hh_usable_size(launder(p)), 0);
  ck_assert_int_eq(seen.info.kind, HH_MISUSE_USABLE_SIZE_FREED);
  hh_free(launder(p));
  ck_assert_int_eq(seen.info.kind, HH_MISUSE_DOUBLE_FREE);
  ck_assert_int_eq(seen.count, 3);
  hh_free(launder(plain + 4096));
  ck_assert_int_eq(seen.info.kind, HH_MISUSE_INTERIOR_POINTER);
  hh_free(launder(plain));
  ck_assert_int_eq(seen.info.kind, HH_MISUSE_DOUBLE_FREE);
  ck_assert_int_eq(seen.count, 5);
}
END_TEST

/* A write after free replaces a free block's link: the pop that reads it
 * reports, and going on, the list is cut rather than followed. */
START_TEST(test_secure_corrupt_link_continues) {
  if (!hh_is_secure()) return;
  enum { N = 64 };
  void* blocks[N];
  for (int i = 0; i < N; i++) blocks[i] = hh_malloc(8000);
  void* victim = blocks[10];
  hh_free(victim);
  watch();
  memcpy(victim, "\x41\x41\x41\x41\x41\x41\x41\x41", 8);
  hh_collect(false);  /* lets the victim out of the quarantine (level 2 on) */
  for (int i = 0; i < N && seen.count == 0; i++) blocks[i] = hh_malloc(8000);
  ck_assert_int_eq(seen.count, 1);
  /* the link that leads nowhere is met as the head of the list; from level
   * 2 on the block waits in the quarantine, where the write is found */
  ck_assert_int_eq(seen.info.kind, hh_secure_level() >= 2 ? HH_MISUSE_WRITE_AFTER_FREE : HH_MISUSE_FREE_LIST_NOT_FREE);
  ck_assert_uint_eq(seen.info.size_class, 8192);
  for (int i = 0; i < 1000; i++) {
    void* p = hh_malloc(8000);
    ck_assert_ptr_nonnull(p);
    memset(p, 3, 8000);
  }
}
END_TEST

/* Of a reused block above 1 KiB the hand-out check reads the first 256
 * bytes: a write after free there is reported at its offset; one past them
 * is not, but calloc must still return the block all zero. */
static void* reuse_after_write(size_t size, size_t offset, bool cleared, void* blocks[], int n) {
  for (int i = 0; i < n; i++) blocks[i] = hh_malloc(size);
  unsigned char* victim = blocks[n / 2];
  hh_free(victim);
  victim[offset] = 0x41;  /* the program's write through a stale pointer */
  hh_collect(false);       /* lets the victim out of the quarantine */
  void* got = NULL;
  for (int i = 0; i < 4 * n && got != victim && seen.count == 0; i++) {
    got = cleared ? hh_calloc(1, size) : hh_malloc(size);
    ck_assert_ptr_nonnull(got);
  }
  return got == victim ? victim : NULL;
}

START_TEST(test_secure_write_after_free_large_block) {
#ifdef HH_TEST_TRACKING
  return;  /* a tracking build does not zero on free: the memory checker sees the write */
#endif
  if (hh_secure_level() < 2) return;
  enum { N = 64 };
  void* blocks[N];
  watch();
  reuse_after_write(4000, 200, false, blocks, N);
  ck_assert_int_eq(seen.count, 1);
  ck_assert_int_eq(seen.info.kind, HH_MISUSE_WRITE_AFTER_FREE);
  ck_assert_uint_eq(seen.info.size_class, 4096);
  ck_assert_uint_eq(seen.info.offset, 200);
  seen.count = 0;
  unsigned char* p = reuse_after_write(4000, 3000, true, blocks, N);
  ck_assert_msg(p != NULL, "the freed block was not handed out again");
  for (size_t i = 0; i < 4000; i++) ck_assert_msg(p[i] == 0, "calloc'd byte %zu is %#x", i, p[i]);
  /* the same write into a block of 1 KiB or less is seen anywhere */
  reuse_after_write(1000, 900, false, blocks, N);
  ck_assert_int_eq(seen.count, 1);
  ck_assert_int_eq(seen.info.kind, HH_MISUSE_WRITE_AFTER_FREE);
  ck_assert_uint_eq(seen.info.offset, 900);
}
END_TEST

/* ---- the validator ------------------------------------------------------------------*/
START_TEST(test_validate_after_use) {
  void* live[1000];
  for (int round = 0; round < 4; round++) {
    for (int i = 0; i < 1000; i++) live[i] = hh_malloc((size_t)(i * 37 % 3000) + 1);
    for (int i = 0; i < 1000; i += 2) hh_free(live[i]);
    ck_assert(hh_heap_validate(NULL));
    for (int i = 1; i < 1000; i += 2) hh_free(live[i]);
  }
  hh_heap_t* h = hh_heap_new();
  for (int i = 0; i < 100; i++) live[i] = hh_heap_malloc(h, (size_t)i * 1000 + 1);
  ck_assert(hh_heap_validate(h));
  hh_heap_delete(h);
  ck_assert(hh_heap_validate(NULL));
  for (int i = 0; i < 100; i++) hh_free(live[i]);
  ck_assert(hh_heap_validate(NULL));
}
END_TEST

/* The fast build stores links plainly: a use-after-free write of a block's
 * own address loops the free list, which only the validator notices. */
START_TEST(test_validate_reports_cycle) {
  if (hh_is_secure()) return;
  void* keep = hh_malloc(48);
  void** a = hh_malloc(48);
  void** b = hh_malloc(48);
  hh_free(a);
  hh_free(b);
  *(void* volatile*)b = b;
  watch();
  ck_assert(!hh_heap_validate(NULL));
  ck_assert_int_eq(seen.info.kind, HH_MISUSE_HEAP_INVARIANT);
  ck_assert_str_eq(seen.operation, "validate");
  ck_assert_str_eq(seen.info.detail, "free lists hold a block twice, off a boundary or beyond capacity");
  ck_assert_uint_eq(seen.info.size_class, 48);
  hh_free(keep);
}
END_TEST

/* One damaged byte anywhere after the requested size is found on free, at
 * its own offset: the zero byte, the keyed fill word by word, the size
 * field. Requests whose canary lies in one word, in two and in many, in
 * blocks with a 2-byte size field (up to 64 KiB) and an 8-byte one. A byte
 * of the size field may read as a damaged size or as another requested
 * size whose canary then fails; either way one report. Every damaged block
 * is leaked by the report, so large slacks are sampled, not walked. */
static hh_heap_t* canary_heap;

static void damage_and_free(size_t r, size_t o, size_t block_size) {
  unsigned char* p = hh_heap_malloc(canary_heap, r);
  ck_assert_ptr_nonnull(p);
  memset(p, 0xa5, r);
  seen.count = 0;
  overflow_byte(p, o, 0x5a);
  hh_free(p);
  ck_assert_msg(seen.count == 1, "request %zu, byte %zu: %d reports", r, o, seen.count);
  ck_assert_uint_eq(seen.info.size_class, block_size);
  size_t field = block_size <= 65536 ? 2 : 8;
  if (o < block_size - field) {
    ck_assert_msg(seen.info.kind == HH_MISUSE_HEAP_OVERFLOW, "request %zu, byte %zu: %s", r, o, seen.message);
    ck_assert_uint_eq(seen.info.requested_size, r);
    ck_assert_uint_eq(seen.info.offset, o);
  } else {
    ck_assert_msg(seen.info.kind == HH_MISUSE_HEAP_OVERFLOW || seen.info.kind == HH_MISUSE_HEAP_OVERFLOW_SIZE,
                  "request %zu, byte %zu: %s", r, o, seen.message);
  }
}

/* The block size a request of r bytes gets: the size class of the report
 * of a damaged zero byte. */
static size_t block_size_of(size_t r) {
  unsigned char* p = hh_heap_malloc(canary_heap, r);
  ck_assert_ptr_nonnull(p);
  seen.count = 0;
  overflow_byte(p, r, 1);
  hh_free(p);
  ck_assert_int_eq(seen.count, 1);
  ck_assert_int_eq(seen.info.kind, HH_MISUSE_HEAP_OVERFLOW);
  ck_assert_uint_gt(seen.info.size_class, r);
  return seen.info.size_class;
}

START_TEST(test_secure_canary_every_byte) {
#ifdef HH_TEST_TRACKING
  return;  /* a tracking build has no canaries: the memory checker sees overflows */
#endif
  if (hh_secure_level() < 2) return;
  /* a first-class heap takes no guarded samples: their slack has other checks */
  canary_heap = hh_heap_new();
  ck_assert_ptr_nonnull(canary_heap);
  static const size_t sizes[] = {1, 5, 8, 13, 16, 21, 24, 29, 40, 77, 100, 1000, 4093, 5000, 65000, 70000, 100000};
  watch();
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    size_t r = sizes[i];
    size_t bs = block_size_of(r);
    size_t stride = (bs - r) / 64 > 1 ? (bs - r) / 64 : 1;
    for (size_t o = r; o < bs; o++) {
      bool edge = o < r + 24 || o + 24 >= bs;  /* the first and last words, every byte */
      if (!edge && (o - r) % stride != 0) continue;
      damage_and_free(r, o, bs);
    }
  }
  hh_heap_delete(canary_heap);
}
END_TEST

static Suite* misuse_suite(void) {
  Suite* s = suite_create("hardheap_misuse");
  TCase* tc = tcase_create("table");
  tcase_add_test(tc, test_names_distinct);
  tcase_add_test(tc, test_handler_replaced_and_removed);
  suite_add_tcase(s, tc);

  tc = tcase_create("reports");
  tcase_add_test(tc, test_foreign_free);
  tcase_add_test(tc, test_heap_not_owned);
  tcase_add_test(tc, test_destroy_backing_heap);
  tcase_add_test(tc, test_large_double_free);
  tcase_add_test(tc, test_declined_report_is_printed);
  tcase_add_test_raise_signal(tc, test_abort_on_misuse_option, SIGABRT);
  suite_add_tcase(s, tc);

  tc = tcase_create("secure");
  tcase_add_test(tc, test_secure_small_double_free_continues);
  tcase_add_test(tc, test_secure_interior_pointer);
  tcase_add_test(tc, test_secure_sized_free);
  tcase_add_test(tc, test_secure_freed_large_block);
  tcase_add_test(tc, test_secure_freed_aligned_huge_block);
  tcase_add_test(tc, test_secure_corrupt_link_continues);
  tcase_add_test(tc, test_secure_canary_every_byte);
  tcase_add_test(tc, test_secure_write_after_free_large_block);
  suite_add_tcase(s, tc);

  tc = tcase_create("validate");
  tcase_add_test(tc, test_validate_after_use);
  tcase_add_test(tc, test_validate_reports_cycle);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner* sr = srunner_create(misuse_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
