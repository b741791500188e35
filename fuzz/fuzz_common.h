/* Helpers shared by the libFuzzer harnesses: reading the input as a
 * program, sizes and alignments spread over every size class, content
 * patterns, a check that fails loudly, and a misuse handler that records
 * reports without allocating. */
#ifndef HH_FUZZ_COMMON_H
#define HH_FUZZ_COMMON_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hardheap.h"

/* ---- failing ------------------------------------------------------------------*/
/* A broken check prints where and traps: libFuzzer saves the input. */
#define FUZZ_CHECK(cond)                                                                      \
  do {                                                                                        \
    if (!(cond)) fuzz_fail(__FILE__, __LINE__, #cond);                                       \
  } while (0)

static inline void fuzz_write_err(const char* s) {
  ssize_t r = write(2, s, strlen(s));
  (void)r;
}

__attribute__((noreturn, noinline)) static inline void fuzz_fail(const char* file, int line, const char* cond) {
  char buf[512];
  snprintf(buf, sizeof buf, "%s:%d: check failed: %s\n", file, line, cond);
  fuzz_write_err(buf);
  __builtin_trap();
}

/* ---- the input as a program ------------------------------------------------------*/
typedef struct reader_s {
  const uint8_t* data;
  size_t left;
} reader_t;

static inline uint8_t rd_u8(reader_t* r) {
  if (r->left == 0) return 0;
  r->left--;
  return *r->data++;
}

static inline uint32_t rd_u16(reader_t* r) {
  uint32_t v = rd_u8(r);
  return v | ((uint32_t)rd_u8(r) << 8);
}

static inline uint32_t rd_u24(reader_t* r) {
  uint32_t v = rd_u16(r);
  return v | ((uint32_t)rd_u8(r) << 16);
}

static inline uint64_t rd_u64(reader_t* r) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v |= (uint64_t)rd_u8(r) << (8 * i);
  return v;
}

/* ---- options ------------------------------------------------------------------------*/
/* The library reads its options when it starts, before the harness runs:
 * one that needs some set (settings: name, value, ..., NULL) runs itself
 * again with them, from LLVMFuzzerInitialize, unless the first is set so. */
static inline void fuzz_restart_with(char** argv, const char* const* settings) {
  const char* now = getenv(settings[0]);
  if (now != NULL && strcmp(now, settings[1]) == 0) return;
  for (size_t i = 0; settings[i] != NULL; i += 2) setenv(settings[i], settings[i + 1], 1);
  execv("/proc/self/exe", argv);
  fuzz_fail(__FILE__, __LINE__, "execv /proc/self/exe");
}

#define FUZZ_KiB ((size_t)1024)
#define FUZZ_MiB ((size_t)1024 * 1024)

/* Sizes spread over every kind of block: mostly small, some medium, large
 * and huge, and the boundaries between the kinds. */
static inline size_t rd_size(reader_t* r) {
  static const size_t edges[] = {0,    1,    8,     15,    16,    17,    127,   128,   129,
                                 1023, 1024, 1025,  8191,  8192,  8193,  65535, 65536, 65537,
                                 2 * FUZZ_MiB - 1, 2 * FUZZ_MiB, 2 * FUZZ_MiB + 1, 4096, 4095, 4097};
  uint8_t shape = rd_u8(r);
  uint32_t v = rd_u24(r);
  switch (shape & 15) {
    case 0: case 1: case 2: case 3: case 4: case 5: case 6:
      return v % 1025;
    case 7: case 8:
      return v % 129;
    case 9: case 10: case 11:
      return v % (64 * FUZZ_KiB + 1);
    case 12: case 13:
      return 64 * FUZZ_KiB + v % (2 * FUZZ_MiB - 64 * FUZZ_KiB + 1);
    case 14:
      return 2 * FUZZ_MiB + 1 + v % (2 * FUZZ_MiB);
    default:
      return edges[v % (sizeof(edges) / sizeof(edges[0]))];
  }
}

/* A power of two from 1 to 4 MiB (mostly up to 128 KiB: larger ones map
 * segments of their own), or (high bit) a value that is not one. */
static inline size_t rd_align(reader_t* r, bool* valid) {
  uint8_t b = rd_u8(r);
  if (b & 0x80) {
    static const size_t bad[] = {0, 3, 24, 48, 100, 4095, 65537, (size_t)3 << 20};
    *valid = false;
    return bad[b % (sizeof(bad) / sizeof(bad[0]))];
  }
  *valid = true;
  return (size_t)1 << (b % 32 < 27 ? b % 18 : 18 + b % 5);
}

/* ---- content patterns -----------------------------------------------------------
 * The harnesses' own loops over block contents are kept out of the
 * coverage instrumentation: it only slows them down, and their branches
 * say nothing about the allocator. */
#define FUZZ_PLAIN_LOOP __attribute__((noinline, unused, no_sanitize("coverage")))

static inline uint8_t pattern_byte(uint32_t seed, size_t i) {
  return (uint8_t)(seed ^ (i * 0x9d) ^ (i >> 9) ^ (seed >> 11));
}

/* Big blocks get the pattern at both ends and every PATTERN_STRIDE bytes
 * in between: an overlapping or lost block still shows, and the harness
 * does not spend its time in memset. */
#define PATTERN_EDGE 4096
#define PATTERN_STRIDE 512

static inline size_t pattern_next(size_t i, size_t n) {
  if (n <= 4 * PATTERN_EDGE || i + 1 < PATTERN_EDGE || i + 1 >= n - PATTERN_EDGE) return i + 1;
  size_t next = i + PATTERN_STRIDE;
  return next < n - PATTERN_EDGE ? next : n - PATTERN_EDGE;
}

FUZZ_PLAIN_LOOP static void pattern_fill(uint8_t* p, size_t n, uint32_t seed) {
  for (size_t i = 0; i < n; i = pattern_next(i, n)) p[i] = pattern_byte(seed, i);
}

/* The first keep bytes of a block filled for n bytes still hold the pattern. */
FUZZ_PLAIN_LOOP static bool pattern_ok_prefix(const uint8_t* p, size_t keep, size_t n, uint32_t seed) {
  for (size_t i = 0; i < keep; i = pattern_next(i, n)) {
    if (p[i] != pattern_byte(seed, i)) return false;
  }
  return true;
}

static inline bool pattern_ok(const uint8_t* p, size_t n, uint32_t seed) {
  return pattern_ok_prefix(p, n, n, seed);
}

FUZZ_PLAIN_LOOP static bool all_zero(const uint8_t* p, size_t n) {
  static const uint8_t zeros[4096];
  for (size_t i = 0; i < n; i += sizeof(zeros)) {
    size_t k = n - i < sizeof(zeros) ? n - i : sizeof(zeros);
    if (memcmp(p + i, zeros, k) != 0) return false;
  }
  return true;
}

/* ---- intervals --------------------------------------------------------------------*/
static inline bool overlaps(const void* a, size_t an, const void* b, size_t bn) {
  uintptr_t x = (uintptr_t)a, y = (uintptr_t)b;
  return x < y + bn && y < x + an;
}

#endif /* HH_FUZZ_COMMON_H */
