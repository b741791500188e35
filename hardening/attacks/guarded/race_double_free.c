/* race_double_free: two threads free the same guarded block at once.
 *
 * Bug modelled: a double free by two threads that both think they own the
 * last reference (a refcount race), 16-byte block.
 * Steps (HARDHEAP_GUARDED_SAMPLE_RATE=1): in each of 300 child processes,
 * p = malloc(16); two threads spin on a flag, then both free(p). The parent
 * reads each child's stderr and sorts the reports: "double free" (the
 * state compare-and-swap or the lookup caught it), "near no block" (the
 * second free read the slack, checked byte by byte before the
 * compare-and-swap, after the first free had made the slot inaccessible:
 * a SIGSEGV inside free, reported as an invalid read in the guarded area),
 * anything else, or nothing.
 * WIN: a child survives both frees without a report. LOST: every child was
 * stopped; the counts show how often the report was the wrong one. */
/* ---- harness (every attack file carries its own copy) ------------------- */
#define _GNU_SOURCE
#include <malloc.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MIB ((uintptr_t)1 << 20)
#define SEG ((uintptr_t)4 << 20) /* hardheap segment size and alignment */

static void say(const char* prefix, const char* fmt, va_list ap) {
  char buf[600];
  int n = snprintf(buf, sizeof buf, "%s", prefix);
  int m = vsnprintf(buf + n, sizeof buf - (size_t)n - 1, fmt, ap);
  if (m < 0) m = 0;
  n += m;
  if (n > (int)sizeof buf - 2) n = (int)sizeof buf - 2;
  buf[n++] = '\n';
  if (write(1, buf, (size_t)n) < 0) _exit(5);
}
__attribute__((unused)) static void note(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  say("note: ", fmt, ap);
  va_end(ap);
}
__attribute__((unused)) static _Noreturn void win(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  say("ATTACK WIN: ", fmt, ap);
  va_end(ap);
  _exit(0);
}
__attribute__((unused)) static _Noreturn void lost(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  say("ATTACK LOST: ", fmt, ap);
  va_end(ap);
  _exit(3);
}
static void on_alarm(int sig) {
  (void)sig;
  static const char msg[] = "ATTACK HANG: the allocator did not return within the time limit\n";
  if (write(1, msg, sizeof msg - 1) < 0) _exit(5);
  _exit(4);
}
static void start(unsigned seconds) {
  signal(SIGALRM, on_alarm);
  alarm(seconds);
}
/* Pointers go through a volatile slot so the compiler cannot see the
 * use-after-free or the bad free (the bug being modelled). */
static void* volatile launder_slot;
__attribute__((unused)) static void* hide(void* p) {
  launder_slot = p;
  return launder_slot;
}
__attribute__((unused)) static uintptr_t peek(const void* p) { return *(const volatile uintptr_t*)p; }
__attribute__((unused)) static void poke(void* p, uintptr_t v) { *(volatile uintptr_t*)p = v; }
/* ------------------------------------------------------------------------- */

#include <pthread.h>
#include <stdatomic.h>
#include <sys/wait.h>

#define TRIALS 3000

static void* volatile target;
static atomic_int go;

static void* freer(void* arg) {
  (void)arg;
  while (!atomic_load(&go)) {
  }
  free(target);
  return NULL;
}

int main(void) {
  start(120);
  int correct = 0, wild = 0, other = 0, silent = 0;
  char example[300] = "";
  for (int t = 0; t < TRIALS; t++) {
    int fd[2];
    if (pipe(fd) != 0) lost("pipe");
    pid_t pid = fork();
    if (pid == 0) {
      close(fd[0]);
      dup2(fd[1], 2);
      target = malloc(16);
      pthread_t a, b;
      pthread_create(&a, NULL, freer, NULL);
      pthread_create(&b, NULL, freer, NULL);
      atomic_store(&go, 1);
      pthread_join(a, NULL);
      pthread_join(b, NULL);
      _exit(0);
    }
    close(fd[1]);
    static char err[16384];
    size_t len = 0;
    ssize_t n;
    while ((n = read(fd[0], err + len, sizeof err - 1 - len)) > 0) len += (size_t)n;
    err[len] = 0;
    close(fd[0]);
    int status;
    waitpid(pid, &status, 0);
    char* line = strstr(err, "hardheap: error:");
    if (line != NULL) {
      char* end = strchr(line, '\n');
      if (end != NULL) *end = 0;
    }
    if (line == NULL && WIFEXITED(status) && WEXITSTATUS(status) == 0) silent++;
    else if (line != NULL && strstr(line, "double free of") != NULL) correct++;
    else if (line != NULL && strstr(line, "near no block") != NULL) {
      wild++;
      snprintf(example, sizeof example, "%s", line);
    } else {
      other++;
      if (example[0] == 0) snprintf(example, sizeof example, "status %d: %s", status, line ? line : "(no report)");
    }
  }
  note("%d trials: %d reported as double free, %d as an invalid read near no block, %d otherwise, %d silent", TRIALS,
       correct, wild, other, silent);
  if (example[0] != 0) note("e.g. %s", example);
  if (silent != 0) win("%d of %d racing double frees went unreported", silent, TRIALS);
  lost("all %d racing double frees were stopped (%d with a wrong report)", TRIALS, wild + other);
}
