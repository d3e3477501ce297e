//! Signatures: ML-DSA (FIPS 204), SLH-DSA (FIPS 205), both in pure mode with
//! context strings, and Ed25519 (RFC 8032) for classical compatibility.
//!
//! Backends: RustCrypto `ml-dsa` (it derives keys from the 32-byte seed IETF
//! LAMPS stores, and takes context strings and the FIPS 204 randomness
//! `rnd`, which aws-lc-rs does not expose); RustCrypto `slh-dsa` (aws-lc-rs has
//! no SLH-DSA); aws-lc-rs for Ed25519.
//!
//! Signing is hedged (FIPS 204/205's default): fresh randomness is mixed into
//! every signature.

use crate::secret::SecretBytes;
use crate::{Algorithm, Error, Family, Result, random};
use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use core::fmt;
use ml_dsa::{MlDsa44, MlDsa65, MlDsa87, MlDsaParams};
use std::io::Read;
use zeroize::Zeroizing;

/// Length of an ML-DSA seed (ξ).
pub const ML_DSA_SEED_LEN: usize = 32;

/// Longest context string FIPS 204 and 205 allow.
pub const MAX_CONTEXT_LEN: usize = 255;

type Arr<N> = ml_dsa::common::array::Array<u8, N>;

enum SkInner {
    MlDsa44(Box<ml_dsa::ExpandedSigningKey<MlDsa44>>),
    MlDsa65(Box<ml_dsa::ExpandedSigningKey<MlDsa65>>),
    MlDsa87(Box<ml_dsa::ExpandedSigningKey<MlDsa87>>),
    /// SLH-DSA keys are kept in their FIPS 205 encoding (SK.seed, SK.prf, PK.seed, PK.root).
    SlhDsa(Zeroizing<Vec<u8>>),
    Ed25519(Box<Ed25519KeyPair>, Zeroizing<[u8; 32]>),
}

/// Dispatches on the twelve SLH-DSA parameter sets with a type alias `P`.
macro_rules! slh {
    ($alg:expr, $p:ident => $body:expr) => {{
        use slh_dsa::*;
        match $alg {
            Algorithm::SlhDsaSha2_128s => {
                type $p = Sha2_128s;
                $body
            }
            Algorithm::SlhDsaSha2_128f => {
                type $p = Sha2_128f;
                $body
            }
            Algorithm::SlhDsaSha2_192s => {
                type $p = Sha2_192s;
                $body
            }
            Algorithm::SlhDsaSha2_192f => {
                type $p = Sha2_192f;
                $body
            }
            Algorithm::SlhDsaSha2_256s => {
                type $p = Sha2_256s;
                $body
            }
            Algorithm::SlhDsaSha2_256f => {
                type $p = Sha2_256f;
                $body
            }
            Algorithm::SlhDsaShake128s => {
                type $p = Shake128s;
                $body
            }
            Algorithm::SlhDsaShake128f => {
                type $p = Shake128f;
                $body
            }
            Algorithm::SlhDsaShake192s => {
                type $p = Shake192s;
                $body
            }
            Algorithm::SlhDsaShake192f => {
                type $p = Shake192f;
                $body
            }
            Algorithm::SlhDsaShake256s => {
                type $p = Shake256s;
                $body
            }
            _ => {
                type $p = Shake256f;
                $body
            }
        }
    }};
}

fn is_slh(alg: Algorithm) -> bool {
    alg.name().starts_with("slh-dsa")
}

fn check_sig_alg(alg: Algorithm) -> Result<()> {
    if alg.family() == Family::Signature {
        Ok(())
    } else {
        Err(Error::WrongKeyType {
            alg: alg.name(),
            op: "sign or verify",
        })
    }
}

fn check_context(alg: Algorithm, ctx: &[u8]) -> Result<()> {
    if ctx.len() > MAX_CONTEXT_LEN {
        return Err(Error::ContextTooLong(ctx.len()));
    }
    if alg == Algorithm::Ed25519 && !ctx.is_empty() {
        return Err(Error::ContextNotSupported(alg.name()));
    }
    Ok(())
}

/// The FIPS 204/205 pure-mode message prefix `0x00 || len(ctx) || ctx`.
fn pure_prefix(ctx: &[u8]) -> [u8; 2] {
    // check_context has bounded ctx to 255 bytes.
    [0u8, u8::try_from(ctx.len()).unwrap_or(u8::MAX)]
}

fn mldsa_sign<P: MlDsaParams>(
    sk: &ml_dsa::ExpandedSigningKey<P>,
    msg: &[u8],
    ctx: &[u8],
    rnd: &[u8; 32],
) -> Vec<u8> {
    let prefix = pure_prefix(ctx);
    let rnd = Arr::from(*rnd);
    sk.sign_internal(&[&prefix, ctx, msg], &rnd)
        .encode()
        .to_vec()
}

/// Whether the packed s1 and s2 of an expanded ML-DSA key (FIPS 204
/// skEncode: ρ (32) ‖ K (32) ‖ tr (64) ‖ s1 (ℓ polynomials) ‖ s2 (k
/// polynomials) ‖ t0 (k polynomials of 13-bit values, all valid)) hold
/// only values η − s ≤ 2η, each polynomial 256 values of bitlen(2η) bits,
/// least significant bit first. The length was checked by the caller.
fn mldsa_expanded_in_range(alg: Algorithm, bytes: &[u8]) -> bool {
    let (k, l, eta) = match alg {
        Algorithm::MlDsa44 => (4usize, 4usize, 2u32),
        Algorithm::MlDsa65 => (6, 5, 4),
        Algorithm::MlDsa87 => (8, 7, 2),
        _ => return false,
    };
    let bits = if eta == 2 { 3usize } else { 4 };
    let len = (k + l) * 256 * bits / 8;
    let Some(packed) = bytes.get(128..128 + len) else {
        return false;
    };
    (0..(k + l) * 256).all(|i| {
        let bit = i * bits;
        let lo = u32::from(packed[bit / 8]);
        let hi = packed.get(bit / 8 + 1).copied().map_or(0, u32::from);
        let v = ((lo | hi << 8) >> (bit % 8)) & ((1 << bits) - 1);
        v <= 2 * eta
    })
}

#[allow(deprecated)]
fn mldsa_expanded_from_bytes<P: MlDsaParams>(
    alg: Algorithm,
    bytes: &[u8],
) -> Result<ml_dsa::ExpandedSigningKey<P>> {
    let enc = ml_dsa::ExpandedSigningKeyBytes::<P>::try_from(bytes).map_err(|_| {
        crate::error::invalid_key(
            alg.name(),
            format!(
                "expanded private key has the wrong length ({} bytes)",
                bytes.len()
            ),
        )
    })?;
    // The backend documents that malformed expanded keys may panic while
    // decoding. A key file is untrusted input, so the coefficient ranges
    // are checked first (nothing is left to panic on, even in a
    // `panic = "abort"` build), then an exact re-encoding is required.
    if !mldsa_expanded_in_range(alg, bytes) {
        return Err(crate::error::invalid_key(
            alg.name(),
            "expanded private key is malformed (a coefficient of s1 or s2 is out of range)",
        ));
    }
    let decoded = ml_dsa::ExpandedSigningKey::<P>::from_expanded(&enc);
    if decoded.to_expanded().as_slice() != bytes {
        return Err(crate::error::invalid_key(
            alg.name(),
            "expanded private key is not canonically encoded",
        ));
    }
    Ok(decoded)
}

/// A private signing key.
pub struct SigningKey {
    alg: Algorithm,
    inner: SkInner,
    seed: Option<Zeroizing<Vec<u8>>>,
    public: Vec<u8>,
}

impl SigningKey {
    /// Generates a fresh key.
    pub fn generate(alg: Algorithm) -> Result<Self> {
        check_sig_alg(alg)?;
        let seed = Zeroizing::new({
            let mut s = vec![0u8; alg.private_key_len()];
            if is_slh(alg) {
                // SK.seed || SK.prf || PK.seed; PK.root is computed.
                s.truncate(alg.private_key_len() / 4 * 3);
            }
            random::fill(&mut s)?;
            s
        });
        Self::from_seed(alg, &seed)
    }

    /// Derives the key from its seed: ξ (32 bytes) for ML-DSA, the Ed25519
    /// seed (32 bytes), or `SK.seed || SK.prf || PK.seed` (3n bytes) for SLH-DSA.
    pub fn from_seed(alg: Algorithm, seed: &[u8]) -> Result<Self> {
        check_sig_alg(alg)?;
        let wrong_len = |want: usize| {
            crate::error::invalid_key(
                alg.name(),
                format!("seed must be {want} bytes, got {}", seed.len()),
            )
        };
        let (inner, public) = match alg {
            Algorithm::MlDsa44 | Algorithm::MlDsa65 | Algorithm::MlDsa87 => {
                let xi = Arr::try_from(seed).map_err(|_| wrong_len(ML_DSA_SEED_LEN))?;
                match alg {
                    Algorithm::MlDsa44 => {
                        let k = ml_dsa::SigningKey::<MlDsa44>::from_seed(&xi);
                        (
                            SkInner::MlDsa44(Box::new(k.expanded_key().clone())),
                            k.expanded_key().verifying_key().encode().to_vec(),
                        )
                    }
                    Algorithm::MlDsa65 => {
                        let k = ml_dsa::SigningKey::<MlDsa65>::from_seed(&xi);
                        (
                            SkInner::MlDsa65(Box::new(k.expanded_key().clone())),
                            k.expanded_key().verifying_key().encode().to_vec(),
                        )
                    }
                    _ => {
                        let k = ml_dsa::SigningKey::<MlDsa87>::from_seed(&xi);
                        (
                            SkInner::MlDsa87(Box::new(k.expanded_key().clone())),
                            k.expanded_key().verifying_key().encode().to_vec(),
                        )
                    }
                }
            }
            Algorithm::Ed25519 => {
                if seed.len() != 32 {
                    return Err(wrong_len(32));
                }
                let kp = Ed25519KeyPair::from_seed_unchecked(seed).map_err(|_| {
                    crate::error::invalid_key(alg.name(), "rejected by the backend")
                })?;
                let public = kp.public_key().as_ref().to_vec();
                let mut s = Zeroizing::new([0u8; 32]);
                s.copy_from_slice(seed);
                (SkInner::Ed25519(Box::new(kp), s), public)
            }
            _ => {
                let n = alg.private_key_len() / 4;
                if seed.len() != 3 * n {
                    return Err(wrong_len(3 * n));
                }
                let sk = slh!(alg, P => {
                    let k = slh_dsa::SigningKey::<P>::slh_keygen_internal(&seed[..n], &seed[n..2 * n], &seed[2 * n..]);
                    Zeroizing::new(k.to_vec())
                });
                let public = sk[2 * n..].to_vec();
                (SkInner::SlhDsa(sk), public)
            }
        };
        Ok(Self {
            alg,
            inner,
            seed: Some(Zeroizing::new(seed.to_vec())),
            public,
        })
    }

    /// Imports the FIPS 204 expanded private key (ML-DSA) or the FIPS 205
    /// private key `SK.seed || SK.prf || PK.seed || PK.root` (SLH-DSA).
    pub fn from_expanded(alg: Algorithm, bytes: &[u8]) -> Result<Self> {
        check_sig_alg(alg)?;
        let (inner, public) = match alg {
            Algorithm::MlDsa44 => {
                let k = mldsa_expanded_from_bytes::<MlDsa44>(alg, bytes)?;
                let pk = k.verifying_key().encode().to_vec();
                (SkInner::MlDsa44(Box::new(k)), pk)
            }
            Algorithm::MlDsa65 => {
                let k = mldsa_expanded_from_bytes::<MlDsa65>(alg, bytes)?;
                let pk = k.verifying_key().encode().to_vec();
                (SkInner::MlDsa65(Box::new(k)), pk)
            }
            Algorithm::MlDsa87 => {
                let k = mldsa_expanded_from_bytes::<MlDsa87>(alg, bytes)?;
                let pk = k.verifying_key().encode().to_vec();
                (SkInner::MlDsa87(Box::new(k)), pk)
            }
            Algorithm::Ed25519 => return Self::from_seed(alg, bytes),
            _ => {
                if bytes.len() != alg.private_key_len() {
                    return Err(crate::error::invalid_key(
                        alg.name(),
                        format!(
                            "private key must be {} bytes, got {}",
                            alg.private_key_len(),
                            bytes.len()
                        ),
                    ));
                }
                // Recompute PK.root from the seeds: a key whose root does not
                // match would sign with a public key nobody can verify.
                let n = alg.private_key_len() / 4;
                let derived = Self::from_seed(alg, &bytes[..3 * n])?;
                if !crate::secret::ct_eq(&derived.public, &bytes[2 * n..]) {
                    return Err(crate::error::invalid_key(
                        alg.name(),
                        "PK.root does not match the secret seeds",
                    ));
                }
                return Ok(derived);
            }
        };
        Ok(Self {
            alg,
            inner,
            seed: None,
            public,
        })
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The seed the key was derived from, when known.
    pub fn seed(&self) -> Option<&[u8]> {
        self.seed.as_ref().map(|s| s.as_slice())
    }

    /// The expanded private key (FIPS 204 `skEncode`, FIPS 205 `SK`, or the Ed25519 seed).
    #[allow(deprecated)]
    pub fn expanded(&self) -> SecretBytes {
        match &self.inner {
            SkInner::MlDsa44(k) => SecretBytes::new(k.to_expanded().to_vec()),
            SkInner::MlDsa65(k) => SecretBytes::new(k.to_expanded().to_vec()),
            SkInner::MlDsa87(k) => SecretBytes::new(k.to_expanded().to_vec()),
            SkInner::SlhDsa(sk) => SecretBytes::from_slice(sk),
            SkInner::Ed25519(_, seed) => SecretBytes::from_slice(seed.as_ref()),
        }
    }

    /// The matching public key.
    pub fn verifying_key(&self) -> VerifyingKey {
        let decoded = match &self.inner {
            SkInner::MlDsa44(k) => Decoded::MlDsa44(Box::new(k.verifying_key())),
            SkInner::MlDsa65(k) => Decoded::MlDsa65(Box::new(k.verifying_key())),
            SkInner::MlDsa87(k) => Decoded::MlDsa87(Box::new(k.verifying_key())),
            _ => Decoded::Encoded,
        };
        VerifyingKey {
            alg: self.alg,
            bytes: self.public.clone(),
            decoded,
        }
    }

    /// Signs `msg` with context string `ctx` (empty for none; Ed25519 takes none).
    pub fn sign(&self, msg: &[u8], ctx: &[u8]) -> Result<Vec<u8>> {
        let rnd = random::secret_array::<32>()?;
        self.sign_with_randomness(msg, ctx, Some(&rnd))
    }

    /// Signs with explicit randomness: `Some(rnd)` is FIPS 204's `rnd` (hedged)
    /// or FIPS 205's `opt_rand` (first n bytes); `None` is the deterministic
    /// variant. For known-answer tests; use [`SigningKey::sign`] otherwise.
    pub fn sign_with_randomness(
        &self,
        msg: &[u8],
        ctx: &[u8],
        rnd: Option<&[u8; 32]>,
    ) -> Result<Vec<u8>> {
        check_context(self.alg, ctx)?;
        let zero = [0u8; 32];
        let r = rnd.unwrap_or(&zero);
        Ok(match &self.inner {
            SkInner::MlDsa44(k) => mldsa_sign(k, msg, ctx, r),
            SkInner::MlDsa65(k) => mldsa_sign(k, msg, ctx, r),
            SkInner::MlDsa87(k) => mldsa_sign(k, msg, ctx, r),
            SkInner::Ed25519(kp, _) => kp.sign(msg).as_ref().to_vec(),
            SkInner::SlhDsa(sk) => {
                let n = self.alg.private_key_len() / 4;
                let opt_rand = rnd.map(|r| &r[..n.min(32)]);
                slh!(self.alg, P => {
                    let key = slh_dsa::SigningKey::<P>::try_from(sk.as_slice())
                        .map_err(|_| Error::Backend("SLH-DSA key decoding"))?;
                    if n > 32 {
                        return Err(Error::Backend("SLH-DSA randomness"));
                    }
                    let prefix = pure_prefix(ctx);
                    key.slh_sign_internal(&[&prefix, ctx, msg], opt_rand).to_vec()
                })
            }
        })
    }
}

/// Reads `reader` to the end in 1 MiB pieces, passing each to `f`.
fn for_each_piece(reader: &mut dyn Read, mut f: impl FnMut(&[u8])) -> std::io::Result<()> {
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => f(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// FIPS 204 μ = SHAKE256(tr ‖ 0 ‖ |ctx| ‖ ctx ‖ M, 64), streaming M.
fn mldsa_mu<P: MlDsaParams>(
    vk: &ml_dsa::VerifyingKey<P>,
    reader: &mut dyn Read,
    ctx: &[u8],
) -> std::result::Result<Arr<ml_dsa::common::typenum::U64>, StreamError> {
    use shake::Update;
    let mut io_error = None;
    let mu = vk
        .compute_mu(
            |h| {
                for_each_piece(reader, |piece| h.update(piece)).map_err(|e| {
                    io_error = Some(e);
                    ml_dsa::Error::new()
                })
            },
            ctx,
        )
        .map_err(|_| match io_error.take() {
            Some(e) => StreamError::Io(e),
            None => StreamError::Crypto(Error::ContextTooLong(ctx.len())),
        })?;
    Ok(mu)
}

/// An error while signing or verifying a stream.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// Reading the message failed.
    #[error("cannot read the message: {0}")]
    Io(#[from] std::io::Error),
    /// The signature operation failed.
    #[error(transparent)]
    Crypto(#[from] Error),
}

impl SigningKey {
    /// Signs everything `reader` yields, as [`SigningKey::sign`] would sign
    /// it as one message. ML-DSA streams the message through SHAKE256 (the
    /// FIPS 204 external-μ form), so memory stays flat for any size; SLH-DSA
    /// and Ed25519 hash the message twice by design and read it into memory.
    pub fn sign_reader(
        &self,
        reader: &mut dyn Read,
        ctx: &[u8],
    ) -> std::result::Result<Vec<u8>, StreamError> {
        check_context(self.alg, ctx)?;
        fn ml<P: MlDsaParams>(
            sk: &ml_dsa::ExpandedSigningKey<P>,
            reader: &mut dyn Read,
            ctx: &[u8],
        ) -> std::result::Result<Vec<u8>, StreamError> {
            let mu = mldsa_mu(&sk.verifying_key(), reader, ctx)?;
            let sig = sk
                .sign_mu_randomized(&mu, &mut random::BackendRng)
                .map_err(|_| Error::Backend("ML-DSA signing"))?;
            Ok(sig.encode().to_vec())
        }
        match &self.inner {
            SkInner::MlDsa44(k) => ml(k, reader, ctx),
            SkInner::MlDsa65(k) => ml(k, reader, ctx),
            SkInner::MlDsa87(k) => ml(k, reader, ctx),
            _ => {
                let mut msg = Vec::new();
                reader.read_to_end(&mut msg)?;
                Ok(self.sign(&msg, ctx)?)
            }
        }
    }
}

impl VerifyingKey {
    /// Verifies a signature over everything `reader` yields; ML-DSA streams
    /// (see [`SigningKey::sign_reader`]).
    pub fn verify_reader(
        &self,
        reader: &mut dyn Read,
        ctx: &[u8],
        sig: &[u8],
    ) -> std::result::Result<(), StreamError> {
        check_context(self.alg, ctx)?;
        if sig.len() != self.alg.output_len() {
            return Err(Error::BadSignature.into());
        }
        fn ml<P: MlDsaParams>(
            vk: &ml_dsa::VerifyingKey<P>,
            reader: &mut dyn Read,
            ctx: &[u8],
            sig: &[u8],
        ) -> std::result::Result<(), StreamError> {
            let mu = mldsa_mu(vk, reader, ctx)?;
            let sig =
                ml_dsa::EncodedSignature::<P>::try_from(sig).map_err(|_| Error::BadSignature)?;
            let sig = ml_dsa::Signature::<P>::decode(&sig).ok_or(Error::BadSignature)?;
            if vk.verify_mu(&mu, &sig) {
                Ok(())
            } else {
                Err(Error::BadSignature.into())
            }
        }
        match &self.decoded {
            Decoded::MlDsa44(vk) => ml(vk, reader, ctx, sig),
            Decoded::MlDsa65(vk) => ml(vk, reader, ctx, sig),
            Decoded::MlDsa87(vk) => ml(vk, reader, ctx, sig),
            Decoded::Encoded => {
                let mut msg = Vec::new();
                reader.read_to_end(&mut msg)?;
                Ok(self.verify(&msg, ctx, sig)?)
            }
        }
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({}, [REDACTED])", self.alg)
    }
}

/// A decoded ML-DSA public key (decoding expands the matrix A, which costs
/// about as much as a verification, so it is done once per key).
#[derive(Clone)]
enum Decoded {
    MlDsa44(Box<ml_dsa::VerifyingKey<MlDsa44>>),
    MlDsa65(Box<ml_dsa::VerifyingKey<MlDsa65>>),
    MlDsa87(Box<ml_dsa::VerifyingKey<MlDsa87>>),
    /// SLH-DSA and Ed25519 keys are used in their encoded form.
    Encoded,
}

fn decode_vk(alg: Algorithm, bytes: &[u8]) -> Result<Decoded> {
    fn dec<P: MlDsaParams>(alg: Algorithm, bytes: &[u8]) -> Result<Box<ml_dsa::VerifyingKey<P>>> {
        let enc = ml_dsa::EncodedVerifyingKey::<P>::try_from(bytes)
            .map_err(|_| crate::error::invalid_key(alg.name(), "wrong public key length"))?;
        Ok(Box::new(ml_dsa::VerifyingKey::<P>::decode(&enc)))
    }
    Ok(match alg {
        Algorithm::MlDsa44 => Decoded::MlDsa44(dec(alg, bytes)?),
        Algorithm::MlDsa65 => Decoded::MlDsa65(dec(alg, bytes)?),
        Algorithm::MlDsa87 => Decoded::MlDsa87(dec(alg, bytes)?),
        _ => Decoded::Encoded,
    })
}

fn mldsa_verify_decoded<P: MlDsaParams>(
    vk: &ml_dsa::VerifyingKey<P>,
    msg: &[u8],
    ctx: &[u8],
    sig: &[u8],
) -> Result<()> {
    let sig = ml_dsa::EncodedSignature::<P>::try_from(sig).map_err(|_| Error::BadSignature)?;
    let sig = ml_dsa::Signature::<P>::decode(&sig).ok_or(Error::BadSignature)?;
    if vk.verify_with_context(msg, ctx, &sig) {
        Ok(())
    } else {
        Err(Error::BadSignature)
    }
}

/// A public verifying key.
#[derive(Clone)]
pub struct VerifyingKey {
    alg: Algorithm,
    bytes: Vec<u8>,
    decoded: Decoded,
}

impl PartialEq for VerifyingKey {
    fn eq(&self, other: &Self) -> bool {
        self.alg == other.alg && self.bytes == other.bytes
    }
}

impl Eq for VerifyingKey {}

impl VerifyingKey {
    /// Wraps an encoded public key after checking its length.
    pub fn from_bytes(alg: Algorithm, bytes: &[u8]) -> Result<Self> {
        check_sig_alg(alg)?;
        if bytes.len() != alg.public_key_len() {
            return Err(crate::error::invalid_key(
                alg.name(),
                format!(
                    "public key must be {} bytes, got {}",
                    alg.public_key_len(),
                    bytes.len()
                ),
            ));
        }
        Ok(Self {
            alg,
            bytes: bytes.to_vec(),
            decoded: decode_vk(alg, bytes)?,
        })
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The encoded key.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Verifies `sig` over `msg` with context `ctx`. Any failure, including a
    /// signature of the wrong length, is [`Error::BadSignature`], except an
    /// over-long context, which is [`Error::ContextTooLong`].
    pub fn verify(&self, msg: &[u8], ctx: &[u8], sig: &[u8]) -> Result<()> {
        check_context(self.alg, ctx)?;
        if sig.len() != self.alg.output_len() {
            return Err(Error::BadSignature);
        }
        match &self.decoded {
            Decoded::MlDsa44(vk) => return mldsa_verify_decoded(vk, msg, ctx, sig),
            Decoded::MlDsa65(vk) => return mldsa_verify_decoded(vk, msg, ctx, sig),
            Decoded::MlDsa87(vk) => return mldsa_verify_decoded(vk, msg, ctx, sig),
            Decoded::Encoded => {}
        }
        match self.alg {
            Algorithm::Ed25519 => UnparsedPublicKey::new(&ED25519, &self.bytes)
                .verify(msg, sig)
                .map_err(|_| Error::BadSignature),
            alg => slh!(alg, P => {
                let vk = slh_dsa::VerifyingKey::<P>::try_from(self.bytes.as_slice()).map_err(|_| Error::BadSignature)?;
                let s = slh_dsa::Signature::<P>::try_from(sig).map_err(|_| Error::BadSignature)?;
                let prefix = pure_prefix(ctx);
                vk.slh_verify_internal(&[&prefix, ctx, msg], &s).map_err(|_| Error::BadSignature)
            }),
        }
    }
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifyingKey({}, {} bytes)", self.alg, self.bytes.len())
    }
}

/// Internal-interface operations (FIPS 204 `Sign_internal`/`Verify_internal`,
/// FIPS 205 `slh_sign_internal`/`slh_verify_internal`) for known-answer tests.
/// They sign the given bytes as the formatted message M′ without the pure-mode
/// prefix; nothing outside tests should use them.
#[doc(hidden)]
pub mod internal {
    use super::*;

    /// Signs M′ directly.
    pub fn sign(key: &SigningKey, m_prime: &[u8], rnd: Option<&[u8]>) -> Result<Vec<u8>> {
        let zero = [0u8; 32];
        let mut r = [0u8; 32];
        let src = rnd.unwrap_or(&zero);
        let take = src.len().min(32);
        r[..take].copy_from_slice(&src[..take]);
        Ok(match &key.inner {
            SkInner::MlDsa44(k) => k.sign_internal(&[m_prime], &Arr::from(r)).encode().to_vec(),
            SkInner::MlDsa65(k) => k.sign_internal(&[m_prime], &Arr::from(r)).encode().to_vec(),
            SkInner::MlDsa87(k) => k.sign_internal(&[m_prime], &Arr::from(r)).encode().to_vec(),
            SkInner::SlhDsa(sk) => slh!(key.alg, P => {
                let k = slh_dsa::SigningKey::<P>::try_from(sk.as_slice()).map_err(|_| Error::Backend("SLH-DSA"))?;
                k.slh_sign_internal(&[m_prime], rnd).to_vec()
            }),
            SkInner::Ed25519(..) => {
                return Err(Error::WrongKeyType {
                    alg: "ed25519",
                    op: "sign_internal",
                });
            }
        })
    }

    /// Verifies over M′ directly.
    pub fn verify(key: &VerifyingKey, m_prime: &[u8], sig: &[u8]) -> Result<()> {
        fn ml<P: MlDsaParams>(pk: &[u8], m: &[u8], sig: &[u8]) -> Result<()> {
            let pk =
                ml_dsa::EncodedVerifyingKey::<P>::try_from(pk).map_err(|_| Error::BadSignature)?;
            let sig =
                ml_dsa::EncodedSignature::<P>::try_from(sig).map_err(|_| Error::BadSignature)?;
            let sig = ml_dsa::Signature::<P>::decode(&sig).ok_or(Error::BadSignature)?;
            if ml_dsa::VerifyingKey::<P>::decode(&pk).verify_internal(m, &sig) {
                Ok(())
            } else {
                Err(Error::BadSignature)
            }
        }
        match key.alg {
            Algorithm::MlDsa44 => ml::<MlDsa44>(&key.bytes, m_prime, sig),
            Algorithm::MlDsa65 => ml::<MlDsa65>(&key.bytes, m_prime, sig),
            Algorithm::MlDsa87 => ml::<MlDsa87>(&key.bytes, m_prime, sig),
            Algorithm::Ed25519 => Err(Error::WrongKeyType {
                alg: "ed25519",
                op: "verify_internal",
            }),
            alg => slh!(alg, P => {
                let vk = slh_dsa::VerifyingKey::<P>::try_from(key.bytes.as_slice()).map_err(|_| Error::BadSignature)?;
                let s = slh_dsa::Signature::<P>::try_from(sig).map_err(|_| Error::BadSignature)?;
                vk.slh_verify_internal(&[m_prime], &s).map_err(|_| Error::BadSignature)
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fast_algs() -> Vec<Algorithm> {
        Algorithm::ALL
            .iter()
            .copied()
            .filter(|a| a.family() == Family::Signature)
            .filter(|a| !a.name().ends_with('s') || *a == Algorithm::SlhDsaSha2_128s)
            .collect()
    }

    #[test]
    fn sign_verify_round_trip_and_failures() {
        for alg in fast_algs() {
            let sk = SigningKey::generate(alg).unwrap();
            let vk = sk.verifying_key();
            assert_eq!(vk.as_bytes().len(), alg.public_key_len(), "{alg}");
            let ctx: &[u8] = if alg.takes_context() { b"ctx" } else { b"" };
            let sig = sk.sign(b"hello", ctx).unwrap();
            assert_eq!(sig.len(), alg.output_len(), "{alg}");
            vk.verify(b"hello", ctx, &sig).unwrap();
            // tampered message
            assert_eq!(
                vk.verify(b"hellp", ctx, &sig),
                Err(Error::BadSignature),
                "{alg}"
            );
            // tampered signature
            let mut bad = sig.clone();
            bad[sig.len() / 2] ^= 0x01;
            assert_eq!(
                vk.verify(b"hello", ctx, &bad),
                Err(Error::BadSignature),
                "{alg}"
            );
            // truncated signature
            assert_eq!(
                vk.verify(b"hello", ctx, &sig[..sig.len() - 1]),
                Err(Error::BadSignature)
            );
            // wrong key
            let other = SigningKey::generate(alg).unwrap().verifying_key();
            assert_eq!(
                other.verify(b"hello", ctx, &sig),
                Err(Error::BadSignature),
                "{alg}"
            );
            if alg.takes_context() {
                // other context
                assert_eq!(
                    vk.verify(b"hello", b"ctx2", &sig),
                    Err(Error::BadSignature),
                    "{alg}"
                );
            }
        }
    }

    #[test]
    fn streaming_matches_one_shot() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
        for alg in [
            Algorithm::MlDsa44,
            Algorithm::MlDsa65,
            Algorithm::MlDsa87,
            Algorithm::Ed25519,
            Algorithm::SlhDsaSha2_128f,
        ] {
            let sk = SigningKey::generate(alg).unwrap();
            let vk = sk.verifying_key();
            let ctx: &[u8] = if alg.takes_context() { b"stream" } else { b"" };
            let streamed = sk.sign_reader(&mut &data[..], ctx).unwrap();
            vk.verify(&data, ctx, &streamed).unwrap();
            let one_shot = sk.sign(&data, ctx).unwrap();
            vk.verify_reader(&mut &data[..], ctx, &one_shot).unwrap();
            let mut tampered = data.clone();
            tampered[2_999_999] ^= 1;
            assert!(
                vk.verify_reader(&mut &tampered[..], ctx, &one_shot)
                    .is_err(),
                "{alg}"
            );
        }
    }

    #[test]
    fn context_rules() {
        let sk = SigningKey::generate(Algorithm::MlDsa44).unwrap();
        assert_eq!(sk.sign(b"m", &[0u8; 256]), Err(Error::ContextTooLong(256)));
        let ed = SigningKey::generate(Algorithm::Ed25519).unwrap();
        assert!(matches!(
            ed.sign(b"m", b"x"),
            Err(Error::ContextNotSupported(_))
        ));
    }

    #[test]
    fn expanded_forms_round_trip() {
        for alg in [
            Algorithm::MlDsa44,
            Algorithm::MlDsa65,
            Algorithm::MlDsa87,
            Algorithm::SlhDsaSha2_128f,
        ] {
            let sk = SigningKey::generate(alg).unwrap();
            let again = SigningKey::from_expanded(alg, sk.expanded().expose()).unwrap();
            assert_eq!(again.verifying_key(), sk.verifying_key());
            let sig = again.sign(b"m", b"").unwrap();
            sk.verifying_key().verify(b"m", b"", &sig).unwrap();
        }
    }

    #[test]
    fn malformed_expanded_mldsa_key_is_an_error_not_a_panic() {
        let sk = SigningKey::generate(Algorithm::MlDsa44).unwrap();
        let mut bytes = sk.expanded().expose().to_vec();
        for b in bytes.iter_mut().skip(128).take(400) {
            *b = 0xFF;
        }
        assert!(SigningKey::from_expanded(Algorithm::MlDsa44, &bytes).is_err());
    }

    /// Issue 12: the range check alone refuses every out-of-range value of
    /// s1 and s2 (no `catch_unwind` left): one coefficient at a time, at
    /// the first and last position of s1 and s2, for each parameter set.
    #[test]
    fn every_out_of_range_coefficient_is_caught_before_decoding() {
        for (alg, k, l, bits) in [
            (Algorithm::MlDsa44, 4usize, 4usize, 3usize),
            (Algorithm::MlDsa65, 6, 5, 4),
            (Algorithm::MlDsa87, 8, 7, 3),
        ] {
            let sk = SigningKey::generate(alg).unwrap();
            let good = sk.expanded().expose().to_vec();
            assert!(mldsa_expanded_in_range(alg, &good), "{alg:?}");
            let n = (k + l) * 256;
            for coeff in [0, l * 256 - 1, l * 256, n - 1] {
                let mut bad = good.clone();
                let bit = coeff * bits;
                // All ones: 7 for eta 2 (max 4), 15 for eta 4 (max 8).
                for b in bit..bit + bits {
                    bad[128 + b / 8] |= 1 << (b % 8);
                }
                assert!(!mldsa_expanded_in_range(alg, &bad), "{alg:?} {coeff}");
                assert!(SigningKey::from_expanded(alg, &bad).is_err());
            }
        }
    }

    #[test]
    fn debug_is_redacted() {
        let sk = SigningKey::from_seed(Algorithm::Ed25519, &[0x5A; 32]).unwrap();
        let s = format!("{sk:?}");
        assert!(!s.contains("5a") && !s.contains("90"), "{s}");
    }
}
