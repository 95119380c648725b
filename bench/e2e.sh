#!/usr/bin/env bash
# End-to-end throughput: iperf3 through the two-site lab, in one run, for
#   plain   - gw1 -> gw2 over the bare veth (no tunnel): the ceiling
#   ikeda   - h1 -> h2 through ikeda's userspace ESP, for each --esp proposal
#   swan    - h1 -> h2 through strongSwan 5.9 charon with kernel-libipsec
#   routed  - h1 -> h2 through the gateways' plain forwarding (no tunnel)
# each with 1 and 4 streams. Every variant has its own lab, all up at once,
# and the variants take turns: each of N rounds runs every variant once, so
# a ratio is taken between runs minutes apart at most (this machine's plain
# veth alone varies by a fifth between runs), and the ratios shown are the
# medians of the per-round ratios. Prints throughput, TCP retransmits, the CPU of
# the whole machine by class (user/system/softirq/steal/idle), the ping
# RTT idle and under one stream, the ratios to plain veth and to strongSwan, and for ikeda over UDP 4500 the
# datagrams per syscall (gw1's sends, gw2's receives; UDP_SEGMENT/UDP_GRO
# trains count their datagrams) from the gateways' stats files.
#
# usage: [IKEDA=BINARY] bench/e2e.sh [-t SECONDS] [-n ROUNDS] [--esp "aes128gcm16 aes256gcm16 ..."]
#                     [--encap "esp udp udp-gro udp-nogso udp-wanoff"] [--no-plain] [--no-swan]
# encap variants: esp (IP protocol 50), udp (UDP 4500 with UDP GSO/GRO, the
# default; the lab cuts trains as they leave the gateway, as a real NIC's
# wire does), udp-gro (--wan-gro: cut as they leave, and the receiving
# link's GRO joins them again for UDP_GRO as a NIC's NAPI does: a real pair
# of gateways), udp-nogso (--no-udp-offload: one datagram per send), and
# udp-wanoff (--wan-offload: trains cross the veth whole and the peer's
# UDP_GRO receives them whole, the best case). Any variant with -qN after
# it (udp-gro-q2, esp-q2) runs with N TUN queues on each gateway
# (--tun-queues N: one TX thread per queue).
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
LABP=b$(($$ % 100000)) # + the variant's number: lab names stay short (interface names)
OUT=$(mktemp -d /tmp/ikeda-bench.XXXXXX)
LABS=() SRVS=()
cleanup() {
  local p l
  for p in "${SRVS[@]}"; do kill "$p" 2>/dev/null || true; done
  for l in "${LABS[@]}"; do "$IKEDA" lab down --name "$l" >/dev/null 2>&1 || true; done
}
trap cleanup EXIT

# The machine's CPU time so far, in ticks: "user system softirq steal idle"
# (user with nice, system with hard irq, idle with iowait), all cores.
cpu_ticks() { awk '/^cpu / {print $2+$3, $4+$7, $8, $9, $5+$6}' /proc/stat; }
# acc A B C: A + (C - B), element-wise ("0 0 0 0 0" when A is empty)
acc() { python3 -c 'import sys; a,b,c=[list(map(int,(x or "0 0 0 0 0").split())) for x in sys.argv[1:4]]; print(*[x+z-y for x,y,z in zip(a,b,c)])' "$@"; }
# "usr/sys/sirq/steal/idle" in % of all cores' time in a tick vector.
cpu_split() {
  python3 - "$1" <<'PY'
import sys
d = list(map(int, sys.argv[1].split()))
t = sum(d) or 1
print("/".join("%d" % round(100 * v / t) for v in d))
PY
}
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END{print (NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2}'; }
div() { python3 -c "import sys; b=float(sys.argv[2]); print('%.4f' % (float(sys.argv[1])/b) if b else 'nan')" "$1" "$2"; }

declare -A LABOF SRVN ADDR CLI G X CT R RX C PPS L
VARIANTS=()
# add VARIANT srv_node addr cli_node LAB-UP-ARGS...: its lab up and an
# iperf3 server listening on srv_node at addr.
add() {
  local v=$1 srv=$2 addr=$3 cli=$4 name="$LABP${#VARIANTS[@]}"; shift 4
  "$IKEDA" lab down --name "$name" >/dev/null 2>&1 || true
  LABS+=("$name")
  "$IKEDA" lab up --name "$name" --no-ping "$@" >"$OUT/lab.log" 2>&1 || { cat "$OUT/lab.log" >&2; exit 1; }
  ip netns exec "ikl-$name-$srv" iperf3 -s -B "$addr" >"$OUT/iperf3-server-$name.log" 2>&1 &
  SRVS+=($!)
  for _ in $(seq 1 50); do ip netns exec "ikl-$name-$srv" ss -Htln "sport = :5201" | grep -q . && break; sleep 0.1; done
  VARIANTS+=("$v"); LABOF[$v]=$name SRVN[$v]=$srv ADDR[$v]=$addr CLI[$v]=$cli
}
# "Gbit/s retransmits" of one iperf3 run: VARIANT streams
one() {
  local v=$1 P=$2
  ip netns exec "ikl-${LABOF[$v]}-${CLI[$v]}" iperf3 -c "${ADDR[$v]}" -t "$T" -P "$P" -J >"$OUT/run.json" \
    || { echo "iperf3 failed ($v)" >&2; cat "$OUT/run.json" >&2; exit 1; }
  python3 -c 'import json,sys; e=json.load(open(sys.argv[1]))["end"]; print(e["sum_received"]["bits_per_second"]/1e9, e["sum_sent"].get("retransmits",0))' "$OUT/run.json"
}
# "idle_ms loaded_ms": the average ping RTT from the client to the server's
# address, idle, then while one iperf3 stream fills the path (the latency a
# user feels next to a bulk transfer): VARIANT
latency() {
  local v=$1 idle loaded cli ns="ikl-${LABOF[$1]}-${CLI[$1]}"
  rtt() { { ip netns exec "$ns" ping -n -q -c 20 -i 0.05 -W 2 "${ADDR[$v]}" || true; } | awk -F/ '/^rtt|^round-trip/ {print $5}'; }
  idle=$(rtt)
  ip netns exec "$ns" iperf3 -c "${ADDR[$v]}" -t 4 >/dev/null 2>&1 &
  cli=$!
  sleep 1
  loaded=$(rtt)
  wait "$cli" 2>/dev/null || true
  echo "${idle:--} ${loaded:--}"
}
# "tx/syscall rx/syscall" of ikeda's UDP sockets: gw1's sends, gw2's receives
# (all of the variant's runs), from the stats files of its lab.
per_syscall() {
  python3 - "/var/lib/ikeda/lab-$1" <<'PY'
import json, sys
def u(gw):
    try: return json.load(open(f"{sys.argv[1]}/{gw}.stats.json")).get("udp_offload")
    except (OSError, ValueError): return None
a, b = u("gw1"), u("gw2")
f = lambda d, n, k: "%.1f" % (d[n] / d[k]) if d and d.get(k) else "-"
print(f(a, "send_datagrams", "send_syscalls"), f(b, "recv_datagrams", "recv_syscalls"))
PY
}

if [[ $PLAIN == 1 ]]; then
  add "plain veth gw1->gw2" gw2 192.168.50.12 gw1 --gateways none
  add "routed h1->h2" h2 192.168.12.12 h1 --gateways none
fi
if [[ $SWAN == 1 ]]; then
  add "strongSwan aes128gcm16" h2 192.168.12.12 h1 --gateways strongswan --esp aes128gcm16
fi
for X_ in $ENCAPS; do
  for E in $ESPS; do
    Q=()
    if [[ $X_ =~ ^(.*)-q([0-9]+)$ ]]; then Q=(--tun-queues "${BASH_REMATCH[2]}"); fi
    case ${X_%-q[0-9]*} in
      esp) UO=(--encap esp);; udp) UO=(--encap udp);; udp-gro) UO=(--encap udp --wan-gro);;
      udp-nogso) UO=(--encap udp --no-udp-offload);; udp-wanoff) UO=(--encap udp --wan-offload);;
      *) echo "unknown encap variant $X_" >&2; exit 2;;
    esac
    add "ikeda $E $X_" h2 192.168.12.12 h1 --gateways ikeda --esp "$E" "${UO[@]}" "${Q[@]}"
  done
done

for r in $(seq 1 "$N"); do
  for v in "${VARIANTS[@]}"; do
    for P in 1 4; do
      c0=$(cpu_ticks)
      read -r g x <<<"$(one "$v" "$P")"
      c1=$(cpu_ticks)
      CT[$v,$P]=$(acc "${CT[$v,$P]:-}" "$c0" "$c1")
      G[$v,$P,$r]=$g X[$v,$P]="${X[$v,$P]:-} $x"
      printf 'round %s/%s %-26s -P %s: %8.3f Gbit/s, %s retransmits\n' "$r" "$N" "$v" "$P" "$g" "$x"
      sleep 0.5
    done
  done
done
for v in "${VARIANTS[@]}"; do
  for P in 1 4; do
    vals=(); for r in $(seq 1 "$N"); do vals+=("${G[$v,$P,$r]}"); done
    # shellcheck disable=SC2086
    R[$v,$P]=$(median "${vals[@]}") RX[$v,$P]=$(median ${X[$v,$P]}) C[$v,$P]=$(cpu_split "${CT[$v,$P]}")
  done
  L[$v]=$(latency "$v")
  [[ $v == ikeda* ]] && PPS[$v]=$(per_syscall "${LABOF[$v]}")
done

# ratio A B P: the median over rounds of A's Gbit/s over B's in the same round
ratio() {
  local a=$1 b=$2 P=$3 r q=()
  [[ -n ${LABOF[$b]:-} ]] || { echo "-"; return; }
  for r in $(seq 1 "$N"); do q+=("$(div "${G[$a,$P,$r]}" "${G[$b,$P,$r]}")"); done
  printf '%.3f\n' "$(median "${q[@]}")"
}
BASE="plain veth gw1->gw2" SW="strongSwan aes128gcm16"
echo
echo "== iperf3 TCP, ${T}s, ${N} rounds taking turns: Gbit/s and retransmits (iperf3 sender's) are medians over the rounds,"
echo "   ratios are medians of the per-round ratios =="
printf '%-26s %9s %6s %9s %6s %10s %10s %10s %10s %8s %8s %8s %8s\n' "" "-P1 Gb/s" "rtx" "-P4 Gb/s" "rtx" "/plain P1" "/plain P4" "/swan P1" "/swan P4" "tx/call" "rx/call" "idle ms" "load ms"
for v in "${VARIANTS[@]}"; do
  pps=${PPS[$v]:-"- -"} lat=${L[$v]:-"- -"}
  printf '%-26s %9.3f %6s %9.3f %6s %10s %10s %10s %10s %8s %8s %8s %8s\n' "$v" "${R[$v,1]}" "${RX[$v,1]}" "${R[$v,4]}" "${RX[$v,4]}" \
    "$(ratio "$v" "$BASE" 1)" "$(ratio "$v" "$BASE" 4)" "$(ratio "$v" "$SW" 1)" "$(ratio "$v" "$SW" 4)" \
    "${pps% *}" "${pps#* }" "${lat% *}" "${lat#* }"
done
echo
echo "== CPU of the whole machine ($(nproc) cores) during each variant's runs, % of its time: usr/sys/sirq/steal/idle =="
for v in "${VARIANTS[@]}"; do printf '%-26s -P1 %-18s -P4 %s\n' "$v" "${C[$v,1]}" "${C[$v,4]}"; done
echo "usr: user space (iperf3, ikeda, charon); sys: system calls and hard irqs; sirq: softirq (the network stack's receive and"
echo "forwarding, veth); steal: taken by the hypervisor; idle. Both gateways, both hosts and the kernel share these cores;"
echo "the other variants' labs stay up, idle, meanwhile."
echo "tx/call, rx/call: ikeda's UDP 4500 datagrams per sendmmsg on gw1 and per recvmmsg on gw2 (- where none)"
echo "idle ms, load ms: average ping RTT (20 pings, 50 ms apart) on the same path, idle and while one iperf3 stream runs"
rm -rf "$OUT"
