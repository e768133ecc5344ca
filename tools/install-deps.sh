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
