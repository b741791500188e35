/* hardheap: randomness, free-list keys and the secure build's list checks.
 *
 * The encoding itself is inline in internal.h (hh_encode_link); this file
 * seeds it and holds the slow checks that run only when something looks
 * wrong, so the hot paths stay small. */
#include "internal.h"

#include <time.h>

/* splitmix64: fast, full period, good enough to shuffle free lists and to
 * derive keys from a kernel-provided seed. */
uint64_t hh_random_next(uint64_t* state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t hh_random_seed(void) {
  uint64_t seed;
  if (hh_os_random_bytes(&seed, sizeof(seed))) return seed;
  /* no getrandom (very old kernel or seccomp): weak, but never constant */
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ hh_thread_id() ^ (uintptr_t)&seed;
  return hh_random_next(&seed);
}

void hh_secure_init(void) {
  uint64_t state = hh_random_seed();
  hh_process_cookie = (uintptr_t)hh_random_next(&state) | 1;
}

void hh_page_init_keys(hh_heap_t* heap, hh_page_t* page) {
  if (HH_ENCODE_FREELIST) {
    page->keys[0] = hh_random_next(&heap->random);
    /* a rotation of 0 would leave the link's high bits in place: avoid it */
    page->keys[1] = hh_random_next(&heap->random) | 1;
  } else {
    page->keys[0] = page->keys[1] = 0;
  }
}

void hh_report_corrupt_link(const hh_page_t* page, const hh_block_t* block, uintptr_t value) {
  hh_error_message("corrupted free list in the page at %p (size class %zu): block %p links to 0x%zx "
                   "(heap overflow or write after free?)",
                   (void*)page->page_start, page->block_size, (const void*)block, (size_t)value);
}

/* Exact test behind a cheap filter: a block whose first word decodes to a
 * valid link of this page is probably on a free list (allocation clears
 * that word in the secure build), so only then are the lists walked. */
bool hh_is_double_free(const hh_page_t* page, const hh_block_t* block) {
  hh_block_t* decoded = hh_decode_link(page, block, block->next);
  if (!hh_page_is_valid_link(page, decoded)) return false;
  return hh_page_block_is_free(page, block);
}
