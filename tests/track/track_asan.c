/* The AddressSanitizer tracking mode (HH_TRACK=asan, src/track.h): ASan
 * must report each bug below on hardheap blocks, at the right address and
 * with the right access, and stay silent on correct use.
 *
 * Each scenario runs in a child process (this program re-executed with the
 * scenario's name); the child prints "expect READ|WRITE <address>" on
 * stderr and then makes the bad access, and the parent matches ASan's
 * report ("use-after-poison": hardheap poisons through the public
 * interface, which has no heap-use-after-free kind of its own; a write
 * into the last, partly addressable 8 bytes of a block whose neighbour's
 * link word follows shows as "unknown-crash"). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hardheap.h"

/* ---- the child side ------------------------------------------------------------*/
static void expect(const char* access, const volatile void* p) {
  fprintf(stderr, "expect %s %p\n", access, (const void*)p);
  fflush(stderr);
}

static volatile uint8_t sink;

static void read_at(const volatile uint8_t* p) {
  expect("READ", p);
  sink = *p;
}

static void write_at(volatile uint8_t* p) {
  expect("WRITE", p);
  *p = 1;
}

/* A correct program: every allocation kind, resized, sized and freed,
 * including writes up to hh_usable_size and a first-class heap's life. */
static int correct_program(void) {
  enum { N = 512 };
  uint8_t* p[N] = {0};
  size_t n[N] = {0};
  uint64_t x = 0x9E3779B97F4A7C15u;
  for (int round = 0; round < 20000; round++) {
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    int i = (int)(x % N);
    if (p[i] != NULL) {
      for (size_t j = 0; j < n[i]; j++) {
        if (p[i][j] != (uint8_t)(j + (size_t)i)) return 10;
      }
      if (x & 1) hh_free(p[i]);
      else hh_free_sized(p[i], n[i]);
      p[i] = NULL;
      continue;
    }
    size_t size = (size_t)(x >> 20) % ((x & 0x300) == 0x300 ? 400000 : 3000);
    switch ((x >> 40) % 6) {
      case 0: p[i] = hh_malloc(size); break;
      case 1: p[i] = hh_calloc(1, size); break;
      case 2: p[i] = hh_malloc_aligned(size, (size_t)64 << ((x >> 50) % 6)); break;
      case 3: p[i] = hh_realloc(hh_malloc(size / 2 + 1), size + 1); size += 1; break;
      case 4: p[i] = hh_zalloc(size); break;
      default:
        p[i] = hh_malloc(size);
        if (p[i] != NULL) size = hh_usable_size(p[i]);  /* all of it is the program's */
        break;
    }
    if (p[i] == NULL) return 11;
    n[i] = size;
    for (size_t j = 0; j < size; j++) p[i][j] = (uint8_t)(j + (size_t)i);
    if ((x >> 30) % 7 == 0 && size > 32) {  /* shrink in place, then grow again */
      uint8_t* q = hh_realloc(p[i], size - 16);
      if (q == NULL) return 12;
      p[i] = hh_realloc(q, size);
      if (p[i] == NULL) return 13;
      for (size_t j = size - 16; j < size; j++) p[i][j] = (uint8_t)(j + (size_t)i);
    }
  }
  for (int i = 0; i < N; i++) hh_free(p[i]);
  hh_heap_t* heap = hh_heap_new();
  for (int i = 0; i < 1000; i++) {
    uint8_t* b = hh_heap_malloc(heap, (size_t)(i % 300) + 1);
    if (b == NULL) return 14;
    memset(b, 7, (size_t)(i % 300) + 1);
  }
  hh_heap_destroy(heap);
  hh_collect(true);
  return hh_heap_validate(NULL) ? 0 : 15;
}

static int run_scenario(const char* name) {
  if (strcmp(name, "correct") == 0) return correct_program();
  if (strcmp(name, "uaf_read") == 0) {
    uint8_t* p = hh_malloc(64);
    memset(p, 1, 64);
    hh_free(p);
    read_at(p + 32);
  } else if (strcmp(name, "uaf_write") == 0) {
    uint8_t* p = hh_malloc(200);
    hh_free(p);
    write_at(p + 100);
  } else if (strcmp(name, "uaf_read_large") == 0) {
    uint8_t* p = hh_malloc(300000);
    hh_free(p);
    read_at(p + 150000);
  } else if (strcmp(name, "slack_write") == 0) {
    uint8_t* p = hh_malloc(13);  /* a 16-byte block: 3 bytes of slack */
    memset(p, 1, 13);
    write_at(p + 13);
  } else if (strcmp(name, "slack_read_medium") == 0) {
    uint8_t* p = hh_malloc(5000);  /* a 5120-byte block */
    read_at(p + 5100);
  } else if (strcmp(name, "slack_after_shrink") == 0) {
    uint8_t* p = hh_malloc(100);  /* 112-byte block; 60 keeps it in place */
    uint8_t* q = hh_realloc(p, 60);
    if (q != p) return 20;
    write_at(q + 80);
  } else if (strcmp(name, "never_allocated_read") == 0) {
    uint8_t* p = hh_malloc(48);  /* the only block of its class: its neighbour never was handed out */
    read_at(p + 48 + 16);
  } else if (strcmp(name, "beyond_capacity_read") == 0) {
    uint8_t* p = hh_malloc(48);  /* 200 blocks on: past the page's first extension */
    read_at(p + 48 * 200 + 16);
  } else if (strcmp(name, "destroyed_heap_read") == 0) {
    hh_heap_t* heap = hh_heap_new();
    uint8_t* p = hh_heap_malloc(heap, 64);
    memset(p, 1, 64);
    hh_heap_destroy(heap);
    read_at(p + 40);
  } else if (strcmp(name, "realloc_moved_read") == 0) {
    uint8_t* p = hh_malloc(32);
    uint8_t* q = hh_realloc(p, 4000);
    if (q == p) return 21;
    read_at(p + 16);
  } else {
    fprintf(stderr, "unknown scenario %s\n", name);
    return 2;
  }
  return 0;  /* reached only if ASan said nothing */
}

/* ---- the parent side ------------------------------------------------------------*/
static char self_path[4096];

typedef struct {
  int status;  /* exit status, 128 + signal */
  char out[65536];
} child_t;

static void run_child(const char* scenario, child_t* c) {
  int fds[2];
  ck_assert_int_eq(pipe(fds), 0);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    dup2(fds[1], 2);
    close(fds[0]);
    close(fds[1]);
    setenv("ASAN_OPTIONS", "detect_leaks=0:abort_on_error=0:halt_on_error=1:allow_user_poisoning=1", 1);
    execl(self_path, self_path, scenario, (char*)NULL);
    _exit(127);
  }
  close(fds[1]);
  size_t got = 0;
  for (;;) {
    ssize_t r = read(fds[0], c->out + got, sizeof(c->out) - 1 - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got += (size_t)r;
    if (got == sizeof(c->out) - 1) break;
  }
  c->out[got] = 0;
  close(fds[0]);
  int status;
  ck_assert_int_eq(waitpid(pid, &status, 0), pid);
  c->status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* The child made the access it announced and ASan reported exactly that. */
static void expect_report(const char* scenario) {
  static child_t c;
  run_child(scenario, &c);
  char access[16], addr[64];
  const char* line = strstr(c.out, "expect ");
  ck_assert_msg(line != NULL, "%s: the child announced no access (status %d):\n%s", scenario, c.status, c.out);
  ck_assert_int_eq(sscanf(line, "expect %15s %63s", access, addr), 2);
  char want[256], alt[256];
  snprintf(want, sizeof want, "ERROR: AddressSanitizer: use-after-poison on address %s", addr);
  /* a partly addressable granule followed by an addressable one (the next
   * block's link word) is classified "unknown-crash" by ASan */
  snprintf(alt, sizeof alt, "ERROR: AddressSanitizer: unknown-crash on address %s", addr);
  ck_assert_msg(strstr(c.out, want) != NULL || strstr(c.out, alt) != NULL, "%s: no \"%s\" in:\n%s", scenario,
                want, c.out);
  snprintf(want, sizeof want, "%s of size 1 at %s", access, addr);
  ck_assert_msg(strstr(c.out, want) != NULL, "%s: no \"%s\" in:\n%s", scenario, want, c.out);
  ck_assert_msg(c.status != 0, "%s: the child exited 0 after the report", scenario);
  /* the report points at the program's access, not into hardheap */
  ck_assert_msg(strstr(c.out, "in run_scenario") != NULL || strstr(c.out, "in read_at") != NULL ||
                    strstr(c.out, "in write_at") != NULL,
                "%s: the faulting frame is not the test's:\n%s", scenario, c.out);
}

#define SCENARIO_TEST(name)       \
  START_TEST(test_##name) {       \
    expect_report(#name);         \
  }                               \
  END_TEST

SCENARIO_TEST(uaf_read)
SCENARIO_TEST(uaf_write)
SCENARIO_TEST(uaf_read_large)
SCENARIO_TEST(slack_write)
SCENARIO_TEST(slack_read_medium)
SCENARIO_TEST(slack_after_shrink)
SCENARIO_TEST(never_allocated_read)
SCENARIO_TEST(beyond_capacity_read)
SCENARIO_TEST(destroyed_heap_read)
SCENARIO_TEST(realloc_moved_read)

START_TEST(test_correct_program_is_silent) {
  static child_t c;
  run_child("correct", &c);
  ck_assert_msg(c.status == 0 && strstr(c.out, "AddressSanitizer") == NULL, "status %d:\n%s", c.status, c.out);
}
END_TEST

int main(int argc, char** argv) {
  if (argc > 1) return run_scenario(argv[1]);
  ssize_t len = readlink("/proc/self/exe", self_path, sizeof(self_path) - 1);
  if (len <= 0) return 2;
  self_path[len] = 0;
  Suite* s = suite_create("track_asan");
  TCase* tc = tcase_create(hh_is_secure() ? "secure" : "default");
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, test_uaf_read);
  tcase_add_test(tc, test_uaf_write);
  tcase_add_test(tc, test_uaf_read_large);
  tcase_add_test(tc, test_slack_write);
  tcase_add_test(tc, test_slack_read_medium);
  tcase_add_test(tc, test_slack_after_shrink);
  tcase_add_test(tc, test_never_allocated_read);
  tcase_add_test(tc, test_beyond_capacity_read);
  tcase_add_test(tc, test_destroyed_heap_read);
  tcase_add_test(tc, test_realloc_moved_read);
  tcase_add_test(tc, test_correct_program_is_silent);
  suite_add_tcase(s, tc);
  SRunner* sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
