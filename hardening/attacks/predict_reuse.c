/* predict_reuse: how soon a freed block is handed out again (no quarantine).
 *
 * Bug modelled: use after free: the attacker wants its own object of the same
 * size placed where the freed victim was.
 *
 * Steps: allocate 64 victims of 64 bytes, free victim 40, then allocate
 * 64-byte objects until one lands on the victim, up to 1024.
 * WIN: the freed block is reused within 1024 allocations of its size class
 * (the count is printed; the default build and the secure build give the
 * same kind of answer: once the current free list runs dry).
 * Defence that should stop it: a quarantine of freed blocks (FIFO with a
 * size bound) and random choice among free blocks on allocation. */
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

int main(void) {
  start(10);
  static void* v[64];
  for (int i = 0; i < 64; i++) v[i] = hide(malloc(64));
  void* victim = v[40];
  free(hide(victim));
  for (int k = 1; k <= 1024; k++) {
    void* q = hide(malloc(64));
    if (q == victim) win("the freed block %p was handed out again by the %d. malloc(64) after its free", q, k);
  }
  lost("the freed block was not reused within 1024 allocations");
}
