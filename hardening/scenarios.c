/* Heap-misuse scenarios. Each one commits a single misuse through the
 * standard malloc API (as a buggy program would); hardening/CMakeLists.txt
 * runs every scenario against the secure library and requires a SIGABRT and
 * the exact report line, and against the default library where it requires
 * that the process survives. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
