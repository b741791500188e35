/* Checks that the hardheap it was linked with is really the allocator:
 * malloc's blocks are hardheap blocks (their usable size is hardheap's size
 * class, which glibc's would not be) and the variant is the expected one. */
#include <hardheap.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef EXPECT_SECURE
#define EXPECT_SECURE 0
#endif

int main(void) {
  char* p = malloc(100);
  if (p == NULL) return 1;
  strcpy(p, "hello");
  size_t usable = malloc_usable_size(p);
  /* with canaries (secure level 2 and up) exactly what was asked for */
  size_t expected = hh_secure_level() >= 2 ? 100 : hh_good_size(100);
  if (usable != expected || hh_usable_size(p) != usable) {
    fprintf(stderr, "malloc is not hardheap's: usable %zu, expected %zu\n", usable, expected);
    return 1;
  }
  free(p);
  if (hh_is_secure() != EXPECT_SECURE) {
    fprintf(stderr, "wrong variant: secure=%d\n", (int)hh_is_secure());
    return 1;
  }
  printf("consumer ok: hardheap %d, %s\n", hh_version(), EXPECT_SECURE ? "secure" : "default");
  return 0;
}
