/* chain_handler_recursion: a chaining SIGSEGV handler installed after
 * start-up, then a sampled allocation, then an ordinary crash.
 *
 * Bug modelled: a NULL pointer read (not a heap bug at all) in a program
 * whose crash handler does what most crash reporters do: sigaction()
 * saves the previous action (hardheap's handler, installed at start) and
 * the handler calls it after its own work.
 * Steps (HARDHEAP_GUARDED_SAMPLE_RATE=1): install the chaining handler;
 * malloc(48) (a sample: hardheap puts its handler back in front, the
 * program's becomes its "previous"); read *(NULL + 16).
 * hardheap's handler forwards the fault to its previous (the program's),
 * which calls its saved previous (hardheap's) directly, which forwards
 * again: unbounded mutual recursion until the stack overflows.
 * WIN: the program's handler is entered 100 times for the one fault (a
 * crash reporter would write 100 reports, or deadlock on its own lock).
 * Outcome: a real bug in src/guarded_fault.c (forward, fault_arm). */
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

static struct sigaction saved;
static volatile int entries;

static void crash_reporter(int sig, siginfo_t* info, void* ctx) {
  if (++entries == 100) win("the program's SIGSEGV handler was entered %d times for one NULL read", entries);
  /* ... write a crash report ..., then chain */
  if ((saved.sa_flags & SA_SIGINFO) != 0 && saved.sa_sigaction != NULL) {
    saved.sa_sigaction(sig, info, ctx);
  } else if (saved.sa_handler != SIG_DFL && saved.sa_handler != SIG_IGN) {
    saved.sa_handler(sig);
  } else {
    signal(sig, SIG_DFL);  /* the fault re-runs and kills the process */
  }
}

int main(void) {
  start(10);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = crash_reporter;
  sa.sa_flags = SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGSEGV, &sa, &saved);
  (void)hide(malloc(48)); /* any sampled allocation */
  volatile char* null = hide(NULL);
  char c = null[16]; /* the crash */
  (void)c;
  lost("the NULL read did not fault");
}
