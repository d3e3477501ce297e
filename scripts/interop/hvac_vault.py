#!/usr/bin/env python3
"""Drives `citadel vault serve` with hvac, the Python client for HashiCorp
Vault, unchanged: the sys/ endpoints of issue 5's first part.

    hvac_vault.py ADDR init KEYS.json     # init 5/3, unseal, token, seal
    hvac_vault.py ADDR reopen KEYS.json   # after a restart: sealed, unseal again

Prints "interoperability checks passed" on success; exits 1 on a failed check.
With PEER=openbao in the environment it runs against OpenBao instead
(scripts/interop/openbao.sh): Citadel's ML-DSA transit key is replaced by an
Ed25519 one there, every other check is the same.
"""
import json
import os
import sys

import hvac
import hvac.exceptions

checks = 0
# PEER=openbao: the server is OpenBao (scripts/interop/openbao.sh), the
# reference; only checks of Citadel's own extensions change then.
OPENBAO = os.environ.get("PEER") == "openbao"


def check(cond, what):
    global checks
    if not cond:
        print(f"FAIL: {what}")
        sys.exit(1)
    checks += 1


def unseal_all(client, keys):
    # hvac stops once "sealed" is false; with 3 of 5 it takes three.
    status = client.sys.submit_unseal_keys(keys[1:4])
    check(status["sealed"] is False, "unsealed after the threshold of keys")
    check(status["t"] == 3 and status["n"] == 5, "threshold and shares reported")
    wait_active(client)


def wait_active(client):
    # A raft node (OpenBao) is a standby for a moment after unsealing, until
    # it wins the election of its one-node cluster: sys/health answers 429
    # then. Citadel is active at once, so this returns on the first try.
    import time
    for _ in range(200):
        if isinstance(client.sys.read_health_status(method="GET"), dict):
            return
        time.sleep(0.05)


def main():
    addr, mode, keyfile = sys.argv[1], sys.argv[2], sys.argv[3]
    client = hvac.Client(url=addr)
    if mode == "init":
        check(client.sys.is_initialized() is False, "fresh server is not initialised")
        health = client.sys.read_health_status(method="GET")
        check(health.status_code == 501, "health says 501 before init")
        result = client.sys.initialize(secret_shares=5, secret_threshold=3)
        keys, token = result["keys"], result["root_token"]
        check(len(keys) == 5 and len(result["keys_base64"]) == 5, "five unseal keys, hex and base64")
        check(client.sys.is_initialized() is True, "initialised")
        check(client.sys.is_sealed() is True, "sealed after init")
        try:
            client.sys.initialize(secret_shares=5, secret_threshold=3)
            check(False, "a second init is refused")
        except hvac.exceptions.InvalidRequest:
            check(True, "")
        try:
            client.sys.initialize(secret_shares=3, secret_threshold=5)
        except hvac.exceptions.InvalidRequest as e:
            check("threshold" in str(e), "threshold > shares refused with a reason")
        # Data paths answer 503 while sealed (hvac raises VaultDown).
        client.token = token
        try:
            client.secrets.kv.v2.read_secret_version(path="x", raise_on_deleted_version=True)
            check(False, "sealed vault refuses data requests")
        except hvac.exceptions.VaultDown as e:
            check("sealed" in str(e), "503 says the vault is sealed")
        status = client.sys.submit_unseal_key(keys[0])
        check(status["sealed"] is True and status["progress"] == 1, "progress 1 of 3")
        client.sys.submit_unseal_key(reset=True)
        check(client.sys.read_seal_status()["progress"] == 0, "reset clears progress")
        unseal_all(client, keys)
        health = client.sys.read_health_status(method="GET")
        check(isinstance(health, dict) and health["sealed"] is False, "health 200 with its body when unsealed")
        check(client.is_authenticated() is True, "root token accepted (lookup-self)")
        other = hvac.Client(url=addr, token="hvs.not-a-token")
        check(other.is_authenticated() is False, "unknown token refused")
        try:
            other.sys.seal()
            check(False, "seal needs the root token")
        except hvac.exceptions.Forbidden:
            check(True, "")
        try:
            client.secrets.kv.v2.read_secret_version(path="x", raise_on_deleted_version=True)
            check(False, "unknown path")
        except hvac.exceptions.InvalidPath:
            check(True, "")
        # KV v2, as hvac users write it.
        client.sys.enable_secrets_engine(backend_type="kv", path="secret", options={"version": "2"})
        kv = client.secrets.kv.v2
        w = kv.create_or_update_secret(path="app/db", secret={"password": "one"})
        check(w["data"]["version"] == 1, "first version")
        kv.create_or_update_secret(path="app/db", secret={"password": "two"}, cas=1)
        try:
            kv.create_or_update_secret(path="app/db", secret={"password": "x"}, cas=1)
            check(False, "a stale cas is refused")
        except hvac.exceptions.InvalidRequest as e:
            check("check-and-set" in str(e), "cas conflict says why")
        r = kv.read_secret_version(path="app/db", raise_on_deleted_version=True)
        check(r["data"]["data"] == {"password": "two"} and r["data"]["metadata"]["version"] == 2, "latest version")
        r = kv.read_secret_version(path="app/db", version=1, raise_on_deleted_version=True)
        check(r["data"]["data"]["password"] == "one", "older version")
        kv.create_or_update_secret(path="app/cache", secret={"k": "v"})
        check(kv.list_secrets(path="app")["data"]["keys"] == ["cache", "db"], "list")
        kv.delete_latest_version_of_secret(path="app/cache")
        try:
            kv.read_secret_version(path="app/cache", raise_on_deleted_version=True)
            check(False, "a deleted version is gone")
        except hvac.exceptions.InvalidPath:
            check(True, "")
        kv.undelete_secret_versions(path="app/cache", versions=[1])
        check(kv.read_secret_version(path="app/cache", raise_on_deleted_version=True)["data"]["data"] == {"k": "v"}, "undeleted")
        kv.destroy_secret_versions(path="app/db", versions=[1])
        meta = kv.read_secret_metadata(path="app/db")["data"]
        check(meta["versions"]["1"]["destroyed"] is True and meta["current_version"] == 2, "destroyed version in metadata")
        kv.update_metadata(path="app/db", max_versions=5)
        check(kv.read_secret_metadata(path="app/db")["data"]["max_versions"] == 5, "metadata updated")
        # JSON merge patch (HTTP PATCH), as the Vault/OpenBao CLI sends it.
        kv.create_or_update_secret(path="app/patch", secret={"a": "1", "b": "2"})
        r = client.adapter.request(
            "patch", "/v1/secret/data/app/patch", json={"data": {"b": None, "c": "3"}},
            headers={"Content-Type": "application/merge-patch+json"})
        check(r["data"]["version"] == 2, "PATCH writes a new version")
        got = kv.read_secret_version(path="app/patch", raise_on_deleted_version=True)["data"]["data"]
        check(got == {"a": "1", "c": "3"}, "PATCH merges (null removes a key)")
        r = client.adapter.request("patch", "/v1/secret/data/app/patch", json={"data": {"x": "y"}},
                                   raise_exception=False)
        check(r.status_code == 415, "PATCH without the merge-patch content type is refused")
        # What the Vault/OpenBao CLI asks before a kv command, and mount tuning.
        ui = client.adapter.get("/v1/sys/internal/ui/mounts/secret/app/db")["data"]
        check(ui["type"] == "kv" and ui["options"]["version"] == "2" and ui["path"] == "secret/",
              "internal/ui/mounts finds the KV v2 mount")
        tune = client.sys.read_mount_configuration(path="secret")
        check(tune["data"]["default_lease_ttl"] == 768 * 3600 and tune["data"]["options"]["version"] == "2",
              "mount tune read")
        # Transit, as hvac users call it.
        import base64
        b64 = lambda b: base64.b64encode(b).decode()
        client.sys.enable_secrets_engine(backend_type="transit", path="transit")
        tr = client.secrets.transit
        tr.create_key(name="batch")
        res = tr.encrypt_data(name="batch", batch_input=[{"plaintext": b64(b"a"), "reference": "r1"},
                                                         {"plaintext": b64(b"b")}])
        refs = [x.get("reference") for x in res["data"]["batch_results"]]
        check(refs == ["r1", ""], "batch results echo the reference")
        tr.create_key(name="orders")
        c1 = tr.encrypt_data(name="orders", plaintext=b64(b"card 4111"))["data"]["ciphertext"]
        check(c1.startswith("vault:v1:"), "ciphertext carries the key version")
        check(tr.decrypt_data(name="orders", ciphertext=c1)["data"]["plaintext"] == b64(b"card 4111"), "decrypt")
        tr.rotate_key(name="orders")
        c2 = tr.rewrap_data(name="orders", ciphertext=c1)["data"]["ciphertext"]
        check(c2.startswith("vault:v2:"), "rewrap to the rotated key")
        tr.update_key_configuration(name="orders", min_decryption_version=2)
        try:
            tr.decrypt_data(name="orders", ciphertext=c1)
            check(False, "old ciphertext refused after min_decryption_version")
        except hvac.exceptions.InvalidRequest as e:
            check("disallowed" in str(e), "too-old version refused with a reason")
        check(tr.read_key(name="orders")["data"]["latest_version"] == 2, "read key")
        # ML-DSA: hvac does not know the type, so create it with a raw write.
        # OpenBao has no ML-DSA: against it the same sign/verify calls run
        # with an Ed25519 key.
        sig_type = "ed25519" if OPENBAO else "ml-dsa-65"
        client.write("transit/keys/release", type=sig_type)
        sig = tr.sign_data(name="release", hash_input=b64(b"v1.2.3"))["data"]["signature"]
        check(tr.verify_signed_data(name="release", hash_input=b64(b"v1.2.3"), signature=sig)["data"]["valid"] is True, f"{sig_type} signature verifies")
        check(tr.verify_signed_data(name="release", hash_input=b64(b"v6.6.6"), signature=sig)["data"]["valid"] is False, "and fails for other input")
        # Policies and tokens.
        client.sys.create_or_update_policy(
            name="app-read",
            policy='path "secret/data/app/*" { capabilities = ["read"] }\npath "secret/data/app/cache" { capabilities = ["deny"] }',
        )
        check("app-read" in client.sys.list_policies()["data"]["policies"], "policy listed")
        check("secret/data/app" in client.sys.read_policy(name="app-read")["data"]["rules"], "policy read back")
        tok = client.auth.token.create(policies=["app-read"], ttl="1h")["auth"]
        check(tok["policies"] == ["app-read", "default"], "token carries its policies")
        me = client.auth.token.lookup_self()["data"]
        check(me["id"] == token and me["expire_time"] is None and me["path"] == "auth/token/root",
              "root lookup-self")
        try:
            client.auth.token.renew_self(increment="1h")
            check(False, "the root token is not renewable")
        except hvac.exceptions.InvalidRequest:
            # OpenBao says "invalid lease ID" or "lease is not renewable".
            check(True, "root renew refused")
        child = client.auth.token.lookup(token=tok["client_token"])["data"]
        check(child["id"] == tok["client_token"], "lookup shows the token's id")
        check(isinstance(child["expire_time"], str) and child["expire_time"].endswith("Z"),
              "expire_time in RFC 3339")
        check(isinstance(child["issue_time"], str) and child["renewable"] is True, "issue_time and renewable")
        plain = client.auth.token.create(policies=["app-read"])["auth"]
        check(plain["lease_duration"] == 768 * 3600 and plain["renewable"] is True,
              "a token without a TTL gets the 768h default")
        r = client.adapter.request("delete", "/v1/sys/health", raise_exception=False)
        check(r.status_code == 405 and r.json() == {"errors": []}, "405 with a JSON body")
        app = hvac.Client(url=addr, token=tok["client_token"])
        check(app.is_authenticated() is True, "new token authenticates")
        check(app.secrets.kv.v2.read_secret_version(path="app/db", raise_on_deleted_version=True)["data"]["data"]["password"] == "two", "policy allows read")
        for what, call in [
            ("write outside the policy", lambda: app.secrets.kv.v2.create_or_update_secret(path="app/db", secret={"x": "y"})),
            ("deny over a matching allow", lambda: app.secrets.kv.v2.read_secret_version(path="app/cache", raise_on_deleted_version=True)),
            ("sys needs a grant", lambda: app.sys.list_mounted_secrets_engines()),
        ]:
            try:
                call()
                check(False, what)
            except hvac.exceptions.Forbidden:
                check(True, what)
        # AppRole and userpass logins.
        client.sys.enable_auth_method(method_type="approle")
        client.auth.approle.create_or_update_approle(role_name="ci", token_policies=["app-read"], token_ttl="1h")
        role_id = client.auth.approle.read_role_id(role_name="ci")["data"]["role_id"]
        secret_id = client.auth.approle.generate_secret_id(role_name="ci")["data"]["secret_id"]
        ci = hvac.Client(url=addr)
        ci.auth.approle.login(role_id=role_id, secret_id=secret_id)
        check(ci.is_authenticated() is True, "AppRole login gives a working token")
        check(ci.secrets.kv.v2.read_secret_version(path="app/db", raise_on_deleted_version=True)["data"]["data"]["password"] == "two", "AppRole token reads by policy")
        try:
            hvac.Client(url=addr).auth.approle.login(role_id=role_id, secret_id="wrong")
            check(False, "a wrong secret id is refused")
        except hvac.exceptions.InvalidRequest:
            check(True, "")
        client.sys.enable_auth_method(method_type="userpass")
        client.auth.userpass.create_or_update_user(username="alice", password="correct horse", policies=["app-read"])
        u = hvac.Client(url=addr)
        u.auth.userpass.login(username="alice", password="correct horse")
        check(u.is_authenticated() is True, "userpass login gives a working token")
        try:
            hvac.Client(url=addr).auth.userpass.login(username="alice", password="wrong")
            check(False, "a wrong password is refused")
        except hvac.exceptions.InvalidRequest:
            check(True, "")
        looked = client.auth.token.lookup(token=tok["client_token"])["data"]
        check(looked["accessor"] == tok["accessor"], "lookup by the root token")
        client.auth.token.revoke(token=tok["client_token"])
        check(app.is_authenticated() is False, "revoked token refused")
        client.sys.seal()
        check(client.sys.is_sealed() is True, "sealed again by the root token")
        json.dump({"keys": keys, "token": token}, open(keyfile, "w"))
    else:
        saved = json.load(open(keyfile))
        check(client.sys.is_initialized() is True, "still initialised after a restart")
        check(client.sys.is_sealed() is True, "a restarted server starts sealed")
        # Base64 forms work as well as hex.
        import base64, binascii
        b64 = [base64.b64encode(binascii.unhexlify(k)).decode() for k in saved["keys"]]
        unseal_all(client, b64)
        client.token = saved["token"]
        check(client.is_authenticated() is True, "the root token survived the restart")
        r = client.secrets.kv.v2.read_secret_version(path="app/db", raise_on_deleted_version=True)
        check(r["data"]["data"] == {"password": "two"}, "secrets survived the restart")
    print(f"{checks} interoperability checks passed")


if __name__ == "__main__":
    main()
