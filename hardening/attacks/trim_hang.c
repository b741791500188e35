/* trim_hang: malloc_trim after a double free (owner thread, then another
 * thread) loops for ever.
 *
 * Bug modelled: a double free: the owner frees p, another thread frees p
 * again (64-byte blocks).
 *
 * Why: the remote push overwrites p's local_free link; collecting it sets p's
 * link to local_free's head, which is p: local_free becomes p -> p. With a
 * non-empty free list, hh_collect(force) (malloc_trim) appends local_free to
 * free by walking it to its tail, and that walk has no step bound.
 *
 * Steps:
 *  1. Allocate three 64-byte blocks of a fresh batch (the page's free list
 *     keeps the rest of the batch).
 *  2. free(p) on the owner, free(p) on another thread.
 *  3. malloc_trim(0).
 * WIN: malloc_trim does not return (the alarm fires: exit 4, ATTACK HANG).
 * Defence that should stop it: bound every list walk by the page capacity
 * (as the remote-free walk is), or detect the double free at the remote free. */
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

static void* free_it(void* p) {
  free(p);
  return NULL;
}

int main(void) {
  start(5);
  void* a = hide(malloc(64));
  void* p = hide(malloc(64));
  void* b = hide(malloc(64));
  free(hide(p));
  pthread_t t;
  pthread_create(&t, NULL, free_it, hide(p));
  pthread_join(t, NULL);
  malloc_trim(0);
  free(a);
  free(b);
  lost("malloc_trim returned");
}
