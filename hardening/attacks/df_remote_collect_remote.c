/* df_remote_collect_remote: the same block freed twice from another thread,
 * with the owner collecting the remote frees in between (so no cycle).
 *
 * Bug modelled: a double free from another thread, the two frees separated
 * in time (64-byte blocks).
 *
 * Steps:
 *  1. Thread T frees p (pushed onto thread_free).
 *  2. The owner collects it (malloc_trim: hh_collect), p is on its free list.
 *  3. T frees p again: p's link is overwritten with the thread_free link.
 *  4. malloc(64) and look for a block handed out twice.
 * WIN: a block handed out twice while live.
 * Expected defence: a per-block free state checked by remote frees; today
 * only cycles inside one remote-free list are noticed. */
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

#define SIZE 64

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
  static uintptr_t got[4200];
  int n = 0;
  for (int i = 0; i < 16; i++) got[n++] = (uintptr_t)hide(malloc(SIZE));
  void* p = (void*)got[9];
  got[9] = 0;
  free_remote(hide(p));
  malloc_trim(0); /* the owner collects the remote free */
  free_remote(hide(p));
  for (int k = 0; k < 4096; k++) {
    uintptr_t r = (uintptr_t)hide(malloc(SIZE));
    for (int j = 0; j < n; j++)
      if (got[j] == r) win("malloc(%d) returned %p a second time while it is still allocated", SIZE, (void*)r);
    got[n++] = r;
  }
  lost("no block was handed out twice in 4096 allocations");
}
