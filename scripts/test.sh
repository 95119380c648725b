#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine (run as root; CI does).
# Installs what the tests need (and a Debian 13 root with libreswan 5.2, once
# per machine), then runs: unit and simulator tests, the network-namespace
# labs (ikeda <-> ikeda, strongSwan, libreswan), the tshark oracles
# (ESP with manual keys, IKEv2 and ESP with exported keys), a check that no
# key reaches a gateway log, and a short run of every fuzz target.
#
#   scripts/test.sh            everything
#   FUZZ_SECONDS=0 scripts/test.sh    skip the fuzz runs (local iteration only)
set -Eeuo pipefail
cd "$(dirname "$0")/.."

# strongSwan's plugins come in four packages; the lab's charon loads plugins
# from all of them (openssl and gcm are in the standard set, which
# --no-install-recommends would otherwise leave out).
# debootstrap builds the libreswan peer's root (libreswan and strongSwan
# conflict as Debian packages).
PKGS=(iproute2 iputils-ping iperf3 nftables tshark python3-cryptography ethtool
      strongswan-charon strongswan-swanctl libstrongswan-standard-plugins
      libstrongswan-extra-plugins libcharon-extra-plugins debootstrap)
missing=()
for p in "${PKGS[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p"); done
if ((${#missing[@]})); then
  [[ $EUID -eq 0 ]] || { echo "need root to install: ${missing[*]}" >&2; exit 1; }
  echo "== installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # tshark asks whether non-root users may capture; answer no.
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Lab namespaces already there are not this run's: a run killed before its
# labs went down (the machine stopped, SIGKILL) leaves them. They are named,
# never deleted here (another run may own them), and not counted as a leak.
netns_before=$(ip netns list | awk '{print $1}' | grep '^ikl-' | sort || true)
[[ -z "$netns_before" ]] || echo "== lab namespaces from before this run (not this run's; left alone): $(echo $netns_before)"

# libreswan 5.2 for tests/libreswan.rs, from Debian 13 (built once, kept).
export IKEDA_LIBRESWAN_ROOT=${IKEDA_LIBRESWAN_ROOT:-/var/lib/ikeda/peers/trixie}
scripts/peer-root.sh "$IKEDA_LIBRESWAN_ROOT"

echo "== cargo test (workspace, release: the labs need the optimized data plane)"
# Every lab gateway logs at trace level and exports its keys; `lab down`
# archives the logs, configs and key logs, and afterwards no key may be
# found in any log. IKEDA_KEEP_ARCHIVE=1 keeps the archive (it holds keys).
IKEDA_LAB_ARCHIVE=$(mktemp -d /tmp/ikeda-lab-archive.XXXXXX)
if [[ "${IKEDA_KEEP_ARCHIVE:-0}" == 1 ]]; then
  trap 'echo "lab archive kept in $IKEDA_LAB_ARCHIVE"' EXIT
else
  trap 'rm -rf "$IKEDA_LAB_ARCHIVE"' EXIT
fi
# --no-fail-fast: a failing test binary must not hide the ones after it;
# the failures are summed up at the end and the run still exits non-zero.
failed=()
CARGO_LOG_FILE=$(mktemp /tmp/ikeda-cargo-test.XXXXXX)
set +e
IKEDA_LAB_LOG=trace IKEDA_LAB_EXPORT_KEYS=1 IKEDA_LAB_ARCHIVE="$IKEDA_LAB_ARCHIVE" \
  cargo test --workspace --release --no-fail-fast -- --test-threads="${TEST_THREADS:-2}" 2>&1 | tee "$CARGO_LOG_FILE"
cargo_rc=${PIPESTATUS[0]}
set -e
((cargo_rc == 0)) || failed+=("cargo test (exit $cargo_rc)")

echo "== no key in any lab log"
python3 scripts/check_logs_for_keys.py --self-test
python3 scripts/check_logs_for_keys.py "$IKEDA_LAB_ARCHIVE" || failed+=("key check: a key reached a log")
[[ "${IKEDA_KEEP_ARCHIVE:-0}" == 1 ]] || rm -rf "$IKEDA_LAB_ARCHIVE"

if [[ "${FUZZ_SECONDS:-20}" != 0 ]]; then
  echo "== fuzz targets, ${FUZZ_SECONDS:-20} s each"
  fuzz/run.sh "${FUZZ_SECONDS:-20}" || failed+=("fuzz targets")
fi

left=$(comm -13 <(echo "$netns_before") <(ip netns list | awk '{print $1}' | grep '^ikl-' | sort) | grep . || true)
[[ -z "$left" ]] || failed+=("tests left namespaces behind: $left")
if ((${#failed[@]})); then
  echo "== FAILED"
  # What each failing test said (its panic message first), a bounded part
  # of it, so that the end of the log alone tells why.
  awk '/^---- .* stdout ----$/ {show = 1; n = 0} /^failures:$/ {show = 0}
       show && n < 60 {print; n++}' "$CARGO_LOG_FILE" | grep -v '^ *[0-9]*: \|^ *at /' || true
  grep -E '^test .* \.\.\. FAILED$|^error: .*target.* failed|^    `' "$CARGO_LOG_FILE" || true
  printf '  %s\n' "${failed[@]}"
  rm -f "$CARGO_LOG_FILE"
  exit 1
fi
rm -f "$CARGO_LOG_FILE"
echo "== all tests passed"
