/* hardheap: formatting on the stack, writing to stderr and to the error
 * file (HARDHEAP_ERROR_FILE).
 *
 * Everything here must work while the heap is corrupt, inside a signal
 * handler and before libc is initialised: no malloc, no stdio, no locale,
 * only system calls (write, and for the error file open, fcntl, fstat,
 * getpid, getcwd). */
#include "report.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
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

/* Write len bytes to fd, retrying short writes; false if it failed. */
static bool write_all(int fd, const char* s, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, s, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    s += n;
    len -= (size_t)n;
  }
  return true;
}

void hhi_write_stderr(const char* s, size_t len) {
  int saved_errno = errno;
  (void)write_all(STDERR_FILENO, s, len);
  errno = saved_errno;
}

static void vprint_fd(int fd, const char* fmt, va_list args) {
  char buf[HH_PRINT_MAX];
  size_t n = hhi_vformat(buf, sizeof(buf), fmt, args);
  int saved_errno = errno;
  (void)write_all(fd, buf, n);
  errno = saved_errno;
}

void hhi_print_fd(int fd, const char* fmt, ...) {
  va_list args;
  va_start(args, fmt);
  vprint_fd(fd, fmt, args);
  va_end(args);
}

void hhi_print(const char* fmt, ...) {
  va_list args;
  va_start(args, fmt);
  vprint_fd(STDERR_FILENO, fmt, args);
  va_end(args);
}

/* ---- the error file ---------------------------------------------------------------
 * Opened once at process init; every error line is written to stderr and
 * then, with one write(2) (O_APPEND: lines of threads and of forked
 * children do not mix), to the file. The descriptor is moved to
 * HH_ERROR_FD_MIN or above: never 0-2 (stderr closed at start must stay
 * closed, or the program's own stderr would land in the file) and out of
 * the way of programs that dup2 onto small numbers. Before each line the
 * descriptor is checked to still be the file opened (device and inode): a
 * program that closes every descriptor (some daemons do, after start) may
 * get that number back for a socket of its own, which must not receive our
 * lines. Then the file is opened again by name, once. */
#define HH_ERROR_FD_MIN 64

static _Atomic(int) error_fd = -1;
static _Atomic(unsigned long long) error_dev, error_ino;  /* identity of the file behind error_fd */
static _Atomic(bool) error_reopened;
static char error_path[HH_ERROR_FILE_NAME_MAX];          /* absolute; set before error_fd */

/* pattern with %p replaced by the PID and %% by %; false if it does not fit. */
static bool expand_name(char* out, size_t size, const char* pattern) {
  size_t n = 0;
  for (const char* p = pattern; *p != 0; p++) {
    char piece[24];
    size_t len = 1;
    piece[0] = *p;
    if (p[0] == '%' && p[1] == 'p') {
      len = hhi_format(piece, sizeof(piece), "%ld", (long)getpid());
      p++;
    } else if (p[0] == '%' && p[1] == '%') {
      p++;
    }
    if (n + len >= size) return false;
    memcpy(out + n, piece, len);
    n += len;
  }
  out[n] = 0;
  return n > 0;
}

/* Open path for appending, on a descriptor >= HH_ERROR_FD_MIN (or at
 * least above stderr); -1 with errno set on failure. */
static int open_high(const char* path) {
  int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0644);
  if (fd < 0) return -1;
  int high = fcntl(fd, F_DUPFD_CLOEXEC, HH_ERROR_FD_MIN);
  if (high < 0) high = fcntl(fd, F_DUPFD_CLOEXEC, STDERR_FILENO + 1);  /* RLIMIT_NOFILE below 64 */
  if (high >= 0) {
    close(fd);
    return high;
  }
  if (fd > STDERR_FILENO) return fd;
  int saved_errno = errno;
  close(fd);
  errno = saved_errno;
  return -1;
}

static bool same_file(const struct stat* st) {
  return (unsigned long long)st->st_dev == atomic_load_explicit(&error_dev, memory_order_relaxed) &&
         (unsigned long long)st->st_ino == atomic_load_explicit(&error_ino, memory_order_relaxed);
}

/* Record fd as the error file's descriptor; false if fstat fails. */
static bool publish(int fd) {
  struct stat st;
  if (fstat(fd, &st) != 0) return false;
  atomic_store_explicit(&error_dev, (unsigned long long)st.st_dev, memory_order_relaxed);
  atomic_store_explicit(&error_ino, (unsigned long long)st.st_ino, memory_order_relaxed);
  atomic_store_explicit(&error_fd, fd, memory_order_release);
  return true;
}

/* The symbolic name of an errno value (no allocation, no locale, unlike
 * strerror); NULL if the C library cannot tell. */
static const char* errno_name(int err) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
  return strerrorname_np(err);
#else
  (void)err;
  return NULL;
#endif
}

void hhi_error_file_open(const char* pattern) {
  if (pattern == NULL || *pattern == 0 || atomic_load_explicit(&error_fd, memory_order_relaxed) >= 0) return;
  int saved_errno = errno;
  char name[HH_ERROR_FILE_NAME_MAX];
  int err = ENAMETOOLONG;
  if (expand_name(name, sizeof(name), pattern)) {
    /* absolute, so that opening it again after a chdir finds the same file */
    size_t n = 0;
    if (name[0] != '/') {
      if (getcwd(error_path, sizeof(error_path)) != NULL) {
        n = strlen(error_path);
        if (n > 0 && error_path[n - 1] != '/' && n + 1 < sizeof(error_path)) error_path[n++] = '/';
      }
    }
    size_t len = strlen(name);
    if (n + len < sizeof(error_path)) {
      memcpy(error_path + n, name, len + 1);
      int fd = open_high(error_path);
      if (fd >= 0 && publish(fd)) {
        errno = saved_errno;
        return;
      }
      err = errno;
      if (fd >= 0) close(fd);
    }
  } else {
    hhi_format(name, sizeof(name), "%s", pattern);
  }
  error_path[0] = 0;
  /* printed unconditionally, like the option warnings: the user asked for the file */
  hhi_print("hardheap: warning: cannot open the error file %s (errno %d%s%s): errors go to stderr only\n", name, err,
            errno_name(err) != NULL ? ", " : "", errno_name(err) != NULL ? errno_name(err) : "");
  errno = saved_errno;
}

const char* hhi_error_file_path(void) {
  return atomic_load_explicit(&error_fd, memory_order_acquire) >= 0 ? error_path : NULL;
}

/* The error file's descriptor if it is still the file, else (once) the
 * file opened again by name; -1 if neither. */
static int error_file_fd(void) {
  int fd = atomic_load_explicit(&error_fd, memory_order_acquire);
  if (fd < 0) return -1;
  struct stat st;
  if (fstat(fd, &st) == 0 && same_file(&st)) return fd;
  /* closed, or the number is someone else's now: never write to it again */
  if (atomic_exchange_explicit(&error_reopened, true, memory_order_acq_rel)) return -1;
  atomic_store_explicit(&error_fd, -1, memory_order_relaxed);
  int again = open_high(error_path);
  if (again < 0) return -1;
  if (!publish(again)) {
    close(again);
    return -1;
  }
  return again;
}

void hhi_write_error(const char* s, size_t len) {
  int saved_errno = errno;
  bool on_stderr = write_all(STDERR_FILENO, s, len);
  int fd = error_file_fd();
  if (fd >= 0) {
    /* stderr is the file itself (2>>file): the line is there already */
    struct stat st;
    if (!(on_stderr && fstat(STDERR_FILENO, &st) == 0 && same_file(&st))) (void)write_all(fd, s, len);
  }
  errno = saved_errno;
}

void hhi_print_error(const char* fmt, ...) {
  char buf[HH_PRINT_MAX];
  va_list args;
  va_start(args, fmt);
  size_t n = hhi_vformat(buf, sizeof(buf), fmt, args);
  va_end(args);
  hhi_write_error(buf, n);
}
