#!/usr/bin/env bash
# tests/dropin/gcc.sh LIB - hardheap as a drop-in malloc for the GCC toolchain.
#
# Generates a C program of 20 modules (hash tables, sorting, string building,
# a small interpreter, matrices, recursion, and a generated 300-case switch
# and 60 chained inline functions per module, so cc1 has real work: inlining,
# switch lowering, jump tables, loop optimisation), then, under glibc malloc
# and with LD_PRELOAD=LIB (inherited by gcc's cc1, as, collect2 and ld):
#   1. compiles every module with -O2 -g (two at a time) and links the program,
#   2. builds the whole program again in one command with -O3 -flto,
#   3. runs both programs.
# Every object file and both executables must be byte-for-byte identical to
# the ones built under glibc (-frandom-seed keeps them deterministic; the
# sources are compiled from the same directory), and the programs' output
# must be identical too.
#
# Exit status: 0 pass, 1 fail, 2 usage, 77 skip (gcc not installed).
set -euo pipefail

NAME=gcc
MODULES=${DROPIN_GCC_MODULES:-20}
CC=${DROPIN_CC:-gcc}

# shellcheck source=tests/dropin/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
dropin_lib "$@"
dropin_need "$CC" awk cmp

WORK=$(mktemp -d "${TMPDIR:-/tmp}/hh-dropin-$NAME.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
export LC_ALL=C TZ=UTC SOURCE_DATE_EPOCH=1700000000
unset CFLAGS CPPFLAGS LDFLAGS GCC_EXEC_PREFIX COMPILER_PATH LIBRARY_PATH CPATH C_INCLUDE_PATH DEPENDENCIES_OUTPUT SUNPRO_DEPENDENCIES
export TMPDIR=$WORK/tmp
mkdir -p "$TMPDIR"

check_preload

# ---------------------------------------------------------------- sources
SRC=$WORK/src
mkdir -p "$SRC"
cat >"$SRC/common.h" <<'EOF'
#ifndef COMMON_H
#define COMMON_H
#include <stddef.h>
#include <stdint.h>
typedef struct { uint64_t state; } rng_t;
static inline uint64_t rng_next(rng_t* r) {
  uint64_t x = r->state;
  x ^= x << 13; x ^= x >> 7; x ^= x << 17;
  return r->state = x;
}
typedef uint64_t (*module_fn)(uint64_t seed, char* buf, size_t len);
#define DECLARE_MODULE(k) uint64_t module_##k(uint64_t seed, char* buf, size_t len);
#endif
EOF

# One module: fixed algorithms parameterised by K, plus generated code.
module_source() {
  local k=$1
  sed "s/@K@/$k/g" <<'EOF'
#include "common.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define K @K@
enum { TABLE_BITS = 10 + K % 4, TABLE_SIZE = 1 << TABLE_BITS };

struct entry { uint64_t key; uint64_t value; struct entry* next; };
struct table { struct entry* slots[TABLE_SIZE]; size_t count; };

static uint64_t mix(uint64_t x) {
  x ^= x >> 33; x *= 0xff51afd7ed558ccdULL; x ^= x >> 33; x *= 0xc4ceb9fe1a85ec53ULL; x ^= x >> 33;
  return x + K;
}

static struct entry* table_find(struct table* t, uint64_t key) {
  for (struct entry* e = t->slots[mix(key) & (TABLE_SIZE - 1)]; e != NULL; e = e->next)
    if (e->key == key) return e;
  return NULL;
}

static void table_add(struct table* t, uint64_t key, uint64_t value) {
  struct entry* e = table_find(t, key);
  if (e != NULL) { e->value += value; return; }
  e = malloc(sizeof *e);
  if (e == NULL) abort();
  size_t slot = mix(key) & (TABLE_SIZE - 1);
  *e = (struct entry){key, value, t->slots[slot]};
  t->slots[slot] = e;
  t->count++;
}

static uint64_t table_free(struct table* t) {
  uint64_t sum = 0;
  for (size_t i = 0; i < TABLE_SIZE; i++) {
    struct entry* e = t->slots[i];
    while (e != NULL) { struct entry* n = e->next; sum = sum * 31 + e->key * e->value; free(e); e = n; }
  }
  return sum;
}

static int cmp_u64(const void* a, const void* b) {
  uint64_t x = *(const uint64_t*)a, y = *(const uint64_t*)b;
  return (x > y) - (x < y);
}

static void insertion_sort(uint32_t* a, size_t n) {
  for (size_t i = 1; i < n; i++) {
    uint32_t v = a[i]; size_t j = i;
    while (j > 0 && a[j - 1] > v) { a[j] = a[j - 1]; j--; }
    a[j] = v;
  }
}

static void quick_sort(uint32_t* a, size_t n) {
  while (n > 16) {
    uint32_t p = a[n / 2]; size_t i = 0, j = n - 1;
    for (;;) {
      while (a[i] < p) i++;
      while (a[j] > p) j--;
      if (i >= j) break;
      uint32_t t = a[i]; a[i] = a[j]; a[j] = t; i++; j--;
    }
    if (j + 1 < n - j - 1) { quick_sort(a, j + 1); a += j + 1; n -= j + 1; }
    else { quick_sort(a + j + 1, n - j - 1); n = j + 1; }
  }
  insertion_sort(a, n);
}

/* a tiny stack machine */
enum op { PUSH, ADD, MUL, XOR, DUP, SWAP, JNZ, DEC, HALT };
struct insn { enum op op; uint64_t arg; };
static uint64_t interpret(const struct insn* code, uint64_t start) {
  uint64_t stack[64]; int sp = 0; int pc = 0; long steps = 0;
  stack[sp++] = start;
  while (steps++ < 100000) {
    const struct insn* in = &code[pc++];
    switch (in->op) {
    case PUSH: stack[sp++] = in->arg; break;
    case ADD: sp--; stack[sp - 1] += stack[sp]; break;
    case MUL: sp--; stack[sp - 1] *= stack[sp]; break;
    case XOR: sp--; stack[sp - 1] ^= stack[sp]; break;
    case DUP: stack[sp] = stack[sp - 1]; sp++; break;
    case SWAP: { uint64_t t = stack[sp - 1]; stack[sp - 1] = stack[sp - 2]; stack[sp - 2] = t; } break;
    case DEC: stack[sp - 1]--; break;
    case JNZ: if (stack[--sp] != 0) pc = (int)in->arg; break;
    case HALT: return stack[sp - 1];
    }
  }
  return 0;
}

static uint64_t fib_memo(unsigned n, uint64_t* memo) {
  if (n < 2) return n;
  if (memo[n] != 0) return memo[n];
  return memo[n] = fib_memo(n - 1, memo) + fib_memo(n - 2, memo);
}

static double matrix_trace(unsigned n, rng_t* r) {
  double* a = malloc(n * n * sizeof(double));
  double* b = malloc(n * n * sizeof(double));
  double* c = calloc(n * n, sizeof(double));
  if (a == NULL || b == NULL || c == NULL) abort();
  for (unsigned i = 0; i < n * n; i++) { a[i] = (double)(rng_next(r) % 1000) / 100.0; b[i] = (double)(rng_next(r) % 1000) / 250.0; }
  for (unsigned i = 0; i < n; i++)
    for (unsigned k = 0; k < n; k++)
      for (unsigned j = 0; j < n; j++) c[i * n + j] += a[i * n + k] * b[k * n + j];
  double t = 0;
  for (unsigned i = 0; i < n; i++) t += c[i * n + i];
  free(a); free(b); free(c);
  return t;
}

#include "gen@K@.h"

uint64_t module_@K@(uint64_t seed, char* buf, size_t len) {
  rng_t r = {seed * 2654435761u + K + 1};
  uint64_t h = K;

  struct table* t = calloc(1, sizeof *t);
  if (t == NULL) abort();
  for (int i = 0; i < 20000; i++) table_add(t, rng_next(&r) % (5000 + 100 * K), (uint64_t)i);
  h ^= t->count * 1000003u;
  h = h * 31 + table_free(t);
  free(t);

  size_t n = 20000 + 1000 * K;
  uint32_t* a = malloc(n * sizeof *a);
  uint64_t* b = malloc(n * sizeof *b);
  if (a == NULL || b == NULL) abort();
  for (size_t i = 0; i < n; i++) { a[i] = (uint32_t)rng_next(&r); b[i] = rng_next(&r) % 100000; }
  quick_sort(a, n);
  qsort(b, n, sizeof *b, cmp_u64);
  for (size_t i = 1; i < n; i++) if (a[i - 1] > a[i] || b[i - 1] > b[i]) abort();
  h = h * 31 + a[n / 3] + b[n / 2];
  free(a); free(b);

  char* s = NULL; size_t slen = 0, cap = 0;
  for (int i = 0; i < 500 + 50 * K; i++) {
    char tmp[64];
    int m = snprintf(tmp, sizeof tmp, "%s%d:%llx", i ? "," : "", i, (unsigned long long)(rng_next(&r) % 65536));
    if (slen + (size_t)m + 1 > cap) { cap = cap ? cap * 2 : 16; s = realloc(s, cap); if (s == NULL) abort(); }
    memcpy(s + slen, tmp, (size_t)m + 1); slen += (size_t)m;
  }
  size_t fields = 0;
  for (char* tok = strtok(s, ","); tok != NULL; tok = strtok(NULL, ",")) fields += strlen(tok);
  h = h * 31 + slen * 7 + fields;
  free(s);

  struct insn prog[] = {{PUSH, 1}, {SWAP, 0}, {DUP, 0}, {JNZ, 5}, {HALT, 0},
                        {SWAP, 0}, {PUSH, 3 + K}, {MUL, 0}, {PUSH, K}, {XOR, 0}, {SWAP, 0}, {DEC, 0}, {DUP, 0}, {JNZ, 5}, {SWAP, 0}, {HALT, 0}};
  h = h * 31 + (uint64_t)interpret(prog, 30 + K);

  uint64_t memo[90] = {0};
  h = h * 31 + fib_memo(60 + K, memo);
  h = h * 31 + (uint64_t)(matrix_trace(24 + K, &r) * 1000.0);

  uint32_t g = (uint32_t)seed;
  for (int c = 0; c < 3000; c++) g = gen_switch_@K@(g, c % 300);
  h = h * 31 + g + gen_chain_@K@_0((uint32_t)h);

  snprintf(buf, len, "module %2d: tableprobe=%zu fib=%llu hash=%016llx", K, (size_t)TABLE_SIZE,
           (unsigned long long)memo[60 + K], (unsigned long long)h);
  return h;
}
EOF
}

# Generated code per module: a 300-case switch and 60 inline functions.
gen_header() {
  awk -v k="$1" 'function rnd(n) { seed = (seed * 16807) % 2147483647; return seed % n }
  BEGIN {
    seed = 1000 + k
    split("+ - ^ | &", ops, " ")
    printf "static uint32_t gen_switch_%d(uint32_t x, int c) {\n  switch (c) {\n", k
    for (i = 0; i < 300; i++) {
      printf "  case %d: x = (x %s %uu) * %uu; x ^= x >> %d; return x + %d;\n", i, ops[rnd(5) + 1], rnd(2000000000), 2 * rnd(1000000) + 1, 1 + rnd(30), rnd(1000)
    }
    print "  default: return x;\n  }\n}"
    for (i = 59; i >= 0; i--) {
      printf "static inline uint32_t gen_chain_%d_%d(uint32_t x) {\n", k, i
      sh = 1 + rnd(20)
      printf "  for (int i = 0; i < %d; i++) x = (x << %d | x >> %d) %s %uu;\n", 1 + rnd(8), sh, 32 - sh, ops[rnd(5) + 1], rnd(2000000000)
      if (i < 59) printf "  if (x %% %d == 0) return gen_chain_%d_%d(x + %d);\n", 2 + rnd(7), k, i + 1, i
      printf "  return x ^ %uu;\n}\n", rnd(2000000000)
    }
  }'
}

for ((k = 0; k < MODULES; k++)); do
  module_source "$k" >"$SRC/mod$k.c"
  gen_header "$k" >"$SRC/gen$k.h"
done
{
  echo '#include "common.h"'
  echo '#include <stdio.h>'
  for ((k = 0; k < MODULES; k++)); do echo "DECLARE_MODULE($k)"; done
  echo 'int main(void) {'
  echo '  static const module_fn modules[] = {'
  for ((k = 0; k < MODULES; k++)); do echo "    module_$k,"; done
  echo '  };'
  echo '  uint64_t total = 0; char line[256];'
  echo '  for (unsigned i = 0; i < sizeof modules / sizeof modules[0]; i++) {'
  echo '    total = total * 1099511628211ULL + modules[i](i + 42, line, sizeof line);'
  echo '    puts(line);'
  echo '  }'
  echo '  printf("total %016llx\n", (unsigned long long)total);'
  echo '  return 0;'
  echo '}'
} >"$SRC/main.c"
note "sources: $((MODULES + 1)) .c files, $(cat "$SRC"/*.c "$SRC"/*.h | wc -l) lines"

# ---------------------------------------------------------------- builds
CFLAGS_O2=(-std=gnu11 -O2 -g -Wall -Wextra -Wno-unused-function -Wno-unused-parameter)
build() {
  local mode=$1 obj=$WORK/$1/obj log=$WORK/$1/log start end
  mkdir -p "$obj" "$log"
  start=$(date +%s.%N)
  # two compiles at a time: lanes 0 and 1 take every other file
  local files=(main)
  for ((k = 0; k < MODULES; k++)); do files+=("mod$k"); done
  local pids=() lane
  for lane in 0 1; do
    (
      cd "$SRC"
      for ((i = lane; i < ${#files[@]}; i += 2)); do
        f=${files[i]}
        run "$mode" "$log/$f.out" "$log/$f.err" "$CC" "${CFLAGS_O2[@]}" -frandom-seed="$f" -c "$f.c" -o "$obj/$f.o"
      done
    ) &
    pids+=($!)
  done
  for lane in 0 1; do wait "${pids[lane]}" || exit 1; done
  local objs=()
  for f in "${files[@]}"; do objs+=("$obj/$f.o"); done
  (cd "$SRC" && run "$mode" "$log/link.out" "$log/link.err" "$CC" -o "$obj/prog" "${objs[@]}") || exit 1
  (cd "$SRC" && run "$mode" "$log/lto.out" "$log/lto.err" "$CC" -std=gnu11 -O3 -flto=2 -flto-partition=balanced -frandom-seed=lto \
    -Wno-unused-function -o "$obj/prog-lto" main.c mod*.c) || exit 1
  run "$mode" "$WORK/$mode/prog.txt" "$log/prog.err" "$obj/prog"
  run "$mode" "$WORK/$mode/prog-lto.txt" "$log/prog-lto.err" "$obj/prog-lto"
  end=$(date +%s.%N)
  note "$(printf '%-5s %6.2fs  %d compiles, a link and an -O3 -flto build' "$mode" "$(awk -v a="$start" -v b="$end" 'BEGIN {print b - a}')" "${#files[@]}")"
}
build glibc
build hh

status=0
for a in "$WORK"/glibc/obj/*; do
  f=$(basename "$a")
  if ! cmp -s "$a" "$WORK/hh/obj/$f"; then
    echo "FAIL($NAME): $f differs between the glibc build and the LD_PRELOAD=$LIB build:" >&2
    cmp "$a" "$WORK/hh/obj/$f" >&2 || true
    status=1
  fi
done
for f in prog.txt prog-lto.txt; do
  if ! cmp -s "$WORK/glibc/$f" "$WORK/hh/$f"; then
    echo "FAIL($NAME): output of ${f%.txt} differs:" >&2
    diff -u --label "glibc: $f" --label "hardheap: $f" "$WORK/glibc/$f" "$WORK/hh/$f" >&2 || true
    status=1
  fi
done
# compiler warnings/notes must be the same too
cat "$WORK"/glibc/log/*.err >"$WORK/glibc.diag"
cat "$WORK"/hh/log/*.err >"$WORK/hh.diag"
if ! cmp -s "$WORK/glibc.diag" "$WORK/hh.diag"; then
  echo "FAIL($NAME): compiler diagnostics differ:" >&2
  diff -u --label glibc --label hardheap "$WORK/glibc.diag" "$WORK/hh.diag" | head -n 40 >&2 || true
  status=1
fi
((status == 0)) || exit 1
cmp -s "$WORK/glibc/prog.txt" "$WORK/glibc/prog-lto.txt" || fail "baseline: the -O2 and the -O3 -flto programs print different results"
[[ $(wc -l <"$WORK/hh/prog.txt") -eq $((MODULES + 1)) ]] || fail "the program printed $(wc -l <"$WORK/hh/prog.txt") lines, expected $((MODULES + 1))"
note "$(tail -n 1 "$WORK/hh/prog.txt")"
note "PASS: $(ls "$WORK/hh/obj" | wc -l) objects and executables identical to glibc's, program output identical"
