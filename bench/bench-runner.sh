#!/bin/bash
# bench-runner.sh [BUILD_DIR] - the measurement cluster's two performance figures (docs/performance.md):
#  1. latency from `joule submit` to the job starting on an idle joule-runner: on PostgreSQL with NOTIFY
#     (runner.sleep_time_no_job 300 s, the seed's polling interval, so that only the NOTIFY can wake it
#     early), beside polling alone on SQLite with a short interval (the latency of polling is half the
#     interval on average: with the seed's 300 s, 150 s);
#  2. the measurement's own CPU cost during a run at 99 ms sampling: the CPU time (user + system) of
#     `joule run` on an emulated intel2s node for a scenario that sleeps, against the same run with
#     sampling at 60 s (boundary samples only), divided by the run's length: a fraction of one core.
# Needs root (mount namespaces for the emulated node) and PostgreSQL's server for part 1.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=$(cd "${1:-$ROOT/build-l}" && pwd)
JOULE=$B/src/cli/joule
RUNNER=$B/src/runner/joule-runner
EMU=$B/tests/emu/joule-emu
PY=/usr/bin/python3
N=${N:-10}
DUR=${DUR:-30}
W=$(mktemp -d /tmp/bench-runner.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$W"' EXIT

latency() { # latency URL SLEEP_NO_JOB LABEL: N jobs submitted one at a time to an idle runner
        local url=$1 sleep_no_job=$2 label=$3
        printf 'database:\n  url: "%s"\nmachine:\n  id: 1\nrunner:\n  baseline: 0\n  sleep_time_no_job: %s\n  sleep_time_after_job: 0\n' \
                "$url" "$sleep_no_job" >"$W/cfg.yml"
        "$JOULE" -c "$W/cfg.yml" db init >/dev/null
        "$JOULE" -c "$W/cfg.yml" machines add --id 1 --description bench >/dev/null
        printf 'name: tiny\nflow:\n  - name: a\n    commands: ["true"]\n' >"$W/s.yml"
        RUNTIME_DIRECTORY=$W/rt "$RUNNER" -c "$W/cfg.yml" >"$W/runner.log" 2>&1 &
        local rpid=$!
        sleep 1
        for _ in $(seq "$N"); do
                local id
                id=$("$JOULE" -c "$W/cfg.yml" submit --machine 1 --scenario "$W/s.yml")
                for _ in $(seq 300); do
                        [ "$("$JOULE" -c "$W/cfg.yml" jobs show "$id" --json | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["state"])')" = FINISHED ] && break
                        sleep 0.05
                done
                # the submit's own time (created_us) to the claim (started_us), both from the database
                "$JOULE" -c "$W/cfg.yml" jobs show "$id" --json >>"$W/lat.json"
                sleep "$("$PY" -c 'import random; print(round(random.uniform(0.2, 1.0), 2))')" # idle again, at a random phase
        done
        kill -INT $rpid
        wait $rpid || true
        "$PY" - "$W/lat.json" "$label" <<'PYEOF'
import json, sys, statistics, datetime
def t(s): return datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
lat = []
for line in open(sys.argv[1]):
    j = json.loads(line)
    lat.append((t(j["started"]) - t(j["created"])) * 1000)
lat.sort()
print(f"{sys.argv[2]}: {len(lat)} jobs, submit -> start median {statistics.median(lat):.0f} ms, "
      f"max {lat[-1]:.0f} ms, mean {statistics.mean(lat):.0f} ms")
PYEOF
        rm -f "$W/lat.json"
}

echo "== 1. submit -> job start on an idle runner"
"$ROOT/tests/with-postgres.sh" bash -c "$(declare -f latency); W=$W N=$N JOULE=$JOULE RUNNER=$RUNNER PY=$PY; latency \"\$JOULE_TEST_DATABASE_URL\" 300 'PostgreSQL, NOTIFY (sleep_time_no_job 300 s)'"
latency "$W/poll.db" 5 "SQLite, polling every 5 s (no NOTIFY)"
echo "   (polling alone waits half the interval on average: 150 s with the seed's sleep_time_no_job 300 s)"

echo "== 2. the measurement's CPU cost during a run (${DUR} s, emulated intel2s)"
"$EMU" create --node intel2s --root "$W/n" >/dev/null
"$EMU" serve --root "$W/n" 2>/dev/null &
"$EMU" ctl --root "$W/n" --wait 5 ping >/dev/null
printf 'name: idle\nflow:\n  - name: sleep\n    commands: ["sleep %s"]\n' "$DUR" >"$W/sleep.yml"
cpu() { # cpu SAMPLING_MS: user+system CPU seconds of joule run (its children only sleep)
        printf 'measurement:\n  sampling_rate: %s\n' "$1" >"$W/m.yml"
        "$ROOT/tests/ns-run.sh" "$W/n" -- "$PY" -c 'import resource, subprocess, sys
subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
r = resource.getrusage(resource.RUSAGE_CHILDREN)
print(f"{r.ru_utime + r.ru_stime:.6f}")' "$JOULE" -c "$W/m.yml" run --scenario "$W/sleep.yml" --baseline 0 --json
}
A=$(cpu 99)
Z=$(cpu 60000)
"$PY" -c "
a, z, d = $A, $Z, $DUR
print(f'99 ms sampling: {a:.4f} s CPU; 60 s sampling (boundaries only): {z:.4f} s CPU; over {d} s:')
print(f'the sampling costs {(a - z) / d * 100:.3f}% of one core ({(a - z) / (d / 0.099) * 1e6:.0f} us per sample)')"
