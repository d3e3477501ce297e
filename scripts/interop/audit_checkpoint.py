#!/usr/bin/env python3
"""Independent verifier for Citadel audit-log checkpoints and proofs.

Written from docs/formats/audit-checkpoint.md and the C2SP / RFC 9162 texts,
not from the Rust crate: Python's standard library plus `cryptography` >= 50
(OpenSSL ML-DSA and Ed25519).

Usage:
  audit_checkpoint.py checkpoint --vkey-ed VKEY [--vkey-mldsa VKEY] [--origin O] FILE
  audit_checkpoint.py proof --vkey-ed VKEY [--vkey-mldsa VKEY] [--origin O] --entry ENTRYFILE PROOFFILE
  audit_checkpoint.py consistency [--vkey-ed VKEY [--vkey-mldsa VKEY]] [--origin O]
                                  --old OLDCKPT --new NEWCKPT PROOFFILE

The expected origin is --origin, or else the name of the verifier keys (a
Citadel log names its keys after its origin); a checkpoint naming any other
origin is refused. Without keys, --origin is required.

A VKEY is the key string itself or `@PATH` to read it from a file.

checkpoint   opens a signed checkpoint: every signature line by a given key
             must verify (Ed25519, and ML-DSA-65 pure mode with an empty
             context), each given key must have signed; lines by other keys
             are skipped. Without --vkey-mldsa only Ed25519 is required, and
             the output says so ("mode": "ed25519-only").
proof        parses a c2sp.org/tlog-proof@v1 file, opens its checkpoint as
             above, then checks the RFC 9162 section 2.1.3.2 inclusion proof
             of SHA-256(0x00 || entry bytes) against the checkpoint's root.
consistency  checks an RFC 9162 section 2.1.4.2 consistency proof (base64
             hashes, one per line) between two checkpoints of one origin.
             With --vkey-ed both checkpoints are opened as above; without
             keys their signatures are NOT checked (a bare checkpoint body is
             accepted too) and the output says so.

Prints a JSON object on success and exits 0; exits 1 with a one-line
message on stderr when verification fails (malformed data included) and 2
on a usage error (bad arguments, unreadable file, malformed key string).
"""
import argparse
import base64
import binascii
import hashlib
import json
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519, mldsa

# --- Constants (docs/formats/audit-checkpoint.md) ---------------------------

ED25519_TYPE = b"\x01"
MLDSA65_TYPE = b"\xff" + b"citadel/ml-dsa-65" + b"\n"  # 19 bytes
MLDSA65_CONTEXT = b""
ED25519_PK_LEN = 32
MLDSA65_PK_LEN = 1952
MLDSA65_SIG_LEN = 3309
SIG_PREFIX = "\u2014 "  # em dash, space
MAX_NOTE_LEN = 1_000_000
MAX_SIGNATURES = 100
TLOG_PROOF_HEADER = "c2sp.org/tlog-proof@v1"
MAX_TLOG_PROOF_LEN = 2 * MAX_NOTE_LEN
MAX_PROOF_HASHES = 64
U64_MAX = (1 << 64) - 1


class Fail(Exception):
    """Verification failure: exit 1."""


class Usage(Exception):
    """Usage error: exit 2."""


# --- Encoding helpers -------------------------------------------------------

def b64decode_canonical(s):
    """Standard base64 with padding, in its one canonical spelling."""
    try:
        data = base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError):
        return None
    if base64.b64encode(data).decode("ascii") != s:
        return None  # non-zero padding bits, missing padding, ...
    return data


def parse_decimal(s):
    """ASCII decimal, no sign, no leading zeros, at most 2^64 - 1."""
    if not s or not all("0" <= c <= "9" for c in s) or (len(s) > 1 and s[0] == "0"):
        return None
    n = int(s)
    return n if n <= U64_MAX else None


def valid_key_name(name):
    """Non-empty, no Unicode space, no `+`, no control character (Cc)."""
    return (name != "" and "+" not in name
            and not any(c.isspace() or ord(c) < 0x20 or 0x7f <= ord(c) <= 0x9f for c in name))


def sha256(data):
    return hashlib.sha256(data).digest()


# --- Keys ------------------------------------------------------------------

def key_id(name, key_type, public_key):
    """First 4 bytes of SHA-256(name || 0x0A || type || public key), big-endian."""
    d = sha256(name.encode("utf-8") + b"\n" + key_type + public_key)
    return int.from_bytes(d[:4], "big")


class Verifier:
    def __init__(self, vkey, want):
        parts = vkey.split("+", 2)
        if len(parts) != 3:
            raise Usage(f"malformed vkey: expected name+keyid+base64, got {vkey[:40]!r}")
        name, id_hex, key_b64 = parts
        if not valid_key_name(name):
            raise Usage(f"malformed vkey: invalid key name {name!r}")
        if len(id_hex) != 8 or not all(c in "0123456789abcdefABCDEF" for c in id_hex):
            raise Usage("malformed vkey: the key ID must be 8 hex digits")
        data = b64decode_canonical(key_b64)
        if data is None:
            raise Usage("malformed vkey: the key is not canonical standard base64")
        self.name = name
        if data.startswith(ED25519_TYPE):
            kind, ktype, pk_len = "ed25519", ED25519_TYPE, ED25519_PK_LEN
        elif data.startswith(MLDSA65_TYPE):
            kind, ktype, pk_len = "ml-dsa-65", MLDSA65_TYPE, MLDSA65_PK_LEN
        else:
            raise Usage("unsupported vkey type (Ed25519 0x01 and Citadel ML-DSA-65 are supported)")
        if kind != want:
            raise Usage(f"--vkey-{'ed' if want == 'ed25519' else 'mldsa'} is a {kind} key, expected {want}")
        pk = data[len(ktype):]
        if len(pk) != pk_len:
            raise Usage(f"malformed vkey: a {kind} public key is {pk_len} bytes, got {len(pk)}")
        stated = int(id_hex, 16)
        computed = key_id(name, ktype, pk)
        if stated != computed:
            raise Usage(f"vkey key ID {stated:08x} does not match the key (computed {computed:08x})")
        self.name, self.kind, self.key_id = name, kind, computed
        try:
            if kind == "ed25519":
                self._key = ed25519.Ed25519PublicKey.from_public_bytes(pk)
            else:
                self._key = mldsa.MLDSA65PublicKey.from_public_bytes(pk)
        except ValueError as e:
            raise Usage(f"unusable {kind} public key: {e}") from None

    def verify(self, text, sig):
        try:
            if self.kind == "ed25519":
                self._key.verify(sig, text)
            else:
                if len(sig) != MLDSA65_SIG_LEN:
                    return False
                self._key.verify(sig, text, MLDSA65_CONTEXT)
            return True
        except InvalidSignature:
            return False

    def label(self):
        return f"{self.name}+{self.key_id:08x}"


def load_vkey(arg, want):
    if arg is None:
        return None
    if arg.startswith("@"):
        arg = read_file(arg[1:]).decode("utf-8", "replace").rstrip("\n")
    return Verifier(arg, want)


# --- Signed notes (c2sp.org/signed-note) ------------------------------------

def parse_note(msg):
    """Returns (text bytes, [(name, key_id, sig bytes)]); syntax only."""
    if len(msg) > MAX_NOTE_LEN:
        raise Fail(f"note is {len(msg)} bytes, more than {MAX_NOTE_LEN}")
    try:
        s = msg.decode("utf-8")
    except UnicodeDecodeError:
        raise Fail("note is not valid UTF-8") from None
    if any(ord(c) < 0x20 and c != "\n" for c in s):
        raise Fail("note contains a control character other than newline")
    split = s.rfind("\n\n")
    if split < 0:
        raise Fail("note has no signature block (blank line, then signature lines)")
    text, block = s[:split + 1], s[split + 2:]
    if not block.endswith("\n"):
        raise Fail("note's signature block is empty or does not end with a newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise Fail(f"note has more than {MAX_SIGNATURES} signature lines")
    sigs = []
    for n, line in enumerate(lines, 1):
        if not line.startswith(SIG_PREFIX):
            raise Fail(f"signature line {n} does not start with an em dash and a space")
        name, sep, b64 = line[len(SIG_PREFIX):].partition(" ")
        if not sep or not valid_key_name(name):
            raise Fail(f"signature line {n}: expected a valid key name, a space and base64")
        data = b64decode_canonical(b64)
        if data is None or len(data) < 5:
            raise Fail(f"signature line {n}: not canonical base64 of a key ID and a signature")
        sigs.append((name, int.from_bytes(data[:4], "big"), data[4:]))
    return text.encode("utf-8"), sigs


def verify_note(msg, verifiers):
    """Every line by a known (name, key ID) must verify and every verifier
    must have signed; other lines are skipped. Returns (text, report)."""
    text, sigs = parse_note(msg)
    known = {(v.name, v.key_id): v for v in verifiers}
    if len(known) != len(verifiers):
        raise Usage("two keys share a key name and key ID")
    done, report = set(), []
    for name, kid, sig in sigs:
        v = known.get((name, kid))
        if v is None:
            report.append({"name": name, "key_id": f"{kid:08x}", "status": "skipped (unknown key)"})
            continue
        if not v.verify(text, sig):
            raise Fail(f"invalid {v.kind} signature by {v.label()}")
        done.add((name, kid))
        report.append({"name": name, "key_id": f"{kid:08x}", "type": v.kind, "status": "verified"})
    for v in verifiers:
        if (v.name, v.key_id) not in done:
            raise Fail(f"no {v.kind} signature by {v.label()}")
    return text, report


# --- Checkpoints (c2sp.org/tlog-checkpoint) ---------------------------------

def parse_checkpoint_body(text):
    try:
        s = text.decode("utf-8")
    except UnicodeDecodeError:
        raise Fail("checkpoint is not valid UTF-8") from None
    if any(ord(c) < 0x20 and c != "\n" for c in s):
        raise Fail("checkpoint contains a control character other than newline")
    if not s.endswith("\n"):
        raise Fail("checkpoint text does not end with a newline")
    lines = s[:-1].split("\n")
    if len(lines) < 3:
        raise Fail("checkpoint needs origin, tree size and root hash lines")
    origin, size_s, root_s, ext = lines[0], lines[1], lines[2], lines[3:]
    if not origin:
        raise Fail("checkpoint origin line is empty")
    size = parse_decimal(size_s)
    if size is None:
        raise Fail(f"checkpoint tree size {size_s!r} is not a decimal without leading zeros")
    root = b64decode_canonical(root_s)
    if root is None or len(root) != 32:
        raise Fail("checkpoint root hash is not 32 bytes of canonical standard base64")
    if any(e == "" for e in ext):
        raise Fail("checkpoint has an empty extension line")
    return {"origin": origin, "size": size, "root": root, "extensions": ext}


def mode_of(vmldsa):
    return "ed25519+ml-dsa-65" if vmldsa else "ed25519-only"


def expected_origin(a, ved, vml):
    """The origin the checkpoints must name (C2SP: a verifier checks it is
    the log it expects): --origin, or the name of the verifier keys."""
    if a.origin is not None:
        return a.origin
    names = {v.name for v in (ved, vml) if v is not None}
    if len(names) != 1:
        raise Usage("give the log's origin with --origin (the keys do not name one log)")
    return names.pop()


def open_checkpoint(msg, ved, vmldsa, origin):
    verifiers = [ved] + ([vmldsa] if vmldsa else [])
    text, report = verify_note(msg, verifiers)
    cp = parse_checkpoint_body(text)
    if origin is not None and cp["origin"] != origin:
        raise Fail(f"checkpoint origin {cp['origin']!r} is not {origin!r}")
    return cp, report


def checkpoint_json(cp, report, mode):
    out = {
        "origin": cp["origin"],
        "size": cp["size"],
        "root": base64.b64encode(cp["root"]).decode(),
        "root_hex": cp["root"].hex(),
        "extensions": cp["extensions"],
    }
    if report is not None:
        out["signatures"] = report
    out["mode"] = mode
    if mode == "ed25519-only":
        out["warning"] = ("ML-DSA-65 signature not checked (no --vkey-mldsa): "
                          "only the Ed25519 signature was required")
    elif mode == "unsigned":
        out["warning"] = "signatures NOT checked (no --vkey-ed)"
    return out


# --- RFC 6962 / RFC 9162 Merkle trees ----------------------------------------

def leaf_hash(entry):
    return sha256(b"\x00" + entry)


def node_hash(left, right):
    return sha256(b"\x01" + left + right)


EMPTY_ROOT = sha256(b"")  # RFC 6962 MTH({}); not 32 zero bytes


def root_from_inclusion(leaf, index, size, path):
    """RFC 9162 section 2.1.3.2, steps 1 to 5 (the sn == 0 check)."""
    if index >= size:
        raise Fail(f"leaf index {index} is not inside a tree of size {size}")
    fn, sn = index, size - 1
    r = leaf
    for p in path:
        if sn == 0:
            raise Fail("inclusion proof is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise Fail("inclusion proof is too short")
    return r


def verify_consistency(first, second, first_hash, second_hash, path):
    """RFC 9162 section 2.1.4.2, plus the two cases it leaves out: equal
    sizes (empty proof, equal roots) and first == 0 (empty proof, the old
    root must be SHA-256 of the empty string)."""
    if first > second:
        raise Fail(f"old tree size {first} is larger than new tree size {second}")
    if first == second or first == 0:
        if path:
            raise Fail(f"sizes {first} and {second} call for an empty proof, got {len(path)} hashes")
        if first == 0 and first_hash != EMPTY_ROOT:
            raise Fail("a tree of size 0 must have root SHA-256('')")
        if first == second and first_hash != second_hash:
            raise Fail("equal tree sizes with different roots")
        return
    # 1.
    if not path:
        raise Fail("empty consistency proof")
    # 2.
    if first & (first - 1) == 0:
        path = [first_hash] + list(path)
    # 3.
    fn, sn = first - 1, second - 1
    # 4.
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # 5.
    fr = sr = path[0]
    # 6.
    for c in path[1:]:
        if sn == 0:
            raise Fail("consistency proof is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    # 7.
    if sn != 0:
        raise Fail("consistency proof is too short")
    if fr != first_hash:
        raise Fail("consistency proof does not lead to the old root")
    if sr != second_hash:
        raise Fail("consistency proof does not lead to the new root")


# --- c2sp.org/tlog-proof@v1 -------------------------------------------------

def parse_tlog_proof(data):
    if len(data) > MAX_TLOG_PROOF_LEN:
        raise Fail("tlog-proof is too large")
    try:
        s = data.decode("utf-8")
    except UnicodeDecodeError:
        raise Fail("tlog-proof is not valid UTF-8") from None
    pos = 0

    def next_line():
        nonlocal pos
        end = s.find("\n", pos)
        if end < 0:
            raise Fail("tlog-proof is truncated")
        line = s[pos:end]
        pos = end + 1
        return line

    if next_line() != TLOG_PROOF_HEADER:
        raise Fail(f"missing the {TLOG_PROOF_HEADER} header line")
    line = next_line()
    extra = None
    if line.startswith("extra "):
        extra = b64decode_canonical(line[len("extra "):])
        if extra is None:
            raise Fail("tlog-proof extra data is not canonical base64")
        line = next_line()
    if not line.startswith("index "):
        raise Fail("tlog-proof has no index line")
    index = parse_decimal(line[len("index "):])
    if index is None:
        raise Fail("tlog-proof index is not a decimal without leading zeros")
    hashes = []
    while True:
        line = next_line()
        if line == "":
            break
        if len(hashes) == MAX_PROOF_HASHES:
            raise Fail(f"tlog-proof has more than {MAX_PROOF_HASHES} hashes")
        h = b64decode_canonical(line)
        if h is None or len(h) != 32:
            raise Fail("tlog-proof hash line is not 32 bytes of canonical base64")
        hashes.append(h)
    return extra, index, hashes, data[len(s[:pos].encode("utf-8")):]


def parse_hash_list(data):
    try:
        s = data.decode("ascii")
    except UnicodeDecodeError:
        raise Fail("proof file is not ASCII") from None
    if s and not s.endswith("\n"):
        s += "\n"
    hashes = []
    for n, line in enumerate(s.split("\n")[:-1], 1):
        h = b64decode_canonical(line)
        if h is None or len(h) != 32:
            raise Fail(f"proof line {n} is not 32 bytes of canonical base64")
        hashes.append(h)
    return hashes


# --- Commands ---------------------------------------------------------------

def read_file(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise Usage(f"cannot read {path}: {e.strerror}") from None


def warn_mode(mode):
    if mode == "ed25519-only":
        print("warning: no --vkey-mldsa: only the Ed25519 signature was required",
              file=sys.stderr)


def cmd_checkpoint(a):
    ved, vml = load_vkey(a.vkey_ed, "ed25519"), load_vkey(a.vkey_mldsa, "ml-dsa-65")
    cp, report = open_checkpoint(read_file(a.file), ved, vml, expected_origin(a, ved, vml))
    warn_mode(mode_of(vml))
    return checkpoint_json(cp, report, mode_of(vml))


def cmd_proof(a):
    ved, vml = load_vkey(a.vkey_ed, "ed25519"), load_vkey(a.vkey_mldsa, "ml-dsa-65")
    entry = read_file(a.entry)
    extra, index, hashes, note = parse_tlog_proof(read_file(a.prooffile))
    cp, report = open_checkpoint(note, ved, vml, expected_origin(a, ved, vml))
    leaf = leaf_hash(entry)
    if root_from_inclusion(leaf, index, cp["size"], hashes) != cp["root"]:
        raise Fail(f"inclusion proof of leaf {index} does not lead to the checkpoint's root")
    warn_mode(mode_of(vml))
    out = checkpoint_json(cp, report, mode_of(vml))
    out["inclusion"] = {
        "index": index,
        "leaf_hash": leaf.hex(),
        "proof_hashes": len(hashes),
        "extra": None if extra is None else base64.b64encode(extra).decode(),
        "verified": True,
    }
    return out


def cmd_consistency(a):
    if a.vkey_mldsa and not a.vkey_ed:
        raise Usage("--vkey-mldsa needs --vkey-ed")
    ved, vml = load_vkey(a.vkey_ed, "ed25519"), load_vkey(a.vkey_mldsa, "ml-dsa-65")
    if not ved and a.origin is None:
        raise Usage("without --vkey-ed, give the log's origin with --origin")
    origin = expected_origin(a, ved, vml)
    cps = []
    for path in (a.old, a.new):
        data = read_file(path)
        if ved:
            cp, report = open_checkpoint(data, ved, vml, origin)
        else:
            # Signatures not checked: a signed note or a bare body.
            text = parse_note(data)[0] if b"\n\n" in data else data
            cp, report = parse_checkpoint_body(text), None
            if cp["origin"] != origin:
                raise Fail(f"checkpoint origin {cp['origin']!r} is not {origin!r}")
        cps.append((cp, report))
    (old, rold), (new, rnew) = cps
    if old["origin"] != new["origin"]:
        raise Fail(f"the checkpoints are of different logs: {old['origin']!r}, {new['origin']!r}")
    path = parse_hash_list(read_file(a.prooffile))
    verify_consistency(old["size"], new["size"], old["root"], new["root"], path)
    mode = mode_of(vml) if ved else "unsigned"
    warn_mode(mode)
    if mode == "unsigned":
        print("warning: no --vkey-ed: checkpoint signatures were NOT checked", file=sys.stderr)
    return {
        "origin": old["origin"],
        "old": checkpoint_json(old, rold, mode),
        "new": checkpoint_json(new, rnew, mode),
        "consistency": {"proof_hashes": len(path), "verified": True},
        "mode": mode,
    }


class Parser(argparse.ArgumentParser):
    def error(self, message):
        self.print_usage(sys.stderr)
        print(f"usage error: {message}", file=sys.stderr)
        sys.exit(2)


def main(argv):
    p = Parser(prog="audit_checkpoint.py",
               description="Verify Citadel audit checkpoints, inclusion and consistency proofs.")
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=Parser)

    def keys(sp, required):
        sp.add_argument("--vkey-ed", required=required, metavar="VKEY",
                        help="Ed25519 verifier key string, or @FILE")
        sp.add_argument("--vkey-mldsa", metavar="VKEY",
                        help="ML-DSA-65 verifier key string, or @FILE (omit: Ed25519 only)")
        sp.add_argument("--origin", help="the log expected: checkpoints must name this origin "
                        "(default: the name of the verifier keys)")

    c = sub.add_parser("checkpoint", help="verify a signed checkpoint")
    keys(c, True)
    c.add_argument("file")
    c.set_defaults(run=cmd_checkpoint)

    pr = sub.add_parser("proof", help="verify a c2sp.org/tlog-proof@v1 inclusion proof")
    keys(pr, True)
    pr.add_argument("--entry", required=True, help="file holding the entry's bytes, exactly")
    pr.add_argument("prooffile")
    pr.set_defaults(run=cmd_proof)

    co = sub.add_parser("consistency", help="verify a consistency proof between two checkpoints")
    keys(co, False)
    co.add_argument("--old", required=True)
    co.add_argument("--new", required=True)
    co.add_argument("prooffile", help="base64 hashes, one per line")
    co.set_defaults(run=cmd_consistency)

    a = p.parse_args(argv)
    try:
        out = a.run(a)
    except Usage as e:
        print(f"usage error: {e}", file=sys.stderr)
        return 2
    except Fail as e:
        print(f"FAIL: {e}", file=sys.stderr)
        return 1
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
