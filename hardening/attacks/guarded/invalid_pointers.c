/* invalid_pointers: free, realloc and malloc_usable_size of pointers near
 * guarded slots (guard pages, the slot table, slack, interiors, freed
 * blocks).
 *
 * Bug modelled: an invalid pointer passed to free/realloc/usable_size (one
 * per child process; the parent forks a child per variant and reads its
 * stderr).
 * Steps (HARDHEAP_GUARDED_SAMPLE_RATE=1): p = malloc(64) at the end of its
 * slot; each child passes one of: the guard page after p, the segment's
 * slot table (p rounded down to 4 MiB, plus a page), the slot's open page
 * start (front slack), p + 16, a never-used slot's data, and p after
 * free(p).
 * WIN: a call returns (a free that frees something, a realloc that returns
 * a block, a usable size) without a report. LOST: every child died with a
 * "hardheap: error:" line. */
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

#include <sys/wait.h>

enum { FREE, REALLOC, USABLE };
static const char* const op_name[] = {"free", "realloc", "malloc_usable_size"};

static unsigned char* p;

static void call(int op, void* q) {
  uintptr_t a = (uintptr_t)q;
  if (op == FREE) {
    free(q);
    note("free(%#zx) returned", (size_t)a);
  } else if (op == REALLOC) {
    void* r = realloc(q, 100);
    note("realloc(%#zx, 100) returned %p", (size_t)a, r);
  } else {
    note("malloc_usable_size(%p) returned %zu", q, malloc_usable_size(q));
  }
}

/* 1: the child returned from the call without a report; 0: caught. */
static int run(const char* what, int op, void* q, int free_first) {
  int fd[2];
  if (pipe(fd) != 0) lost("pipe");
  pid_t pid = fork();
  if (pid == 0) {
    close(fd[0]);
    dup2(fd[1], 2);
    if (free_first) free(hide(p));
    call(op, hide(q));
    _exit(0);
  }
  close(fd[1]);
  char err[8192];
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
  int caught = WIFSIGNALED(status) && line != NULL;
  note("%s(%s): %s%s", op_name[op], what, caught ? "caught: " : "NOT CAUGHT", caught ? line + 17 : "");
  return !caught;
}

int main(void) {
  start(30);
  p = hide(malloc(64));
  if ((((uintptr_t)p + 64) & 4095) != 0) lost("p = %p is not at the end of a guarded slot (rate 1? left side?)", p);
  unsigned char* page = (unsigned char*)((uintptr_t)p & ~(uintptr_t)4095);
  unsigned char* guard = page + 4096;
  unsigned char* table = (unsigned char*)((uintptr_t)p & ~(SEG - 1)) + 4096;
  unsigned char* unused = (unsigned char*)((uintptr_t)p & ~(SEG - 1)) + SEG - 2 * 4096; /* last slot's data */
  int missed = 0, total = 0;
  for (int op = FREE; op <= USABLE; op++) {
    missed += run("guard page", op, guard, 0);
    missed += run("guard page + 64", op, guard + 64, 0);
    missed += run("slot table", op, table, 0);
    missed += run("front slack", op, page, 0);
    missed += run("p + 16", op, p + 16, 0);
    missed += run("unused slot", op, unused, 0);
    missed += run("p after free(p)", op, p, 1);
    total += 7;
  }
  if (missed != 0) win("%d of %d calls with invalid pointers returned without a report", missed, total);
  lost("all %d calls with invalid pointers near guarded slots were reported", total);
}
