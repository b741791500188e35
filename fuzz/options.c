/* libFuzzer harness options: environment strings through the option parser.
 *
 * The input is a list of environment entries: a byte choosing the name
 * (each option as HARDHEAP_NAME or MIMALLOC_NAME, ERROR_FILE too, or an
 * unknown HARDHEAP_ name made of input bytes; see select_name) and the
 * value that follows up to a NUL. The harness clears every
 * HARDHEAP_/MIMALLOC_ variable, sets the entries, puts every option back
 * to its documented default with hh_option_set, runs the parser
 * (hhi_options_init and hhi_options_warn, what process start runs, and
 * the verbose listing hhi_options_print; called directly, which the
 * static library allows: no testing hook was needed) with stderr
 * captured, and checks against an independent reading of the documented
 * rules (README "Options", docs/design.md section 9):
 *   - HARDHEAP_NAME wins over MIMALLOC_NAME; an empty value is unset;
 *   - booleans: 1/0, on/off, yes/no, true/false, enable[d]/disable[d],
 *     any case; integers: decimal with an optional sign, within range;
 *   - a bad or out-of-range value keeps the documented default and prints
 *     exactly "hardheap: warning: ignoring NAME="v": expected a boolean|an
 *     integer in [min, max]; using <default>";
 *   - an unknown HARDHEAP_ name prints "unknown option ... ignored";
 *   - a non-zero GUARDED_SAMPLE_RATE says nothing is sampled (fuzzing
 *     builds are tracking builds, which have no sampler);
 *   - the secure build keeps SHOW_ERRORS on;
 *   - ERROR_FILE is the string as given (the file is not opened here);
 *   - with VERBOSE on, one line per option, "hardheap: option NAME=V (S)",
 *     S the variable that set it, or, when none did or its value was
 *     refused, hh_option_set (the harness set every value before); then
 *     ERROR_FILE "unset (...)" or "=V (S): not open".
 * The parser's whole output must be exactly the lines these rules give,
 * in order. Then it allocates and frees a little under the options. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "fuzz_common.h"
#include "options.h"

extern char** environ;

typedef struct opt_s {
  hh_option_t id;
  const char* name;
  bool is_bool;
  long min, max;
  long default_value;  /* the documented default (ABORT_ON_MISUSE: per build) */
} opt_t;

static opt_t opts[] = {
    {hh_option_verbose, "VERBOSE", true, 0, 1, 0},
    {hh_option_show_stats, "SHOW_STATS", true, 0, 1, 0},
    {hh_option_show_errors, "SHOW_ERRORS", true, 0, 1, 1},
    {hh_option_max_errors, "MAX_ERRORS", false, -1, 1000000, 16},
    {hh_option_purge_delay, "PURGE_DELAY", false, -1, 86400000, 10},
    {hh_option_allow_large_os_pages, "ALLOW_LARGE_OS_PAGES", true, 0, 1, 0},
    {hh_option_segment_cache, "SEGMENT_CACHE", false, 0, 1024, 4},
    {hh_option_guarded_sample_rate, "GUARDED_SAMPLE_RATE", false, 0, 1000000000, 0},
    {hh_option_guarded_sample_seed, "GUARDED_SAMPLE_SEED", false, 0, LONG_MAX, 0},
    {hh_option_abort_on_misuse, "ABORT_ON_MISUSE", true, 0, 1, -1 /* set in init */},
    {hh_option_guarded_min, "GUARDED_MIN", false, 0, LONG_MAX, 0},
    {hh_option_guarded_max, "GUARDED_MAX", false, 0, 1L << 30, 1L << 20},
    {hh_option_guarded_precise, "GUARDED_PRECISE", true, 0, 1, 0},
    {hh_option_guarded_underflow, "GUARDED_UNDERFLOW", false, 0, 100, 25},
    {hh_option_guarded_slots, "GUARDED_SLOTS", false, 1, 65536, 1024},
    {hh_option_guarded_quarantine, "GUARDED_QUARANTINE", false, 0, 65536, 256},
    {hh_option_background_purge, "BACKGROUND_PURGE", true, 0, 1, 1},
};
#define NOPTS (sizeof(opts) / sizeof(opts[0]))
_Static_assert(NOPTS == hh_option_count_, "the harness must know every option (its documented rules)");

/* ---- the documented rules, read independently ---------------------------------------------*/
static bool word_is(const char* s, const char* word) {
  for (; *s != 0 && *word != 0; s++, word++) {
    char c = (*s >= 'A' && *s <= 'Z') ? (char)(*s - 'A' + 'a') : *s;
    if (c != *word) return false;
  }
  return *s == 0 && *word == 0;
}

static bool parse(const char* s, bool is_bool, long* out) {
  if (is_bool) {
    static const char* yes[] = {"1", "on", "yes", "true", "enable", "enabled"};
    static const char* no[] = {"0", "off", "no", "false", "disable", "disabled"};
    for (size_t i = 0; i < 6; i++) {
      if (word_is(s, yes[i])) { *out = 1; return true; }
      if (word_is(s, no[i])) { *out = 0; return true; }
    }
    return false;
  }
  bool neg = *s == '-';
  if (*s == '-' || *s == '+') s++;
  if (*s == 0) return false;
  unsigned long long v = 0;
  for (; *s != 0; s++) {
    if (*s < '0' || *s > '9') return false;
    unsigned d = (unsigned)(*s - '0');
    if (v > ((unsigned long long)LONG_MAX - d) / 10) return false;  /* would pass LONG_MAX */
    v = v * 10 + d;
  }
  *out = neg ? -(long)v : (long)v;
  return true;
}

/* ---- the environment -------------------------------------------------------------------------*/
static void clear_our_variables(void) {
  for (;;) {
    char name[256] = {0};
    for (char** e = environ; e != NULL && *e != NULL; e++) {
      if (strncmp(*e, "HARDHEAP_", 9) == 0 || strncmp(*e, "MIMALLOC_", 9) == 0) {
        const char* eq = strchr(*e, '=');
        size_t n = eq != NULL ? (size_t)(eq - *e) : strlen(*e);
        if (n >= sizeof(name)) n = sizeof(name) - 1;
        memcpy(name, *e, n);
        break;
      }
    }
    if (name[0] == 0) return;
    FUZZ_CHECK(unsetenv(name) == 0);
  }
}

/* Run the parser with stderr captured into out (NUL-terminated). */
static void run_parser(char* out, size_t size) {
  int fd = memfd_create("hh-options", 0);
  FUZZ_CHECK(fd >= 0);
  int saved = dup(2);
  FUZZ_CHECK(saved >= 0 && dup2(fd, 2) == 2);
  hhi_options_init();
  hhi_options_warn();
  hhi_options_print();
  FUZZ_CHECK(dup2(saved, 2) == 2);
  close(saved);
  ssize_t n = pread(fd, out, size - 1, 0);
  FUZZ_CHECK(n >= 0);
  out[n] = 0;
  close(fd);
}

#define ENTRIES 16
#define VALUE_MAX 160
#define ERROR_FILE NOPTS  /* the name index of ERROR_FILE, after the integer options */

/* The name an entry's selector byte sel picks: k = sel % 24 below 20 is
 * option k / 2 (the first ten), HARDHEAP_ for even k, MIMALLOC_ for odd
 * (the seeds were written for that); above, j = (sel / 24) * 4 + k - 20
 * (0..39) is an unknown name for j < 4, else in turn the other options
 * and ERROR_FILE, each with both prefixes. Returns the name index
 * (ERROR_FILE included), or -1 for an unknown name. */
static int select_name(uint8_t sel, bool* alias) {
  unsigned k = sel % 24u;
  if (k < 20) {
    *alias = (k & 1) != 0;
    return (int)(k / 2);
  }
  unsigned j = (sel / 24u) * 4 + k - 20;
  if (j < 4) return -1;
  unsigned choice = (j - 4) % (2 * (NOPTS + 1 - 10));
  *alias = (choice & 1) != 0;
  return (int)(10 + choice / 2);
}

static const char* name_of(int index) {
  return index == ERROR_FILE ? "ERROR_FILE" : opts[index].name;
}

/* The value of HARDHEAP_<name>, or of MIMALLOC_<name> when that is unset or
 * empty (*prefix: which); NULL if neither. */
static const char* lookup(const char* name, const char** prefix) {
  const char* prefixes[2] = {"HARDHEAP_", "MIMALLOC_"};
  for (int p = 0; p < 2; p++) {
    char used[64];
    snprintf(used, sizeof(used), "%s%s", prefixes[p], name);
    const char* v = getenv(used);
    if (v == NULL || *v == 0) continue;
    *prefix = prefixes[p];
    return v;
  }
  return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  for (size_t k = 0; k < NOPTS; k++) {
    if (opts[k].id == hh_option_abort_on_misuse) opts[k].default_value = hh_is_secure() ? 1 : 0;
  }
  clear_our_variables();

  /* the entries */
  char names[ENTRIES][48];
  char values[ENTRIES][VALUE_MAX + 1];
  int n_entries = 0;
  reader_t r = {data, size};
  while (r.left > 0 && n_entries < ENTRIES) {
    uint8_t sel = rd_u8(&r);
    char* name = names[n_entries];
    bool alias = false;
    int index = select_name(sel, &alias);
    if (index >= 0) {
      snprintf(name, sizeof(names[0]), "%s%s", alias ? "MIMALLOC_" : "HARDHEAP_", name_of(index));
    } else {  /* an unknown name */
      size_t len = 1 + rd_u8(&r) % 24;
      memcpy(name, "HARDHEAP_", 9);
      for (size_t i = 0; i < len; i++) name[9 + i] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ_0123456789"[rd_u8(&r) % 37];
      name[9 + len] = 0;
    }
    char* value = values[n_entries];
    size_t len = 0;
    while (r.left > 0 && len < VALUE_MAX) {
      uint8_t c = rd_u8(&r);
      if (c == 0) break;
      value[len++] = (char)c;
    }
    value[len] = 0;
    FUZZ_CHECK(setenv(name, value, 1) == 0);
    n_entries++;
  }
  for (size_t k = 0; k < NOPTS; k++) FUZZ_CHECK(hh_option_set(opts[k].id, opts[k].default_value));
  static char out[65536];
  run_parser(out, sizeof(out));

  static char expected_out[65536];
  static char listing[65536];  /* the verbose lines, after the warnings */
  size_t len = 0, listing_len = 0;
  expected_out[0] = 0;
  listing[0] = 0;
  long expected_values[NOPTS];
  for (size_t k = 0; k < NOPTS; k++) {
    const opt_t* o = &opts[k];
    long expected = o->default_value;
    char source[64] = "hh_option_set";
    const char* prefix = NULL;
    const char* v = lookup(o->name, &prefix);  /* HARDHEAP_ wins, also with a bad value */
    if (v != NULL) {
      long parsed;
      if (parse(v, o->is_bool, &parsed) && parsed >= o->min && parsed <= o->max) {
        expected = parsed;
        snprintf(source, sizeof(source), "%s%s", prefix, o->name);
      } else {
        len += (size_t)snprintf(expected_out + len, sizeof(expected_out) - len,
                                "hardheap: warning: ignoring %s%s=\"%s\": expected %s in [%ld, %ld]; using %ld\n", prefix,
                                o->name, v, o->is_bool ? "a boolean" : "an integer", o->min, o->max, o->default_value);
      }
    }
    if (o->id == hh_option_show_errors && hh_is_secure() && expected == 0) {
      expected = 1;
      snprintf(source, sizeof(source), "forced by the secure build");
    }
    expected_values[k] = expected;
    long got = hh_option_get(o->id);
    if (got != expected) {
      char msg[256];
      snprintf(msg, sizeof msg, "options: %s is %ld, expected %ld\n", o->name, got, expected);
      fuzz_write_err(msg);
      FUZZ_CHECK(!"the value of an option");
    }
    listing_len += (size_t)snprintf(listing + listing_len, sizeof(listing) - listing_len,
                                    "hardheap: option %s=%ld (%s)\n", o->name, expected, source);
  }
  {
    const char* prefix = NULL;
    const char* v = lookup("ERROR_FILE", &prefix);
    const char* got = hhi_option_error_file();
    FUZZ_CHECK(v == NULL ? got == NULL : got != NULL && strcmp(got, v) == 0);
    if (v == NULL) {
      listing_len += (size_t)snprintf(listing + listing_len, sizeof(listing) - listing_len,
                                      "hardheap: option ERROR_FILE unset (default)\n");
    } else {
      listing_len += (size_t)snprintf(listing + listing_len, sizeof(listing) - listing_len,
                                      "hardheap: option ERROR_FILE=%s (%sERROR_FILE): not open\n", v, prefix);
    }
  }
  for (char** e = environ; e != NULL && *e != NULL; e++) {  /* unknown HARDHEAP_ names, in environment order */
    if (strncmp(*e, "HARDHEAP_", 9) != 0) continue;
    const char* eq = strchr(*e, '=');
    size_t n = eq != NULL ? (size_t)(eq - *e) : strlen(*e);
    bool known = false;
    for (int k = 0; k <= (int)ERROR_FILE && !known; k++) {
      known = strlen(name_of(k)) == n - 9 && strncmp(*e + 9, name_of(k), n - 9) == 0;
    }
    if (!known) {
      len += (size_t)snprintf(expected_out + len, sizeof(expected_out) - len, "hardheap: warning: unknown option %.*s ignored\n",
                              (int)n, *e);
    }
  }
  if (hh_option_get(hh_option_guarded_sample_rate) != 0) {
    len += (size_t)snprintf(expected_out + len, sizeof(expected_out) - len,
                            "hardheap: warning: GUARDED_SAMPLE_RATE=%ld ignored: this build has no sampled guarded "
                            "allocations; use libhardheap-secure (hardheap run --secure)\n",
                            hh_option_get(hh_option_guarded_sample_rate));
  }
  if (expected_values[0] != 0) {  /* VERBOSE (opts[0]): the listing follows the warnings */
    FUZZ_CHECK(opts[0].id == hh_option_verbose);
    len += (size_t)snprintf(expected_out + len, sizeof(expected_out) - len, "%s", listing);
  }
  if (strcmp(out, expected_out) != 0) {
    fuzz_write_err("options: the parser said:\n");
    fuzz_write_err(out);
    fuzz_write_err("options: the rules say:\n");
    fuzz_write_err(expected_out);
    FUZZ_CHECK(!"the parser's messages");
  }
  /* the allocator works under them (no stats or messages: those go to the real stderr) */
  FUZZ_CHECK(hh_option_set(hh_option_verbose, 0) && hh_option_set(hh_option_show_stats, 0));
  void* blocks[64];
  for (int i = 0; i < 64; i++) {
    blocks[i] = hh_malloc((size_t)(i * 997) % 70000);
    FUZZ_CHECK(blocks[i] != NULL);
  }
  for (int i = 0; i < 64; i++) hh_free(blocks[i]);
  hh_collect(false);
  FUZZ_CHECK(hh_heap_validate(NULL));

  for (size_t k = 0; k < NOPTS; k++) FUZZ_CHECK(hh_option_set(opts[k].id, opts[k].default_value));
  clear_our_variables();
  return 0;
}
