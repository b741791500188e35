/* slack_24_1: 1-byte overflow past malloc(24) that stays inside the block
 * (the size class rounds the request up, so the bytes land in slack).
 *
 * Bug modelled: a write of 1 bytes just past the end of a malloc(24)
 * buffer (off-by-one / short overflow).
 *
 * Steps: p = malloc(24); write 1 bytes at p + 24; free(p); then one
 * more allocation of the same size.
 * No WIN condition: nothing of the allocator or of another block is hit.
 * Outcome: LOST (exit 3) while the overflow goes unnoticed; CAUGHT once
 * canaries are in (the slack between the requested size and the class size
 * checked on free).
 * Defence that should stop it: a canary in the slack (requested size kept
 * per block or encoded in the slack), checked on free/realloc. */
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
  size_t size = 24, n = 1;
  unsigned char* p = hide(malloc(size));
  size_t usable = malloc_usable_size(p);
  if (usable < size + n) lost("the overflow would leave the block (usable %zu)", usable);
  memset(p, 'A', size);
  memset(p + size, 'O', n); /* the overflow */
  free(hide(p));
  free(hide(malloc(size)));
  lost("%zu-byte overflow past malloc(%zu) (usable %zu) went unnoticed", n, size, usable);
}
