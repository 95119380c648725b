#!/usr/bin/env bash
# IKEv2 SA setup rate: ikeda (in-process and over loopback sockets) next to
# strongSwan 5.9's sequential initiate/terminate rate, measured in the same run.
#
#   bench/ike_setup.sh [--quick] [--no-build] [--seeded]
#
# 1. builds (cargo build --release: ikeda; cargo bench --no-run: the setup bench),
# 2. runs crates/ikeda-ike/benches/setup.rs inside a private network namespace
#    (unshare --net, so its sockets on 127.0.0.1:500 / 127.0.0.2:500 collide
#    with nothing on the host), then its loopback part again with both threads
#    pinned to one CPU (cross-CPU wake-ups dominate the loopback rate in a VM),
# 3. brings up a strongSwan-only lab (`ikeda lab up --gateways strongswan`,
#    unique --name), and times sequential initiate+terminate of s2s/net on
#    gw1's charon with (a) a swanctl loop (two execs per setup) and (b) an
#    in-process python vici loop (vici==5.9.11 in a venv under /tmp, installed
#    from PyPI if missing; skipped if that fails),
# 4. prints a table with absolute numbers and the ratios ikeda/strongSwan.
#
# The lab is always taken down on exit (trap). Needs root (namespaces, port 500).
#
# Environment: CARGO_TARGET_DIR (default /work/target-bench), IKE_PROP, ESP_PROP,
# SS_N / SS_RUNS (strongSwan swanctl loop), VICI_N (python vici loop),
# BENCH_ARGS (extra arguments for the ikeda bench, e.g. "-n 5000 -r 7"),
# VICI_VENV (default /tmp/ikeda-bench-venv), IKEDA_BIN (ikeda binary for the lab;
# skips building it).
set -Eeuo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/work/target-bench}
IKE_PROP=${IKE_PROP:-aes128gcm16-prfsha256-x25519}
ESP_PROP=${ESP_PROP:-aes128gcm16}
VICI_VENV=${VICI_VENV:-/tmp/ikeda-bench-venv}
QUICK=0 BUILD=1 SEEDED=""
for a in "$@"; do
  case $a in
    --quick) QUICK=1 ;;
    --no-build) BUILD=0 ;;
    --seeded) SEEDED=--seeded ;;
    -h|--help) sed -n 2,25p "$0"; exit 0 ;;
    *) echo "unknown option $a" >&2; exit 2 ;;
  esac
done
if [[ $QUICK == 1 ]]; then
  SS_N=${SS_N:-20}; SS_RUNS=${SS_RUNS:-3}; VICI_N=${VICI_N:-50}; QARG=--quick
else
  SS_N=${SS_N:-50}; SS_RUNS=${SS_RUNS:-5}; VICI_N=${VICI_N:-200}; QARG=""
fi

[[ $(id -u) == 0 ]] || { echo "needs root (network namespaces, UDP port 500)" >&2; exit 1; }

OUT=$(mktemp -d /tmp/ike_setup.XXXXXX)
LAB="bs$(printf '%06d' $(( ($$ * 7919 + RANDOM) % 1000000 )))"   # 8 chars, unique per run
LAB_UP=0
IKEDA=""
log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

cleanup() {
  local rc=$?
  if [[ $LAB_UP == 1 && -n $IKEDA ]]; then
    log "taking lab $LAB down"
    "$IKEDA" lab down --name "$LAB" >>"$OUT/lab.log" 2>&1 || log "lab down --name $LAB failed (see $OUT/lab.log)"
  fi
  log "logs in $OUT"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

median() { sort -g | awk '{v[NR]=$1} END{ if (NR==0) {print "nan"; exit} if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2 }'; }
minmax() { sort -g | awk 'NR==1{mn=$1} {mx=$1} END{printf "%s..%s", mn, mx}'; }
now_ns() { date +%s%N; }

# ---------------------------------------------------------------- build --
cd "$REPO"
# The ikeda binary is only used for the lab (namespaces + strongSwan), so an
# older one will do if the tree does not build right now: IKEDA_BIN, else
# $REPO/target/release/ikeda, with a warning.
IKEDA=$CARGO_TARGET_DIR/release/ikeda
if [[ -n ${IKEDA_BIN:-} ]]; then
  IKEDA=$IKEDA_BIN
elif [[ $BUILD == 1 ]]; then
  log "cargo build --release -p ikeda (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
  if ! cargo build --release -p ikeda >"$OUT/build.log" 2>&1; then
    grep -m3 -A3 '^error' "$OUT/build.log" >&2 || true
    if [[ -x $REPO/target/release/ikeda ]]; then
      IKEDA=$REPO/target/release/ikeda
      log "WARNING: building ikeda failed (see $OUT/build.log); using $IKEDA for the lab"
    else
      log "building ikeda failed (see $OUT/build.log)"; exit 1
    fi
  fi
fi
[[ -x $IKEDA ]] || { log "no ikeda binary at $IKEDA (run without --no-build, or set IKEDA_BIN)"; exit 1; }
log "building the setup bench (cargo bench --no-run)"
BENCH=$(cargo bench -p ikeda-ike --bench setup --no-run --message-format=json 2>>"$OUT/build.log" \
  | jq -r 'select(.reason=="compiler-artifact" and .target.name=="setup" and .executable!=null) | .executable' | tail -1)
[[ -n $BENCH && -x $BENCH ]] || { tail -20 "$OUT/build.log" >&2; log "building the setup bench failed"; exit 1; }

# ---------------------------------------------------------- ikeda bench --
log "ikeda bench: $BENCH $QARG $SEEDED --ike $IKE_PROP --esp $ESP_PROP ${BENCH_ARGS:-}"
# shellcheck disable=SC2086
if ! unshare --net sh -c 'ip link set lo up && exec "$@"' sh "$BENCH" $QARG $SEEDED \
    --ike "$IKE_PROP" --esp "$ESP_PROP" ${BENCH_ARGS:-} \
    | tee "$OUT/ikeda-bench.txt" >&2; then
  log "ikeda bench failed"; exit 1
fi
# The loopback rate depends on where the scheduler puts the two threads: each
# setup is 6 sequential datagrams, and a cross-CPU wake-up (an IPI, slow in a
# VM) costs more than the crypto. So measure it also with both threads on one CPU.
log "ikeda loopback bench again, both threads pinned to CPU 0 (taskset -c 0)"
# shellcheck disable=SC2086
unshare --net sh -c 'ip link set lo up && exec taskset -c 0 "$@"' sh "$BENCH" --only loopback $QARG $SEEDED \
  --ike "$IKE_PROP" --esp "$ESP_PROP" ${BENCH_ARGS:-} >"$OUT/ikeda-bench-pinned.txt" 2>&1 || log "pinned loopback bench failed (see $OUT/ikeda-bench-pinned.txt)"
grep -E '^  (run|median)' "$OUT/ikeda-bench-pinned.txt" >&2 || true
res() { sed -n "s/^RESULT $1 .*$2=\([^ ]*\).*/\1/p" "${3:-$OUT/ikeda-bench.txt}" | tail -1; }
IK_IN=$(res inproc setups_per_s)
IK_LO=$(res loopback setups_per_s)
IK_LOP=$(res loopback setups_per_s "$OUT/ikeda-bench-pinned.txt")
IK_LO_ERR=$(sed -n 's/^RESULT loopback error=\(.*\)/\1/p' "$OUT/ikeda-bench.txt")
CHECKS_FAILED=$(sed -n 's/^RESULT checks_failed=\([0-9]*\).*/\1/p' "$OUT/ikeda-bench.txt")

# ------------------------------------------------------------ strongSwan --
log "lab up --name $LAB --gateways strongswan ($IKE_PROP, esp $ESP_PROP)"
LAB_UP=1   # from here on, take it down on exit even if `up` fails halfway
if ! "$IKEDA" lab up --name "$LAB" --gateways strongswan --ike-proposal "$IKE_PROP" --esp "$ESP_PROP" \
     --no-ping >>"$OUT/lab.log" 2>&1; then
  tail -20 "$OUT/lab.log" >&2; log "lab up failed"; exit 1
fi
LABDIR=${IKEDA_LAB_DIR:-/var/lib/ikeda}/lab-$LAB
GWD=$LABDIR/charon-gw1
URI=unix://$GWD/charon.vici
[[ -S $GWD/charon.vici ]] || { log "no vici socket at $GWD/charon.vici"; exit 1; }
sw() { STRONGSWAN_CONF=$GWD/strongswan.conf SWANCTL_DIR=$GWD/swanctl swanctl "$@" --uri "$URI"; }
# `lab up` leaves a tunnel up; start from nothing.
sw --terminate --ike s2s --timeout 10 >>"$OUT/swanctl.log" 2>&1 || true
sw --list-sas 2>/dev/null | grep -q ESTABLISHED && { log "an IKE SA is still up on gw1"; exit 1; }

# (a) swanctl loop: N x (swanctl --initiate; swanctl --terminate)
ovh=()
for _ in 1 2 3 4 5; do t0=$(now_ns); sw --stats >/dev/null; t1=$(now_ns); ovh+=("$(( (t1 - t0) / 1000 ))"); done
SW_OVH_MS=$(printf '%s\n' "${ovh[@]}" | median | awk '{printf "%.1f", $1/1000}')
: >"$OUT/ss-swanctl-rates.txt"
for run in $(seq 1 "$SS_RUNS"); do
  t0=$(now_ns)
  for _ in $(seq 1 "$SS_N"); do
    sw --initiate --ike s2s --child net --timeout 15 >>"$OUT/swanctl.log" 2>&1 || { log "swanctl --initiate failed"; exit 1; }
    sw --terminate --ike s2s --timeout 10 >>"$OUT/swanctl.log" 2>&1 || { log "swanctl --terminate failed"; exit 1; }
  done
  t1=$(now_ns)
  awk -v n="$SS_N" -v d=$((t1 - t0)) 'BEGIN{printf "%.2f\n", n/(d/1e9)}' | tee -a "$OUT/ss-swanctl-rates.txt" \
    | sed "s/^/  strongSwan swanctl run $run: /; s/$/ setups\/s/" >&2
done
SS_SW=$(median <"$OUT/ss-swanctl-rates.txt")

# (b) python vici loop (no exec per call)
VICI_PY='
import socket, sys, time, vici
path, n, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_UNIX); s.connect(path); v = vici.Session(s)
for _ in range(5):   # warm-up
    for _m in v.initiate({"ike": "s2s", "child": "net", "timeout": 15000}): pass
    for _m in v.terminate({"ike": "s2s", "timeout": 15000}): pass
for r in range(runs):
    t0 = time.perf_counter()
    for _ in range(n):
        for _m in v.initiate({"ike": "s2s", "child": "net", "timeout": 15000}): pass
        for _m in v.terminate({"ike": "s2s", "timeout": 15000}): pass
    print("%.2f" % (n / (time.perf_counter() - t0)), flush=True)
left = [sa for sa in v.list_sas()]
print("left", len(left), flush=True)
'
PY=""
for c in "$VICI_VENV/bin/python" /tmp/ssbase-venv/bin/python python3; do
  if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import vici' 2>/dev/null; then PY=$c; break; fi
done
if [[ -z $PY ]]; then
  log "installing vici==5.9.11 into $VICI_VENV"
  if python3 -m venv "$VICI_VENV" >>"$OUT/pip.log" 2>&1 \
     && "$VICI_VENV/bin/pip" install -q vici==5.9.11 >>"$OUT/pip.log" 2>&1 \
     && "$VICI_VENV/bin/python" -c 'import vici' 2>>"$OUT/pip.log"; then
    PY=$VICI_VENV/bin/python
  else
    log "could not install the python vici module (see $OUT/pip.log); skipping the vici loop"
  fi
fi
SS_VICI=""
if [[ -n $PY ]]; then
  log "strongSwan python vici loop: $SS_RUNS runs x $VICI_N ($PY)"
  if "$PY" -c "$VICI_PY" "$GWD/charon.vici" "$VICI_N" "$SS_RUNS" >"$OUT/ss-vici.txt" 2>>"$OUT/vici-py.log"; then
    grep -v '^left' "$OUT/ss-vici.txt" | sed 's/^/  strongSwan vici run: /; s/$/ setups\/s/' >&2
    SS_VICI=$(grep -v '^left' "$OUT/ss-vici.txt" | median)
    grep '^left' "$OUT/ss-vici.txt" | sed 's/^/  strongSwan IKE SAs /' >&2
  else
    log "python vici loop failed (see $OUT/vici-py.log)"
  fi
fi

# ----------------------------------------------------------------- table --
ratio() { [[ -n $1 && -n $2 && $1 != nan && $2 != nan ]] && awk -v a="$1" -v b="$2" 'BEGIN{printf "%.1fx", a/b}' || echo "-"; }
us() { [[ -n $1 && $1 != nan ]] && awk -v r="$1" 'BEGIN{printf "%.1f", 1e6/r}' || echo "-"; }
REF=${SS_VICI:-$SS_SW}
REFNAME=$([[ -n $SS_VICI ]] && echo "strongSwan vici" || echo "strongSwan swanctl")
{
  echo
  echo "IKEv2 SA setup, sequential initiate -> CHILD SA up -> terminate; PSK, $IKE_PROP, esp $ESP_PROP"
  echo "ikeda loopback: UDP 127.0.0.1:500 <-> 127.0.0.2:500 in a private netns; ikeda runs: see $OUT/ikeda-bench*.txt"
  echo "host: $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg); ikeda rng: $([[ -n $SEEDED ]] && echo SeededRng || echo SystemRng); $(date -u +%FT%TZ)"
  printf '%-44s %12s %12s %14s %14s\n' "measurement" "setups/s" "us/setup" "x ss vici" "x ss swanctl"
  printf '%-44s %12s %12s %14s %14s\n' "ikeda in-process (1 thread, both roles)" "${IK_IN:--}" "$(us "$IK_IN")" \
    "$(ratio "$IK_IN" "$SS_VICI")" "$(ratio "$IK_IN" "$SS_SW")"
  if [[ -n $IK_LO ]]; then
    printf '%-44s %12s %12s %14s %14s\n' "ikeda loopback (2 threads, unpinned)" "$IK_LO" "$(us "$IK_LO")" \
      "$(ratio "$IK_LO" "$SS_VICI")" "$(ratio "$IK_LO" "$SS_SW")"
  else
    printf '%-44s %12s\n' "ikeda loopback" "not run: ${IK_LO_ERR:-see log}"
  fi
  if [[ -n $IK_LOP ]]; then
    printf '%-44s %12s %12s %14s %14s\n' "ikeda loopback, both threads on CPU 0" "$IK_LOP" "$(us "$IK_LOP")" \
      "$(ratio "$IK_LOP" "$SS_VICI")" "$(ratio "$IK_LOP" "$SS_SW")"
  fi
  printf '%-44s %12s %12s\n' "strongSwan 5.9 charon, python vici loop" "${SS_VICI:--}" "$(us "$SS_VICI")"
  printf '%-44s %12s %12s   (one swanctl exec alone: %s ms)\n' "strongSwan 5.9 charon, swanctl loop" "$SS_SW" "$(us "$SS_SW")" "$SW_OVH_MS"
  echo "strongSwan runs: swanctl $SS_RUNS x $SS_N (min..max $(minmax <"$OUT/ss-swanctl-rates.txt")), vici $SS_RUNS x $VICI_N"
  if [[ -n $REF && -n $IK_IN ]]; then
    t=$(awk -v a="${IK_LO:-0}" -v b="$IK_IN" -v r="$REF" 'BEGIN{m=(a>0 && a<b)?a:b; print (m/r >= 5) ? "MET" : "NOT MET"}')
    echo "target >= 5x strongSwan (against $REFNAME, the faster client; worst ikeda figure): $t"
  fi
  echo "ikeda engine checks failed: ${CHECKS_FAILED:-?} (CHECK lines in $OUT/ikeda-bench.txt)"
} | tee "$OUT/table.txt"
