// Streams a file through typage (npm age-encryption) for the throughput
// comparison in age-throughput.sh.
// Usage: node typage_stream.mjs encrypt RECIPIENT IN OUT
//        node typage_stream.mjs decrypt IDENTITY IN OUT
import { createRequire } from "node:module";
import { createReadStream, createWriteStream } from "node:fs";
import { Readable, Writable } from "node:stream";

const require = createRequire(new URL("../interop/package.json", import.meta.url));
const age = await import(require.resolve("age-encryption"));
const [mode, key, inPath, outPath] = process.argv.slice(2);
const input = Readable.toWeb(createReadStream(inPath, { highWaterMark: 1 << 20 }));
let out;
if (mode === "encrypt") {
  const e = new age.Encrypter(); e.addRecipient(key);
  out = await e.encrypt(input);
} else {
  const d = new age.Decrypter(); d.addIdentity(key);
  out = await d.decrypt(input);
}
await out.pipeTo(Writable.toWeb(createWriteStream(outPath)));
