/* slot_table_forge: a non-linear underflow from the first slot of a guarded
 * segment, past its guard page, into the segment's metadata, to forge the
 * records that say which slots are free.
 *
 * Bug modelled: one out-of-bounds 8-byte write s[i] = v, i a few KiB
 * negative (a wrong index, the bytes in between untouched), on a guarded
 * 4000-byte block s in slot 0 of its segment; i and v come from the
 * attacker.
 * History: against the first layout (slot records in the segment's first
 * pages, raw free-stack pointers) this write forged a free-stack link and
 * malloc placed a new block in a live slot (WIN). Since then the records
 * live in a mapping of their own at a random address, between guard
 * pages, and the segment's header page (one page: segment header 152
 * bytes, page descriptor 128, guarded info 64, its pointer to the records
 * at +48) is read-only.
 * Layout facts (src/types.h): for one-page slots, data of slot k at
 * 8192 + 8192 k in the 4 MiB-aligned segment, 511 slots. The only
 * metadata near a block is that header: the attack writes a forged
 * records pointer into it (the address of another live block of the
 * segment, whose contents the program controls).
 * Steps (HARDHEAP_GUARDED_SAMPLE_RATE=1): allocate 1022 blocks of 4000
 * bytes, find one in slot 0 and another in its segment, then the bug.
 * WIN: the write lands (the header keeps the forged pointer) and the
 * program goes on. Expected: CAUGHT, the write faults on the read-only
 * page and hardheap reports an invalid write in its guarded area. */
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
#define FIRST_DATA 8192 /* offset of slot 0's data in a segment of one-page slots */
#define STRIDE 8192
#define SLOTS 511
#define TABLE_FIELD (152 + 128 + 48) /* the guarded info's pointer to the slot records */

static uintptr_t base_of(const void* p) { return (uintptr_t)p & ~(SEG - 1); }
static long slot_of(const void* p) {
  uintptr_t off = ((uintptr_t)p & ~(uintptr_t)4095) - base_of(p);
  if (off < FIRST_DATA || (off - FIRST_DATA) % STRIDE != 0) return -1;
  return (long)((off - FIRST_DATA) / STRIDE);
}

int main(void) {
  start(20);
  static unsigned char* v[2 * SLOTS];
  unsigned char *s = NULL, *victim = NULL;
  for (int i = 0; i < 2 * SLOTS; i++) {
    v[i] = hide(malloc(SIZE));
    if (slot_of(v[i]) == 0 && s == NULL) s = v[i];
  }
  if (s == NULL) lost("no block in slot 0 of a guarded segment (rate 1? layout changed?)");
  for (int i = 0; i < 2 * SLOTS && v[i] != NULL; i++) {
    if (base_of(v[i]) == base_of(s) && slot_of(v[i]) > 0) victim = v[i];
  }
  if (victim == NULL) lost("no other block in slot 0's segment (layout changed?)");
  uintptr_t base = base_of(s);
  note("segment %#zx: slot 0 %p, slot %ld %p", (size_t)base, s, slot_of(victim), victim);
  memset(victim, 0, SIZE); /* what a forged record would be made of */
  volatile ptrdiff_t index = (ptrdiff_t)(base + TABLE_FIELD - (uintptr_t)s);
  note("the bug: s[%td] = %p (%td bytes before s)", (ptrdiff_t)index, (void*)victim, -(ptrdiff_t)index);
  poke(s + index, (uintptr_t)victim);
  if (peek((void*)(base + TABLE_FIELD)) == (uintptr_t)victim) {
    free(hide(malloc(SIZE)));
    win("the header of the guarded segment took the forged records pointer %p", victim);
  }
  lost("the write did not land");
}
