#!/bin/bash
# test-runtime-hpcc.sh - a real MPI benchmark under the runtime (issue 8): HPCC 1.5.0 runs to completion
# under libjoule-loader.so with both MPI flavours and its results are unchanged. Debian's hpcc (Open MPI)
# and the same source built for MPICH (tools/install-deps.sh) each run on 2 ranks with a small input
# (tests/runtime/hpcc/hpccinf.txt) once without joule and once with the loader preloaded: both runs end
# with HPCC's end marker, every check HPCC makes passes (HPL's and PTRANS's residuals, RandomAccess's
# errors, STREAM's validation, the FFT's and DGEMM's errors, Success=1), both runs have the same
# correctness fields (timings and rates aside: HPL's norms and residual, the sizes, the errors, bit for
# bit), the notice names the flavour's build on both ranks, nothing failed, and both ranks' calls were
# counted. Where jouled can run on an emulated node (root), each flavour once more through `joule launch`:
# the same checks, and the step is accounted.
# Environment (meson): JOULE_LOADER, JOULE_RT_BUILDDIR, HPCC_SRC (tests/runtime/hpcc); optional JOULE,
# JOULED, JOULE_EMU (joule launch); HPCC_OMPI, HPCC_MPICH (the binaries; defaults: Debian's, and
# install-deps.sh's).
set -u
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/test-api-lib.sh"

: "${JOULE_LOADER:?}" "${JOULE_RT_BUILDDIR:?}" "${HPCC_SRC:?}"
HPCC_OMPI=${HPCC_OMPI:-/usr/bin/hpcc}
HPCC_MPICH=${HPCC_MPICH:-/usr/local/lib/joule-tests/hpcc-mpich/hpcc}
T_DIR=$(mktemp -d /tmp/jhp.XXXXXX)
trap t_cleanup EXIT
trap 'exit 130' INT TERM

# Open MPI as root on a small shared machine, as in test-runtime-loader.sh.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OMPI_MCA_hwloc_base_binding_policy=none OMPI_MCA_btl=self,vader OMPI_MCA_btl_vader_single_copy_mechanism=none
# a waiting rank yields its CPU (as the other MPI tests do): on a busy 2-core machine polling ranks crawl
export OMPI_MCA_mpi_yield_when_idle=1
RUN_TIMEOUT=120 # one run takes 2-10 s here

# The sanitizer's runtime first in LD_PRELOAD of the uninstrumented hpcc (test-runtime-loader.sh); the MPI
# libraries leak by design: no leak report for the runs (jouled keeps the suite's options).
SAN_PRELOAD=$(ldd "$JOULE_LOADER" | awk '/lib(asan|ubsan)[.]so/ {print $3}' | paste -sd: -)
if [ -z "$SAN_PRELOAD" ] && nm -D "$JOULE_LOADER" 2>/dev/null | grep -q ' U __asan_'; then
        SAN_PRELOAD=$(clang -print-file-name=libclang_rt.asan-x86_64.so)
fi
LOADER_PRE=${SAN_PRELOAD:+$SAN_PRELOAD:}$JOULE_LOADER
RT=$JOULE_RT_BUILDDIR

# run NAME PRELOAD -- CMD...: CMD in its own directory $T_DIR/NAME holding hpccinf.txt (HPCC reads it and
# writes hpccoutf.txt there), bounded in time, with JOULE_VERBOSE=2 and the build tree's runtime; stdout
# and stderr in $T_DIR/NAME.out, .err, the exit status in .rc.
run() {
        local name=$1 pre=$2
        shift 3
        mkdir -p "$T_DIR/$name" && cp "$HPCC_SRC/hpccinf.txt" "$T_DIR/$name/"
        (cd "$T_DIR/$name" && timeout "$RUN_TIMEOUT" env ${pre:+LD_PRELOAD=$pre} JOULE_VERBOSE=2 JOULE_LIBDIR="$RT" \
                ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0" "$@" >"$T_DIR/$name.out" 2>"$T_DIR/$name.err" </dev/null)
        echo $? >"$T_DIR/$name.rc"
}
rc() { cat "$T_DIR/$1.rc"; }
n_lines() { grep -cE "$2" "$T_DIR/$1" || true; }

# hpcc_results FILE: checks one hpccoutf.txt (exit 1, with the reasons, when one fails) and prints its
# correctness fields as JSON: the sections run, the Summary's values but timings and rates, and the body's
# residuals, errors and sizes.
hpcc_results() {
        "$PY" - "$1" <<'EOF'
import json, math, re, sys
text = open(sys.argv[1]).read()
lines = text.splitlines()
bad = []
want = ['MPIRandomAccess', 'StarRandomAccess', 'SingleRandomAccess', 'MPIRandomAccess_LCG',
        'StarRandomAccess_LCG', 'SingleRandomAccess_LCG', 'PTRANS', 'StarDGEMM', 'SingleDGEMM', 'StarSTREAM',
        'SingleSTREAM', 'MPIFFT', 'StarFFT', 'SingleFFT', 'LatencyBandwidth', 'HPL', 'Summary']
begun = re.findall(r'^Begin of (\S+) section\.$', text, re.M)
ended = re.findall(r'^End of (\S+) section\.$', text, re.M)
if begun != want or ended != want:
    bad.append('sections: begun %s, ended %s' % (begun, ended))
if 'End of HPC Challenge tests.' not in lines[-6:]:
    bad.append('no end marker in the last lines')
# the Summary's key=value lines; timings, rates and the clock are not results
timing = re.compile(r'(_time\d*|_CheckTime|Tflops|Gflops|GUPs|_GBs|GBytes|_usec|STREAM_(Copy|Scale|Add|Triad))$')
summary = {}
insum = False
for l in lines:
    if l == 'Begin of Summary section.':
        insum = True
    elif l == 'End of Summary section.':
        insum = False
    elif insum and '=' in l:
        k, v = l.split('=', 1)
        if not timing.search(k):
            summary[k] = v
if summary.get('Success') != '1':
    bad.append('Success=%s' % summary.get('Success'))
for k in ('MPIRandomAccess_Errors', 'MPIRandomAccess_LCG_Errors', 'PTRANS_residual'):
    if summary.get(k) != '0':
        bad.append('%s=%s' % (k, summary.get(k)))
body = {}
hpl = re.findall(r'^\|\|Ax-b\|\|_oo/\(eps\*\(\|\|A\|\|_oo\*\|\|x\|\|_oo\+\|\|b\|\|_oo\)\*N\)=\s*(\S+) \.+ (\S+)$', text, re.M)
body['hpl'] = hpl
if not hpl or any(v != 'PASSED' for _, v in hpl):
    bad.append('HPL residual checks: %s' % hpl)
ptrans = [r.split() for r in re.findall(r'^(?:WALL|CPU) +\d+ +\d+ .*$', text, re.M)]
# compared: the WALL rows but TIME and GB/s (a CPU row is printed only when its CPU time was not 0)
body['ptrans'] = [r[:7] + [r[8], r[10]] for r in ptrans if r[0] == 'WALL']
if not ptrans or any(r[8] != 'PASSED' or float(r[10]) != 0 for r in ptrans):
    bad.append('PTRANS checks: %s' % ptrans)
body['completed'] = re.findall(r'^\s*(\d+) tests completed and (passed|failed) residual checks', text, re.M)
if [n for n, what in body['completed'] if what == 'failed'] != ['0', '0']:
    bad.append('failed residual checks: %s' % body['completed'])
body['found'] = re.findall(r'^Found (\d+) errors in (\d+) locations \((\S+)\)\.$', text, re.M)
if len(body['found']) != 4 or any(e != '0' or p != 'passed' for e, _, p in body['found']):
    bad.append('RandomAccess: %s' % body['found'])
body['node_errors'] = re.findall(r'^Node\(s\) with error (\d+)$', text, re.M)
if not body['node_errors'] or any(e != '0' for e in body['node_errors']):
    bad.append('Node(s) with error: %s' % body['node_errors'])
if not re.search(r'^Solution Validates', text, re.M):
    bad.append('STREAM does not validate')
# StarDGEMM's matrices are seeded with the time: its residual is checked, not compared
dgemm = re.findall(r'^Scaled residual: (\S+)$', text, re.M)
if len(dgemm) != 1 or not float(dgemm[0]) < 16:
    bad.append('StarDGEMM: %s' % dgemm)
# HPCC's own criterion for the FFTs: max|x-x0| / ln(n) / eps < 16 (MPIFFT, then StarFFT)
body['fft'] = re.findall(r'^max\(\|x-x0\|\): (\S+)$', text, re.M)
eps = float(summary.get('HPL_eps', '1.110223e-16'))
ns = [float(summary.get('MPIFFT_N', 0)), float(summary.get('FFT_N', 0))]
if len(body['fft']) != 2 or min(ns) < 2 or any(not float(e) / math.log(n) / eps < 16 for e, n in zip(body['fft'], ns)):
    bad.append('FFT errors: %s, n %s' % (body['fft'], ns))
body['sizes'] = re.findall(r'^(?:Array size|Vector size|Number of updates(?: EXECUTED)?|Main table size|'
                           r'Total Main table size|PE Main table size|Message Length)\s*[:=]?\s*(.*)$', text, re.M)
if 'FAILED' in text:
    bad.append('FAILED in the output')
print(json.dumps({'sections': begun, 'summary': summary, 'body': body}, sort_keys=True))
if bad:
    print('\n'.join(bad), file=sys.stderr)
    sys.exit(1)
EOF
}

# same_results A B: the correctness fields of two runs are equal; prints what differs.
same_results() {
        "$PY" - "$1" "$2" <<'EOF'
import json, sys
a, b = (json.load(open(f)) for f in sys.argv[1:3])
diff = []
for part in ('sections', 'summary', 'body'):
    x, y = a[part], b[part]
    if isinstance(x, dict):
        for k in sorted(set(x) | set(y)):
            if x.get(k) != y.get(k):
                diff.append('%s %s: %s / %s' % (part, k, x.get(k), y.get(k)))
    elif x != y:
        diff.append('%s: %s / %s' % (part, x, y))
print('\n'.join(diff) if diff else 'equal: %d summary fields, %d body fields' % (len(a['summary']), len(a['body'])))
sys.exit(1 if diff else 0)
EOF
}

# check_managed NAME FLAVOUR LABEL: the notices of a managed run: both ranks' hpcc managed by the flavour's
# build, no other build, nothing failed, each rank's calls counted at MPI_Finalize, one node master.
check_managed() {
        local name=$1 f=$2 label=$3 other
        [ "$f" = ompi ] && other=mpich || other=ompi
        [ "$(n_lines "$name.err" "^joule: hpcc\[[0-9]+\]: $label program \(.*\): managed by libjoule-rt-$f.so$")" = 2 ]
        t_ok $? "$label: the notice names libjoule-rt-$f.so on both ranks ($name)"
        [ "$(n_lines "$name.err" "libjoule-rt-$other|libjoule-rt.so|unmanaged|cannot|no definition|not a joule|does not know")" = 0 ]
        t_ok $? "$label: no other build, nothing failed ($name)"
        "$PY" - "$T_DIR/$name.err" <<'EOF'
import re, sys
ranks, masters = {}, 0
for l in open(sys.argv[1]):
    m = re.match(r'joule: hpcc\[\d+\]: rank (\d)/2( \(node master\))?: (\d+) MPI calls \(0 through Fortran\), (\d+) distinct events: ', l)
    if m:
        ranks[int(m.group(1))] = int(m.group(3))
        masters += bool(m.group(2))
print('# MPI calls per rank', ranks, 'node masters', masters)
sys.exit(0 if sorted(ranks) == [0, 1] and all(n > 1000 for n in ranks.values()) and masters == 1 else 1)
EOF
        t_ok $? "$label: both ranks' MPI calls went through joule, one node master ($name)"
}

# jouled on an emulated node, for `joule launch` (root: the fixture's namespace); else those runs are skipped.
LAUNCH=""
if [ "$(id -u)" = 0 ] && [ -x "${JOULE:-}" ] && [ -x "${JOULED:-}" ] && [ -x "${JOULE_EMU:-}" ]; then
        if emu_start n intel2s && jouled_start hp1; then
                LAUNCH=yes
                # launch puts the loader first in LD_PRELOAD; a sanitizer build's runtime then comes in as
                # the loader's dependency (as in test-rt-jouled.sh)
                export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0
        else
                t_diag "jouled did not start on the emulated node"
        fi
fi
launch_reason="needs root and JOULE, JOULED, JOULE_EMU (meson sets them where jouled is built)"

for f in ompi mpich; do
        case $f in
        ompi) bin=$HPCC_OMPI label="Open MPI" lib=libmpi.so.40 mpirun="mpirun.openmpi -np 2" ;;
        mpich) bin=$HPCC_MPICH label=MPICH lib=libmpich.so.12 mpirun="mpirun.mpich -launcher fork -np 2" ;;
        esac
        if [ ! -x "$bin" ] || [ ! -f "$RT/libjoule-rt-$f.so" ] || ! command -v "${mpirun%% *}" >/dev/null; then
                t_skip "$label: hpcc" "$bin, ${mpirun%% *} or libjoule-rt-$f.so missing (tools/install-deps.sh)"
                continue
        fi
        ldd "$bin" | grep -q "$lib"
        t_ok $? "$label: $bin is linked with $lib"

        run $f-plain "" -- $mpirun "$bin"
        run $f-joule "$LOADER_PRE" -- $mpirun "$bin"
        for name in $f-plain $f-joule; do
                t_ok "$(rc $name)" "$label: hpcc exits 0 ($name)"
                [ "$(rc $name)" = 0 ] || tail -20 "$T_DIR/$name.err" | sed 's/^/#   /'
                hpcc_results "$T_DIR/$name/hpccoutf.txt" >"$T_DIR/$name.json" 2>"$T_DIR/$name.bad"
                t_ok $? "$label: hpccoutf.txt ends with its end marker and every check HPCC makes passes ($name)"
                sed 's/^/#   /' "$T_DIR/$name.bad"
        done
        check_managed $f-joule $f "$label"
        out=$(same_results "$T_DIR/$f-plain.json" "$T_DIR/$f-joule.json")
        t_ok $? "$label: the results are unchanged under joule (all but timings and rates)"
        t_diag "$out"

        # once more through joule launch: a step at jouled, the loader preloaded by launch
        if [ -z "$LAUNCH" ]; then
                t_skip "$label: hpcc through joule launch" "$launch_reason"
                continue
        fi
        run $f-launch "" -- "$JOULE" -c "$JD_CFG" launch --verbose 2 --policy monitoring -- $mpirun "$bin"
        t_ok "$(rc $f-launch)" "$label: joule launch runs hpcc and exits 0"
        [ "$(rc $f-launch)" = 0 ] || tail -20 "$T_DIR/$f-launch.err" | sed 's/^/#   /'
        hpcc_results "$T_DIR/$f-launch/hpccoutf.txt" >"$T_DIR/$f-launch.json" 2>"$T_DIR/$f-launch.bad"
        t_ok $? "$label: hpccoutf.txt ends with its end marker and every check HPCC makes passes ($f-launch)"
        sed 's/^/#   /' "$T_DIR/$f-launch.bad"
        check_managed $f-launch $f "$label"
        out=$(same_results "$T_DIR/$f-plain.json" "$T_DIR/$f-launch.json")
        t_ok $? "$label: the results are unchanged under joule launch"
        t_diag "$out"
        job=$(sed -n 's/^joule launch: job \([0-9]*\) step 0$/\1/p' "$T_DIR/$f-launch.err")
        for _ in $(seq 50); do "$JOULE" -c "$JD_CFG" acct --json --job "${job:-0}" | grep -q '"complete": *true' && break; sleep 0.1; done
        out=$("$JOULE" -c "$JD_CFG" acct --json --job "${job:-0}")
        t_check "$label: the launched step (job ${job:-none}) is accounted by joule acct" -- jtest "$out" \
                "len(j) == 1 and j[0]['complete'] is True and j[0]['energy_j'] > 0"
done
if [ -n "$LAUNCH" ]; then
        jouled_stop TERM
        t_ok $? "jouled stops"
fi

t_done
