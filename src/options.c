/* hardheap: run-time options.
 *
 * One table holds every option's name, default and limits. The environment
 * is read once at process start (HARDHEAP_<NAME>, then the alias
 * MIMALLOC_<NAME>); hh_option_set changes a value later. getenv is used
 * because it does not allocate and works before libc's constructors ran. */
#include "config.h"
#include "options.h"
#include "report.h"

#include <string.h>

#include <limits.h>
#include <stdlib.h>

extern char** environ;

typedef struct hh_option_desc_s {
  long value;          /* current value */
  long default_value;  /* value when the environment says nothing */
  long min, max;       /* accepted range (inclusive) */
  bool is_bool;        /* accepts on/off words */
  const char* name;    /* NAME in HARDHEAP_NAME / MIMALLOC_NAME */
} hh_option_desc_t;

/* In hh_option_t order (checked in hh_options_init). */
static hh_option_desc_t options[hh_option_count_] = {
  [hh_option_verbose] = {0, 0, 0, 1, true, "VERBOSE"},
  [hh_option_show_stats] = {0, 0, 0, 1, true, "SHOW_STATS"},
  [hh_option_show_errors] = {1, 1, 0, 1, true, "SHOW_ERRORS"},
  [hh_option_max_errors] = {16, 16, -1, 1000000, false, "MAX_ERRORS"},
  [hh_option_purge_delay] = {10, 10, -1, 24L * 3600 * 1000, false, "PURGE_DELAY"},
  [hh_option_allow_large_os_pages] = {0, 0, 0, 1, true, "ALLOW_LARGE_OS_PAGES"},
  [hh_option_segment_cache] = {4, 4, 0, 1024, false, "SEGMENT_CACHE"},
  [hh_option_guarded_sample_rate] = {HH_GUARDED_DEFAULT_RATE, HH_GUARDED_DEFAULT_RATE, 0, 1000000000, false,
                                     "GUARDED_SAMPLE_RATE"},
  [hh_option_guarded_sample_seed] = {0, 0, 0, LONG_MAX, false, "GUARDED_SAMPLE_SEED"},
  [hh_option_abort_on_misuse] = {HH_MISUSE_ABORTS_BY_DEFAULT, HH_MISUSE_ABORTS_BY_DEFAULT, 0, 1, true,
                                 "ABORT_ON_MISUSE"},
  [hh_option_guarded_min] = {0, 0, 0, LONG_MAX, false, "GUARDED_MIN"},
  [hh_option_guarded_max] = {1L << 20, 1L << 20, 0, 1L << 30, false, "GUARDED_MAX"},
  [hh_option_guarded_precise] = {0, 0, 0, 1, true, "GUARDED_PRECISE"},
  [hh_option_guarded_underflow] = {25, 25, 0, 100, false, "GUARDED_UNDERFLOW"},
  [hh_option_guarded_slots] = {1024, 1024, 1, 65536, false, "GUARDED_SLOTS"},
  [hh_option_guarded_quarantine] = {256, 256, 0, 65536, false, "GUARDED_QUARANTINE"},
  [hh_option_background_purge] = {1, 1, 0, 1, true, "BACKGROUND_PURGE"},
};

static bool str_ieq(const char* a, const char* b) {
  for (; *a != 0 && *b != 0; a++, b++) {
    char ca = (*a >= 'A' && *a <= 'Z') ? (char)(*a - 'A' + 'a') : *a;
    if (ca != *b) return false;
  }
  return *a == 0 && *b == 0;
}

/* Parse a decimal integer (optional sign) or a boolean word. */
static bool parse_value(const char* s, bool is_bool, long* out) {
  if (is_bool) {
    static const char* const yes[] = {"1", "on", "yes", "true", "enable", "enabled"};
    static const char* const no[] = {"0", "off", "no", "false", "disable", "disabled"};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
      if (str_ieq(s, yes[i])) { *out = 1; return true; }
      if (str_ieq(s, no[i])) { *out = 0; return true; }
    }
    return false;
  }
  const char* p = s;
  bool negative = false;
  if (*p == '-' || *p == '+') negative = (*p++ == '-');
  if (*p == 0) return false;
  long v = 0;
  for (; *p != 0; p++) {
    if (*p < '0' || *p > '9') return false;
    if (v > (LONG_MAX - (*p - '0')) / 10) return false;
    v = v * 10 + (*p - '0');
  }
  *out = negative ? -v : v;
  return true;
}

static void option_read_env(hh_option_desc_t* desc) {
  char name[64];
  const char* prefixes[] = {"HARDHEAP_", "MIMALLOC_"};
  for (size_t i = 0; i < 2; i++) {
    hhi_format(name, sizeof(name), "%s%s", prefixes[i], desc->name);
    const char* s = getenv(name);
    if (s == NULL || *s == 0) continue;
    long v;
    if (!parse_value(s, desc->is_bool, &v) || v < desc->min || v > desc->max) {
      /* printed unconditionally: a user who set an option wants to know */
      hhi_print("hardheap: warning: ignoring %s=\"%s\": expected %s in [%ld, %ld]; using %ld\n", name, s,
               desc->is_bool ? "a boolean" : "an integer", desc->min, desc->max, desc->value);
      return;
    }
    desc->value = v;
    return;  /* HARDHEAP_ wins over the alias */
  }
}

/* A HARDHEAP_ variable we do not know is most likely a typo: say so. */
static void warn_unknown_names(void) {
  static const char prefix[] = "HARDHEAP_";
  if (environ == NULL) return;
  for (char** env = environ; *env != NULL; env++) {
    const char* var = *env;
    if (strncmp(var, prefix, sizeof(prefix) - 1) != 0) continue;
    const char* name = var + sizeof(prefix) - 1;
    size_t len = 0;
    while (name[len] != 0 && name[len] != '=') len++;
    bool known = false;
    for (int i = 0; i < hh_option_count_ && !known; i++) {
      known = strlen(options[i].name) == len && strncmp(options[i].name, name, len) == 0;
    }
    if (!known) {
      char shown[64];
      size_t n = len + sizeof(prefix) - 1 < sizeof(shown) - 1 ? len + sizeof(prefix) - 1 : sizeof(shown) - 1;
      memcpy(shown, var, n);
      shown[n] = 0;
      hhi_print("hardheap: warning: unknown option %s ignored\n", shown);
    }
  }
}

void hhi_options_init(void) {
  for (int i = 0; i < hh_option_count_; i++) {
    if (options[i].name == NULL) hhi_fatal("option %d has no table entry", i);
    option_read_env(&options[i]);
  }
  warn_unknown_names();
  if (HH_ERRORS_ALWAYS_SHOWN) options[hh_option_show_errors].value = 1;
  /* a user who asks for sampling from a build without it must not believe
   * it is happening */
  if (!HH_GUARDED && options[hh_option_guarded_sample_rate].value != 0) {
    hhi_print("hardheap: warning: GUARDED_SAMPLE_RATE=%ld ignored: this build has no sampled guarded "
              "allocations; use libhardheap-secure (hardheap run --secure)\n",
              options[hh_option_guarded_sample_rate].value);
  }
}

long hhi_option_value(hh_option_t option) {
  return options[option].value;
}

bool hhi_option_enabled(hh_option_t option) {
  return options[option].value != 0;
}

long hh_option_get(hh_option_t option) {
  if ((unsigned)option >= hh_option_count_) return 0;
  return options[option].value;
}

bool hh_option_set(hh_option_t option, long value) {
  if ((unsigned)option >= hh_option_count_) return false;
  hh_option_desc_t* desc = &options[option];
  if (value < desc->min || value > desc->max) return false;
  if (HH_ERRORS_ALWAYS_SHOWN && option == hh_option_show_errors && value == 0) return false;
  desc->value = value;
  return true;
}
