/* chain_handler_hang: a chaining SIGSEGV handler installed after start-up,
 * a sampled allocation, then a guarded overflow, with
 * HARDHEAP_ABORT_ON_MISUSE=0 (the program sets it and runs itself again).
 *
 * Bug modelled: a 1-byte overflow past a guarded 48-byte block, in a
 * program whose crash handler chains to the handler it displaced
 * (hardheap's), as crash reporters do.
 * Steps (HARDHEAP_GUARDED_SAMPLE_RATE=1, ABORT_ON_MISUSE=0): install the
 * chaining handler; p = malloc(48) (a sample: hardheap's handler goes back
 * in front, the program's becomes its "previous"; allocated again until one
 * ends at its guard page); p[48] = 1.
 * hardheap reports, restores its previous (the program's handler) and
 * returns; the write faults again, the program's handler chains to
 * hardheap's, which sees a report already made, restores the program's
 * handler again and returns; and so on: the process never dies.
 * HANG (exit 4) once the program's handler has run 1000 times.
 * Outcome: a real bug in src/guarded_fault.c (on_fault restores a handler
 * that leads back to itself). */
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
  if (++entries == 1000) {
    static const char msg[] = "ATTACK HANG: the guarded fault re-ran 1000 times through the program's handler\n";
    if (write(1, msg, sizeof msg - 1) < 0) _exit(5);
    _exit(4);
  }
  if ((saved.sa_flags & SA_SIGINFO) != 0 && saved.sa_sigaction != NULL) {
    saved.sa_sigaction(sig, info, ctx);
  } else if (saved.sa_handler != SIG_DFL && saved.sa_handler != SIG_IGN) {
    saved.sa_handler(sig);
  } else {
    signal(sig, SIG_DFL);
  }
}

int main(int argc, char** argv) {
  (void)argc;
  const char* abort_opt = getenv("HARDHEAP_ABORT_ON_MISUSE");
  if (abort_opt == NULL || strcmp(abort_opt, "0") != 0) {
    setenv("HARDHEAP_ABORT_ON_MISUSE", "0", 1);
    execv(argv[0], argv);
    lost("could not run itself again");
  }
  start(10);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = crash_reporter;
  sa.sa_flags = SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGSEGV, &sa, &saved);
  volatile unsigned char* p = NULL;
  for (int i = 0; i < 100 && p == NULL; i++) {  /* one at the end of its slot (75% are) */
    volatile unsigned char* q = hide(malloc(48));
    if ((((uintptr_t)q + 48) & 4095) == 0) p = q;
  }
  if (p == NULL) lost("no block at the end of a guarded slot (rate 1?)");
  p[48] = 1; /* the bug */
  lost("the overflow went through");
}
