#!/usr/bin/env bash
# tests/dropin/python.sh LIB - hardheap as a drop-in malloc for CPython.
#
# Runs a fixed list of allocation-heavy CPython regression-test modules
# (`python3 -m test`, Debian package libpython3.11-testsuite) twice: first
# under glibc malloc to get the baseline, then with LD_PRELOAD=LIB. Both runs
# use PYTHONMALLOC=malloc, so every Python object (not only the >512-byte
# ones that pymalloc forwards) is a malloc/free/realloc call, and -M 2G, so
# the big-memory variants of the tests (multi-GB strings, lists and buffers)
# run as well. Tests run in two worker processes (-j2), with a per-module
# timeout, so a deadlock shows up as a failure rather than a hang.
#
# Pass: every test module and every individual test case that passes under
# glibc also passes under LIB, no worker crashes, and no "hardheap:" message
# appears in the output. Tests that fail under glibc too are reported and
# ignored (the comparison is against the same machine, not against upstream).
# A new failure fails the test, except an ordinary assertion failure (no
# crash, timeout, MemoryError, ...) of a module that passes when it is rerun
# alone under LIB: that is reported as a timing-dependent warning.
#
# Environment: DROPIN_PYTHON (default /usr/bin/python3: Debian's python, whose
# test package is installed), DROPIN_PYTHON_TESTS (override the module list),
# DROPIN_PYTHON_JOBS (default 2).
#
# Exit status: 0 pass, 1 fail, 2 usage, 77 skip (python3 or its test suite
# not installed).
set -euo pipefail

NAME=python
PY=${DROPIN_PYTHON:-/usr/bin/python3}
JOBS=${DROPIN_PYTHON_JOBS:-2}
# About 60 s of CPU per run; the slow ones first, so that the two workers
# finish together. Chosen for allocation-heavy
# work: containers, strings, codecs, (de)serialisers, compressors, parsers,
# the compiler, the GC and weakrefs, threads.
TESTS=${DROPIN_PYTHON_TESTS:-"
  test_subprocess test_re test_zipfile test_email test_weakref test_pickle test_compile test_tarfile
  test_json test_statistics test_list test_tuple test_dict test_set test_deque test_ordered_dict
  test_dictviews test_userlist test_userdict test_userstring test_collections test_array
  test_memoryview test_buffer test_unicode test_bytes test_string test_format test_fstring
  test_textwrap test_difflib test_codecs test_pickletools test_picklebuffer test_marshal test_struct
  test_copy test_csv test_itertools test_functools test_heapq test_bisect test_sort test_iter
  test_genexps test_generators test_coroutines test_long test_float test_decimal test_fractions
  test_math test_random test_zlib test_bz2 test_lzma test_gzip test_hashlib test_hmac test_base64
  test_xml_etree test_xml_etree_c test_minidom test_sax test_pyexpat test_htmlparser test_html
  test_configparser test_argparse test_urlparse test_unicodedata test_ast test_grammar
  test_tokenize test_traceback test_exceptions test_descr test_class test_builtin test_enum
  test_dataclasses test_typing test_weakset test_gc test_sys test_datetime test_pprint test_ctypes
  test_mmap test_thread test_threading_local
"}

# shellcheck source=tests/dropin/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
dropin_lib "$@"
[[ -x $PY ]] || { echo "SKIP($NAME): $PY is not installed (Debian package python3)"; exit 77; }
env -u LD_PRELOAD "$PY" -c 'import test.libregrtest, test.support' >/dev/null 2>&1 ||
  { echo "SKIP($NAME): the test package of $PY is not installed (Debian package libpython3.11-testsuite)"; exit 77; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/hh-dropin-$NAME.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
export LC_ALL=C.UTF-8 TZ=UTC

check_preload
# and python itself must use it (a statically linked allocator would not)
LD_PRELOAD=$LIB "$PY" -c 'import sys
for l in open("/proc/self/maps"):
    if sys.argv[1] in l: sys.exit(0)
sys.exit("not mapped")' "$LIB" || fail "$LIB is not mapped into $PY under LD_PRELOAD"

# Keep only the modules this Python has (the list is for Debian 12's 3.11).
testdir=$(env -u LD_PRELOAD "$PY" -c 'import os, test; print(os.path.dirname(test.__file__))')
selected=()
for t in $TESTS; do
  if [[ -e $testdir/$t.py || -d $testdir/$t ]]; then selected+=("$t"); else note "module $t does not exist here: not run"; fi
done
((${#selected[@]} > 0)) || fail "none of the test modules exist in $testdir"

# run_suite MODE: python -m test under glibc (MODE glibc) or LIB (MODE hh).
run_suite() {
  local mode=$1 rc=0 start end
  local dir=$WORK/$mode
  mkdir -p "$dir/tmp" "$dir/cwd"
  start=$(date +%s)
  # cwd and TMPDIR inside WORK: the tests create files there, and it is removed
  (
    cd "$dir/cwd"
    export PYTHONMALLOC=malloc PYTHONHASHSEED=0 TMPDIR=$dir/tmp HOME=$dir/cwd PYTHONDONTWRITEBYTECODE=1
    unset PYTHONPATH PYTHONSTARTUP PYTHONWARNINGS
    if [[ $mode == hh ]]; then
      export LD_PRELOAD=$LIB
    else
      unset LD_PRELOAD
    fi
    exec "$PY" -m test -j"$JOBS" -M 2G --timeout 600 --junit-xml "$dir/junit.xml" "${selected[@]}"
  ) >"$dir/out.txt" 2>&1 </dev/null || rc=$?
  end=$(date +%s)
  note "$mode: python -m test exited with $rc after $((end - start)) s ($(grep -c '^[0-9:]* load avg' "$dir/out.txt" || true) progress lines)"
  echo "$rc" >"$dir/rc"
  # regrtest exits 2 when a test failed; anything else non-zero is its own failure
  if ((rc != 0 && rc != 2)); then
    tail -n 40 "$dir/out.txt" >&2
    fail "python -m test under $mode exited with status $rc (see above)"
  fi
}

# Summary of one run, from regrtest's closing report and the JUnit XML:
#   module <name> <state>     (ok, failed, env_changed, skipped, no_tests, omitted)
#   case <id> <state>         (failure/error test cases only)
summarize() {
  env -u LD_PRELOAD "$PY" - "$1/out.txt" "$1/junit.xml" "${selected[@]}" <<'EOF'
import re, sys, os
import xml.etree.ElementTree as ET
out, xml, tests = sys.argv[1], sys.argv[2], sys.argv[3:]
text = open(out, encoding="utf-8", errors="replace").read()
start = text.rfind("== Tests result:")
if start < 0:
    print("error no-summary"); sys.exit(0)
lines = text[start:].splitlines()
state = {}
section = None
names = {"failed:": "failed", "altered the execution environment:": "env_changed", "skipped:": "skipped",
         "run no tests:": "no_tests", "omitted:": "omitted"}
for line in lines[1:]:
    if line.startswith("    ") and section:
        for name in line.split():
            state[name] = section
        continue
    section = None
    for suffix, s in names.items():
        if line.endswith(suffix) and re.match(r"^\d+ tests? ", line):
            section = s
for t in tests:
    print("module", t, state.get(t, "ok"))
if os.path.exists(xml) and os.path.getsize(xml) > 0:
    root = ET.parse(xml).getroot()
    for case in root.iter("testcase"):
        cid = case.get("name", "?")
        if case.get("classname"):
            cid = "%s.%s" % (case.get("classname"), cid)
        for child in case:
            if child.tag in ("failure", "error"):
                print("case", cid.replace(" ", "_"), child.tag)
                break
EOF
}

run_suite glibc
run_suite hh

# allocator messages anywhere in the output (workers' stderr is included)
if grep -nE 'hardheap: |ERROR: ld\.so' "$WORK/hh/out.txt" >"$WORK/hh/messages"; then
  echo "FAIL($NAME): hardheap/ld.so messages in the output under LD_PRELOAD=$LIB:" >&2
  head -n 20 "$WORK/hh/messages" >&2
  exit 1
fi

summarize "$WORK/glibc" >"$WORK/glibc.sum"
summarize "$WORK/hh" >"$WORK/hh.sum"
grep -q '^error no-summary' "$WORK/glibc.sum" && { tail -n 40 "$WORK/glibc/out.txt" >&2; fail "no closing report from the glibc run"; }
grep -q '^error no-summary' "$WORK/hh.sum" && { tail -n 40 "$WORK/hh/out.txt" >&2; fail "no closing report under LD_PRELOAD=$LIB (did python crash?)"; }

base_bad=$(awk '$1 == "module" && $3 != "ok" {print $2 ":" $3}' "$WORK/glibc.sum" | tr '\n' ' ')
[[ -n $base_bad ]] && note "modules not ok under glibc too (ignored): $base_bad"
base_cases=$(grep -c '^case ' "$WORK/glibc.sum" || true)
((base_cases > 0)) && note "$base_cases test cases fail under glibc too (ignored)"

# New problems: a module failed/crashed/timed out under hh that did not under
# glibc, or an individual test case that passed under glibc failed under hh.
new=$(awk 'NR == FNR { base[$1 " " $2] = $3; next }
  $1 == "module" && ($3 == "failed" || $3 == "omitted") && base[$1 " " $2] != $3 { print "module " $2 " " $3 " (glibc: " base[$1 " " $2] ")" }
  $1 == "case" && !(($1 " " $2) in base) { print "test case " $2 " " $3 " (passed under glibc)" }' \
  "$WORK/glibc.sum" "$WORK/hh.sum")
envchg=$(awk 'NR == FNR { base[$2] = $3; next } $1 == "module" && $3 == "env_changed" && base[$2] != "env_changed" { print $2 }' \
  "$WORK/glibc.sum" "$WORK/hh.sum" | tr '\n' ' ')
[[ -n $envchg ]] && note "warning: altered the execution environment under hardheap only (not counted as a failure): $envchg"

# report_new: the failures and what regrtest printed about them
report_new() {
  echo "FAIL($NAME): new failures under LD_PRELOAD=$LIB (PYTHONMALLOC=malloc):" >&2
  sed 's/^/  /' <<<"$new" >&2
  echo "--- regrtest output about them under hardheap:" >&2
  for m in $modules; do
    grep -nE "(^|[] ])$m( |$)" "$WORK/hh/out.txt" | grep -vE '^[0-9]+: {4}' | head -n 5 >&2 || true
  done
  grep -nE -A25 '^(FAIL|ERROR): ' "$WORK/hh/out.txt" | head -n 120 >&2 || true
  grep -nE 'crashed|Exit code|timed out|Fatal Python error' "$WORK/hh/out.txt" | head -n 20 >&2 || true
  [[ -f $WORK/rerun/out.txt ]] && { echo "--- the rerun (-v) under hardheap:" >&2; tail -n 60 "$WORK/rerun/out.txt" >&2; }
  exit 1
}

if [[ -n $new ]]; then
  # the modules involved (a failing test case's class is test.<module>.<Class>)
  modules=$(awk '$1 == "module" {print $2} $1 == "test" {n = split($3, p, "."); for (i = 1; i <= n; i++) if (p[i] ~ /^test_/) {print p[i]; break}}' <<<"$new" | sort -u | tr '\n' ' ')
  # A crash, a timeout, an allocator message or a failure that mentions
  # memory is never excused. Any other test failure is retried once, alone
  # and verbose, under hardheap: a test that then passes is timing-dependent
  # (reported as a warning, not counted).
  hard=
  for m in $modules; do
    grep -qE "(^|[] ])$m (crashed|timed out)|test $m crashed" "$WORK/hh/out.txt" && hard="$hard $m"
  done
  [[ -n $hard ]] && report_new
  # nor is a failure that mentions memory: MemoryError, SystemError, ...
  suspicious='MemoryError|SystemError|Fatal Python error|Segmentation|[Cc]orrupt|double free|free\(\)|malloc\('
  if (($(grep -cE "$suspicious" "$WORK/hh/out.txt" || true) > $(grep -cE "$suspicious" "$WORK/glibc/out.txt" || true))); then
    grep -nE "$suspicious" "$WORK/hh/out.txt" | head -n 10 >&2
    report_new
  fi
  mkdir -p "$WORK/rerun/tmp" "$WORK/rerun/cwd"
  rc=0
  (
    cd "$WORK/rerun/cwd"
    export PYTHONMALLOC=malloc PYTHONHASHSEED=0 TMPDIR=$WORK/rerun/tmp HOME=$WORK/rerun/cwd PYTHONDONTWRITEBYTECODE=1 LD_PRELOAD=$LIB
    unset PYTHONPATH PYTHONSTARTUP PYTHONWARNINGS
    # shellcheck disable=SC2086 # one word per module
    exec "$PY" -m test -v -M 2G --timeout 600 $modules
  ) >"$WORK/rerun/out.txt" 2>&1 </dev/null || rc=$?
  grep -qE 'hardheap: |ERROR: ld\.so' "$WORK/rerun/out.txt" && report_new
  ((rc == 0)) || report_new
  note "WARNING: failed once under hardheap, passed when rerun alone (timing-dependent?): $modules"
  sed 's/^/[python]   /' <<<"$new"
fi

ok_glibc=$(awk '$1 == "module" && $3 == "ok"' "$WORK/glibc.sum" | wc -l)
ok_hh=$(awk '$1 == "module" && $3 == "ok"' "$WORK/hh.sum" | wc -l)
cases_hh=$("$PY" -c 'import sys, xml.etree.ElementTree as E; print(sum(1 for _ in E.parse(sys.argv[1]).getroot().iter("testcase")))' "$WORK/hh/junit.xml" 2>/dev/null || echo '?')
note "PASS: ${#selected[@]} modules, $ok_hh ok under hardheap ($ok_glibc under glibc), $cases_hh test cases run, no new failures"
