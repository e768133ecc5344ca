#!/bin/bash
# run-fixture-copy.sh SRC DST -- CMD [ARGS...]
# Copies the static fixture tree SRC (under tests/fixtures/) to DST afresh, so that the test may change it
# mid-run (a CPU going offline, a sensor turning to garbage, a file made root-only), then runs CMD through
# tests/ns-run.sh with DST shown at the real /sys and /proc paths.
set -euo pipefail
src=$1 dst=$2
shift 2
[ "${1:-}" = "--" ] && shift
rm -rf "$dst"
mkdir -p "$(dirname "$dst")"
cp -a "$src" "$dst"
chmod -R u+w,go+rX "$dst"
exec "$(dirname "$0")/ns-run.sh" "$dst" -- "$@"
