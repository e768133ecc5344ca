#!/bin/bash
# bench/bench-mpi.sh [BATCHES [CALLS]] - what joule's interception adds to an MPI call (docs/performance.md,
# "MPI interception"): bench/bench-mpi.c on 2 ranks, for Open MPI and for MPICH, with libjoule-loader.so
# preloaded (the runtime build of that MPI active, JOULE_VERBOSE=0) and, as a control, without it. Each run
# times every loop both through the ordinary call and straight into the MPI library, interleaved, so the
# "added" column is the interception's cost measured in the same run. Builds the loader and the runtimes
# in build-bench-rt (release). Prints a markdown table. Never run by `meson test`. About a minute.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${BUILD:-build-bench-rt}
BATCHES=${1:-41}
CALLS=${2:-20000}
# release; -Werror off for the rest of the tree (only the runtime's targets are built)
[ -f "$BUILD/build.ninja" ] || meson setup "$BUILD" --buildtype=release -Dwerror=false >/dev/null
ninja -C "$BUILD" src/loader/libjoule-loader.so src/runtime/libjoule-rt.so src/runtime/libjoule-rt-ompi.so \
        src/runtime/libjoule-rt-mpich.so >/dev/null
D=$(mktemp -d /tmp/jbmpi.XXXXXX)
trap 'rm -rf "$D"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OMPI_MCA_hwloc_base_binding_policy=none OMPI_MCA_btl=self,vader OMPI_MCA_btl_vader_single_copy_mechanism=none
LOADER=$ROOT/$BUILD/src/loader/libjoule-loader.so
export JOULE_LIBDIR=$ROOT/$BUILD/src/runtime JOULE_VERBOSE=0

echo "$(date -u +%FT%TZ), commit $(git rev-parse --short HEAD), $(uname -sr), $(nproc) CPUs," \
        "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "bench-mpi: $BATCHES batches x $CALLS calls (2-rank loops: $((BATCHES * 5)) x $((CALLS / 100)) iterations), medians in ns per call; added: median of the paired differences"
echo
echo "| MPI | loop | preload | direct | through the call | added |"
echo "|---|---|---|---:|---:|---:|"
for f in ompi mpich; do
        case $f in
        ompi) cc=mpicc.openmpi run="mpirun.openmpi -np 2" label="Open MPI" ;;
        mpich) cc=mpicc.mpich run="mpirun.mpich -launcher fork -np 2" label=MPICH ;;
        esac
        $cc -O2 -o "$D/bench-$f" bench/bench-mpi.c -ldl
        for pre in joule none; do
                if [ $pre = joule ]; then
                        out=$(timeout 300 env LD_PRELOAD="$LOADER" $run "$D/bench-$f" "$BATCHES" "$CALLS")
                else
                        out=$(timeout 300 $run "$D/bench-$f" "$BATCHES" "$CALLS")
                fi
                printf '%s\n' "$out" | sed -E 's/^(.*[^ ]) +([-0-9.]+) +([-0-9.]+) +([-0-9.]+)$/\1|\2|\3|\4/' |
                        awk -F'|' -v l="$label" -v p="$pre" '{printf "| %s | %s | %s | %s | %s | %s |\n", l, $1, p, $2, $3, $4}'
        done
done
echo
echo "load $(cut -d' ' -f1-3 /proc/loadavg) at the end"
