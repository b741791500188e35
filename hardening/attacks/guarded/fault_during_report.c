/* fault_during_report: another thread crashes while hardheap writes the
 * report of a guarded fault.
 *
 * Bug modelled: a 1-byte overflow past a guarded 48-byte block in one
 * thread; at about the same time another thread has an unrelated crash (a
 * NULL read), as happens when one corruption brings down several threads.
 * Steps (HARDHEAP_GUARDED_SAMPLE_RATE=1): in each of 200 child processes,
 * two threads start together; one writes p[48], the other waits 0 to 400
 * microseconds (varied per child) and reads *(NULL + 16). The parent reads
 * each child's stderr: a whole report ends with the "guarded sampling one
 * in" line.
 * No WIN condition (every child dies). LOST, with the count of children
 * whose report was cut short or missing: the NULL read is not hardheap's,
 * so its handler passes it on at once (the default action kills the
 * process), without waiting for the report under way in the other thread
 * (which a second guarded fault does wait for, up to 2 s). */
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
#include <sys/wait.h>
#include <time.h>

#define TRIALS 200

static volatile unsigned char* block;
static atomic_int go;
static long delay_ns;

static void* overflow(void* arg) {
  (void)arg;
  while (!atomic_load(&go)) {
  }
  block[48] = 1; /* the bug */
  return NULL;
}

static void* crash(void* arg) {
  (void)arg;
  while (!atomic_load(&go)) {
  }
  struct timespec d = {0, delay_ns};
  if (delay_ns > 0) nanosleep(&d, NULL);
  volatile char* null = hide(NULL);
  return (void*)(uintptr_t)null[16];
}

int main(void) {
  start(120);
  int whole = 0, cut = 0, none = 0;
  for (int t = 0; t < TRIALS; t++) {
    int fd[2];
    if (pipe(fd) != 0) lost("pipe");
    delay_ns = (long)(t % 9) * 50 * 1000;
    pid_t pid = fork();
    if (pid == 0) {
      close(fd[0]);
      dup2(fd[1], 2);
      block = malloc(48);
      pthread_t a, b;
      pthread_create(&a, NULL, overflow, NULL);
      pthread_create(&b, NULL, crash, NULL);
      atomic_store(&go, 1);
      pthread_join(a, NULL);
      pthread_join(b, NULL);
      _exit(0);
    }
    close(fd[1]);
    static char err[16384];
    size_t len = 0;
    ssize_t n;
    while ((n = read(fd[0], err + len, sizeof err - 1 - len)) > 0) len += (size_t)n;
    err[len] = 0;
    close(fd[0]);
    int status;
    waitpid(pid, &status, 0);
    if (strstr(err, "hardheap:   guarded sampling one in") != NULL) whole++;
    else if (strstr(err, "hardheap: error: heap buffer overflow") != NULL) cut++;
    else none++;
  }
  lost("%d children: %d whole reports, %d cut short, %d without a report", TRIALS, whole, cut, none);
}
