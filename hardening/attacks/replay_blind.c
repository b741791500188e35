/* replay_blind: a free-list link copied from one free block into its
 * neighbour without the attacker reading anything (64-byte blocks).
 *
 * Bug modelled: the program copies 8 bytes from one dangling pointer into
 * another (e.g. a stale struct assigned to another stale struct): a
 * use-after-free read and write the attacker does not see.
 *
 * Steps:
 *  1. Allocate 64-byte blocks; pick A at an even block index of its page
 *     and B = A + 64, X another block of the page; keep X ^ 64 live.
 *  2. free(B), free(X), free(A): local_free is A -> X -> B.
 *  3. *B = *A. In the secure build B now decodes to X ^ A ^ B = X ^ 64 (a
 *     live block), whose own word is program data and decodes to garbage.
 *  4. malloc(64) until something happens.
 * WIN: a live block is handed out (default build: X comes back twice).
 * Expected in the secure build: the pop of X ^ 64 validates that block's
 * link and aborts (a blind replay is caught one step late); see replay_pow2
 * for the variant where the attacker also controls the live block's word. */
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
#define COUNT 512

static uintptr_t blk[COUNT];
static int is_live[COUNT];

static int find(uintptr_t* list, int n, uintptr_t a) {
  for (int i = 0; i < n; i++)
    if (list[i] == a) return i;
  return -1;
}

int main(void) {
  start(10);
  for (int i = 0; i < COUNT; i++) {
    blk[i] = (uintptr_t)hide(malloc(SIZE - 9)) /* class SIZE with or without the canary */;
    memset((void*)blk[i], 0x5a, SIZE);
    is_live[i] = 1;
  }
  /* A at an even index of a 64 KiB-aligned page (not page 0), B = A + 64,
   * X with X ^ 64 also ours */
  int ia = -1, ib = -1, ix = -1;
  for (int a = 0; a < COUNT && ix < 0; a++) {
    uintptr_t A = blk[a];
    if ((A & 64) != 0 || (A & 0xffff) < 0x4000 || (ib = find(blk, COUNT, A + 64)) < 0) continue;
    for (int x = 0; x < COUNT && ix < 0; x++) {
      uintptr_t X = blk[x];
      if (x == a || x == ib || (X >> 16) != (A >> 16)) continue;
      int l = find(blk, COUNT, X ^ 64);
      if (l >= 0 && l != a && l != ib) { ia = a; ix = x; }
    }
  }
  if (ix < 0) lost("no suitable A, A + 64, X among the blocks");
  uintptr_t A = blk[ia], B = blk[ib], X = blk[ix];
  note("A=%p B=%p X=%p, live X^64=%p", (void*)A, (void*)B, (void*)X, (void*)(X ^ 64));
  free(hide((void*)B));
  free(hide((void*)X));
  free(hide((void*)A));
  is_live[ia] = is_live[ib] = is_live[ix] = 0;

  poke((void*)B, peek((void*)A)); /* the program's stale copy */

  static uintptr_t got[8192];
  for (int k = 0; k < 8192; k++) {
    uintptr_t r = (uintptr_t)hide(malloc(SIZE - 9)) /* class SIZE with or without the canary */;
    int i = find(blk, COUNT, r);
    if (i >= 0 && is_live[i]) win("malloc(%d) returned %p, which is still allocated", SIZE, (void*)r);
    if (find(got, k, r) >= 0) win("malloc(%d) returned %p twice", SIZE, (void*)r);
    if (i >= 0) is_live[i] = 1;
    got[k] = r;
  }
  lost("8192 further allocations handed out no live block");
}
