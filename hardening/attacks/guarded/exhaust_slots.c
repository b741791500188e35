/* exhaust_slots: more than GUARDED_SLOTS (1024) guarded blocks live, so
 * that the block with the bug is not sampled.
 *
 * Bug modelled: an over-read past a 64-byte block (up to 2 KiB), in a
 * program that holds many small blocks; the neighbours hold a secret.
 * Steps (HARDHEAP_GUARDED_SAMPLE_RATE=1): keep 1100 malloc(64) live (the
 * first 1024 fill the slots, the rest are counted as skipped); then
 * p = malloc(64) and 16 more malloc(64) holding a secret; read p[64..2047].
 * hh_stats_get (looked up with dlsym, optional) shows guarded_live and
 * guarded_skipped. With a slot free, p would be guarded and the first byte
 * read past it would fault.
 * WIN: the over-read returns the neighbours' secret without a report.
 * Outcome: inherent to a bounded number of slots (GWP-ASan's
 * MaxSimultaneousAllocations); at the default rate the program must hold
 * about 5 million blocks for the same effect. */
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

#include <dlfcn.h>

typedef struct {
  size_t segments, segments_peak, segments_cached, pages, pages_peak, huge_count, reserved, reserved_peak, committed,
      committed_peak, purged, mmap_calls, munmap_calls, guarded_sampled, guarded_skipped, guarded_live,
      guarded_quarantined;
} stats_t; /* include/hardheap.h: hh_stats_t */

static void show_stats(const char* when) {
  void (*get)(stats_t*) = (void (*)(stats_t*))dlsym(RTLD_DEFAULT, "hh_stats_get");
  if (get == NULL) return;
  stats_t s;
  get(&s);
  note("%s: guarded sampled %zu, skipped %zu, live %zu", when, s.guarded_sampled, s.guarded_skipped, s.guarded_live);
}

#define SECRET 0x5ec2e75ec2e75ec2u

int main(void) {
  start(20);
  static void* volatile keep[1100];
  for (int i = 0; i < 1100; i++) keep[i] = hide(malloc(64));
  note("1100 blocks kept live, %p to %p", keep[0], keep[1099]);
  show_stats("after 1100 live blocks");
  unsigned char* p = hide(malloc(64));
  for (int i = 0; i < 16; i++) poke(hide(malloc(64)), SECRET);
  for (size_t off = 64; off + 8 <= 2048; off += 8) {
    if (peek(p + off) == SECRET) { /* the bug: reading past p's 64 bytes */
      show_stats("at the win");
      win("with the guarded slots full, reading p[%zu] (p = %p, 64 bytes) returned a neighbour's secret", off, p);
    }
  }
  lost("no secret within 2 KiB past p = %p", p);
}
