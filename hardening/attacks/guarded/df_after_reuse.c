/* df_after_reuse: double free after the guarded slot was handed out again.
 *
 * Bug modelled: free(p) twice, the second time long after the first (a
 * stale pointer freed again), with 256+ other frees in between.
 *
 * Steps (HARDHEAP_GUARDED_SAMPLE_RATE=1): p = malloc(64); free(p); 256
 * malloc(5000) + free push p's slot out of the quarantine; q = malloc(64)
 * takes it, at p's address (retried when it lands on the other side);
 * free(p) again: it frees q. Another 256 frees push the slot out again and
 * r = malloc(64) gets it while the program still holds q.
 * WIN: r == q while q is live (two owners of the same memory); no report.
 * Outcome: inherent once a slot is reused at the same address (the second
 * free cannot be told from q's own free; GWP-ASan has the same limit), made
 * deterministic by the LIFO reuse of the slot that leaves the quarantine. */
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

static void cycle(void) {
  for (int i = 0; i < CYCLE; i++) free(hide(malloc(5000)));
}

int main(void) {
  start(20);
  for (int attempt = 1; attempt <= 20; attempt++) {
    unsigned char* p = hide(malloc(SIZE));
    free(hide(p));
    cycle();
    unsigned char* q = hide(malloc(SIZE));
    if (q != p) continue;  /* other side of the slot: leak q, again */
    free(hide(p));         /* the bug: the stale second free, which frees q */
    unsigned char* r = NULL;
    for (int k = 0; k < 20 && r != q; k++) {
      if (r != NULL) free(hide(r));  /* the slot, other side: give it back, again */
      cycle();
      r = hide(malloc(SIZE));
    }
    if (r != q) lost("r = %p, not the live q = %p", r, q);
    poke(r, 0x4242424242424242u);
    if (peek(q) != 0x4242424242424242u) lost("r and q do not alias");
    win("malloc(%d) returned %p, the block q the program still holds (freed by the stale free(p)), attempt %d", SIZE,
        r, attempt);
  }
  lost("the freed slot was never handed out at the same address");
}
