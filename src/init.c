/* hardheap: process start and exit.
 *
 * Initialisation runs on the first allocation or from the library
 * constructor, whichever comes first (a preloaded library sees allocations
 * from the dynamic loader and libc before its constructor runs). It must
 * not allocate. */
#include "internal.h"

#include <pthread.h>

bool hhi_process_is_initialized;
uint64_t hhi_process_start_ms;
static pthread_once_t process_once = PTHREAD_ONCE_INIT;

/* Lock order: the purger's round, then heaps (thread data, then singles), then the segment lock
 * (abandoned list, global cache), then the large-span lock, then the
 * guarded slots' lock, then the list of all segments. */
static void fork_prepare(void) {
  hhi_purger_fork_prepare();
  hhi_heap_fork_prepare();
  hhi_segment_fork_prepare();
  hhi_span_fork_prepare();
  hhi_guarded_fork_prepare();
  hhi_segment_registry_fork_prepare();
}

static void fork_release_allocator(void) {
  hhi_segment_registry_fork_release();
  hhi_guarded_fork_release();
  hhi_span_fork_release();
  hhi_segment_fork_release();
  hhi_heap_fork_release();
}

static void fork_release(void) {
  fork_release_allocator();
  hhi_purger_fork_parent();
}

/* The child also gets fresh random streams: a forking server's children
 * must not share their future keys, shuffle orders and addresses with
 * each other and with the parent. */
static void fork_child(void) {
  fork_release_allocator();
  hhi_purger_fork_child();
  hhi_heap_fork_child_reseed();
}

static void process_init_once(void) {
  hhi_os_init();
  hhi_process_start_ms = hhi_os_clock_ms();
  hhi_options_init();
  hhi_error_file_open(hhi_option_error_file());  /* before any warning */
  hhi_options_warn();
  hhi_random_init();
  hhi_guarded_init();
  hhi_heap_process_init();
  pthread_atfork(fork_prepare, fork_release, fork_child);
  hhi_process_is_initialized = true;
  hhi_verbose_message("process initialised (%s build, secure level %d, version %d.%d.%d)", HH_BUILD_NAME,
                      HH_SECURE_LEVEL, HH_VERSION_MAJOR, HH_VERSION_MINOR, HH_VERSION_PATCH);
  hhi_options_print();
}

void hhi_process_init(void) {
  if (hh_likely(hhi_process_is_initialized)) return;
  pthread_once(&process_once, process_init_once);
}

__attribute__((constructor)) static void hh_library_constructor(void) {
  hhi_process_init();
  (void)hhi_heap_thread_init();
  hhi_guarded_start();  /* libc is up now */
  hhi_process_started = true;  /* threads may be started now (purge.c) */
}

__attribute__((destructor)) static void hh_library_destructor(void) {
  if (hhi_option_enabled(hh_option_show_stats)) hh_stats_print();
}

int hh_version(void) {
  return HH_VERSION;
}

bool hh_is_secure(void) {
  return HH_SECURE_LEVEL != 0;
}

int hh_secure_level(void) {
  return HH_SECURE_LEVEL;
}
