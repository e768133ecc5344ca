#!/bin/bash
# install-deps.sh - install everything joule needs to build, run and test on Debian 12 (as root).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
pkgs=(
        # build
        gcc clang meson ninja-build pkg-config git
        libsensors-dev libyaml-dev libfreeipmi-dev libmunge-dev munge
        # jouled: /metrics over HTTP, sd_notify
        libmicrohttpd-dev libsystemd-dev
        # the store: SQLite (embedded) and PostgreSQL (client library; the server for the tests)
        libsqlite3-dev libpq-dev postgresql
        # tests: sanitizers' and libFuzzer's runtime, valgrind, python for JSON checks
        libclang-rt-14-dev valgrind python3 util-linux procps
        # real peers and oracles: powercap-info, sensors, node_exporter; stress-ng as a workload
        powercap-utils lm-sensors prometheus-node-exporter stress-ng
        # e-mail of the measurement cluster: SMTP through libcurl; a real SMTP server for its tests
        libcurl4-openssl-dev python3-aiosmtpd
        # the runtime: one build per MPI (Open MPI, MPICH, side by side), their tests in C and Fortran
        openmpi-bin libopenmpi-dev mpich libmpich-dev gfortran
        # the Slurm plugin: its header, and a real one-node Slurm with munged for its tests
        libslurm-dev slurmctld slurmd slurm-client iproute2
        # the runtime's counters: perf itself, the oracle of the PMU event encodings (tests/runtime/test-perfev.c)
        linux-perf
        # the runtime under a real benchmark: Debian's hpcc (Open MPI), and what builds it for MPICH
        hpcc libblas-dev make
)
missing=()
for p in "${pkgs[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# node_exporter's package starts a service on :9100 where systemd runs; tests start their own on loopback.
if command -v systemctl >/dev/null && systemctl is-active -q prometheus-node-exporter 2>/dev/null; then
        systemctl stop prometheus-node-exporter || true
fi
# Slurm's packages may start slurmctld and slurmd where systemd runs (they fail without a slurm.conf); the
# tests start their own on loopback (tests/with-slurm.sh).
for s in slurmctld slurmd; do
        if command -v systemctl >/dev/null && systemctl is-active -q "$s" 2>/dev/null; then
                systemctl stop "$s" || true
        fi
done

# HPCC for MPICH (tests/system/test-runtime-hpcc.sh): Debian's hpcc is linked with Open MPI; the same
# upstream source, Debian's hpcc_1.5.0.orig.tar.gz (from bookworm's deb-src of the archive this machine installs from, through a
# private apt source list: the system's is left alone), is built with mpicc.mpich and tests/runtime/hpcc/Make.joule_mpich into
# $HPCC_MPICH_DIR. Only when missing or built from another Make file; a failure (no network) is a warning,
# and the test skips MPICH then.
HPCC_MPICH_DIR=/usr/local/lib/joule-tests/hpcc-mpich
hpcc_make=$(cd "$(dirname "$0")/.." && pwd)/tests/runtime/hpcc/Make.joule_mpich
hpcc_stamp="$(sha256sum "$hpcc_make" | cut -d' ' -f1) hpcc_1.5.0"
if [ "$(cat "$HPCC_MPICH_DIR/stamp" 2>/dev/null)" != "$hpcc_stamp" ] || [ ! -x "$HPCC_MPICH_DIR/hpcc" ]; then
        # (explicit checks: set -e does not apply inside a subshell whose status is tested)
        if ! (
                w=$(mktemp -d /tmp/hpcc-src.XXXXXX) || exit 1
                trap 'rm -rf "$w"' EXIT
                mkdir -p "$w/sources" "$w/lists/partial" || exit 1
                # the archive this machine already installs from (its first URI for bookworm), as deb-src
                uri=$(awk '/^URIs:/ {u = $2} /^Suites:/ && / bookworm( |$)/ && u {print u; exit}' \
                        /etc/apt/sources.list.d/*.sources 2>/dev/null)
                [ -n "$uri" ] || uri=$(awk '$1 == "deb" && $3 == "bookworm" {print $2; exit}' /etc/apt/sources.list 2>/dev/null)
                [ -n "$uri" ] || exit 1
                printf 'Types: deb-src\nURIs: %s\nSuites: bookworm\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
                        "$uri" >"$w/sources/debian-src.sources" || exit 1
                apt_opts=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$w/sources"
                        -o "Dir::State::Lists=$w/lists" -o APT::Sandbox::User=root)
                apt-get "${apt_opts[@]}" update -qq || exit 1
                # only the upstream tarball is needed (the .dsc's other file, the packaging, may be absent on
                # a mirror, hence no status check): apt keeps only files that match the signed index, and the
                # md5 from the .dsc is checked again below
                (cd "$w" && apt-get "${apt_opts[@]}" source --download-only -qq hpcc=1.5.0-3 >/dev/null 2>&1)
                sum=$(awk '/^Files:/ {f = 1; next} f && $3 == "hpcc_1.5.0.orig.tar.gz" {print $1}' "$w/hpcc_1.5.0-3.dsc")
                [ -n "$sum" ] && echo "$sum  $w/hpcc_1.5.0.orig.tar.gz" | md5sum -c --quiet || exit 1
                tar xzf "$w/hpcc_1.5.0.orig.tar.gz" -C "$w" || exit 1
                cp "$hpcc_make" "$w/hpcc-1.5.0/hpl/Make.joule_mpich" || exit 1
                if ! make -C "$w/hpcc-1.5.0" -j"$(nproc)" arch=joule_mpich >"$w/build.log" 2>&1; then
                        tail -20 "$w/build.log"
                        exit 1
                fi
                mkdir -p "$HPCC_MPICH_DIR" &&
                        install -m 755 "$w/hpcc-1.5.0/hpcc" "$HPCC_MPICH_DIR/hpcc" &&
                        echo "$hpcc_stamp" >"$HPCC_MPICH_DIR/stamp"
        ); then
                echo "install-deps.sh: warning: HPCC for MPICH could not be fetched or built; its test skips MPICH" >&2
        fi
fi
