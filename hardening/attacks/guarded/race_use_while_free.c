/* race_use_while_free: one thread keeps writing a guarded block while
 * another frees it.
 *
 * Bug modelled: a use after free across threads (a worker still writing
 * into a buffer the owner has released), 200-byte block.
 * Steps (HARDHEAP_GUARDED_SAMPLE_RATE=1): p = malloc(200); a thread writes
 * p[0..199] in a loop; the main thread waits until it runs, frees p, then
 * waits. Writes that land between the state change and the mprotect of the
 * free are not seen (a window of a few instructions plus the free's stack
 * capture); the first write after it faults.
 * WIN: the writer keeps writing for a second after the free. Expected:
 * SIGABRT with "use after free: write of ..." (or SIGSEGV). */
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
#include <stdatomic.h>

static unsigned char* volatile block;
static atomic_long writes;

static void* writer(void* arg) {
  (void)arg;
  for (;;) {
    volatile unsigned char* p = block;
    for (int i = 0; i < 200; i++) p[i] = (unsigned char)i; /* the bug once p is freed */
    atomic_fetch_add(&writes, 1);
  }
  return NULL;
}

int main(void) {
  start(10);
  block = malloc(200);
  pthread_t t;
  pthread_create(&t, NULL, writer, NULL);
  while (atomic_load(&writes) < 1000) {
  }
  free(block);
  long after_free = atomic_load(&writes);
  sleep(1);
  win("the writer went on writing the freed block (%ld rounds after the free)", atomic_load(&writes) - after_free);
}
