/* fork from a multi-threaded parent while other threads allocate, free
 * across threads and churn large blocks: the child (which has only the
 * forking thread) must be able to allocate and free, every time. Without the
 * allocator's pthread_atfork handlers a lock held by another thread at fork
 * time deadlocks the child; the test bounds the wait and fails then. */
#define _GNU_SOURCE
#include "hardheap.h"

#include <check.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define WORKERS 4
#define FORKS 200

static atomic_bool stop;
static void* volatile shared_slot[64];
static pthread_mutex_t shared_lock = PTHREAD_MUTEX_INITIALIZER;

static void* worker(void* arg) {
  uint64_t x = (uintptr_t)arg * 0x9e3779b97f4a7c15ull + 1;
  while (!atomic_load(&stop)) {
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    size_t size = (x % 8 == 0) ? 200000 + x % 3000000 : 16 + x % 2000;  /* some large and huge */
    void* p = hh_malloc(size);
    if (p == NULL) abort();
    memset(p, (int)x, size < 256 ? size : 256);
    /* swap with a shared slot: blocks get freed by other threads */
    pthread_mutex_lock(&shared_lock);
    void* old = shared_slot[x % 64];
    shared_slot[x % 64] = p;
    pthread_mutex_unlock(&shared_lock);
    hh_free(old);
  }
  return NULL;
}

/* Child: allocate and free a mix, including blocks of the parent's threads. */
static int child_work(void) {
  void* blocks[1000];
  for (int round = 0; round < 3; round++) {
    for (int i = 0; i < 1000; i++) {
      blocks[i] = hh_malloc((size_t)(i % 7 == 0 ? 300000 : 16 + i * 3));
      if (blocks[i] == NULL) return 2;
      memset(blocks[i], 0x5a, 16);
    }
    for (int i = 0; i < 1000; i++) hh_free(blocks[i]);
  }
  for (int i = 0; i < 64; i++) hh_free(shared_slot[i]);  /* blocks owned by threads that do not exist here */
  void* big = hh_malloc(5u << 20);
  if (big == NULL) return 3;
  hh_free(big);
  return 0;
}

/* Wait for pid at most timeout_ms; kills it and returns -1 on timeout. */
static int wait_bounded(pid_t pid, int timeout_ms) {
  for (int waited = 0; waited < timeout_ms; waited += 5) {
    int status;
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    struct timespec ts = {0, 5 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
  return -1;
}

START_TEST(test_fork_while_threads_allocate) {
  pthread_t threads[WORKERS];
  atomic_store(&stop, false);
  for (uintptr_t i = 0; i < WORKERS; i++) ck_assert_int_eq(pthread_create(&threads[i], NULL, worker, (void*)(i + 1)), 0);
  int failures = 0, timeouts = 0;
  for (int i = 0; i < FORKS; i++) {
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) _exit(child_work());
    /* generous: the parent's four workers keep both cores of a CI machine
     * busy, and a sanitizer build of a child can take seconds; a lock held
     * across fork hangs for ever */
    int rc = wait_bounded(pid, 60000);
    if (rc == -1) timeouts++;
    else if (rc != 0) failures++;
  }
  atomic_store(&stop, true);
  for (int i = 0; i < WORKERS; i++) pthread_join(threads[i], NULL);
  for (int i = 0; i < 64; i++) {
    hh_free(shared_slot[i]);
    shared_slot[i] = NULL;
  }
  ck_assert_msg(timeouts == 0, "%d of %d children hung (allocator lock held across fork?)", timeouts, FORKS);
  ck_assert_msg(failures == 0, "%d of %d children failed", failures, FORKS);
}
END_TEST

/* The secure build's child gets fresh keys and shuffle seeds: the order in
 * which a fresh page hands out its blocks differs between parent and child
 * (the fast build threads new blocks in address order in both). */
static void block_order(uint16_t order[256]) {
  void* first = hh_malloc(200);  /* a class nothing else uses: a fresh page, 19 blocks a batch */
  order[0] = 0;
  for (int i = 1; i < 256; i++) {
    void* p = hh_malloc(200);
    order[i] = (uint16_t)(((uintptr_t)p - (uintptr_t)first) / 16);
  }
}

START_TEST(test_fork_child_reseeded) {
  hh_free(hh_malloc(64));
  int fds[2];
  ck_assert_int_eq(pipe(fds), 0);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  uint16_t order[256];
  block_order(order);
  if (pid == 0) {
    ssize_t n = write(fds[1], order, sizeof order);
    _exit(n == (ssize_t)sizeof order ? 0 : 1);
  }
  uint16_t child[256];
  size_t got = 0;
  while (got < sizeof child) {
    ssize_t n = read(fds[0], (char*)child + got, sizeof child - got);
    ck_assert_int_gt(n, 0);
    got += (size_t)n;
  }
  int status;
  ck_assert_int_eq(waitpid(pid, &status, 0), pid);
  ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  int same = 0;
  for (int i = 0; i < 256; i++) same += order[i] == child[i];
  if (hh_is_secure()) ck_assert_msg(same < 64, "parent and child handed out %d of 256 blocks in the same order", same);
  else ck_assert_int_eq(same, 256);
}
END_TEST

int main(void) {
  Suite* s = suite_create("fork");
  TCase* tc = tcase_create("threads");
  tcase_set_timeout(tc, 600);
  tcase_add_test(tc, test_fork_while_threads_allocate);
  tcase_add_test(tc, test_fork_child_reseeded);
  suite_add_tcase(s, tc);
  SRunner* sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
