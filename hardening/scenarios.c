/* Heap-misuse scenarios. Each one commits a single misuse through the
 * standard malloc API (as a buggy program would); hardening/CMakeLists.txt
 * runs every scenario against the secure library and requires a SIGABRT and
 * the exact report line, and against the default library where it requires
 * that the process survives. */
#include <hardheap.h>

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <malloc.h>

/* From docs/design.md: segments are 4 MiB-aligned, small pages 64 KiB. */
#define SEGMENT_SIZE ((uintptr_t)4 << 20)
#define SMALL_PAGE_SIZE ((uintptr_t)64 << 10)

void free_sized(void* p, size_t size);
void free_aligned_sized(void* p, size_t alignment, size_t size);

static volatile uintptr_t sink;  /* keeps the compiler from reasoning about frees */

static void* launder(void* p) {
  sink = (uintptr_t)p;
  return (void*)sink;
}

static int double_free_small(void) {
  void* keep = malloc(48);  /* keep the page alive */
  void* p = malloc(48);
  free(p);
  free(launder(p));
  free(keep);
  return 0;
}

static int double_free_medium(void) {
  void* keep = malloc(20000);
  void* p = malloc(20000);
  free(p);
  free(launder(p));
  free(keep);
  return 0;
}

static int double_free_large(void) {
  void* keep = malloc(300000);  /* keeps the large segment alive */
  void* p = malloc(300000);
  free(p);
  free(launder(p));
  free(keep);
  return 0;
}

static int double_free_huge(void) {
  void* p = malloc(8u << 20);
  free(p);
  free(launder(p));
  return 0;
}

static int free_foreign(void) {
  int on_stack[4] = {0};
  free(launder(on_stack));
  return 0;
}

static int free_interior(void) {
  char* keep = malloc(64);
  char* p = malloc(64);
  free(launder(p + 16));
  free(p);
  free(keep);
  return 0;
}

static int realloc_foreign(void) {
  static char global_buffer[64];
  void* q = realloc(launder(global_buffer), 128);
  return q == NULL ? 0 : 1;
}

/* A use-after-free write overwrites the free-list link of a freed block;
 * allocating it again must not follow the forged link. */
static int write_after_free_link(void) {
  void* blocks[64];
  for (int i = 0; i < 64; i++) blocks[i] = malloc(8192);
  char* victim = blocks[10];
  free(victim);
  memcpy(victim, "\x41\x41\x41\x41\x41\x41\x41\x41", 8);
  for (int i = 0; i < 64; i++) {
    void* p = malloc(8192);
    if (p == victim) break;  /* handed out again: the forged link was popped */
  }
  return 0;
}

/* A write just before a block that starts a segment's memory (here a huge
 * block) must hit the guard page that protects the segment metadata. */
static int underflow_into_metadata(void) {
  volatile char* p = malloc(8u << 20);
  p[-1] = 0x41;
  free((void*)p);
  return 0;
}


/* A wild write flips a bit of the segment header's cookie; the next free
 * in that segment must refuse to trust the header. */
static int segment_corrupted(void) {
  char* keep = malloc(64);
  char* p = malloc(64);
  volatile uintptr_t* header = (volatile uintptr_t*)((uintptr_t)p & ~(SEGMENT_SIZE - 1));
  *header ^= 0x10;
  free(launder(p));
  free(keep);
  return 0;
}

/* A pointer into a page slot no heap uses (the last small page of a fresh
 * segment): no block was ever handed out there. */
static int free_in_free_page(void) {
  char* p = malloc(64);
  uintptr_t segment = (uintptr_t)p & ~(SEGMENT_SIZE - 1);
  free(launder((void*)(segment + SEGMENT_SIZE - SMALL_PAGE_SIZE + 256)));
  free(p);
  return 0;
}

/* A pointer on a block boundary of a page in use, but past every block
 * the page has handed out so far. */
static int free_never_allocated(void) {
  char* p = malloc(64);
  uintptr_t page = (uintptr_t)p & ~(SMALL_PAGE_SIZE - 1);
  free(launder((void*)(page + SMALL_PAGE_SIZE - 64 * 16)));
  free(p);
  return 0;
}

static int realloc_freed_large(void) {
  void* keep = malloc(300000);
  void* p = malloc(300000);
  free(p);
  void* q = realloc(launder(p), 400000);
  free(keep);
  return q == NULL ? 0 : 1;
}

static int usable_size_freed_large(void) {
  void* keep = malloc(300000);
  void* p = malloc(300000);
  free(p);
  size_t n = malloc_usable_size(launder(p));
  free(keep);
  return n == 0 ? 0 : 1;
}

/* Another thread frees the same block twice before its owner looks: the
 * remote-free list loops onto itself. */
static void* free_twice(void* arg) {
  free(arg);
  free(launder(arg));
  return NULL;
}

static int remote_double_free(void) {
  void* blocks[200];
  for (int i = 0; i < 200; i++) blocks[i] = malloc(64);
  pthread_t t;
  pthread_create(&t, NULL, free_twice, blocks[100]);
  pthread_join(t, NULL);
  for (int i = 0; i < 100000; i++) free(malloc(64));  /* the owner collects its remote frees */
  return 0;
}

static int sized_free_mismatch(void) {
  void* p = malloc(64);
  free_sized(launder(p), 1000);
  return 0;
}

static int aligned_free_misaligned(void) {
  void* keep = malloc(64);  /* a page of 64-byte blocks: half of them are not 128-aligned */
  (void)keep;
  for (int i = 0; i < 64; i++) {
    char* p = aligned_alloc(64, 64);
    if (((uintptr_t)p & 127) != 0) free_aligned_sized(launder(p), 128, 64);
  }
  return 0;
}

static void* malloc_from(void* heap) {
  return hh_heap_malloc(heap, 64);
}

static int heap_not_owned(void) {
  hh_heap_t* heap = hh_heap_new();
  pthread_t t;
  void* result;
  pthread_create(&t, NULL, malloc_from, heap);
  pthread_join(t, &result);
  return result == NULL ? 0 : 1;
}

static int destroy_backing_heap(void) {
  hh_heap_destroy(hh_heap_get_backing());
  return 0;
}

/* A use-after-free write links a free block to itself (the fast build
 * stores links plainly); the validator sees a block listed twice. */
static int free_list_cycle_validated(void) {
  void* keep = malloc(48);
  void** a = malloc(48);
  void** b = malloc(48);
  free(a);
  free(b);
  *(void* volatile*)b = b;
  hh_heap_validate(NULL);
  free(keep);
  return 0;
}

/* A use-after-free write into a block another thread freed: the owner's
 * collection of its remote-free list meets a link that leads nowhere. */
static void* free_one(void* arg) {
  free(arg);
  return NULL;
}

static int write_after_remote_free(void) {
  void* blocks[200];
  for (int i = 0; i < 200; i++) blocks[i] = malloc(64);
  pthread_t t;
  pthread_create(&t, NULL, free_one, blocks[100]);
  pthread_join(t, NULL);
  memcpy(launder(blocks[100]), "\x41\x41\x41\x41\x41\x41\x41\x41", 8);
  for (int i = 0; i < 100000; i++) free(malloc(64));
  return 0;
}

/* The same through a heap's delayed list: the remote free of a block of a
 * full page goes to its heap's list, where the write after free lands. */
static int write_after_delayed_free(void) {
  enum { N = 5000 };
  static void* blocks[N];
  for (int i = 0; i < N; i++) blocks[i] = malloc(64);
  pthread_t t;
  pthread_create(&t, NULL, free_one, blocks[0]);
  pthread_join(t, NULL);
  memcpy(launder(blocks[0]), "\x41\x41\x41\x41\x41\x41\x41\x41", 8);
  for (int i = 0; i < 100000; i++) free(malloc(64));
  return 0;
}

/* An attacker who read a free block's link and learned its successor can
 * forge a link to any block of the page; aimed at a live one it must not
 * hand that block out twice. */
static int free_list_forged_to_live(void) {
  void* keep = malloc(64);
  uintptr_t* x = malloc(64);
  uintptr_t* y = malloc(64);
  free(y);
  free(x);                                   /* local_free: x -> y */
  uintptr_t mask = *(volatile uintptr_t*)x ^ (uintptr_t)y;  /* use after free read */
  void* live = malloc(64);
  if (live == x || live == y) return 3;
  *(volatile uintptr_t*)x = (uintptr_t)live ^ mask;          /* use after free write: x -> live */
  for (int i = 0; i < 100000; i++) {
    void* p = malloc(64);
    if (p == live) return 1;                 /* handed out twice: the attack won */
  }
  free(keep);
  return 0;
}

/* A linear overflow off the end of a huge block runs into the guard page
 * right after it, not into whatever is mapped next. */
static int overflow_off_huge(void) {
  volatile char* p = malloc(8u << 20);
  size_t n = malloc_usable_size((void*)p);
  p[n] = 0x41;
  return 0;
}

/* In front of an over-aligned huge block nothing is left writable. */
static int underflow_aligned_huge(void) {
  volatile char* p = aligned_alloc(16u << 20, 8u << 20);
  p[-1] = 0x41;
  return 0;
}

/* The last block of a small segment ends before the segment's end guard:
 * overflowing past the slack faults instead of reaching the next mapping. */
static int overflow_segment_end(void) {
  for (int i = 0; i < 2000; i++) {
    char* p = malloc(8192);
    uintptr_t end = ((uintptr_t)p & ~(SEGMENT_SIZE - 1)) + SEGMENT_SIZE;
    if ((uintptr_t)p + 8192 + 8192 >= end) {
      memset(launder(p), 0x41, (size_t)(end - (uintptr_t)p));  /* up to the segment's end */
      return 0;
    }
  }
  return 3;  /* no block at the end of a segment was found */
}

int main(int argc, char** argv) {
  static const struct {
    const char* name;
    int (*run)(void);
  } scenarios[] = {
      {"double_free_small", double_free_small}, {"double_free_medium", double_free_medium},
      {"double_free_large", double_free_large}, {"double_free_huge", double_free_huge},
      {"free_foreign", free_foreign},
      {"free_interior", free_interior},         {"realloc_foreign", realloc_foreign},
      {"write_after_free_link", write_after_free_link}, {"underflow_into_metadata", underflow_into_metadata},
      {"segment_corrupted", segment_corrupted},       {"free_in_free_page", free_in_free_page},
      {"free_never_allocated", free_never_allocated}, {"realloc_freed_large", realloc_freed_large},
      {"usable_size_freed_large", usable_size_freed_large}, {"remote_double_free", remote_double_free},
      {"sized_free_mismatch", sized_free_mismatch},   {"aligned_free_misaligned", aligned_free_misaligned},
      {"heap_not_owned", heap_not_owned},             {"destroy_backing_heap", destroy_backing_heap},
      {"free_list_cycle_validated", free_list_cycle_validated},
      {"write_after_remote_free", write_after_remote_free},
      {"write_after_delayed_free", write_after_delayed_free},
      {"free_list_forged_to_live", free_list_forged_to_live},
      {"overflow_off_huge", overflow_off_huge},       {"underflow_aligned_huge", underflow_aligned_huge},
      {"overflow_segment_end", overflow_segment_end},
  };
  if (argc != 2) {
    fprintf(stderr, "usage: %s SCENARIO\n", argv[0]);
    return 2;
  }
  for (size_t i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++) {
    if (strcmp(argv[1], scenarios[i].name) == 0) return scenarios[i].run();
  }
  fprintf(stderr, "unknown scenario %s\n", argv[1]);
  return 2;
}
