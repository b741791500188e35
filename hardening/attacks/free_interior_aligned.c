/* free_interior_aligned: free(p + 40) of an ordinary block, accepted because
 * its page once handed out an over-aligned block.
 *
 * Bug modelled: an invalid free of an interior pointer (p + 40).
 *
 * Steps:
 *  1. posix_memalign(256, 100) until the result is inside its 384-byte block
 *     (malloc_usable_size < 384): its page is now marked HAS_ALIGNED, and
 *     every interior pointer into it is mapped back to its block start.
 *  2. v = malloc(380) on the same page (same class); free(v + 40).
 *  3. malloc(380) until v comes back.
 * WIN: the live block v was freed by the interior pointer and is handed out
 * again.
 * Defence that should stop it: accept an interior pointer only at the exact
 * aligned offset that was handed out (e.g. a per-block "aligned" bit plus
 * the alignment recomputed from the pointer), not anywhere on the page. */
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

int main(void) {
  start(10);
  void* a = NULL;
  for (int i = 0; i < 64; i++) {
    void* t = NULL;
    if (posix_memalign(&t, 256, 100) != 0) lost("posix_memalign failed");
    if (malloc_usable_size(t) < 384) { a = t; break; }
  }
  if (a == NULL) lost("no aligned block inside its block");
  uintptr_t v = 0;
  for (int i = 0; i < 200 && v == 0; i++) {
    uintptr_t t = (uintptr_t)hide(malloc(380));
    if ((t >> 16) == ((uintptr_t)a >> 16)) v = t;
  }
  if (v == 0) lost("no 380-byte block on the aligned block's page");
  memset((void*)v, 'V', 380);
  note("aligned %p; victim %p on the same page; free(%p)", a, (void*)v, (void*)(v + 40));
  free(hide((void*)(v + 40)));
  for (int k = 0; k < 2000; k++) {
    uintptr_t r = (uintptr_t)hide(malloc(380));
    if (r == v) win("free(v + 40) freed the live block %p; malloc handed it out again", (void*)v);
  }
  lost("the victim never came back");
}
