/* fork_child_uaf: a child process uses a block its parent freed before
 * the fork.
 *
 * Bug modelled: a use after free in a forked child (a server that frees a
 * request buffer, forks a worker, and the worker still reads the buffer
 * through a stale pointer), 128-byte block.
 * Steps (HARDHEAP_GUARDED_SAMPLE_RATE=1): p = malloc(128), filled; free(p);
 * fork; the child reads p[5]; the parent waits and dies the way the child
 * did (so its output and status are the child's).
 * WIN: the child reads the old contents. Expected: the slot's protection
 * and hardheap's handler are inherited: the child dies with a
 * "use after free: read of" report and SIGABRT, which the parent passes
 * on. */
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

int main(void) {
  start(10);
  volatile unsigned char* p = hide(malloc(128));
  for (int i = 0; i < 128; i++) p[i] = 0x77;
  free(hide((void*)p));
  pid_t pid = fork();
  if (pid == 0) {
    unsigned char c = p[5]; /* the bug */
    if (c == 0x77) win("the child read the freed block's old contents");
    lost("the child read %#x from the freed block", c);
  }
  int status;
  waitpid(pid, &status, 0);
  if (WIFEXITED(status)) _exit(WEXITSTATUS(status));
  signal(WTERMSIG(status), SIG_DFL);
  raise(WTERMSIG(status));
  _exit(6);
}
