#!/usr/bin/env python3
"""Interoperability of Citadel's keys, signatures and KEM ciphertexts with
Python's `cryptography` (>= 50, which ships OpenSSL with ML-KEM and ML-DSA).

Usage: python_interop.py PATH/TO/citadel

Every check runs in both directions where the peer supports it:
keys written by citadel load in cryptography and keys written by
cryptography load in citadel; signatures made by one verify with the other;
ML-KEM ciphertexts encapsulated by one decapsulate with the other.
Exits non-zero on the first failure.
"""
import json
import os
import subprocess
import sys
import tempfile

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, mldsa, mlkem

CITADEL = os.path.abspath(sys.argv[1])
WORK = tempfile.mkdtemp(prefix="citadel-interop-")
PASS = b"interop passphrase"
checks = 0


def run(*args, ok=True):
    p = subprocess.run([CITADEL, *args], cwd=WORK, capture_output=True)
    if ok and p.returncode != 0:
        sys.exit(f"FAIL: citadel {' '.join(args)} exited {p.returncode}: {p.stderr.decode()}")
    return p


def path(name):
    return os.path.join(WORK, name)


def check(cond, what):
    global checks
    if not cond:
        sys.exit(f"FAIL: {what}")
    checks += 1
    print(f"ok  {what}")


def load_priv(name, password=None):
    with open(path(name), "rb") as f:
        return serialization.load_pem_private_key(f.read(), password=password)


def load_pub(name):
    with open(path(name), "rb") as f:
        return serialization.load_pem_public_key(f.read())


def write_priv(key, name, enc=serialization.NoEncryption()):
    with open(path(name), "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc))


def write_pub(key, name):
    with open(path(name), "wb") as f:
        f.write(key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))


with open(path("msg.txt"), "wb") as f:
    f.write(b"interoperability test message\n")
MSG = open(path("msg.txt"), "rb").read()
CTX = b"citadel-interop"
# The file signing purpose's context (citadel_crypto::purpose::Purpose::FILE).
FILE_CTX = b"citadel-file-v1"

SIG_ALGS = {
    "ml-dsa-44": mldsa.MLDSA44PrivateKey,
    "ml-dsa-65": mldsa.MLDSA65PrivateKey,
    "ml-dsa-87": mldsa.MLDSA87PrivateKey,
}

# --- ML-DSA: citadel -> cryptography ---
# cryptography 50 reads and writes only the seed form of ML-DSA/ML-KEM
# private keys (its parser rejects the expandedKey and both forms), so only
# the seed form is exchanged here; citadel's own tests cover the other two.
for alg, cls in SIG_ALGS.items():
    for form in ("seed",):
        name = f"c-{alg}-{form}"
        run("key", "gen", "--alg", alg, "--output", name, "--form", form)
        priv = load_priv(name + ".key")
        pub = load_pub(name + ".pub")
        check(isinstance(priv, cls), f"{alg} {form}-form PKCS#8 from citadel loads in cryptography")
        check(priv.public_key() == pub, f"{alg} {form}-form: public key derived by cryptography equals citadel's SPKI")
    name = f"c-{alg}-seed"
    run("sign", "--key", name + ".key", "--context", CTX.decode(), "--output", f"{alg}.sig", "msg.txt")
    sig = open(path(f"{alg}.sig"), "rb").read()
    # A file signature is made for the file signing purpose: context
    # citadel-file-v1/EXTRA (docs/formats/artifact-manifest.md).
    load_pub(name + ".pub").verify(sig, MSG, FILE_CTX + b"/" + CTX)
    check(True, f"{alg} signature by citadel (with context) verifies in cryptography under citadel-file-v1/CTX")
    for other in (b"other", CTX, b""):
        try:
            load_pub(name + ".pub").verify(sig, MSG, other)
            check(False, f"{alg}: context {other!r} must fail in cryptography")
        except Exception:
            check(True, f"{alg}: cryptography rejects citadel's signature under context {other!r}")

    # --- ML-DSA: cryptography -> citadel ---
    key = cls.generate()
    write_priv(key, f"p-{alg}.key")
    write_pub(key.public_key(), f"p-{alg}.pub")
    with open(path(f"p-{alg}.sig"), "wb") as f:
        f.write(key.sign(MSG, FILE_CTX + b"/" + CTX))
    p = run("verify", "--pub", f"p-{alg}.pub", "--sig", f"p-{alg}.sig", "--context", CTX.decode(), "msg.txt", "--json")
    check(json.loads(p.stdout)["valid"] is True, f"{alg} signature by cryptography (context citadel-file-v1/CTX) verifies in citadel")
    p = run("verify", "--pub", f"p-{alg}.pub", "--sig", f"p-{alg}.sig", "msg.txt", ok=False)
    check(p.returncode == 1, f"{alg}: citadel rejects cryptography's signature without its context (exit 1)")
    with open(path(f"p-bare-{alg}.sig"), "wb") as f:
        f.write(key.sign(MSG, CTX))
    p = run("verify", "--pub", f"p-{alg}.pub", "--sig", f"p-bare-{alg}.sig", "--context", CTX.decode(), "msg.txt", ok=False)
    check(p.returncode == 1 and b"before signing purposes were separated" in p.stderr,
          f"{alg}: a signature without the file purpose is refused, saying why")
    run("sign", "--key", f"p-{alg}.key", "--output", f"p2-{alg}.sig", "msg.txt")
    key.public_key().verify(open(path(f"p2-{alg}.sig"), "rb").read(), MSG, FILE_CTX)
    check(True, f"{alg} key written by cryptography signs in citadel; cryptography verifies (context citadel-file-v1)")
    # Expanded-only and encrypted keys written by cryptography.
    with open(path(f"p-{alg}-enc.key"), "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.BestAvailableEncryption(PASS)))
    with open(path("pass.txt"), "wb") as f:
        f.write(PASS + b"\n")
    p = run("key", "show", f"p-{alg}-enc.key", "--passphrase-file", "pass.txt", "--json")
    check(json.loads(p.stdout)["algorithm"] == alg, f"{alg} passphrase-encrypted PKCS#8 from cryptography loads in citadel")

# --- encrypted PKCS#8: citadel -> cryptography (scrypt and PBKDF2) ---
for kdf in ("scrypt", "pbkdf2"):
    run("key", "gen", "--alg", "ml-dsa-65", "--output", f"enc-{kdf}", "--passphrase-file", "pass.txt", "--kdf", kdf)
    priv = load_priv(f"enc-{kdf}.key", password=PASS)
    check(priv.public_key() == load_pub(f"enc-{kdf}.pub"), f"citadel PKCS#8 encrypted with {kdf}+AES-256-CBC opens in cryptography")

# --- ML-KEM: both directions ---
KEM_ALGS = {"ml-kem-768": mlkem.MLKEM768PrivateKey, "ml-kem-1024": mlkem.MLKEM1024PrivateKey}
for alg, cls in KEM_ALGS.items():
    run("key", "gen", "--alg", alg, "--output", f"c-{alg}")
    priv = load_priv(f"c-{alg}.key")
    check(isinstance(priv, cls), f"{alg} PKCS#8 (seed form) from citadel loads in cryptography")
    # cryptography encapsulates to citadel's public key; citadel decapsulates.
    ss, ct = load_pub(f"c-{alg}.pub").encapsulate()
    with open(path(f"{alg}.ct"), "wb") as f:
        f.write(ct)
    p = run("kem", "decap", "--key", f"c-{alg}.key", "--ct", f"{alg}.ct", "--json")
    check(bytes.fromhex(json.loads(p.stdout)["shared_secret"]) == ss, f"{alg}: cryptography encapsulates, citadel decapsulates the same secret")
    # citadel encapsulates to cryptography's key; cryptography decapsulates.
    key = cls.generate()
    write_priv(key, f"p-{alg}.key")
    write_pub(key.public_key(), f"p-{alg}.pub")
    p = run("kem", "encap", "--pub", f"p-{alg}.pub", "--json")
    out = json.loads(p.stdout)
    check(key.decapsulate(bytes.fromhex(out["ciphertext"])) == bytes.fromhex(out["shared_secret"]),
          f"{alg}: citadel encapsulates, cryptography decapsulates the same secret")
    p = run("kem", "decap", "--key", f"p-{alg}.key", "--ct", f"{alg}.ct", "--json")
    check(len(json.loads(p.stdout)["shared_secret"]) == 64, f"{alg} PKCS#8 written by cryptography loads in citadel")

# --- Ed25519: both directions ---
run("key", "gen", "--alg", "ed25519", "--output", "c-ed")
# Ed25519 has no context: the file purpose is a message prefix,
# 0x00 || len(ctx) || ctx (docs/formats/artifact-manifest.md).
ED_PREFIX = b"\x00" + bytes([len(FILE_CTX)]) + FILE_CTX
run("sign", "--key", "c-ed.key", "--output", "ed.sig", "msg.txt")
load_pub("c-ed.pub").verify(open(path("ed.sig"), "rb").read(), ED_PREFIX + MSG)
check(isinstance(load_priv("c-ed.key"), ed25519.Ed25519PrivateKey), "ed25519 key and signature (file purpose prefix) from citadel accepted by cryptography")
try:
    load_pub("c-ed.pub").verify(open(path("ed.sig"), "rb").read(), MSG)
    check(False, "ed25519: citadel's file signature must not verify over the bare file")
except Exception:
    check(True, "ed25519: citadel's file signature does not verify over the bare file")
key = ed25519.Ed25519PrivateKey.generate()
write_pub(key.public_key(), "p-ed.pub")
with open(path("p-ed.sig"), "wb") as f:
    f.write(key.sign(ED_PREFIX + MSG))
run("verify", "--pub", "p-ed.pub", "--sig", "p-ed.sig", "msg.txt")
check(True, "ed25519 signature from cryptography (file purpose prefix) verifies in citadel")

# --- ML-DSA certificates and CRLs from `citadel ca` ---
from cryptography import x509

for alg in ("ml-dsa-44", "ml-dsa-65", "ml-dsa-87"):
    d = f"ca-{alg}"
    run("ca", "init", "--ca", d, "--alg", alg)
    run("ca", "issue", "--ca", d, "--name", "server", "--dns", "localhost", "--ip", "127.0.0.1")
    run("ca", "issue", "--ca", d, "--name", "alice", "--client")
    run("ca", "revoke", "--ca", d, "--name", "alice")
    ca = x509.load_pem_x509_certificate(open(path(f"{d}/ca.crt"), "rb").read())
    check(ca.signature_algorithm_oid.dotted_string.startswith("2.16.840.1.101.3.4.3."), f"{alg} CA certificate parses in cryptography with an ML-DSA OID")
    leaf = x509.load_pem_x509_certificates(open(path(f"{d}/server.crt"), "rb").read())[0]
    leaf.verify_directly_issued_by(ca)
    check(True, f"{alg}: cryptography verifies the server certificate's ML-DSA signature by the CA")
    crl = x509.load_pem_x509_crl(open(path(f"{d}/crl.pem"), "rb").read())
    check(crl.is_signature_valid(ca.public_key()) and len(list(crl)) == 1, f"{alg}: the CRL's ML-DSA signature verifies and lists the revoked certificate")

print(f"{checks} interoperability checks passed against cryptography {__import__('cryptography').__version__}")
