/* The Valgrind tracking mode (HH_TRACK=valgrind, src/track.h): run under
 * `valgrind --leak-check=full`, this program must give exactly one leak,
 * one heap overflow and one use after free, and nothing for the rest of
 * what it does, which is correct: a first-class heap's whole life (new,
 * allocate, destroy), every allocation call used and freed properly, a
 * randomized workload and blocks freed by another thread or left by an
 * exiting one (remote frees, delayed frees, abandoned pages reclaimed).
 * Run with the argument invalid_free it makes two invalid frees instead.
 * valgrind_expect.sh runs it and parses memcheck's output. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "hardheap.h"

static volatile uint8_t sink;

/* 1. the leak: 100 bytes whose only pointer dies with the frame */
static __attribute__((noinline)) void leak_100_bytes(void) {
  uint8_t* volatile p = hh_malloc(100);
  memset(p, 5, 100);
  p = NULL;
}

/* 2. the overflow: one byte past a 13-byte request (into the block's slack) */
static __attribute__((noinline)) void overflow_by_one(void) {
  uint8_t* p = hh_malloc(13);
  memset(p, 1, 13);
  ((volatile uint8_t*)p)[13] = 2;
  hh_free(p);
}

/* 3. the use after free: a read 32 bytes into a freed 64-byte block */
static __attribute__((noinline)) void read_after_free(void) {
  uint8_t* p = hh_malloc(64);
  memset(p, 3, 64);
  hh_free(p);
  sink = ((volatile uint8_t*)p)[32];
}

/* 4. a first-class heap's life: its blocks go with hh_heap_destroy */
static __attribute__((noinline)) int heap_life(void) {
  hh_heap_t* heap = hh_heap_new();
  if (heap == NULL) return 1;
  for (int i = 0; i < 300; i++) {
    size_t size = (size_t)(i * 37 % 2000) + 1;
    uint8_t* p = i % 3 == 0 ? hh_heap_calloc(heap, 1, size) : hh_heap_malloc(heap, size);
    if (p == NULL) return 1;
    memset(p, i, size);
    if (i % 5 == 0) hh_free(p);
  }
  uint8_t* big = hh_heap_malloc(heap, 200000);  /* a large block too */
  uint8_t* aligned = hh_heap_malloc_aligned(heap, 100, 256);
  if (big == NULL || aligned == NULL) return 1;
  memset(big, 1, 200000);
  memset(aligned, 1, 100);
  hh_heap_destroy(heap);
  return 0;
}

/* correct use of the rest of the API: no report */
static __attribute__((noinline)) int correct_use(void) {
  uint8_t* a = hh_calloc(10, 10);
  uint8_t* b = hh_malloc_aligned(40, 128);
  uint8_t* c = hh_malloc(30);
  uint8_t* d = hh_malloc(3000000);  /* huge */
  if (a == NULL || b == NULL || c == NULL || d == NULL) return 1;
  for (int i = 0; i < 100; i++) sink = a[i];  /* calloc memory is defined */
  memset(b, 1, 40);
  memset(c, 2, 30);
  size_t usable = hh_usable_size(c);  /* all of it may be used */
  memset(c, 3, usable);
  c = hh_realloc(c, 20);    /* shrinks in place */
  c = hh_realloc(c, 5000);  /* moves */
  if (c == NULL || c[10] != 3) return 1;
  memset(c, 4, 5000);
  memset(d, 5, 3000000);
  hh_heap_t* heap = hh_heap_new();
  uint8_t* e = hh_heap_malloc(heap, 77);
  memset(e, 6, 77);
  hh_heap_delete(heap);  /* e lives on in the backing heap */
  hh_free(e);
  hh_free_sized(a, 100);
  hh_free(b);
  hh_free(c);
  hh_free(d);
  return 0;
}

/* a randomized correct workload: contents checked before every free */
static __attribute__((noinline)) int random_workload(void) {
  enum { N = 256 };
  static uint8_t* p[N];
  static size_t n[N];
  uint64_t x = 0x2545F4914F6CDD1Du;
  for (int round = 0; round < 20000; round++) {
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    int i = (int)(x % N);
    if (p[i] != NULL) {
      for (size_t j = 0; j < n[i]; j++) {
        if (p[i][j] != (uint8_t)(j ^ (size_t)i)) return 1;
      }
      if ((x >> 8) % 4 == 0 && n[i] > 1) {
        n[i] = n[i] / 2 + (size_t)((x >> 12) % (2 * n[i]));
        p[i] = hh_realloc(p[i], n[i]);
        if (p[i] == NULL) return 1;
        for (size_t j = 0; j < n[i]; j++) p[i][j] = (uint8_t)(j ^ (size_t)i);
        continue;
      }
      hh_free(p[i]);
      p[i] = NULL;
      continue;
    }
    n[i] = (size_t)(x >> 24) % ((x & 0xf0) == 0xf0 ? 100000 : 2000) + 1;
    p[i] = (x >> 60) == 0 ? hh_malloc_aligned(n[i], 512) : hh_malloc(n[i]);
    if (p[i] == NULL) return 1;
    for (size_t j = 0; j < n[i]; j++) p[i][j] = (uint8_t)(j ^ (size_t)i);
  }
  for (int i = 0; i < N; i++) hh_free(p[i]);
  return 0;
}

/* blocks freed by another thread, and a thread that exits with live blocks */
enum { HANDOFF = 3000 };
static uint8_t* handoff[HANDOFF];

static void* free_them(void* arg) {
  (void)arg;
  for (int i = 0; i < HANDOFF; i++) hh_free(handoff[i]);  /* remote frees, some into full pages */
  return NULL;
}

static void* leave_them(void* arg) {
  (void)arg;
  for (int i = 0; i < HANDOFF; i++) {
    handoff[i] = hh_malloc((size_t)(i % 100) + 8);
    memset(handoff[i], 9, (size_t)(i % 100) + 8);
  }
  return NULL;  /* exits with every block live: its pages are abandoned */
}

static __attribute__((noinline)) int threads(void) {
  for (int i = 0; i < HANDOFF; i++) {
    handoff[i] = hh_malloc((size_t)(i % 200) + 1);
    if (handoff[i] == NULL) return 1;
    memset(handoff[i], 8, (size_t)(i % 200) + 1);
  }
  pthread_t t;
  if (pthread_create(&t, NULL, free_them, NULL) != 0 || pthread_join(t, NULL) != 0) return 1;
  for (int i = 0; i < 100; i++) hh_free(hh_malloc(64));  /* takes the delayed frees in */
  if (pthread_create(&t, NULL, leave_them, NULL) != 0 || pthread_join(t, NULL) != 0) return 1;
  for (int i = 0; i < HANDOFF; i++) {
    for (size_t j = 0; j < (size_t)(i % 100) + 8; j++) {
      if (handoff[i][j] != 9) return 1;
    }
    hh_free(handoff[i]);
  }
  for (int i = 0; i < 2000; i++) hh_free(hh_malloc((size_t)(i % 100) + 8));  /* reclaims the pages */
  return 0;
}

/* the "invalid_free" run: a free of a stack address and a double free,
 * each exactly one memcheck "Invalid free()" (hardheap's own misuse reports
 * are forwarded; run with HARDHEAP_ABORT_ON_MISUSE=0) */
static int invalid_frees(void) {
  int local = 0;
  hh_free(&local);
  uint8_t* p = hh_malloc(40);
  if (p == NULL) return 1;
  hh_free(p);
  hh_free(p);
  return 0;
}

int main(int argc, char** argv) {
  if (argc > 1 && strcmp(argv[1], "invalid_free") == 0) return invalid_frees();
  leak_100_bytes();
  overflow_by_one();
  read_after_free();
  if (heap_life() != 0 || correct_use() != 0 || random_workload() != 0 || threads() != 0) {
    fputs("track_valgrind: an allocation failed\n", stderr);
    return 1;
  }
  return 0;
}
