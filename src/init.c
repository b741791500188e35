/* hardheap: process start and exit.
 *
 * Initialisation runs on the first allocation or from the library
 * constructor, whichever comes first (a preloaded library sees allocations
 * from the dynamic loader and libc before its constructor runs). It must
 * not allocate. */
#include "internal.h"

#include <pthread.h>

bool hh_process_is_initialized;
static pthread_once_t process_once = PTHREAD_ONCE_INIT;

/* Lock order: heaps (thread data, then singles), then abandoned segments. */
static void fork_prepare(void) {
  hh_heap_fork_prepare();
  hh_segment_fork_prepare();
}

static void fork_release(void) {
  hh_segment_fork_release();
  hh_heap_fork_release();
}

static void process_init_once(void) {
  hh_os_init();
  hh_options_init();
  hh_secure_init();
  hh_heap_process_init();
  pthread_atfork(fork_prepare, fork_release, fork_release);
  hh_process_is_initialized = true;
  hh_verbose_message("process initialised (%s build, version %d.%d.%d)", HARDHEAP_SECURE ? "secure" : "default",
                     HH_VERSION_MAJOR, HH_VERSION_MINOR, HH_VERSION_PATCH);
}

void hh_process_init(void) {
  if (hh_likely(hh_process_is_initialized)) return;
  pthread_once(&process_once, process_init_once);
}

__attribute__((constructor)) static void hh_library_constructor(void) {
  hh_process_init();
  (void)hh_heap_thread_init();
}

__attribute__((destructor)) static void hh_library_destructor(void) {
  if (hh_option_is_enabled(hh_option_show_stats)) hh_stats_print();
}

int hh_version(void) {
  return HH_VERSION;
}

bool hh_is_secure(void) {
  return HARDHEAP_SECURE != 0;
}
