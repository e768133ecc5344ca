#!/bin/bash
# test-jouled-gpu.sh - GPU clocks through jouled (SET_GPUFREQ, SET_GPUFREQ_LIST) with the emulated NVML
# (tests/emu/nvml, JOULE_EMU_NVML): root sets a clock through libjoule-api (the emulator's state file shows it),
# a request between supported clocks is rounded down, one below the lowest is refused with words, a list
# sets each GPU, another user is refused unless every job on the node is theirs, 0 resets the application
# clocks, and a node whose driver sees no GPU answers -EOPNOTSUPP with words. TAP. Environment: JOULE,
# JOULED, JOULE_EMU, API_PROBE, NVML_EMU_DIR, JOULED_CLIENT.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/test-api-lib.sh"
t_setup
t_need_joule
: "${JOULED:?}" "${API_PROBE:?}" "${NVML_EMU_DIR:?}" "${JOULED_CLIENT:?}"
chmod 755 "$T_DIR" # another user reaches the socket

NV=$T_DIR/nvml.conf
cat >"$NV" <<'EOC'
gpu power_w=250 sm_mhz=1980 mem_mhz=2619 clocks_mhz=1980,1755,1410,1200,900 name=Emulated H100
gpu power_w=200 sm_mhz=1755 mem_mhz=1593 clocks_mhz=1755,1500,1005 name=Emulated A100
EOC
export LD_LIBRARY_PATH=$NVML_EMU_DIR JOULE_EMU_NVML=$NV
emu_start n intel2s
jouled_start gpu1
t_ok $? "jouled starts on an emulated node with two emulated GPUs"
P() { JOULE_SOCKET=$JD_SOCK "$API_PROBE" "$@"; }
PN() { JOULE_SOCKET=$JD_SOCK setpriv --reuid=65534 --regid=65534 --clear-groups "$API_PROBE" "$@"; }
Q() { "$JOULED_CLIENT" --socket "$JD_SOCK" "$@"; }
state() { sed -n "s/^gpu $1 .*$2=\([0-9]*\).*/\1/p" "$NV.state" 2>/dev/null; } # state GPU KEY
words() { printf '%s' "$1" | grep -q -- "$2"; }

t_check "jouled reads the emulated GPUs' energy" -- \
        jtest "$(Q query)" 'any(d["name"] == "gpu-0" for d in json.loads(j["text"])["domains"])'

OUT=$(P setgpu 0 1410000)
t_check "root sets GPU 0 to 1410 MHz through joule_set_gpufreq ($OUT)" -- test "${OUT%% *}" = 0
t_check "the emulated GPU 0 has application clocks 1410 MHz graphics, 2619 MHz memory (kept)" -- \
        test "$(state 0 graphics_mhz)/$(state 0 mem_mhz)" = 1410/2619
OUT=$(P setgpu 0 1500000)
t_check "1500 MHz is rounded down to the supported 1410 MHz ($OUT)" -- \
        sh -c '[ "${1%% *}" = 0 ] && [ "$2" = 1410 ]' _ "$OUT" "$(state 0 graphics_mhz)"
OUT=$(P setgpu 0 500000)
t_check "500 MHz, below the lowest supported clock: -EINVAL with words ($OUT)" -- \
        sh -c '[ "${1%% *}" = -22 ] && printf "%s" "$1" | grep -q "below GPU 0.s lowest supported graphics clock (900 MHz)"' _ "$OUT"
t_check "the refused request left GPU 0 at 1410 MHz" -- test "$(state 0 graphics_mhz)" = 1410
OUT=$(P setgpu 5 1410000)
t_check "a GPU the node does not have: -ENODEV with words ($OUT)" -- \
        sh -c '[ "${1%% *}" = -19 ] && printf "%s" "$1" | grep -q "no GPU 5 (this node has 2)"' _ "$OUT"

OUT=$(P setgpus 1200000,1005000)
t_check "joule_set_gpufreq_list sets both GPUs ($OUT)" -- \
        test "${OUT%% *}/$(state 0 graphics_mhz)/$(state 1 graphics_mhz)" = 0/1200/1005
OUT=$(P setgpus 1980000,100000)
t_check "a list with one bad clock is refused as a whole ($OUT)" -- \
        test "${OUT%% *}/$(state 0 graphics_mhz)/$(state 1 graphics_mhz)" = -22/1200/1005

OUT=$(PN setgpu 0 1755000)
t_check "another user without a job on the node: -EPERM with words ($OUT)" -- \
        sh -c '[ "${1%% *}" = -1 ] && printf "%s" "$1" | grep -q "owner of the job running on this node"' _ "$OUT"
QN() { setpriv --reuid=65534 --regid=65534 --clear-groups "$JOULED_CLIENT" --socket "$JD_SOCK" "$@"; }
t_check "nobody begins a step of their own (accounting only)" -- jtest "$(QN begin 699 0)" 'j["err"] == 0'
BEFORE=$(state 0 graphics_mhz)
OUT=$(PN setgpu 0 1755000)
t_check "a step of their own gives nobody no right to the GPUs ($OUT)" -- \
        test "${OUT%% *}/$(state 0 graphics_mhz)" = "-1/$BEFORE"
t_check "root begins job 700 for nobody" -- jtest "$(Q begin 700 0 nobody)" 'j["err"] == 0'
OUT=$(PN setgpu 0 1755000)
t_check "nobody, whose job runs on the node, sets GPU 0 to 1755 MHz ($OUT)" -- \
        test "${OUT%% *}/$(state 0 graphics_mhz)" = 0/1755
t_check "root begins job 701 for root as well" -- jtest "$(Q begin 701 0 root)" 'j["err"] == 0'
OUT=$(PN setgpu 0 1980000)
t_check "with root's job on the node too, nobody is refused ($OUT)" -- \
        test "${OUT%% *}/$(state 0 graphics_mhz)" = -1/1755
Q end 701 0 >/dev/null
Q end 700 0 >/dev/null
Q end 699 0 >/dev/null
OUT=$(PN setgpu 0 1980000)
t_check "after their job ended, nobody is refused again ($OUT)" -- test "${OUT%% *}" = -1

OUT=$(P setgpu 0 0)
t_check "0 kHz resets GPU 0's application clocks ($OUT)" -- \
        test "${OUT%% *}/$(state 0 graphics_mhz)/$(state 0 resets)" = 0/0/1
OUT=$(P setgpus 0,0)
t_check "a list of zeros resets both" -- test "${OUT%% *}/$(state 1 graphics_mhz)/$(state 1 resets)" = 0/0/1
t_check "jouled logs the changes with the caller" -- grep -q "GPU clocks set: gpu 0 1410 MHz (pid" "$T_DIR/gpu1.log"

# the same node when the driver sees no GPU
jouled_stop
printf 'init_error 9\n' >"$NV"
jouled_start gpu1
t_ok $? "jouled restarts with a driver that sees no GPU"
OUT=$(P setgpu 0 1410000)
t_check "no GPU: -EOPNOTSUPP with words ($OUT)" -- \
        sh -c '[ "${1%% *}" = -95 ] && printf "%s" "$1" | grep -q "GPU clock control is not available on this node: nvmlInit failed"' _ "$OUT"
t_check "the daemon still answers" -- jtest "$(Q energy)" 'j["err"] == 0'
if [ "$T_FAILED" -gt 0 ]; then
        t_diag "jouled's log:"
        tail -30 "$T_DIR/gpu1.log" | sed 's/^/#   /'
fi
t_done
