/* hardheap: run-time options.
 *
 * One table holds every integer option's name, default, limits and where
 * its value came from; the one string option, ERROR_FILE, sits beside it.
 * The environment is read once at process start, here only (env_lookup:
 * HARDHEAP_<NAME>, then the alias MIMALLOC_<NAME>); hh_option_set changes
 * an integer value later. getenv is used because it does not allocate and
 * works before libc's constructors ran. */
#include "config.h"
#include "options.h"
#include "report.h"

#include <string.h>

#include <limits.h>
#include <stdlib.h>

extern char** environ;

/* Where a value came from (the verbose listing says it). */
typedef enum hh_option_source_e {
  HH_SOURCE_DEFAULT,   /* nothing set it (or what was set was refused) */
  HH_SOURCE_HARDHEAP,  /* HARDHEAP_<NAME> */
  HH_SOURCE_MIMALLOC,  /* MIMALLOC_<NAME> */
  HH_SOURCE_PROGRAM,   /* hh_option_set */
  HH_SOURCE_BUILD,     /* forced by the build (SHOW_ERRORS in the secure build) */
} hh_option_source_t;

static const char* const env_prefixes[] = {"HARDHEAP_", "MIMALLOC_"};

typedef struct hh_option_desc_s {
  long value;          /* current value */
  long default_value;  /* value when the environment says nothing */
  long min, max;       /* accepted range (inclusive) */
  bool is_bool;        /* accepts on/off words */
  const char* name;    /* NAME in HARDHEAP_NAME / MIMALLOC_NAME */
} hh_option_desc_t;

/* Where an option's value came from (zero: the default). */
typedef struct hh_option_origin_s {
  unsigned char source;          /* hh_option_source_t of the current value */
  unsigned char refused_prefix;  /* env_prefixes index of refused */
  const char* refused;           /* a value that was refused (until hhi_options_warn) */
} hh_option_origin_t;

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
  [hh_option_background_purge] = {HH_BACKGROUND_PURGE_BY_DEFAULT, HH_BACKGROUND_PURGE_BY_DEFAULT, 0, 1, true,
                                  "BACKGROUND_PURGE"},
};
static hh_option_origin_t origins[hh_option_count_];

/* ERROR_FILE: a file name (a pattern: %p is the PID), copied out of the
 * environment; "" = none. init.c opens it (hhi_error_file_open). */
static struct {
  char value[HH_ERROR_FILE_NAME_MAX];
  hh_option_origin_t origin;  /* refused: too long */
} error_file;
static const char error_file_name[] = "ERROR_FILE";

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

/* The one place the environment is read: the value of HARDHEAP_<name>, or
 * of MIMALLOC_<name> when that is unset or empty; *prefix says which.
 * unsafe_in_setuid: not read in a setuid or setgid program (secure_getenv),
 * where whoever runs it sets the environment. */
static const char* env_lookup(const char* name, bool unsafe_in_setuid, unsigned char* prefix) {
  for (unsigned char i = 0; i < 2; i++) {
    char var[64];
    hhi_format(var, sizeof(var), "%s%s", env_prefixes[i], name);
    const char* s = unsafe_in_setuid ? secure_getenv(var) : getenv(var);
    if (s == NULL || *s == 0) continue;
    *prefix = i;
    return s;  /* HARDHEAP_ wins over the alias, also with a bad value */
  }
  return NULL;
}

static hh_option_source_t prefix_source(unsigned char prefix) {
  return prefix == 0 ? HH_SOURCE_HARDHEAP : HH_SOURCE_MIMALLOC;
}

static void option_read_env(hh_option_desc_t* desc, hh_option_origin_t* origin) {
  unsigned char prefix = 0;
  origin->refused = NULL;
  const char* s = env_lookup(desc->name, false, &prefix);
  if (s == NULL) return;
  long v;
  if (!parse_value(s, desc->is_bool, &v) || v < desc->min || v > desc->max) {
    origin->refused = s;  /* the value and its source stay */
    origin->refused_prefix = prefix;
    return;
  }
  desc->value = v;
  origin->source = (unsigned char)prefix_source(prefix);
}

static void error_file_read_env(void) {
  unsigned char prefix = 0;
  error_file.value[0] = 0;
  error_file.origin.source = HH_SOURCE_DEFAULT;
  error_file.origin.refused = NULL;
  /* a setuid program must not append to any file its caller names */
  const char* s = env_lookup(error_file_name, true, &prefix);
  if (s == NULL) return;
  size_t len = strlen(s);
  if (len >= sizeof(error_file.value)) {
    error_file.origin.refused = s;
    error_file.origin.refused_prefix = prefix;
    return;
  }
  memcpy(error_file.value, s, len + 1);
  error_file.origin.source = (unsigned char)prefix_source(prefix);
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
    bool known = strlen(error_file_name) == len && strncmp(error_file_name, name, len) == 0;
    for (int i = 0; i < hh_option_count_ && !known; i++) {
      known = strlen(options[i].name) == len && strncmp(options[i].name, name, len) == 0;
    }
    if (!known) {
      char shown[64];
      size_t n = len + sizeof(prefix) - 1 < sizeof(shown) - 1 ? len + sizeof(prefix) - 1 : sizeof(shown) - 1;
      memcpy(shown, var, n);
      shown[n] = 0;
      hhi_print_error("hardheap: warning: unknown option %s ignored\n", shown);
    }
  }
}

void hhi_options_init(void) {
  for (int i = 0; i < hh_option_count_; i++) {
    if (options[i].name == NULL) hhi_fatal("option %d has no table entry", i);
    option_read_env(&options[i], &origins[i]);
  }
  error_file_read_env();
  if (HH_ERRORS_ALWAYS_SHOWN && options[hh_option_show_errors].value == 0) {
    options[hh_option_show_errors].value = 1;
    origins[hh_option_show_errors].source = HH_SOURCE_BUILD;
  }
}

/* printed unconditionally: a user who set an option wants to know */
void hhi_options_warn(void) {
  for (int i = 0; i < hh_option_count_; i++) {
    const hh_option_desc_t* desc = &options[i];
    hh_option_origin_t* origin = &origins[i];
    if (origin->refused == NULL) continue;
    hhi_print_error("hardheap: warning: ignoring %s%s=\"%s\": expected %s in [%ld, %ld]; using %ld\n",
                    env_prefixes[origin->refused_prefix], desc->name, origin->refused,
                    desc->is_bool ? "a boolean" : "an integer", desc->min, desc->max, desc->value);
    origin->refused = NULL;
  }
  if (error_file.origin.refused != NULL) {
    hhi_print_error("hardheap: warning: ignoring %s%s: the name is longer than %d bytes\n",
                    env_prefixes[error_file.origin.refused_prefix], error_file_name, HH_ERROR_FILE_NAME_MAX - 1);
    error_file.origin.refused = NULL;
  }
  warn_unknown_names();
  /* a user who asks for sampling from a build without it must not believe
   * it is happening */
  if (!HH_GUARDED && options[hh_option_guarded_sample_rate].value != 0) {
    hhi_print_error("hardheap: warning: GUARDED_SAMPLE_RATE=%ld ignored: this build has no sampled guarded "
                    "allocations; use libhardheap-secure (hardheap run --secure)\n",
                    options[hh_option_guarded_sample_rate].value);
  }
}

const char* hhi_option_error_file(void) {
  return error_file.value[0] != 0 ? error_file.value : NULL;
}

/* "default", "HARDHEAP_NAME", ...: where a value came from, for the listing */
static void source_text(char* buf, size_t size, unsigned char source, const char* name) {
  switch ((hh_option_source_t)source) {
    case HH_SOURCE_HARDHEAP: hhi_format(buf, size, "%s%s", env_prefixes[0], name); break;
    case HH_SOURCE_MIMALLOC: hhi_format(buf, size, "%s%s", env_prefixes[1], name); break;
    case HH_SOURCE_PROGRAM: hhi_format(buf, size, "hh_option_set"); break;
    case HH_SOURCE_BUILD: hhi_format(buf, size, "forced by the %s build", HH_BUILD_NAME); break;
    case HH_SOURCE_DEFAULT: hhi_format(buf, size, "default"); break;
  }
}

void hhi_options_print(void) {
  if (!hhi_option_enabled(hh_option_verbose)) return;
  char from[80];
  for (int i = 0; i < hh_option_count_; i++) {
    source_text(from, sizeof(from), origins[i].source, options[i].name);
    hhi_verbose_message("option %s=%ld (%s)", options[i].name, options[i].value, from);
  }
  source_text(from, sizeof(from), error_file.origin.source, error_file_name);
  if (error_file.value[0] == 0) {
    hhi_verbose_message("option %s unset (%s)", error_file_name, from);
  } else {
    const char* path = hhi_error_file_path();
    hhi_verbose_message("option %s=%s (%s): %s%s", error_file_name, error_file.value, from,
                        path != NULL ? "errors and warnings also go to " : "not open", path != NULL ? path : "");
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
  origins[option].source = HH_SOURCE_PROGRAM;
  return true;
}
