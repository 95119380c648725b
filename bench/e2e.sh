#!/usr/bin/env bash
# End-to-end throughput: iperf3 through the two-site lab, in one run, for
#   plain   - gw1 -> gw2 over the bare veth (no tunnel): the ceiling
#   ikeda   - h1 -> h2 through ikeda's userspace ESP, for each --esp proposal
#   swan    - h1 -> h2 through strongSwan 5.9 charon with kernel-libipsec
#   routed  - h1 -> h2 through the gateways' plain forwarding (no tunnel)
# each with 1 and 4 streams; prints throughput, TCP retransmits, the CPU of
# the whole machine by class (user/system/softirq/steal/idle), the ping
# RTT idle and under one stream, the ratios to plain veth and to strongSwan, and for ikeda over UDP 4500 the
# datagrams per syscall (gw1's sends, gw2's receives; UDP_SEGMENT/UDP_GRO
# trains count their datagrams) from the gateways' stats files.
#
# usage: [IKEDA=BINARY] bench/e2e.sh [-t SECONDS] [-n REPEATS] [--esp "aes128gcm16 aes256gcm16 ..."]
#                     [--encap "esp udp udp-gro udp-nogso udp-wanoff"] [--no-plain] [--no-swan]
# encap variants: esp (IP protocol 50), udp (UDP 4500 with UDP GSO/GRO, the
# default; the lab cuts trains as they leave the gateway, as a real NIC's
# wire does), udp-gro (--wan-gro: cut as they leave, and the receiving
# link's GRO joins them again for UDP_GRO as a NIC's NAPI does: a real pair
# of gateways), udp-nogso (--no-udp-offload: one datagram per send), and
# udp-wanoff (--wan-offload: trains cross the veth whole and the peer's
# UDP_GRO receives them whole, the best case).
# needs root, iperf3, strongSwan (the README's test command installs them).
set -Eeuo pipefail
cd "$(dirname "$0")/.."
T=5 N=3 ESPS="aes128gcm16" ENCAPS="esp udp udp-gro udp-nogso udp-wanoff" PLAIN=1 SWAN=1
while [[ $# -gt 0 ]]; do
  case $1 in
    -t) T=$2; shift 2;; -n) N=$2; shift 2;; --esp) ESPS=$2; shift 2;; --encap) ENCAPS=$2; shift 2;;
    --no-plain) PLAIN=0; shift;; --no-swan) SWAN=0; shift;;
    *) echo "usage: $0 [-t S] [-n R] [--esp LIST] [--encap "esp udp udp-gro udp-nogso udp-wanoff"] [--no-plain] [--no-swan]" >&2; exit 2;;
  esac
done
[[ $EUID -eq 0 ]] || { echo "must run as root" >&2; exit 1; }
# IKEDA=/path/to/ikeda runs another build (e.g. a copy of main's, for a
# before/after comparison) instead of building this tree.
if [[ -z ${IKEDA:-} ]]; then cargo build --release -q; IKEDA=$PWD/target/release/ikeda; fi
LAB=bench$$; LAB=${LAB:0:8}
OUT=$(mktemp -d /tmp/ikeda-bench.XXXXXX)
SRV_PID=
cleanup() {
  [[ -n $SRV_PID ]] && kill "$SRV_PID" 2>/dev/null || true
  "$IKEDA" lab down --name "$LAB" >/dev/null 2>&1 || true
}
trap cleanup EXIT

# An iperf3 server on srv_node at addr, listening when this returns (SRV_PID).
server_up() {
  ip netns exec "ikl-$LAB-$1" iperf3 -s -B "$2" >"$OUT/iperf3-server.log" 2>&1 &
  SRV_PID=$!
  for _ in $(seq 1 50); do ip netns exec "ikl-$LAB-$1" ss -Htln "sport = :5201" | grep -q . && break; sleep 0.1; done
}
server_down() { kill "$SRV_PID" 2>/dev/null || true; wait "$SRV_PID" 2>/dev/null || true; SRV_PID=; }

# The machine's CPU time so far, in ticks: "user system softirq steal idle"
# (user with nice, system with hard irq, idle with iowait), all cores.
cpu_ticks() { awk '/^cpu / {print $2+$3, $4+$7, $8, $9, $5+$6}' /proc/stat; }
# "usr/sys/sirq/steal/idle" in % of all cores' time between two cpu_ticks.
cpu_split() {
  python3 - "$1" "$2" <<'PY'
import sys
a, b = [list(map(int, x.split())) for x in sys.argv[1:3]]
d = [y - x for x, y in zip(a, b)]
t = sum(d) or 1
print("/".join("%d" % round(100 * v / t) for v in d))
PY
}
# "Gbit/s retransmits cpu" (medians; cpu: cpu_split over all N runs) of N
# iperf3 runs: srv_node addr cli_node streams
measure() {
  local srv_node=$1 addr=$2 cli_node=$3 P=$4 r vals=() rtx=() c0 c1
  server_up "$srv_node" "$addr"
  c0=$(cpu_ticks)
  for r in $(seq 1 "$N"); do
    ip netns exec "ikl-$LAB-$cli_node" iperf3 -c "$addr" -t "$T" -P "$P" -J >"$OUT/run.json" \
      || { echo "iperf3 failed" >&2; cat "$OUT/run.json" >&2; exit 1; }
    vals+=("$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"]/1e9)' "$OUT/run.json")")
    rtx+=("$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["end"]["sum_sent"].get("retransmits",0))' "$OUT/run.json")")
    c1=$(cpu_ticks)
    sleep 0.5
  done
  server_down
  # The sleeps between runs are idle: only the runs themselves are counted
  # when N is 1; with more, their pauses add a little idle time.
  echo "$(median "${vals[@]}") $(median "${rtx[@]}") $(cpu_split "$c0" "$c1")"
}
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END{print (NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2}'; }

declare -A R X C PPS L
# "tx/syscall rx/syscall" of ikeda's UDP sockets: gw1's sends, gw2's receives
# (both directions' traffic of the variant's runs), from the stats files.
per_syscall() {
  python3 - "/var/lib/ikeda/lab-$LAB" <<'PY'
import json, sys
def u(gw):
    try: return json.load(open(f"{sys.argv[1]}/{gw}.stats.json")).get("udp_offload")
    except (OSError, ValueError): return None
a, b = u("gw1"), u("gw2")
f = lambda d, n, k: "%.1f" % (d[n] / d[k]) if d and d.get(k) else "-"
print(f(a, "send_datagrams", "send_syscalls"), f(b, "recv_datagrams", "recv_syscalls"))
PY
}
lab() { "$IKEDA" lab down --name "$LAB" >/dev/null 2>&1 || true; "$IKEDA" lab up --name "$LAB" --no-ping "$@" >"$OUT/lab.log" 2>&1 || { cat "$OUT/lab.log" >&2; exit 1; }; }
# "idle_ms loaded_ms": the average ping RTT from cli_node to addr, idle,
# then while one iperf3 stream fills the path (the latency a user feels
# next to a bulk transfer): srv_node addr cli_node
latency() {
  local srv_node=$1 addr=$2 cli_node=$3 idle loaded cli
  rtt() { { ip netns exec "ikl-$LAB-$cli_node" ping -n -q -c 20 -i 0.05 -W 2 "$addr" || true; } | awk -F/ '/^rtt|^round-trip/ {print $5}'; }
  idle=$(rtt)
  server_up "$srv_node" "$addr"
  ip netns exec "ikl-$LAB-$cli_node" iperf3 -c "$addr" -t 4 >/dev/null 2>&1 &
  cli=$!
  sleep 1
  loaded=$(rtt)
  wait "$cli" 2>/dev/null || true
  server_down
  echo "${idle:--} ${loaded:--}"
}
# run VARIANT srv_node addr cli_node: both stream counts, into R[VARIANT,P] / X[VARIANT,P],
# and the ping RTTs into L[VARIANT]
run() {
  local v=$1 P gbps rtx cpu; shift
  for P in 1 4; do
    read -r gbps rtx cpu <<<"$(measure "$1" "$2" "$3" "$P")"
    R[$v,$P]=$gbps X[$v,$P]=$rtx C[$v,$P]=$cpu
    printf '%-26s -P %s: %8.3f Gbit/s, %s retransmits, CPU %s%% (usr/sys/sirq/steal/idle)\n' \
      "$v" "$P" "${R[$v,$P]}" "${X[$v,$P]}" "${C[$v,$P]}"
  done
  L[$v]=$(latency "$1" "$2" "$3")
  printf '%-26s ping RTT: %s ms idle, %s ms under one stream\n' "$v" "${L[$v]% *}" "${L[$v]#* }"
}

VARIANTS=()
if [[ $PLAIN == 1 ]]; then
  lab --gateways none
  VARIANTS+=("plain veth gw1->gw2"); run "plain veth gw1->gw2" gw2 192.168.50.12 gw1
  VARIANTS+=("routed h1->h2"); run "routed h1->h2" h2 192.168.12.12 h1
fi
if [[ $SWAN == 1 ]]; then
  lab --gateways strongswan --esp aes128gcm16
  VARIANTS+=("strongSwan aes128gcm16"); run "strongSwan aes128gcm16" h2 192.168.12.12 h1
fi
for X_ in $ENCAPS; do
  for E in $ESPS; do
    case $X_ in
      esp) UO=(--encap esp);; udp) UO=(--encap udp);; udp-gro) UO=(--encap udp --wan-gro);;
      udp-nogso) UO=(--encap udp --no-udp-offload);; udp-wanoff) UO=(--encap udp --wan-offload);;
      *) echo "unknown encap variant $X_" >&2; exit 2;;
    esac
    lab --gateways ikeda --esp "$E" "${UO[@]}"
    VARIANTS+=("ikeda $E $X_"); run "ikeda $E $X_" h2 192.168.12.12 h1
    sleep 1.5 # the stats files are rewritten every second
    PPS["ikeda $E $X_"]=$(per_syscall)
  done
done

ratio() { # ratio A B: A/B, or "-" when B is missing or zero
  [[ -n ${2:-} ]] && python3 -c "import sys; b=float(sys.argv[2]); print('%.3f' % (float(sys.argv[1])/b) if b else '-')" "$1" "$2" || echo "-"
}
BASE="plain veth gw1->gw2" SW="strongSwan aes128gcm16"
echo
echo "== iperf3 TCP, ${T}s x ${N} (median), same run; retransmits = iperf3 sender's, median =="
printf '%-26s %9s %6s %9s %6s %10s %10s %10s %10s %8s %8s %8s %8s\n' "" "-P1 Gb/s" "rtx" "-P4 Gb/s" "rtx" "/plain P1" "/plain P4" "/swan P1" "/swan P4" "tx/call" "rx/call" "idle ms" "load ms"
for v in "${VARIANTS[@]}"; do
  pps=${PPS[$v]:-"- -"} lat=${L[$v]:-"- -"}
  printf '%-26s %9.3f %6s %9.3f %6s %10s %10s %10s %10s %8s %8s %8s %8s\n' "$v" "${R[$v,1]}" "${X[$v,1]}" "${R[$v,4]}" "${X[$v,4]}" \
    "$(ratio "${R[$v,1]}" "${R[$BASE,1]:-}")" "$(ratio "${R[$v,4]}" "${R[$BASE,4]:-}")" \
    "$(ratio "${R[$v,1]}" "${R[$SW,1]:-}")" "$(ratio "${R[$v,4]}" "${R[$SW,4]:-}")" "${pps% *}" "${pps#* }" "${lat% *}" "${lat#* }"
done
echo
echo "== CPU of the whole machine ($(nproc) cores) during the runs, % of its time: usr/sys/sirq/steal/idle =="
for v in "${VARIANTS[@]}"; do printf '%-26s -P1 %-18s -P4 %s\n' "$v" "${C[$v,1]}" "${C[$v,4]}"; done
echo "usr: user space (iperf3, ikeda, charon); sys: system calls and hard irqs; sirq: softirq (the network stack's receive and"
echo "forwarding, veth); steal: taken by the hypervisor; idle. Both gateways, both hosts and the kernel share these cores."
echo "tx/call, rx/call: ikeda's UDP 4500 datagrams per sendmmsg on gw1 and per recvmmsg on gw2 (- where none)"
echo "idle ms, load ms: average ping RTT (20 pings, 50 ms apart) on the same path, idle and while one iperf3 stream runs"
rm -rf "$OUT"
