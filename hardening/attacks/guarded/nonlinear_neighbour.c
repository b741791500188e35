/* nonlinear_neighbour: a non-linear overflow that steps over the guard page
 * into the next guarded slot.
 *
 * Bug modelled: an out-of-bounds indexed write a[i] = v with i past the end
 * of a 64-byte block (a wrong index, not a linear copy), so the bytes between
 * the block's end and the target are never touched.
 *
 * Steps (run with HARDHEAP_GUARDED_SAMPLE_RATE=1): allocate 32 blocks of 64
 * bytes; guarded slots of one page are handed out in address order, one
 * page of data then one guard page, so two consecutive samples are 8192
 * bytes apart. Pick a pair (a, b) whose slots are neighbours, write 8 bytes
 * at a + (b - a) (past a's guard page, inside b), then free b and a.
 * WIN: b holds the attacker's bytes and both frees pass without a report.
 * Outcome: an inherent limit of guard pages (GWP-ASan has it too): only an
 * access that touches the guard faults. The address-ordered slot choice
 * (fresh slots in order, 75% of blocks at the same offset of their page)
 * makes the distance to a live neighbour a constant; random slot choice
 * would make it a guess with a fault as the price of a miss. */
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

#define N 32
#define SIZE 64

int main(void) {
  start(10);
  static unsigned char* v[N];
  for (int i = 0; i < N; i++) v[i] = hide(malloc(SIZE));
  for (int i = 0; i < N; i++) {
    for (int j = 0; j < N; j++) {
      uintptr_t a = (uintptr_t)v[i], b = (uintptr_t)v[j];
      if ((b & ~(uintptr_t)4095) != (a & ~(uintptr_t)4095) + 8192) continue;
      volatile ptrdiff_t index = (ptrdiff_t)(b - a);  /* the wrong index */
      note("a = %p, b = %p: writing a[%td] (%td bytes past a's end)", v[i], v[j], (ptrdiff_t)index,
           (ptrdiff_t)index - SIZE);
      poke(v[i] + index, 0x4141414141414141u);
      if (peek(v[j]) != 0x4141414141414141u) lost("the write did not land in b");
      free(hide(v[j]));
      free(hide(v[i]));
      win("a[%td] overwrote the live block %p (a guarded neighbour of %p); both frees passed", (ptrdiff_t)index,
          v[j], v[i]);
    }
  }
  lost("no two of the %d blocks were in neighbouring slots", N);
}
