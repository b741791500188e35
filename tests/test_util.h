/* Helpers shared by the multi-threaded Check tests (test_heaps.c,
 * test_stress.c, test_threads_basic.c): a seedable PRNG with independent
 * per-thread streams, and an address-keyed content pattern that detects a
 * block handed out twice, overlapping blocks and overwritten memory. */
#ifndef HH_TEST_UTIL_H
#define HH_TEST_UTIL_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
  uint64_t s;
} rng_t;

static inline uint64_t rng_next(rng_t* r) { /* xorshift64* */
  uint64_t x = r->s;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  r->s = x;
  return x * UINT64_C(0x2545F4914F6CDD1D);
}

static inline uint32_t rng_below(rng_t* r, uint32_t n) { return (uint32_t)((rng_next(r) >> 32) % n); }

/* An independent stream per stream number (thread, lane, ...). */
static inline rng_t rng_for(uint64_t stream) {
  rng_t r = {UINT64_C(0x853C49E6748FEA9B) ^ (stream * UINT64_C(0x9E3779B97F4A7C15))};
  if (r.s == 0) r.s = 1;
  for (int i = 0; i < 4; i++) rng_next(&r);
  return r;
}

/* Content pattern: byte j of a block is byte (j % 8) of pattern_word(key,
 * j / 8); the key mixes the block's address with a tag, so a block that
 * shows up twice, overlaps another or is overwritten is detected. */
static inline uint64_t pattern_key(const void* p, uint64_t tag) {
  return ((uint64_t)(uintptr_t)p * UINT64_C(0x9E3779B97F4A7C15)) ^ (tag * UINT64_C(0xC2B2AE3D27D4EB4F)) ^ 0x5bd1e995;
}

static inline uint64_t pattern_word(uint64_t key, size_t i) { return key ^ ((uint64_t)i * UINT64_C(0xD6E8FEB86659FD93)); }

static inline void pattern_fill(void* p, size_t n, uint64_t key) {
  uint64_t* w = p;
  size_t nw = n / 8;
  for (size_t i = 0; i < nw; i++) w[i] = pattern_word(key, i);
  uint8_t* b = p;
  uint64_t last = pattern_word(key, nw);
  for (size_t j = nw * 8; j < n; j++) b[j] = (uint8_t)(last >> (8 * (j & 7)));
}

/* Offset of the first byte that differs from the pattern, or SIZE_MAX. */
static inline size_t pattern_check(const void* p, size_t n, uint64_t key) {
  const uint64_t* w = p;
  const uint8_t* b = p;
  size_t nw = n / 8;
  for (size_t i = 0; i < nw; i++) {
    if (w[i] != pattern_word(key, i)) {
      uint64_t want = pattern_word(key, i);
      for (size_t j = 0; j < 8; j++)
        if (b[i * 8 + j] != (uint8_t)(want >> (8 * j))) return i * 8 + j;
    }
  }
  uint64_t last = pattern_word(key, nw);
  for (size_t j = nw * 8; j < n; j++)
    if (b[j] != (uint8_t)(last >> (8 * (j & 7)))) return j;
  return SIZE_MAX;
}

#endif /* HH_TEST_UTIL_H */
