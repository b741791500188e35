/* hardheap: informational messages, warnings and fatal errors, with the
 * policies the options set. Heap misuse has its own table (misuse.c).
 * Informational messages go to stderr only; warnings and fatal errors also
 * to the error file (HARDHEAP_ERROR_FILE). */
#include "internal.h"

#include <stdlib.h>

#define HH_MESSAGE_MAX 512

/* prefix + message + newline, as one write so lines of threads do not mix;
 * an error line (warning, fatal) also goes to the error file. */
static void print_line(bool error, const char* prefix, const char* fmt, va_list args) {
  char buf[HH_MESSAGE_MAX];
  size_t n = hhi_format(buf, sizeof(buf) - 1, "%s", prefix);
  n += hhi_vformat(buf + n, sizeof(buf) - 1 - n, fmt, args);
  buf[n++] = '\n';
  if (error) hhi_write_error(buf, n);
  else hhi_write_stderr(buf, n);
}

void hhi_verbose_message(const char* fmt, ...) {
  if (!hhi_option_enabled(hh_option_verbose)) return;
  va_list args;
  va_start(args, fmt);
  print_line(false, "hardheap: ", fmt, args);
  va_end(args);
}

void hhi_warning_message(const char* fmt, ...) {
  if (!hhi_option_enabled(hh_option_show_errors) && !hhi_option_enabled(hh_option_verbose)) return;
  va_list args;
  va_start(args, fmt);
  print_line(true, "hardheap: warning: ", fmt, args);
  va_end(args);
}

void hhi_fatal(const char* fmt, ...) {
  va_list args;
  va_start(args, fmt);
  print_line(true, "hardheap: fatal: ", fmt, args);
  va_end(args);
  abort();
}

void hhi_assert_fail(const char* expr, const char* file, int line, const char* func) {
  hhi_fatal("assertion failed: %s at %s:%d (%s)", expr, file, line, func);
}
