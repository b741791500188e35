/* hardheap: messages to stderr, formatted on the stack.
 *
 * Everything here must work while the heap is corrupt, inside a signal
 * handler and before libc is initialised: no malloc, no stdio, no locale,
 * only write(2) and abort(). */
#include "internal.h"

#include <stdlib.h>
#include <unistd.h>

#define HH_MESSAGE_MAX 512

typedef struct hh_outbuf_s {
  char* buf;
  size_t size;  /* capacity incl. the NUL */
  size_t len;   /* characters written so far (excluding the NUL) */
} hh_outbuf_t;

static void out_char(hh_outbuf_t* out, char c) {
  if (out->len + 1 < out->size) out->buf[out->len++] = c;
}

static void out_str(hh_outbuf_t* out, const char* s) {
  if (s == NULL) s = "(null)";
  while (*s != 0) out_char(out, *s++);
}

static void out_unsigned(hh_outbuf_t* out, unsigned long long v, unsigned base, bool prefix) {
  char digits[24];
  size_t n = 0;
  do {
    unsigned d = (unsigned)(v % base);
    digits[n++] = (char)(d < 10 ? '0' + d : 'a' + d - 10);
    v /= base;
  } while (v != 0);
  if (prefix) out_str(out, "0x");
  while (n > 0) out_char(out, digits[--n]);
}

static void out_signed(hh_outbuf_t* out, long long v) {
  if (v < 0) {
    out_char(out, '-');
    out_unsigned(out, (unsigned long long)(-(v + 1)) + 1, 10, false);
  } else {
    out_unsigned(out, (unsigned long long)v, 10, false);
  }
}

size_t hh_vformat(char* buf, size_t size, const char* fmt, va_list args) {
  hh_outbuf_t out = {buf, size, 0};
  if (size == 0) return 0;
  for (const char* f = fmt; *f != 0; f++) {
    if (*f != '%') {
      out_char(&out, *f);
      continue;
    }
    f++;
    int longs = 0;  /* count of 'l'; 'z' is treated as size_t */
    bool is_size = false;
    while (*f == 'l' || *f == 'z') {
      if (*f == 'z') is_size = true; else longs++;
      f++;
    }
    switch (*f) {
      case 's': out_str(&out, va_arg(args, const char*)); break;
      case 'c': out_char(&out, (char)va_arg(args, int)); break;
      case 'p': out_unsigned(&out, (uintptr_t)va_arg(args, void*), 16, true); break;
      case '%': out_char(&out, '%'); break;
      case 'd':
        if (is_size) out_signed(&out, (long long)va_arg(args, ptrdiff_t));
        else if (longs >= 2) out_signed(&out, va_arg(args, long long));
        else if (longs == 1) out_signed(&out, va_arg(args, long));
        else out_signed(&out, va_arg(args, int));
        break;
      case 'u':
      case 'x': {
        unsigned base = (*f == 'x') ? 16 : 10;
        unsigned long long v;
        if (is_size) v = va_arg(args, size_t);
        else if (longs >= 2) v = va_arg(args, unsigned long long);
        else if (longs == 1) v = va_arg(args, unsigned long);
        else v = va_arg(args, unsigned int);
        out_unsigned(&out, v, base, false);
        break;
      }
      case 0: f--; break;  /* lone '%' at the end */
      default: out_char(&out, '%'); out_char(&out, *f); break;
    }
  }
  out.buf[out.len] = 0;
  return out.len;
}

size_t hh_format(char* buf, size_t size, const char* fmt, ...) {
  va_list args;
  va_start(args, fmt);
  size_t n = hh_vformat(buf, size, fmt, args);
  va_end(args);
  return n;
}

static void write_all(const char* s, size_t len) {
  while (len > 0) {
    ssize_t n = write(STDERR_FILENO, s, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;
    }
    s += n;
    len -= (size_t)n;
  }
}

/* prefix + message + newline, as one write so lines of threads do not mix. */
static void print_line(const char* prefix, const char* fmt, va_list args) {
  char buf[HH_MESSAGE_MAX];
  int saved_errno = errno;
  size_t n = hh_format(buf, sizeof(buf) - 1, "%s", prefix);
  n += hh_vformat(buf + n, sizeof(buf) - 1 - n, fmt, args);
  buf[n++] = '\n';
  write_all(buf, n);
  errno = saved_errno;
}

void hh_print(const char* fmt, ...) {
  char buf[HH_MESSAGE_MAX];
  int saved_errno = errno;
  va_list args;
  va_start(args, fmt);
  size_t n = hh_vformat(buf, sizeof(buf), fmt, args);
  va_end(args);
  write_all(buf, n);
  errno = saved_errno;
}

void hh_verbose_message(const char* fmt, ...) {
  if (!hh_option_is_enabled(hh_option_verbose)) return;
  va_list args;
  va_start(args, fmt);
  print_line("hardheap: ", fmt, args);
  va_end(args);
}

void hh_warning_message(const char* fmt, ...) {
  if (!hh_option_is_enabled(hh_option_show_errors) && !hh_option_is_enabled(hh_option_verbose)) return;
  va_list args;
  va_start(args, fmt);
  print_line("hardheap: warning: ", fmt, args);
  va_end(args);
}

static _Atomic(long) errors_reported;

void hh_error_message(const char* fmt, ...) {
  if (HARDHEAP_SECURE || hh_option_is_enabled(hh_option_show_errors) || hh_option_is_enabled(hh_option_verbose)) {
    long max = hh_option_get_fast(hh_option_max_errors);
    long n = atomic_fetch_add_explicit(&errors_reported, 1, memory_order_relaxed);
    if (HARDHEAP_SECURE || max < 0 || n < max) {
      va_list args;
      va_start(args, fmt);
      print_line("hardheap: error: ", fmt, args);
      va_end(args);
    } else if (n == max) {
      hh_print("hardheap: error: further errors are not shown (HARDHEAP_MAX_ERRORS=%ld)\n", max);
    }
  }
  if (HARDHEAP_SECURE) abort();
}

void hh_fatal(const char* fmt, ...) {
  va_list args;
  va_start(args, fmt);
  print_line("hardheap: fatal: ", fmt, args);
  va_end(args);
  abort();
}

void hh_assert_fail(const char* expr, const char* file, int line, const char* func) {
  hh_fatal("assertion failed: %s at %s:%d (%s)", expr, file, line, func);
}
