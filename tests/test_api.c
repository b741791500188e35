/* Unit tests for the public hardheap API (include/hardheap.h).
 *
 * Every test runs in its own forked child (Check's normal fork mode), so a
 * crash or abort inside the allocator is reported as a failure of that test
 * only. Hot loops use REQUIRE (which only talks to Check on failure) instead
 * of ck_assert, because every passing ck_assert records a mark point.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#define _DEFAULT_SOURCE /* syscall() */

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include "hardheap.h"
#include "test_util.h"

#define KiB ((size_t)1024)
#define MiB ((size_t)1024 * 1024)

/* Fail the current test with a formatted message when cond is false.
 * Cheap when cond holds (no Check call at all). */
#define REQUIRE(cond, ...)                                                  \
  do {                                                                      \
    if (!(cond)) require_failed(__FILE__, __LINE__, #cond, __VA_ARGS__);    \
  } while (0)

static void require_failed(const char* file, int line, const char* cond, const char* fmt, ...)
    __attribute__((noreturn, format(printf, 4, 5)));

static void require_failed(const char* file, int line, const char* cond, const char* fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  _ck_assert_failed(file, line, "Failed", "`%s` is false: %s", cond, msg);
}

#define ERRNO_SENTINEL 4242

/* Hide constant sizes from the compiler so that it neither warns about
 * obviously impossible requests (-Walloc-size-larger-than) nor folds them. */
static size_t opaque(size_t x) {
  volatile size_t v = x;
  return v;
}

static bool is_aligned(const void* p, size_t alignment) {
  return ((uintptr_t)p & (alignment - 1)) == 0;
}

static size_t page_size(void) {
  long ps = sysconf(_SC_PAGESIZE);
  return ps > 0 ? (size_t)ps : 4096;
}

static size_t round_up(size_t n, size_t a) { return (n + a - 1) / a * a; }

/* A pattern that is not periodic with a period of 256, so a shifted copy is
 * detected as well as a corrupted one. */
static inline uint8_t pat(size_t i, unsigned seed) {
  return (uint8_t)((i + (i >> 8) * 7 + (i >> 16) * 13) ^ (seed * 29u + 11u));
}

static void fill(void* p, size_t n, unsigned seed) {
  uint8_t* b = p;
  for (size_t i = 0; i < n; i++) b[i] = pat(i, seed);
}

/* Index of the first byte that does not match the pattern, or SIZE_MAX. */
static size_t check_fill(const void* p, size_t n, unsigned seed) {
  const uint8_t* b = p;
  for (size_t i = 0; i < n; i++)
    if (b[i] != pat(i, seed)) return i;
  return SIZE_MAX;
}

static const uint8_t zero_page[4096];

/* Index of the first non-zero byte, or SIZE_MAX. */
static size_t first_nonzero(const void* p, size_t n) {
  const uint8_t* b = p;
  size_t off = 0;
  while (off < n) {
    size_t chunk = n - off < sizeof zero_page ? n - off : sizeof zero_page;
    if (memcmp(b + off, zero_page, chunk) != 0) {
      for (size_t i = 0; i < chunk; i++)
        if (b[off + i] != 0) return off + i;
    }
    off += chunk;
  }
  return SIZE_MAX;
}

static hh_stats_t stats_now(void) {
  hh_stats_t s;
  memset(&s, 0xFF, sizeof s);
  hh_stats_get(&s);
  return s;
}

/* ------------------------------------------------------------------------ */

START_TEST(test_version) {
  ck_assert_int_eq(hh_version(), HH_VERSION);
  ck_assert_int_eq(HH_VERSION, HH_VERSION_MAJOR * 10000 + HH_VERSION_MINOR * 100 + HH_VERSION_PATCH);
}
END_TEST

/* ---- size classes ------------------------------------------------------- */

START_TEST(test_good_size_properties) {
  /* Monotonic, never smaller than the request, and internal fragmentation
   * of at most 12.5% for 128 <= n <= 2 MiB. Pure computation, no memory. */
  size_t prev = hh_good_size(0);
  for (size_t n = 0; n <= 4 * MiB; n++) {
    size_t g = hh_good_size(n);
    REQUIRE(g >= n, "good_size(%zu) = %zu", n, g);
    REQUIRE(g >= prev, "good_size not monotonic: good_size(%zu) = %zu < good_size(%zu) = %zu",
            n, g, n - 1, prev);
    if (n >= 128 && n <= 2 * MiB)
      REQUIRE((g - n) * 8 <= n, "fragmentation of good_size(%zu) = %zu is above 12.5%%", n, g);
    prev = g;
  }
  for (size_t n = 4 * MiB; n <= 80 * MiB; n += 4093) {
    size_t g = hh_good_size(n);
    REQUIRE(g >= n, "good_size(%zu) = %zu", n, g);
    REQUIRE(g >= prev, "good_size not monotonic at %zu: %zu < %zu", n, g, prev);
    prev = g;
  }
  /* Sizes that can never be allocated come back unchanged. */
  ck_assert_uint_eq(hh_good_size(SIZE_MAX), SIZE_MAX);
  ck_assert_uint_eq(hh_good_size((size_t)PTRDIFF_MAX + 1), (size_t)PTRDIFF_MAX + 1);
}
END_TEST

/* From secure level 2 a block's usable size is what was asked for. */
static bool canaries(void) {
#ifdef HH_TEST_TRACKING
  return false;  /* a tracking build leaves them out */
#else
  return hh_secure_level() >= 2;
#endif
}

static void check_class_alloc(size_t n, bool write_all) {
  uint8_t* p = hh_malloc(n);
  REQUIRE(p != NULL, "hh_malloc(%zu) failed", n);
  REQUIRE(is_aligned(p, HH_MIN_ALIGNMENT), "hh_malloc(%zu) = %p", n, (void*)p);
  size_t u = hh_usable_size(p);
  size_t g = hh_good_size(n);
  REQUIRE(u >= n, "usable_size(malloc(%zu)) = %zu", n, u);
  if (canaries()) {
    /* exactly what was asked; good_size(n) gets a block as large */
    REQUIRE(u == n, "usable_size(malloc(%zu)) = %zu with canaries", n, u);
    REQUIRE(g >= n, "good_size(%zu) = %zu", n, g);
  } else {
    REQUIRE(u == g, "usable_size(malloc(%zu)) = %zu but good_size(%zu) = %zu", n, u, n, g);
  }
  if (u > 0) {
    if (write_all) {
      memset(p, 0xC3, u);
    } else {
      p[0] = 1;
      p[u / 2] = 2;
      p[u - 1] = 3;
    }
  }
  hh_free(p);
}

START_TEST(test_size_classes_small) {
  for (size_t n = 0; n <= 4096; n++) check_class_alloc(n, true);
  for (size_t n = 4096; n <= 70000; n += 7) check_class_alloc(n, true);
}
END_TEST

START_TEST(test_size_classes_medium) {
  /* Coarse sweep up to 2 MiB plus every power of two +-1. */
  for (size_t n = 70000; n <= 2 * MiB; n += 4099) check_class_alloc(n, false);
  for (size_t k = 4; k <= 21; k++) {
    size_t b = (size_t)1 << k;
    check_class_alloc(b - 1, true);
    check_class_alloc(b, true);
    if (b + 1 <= 2 * MiB) check_class_alloc(b + 1, true);
  }
  check_class_alloc(1 * MiB, true);
  check_class_alloc(2 * MiB, true);
}
END_TEST

START_TEST(test_size_classes_large) {
  const size_t sizes[] = {2 * MiB + 1, 3 * MiB, 5 * MiB, 5 * MiB + 12345, 64 * MiB};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    size_t n = sizes[i];
    size_t g = hh_good_size(n);
    REQUIRE(g >= n, "good_size(%zu) = %zu", n, g);
    uint8_t* p = hh_malloc(n);
    REQUIRE(p != NULL, "hh_malloc(%zu) failed", n);
    REQUIRE(is_aligned(p, HH_MIN_ALIGNMENT), "hh_malloc(%zu) = %p", n, (void*)p);
    size_t u = hh_usable_size(p);
    REQUIRE(u >= n, "usable_size(malloc(%zu)) = %zu", n, u);
    /* Callers may grow a buffer to good_size(n) without reallocating. */
    REQUIRE(canaries() ? u == n : u >= g, "usable_size(malloc(%zu)) = %zu, good_size = %zu", n, u, g);
    memset(p, 0x77, u);
    REQUIRE(p[0] == 0x77 && p[u - 1] == 0x77, "large block of %zu bytes not writable", n);
    hh_free(p);
  }
}
END_TEST

/* ---- minimum alignment, zero-size and NULL ------------------------------ */

START_TEST(test_min_alignment_all_functions) {
  size_t sizes[200];
  size_t ns = 0;
  for (size_t n = 0; n <= 130; n++) sizes[ns++] = n;
  const size_t more[] = {255, 256, 257, 1000, 1024, 1500, 4095, 4096, 4097, 10000, 65536,
                         70000, 200000, 1 * MiB, 2 * MiB, 3 * MiB};
  for (size_t i = 0; i < sizeof more / sizeof more[0]; i++) sizes[ns++] = more[i];

  for (size_t i = 0; i < ns; i++) {
    size_t n = sizes[i];
    void* ps[12];
    const char* names[12];
    size_t k = 0;
    names[k] = "hh_malloc"; ps[k++] = hh_malloc(n);
    names[k] = "hh_zalloc"; ps[k++] = hh_zalloc(n);
    names[k] = "hh_calloc"; ps[k++] = hh_calloc(n, 1);
    names[k] = "hh_realloc(NULL)"; ps[k++] = hh_realloc(NULL, n);
    names[k] = "hh_reallocarray(NULL)"; ps[k++] = hh_reallocarray(NULL, 1, n);
    names[k] = "hh_malloc_aligned(8)"; ps[k++] = hh_malloc_aligned(n, 8);
    names[k] = "hh_zalloc_aligned(1)"; ps[k++] = hh_zalloc_aligned(n, 1);
    names[k] = "hh_aligned_alloc(2)"; ps[k++] = hh_aligned_alloc(2, n);
    names[k] = "hh_memalign(4)"; ps[k++] = hh_memalign(4, n);
    if (n > 0) { /* hh_realloc(p, 0) frees and returns NULL by design */
      void* q = hh_malloc(n / 2);
      REQUIRE(q != NULL, "hh_malloc(%zu) failed", n / 2);
      names[k] = "hh_realloc(grow)"; ps[k] = hh_realloc(q, n);
      REQUIRE(ps[k] != NULL, "hh_realloc(%zu -> %zu) failed", n / 2, n);
      k++;
      q = hh_malloc(1);
      REQUIRE(q != NULL, "hh_malloc(1) failed");
      names[k] = "hh_reallocf"; ps[k++] = hh_reallocf(q, n);
    }
    for (size_t j = 0; j < k; j++) {
      REQUIRE(ps[j] != NULL, "%s with size %zu returned NULL", names[j], n);
      REQUIRE(is_aligned(ps[j], HH_MIN_ALIGNMENT), "%s with size %zu returned %p", names[j], n,
              ps[j]);
      REQUIRE(hh_usable_size(ps[j]) >= n, "%s with size %zu: usable_size %zu", names[j], n,
              hh_usable_size(ps[j]));
    }
    for (size_t j = 0; j < k; j++) hh_free(ps[j]);
  }

  /* Strings. */
  char buf[300];
  for (size_t len = 0; len < sizeof buf - 1; len += 13) {
    memset(buf, 'x', len);
    buf[len] = '\0';
    char* s = hh_strdup(buf);
    char* t = hh_strndup(buf, len / 2);
    ck_assert_ptr_nonnull(s);
    ck_assert_ptr_nonnull(t);
    REQUIRE(is_aligned(s, HH_MIN_ALIGNMENT), "hh_strdup(len %zu) = %p", len, (void*)s);
    REQUIRE(is_aligned(t, HH_MIN_ALIGNMENT), "hh_strndup(len %zu) = %p", len, (void*)t);
    hh_free(s);
    hh_free(t);
  }
}
END_TEST

static int cmp_ptr(const void* a, const void* b) {
  uintptr_t x = (uintptr_t) * (void* const*)a;
  uintptr_t y = (uintptr_t) * (void* const*)b;
  return x < y ? -1 : x > y;
}

START_TEST(test_zero_size_unique) {
  enum { N = 1000 };
  void** ps = hh_malloc(sizeof(void*) * 7 * N);
  ck_assert_ptr_nonnull(ps);
  size_t k = 0;
  for (size_t i = 0; i < N; i++) {
    ps[k++] = hh_malloc(0);
    ps[k++] = hh_zalloc(0);
    ps[k++] = hh_calloc(0, 16);
    ps[k++] = hh_calloc(16, 0);
    ps[k++] = hh_malloc_aligned(0, 64);
    ps[k++] = hh_aligned_alloc(256, 0);
    ps[k++] = hh_realloc(NULL, 0);
  }
  for (size_t i = 0; i < k; i++) {
    REQUIRE(ps[i] != NULL, "zero-size allocation #%zu (kind %zu) returned NULL", i, i % 7);
    REQUIRE(is_aligned(ps[i], HH_MIN_ALIGNMENT), "zero-size allocation #%zu = %p", i, ps[i]);
  }
  REQUIRE(is_aligned(ps[4], 64), "hh_malloc_aligned(0, 64) = %p", ps[4]);
  REQUIRE(is_aligned(ps[5], 256), "hh_aligned_alloc(256, 0) = %p", ps[5]);
  qsort(ps, k, sizeof ps[0], cmp_ptr);
  for (size_t i = 1; i < k; i++)
    REQUIRE(ps[i] != ps[i - 1], "zero-size allocations returned the same pointer %p twice", ps[i]);
  for (size_t i = 0; i < k; i++) hh_free(ps[i]);
  hh_free(ps);

  /* The simple case, spelled out. */
  void* a = hh_malloc(0);
  void* b = hh_malloc(0);
  ck_assert_ptr_nonnull(a);
  ck_assert_ptr_nonnull(b);
  ck_assert_ptr_ne(a, b);
  hh_free(a);
  hh_free(b);
}
END_TEST

START_TEST(test_free_null) {
  hh_free(NULL);
  errno = ERRNO_SENTINEL;
  hh_free(NULL);
  ck_assert_int_eq(errno, ERRNO_SENTINEL);
  ck_assert_uint_eq(hh_usable_size(NULL), 0);
  void* p = hh_malloc(32);
  ck_assert_ptr_nonnull(p);
  hh_free(NULL);
  hh_free(p);
}
END_TEST

/* ---- aligned allocation ------------------------------------------------- */

enum {
  AF_MALLOC_ALIGNED,
  AF_ZALLOC_ALIGNED,
  AF_CALLOC_ALIGNED,
  AF_REALLOC_ALIGNED,
  AF_ALIGNED_ALLOC,
  AF_MEMALIGN,
  AF_POSIX_MEMALIGN,
  AF_COUNT_
};

static const char* const af_names[AF_COUNT_] = {
    "hh_malloc_aligned", "hh_zalloc_aligned", "hh_calloc_aligned", "hh_realloc_aligned",
    "hh_aligned_alloc",  "hh_memalign",       "hh_posix_memalign"};

static const size_t matrix_sizes[] = {0, 1, 7, 16, 100, 4096, 70000, 3 * 1024 * 1024};

/* Allocate with function f; *err receives posix_memalign's return value. */
static void* aligned_call(int f, size_t size, size_t align, int* err) {
  void* p = NULL;
  *err = 0;
  switch (f) {
    case AF_MALLOC_ALIGNED: return hh_malloc_aligned(size, align);
    case AF_ZALLOC_ALIGNED: return hh_zalloc_aligned(size, align);
    case AF_CALLOC_ALIGNED: return hh_calloc_aligned(size, 1, align);
    case AF_REALLOC_ALIGNED: return hh_realloc_aligned(NULL, size, align);
    case AF_ALIGNED_ALLOC: return hh_aligned_alloc(align, size);
    case AF_MEMALIGN: return hh_memalign(align, size);
    case AF_POSIX_MEMALIGN:
      *err = hh_posix_memalign(&p, align, size);
      return *err == 0 ? p : NULL;
    default: return NULL;
  }
}

static void check_aligned_block(int f, uint8_t* p, size_t size, size_t align) {
  const char* name = af_names[f];
  size_t want = align > HH_MIN_ALIGNMENT ? align : HH_MIN_ALIGNMENT;
  REQUIRE(p != NULL, "%s(size %zu, alignment %zu) returned NULL", name, size, align);
  REQUIRE(is_aligned(p, want), "%s(size %zu, alignment %zu) = %p is misaligned", name, size,
          align, (void*)p);
  size_t u = hh_usable_size(p);
  REQUIRE(u >= size, "%s(size %zu, alignment %zu): usable_size %zu", name, size, align, u);
  if (f == AF_ZALLOC_ALIGNED || f == AF_CALLOC_ALIGNED) {
    size_t nz = first_nonzero(p, size);
    REQUIRE(nz == SIZE_MAX, "%s(size %zu, alignment %zu): byte %zu is not zero", name, size,
            align, nz);
  }
  if (size > 0) {
    memset(p, 0xA5, size);
    REQUIRE(p[0] == 0xA5 && p[size / 2] == 0xA5 && p[size - 1] == 0xA5,
            "%s(size %zu, alignment %zu): memory not writable", name, size, align);
  }
}

static void run_aligned_case(int f, size_t size, size_t align) {
  int err;
  uint8_t* p = aligned_call(f, size, align, &err);
  if (f == AF_POSIX_MEMALIGN && align < sizeof(void*)) {
    /* Not a multiple of sizeof(void*): EINVAL, as POSIX requires. */
    REQUIRE(err == EINVAL, "hh_posix_memalign(alignment %zu, size %zu) returned %d", align,
            size, err);
    return;
  }
  if (f == AF_POSIX_MEMALIGN) REQUIRE(err == 0, "hh_posix_memalign(alignment %zu, size %zu) returned %d", align, size, err);
  check_aligned_block(f, p, size, align);
  if (f == AF_REALLOC_ALIGNED) {
    /* Grow the block, keeping alignment and content. */
    size_t n2 = size + size / 2 + 33;
    fill(p, size, (unsigned)align);
    uint8_t* q = hh_realloc_aligned(p, n2, align);
    REQUIRE(q != NULL, "hh_realloc_aligned(%zu -> %zu, alignment %zu) failed", size, n2, align);
    size_t want = align > HH_MIN_ALIGNMENT ? align : HH_MIN_ALIGNMENT;
    REQUIRE(is_aligned(q, want), "hh_realloc_aligned(%zu -> %zu, alignment %zu) = %p", size, n2,
            align, (void*)q);
    REQUIRE(hh_usable_size(q) >= n2, "hh_realloc_aligned(-> %zu): usable_size %zu", n2,
            hh_usable_size(q));
    size_t bad = check_fill(q, size, (unsigned)align);
    REQUIRE(bad == SIZE_MAX, "hh_realloc_aligned(%zu -> %zu, alignment %zu) lost byte %zu",
            size, n2, align, bad);
    memset(q, 0x11, n2);
    p = q;
  }
  hh_free(p);
}

/* Loop test: _i selects the allocation function. */
START_TEST(test_aligned_matrix) {
  const int f = _i;
  for (size_t a = 1; a <= 8 * MiB; a *= 2)
    for (size_t s = 0; s < sizeof matrix_sizes / sizeof matrix_sizes[0]; s++)
      run_aligned_case(f, matrix_sizes[s], a);
  /* Very large alignments for a couple of small sizes. */
  const size_t small[] = {1, 100};
  for (size_t a = 16 * MiB; a <= 32 * MiB; a *= 2)
    for (size_t s = 0; s < 2; s++) run_aligned_case(f, small[s], a);
}
END_TEST

START_TEST(test_valloc_pvalloc) {
  const size_t ps = page_size();
  for (size_t s = 0; s < sizeof matrix_sizes / sizeof matrix_sizes[0]; s++) {
    size_t n = matrix_sizes[s];
    uint8_t* p = hh_valloc(n);
    REQUIRE(p != NULL, "hh_valloc(%zu) returned NULL", n);
    REQUIRE(is_aligned(p, ps), "hh_valloc(%zu) = %p is not page aligned", n, (void*)p);
    REQUIRE(hh_usable_size(p) >= n, "hh_valloc(%zu): usable_size %zu", n, hh_usable_size(p));
    if (n) memset(p, 0x3C, n);
    hh_free(p);

    p = hh_pvalloc(n);
    REQUIRE(p != NULL, "hh_pvalloc(%zu) returned NULL", n);
    REQUIRE(is_aligned(p, ps), "hh_pvalloc(%zu) = %p is not page aligned", n, (void*)p);
    size_t u = hh_usable_size(p);
    size_t want = n == 0 ? ps : round_up(n, ps);
    REQUIRE(u >= want, "hh_pvalloc(%zu): usable_size %zu < %zu", n, u, want);
    REQUIRE(u % ps == 0, "hh_pvalloc(%zu): usable_size %zu is not a multiple of the page size %zu",
            n, u, ps);
    memset(p, 0x3D, want);
    hh_free(p);
  }
  const size_t odd[] = {ps - 1, ps + 1, 3 * ps + 5, 17 * ps - 1};
  for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
    uint8_t* p = hh_pvalloc(odd[i]);
    REQUIRE(p != NULL, "hh_pvalloc(%zu) returned NULL", odd[i]);
    size_t u = hh_usable_size(p);
    REQUIRE(is_aligned(p, ps) && u >= round_up(odd[i], ps) && u % ps == 0,
            "hh_pvalloc(%zu) = %p, usable_size %zu", odd[i], (void*)p, u);
    memset(p, 1, round_up(odd[i], ps));
    hh_free(p);
  }
}
END_TEST

START_TEST(test_pvalloc_zero_is_one_page) {
  const size_t ps = page_size();
  uint8_t* p = hh_pvalloc(0);
  ck_assert_ptr_nonnull(p);
  ck_assert(is_aligned(p, ps));
  size_t u = hh_usable_size(p);
  ck_assert_uint_ge(u, ps);
  ck_assert_uint_eq(u % ps, 0);
  memset(p, 0x42, ps);
  ck_assert_uint_eq(p[ps - 1], 0x42);
  hh_free(p);
}
END_TEST

START_TEST(test_invalid_alignment) {
  const size_t bad[] = {0, 3, 24, 48, 100, 4095, 4097, (size_t)3 << 20, SIZE_MAX};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    size_t a = opaque(bad[i]);
    for (int f = 0; f < AF_COUNT_; f++) {
      if (f == AF_POSIX_MEMALIGN) continue;
      int err;
      errno = 0;
      void* p = aligned_call(f, 64, a, &err);
      int e = errno;
      REQUIRE(p == NULL, "%s(size 64, alignment %zu) = %p, expected NULL", af_names[f], a, p);
      REQUIRE(e == EINVAL, "%s(size 64, alignment %zu): errno %d, expected EINVAL", af_names[f],
              a, e);
    }
    /* A failed hh_realloc_aligned leaves the block untouched. */
    uint8_t* q = hh_malloc(100);
    ck_assert_ptr_nonnull(q);
    fill(q, 100, 5);
    errno = 0;
    void* r = hh_realloc_aligned(q, 200, a);
    int e = errno;
    REQUIRE(r == NULL && e == EINVAL, "hh_realloc_aligned(p, 200, %zu) = %p, errno %d", a, r, e);
    REQUIRE(check_fill(q, 100, 5) == SIZE_MAX, "block changed by a failed hh_realloc_aligned");
    hh_free(q);

    /* posix_memalign: error code returned, errno untouched. */
    void* out = NULL;
    errno = ERRNO_SENTINEL;
    int rc = hh_posix_memalign(&out, a, 64);
    e = errno;
    REQUIRE(rc == EINVAL, "hh_posix_memalign(alignment %zu) returned %d", a, rc);
    REQUIRE(e == ERRNO_SENTINEL, "hh_posix_memalign(alignment %zu) changed errno to %d", a, e);
  }
  /* Powers of two below sizeof(void*) are invalid for posix_memalign only. */
  for (size_t a = 1; a < sizeof(void*); a *= 2) {
    void* out = NULL;
    errno = ERRNO_SENTINEL;
    int rc = hh_posix_memalign(&out, opaque(a), 64);
    REQUIRE(rc == EINVAL, "hh_posix_memalign(alignment %zu) returned %d", a, rc);
    REQUIRE(errno == ERRNO_SENTINEL, "hh_posix_memalign(alignment %zu) changed errno", a);
  }
  /* A successful posix_memalign leaves errno alone as well. */
  void* out = NULL;
  errno = ERRNO_SENTINEL;
  ck_assert_int_eq(hh_posix_memalign(&out, 64, 100), 0);
  ck_assert_int_eq(errno, ERRNO_SENTINEL);
  ck_assert_ptr_nonnull(out);
  ck_assert(is_aligned(out, 64));
  hh_free(out);
}
END_TEST

/* ---- realloc ------------------------------------------------------------ */

START_TEST(test_realloc_chain) {
  /* Grow from 16 bytes to 8 MiB through every class region (small, medium,
   * large, huge) and back down to 1, checking content at each step. */
  size_t sizes[256];
  size_t n = 0;
  const size_t up[] = {16,          17,          32,          48,          100,
                       128,         129,         512,         1000,        1024,
                       1025,        4095,        4096,        4097,        8 * KiB,
                       8 * KiB + 1, 16 * KiB,    32 * KiB,    64 * KiB,    64 * KiB + 1,
                       128 * KiB,   128 * KiB + 1, 256 * KiB, 512 * KiB,   1 * MiB,
                       1 * MiB + 1, 2 * MiB - 1, 2 * MiB,     2 * MiB + 1, 3 * MiB,
                       4 * MiB,     5 * MiB,     8 * MiB};
  const size_t nup = sizeof up / sizeof up[0];
  for (size_t i = 0; i < nup; i++) sizes[n++] = up[i];
  for (size_t i = nup - 1; i-- > 0;) sizes[n++] = up[i] - (up[i] > 1 ? 1 : 0);
  const size_t down[] = {15, 8, 1};
  for (size_t i = 0; i < 3; i++) sizes[n++] = down[i];
  /* A second, geometric pass: +25% per step up, -20% down. */
  for (size_t s = 1; s <= 8 * MiB && n < 200; s += s / 4 + 1) sizes[n++] = s;
  for (size_t s = 8 * MiB; s > 1 && n < 255; s -= s / 5 + 1) sizes[n++] = s;
  sizes[n++] = 1;

  uint8_t* p = hh_malloc(sizes[0]);
  ck_assert_ptr_nonnull(p);
  fill(p, sizes[0], 0);
  for (size_t i = 1; i < n; i++) {
    size_t old = sizes[i - 1], nw = sizes[i];
    uint8_t* q = hh_realloc(p, nw);
    REQUIRE(q != NULL, "step %zu: hh_realloc(%zu -> %zu) failed", i, old, nw);
    REQUIRE(is_aligned(q, HH_MIN_ALIGNMENT), "step %zu: hh_realloc -> %p", i, (void*)q);
    REQUIRE(hh_usable_size(q) >= nw, "step %zu: usable_size %zu < %zu", i, hh_usable_size(q), nw);
    size_t keep = old < nw ? old : nw;
    size_t bad = check_fill(q, keep, (unsigned)(i - 1));
    REQUIRE(bad == SIZE_MAX, "step %zu: hh_realloc(%zu -> %zu) %s lost byte %zu", i, old, nw,
            q == p ? "in place" : "moving", bad);
    fill(q, nw, (unsigned)i);
    p = q;
  }
  hh_free(p);
}
END_TEST

START_TEST(test_realloc_null_and_zero) {
  /* hh_realloc(NULL, n) acts as hh_malloc(n). */
  uint8_t* p = hh_realloc(NULL, 100);
  ck_assert_ptr_nonnull(p);
  ck_assert(is_aligned(p, HH_MIN_ALIGNMENT));
  ck_assert_uint_eq(hh_usable_size(p), canaries() ? 100 : hh_good_size(100));
  memset(p, 1, 100);
  hh_free(p);

  /* hh_realloc(p, 0) frees p and returns NULL. */
  p = hh_malloc(100);
  ck_assert_ptr_nonnull(p);
  ck_assert_ptr_null(hh_realloc(p, 0));

  /* Observe the free with a huge block: huge_count is exact when quiescent. */
  size_t before = stats_now().huge_count;
  p = hh_malloc(6 * MiB);
  ck_assert_ptr_nonnull(p);
  memset(p, 1, 6 * MiB);
  ck_assert_uint_eq(stats_now().huge_count, before + 1);
  ck_assert_ptr_null(hh_realloc(p, 0));
  ck_assert_uint_eq(stats_now().huge_count, before);

  /* The allocator is still healthy afterwards. */
  p = hh_malloc(100);
  ck_assert_ptr_nonnull(p);
  hh_free(p);
}
END_TEST

START_TEST(test_realloc_aligned_keeps_alignment) {
  const size_t chain[] = {1,       64,      100,     4096,    5000,    70000,   200000,
                          1 * MiB, 3 * MiB, 6 * MiB, 2 * MiB, 100000,  3000,    17};
  const size_t nc = sizeof chain / sizeof chain[0];
  for (size_t a = 32; a <= 2 * MiB; a *= 4) {
    uint8_t* p = hh_malloc_aligned(chain[0], a);
    REQUIRE(p != NULL && is_aligned(p, a), "hh_malloc_aligned(1, %zu) = %p", a, (void*)p);
    fill(p, chain[0], 0);
    for (size_t i = 1; i < nc; i++) {
      uint8_t* q = hh_realloc_aligned(p, chain[i], a);
      REQUIRE(q != NULL, "hh_realloc_aligned(%zu -> %zu, %zu) failed", chain[i - 1], chain[i], a);
      REQUIRE(is_aligned(q, a), "hh_realloc_aligned(%zu -> %zu, %zu) = %p is misaligned",
              chain[i - 1], chain[i], a, (void*)q);
      REQUIRE(hh_usable_size(q) >= chain[i], "hh_realloc_aligned(-> %zu): usable_size %zu",
              chain[i], hh_usable_size(q));
      size_t keep = chain[i - 1] < chain[i] ? chain[i - 1] : chain[i];
      size_t bad = check_fill(q, keep, (unsigned)(i - 1));
      REQUIRE(bad == SIZE_MAX, "hh_realloc_aligned(%zu -> %zu, %zu) lost byte %zu",
              chain[i - 1], chain[i], a, bad);
      fill(q, chain[i], (unsigned)i);
      p = q;
    }
    hh_free(p);
  }
  /* hh_realloc_aligned(p, 0, a) frees and returns NULL like hh_realloc. */
  void* p = hh_malloc_aligned(100, 256);
  ck_assert_ptr_nonnull(p);
  ck_assert_ptr_null(hh_realloc_aligned(p, 0, 256));
}
END_TEST

/* A large block starts at its span's 64 KiB-aligned start, or, where a
 * guard page follows every large block (secure level 3), against the guard
 * and only page-aligned. */
static size_t large_alignment(void) {
  return hh_is_secure() && hh_secure_level() >= 3 ? page_size() : 64 * KiB;
}

/* Large blocks (64 KiB .. 2 MiB) are spans of 64 KiB slices in shared
 * segments: many live at once must never overlap, keep their contents while
 * others come and go (freed slices are reused by blocks of other sizes),
 * start aligned (large_alignment), and calloc must see zeros in reused
 * slices. */
START_TEST(test_large_spans) {
  enum { N = 48, ROUNDS = 6 };
  uint8_t* blocks[N] = {0};
  size_t sizes[N] = {0};
  uint64_t r = 0x9e3779b97f4a7c15u;
  for (int round = 0; round < ROUNDS; round++) {
    for (int i = 0; i < N; i++) {
      r ^= r << 13; r ^= r >> 7; r ^= r << 17;
      if (blocks[i] != NULL && (r & 1)) {
        size_t bad = check_fill(blocks[i], sizes[i], (unsigned)i);
        REQUIRE(bad == SIZE_MAX, "large block %d (%zu bytes) lost byte %zu", i, sizes[i], bad);
        hh_free(blocks[i]);
        blocks[i] = NULL;
      }
      if (blocks[i] == NULL) {
        /* above every medium class (72 KiB with canaries) */
        size_t n = 80 * KiB + 1 + (size_t)(r >> 20) % (2 * MiB - 80 * KiB);
        uint8_t* p = (round & 1) ? hh_calloc(1, n) : hh_malloc(n);
        REQUIRE(p != NULL, "allocating %zu bytes failed", n);
        REQUIRE(is_aligned(p, large_alignment()), "large block %p of %zu bytes is not %zu-aligned", (void*)p, n,
                large_alignment());
        REQUIRE(hh_usable_size(p) == (canaries() ? n : hh_good_size(n)), "usable_size %zu, good_size %zu",
                hh_usable_size(p), hh_good_size(n));
        if (round & 1) {
          size_t nz = first_nonzero(p, n);
          REQUIRE(nz == SIZE_MAX, "calloc(%zu) has a non-zero byte at %zu", n, nz);
        }
        fill(p, n, (unsigned)i);
        blocks[i] = p;
        sizes[i] = n;
      }
    }
    for (int i = 0; i < N; i++) {
      for (int j = i + 1; j < N; j++) {
        if (blocks[i] == NULL || blocks[j] == NULL) continue;
        bool apart = blocks[i] + hh_usable_size(blocks[i]) <= blocks[j] || blocks[j] + hh_usable_size(blocks[j]) <= blocks[i];
        REQUIRE(apart, "large blocks %p and %p overlap", (void*)blocks[i], (void*)blocks[j]);
      }
    }
  }
  /* Growth in place into the next free slices, and shrink to a new block. */
  for (int i = 0; i < N; i++) {
    if (blocks[i] == NULL) continue;
    size_t bad = check_fill(blocks[i], sizes[i], (unsigned)i);
    REQUIRE(bad == SIZE_MAX, "large block %d lost byte %zu", i, bad);
    uint8_t* q = hh_realloc(blocks[i], sizes[i] + 300 * KiB);
    REQUIRE(q != NULL, "growing a large block failed");
    bad = check_fill(q, sizes[i], (unsigned)i);
    REQUIRE(bad == SIZE_MAX, "growing large block %d to %zu lost byte %zu", i, sizes[i] + 300 * KiB, bad);
    uint8_t* t = hh_realloc(q, 1000);
    REQUIRE(t != NULL, "shrinking a large block failed");
    bad = check_fill(t, 1000, (unsigned)i);
    REQUIRE(bad == SIZE_MAX, "shrinking large block %d lost byte %zu", i, bad);
    hh_free(t);
  }
  /* Aligned large blocks start at an aligned slice of their own. */
  for (size_t a = 128 * KiB; a <= 2 * MiB; a *= 2) {
    uint8_t* p = hh_malloc_aligned(200 * KiB, a);
    uint8_t* q = hh_malloc_aligned(3 * 64 * KiB + 5, a);
    REQUIRE(p != NULL && q != NULL && is_aligned(p, a) && is_aligned(q, a), "aligned large blocks %p %p (%zu)",
            (void*)p, (void*)q, a);
    fill(p, 200 * KiB, 1);
    fill(q, 3 * 64 * KiB + 5, 2);
    REQUIRE(check_fill(p, 200 * KiB, 1) == SIZE_MAX, "aligned large block overwritten");
    hh_free(q);
    hh_free(p);
  }
  hh_collect(true);
}
END_TEST

/* Can the kernel read the byte at p? A write from it to a pipe fails with
 * EFAULT at a guard page (PROT_NONE or a guard marker) without a fault. The
 * raw system call: ASan's write() would report slack the tracking mode
 * poisons. */
static bool readable(const void* p) {
  static int fds[2] = {-1, -1};
  if (fds[0] < 0) REQUIRE(pipe(fds) == 0, "pipe: %s", strerror(errno));
  if (syscall(SYS_write, fds[1], p, (size_t)1) == 1) {
    char c;
    REQUIRE(read(fds[0], &c, 1) == 1, "reading back the probe byte");
    return true;
  }
  REQUIRE(errno == EFAULT, "probing %p: %s", p, strerror(errno));
  return false;
}

/* A large block of n bytes at p, asked with alignment: aligned, readable
 * at both ends, and where guards follow large blocks an unreadable page
 * within two pages of its end (plus the over-allocation of an alignment up
 * to a page: that block starts before p). */
static void check_large_block(const uint8_t* p, size_t n, size_t alignment, const char* how) {
  const size_t ps = page_size();
  REQUIRE(is_aligned(p, alignment), "%s(%zu, alignment %zu) = %p", how, n, alignment, (void*)p);
  REQUIRE(readable(p) && readable(p + n - 1), "%s(%zu): the block at %p is not readable", how, n, (void*)p);
  if (large_alignment() == 64 * KiB) return;  /* no guards after large blocks */
  size_t limit = 2 * ps + (alignment <= ps ? alignment : 0);
  const uint8_t* guard = NULL;
  for (uintptr_t q = round_up((uintptr_t)(p + n), ps); q < (uintptr_t)(p + n + limit) && guard == NULL; q += ps)
    if (!readable((const void*)q)) guard = (const uint8_t*)q;
  REQUIRE(guard != NULL, "%s(%zu, alignment %zu) = %p: no guard page within %zu bytes of its end", how, n,
          alignment, (void*)p, limit);
}

/* Large blocks of every size and alignment, asked through every function,
 * freed and reused in random order (a freed span is reused by a block of
 * another size: the block moves within the span to keep its guard, or the
 * guard moves), grown and shrunk in place by realloc: each keeps its
 * contents, its alignment and a guard right after it. */
START_TEST(test_large_guard_follows_block) {
  enum { N = 24, ROUNDS = 10 };
  static const size_t alignments[] = {16, 64, 4 * KiB, 8 * KiB, 16 * KiB, 32 * KiB, 64 * KiB, 128 * KiB, 512 * KiB};
  static const char* const how[] = {"hh_malloc", "hh_calloc", "hh_malloc_aligned", "hh_posix_memalign",
                                    "hh_memalign"};
  uint8_t* blocks[N] = {0};
  size_t sizes[N] = {0};
  size_t reach[N] = {0}; /* the extent the guard follows */
  rng_t r = rng_for(14);
  for (int round = 0; round < ROUNDS; round++) {
    for (int i = 0; i < N; i++) {
      if (blocks[i] != NULL) {
        size_t bad = check_fill(blocks[i], sizes[i], (unsigned)i);
        REQUIRE(bad == SIZE_MAX, "large block %d (%zu bytes) lost byte %zu", i, sizes[i], bad);
        uint64_t choice = rng_next(&r) % 4;
        if (choice == 0) continue;  /* kept */
        if (choice == 1) {          /* grown or shrunk (above half: in place when it can) */
          size_t n = sizes[i] / 2 + 1 + rng_next(&r) % (sizes[i] / 2 + 256 * KiB);
          uint8_t* q = hh_realloc(blocks[i], n);
          REQUIRE(q != NULL, "hh_realloc(%zu -> %zu) failed", sizes[i], n);
          size_t kept = n < sizes[i] ? n : sizes[i];
          bad = check_fill(q, kept, (unsigned)i);
          REQUIRE(bad == SIZE_MAX, "hh_realloc(%zu -> %zu) lost byte %zu", sizes[i], n, bad);
          /* shrunk in place, the block keeps its size and its guard (the
           * canary covers the bytes between) */
          if (q != blocks[i] || n > reach[i]) reach[i] = n;
          if (n > 80 * KiB) check_large_block(q, reach[i], 16, "hh_realloc");
          fill(q, n, (unsigned)i);
          blocks[i] = q;
          sizes[i] = n;
          continue;
        }
        hh_free(blocks[i]);
        blocks[i] = NULL;
      }
      /* above every medium class (72 KiB with canaries) */
      size_t n = 80 * KiB + 1 + rng_next(&r) % (2 * MiB - 200 * KiB);
      int f = (int)(rng_next(&r) % 5);
      size_t a = f < 2 ? 16 : alignments[rng_next(&r) % (sizeof alignments / sizeof alignments[0])];
      uint8_t* p = NULL;
      switch (f) {
        case 0: p = hh_malloc(n); break;
        case 1: p = hh_calloc(1, n); break;
        case 2: p = hh_malloc_aligned(n, a); break;
        case 3: REQUIRE(hh_posix_memalign((void**)&p, a, n) == 0, "hh_posix_memalign(%zu, %zu) failed", a, n); break;
        default: p = hh_memalign(a, n); break;
      }
      REQUIRE(p != NULL, "%s(%zu, alignment %zu) failed", how[f], n, a);
      if (f == 1) {
        size_t nz = first_nonzero(p, n);
        REQUIRE(nz == SIZE_MAX, "hh_calloc(%zu) has a non-zero byte at %zu", n, nz);
      }
      check_large_block(p, n, a, how[f]);
      fill(p, n, (unsigned)i);
      blocks[i] = p;
      sizes[i] = n;
      reach[i] = n;
    }
    /* spans whose block moved within them keep their descriptors right */
    REQUIRE(hh_heap_validate(NULL), "heap invariants broken after round %d", round);
  }
  for (int i = 0; i < N; i++) {
    if (blocks[i] == NULL) continue;
    size_t bad = check_fill(blocks[i], sizes[i], (unsigned)i);
    REQUIRE(bad == SIZE_MAX, "large block %d (%zu bytes) lost byte %zu", i, sizes[i], bad);
    hh_free(blocks[i]);
  }
  hh_collect(true);
}
END_TEST

START_TEST(test_reallocf) {
  /* Success: behaves like realloc. */
  uint8_t* p = hh_malloc(100);
  ck_assert_ptr_nonnull(p);
  fill(p, 100, 9);
  p = hh_reallocf(p, 5000);
  ck_assert_ptr_nonnull(p);
  ck_assert_uint_eq(check_fill(p, 100, 9), SIZE_MAX);

  /* Failure: NULL + ENOMEM, and the block is freed. */
  errno = 0;
  void* r = hh_reallocf(p, opaque(SIZE_MAX / 2));
  int e = errno;
  ck_assert_ptr_null(r);
  ck_assert_int_eq(e, ENOMEM);

  /* Observe the free through the huge block counter. */
  size_t before = stats_now().huge_count;
  p = hh_malloc(6 * MiB);
  ck_assert_ptr_nonnull(p);
  ck_assert_uint_eq(stats_now().huge_count, before + 1);
  errno = 0;
  r = hh_reallocf(p, opaque(SIZE_MAX / 2));
  e = errno;
  ck_assert_ptr_null(r);
  ck_assert_int_eq(e, ENOMEM);
  ck_assert_uint_eq(stats_now().huge_count, before);

  p = hh_malloc(64);
  ck_assert_ptr_nonnull(p);
  errno = 0;
  r = hh_reallocf(p, opaque(SIZE_MAX));
  e = errno;
  ck_assert_ptr_null(r);
  ck_assert_int_eq(e, ENOMEM);
}
END_TEST

/* ---- zeroing on reused memory ------------------------------------------- */

enum { Z_CALLOC, Z_ZALLOC, Z_ZALLOC_ALIGNED, Z_CALLOC_ALIGNED, Z_COUNT_ };

static const char* const z_names[Z_COUNT_] = {"hh_calloc", "hh_zalloc", "hh_zalloc_aligned",
                                              "hh_calloc_aligned"};

static void* zero_call(int f, size_t n, size_t i) {
  size_t align = (size_t)16 << (i % 6); /* 16 .. 512 */
  switch (f) {
    case Z_CALLOC: return (i & 1) ? hh_calloc(n, 1) : hh_calloc(1, n);
    case Z_ZALLOC: return hh_zalloc(n);
    case Z_ZALLOC_ALIGNED: return hh_zalloc_aligned(n, align);
    case Z_CALLOC_ALIGNED: return (i & 1) ? hh_calloc_aligned(n, 1, align)
                                          : hh_calloc_aligned(1, n, align);
    default: return NULL;
  }
}

/* Loop test: _i selects the zeroing function. */
START_TEST(test_zeroing_on_reuse) {
  const int f = _i;
  const size_t sizes[] = {16,       24,     48,      64,      100,      256,     1000,
                          1024,     4000,   4096,    10000,   32 * KiB, 64 * KiB, 1 * MiB,
                          5 * MiB};
  enum { NS = sizeof sizes / sizeof sizes[0], PER = 64 };
  static uint8_t* blocks[NS][PER];
  for (int round = 0; round < 3; round++) {
    for (size_t s = 0; s < NS; s++) {
      size_t cnt = sizes[s] >= 1 * MiB ? 3 : PER;
      for (size_t i = 0; i < cnt; i++) {
        blocks[s][i] = hh_malloc(sizes[s]);
        REQUIRE(blocks[s][i] != NULL, "hh_malloc(%zu) failed", sizes[s]);
        memset(blocks[s][i], 0xAB, hh_usable_size(blocks[s][i]));
      }
    }
    for (size_t s = NS; s-- > 0;) {
      size_t cnt = sizes[s] >= 1 * MiB ? 3 : PER;
      for (size_t i = cnt; i-- > 0;) hh_free(blocks[s][i]);
    }
    for (size_t s = 0; s < NS; s++) {
      size_t cnt = sizes[s] >= 1 * MiB ? 3 : PER;
      for (size_t i = 0; i < cnt; i++) {
        uint8_t* p = zero_call(f, sizes[s], i);
        REQUIRE(p != NULL, "%s(%zu) failed", z_names[f], sizes[s]);
        size_t nz = first_nonzero(p, sizes[s]);
        REQUIRE(nz == SIZE_MAX, "round %d: %s(%zu) #%zu = %p: byte %zu is 0x%02x, not zero",
                round, z_names[f], sizes[s], i, (void*)p, nz, nz == SIZE_MAX ? 0u : p[nz]);
        memset(p, 0xAB, hh_usable_size(p)); /* dirty it again for the next round */
        blocks[s][i] = p;
      }
    }
    for (size_t s = 0; s < NS; s++) {
      size_t cnt = sizes[s] >= 1 * MiB ? 3 : PER;
      for (size_t i = 0; i < cnt; i++) hh_free(blocks[s][i]);
    }
  }
}
END_TEST

/* A segment the thread cached is re-cut for another kind of page. Its old
 * layout's guard pages become page memory of the new one: whatever they
 * held when they were put up must not show through, even when every page of
 * the old layout was purged and the new one takes its memory as zero. Found
 * by fuzz/api_ops in the tracking build (no zeroing on free): large blocks
 * left data where a medium segment then put its guards; once the medium
 * pages were purged one by one, the segment came back as a large one and a
 * calloc got that data. */
START_TEST(test_zeroing_after_recut) {
  const long delay = hh_option_get(hh_option_purge_delay);
  const size_t big = 2 * MiB - 128 * KiB, mid = 1 * MiB + 300 * KiB;
  /* large segments, dirty everywhere, kept resident in the thread's cache */
  hh_option_set(hh_option_purge_delay, 3600L * 1000);
  uint8_t* large[12];
  for (size_t i = 0; i < 12; i++) {
    size_t n = i < 6 ? big : mid;
    large[i] = hh_malloc(n);
    REQUIRE(large[i] != NULL, "hh_malloc(%zu) failed", n);
    memset(large[i], 0xAB, n);
  }
  for (size_t i = 0; i < 12; i++) hh_free(large[i]);
  /* medium pages cut from one of them, every slot used, then purged one by one */
  hh_heap_t* heap = hh_heap_new();
  REQUIRE(heap != NULL, "hh_heap_new failed");
  for (int i = 0; i < 400; i++) REQUIRE(hh_heap_malloc(heap, 32 * KiB) != NULL, "hh_heap_malloc failed");
  hh_option_set(hh_option_purge_delay, 0);
  hh_heap_destroy(heap);
  /* zeroing allocations of every kind from what the cache gives back */
  uint8_t* got[12];
  for (size_t i = 0; i < 12; i++) {
    got[i] = hh_calloc(1, big);
    REQUIRE(got[i] != NULL, "hh_calloc(%zu) failed", big);
    size_t nz = first_nonzero(got[i], big);
    REQUIRE(nz == SIZE_MAX, "large calloc #%zu = %p: byte %zu is 0x%02x, not zero", i, (void*)got[i], nz,
            nz == SIZE_MAX ? 0u : got[i][nz]);
  }
  enum { SMALL = 12000 };
  static uint8_t* small[SMALL];
  for (size_t i = 0; i < SMALL; i++) {
    size_t n = i % 2 ? 1024 : 40 * KiB;
    small[i] = hh_calloc(1, n);
    REQUIRE(small[i] != NULL, "hh_calloc(%zu) failed", n);
    size_t nz = first_nonzero(small[i], n);
    REQUIRE(nz == SIZE_MAX, "calloc(%zu) #%zu = %p: byte %zu is 0x%02x, not zero", n, i, (void*)small[i], nz,
            nz == SIZE_MAX ? 0u : small[i][nz]);
  }
  for (size_t i = 0; i < SMALL; i++) hh_free(small[i]);
  for (size_t i = 0; i < 12; i++) hh_free(got[i]);
  hh_option_set(hh_option_purge_delay, delay);
}
END_TEST

/* ---- errno on failure --------------------------------------------------- */

#define EXPECT_ENOMEM(call)                                                  \
  do {                                                                       \
    errno = 0;                                                               \
    void* r_ = (call);                                                       \
    int e_ = errno;                                                          \
    REQUIRE(r_ == NULL, "%s returned %p instead of NULL", #call, r_);        \
    REQUIRE(e_ == ENOMEM, "%s set errno to %d, expected ENOMEM (%d)", #call, e_, ENOMEM); \
  } while (0)

START_TEST(test_enomem) {
  const size_t smax = opaque(SIZE_MAX);
  const size_t pmax = opaque((size_t)PTRDIFF_MAX);
  const size_t half = opaque(SIZE_MAX / 2);
  const size_t two32 = opaque((size_t)1 << 32); /* 2^32 * 2^32 wraps to 0 */

  EXPECT_ENOMEM(hh_malloc(smax));
  EXPECT_ENOMEM(hh_malloc(pmax + 1));
  EXPECT_ENOMEM(hh_malloc(pmax));
  EXPECT_ENOMEM(hh_malloc(smax - 4095));
  EXPECT_ENOMEM(hh_zalloc(smax));
  EXPECT_ENOMEM(hh_zalloc(pmax + 1));
  EXPECT_ENOMEM(hh_calloc(half, 3));
  EXPECT_ENOMEM(hh_calloc(smax, smax));
  EXPECT_ENOMEM(hh_calloc(two32, two32));
  EXPECT_ENOMEM(hh_calloc(1, pmax + 1));
  EXPECT_ENOMEM(hh_reallocarray(NULL, half, 3));
  EXPECT_ENOMEM(hh_reallocarray(NULL, two32, two32));
  EXPECT_ENOMEM(hh_realloc(NULL, smax));
  EXPECT_ENOMEM(hh_malloc_aligned(smax - 10, 64));
  EXPECT_ENOMEM(hh_malloc_aligned(pmax - 100, 1 << 20));
  EXPECT_ENOMEM(hh_malloc_aligned(16, opaque((size_t)1 << 62)));
  EXPECT_ENOMEM(hh_malloc_aligned(16, opaque((size_t)1 << 63)));
  EXPECT_ENOMEM(hh_zalloc_aligned(smax, 4096));
  EXPECT_ENOMEM(hh_calloc_aligned(half, 3, 64));
  EXPECT_ENOMEM(hh_calloc_aligned(two32, two32, 64));
  EXPECT_ENOMEM(hh_realloc_aligned(NULL, smax, 64));
  EXPECT_ENOMEM(hh_aligned_alloc(64, smax));
  EXPECT_ENOMEM(hh_aligned_alloc(4096, smax - 100));
  EXPECT_ENOMEM(hh_memalign(64, smax));
  EXPECT_ENOMEM(hh_valloc(smax));
  EXPECT_ENOMEM(hh_pvalloc(smax));
  EXPECT_ENOMEM(hh_pvalloc(smax - 100)); /* rounding up to pages overflows */

  /* posix_memalign reports ENOMEM through its result, not errno. */
  void* out = NULL;
  errno = ERRNO_SENTINEL;
  int rc = hh_posix_memalign(&out, 64, smax);
  ck_assert_int_eq(rc, ENOMEM);
  ck_assert_int_eq(errno, ERRNO_SENTINEL);

  /* A failed realloc leaves the block valid and unchanged. */
  const size_t bad_sizes[] = {SIZE_MAX, (size_t)PTRDIFF_MAX + 1, SIZE_MAX / 2};
  for (size_t k = 0; k < 3; k++) {
    uint8_t* p = hh_malloc(1000);
    ck_assert_ptr_nonnull(p);
    fill(p, 1000, 77);
    size_t u = hh_usable_size(p);
    EXPECT_ENOMEM(hh_realloc(p, opaque(bad_sizes[k])));
    EXPECT_ENOMEM(hh_realloc_aligned(p, opaque(bad_sizes[k]), 64));
    EXPECT_ENOMEM(hh_reallocarray(p, half, 3));
    EXPECT_ENOMEM(hh_reallocarray(p, two32, two32));
    ck_assert_uint_eq(hh_usable_size(p), u);
    ck_assert_uint_eq(check_fill(p, 1000, 77), SIZE_MAX);
    /* still a healthy block */
    p = hh_realloc(p, 2000);
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq(check_fill(p, 1000, 77), SIZE_MAX);
    hh_free(p);
  }
  /* Same for a huge block. */
  uint8_t* p = hh_malloc(5 * MiB);
  ck_assert_ptr_nonnull(p);
  fill(p, 5 * MiB, 78);
  EXPECT_ENOMEM(hh_realloc(p, smax));
  EXPECT_ENOMEM(hh_realloc(p, pmax));
  ck_assert_uint_eq(check_fill(p, 5 * MiB, 78), SIZE_MAX);
  hh_free(p);

  /* Zero-size products are not overflows. */
  p = hh_calloc(0, smax);
  ck_assert_ptr_nonnull(p);
  hh_free(p);
  p = hh_reallocarray(NULL, smax, 0);
  ck_assert_ptr_nonnull(p);
  hh_free(p);

  /* Allocation still works after all those failures. */
  p = hh_malloc(123);
  ck_assert_ptr_nonnull(p);
  hh_free(p);
}
END_TEST

/* ---- requests the kernel cannot back ------------------------------------
 * Under the default heuristic overcommit (vm.overcommit_memory = 0) the
 * kernel refuses one mapping larger than RAM + swap, and under strict
 * accounting (2) one over the commit limit: glibc's malloc then returns
 * NULL with ENOMEM, and so must every entry point of hardheap, without a
 * byte left mapped or counted. Under "always overcommit" (1) the kernel
 * and glibc both succeed: the test says so and checks nothing. */

/* vm.overcommit_memory, or -1 when it cannot be read. */
static int overcommit_mode(void) {
  int fd = open("/proc/sys/vm/overcommit_memory", O_RDONLY);
  if (fd < 0) return -1;
  char buf[16];
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0 || buf[0] < '0' || buf[0] > '9') return -1;
  return buf[0] - '0';
}

/* Bytes of address space mapped in this process now (/proc/self/maps,
 * read without allocating). */
static char maps_buf[4 << 20];

static size_t mapped_bytes(void) {
  int fd = open("/proc/self/maps", O_RDONLY);
  REQUIRE(fd >= 0, "cannot open /proc/self/maps (errno %d)", errno);
  size_t len = 0;
  for (;;) {
    REQUIRE(len < sizeof maps_buf - 1, "/proc/self/maps is larger than %zu bytes", sizeof maps_buf);
    ssize_t n = read(fd, maps_buf + len, sizeof maps_buf - 1 - len);
    if (n < 0 && errno == EINTR) continue;
    REQUIRE(n >= 0, "read of /proc/self/maps failed (errno %d)", errno);
    if (n == 0) break;
    len += (size_t)n;
  }
  close(fd);
  maps_buf[len] = 0;
  size_t total = 0;
  for (char* line = maps_buf; *line != 0;) {
    char* end;
    unsigned long long lo = strtoull(line, &end, 16);
    REQUIRE(*end == '-', "unexpected line in /proc/self/maps: %.40s", line);
    unsigned long long hi = strtoull(end + 1, &end, 16);
    total += (size_t)(hi - lo);
    char* next = strchr(end, '\n');
    if (next == NULL) break;
    line = next + 1;
  }
  return total;
}

/* _i = 0: 64 TiB; 1: twice RAM + swap (sysinfo), page-aligned. Both are
 * over what the kernel backs in modes 0 and 2 (unless overcommit_ratio
 * is set above 200). */
static size_t unbacked_size(int i) {
  if (i == 0) return (size_t)1 << 46;
  struct sysinfo si;
  ck_assert_int_eq(sysinfo(&si), 0);
  size_t unit = si.mem_unit == 0 ? 1 : si.mem_unit;
  size_t total = ((size_t)si.totalram + (size_t)si.totalswap) * unit;
  ck_assert_uint_gt(total, 0);
  ck_assert_uint_lt(total, (size_t)1 << 50);
  return round_up(2 * total, page_size());
}

#ifdef HH_TEST_OVERRIDE
/* The standard names, through pointers so that the compiler does not treat
 * them as builtins (and fold or drop a call whose result is only tested). */
void* reallocarray(void* p, size_t count, size_t size);
static void* (*volatile std_malloc)(size_t) = malloc;
static void* (*volatile std_calloc)(size_t, size_t) = calloc;
static void* (*volatile std_realloc)(void*, size_t) = realloc;
static void* (*volatile std_reallocarray)(void*, size_t, size_t) = reallocarray;
static int (*volatile std_posix_memalign)(void**, size_t, size_t) = posix_memalign;
static void* (*volatile std_aligned_alloc)(size_t, size_t) = aligned_alloc;
static void* (*volatile std_memalign)(size_t, size_t) = memalign;
static void* (*volatile std_valloc)(size_t) = valloc;
static void* (*volatile std_pvalloc)(size_t) = pvalloc;
#endif

/* posix_memalign returns ENOMEM, leaves *out and errno alone (POSIX). */
#define EXPECT_MEMALIGN_ENOMEM(fn, alignment, size)                                              \
  do {                                                                                           \
    void* out_ = &out_;                                                                          \
    errno = ERRNO_SENTINEL;                                                                      \
    int rc_ = fn(&out_, (alignment), (size));                                                    \
    int e_ = errno;                                                                              \
    REQUIRE(rc_ == ENOMEM, "%s(%s, %s) returned %d, expected ENOMEM", #fn, #alignment, #size, rc_); \
    REQUIRE(e_ == ERRNO_SENTINEL, "%s changed errno to %d", #fn, e_);                            \
    REQUIRE(out_ == (void*)&out_, "%s changed *out to %p", #fn, out_);                           \
  } while (0)

/* Send stderr into a non-blocking pipe until stderr_end(), which returns
 * what was written there (at most sizeof stderr_buf - 1 bytes). */
static char stderr_buf[4096];
static int stderr_saved = -1, stderr_pipe = -1;

static void stderr_begin(void) {
  int fds[2];
  ck_assert_int_eq(pipe(fds), 0);
  ck_assert_int_eq(fcntl(fds[1], F_SETFL, O_NONBLOCK), 0);
  ck_assert_int_eq(fcntl(fds[0], F_SETFL, O_NONBLOCK), 0);
  fflush(stderr);
  stderr_saved = dup(2);
  ck_assert_int_ge(stderr_saved, 0);
  ck_assert_int_eq(dup2(fds[1], 2), 2);
  close(fds[1]);
  stderr_pipe = fds[0];
}

static const char* stderr_end(void) {
  dup2(stderr_saved, 2);
  close(stderr_saved);
  ssize_t n = read(stderr_pipe, stderr_buf, sizeof stderr_buf - 1);
  close(stderr_pipe);
  stderr_buf[n > 0 ? n : 0] = 0;
  return stderr_buf;
}

#define STATS_SAME(field)                                                                         \
  REQUIRE(after.field == before.field, "stats." #field " went from %zu to %zu after the failures", \
          before.field, after.field)

START_TEST(test_enomem_unbacked) {
  int mode = overcommit_mode();
  const size_t n = opaque(unbacked_size(_i));
  if (mode == 1) {
    printf("test_enomem_unbacked(%zu bytes): SKIPPED: vm.overcommit_memory is 1 (always overcommit), "
           "the kernel and glibc back any size\n", n);
    fflush(stdout);
    return;
  }
  printf("test_enomem_unbacked: %zu bytes, vm.overcommit_memory %d\n", n, mode);
#ifdef HH_TEST_OVERRIDE
  /* the standard names below must reach hardheap, not the C library */
  void* mine = std_malloc(100);
  ck_assert(hh_heap_contains(hh_heap_get_default(), mine));
  free(mine);
#else
  printf("test_enomem_unbacked: the standard names are not hardheap's in this build (a sanitizer's "
         "malloc): only the hh_ calls are checked\n");
#endif
  fflush(stdout);
  const size_t two_mib = opaque(2 * MiB), eight_mib = opaque(8 * MiB);

  /* Live blocks of each kind, for realloc; set up before the baseline. */
  hh_heap_t* heap = hh_heap_new();
  ck_assert_ptr_nonnull(heap);
  const size_t sizes[] = {1000, 300 * KiB, 5 * MiB};
  uint8_t* blocks[3];
  size_t usable[3];
  for (int k = 0; k < 3; k++) {
    blocks[k] = hh_malloc(sizes[k]);
    ck_assert_ptr_nonnull(blocks[k]);
    fill(blocks[k], sizes[k], 90u + (unsigned)k);
    usable[k] = hh_usable_size(blocks[k]);
  }
  uint8_t* hblock = hh_heap_malloc(heap, 1000);
  ck_assert_ptr_nonnull(hblock);
  fill(hblock, 1000, 99);
  /* What a failed request's collection would give back goes first. */
  hh_collect(true);
  hh_heap_collect(heap, true);
  stderr_begin();
  const hh_stats_t before = stats_now();
  const size_t mapped_before = mapped_bytes();

  /* From here on only REQUIRE (no Check call while nothing fails). */
  EXPECT_ENOMEM(hh_malloc(n));
  EXPECT_ENOMEM(hh_zalloc(n));
  EXPECT_ENOMEM(hh_calloc(1, n));
  EXPECT_ENOMEM(hh_calloc(n / 16, 16));
  EXPECT_ENOMEM(hh_realloc(NULL, n));
  EXPECT_ENOMEM(hh_reallocarray(NULL, n / 8, 8));
  EXPECT_ENOMEM(hh_malloc_aligned(n, 64));
  EXPECT_ENOMEM(hh_malloc_aligned(n, two_mib));   /* huge, aligned within its first 4 MiB */
  EXPECT_ENOMEM(hh_malloc_aligned(n, eight_mib)); /* huge, aligned beyond a segment */
  EXPECT_ENOMEM(hh_zalloc_aligned(n, 4096));
  EXPECT_ENOMEM(hh_calloc_aligned(n / 16, 16, 64));
  EXPECT_ENOMEM(hh_realloc_aligned(NULL, n, 64));
  EXPECT_ENOMEM(hh_aligned_alloc(64, n));
  EXPECT_ENOMEM(hh_aligned_alloc(eight_mib, n));
  EXPECT_ENOMEM(hh_memalign(4096, n));
  EXPECT_ENOMEM(hh_memalign(two_mib, n));
  EXPECT_ENOMEM(hh_valloc(n));
  EXPECT_ENOMEM(hh_pvalloc(n));
  EXPECT_ENOMEM(hh_pvalloc(n - 1));
  EXPECT_MEMALIGN_ENOMEM(hh_posix_memalign, 64, n);
  EXPECT_MEMALIGN_ENOMEM(hh_posix_memalign, eight_mib, n);
  for (int k = 0; k < 3; k++) {  /* small, large, huge: the block stays */
    EXPECT_ENOMEM(hh_realloc(blocks[k], n));
    EXPECT_ENOMEM(hh_reallocarray(blocks[k], n / 8, 8));
    EXPECT_ENOMEM(hh_realloc_aligned(blocks[k], n, 64));
  }
  EXPECT_ENOMEM(hh_reallocf(NULL, n));
  EXPECT_ENOMEM(hh_heap_malloc(heap, n));
  EXPECT_ENOMEM(hh_heap_zalloc(heap, n));
  EXPECT_ENOMEM(hh_heap_calloc(heap, n / 16, 16));
  EXPECT_ENOMEM(hh_heap_realloc(heap, NULL, n));
  EXPECT_ENOMEM(hh_heap_realloc(heap, hblock, n));
  EXPECT_ENOMEM(hh_heap_malloc_aligned(heap, n, 64));
  EXPECT_ENOMEM(hh_heap_malloc_aligned(heap, n, eight_mib));
#ifdef HH_TEST_OVERRIDE
  EXPECT_ENOMEM(std_malloc(n));
  EXPECT_ENOMEM(std_calloc(1, n));
  EXPECT_ENOMEM(std_calloc(n / 16, 16));
  EXPECT_ENOMEM(std_realloc(NULL, n));
  EXPECT_ENOMEM(std_reallocarray(NULL, n / 8, 8));
  EXPECT_ENOMEM(std_aligned_alloc(64, n));
  EXPECT_ENOMEM(std_aligned_alloc(eight_mib, n));
  EXPECT_ENOMEM(std_memalign(4096, n));
  EXPECT_ENOMEM(std_valloc(n));
  EXPECT_ENOMEM(std_pvalloc(n));
  EXPECT_MEMALIGN_ENOMEM(std_posix_memalign, 64, n);
  EXPECT_MEMALIGN_ENOMEM(std_posix_memalign, eight_mib, n);
  for (int k = 0; k < 3; k++) {
    EXPECT_ENOMEM(std_realloc(blocks[k], n));
    EXPECT_ENOMEM(std_reallocarray(blocks[k], n / 8, 8));
  }
#endif

  /* Nothing was left mapped, nothing counted (not even in a peak), nothing printed. */
  const size_t mapped_after = mapped_bytes();
  const hh_stats_t after = stats_now();
  const char* messages = stderr_end();
  REQUIRE(messages[0] == 0, "a plain ENOMEM printed: %s", messages);
  REQUIRE(mapped_after == mapped_before, "%zu bytes mapped before the failures, %zu after", mapped_before,
          mapped_after);
  STATS_SAME(reserved);
  STATS_SAME(reserved_peak);
  /* the background purger may return memory meanwhile: committed can only go down */
  REQUIRE(after.committed <= before.committed, "stats.committed went from %zu to %zu after the failures",
          before.committed, after.committed);
  STATS_SAME(committed_peak);
  STATS_SAME(segments);
  STATS_SAME(segments_peak);
  /* a failed request collects the heap before it gives up: pages can only go */
  REQUIRE(after.pages <= before.pages, "stats.pages went from %zu to %zu after the failures", before.pages,
          after.pages);
  STATS_SAME(huge_count);

  /* The old blocks are valid and unchanged, and allocation still works. */
  for (int k = 0; k < 3; k++) {
    REQUIRE(hh_usable_size(blocks[k]) == usable[k], "block %d: usable size changed", k);
    size_t bad = check_fill(blocks[k], sizes[k], 90u + (unsigned)k);
    REQUIRE(bad == SIZE_MAX, "block %d (%zu bytes) changed at byte %zu", k, sizes[k], bad);
    blocks[k] = hh_realloc(blocks[k], sizes[k] * 2);
    ck_assert_ptr_nonnull(blocks[k]);
    ck_assert_uint_eq(check_fill(blocks[k], sizes[k], 90u + (unsigned)k), SIZE_MAX);
    hh_free(blocks[k]);
  }
  ck_assert_uint_eq(check_fill(hblock, 1000, 99), SIZE_MAX);
  hh_free(hblock);
  hh_heap_delete(heap);
  void* p = hh_malloc(12345);
  ck_assert_ptr_nonnull(p);
  hh_free(p);
  p = hh_malloc(5 * MiB);
  ck_assert_ptr_nonnull(p);
  hh_free(p);
}
END_TEST

/* ---- strings ------------------------------------------------------------ */

START_TEST(test_strdup_strndup) {
  char* s = hh_strdup("");
  ck_assert_ptr_nonnull(s);
  ck_assert_str_eq(s, "");
  hh_free(s);

  s = hh_strdup("hello, world");
  ck_assert_ptr_nonnull(s);
  ck_assert_str_eq(s, "hello, world");
  ck_assert_uint_ge(hh_usable_size(s), 13);
  hh_free(s);

  enum { LONG = 100000 };
  char* big = hh_malloc(LONG + 1);
  ck_assert_ptr_nonnull(big);
  for (size_t i = 0; i < LONG; i++) big[i] = (char)('a' + i % 26);
  big[LONG] = '\0';
  s = hh_strdup(big);
  ck_assert_ptr_nonnull(s);
  ck_assert_ptr_ne(s, big);
  ck_assert_int_eq(memcmp(s, big, LONG + 1), 0);
  hh_free(s);
  /* strndup truncating a long string. */
  s = hh_strndup(big, 70000);
  ck_assert_ptr_nonnull(s);
  ck_assert_uint_eq(strlen(s), 70000);
  ck_assert_int_eq(memcmp(s, big, 70000), 0);
  hh_free(s);
  hh_free(big);

  s = hh_strndup("hello", 3);
  ck_assert_ptr_nonnull(s);
  ck_assert_str_eq(s, "hel");
  hh_free(s);

  s = hh_strndup("hello", 5);
  ck_assert_ptr_nonnull(s);
  ck_assert_str_eq(s, "hello");
  hh_free(s);

  s = hh_strndup("hello", 100);
  ck_assert_ptr_nonnull(s);
  ck_assert_str_eq(s, "hello");
  hh_free(s);

  s = hh_strndup("hello", opaque(SIZE_MAX)); /* n + 1 must not overflow */
  ck_assert_ptr_nonnull(s);
  ck_assert_str_eq(s, "hello");
  hh_free(s);

  s = hh_strndup("hello", 0);
  ck_assert_ptr_nonnull(s);
  ck_assert_str_eq(s, "");
  hh_free(s);

  /* The source need not be NUL-terminated within n bytes. */
  char* raw = hh_malloc(4);
  ck_assert_ptr_nonnull(raw);
  memcpy(raw, "abcd", 4);
  s = hh_strndup(raw, 4);
  ck_assert_ptr_nonnull(s);
  ck_assert_str_eq(s, "abcd");
  hh_free(s);
  hh_free(raw);
}
END_TEST

/* ---- usable size -------------------------------------------------------- */

START_TEST(test_usable_size_writable) {
  ck_assert_uint_eq(hh_usable_size(NULL), 0);
  /* Fill whole usable areas of neighbouring blocks with distinct bytes; any
   * overstated usable size corrupts a neighbour. */
  const size_t sizes[] = {0,    1,     8,     15,    16,     17,      24,      33,
                          48,   63,    100,   127,   200,    500,     1000,    1023,
                          2000, 4095,  5000,  9000,  20000,  40000,   65535,   100000,
                          300000, 1 * MiB + 3, 2 * MiB - 5, 3 * MiB + 7};
  enum { PER = 24 };
  uint8_t* ps[PER];
  size_t us[PER];
  for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
    size_t cnt = sizes[s] >= 1 * MiB ? 4 : PER;
    for (size_t i = 0; i < cnt; i++) {
      ps[i] = hh_malloc(sizes[s]);
      REQUIRE(ps[i] != NULL, "hh_malloc(%zu) failed", sizes[s]);
      us[i] = hh_usable_size(ps[i]);
      REQUIRE(us[i] >= sizes[s], "usable_size(malloc(%zu)) = %zu", sizes[s], us[i]);
      memset(ps[i], (int)(i + 1), us[i]);
    }
    for (size_t i = 0; i < cnt; i++) {
      for (size_t j = 0; j < us[i]; j++)
        REQUIRE(ps[i][j] == (uint8_t)(i + 1),
                "size %zu: block %zu byte %zu of %zu overwritten (0x%02x)", sizes[s], i, j,
                us[i], ps[i][j]);
      REQUIRE(hh_usable_size(ps[i]) == us[i], "usable_size changed after writing");
    }
    for (size_t i = 0; i < cnt; i++) hh_free(ps[i]);
  }
}
END_TEST

/* ---- statistics --------------------------------------------------------- */

static void check_stats_invariants(const hh_stats_t* s) {
  REQUIRE(s->segments_peak >= s->segments, "segments_peak %zu < segments %zu", s->segments_peak,
          s->segments);
  REQUIRE(s->pages_peak >= s->pages, "pages_peak %zu < pages %zu", s->pages_peak, s->pages);
  REQUIRE(s->reserved_peak >= s->reserved, "reserved_peak %zu < reserved %zu", s->reserved_peak,
          s->reserved);
  REQUIRE(s->committed_peak >= s->committed, "committed_peak %zu < committed %zu",
          s->committed_peak, s->committed);
  REQUIRE(s->committed <= s->reserved, "committed %zu > reserved %zu", s->committed,
          s->reserved);
  REQUIRE(s->segments_cached <= s->segments, "segments_cached %zu > segments %zu",
          s->segments_cached, s->segments);
  REQUIRE(s->huge_count <= s->segments, "huge_count %zu > segments %zu", s->huge_count,
          s->segments);
}

START_TEST(test_stats_huge_and_collect) {
  hh_stats_t s0 = stats_now();
  check_stats_invariants(&s0);

  uint8_t* small[64];
  for (int i = 0; i < 64; i++) {
    small[i] = hh_malloc((size_t)(i + 1) * 100);
    ck_assert_ptr_nonnull(small[i]);
  }
  uint8_t* p = hh_malloc(5 * MiB);
  ck_assert_ptr_nonnull(p);
  memset(p, 0x5A, 5 * MiB);

  hh_stats_t s1 = stats_now();
  check_stats_invariants(&s1);
  ck_assert_uint_ge(s1.huge_count, 1);
  ck_assert_uint_eq(s1.huge_count, s0.huge_count + 1);
  ck_assert_uint_ge(s1.reserved, 5 * MiB);
  ck_assert_uint_ge(s1.committed, 5 * MiB);
  ck_assert_uint_ge(s1.reserved_peak, 5 * MiB);
  ck_assert_uint_ge(s1.segments, 1);
  ck_assert_uint_ge(s1.pages, 1);
  ck_assert_uint_ge(s1.mmap_calls, 1);

  hh_free(p);
  for (int i = 0; i < 64; i++) hh_free(small[i]);
  hh_collect(true);

  hh_stats_t s2 = stats_now();
  check_stats_invariants(&s2);
  ck_assert_uint_eq(s2.huge_count, 0);
  ck_assert_uint_eq(s2.segments_cached, 0);
  /* The huge block's address space went back to the OS. */
  ck_assert_uint_le(s2.reserved + 5 * MiB, s1.reserved);
  ck_assert_uint_ge(s2.munmap_calls, s1.munmap_calls + 1);
  ck_assert_uint_ge(s2.reserved_peak, s1.reserved);
}
END_TEST

/* The secure build's quarantine of huge blocks (outside tracking builds):
 * a freed block is not handed out again before HH_HUGE_QUARANTINE_WAIT (8)
 * later huge frees; then its mapping serves a request it fits, with memory
 * that reads as zero (its resident pages were zeroed at the free, not
 * returned), and it is purged at once under PURGE_DELAY 0. */
START_TEST(test_huge_quarantine_reuse) {
#ifdef HH_TEST_TRACKING
  return;  /* a tracking build never hands a quarantined block out again */
#endif
  if (!hh_is_secure()) return;
  enum { WAIT = 8 };
  const size_t size = 9 * MiB;
  const long delay = hh_option_get(hh_option_purge_delay);
  hh_option_set(hh_option_purge_delay, -1);
  hh_collect(true);
  uint8_t* others[WAIT];
  for (int i = 0; i < WAIT; i++) {
    others[i] = hh_malloc(size);
    ck_assert_ptr_nonnull(others[i]);
  }
  uint8_t* victim = hh_malloc(size);
  ck_assert_ptr_nonnull(victim);
  memset(victim, 0xAB, size);
  hh_stats_t s0 = stats_now();
  hh_free(victim);
  hh_stats_t s1 = stats_now();
  /* its memory is kept (zeroed, inaccessible), not returned */
  ck_assert_uint_eq(s1.committed, s0.committed);
  /* not before it has waited: a fresh mapping */
  uint8_t* early = hh_malloc(size);
  ck_assert_ptr_nonnull(early);
  ck_assert_ptr_ne(early, victim);
  for (int i = 0; i < WAIT - 1; i++) hh_free(others[i]);
  hh_stats_t s2 = stats_now();
  uint8_t* still_early = hh_malloc(size);  /* victim has waited for 7 frees (early is live) */
  ck_assert_ptr_ne(still_early, victim);
  hh_free(others[WAIT - 1]);
  hh_free(still_early);  /* now 9 frees after victim's */
  uint8_t* reused = hh_calloc(1, size - 64 * KiB);
  ck_assert_ptr_eq(reused, victim);
  hh_stats_t s3 = stats_now();
  ck_assert_uint_eq(s3.mmap_calls, s2.mmap_calls + 1);  /* still_early's mapping, none for reused */
  REQUIRE(first_nonzero(reused, hh_usable_size(reused)) == SIZE_MAX, "a reused quarantined block is not zero");
  /* PURGE_DELAY 0: a freed block's memory goes back at once */
  hh_option_set(hh_option_purge_delay, 0);
  memset(reused, 0x5A, size - 64 * KiB);
  hh_stats_t s4 = stats_now();
  hh_free(reused);
  hh_stats_t s5 = stats_now();
  ck_assert_uint_le(s5.committed + size - 128 * KiB, s4.committed);
  hh_free(early);
  hh_collect(true);
  hh_stats_t s6 = stats_now();
  ck_assert_uint_eq(s6.huge_count, 0);
  check_stats_invariants(&s6);
  hh_option_set(hh_option_purge_delay, delay);
}
END_TEST

/* Freed huge blocks: the fast build keeps their mappings for the next huge
 * request that fits (no mmap, only what the request needs of it, dirty
 * memory zeroed for calloc, purged after PURGE_DELAY, unmapped by
 * collect(force)); the secure build quarantines them, so a freed huge
 * block's address is not handed out again at once, and a tracking build
 * unmaps them. */
START_TEST(test_huge_mapping_reuse) {
  const long delay = hh_option_get(hh_option_purge_delay);
  hh_option_set(hh_option_purge_delay, -1);  /* no purge during the test but the one asked for */
  hh_collect(true);
  uint8_t* p = hh_malloc(9 * MiB);
  ck_assert_ptr_nonnull(p);
  memset(p, 0xAB, 9 * MiB);
  hh_free(p);
  hh_stats_t s0 = stats_now();
  uint8_t* q = hh_calloc(1, 6 * MiB);
  ck_assert_ptr_nonnull(q);
  hh_stats_t s1 = stats_now();
  check_stats_invariants(&s1);
  REQUIRE(first_nonzero(q, 6 * MiB) == SIZE_MAX, "calloc of a reused huge mapping is not zero");
  ck_assert_uint_ge(hh_usable_size(q), 6 * MiB);
  ck_assert_uint_lt(hh_usable_size(q), 6 * MiB + 64 * KiB);  /* not the whole 9 MiB mapping */
#ifdef HH_TEST_TRACKING
  const bool cached = false;  /* a tracking build unmaps freed huge blocks */
#else
  const bool cached = !hh_is_secure();
#endif
  if (!cached) {
    if (hh_is_secure()) ck_assert_ptr_ne(q, p);  /* p's segment waits in the quarantine */
    ck_assert_uint_gt(s1.mmap_calls, s0.mmap_calls);
    hh_free(q);
  } else {
    ck_assert_ptr_eq(q, p);
    ck_assert_uint_eq(s1.mmap_calls, s0.mmap_calls);
    ck_assert_uint_eq(s1.segments_cached + 1, s0.segments_cached);
    /* a request the cached mapping is more than twice as big as maps anew */
    hh_free(q);
    uint8_t* small_huge = hh_malloc(3 * MiB);
    ck_assert_ptr_nonnull(small_huge);
    ck_assert_ptr_ne(small_huge, p);
    hh_free(small_huge);
    /* PURGE_DELAY 0: a freed huge block's memory goes back at once */
    hh_option_set(hh_option_purge_delay, 0);
    uint8_t* r = hh_malloc(8 * MiB);
    memset(r, 0x5A, 8 * MiB);
    hh_stats_t s2 = stats_now();
    hh_free(r);
    hh_stats_t s3 = stats_now();
    ck_assert_uint_le(s3.committed + 8 * MiB - 64 * KiB, s2.committed);
    /* SEGMENT_CACHE 0: nothing is kept */
    hh_option_set(hh_option_segment_cache, 0);
    r = hh_malloc(8 * MiB);
    hh_stats_t s4 = stats_now();
    hh_free(r);
    hh_stats_t s5 = stats_now();
    ck_assert_uint_eq(s5.segments_cached + 0, s4.segments_cached);
    ck_assert_uint_le(s5.reserved + 8 * MiB, s4.reserved);
    hh_option_set(hh_option_segment_cache, 4);
  }
  hh_collect(true);
  hh_stats_t s6 = stats_now();
  ck_assert_uint_eq(s6.segments_cached, 0);
  ck_assert_uint_eq(s6.huge_count, 0);
  hh_option_set(hh_option_purge_delay, delay);
}
END_TEST

START_TEST(test_stats_print) {
  void* p = hh_malloc(100);
  ck_assert_ptr_nonnull(p);
  hh_stats_print();
  hh_free(p);
  hh_stats_print();
}
END_TEST

START_TEST(test_bin_stats) {
  const size_t nb = hh_bin_count();
  ck_assert_uint_gt(nb, 0);
  hh_bin_stats_t bs;
  ck_assert(!hh_bin_stats_get(nb, &bs));
  ck_assert(!hh_bin_stats_get(nb + 1, &bs));
  ck_assert(!hh_bin_stats_get(SIZE_MAX, &bs));

  enum { N = 100 };
  void* ps[N];
  for (int i = 0; i < N; i++) {
    ps[i] = hh_malloc(40);  /* bin of 48 with or without canaries */
    ck_assert_ptr_nonnull(ps[i]);
  }
  bool found = false;
  for (size_t b = 0; b < nb; b++) {
    memset(&bs, 0xFF, sizeof bs);
    REQUIRE(hh_bin_stats_get(b, &bs), "hh_bin_stats_get(%zu) failed (bin_count %zu)", b, nb);
    REQUIRE(bs.blocks_used <= bs.blocks_capacity, "bin %zu: blocks_used %zu > capacity %zu", b,
            bs.blocks_used, bs.blocks_capacity);
    if (bs.block_size == 0)
      REQUIRE(bs.pages == 0 && bs.blocks_used == 0,
              "unused bin %zu has %zu pages, %zu blocks", b, bs.pages, bs.blocks_used);
    if (bs.block_size == 48 && bs.blocks_used >= N) {
      REQUIRE(bs.pages >= 1, "bin %zu holds %zu blocks in 0 pages", b, bs.blocks_used);
      found = true;
    }
  }
  ck_assert_msg(found, "no bin with block_size 48 reports >= %d used blocks", N);
  for (int i = 0; i < N; i++) hh_free(ps[i]);
}
END_TEST

/* ---- options ------------------------------------------------------------ */

START_TEST(test_options) {
  long orig = hh_option_get(hh_option_purge_delay);
  ck_assert(hh_option_set(hh_option_purge_delay, 1234));
  ck_assert_int_eq(hh_option_get(hh_option_purge_delay), 1234);
  ck_assert(hh_option_set(hh_option_purge_delay, 0));
  ck_assert_int_eq(hh_option_get(hh_option_purge_delay), 0);
  ck_assert(hh_option_set(hh_option_purge_delay, -1));
  ck_assert_int_eq(hh_option_get(hh_option_purge_delay), -1);
  ck_assert(hh_option_set(hh_option_purge_delay, orig));
  ck_assert_int_eq(hh_option_get(hh_option_purge_delay), orig);

  long v = hh_option_get(hh_option_verbose);
  ck_assert(hh_option_set(hh_option_verbose, 1));
  ck_assert_int_eq(hh_option_get(hh_option_verbose), 1);
  ck_assert(hh_option_set(hh_option_verbose, v));
  ck_assert_int_eq(hh_option_get(hh_option_verbose), v);

  /* sampling: on in the secure build (one in 5000), off in the default one */
#ifdef HH_TEST_TRACKING
  ck_assert_int_eq(hh_option_get(hh_option_guarded_sample_rate), 0);  /* tracking builds have no sampler */
#else
  ck_assert_int_eq(hh_option_get(hh_option_guarded_sample_rate), hh_is_secure() ? 5000 : 0);
#endif
  ck_assert(!hh_option_set(hh_option_guarded_sample_rate, -1));
  ck_assert(hh_option_set(hh_option_guarded_sample_seed, 42));
  ck_assert_int_eq(hh_option_get(hh_option_guarded_sample_seed), 42);
  ck_assert(hh_option_set(hh_option_guarded_sample_seed, 0));

  ck_assert(!hh_option_set(hh_option_count_, 0));
  ck_assert(!hh_option_set(hh_option_count_, 1));
  ck_assert_int_eq(hh_option_get(hh_option_count_), 0);

  /* The allocator keeps working with purging at once and never. */
  ck_assert(hh_option_set(hh_option_purge_delay, 0));
  void* p = hh_malloc(100000);
  ck_assert_ptr_nonnull(p);
  hh_free(p);
  ck_assert(hh_option_set(hh_option_purge_delay, -1));
  p = hh_malloc(100000);
  ck_assert_ptr_nonnull(p);
  hh_free(p);
  ck_assert(hh_option_set(hh_option_purge_delay, orig));
}
END_TEST

/* ------------------------------------------------------------------------ */

static Suite* api_suite(void) {
  Suite* s = suite_create("hardheap_api");

  TCase* tc = tcase_create("basics");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_version);
  tcase_add_test(tc, test_free_null);
  tcase_add_test(tc, test_zero_size_unique);
  tcase_add_test(tc, test_min_alignment_all_functions);
  tcase_add_test(tc, test_usable_size_writable);
  tcase_add_test(tc, test_strdup_strndup);
  suite_add_tcase(s, tc);

  tc = tcase_create("size_classes");
  tcase_set_timeout(tc, 180);
  tcase_add_test(tc, test_good_size_properties);
  tcase_add_test(tc, test_size_classes_small);
  tcase_add_test(tc, test_size_classes_medium);
  tcase_add_test(tc, test_size_classes_large);
  suite_add_tcase(s, tc);

  tc = tcase_create("aligned");
  tcase_set_timeout(tc, 180);
  tcase_add_loop_test(tc, test_aligned_matrix, 0, AF_COUNT_);
  tcase_add_test(tc, test_valloc_pvalloc);
  tcase_add_test(tc, test_pvalloc_zero_is_one_page);
  tcase_add_test(tc, test_invalid_alignment);
  suite_add_tcase(s, tc);

  tc = tcase_create("realloc");
  tcase_set_timeout(tc, 180);
  tcase_add_test(tc, test_realloc_chain);
  tcase_add_test(tc, test_realloc_null_and_zero);
  tcase_add_test(tc, test_realloc_aligned_keeps_alignment);
  tcase_add_test(tc, test_reallocf);
  tcase_add_test(tc, test_large_spans);
  tcase_add_test(tc, test_large_guard_follows_block);
  suite_add_tcase(s, tc);

  tc = tcase_create("zeroing");
  tcase_set_timeout(tc, 180);
  tcase_add_loop_test(tc, test_zeroing_on_reuse, 0, Z_COUNT_);
  tcase_add_test(tc, test_zeroing_after_recut);
  suite_add_tcase(s, tc);

  tc = tcase_create("errors");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_enomem);
  tcase_add_loop_test(tc, test_enomem_unbacked, 0, 2);
  suite_add_tcase(s, tc);

  tc = tcase_create("stats_options");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_stats_huge_and_collect);
  tcase_add_test(tc, test_huge_mapping_reuse);
  tcase_add_test(tc, test_huge_quarantine_reuse);
  tcase_add_test(tc, test_stats_print);
  tcase_add_test(tc, test_bin_stats);
  tcase_add_test(tc, test_options);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  printf("hardheap %d (%s build)\n", hh_version(), hh_is_secure() ? "secure" : "default");
  SRunner* sr = srunner_create(api_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
