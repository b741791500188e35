/* The background purger (src/purge.c): memory a thread freed goes back to
 * the OS within the purge delay although no thread allocates again, also
 * for threads that are blocked, in a forked child, and without delaying
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

/* 24 MiB of small and medium blocks, written, then all freed. */
static void burst(void) {
  for (size_t i = 0; i < BLOCKS; i++) {
    size_t size = 100 + (i * 37) % 800;
    if (i % 64 == 0) size = 20000 + i % 30000;  /* medium pages too */
    blocks[i] = hh_malloc(size);
    ck_assert_ptr_nonnull(blocks[i]);
    memset(blocks[i], 1, size);
  }
  for (size_t i = 0; i < BLOCKS; i++) hh_free(blocks[i]);
}

/* Wait (without allocating) until at least 60% of what the burst added to
 * the committed memory has gone back (the rest: pages a heap keeps for its
 * next allocations, a quarantine); returns the milliseconds it took, or -1
 * after 2 s. */
static double wait_for_purge(size_t before, size_t after_frees) {
  size_t added = after_frees > before ? after_frees - before : 0;
  size_t limit = after_frees - added * 6 / 10;
  double start = now_ms();
  while (now_ms() - start < 2000) {
    if (committed() <= limit) return now_ms() - start;
    usleep(5000);
  }
  return -1;
}

/* The check every case shares: after the burst, nothing allocates, and
 * most of what the burst took goes back within a few purge delays. */
static void check_idle_purge(const char* what, size_t before) {
  size_t after_frees = committed();
  double took = wait_for_purge(before, after_frees);
  printf("%s: committed %zu KiB before, %zu KiB after the frees, %zu KiB now (%.0f ms)\n", what, before / 1024,
         after_frees / 1024, committed() / 1024, took);
  ck_assert_msg(took >= 0, "%s: committed stayed at %zu KiB (%zu KiB before the burst, %zu after it) for 2 s", what,
                committed() / 1024, before / 1024, after_frees / 1024);
}

START_TEST(test_purge_idle_main_thread) {
  ck_assert_int_eq(hh_option_get(hh_option_background_purge), 1);
  size_t before = committed();
  burst();
  check_idle_purge("main thread", before);
}
END_TEST

/* A thread that freed a burst and then blocks (a worker waiting for
 * work) must not keep it. */
static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static int gate;

static void* worker(void* arg) {
  (void)arg;
  burst();
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
  check_idle_purge("blocked thread", before);
  pthread_mutex_lock(&gate_lock);
  gate = 2;
  pthread_cond_broadcast(&gate_cond);
  pthread_mutex_unlock(&gate_lock);
  pthread_join(thread, NULL);
}
END_TEST

/* A forked child has no purger until it allocates; then it gets one. Its
 * exit is not held up by it. */
START_TEST(test_purge_forked_child) {
  size_t before = committed();
  burst();  /* the parent has a purger now */
  check_idle_purge("parent", before);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    before = committed();
    burst();
    size_t after_frees = committed();
    double took = wait_for_purge(before, after_frees);
    printf("forked child: committed %zu KiB before, %zu KiB after the frees, %zu KiB now (%.0f ms)\n", before / 1024,
           after_frees / 1024, committed() / 1024, took);
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
    burst();   /* starts the child's purger, which then has work */
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
  tcase_add_test(tc, test_purge_forked_child);
  tcase_add_test(tc, test_purge_exit_not_delayed);
  suite_add_tcase(s, tc);
  SRunner* sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
