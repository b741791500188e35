/* Sampled guarded allocations, from the outside: each case is a buggy (or
 * careful) program using only the malloc API; tests/guarded/CMakeLists.txt
 * runs them with HARDHEAP_GUARDED_SAMPLE_RATE and friends set, and checks
 * the exit status and the report lines (expect.sh). The sweeps fork one
 * child per size and check each child's report themselves.
 *
 * Built with -rdynamic so that the reports name these functions: a case
 * passes only if the report says where the block was allocated and freed. */
#define _GNU_SOURCE
#include <hardheap.h>

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile uintptr_t sink;

/* Noinline and exported: the frames the reports must show. */
__attribute__((noinline)) void* guarded_case_allocate(size_t size) {
  void* p = malloc(size);
  sink = (uintptr_t)p;
  return (void*)sink;
}

__attribute__((noinline)) void guarded_case_release(void* p) {
  free(p);
  sink = 0;
}

__attribute__((noinline)) void guarded_case_write(volatile char* p, ptrdiff_t offset) {
  p[offset] = 1;
}

__attribute__((noinline)) char guarded_case_read(volatile char* p, ptrdiff_t offset) {
  return p[offset];
}

static size_t sampled(void) {
  hh_stats_t s;
  hh_stats_get(&s);
  return s.guarded_sampled;
}

/* ---- single bugs: the process dies with a report ---------------------------------*/
static int overflow_48(void) {
  char* p = guarded_case_allocate(48);
  guarded_case_write(p, 48);
  return 0;
}

static int overflow_far(void) {
  char* p = guarded_case_allocate(100);
  guarded_case_write(p, 100 + 200);
  return 0;
}

static int underflow_1(void) {
  char* p = guarded_case_allocate(64);
  guarded_case_write(p, -1);
  return 0;
}

static int use_after_free_read(void) {
  char* p = guarded_case_allocate(200);
  guarded_case_release(p);
  return guarded_case_read(p, 10);
}

static int double_free(void) {
  char* p = guarded_case_allocate(32);
  guarded_case_release(p);
  guarded_case_release(p);
  return 0;
}

static int interior_free(void) {
  char* p = guarded_case_allocate(32);
  guarded_case_release(p + 8);
  return 0;
}

static int slack_overflow(void) {
  /* 40 bytes end 8 bytes before the guard (16-byte alignment): the write
   * lands in the filled slack and is found by free */
  char* p = guarded_case_allocate(40);
  guarded_case_write(p, 41);
  guarded_case_release(p);
  return 0;
}

static void* release_thread(void* p) {
  guarded_case_release(p);
  return NULL;
}

static int remote_free_then_use(void) {
  char* p = guarded_case_allocate(80);
  pthread_t t;
  pthread_create(&t, NULL, release_thread, p);
  pthread_join(t, NULL);
  guarded_case_write(p, 0);
  return 0;
}

static int realloc_then_stale_use(void) {
  char* p = guarded_case_allocate(24);
  char* q = realloc(p, 2000);  /* a guarded block always moves */
  if (q == p) return 2;
  sink = (uintptr_t)q;
  guarded_case_write(p, 0);
  return 0;
}

/* ---- the program's own handlers keep working -------------------------------------*/
static void own_handler(int sig) {
  (void)sig;
  static const char msg[] = "own SIGSEGV handler ran\n";
  (void)!write(2, msg, sizeof(msg) - 1);
  _exit(42);
}

/* A fault that is not hardheap's goes to the program's handler. */
static int own_handler_null(void) {
  (void)guarded_case_allocate(16);  /* sampling is on and armed */
  signal(SIGSEGV, own_handler);
  (void)guarded_case_allocate(16);  /* re-armed in front of it */
  return guarded_case_read(NULL, 0x10);
}

/* A guarded fault with the program's handler installed later: the report
 * first, then (ABORT_ON_MISUSE=0) the fault reaches the program's handler. */
static int own_handler_overflow(void) {
  signal(SIGSEGV, own_handler);
  char* p = guarded_case_allocate(48);
  guarded_case_write(p, 48);
  return 0;
}

/* ---- careful programs: everything works --------------------------------------------*/
/* Every kind of allocation at rate 1 is usable to its full size, aligned,
 * zeroed when asked, reallocated with its contents, and freed. */
static int api_at_rate_1(void) {
  size_t before = sampled();
  for (size_t size = 0; size < 9000; size += size < 64 ? 1 : 61) {
    unsigned char* p = malloc(size);
    if (p == NULL) return 2;
    if (size != 0 && ((uintptr_t)p & 15) != 0 && !getenv("HARDHEAP_GUARDED_PRECISE")) return 3;
    memset(p, 0xab, size);
    if (malloc_usable_size(p) < size) return 4;
    unsigned char* c = calloc(1, size);
    for (size_t i = 0; i < size; i++) {
      if (c[i] != 0) return 5;
    }
    unsigned char* r = realloc(p, size * 2 + 1);
    for (size_t i = 0; i < size; i++) {
      if (r[i] != 0xab) return 6;
    }
    free(r);
    free(c);
  }
  for (size_t align = 16; align <= 4096; align *= 2) {
    void* p = NULL;
    if (posix_memalign(&p, align, 100) != 0 || ((uintptr_t)p & (align - 1)) != 0) return 7;
    memset(p, 1, 100);
    free(p);
    p = aligned_alloc(align, align * 3);
    if (p == NULL || ((uintptr_t)p & (align - 1)) != 0) return 8;
    memset(p, 1, align * 3);
    free(p);
  }
  size_t taken = sampled() - before;
  printf("sampled %zu\n", taken);
  return taken >= 400 ? 0 : 9;
}

/* GUARDED_SLOTS=8: no more than 8 guarded blocks live at once, the rest
 * allocated normally and counted as skipped. */
static int slot_limit(void) {
  void* p[100];
  for (int i = 0; i < 100; i++) p[i] = malloc(100);
  hh_stats_t s;
  hh_stats_get(&s);
  printf("live %zu skipped %zu\n", s.guarded_live, s.guarded_skipped);
  int bad = s.guarded_live > 8 || s.guarded_skipped < 90;
  for (int i = 0; i < 100; i++) free(p[i]);
  hh_stats_get(&s);
  return bad || s.guarded_live != 0 ? 2 : 0;
}

/* Which of 20000 allocations were sampled, as a list of indices: the same
 * seed gives the same list (the test runs this twice and compares). */
static int sample_sequence(void) {
  void* keep[64];
  int kept = 0;
  for (int i = 0; i < 20000; i++) {
    size_t before = sampled();
    void* p = malloc((size_t)(i % 500) + 1);
    if (sampled() != before) {
      printf("%d ", i);
      if (kept < 64) keep[kept++] = p;
      else free(p);
    } else {
      free(p);
    }
  }
  printf("\n");
  for (int i = 0; i < kept; i++) free(keep[i]);
  return 0;
}

/* No sampling: nothing is guarded. */
static int no_samples(void) {
  for (int i = 0; i < 100000; i++) free(malloc((size_t)(i % 300) + 1));
  printf("sampled %zu\n", sampled());
  return sampled() == 0 ? 0 : 2;
}

/* The secure build samples by default (one in 5000): some of 200000. */
static int default_samples(void) {
  for (int i = 0; i < 200000; i++) free(malloc((size_t)(i % 300) + 1));
  printf("sampled %zu\n", sampled());
  return sampled() >= 10 && sampled() <= 200 ? 0 : 2;
}

/* ---- sweeps: one child per size ---------------------------------------------------*/
/* Run fn(size) in a child; return its exit status and stderr. */
static int run_child(void (*fn)(size_t), size_t size, char* out, size_t out_size) {
  int pipefd[2];
  if (pipe(pipefd) != 0) return -1;
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    close(pipefd[0]);
    dup2(pipefd[1], 2);
    fn(size);
    _exit(0);
  }
  close(pipefd[1]);
  size_t len = 0;
  ssize_t n;
  while ((n = read(pipefd[0], out + len, out_size - 1 - len)) > 0) len += (size_t)n;
  out[len] = 0;
  close(pipefd[0]);
  int status;
  waitpid(pid, &status, 0);
  return status;
}

static void overflow_by_one(size_t size) {
  char* p = guarded_case_allocate(size);
  guarded_case_write(p, (ptrdiff_t)size);
  guarded_case_release(p);
}

static void underflow_by_one(size_t size) {
  char* p = guarded_case_allocate(size);
  guarded_case_write(p, -1);
  guarded_case_release(p);
}

static const size_t sweep_sizes[] = {1,    2,    3,    7,    8,    15,   16,   17,    31,    32,    33,
                                     47,   48,   63,   64,   65,   100,  127,  128,   255,   256,   1000,
                                     1024, 4000, 4095, 4096, 4097, 8191, 8192, 65535, 65536, 100000, 1000000};

/* Each size overflowed by one byte must be reported: at the access on the
 * guard page (precise, or a size that leaves no slack), else at free
 * (the byte landed in the slack). */
static int overflow_sweep(void) {
  char out[16384];
  bool precise = getenv("HARDHEAP_GUARDED_PRECISE") != NULL;
  for (size_t i = 0; i < sizeof(sweep_sizes) / sizeof(sweep_sizes[0]); i++) {
    size_t size = sweep_sizes[i];
    int status = run_child(overflow_by_one, size, out, sizeof(out));
    char at_guard[128], at_free[160];
    snprintf(at_guard, sizeof(at_guard), ", 0 bytes after the %zu-byte block at", size);
    snprintf(at_free, sizeof(at_free), "heap buffer overflow past the %zu-byte block at", size);
    bool fault = strstr(out, at_guard) != NULL && strstr(out, "heap buffer overflow: write of") != NULL;
    bool on_free = strstr(out, at_free) != NULL;
    bool named = strstr(out, "guarded_case_allocate") != NULL;
    bool died = WIFSIGNALED(status);
    bool ok = died && named && (fault || (!precise && size % 16 != 0 && on_free));
    if (!ok) {
      printf("size %zu: status %d, report:\n%s\n", size, status, out);
      return 2;
    }
  }
  printf("all %zu sizes caught\n", sizeof(sweep_sizes) / sizeof(sweep_sizes[0]));
  return 0;
}

/* With GUARDED_UNDERFLOW=100 every sample starts at its guard. */
static int underflow_sweep(void) {
  char out[16384];
  for (size_t i = 0; i < sizeof(sweep_sizes) / sizeof(sweep_sizes[0]); i++) {
    size_t size = sweep_sizes[i];
    int status = run_child(underflow_by_one, size, out, sizeof(out));
    char want[128];
    snprintf(want, sizeof(want), ", 1 bytes before the %zu-byte block at", size);
    if (!WIFSIGNALED(status) || strstr(out, want) == NULL || strstr(out, "guarded_case_allocate") == NULL) {
      printf("size %zu: status %d, report:\n%s\n", size, status, out);
      return 2;
    }
  }
  printf("all %zu sizes caught\n", sizeof(sweep_sizes) / sizeof(sweep_sizes[0]));
  return 0;
}

int main(int argc, char** argv) {
  static const struct {
    const char* name;
    int (*fn)(void);
  } cases[] = {
      {"overflow_48", overflow_48},
      {"overflow_far", overflow_far},
      {"underflow_1", underflow_1},
      {"use_after_free_read", use_after_free_read},
      {"double_free", double_free},
      {"interior_free", interior_free},
      {"slack_overflow", slack_overflow},
      {"remote_free_then_use", remote_free_then_use},
      {"realloc_then_stale_use", realloc_then_stale_use},
      {"own_handler_null", own_handler_null},
      {"own_handler_overflow", own_handler_overflow},
      {"api_at_rate_1", api_at_rate_1},
      {"slot_limit", slot_limit},
      {"sample_sequence", sample_sequence},
      {"no_samples", no_samples},
      {"default_samples", default_samples},
      {"overflow_sweep", overflow_sweep},
      {"underflow_sweep", underflow_sweep},
  };
  if (argc != 2) {
    fprintf(stderr, "usage: %s CASE\n", argv[0]);
    return 2;
  }
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    if (strcmp(argv[1], cases[i].name) == 0) {
      int rc = cases[i].fn();
      fflush(NULL);
      return rc;
    }
  }
  fprintf(stderr, "unknown case %s\n", argv[1]);
  return 2;
}
