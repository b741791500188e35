/* Process-wide statistics (issue: daemon operations): bytes and blocks in
 * use across all threads, including threads that exited with live blocks;
 * totals; peaks; mallinfo2 with glibc's meanings; the report's header.
 * Run against both libraries, through the hh_ calls (a sanitizer build
 * does not override malloc; mallinfo2 is checked only where it does).
 * Guarded samples are counted by their
 * requested size, so the bounds below hold with sampling on. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <check.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hardheap.h"

#define MiB ((size_t)1 << 20)
#define THREADS 4
#define PER_THREAD_BYTES (25 * MiB / THREADS)
#define MAX_BLOCKS 40000

typedef struct worker_s {
  void *blocks[MAX_BLOCKS];
  size_t count;
  size_t requested;        /* bytes asked for */
  size_t usable;           /* sum of malloc_usable_size */
  pthread_barrier_t *hold; /* NULL: exit at once, leaving the blocks live */
} worker_t;

static void *worker_main(void *arg) {
  worker_t *w = arg;
  size_t i = 0;
  while (w->requested < PER_THREAD_BYTES && i < MAX_BLOCKS) {
    size_t size = 100 + (i * 37) % 900;
    void *p = hh_malloc(size);
    ck_assert_ptr_nonnull(p);
    memset(p, 1, size);
    w->blocks[i++] = p;
    w->requested += size;
    w->usable += hh_usable_size(p);
  }
  w->count = i;
  if (w->hold != NULL) {
    pthread_barrier_wait(w->hold); /* counted by the main thread */
    pthread_barrier_wait(w->hold); /* then freed here */
    for (size_t k = 0; k < w->count; k++)
      hh_free(w->blocks[k]);
  }
  return NULL;
}

/* Is malloc hardheap's here (not a sanitizer build's)? */
static bool malloc_is_ours(void) {
  hh_stats_t before, after;
  hh_stats_get(&before);
  void *volatile p = malloc(3 * MiB);
  hh_stats_get(&after);
  free(p);
  return after.in_use >= before.in_use + 3 * MiB;
}

static hh_stats_t stats(void) {
  hh_stats_t s;
  memset(&s, 0xAB, sizeof s);
  hh_stats_get(&s);
  return s;
}

/* Blocks and bytes of every size class together. */
static void sum_bins(size_t *blocks, size_t *bytes) {
  hh_bin_stats_t b;
  *blocks = *bytes = 0;
  for (size_t bin = 0; bin < hh_bin_count(); bin++) {
    ck_assert(hh_bin_stats_get(bin, &b));
    *blocks += b.blocks_used;
    *bytes += b.bytes_used;
  }
}

/* Held bytes must be counted: at least what was asked for, at most the
 * block sizes' rounding above it (under 1/8 for these sizes) plus what the
 * rest of the process holds. */
static void check_in_use(const hh_stats_t *s, const hh_stats_t *base,
                         size_t requested, size_t blocks) {
  size_t got = s->in_use - base->in_use;
  printf("in use %zu bytes in %zu blocks for %zu requested in %zu blocks\n",
         got, s->blocks_in_use - base->blocks_in_use, requested, blocks);
  ck_assert_uint_ge(s->in_use, base->in_use + requested);
  ck_assert_uint_le(got, requested + requested / 8 + MiB);
  ck_assert_uint_ge(s->blocks_in_use, base->blocks_in_use + blocks);
  ck_assert_uint_le(s->blocks_in_use, base->blocks_in_use + blocks + 1000);
  ck_assert_uint_ge(s->in_use_peak, s->in_use);
  ck_assert_uint_ge(s->blocks_in_use_peak, s->blocks_in_use);
  ck_assert_uint_ge(s->allocations, s->blocks_in_use);
  ck_assert_uint_eq(s->allocations - s->frees, s->blocks_in_use);
  ck_assert_uint_eq(s->allocated_total - s->freed_total, s->in_use);
  /* the size classes add up to the total (huge blocks and samples aside) */
  size_t bins_blocks, bins_bytes;
  sum_bins(&bins_blocks, &bins_bytes);
  ck_assert_uint_le(bins_bytes, s->in_use);
  ck_assert_uint_ge(bins_bytes + s->huge_in_use +
                        s->guarded_live * 2 * 1024 * 1024,
                    s->in_use);
}

START_TEST(test_stats_all_threads) {
  static worker_t workers[THREADS];
  pthread_t threads[THREADS];
  pthread_barrier_t hold;
  pthread_barrier_init(&hold, NULL, THREADS + 1);
  hh_stats_t base = stats();
  for (int t = 0; t < THREADS; t++) {
    memset(&workers[t], 0, sizeof workers[t]);
    workers[t].hold = &hold;
    ck_assert_int_eq(
        pthread_create(&threads[t], NULL, worker_main, &workers[t]), 0);
  }
  pthread_barrier_wait(&hold);
  size_t requested = 0, blocks = 0;
  for (int t = 0; t < THREADS; t++) {
    requested += workers[t].requested;
    blocks += workers[t].count;
  }
  hh_stats_t held = stats();
  check_in_use(&held, &base, requested, blocks);
  /* glibc's meanings: uordblks is what is in use, not what is mapped */
  struct mallinfo2 mi = mallinfo2();
  if (malloc_is_ours()) {
    printf("mallinfo2: arena %zu, uordblks %zu, fordblks %zu, hblkhd %zu; "
           "committed %zu\n",
           mi.arena, mi.uordblks, mi.fordblks, mi.hblkhd, held.committed);
    ck_assert_uint_ge(mi.uordblks, requested);
    ck_assert_uint_le(mi.uordblks, held.in_use);
    ck_assert_uint_ge(mi.arena, mi.uordblks);
    ck_assert_uint_eq(mi.arena - mi.uordblks, mi.fordblks);
    ck_assert_uint_ge(mi.ordblks, blocks);
  }
  pthread_barrier_wait(&hold);
  for (int t = 0; t < THREADS; t++)
    pthread_join(threads[t], NULL);
  hh_stats_t after = stats();
  printf("after the frees: in use %zu (peak %zu), %zu allocations, %zu frees\n",
         after.in_use, after.in_use_peak, after.allocations, after.frees);
  ck_assert_uint_le(after.in_use, base.in_use + MiB);
  ck_assert_uint_ge(after.in_use_peak, base.in_use + requested);
  ck_assert_uint_ge(after.frees, base.frees + blocks);
  ck_assert_uint_ge(after.allocations, base.allocations + blocks);
  ck_assert_uint_ge(after.elapsed_ms, held.elapsed_ms);
  pthread_barrier_destroy(&hold);
}
END_TEST

/* A thread that exits with live blocks leaves them in abandoned segments:
 * still in use, still counted, and counted free once another thread frees
 * them. */
START_TEST(test_stats_abandoned) {
  static worker_t w;
  memset(&w, 0, sizeof w);
  hh_stats_t base = stats();
  pthread_t thread;
  ck_assert_int_eq(pthread_create(&thread, NULL, worker_main, &w), 0);
  pthread_join(thread, NULL);
  hh_stats_t held = stats();
  check_in_use(&held, &base, w.requested, w.count);
  for (size_t k = 0; k < w.count; k++)
    hh_free(w.blocks[k]);
  hh_stats_t after = stats();
  ck_assert_uint_le(after.in_use, base.in_use + MiB);
  ck_assert_uint_ge(after.frees, base.frees + w.count);
}
END_TEST

START_TEST(test_stats_huge_and_large) {
  hh_stats_t base = stats();
  size_t huge = 40 * MiB, large = 700 * 1024;
  char *h = hh_malloc(huge);
  char *l = hh_malloc(large);
  ck_assert_ptr_nonnull(h);
  ck_assert_ptr_nonnull(l);
  hh_stats_t s = stats();
  ck_assert_uint_ge(s.huge_in_use, base.huge_in_use + huge);
  ck_assert_uint_ge(s.in_use, base.in_use + huge + large);
  ck_assert_uint_le(s.in_use, base.in_use + huge + large + 2 * MiB);
  if (malloc_is_ours()) {
    struct mallinfo2 mi = mallinfo2();
    ck_assert_uint_ge(mi.hblkhd, huge);
    ck_assert_uint_ge(mi.hblks, 1);
  }
  hh_free(h);
  hh_free(l);
  hh_stats_t after = stats();
  ck_assert_uint_le(after.in_use, base.in_use + MiB);
  ck_assert_uint_le(after.huge_in_use, base.huge_in_use);
}
END_TEST

/* A block in a mapping of its own counts as huge whatever its size: an
 * over-aligned 100 KiB block gets one. huge_count and huge_in_use (and
 * mallinfo2's hblks and hblkhd) describe the same blocks; they once did not
 * (the count went by mapping, the bytes by size), found by fuzz/api_ops. */
START_TEST(test_stats_huge_by_mapping) {
  hh_stats_t base = stats();
  size_t size = 100 * 1024, align = 8 * MiB;
  char *p = hh_malloc_aligned(size, align);
  ck_assert_ptr_nonnull(p);
  ck_assert_uint_eq((uintptr_t)p & (align - 1), 0);
  hh_stats_t s = stats();
  ck_assert_uint_eq(s.huge_count, base.huge_count + 1);
  ck_assert_uint_ge(s.huge_in_use, base.huge_in_use + size);
  size_t bins_blocks, bins_bytes;
  sum_bins(&bins_blocks, &bins_bytes);
  ck_assert_uint_eq(bins_blocks + s.huge_count + s.guarded_live, s.blocks_in_use);
  ck_assert_uint_le(bins_bytes + s.huge_in_use, s.in_use);
  hh_free(p);
  hh_stats_t after = stats();
  ck_assert_uint_eq(after.huge_count, base.huge_count);
  ck_assert_uint_eq(after.huge_in_use, base.huge_in_use);
}
END_TEST

/* The report names the process, so that the reports of a pipeline of
 * preloaded programs can be told apart, and can go to any fd. */
START_TEST(test_stats_print_fd) {
  void *volatile keep = hh_malloc(1000);
  ck_assert_ptr_nonnull(keep);
  char path[] = "/tmp/hh_stats_XXXXXX";
  int fd = mkstemp(path);
  ck_assert_int_ge(fd, 0);
  unlink(path);
  hh_stats_print_fd(fd);
  char buf[16384];
  ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
  close(fd);
  ck_assert_int_gt(n, 0);
  buf[n] = 0;
  char want[128];
  snprintf(want, sizeof want, "statistics of pid %d (%s)", (int)getpid(),
           program_invocation_short_name);
  ck_assert_msg(strstr(buf, want) != NULL, "no '%s' in:\n%s", want, buf);
  ck_assert_msg(strstr(buf, "  in use:") != NULL &&
                    strstr(buf, "allocations of") != NULL,
                "report:\n%s", buf);
  ck_assert_msg(strstr(buf, "     1008:") != NULL ||
                    strstr(buf, "     1024:") != NULL ||
                    strstr(buf, "     1280:") != NULL ||
                    strstr(buf, "     1152:") != NULL,
                "the 1000-byte block's class is not listed:\n%s", buf);
  hh_free(keep);
}
END_TEST

int main(void) {
  Suite *s = suite_create("hardheap_stats");
  TCase *tc = tcase_create("stats");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_stats_all_threads);
  tcase_add_test(tc, test_stats_abandoned);
  tcase_add_test(tc, test_stats_huge_and_large);
  tcase_add_test(tc, test_stats_huge_by_mapping);
  tcase_add_test(tc, test_stats_print_fd);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
