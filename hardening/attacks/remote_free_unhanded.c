/* remote_free_unhanded: another thread frees a block boundary that the page
 * reserves but has never handed out (beyond its capacity).
 *
 * Bug modelled: an invalid free from another thread of a pointer computed
 * past the end of a live block (e.g. p + k * size), landing on a block
 * boundary the page has not yet threaded.
 *
 * Steps:
 *  1. Allocate the first batch of a fresh page of 144-byte blocks (28
 *     blocks, 4 KiB); the lowest address is the page start.
 *  2. Thread T frees X = start + 30 * 144: not handed out, not even
 *     threaded (capacity 28), but inside `reserved`, which is all a remote
 *     free is checked against.
 *  3. The owner collects X onto local_free (used drops by one too) and
 *     hands it out; extending the page later threads X a second time.
 * WIN: malloc returns X twice while the first copy is live.
 * Defence that should stop it: remote frees checked against capacity (read
 * atomically) and a per-block allocated bit, not only `reserved`. */
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

#define SIZE 144
#define BATCH (4096 / SIZE)

static void* free_it(void* p) {
  free(p);
  return NULL;
}

int main(void) {
  start(10);
  static uintptr_t got[5000];
  int n = 0;
  uintptr_t lo = UINTPTR_MAX;
  for (; n < BATCH; n++) {
    got[n] = (uintptr_t)hide(malloc(SIZE - 9)) /* class SIZE with or without the canary */;
    if (got[n] < lo) lo = got[n];
  }
  for (int i = 0; i < n; i++)
    if (got[i] - lo >= (uintptr_t)BATCH * SIZE) lost("the first %d blocks are not one batch", BATCH);
  uintptr_t x = lo + 30 * SIZE;
  note("page start %p, freeing never-allocated %p from another thread", (void*)lo, (void*)x);
  pthread_t t;
  pthread_create(&t, NULL, free_it, (void*)x);
  pthread_join(t, NULL);
  for (int k = 0; k < 4096; k++) {
    uintptr_t r = (uintptr_t)hide(malloc(SIZE - 9)) /* class SIZE with or without the canary */;
    for (int j = 0; j < n; j++)
      if (got[j] == r) win("malloc(%d) returned %p a second time while it is still allocated", SIZE, (void*)r);
    got[n++] = r;
  }
  lost("no block was handed out twice");
}
