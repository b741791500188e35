/* realloc_freed: realloc of a block that was already freed.
 *
 * Bug modelled: realloc(p, n) after free(p) (use after free through the API).
 *
 * Steps:
 *  1. p = malloc(64); free(p).
 *  2. q = realloc(p, 64): the pointer checks pass (page in use, block
 *     boundary) and the size fits, so realloc returns p in place; nothing
 *     looks at whether p is free.
 *  3. malloc(64) until p comes back.
 * WIN: p is handed out by malloc while the program holds it from realloc.
 * Defence that should stop it: realloc (and usable_size) run the same
 * double-free test as free (filter + list walk, or a free bitmap). */
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
  static uintptr_t got[4200];
  int n = 0;
  for (int i = 0; i < 8; i++) got[n++] = (uintptr_t)hide(malloc(64));
  void* p = (void*)got[4];
  free(hide(p));
  void* q = realloc(hide(p), 64);
  if (q == NULL) lost("realloc of the freed block failed without a report");
  note("realloc(freed %p, 64) returned %p", p, q);
  got[4] = (uintptr_t)q;
  for (int k = 0; k < 4096; k++) {
    uintptr_t r = (uintptr_t)hide(malloc(64));
    for (int j = 0; j < n; j++)
      if (got[j] == r) win("malloc(64) returned %p, which realloc handed back as live", (void*)r);
    got[n++] = r;
  }
  lost("no block was handed out twice");
}
