//! Runs every C2SP CCTV age test vector (`tests/data/cctv/`, see its README):
//! each file's outcome must be the one its `expect:` line names, and the
//! SHA-256 of the plaintext emitted (all of it on success, the part before
//! the error on a payload failure) must equal its `payload:` line.

use citadel_age::{Error, Identity, decrypt};
use citadel_crypto::secret::SecretBytes;
use std::io::Read;

struct Vector {
    name: String,
    expect: String,
    payload: Option<String>,
    identities: Vec<String>,
    passphrases: Vec<String>,
    body: Vec<u8>,
}

fn load(path: &std::path::Path) -> Vector {
    let raw = std::fs::read(path).unwrap();
    let split = raw.windows(2).position(|w| w == b"\n\n").unwrap();
    let (head, body) = (&raw[..split], &raw[split + 2..]);
    let mut v = Vector {
        name: path.file_name().unwrap().to_string_lossy().into_owned(),
        expect: String::new(),
        payload: None,
        identities: vec![],
        passphrases: vec![],
        body: body.to_vec(),
    };
    let mut compressed = false;
    for line in String::from_utf8(head.to_vec()).unwrap().lines() {
        let (k, val) = line.split_once(": ").unwrap();
        match k {
            "expect" => v.expect = val.to_string(),
            "payload" => v.payload = Some(val.to_string()),
            "identity" => v.identities.push(val.to_string()),
            "passphrase" => v.passphrases.push(val.to_string()),
            "compressed" => compressed = val == "zlib",
            _ => {}
        }
    }
    if compressed {
        let mut out = Vec::new();
        flate2::read::ZlibDecoder::new(&v.body[..])
            .read_to_end(&mut out)
            .unwrap();
        v.body = out;
    }
    v
}

fn outcome(r: &Result<u64, Error>) -> &'static str {
    match r {
        Ok(_) => "success",
        Err(Error::Armor(_)) => "armor failure",
        Err(Error::NoMatch) => "no match",
        Err(Error::HeaderMac) => "HMAC failure",
        Err(Error::Payload(_)) => "payload failure",
        Err(_) => "header failure",
    }
}

#[test]
fn every_cctv_age_vector() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/cctv");
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    let mut failures = Vec::new();
    let mut hybrid = 0;
    for path in &entries {
        let v = load(path);
        let mut ids = Vec::new();
        let mut bad_identity = None;
        for s in &v.identities {
            match Identity::parse(s) {
                Ok(id) => ids.push(id),
                Err(e) => bad_identity = Some(e),
            }
        }
        if let Some(e) = bad_identity {
            failures.push(format!("{}: identity did not parse: {e}", v.name));
            continue;
        }
        ids.extend(
            v.passphrases
                .iter()
                .map(|p| Identity::Scrypt(SecretBytes::from_slice(p.as_bytes()))),
        );
        let mut out = Vec::new();
        let res = decrypt(&ids, std::io::Cursor::new(v.body[..].to_vec()), &mut out);
        let got = outcome(&res);
        if got != v.expect {
            failures.push(format!(
                "{}: expected {}, got {got} ({:?})",
                v.name,
                v.expect,
                res.err()
            ));
            continue;
        }
        if let Some(want) = &v.payload {
            let have = hex::encode(citadel_crypto::hash::sha256(&out));
            if &have != want {
                failures.push(format!("{}: payload hash {have}, expected {want}", v.name));
            }
        }
        if v.name.starts_with("hybrid") || v.name == "armor_hybrid" {
            hybrid += 1;
        }
    }
    assert!(entries.len() >= 143, "only {} vectors found", entries.len());
    assert!(hybrid >= 19, "only {hybrid} hybrid vectors checked");
    assert!(
        failures.is_empty(),
        "{} of {} vectors failed:\n{}",
        failures.len(),
        entries.len(),
        failures.join("\n")
    );
}
