/* neighbour_5000_200: 200-byte overflow past malloc(5000) into the live
 * block that follows it.
 *
 * Bug modelled: a linear overflow of 200 bytes past a malloc(5000) buffer.
 * The class is 5120 bytes, so the last 80 bytes land in the next block.
 *
 * Steps:
 *  1. Allocate 5000-byte blocks until two are adjacent (b == a + 5120; the
 *     secure build shuffles only batches of more than one block, and a
 *     4 KiB batch holds a single 5120-byte block).
 *  2. Fill b with a pattern, write 200 bytes past a + 5000, free(a), free(b).
 * WIN: b's first 80 bytes were rewritten and both frees went through without
 * a report.
 * Defence that should stop it: canaries in the slack/at the block end checked
 * on free (would catch it at free(a)); guard slots or random gaps between
 * blocks make the neighbour less predictable. */
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
  static unsigned char* blk[64];
  unsigned char *a = NULL, *b = NULL;
  for (int i = 0; i < 64 && b == NULL; i++) {
    blk[i] = hide(malloc(5000));
    for (int j = 0; j < i && b == NULL; j++) {
      if (blk[i] == blk[j] + 5120) { a = blk[j]; b = blk[i]; }
      else if (blk[j] == blk[i] + 5120) { a = blk[i]; b = blk[j]; }
    }
  }
  if (b == NULL) lost("no two adjacent 5000-byte blocks");
  memset(b, 'B', 5000);
  memset(a, 'A', 5000);
  memset(a + 5000, 'O', 200); /* the overflow */
  int hit = 0;
  for (int i = 0; i < 80; i++) hit += b[i] == 'O';
  free(hide(a));
  free(hide(b));
  if (hit == 80) win("80 bytes of the live neighbour %p were overwritten; both frees passed", (void*)b);
  lost("the neighbour was not reached (%d bytes)", hit);
}
