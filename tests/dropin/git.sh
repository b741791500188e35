#!/usr/bin/env bash
# tests/dropin/git.sh LIB - hardheap as a drop-in malloc for git.
#
# Generates three deterministic versions of a source tree (3,000 files in 300
# nested directories, 40 B to ~150 KB; later versions edit ~6 % of the lines,
# delete, add and move files), then, once under glibc malloc and once with
# LD_PRELOAD=LIB (inherited by every git subprocess: pack-objects, index-pack,
# ...):
#   git init; add + commit version 0; commit version 1 and version 2 (with
#   rename detection); log --stat; log -p; diff; blame; grep; archive;
#   gc --aggressive --prune=now (all deltas recomputed, window 50, 2 threads); fsck --full
#   --strict; cat-file of every object; a clone of the packed repository.
# Authors, committers and dates are fixed, so every object id is too: the
# commit and tree ids and the output of every command must be identical to
# glibc's.
#
# Exit status: 0 pass, 1 fail, 2 usage, 77 skip (git not installed).
set -euo pipefail

NAME=git
FILES=${DROPIN_GIT_FILES:-3000}

# shellcheck source=tests/dropin/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
dropin_lib "$@"
dropin_need git awk cmp sha256sum

WORK=$(mktemp -d "${TMPDIR:-/tmp}/hh-dropin-$NAME.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
export LC_ALL=C TZ=UTC

check_preload

# ---------------------------------------------------------------- the trees
# gen V DIR: version V of the tree. Per-file Park-Miller streams, so a line's
# text only depends on (file, line, version) and later versions are edits of
# earlier ones (git finds deltas, renames and blame history).
gen() {
  mkdir -p "$2"
  # every directory the awk program writes to (deleted files can leave one
  # empty: git does not see empty directories)
  (cd "$2" && mkdir -p d{00..29}/s{0..9} moved/m0{0..6} "new/v$1")
  (cd "$2" && awk -v v="$1" -v files="$FILES" '
function rnd(n) { seed = (seed * 16807) % 2147483647; return seed % n }
BEGIN {
  split("alloc free realloc size page segment heap block list node tree map hash key value count index buffer string table", w, " ")
  for (i = 0; i < files; i++) {
    if (v >= 1 && i % 31 == 7) continue            # deleted in version 1
    if (v >= 2 && i % 29 == 3) continue            # and more in version 2
    d1 = i % 30; d2 = int(i / 30) % 10
    dir = sprintf("d%02d/s%d", d1, d2)
    name = sprintf("%s/f%04d.%s", dir, i, (i % 3 == 0) ? "c" : (i % 3 == 1) ? "h" : "txt")
    if (v >= 2 && i % 37 == 5) name = sprintf("moved/m%02d/f%04d.c", i % 7, i)   # renamed in version 2
    seed = i * 7919 + 17
    r = rnd(1000)
    nlines = (r < 10) ? 2000 + rnd(2000) : (r < 200) ? 100 + rnd(400) : 1 + rnd(100)
    for (j = 0; j < nlines; j++) {
      a = rnd(20) + 1; b = rnd(20) + 1; c = rnd(100000); e = rnd(1000)
      if (e < 30 * v && e % 2 == 0) line = sprintf("  /* v%d edit %d */ %s_%s(%d);", v, j, w[b], w[a], c + v)
      else line = sprintf("  %s = %s_%s(%s, %d);  /* %d */", w[a], w[b], w[a], w[(a + b) % 20 + 1], c, j)
      print line > name
      if (e < 30 * v && e % 2 == 1) print "  /* line added in v" v " */" > name
    }
    close(name)
  }
  if (v >= 1) for (k = 0; k < 40; k++) {           # new files
    name = sprintf("new/v%d/n%03d.txt", v, k)
    seed = v * 1000 + k + 1
    for (j = 0; j < 50 + rnd(200); j++) print "new " v " " k " " j " " rnd(1000000) > name
    close(name)
  }
}')
}
for v in 0 1 2; do gen "$v" "$WORK/tree$v"; done
note "trees: $(find "$WORK/tree0" -type f | wc -l) / $(find "$WORK/tree1" -type f | wc -l) / $(find "$WORK/tree2" -type f | wc -l) files, $(du -sk "$WORK/tree0" | cut -f1) KB in version 0"

# ---------------------------------------------------------------- git
export HOME=$WORK/home GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
export GIT_AUTHOR_NAME="A U Thor" GIT_AUTHOR_EMAIL=author@example.com
export GIT_COMMITTER_NAME="C O Mitter" GIT_COMMITTER_EMAIL=committer@example.com
unset GIT_DIR GIT_WORK_TREE GIT_INDEX_FILE GIT_OBJECT_DIRECTORY GIT_ALTERNATE_OBJECT_DIRECTORIES
mkdir -p "$HOME"

session() {
  local mode=$1 repo=$WORK/$1/repo out=$WORK/$1/out n=0 start end
  mkdir -p "$repo" "$out"
  start=$(date +%s.%N)
  # g NAME ARGS...: one git command in the repository, output kept as NAME
  g() {
    local name=$1 t0
    shift
    n=$((n + 1))
    t0=$(date +%s.%N)
    run "$mode" "$out/$name.out" "$out/$name.err" git -C "$wt" --git-dir="$repo/.git" --work-tree="$wt" "$@"
    awk -v a="$t0" -v b="$(date +%s.%N)" -v n="$name" 'BEGIN {printf "%.2fs %s\n", b - a, n}' >>"$WORK/$mode/times"
  }
  local wt=$WORK/tree0
  run "$mode" "$out/init.out" "$out/init.err" git init -q -b main "$repo"
  g config1 config core.autocrlf false
  g config2 config gc.auto 0
  g config3 config pack.threads 2
  g config4 config gc.aggressiveWindow 50   # 250 costs 4x the CPU for no more coverage
  for v in 0 1 2; do
    # the generated tree of each version is the work tree: nothing is copied
    wt=$WORK/tree$v
    export GIT_AUTHOR_DATE="$((1700000000 + v * 86400)) +0000" GIT_COMMITTER_DATE="$((1700000000 + v * 86400 + 60)) +0000"
    g "add$v" add -A
    g "status$v" status --porcelain=v1 -uall
    g "commit$v" commit -q -m "version $v" -m "$(printf 'generated tree, version %d\n' "$v")"
  done
  g rev-parse rev-parse HEAD 'HEAD^{tree}' HEAD~1 'HEAD~1^{tree}' 'HEAD~2^{tree}'
  g log-stat log --stat -M --format=fuller
  g log-p log -p -M --format=raw
  g diff-stat diff --stat -M HEAD~2 HEAD
  g diff-numstat diff --numstat -M HEAD~1 HEAD
  g blame blame -M -C HEAD -- d06/s0/f0006.c
  g grep grep -c -E 'v2 edit [0-9]+' HEAD
  g archive archive --format=tar HEAD
  g ls-tree ls-tree -r -l HEAD
  g gc gc --aggressive --prune=now -q
  g fsck fsck --full --strict --no-progress --no-dangling
  g count count-objects -v
  g objects cat-file --batch-all-objects --batch-check='%(objectname) %(objecttype) %(objectsize)'
  # cat-file of every object, contents included
  run "$mode" "$out/contents.out" "$out/contents.err" sh -c \
    "git --git-dir='$repo/.git' cat-file --batch-all-objects --batch-check='%(objectname)' | git --git-dir='$repo/.git' cat-file --batch"
  g log-after-gc log --stat -M --format=fuller
  run "$mode" "$out/clone.out" "$out/clone.err" git clone -q --no-local "$repo" "$WORK/$mode/clone"
  run "$mode" "$out/clone-fsck.out" "$out/clone-fsck.err" git -C "$WORK/$mode/clone" fsck --full --strict --no-progress
  run "$mode" "$out/clone-head.out" "$out/clone-head.err" git -C "$WORK/$mode/clone" rev-parse HEAD 'HEAD^{tree}'
  end=$(date +%s.%N)
  note "$(printf '%-5s %6.2fs  %d git commands; slowest: %s' "$mode" "$(awk -v a="$start" -v b="$end" 'BEGIN {print b - a}')" "$n" \
    "$(sort -rn "$WORK/$mode/times" | head -n 4 | tr '\n' ' ')")"
}

session glibc
session hh

# the count of objects after gc is the same, the pack size may differ by
# delta choices (pack.threads > 1 splits the delta search non-deterministically)
for f in "$WORK"/glibc/out/count.out "$WORK"/hh/out/count.out; do
  grep -vE '^size-pack:' "$f" >"$f.cmp"
done

status=0
for a in "$WORK"/glibc/out/*.out; do
  f=$(basename "$a")
  [[ $f == count.out ]] && { a=$a.cmp; b=$WORK/hh/out/$f.cmp; } || b=$WORK/hh/out/$f
  [[ -f $b ]] || { echo "FAIL($NAME): missing output $f under hardheap" >&2; status=1; continue; }
  if ! cmp -s "$a" "$b"; then
    echo "FAIL($NAME): output of '${f%.out}' differs between glibc and LD_PRELOAD=$LIB:" >&2
    cmp "$a" "$b" >&2 || true
    diff -u --label "glibc/$f" --label "hardheap/$f" "$a" "$b" 2>&1 | head -n 40 >&2 || true
    status=1
  fi
done
((status == 0)) || exit 1

O=$WORK/hh/out
if grep -q . "$WORK/glibc/out/fsck.out" "$WORK/glibc/out/clone-fsck.out"; then
  fail "baseline git fsck reported problems: $(head -5 "$WORK/glibc/out/fsck.out" "$WORK/glibc/out/clone-fsck.out")"
fi
[[ $(wc -l <"$O/objects.out") -gt $FILES ]] || fail "suspiciously few objects: $(wc -l <"$O/objects.out")"
[[ $(cat "$O/clone-head.out") == "$(head -n 2 "$O/rev-parse.out")" ]] || fail "the clone's HEAD differs from the repository's"
note "HEAD $(head -n 1 "$O/rev-parse.out"), tree $(sed -n 2p "$O/rev-parse.out")"
note "PASS: $(ls "$O"/*.out | wc -l) outputs identical to glibc's ($(wc -l <"$O/objects.out") objects, $(wc -c <"$O/contents.out") bytes of object contents)"
