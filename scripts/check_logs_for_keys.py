#!/usr/bin/env python3
"""Fail if any key ikeda used appears in any of its logs.

    scripts/check_logs_for_keys.py ARCHIVE
    scripts/check_logs_for_keys.py --self-test   # the check catches what it claims to

ARCHIVE is what `ikeda lab down` left with IKEDA_LAB_ARCHIVE set (one
directory per lab): the gateway logs (gw1.log, gw2.log), the gateway
configs (*.toml) and the exported keys (keys-<gw>/ikeda-keys.jsonl).

Secrets collected:
  - every key field of every ikeda-keys.jsonl line (sk_d, sk_ai, sk_ar,
    sk_ei, sk_er, sk_pi, sk_pr, enc_key, auth_key, and any other field
    named like a key or secret; SPIs, addresses and the like are public);
  - every `psk` in the configs, and the manual keys (enc_key, auth_key) of
    manually keyed labs.

Looked for in every log (ANSI colours removed), as:
  - hex, any case, bare or with ':' or ' ' between the bytes, and any 8-byte piece
    of it (a key cut short is still a leak);
  - base64 (standard and URL-safe) of the raw bytes, at any alignment;
  - the bytes as Rust's Debug prints them: [170, 187, ...];
  - the PSK as written (and its bytes in hex and base64).

A check that cannot fail is worthless: no key log, no key, no log file or
no log line is a failure too. Prints what it checked.
"""

import base64
import json
import os
import re
import sys
import tomllib

KEY_FIELDS = {"sk_d", "sk_ai", "sk_ar", "sk_ei", "sk_er", "sk_pi", "sk_pr", "enc_key", "auth_key",
              "skeyid", "skeyid_d", "skeyid_a", "skeyid_e"}
KEYLIKE = re.compile(r"(^sk_|key|secret|skeyseed|g_ir|shared)", re.I)
PUBLIC = re.compile(r"(spi|addr|src|dst|local|remote|conn|role|direction|time|algorithm|suite|encap|type|esn)", re.I)
HEX = re.compile(r"^(0x)?([0-9a-fA-F]{2})+$")
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
FRAGMENT = 8  # bytes: any 8-byte piece of a key in a log is a leak
# What a key can look like in a log line (lower-cased for hex):
HEX_RUN = re.compile(r"[0-9a-f]{16,}|(?:[0-9a-f]{2}[: ]){7,}[0-9a-f]{2}")  # bare, aa:bb, aa bb
DEC_RUN = re.compile(r"\b\d{1,3}(?:, ?\d{1,3}){7,}\b")  # Rust's Debug of bytes: [170, 187, ...]
B64_RUN = re.compile(r"[A-Za-z0-9+/_-]{16,}")
B64_PREFIX = 16


def unhex(s):
    s = s[2:] if s.lower().startswith("0x") else s
    return bytes.fromhex(s)


def b64_forms(raw):
    """Base64 text that appears wherever `raw` is base64-encoded, at any
    offset in the encoded data: for each alignment, the encoding of the
    whole 3-byte groups that lie inside the key (standard and URL-safe)."""
    out = set()
    for skip in range(3):
        part = raw[skip:]
        part = part[: len(part) - len(part) % 3]
        if len(part) >= 12:  # >= B64_PREFIX characters
            out.add(base64.b64encode(part).decode())
            out.add(base64.urlsafe_b64encode(part).decode())
    return out


class Secrets:
    def __init__(self):
        self.fragments = {}  # 16 lower-case hex chars -> secret name
        self.b64 = {}  # first B64_PREFIX characters -> [(form, name)]
        self.literal = []  # (text, name): PSKs that are not hex

    def add_bytes(self, name, raw):
        h = raw.hex()
        for i in range(0, len(h) - 2 * FRAGMENT + 1, 2):
            self.fragments.setdefault(h[i : i + 2 * FRAGMENT], name)
        for form in b64_forms(raw):
            self.b64.setdefault(form[:B64_PREFIX], []).append((form, name))

    def hits(self, line):
        """Names of the secrets that appear in one log line."""
        found = set()
        low = line.lower()
        runs = [r.replace(":", "").replace(" ", "") for r in HEX_RUN.findall(low)]
        for r in DEC_RUN.findall(line):
            nums = [int(x) for x in re.split(r", ?", r)]
            if all(n < 256 for n in nums):
                runs.append(bytes(nums).hex())
        for r in runs:
            for i in range(0, len(r) - 2 * FRAGMENT + 1):
                name = self.fragments.get(r[i : i + 2 * FRAGMENT])
                if name:
                    found.add(name)
        for r in B64_RUN.findall(line):
            for i in range(0, len(r) - B64_PREFIX + 1):
                for form, name in self.b64.get(r[i : i + B64_PREFIX], ()):
                    if form in r:
                        found.add(name)
        for text, name in self.literal:
            if text in line:
                found.add(name)
        return found


SALVAGE = re.compile(r'^\s*(psk|enc_key|auth_key)\s*=\s*"([^"\n]*)"?\s*$')


def salvage_config(text):
    """The secrets of a config TOML cannot parse, line by line: every
    `psk`, `enc_key` and `auth_key` string, closed or not, in the shape
    `check` reads."""
    conns, manual = [], {}
    for n, line in enumerate(text.splitlines(), 1):
        m = SALVAGE.match(line)
        if not m:
            continue
        field, value = m.groups()
        if field == "psk":
            conns.append({"psk": value})
        else:
            manual[f"line {n}"] = {field: value}
    return {"conn": conns + [{"manual": manual}]}


def check(root):
    """(summary, problems, leaks) for one archive."""
    key_logs, logs, configs = [], [], []
    for d, _, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            if f == "ikeda-keys.jsonl":
                key_logs.append(p)
            elif f.endswith(".log"):
                logs.append(p)
            elif f.endswith(".toml"):
                configs.append(p)

    # secret name -> raw bytes; psks as text.
    keys = {}
    psks = {}
    fields_seen = set()
    logged_keys = 0
    for p in key_logs:
        with open(p) as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                obj = json.loads(line)
                for k, v in obj.items():
                    if not isinstance(v, str) or not HEX.match(v):
                        continue
                    if k in KEY_FIELDS or (KEYLIKE.search(k) and not PUBLIC.search(k)):
                        fields_seen.add(k)
                        keys[f"{os.path.relpath(p, root)}:{n} {obj.get('type', '?')} {k}"] = unhex(v)
                        logged_keys += 1
    for p in configs:
        with open(p, "rb") as fh:
            raw = fh.read()
        try:
            cfg = tomllib.loads(raw.decode("utf-8", "replace"))
        except tomllib.TOMLDecodeError:
            # A test may leave a config it broke on purpose (a reload of a
            # bad file); its secrets are still secrets.
            cfg = salvage_config(raw.decode("utf-8", "replace"))
        for i, conn in enumerate(cfg.get("conn", [])):
            where = f"{os.path.relpath(p, root)} conn[{i}]"
            if isinstance(conn.get("psk"), str):
                psks[f"{where} psk"] = conn["psk"]
            for direction, sa in (conn.get("manual") or {}).items():
                for k in ("enc_key", "auth_key"):
                    v = sa.get(k) if isinstance(sa, dict) else None
                    if isinstance(v, str) and HEX.match(v):
                        keys[f"{where} manual.{direction}.{k}"] = unhex(v)

    secrets = Secrets()
    for name, raw in keys.items():
        secrets.add_bytes(name, raw)
    for name, psk in psks.items():
        if HEX.match(psk) and not psk.lower().startswith("0x"):
            secrets.add_bytes(name, unhex(psk))  # as written: hex
        elif len(psk) >= FRAGMENT:
            secrets.literal.append((psk, name))
        secrets.add_bytes(f"{name} (its characters' bytes)", psk.encode())

    lines_total = 0
    leaks = []
    for p in logs:
        with open(p, "rb") as fh:
            text = fh.read().decode("utf-8", "replace")
        for n, line in enumerate(text.splitlines(), 1):
            lines_total += 1
            plain = ANSI.sub("", line)
            for name in sorted(secrets.hits(plain)):
                leaks.append(f"{os.path.relpath(p, root)}:{n}: {name}: {plain.strip()[:200]}")

    summary = (
        f"{len(keys)} keys ({logged_keys} from {len(key_logs)} key logs, fields "
        f"{', '.join(sorted(fields_seen)) or '-'}; {len(keys) - logged_keys} manual) "
        f"and {len(psks)} PSKs ({len(configs)} configs) checked against {len(logs)} log files, {lines_total} lines "
        f"in {root}"
    )
    problems = []
    if not key_logs:
        problems.append("no ikeda-keys.jsonl in the archive: key export was off or nothing was archived")
    if not logged_keys:
        problems.append("no key found in the key logs")
    if not psks:
        problems.append("no psk found in the archived configs")
    if not logs:
        problems.append("no gateway log in the archive")
    if lines_total == 0:
        problems.append("the archived logs are empty")
    return summary, problems, leaks


def self_test():
    """The check must catch every form it claims to, and only those."""
    import tempfile

    with tempfile.TemporaryDirectory() as root:
        lab = os.path.join(root, "lab-1")
        os.makedirs(os.path.join(lab, "keys-gw1"))
        ks = {f: os.urandom(32 if f in ("sk_d", "sk_pi") else 20) for f in ("sk_d", "sk_ei", "sk_er", "sk_pi")}
        esp = os.urandom(20)
        psk = os.urandom(24).hex()
        with open(os.path.join(lab, "keys-gw1", "ikeda-keys.jsonl"), "w") as f:
            ike = {k: v.hex() for k, v in ks.items()} | {"type": "ikev2", "sk_ai": None, "spi_i": "0011223344556677"}
            f.write(json.dumps(ike) + "\n")
            f.write(json.dumps({"type": "esp", "enc_key": esp.hex(), "auth_key": None, "spi": "c0ffee01"}) + "\n")
        with open(os.path.join(lab, "gw1.toml"), "w") as f:
            f.write(f'[[conn]]\nname = "s2s"\npsk = "{psk}"\n')
        clean = "2026-01-01T00:00:00Z  INFO ike: s2s: IKE_SA established 0011223344556677_i (initiator)\n"
        leaks = {
            "hex": ks["sk_ei"].hex(),
            "HEX": ks["sk_er"].hex().upper(),
            "aa:bb": ":".join(f"{b:02x}" for b in esp),
            "AA BB": " ".join(f"{b:02X}" for b in ks["sk_pi"]),
            "8-byte piece": ks["sk_d"][5:13].hex(),
            "base64": base64.b64encode(ks["sk_ei"]).decode(),
            "base64 at offset 1": base64.b64encode(b"x" + esp).decode(),
            "url-safe base64 at offset 2": base64.urlsafe_b64encode(b"xy" + ks["sk_d"]).decode(),
            "Debug bytes": str(list(esp)),
            "psk": f'psk = "{psk}"',
            "PSK": psk.upper(),
        }
        log = os.path.join(lab, "gw1.log")
        failed = []
        for what, leak in [("clean", None)] + list(leaks.items()):
            with open(log, "w") as f:
                f.write(clean + (f"2026-01-01T00:00:01Z DEBUG ike: \x1b[3mx\x1b[0m={leak}\n" if leak else ""))
            _, problems, found = check(root)
            if problems or bool(found) != (leak is not None):
                failed.append(f"{what}: problems {problems}, leaks {found}")
        # A config a test broke on purpose (unterminated string): its PSK
        # is still a secret.
        broken_psk = "Br0kenConfigPsk9"
        with open(os.path.join(lab, "gw2.toml"), "w") as f:
            f.write(f'[[conn]]\nname = "s2s"\npsk = "{broken_psk}\n')
        with open(log, "w") as f:
            f.write(clean + f"2026-01-01T00:00:01Z DEBUG ike: x={broken_psk}\n")
        if not check(root)[2]:
            failed.append("the PSK of an unparseable config is not looked for")
        os.remove(os.path.join(lab, "gw2.toml"))
        os.remove(os.path.join(lab, "keys-gw1", "ikeda-keys.jsonl"))
        if not check(root)[1]:
            failed.append("an archive without a key log passes")
        with open(log, "w"):
            pass
        if not any("empty" in p for p in check(root)[1]):
            failed.append("empty logs pass")
    if failed:
        sys.exit("check_logs_for_keys --self-test: FAIL:\n  " + "\n  ".join(failed))
    print(f"check_logs_for_keys --self-test: {len(leaks)} leak forms caught, a clean log passes")


def main():
    if sys.argv[1:] == ["--self-test"]:
        return self_test()
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    root = sys.argv[1]
    if not os.path.isdir(root):
        sys.exit(f"check_logs_for_keys: {root} is not a directory")
    summary, problems, leaks = check(root)
    print(f"check_logs_for_keys: {summary}")
    for p in problems:
        print(f"check_logs_for_keys: FAIL: {p}", file=sys.stderr)
    if leaks:
        print(f"check_logs_for_keys: FAIL: {len(leaks)} key leaks in logs:", file=sys.stderr)
        for l in leaks[:50]:
            print(f"  {l}", file=sys.stderr)
    if problems or leaks:
        sys.exit(1)
    print("check_logs_for_keys: no key in any log")


if __name__ == "__main__":
    main()
