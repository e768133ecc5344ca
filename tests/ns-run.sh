#!/bin/bash
# ns-run.sh FIXTURE -- CMD [ARGS...]
# Runs CMD in a private mount namespace in which the fixture tree FIXTURE is shown at the real kernel
# paths, so that joule's providers read it exactly as they read the kernel's. Each part is bound only
# when the fixture has it:
#   FIXTURE/sys/class              -> /sys/class            (powercap, hwmon)
#   FIXTURE/sys/devices/system/cpu -> /sys/devices/system/cpu  (cpufreq, topology, online)
#   FIXTURE/dev/cpu                -> /dev/cpu              (msr)
#   FIXTURE/sys/bus/event_source/devices -> the same          (perf PMUs: the runtime's counters)
#   FIXTURE/proc/cpuinfo, stat     -> /proc/cpuinfo, /proc/stat
# Nothing outside the namespace changes. Needs root (or run under `unshare -r`).
# $JOULE_TEST_WRAPPER, when set (tools/valgrind-wrap.sh), is put in front of CMD.
set -euo pipefail
fx=$1
shift
[ "${1:-}" = "--" ] && shift
exec unshare -m --propagation private bash -c '
        set -e
        fx=$1; shift
        bind() { if [ -e "$fx/$1" ]; then mkdir -p "/$1" 2>/dev/null || true; mount --bind "$fx/$1" "/$1"; fi; }
        bind sys/class
        bind sys/devices/system/cpu
        bind sys/bus/event_source/devices
        if [ -e "$fx/dev/cpu" ]; then
                [ -d /dev/cpu ] || { mount -t tmpfs tmpfs /dev/cpu 2>/dev/null || mkdir -p /dev/cpu; }
                mount --bind "$fx/dev/cpu" /dev/cpu
        fi
        for f in cpuinfo stat; do
                [ -e "$fx/proc/$f" ] && mount --bind "$fx/proc/$f" "/proc/$f"
        done
        exec ${JOULE_TEST_WRAPPER:-} "$@"
' ns-run "$fx" "$@"
