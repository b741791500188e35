/* df_delayed_remote: double free of a block that waits on the owner heap's delayed-free
 * list (8192-byte blocks), the second free by another thread (the page is NO_DELAYED by then: thread_free).
 *
 * Bug modelled: a double free; the first free runs on another thread while
 * the block's page is full (so the block goes to the heap's delayed list).
 *
 * Steps:
 *  1. Fill pages of 8192-byte blocks until one lands on a new page, so every
 *     earlier page (P among them) is in the full queue (USE_DELAYED).
 *  2. Thread T frees D of P: D goes onto the owner heap's delayed list.
 *  3. free(D) again, by another thread (the page is NO_DELAYED by then: thread_free).
 *  4. malloc(8192) and look for a block handed out twice.
 * WIN: a block is handed out twice while live.
 * Expected defence: the double-free walk when the owner drains the delayed list (the block is on thread_free / local_free too). */
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
#define SECOND_REMOTE 1

static void* free_it(void* p) {
  free(p);
  return NULL;
}
static void free_remote(void* p) {
  pthread_t t;
  if (pthread_create(&t, NULL, free_it, p) != 0) lost("pthread_create failed");
  pthread_join(t, NULL);
}

int main(void) {
  start(10);
  static uintptr_t got[1200];
  int n = 0;
  for (; n < 40; n++) got[n] = (uintptr_t)hide(malloc(SIZE));
  for (;;) { /* until a block lands on a page not seen before */
    if (n >= 200) lost("could not fill the pages");
    uintptr_t q = (uintptr_t)hide(malloc(SIZE));
    int seen = 0;
    for (int j = 0; j < n; j++) seen |= (got[j] >> 16) == (q >> 16);
    got[n++] = q;
    if (!seen) break;
  }
  void* d = (void*)got[10];
  got[10] = 0;
  note("freeing %p from another thread, then again", d);
  free_remote(hide(d));
  if (SECOND_REMOTE) free_remote(hide(d)); else free(hide(d));
  for (int k = 0; k < 1000; k++) {
    uintptr_t r = (uintptr_t)hide(malloc(SIZE));
    for (int j = 0; j < n; j++)
      if (got[j] == r) win("malloc(%d) returned %p a second time while it is still allocated", SIZE, (void*)r);
    got[n++] = r;
  }
  lost("no block was handed out twice");
}
