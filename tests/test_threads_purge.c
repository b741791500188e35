/* The background purger (src/purge.c): memory a thread freed goes back to
 * the OS within the purge delay although no thread allocates again, also
 * for threads that are blocked or exited, in a forked child, and without delaying
 * exit. Named test_threads_* so that the ThreadSanitizer stage of
 * scripts/test.sh runs it: the purger works on other threads' segment
 * state. The hh_ calls are used (a sanitizer build does not override
 * malloc). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hardheap.h"

/* ThreadSanitizer cannot start threads in the child of a multi-threaded
 * fork (it dies instead), so the forked-child case is left out there. */
#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif
#ifndef UNDER_TSAN
#define UNDER_TSAN 0
#endif

#define MiB ((size_t)1 << 20)
#define BLOCKS (24 * 1024 * 1024 / 500)

static void* blocks[BLOCKS];

static size_t committed(void) {
  hh_stats_t s;
  hh_stats_get(&s);
  return s.committed;
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* 24 MiB of small and medium blocks, written, then all freed; returns the
 * committed bytes at the peak, before the frees. */
static size_t burst(void) {
  for (size_t i = 0; i < BLOCKS; i++) {
    size_t size = 100 + (i * 37) % 800;
    if (i % 64 == 0) size = 20000 + i % 30000;  /* medium pages too */
    blocks[i] = hh_malloc(size);
    ck_assert_ptr_nonnull(blocks[i]);
    memset(blocks[i], 1, size);
  }
  size_t peak = committed();
  for (size_t i = 0; i < BLOCKS; i++) hh_free(blocks[i]);
  return peak;
}

/* Wait (without allocating) until the committed memory is back within
 * 14 MiB of what it was before the burst: what the burst freed goes back,
 * except what heaps keep on purpose (16 retired pages per heap, the secure
 * build's quarantine, metadata of cached segments: 4-13 MiB measured).
 * Without the purger it stays 20-45 MiB above. Returns the milliseconds it
 * took, or -1 after 2 s. */
static double wait_for_purge(size_t before, size_t peak) {
  (void)peak;
  size_t limit = before + 14 * MiB;
  double start = now_ms();
  while (now_ms() - start < 2000) {
    if (committed() <= limit) return now_ms() - start;
    usleep(5000);
  }
  return -1;
}

/* The check every case shares: after the burst, nothing allocates, and
 * most of what the burst took goes back within a few purge delays. */
static void check_idle_purge(const char* what, size_t before, size_t peak) {
  size_t after_frees = committed();
  double took = wait_for_purge(before, peak);
  printf("%s: committed %zu KiB before, %zu KiB at the peak, %zu KiB after the frees, %zu KiB now (%.0f ms)\n", what,
         before / 1024, peak / 1024, after_frees / 1024, committed() / 1024, took);
  ck_assert_msg(took >= 0, "%s: committed stayed at %zu KiB (%zu KiB before the burst, %zu at its peak) for 2 s", what,
                committed() / 1024, before / 1024, peak / 1024);
}

START_TEST(test_purge_idle_main_thread) {
  ck_assert_int_eq(hh_option_get(hh_option_background_purge), 1);
  size_t before = committed();
  size_t peak = burst();
  check_idle_purge("main thread", before, peak);
}
END_TEST

/* A thread that freed a burst and then blocks (a worker waiting for
 * work) must not keep it. */
static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static int gate;

static size_t worker_peak;

static void* worker(void* arg) {
  (void)arg;
  worker_peak = burst();
  pthread_mutex_lock(&gate_lock);
  gate = 1;
  pthread_cond_broadcast(&gate_cond);
  while (gate != 2) pthread_cond_wait(&gate_cond, &gate_lock);
  pthread_mutex_unlock(&gate_lock);
  return NULL;
}

START_TEST(test_purge_idle_blocked_thread) {
  size_t before = committed();
  pthread_t thread;
  ck_assert_int_eq(pthread_create(&thread, NULL, worker, NULL), 0);
  pthread_mutex_lock(&gate_lock);
  while (gate != 1) pthread_cond_wait(&gate_cond, &gate_lock);
  pthread_mutex_unlock(&gate_lock);
  check_idle_purge("blocked thread", before, worker_peak);
  pthread_mutex_lock(&gate_lock);
  gate = 2;
  pthread_cond_broadcast(&gate_cond);
  pthread_mutex_unlock(&gate_lock);
  pthread_join(thread, NULL);
}
END_TEST

/* A thread that freed a burst and exited: its empty segments go to the
 * global cache with their memory (the next thread reuses it), and the
 * purger must still give it back when no thread comes. */
static void* exiting_worker(void* arg) {
  (void)arg;
  worker_peak = burst();
  return NULL;
}

START_TEST(test_purge_idle_exited_thread) {
  size_t before = committed();
  pthread_t thread;
  ck_assert_int_eq(pthread_create(&thread, NULL, exiting_worker, NULL), 0);
  ck_assert_int_eq(pthread_join(thread, NULL), 0);
  check_idle_purge("exited thread", before, worker_peak);
}
END_TEST

/* A forked child has no purger until it allocates; then it gets one. Its
 * exit is not held up by it. */
START_TEST(test_purge_forked_child) {
  if (UNDER_TSAN) {
    printf("test_purge_forked_child: skipped under ThreadSanitizer (no threads after a multi-threaded fork)\n");
    return;
  }
  size_t before = committed();
  size_t peak = burst();  /* the parent has a purger now */
  check_idle_purge("parent", before, peak);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    before = committed();
    peak = burst();
    double took = wait_for_purge(before, peak);
    printf("forked child: committed %zu KiB before, %zu KiB at the peak, %zu KiB now (%.0f ms)\n", before / 1024,
           peak / 1024, committed() / 1024, took);
    _exit(took >= 0 ? 0 : 3);
  }
  int status;
  ck_assert_int_eq(waitpid(pid, &status, 0), pid);
  ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
}
END_TEST

START_TEST(test_purge_exit_not_delayed) {
  double start = now_ms();
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    (void)burst();   /* starts the child's purger, which then has work */
    exit(0);   /* atexit handlers, destructors: the purger must not hold them up */
  }
  int status;
  ck_assert_int_eq(waitpid(pid, &status, 0), pid);
  ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  ck_assert_msg(now_ms() - start < 5000, "the child took %.0f ms to allocate, free and exit", now_ms() - start);
}
END_TEST

int main(void) {
  Suite* s = suite_create("hardheap_purge");
  TCase* tc = tcase_create("purge");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_purge_idle_main_thread);
  tcase_add_test(tc, test_purge_idle_blocked_thread);
  tcase_add_test(tc, test_purge_idle_exited_thread);
  tcase_add_test(tc, test_purge_forked_child);
  tcase_add_test(tc, test_purge_exit_not_delayed);
  suite_add_tcase(s, tc);
  SRunner* sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
