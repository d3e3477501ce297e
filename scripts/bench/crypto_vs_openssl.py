"""ML-KEM and ML-DSA rates of OpenSSL 3.5 through Python `cryptography`
(>= 50), measured the way `citadel bench crypto` measures its own (a
64-byte message, empty context, as many calls as fit in the time given),
printed beside citadel's figures from the same run as a Markdown table.

    python3 crypto_vs_openssl.py DIR SECONDS

DIR holds `citadel bench crypto --json` output, one file per algorithm
(`ml-kem-768.json`, ...); scripts/bench/crypto-vs-openssl.sh writes them.
"""

import json
import pathlib
import sys
import time

import cryptography
from cryptography.hazmat.primitives.asymmetric import mldsa, mlkem


def rate(seconds, f):
    """Calls per second of f over about `seconds`."""
    n, start = 0, time.perf_counter()
    while True:
        for _ in range(16):
            f()
        n += 16
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return n / elapsed


def peer(alg, seconds):
    msg = bytes([0x5A]) * 64
    if alg.startswith("ml-kem"):
        cls = {"ml-kem-768": mlkem.MLKEM768PrivateKey, "ml-kem-1024": mlkem.MLKEM1024PrivateKey}[alg]
        sk = cls.generate()
        pk = sk.public_key()
        _, ct = pk.encapsulate()
        return {
            "keygen": rate(seconds, cls.generate),
            "encaps": rate(seconds, pk.encapsulate),
            "decaps": rate(seconds, lambda: sk.decapsulate(ct)),
        }
    cls = {
        "ml-dsa-44": mldsa.MLDSA44PrivateKey,
        "ml-dsa-65": mldsa.MLDSA65PrivateKey,
        "ml-dsa-87": mldsa.MLDSA87PrivateKey,
    }[alg]
    sk = cls.generate()
    pk = sk.public_key()
    sig = sk.sign(msg)
    return {
        "keygen": rate(seconds, cls.generate),
        "sign": rate(seconds, lambda: sk.sign(msg)),
        "verify": rate(seconds, lambda: pk.verify(sig, msg)),
    }


def main():
    d, seconds = pathlib.Path(sys.argv[1]), float(sys.argv[2])
    print(f"python cryptography {cryptography.__version__}, {seconds} s per measurement")
    print()
    print("| operation | citadel | OpenSSL (pyca) | citadel / peer |")
    print("| --- | ---: | ---: | ---: |")
    for alg in ["ml-kem-768", "ml-kem-1024", "ml-dsa-44", "ml-dsa-65", "ml-dsa-87"]:
        doc = json.loads((d / f"{alg}.json").read_text())
        ours = next(a for a in doc["algorithms"] if a["algorithm"] == alg)
        theirs = peer(alg, seconds)
        rows = [("keygen", ours["keygen_per_s"]), (ours["op1"], ours["op1_per_s"]), (ours["op2"], ours["op2_per_s"])]
        for op, mine in rows:
            other = theirs[op]
            print(f"| {alg} {op} | {mine:,.0f}/s | {other:,.0f}/s | {mine / other:.2f} |")


if __name__ == "__main__":
    main()
