/* hardheap: formatting on the stack and writing to stderr.
 *
 * Everything here must work while the heap is corrupt, inside a signal
 * handler and before libc is initialised: no malloc, no stdio, no locale,
 * only write(2). */
#include "report.h"

#include <errno.h>
#include <unistd.h>

#define HH_PRINT_MAX 512

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

/* Pad the conversion written since start to width: spaces (or zeros) in
 * front, or spaces after it when left. */
static void out_pad(hh_outbuf_t* out, size_t start, size_t width, bool left, bool zeros) {
  size_t len = out->len - start;
  if (len >= width) return;
  size_t pad = width - len;
  if (left) {
    while (pad-- > 0) out_char(out, ' ');
    return;
  }
  if (out->len + pad + 1 > out->size) pad = out->size - 1 - out->len;  /* truncated anyway */
  for (size_t i = out->len; i-- > start;) out->buf[i + pad] = out->buf[i];
  for (size_t i = 0; i < pad; i++) out->buf[start + i] = zeros ? '0' : ' ';
  out->len += pad;
}

size_t hhi_vformat(char* buf, size_t size, const char* fmt, va_list args) {
  hh_outbuf_t out = {buf, size, 0};
  if (size == 0) return 0;
  for (const char* f = fmt; *f != 0; f++) {
    if (*f != '%') {
      out_char(&out, *f);
      continue;
    }
    f++;
    bool left = false, zeros = false;
    for (; *f == '-' || *f == '0'; f++) {
      if (*f == '-') left = true; else zeros = true;
    }
    size_t width = 0;
    for (; *f >= '0' && *f <= '9'; f++) width = width * 10 + (size_t)(*f - '0');
    size_t start = out.len;
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
    if (width != 0) out_pad(&out, start, width, left, zeros && !left);
  }
  out.buf[out.len] = 0;
  return out.len;
}

size_t hhi_format(char* buf, size_t size, const char* fmt, ...) {
  va_list args;
  va_start(args, fmt);
  size_t n = hhi_vformat(buf, size, fmt, args);
  va_end(args);
  return n;
}

static void write_fd(int fd, const char* s, size_t len) {
  int saved_errno = errno;
  while (len > 0) {
    ssize_t n = write(fd, s, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    s += n;
    len -= (size_t)n;
  }
  errno = saved_errno;
}

void hhi_write_stderr(const char* s, size_t len) {
  write_fd(STDERR_FILENO, s, len);
}

void hhi_print_fd(int fd, const char* fmt, ...) {
  char buf[HH_PRINT_MAX];
  va_list args;
  va_start(args, fmt);
  size_t n = hhi_vformat(buf, sizeof(buf), fmt, args);
  va_end(args);
  write_fd(fd, buf, n);
}

void hhi_print(const char* fmt, ...) {
  char buf[HH_PRINT_MAX];
  va_list args;
  va_start(args, fmt);
  size_t n = hhi_vformat(buf, sizeof(buf), fmt, args);
  va_end(args);
  hhi_write_stderr(buf, n);
}
