#!/bin/bash
# test-runtime-loader.sh - libjoule-loader.so and the runtime builds (docs/runtime.md) with real Open MPI
# and MPICH programs on 2 ranks: the loader picks the build of the program's MPI, joule's counts equal the
# program's own counts of its calls (C and Fortran), the program's output is unchanged, a second PMPI tool
# preloaded beside joule (both orders) counts too, shells and launchers are left alone, programs without
# MPI get the time-guided build, and a missing, empty or corrupt library directory, a build of the other
# MPI and an MPI joule does not know all leave the program running unmanaged with one notice at
# JOULE_VERBOSE=1 and none at 0.
# Environment (meson): JOULE_LOADER, JOULE_RT_BUILDDIR, RUNTIME_SRC (tests/runtime).
set -u
. "$(dirname "$0")/lib.sh"

: "${JOULE_LOADER:?}" "${JOULE_RT_BUILDDIR:?}" "${RUNTIME_SRC:?}"
T_DIR=$(mktemp -d /tmp/jrt.XXXXXX)
trap t_cleanup EXIT
trap 'exit 130' INT TERM

# Open MPI as root, on a small shared machine: more ranks than cores, no binding.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OMPI_MCA_hwloc_base_binding_policy=none OMPI_MCA_btl=self,vader OMPI_MCA_btl_vader_single_copy_mechanism=none
# a waiting rank yields its CPU: on a busy 2-core machine polling ranks crawl
export OMPI_MCA_mpi_yield_when_idle=1
RUN_TIMEOUT=60

# A sanitizer build of the loader needs the sanitizer's runtime loaded first into the (uninstrumented)
# programs: gcc's libasan/libubsan are named by the loader itself, clang's runtime is not (it comes with
# executables), so it is found beside clang. MPI libraries leak by design: no leak report for them.
SAN_PRELOAD=$(ldd "$JOULE_LOADER" | awk '/lib(asan|ubsan)[.]so/ {print $3}' | paste -sd: -)
if [ -z "$SAN_PRELOAD" ] && nm -D "$JOULE_LOADER" 2>/dev/null | grep -q ' U __asan_'; then
        SAN_PRELOAD=$(clang -print-file-name=libclang_rt.asan-x86_64.so)
fi
export ASAN_OPTIONS=${ASAN_OPTIONS:-}:detect_leaks=0
preload() { # preload LIB...: the LD_PRELOAD value with the sanitizer runtime first
        local IFS=:
        echo "${SAN_PRELOAD:+$SAN_PRELOAD:}$*"
}

mpirun_of() {
        case $1 in
        ompi) echo "mpirun.openmpi -np 2" ;;
        mpich) echo "mpirun.mpich -launcher fork -np 2" ;;
        esac
}

# run NAME PRELOAD VERBOSE LIBDIR -- CMD...: CMD with that preload and environment, bounded in time;
# stdout in $T_DIR/NAME.out, stderr in $T_DIR/NAME.err, exit status in $T_DIR/NAME.rc.
run() {
        local name=$1 pre=$2 verbose=$3 libdir=$4
        shift 5
        timeout "$RUN_TIMEOUT" env ${pre:+LD_PRELOAD=$pre} JOULE_VERBOSE="$verbose" JOULE_LIBDIR="$libdir" "$@" \
                >"$T_DIR/$name.out" 2>"$T_DIR/$name.err" </dev/null
        echo $? >"$T_DIR/$name.rc"
}
rc() { cat "$T_DIR/$1.rc"; }

# check_counts NAME CALLS...: each rank's counts as joule printed them (stderr) equal the program's own
# (stdout), for every call the program counts; exactly one node master; prints the distinct events.
check_counts() {
        "$PY" - "$T_DIR/$1.out" "$T_DIR/$1.err" <<'EOF'
import re, sys
own, joule = {}, {}
for line in open(sys.argv[1]):
    m = re.match(r'counts rank (\d+):(.*)', line)
    if m:
        w = m.group(2).split()
        own[int(m.group(1))] = {w[i]: int(w[i + 1]) for i in range(0, len(w), 2)}
masters, events = 0, set()
for line in open(sys.argv[2]):
    m = re.match(r'joule: \S+\[\d+\]: rank (\d+)/2( \(node master\))?: (\d+) MPI calls \((\d+) through Fortran\), (\d+) distinct events: (.*)', line)
    if m:
        joule[int(m.group(1))] = {k: int(v) for k, v in (e.rsplit(' ', 1) for e in m.group(6).split(', '))}
        joule[int(m.group(1))]['total'] = int(m.group(3))
        joule[int(m.group(1))]['fortran'] = int(m.group(4))
        masters += bool(m.group(2))
        events.add(int(m.group(5)))
bad = []
if sorted(own) != [0, 1] or sorted(joule) != [0, 1]:
    bad.append('ranks: program %s, joule %s' % (sorted(own), sorted(joule)))
for r in own:
    for call, n in own[r].items():
        if joule.get(r, {}).get(call, 0) != n:
            bad.append('rank %d %s: program %d, joule %s' % (r, call, n, joule.get(r, {}).get(call)))
if masters != 1:
    bad.append('%d node masters' % masters)
print('events', ' '.join(map(str, sorted(events))))
for r in sorted(joule):
    print('fortran', r, joule[r]['fortran'], joule[r]['total'])
if bad:
    print('\n'.join(bad))
    sys.exit(1)
EOF
}

# check_tool NAME: the PMPI tool's counts of MPI_Send and MPI_Allreduce equal the program's, per rank.
check_tool() {
        "$PY" - "$T_DIR/$1.out" "$T_DIR/$1.err" <<'EOF'
import re, sys
own, tool = {}, {}
for line in open(sys.argv[1]):
    m = re.match(r'counts rank (\d+):(.*)', line)
    if m:
        w = m.group(2).split()
        own[int(m.group(1))] = {w[i]: int(w[i + 1]) for i in range(0, len(w), 2)}
for line in open(sys.argv[2]):
    m = re.search(r'pmpi-tool: rank (\d+): MPI_Send (\d+) MPI_Allreduce (\d+)', line)
    if m:
        tool[int(m.group(1))] = (int(m.group(2)), int(m.group(3)))
want = {r: (c['MPI_Send'], c['MPI_Allreduce']) for r, c in own.items()}
print('program', want, 'tool', tool)
sys.exit(0 if want and tool == want else 1)
EOF
}

# n_lines FILE PATTERN: lines of FILE matching PATTERN (extended regex)
n_lines() { grep -cE "$2" "$T_DIR/$1" || true; }

LOADER_PRE=$(preload "$JOULE_LOADER")
RT=$JOULE_RT_BUILDDIR

for f in ompi mpich; do
        case $f in
        ompi) mpicc=mpicc.openmpi mpif90=mpif90.openmpi label="Open MPI" other=mpich ;;
        mpich) mpicc=mpicc.mpich mpif90=mpif90.mpich label=MPICH other=ompi ;;
        esac
        if ! command -v $mpicc >/dev/null || [ ! -f "$RT/libjoule-rt-$f.so" ]; then
                t_skip "$label" "$mpicc or libjoule-rt-$f.so missing (tools/install-deps.sh installs $label)"
                continue
        fi
        mpirun=$(mpirun_of $f)
        ! readelf -d "$RT/libjoule-rt-$f.so" | grep NEEDED | grep -qE 'lib(mpi|mpich|open-)'
        t_ok $? "$label: libjoule-rt-$f.so names no MPI library (it takes the program's)"
        pp=$T_DIR/pp-$f
        t_check "$label: the ping-pong program and the PMPI tool build" -- bash -c \
                "$mpicc -O2 -o $pp $RUNTIME_SRC/mpi-pingpong.c && \
                 $mpicc -O2 -shared -fPIC -o $T_DIR/tool-$f.so $RUNTIME_SRC/pmpi-tool.c" || continue

        # the program's output, and its own stderr, without joule
        run $f-plain "" 0 "$RT" -- $mpirun "$pp" 60
        t_ok "$(rc $f-plain)" "$label: the program runs without joule"

        # managed: the right build, every rank's counts
        run $f-v2 "$LOADER_PRE" 2 "$RT" -- $mpirun "$pp" 60
        t_ok "$(rc $f-v2)" "$label: the program runs under the loader"
        [ "$(n_lines $f-v2.err "^joule: pp-$f\[[0-9]+\]: $label program .*: managed by libjoule-rt-$f.so$")" = 2 ]
        t_ok $? "$label: both ranks are managed by libjoule-rt-$f.so (the notice says which)"
        [ "$(n_lines $f-v2.err "libjoule-rt-$other|libjoule-rt.so")" = 0 ]
        t_ok $? "$label: no other build is loaded"
        [ "$(n_lines $f-v2.err '^joule: mpirun[.a-z]*\[[0-9]+\]: a shell or MPI launcher: not managed$')" = 1 ]
        t_ok $? "$label: the launcher is left alone"
        # what the launcher's process that starts the ranks (orterun, hydra_pmi_proxy) has mapped
        run $f-maps "$LOADER_PRE" 0 "$RT" -- $mpirun sh -c 'cat /proc/$PPID/maps'
        [ "$(rc $f-maps)" = 0 ] && grep -q libjoule-loader.so "$T_DIR/$f-maps.out" &&
                ! grep -q libjoule-rt "$T_DIR/$f-maps.out"
        t_ok $? "$label: the launcher's process that starts the ranks has the loader but no runtime"
        t_check "$label: joule counts every call the program counts, one node master" -- check_counts $f-v2
        t_check "$label: the program's output is unchanged" -- diff "$T_DIR/$f-plain.out" "$T_DIR/$f-v2.out"

        # MPI_Init_thread (MPI_THREAD_MULTIPLE: atomic counts)
        run $f-thread "$LOADER_PRE" 3 "$RT" -- $mpirun "$pp" 60 multiple
        [ "$(rc $f-thread)" = 0 ] && grep -q "MPI_Init_thread 1" "$T_DIR/$f-thread.out" &&
                [ "$(n_lines $f-thread.err ': rank [01]/2: node rank [01]/2.*, MPI_THREAD_MULTIPLE \(atomic counts\)$')" = 2 ]
        t_ok $? "$label: the program starts with MPI_Init_thread under the loader, which sees MPI_THREAD_MULTIPLE"
        t_check "$label, MPI_Init_thread: joule counts every call the program counts" -- check_counts $f-thread

        # the event ids do not follow the buffers the program allocates anew each iteration
        run $f-v2-long "$LOADER_PRE" 2 "$RT" -- $mpirun "$pp" 180
        e60=$(check_counts $f-v2 | awk '/^events/ {print $2}')
        e180=$(check_counts $f-v2-long | awk '/^events/ {print $2}')
        [ -n "$e60" ] && [ "$e60" = "$e180" ] && [ "$(rc $f-v2-long)" = 0 ]
        t_ok $? "$label: as many distinct events for 180 iterations as for 60 ($e60 / $e180)"

        # silent at JOULE_VERBOSE=0, output unchanged
        run $f-v0 "$LOADER_PRE" 0 "$RT" -- $mpirun "$pp" 60
        [ "$(rc $f-v0)" = 0 ] && diff -q "$T_DIR/$f-plain.out" "$T_DIR/$f-v0.out" >/dev/null &&
                [ "$(n_lines $f-v0.err '^joule:')" = 0 ]
        t_ok $? "$label: at JOULE_VERBOSE=0 joule says nothing and the output is the same"

        # a second PMPI tool beside joule, in both orders: both count
        for order in after before; do
                if [ $order = after ]; then
                        pre=$(preload "$JOULE_LOADER" "$T_DIR/tool-$f.so")
                else
                        pre=$(preload "$T_DIR/tool-$f.so" "$JOULE_LOADER")
                fi
                run $f-tool-$order "$pre" 2 "$RT" -- $mpirun "$pp" 60
                t_check "$label, PMPI tool $order joule in LD_PRELOAD: the tool counts every MPI_Send and MPI_Allreduce" \
                        -- check_tool $f-tool-$order
                t_check "$label, PMPI tool $order joule in LD_PRELOAD: joule counts every call" \
                        -- check_counts $f-tool-$order
                t_check "$label, PMPI tool $order joule in LD_PRELOAD: output unchanged" \
                        -- diff "$T_DIR/$f-plain.out" "$T_DIR/$f-tool-$order.out"
        done

        # Fortran (mpif.h): the Fortran bindings are intercepted, each call counted once
        if command -v gfortran >/dev/null && command -v $mpif90 >/dev/null; then
                if t_check "$label: the Fortran program builds" -- \
                        $mpif90 -O2 -o "$T_DIR/fpp-$f" "$RUNTIME_SRC/mpi-pingpong.f90"; then
                        run $f-f-plain "" 0 "$RT" -- $mpirun "$T_DIR/fpp-$f" 40
                        run $f-f "$LOADER_PRE" 3 "$RT" -- $mpirun "$T_DIR/fpp-$f" 40
                        [ "$(rc $f-f)" = 0 ] && [ "$(n_lines $f-f.err ': rank [01]/2: node rank [01]/2')" = 2 ] &&
                                [ "$(n_lines $f-f.err 'MPI_THREAD_MULTIPLE')" = 0 ]
                        t_ok $? "$label Fortran: the program runs under the loader (mpi_init: one thread at a time)"
                        t_check "$label Fortran: joule counts every call the program counts" -- check_counts $f-f
                        check_counts $f-f | awk '/^fortran/ && $3 != $4 {bad = 1} END {exit bad}'
                        t_ok $? "$label Fortran: every call came through the Fortran bindings"
                        t_check "$label Fortran: output unchanged" -- diff "$T_DIR/$f-f-plain.out" "$T_DIR/$f-f.out"
                        run $f-ft "$LOADER_PRE" 3 "$RT" -- $mpirun "$T_DIR/fpp-$f" 40 multiple
                        [ "$(rc $f-ft)" = 0 ] && grep -q "MPI_Init_thread 1" "$T_DIR/$f-ft.out" &&
                                [ "$(n_lines $f-ft.err ': rank [01]/2: node rank [01]/2.*, MPI_THREAD_MULTIPLE \(atomic counts\)$')" = 2 ]
                        t_ok $? "$label Fortran: mpi_init_thread, and the loader sees MPI_THREAD_MULTIPLE"
                        t_check "$label Fortran, mpi_init_thread: joule counts every call the program counts" -- check_counts $f-ft
                fi
        else
                t_skip "$label Fortran" "gfortran or $mpif90 missing"
        fi

        # failures leave the program running unmanaged: one notice per rank at 1, none at 0
        mkdir -p "$T_DIR/empty" "$T_DIR/corrupt-$f" "$T_DIR/other-$f"
        head -c 4096 /dev/urandom >"$T_DIR/corrupt-$f/libjoule-rt-$f.so"
        cp "$RT/libjoule-rt-$other.so" "$T_DIR/other-$f/libjoule-rt-$f.so" 2>/dev/null
        for case in "missing:$T_DIR/nonexistent" "empty:$T_DIR/empty" "corrupt:$T_DIR/corrupt-$f" \
                "other MPI's build:$T_DIR/other-$f"; do
                what=${case%%:*} dir=${case#*:}
                if [ "$what" = "other MPI's build" ] && [ ! -f "$dir/libjoule-rt-$f.so" ]; then
                        t_skip "$label, $what" "libjoule-rt-$other.so not built"
                        continue
                fi
                run $f-fail1 "$LOADER_PRE" 1 "$dir" -- $mpirun "$pp" 30
                run $f-fail0 "$LOADER_PRE" 0 "$dir" -- $mpirun "$pp" 30
                run $f-fail-plain "" 0 "$dir" -- $mpirun "$pp" 30
                [ "$(rc $f-fail1)" = 0 ] && [ "$(rc $f-fail0)" = 0 ] &&
                        diff -q "$T_DIR/$f-fail-plain.out" "$T_DIR/$f-fail1.out" >/dev/null &&
                        diff -q "$T_DIR/$f-fail-plain.out" "$T_DIR/$f-fail0.out" >/dev/null
                t_ok $? "$label, $what library directory: the program runs, its output unchanged"
                [ "$(n_lines $f-fail1.err '^joule:')" = 2 ] &&
                        [ "$(n_lines $f-fail1.err "^joule: pp-$f\[[0-9]+\]: $label program .*the program runs unmanaged$")" = 2 ]
                st=$?
                t_ok $st "$label, $what library directory: one notice per rank at JOULE_VERBOSE=1"
                [ $st = 0 ] || sed 's/^/#   /' "$T_DIR/$f-fail1.err" | head -5
                [ "$(n_lines $f-fail0.err '^joule:')" = 0 ]
                t_ok $? "$label, $what library directory: silence at JOULE_VERBOSE=0"
        done
done

# Shells and launchers are left alone; programs without MPI get the time-guided build.
run bash "$LOADER_PRE" 2 "$RT" -- bash -c 'grep -c libjoule /proc/$$/maps; cat /proc/self/maps'
bash_maps=$(head -1 "$T_DIR/bash.out")
[ "$(rc bash)" = 0 ] && [ "$bash_maps" -ge 1 ] && ! head -1 "$T_DIR/bash.out" | grep -q rt &&
        ! grep -q "bash.*managed by" "$T_DIR/bash.err" && grep -q "^joule: bash\[[0-9]*\]: a shell or MPI launcher" "$T_DIR/bash.err"
t_ok $? "bash has the loader mapped but no runtime: left alone"
grep -q '/libjoule-rt.so$' "$T_DIR/bash.out" && ! grep -q 'libjoule-rt-' "$T_DIR/bash.out"
t_ok $? "cat (no MPI) has libjoule-rt.so mapped, no MPI build"
grep -q '^joule: cat\[[0-9]*\]: not an MPI program: managed by libjoule-rt.so$' "$T_DIR/bash.err"
t_ok $? "cat: the notice names the build without MPI"

# (not coreutils' sleep: it closes stderr before exit)
start=$(date +%s.%N)
run sleep "$LOADER_PRE" 2 "$RT" -- "$PY" -c 'import time; time.sleep(1.3)'
end=$(date +%s.%N)
# its periods match its own time (one per whole second; the last may still be due), its time is the
# sleep's and start-up's (a timer holding the exit until its next period would make it 2 s), and the
# process ended within a second of that time
"$PY" - "$T_DIR/sleep.err" "$start" "$end" <<'EOF'
import re, sys
m = re.search(r'^joule: python3[.0-9]*\[\d+\]: not an MPI program: (\d+) periods of 1000 ms in ([0-9.]+) s \(time-guided\)$',
              open(sys.argv[1]).read(), re.M)
wall = float(sys.argv[3]) - float(sys.argv[2])
ok = m and 1.3 <= float(m.group(2)) < 1.95 and int(m.group(1)) in (int(float(m.group(2))) - 1, int(float(m.group(2)))) \
    and int(m.group(1)) >= 1 and wall < float(m.group(2)) + 1.0
sys.exit(0 if ok else 1)
EOF
t_ok $? "a program sleeping 1.3 s: its time-guided periods, the timer stopped at exit ($(grep periods "$T_DIR/sleep.err"))"
run true "$LOADER_PRE" 2 "$RT" -- true
grep -qE '^joule: true\[[0-9]+\]: not an MPI program: 0 periods of 1000 ms in 0\.[0-9]+ s' "$T_DIR/true.err" &&
        [ "$(rc true)" = 0 ]
t_ok $? "true: exits at once (the timer does not hold it for a period)"
# leak checks where the loader is a sanitizer build: programs without MPI (no MPI library's own leaks)
if [ -n "$SAN_PRELOAD" ]; then
        ASAN_OPTIONS=${ASAN_OPTIONS%:detect_leaks=0}:detect_leaks=1 run lsan "$LOADER_PRE" 2 "$RT" -- true
        ASAN_OPTIONS=${ASAN_OPTIONS%:detect_leaks=0}:detect_leaks=1 run lsan-missing "$LOADER_PRE" 1 "$T_DIR/nonexistent" -- true
        [ "$(rc lsan)" = 0 ] && [ "$(rc lsan-missing)" = 0 ] && ! grep -q LeakSanitizer "$T_DIR/lsan.err" "$T_DIR/lsan-missing.err"
        t_ok $? "LeakSanitizer: nothing left by the loader and libjoule-rt.so, managed or not"
else
        t_skip "LeakSanitizer" "not a sanitizer build"
fi
run nompi-missing "$LOADER_PRE" 1 "$T_DIR/nonexistent" -- echo hello
[ "$(rc nompi-missing)" = 0 ] && [ "$(cat "$T_DIR/nompi-missing.out")" = hello ] &&
        [ "$(n_lines nompi-missing.err '^joule: echo\[[0-9]+\]: not an MPI program: cannot load the runtime: .*the program runs unmanaged$')" = 1 ] &&
        [ "$(n_lines nompi-missing.err .)" = 1 ]
t_ok $? "no MPI, no library directory: runs unmanaged with one notice"

run badverbose "$LOADER_PRE" "lots" "$RT" -- echo hello
[ "$(rc badverbose)" = 0 ] && [ "$(cat "$T_DIR/badverbose.out")" = hello ] &&
        grep -q '^joule: echo\[[0-9]*\]: JOULE_VERBOSE=lots is not a number from 0 to 4; using 1$' "$T_DIR/badverbose.err" &&
        grep -q '^joule: echo\[[0-9]*\]: not an MPI program: managed by libjoule-rt.so$' "$T_DIR/badverbose.err"
t_ok $? "JOULE_VERBOSE=lots: said once, then level 1"

# An MPI joule does not know (a stand-in: none is packaged for Debian): unmanaged, its calls still reach it.
if cc -O2 -shared -fPIC -DJL_UNKNOWN_MPI_LIB -o "$T_DIR/libunknownmpi.so" "$RUNTIME_SRC/unknown-mpi.c" &&
        cc -O2 -o "$T_DIR/unknown-mpi" "$RUNTIME_SRC/unknown-mpi.c" -L"$T_DIR" -lunknownmpi -Wl,-rpath,"$T_DIR"; then
        run unknown1 "$LOADER_PRE" 1 "$RT" -- "$T_DIR/unknown-mpi"
        run unknown0 "$LOADER_PRE" 0 "$RT" -- "$T_DIR/unknown-mpi"
        [ "$(rc unknown1)" = 0 ] && [ "$(cat "$T_DIR/unknown1.out")" = "unknown-mpi: init 1 finalize 1" ] &&
                [ "$(n_lines unknown1.err .)" = 1 ] &&
                grep -q '^joule: unknown-mpi\[[0-9]*\]: an MPI joule does not know ("FooMPI 1.0.*"); the program runs unmanaged$' \
                        "$T_DIR/unknown1.err"
        t_ok $? "an unknown MPI: one notice, the program runs and its calls reach its MPI"
        [ "$(rc unknown0)" = 0 ] && [ ! -s "$T_DIR/unknown0.err" ]
        t_ok $? "an unknown MPI: silence at JOULE_VERBOSE=0"
else
        t_ok 1 "the unknown-MPI stand-in builds"
fi

t_done
