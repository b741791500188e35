/* df_large_after_reuse: a second free of a large block after its span was
 * handed out again (stale pointer), which frees the new, live block.
 *
 * Bug modelled: a double free whose second free comes after the memory was
 * reallocated (300000-byte blocks).
 *
 * Steps:
 *  1. p = malloc(300000); free(p); q = malloc(300000): the span cache gives
 *     the same span back, q == p.
 *  2. free(p) again: it is a valid free of q.
 *  3. r = malloc(300000).
 * WIN: r == q while q is live (the program still uses q).
 * Defence that should stop it: not reusing a freed span at once (quarantine
 * / randomised reuse), so that the second free is of a free span and is
 * reported. A double free after reuse cannot be told from a valid free. */
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
  void* keep = hide(malloc(300000));
  void* p = hide(malloc(300000));
  free(hide(p));
  void* q = hide(malloc(300000));
  if (q != p) lost("the span was not reused at once (%p, then %p)", p, q);
  memset(q, 'Q', 300000);
  free(hide(p)); /* the stale second free */
  void* r = hide(malloc(300000));
  if (r == q) win("malloc(300000) returned %p, the live block q freed through a stale pointer", r);
  free(keep);
  lost("r = %p, q = %p", r, q);
}
