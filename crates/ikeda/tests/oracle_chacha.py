#!/usr/bin/env python3
"""Independent ESP oracle for crates/ikeda/tests/oracle.rs.

tshark 4.0 cannot decrypt ChaCha20-Poly1305 ESP (RFC 7634) and does not
handle extended sequence numbers, so for those the test decrypts the
capture here, with the `cryptography` package and nothing from ikeda.
The other suites (AES-GCM; AES-CBC or 3DES-CBC with HMAC-SHA1, -SHA256 or
-MD5) are implemented too, so the test can check this oracle against
tshark on the same capture.

Usage: oracle_chacha.py CAPTURE.pcap SAS.json

CAPTURE is a libpcap file (not pcapng) with Ethernet link type, as
`tshark -F pcap -w` writes it. SAS.json is a list of SAs:
  {"spi": 268435713, "src": "192.168.50.11", "dst": "192.168.50.12",
   "alg": "chacha20poly1305", "enc_key": "hex", "auth_key": "hex or empty",
   "esn": false}
For AEAD suites enc_key ends with the 4-byte salt (RFC 4106 / RFC 7634).
With ESN the high 32 bits of the sequence number are taken as 0 (a fresh
SA never gets near 2^32 packets in the test).

Prints one JSON object per ESP packet on stdout:
  {"frame": n, "spi": .., "seq": .., "outer_src": .., "outer_dst": ..,
   "encap": "esp"|"udp", "ok": true, "next_header": 4|41,
   "inner_src": .., "inner_dst": .., "inner_proto": .., "icmp_type": ..}
or with "ok": false and "error": "why" (no SA, ICV mismatch, bad padding,
malformed inner packet). Exit status 0 unless the capture cannot be read.
"""
import hashlib
import hmac
import ipaddress
import json
import struct
import sys

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

try:  # cryptography >= 43 keeps 3DES among the "decrepit" algorithms
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
except ImportError:
    TripleDES = algorithms.TripleDES

# alg -> (kind, enc key length without salt, iv length, icv length, digest);
# for CBC the iv length is the block size: 16 for AES, 8 for 3DES.
SUITES = {
    "aes128gcm16": ("aead", 16, 8, 16, AESGCM),
    "aes256gcm16": ("aead", 32, 8, 16, AESGCM),
    "chacha20poly1305": ("aead", 32, 8, 16, ChaCha20Poly1305),
    "aes128-sha1": ("cbc", 16, 16, 12, hashlib.sha1),
    "aes256-sha1": ("cbc", 32, 16, 12, hashlib.sha1),
    "aes128-sha256": ("cbc", 16, 16, 16, hashlib.sha256),
    "aes256-sha256": ("cbc", 32, 16, 16, hashlib.sha256),
    "aes128-md5": ("cbc", 16, 16, 12, hashlib.md5),
    "aes256-md5": ("cbc", 32, 16, 12, hashlib.md5),
    "3des-md5": ("cbc", 24, 8, 12, hashlib.md5),
    "3des-sha1": ("cbc", 24, 8, 12, hashlib.sha1),
    "3des-sha256": ("cbc", 24, 8, 16, hashlib.sha256),
    # RFC 4868: HMAC-SHA-384-192 and HMAC-SHA-512-256, half the hash kept.
    "aes128-sha384": ("cbc", 16, 16, 24, hashlib.sha384),
    "aes256-sha384": ("cbc", 32, 16, 24, hashlib.sha384),
    "aes128-sha512": ("cbc", 16, 16, 32, hashlib.sha512),
    "aes256-sha512": ("cbc", 32, 16, 32, hashlib.sha512),
    "3des-sha384": ("cbc", 24, 8, 24, hashlib.sha384),
    "3des-sha512": ("cbc", 24, 8, 32, hashlib.sha512),
}


def read_pcap(path):
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 24:
        raise ValueError("%s: too short for a pcap file" % path)
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        e = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = ">"
    else:
        raise ValueError("%s: not a libpcap file (magic %s); capture with -F pcap" % (path, magic.hex()))
    linktype = struct.unpack(e + "I", data[20:24])[0]
    if linktype != 1:
        raise ValueError("%s: link type %d, expected 1 (Ethernet)" % (path, linktype))
    off, n = 24, 0
    while off + 16 <= len(data):
        _, _, incl, _ = struct.unpack(e + "IIII", data[off:off + 16])
        off += 16
        n += 1
        yield n, data[off:off + incl]
        off += incl


def outer_esp(frame):
    """(outer src, outer dst, encap, ESP bytes) or None if not ESP."""
    if len(frame) < 14:
        return None
    etype = struct.unpack("!H", frame[12:14])[0]
    p = frame[14:]
    if etype == 0x8100 and len(frame) >= 18:  # one VLAN tag
        etype = struct.unpack("!H", frame[16:18])[0]
        p = frame[18:]
    if etype == 0x0800 and len(p) >= 20 and p[0] >> 4 == 4:
        ihl = (p[0] & 15) * 4
        total = struct.unpack("!H", p[2:4])[0]
        proto = p[9]
        src, dst = str(ipaddress.IPv4Address(p[12:16])), str(ipaddress.IPv4Address(p[16:20]))
        body = p[ihl:total]
    elif etype == 0x86DD and len(p) >= 40 and p[0] >> 4 == 6:
        plen = struct.unpack("!H", p[4:6])[0]
        proto = p[6]
        src, dst = str(ipaddress.IPv6Address(p[8:24])), str(ipaddress.IPv6Address(p[24:40]))
        body = p[40:40 + plen]
    else:
        return None
    if proto == 50:
        return src, dst, "esp", body
    if proto == 17 and len(body) >= 8:
        sport, dport = struct.unpack("!HH", body[:4])
        payload = body[8:]
        if 4500 not in (sport, dport):
            return None
        if len(payload) == 1 and payload[0] == 0xFF:  # NAT-keepalive
            return None
        if len(payload) >= 4 and payload[:4] == b"\0\0\0\0":  # non-ESP marker (IKE)
            return None
        return src, dst, "udp", payload
    return None


def inner_info(next_header, pkt):
    """Parse the decrypted inner packet; raise ValueError if malformed."""
    if next_header == 4:
        if len(pkt) < 20 or pkt[0] >> 4 != 4:
            raise ValueError("next header 4 but inner packet is not IPv4")
        ihl = (pkt[0] & 15) * 4
        total = struct.unpack("!H", pkt[2:4])[0]
        if total != len(pkt):
            raise ValueError("inner IPv4 total length %d != decrypted length %d" % (total, len(pkt)))
        s = sum(struct.unpack("!%dH" % (ihl // 2), pkt[:ihl]))
        while s >> 16:
            s = (s & 0xFFFF) + (s >> 16)
        if s != 0xFFFF:
            raise ValueError("inner IPv4 header checksum is wrong")
        proto = pkt[9]
        l4 = pkt[ihl:]
        return dict(inner_src=str(ipaddress.IPv4Address(pkt[12:16])),
                    inner_dst=str(ipaddress.IPv4Address(pkt[16:20])),
                    inner_proto=proto,
                    icmp_type=l4[0] if proto == 1 and l4 else None)
    if next_header == 41:
        if len(pkt) < 40 or pkt[0] >> 4 != 6:
            raise ValueError("next header 41 but inner packet is not IPv6")
        plen = struct.unpack("!H", pkt[4:6])[0]
        if plen + 40 != len(pkt):
            raise ValueError("inner IPv6 payload length %d + 40 != decrypted length %d" % (plen, len(pkt)))
        proto = pkt[6]
        l4 = pkt[40:]
        return dict(inner_src=str(ipaddress.IPv6Address(pkt[8:24])),
                    inner_dst=str(ipaddress.IPv6Address(pkt[24:40])),
                    inner_proto=proto,
                    icmp_type=l4[0] if proto == 58 and l4 else None)
    raise ValueError("unexpected next header %d in tunnel mode" % next_header)


def decrypt(sa, esp):
    """Return (plaintext incl. trailer) or raise ValueError."""
    kind, klen, ivlen, icvlen, prim = SUITES[sa["alg"]]
    key = bytes.fromhex(sa["enc_key"])
    hdr, seq_hi = esp[:8], b"\0\0\0\0"
    if len(esp) < 8 + ivlen + icvlen:
        raise ValueError("ESP packet too short (%d bytes)" % len(esp))
    iv = esp[8:8 + ivlen]
    ct = esp[8 + ivlen:len(esp) - icvlen]
    icv = esp[len(esp) - icvlen:]
    if kind == "aead":
        if len(key) != klen + 4:
            raise ValueError("enc_key is %d bytes, expected %d (key + 4-byte salt)" % (len(key), klen + 4))
        k, salt = key[:klen], key[klen:]
        # RFC 4106 section 5 / RFC 7634 section 2.1: AAD is SPI || SN, or
        # SPI || SN high || SN low with ESN.
        aad = hdr if not sa["esn"] else hdr[:4] + seq_hi + hdr[4:8]
        try:
            pt = prim(k).decrypt(salt + iv, ct + icv, aad)
        except InvalidTag:
            raise ValueError("ICV mismatch (AEAD tag does not verify)")
        align = 4
    else:
        if len(key) != klen:
            raise ValueError("enc_key is %d bytes, expected %d" % (len(key), klen))
        akey = bytes.fromhex(sa["auth_key"])
        # RFC 2403 section 3, RFC 2404 section 3, RFC 4868 section 2.1.1:
        # the key is as long as the hash's output.
        if len(akey) != prim().digest_size:
            raise ValueError("auth_key is %d bytes, expected %d" % (len(akey), prim().digest_size))
        # RFC 4303 section 3.3.2.1: with ESN the high-order bits are
        # appended (not sent) to the ICV input.
        mac_in = esp[:len(esp) - icvlen] + (seq_hi if sa["esn"] else b"")
        want = hmac.new(akey, mac_in, prim).digest()[:icvlen]
        if not hmac.compare_digest(want, icv):
            raise ValueError("ICV mismatch (HMAC does not verify)")
        # RFC 3602 / RFC 2451: the IV is one block.
        align = ivlen
        if len(ct) % align:
            raise ValueError("CBC ciphertext length %d is not a multiple of %d" % (len(ct), align))
        cipher = TripleDES(key) if sa["alg"].startswith("3des") else algorithms.AES(key)
        d = Cipher(cipher, modes.CBC(iv)).decryptor()
        pt = d.update(ct) + d.finalize()
    if len(pt) % 4 or len(pt) % align:
        raise ValueError("plaintext length %d not aligned to %d" % (len(pt), align))
    return pt


def process(sas, n, frame):
    o = outer_esp(frame)
    if o is None:
        return None
    src, dst, encap, esp = o
    r = dict(frame=n, outer_src=src, outer_dst=dst, encap=encap, ok=False)
    if len(esp) < 8:
        r["error"] = "ESP header truncated"
        return r
    spi, seq = struct.unpack("!II", esp[:8])
    r.update(spi=spi, seq=seq)
    sa = next((s for s in sas if s["spi"] == spi and s["src"] == src and s["dst"] == dst), None)
    if sa is None:
        r["error"] = "no SA for spi %#010x %s -> %s" % (spi, src, dst)
        return r
    try:
        pt = decrypt(sa, esp)
        if len(pt) < 2:
            raise ValueError("plaintext too short for the ESP trailer")
        padlen, nh = pt[-2], pt[-1]
        if padlen + 2 > len(pt):
            raise ValueError("pad length %d exceeds plaintext" % padlen)
        pad = pt[len(pt) - 2 - padlen:len(pt) - 2]
        # RFC 4303 section 2.4: default padding is 1, 2, 3, ...
        if pad != bytes(range(1, padlen + 1)):
            raise ValueError("padding is not 1,2,3,...: %s" % pad.hex())
        r.update(inner_info(nh, pt[:len(pt) - 2 - padlen]))
        r["next_header"] = nh
        r["pad_len"] = padlen
        r["ok"] = True
    except ValueError as e:
        r["error"] = str(e)
    return r


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    with open(sys.argv[2]) as f:
        sas = json.load(f)
    for s in sas:
        if s["alg"] not in SUITES:
            print("unknown alg %r" % s["alg"], file=sys.stderr)
            return 2
        s["src"] = str(ipaddress.ip_address(s["src"]))
        s["dst"] = str(ipaddress.ip_address(s["dst"]))
    try:
        for n, frame in read_pcap(sys.argv[1]):
            r = process(sas, n, frame)
            if r is not None:
                print(json.dumps(r), flush=True)
    except (OSError, ValueError) as e:
        print("oracle: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
