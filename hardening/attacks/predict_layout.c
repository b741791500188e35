/* predict_layout: do two fresh processes lay out 256 x malloc(64) the same
 * way?
 *
 * Bug modelled: none directly; an overflow exploit needs to know which block
 * follows its buffer. If the relative layout is the same in every run, one
 * run (or a copy of the program) tells the attacker where the victim is.
 *
 * Steps: run this program twice more as fresh processes (execv of argv[0]
 * with a marker in the environment; LD_PRELOAD is inherited); each child
 * allocates 256 x malloc(64) and reports every address relative to the
 * lowest one. The parent compares the two lists.
 * WIN: both children report the same relative layout.
 * Defence that should stop it: randomised placement (the secure build
 * shuffles each 4 KiB batch; random page/slot choice and random gaps would
 * go further). */
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
#include <sys/wait.h>

#define COUNT 256

static int child(void) {
  static uintptr_t a[COUNT];
  uintptr_t lo = UINTPTR_MAX;
  for (int i = 0; i < COUNT; i++) {
    a[i] = (uintptr_t)hide(malloc(64));
    if (a[i] < lo) lo = a[i];
  }
  static uint32_t rel[COUNT];
  for (int i = 0; i < COUNT; i++) rel[i] = (uint32_t)(a[i] - lo);
  if (write(1, rel, sizeof rel) != (ssize_t)sizeof rel) return 1;
  return 0;
}

static int run(const char* self, uint32_t* rel) {
  int fd[2];
  if (pipe(fd) != 0) return -1;
  pid_t pid = fork();
  if (pid == 0) {
    dup2(fd[1], 1);
    close(fd[0]);
    setenv("PREDICT_LAYOUT_CHILD", "1", 1);
    execl(self, self, (char*)NULL);
    _exit(127);
  }
  close(fd[1]);
  size_t got = 0;
  while (got < COUNT * sizeof(uint32_t)) {
    ssize_t k = read(fd[0], (char*)rel + got, COUNT * sizeof(uint32_t) - got);
    if (k <= 0) break;
    got += (size_t)k;
  }
  close(fd[0]);
  int status;
  waitpid(pid, &status, 0);
  return got == COUNT * sizeof(uint32_t) ? 0 : -1;
}

int main(int argc, char** argv) {
  (void)argc;
  if (getenv("PREDICT_LAYOUT_CHILD") != NULL) return child();
  start(20);
  static uint32_t r1[COUNT], r2[COUNT];
  if (run(argv[0], r1) != 0 || run(argv[0], r2) != 0) lost("could not run the two child processes");
  int same = 0;
  for (int i = 0; i < COUNT; i++) same += r1[i] == r2[i];
  if (same == COUNT) win("two fresh processes placed all %d blocks at the same relative offsets", COUNT);
  lost("the layouts differ (%d of %d offsets equal)", same, COUNT);
}
