/* df_abandoned: double free of a block whose owner thread has exited (its
 * segment is abandoned, thread_id 0), both frees from the main thread.
 *
 * Bug modelled: a double free of an object a worker thread allocated and
 * left behind.
 *
 * Steps:
 *  1. A worker allocates 64-byte blocks (p among them) and exits: the
 *     segment goes to the abandoned list with live blocks.
 *  2. main: free(p), free(p): both are remote frees (p -> p on thread_free);
 *     nothing checks them until some thread reclaims the segment.
 *  3. main allocates 64-byte blocks until it reclaims the segment and looks
 *     for a block handed out twice.
 * WIN: a block handed out twice while live.
 * Expected defence: the cycle check when the reclaiming thread collects the
 * remote-free list (late: only at reclaim time). */
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
static uintptr_t theirs[64];

static void* worker(void* arg) {
  (void)arg;
  for (int i = 0; i < 64; i++) theirs[i] = (uintptr_t)hide(malloc(SIZE));
  return NULL;
}

int main(void) {
  start(10);
  pthread_t t;
  pthread_create(&t, NULL, worker, NULL);
  pthread_join(t, NULL);
  void* p = (void*)theirs[20];
  theirs[20] = 0;
  note("worker exited; freeing its block %p twice", p);
  free(hide(p));
  free(hide(p));
  static uintptr_t got[9000];
  int n = 0;
  for (int i = 0; i < 64; i++) got[n++] = theirs[i];
  for (int k = 0; k < 8192; k++) {
    uintptr_t r = (uintptr_t)hide(malloc(SIZE));
    for (int j = 0; j < n; j++)
      if (got[j] == r) win("malloc(%d) returned %p a second time while it is still allocated", SIZE, (void*)r);
    got[n++] = r;
  }
  lost("no block was handed out twice in 8192 allocations");
}
