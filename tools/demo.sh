#!/bin/bash
# demo.sh - on a fresh Debian 12 machine as root: install, build, and run joule's main job here:
# `joule measure` of a sample workload (stress-ng), then `joule info`.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
[ -d build ] || meson setup build --buildtype=release >/dev/null
ninja -C build
echo "== joule measure -- stress-ng --cpu 2 --timeout 5s"
./build/src/cli/joule measure -- stress-ng --cpu 2 --timeout 5s --quiet
echo "== joule info"
./build/src/cli/joule info
