/* slack_unfreed: overflow writes that stay inside a guarded slot's open
 * page, on blocks the program never frees.
 *
 * Bug modelled: (1) an 8-byte overflow past a 40-byte block that ends 8
 * bytes before its guard (16-byte alignment slack); (2) a 4000-byte
 * overflow past a 64-byte block placed at the start of its slot (the
 * GUARDED_UNDERFLOW side, 25% of samples), whose page is open to its end;
 * (3) a 1000-byte underflow before a 64-byte block placed at the end of its
 * slot. None of the blocks is freed before exit (a leak, or a long-lived
 * object).
 * Steps (HARDHEAP_GUARDED_SAMPLE_RATE=1): allocate until each kind of
 * placement is at hand, write, exit.
 * No WIN condition (the bytes land in slack no other object uses): LOST
 * when the process exits without a report. The fill is checked only when
 * the block is freed (or reallocated); nothing checks live blocks' slack at
 * exit. Outcome: inherent to slack checked at free (GWP-ASan does the same);
 * a check of the live slots' fill at exit would cost little. */
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
  unsigned char *right40 = NULL, *left64 = NULL, *right64 = NULL;
  for (int i = 0; i < 200 && (right40 == NULL || left64 == NULL || right64 == NULL); i++) {
    unsigned char* p = hide(malloc(40));
    if ((((uintptr_t)p + 48) & 4095) == 0 && right40 == NULL) right40 = p;
    unsigned char* q = hide(malloc(64));
    if (((uintptr_t)q & 4095) == 0 && left64 == NULL) left64 = q;
    else if ((((uintptr_t)q + 64) & 4095) == 0 && right64 == NULL) right64 = q;
  }
  if (right40 == NULL || left64 == NULL || right64 == NULL) lost("no guarded blocks of each placement (rate 1?)");
  note("right-placed 40 bytes at %p, left-placed 64 at %p, right-placed 64 at %p", right40, left64, right64);
  memset(hide(right40 + 40), 'A', 8);      /* (1) 8 bytes past the end, in the alignment slack */
  memset(hide(left64 + 64), 'B', 4000);    /* (2) 4000 bytes past the end, to the end of the open page */
  memset(hide(right64 - 1000), 'C', 1000); /* (3) 1000 bytes before the start */
  lost("three overflows (8 and 4000 bytes past, 1000 before) of never-freed guarded blocks went unreported");
}
