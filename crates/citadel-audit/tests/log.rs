//! The log on disk: appends survive reopening, proofs from the files match
//! the in-memory tree, and every kind of tampering with the files is found
//! by `verify`, which names the first bad entry.

use citadel_audit::log::{AuditLog, Durability};
use citadel_audit::merkle::{self, MemoryTree, leaf_hash};
use citadel_audit::verify::verify;
use citadel_audit::{Error, SignedCheckpoint};
use std::fs;
use std::path::{Path, PathBuf};

fn entry(i: u64) -> Vec<u8> {
    format!(
        "{{\"action\":\"read\",\"actor\":\"user{}\",\"n\":{i},\"time\":\"2026-11-26T00:00:00Z\"}}",
        i % 7
    )
    .into_bytes()
}

fn new_log(n: u64, segment_bytes: Option<u64>) -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("log");
    AuditLog::init(&dir, "test.example/log").unwrap();
    if let Some(b) = segment_bytes {
        let p = dir.join("log.json");
        let mut c: serde_json::Value = serde_json::from_slice(&fs::read(&p).unwrap()).unwrap();
        c["segment_bytes"] = b.into();
        fs::write(&p, serde_json::to_vec(&c).unwrap()).unwrap();
    }
    let mut log =
        AuditLog::open(&dir, Durability::Group(std::time::Duration::from_millis(5))).unwrap();
    for i in 0..n {
        assert_eq!(log.append(&entry(i)).unwrap(), i);
    }
    log.commit().unwrap();
    log.close().unwrap();
    (d, dir)
}

fn bad_index(r: Result<citadel_audit::verify::Report, Error>) -> u64 {
    match r {
        Err(Error::Corrupt {
            index: Some(i),
            why,
        }) => {
            eprintln!("{why}");
            i
        }
        other => panic!("expected a corruption report, got {other:?}"),
    }
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<_> = fs::read_dir(dir.join("segments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

/// Byte offsets of each record in a segment (after the 8-byte magic).
fn record_offsets(seg: &Path) -> Vec<(usize, usize)> {
    let b = fs::read(seg).unwrap();
    let mut out = Vec::new();
    let mut at = 8;
    while at + 12 <= b.len() {
        let len = u32::from_be_bytes(b[at..at + 4].try_into().unwrap()) as usize;
        out.push((at, 16 + len));
        at += 16 + len;
    }
    out
}

#[test]
fn appends_survive_reopening_and_proofs_match_the_reference_tree() {
    let (_d, dir) = new_log(1000, Some(8 * 1024));
    assert!(segments(&dir).len() > 5, "small segments roll over");
    let mut log = AuditLog::open(&dir, Durability::EveryAppend).unwrap();
    assert_eq!(log.size(), 1000);
    let mut mem = MemoryTree::new();
    for i in 0..1000 {
        mem.push_entry(&entry(i));
    }
    for size in [1, 2, 3, 7, 8, 9, 500, 999, 1000] {
        assert_eq!(log.root(size).unwrap(), mem.root(size).unwrap());
        for index in [0, size / 2, size - 1] {
            let p = log.inclusion_proof(index, size).unwrap();
            merkle::verify_inclusion(
                &leaf_hash(&entry(index)),
                index,
                size,
                &p,
                &mem.root(size).unwrap(),
            )
            .unwrap();
        }
        let c = log.consistency_proof(size, 1000).unwrap();
        merkle::verify_consistency(
            size,
            1000,
            &mem.root(size).unwrap(),
            &mem.root(1000).unwrap(),
            &c,
        )
        .unwrap();
    }
    assert_eq!(log.entry(123).unwrap(), entry(123));
    let mut seen = Vec::new();
    log.scan(995, |i, _| {
        seen.push(i);
        true
    })
    .unwrap();
    assert_eq!(seen, vec![995, 996, 997, 998, 999]);
    assert_eq!(log.append(&entry(1000)).unwrap(), 1000);
    assert_eq!(
        log.durable_size(),
        1001,
        "EveryAppend makes each entry durable"
    );
    let cp = log.checkpoint().unwrap();
    assert_eq!(cp.checkpoint().size(), 1001);
    drop(log);
    let r = verify(&dir, None).unwrap();
    assert_eq!(r.entries, 1001);
    assert_eq!(r.checkpoints, vec![1001]);
}

#[test]
fn a_torn_tail_is_cut_and_nothing_acknowledged_is_lost() {
    let (_d, dir) = new_log(50, None);
    let seg = segments(&dir).pop().unwrap();
    let mut b = fs::read(&seg).unwrap();
    let full = b.len();
    // Half of a 51st record, as a crash mid-write leaves it.
    let mut rec = Vec::new();
    citadel_audit::segment::encode_record(50, &entry(50), &mut rec);
    b.extend_from_slice(&rec[..rec.len() / 2]);
    fs::write(&seg, &b).unwrap();
    assert!(verify(&dir, None).unwrap().torn_tail_bytes > 0);
    let mut log = AuditLog::open(&dir, Durability::EveryAppend).unwrap();
    assert_eq!(log.size(), 50);
    assert_eq!(fs::metadata(&seg).unwrap().len() as usize, full);
    assert_eq!(log.append(&entry(50)).unwrap(), 50);
    drop(log);
    assert_eq!(verify(&dir, None).unwrap().entries, 51);
    // The derived files lost (as after a crash before they were synced):
    // rebuilt from the segments.
    fs::remove_dir_all(dir.join("tree")).unwrap();
    fs::write(dir.join("state.json"), b"{\"derived\":0}").unwrap();
    let mut log = AuditLog::open(&dir, Durability::EveryAppend).unwrap();
    let mut mem = MemoryTree::new();
    (0..51).for_each(|i| {
        mem.push_entry(&entry(i));
    });
    assert_eq!(log.root(51).unwrap(), mem.current_root());
}

#[test]
fn damage_that_is_not_a_torn_tail_refuses_to_open() {
    let (_d, dir) = new_log(20, None);
    let seg = segments(&dir).pop().unwrap();
    let (at, _) = record_offsets(&seg)[5];
    let mut b = fs::read(&seg).unwrap();
    b[at + 14] ^= 1;
    fs::write(&seg, &b).unwrap();
    assert!(matches!(
        AuditLog::open(&dir, Durability::EveryAppend),
        Err(Error::Corrupt { .. })
    ));
}

/// Every kind of tampering, each on a fresh log with a checkpoint at 40 of
/// 60 entries.
#[test]
fn tampering_is_reported_with_the_first_bad_index() {
    type Tamper = fn(&Path, &Path) -> u64;
    let cases: Vec<(&str, Tamper)> = vec![
        ("flip a byte (checksum)", |_, seg| {
            let (at, _) = record_offsets(seg)[17];
            let mut b = fs::read(seg).unwrap();
            b[at + 20] ^= 0x20;
            fs::write(seg, b).unwrap();
            17
        }),
        ("change an entry and fix its checksum", |_, seg| {
            let (at, len) = record_offsets(seg)[23];
            let mut b = fs::read(seg).unwrap();
            b[at + 20] ^= 0x01;
            let crc = crc32fast_hash(&b[at..at + len - 4]);
            b[at + len - 4..at + len].copy_from_slice(&crc.to_be_bytes());
            fs::write(seg, b).unwrap();
            23
        }),
        ("delete an entry", |_, seg| {
            let (at, len) = record_offsets(seg)[30];
            let mut b = fs::read(seg).unwrap();
            b.drain(at..at + len);
            fs::write(seg, b).unwrap();
            30
        }),
        ("duplicate an entry", |_, seg| {
            let (at, len) = record_offsets(seg)[12];
            let mut b = fs::read(seg).unwrap();
            let rec = b[at..at + len].to_vec();
            b.splice(at..at, rec);
            fs::write(seg, b).unwrap();
            13
        }),
        ("swap two entries", |_, seg| {
            let offs = record_offsets(seg);
            let (a, la) = offs[8];
            let (_, lb) = offs[9];
            let mut b = fs::read(seg).unwrap();
            let ra = b[a..a + la].to_vec();
            let rb = b[a + la..a + la + lb].to_vec();
            b.splice(a..a + la + lb, rb.into_iter().chain(ra));
            fs::write(seg, b).unwrap();
            8
        }),
        ("truncate behind the checkpoint", |_, seg| {
            let (at, _) = record_offsets(seg)[35];
            let b = fs::read(seg).unwrap();
            fs::write(seg, &b[..at]).unwrap();
            35
        }),
        (
            "rewrite the entries and every derived file consistently",
            |dir, seg| {
                // A powerful attacker: rebuilds the segment with a changed
                // entry 10, renumbered and re-checksummed, and the tree files.
                let mut b = citadel_audit::segment::MAGIC.to_vec();
                for i in 0..60u64 {
                    let e = if i == 10 {
                        b"{\"forged\":true}".to_vec()
                    } else {
                        entry(i)
                    };
                    citadel_audit::segment::encode_record(i, &e, &mut b);
                }
                fs::write(seg, b).unwrap();
                fs::remove_dir_all(dir.join("tree")).unwrap();
                fs::write(dir.join("state.json"), b"{\"derived\":0}").unwrap();
                0 // only the checkpoint betrays it: somewhere in [0, 40)
            },
        ),
    ];
    for (name, tamper) in cases {
        let (_d, dir) = new_log(40, None);
        let mut log = AuditLog::open(&dir, Durability::EveryAppend).unwrap();
        log.checkpoint().unwrap();
        for i in 40..60 {
            log.append(&entry(i)).unwrap();
        }
        log.close().unwrap();
        verify(&dir, None).unwrap();
        let seg = segments(&dir).pop().unwrap();
        let want = tamper(&dir, &seg);
        assert_eq!(bad_index(verify(&dir, None)), want, "{name}");
    }
}

#[test]
fn a_published_checkpoint_catches_truncation_and_rollback() {
    let (_d, dir) = new_log(30, None);
    let mut log = AuditLog::open(&dir, Durability::EveryAppend).unwrap();
    let published: SignedCheckpoint = log.checkpoint().unwrap();
    drop(log);
    // The operator rolls the log back to 20 entries and deletes its own
    // checkpoints: only the copy a client kept catches it.
    let seg = segments(&dir).pop().unwrap();
    let (at, _) = record_offsets(&seg)[20];
    let b = fs::read(&seg).unwrap();
    fs::write(&seg, &b[..at]).unwrap();
    fs::remove_dir_all(dir.join("checkpoints")).unwrap();
    fs::remove_file(dir.join("checkpoint")).unwrap();
    // The high-water mark still says 30 were acknowledged (issue 12,
    // item 9)...
    assert_eq!(bad_index(verify(&dir, None)), 20);
    assert!(AuditLog::open(&dir, Durability::EveryAppend).is_err());
    // ...and a missing mark is damage too (issue 12, attack F4)...
    fs::remove_file(dir.join("acked")).unwrap();
    assert!(matches!(
        verify(&dir, None),
        Err(Error::Corrupt { index: None, .. })
    ));
    assert!(matches!(
        AuditLog::open(&dir, Durability::EveryAppend),
        Err(Error::Corrupt { index: None, .. })
    ));
    // ...and a repair refuses: the copy of the newest checkpoint kept
    // beside the keys (where the insider cannot write) still covers 30...
    assert!(matches!(
        citadel_audit::verify::repair(&dir),
        Err(Error::Corrupt { .. })
    ));
    // ...until it is gone too (the key holder's own doing): then the
    // rollback is accepted locally.
    fs::remove_file(dir.join("keys/checkpoint")).unwrap();
    let r = citadel_audit::verify::repair(&dir).unwrap();
    assert_eq!((r.report.entries, r.mark_before), (20, None));
    assert_eq!(verify(&dir, None).unwrap().entries, 20);
    assert_eq!(bad_index(verify(&dir, Some(&published.to_text()))), 20);
    // A checkpoint signed by someone else is refused outright.
    let other = citadel_audit::LogSigner::generate("test.example/log").unwrap();
    let forged = SignedCheckpoint::sign(published.checkpoint().clone(), &other).unwrap();
    assert!(matches!(
        verify(&dir, Some(&forged.to_text())),
        Err(Error::Corrupt { index: None, .. })
    ));
}

fn crc32fast_hash(b: &[u8]) -> u32 {
    // The same CRC-32 (IEEE) the segments use, computed independently.
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in b {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Issue 12, item 8: `state.json` is a cache, never trusted: an entry
/// rewritten (checksum fixed) is caught by the hash the tree recorded,
/// whatever `derived` says.
#[test]
fn a_rewritten_entry_is_caught_whatever_state_json_says() {
    let (_d, dir) = new_log(6, None);
    let seg = segments(&dir).pop().unwrap();
    let (at, len) = record_offsets(&seg)[4];
    let mut b = fs::read(&seg).unwrap();
    // Same length, other content, checksum recomputed.
    let pos = b[at..at + len]
        .windows(5)
        .position(|w| w == b"user4")
        .unwrap();
    b[at + pos + 4] = b'9';
    let crc = crc32fast_hash(&b[at..at + len - 4]);
    b[at + len - 4..at + len].copy_from_slice(&crc.to_be_bytes());
    fs::write(&seg, &b).unwrap();
    fs::write(dir.join("state.json"), b"{\"derived\":0}").unwrap();
    assert_eq!(bad_index(verify(&dir, None)), 4);
}

/// Issue 12, item 9: an acknowledged entry cut from the tail is reported as
/// truncation, and its index is not reused.
#[test]
fn an_acknowledged_entry_cut_from_the_tail_is_truncation() {
    let (_d, dir) = new_log(4, None);
    let seg = segments(&dir).pop().unwrap();
    let (at, _) = record_offsets(&seg)[3];
    let b = fs::read(&seg).unwrap();
    fs::write(&seg, &b[..at]).unwrap();
    assert_eq!(bad_index(verify(&dir, None)), 3);
    assert!(AuditLog::open(&dir, Durability::EveryAppend).is_err());
    assert!(citadel_audit::log::LogReader::open(&dir).is_err());
    assert_eq!(fs::read(&seg).unwrap().len(), at, "nothing else changed");
}

/// Issue 12, item 10: a damaged length field below what was acknowledged
/// is damage, not a torn write: reading leaves the log as it is, verify
/// reports it, and opening for writing refuses and deletes nothing, under a
/// checkpoint or not.
#[test]
fn a_damaged_length_below_the_acknowledged_size_is_never_cut() {
    for checkpoint_at in [2u64, 6] {
        let (_d, dir) = new_log(0, None);
        let mut log = AuditLog::open(&dir, Durability::EveryAppend).unwrap();
        for i in 0..6 {
            log.append(&entry(i)).unwrap();
            if i + 1 == checkpoint_at {
                log.checkpoint().unwrap();
            }
        }
        drop(log);
        let seg = segments(&dir).pop().unwrap();
        let (at, _) = record_offsets(&seg)[4];
        let mut b = fs::read(&seg).unwrap();
        b[at + 1] ^= 0x01; // the length grows by 65,536: looks torn
        fs::write(&seg, &b).unwrap();
        let before = fs::read(&seg).unwrap();
        assert_eq!(
            bad_index(verify(&dir, None)),
            4,
            "checkpoint at {checkpoint_at}"
        );
        assert!(citadel_audit::log::LogReader::open(&dir).is_err());
        assert!(AuditLog::open_read(&dir).is_err());
        assert!(matches!(
            AuditLog::open(&dir, Durability::EveryAppend),
            Err(Error::Corrupt { index: Some(4), .. })
        ));
        assert_eq!(fs::read(&seg).unwrap(), before, "nothing was cut");
    }
}

/// Reading never changes a segment: a torn tail beyond every acknowledged
/// entry is skipped by readers and cut only by a writer.
#[test]
fn readers_skip_a_torn_tail_and_leave_it() {
    let (_d, dir) = new_log(10, None);
    let seg = segments(&dir).pop().unwrap();
    let mut b = fs::read(&seg).unwrap();
    let mut rec = Vec::new();
    citadel_audit::segment::encode_record(10, &entry(10), &mut rec);
    b.extend_from_slice(&rec[..rec.len() / 2]);
    fs::write(&seg, &b).unwrap();
    let r = citadel_audit::log::LogReader::open(&dir).unwrap();
    assert_eq!(r.size(), 10);
    let mut n = 0;
    r.scan(0, |_, _| {
        n += 1;
        true
    })
    .unwrap();
    assert_eq!(n, 10);
    let mut log = AuditLog::open_read(&dir).unwrap();
    assert_eq!(log.size(), 10);
    assert!(log.append(&entry(10)).is_err());
    log.scan(0, |_, _| true).unwrap();
    drop(log);
    assert_eq!(fs::read(&seg).unwrap(), b, "the torn tail is still there");
    let report = verify(&dir, None).unwrap();
    assert_eq!((report.entries, report.covered), (10, 0));
    assert!(report.torn_tail_bytes > 0);
}

// Issue 12, the second attack on the log (a hostile disk and insider).

/// Rewrites entry `i` of `seg` in place (same length, checksum fixed).
fn rewrite_entry(seg: &Path, i: usize) {
    let (at, len) = record_offsets(seg)[i];
    let mut b = fs::read(seg).unwrap();
    let pos = b[at..at + len]
        .windows(4)
        .position(|w| w == b"user")
        .unwrap();
    b[at + pos + 4] = if b[at + pos + 4] == b'9' { b'8' } else { b'9' };
    let crc = crc32fast_hash(&b[at..at + len - 4]);
    b[at + len - 4..at + len].copy_from_slice(&crc.to_be_bytes());
    fs::write(seg, &b).unwrap();
}

fn corrupt_at(r: Result<AuditLog, Error>) -> Option<u64> {
    match r {
        Err(Error::Corrupt { index, why }) => {
            eprintln!("{why}");
            index
        }
        Err(e) => panic!("expected a corruption report, got {e}"),
        Ok(_) => panic!("expected a corruption report, the log opened"),
    }
}

/// F1: opening (to read or to write) rebuilds the tree from the segments;
/// it compared nothing, so a rewritten entry's hash replaced the recorded
/// one, verify passed, and the next checkpoint signed the forgery.
#[test]
fn a_rebuild_compares_every_recorded_hash_and_launders_nothing() {
    let (_d, dir) = new_log(10, None);
    let mut log = AuditLog::open(&dir, Durability::EveryAppend).unwrap();
    log.checkpoint().unwrap();
    for i in 10..14 {
        log.append(&entry(i)).unwrap();
    }
    log.close().unwrap();
    let seg = segments(&dir).pop().unwrap();
    rewrite_entry(&seg, 12);
    fs::write(dir.join("state.json"), b"{\"derived\":0}").unwrap();
    let tree0 = fs::read(dir.join("tree/00.bin")).unwrap();
    assert_eq!(corrupt_at(AuditLog::open_read(&dir)), Some(12));
    assert_eq!(
        corrupt_at(AuditLog::open(&dir, Durability::EveryAppend)),
        Some(12)
    );
    assert_eq!(fs::read(dir.join("tree/00.bin")).unwrap(), tree0);
    assert_eq!(bad_index(verify(&dir, None)), 12);
}

/// F1: with the tree removed too, the rebuild has nothing to compare
/// with, but the log opens only when the tree gives the root the newest
/// checkpoint signed, so nothing is signed over the change.
#[test]
fn a_checkpoint_is_never_signed_over_changed_entries() {
    let (_d, dir) = new_log(10, None);
    let mut log = AuditLog::open(&dir, Durability::EveryAppend).unwrap();
    log.checkpoint().unwrap();
    log.append(&entry(10)).unwrap();
    log.close().unwrap();
    let seg = segments(&dir).pop().unwrap();
    rewrite_entry(&seg, 3);
    fs::remove_dir_all(dir.join("tree")).unwrap();
    fs::write(dir.join("state.json"), b"{\"derived\":0}").unwrap();
    assert_eq!(
        corrupt_at(AuditLog::open(&dir, Durability::EveryAppend)),
        None
    );
    assert_eq!(corrupt_at(AuditLog::open_read(&dir)), None);
    assert_eq!(
        fs::read_dir(dir.join("checkpoints")).unwrap().count(),
        1,
        "nothing was signed"
    );
    assert_eq!(bad_index(verify(&dir, None)), 0);
}

/// F1: removing, cutting or zeroing the recorded hashes silenced verify.
/// Below a checkpoint (the tree is synced before each) a missing hash is
/// tampering; beyond it, a crash can explain it, and it is counted.
#[test]
fn recorded_hashes_removed_below_a_checkpoint_are_tampering() {
    type Cut = fn(&Path);
    let cases: [(&str, Cut, Result<u64, u64>); 4] = [
        ("removed", |t| fs::remove_file(t).unwrap(), Err(0)),
        (
            "cut",
            |t| {
                let f = fs::OpenOptions::new().write(true).open(t).unwrap();
                f.set_len(5 * 32).unwrap();
            },
            Err(5),
        ),
        (
            "zeroed",
            |t| {
                let mut b = fs::read(t).unwrap();
                b[3 * 32..4 * 32].fill(0);
                fs::write(t, b).unwrap();
            },
            Err(3),
        ),
        (
            "cut beyond the checkpoint",
            |t| {
                let f = fs::OpenOptions::new().write(true).open(t).unwrap();
                f.set_len(12 * 32).unwrap();
            },
            Ok(3),
        ),
    ];
    for (name, cut, want) in cases {
        let (_d, dir) = new_log(10, None);
        let mut log = AuditLog::open(&dir, Durability::EveryAppend).unwrap();
        log.checkpoint().unwrap();
        for i in 10..15 {
            log.append(&entry(i)).unwrap();
        }
        log.close().unwrap();
        assert_eq!(verify(&dir, None).unwrap().unrecorded, 0);
        cut(&dir.join("tree/00.bin"));
        match want {
            Err(i) => assert_eq!(bad_index(verify(&dir, None)), i, "{name}"),
            Ok(n) => assert_eq!(verify(&dir, None).unwrap().unrecorded, n, "{name}"),
        }
    }
}

/// F2: every file of the log was opened by path, following links: a link
/// planted at `index.bin`, a tree level, `acked`, a segment or a `.tmp`
/// name made the writer truncate or create a file elsewhere.
#[test]
fn the_log_never_follows_a_link_or_opens_a_special_file() {
    for name in [
        "index.bin",
        "tree/00.bin",
        "tree/01.bin",
        "acked",
        "segments/00000000000000000000.seg",
        "state.json.tmp",
        "checkpoint.tmp",
        "tree",
        "checkpoint",
    ] {
        let (d, dir) = new_log(6, None);
        let mut log = AuditLog::open(&dir, Durability::EveryAppend).unwrap();
        log.checkpoint().unwrap();
        drop(log);
        let victim = d.path().join("victim");
        fs::create_dir_all(d.path().join("victim-dir")).unwrap();
        fs::write(&victim, b"precious").unwrap();
        let at = dir.join(name);
        if at.is_dir() {
            fs::remove_dir_all(&at).unwrap();
            std::os::unix::fs::symlink(d.path().join("victim-dir"), &at).unwrap();
        } else {
            let _ = fs::remove_file(&at);
            std::os::unix::fs::symlink(&victim, &at).unwrap();
        }
        if let Ok(mut log) = AuditLog::open(&dir, Durability::EveryAppend) {
            assert!(
                name.ends_with(".tmp"),
                "{name}: a link must be refused, not followed"
            );
            log.append(&entry(6)).unwrap();
            log.checkpoint().unwrap();
            log.close().unwrap();
        }
        let _ = verify(&dir, None);
        let _ = AuditLog::open_read(&dir).map(|mut l| l.scan(0, |_, _| true));
        assert_eq!(fs::read(&victim).unwrap(), b"precious", "{name}");
        assert_eq!(
            fs::read_dir(d.path().join("victim-dir")).unwrap().count(),
            0,
            "{name}"
        );
    }
}

/// Runs `f` on another thread and fails if it has not returned in 20 s
/// (a FIFO opened for reading waits for a writer forever).
fn within<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(std::time::Duration::from_secs(20))
        .unwrap_or_else(|_| panic!("{what} hung"))
}

/// F5: a FIFO or a device in place of a log file hung or flooded every
/// command; they are refused at once.
#[test]
fn a_fifo_or_a_device_in_the_log_is_refused_at_once() {
    for name in [
        "acked",
        "checkpoint",
        "checkpoints/00000000000000000009.txt",
    ] {
        for special in ["fifo", "/dev/zero"] {
            let (_d, dir) = new_log(6, None);
            let at = dir.join(name);
            let _ = fs::remove_file(&at);
            if special == "fifo" {
                let st = std::process::Command::new("mkfifo")
                    .arg(&at)
                    .status()
                    .unwrap();
                assert!(st.success());
            } else {
                std::os::unix::fs::symlink(special, &at).unwrap();
            }
            let d2 = dir.clone();
            assert!(
                within(name, move || AuditLog::open(&d2, Durability::EveryAppend)
                    .is_err()),
                "{name} as {special}"
            );
            let d2 = dir.clone();
            assert!(within(name, move || verify(&d2, None).is_err()));
            let d2 = dir.clone();
            assert!(within(name, move || citadel_audit::log::LogReader::open(
                &d2
            )
            .is_err()));
        }
    }
}

/// F3: two writers at once interleaved records and corrupted the log; the
/// second is refused, and a reader meanwhile changes nothing.
#[test]
fn one_writer_at_a_time_and_readers_change_nothing_meanwhile() {
    let (_d, dir) = new_log(5, None);
    let mut a = AuditLog::open(&dir, Durability::EveryAppend).unwrap();
    a.append(&entry(5)).unwrap();
    assert!(matches!(
        AuditLog::open(&dir, Durability::EveryAppend),
        Err(Error::Busy(_))
    ));
    assert!(matches!(
        citadel_audit::verify::repair(&dir),
        Err(Error::Busy(_))
    ));
    let tree0 = fs::read(dir.join("tree/00.bin")).unwrap();
    let mut r = AuditLog::open_read(&dir).unwrap();
    assert!(r.is_live());
    assert_eq!(r.size(), 6);
    assert_eq!(r.entry(5).unwrap(), entry(5));
    assert!(r.append(&entry(6)).is_err());
    drop(r);
    assert_eq!(fs::read(dir.join("tree/00.bin")).unwrap(), tree0);
    a.append(&entry(6)).unwrap();
    drop(a);
    let mut b = AuditLog::open(&dir, Durability::EveryAppend).unwrap();
    assert_eq!(b.size(), 7);
    b.append(&entry(7)).unwrap();
    drop(b);
    assert_eq!(verify(&dir, None).unwrap().entries, 8);
}

fn mark(size: u64) -> Vec<u8> {
    let mut b = size.to_be_bytes().to_vec();
    b.extend_from_slice(&crc32fast_hash(&size.to_be_bytes()).to_be_bytes());
    b.extend_from_slice(b"ACK\n");
    b
}

/// F4: only `LOG/checkpoint` bounded the log, not the newest checkpoint in
/// `LOG/checkpoints/`; F6: a garbled `LOG/checkpoint` blocked the log with
/// no way back but by hand. `repair` restores the bookkeeping, never below
/// a checkpoint.
#[test]
fn every_checkpoint_bounds_the_log_and_repair_restores_the_bookkeeping() {
    let (_d, dir) = new_log(10, None);
    let mut log = AuditLog::open(&dir, Durability::EveryAppend).unwrap();
    log.checkpoint().unwrap();
    drop(log);
    let seg = segments(&dir).pop().unwrap();
    let full = fs::read(&seg).unwrap();
    let (at, _) = record_offsets(&seg)[8];
    fs::write(&seg, &full[..at]).unwrap();
    fs::remove_file(dir.join("checkpoint")).unwrap();
    fs::write(dir.join("acked"), mark(5)).unwrap();
    assert_eq!(
        corrupt_at(AuditLog::open(&dir, Durability::EveryAppend)),
        Some(8)
    );
    assert!(
        citadel_audit::verify::repair(&dir).is_err(),
        "not below a checkpoint"
    );
    fs::write(&seg, &full).unwrap();
    fs::write(dir.join("checkpoint"), b"garbage\n").unwrap();
    assert_eq!(
        corrupt_at(AuditLog::open(&dir, Durability::EveryAppend)),
        None
    );
    assert!(citadel_audit::log::LogReader::open(&dir).is_err());
    let r = citadel_audit::verify::repair(&dir).unwrap();
    assert!(r.checkpoint_restored);
    assert_eq!((r.mark_before, r.report.entries), (Some(5), 10));
    assert_eq!(fs::read(dir.join("acked")).unwrap(), mark(10));
    let mut log = AuditLog::open(&dir, Durability::EveryAppend).unwrap();
    assert_eq!(
        log.latest_checkpoint()
            .unwrap()
            .unwrap()
            .checkpoint()
            .size(),
        10
    );
    log.append(&entry(10)).unwrap();
}

/// F7: zeros after the last record beyond the acknowledged entries (what a
/// crash leaves where blocks were allocated) are a torn tail for verify as
/// for the writer that cuts them.
#[test]
fn zeros_beyond_the_acknowledged_entries_are_a_torn_tail_for_everyone() {
    let (_d, dir) = new_log(4, None);
    let seg = segments(&dir).pop().unwrap();
    let mut b = fs::read(&seg).unwrap();
    let len = b.len() as u64;
    b.extend_from_slice(&[0u8; 4096]);
    fs::write(&seg, &b).unwrap();
    assert_eq!(verify(&dir, None).unwrap().torn_tail_bytes, 4096);
    drop(AuditLog::open(&dir, Durability::EveryAppend).unwrap());
    assert_eq!(fs::metadata(&seg).unwrap().len(), len);
    assert_eq!(verify(&dir, None).unwrap().torn_tail_bytes, 0);
}

// Issue 12, the third attack on the log (an insider who can write the log's
// directory but not its keys).

fn leaf_slot(dir: &Path, i: u64, h: [u8; 32]) {
    let mut t = fs::read(dir.join("tree/00.bin")).unwrap();
    t[i as usize * 32..i as usize * 32 + 32].copy_from_slice(&h);
    fs::write(dir.join("tree/00.bin"), t).unwrap();
}

fn true_root(n: u64) -> [u8; 32] {
    let mut t = MemoryTree::new();
    for i in 0..n {
        t.push_entry(&entry(i));
    }
    t.current_root()
}

/// Finding 1: one forged upper-level node (covering a checkpoint's size
/// and beyond) made the next checkpoint sign a forked root. The writer now
/// rebuilds from the newest checkpoint on, from the segments.
#[test]
fn a_forged_tree_node_never_reaches_a_signature() {
    let (_d, dir) = new_log(3, Some(300));
    let mut log = AuditLog::open(&dir, Durability::EveryAppend).unwrap();
    log.checkpoint().unwrap();
    for i in 3..8 {
        log.append(&entry(i)).unwrap();
    }
    log.close().unwrap();
    let mut forged = fs::read(dir.join("tree/02.bin")).unwrap();
    forged[..32].copy_from_slice(&[7u8; 32]);
    fs::write(dir.join("tree/02.bin"), forged).unwrap();
    let mut log = AuditLog::open(&dir, Durability::EveryAppend).unwrap();
    let c = log.checkpoint().unwrap();
    assert_eq!(*c.checkpoint().root(), true_root(8));
    drop(log);
    verify(&dir, None).unwrap();
}

/// Finding 2: the fork check trusted the files an insider can rename; the
/// copy kept beside the keys still holds the newest checkpoint signed.
#[test]
fn renamed_checkpoints_do_not_make_the_log_look_younger() {
    let (_d, dir) = new_log(3, None);
    let mut log = AuditLog::open(&dir, Durability::EveryAppend).unwrap();
    let c1 = log.checkpoint().unwrap();
    for i in 3..8 {
        log.append(&entry(i)).unwrap();
    }
    log.checkpoint().unwrap();
    drop(log);
    let cps = dir.join("checkpoints");
    fs::rename(
        cps.join(format!("{:020}.txt", 8)),
        cps.join(format!("{:020}.txt", 0)),
    )
    .unwrap();
    fs::write(dir.join("checkpoint"), c1.to_text()).unwrap();
    let seg = segments(&dir).pop().unwrap();
    rewrite_entry(&seg, 5);
    let b = fs::read(&seg).unwrap();
    let (at, len) = record_offsets(&seg)[5];
    leaf_slot(&dir, 5, leaf_hash(&b[at + 12..at + len - 4]));
    assert_eq!(
        corrupt_at(AuditLog::open(&dir, Durability::EveryAppend)),
        None
    );
    assert!(verify(&dir, None).is_err());
}

/// Finding 3: a keys directory someone else put in place (or one others
/// can write in) is refused before a key is read from it.
#[test]
fn the_keys_directory_must_be_this_users_own() {
    use std::os::unix::fs::PermissionsExt;
    let (_d, dir) = new_log(2, None);
    fs::set_permissions(dir.join("keys"), fs::Permissions::from_mode(0o777)).unwrap();
    assert!(matches!(
        AuditLog::open(&dir, Durability::EveryAppend),
        Err(Error::Setup(_))
    ));
    fs::set_permissions(dir.join("keys"), fs::Permissions::from_mode(0o700)).unwrap();
    drop(AuditLog::open(&dir, Durability::EveryAppend).unwrap());
    if rustix_euid() == 0 {
        std::os::unix::fs::chown(dir.join("keys"), Some(4242), None).unwrap();
        assert!(matches!(
            AuditLog::open(&dir, Durability::EveryAppend),
            Err(Error::Setup(_))
        ));
    }
}

fn rustix_euid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    let d = tempfile::tempdir().unwrap();
    fs::metadata(d.path()).unwrap().uid()
}

/// Finding 4: a repair went below a valid checkpoint that survived only in
/// `LOG/checkpoint`.
#[test]
fn repair_never_goes_below_any_valid_checkpoint() {
    let (_d, dir) = new_log(3, None);
    let mut log = AuditLog::open(&dir, Durability::EveryAppend).unwrap();
    log.checkpoint().unwrap();
    for i in 3..8 {
        log.append(&entry(i)).unwrap();
    }
    log.checkpoint().unwrap();
    drop(log);
    fs::remove_file(dir.join(format!("checkpoints/{:020}.txt", 8))).unwrap();
    fs::remove_file(dir.join("keys/checkpoint")).unwrap();
    let seg = segments(&dir).pop().unwrap();
    let (at, _) = record_offsets(&seg)[5];
    let b = fs::read(&seg).unwrap();
    fs::write(&seg, &b[..at]).unwrap();
    assert!(matches!(
        citadel_audit::verify::repair(&dir),
        Err(Error::Corrupt { .. })
    ));
    assert!(
        fs::read_to_string(dir.join("checkpoint"))
            .unwrap()
            .contains("\n8\n")
    );
}

/// Finding 9: a hard link planted at a file the writer writes pointed it
/// at a file elsewhere.
#[test]
fn a_hard_link_in_the_log_is_never_written() {
    for name in [
        "index.bin",
        "acked",
        "tree/00.bin",
        "segments/00000000000000000000.seg",
    ] {
        let (d, dir) = new_log(4, None);
        let victim = d.path().join("victim");
        fs::copy(dir.join(name), &victim).unwrap();
        let before = fs::read(&victim).unwrap();
        fs::remove_file(dir.join(name)).unwrap();
        fs::hard_link(&victim, dir.join(name)).unwrap();
        assert!(
            AuditLog::open(&dir, Durability::EveryAppend).is_err(),
            "{name}"
        );
        let _ = AuditLog::open_read(&dir);
        assert_eq!(fs::read(&victim).unwrap(), before, "{name}");
    }
}

/// Findings 7 and 8: readers beside a writer that rolls segments never see
/// a false truncation, and nobody but the owner can take the writer's lock
/// (a shared lock on the directory, as anyone who can read it could take,
/// does not stop a writer).
#[test]
fn readers_beside_a_rolling_writer_and_locks_others_cannot_take() {
    let (_d, dir) = new_log(0, Some(300));
    let held = std::process::Command::new("flock")
        .args(["-s"])
        .arg(&dir)
        .args(["sleep", "30"])
        .spawn();
    let writer_dir = dir.clone();
    let writer = std::thread::spawn(move || {
        let mut log = AuditLog::open(&writer_dir, Durability::EveryAppend).unwrap();
        for i in 0..400 {
            log.append(&entry(i)).unwrap();
        }
    });
    let mut opened = 0;
    while !writer.is_finished() {
        let r = citadel_audit::log::LogReader::open(&dir).unwrap();
        assert!(r.size() <= 400);
        opened += 1;
    }
    writer.join().unwrap();
    assert!(opened > 0);
    if let Ok(mut h) = held {
        let _ = h.kill();
        let _ = h.wait();
    }
    assert_eq!(verify(&dir, None).unwrap().entries, 400);
}

/// Findings 1-3 of the fourth attack: `keys/` was looked up by name for
/// the ownership check and again for each read, so an insider who swapped
/// directories in between had sensitive fields HMACed under a key they
/// know (13 of 63 appends). The directory is now opened once, and that
/// handle is checked and read.
#[test]
fn a_keys_directory_swapped_in_meanwhile_is_never_used() {
    use std::sync::atomic::{AtomicBool, Ordering};
    if rustix_euid() != 0 {
        return; // another user's directory needs root to make
    }
    let (d, dir) = new_log(0, None);
    let evil = d.path().join("evil");
    fs::create_dir(&evil).unwrap();
    for k in ["ed25519.skey", "ml-dsa-65.skey"] {
        fs::copy(dir.join("keys").join(k), evil.join(k)).unwrap();
    }
    fs::write(evil.join("hmac.key"), "00".repeat(32)).unwrap();
    for e in fs::read_dir(&evil).unwrap() {
        std::os::unix::fs::chown(e.unwrap().path(), Some(4242), Some(4242)).unwrap();
    }
    std::os::unix::fs::chown(&evil, Some(4242), Some(4242)).unwrap();
    let real_key = {
        let log = AuditLog::open(&dir, Durability::EveryAppend).unwrap();
        log.hmac_key().unwrap()
    };
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let swapper = {
        let (stop, dir, evil, aside) = (
            stop.clone(),
            dir.clone(),
            evil.clone(),
            d.path().join("aside"),
        );
        std::thread::spawn(move || {
            let pause = |us| std::thread::sleep(std::time::Duration::from_micros(us));
            while !stop.load(Ordering::Relaxed) {
                pause(300);
                fs::rename(dir.join("keys"), &aside).unwrap();
                fs::rename(&evil, dir.join("keys")).unwrap();
                pause(100);
                fs::rename(dir.join("keys"), &evil).unwrap();
                fs::rename(&aside, dir.join("keys")).unwrap();
            }
        })
    };
    let mut appended = 0;
    for _ in 0..300 {
        let mut log = match AuditLog::open(&dir, Durability::EveryAppend) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("{e}");
                continue;
            }
        };
        let k = log.hmac_key().unwrap();
        let e = serde_json::json!({"action": "login", "time": "2026-12-07T00:00:00Z", "details": {"password": "hunter2"}});
        log.append_entry(e, &["details.password".into()], &k)
            .unwrap();
        appended += 1;
    }
    stop.store(true, Ordering::Relaxed);
    swapper.join().unwrap();
    let want = citadel_audit::entry::hmac_value(&real_key, &serde_json::json!("hunter2"));
    let r = citadel_audit::log::LogReader::open(&dir).unwrap();
    let mut seen = 0;
    r.scan(0, |_, e| {
        let v: serde_json::Value = serde_json::from_slice(e).unwrap();
        assert_eq!(
            v["details"]["password"],
            serde_json::json!(want),
            "HMACed under another key"
        );
        seen += 1;
        true
    })
    .unwrap();
    assert_eq!(seen, appended);
    assert!(appended > 0, "no append went through beside the swaps");
}

/// Finding 3 of the fourth attack: with `keys/` renamed away, the key
/// holder's verify no longer saw the copy of the newest checkpoint kept
/// there, and passed over a rollback. A missing `keys/`, or one that is
/// not the log owner's, is now damage.
#[test]
fn verify_needs_the_owners_keys_directory() {
    let (d, dir) = new_log(3, None);
    let mut log = AuditLog::open(&dir, Durability::EveryAppend).unwrap();
    log.checkpoint().unwrap();
    drop(log);
    fs::rename(dir.join("keys"), d.path().join("keys-aside")).unwrap();
    assert!(matches!(verify(&dir, None), Err(Error::Corrupt { .. })));
    assert!(AuditLog::open(&dir, Durability::EveryAppend).is_err());
    fs::rename(d.path().join("keys-aside"), dir.join("keys")).unwrap();
    verify(&dir, None).unwrap();
    if rustix_euid() == 0 {
        fs::rename(dir.join("keys"), d.path().join("keys-aside")).unwrap();
        fs::create_dir(dir.join("keys")).unwrap();
        std::os::unix::fs::chown(dir.join("keys"), Some(4242), Some(4242)).unwrap();
        assert!(matches!(verify(&dir, None), Err(Error::Corrupt { .. })));
    }
}

/// A kill during a segment roll or a checkpoint left `*.tmp` files that
/// stayed forever; opening for writing removes them.
#[test]
fn temporary_files_a_crash_left_are_removed() {
    let (_d, dir) = new_log(2, None);
    let stale = [
        dir.join("segments/00000000000000000002.seg.tmp"),
        dir.join("checkpoints/00000000000000000002.txt.tmp"),
    ];
    for f in &stale {
        fs::write(f, b"half").unwrap();
    }
    verify(&dir, None).unwrap();
    drop(AuditLog::open(&dir, Durability::EveryAppend).unwrap());
    for f in &stale {
        assert!(!f.exists(), "{}", f.display());
    }
}
