// Interoperability of `citadel encrypt`/`decrypt` with typage, the
// TypeScript age implementation (npm `age-encryption`), in both directions,
// for the post-quantum mlkem768x25519 recipients, X25519 recipients,
// passphrases and ASCII armor, on payloads around the 64 KiB chunk size.
//
// Usage: node typage_interop.mjs PATH/TO/citadel
import * as age from "age-encryption";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { randomBytes } from "node:crypto";

const citadel = resolve(process.argv[2]);
const dir = mkdtempSync(join(tmpdir(), "citadel-typage-"));
const p = (n) => join(dir, n);
const run = (...args) => execFileSync(citadel, args, { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
let checks = 0;
const ok = (cond, what) => {
  if (!cond) { console.error(`FAIL: ${what}`); process.exit(1); }
  checks++; console.log(`ok  ${what}`);
};
const eq = (a, b) => a.length === b.length && a.every((v, i) => v === b[i]);

for (const kind of ["mlkem768x25519", "x25519"]) {
  for (const size of [0, 1, 65536, 65537, 300000]) {
    const data = new Uint8Array(randomBytes(size));
    writeFileSync(p("plain"), data);
    for (const armor of [false, true]) {
      const tag = `${kind} ${size} bytes${armor ? " armored" : ""}`;
      // typage encrypts, citadel decrypts
      const id = kind === "x25519" ? await age.generateX25519Identity() : await age.generateHybridIdentity();
      const rcpt = await age.identityToRecipient(id);
      writeFileSync(p("id.key"), id + "\n");
      const e = new age.Encrypter(); e.addRecipient(rcpt);
      let ct = await e.encrypt(data);
      writeFileSync(p("t.age"), armor ? age.armor.encode(ct) : ct);
      run("decrypt", "-i", "id.key", "-o", "t.out", "--force", "t.age");
      ok(eq(new Uint8Array(readFileSync(p("t.out"))), data), `typage -> citadel: ${tag}`);
      // citadel encrypts, typage decrypts
      run("key", "gen", "--alg", kind, "--output", "c", "--force");
      const cid = readFileSync(p("c.key"), "utf8").split("\n").find((l) => l.startsWith("AGE-SECRET-KEY"));
      const args = ["encrypt", "-R", "c.pub", "-o", "c.age", "--force", "plain"];
      if (armor) args.push("-a");
      run(...args);
      let file = readFileSync(p("c.age"));
      const d = new age.Decrypter(); d.addIdentity(cid);
      const input = armor ? age.armor.decode(file.toString("utf8")) : new Uint8Array(file);
      const out = await d.decrypt(input, "uint8array");
      ok(eq(out, data), `citadel -> typage: ${tag}`);
      // a recipient string from citadel works in typage, and typage's in citadel
      ok((await age.identityToRecipient(cid)) === readFileSync(p("c.pub"), "utf8").trim(), `${kind}: identity/recipient encodings agree (${size})`);
    }
  }
}

// passphrase (scrypt) both ways
writeFileSync(p("pass.txt"), "correct horse battery staple\n");
const data = new Uint8Array(randomBytes(1000));
writeFileSync(p("plain"), data);
const e = new age.Encrypter(); e.setPassphrase("correct horse battery staple"); e.setScryptWorkFactor(12);
writeFileSync(p("s.age"), await e.encrypt(data));
run("decrypt", "--passphrase-file", "pass.txt", "-o", "s.out", "s.age");
ok(eq(new Uint8Array(readFileSync(p("s.out"))), data), "typage passphrase file decrypts in citadel");
run("encrypt", "--passphrase-file", "pass.txt", "-o", "s2.age", "plain");
const d = new age.Decrypter(); d.addPassphrase("correct horse battery staple");
ok(eq(await d.decrypt(new Uint8Array(readFileSync(p("s2.age"))), "uint8array"), data), "citadel passphrase file decrypts in typage");

console.log(`${checks} interoperability checks passed against typage (age-encryption)`);
