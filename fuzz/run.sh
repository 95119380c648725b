#!/usr/bin/env bash
# Run every fuzz target for SECONDS each (default 30); exit non-zero if any
# target crashes, panics, leaks, times out or fails to build.
#
#   fuzz/run.sh [SECONDS]
#
# Works on a stable toolchain: cargo-fuzz needs nightly-only flags
# (-Zsanitizer=address, sanitizer coverage), which RUSTC_BOOTSTRAP=1 lets
# stable rustc accept. Installs cargo-fuzz if it is missing. Seeds are
# written into fuzz/corpus/<target>/ (git-ignored) on every run.
#
# Environment: FUZZ_TARGET_DIR (or CARGO_TARGET_DIR) to build elsewhere than
# fuzz/target; FUZZ_SANITIZER (default "address"; "none" is faster);
# FUZZ_ARGS for extra libFuzzer arguments.
set -euo pipefail

secs=${1:-30}
case $secs in '' | *[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;; esac

fuzz_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$fuzz_dir")
cd "$root"

export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
export RUSTC_BOOTSTRAP=1
export CARGO_TERM_COLOR=never

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

target_dir=${FUZZ_TARGET_DIR:-${CARGO_TARGET_DIR:-}}
unset CARGO_TARGET_DIR # cargo-fuzz must know where the binaries go
opts=(--fuzz-dir "$fuzz_dir" --sanitizer "${FUZZ_SANITIZER:-address}")
[ -n "$target_dir" ] && opts+=(--target-dir "$target_dir")

# ---- seed corpus ----------------------------------------------------------
seed() { # seed TARGET NAME PRINTF-FORMAT
    mkdir -p "$fuzz_dir/corpus/$1"
    printf "$3" >"$fuzz_dir/corpus/$1/seed-$2"
}
# IPv4/UDP 10.1.0.1:12345 -> 10.2.0.1:53, 4 bytes of data (32 bytes).
v4='\x45\x00\x00\x20\x00\x00\x00\x00\x40\x11\x00\x00\x0a\x01\x00\x01\x0a\x02\x00\x01\x30\x39\x00\x35\x00\x0c\x00\x00abcd'
# IPv6/ICMPv6 echo request 2001:db8::1 -> 2001:db8::2 (48 bytes).
v6='\x60\x00\x00\x00\x00\x08\x3a\x40\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x80\x00\x00\x00\x00\x01\x00\x01'
# Byte 0 of an esp_decap input picks the algorithm (and ESN with 0x80).
for i in 0 1 2 3 4 5 6; do
    seed esp_decap "v4-$i" "\\x0$i$v4"
    seed esp_decap "v6-esn-$i" "\\x8$i$v6"
done
seed esp_decap esp-header '\x00\x00\x00\x10\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f\x20'
seed wire_ip v4 "$v4"
# A raw DEFLATE stream (fixed Huffman) of "hello hello hello", a stored block, a bad block type.
seed ipcomp_decompress fixed '\xcb\x48\xcd\xc9\xc9\x57\xc8\x40\x90\x00'
seed ipcomp_decompress stored '\x01\x05\x00\xfa\xffhello'
seed ipcomp_decompress reserved '\x07\x00'
seed wire_ip v6 "$v6"
# wire_vnet: 2-byte segment limit, virtio_net_hdr, packet. TSO4 of 40 bytes
# of IPv4/TCP payload in 16-byte segments; NEEDS_CSUM on the UDP packet above.
tcp4='\x45\x00\x00\x50\x00\x01\x40\x00\x40\x06\x00\x00\x0a\x01\x00\x01\x0a\x02\x00\x01\x30\x39\x14\x51\x00\x00\x00\x01\x00\x00\x00\x00\x50\x19\x01\x00\x00\x00\x00\x00abcdefghijklmnopqrstuvwxyz0123456789ABCD'
seed wire_vnet tso4 "\\x00\\x40\\x01\\x01\\x28\\x00\\x10\\x00\\x14\\x00\\x10\\x00$tcp4"
seed wire_vnet tso4-ecn "\\x05\\xdc\\x01\\x81\\x28\\x00\\x07\\x00\\x14\\x00\\x10\\x00$tcp4"
seed wire_vnet csum-udp4 "\\x05\\xdc\\x01\\x00\\x00\\x00\\x00\\x00\\x14\\x00\\x06\\x00$v4"
seed wire_vnet plain-v6 "\\x05\\xdc\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00$v6"
# wire_udp_gso: 2-byte segment size, then a train: 3 x 4 bytes and a shorter
# last, one segment exactly, and a segment size of 0.
seed wire_udp_gso train '\x00\x04abcdefghijklmn'
seed wire_udp_gso one '\x00\x05\x00\x05\x00\x05'
seed wire_udp_gso zero '\x00\x00\x05\xdc\x05\xdc\x05\xdc\x03\x00'
seed wire_ip ike '\x00\x00\x00\x00\x01\x02\x03\x04\x05\x06\x07\x08'
seed wire_ip keepalive '\xff'
seed wire_ip trailer '\x45\x00\x01\x02\x03\x04\x06\x04'
# seed_hex TARGET NAME HEX: like seed, from a hex string.
seed_hex() { seed "$1" "$2" "$(printf '%s' "$3" | sed 's/../\\x&/g')"; }
# IKEv1 Main Mode 1 and 3 as strongSwan 5.9 sent them (3des-sha1-modp1024;
# crates/ikeda-wire/src/ikev1/tests.rs has the whole capture).
seed_hex ikev1_parse mm1 8d2272e1e6cda98900000000000000000110020000000000000000b00d00003400000001000000010000002801010001000000200101000080010005800200028004000280030001800b0001800c3de00d00000c09002689dfd6b7120d000014afcad71368a1f1c96b8696fc775701000d0000184048b7d56ebce88525e7de7f00d6c2d3800000000d0000144a131c81070358455c5728f20e95452f0000001490cb80913ebb696e086381b5ec427b1f
seed_hex ikev1_parse mm3 8d2272e1e6cda9896ab00953bd8167cf0410020000000000000000f40a000084b4389431bfdc4cbe1761c0a36aecb060e414dd8324ed746b9dbc9dac7f53c627ef585218f303f6d76a9e8e69aedba4ced10ce61beb8bf96f375262051bd61ef194a4347f9f669eee63dab1cf556e642121f96c21f7605750b1f9b67f35ba28c6044f740e77ae4c649c6a99d058963fade74fc3780012af1d1c555ea9d7af2187140000246a28fa718c565abc77f19db2c6ecbc230a54743a19b9ab1332e0a5f000a6946f14000018940d42d4261308660d7834f791919d4e5194e75c0000001877cf646fb8f2115b6d0a5dceca50fa4dfac1d9a9
# A decrypted Main Mode 5 chain: first payload type ID, then ID | HASH |
# N(INITIAL_CONTACT) and 4 octets of CBC padding.
seed_hex ikev1_parse mm5-plain 050800000c011101f4c0a8320b0b000018aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa0000001c00000001011060028d2272e1e6cda989000000000000000000000003
# ikev1_engine: byte 0 picks mode, side, progress and cookie borrowing
# (see the target); strongSwan's MM1 to a fresh responder, and as an
# encrypted-looking message with borrowed cookies once Main Mode is up.
seed_hex ikev1_engine mm1-fresh 008d2272e1e6cda98900000000000000000110020000000000000000b00d00003400000001000000010000002801010001000000200101000080010005800200028004000280030001800b0001800c3de00d00000c09002689dfd6b7120d000014afcad71368a1f1c96b8696fc775701000d0000184048b7d56ebce88525e7de7f00d6c2d3800000000d0000144a131c81070358455c5728f20e95452f0000001490cb80913ebb696e086381b5ec427b1f
seed_hex ikev1_engine mm1-borrowed-established 7c8d2272e1e6cda98900000000000000000110020000000000000000b00d00003400000001000000010000002801010001000000200101000080010005800200028004000280030001800b0001800c3de00d00000c09002689dfd6b7120d000014afcad71368a1f1c96b8696fc775701000d0000184048b7d56ebce88525e7de7f00d6c2d3800000000d0000144a131c81070358455c5728f20e95452f0000001490cb80913ebb696e086381b5ec427b1f
# ikev1_engine_decrypted: Informational, M-ID 01020304, a Notify
# R-U-THERE (RFC 3706) with sequence number 1 after the computed HASH(1).
seed_hex ikev1_engine_decrypted info-r-u-there 00010203040b000000200000000101108d280000000000000000000000000000000000000001
seed_hex ikev1_engine_decrypted info-delete-esp 00010203040c0000001000000001030400010000abcd
# Control socket requests as `ikeda` sends them, and a wrong version.
seed control_protocol status '{"version":1,"command":"status"}\n'
seed control_protocol up '{"version":1,"command":"up","conn":"s2s"}'
seed control_protocol log '{"version":1,"command":"log","follow":true,"lines":50}'
seed control_protocol v7 '{"version":7,"command":"show-ike"}'
# esp_decap_ipcomp: AES-GCM, IPComp Next Header IPv4, the fixed-Huffman
# DEFLATE of "hello hello hello" (not an IP packet: refused after inflate).
seed esp_decap_ipcomp hello '\x00\x00\xcb\x48\xcd\xc9\xc9\x57\xc8\x40\x90\x00'
# ... and the DEFLATE of the IPv4/UDP packet above (v4): accepted.
seed_hex esp_decap_ipcomp v4 000073656050600002074106062e4606462e260646034b0653061e0686c4a4e41400
# ikev2_engine_decrypted: INFORMATIONAL request to the responder, with an
# empty payload chain (a liveness check) and with N(INITIAL_CONTACT).
seed ikev2_engine_decrypted liveness '\x02\x00'
seed_hex ikev2_engine_decrypted delete-ike 02'2a'0000000801000000
# pcap_reader: byte 0 is the read chunk size - 1. A little-endian pcap
# (raw IP) with one IKE datagram, and a pcapng (SHB, IDB Ethernet, EPB).
seed_hex pcap_reader pcap-raw 0fd4c3b2a1020004000000000000000000ffff00006500000001000000000000002400000024000000450000240000000040110000c0a8320bc0a8320c01f401f40010000000000000ffffffff
seed_hex pcap_reader pcapng-eth 3f0a0d0d0a1c0000004d3c2b1a01000000ffffffffffffffff1c000000010000001400000001000000000000001400000006000000540000000000000000000000000000003200000032000000ffffffffffff0200000000010800450000240000000040110000c0a8320bc0a8320c01f401f40010000000000000ffffffff000054000000
# Key sources (crates/ikeda/src/pcap/keysrc.rs): charon 5.9.8's level-4 log
# as the lab's strongSwan gateways write it (a throwaway lab's lines), and
# one line of each Wireshark table as ikeda writes them.
seed key_charon_log v2 '02:59:56 07[ENC] <s2s|1> parsed IKE_SA_INIT response 0 [ SA KE No ]\n02:59:56 07[CFG] <s2s|1> selected proposal: IKE:AES_GCM_16_128/PRF_HMAC_SHA2_256/CURVE_25519\n02:59:56 07[IKE] <s2s|1> natd_chunk => 22 bytes @ 0x7f7fec0023e0\n02:59:56 07[IKE] <s2s|1>    0: 81 13 57 AC 44 93 52 8C 79 E9 91 4A E7 8E BC 41  ..W.D.R.y..J...A\n02:59:56 07[IKE] <s2s|1>   16: C0 A8 32 0B 01 F4                                ..2...\n02:59:56 07[IKE] <s2s|1> Sk_d secret => 4 bytes @ 0x7f7fec00a4f0\n02:59:56 07[IKE] <s2s|1>    0: E9 3F 0F 43                                      .?.C\n02:59:56 07[IKE] <s2s|1> Sk_ei secret => 20 bytes @ 0x7f7fec00a090\n02:59:56 07[IKE] <s2s|1>    0: 95 74 3F B6 22 3D F6 9E 87 0A 78 3F E8 62 42 EE  .t?."=....x?.bB.\n02:59:56 07[IKE] <s2s|1>   16: D2 29 84 18                                      .)..\n02:59:56 07[IKE] <s2s|1> Sk_er secret => 20 bytes @ 0x7f7fec00a0a4\n02:59:56 07[IKE] <s2s|1>    0: AF 9D 5C 61 D0 8B BB CF 02 DA 10 5C AF 1B 5F 4A  ..\\a.......\\.._J\n02:59:56 07[IKE] <s2s|1>   16: 4D 3E B1 C8                                      M>..\n'
seed key_charon_log child '02:59:56 05[NET] <s2s|1> received packet: from 192.168.50.12[4500] to 192.168.50.11[4500] (341 bytes)\n02:59:56 05[ENC] <s2s|1> parsed IKE_AUTH response 1 [ IDr AUTH SA TSi TSr ]\n02:59:56 05[CFG] <s2s|1> selected proposal: ESP:AES_CBC_128/HMAC_SHA1_96/NO_EXT_SEQ\n02:59:56 05[CHD] <s2s|1> encryption initiator key => 16 bytes @ 0x5587b7697f30\n02:59:56 05[CHD] <s2s|1>    0: C6 C4 AB AD 0A 0D 11 00 CE 8D 5E 39 34 19 61 92  ..........^94.a.\n02:59:56 05[CHD] <s2s|1> encryption responder key => 16 bytes @ 0x5587b7698570\n02:59:56 05[CHD] <s2s|1>    0: 97 EB B3 2E 21 C6 CB A6 9F 71 AA 7E B0 38 FB 90  ....!....q.~.8..\n02:59:56 05[CHD] <s2s|1> integrity initiator key => 20 bytes @ 0x5587b7698570\n02:59:56 05[CHD] <s2s|1>    0: 97 EB B3 2E 21 C6 CB A6 9F 71 AA 7E B0 38 FB 90  ....!....q.~.8..\n02:59:56 05[CHD] <s2s|1>   16: 6E 75 5D 6D                                      nu]m\n02:59:56 05[CHD] <s2s|1> integrity responder key => 20 bytes @ 0x5587b7698570\n02:59:56 05[CHD] <s2s|1>    0: 97 EB B3 2E 21 C6 CB A6 9F 71 AA 7E B0 38 FB 90  ....!....q.~.8..\n02:59:56 05[CHD] <s2s|1>   16: 6E 75 5D 6D                                      nu]m\n02:59:56 05[CHD] <s2s|1> adding inbound ESP SA\n02:59:56 05[CHD] <s2s|1>   SPI 0x574b4e0a, src 192.168.50.12 dst 192.168.50.11\n'
seed key_charon_log v1 '03:00:38 12[CFG] <1> selected proposal: IKE:AES_CBC_128/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048\n03:00:38 12[IKE] <1> natd_chunk => 22 bytes @ 0x7f6d58bf2a80\n03:00:38 12[IKE] <1>    0: 81 13 57 AC 44 93 52 8C 79 E9 91 4A E7 8E BC 41  ..W.D.R.y..J...A\n03:00:38 12[IKE] <1>   16: C0 A8 32 0B 01 F4                                ..2...\n03:00:38 12[IKE] <1> SKEYID => 4 bytes @ 0x7f6d1800bfd0\n03:00:38 12[IKE] <1>    0: 01 02 03 04                                      ....\n03:00:38 12[IKE] <1> encryption key Ka => 16 bytes @ 0x7f6d1800fd60\n03:00:38 12[IKE] <1>    0: C6 C4 AB AD 0A 0D 11 00 CE 8D 5E 39 34 19 61 92  ..........^94.a.\n03:00:38 12[IKE] <1> initial IV => 16 bytes @ 0x7f6d1800fd60\n03:00:38 12[IKE] <1>    0: 97 EB B3 2E 21 C6 CB A6 9F 71 AA 7E B0 38 FB 90  ....!....q.~.8..\n03:00:38 14[IKE] <s2s|1> next IV for MID 0 => 16 bytes @ 0x7f6d2c002ef0\n03:00:38 14[IKE] <s2s|1>    0: 97 EB B3 2E 21 C6 CB A6 9F 71 AA 7E B0 38 FB 90  ....!....q.~.8..\n'
seed key_ikev2_table gcm '0123456789abcdef,fedcba9876543210,0011223344556677889900112233445566778899,0011223344556677889900112233445566778899,"AES-GCM-128 with 16 octet ICV [RFC5282]",,,"NONE [RFC4306]"\n'
seed key_ikev2_table cbc '0123456789abcdef,fedcba9876543210,00112233445566778899001122334455,00112233445566778899001122334455,"AES-CBC-128 \\x5bRFC3602]",0011223344556677889900112233445566778899,0011223344556677889900112233445566778899,"HMAC_SHA1_96 [RFC2404]"\n'
seed key_ikev1_table line '8130e569e9b0bd03,00112233445566778899001122334455\n# a comment\n'
seed key_esp_sa gcm '"IPv4","192.168.50.12","192.168.50.11","0xc1234567","AES-GCM with 16 octet ICV [RFC4106]","0x0011223344556677889900112233445566778899","NULL",""\n'
seed key_esp_sa cbc '"IPv6","2001:db8::1","*","0x00000100","AES-CBC [RFC3602]","0x00112233445566778899001122334455","HMAC-SHA-1-96 [RFC2404]","0x0011223344556677889900112233445566778899"\n'
seed audit_iptables reply_only '*filter\n:INPUT DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n:IPSEC - [0:0]\n-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT\n-A INPUT -j IPSEC\n-A IPSEC -s 198.51.100.0/24 -p udp -m udp --dport 500 -j ACCEPT\n-A IPSEC -p esp -j ACCEPT\n-A IPSEC -m set --match-set x src -j DROP\nCOMMIT\n'
# The other audit formats: the sample files of the audit tests (AWS
# security group and network ACL JSON as the aws CLI prints them; nft -j
# as nft 1.0.6 printed it in a throwaway namespace).
for f in "$root"/crates/ikeda/tests/audit_samples/*; do
    case $(basename "$f") in
    sg_*) t=audit_sg ;; nacl_*) t=audit_nacl ;; nft_*) t=audit_nft ;; ipt_*) t=audit_iptables ;; *) continue ;;
    esac
    mkdir -p "$fuzz_dir/corpus/$t"
    cp "$f" "$fuzz_dir/corpus/$t/seed-$(basename "$f")"
done
# pcap_write: byte 0 odd is a program over packets sealed with the
# harness's keys, 3 bytes a step (packet, how, argument; see the target):
# 0 IKE_AUTH in SK, 1 IKEv1 MM5, 2-4 its SKF fragments 1-3, 5-7 ESP,
# 8-10 ESP with IPComp. Everything in order; the fragments 3, 1, 3, 2 over
# IPv6 on 4500; an even byte 0 and a capture file.
seed_hex pcap_write in-order 010000000100000200000300000400000500000600000700000800000900000a0000
seed_hex pcap_write skf-shuffled-v6 01040c00020c00040c00030c00
seed_hex pcap_write file 00d4c3b2a1020004000000000000000000ffff00006500000001000000000000002400000024000000450000240000000040110000c0a8320bc0a8320c01f401f40010000000000000ffffffff
# ikev2_skf_reassembly: 6 bytes a fragment (message, number, total, time
# step, length, next payload): fragments 2, 1, 1, 3 of 3 of one message.
seed_hex ikev2_skf_reassembly three 000203000a00000103000a23000103000a23000303000500
mkdir -p "$fuzz_dir/corpus/config_parse"
cat >"$fuzz_dir/corpus/config_parse/seed-good" <<'TOML'
[daemon]
tun = "ikeda0"
mtu = 1400
route_table = 220

[[conn]]
name = "site2"
local_addr = "192.168.50.11"
remote_addr = "192.168.50.12"
encap = "udp"
port = 4500
esp = "aes128gcm16"
esn = true
replay_window = 1024
local_ts = ["192.168.11.0/24", "2001:db8:11::/48"]
remote_ts = ["192.168.12.0/24", "2001:db8:12::/48"]

[[conn.policy]]
local = "192.168.50.11"
remote = "192.168.12.0/24"

[[conn.policy]]
local = "192.168.11.0/24"
remote = "192.168.12.80-192.168.12.90"
proto = "tcp"
remote_port = "80"
local_port = "1024-65535"

[conn.manual]
out = { spi = "0x1001", enc_key = "0x000102030405060708090a0b0c0d0e0f10111213" }
in = { spi = 8193, enc_key = "0x101112131415161718191a1b1c1d1e1f20212223" }
TOML
cat >"$fuzz_dir/corpus/config_parse/seed-cbc" <<'TOML'
[[conn]]
name = "v6"
local_addr = "2001:db8::1"
remote_addr = "2001:db8::2"
esp = "aes256-sha256"
local_ts = ["10.1.0.0/16"]
remote_ts = ["10.2.0.0/16"]
[[conn.policy]]
local = "10.1.0.1"
remote = "10.2.0.0/16"
proto = "icmp"
[conn.manual]
out = { spi = 4097, enc_key = "00:01:02:03:04:05:06:07:08:09:0a:0b:0c:0d:0e:0f:10:11:12:13:14:15:16:17:18:19:1a:1b:1c:1d:1e:1f", auth_key = "0x0001020304050607080910111213141516171819202122232425262728293031" }
in = { spi = "0x2001", enc_key = "0x101112131415161718191a1b1c1d1e1f101112131415161718191a1b1c1d1e1f", auth_key = "0x0001020304050607080910111213141516171819202122232425262728293031" }
TOML

# ---- build and run ----------------------------------------------------------
targets=$(cargo fuzz list --fuzz-dir "$fuzz_dir")
echo "== building fuzz targets: $(echo $targets)"
cargo fuzz build "${opts[@]}"

failed=()
for t in $targets; do
    echo "== fuzzing $t for ${secs}s"
    # Targets without written seeds start from an empty corpus directory.
    mkdir -p "$fuzz_dir/corpus/$t"
    # The seed directory is the first corpus dir, so new inputs land there.
    # shellcheck disable=SC2086
    if ! cargo fuzz run "${opts[@]}" "$t" "$fuzz_dir/corpus/$t" -- \
        -max_total_time="$secs" -timeout=20 -print_final_stats=1 ${FUZZ_ARGS:-} </dev/null; then
        echo "!! $t FAILED (reproducer in $fuzz_dir/artifacts/$t/)" >&2
        failed+=("$t")
    fi
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "== FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "== all fuzz targets ran ${secs}s without a crash"
