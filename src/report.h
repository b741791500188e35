/* hardheap: messages and misuse reports, written without allocating.
 *
 * Everything here must work while the heap is corrupt, inside a signal
 * handler and before libc is initialised: no malloc, no stdio, no locale.
 * format.c formats and writes; report.c applies the policies (verbose,
 * warnings); misuse.c holds the table of misuse kinds and their messages. */
#ifndef HH_REPORT_H
#define HH_REPORT_H

#include "hardheap.h"
#include "types.h"

#include <stdarg.h>

/* ---- format.c -----------------------------------------------------------------
 * A tiny vsnprintf: %s %c %d %u %x %p %% with l, ll and z, a width and the
 * flags - and 0. Returns the
 * length written (at most size - 1, always NUL-terminated when size > 0). */
size_t hhi_vformat(char* buf, size_t size, const char* fmt, va_list args);
size_t hhi_format(char* buf, size_t size, const char* fmt, ...) hhi_attr_printf(3, 4);
/* Write len bytes to stderr (retrying short writes), keeping errno. For
 * informational output: verbose messages, statistics. */
void hhi_write_stderr(const char* s, size_t len);
/* A formatted message to stderr, no prefix, no newline added. */
void hhi_print(const char* fmt, ...) hhi_attr_printf(1, 2);
/* The same to fd (statistics reports). */
void hhi_print_fd(int fd, const char* fmt, ...) hhi_attr_printf(2, 3);
/* The same for errors, warnings and the lines that follow a report (call
 * stacks, guarded histories): written to stderr and to the error file. s
 * is one or more whole lines; it is written with one write(2) per call. */
void hhi_write_error(const char* s, size_t len);
void hhi_print_error(const char* fmt, ...) hhi_attr_printf(1, 2);
/* The error file (HARDHEAP_ERROR_FILE): open pattern (%p = the PID, %% =
 * %) for appending, once, at process init; on failure print one warning
 * and go on without it. NULL or "" does nothing. */
#define HH_ERROR_FILE_NAME_MAX 4096
void hhi_error_file_open(const char* pattern);
/* The absolute name of the open error file, or NULL. */
const char* hhi_error_file_path(void);

/* ---- report.c -------------------------------------------------------------------*/
/* "hardheap: <fmt>" when VERBOSE is on. */
void hhi_verbose_message(const char* fmt, ...) hhi_attr_printf(1, 2);
/* "hardheap: warning: <fmt>" when SHOW_ERRORS or VERBOSE is on. */
void hhi_warning_message(const char* fmt, ...) hhi_attr_printf(1, 2);
/* Unrecoverable: always printed, then abort. */
_Noreturn void hhi_fatal(const char* fmt, ...) hhi_attr_printf(1, 2);
_Noreturn void hhi_assert_fail(const char* expr, const char* file, int line, const char* func);

/* ---- misuse.c -------------------------------------------------------------------
 * Report one heap misuse: facts.kind and whatever facts are known (zero =
 * unknown); op names the call it was caught in. The installed handler sees
 * it first; unless it handles it, the line is printed (SHOW_ERRORS,
 * MAX_ERRORS) and the process aborts when ABORT_ON_MISUSE is on (the secure
 * build's default). Returns only when the program goes on: the caller then
 * takes its documented safe action. */
hh_cold void hhi_misuse(hh_op_t op, hh_misuse_info_t facts);
/* A block that is not handed out, named by the call that found it:
 * double free, realloc or usable_size of a freed block. */
hh_misuse_t hhi_misuse_freed_kind(hh_op_t op);
/* Kinds reported from the fault handler: the process dies of the fault. */
static inline bool hhi_misuse_is_fault(hh_misuse_t kind) {
  return kind >= HH_MISUSE_GUARDED_OVERFLOW && kind <= HH_MISUSE_GUARDED_WILD;
}
/* The same, and when the line is printed, more(more_arg) prints what
 * follows it (a guarded block's history). */
typedef void(hhi_misuse_more_fun)(const void* arg);
hh_cold void hhi_misuse_more(hh_op_t op, hh_misuse_info_t facts, hhi_misuse_more_fun* more, const void* more_arg);
/* The common case: a misuse about pointer p on page (may be NULL). */
hh_cold void hhi_misuse_on_page(hh_misuse_t kind, hh_op_t op, const void* p, const hh_page_t* page);

#endif /* HH_REPORT_H */
