/* hardheap: randomness: the process cookie, free-list keys, and the heap
 * PRNG that shuffles new blocks. */
#include "internal.h"

#include <time.h>

uintptr_t hhi_process_cookie;

/* splitmix64: fast, full period, good enough to shuffle free lists and to
 * derive keys from a kernel-provided seed. */
uint64_t hhi_random_next(uint64_t* state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t hhi_random_seed(void) {
  uint64_t seed;
  if (hhi_os_random_bytes(&seed, sizeof(seed))) return seed;
  /* no getrandom (very old kernel or seccomp): weak, but never constant */
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ hhi_thread_id() ^ (uintptr_t)&seed;
  return hhi_random_next(&seed);
}

void hhi_random_init(void) {
  uint64_t state = hhi_random_seed();
  hhi_process_cookie = (uintptr_t)hhi_random_next(&state) | 1;
}

void hhi_page_init_keys(hh_heap_t* heap, hh_page_t* page) {
  if (HH_ENCODE_FREELIST) {
    page->keys[0] = hhi_random_next(&heap->random);
    /* a rotation of 0 would leave the link's high bits in place: avoid it */
    page->keys[1] = hhi_random_next(&heap->random) | 1;
  } else {
    page->keys[0] = page->keys[1] = 0;
  }
}
