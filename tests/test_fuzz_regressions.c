/* Regression tests for what the fuzzers (fuzz/) found, one case each, in
 * the order they were found. Built against both library variants. */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hardheap.h"

static int reports;
static hh_misuse_t last_kind;

static bool count_report(const hh_misuse_info_t* info, void* arg) {
  (void)arg;
  reports++;
  last_kind = info->kind;
  return true;  /* report and go on */
}

/* fuzz/misuse: a write after free changed the link of the last block of a
 * free list. hh_heap_validate reported the corrupted link but returned
 * true: the walk it did stopped there, which looked like the list's end,
 * and nothing was lost from the counts. */
START_TEST(test_validate_fails_on_a_cut_link) {
  if (!hh_is_secure()) return;  /* the fast build's plain links are not checked on walks */
  hh_misuse_handler_fun* old = hh_set_misuse_handler(count_report, NULL);
  hh_heap_t* heap = hh_heap_new();
  uint8_t* p[6];
  for (int i = 0; i < 6; i++) p[i] = hh_heap_malloc(heap, 61);
  hh_free(p[2]);  /* alone on its page's local_free: its link is the encoded NULL */
  p[2][0] ^= 0x55;
  reports = 0;
  ck_assert(!hh_heap_validate(heap));
  ck_assert_int_ge(reports, 1);
  /* from level 2 the block waits in the quarantine, whose blocks must stay
   * zero: the write is a write after free there */
  ck_assert_int_eq(last_kind, hh_secure_level() >= 2 ? HH_MISUSE_WRITE_AFTER_FREE : HH_MISUSE_HEAP_INVARIANT);
  hh_heap_destroy(heap);
  hh_set_misuse_handler(old, NULL);
}
END_TEST

int main(void) {
  Suite* s = suite_create("fuzz_regressions");
  TCase* tc = tcase_create(hh_is_secure() ? "secure" : "default");
  tcase_add_test(tc, test_validate_fails_on_a_cut_link);
  suite_add_tcase(s, tc);
  SRunner* sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
