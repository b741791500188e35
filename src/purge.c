/* hardheap: the background purger.
 *
 * Freed memory is returned to the OS after PURGE_DELAY, but the deadlines
 * are acted on by the owning thread's allocation slow path: a daemon that
 * frees a burst and then waits in poll() would keep it all. This thread
 * runs those purges instead. It takes each live thread's segment-layer
 * lock with a try (an owner that is busy purges for itself), runs that
 * thread's expired page purges (segment.c:hhi_segments_collect), the
 * large segments' shared ones, and those of the process-wide caches of
 * empty segments and huge mappings. A thread's span cache (at most 3 MiB of
 * freed large blocks) is left to its owner: releasing a span rewrites its
 * descriptor, which the owner may be reading in a lookup of a stale
 * pointer at that moment.
 *
 * A thread that took its allocation slow path since the last round is left
 * alone (it purges for itself), so busy threads never see the purger.
 *
 * It is started on an allocation slow path, never before the library
 * constructor ran, and only once the process holds two segments (a small
 * short-lived program never gets a thread); in a forked child again on
 * the child's first slow path. It blocks every signal, never allocates,
 * is detached (exit does not wait for it), and sleeps on a condition
 * variable while nothing is pending anywhere, so an idle process has no
 * wakeups. Its rounds run under round_lock, which fork takes, so a child
 * never inherits a segment-layer lock the purger held. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "internal.h"

#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <time.h>

_Atomic(int) hhi_purger_state;
_Atomic(bool) hhi_purger_sleeping;
bool hhi_process_started;

static pthread_mutex_t round_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t wake_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake_cond = PTHREAD_COND_INITIALIZER;
static bool wake_requested;  /* under wake_lock */

typedef struct round_s {
  bool pending;  /* something is still scheduled (or an owner was busy) */
} round_t;

/* A racy read of the owner's heartbeat: a snapshot is all it is for, and
 * ThreadSanitizer is not to see it. */
__attribute__((no_sanitize("thread"))) static uint64_t heartbeat_of(const hh_tld_t* tld) {
  return *(const volatile uint64_t*)&tld->heartbeat;
}

static void purge_for(hh_tld_t* tld, void* arg) {
  round_t* round = arg;
  if (!atomic_load_explicit(&tld->active, memory_order_relaxed)) return;
  /* An owner that took its slow path since the last round purges for
   * itself (every 64th): leave it alone, without touching its lock. */
  uint64_t heartbeat = heartbeat_of(tld);
  if (heartbeat != tld->purger_heartbeat) {
    tld->purger_heartbeat = heartbeat;
    round->pending = true;
    return;
  }
  if (!hhi_tld_trylock(tld)) {
    round->pending = true;  /* busy: it purges for itself, or we come back */
    return;
  }
  if (atomic_load_explicit(&tld->active, memory_order_relaxed) && tld->segments.purge_pending != 0) {
    hhi_segments_collect(tld, false);
    if (tld->segments.purge_pending != 0) round->pending = true;
  }
  hhi_tld_unlock(tld);
}

/* One pass over every thread; true while anything is left to do. */
static bool purge_round(void) {
  round_t round = {false};
  pthread_mutex_lock(&round_lock);
  hhi_tlds_visit(purge_for, &round);
  if (hhi_spans_purge_pending()) {
    hhi_spans_collect(NULL, false);
    round.pending |= hhi_spans_purge_pending();
  }
  if (hhi_segment_caches_purge_pending()) {
    hhi_segment_caches_collect();
    round.pending |= hhi_segment_caches_purge_pending();
  }
  pthread_mutex_unlock(&round_lock);
  return round.pending;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

static void* purger_main(void* arg) {
  (void)arg;
  prctl(PR_SET_NAME, "hardheap-purge", 0, 0, 0);
  for (;;) {
    long delay = hhi_option_value(hh_option_purge_delay);
    if (purge_round() || delay <= 0) {
      /* half the delay: a purge runs at most 1.5 delays after the free */
      sleep_ms(delay <= 0 ? 1000 : (delay < 4 ? 2 : delay / 2));
      continue;
    }
    /* Nothing pending: sleep until a purge is scheduled. The flag is set
     * before the last look. A thread's purge is scheduled under its
     * segment-layer lock, which the last look takes after setting the
     * flag: if the scheduler got the lock later, it reads the flag set; if
     * earlier, the look sees its purge. The large segments' and the huge
     * cache's counts and the flag are all seq_cst, so one of their two accesses sees the other. */
    atomic_store_explicit(&hhi_purger_sleeping, true, memory_order_seq_cst);
    if (purge_round()) {
      atomic_store_explicit(&hhi_purger_sleeping, false, memory_order_relaxed);
      continue;
    }
    pthread_mutex_lock(&wake_lock);
    while (!wake_requested) pthread_cond_wait(&wake_cond, &wake_lock);
    wake_requested = false;
    atomic_store_explicit(&hhi_purger_sleeping, false, memory_order_relaxed);
    pthread_mutex_unlock(&wake_lock);
    sleep_ms(delay);  /* what woke us is due in a delay */
  }
  return NULL;
}

void hhi_purger_wake(void) {
  pthread_mutex_lock(&wake_lock);
  wake_requested = true;
  pthread_cond_signal(&wake_cond);
  pthread_mutex_unlock(&wake_lock);
}

void hhi_purger_start(void) {
  if (!hhi_process_started || atomic_load_explicit(&hhi_stats.segments, memory_order_relaxed) < 2) return;
  int expected = HH_PURGER_NONE;
  if (!hhi_option_enabled(hh_option_background_purge) || hhi_option_value(hh_option_purge_delay) <= 0) {
    atomic_compare_exchange_strong(&hhi_purger_state, &expected, HH_PURGER_OFF);
    return;
  }
  if (!atomic_compare_exchange_strong(&hhi_purger_state, &expected, HH_PURGER_RUNNING)) return;
  /* pthread_create may allocate: the state says running already, so that
   * allocation does not start another */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, 128 * 1024);
  pthread_t thread;
  int err = pthread_create(&thread, &attr, purger_main, NULL);
  pthread_attr_destroy(&attr);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (err != 0) {
    atomic_store(&hhi_purger_state, HH_PURGER_OFF);
    hhi_verbose_message("no background purger: pthread_create failed (%d)", err);
    return;
  }
  hhi_verbose_message("background purger started");
}

void hhi_purger_fork_prepare(void) {
  pthread_mutex_lock(&round_lock);
}

void hhi_purger_fork_parent(void) {
  pthread_mutex_unlock(&round_lock);
}

/* The child has no purger: its first slow path starts one. */
void hhi_purger_fork_child(void) {
  pthread_mutex_unlock(&round_lock);
  pthread_mutex_t fresh_lock = PTHREAD_MUTEX_INITIALIZER;
  pthread_cond_t fresh_cond = PTHREAD_COND_INITIALIZER;
  wake_lock = fresh_lock;
  wake_cond = fresh_cond;
  wake_requested = false;
  atomic_store(&hhi_purger_sleeping, false);
  int running = HH_PURGER_RUNNING;
  atomic_compare_exchange_strong(&hhi_purger_state, &running, HH_PURGER_NONE);
}
