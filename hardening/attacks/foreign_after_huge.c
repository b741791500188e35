/* foreign_after_huge: free of a pointer into a foreign mapping placed right
 * after a huge block, in the 4 MiB window whose segment-map bit says
 * "hardheap".
 *
 * Bug modelled: free() of memory that came from mmap (or another allocator),
 * i.e. an invalid free of a foreign pointer.
 *
 * Steps:
 *  1. h = malloc(3 MiB): its segment ends 3 MiB + info_size into its 4 MiB
 *     window; the rest of the window is not hardheap's, but the window's
 *     segment-map bit is set. h + malloc_usable_size(h) is the end of the
 *     segment (public information, no /proc needed).
 *  2. f = mmap(that end, 64 KiB, MAP_FIXED_NOREPLACE): fails harmlessly if
 *     anything is mapped there, then try another huge block.
 *  3. free(f).
 * WIN: free(f) is taken as a free of h (the default build trusts pointers in
 * a live segment): h, still allocated, is unmapped.
 * Expected: the secure build's pointer check rejects f (beyond the block);
 * the default build needs at least a bounds check against the segment size
 * (cheap: one compare) before acting on a huge segment. */
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
#include <errno.h>
#include <sys/mman.h>

int main(void) {
  start(10);
  for (int i = 0; i < 8; i++) {
    char* h = hide(malloc(3 * MIB));
    memset(h, 'H', 4096);
    uintptr_t end = (uintptr_t)h + malloc_usable_size(h);
    if ((end & (SEG - 1)) == 0) continue;
    void* f = mmap((void*)end, 65536, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (f == MAP_FAILED || f != (void*)end) {
      if (f != MAP_FAILED) munmap(f, 65536);
      continue;
    }
    note("huge block %p ends at %p; foreign mapping placed there", (void*)h, f);
    free(hide(f));
    if (msync(h, 4096, MS_ASYNC) != 0 && errno == ENOMEM)
      win("free(%p) of a foreign mapping unmapped the live huge block %p", f, (void*)h);
    lost("free of the foreign pointer left the huge block mapped");
  }
  lost("could not place a mapping right after a huge block");
}
