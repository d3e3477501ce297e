//! Replays the `age_decrypt` and `age_strings` fuzz corpora
//! (`tests/data/fuzz/<target>/`, seeds and every crash input kept) through
//! the bodies the fuzz targets run (`tests/fuzz/`), so every `cargo test`
//! checks them; the CCTV vectors' age files are replayed as well (the
//! seeds `scripts/fuzz.sh` gives the fuzzer). `CITADEL_BLESS=1` rewrites the
//! generated seeds.

#[path = "fuzz/age_decrypt.rs"]
mod age_decrypt;
#[path = "fuzz/age_strings.rs"]
mod age_strings;

use std::path::{Path, PathBuf};

fn dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/fuzz")
        .join(target)
}

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir(target))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

/// Files encrypted to the harness's two identities, whole and damaged.
fn bless_age_decrypt() {
    use citadel_age::{Identity, encrypt};
    let d = dir("age_decrypt");
    std::fs::create_dir_all(&d).unwrap();
    for (name, id) in [
        (
            "x25519",
            "AGE-SECRET-KEY-1EGTZVFFV20835NWYV6270LXYVK2VKNX2MMDKWYKLMGR48UAWX40Q2P2LM0",
        ),
        (
            "pq",
            "AGE-SECRET-KEY-PQ-1HZLGZUPT4ETPKDEV8HSGFDCYZ4E522W0A7PU2LHT8EH9W6YLNC3SW78XKG",
        ),
    ] {
        let r = Identity::parse(id).unwrap().to_recipient().unwrap();
        for (armor, size) in [(false, 100usize), (true, 70_000)] {
            let pt: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            let mut out = Vec::new();
            encrypt(
                std::slice::from_ref(&r),
                std::io::Cursor::new(pt[..].to_vec()),
                &mut out,
                armor,
            )
            .unwrap();
            let tag = format!("{name}-{}-{size}", if armor { "armor" } else { "binary" });
            std::fs::write(d.join(format!("{tag}.age")), &out).unwrap();
            let mut bad = out.clone();
            let at = bad.len() - 20;
            bad[at] ^= 1;
            std::fs::write(d.join(format!("{tag}-damaged.age")), &bad).unwrap();
            std::fs::write(d.join(format!("{tag}-cut.age")), &out[..out.len() / 2]).unwrap();
        }
    }
}

#[test]
fn the_age_decrypt_corpus_replays_clean() {
    if std::env::var_os("CITADEL_BLESS").is_some() {
        bless_age_decrypt();
    }
    let seeds = corpus("age_decrypt");
    assert!(seeds.len() >= 12);
    for s in &seeds {
        age_decrypt::run_one(s);
    }
    // The CCTV vectors' age files.
    let cctv = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/cctv");
    let mut n = 0;
    for e in std::fs::read_dir(cctv).unwrap() {
        let raw = std::fs::read(e.unwrap().path()).unwrap();
        let Some(split) = raw.windows(2).position(|w| w == b"\n\n") else {
            continue;
        };
        let (head, body) = (&raw[..split], &raw[split + 2..]);
        let body = if head.windows(16).any(|w| w == b"compressed: zlib") {
            use std::io::Read;
            let mut out = Vec::new();
            flate2::read::ZlibDecoder::new(body)
                .read_to_end(&mut out)
                .unwrap();
            out
        } else {
            body.to_vec()
        };
        if body.len() < 200_000 {
            age_decrypt::run_one(&body);
            n += 1;
        }
    }
    assert!(n > 100, "{n} CCTV files");
}

#[test]
fn the_age_strings_corpus_replays_clean() {
    let seeds = corpus("age_strings");
    assert!(seeds.len() >= 5);
    for s in &seeds {
        age_strings::run_one(s);
    }
}
