/* The secure build's guard pages cost kernel mappings, and Linux allows a
 * process 65530 of them by default (vm.max_map_count). A heap of 8 GiB of
 * small blocks (1 Mi blocks of 8000 bytes, a size class of 8 KiB) must stay
 * well inside that: the guards between pages thin out as their budget is
 * spent (src/segment.c:guard_interval_now). The peak map count is read from
 * /proc/self/maps and printed; the blocks are then freed and must all be
 * usable again. Run against both builds (the default build has no guards). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <check.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hardheap.h"

static size_t map_count(void) {
  int fd = open("/proc/self/maps", O_RDONLY);
  if (fd < 0) return 0;
  char buf[65536];
  size_t lines = 0;
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) {
    for (ssize_t i = 0; i < n; i++) lines += buf[i] == '\n';
  }
  close(fd);
  return lines;
}

START_TEST(test_8_gib_of_small_blocks) {
  enum { BLOCK = 8000 };
  const size_t count = ((size_t)8 << 30) / 8192;
  uint8_t** blocks = hh_malloc(count * sizeof(uint8_t*));
  ck_assert_ptr_nonnull(blocks);
  size_t before = map_count();
  size_t peak = before;
  for (size_t i = 0; i < count; i++) {
    blocks[i] = hh_malloc(BLOCK);
    ck_assert_msg(blocks[i] != NULL, "malloc %zu of %zu failed", i, count);
    blocks[i][0] = (uint8_t)i;             /* one page of each block touched */
    if (i % 65536 == 0) {
      size_t now = map_count();
      if (now > peak) peak = now;
    }
  }
  size_t now = map_count();
  if (now > peak) peak = now;
  hh_stats_t stats;
  hh_stats_get(&stats);
  printf("test_8_gib_of_small_blocks (%s, secure level %d): %zu blocks of %d bytes, %zu MiB reserved; "
         "maps: %zu before, peak %zu (vm.max_map_count default 65530)\n",
         hh_is_secure() ? "secure" : "default", hh_secure_level(), count, BLOCK, stats.reserved >> 20, before,
         peak);
  fflush(stdout);
  ck_assert_msg(peak < 32768, "peak map count %zu is not well inside the default limit", peak);
  for (size_t i = 0; i < count; i++) {
    ck_assert_msg(blocks[i][0] == (uint8_t)i, "block %zu lost its content", i);
    hh_free(blocks[i]);
  }
  hh_free(blocks);
  hh_collect(true);
  /* all of it is usable again */
  for (int i = 0; i < 1000; i++) {
    void* p = hh_malloc(BLOCK);
    ck_assert_ptr_nonnull(p);
    hh_free(p);
  }
}
END_TEST

int main(void) {
  Suite* s = suite_create("map_budget");
  TCase* tc = tcase_create("guards");
  tcase_set_timeout(tc, 600);
  tcase_add_test(tc, test_8_gib_of_small_blocks);
  suite_add_tcase(s, tc);
  SRunner* sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
