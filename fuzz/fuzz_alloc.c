/* libFuzzer harness: the input is a program of allocation operations run
 * against the hh_ API. Every live block is filled with a byte pattern; the
 * pattern is verified before each free and realloc, so any overlap between
 * blocks, lost content or wrong size class corrupts a pattern and traps.
 * Alignment, zeroing and usable sizes are checked on every allocation.
 * Built against both library variants (fuzz/CMakeLists.txt). */
#include "hardheap.h"

#include <stdint.h>
#include <string.h>

#define SLOTS 64

typedef struct slot_s {
  uint8_t* p;
  size_t size;
  uint8_t fill;
} slot_t;

typedef struct reader_s {
  const uint8_t* data;
  size_t left;
} reader_t;

static uint8_t next_byte(reader_t* r) {
  if (r->left == 0) return 0;
  r->left--;
  return *r->data++;
}

/* Sizes spread over every size class and into huge allocations. */
static size_t next_size(reader_t* r) {
  uint8_t shape = next_byte(r);
  size_t v = (size_t)next_byte(r) | ((size_t)next_byte(r) << 8) | ((size_t)next_byte(r) << 16);
  unsigned bits = shape % 24;  /* up to 8 MiB */
  return bits == 0 ? 0 : v & (((size_t)1 << bits) - 1);
}

static void check(int ok) {
  if (!ok) __builtin_trap();
}

static void fill(slot_t* s, uint8_t value) {
  s->fill = value;
  memset(s->p, value, s->size);
}

static void verify(const slot_t* s, size_t n) {
  for (size_t i = 0; i < n; i++) check(s->p[i] == s->fill);
}

static void verify_zero(const uint8_t* p, size_t n) {
  for (size_t i = 0; i < n; i++) check(p[i] == 0);
}

static void release(slot_t* s) {
  if (s->p == NULL) return;
  verify(s, s->size);
  hh_free(s->p);
  s->p = NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  slot_t slots[SLOTS];
  memset(slots, 0, sizeof(slots));
  reader_t r = {data, size};
  while (r.left > 0) {
    uint8_t op = next_byte(&r);
    slot_t* s = &slots[next_byte(&r) % SLOTS];
    switch (op % 8) {
      case 0:
      case 1: {  /* malloc / zalloc */
        release(s);
        size_t n = next_size(&r);
        s->p = (op % 8 == 0) ? hh_malloc(n) : hh_zalloc(n);
        check(s->p != NULL && ((uintptr_t)s->p % HH_MIN_ALIGNMENT) == 0);
        check(hh_usable_size(s->p) >= n);
        if (op % 8 == 1) verify_zero(s->p, n);
        s->size = n;
        fill(s, (uint8_t)(op ^ r.left));
        break;
      }
      case 2: {  /* calloc */
        release(s);
        size_t count = next_byte(&r) + 1u;
        size_t n = next_size(&r) / count;
        s->p = hh_calloc(count, n);
        check(s->p != NULL);
        verify_zero(s->p, count * n);
        s->size = count * n;
        fill(s, (uint8_t)(op + 1));
        break;
      }
      case 3: {  /* aligned */
        release(s);
        size_t alignment = (size_t)1 << (next_byte(&r) % 24);
        size_t n = next_size(&r);
        s->p = hh_malloc_aligned(n, alignment);
        check(s->p != NULL && ((uintptr_t)s->p % alignment) == 0);
        check(hh_usable_size(s->p) >= n);
        s->size = n;
        fill(s, (uint8_t)(alignment + 3));
        break;
      }
      case 4: {  /* realloc keeps the prefix */
        size_t n = next_size(&r);
        if (s->p == NULL || n == 0) break;
        verify(s, s->size);
        uint8_t* q = hh_realloc(s->p, n);
        check(q != NULL && hh_usable_size(q) >= n);
        s->p = q;
        size_t keep = s->size < n ? s->size : n;
        verify(s, keep);
        s->size = n;
        fill(s, (uint8_t)(s->fill + 1));
        break;
      }
      case 5:
        release(s);
        break;
      case 6:
        hh_collect(next_byte(&r) & 1);
        break;
      default: {  /* impossible requests fail cleanly */
        check(hh_malloc(SIZE_MAX - next_byte(&r)) == NULL);
        check(hh_calloc(SIZE_MAX / 2, 3) == NULL);
        break;
      }
    }
  }
  for (size_t i = 0; i < SLOTS; i++) release(&slots[i]);
  return 0;
}
