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

/* Sizes are chosen so their size class is the same with and without the
 * secure build's canary (which needs a few bytes after each request). */
static int double_free_small(void) {
  void* keep = malloc(40);  /* keep the page alive */
  void* p = malloc(40);
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
  void* keep = malloc(327671);  /* keeps the large segment alive */
  void* p = malloc(327671);
  free(p);
  free(launder(p));
  free(keep);
  return 0;
}

static int double_free_huge(void) {
  void* p = malloc((8u << 20) - 9);
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
  char* keep = malloc(56);
  char* p = malloc(56);
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
 * allocating it again must not follow the forged link. The block is freed
 * by another thread and collected (malloc_trim), so it is on its page's
 * free list and not in the secure build's quarantine. */
static void* free_one(void* arg) {
  free(arg);
  return NULL;
}

static void free_remotely(void* p) {
  pthread_t t;
  pthread_create(&t, NULL, free_one, p);
  pthread_join(t, NULL);
  malloc_trim(0);  /* the owner takes its remote frees back */
}

static int write_after_free_link(void) {
  void* blocks[64];
  for (int i = 0; i < 64; i++) blocks[i] = malloc(8000);
  char* victim = blocks[10];
  free_remotely(victim);
  memcpy(launder(victim), "\x41\x41\x41\x41\x41\x41\x41\x41", 8);
  for (int i = 0; i < 1000; i++) {
    void* p = malloc(8000);
    if (p == victim) {  /* handed out again: its forged link is the list's head now */
      (void)malloc(8000);
      break;
    }
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

/* A pointer into a page slot no heap uses (a slot of p's segment that
 * holds no page: hh_heap_contains says so): no block was ever handed out
 * there. */
static int free_in_free_page(void) {
  char* p = malloc(64);
  uintptr_t segment = (uintptr_t)p & ~(SEGMENT_SIZE - 1);
  for (uintptr_t slot = SEGMENT_SIZE / SMALL_PAGE_SIZE - 1; slot >= 2; slot--) {
    void* q = (void*)(segment + slot * SMALL_PAGE_SIZE + 256);
    if (!hh_heap_contains(hh_heap_get_backing(), q)) {
      free(launder(q));
      break;
    }
  }
  free(p);
  return 0;
}

/* A pointer on a block boundary of a page in use, but past every block
 * the page has handed out so far. */
static int free_never_allocated(void) {
  char* p = malloc(56);
  uintptr_t page = (uintptr_t)p & ~(SMALL_PAGE_SIZE - 1);
  free(launder((void*)(page + SMALL_PAGE_SIZE - 64 * 16)));
  free(p);
  return 0;
}

static int realloc_freed_large(void) {
  void* keep = malloc(327671);
  void* p = malloc(327671);
  free(p);
  void* q = realloc(launder(p), 400000);
  free(keep);
  return q == NULL ? 0 : 1;
}

static int usable_size_freed_large(void) {
  void* keep = malloc(327671);
  void* p = malloc(327671);
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
  for (int i = 0; i < 200; i++) blocks[i] = malloc(56);
  pthread_t t;
  pthread_create(&t, NULL, free_twice, blocks[100]);
  pthread_join(t, NULL);
  for (int i = 0; i < 100000; i++) free(malloc(56));  /* the owner collects its remote frees */
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
static int write_after_remote_free(void) {
  void* blocks[200];
  for (int i = 0; i < 200; i++) blocks[i] = malloc(56);
  pthread_t t;
  pthread_create(&t, NULL, free_one, blocks[100]);
  pthread_join(t, NULL);
  memcpy(launder(blocks[100]), "\x41\x41\x41\x41\x41\x41\x41\x41", 8);
  for (int i = 0; i < 100000; i++) free(malloc(56));
  return 0;
}

/* The same through a heap's delayed list: the remote free of a block of a
 * full page goes to its heap's list, where the write after free lands. */
static int write_after_delayed_free(void) {
  enum { N = 5000 };
  static void* blocks[N];
  for (int i = 0; i < N; i++) blocks[i] = malloc(56);
  pthread_t t;
  pthread_create(&t, NULL, free_one, blocks[0]);
  pthread_join(t, NULL);
  memcpy(launder(blocks[0]), "\x41\x41\x41\x41\x41\x41\x41\x41", 8);
  for (int i = 0; i < 100000; i++) free(malloc(56));
  return 0;
}

/* An attacker who read a free block's link and learned its successor can
 * forge a link to any block of the page; aimed at a live one it must not
 * hand that block out twice. */
static void* free_two(void* arg) {
  void** pair = arg;
  free(pair[1]);
  free(pair[0]);  /* remote-free list: x -> y */
  return NULL;
}

static int free_list_forged_to_live(void) {
  void* keep = malloc(56);
  void* live = malloc(56);
  uintptr_t* x = malloc(56);
  uintptr_t* y = malloc(56);
  void* pair[2] = {x, y};
  pthread_t t;
  pthread_create(&t, NULL, free_two, pair);
  pthread_join(t, NULL);
  malloc_trim(0);                            /* collected: x -> y on the page's list */
  uintptr_t mask = *(volatile uintptr_t*)x ^ (uintptr_t)y;  /* use after free read */
  *(volatile uintptr_t*)x = (uintptr_t)live ^ mask;          /* use after free write: x -> live */
  for (int i = 0; i < 100000; i++) {
    void* p = malloc(56);
    if (p == live) return 1;                 /* handed out twice: the attack won */
  }
  free(keep);
  return 0;
}

/* A use-after-free write into a block on its page's free list (freed by
 * another thread and collected by malloc_trim, so no quarantine is in the
 * way): the invariant check walks the list and meets the forged link. */
static void* free_eight(void* arg) {
  void** blocks = arg;
  for (int i = 0; i < 8; i++) free(blocks[i]);
  return NULL;
}

static int write_after_free_trim(void) {
  void* blocks[16];
  for (int i = 0; i < 16; i++) blocks[i] = malloc(56);
  pthread_t t;
  pthread_create(&t, NULL, free_eight, blocks);
  pthread_join(t, NULL);
  malloc_trim(0);  /* collected onto the page's free list */
  for (int i = 0; i < 8; i++) memcpy(launder(blocks[i]), "\x41\x41\x41\x41\x41\x41\x41\x41", 8);
  hh_heap_validate(NULL);
  return 0;
}

/* A linear overflow off the end of a huge block runs into the guard page
 * right after it, not into whatever is mapped next. */
static int overflow_off_huge(void) {
  char* p = malloc(8u << 20);
  memset(launder(p + malloc_usable_size(p)), 0x41, 8192);  /* past the end, however much slack */
  return 0;
}

/* A freed huge block stays inaccessible while it waits in the
 * quarantine, though its memory is kept for reuse: a read after free
 * faults instead of seeing the zeroed (or a new owner's) bytes. */
static int read_after_free_huge(void) {
  char* p = malloc(8u << 20);
  memset(p, 0x41, 8u << 20);
  free(p);
  printf("%d\n", ((volatile char*)launder(p))[4096]);
  return 0;
}

/* A huge block that reuses a bigger freed mapping ends at inaccessible
 * memory: an overflow off it faults instead of running over the rest of
 * the old block. The 12 MiB block waits for 8 later huge frees first. */
static int overflow_huge_reused(void) {
  enum { WAIT = 8 };
  char* others[WAIT];
  for (int i = 0; i < WAIT; i++) others[i] = malloc((size_t)(20 + i) << 20);  /* too big to be reused below */
  char* big = malloc(12u << 20);
  memset(big, 0x41, 12u << 20);
  free(big);
  for (int i = 0; i < WAIT; i++) free(others[i]);
  char* p = malloc(7u << 20);
  if (p != big) {
    fprintf(stderr, "overflow_huge_reused: the freed mapping was not reused\n");
    return 3;
  }
  memset(launder(p + malloc_usable_size(p)), 0x41, 8192);
  return 0;
}

/* A thread fills a few pages and frees everything; its empty segment
 * goes to the global cache, purged and made inaccessible (PURGE_DELAY 0).
 * The next thread's first page re-cuts that segment: only its own slot is
 * opened, so a stale pointer from the first thread into another page of
 * the segment faults instead of writing into memory a later page gets. */
static char* recut_stale[512];

static void* recut_fill_and_free(void* arg) {
  (void)arg;
  for (size_t i = 0; i < 512; i++) recut_stale[i] = malloc(1000);
  for (size_t i = 0; i < 512; i++) free(recut_stale[i]);
  return NULL;
}

static void* recut_write_stale(void* arg) {
  (void)arg;
  char* fresh = malloc(1000);
  uintptr_t fresh_page = (uintptr_t)fresh >> 16;
  for (size_t i = 0; i < 512; i++) {
    uintptr_t stale = (uintptr_t)recut_stale[i];
    if (stale >> 22 == (uintptr_t)fresh >> 22 && stale >> 16 != fresh_page) {
      *(volatile char*)launder(recut_stale[i]) = 0x41;
      return NULL;
    }
  }
  fprintf(stderr, "write_after_thread_exit_recut: the segment was not reused\n");
  exit(3);
}

static int write_after_thread_exit_recut(void) {
  pthread_t t;
  pthread_create(&t, NULL, recut_fill_and_free, NULL);
  pthread_join(t, NULL);
  pthread_create(&t, NULL, recut_write_stale, NULL);
  pthread_join(t, NULL);
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
    char* p = malloc(8000);
    uintptr_t end = ((uintptr_t)p & ~(SEGMENT_SIZE - 1)) + SEGMENT_SIZE;
    if ((uintptr_t)p + 8192 + 8192 >= end) {
      memset(launder(p), 0x41, (size_t)(end - (uintptr_t)p));  /* up to the segment's end */
      return 0;
    }
  }
  return 3;  /* no block at the end of a segment was found */
}

/* ---- overflows (secure level 2 and up: canaries; level 3: guard pages) ---- */
static int overflow_1_past_24(void) {
  char* p = malloc(24);
  ((char*)launder(p))[24] = 'A';
  free(p);
  return 0;
}

static int overflow_8_past_5000(void) {
  char* p = malloc(5000);
  memset(launder(p + 5000), 'A', 8);
  free(p);
  return 0;
}

static int overflow_into_slack(void) {
  char* p = malloc(5000);
  char* q = launder(p);
  q[5100] = (char)~q[5100];  /* not next to the end: a fill byte of the canary, changed whatever its key */
  free(p);
  return 0;
}

static int overflow_into_neighbour(void) {
  /* a block whose neighbour is allocated too (free lists are shuffled, and
   * the last block of a page ends at a guard page at level 3) */
  char* blocks[24];
  for (int i = 0; i < 24; i++) blocks[i] = malloc(5000);
  char* p = NULL;
  for (int i = 0; i < 24 && p == NULL; i++) {
    for (int j = 0; j < 24; j++) {
      if (blocks[j] == blocks[i] + 5120) p = blocks[i];
    }
  }
  if (p == NULL) return 2;
  memset(launder(p + 5000), 'A', 200);  /* the slack, and on into the neighbour */
  free(p);
  return 0;
}

static int overflow_then_realloc(void) {
  char* p = malloc(24);
  char* q = launder(p);
  q[26] = (char)~q[26];  /* a fill byte of the canary: a fixed value would match its key one time in 256 */
  p = realloc(p, 1000);
  return p == NULL ? 0 : 1;
}

static int overflow_huge_slack(void) {
  char* p = malloc((8u << 20) + 100);
  ((char*)launder(p))[(8u << 20) + 100] = 'A';
  free(p);
  return 0;
}

static int overflow_large_4096(void) {
  size_t n = (1u << 20) + 12345;
  char* p = malloc(n);
  memset(launder(p + n), 'A', 4096);  /* level 3: into the guard after the block */
  free(p);
  return 0;
}

/* A freed span taken by a block of another size (1048000 bytes, class
 * 1048576, after one of class 1064960): the new block ends at the guard
 * the span already has, 16 KiB further in than the first block started. */
static int overflow_large_reused(void) {
  void* keep = malloc(327671);  /* keeps the large segment alive */
  char* first = malloc(1060921);
  void* other = malloc(200000);
  free(first);
  free(other);  /* the span freed last is never the next one handed out */
  size_t n = 1048000;
  char* p = malloc(n);
  if (p != first + 16384) return 3;  /* not the reuse this scenario is about */
  memset(launder(p + n), 'A', 8192);
  free(p);
  free(keep);
  return 0;
}

/* A freed span reused by a smaller block, which starts slices further in
 * (against the span's guard) with its descriptor: a second free of the
 * first block, whose slice no block starts in now, is still a double free. */
static int double_free_large_moved(void) {
  void* keep = malloc(327671);
  char* first = malloc(1060921);
  void* other = malloc(200000);
  free(first);
  free(other);
  char* p = malloc(600000);
  if (p < first + 65536 || p >= first + 1060921) return 3;  /* not the reuse this scenario is about */
  free(launder(first));
  free(p);
  free(keep);
  return 0;
}

/* A large block grown in place by realloc: its guard moves to its new end. */
static int overflow_large_regrown(void) {
  void* keep = malloc(327671);
  size_t n = 1060921;
  char* p = malloc(1048000);
  char* q = realloc(p, n);
  if (q != p) return 3;  /* not grown in place */
  memset(launder(q + n), 'A', 8192);
  free(q);
  free(keep);
  return 0;
}

/* The last small block of a page ends before the guard after the page. */
static int overflow_across_page(void) {
  for (int i = 0; i < 2000; i++) {
    char* p = malloc(8000);
    uintptr_t page_end = ((uintptr_t)p & ~(SMALL_PAGE_SIZE - 1)) + SMALL_PAGE_SIZE;
    if ((uintptr_t)p + 8192 + 8192 >= page_end) {
      memset(launder(p), 'A', (size_t)(page_end - (uintptr_t)p));
      return 0;
    }
  }
  return 3;
}

static int write_after_free_small(void) {
  char* p = malloc(100);
  free(p);
  ((char*)launder(p))[50] = 'A';
  for (int i = 0; i < 2000; i++) free(malloc(100));  /* the block comes back around */
  return 0;
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
      {"write_after_free_trim", write_after_free_trim},
      {"overflow_1_past_24", overflow_1_past_24},     {"overflow_8_past_5000", overflow_8_past_5000},
      {"overflow_into_slack", overflow_into_slack},   {"overflow_into_neighbour", overflow_into_neighbour},
      {"overflow_then_realloc", overflow_then_realloc}, {"overflow_huge_slack", overflow_huge_slack},
      {"overflow_large_4096", overflow_large_4096},   {"overflow_large_reused", overflow_large_reused},
      {"overflow_large_regrown", overflow_large_regrown}, {"double_free_large_moved", double_free_large_moved},
      {"overflow_across_page", overflow_across_page},
      {"write_after_free_small", write_after_free_small},
      {"overflow_off_huge", overflow_off_huge},       {"underflow_aligned_huge", underflow_aligned_huge},
      {"read_after_free_huge", read_after_free_huge}, {"overflow_huge_reused", overflow_huge_reused},
      {"write_after_thread_exit_recut", write_after_thread_exit_recut},
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
