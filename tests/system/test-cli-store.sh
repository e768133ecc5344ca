#!/bin/bash
# test-cli-store.sh - `joule acct`, `joule report` and `joule status` on a database filled with a known
# cluster history through the store API (test-cli-fill): the numbers, the JSON and CSV contracts parsed by
# Python, the filters, and bad input (unknown user, garbage and non-existent dates, inverted ranges). On
# SQLite (a temporary file), or on $JOULE_TEST_DATABASE_URL when tests/with-postgres.sh runs it. TAP.
# Environment: JOULE, CLI_FILL (the filler).
. "$(dirname "$0")/lib.sh"
t_need_joule
: "${CLI_FILL:?CLI_FILL is not set}"
T_DIR=$(mktemp -d /tmp/jcli.XXXXXX)
trap t_cleanup EXIT

URL=${JOULE_TEST_DATABASE_URL:-$T_DIR/joule.db}
CFG=$T_DIR/joule.yml
printf 'database:\n  url: "%s"\nnode:\n  period: 10\n' "$URL" >"$CFG"
J() { "$JOULE" -c "$CFG" "$@"; }

B=1767225600000000 # 2026-01-01T00:00:00Z in µs
NOW=$("$PY" -c 'import time; print(int(time.time() * 1e6))')
t_check "joule db init" -- J db init
t_check "fill the database through the store API" -- "$CLI_FILL" "$URL" "$B" "$NOW"

# --- acct ---
OUT=$(J acct --json --from 2026-01-01 --to 2026-01-01T00:03:20Z)
t_ok $? "acct --json exits 0"
t_check "acct --json: 4 job steps (one running), in job/step order" -- jtest "$OUT" \
        '[(r["job_id"], r["step_id"]) for r in j] == [(100, 0), (100, 1), (101, 0), (102, 0)]'
t_check "acct: job 100 step 0 sums its two nodes (1800 J, 60 s, 30 W, complete)" -- jtest "$OUT" \
        'j[0]["nodes"] == ["n1", "n2"] and j[0]["energy_j"] == 1800 and j[0]["time_s"] == 60 and j[0]["avg_power_w"] == 30 and j[0]["complete"] is True and j[0]["user"] == "root"'
t_check "acct: ISO 8601 UTC start and end" -- jtest "$OUT" \
        'j[0]["start"] == "2026-01-01T00:00:10.000Z" and j[0]["end"] == "2026-01-01T00:01:10.000Z"'
t_check "acct: every key of the contract" -- jtest "$OUT" \
        'all(set(r) >= {"job_id", "step_id", "user", "nodes", "start", "end", "time_s", "energy_j", "avg_power_w", "complete"} for r in j)'
t_check "acct: an incomplete step says so" -- jtest "$OUT" 'j[1]["complete"] is False and j[1]["energy_j"] == 300'
t_check "acct: a running step has no end and no energy yet" -- jtest "$OUT" \
        'j[3]["end"] is None and j[3]["energy_j"] is None and j[3]["complete"] is False'

OUT=$(J acct --json --job 100 --from 2026-01-01)
t_check "acct --job 100: its two steps" -- jtest "$OUT" 'len(j) == 2 and all(r["job_id"] == 100 for r in j)'
OUT=$(J acct --json --user alice-not-here --from 2026-01-01)
t_check "acct --user: a user unknown here but seen in accounting" -- jtest "$OUT" 'len(j) == 1 and j[0]["job_id"] == 101'
OUT=$(J acct --json --user root --from 2026-01-01T00:02:00Z --to 2026-01-01T00:05:00Z)
t_check "acct --from/--to: only steps running in the range" -- jtest "$OUT" '[r["job_id"] for r in j] == [102]'

OUT=$(J acct --json --from 2026-01-01T00:01:00Z --to 2026-01-01T00:01:05Z)
t_check "acct: a step that began the longest step's length before --from and ended inside the range" -- \
        jtest "$OUT" '[(r["job_id"], r["step_id"]) for r in j] == [(100, 0)]'
J acct --csv --from 2026-01-01 >"$T_DIR/acct.csv"
t_check "acct --csv parses with a header and the same numbers" -- "$PY" - "$T_DIR/acct.csv" <<'PYEOF'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
assert list(rows[0]) == ["job_id", "step_id", "user", "nodes", "start", "end", "time_s", "energy_j", "avg_power_w", "complete"], list(rows[0])
assert len(rows) == 4, rows
assert rows[0]["nodes"] == "n1,n2" and float(rows[0]["energy_j"]) == 1800 and rows[0]["complete"] == "1", rows[0]
assert rows[3]["end"] == "" and rows[3]["energy_j"] == "", rows[3]
PYEOF
OUT=$(J acct --from 2026-01-01)
t_check "acct table: a row per step, incomplete marked" -- \
        sh -c 'printf "%s\n" "$1" | grep -q "^100\.0 .* 1800.000 .* 30.00 n1,n2" && printf "%s\n" "$1" | grep -q "300.000\*"' _ "$OUT"

bad() { # bad DESCRIPTION EXPECTED_RC PATTERN -- ARGS...
        local desc=$1 want=$2 pat=$3
        shift 4
        local out rc
        out=$(J "$@" 2>&1)
        rc=$?
        if [ "$rc" -eq "$want" ] && printf '%s' "$out" | grep -q -- "$pat"; then
                t_ok 0 "$desc"
        else
                t_ok 1 "$desc"
                t_diag "rc $rc (want $want): $out"
        fi
}
bad "acct --user nosuch: unknown user" 1 "unknown user 'nosuch-user-x'" -- acct --user nosuch-user-x
bad "acct --from garbage" 2 "is not a time" -- acct --from yesterday-ish
bad "acct --from a date that does not exist" 2 "is not a time" -- acct --from 2026-02-30
bad "acct --from 13th month" 2 "is not a time" -- acct --from 2026-13-01T00:00:00Z
bad "acct with an inverted range" 2 "inverted" -- acct --from 2026-01-02 --to 2026-01-01
bad "acct --job abc" 2 "not a non-negative integer" -- acct --job abc
bad "acct --json --csv" 2 "exclude" -- acct --json --csv
bad "acct on a missing database: says how to create it" 1 "joule db init" -- acct --url "$T_DIR/none.db"

# --- report ---
OUT=$(J report --by cluster --from 2026-01-01 --to 2026-01-01T00:02:00Z --json)
t_check "report --by cluster: from the aggregations, 42000 J, 350 W" -- jtest "$OUT" \
        'j["source"] == "aggregations" and j["rows"] == [{"key": "cluster", "energy_j": 42000, "avg_power_w": 350, "covered_s": 120, "missing_s": 0, "gap_s": 0}] and j["total_energy_j"] == 42000'
t_check "report: from and to in ISO 8601 UTC" -- jtest "$OUT" \
        'j["from"] == "2026-01-01T00:00:00.000Z" and j["to"] == "2026-01-01T00:02:00.000Z"'
OUT=$(J report --by cluster --from 2026-01-01T00:00:30Z --to 2026-01-01T00:02:00Z --json)
t_check "report --by cluster from mid-window: the whole window, and the records of the edge (31500 J, 90 s)" -- \
        jtest "$OUT" 'j["source"] == "aggregations" and j["rows"] == [{"key": "cluster", "energy_j": 31500, "avg_power_w": 350, "covered_s": 90, "missing_s": 0, "gap_s": 0}]'
OUT=$(J report --by partition --from 2026-01-01 --to 2026-01-01T00:01:30Z --json)
t_check "report --by partition ending mid-window: the records after the last whole window, per key" -- jtest "$OUT" \
        '[(r["key"], r["energy_j"], r["avg_power_w"], r["covered_s"], r["missing_s"]) for r in j["rows"]] == [("p1", 27000, 300, 90, 0), ("p2", 4500, 50, 90, 0)]'
OUT=$(J report --by partition --from 2026-01-01 --to 2026-01-01T00:02:00Z --json)
t_check "report --by partition: p1 36000 J (300 W), p2 6000 J (50 W)" -- jtest "$OUT" \
        '[(r["key"], r["energy_j"], r["avg_power_w"]) for r in j["rows"]] == [("p1", 36000, 300), ("p2", 6000, 50)] and j["total_energy_j"] == 42000'
OUT=$(J report --by node --from 2026-01-01 --to 2026-01-01T00:02:00Z --json)
t_check "report --by node: from the records (no node aggregations), 100/200/50 W" -- jtest "$OUT" \
        'j["source"] == "metrics" and [(r["key"], r["energy_j"], r["avg_power_w"]) for r in j["rows"]] == [("n1", 12000, 100), ("n2", 24000, 200), ("n3", 6000, 50)]'
OUT=$(J report --by cluster --from 2026-01-01T00:00:30Z --to 2026-01-01T00:01:00Z --json)
t_check "report over a range shorter than a window: the records (30 s, 10500 J)" -- jtest "$OUT" \
        'j["source"] == "metrics" and j["total_energy_j"] == 10500 and j["rows"][0]["avg_power_w"] == 350'
t_check "report: each row has the time its records cover and the time missing" -- jtest "$OUT" \
        '[(r["covered_s"], r["missing_s"]) for r in j["rows"]] == [(30, 0)]'
OUT=$(J report --by node --from 2026-01-01 --to 2026-01-01T00:02:00Z --json)
t_check "report --by node: 120 s covered, none missing" -- jtest "$OUT" \
        'all(r["covered_s"] == 120 and r["missing_s"] == 0 for r in j["rows"])'
# g1: 76 W for 90 s and 30 s with 240 s without records between (the power is not 25 W over 360 s)
OUT=$(J report --by node --from 2026-01-02 --to 2026-01-02T00:06:00Z --json)
t_check "report --by node over a gap, from the node aggregations: 76 W over the 120 s covered, 240 s missing, 3 s estimated" -- \
        jtest "$OUT" 'j["source"] == "aggregations" and j["rows"] == [{"key": "g1", "energy_j": 9120, "avg_power_w": 76, "covered_s": 120, "missing_s": 240, "gap_s": 3}]'
OUT=$(J report --by cluster --from 2026-01-02 --to 2026-01-02T00:06:00Z --json)
t_check "report --by cluster over a gap, from the records: 76 W over the 120 s covered, 240 s missing, 3 s estimated" -- \
        jtest "$OUT" 'j["source"] == "metrics" and j["rows"] == [{"key": "cluster", "energy_j": 9120, "avg_power_w": 76, "covered_s": 120, "missing_s": 240, "gap_s": 3}]'
OUT=$(J report --by node --from 2026-01-02 --to 2026-01-02T00:06:00Z)
t_check "report table: covered and missing columns" -- \
        sh -c 'printf "%s\n" "$1" | grep -q "^g1 .*9120.000 .*76.00 .*120.0 .*240.0"' _ "$OUT"
t_check "report table from the aggregations: the time whose energy was estimated" -- \
        sh -c 'printf "%s\n" "$1" | grep -q "^(3.000 s of this time had its energy estimated"' _ "$OUT"
OUT=$(J report --by node --from 2026-01-02T00:01:30Z --to 2026-01-02T00:06:00Z --json)
t_check "report --by node from the first record: the range starts at --from, the time before the records is missing" -- \
        jtest "$OUT" 'j["rows"] == [{"key": "g1", "energy_j": 2280, "avg_power_w": 76, "covered_s": 30, "missing_s": 240, "gap_s": 1}]'
OUT=$(J report --from 2020-01-01 --to 2020-01-02 --json)
t_check "report over an empty range: no rows, total 0" -- jtest "$OUT" 'j["rows"] == [] and j["total_energy_j"] == 0'
OUT=$(J report --by partition --from 2026-01-01 --to 2026-01-01T00:02:00Z)
t_check "report table" -- sh -c 'printf "%s\n" "$1" | grep -q "^p1 .*36000.000 .*300.00" && printf "%s\n" "$1" | grep -q "^TOTAL .*42000.000"' _ "$OUT"
bad "report --by galaxy" 2 "node, partition or cluster" -- report --by galaxy
bad "report --to garbage" 2 "is not a time" -- report --to 2026-01-01T25:00:00Z
bad "report with an inverted range" 2 "inverted" -- report --from now --to -1d

# --- status ---
OUT=$(J status --json)
t_ok $? "status --json exits 0"
t_check "status: every node, with health ok / stale / silent" -- jtest "$OUT" \
        '[(n["node"], n["health"]) for n in j["nodes"]] == [("n1", "ok"), ("n2", "ok"), ("n3", "stale"), ("n4", "silent")] and j["stale"] == 2 and j["period_s"] == 10'
t_check "status: the last record's age" -- jtest "$OUT" \
        '4 < j["nodes"][0]["age_s"] < 60 and 99 < j["nodes"][2]["age_s"] < 160 and j["nodes"][3]["age_s"] is None and j["nodes"][0]["last_seq"] is None'
OUT=$(J status)
t_check "status table" -- sh -c 'printf "%s\n" "$1" | grep -q "^n3 .*stale" && printf "%s\n" "$1" | grep -q "4 node(s), 2 stale or silent"' _ "$OUT"

t_done
