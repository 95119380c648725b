#!/usr/bin/env bash
# End-to-end throughput: iperf3 through the two-site lab, in one run, for
#   plain   - gw1 -> gw2 over the bare veth (no tunnel): the ceiling
#   ikeda   - h1 -> h2 through ikeda's userspace ESP, for each --esp proposal
#   swan    - h1 -> h2 through strongSwan 5.9 charon with kernel-libipsec
# each with 1 and 4 streams, and prints the ratios ikeda/strongSwan.
#
# usage: bench/e2e.sh [-t SECONDS] [-n REPEATS] [--esp "aes128gcm16 aes256gcm16 ..."] [--encap esp|udp]
# needs root, iperf3, strongSwan (the README's test command installs them).
set -Eeuo pipefail
cd "$(dirname "$0")/.."
T=5 N=3 ESPS="aes128gcm16" ENCAP=esp
while [[ $# -gt 0 ]]; do
  case $1 in
    -t) T=$2; shift 2;; -n) N=$2; shift 2;; --esp) ESPS=$2; shift 2;; --encap) ENCAP=$2; shift 2;;
    *) echo "usage: $0 [-t S] [-n R] [--esp LIST] [--encap esp|udp]" >&2; exit 2;;
  esac
done
[[ $EUID -eq 0 ]] || { echo "must run as root" >&2; exit 1; }
cargo build --release -q
IKEDA=$PWD/target/release/ikeda
LAB=bench$$; LAB=${LAB:0:8}
OUT=$(mktemp -d /tmp/ikeda-bench.XXXXXX)
SRV_PID=
cleanup() {
  [[ -n $SRV_PID ]] && kill "$SRV_PID" 2>/dev/null || true
  "$IKEDA" lab down --name "$LAB" >/dev/null 2>&1 || true
}
trap cleanup EXIT

# median Gbit/s of N iperf3 runs: node server_addr client_node streams [bind]
measure() {
  local srv_node=$1 addr=$2 cli_node=$3 P=$4 r vals=()
  ip netns exec "ikl-$LAB-$srv_node" iperf3 -s -B "$addr" >"$OUT/iperf3-server.log" 2>&1 &
  SRV_PID=$!
  for _ in $(seq 1 50); do ip netns exec "ikl-$LAB-$srv_node" ss -Htln "sport = :5201" | grep -q . && break; sleep 0.1; done
  for r in $(seq 1 "$N"); do
    ip netns exec "ikl-$LAB-$cli_node" iperf3 -c "$addr" -t "$T" -P "$P" -J >"$OUT/run.json" \
      || { echo "iperf3 failed" >&2; cat "$OUT/run.json" >&2; exit 1; }
    vals+=("$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"]/1e9)' "$OUT/run.json")")
    sleep 0.5
  done
  kill "$SRV_PID" 2>/dev/null || true; wait "$SRV_PID" 2>/dev/null || true; SRV_PID=
  printf '%s\n' "${vals[@]}" | sort -g | awk '{a[NR]=$1} END{print (NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2}'
}

declare -A R
lab() { "$IKEDA" lab down --name "$LAB" >/dev/null 2>&1 || true; "$IKEDA" lab up --name "$LAB" --no-ping "$@" >"$OUT/lab.log" 2>&1 || { cat "$OUT/lab.log" >&2; exit 1; }; }

lab --gateways none
for P in 1 4; do R[plain,$P]=$(measure gw2 192.168.50.12 gw1 "$P"); echo "plain veth      -P $P: ${R[plain,$P]} Gbit/s"; done
lab --gateways strongswan --esp aes128gcm16
for P in 1 4; do R[swan,$P]=$(measure h2 192.168.12.12 h1 "$P"); echo "strongSwan gcm  -P $P: ${R[swan,$P]} Gbit/s"; done
for E in $ESPS; do
  lab --gateways ikeda --esp "$E" --encap "$ENCAP"
  for P in 1 4; do R[$E,$P]=$(measure h2 192.168.12.12 h1 "$P"); echo "ikeda $E -P $P: ${R[$E,$P]} Gbit/s"; done
done

echo
echo "== iperf3 TCP, ${T}s x ${N} (median), same run, encap $ENCAP =="
printf '%-22s %10s %10s %14s %14s\n' "" "-P 1" "-P 4" "vs swan -P1" "vs swan -P4"
printf '%-22s %10.3f %10.3f\n' "plain veth gw1->gw2" "${R[plain,1]}" "${R[plain,4]}"
printf '%-22s %10.3f %10.3f %13.2fx %13.2fx\n' "strongSwan aes128gcm16" "${R[swan,1]}" "${R[swan,4]}" 1 1
for E in $ESPS; do
  printf '%-22s %10.3f %10.3f %13.2fx %13.2fx\n' "ikeda $E" "${R[$E,1]}" "${R[$E,4]}" \
    "$(python3 -c "print(${R[$E,1]}/${R[swan,1]})")" "$(python3 -c "print(${R[$E,4]}/${R[swan,4]})")"
done
rm -rf "$OUT"
