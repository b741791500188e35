/* read_overflow_slack: out-of-bounds reads that stay inside a guarded
 * slot's open page.
 *
 * Bug modelled: reads past the end or before the start of a guarded block
 * that do not reach its guard page: 8 bytes past a 40-byte block (its
 * alignment slack), 4000 bytes past a 64-byte block placed at the start of
 * its slot, 1000 bytes before a 64-byte block placed at the end of its slot.
 * Steps (HARDHEAP_GUARDED_SAMPLE_RATE=1): allocate until each placement is
 * at hand, read, free all three.
 * WIN: a read returns anything but the fill byte 0xd5 (memory of another
 * object or an old one). LOST: the reads go unreported (a read leaves the
 * fill intact, so free finds nothing) but see only the fill.
 * Outcome: inherent (reads into slack cannot be caught without a fault;
 * GUARDED_PRECISE removes the trailing slack); nothing leaks. */
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

static int all_fill(const unsigned char* p, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (((const volatile unsigned char*)p)[i] != 0xd5) return 0;
  }
  return 1;
}

int main(void) {
  start(10);
  unsigned char *right40 = NULL, *left64 = NULL, *right64 = NULL;
  for (int i = 0; i < 200 && (right40 == NULL || left64 == NULL || right64 == NULL); i++) {
    unsigned char* p = hide(malloc(40));
    if ((((uintptr_t)p + 48) & 4095) == 0 && right40 == NULL) right40 = p;
    unsigned char* q = hide(malloc(64));
    if (((uintptr_t)q & 4095) == 0 && left64 == NULL) left64 = q;
    else if ((((uintptr_t)q + 64) & 4095) == 0 && right64 == NULL) right64 = q;
  }
  if (right40 == NULL || left64 == NULL || right64 == NULL) lost("no guarded blocks of each placement (rate 1?)");
  int a = all_fill(right40 + 40, 8), b = all_fill(left64 + 64, 4000), c = all_fill(right64 - 1000, 1000);
  free(hide(right40));
  free(hide(left64));
  free(hide(right64));
  if (!a || !b || !c) win("an out-of-bounds read saw bytes other than the fill (%d %d %d)", a, b, c);
  lost("reads of 8 and 4000 bytes past and 1000 before guarded blocks went unreported; they saw only the fill 0xd5");
}
