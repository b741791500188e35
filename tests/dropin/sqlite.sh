#!/usr/bin/env bash
# tests/dropin/sqlite.sh LIB - hardheap as a drop-in malloc for the sqlite3 CLI.
#
# Generates a deterministic SQL script (100,000 orders over 5,000 customers,
# text and blob columns of varied sizes, inserted in one transaction), then
# runs the same sequence under glibc malloc and under LD_PRELOAD=LIB:
# create tables, insert, create indexes, aggregate / join / window / ORDER BY /
# recursive-CTE / group_concat / JSON queries, updates and deletes, VACUUM,
# integrity_check, and a full .dump of the result. Everything sqlite3 prints
# (query results, the dump) must be byte-for-byte identical to glibc's.
#
# Exit status: 0 pass, 1 fail (crash, hardheap message on stderr, difference),
# 2 usage, 77 skip (sqlite3 not installed).
set -euo pipefail

NAME=sqlite
ROWS=${DROPIN_SQLITE_ROWS:-100000}
CUSTOMERS=5000

# shellcheck source=tests/dropin/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
dropin_lib "$@"
dropin_need sqlite3 awk cmp

WORK=$(mktemp -d "${TMPDIR:-/tmp}/hh-dropin-$NAME.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
export LC_ALL=C TZ=UTC

# compare FILE_GLIBC FILE_HH WHAT: byte-for-byte, with a diff on mismatch.
compare() {
  if ! cmp -s -- "$1" "$2"; then
    echo "FAIL($NAME): $3 differs between glibc and LD_PRELOAD=$LIB:" >&2
    cmp -- "$1" "$2" >&2 || true
    diff -u --label "glibc: $3" --label "hardheap: $3" -- "$1" "$2" | head -n 60 >&2 || true
    exit 1
  fi
}

check_preload

# ---------------------------------------------------------------- test data
# Park-Miller generator (exact in awk's doubles), so the data is the same on
# every machine and every awk.
awk -v rows="$ROWS" -v customers="$CUSTOMERS" '
function rnd(n) { seed = (seed * 16807) % 2147483647; return seed % n }
function word(len,   s, i) { s = ""; for (i = 0; i < len; i++) s = s substr(alphabet, rnd(26) + 1, 1); return s }
BEGIN {
  seed = 20240611; alphabet = "abcdefghijklmnopqrstuvwxyz"
  ncities = split("Berlin Paris Rome Madrid Vienna Prague Warsaw Lisbon Dublin Oslo Helsinki Athens Sofia Riga Tallinn Vilnius", city, " ")
  print "PRAGMA journal_mode=OFF;"
  print "PRAGMA synchronous=OFF;"
  print "BEGIN;"
  print "CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT NOT NULL, city TEXT NOT NULL, created INTEGER);"
  print "CREATE TABLE orders(id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES customers(id), amount_cents INTEGER NOT NULL, qty INTEGER, status TEXT, note TEXT, payload BLOB);"
  for (i = 1; i <= customers; i++)
    printf "INSERT INTO customers VALUES(%d,%c%s %s%c,%c%s%c,%d);\n", i, 39, word(3 + rnd(10)), word(4 + rnd(12)), 39, 39, city[rnd(ncities) + 1], 39, 1600000000 + rnd(100000000)
  split("new paid shipped returned cancelled", st, " ")
  for (i = 1; i <= rows; i++) {
    r = rnd(100)
    # note lengths: mostly short, some medium, a few long (up to ~4 KB)
    if (r < 70) nl = rnd(40); else if (r < 97) nl = 40 + rnd(400); else nl = 1000 + rnd(3000)
    note = word(nl % 64 + 1); while (length(note) < nl) note = note " " word(1 + rnd(12))
    printf "INSERT INTO orders VALUES(%d,%d,%d,%d,%c%s%c,%c%s%c,zeroblob(%d));\n", i, 1 + rnd(customers), rnd(1000000), 1 + rnd(50), 39, st[rnd(5) + 1], 39, 39, note, 39, rnd(100) < 5 ? 1000 + rnd(20000) : rnd(64)
  }
  print "COMMIT;"
}' >"$WORK/load.sql"

cat >"$WORK/queries.sql" <<'EOF'
.bail on
.headers on
.mode list
PRAGMA cache_size=-262144;
PRAGMA temp_store=MEMORY;
SELECT 'load', count(*), sum(amount_cents), min(amount_cents), max(amount_cents), sum(length(note)), sum(length(payload)) FROM orders;
-- big in-memory sort without an index
SELECT 'sorted-notes', count(*), sum(length(n)) FROM (SELECT note AS n FROM orders ORDER BY note DESC, id);
SELECT id, substr(note, 1, 30) FROM orders ORDER BY note, id LIMIT 25;
CREATE INDEX orders_customer ON orders(customer_id, amount_cents);
CREATE INDEX orders_status ON orders(status, id);
CREATE INDEX orders_note ON orders(note);
CREATE INDEX customers_city ON customers(city, name);
-- aggregates and joins
SELECT c.city, count(*) AS n, sum(o.amount_cents) AS total, avg(o.qty) AS avg_qty, max(length(o.note)) AS longest
  FROM orders o JOIN customers c ON c.id = o.customer_id GROUP BY c.city ORDER BY total DESC, c.city;
SELECT o.status, count(DISTINCT o.customer_id), sum(o.amount_cents * o.qty) FROM orders o GROUP BY o.status ORDER BY o.status;
SELECT c.id, c.name, count(o.id) AS n, sum(o.amount_cents) AS s FROM customers c LEFT JOIN orders o ON o.customer_id = c.id
  GROUP BY c.id ORDER BY s DESC, c.id LIMIT 40;
SELECT c.city, c.name, x.s FROM customers c JOIN (SELECT customer_id, sum(amount_cents) s FROM orders WHERE status = 'paid' GROUP BY customer_id HAVING count(*) > 8) x
  ON x.customer_id = c.id ORDER BY x.s DESC, c.id LIMIT 30;
-- window functions
SELECT city, name, total, rnk FROM (
  SELECT c.city, c.name, sum(o.amount_cents) AS total,
         rank() OVER (PARTITION BY c.city ORDER BY sum(o.amount_cents) DESC, c.id) AS rnk
    FROM customers c JOIN orders o ON o.customer_id = c.id GROUP BY c.id)
  WHERE rnk <= 3 ORDER BY city, rnk;
SELECT 'running', count(*), sum(r), max(r) FROM (SELECT sum(amount_cents) OVER (PARTITION BY customer_id ORDER BY id ROWS BETWEEN 20 PRECEDING AND CURRENT ROW) AS r FROM orders);
-- recursive CTE, big strings built by group_concat (realloc growth), JSON
WITH RECURSIVE seq(n, s) AS (SELECT 1, 'x' UNION ALL SELECT n + 1, s || char(97 + n % 26) FROM seq WHERE n < 3000)
  SELECT 'cte', count(*), sum(length(s)), max(s) = (SELECT s FROM seq WHERE n = 3000) FROM seq;
SELECT 'concat', length(g), substr(g, 1, 60), substr(g, -60) FROM (SELECT group_concat(note, '|') AS g FROM (SELECT note FROM orders ORDER BY id));
SELECT city, length(group_concat(name, ',')) FROM customers GROUP BY city ORDER BY city;
SELECT 'json', length(j), json_array_length(j), json_extract(j, '$[777].n'), json_extract(j, '$[4242].id')
  FROM (SELECT json_group_array(json_object('id', id, 'n', substr(note, 1, 20), 'a', amount_cents)) AS j FROM orders WHERE id % 3 = 0);
SELECT 'distinct-notes', count(DISTINCT note), count(DISTINCT substr(note, 1, 3)) FROM orders;
SELECT 'like', count(*) FROM orders WHERE note LIKE '%abc%';
SELECT 'printf', sum(length(printf('%s-%08d-%.3f-%s', status, id, amount_cents / 100.0, upper(substr(note, 1, 50))))) FROM orders;
-- modifications, then VACUUM
UPDATE orders SET note = note || ' ' || note, qty = qty + 1 WHERE id % 7 = 0;
DELETE FROM orders WHERE id % 11 = 0 OR status = 'cancelled' AND amount_cents < 200000;
INSERT INTO orders(customer_id, amount_cents, qty, status, note, payload)
  SELECT customer_id, amount_cents / 2, qty, 'split', substr(note, 1, 100), X'' FROM orders WHERE id % 13 = 0;
SELECT 'after-update', count(*), sum(amount_cents), sum(length(note)) FROM orders;
VACUUM;
PRAGMA integrity_check;
SELECT 'final', count(*), total(amount_cents) FROM orders;
SELECT * FROM orders ORDER BY amount_cents DESC, id LIMIT 20;
EOF

{ echo 'PRAGMA cache_size=-524288;'; cat "$WORK/load.sql" "$WORK/queries.sql"; } >"$WORK/mem.sql"

# ---------------------------------------------------------------- the runs
for mode in glibc hh; do
  mkdir -p "$WORK/$mode"
  RUN_STDIN=$WORK/load.sql run "$mode" "$WORK/$mode/load.out" "$WORK/$mode/load.err" sqlite3 -bail "$WORK/$mode/db.sqlite"
  RUN_STDIN=$WORK/queries.sql run "$mode" "$WORK/$mode/queries.out" "$WORK/$mode/queries.err" sqlite3 -bail "$WORK/$mode/db.sqlite"
  run "$mode" "$WORK/$mode/dump.out" "$WORK/$mode/dump.err" sqlite3 -bail "$WORK/$mode/db.sqlite" .dump
  # a second, memory-only database: the whole table lives in the page cache
  RUN_STDIN=$WORK/mem.sql run "$mode" "$WORK/$mode/mem.out" "$WORK/$mode/mem.err" sqlite3 -bail :memory:
done

grep -qx 'integrity_check' "$WORK/glibc/queries.out" && grep -qx 'ok' "$WORK/glibc/queries.out" ||
  fail "baseline integrity_check did not print ok: see queries output"
[[ $(wc -l <"$WORK/glibc/dump.out") -gt $((ROWS / 2)) ]] || fail "baseline .dump is too short: $(wc -l <"$WORK/glibc/dump.out") lines"

compare "$WORK/glibc/load.out" "$WORK/hh/load.out" "output of the load script"
compare "$WORK/glibc/queries.out" "$WORK/hh/queries.out" "query results"
compare "$WORK/glibc/dump.out" "$WORK/hh/dump.out" ".dump of the final database"
compare "$WORK/glibc/mem.out" "$WORK/hh/mem.out" "query results on the :memory: database"
compare "$WORK/glibc/db.sqlite" "$WORK/hh/db.sqlite" "database file after VACUUM"

note "PASS: $(wc -l <"$WORK/hh/queries.out") result lines, $(wc -c <"$WORK/hh/dump.out") bytes of .dump, database file identical"
