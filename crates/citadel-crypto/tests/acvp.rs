//! Known-answer tests from NIST's ACVP server and from C2SP's CCTV ML-KEM vectors.
//!
//! Every test case of every test group of these files is run, and each test
//! asserts that the number of cases it checked equals the number of cases in
//! the file, so nothing is skipped silently:
//!
//! * `data/acvp/ML-KEM-keyGen-FIPS203.json`: `ML-KEM.KeyGen_internal(d, z)`
//!   gives the expected `ek` and expanded `dk`.
//! * `data/acvp/ML-KEM-encapDecap-FIPS203.json`: `ML-KEM.Encaps_internal(ek, m)`
//!   gives the expected `(c, K)` and decapsulating `c` gives `K` back (AFT
//!   groups); decapsulation of valid and modified ciphertexts gives the expected
//!   `K`, the implicit-rejection key for the modified ones (VAL groups).
//! * `data/acvp/ML-DSA-{keyGen,sigGen,sigVer}-FIPS204.json`: key generation
//!   from ξ, deterministic and hedged signing (exact signature match) and
//!   verification (accept iff `testPassed`).
//! * `data/acvp/SLH-DSA-{keyGen,sigGen,sigVer}-FIPS205.json`: the same for
//!   SLH-DSA (`opt_rand` = PK.seed when deterministic, `additionalRandomness`
//!   otherwise).
//! * `data/cctv-mlkem/{strcmp,unluckysample,intermediate}/ML-KEM-*.txt`
//!   (<https://c2sp.org/CCTV/ML-KEM>): decapsulation of ciphertexts whose
//!   re-encryption differs only after a zero byte (a `strcmp` comparison would
//!   accept them), of keys whose matrix sampling needs unusually many XOF
//!   reads, and of the key and ciphertext of the intermediate-value
//!   walkthrough. These files follow the FIPS 203 initial public draft, so only
//!   their decapsulation values apply to final FIPS 203; see
//!   `cctv_decapsulation`.
//!
//! The ACVP files are the prerelease-format vector sets (no `signatureInterface`
//! field); see [`ML_DSA_INTERFACE`] and [`SLH_DSA_INTERFACE`] for which FIPS
//! 204/205 interface they exercise and how that was established.

use citadel_crypto::kem::{DecapsulationKey, EncapsulationKey};
use citadel_crypto::sig::{self, SigningKey, VerifyingKey};
use citadel_crypto::{Algorithm, Result};
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

// ---------------------------------------------------------------------------
// Plumbing
// ---------------------------------------------------------------------------

/// Hex-encoded bytes in a vector file.
#[derive(Clone)]
struct Hex(Vec<u8>);

impl<'de> Deserialize<'de> for Hex {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        hex::decode(&s).map(Hex).map_err(D::Error::custom)
    }
}

impl std::ops::Deref for Hex {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

fn data_path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(relative)
}

#[derive(Deserialize)]
struct AcvpFile<G> {
    #[serde(rename = "testGroups")]
    test_groups: Vec<G>,
}

/// Loads an ACVP file: its typed test groups and, counted independently on the
/// raw JSON, the total number of test cases it holds.
fn load<G: DeserializeOwned>(name: &str) -> (Vec<G>, usize) {
    let path = data_path(&format!("acvp/{name}"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let raw: serde_json::Value = serde_json::from_str(&text).expect("vector file is JSON");
    let total = raw["testGroups"]
        .as_array()
        .expect("testGroups is an array")
        .iter()
        .map(|g| g["tests"].as_array().expect("tests is an array").len())
        .sum();
    let file: AcvpFile<G> =
        serde_json::from_value(raw).expect("vector file has the expected shape");
    (file.test_groups, total)
}

/// Maps an ACVP `parameterSet` such as `ML-KEM-768` or `SLH-DSA-SHAKE-256f`.
fn algorithm(parameter_set: &str) -> Algorithm {
    parameter_set
        .to_ascii_lowercase()
        .parse()
        .unwrap_or_else(|e| panic!("parameter set {parameter_set}: {e}"))
}

/// Collects mismatches so that a run reports every failing case, not just the first.
#[derive(Default)]
struct Report {
    checked: usize,
    failures: Vec<String>,
}

impl Report {
    fn fail(&mut self, case: &str, what: impl std::fmt::Display) {
        self.failures.push(format!("{case}: {what}"));
    }

    fn bytes(&mut self, case: &str, what: &str, got: &[u8], want: &[u8]) {
        if got != want {
            let at = got.iter().zip(want).position(|(a, b)| a != b);
            self.fail(
                case,
                format!(
                    "{what} differs (got {} bytes, want {}; first difference at {at:?})",
                    got.len(),
                    want.len()
                ),
            );
        }
    }

    /// Asserts that no case failed and that exactly `total` cases were checked.
    fn finish(self, file: &str, total: usize) {
        let mut msg = String::new();
        for f in &self.failures {
            let _ = writeln!(msg, "  {f}");
        }
        assert!(
            self.failures.is_empty(),
            "{file}: {} of {} cases failed:\n{msg}",
            self.failures.len(),
            self.checked
        );
        assert_eq!(
            self.checked, total,
            "{file}: not every test case was checked"
        );
        assert!(total > 0, "{file}: no test cases");
        eprintln!("{file}: {total} cases passed");
    }
}

// ---------------------------------------------------------------------------
// Signature interfaces
// ---------------------------------------------------------------------------

/// Which FIPS 204/205 signing interface a vector set exercises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Interface {
    /// `Sign_internal`/`Verify_internal` (`slh_sign_internal`/`slh_verify_internal`):
    /// the vector's message is the formatted message M′ itself.
    Internal,
    /// The pure external interface with an empty context: M′ = 0x00 ‖ 0x00 ‖ M.
    External,
}

/// The ACVP ML-DSA sigGen/sigVer files exercise the **internal** interface.
///
/// The files carry no `signatureInterface`, `preHash` or `context` fields, so
/// this was established empirically with a one-off probe over the whole files:
/// `sig::internal::sign` with the message taken as M′ reproduced all 60 sigGen
/// signatures byte for byte, while the external pure interface with an empty
/// context (`SigningKey::sign_with_randomness(msg, b"", ..)`) reproduced none
/// of them; for sigVer, `sig::internal::verify` agreed with `testPassed` on all
/// 45 cases, while `VerifyingKey::verify(msg, b"", ..)` rejected every valid
/// signature. `mldsa_sig_gen` keeps re-checking this: for the first case of
/// each group it asserts that the external interface does *not* reproduce the
/// expected signature.
const ML_DSA_INTERFACE: Interface = Interface::Internal;

/// The ACVP SLH-DSA sigGen/sigVer files exercise the **internal** interface.
///
/// Established the same way as [`ML_DSA_INTERFACE`]: `sig::internal::sign`
/// with the message as M′ reproduces all 88 sigGen signatures, while the
/// external pure interface with an empty context reproduced none of the 60
/// cases of the fast ("f") parameter sets that the probe signed; for sigVer
/// the internal interface agreed with `testPassed` on all 45 cases, the
/// external one rejected every valid signature. `slhdsa_sig_gen` re-checks
/// this on the first SLH-DSA-SHAKE-128f case (the cheapest to sign).
const SLH_DSA_INTERFACE: Interface = Interface::Internal;

/// Signs through `iface`. `rnd` is FIPS 204's `rnd` (32 bytes) or FIPS 205's
/// `opt_rand` (n bytes); `None` is the deterministic variant.
fn sign(iface: Interface, key: &SigningKey, msg: &[u8], rnd: Option<&[u8]>) -> Result<Vec<u8>> {
    match iface {
        Interface::Internal => sig::internal::sign(key, msg, rnd),
        Interface::External => {
            let padded = rnd.map(|r| {
                // The external API takes 32 bytes and uses the first n for SLH-DSA.
                let mut buf = [0u8; 32];
                buf[..r.len()].copy_from_slice(r);
                buf
            });
            key.sign_with_randomness(msg, b"", padded.as_ref())
        }
    }
}

fn verify(iface: Interface, key: &VerifyingKey, msg: &[u8], signature: &[u8]) -> Result<()> {
    match iface {
        Interface::Internal => sig::internal::verify(key, msg, signature),
        Interface::External => key.verify(msg, b"", signature),
    }
}

// ---------------------------------------------------------------------------
// ML-KEM (FIPS 203)
// ---------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MlKemKeyGenGroup {
    tg_id: u32,
    parameter_set: String,
    tests: Vec<MlKemKeyGenCase>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MlKemKeyGenCase {
    tc_id: u32,
    d: Hex,
    z: Hex,
    ek: Hex,
    dk: Hex,
}

#[test]
fn mlkem_keygen() {
    const FILE: &str = "ML-KEM-keyGen-FIPS203.json";
    let (groups, total) = load::<MlKemKeyGenGroup>(FILE);
    let mut r = Report::default();
    for g in &groups {
        let alg = algorithm(&g.parameter_set);
        for t in &g.tests {
            let case = format!("tg {} tc {} ({alg})", g.tg_id, t.tc_id);
            let seed = [&t.d[..], &t.z[..]].concat();
            match DecapsulationKey::from_seed(alg, &seed) {
                Ok(dk) => {
                    r.bytes(&case, "ek", &dk.encapsulation_key().to_bytes(), &t.ek);
                    r.bytes(&case, "dk", dk.expanded().expose(), &t.dk);
                }
                Err(e) => r.fail(&case, format!("from_seed: {e}")),
            }
            r.checked += 1;
        }
    }
    r.finish(FILE, total);
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MlKemEncapDecapGroup {
    tg_id: u32,
    parameter_set: String,
    function: String,
    /// Present on decapsulation (VAL) groups.
    ek: Option<Hex>,
    /// Present on decapsulation (VAL) groups.
    dk: Option<Hex>,
    tests: Vec<MlKemEncapDecapCase>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MlKemEncapDecapCase {
    tc_id: u32,
    /// Present on encapsulation (AFT) cases.
    ek: Option<Hex>,
    /// Present on encapsulation (AFT) cases.
    dk: Option<Hex>,
    /// Present on encapsulation (AFT) cases.
    m: Option<Hex>,
    c: Hex,
    k: Hex,
    reason: String,
}

fn decapsulates_to(r: &mut Report, case: &str, alg: Algorithm, dk: &[u8], c: &[u8], k: &[u8]) {
    match DecapsulationKey::from_expanded(alg, dk) {
        Ok(dk) => match dk.decapsulate(c) {
            Ok(got) => r.bytes(case, "decapsulated K", got.expose(), k),
            Err(e) => r.fail(case, format!("decapsulate: {e}")),
        },
        Err(e) => r.fail(case, format!("from_expanded: {e}")),
    }
}

#[test]
fn mlkem_encap_decap() {
    const FILE: &str = "ML-KEM-encapDecap-FIPS203.json";
    let (groups, total) = load::<MlKemEncapDecapGroup>(FILE);
    let (mut encaps, mut decaps) = (0, 0);
    let mut r = Report::default();
    for g in &groups {
        let alg = algorithm(&g.parameter_set);
        match g.function.as_str() {
            "encapsulation" => {
                for t in &g.tests {
                    let case = format!("tg {} tc {} ({alg}, encapsulation)", g.tg_id, t.tc_id);
                    let (ek, dk, m) = (
                        t.ek.as_ref().expect("ek"),
                        t.dk.as_ref().expect("dk"),
                        t.m.as_ref().expect("m"),
                    );
                    let m: [u8; 32] = m[..].try_into().expect("m is 32 bytes");
                    match EncapsulationKey::from_bytes(alg, ek) {
                        Ok(ek) => {
                            let (c, k) = ek.encapsulate_deterministic(&m);
                            r.bytes(&case, "c", &c, &t.c);
                            r.bytes(&case, "K", k.expose(), &t.k);
                        }
                        Err(e) => r.fail(&case, format!("EncapsulationKey::from_bytes: {e}")),
                    }
                    decapsulates_to(&mut r, &case, alg, dk, &t.c, &t.k);
                    encaps += 1;
                    r.checked += 1;
                }
            }
            "decapsulation" => {
                let dk = g.dk.as_ref().expect("decapsulation group has dk");
                let ek = g.ek.as_ref().expect("decapsulation group has ek");
                for t in &g.tests {
                    let case = format!(
                        "tg {} tc {} ({alg}, decapsulation, {})",
                        g.tg_id, t.tc_id, t.reason
                    );
                    decapsulates_to(&mut r, &case, alg, dk, &t.c, &t.k);
                    match DecapsulationKey::from_expanded(alg, dk) {
                        Ok(dk) => r.bytes(&case, "ek", &dk.encapsulation_key().to_bytes(), ek),
                        Err(e) => r.fail(&case, format!("from_expanded: {e}")),
                    }
                    decaps += 1;
                    r.checked += 1;
                }
            }
            other => panic!("tg {}: unknown function {other}", g.tg_id),
        }
    }
    assert!(
        encaps > 0 && decaps > 0,
        "{FILE}: both functions must be exercised"
    );
    r.finish(FILE, total);
}

/// One CCTV text file: `name = value` lines, in order (names may repeat in the
/// intermediate-value files, so lookups insist on a unique name).
struct Cctv {
    name: String,
    entries: Vec<(String, String)>,
}

impl Cctv {
    fn load(dir: &str, alg: Algorithm) -> Self {
        let file = format!("{}.txt", alg.name().to_ascii_uppercase());
        let path = data_path(&format!("cctv-mlkem/{dir}/{file}"));
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let entries = text
            .lines()
            .filter_map(|l| l.split_once(" = "))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        Self {
            name: format!("cctv-mlkem/{dir}/{file}"),
            entries,
        }
    }

    fn get(&self, key: &str) -> Vec<u8> {
        let mut found = self.entries.iter().filter(|(k, _)| k == key);
        let (_, v) = found
            .next()
            .unwrap_or_else(|| panic!("{}: no `{key}`", self.name));
        assert!(
            found.next().is_none(),
            "{}: `{key}` appears twice",
            self.name
        );
        hex::decode(v).unwrap_or_else(|e| panic!("{}: `{key}` is not hex: {e}", self.name))
    }
}

const ML_KEM_ALGS: [Algorithm; 3] = [
    Algorithm::MlKem512,
    Algorithm::MlKem768,
    Algorithm::MlKem1024,
];

/// Checks one CCTV vector that gives `ek`, `dk`, `c` and `K`: the expanded key
/// imports, embeds `ek`, and decapsulates `c` to `K`.
///
/// The `d`, `z` and `m` these files also give are deliberately not used. The
/// CCTV vectors predate final FIPS 203 (see their README: they follow the
/// October 2023 ipd values), and two steps changed since: K-PKE.KeyGen now
/// hashes `d ‖ k` rather than `d` (so `d ‖ z` derives a different key), and
/// ML-KEM.Encaps no longer replaces `m` with `H(m)` (so `m` encapsulates to a
/// different ciphertext). Decapsulation is unchanged, and it re-runs
/// K-PKE.Encrypt, which re-expands the matrix from ρ: it still exercises the
/// unusually long SampleNTT rejection runs of the "unlucky" keys.
fn cctv_decapsulation(r: &mut Report, v: &Cctv, alg: Algorithm) {
    let case = v.name.as_str();
    let (ek, dk, c, k) = (v.get("ek"), v.get("dk"), v.get("c"), v.get("K"));
    if let Err(e) = EncapsulationKey::from_bytes(alg, &ek) {
        r.fail(case, format!("EncapsulationKey::from_bytes: {e}"));
    }
    match DecapsulationKey::from_expanded(alg, &dk) {
        Ok(key) => r.bytes(case, "ek", &key.encapsulation_key().to_bytes(), &ek),
        Err(e) => r.fail(case, format!("from_expanded: {e}")),
    }
    decapsulates_to(r, case, alg, &dk, &c, &k);
    r.checked += 1;
}

#[test]
fn cctv_mlkem_strcmp() {
    let mut r = Report::default();
    for alg in ML_KEM_ALGS {
        let v = Cctv::load("strcmp", alg);
        // c is invalid: its re-encryption matches it only up to a zero byte, so
        // decapsulation must return the implicit-rejection key K.
        decapsulates_to(&mut r, &v.name, alg, &v.get("dk"), &v.get("c"), &v.get("K"));
        r.checked += 1;
    }
    r.finish("cctv-mlkem/strcmp", ML_KEM_ALGS.len());
}

#[test]
fn cctv_mlkem_unlucky_sample() {
    let mut r = Report::default();
    for alg in ML_KEM_ALGS {
        cctv_decapsulation(&mut r, &Cctv::load("unluckysample", alg), alg);
    }
    r.finish("cctv-mlkem/unluckysample", ML_KEM_ALGS.len());
}

#[test]
fn cctv_mlkem_intermediate() {
    let mut r = Report::default();
    for alg in ML_KEM_ALGS {
        cctv_decapsulation(&mut r, &Cctv::load("intermediate", alg), alg);
    }
    r.finish("cctv-mlkem/intermediate", ML_KEM_ALGS.len());
}

// ---------------------------------------------------------------------------
// ML-DSA (FIPS 204)
// ---------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MlDsaKeyGenGroup {
    tg_id: u32,
    parameter_set: String,
    tests: Vec<MlDsaKeyGenCase>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MlDsaKeyGenCase {
    tc_id: u32,
    seed: Hex,
    pk: Hex,
    sk: Hex,
}

#[test]
fn mldsa_keygen() {
    const FILE: &str = "ML-DSA-keyGen-FIPS204.json";
    let (groups, total) = load::<MlDsaKeyGenGroup>(FILE);
    let mut r = Report::default();
    for g in &groups {
        let alg = algorithm(&g.parameter_set);
        for t in &g.tests {
            let case = format!("tg {} tc {} ({alg})", g.tg_id, t.tc_id);
            match SigningKey::from_seed(alg, &t.seed) {
                Ok(key) => {
                    r.bytes(&case, "pk", key.verifying_key().as_bytes(), &t.pk);
                    r.bytes(&case, "sk", key.expanded().expose(), &t.sk);
                }
                Err(e) => r.fail(&case, format!("from_seed: {e}")),
            }
            // The expanded key imports and yields the same public key.
            match SigningKey::from_expanded(alg, &t.sk) {
                Ok(key) => r.bytes(&case, "pk from sk", key.verifying_key().as_bytes(), &t.pk),
                Err(e) => r.fail(&case, format!("from_expanded: {e}")),
            }
            r.checked += 1;
        }
    }
    r.finish(FILE, total);
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SigGenGroup {
    tg_id: u32,
    parameter_set: String,
    deterministic: bool,
    tests: Vec<SigGenCase>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SigGenCase {
    tc_id: u32,
    sk: Hex,
    message: Hex,
    /// ML-DSA's `rnd` (hedged groups only).
    rnd: Option<Hex>,
    /// SLH-DSA's `opt_rand` (non-deterministic groups only).
    additional_randomness: Option<Hex>,
    signature: Hex,
}

impl SigGenCase {
    /// The signing randomness, checked against the group's `deterministic` flag.
    fn randomness(&self, group: &SigGenGroup) -> Option<&[u8]> {
        let rnd = self.rnd.as_ref().or(self.additional_randomness.as_ref());
        assert_eq!(
            rnd.is_none(),
            group.deterministic,
            "tg {} tc {}: randomness present iff the group is not deterministic",
            group.tg_id,
            self.tc_id
        );
        rnd.map(|r| &r[..])
    }
}

/// What one sigGen group contributed.
#[derive(Default)]
struct SigGenOutcome {
    report: Report,
    deterministic: usize,
    randomized: usize,
    cross_checked: usize,
}

/// Signs every case of one sigGen group through `iface`. When `cross_check`
/// picks a case, that case is also signed through the other interface, which
/// must *not* reproduce the expected signature (this pins down which interface
/// the vectors use).
fn sig_gen_group(
    g: &SigGenGroup,
    iface: Interface,
    cross_check: &(impl Fn(&SigGenGroup, usize) -> bool + Sync),
) -> SigGenOutcome {
    let other = match iface {
        Interface::Internal => Interface::External,
        Interface::External => Interface::Internal,
    };
    let alg = algorithm(&g.parameter_set);
    let started = std::time::Instant::now();
    let mut out = SigGenOutcome::default();
    let r = &mut out.report;
    for (i, t) in g.tests.iter().enumerate() {
        let case = format!(
            "tg {} tc {} ({alg}, {})",
            g.tg_id,
            t.tc_id,
            if g.deterministic {
                "deterministic"
            } else {
                "randomized"
            }
        );
        let rnd = t.randomness(g);
        match SigningKey::from_expanded(alg, &t.sk) {
            Ok(key) => {
                match sign(iface, &key, &t.message, rnd) {
                    Ok(s) => r.bytes(&case, "signature", &s, &t.signature),
                    Err(e) => r.fail(&case, format!("sign: {e}")),
                }
                if let Err(e) = verify(iface, &key.verifying_key(), &t.message, &t.signature) {
                    r.fail(
                        &case,
                        format!("the expected signature does not verify: {e}"),
                    );
                }
                if cross_check(g, i) {
                    match sign(other, &key, &t.message, rnd) {
                        Ok(s) if s[..] == t.signature[..] => r.fail(
                            &case,
                            format!("the {other:?} interface reproduces the signature too"),
                        ),
                        Ok(_) => {}
                        Err(e) => r.fail(&case, format!("sign through {other:?}: {e}")),
                    }
                    out.cross_checked += 1;
                }
            }
            Err(e) => r.fail(&case, format!("from_expanded: {e}")),
        }
        if g.deterministic {
            out.deterministic += 1;
        } else {
            out.randomized += 1;
        }
        r.checked += 1;
    }
    eprintln!(
        "  tg {} ({alg}, {}): {} cases in {:.1?}",
        g.tg_id,
        if g.deterministic {
            "deterministic"
        } else {
            "randomized"
        },
        g.tests.len(),
        started.elapsed()
    );
    out
}

/// Runs a sigGen file through `iface`, one group at a time on each available
/// core (SLH-DSA signing is slow), then checks the totals.
fn sig_gen(file: &str, iface: Interface, cross_check: impl Fn(&SigGenGroup, usize) -> bool + Sync) {
    let (groups, total) = load::<SigGenGroup>(file);
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let next = AtomicUsize::new(0);
    let outcomes: Vec<SigGenOutcome> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers.min(groups.len()))
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    while let Some(g) = groups.get(next.fetch_add(1, Ordering::Relaxed)) {
                        done.push(sig_gen_group(g, iface, &cross_check));
                    }
                    done
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a sigGen worker panicked"))
            .collect()
    });
    let mut all = SigGenOutcome::default();
    for o in outcomes {
        all.report.checked += o.report.checked;
        all.report.failures.extend(o.report.failures);
        all.deterministic += o.deterministic;
        all.randomized += o.randomized;
        all.cross_checked += o.cross_checked;
    }
    assert!(
        all.deterministic > 0 && all.randomized > 0,
        "{file}: both deterministic and randomized groups must be exercised"
    );
    assert!(
        all.cross_checked > 0,
        "{file}: the interface cross-check never ran"
    );
    all.report.finish(file, total);
}

#[test]
fn mldsa_sig_gen() {
    sig_gen("ML-DSA-sigGen-FIPS204.json", ML_DSA_INTERFACE, |_, i| {
        i == 0
    });
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SigVerGroup {
    tg_id: u32,
    parameter_set: String,
    /// ML-DSA groups carry the key; SLH-DSA cases do.
    pk: Option<Hex>,
    tests: Vec<SigVerCase>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SigVerCase {
    tc_id: u32,
    test_passed: bool,
    pk: Option<Hex>,
    message: Hex,
    signature: Hex,
    reason: String,
}

fn sig_ver(file: &str, iface: Interface) {
    let (groups, total) = load::<SigVerGroup>(file);
    let (mut accepted, mut rejected) = (0, 0);
    let mut r = Report::default();
    for g in &groups {
        let alg = algorithm(&g.parameter_set);
        for t in &g.tests {
            let case = format!("tg {} tc {} ({alg}, {})", g.tg_id, t.tc_id, t.reason);
            let pk = t.pk.as_ref().or(g.pk.as_ref()).expect("a public key");
            let outcome = VerifyingKey::from_bytes(alg, pk)
                .and_then(|vk| verify(iface, &vk, &t.message, &t.signature));
            match (t.test_passed, outcome) {
                (true, Ok(())) => accepted += 1,
                (false, Err(_)) => rejected += 1,
                (true, Err(e)) => r.fail(&case, format!("valid signature rejected: {e}")),
                (false, Ok(())) => r.fail(&case, "invalid signature accepted"),
            }
            r.checked += 1;
        }
    }
    assert!(
        accepted > 0 && rejected > 0,
        "{file}: both outcomes must be exercised"
    );
    r.finish(file, total);
}

#[test]
fn mldsa_sig_ver() {
    sig_ver("ML-DSA-sigVer-FIPS204.json", ML_DSA_INTERFACE);
}

// ---------------------------------------------------------------------------
// SLH-DSA (FIPS 205)
// ---------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SlhDsaKeyGenGroup {
    tg_id: u32,
    parameter_set: String,
    tests: Vec<SlhDsaKeyGenCase>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SlhDsaKeyGenCase {
    tc_id: u32,
    sk_seed: Hex,
    sk_prf: Hex,
    pk_seed: Hex,
    sk: Hex,
    pk: Hex,
}

#[test]
fn slhdsa_keygen() {
    const FILE: &str = "SLH-DSA-keyGen-FIPS205.json";
    let (groups, total) = load::<SlhDsaKeyGenGroup>(FILE);
    let mut r = Report::default();
    for g in &groups {
        let alg = algorithm(&g.parameter_set);
        for t in &g.tests {
            let case = format!("tg {} tc {} ({alg})", g.tg_id, t.tc_id);
            let seed = [&t.sk_seed[..], &t.sk_prf[..], &t.pk_seed[..]].concat();
            match SigningKey::from_seed(alg, &seed) {
                Ok(key) => {
                    r.bytes(&case, "sk", key.expanded().expose(), &t.sk);
                    r.bytes(&case, "pk", key.verifying_key().as_bytes(), &t.pk);
                }
                Err(e) => r.fail(&case, format!("from_seed: {e}")),
            }
            r.checked += 1;
        }
    }
    r.finish(FILE, total);
}

#[test]
fn slhdsa_sig_gen() {
    // Cross-check the interface on the cheapest parameter set only: SLH-DSA
    // signing is slow, the "s" sets especially.
    sig_gen("SLH-DSA-sigGen-FIPS205.json", SLH_DSA_INTERFACE, |g, i| {
        g.parameter_set == "SLH-DSA-SHAKE-128f" && i == 0
    });
}

#[test]
fn slhdsa_sig_ver() {
    sig_ver("SLH-DSA-sigVer-FIPS205.json", SLH_DSA_INTERFACE);
}
