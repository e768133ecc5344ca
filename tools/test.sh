#!/bin/bash
# test.sh - on a fresh Debian 12 machine as root: install, build and run joule's whole test suite:
#   1. gcc build with ASan+UBSan: every test (unit, system with emulated nodes and real peers)
#   2. clang build: warning-free compile, unit tests
#   3. valgrind (memcheck) over the unit tests of a release build (-O3: gcc warns there of what -O2 does not see)
#   4. the libFuzzer targets, each for a bounded time
# Ends with the line "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh || { echo "dependency installation failed"; exit 1; }

passed=0
failed=0
out=${JOULE_TEST_OUT:-build-test}
rm -rf "$out"
mkdir -p "$out"

count() { # count meson's results from the testlog*.json of a build dir (named after a --wrapper if any)
        local dir=$1
        local p f
        p=$(cat "$dir"/meson-logs/testlog*.json 2>/dev/null | grep -c '"result": "OK"' || true)
        f=$(cat "$dir"/meson-logs/testlog*.json 2>/dev/null | grep -cE '"result": "(FAIL|ERROR|TIMEOUT|UNEXPECTEDPASS)"' || true)
        passed=$((passed + ${p:-0}))
        failed=$((failed + ${f:-0}))
}

step() { echo; echo "=== $* (at $((SECONDS / 60)) min $((SECONDS % 60)) s)"; }

step "gcc + ASan + UBSan: all tests"
if CC=gcc meson setup "$out/asan" -Db_sanitize=address,undefined -Db_lundef=false >/dev/null &&
        ninja -C "$out/asan"; then
        # the tests that may share the machine first, two at a time, then the others in two lanes (in
        # meson's order they alternate, and every test that must run alone waits for the running ones)
        by_kind() { # 1: those that may run in parallel, 0: the others
                meson introspect "$out/asan" --tests | python3 -c '
import json, sys
print(" ".join(t["name"] for t in json.load(sys.stdin) if t["is_parallel"] == (sys.argv[1] == "1")))' "$1"
        }
        export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
        par=$(by_kind 1) alone=$(by_kind 0)
        if [ -z "$par$alone" ]; then # introspection failed: every test, in meson's order
                meson test -C "$out/asan" --print-errorlogs --num-processes 2 || true
        fi
        # shellcheck disable=SC2086 # test names are words
        [ -n "$par" ] && { meson test -C "$out/asan" --print-errorlogs --num-processes 2 --logbase testlog-parallel $par || true; }
        # Those that must not share the machine with their like run in two lanes: each test of the second
        # lane (its own Slurm or runner on its own emulated nodes, mostly waiting: a minute for a Slurm time
        # limit, cooling nodes) beside one of the first; every test passes with a busy core beside it.
        lane2="" lane1=""
        for t in $alone; do
                case $t in
                system-slurm* | system-runner-emu) lane2="$lane2 $t" ;;
                *) lane1="$lane1 $t" ;;
                esac
        done
        lane2_pid=""
        if [ -n "$lane2" ]; then
                # shellcheck disable=SC2086
                meson test -C "$out/asan" --no-rebuild --print-errorlogs --logbase testlog-lane2 $lane2 \
                        >"$out/lane2.log" 2>&1 &
                lane2_pid=$!
        fi
        # shellcheck disable=SC2086
        [ -n "$lane1" ] && { meson test -C "$out/asan" --no-rebuild --print-errorlogs --logbase testlog-alone $lane1 || true; }
        [ -n "$lane2_pid" ] && { wait "$lane2_pid"; echo "--- the second lane:"; cat "$out/lane2.log"; }
        unset ASAN_OPTIONS UBSAN_OPTIONS
        count "$out/asan"
else
        echo "build failed"; failed=$((failed + 1))
fi

step "clang + ASan + UBSan + fuzzing instrumentation: build and unit tests"
if CC=clang meson setup "$out/clang" -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false >/dev/null && ninja -C "$out/clang"; then
        meson test -C "$out/clang" --suite unit --print-errorlogs || true
        count "$out/clang"
else
        echo "build failed"; failed=$((failed + 1))
fi

step "valgrind: unit tests (the release build tools/demo.sh makes, -O3, with debug info)"
if CC=gcc meson setup "$out/plain" --buildtype=release -Ddebug=true >/dev/null && ninja -C "$out/plain"; then
        meson test -C "$out/plain" --suite unit --print-errorlogs \
                --wrapper "$PWD/tools/valgrind-wrap.sh" ||
                true
        count "$out/plain"
else
        echo "build failed"; failed=$((failed + 1))
fi

step "libFuzzer targets (bounded, two at a time)"
fuzz_one() { # TARGET: run it for its time; its log in $out/NAME.log, its verdict in $out/NAME.rc
        local f=$1 name corpus
        name=$(basename "$f")
        corpus=tests/fuzz/corpus/${name#fuzz-}
        mkdir -p "$out/corpus-$name"
        "$f" -max_total_time="${JOULE_FUZZ_SECONDS:-10}" -timeout=5 "$out/corpus-$name" \
                $( [ -d "$corpus" ] && echo "$corpus" ) >"$out/$name.log" 2>&1
        echo $? >"$out/$name.rc"
}
targets=()
for f in "$out"/clang/tests/fuzz/fuzz-*; do
        [ -f "$f" ] && [ -x "$f" ] && targets+=("$f")
done
for ((i = 0; i < ${#targets[@]}; i += 2)); do
        fuzz_one "${targets[i]}" &
        [ -n "${targets[i + 1]:-}" ] && fuzz_one "${targets[i + 1]}" &
        wait
done
for f in "${targets[@]}"; do
        name=$(basename "$f")
        if [ "$(cat "$out/$name.rc" 2>/dev/null)" = 0 ]; then
                echo "ok: $name"; passed=$((passed + 1))
        else
                echo "FAIL: $name"; tail -30 "$out/$name.log"; failed=$((failed + 1))
        fi
done

# Recap: the failures again, last, so that a log's tail names them and shows their end.
recap() {
        local dir=$1
        compgen -G "$dir/meson-logs/testlog*.json" >/dev/null || return 0
        python3 - "$dir"/meson-logs/testlog*.json <<'PY'
import json, re, sys
for path in sys.argv[1:]:
    for line in open(path, errors="replace"):
        try:
            r = json.loads(line)
        except ValueError:
            continue
        if r.get("result") in ("FAIL", "ERROR", "TIMEOUT", "UNEXPECTEDPASS"):
            print(f"--- {r['result']}: {r['name']} ({r.get('duration', 0):.1f} s) in {path}")
            lines = ((r.get("stdout") or "") + (r.get("stderr") or "")).splitlines()
            # each failed TAP point with its diagnostics (the "#" lines after it), kept short: CI keeps
            # only a part of the log, and every failed test must show in it
            shown = 0
            for i, l in enumerate(lines):
                if l.startswith("not ok") and shown < 6:
                    shown += 1
                    print("  ! " + l[:300])
                    for d in lines[i + 1:i + 9]:
                        if not d.startswith("#"):
                            break
                        print("    " + d[:200])
            bad = [l for l in lines if re.search(r"Sanitizer|runtime error|Assertion|Segmentation", l)]
            for l in bad[:8]:
                print("  ! " + l[:300])
            if not shown:
                for l in lines[-15:]:
                    print("    " + l[:300])
PY
}
if [ "$failed" -gt 0 ]; then
        step "recap of what failed"
        for d in "$out"/asan "$out"/clang "$out"/plain; do recap "$d"; done
        for f in "$out"/fuzz-*.log; do
                [ -f "$f" ] && grep -qE "ERROR|crash|deadly" "$f" && { echo "--- $f"; tail -15 "$f"; }
        done
fi

echo
echo "(the whole suite: $((SECONDS / 60)) min $((SECONDS % 60)) s, dependencies included)"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
