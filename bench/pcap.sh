#!/usr/bin/env bash
# `ikeda pcap --keys` against tshark on one large ESP capture, in one run
# (issue 12 point 7: >= 1 GB of ESP capture per minute, on one core, with
# decryption on; memory flat in the size of the file).
#
#   1. `ikeda pcap-gen` writes a capture of AES-128-GCM ESP frames of at
#      most 1400 bytes (1398: ESP pads to 4 bytes), both directions of one
#      CHILD SA sealed by the data plane's outbound SAs, and the keys as a
#      gateway exports them (ikeda's key log, Wireshark's esp_sa); a file
#      of an eighth of the size too, to show the memory does not grow.
#   2. Both files are read once beforehand, so both tools read from the page
#      cache; each tool runs pinned to one core (taskset), under
#      /usr/bin/time -v (wall time, CPU time, peak RSS).
#   3. ikeda: `ikeda pcap --json --keys DIR FILE`; tshark: `tshark -r FILE -q
#      -z io,stat,0,frame,udp` with the same keys (esp_sa records via -o uat:esp_sa,
#      encryption decode on): io,stat,0 with a frame and a udp column; the
#      udp column counts the inner datagrams:
#      tshark decrypted them. (tshark does not check the ICV unless asked;
#      ikeda always does: GCM's tag is part of the decryption.)
#   4. Prints MB/s and GB/min of capture for both, their peak RSS, and the
#      ratio; checks that both decrypted every frame.
#
# usage: bench/pcap.sh [--size-mib N] [--esp PROPOSAL] [--frame BYTES] [--dir DIR] [--keep]
# needs tshark, /usr/bin/time, taskset; about 1.2 x N MiB of space in DIR
# (default: a new directory under /tmp, removed at the end unless --keep).
set -Eeuo pipefail
cd "$(dirname "$0")/.."
SIZE=1024 ESP=aes128gcm16 FRAME=1400 DIR= KEEP=
while [[ $# -gt 0 ]]; do
  case $1 in
    --size-mib) SIZE=$2; shift 2;; --esp) ESP=$2; shift 2;; --frame) FRAME=$2; shift 2;;
    --dir) DIR=$2; shift 2;; --keep) KEEP=1; shift;;
    *) echo "usage: $0 [--size-mib N] [--esp PROPOSAL] [--frame BYTES] [--dir DIR] [--keep]" >&2; exit 2;;
  esac
done
for t in tshark /usr/bin/time taskset python3; do
  command -v "$t" >/dev/null || { echo "$t is missing" >&2; exit 1; }
done
cargo build --release -q -p ikeda
IKEDA=$PWD/target/release/ikeda
if [[ -z $DIR ]]; then DIR=$(mktemp -d /tmp/ikeda-pcap-bench.XXXXXX); else mkdir -p "$DIR"; fi
cleanup() { [[ -n $KEEP ]] || rm -rf "$DIR"; }
trap cleanup EXIT
# The core both tools run on: the last one.
CORE=$(( $(nproc) - 1 ))

SMALL=$(( SIZE / 8 > 0 ? SIZE / 8 : 1 ))
"$IKEDA" pcap-gen --out "$DIR/esp.pcap" --keys "$DIR/keys" --size-mib "$SIZE" --frame "$FRAME" --esp "$ESP"
"$IKEDA" pcap-gen --out "$DIR/esp-small.pcap" --keys "$DIR/keys-small" --size-mib "$SMALL" --frame "$FRAME" --esp "$ESP"
cat "$DIR/esp.pcap" "$DIR/esp-small.pcap" >/dev/null

# /usr/bin/time -v OUT CMD...: runs CMD on one core; OUT gets time's report.
timed() {
  local out=$1; shift
  /usr/bin/time -v -o "$out" taskset -c "$CORE" "$@"
}

# ikeda: FILE KEYS NAME -> $DIR/NAME.{json,time}
run_ikeda() {
  timed "$DIR/$3.time" "$IKEDA" pcap --json --keys "$2" "$1" >"$DIR/$3.json"
}
# tshark with the esp_sa records of KEYS: FILE KEYS NAME -> $DIR/NAME.{out,time}
run_tshark() {
  local -a o=(-o esp.enable_encryption_decode:TRUE)
  local l
  while IFS= read -r l; do [[ -n $l && $l != \#* ]] && o+=(-o "uat:esp_sa:$l"); done <"$2/esp_sa"
  mkdir -p "$DIR/wireshark-empty"
  WIRESHARK_CONFIG_DIR=$DIR/wireshark-empty timed "$DIR/$3.time" \
    tshark -r "$1" -n "${o[@]}" -q -z io,stat,0,frame,udp >"$DIR/$3.out" 2>"$DIR/$3.err" \
    || { cat "$DIR/$3.err" >&2; exit 1; }
}

run_ikeda "$DIR/esp-small.pcap" "$DIR/keys-small" ikeda-small
run_ikeda "$DIR/esp.pcap" "$DIR/keys" ikeda
run_tshark "$DIR/esp.pcap" "$DIR/keys" tshark

python3 - "$DIR" "$SIZE" "$SMALL" "$ESP" "$CORE" <<'EOF'
import json, os, re, sys
d, size, small, esp, core = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]

def timing(name):
    t = open(os.path.join(d, name + ".time")).read()
    def field(label):
        m = re.search(re.escape(label) + r".*?: (\S+)", t)
        return m.group(1)
    wall = field("Elapsed (wall clock) time")
    secs = 0.0
    for part in wall.split(":"):
        secs = secs * 60 + float(part)
    cpu = float(field("User time (seconds)")) + float(field("System time (seconds)"))
    return secs, cpu, int(field("Maximum resident set size (kbytes)"))

def decrypted(name):
    v = json.load(open(os.path.join(d, name + ".json")))
    flows = v["flows"]
    frames = v["stats"]["frames"]
    dec = sum(f["decryption"]["decrypted"] for f in flows)
    bad = sum(f["decryption"]["icv_failures"] for f in flows)
    return frames, dec, bad

size_b = os.path.getsize(os.path.join(d, "esp.pcap"))
small_b = os.path.getsize(os.path.join(d, "esp-small.pcap"))
frames, dec, bad = decrypted("ikeda")
sframes, sdec, sbad = decrypted("ikeda-small")
assert dec == frames and bad == 0, f"ikeda decrypted {dec} of {frames} frames ({bad} ICV failures)"
assert sdec == sframes and sbad == 0, f"ikeda (small) decrypted {sdec} of {sframes}"

# tshark's io,stat table: | 0.000 <> X | frames | bytes | udp frames | udp bytes |
row = [l for l in open(os.path.join(d, "tshark.out")) if "<>" in l][-1]
cells = [c.strip() for c in row.strip().strip("|").split("|")]
t_frames, t_udp = int(cells[1]), int(cells[3])
assert t_frames == frames, f"tshark read {t_frames} frames, ikeda {frames}"
# Wireshark has no ChaCha20-Poly1305 for ESP: the key export writes a
# comment instead of an esp_sa record, and tshark reads without decrypting.
records = [l for l in open(os.path.join(d, "keys", "esp_sa")) if l.strip() and not l.startswith("#")]
if records:
    assert t_udp == frames, f"tshark decrypted {t_udp} of {t_frames} frames (udp inside ESP)"
tshark_note = "decrypted" if records else f"NOT decrypted: Wireshark has no {esp} for ESP"

iw, ic, ir = timing("ikeda")
sw, sc, sr = timing("ikeda-small")
tw, tc, tr = timing("tshark")
def rates(wall):
    return size_b / 1e6 / wall, size_b / 1e9 / wall * 60
im, ig = rates(iw)
tm, tg = rates(tw)
print()
print(f"== {size_b} bytes of {esp} ESP capture ({frames} frames), decrypted, on core {core} ==")
print(f"ikeda pcap --keys : {iw:8.2f} s wall, {ic:8.2f} s CPU: {im:8.1f} MB/s, {ig:6.2f} GB/min; peak RSS {ir/1024:7.1f} MiB")
print(f"tshark io,stat    : {tw:8.2f} s wall, {tc:8.2f} s CPU: {tm:8.1f} MB/s, {tg:6.2f} GB/min; peak RSS {tr/1024:7.1f} MiB ({tshark_note})")
print(f"ikeda / tshark    : {im / tm:.1f} x faster, {tr / ir:.1f} x less memory")
print(f"ikeda on {small_b} bytes ({sframes} frames): peak RSS {sr/1024:.1f} MiB; on {size_b} bytes: {ir/1024:.1f} MiB (flat: {ir - sr:+d} KiB for {size_b / small_b:.0f} x the file)")
print(f"target >= 1 GB/min on one core: {'met' if ig >= 1.0 else 'NOT MET'} ({ig:.2f} GB/min)")
sys.exit(0 if ig >= 1.0 else 1)
EOF
