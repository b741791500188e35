/* df_remote_twice_large: double free, twice from other threads, of a large block
 * (malloc(300000)).
 *
 * Bug modelled: a double free where both frees run on other threads (one new thread per free).
 *
 * Steps:
 *  1. Allocate a few 300000-byte blocks (they keep the page / segment alive)
 *     and the victim p.
 *  2. free(p) on another thread, then free(p) again on another thread.
 *  3. Allocate 300000-byte blocks and look for one handed out twice (or
 *     equal to a block still held).
 * WIN: a block is handed out twice while the first copy is still live.
 * Expected defence: the span's live flag (claim CAS). */
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

#define SIZE ((size_t)300000)
#define HUNT 32
#define FIRST_REMOTE 1
#define SECOND_REMOTE 1

static void* free_it(void* p) {
  free(p);
  return NULL;
}
static void free_from(int remote, void* p) {
  if (!remote) {
    free(p);
    return;
  }
  pthread_t t;
  if (pthread_create(&t, NULL, free_it, p) != 0) lost("pthread_create failed");
  pthread_join(t, NULL);
}

int main(void) {
  start(10);
  static uintptr_t got[HUNT + 8];
  int n = 0;
  for (int i = 0; i < 4; i++) got[n++] = (uintptr_t)hide(malloc(SIZE));
  void* p = hide(malloc(SIZE));
  memset(p, 0x33, 64);
  note("freeing %p twice", p);
  free_from(FIRST_REMOTE, hide(p));
  free_from(SECOND_REMOTE, hide(p));
  for (int k = 0; k < HUNT; k++) {
    uintptr_t q = (uintptr_t)hide(malloc(SIZE));
    if (q == 0) break;
    for (int j = 0; j < n; j++)
      if (got[j] == q) win("malloc(%zu) returned %p a second time while it is still allocated", SIZE, (void*)q);
    got[n++] = q;
  }
  lost("no block was handed out twice in %d allocations", HUNT);
}
