#!/bin/bash
# test-api.sh - libjoule-api against a real jouled on an emulated node (intel2s, counters that wrap every
# few seconds): connect through $JOULE_SOCKET and through node.socket of $JOULE_CONFIG, energy and average
# power against the emulator's ground truth across counter wraps, set_cpufreq reaching the emulated cpufreq
# files (root) and refused for another user, GPUs absent, a stopped (stale) jouled, no jouled at all; then
# the example built against the INSTALLED header and library (meson install --destdir, pkg-config) run
# against the same jouled. TAP. Environment: JOULE, JOULED, JOULE_EMU, API_PROBE, BUILD_ROOT, MESON.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/test-api-lib.sh"
t_setup
t_need_joule
: "${JOULED:?}" "${API_PROBE:?}"
chmod 755 "$T_DIR" # another user reaches the socket

emu_start n intel2s --wrap-uj 50000000
jouled_start emu1
t_ok $? "jouled starts on the emulated node"
P() { JOULE_SOCKET=$JD_SOCK "$API_PROBE" "$@"; }
CPUFREQ=$FX/sys/devices/system/cpu/cpufreq

t_check "connect through \$JOULE_SOCKET" -- P connect
t_check "connect through node.socket of \$JOULE_CONFIG" -- env -u JOULE_SOCKET JOULE_CONFIG="$JD_CFG" "$API_PROBE" connect

# constant load: constant node power; the API's average power must be the emulator's
ctl load 0.6 >/dev/null
sleep 0.5
W=$(P window 2.5)
t_ok $? "energy and time around 2.5 s"
read -r DE DT <<<"$W"
TRUTH_W=$(jget "$(ctl truth)" 'j["power_w"]["node"]')
t_diag "API: $DE mJ in $DT ms = $("$PY" -c "print($DE / $DT)") W; emulator node power $TRUTH_W W"
t_check "the API's average power is the emulator's node power within 1% (counters wrapped meanwhile)" -- \
        near "$("$PY" -c "print($DE / $DT)")" "$TRUTH_W" 0.01
t_check "the window is the sleep's (2.5 s within 0.25 s)" -- near "$DT" 2500 0.1
T0=$(ctl truth)
W=$(P window 1.5)
T1=$(ctl truth)
read -r DE DT <<<"$W"
TRUE_J=$("$PY" -c 'import json,sys; a=json.loads(sys.argv[1]); b=json.loads(sys.argv[2]); print((b["energy_uj"]["node"] - a["energy_uj"]["node"]) / (b["t_s"] - a["t_s"]) / 1e6)' "$T0" "$T1")
t_check "energy advances as the ground truth does (mJ per ms vs the truth's J per s, 1%)" -- \
        near "$("$PY" -c "print($DE / $DT)")" "$TRUE_J" 0.01
ctl load 0 >/dev/null

# set_cpufreq reaches the emulated cpufreq files
OUT=$(P setcpu 0,1 1800000)
t_check "set_cpufreq of CPUs 0 and 1 to 1.8 GHz as root: $OUT" -- test "${OUT%% *}" = 0
t_check "cpu0 and cpu1 are limited to 1800000 kHz in their cpufreq files" -- \
        sh -c "[ \$(cat $CPUFREQ/policy0/scaling_max_freq) = 1800000 ] && [ \$(cat $CPUFREQ/policy1/scaling_max_freq) = 1800000 ] && [ \$(cat $CPUFREQ/policy0/scaling_min_freq) = 1800000 ]"
t_check "cpu2 is untouched" -- sh -c "[ \$(cat $CPUFREQ/policy2/scaling_max_freq) != 1800000 ]"
OUT=$(P setcpu 0,1 0)
t_check "set_cpufreq 0 restores the default range" -- \
        sh -c "[ '${OUT%% *}' = 0 ] && [ \$(cat $CPUFREQ/policy0/scaling_max_freq) = \$(cat $CPUFREQ/policy0/cpuinfo_max_freq) ]"
OUT=$(P setcpu 0 50000)
t_check "a frequency outside the CPU's range: -EINVAL with jouled's words ($OUT)" -- \
        sh -c "printf '%s' \"\$1\" | grep -q '^-22 .*outside'" _ "$OUT"
OUT=$(JOULE_SOCKET=$JD_SOCK setpriv --reuid=65534 --regid=65534 --clear-groups "$API_PROBE" setcpu 0 1800000)
t_check "another user without a job there: -EPERM with words ($OUT)" -- \
        sh -c "printf '%s' \"\$1\" | grep -q '^-1 jouled refused: only root'" _ "$OUT"
OUT=$(P setgpu 0 1000000)
t_check "a node without GPUs: -EOPNOTSUPP with words ($OUT)" -- \
        sh -c "printf '%s' \"\$1\" | grep -q '^-95 .*GPU clock control is not available'" _ "$OUT"

# a jouled that stops updating its page: -ESTALE (threshold max(3 s, 10 samples) from node.sample_ms)
JOULE_CONFIG=$JD_CFG "$API_PROBE" watch 8 >"$T_DIR/watch.out" &
WP=$!
sleep 0.5
kill -STOP "$JD_PID"
wait "$WP"
kill -CONT "$JD_PID"
OUT=$(cat "$T_DIR/watch.out")
t_check "a stopped jouled: joule_energy says the page is stale ($OUT)" -- \
        sh -c "printf '%s' \"\$1\" | grep -q '^-116 .*stale'" _ "$OUT"
t_check "once jouled runs again, connect and read work" -- P window 0.2

# the example against the installed header and library
DEST=$T_DIR/dest
if "$MESON" install -C "$BUILD_ROOT" --no-rebuild --quiet --destdir "$DEST" >"$T_DIR/install.log" 2>&1; then
        t_ok 0 "meson install --destdir"
        PC=$(dirname "$(find "$DEST" -name joule.pc | head -1)")
        FLAGS=$(PKG_CONFIG_SYSROOT_DIR=$DEST PKG_CONFIG_PATH=$PC pkg-config --cflags --libs joule)
        t_check "pkg-config --cflags --libs joule from the destdir: $FLAGS" -- test -n "$FLAGS"
        t_check "the example compiles against the installed header only (-std=c99 -pedantic -Werror)" -- \
                cc -std=c99 -pedantic -Wall -Wextra -Werror "$T_LIBDIR/../../examples/energy-loop.c" $FLAGS -o "$T_DIR/energy-loop"
        LIBDIR=$(dirname "$(find "$DEST" -name 'libjoule-api.so.1' | head -1)")
        ctl load 0.3 >/dev/null
        sleep 0.3
        # A sanitizer build's library needs its runtime loaded first in a program built without it.
        PRELOAD=$(ldd "$LIBDIR/libjoule-api.so.1" | awk '/lib(asan|ubsan)[.]so/ {print $3}' | paste -sd: -)
        OUT=$(LD_PRELOAD=$PRELOAD ASAN_OPTIONS=${ASAN_OPTIONS:-}:detect_leaks=0 LD_LIBRARY_PATH=$LIBDIR \
                JOULE_SOCKET=$JD_SOCK "$T_DIR/energy-loop" 2)
        t_ok $? "the example runs against jouled: $OUT"
        TRUTH_W=$(jget "$(ctl truth)" 'j["power_w"]["node"]')
        AVG=$(printf '%s' "$OUT" | sed -n 's/.*average power \([0-9.]*\) W.*/\1/p')
        t_check "its average power ($AVG W) is the emulator's node power ($TRUTH_W W) within 1%" -- near "${AVG:-0}" "$TRUTH_W" 0.01
        t_check "the installed library exports only joule_* (versioned JOULE_1.0)" -- sh -c \
                "test -z \"\$(nm -D --defined-only '$LIBDIR/libjoule-api.so.1' | awk '{print \$3}' | grep -vE '^(JOULE_1[.]0|joule_[a-z_]+@@JOULE_1[.]0)\$')\""
        t_check "its soname is libjoule-api.so.1" -- sh -c "readelf -d '$LIBDIR/libjoule-api.so.1' | grep -q 'SONAME.*libjoule-api.so.1]'"
        ctl load 0 >/dev/null
else
        t_ok 1 "meson install --destdir"
        sed 's/^/#   /' "$T_DIR/install.log" | tail -20
fi

# no jouled: kill -9 leaves the socket file (refused), then without it (no such file)
jouled_stop KILL
OUT=$(P connect)
t_check "jouled killed (its socket file left): -ECONNREFUSED, 'not running' ($OUT)" -- \
        sh -c "printf '%s' \"\$1\" | grep -q '^-111 jouled is not running (the socket .* refuses connections)'" _ "$OUT"
rm -f "$JD_SOCK"
OUT=$(P connect)
t_check "no socket: -ENOENT naming it ($OUT)" -- \
        sh -c "printf '%s' \"\$1\" | grep -qF -- '-2 jouled is not running (no socket at $JD_SOCK)'" _ "$OUT"
t_done
