/* uaf_after_cycle: use after free once the guarded quarantine has cycled.
 *
 * Bug modelled: a stale pointer p to a freed 64-byte block is written
 * through later (dangling pointer write), after the program has freed many
 * other blocks.
 *
 * Steps (HARDHEAP_GUARDED_SAMPLE_RATE=1): p = malloc(64); free(p); then 256
 * malloc(5000) + free (another slot class, so they cannot take p's slot)
 * push p's slot out of the 256-entry quarantine onto its class's free
 * stack; the next malloc(64), the "attacker's object" q, pops it. If q is
 * at p's address (same side of the slot: 75% with GUARDED_UNDERFLOW=25;
 * retried otherwise), write through p.
 * WIN: the write through the stale p changes the live block q; no report.
 * Outcome: the quarantine bound is an inherent limit (GWP-ASan reuses slots
 * too), but here the reuse is deterministic: the slot that leaves the
 * quarantine is the very next one handed out (LIFO free stack), and at the
 * same address. Random choice among free slots, or fresh slots first while
 * the segment has some, would make it a guess. */
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

#define SIZE 64
#define CYCLE 256 /* HARDHEAP_GUARDED_QUARANTINE default */

int main(void) {
  start(20);
  for (int attempt = 1; attempt <= 20; attempt++) {
    unsigned char* p = hide(malloc(SIZE));
    free(hide(p));
    for (int i = 0; i < CYCLE; i++) free(hide(malloc(5000)));
    unsigned char* q = hide(malloc(SIZE));
    if (q != p) {
      note("attempt %d: q = %p, p was %p (other side of the slot); again", attempt, q, p);
      continue;  /* q is leaked: keeps the slot out of the way */
    }
    poke(q, 0x1111111111111111u);                 /* the new owner's data */
    poke(hide(p), 0x4141414141414141u);           /* the bug: write through the stale pointer */
    if (peek(q) != 0x4141414141414141u) lost("the stale write did not reach q");
    free(hide(q));
    win("write through p = %p, freed %d frees earlier, changed the live block q = %p (attempt %d)", p, CYCLE + 1, q,
        attempt);
  }
  lost("the freed slot was never handed out at the same address");
}
