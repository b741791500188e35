#!/usr/bin/env bash
# Tests of the hardheap launcher (tools/hardheap.in), one case per behaviour:
# each runs the launcher and checks its exit status, its stdout and its
# stderr (a one-line "hardheap:" message, and never bash's own errors).
#
#   run.sh LAUNCHER README CC main     commands, options, values, programs
#                                      that cannot run, LD_PRELOAD, --help
#   run.sh LAUNCHER README CC static   statically linked programs, built here
#                                      with CC -static (exits 77 = skipped if
#                                      the C library has no libc.a)
set -uo pipefail
[ $# -eq 4 ] || { echo "usage: run.sh LAUNCHER README CC main|static" >&2; exit 2; }
hh=$(readlink -f "$1") readme=$(readlink -f "$2") cc=$3 group=$4
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1
failures=0 cases=0

# t NAME STATUS STDERR_REGEX STDOUT -- COMMAND...
#   runs COMMAND; its exit status must be STATUS, its stderr must match the
#   extended regex STDERR_REGEX ("" = stderr empty, "*" = anything) and its
#   stdout must be STDOUT exactly ("*" = anything). With STATUS 2, 126 or
#   127 stderr must be exactly one line starting with "hardheap: ". bash's
#   own messages ("exec: ...", "hardheap: line N: ...") must never appear.
t() {
  local name=$1 want=$2 err_re=$3 want_out=$4 status problem=''
  shift 5
  cases=$((cases + 1))
  "$@" >"$work/out" 2>"$work/err" </dev/null
  status=$?
  [ "$status" = "$want" ] || problem+="exit status $status, expected $want; "
  case "$err_re" in
    '*') ;;
    '') [ ! -s "$work/err" ] || problem+="stderr not empty; " ;;
    *) grep -Eq -- "$err_re" "$work/err" || problem+="stderr does not match /$err_re/; " ;;
  esac
  if [ "$want_out" != '*' ] && [ "$(cat "$work/out")" != "$want_out" ]; then
    problem+="stdout is not '$want_out'; "
  fi
  case "$want" in
    2 | 126 | 127)
      [ "$(wc -l <"$work/err")" = 1 ] && grep -q '^hardheap: ' "$work/err" ||
        problem+="stderr is not one 'hardheap:' line; " ;;
  esac
  ! grep -Eq '(^|: )exec: |: line [0-9]+: ' "$work/err" || problem+="bash's own error leaked; "
  if [ -n "$problem" ]; then
    failures=$((failures + 1))
    echo "FAIL $name: ${problem%; }"
    echo "  command: $*"
    sed 's/^/  stdout: /' "$work/out"
    sed 's/^/  stderr: /' "$work/err"
  else
    echo "ok   $name"
  fi
}

finish() {
  echo "$cases cases, $failures failed"
  [ "$failures" = 0 ]
  exit $?
}

if [ "$group" = static ]; then
  # ---- statically linked programs: warned about, then run ---------------------
  if ! "$cc" -static -O1 -o prog_static "$here/prog.c" 2>"$work/cc.err"; then
    echo "skip: '$cc -static' cannot link (no libc.a? on Debian it is in libc6-dev):"
    sed 's/^/  /' "$work/cc.err"
    exit 77
  fi
  warn='^hardheap: warning: \./prog_static is statically linked: LD_PRELOAD has no effect on it'
  t "static program: warning, still run, status kept" 3 "$warn" "argv0=./prog_static [exit] [3]" -- \
    "$hh" run -- ./prog_static exit 3
  t "static program with options, no --" 0 "$warn" "argv0=./prog_static [a b]" -- \
    "$hh" run --secure --stats ./prog_static "a b"
  [ "$(wc -l <"$work/err")" = 1 ] || { echo "FAIL static program: stderr is not exactly the one warning line"; failures=$((failures + 1)); }
  if "$cc" -static-pie -O1 -o prog_static_pie "$here/prog.c" 2>/dev/null; then
    t "static-pie program: warning, still run" 0 \
      '^hardheap: warning: \./prog_static_pie is statically linked: LD_PRELOAD has no effect' \
      "argv0=./prog_static_pie" -- "$hh" run -- ./prog_static_pie
  else
    echo "skip: static-pie program ('$cc -static-pie' cannot link)"
  fi
  printf '#!%s/prog_static\n' "$work" >static_interp.sh
  chmod +x static_interp.sh
  t "script run by a static interpreter: warning" 0 \
    "^hardheap: warning: \./static_interp\.sh runs under $work/prog_static, which is statically linked" '*' -- \
    "$hh" run -- ./static_interp.sh
  finish
fi

[ "$group" = main ] || { echo "unknown group $group" >&2; exit 2; }
"$cc" -O1 -o prog "$here/prog.c" || { echo "cannot build the test program"; exit 1; }
"$cc" -O1 -no-pie -o prog_nopie "$here/prog.c" || { echo "cannot build the test program"; exit 1; }
# stand-ins with a missing ELF interpreter and a broken ELF header
"$cc" -O1 -Wl,--dynamic-linker=/nonexistent/ld-hh.so.1 -o prog_badinterp "$here/prog.c" ||
  { echo "cannot build the test program"; exit 1; }
printf '\177ELF\002\001\001garbage garbage garbage garbage garbage garbage garbage' >bad_elf
chmod +x bad_elf
echo 'echo never' >not_executable
mkdir -p a_directory bin
printf '#!/nonexistent/interpreter\necho never\n' >missing_interp.sh
printf '#!%s/not_executable\necho never\n' "$work" >noexec_interp.sh
printf '#!/bin/sh\necho "script $1"\n' >script.sh
chmod +x missing_interp.sh noexec_interp.sh script.sh
echo 'echo never' >bin/hh-noexec-in-path

# ---- commands ------------------------------------------------------------------
t "no command" 2 "^hardheap: no command given" "" -- "$hh"
t "unknown command names it" 2 "^hardheap: unknown command 'foo'" "" -- "$hh" foo
t "unknown command with arguments" 2 "^hardheap: unknown command 'frobnicate'" "" -- "$hh" frobnicate -- true
t "empty command" 2 "^hardheap: unknown command ''" "" -- "$hh" ''
t "unknown top-level option" 2 "^hardheap: unknown option '--bogus'" "" -- "$hh" --bogus
t "--version" 0 "" "$("$hh" --version)" -- "$hh" --version
grep -Eq '^hardheap [0-9]+\.[0-9]+\.[0-9]+$' "$work/out" || { echo "FAIL --version: $(cat "$work/out")"; failures=$((failures + 1)); }

# ---- options -------------------------------------------------------------------
t "unknown option" 2 "^hardheap: unknown option '--bogus'" "" -- "$hh" run --bogus -- true
t "unknown option with =value" 2 "^hardheap: unknown option '--bogus=1'" "" -- "$hh" run --bogus=1 true
t "unknown short option" 2 "^hardheap: unknown option '-x'" "" -- "$hh" run -x true
for opt in --secure --stats --verbose --help; do
  t "$opt=value refused" 2 "^hardheap: option '$opt' takes no value" "" -- "$hh" run "$opt=1" -- true
done
for opt in --purge-delay --guarded-sample-rate; do
  t "$opt: missing value at the end" 2 "^hardheap: option '$opt' needs a value" "" -- "$hh" run "$opt"
  t "$opt: missing value before --" 2 "^hardheap: option '$opt' needs a value" "" -- "$hh" run "$opt" -- true
  t "$opt: missing value before an option" 2 "^hardheap: option '$opt' needs a value" "" -- "$hh" run "$opt" --stats -- true
  t "$opt=: empty value" 2 "^hardheap: option '$opt' needs a value" "" -- "$hh" run "$opt=" -- true
  for bad in x 1x 1.5 - 5-; do
    t "$opt $bad: not an integer" 2 "^hardheap: option '$opt': '$bad' is not an integer" "" -- "$hh" run "$opt" "$bad" -- true
    t "$opt=$bad: not an integer" 2 "^hardheap: option '$opt': '$bad' is not an integer" "" -- "$hh" run "$opt=$bad" -- true
  done
done
show='echo "$HARDHEAP_PURGE_DELAY $HARDHEAP_GUARDED_SAMPLE_RATE"'
# the default library itself says that it does not sample
sampled='GUARDED_SAMPLE_RATE=7 ignored'
t "--opt=value" 0 "$sampled" "5 7" -- "$hh" run --purge-delay=5 --guarded-sample-rate=7 -- sh -c "$show"
t "--opt value" 0 "$sampled" "5 7" -- "$hh" run --purge-delay 5 --guarded-sample-rate 7 -- sh -c "$show"
t "both forms mixed, no --" 0 "$sampled" "-1 7" -- "$hh" run --purge-delay -1 --guarded-sample-rate=7 sh -c "$show"
t "--purge-delay=-1" 0 "" "-1 " -- "$hh" run --purge-delay=-1 -- sh -c "$show"
t "last value wins" 0 "" "20 " -- "$hh" run --purge-delay 3 --purge-delay=20 -- sh -c "$show"
t "--stats (default library)" 0 "^hardheap default statistics" "argv0=./prog" -- "$hh" run --stats -- ./prog
t "--secure --stats" 0 "^hardheap secure statistics" "argv0=./prog" -- "$hh" run --secure --stats -- ./prog
t "--verbose" 0 "*" "1" -- "$hh" run --verbose -- sh -c 'echo "$HARDHEAP_VERBOSE"'
t "run --help" 0 "" "*" -- "$hh" run --stats --help
grep -q '^usage: hardheap run' "$work/out" || { echo "FAIL run --help: no usage"; failures=$((failures + 1)); }
t "options after the program are its own" 0 "" "argv0=./prog [--stats] [--bogus]" -- "$hh" run ./prog --stats --bogus
t "options after -- are the program's" 0 "" "argv0=./prog [--secure=1]" -- "$hh" run -- ./prog --secure=1

# ---- the program ------------------------------------------------------------------
t "no program" 2 "^hardheap: no program given" "" -- "$hh" run
t "no program after --" 2 "^hardheap: no program given" "" -- "$hh" run --
t "no program after options" 2 "^hardheap: no program given" "" -- "$hh" run --stats --purge-delay 1
t "not in PATH: 127" 127 "^hardheap: hh-no-such-program: command not found$" "" -- "$hh" run -- hh-no-such-program
t "not in PATH, no --: 127" 127 "^hardheap: hh-no-such-program: command not found$" "" -- "$hh" run hh-no-such-program x
t "name starting with -: 127" 127 "^hardheap: -hh-dash: command not found$" "" -- "$hh" run -- -hh-dash
t "no such path: 127" 127 "^hardheap: \./nope: no such file or directory$" "" -- "$hh" run -- ./nope
t "no such absolute path: 127" 127 "^hardheap: /nonexistent/prog: no such file or directory$" "" -- "$hh" run -- /nonexistent/prog
t "not executable: 126" 126 "^hardheap: \./not_executable: not executable" "" -- "$hh" run -- ./not_executable
t "directory: 126" 126 "^hardheap: \./a_directory: is a directory$" "" -- "$hh" run -- ./a_directory
t "not executable, found in PATH: 126" 126 "^hardheap: hh-noexec-in-path: not executable" "" -- \
  env PATH="$work/bin:$PATH" "$hh" run -- hh-noexec-in-path
t "script with a missing interpreter: 127" 127 \
  "^hardheap: \./missing_interp\.sh: cannot execute: its interpreter /nonexistent/interpreter is not found$" "" -- \
  "$hh" run -- ./missing_interp.sh
t "script with a non-executable interpreter: 126" 126 \
  "^hardheap: \./noexec_interp\.sh: cannot execute: its interpreter .*/not_executable is not executable$" "" -- \
  "$hh" run -- ./noexec_interp.sh
t "ELF with a missing interpreter: 127" 127 \
  "^hardheap: \./prog_badinterp: cannot execute: its ELF interpreter /nonexistent/ld-hh\.so\.1 is not found$" "" -- \
  "$hh" run -- ./prog_badinterp
t "broken ELF file: 126" 126 "^hardheap: \./bad_elf: cannot execute: not an executable ELF file" "" -- \
  "$hh" run -- ./bad_elf
t "dynamic PIE program: no warning, argv kept" 0 "" "argv0=./prog [a] [b c] []" -- "$hh" run -- ./prog a "b c" ""
t "dynamic non-PIE program: no warning" 0 "" "argv0=./prog_nopie" -- "$hh" run -- ./prog_nopie
t "program found in PATH keeps its argv[0]" 0 "" "argv0=prog [x]" -- env PATH="$work:$PATH" "$hh" run -- prog x
t "exit status passed through" 42 "" "argv0=./prog [exit] [42]" -- "$hh" run -- ./prog exit 42
t "script with a dynamic interpreter" 0 "" "script ok" -- "$hh" run -- ./script.sh ok
t "system program" 0 "" "" -- "$hh" run --secure -- true

# ---- LD_PRELOAD ---------------------------------------------------------------------
preload='printf "%s\n" "$LD_PRELOAD"'
t "LD_PRELOAD unset: ours only" 0 "" '*' -- env -u LD_PRELOAD "$hh" run -- sh -c "$preload"
lib=$(cat "$work/out")
case "$lib" in
  /*/libhardheap.so) [ -f "$lib" ] || { echo "FAIL: $lib does not exist"; failures=$((failures + 1)); } ;;
  *) echo "FAIL: LD_PRELOAD is '$lib', not an absolute path to libhardheap.so"; failures=$((failures + 1)) ;;
esac
secure=${lib%/*}/libhardheap-secure.so
t "--secure, LD_PRELOAD empty" 0 "" "$secure" -- env LD_PRELOAD= "$hh" run --secure -- sh -c "$preload"
t "other entries kept, ours first" 0 "" "$lib:libm.so.6:libdl.so.2" -- \
  env LD_PRELOAD="libm.so.6 libdl.so.2" "$hh" run -- sh -c "$preload"
t "hardheap entry replaced in place" 0 "" "libm.so.6:$lib:libdl.so.2" -- \
  env LD_PRELOAD="libm.so.6 $secure:libdl.so.2" "$hh" run -- sh -c "$preload"
t "--secure replaces libhardheap.so" 0 "" "$secure" -- env LD_PRELOAD="$lib" "$hh" run --secure -- sh -c "$preload"
t "same library not added twice" 0 "" "libm.so.6:$lib" -- env LD_PRELOAD="libm.so.6:$lib" "$hh" run -- sh -c "$preload"
# bare names and version suffixes count too (the loader may warn that it
# cannot find them for the launcher itself: stderr not checked)
t "several hardheap entries: one left, in the first's place" 0 '*' "$secure:libm.so.6" -- \
  env LD_PRELOAD="libhardheap.so.0::libm.so.6 /opt/x/libhardheap-secure.so.0.1.0" "$hh" run --secure -- sh -c "$preload"
t "a library merely named like hardheap is kept" 0 "*" "$lib:/nonexistent/libhardheap.so-not" -- \
  env LD_PRELOAD="/nonexistent/libhardheap.so-not" "$hh" run -- sh -c "$preload"
t "--verbose says what it replaced" 0 "hardheap: LD_PRELOAD: $secure replaced by $lib" "$lib:libm.so.6" -- \
  env LD_PRELOAD="$secure libm.so.6" "$hh" run --verbose -- sh -c "$preload"

# ---- --help lists README's options table ------------------------------------------------
# Each row of README's "## Options" table must appear as
#   "  NAME, default DEFAULT: MEANING" (markdown removed; wrapped lines joined).
t "--help" 0 "" "*" -- "$hh" --help
grep -q '^usage: hardheap run' "$work/out" || { echo "FAIL --help: no usage line"; failures=$((failures + 1)); }
awk '/^Environment options/ { on = 1; next }
     on && /^      / { sub(/^ +/, " "); line = line $0; next }
     on && /^  [A-Z]/ { if (line != "") print line; line = $0; next }
     END { if (line != "") print line }' "$work/out" >help_options
awk -F'|' '/^## Options$/ { on = 1; next } /^## / { on = 0 }
     on && /^\| *`HARDHEAP_/ {
       for (i = 2; i <= 4; i++) {
         gsub(/`|\*\*/, "", $i); gsub(/\]\([^)]*\)/, "", $i); gsub(/\[/, "", $i)
         gsub(/[ \t]+/, " ", $i); sub(/^ /, "", $i); sub(/ $/, "", $i)
       }
       print "  " $2 ", default " $3 ": " $4
     }' "$readme" >readme_options
cases=$((cases + 1))
if [ ! -s readme_options ]; then
  echo "FAIL --help: no HARDHEAP_* rows found in $readme"
  failures=$((failures + 1))
elif ! diff -u readme_options help_options >help.diff; then
  echo "FAIL --help does not list README's options table (- README, + --help):"
  cat help.diff
  failures=$((failures + 1))
else
  echo "ok   --help lists the $(wc -l <readme_options) options of README's table"
fi

finish
