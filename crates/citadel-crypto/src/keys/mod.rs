//! Key files: PKCS#8 private keys and SPKI public keys, DER and PEM, with the
//! NIST OIDs and the IETF LAMPS encodings.
//!
//! ML-KEM and ML-DSA private keys are written in the *seed* form
//! (`[0] IMPLICIT OCTET STRING`) and read in all three forms the LAMPS
//! documents allow: seed, expanded key, or both (whose halves must agree).
//! SLH-DSA private keys are the raw FIPS 205 key in the OCTET STRING
//! (RFC 9909); Ed25519 follows RFC 8410.

pub(crate) mod der;
pub mod pbes2;
pub mod pem;

use crate::error::{invalid_key, malformed};
use crate::secret::SecretBytes;
use crate::{Algorithm, Error, Family, Result, hash, kem, sig};
use core::fmt;
use zeroize::Zeroizing;

pub use pbes2::Kdf;

/// The form a private key is written in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PrivateKeyForm {
    /// The seed only (the LAMPS recommendation; smallest).
    #[default]
    Seed,
    /// The expanded key only.
    Expanded,
    /// Both seed and expanded key.
    Both,
}

/// A private key of any PKCS#8-capable algorithm.
pub enum PrivateKey {
    /// An ML-KEM decapsulation key.
    Kem(kem::DecapsulationKey),
    /// A signing key.
    Signature(sig::SigningKey),
}

/// A public key of any SPKI-capable algorithm.
#[derive(Clone)]
pub enum PublicKey {
    /// An ML-KEM encapsulation key.
    Kem(kem::EncapsulationKey),
    /// A signature verifying key.
    Signature(sig::VerifyingKey),
}

fn check_pkcs8_alg(alg: Algorithm) -> Result<()> {
    match alg.family() {
        Family::Kem | Family::Signature => Ok(()),
        Family::AgeRecipient => Err(Error::WrongKeyType {
            alg: alg.name(),
            op: "store as PKCS#8 (it uses age's key encodings)",
        }),
    }
}

fn oid_of(alg: Algorithm) -> Result<&'static [u8]> {
    alg.oid().ok_or(Error::WrongKeyType {
        alg: alg.name(),
        op: "encode with an OID",
    })
}

fn alg_identifier(alg: Algorithm) -> Result<Vec<u8>> {
    // The NIST and RFC 8410 algorithms all have absent parameters.
    Ok(der::sequence(&[&der::tlv(der::OID, oid_of(alg)?)]))
}

fn read_alg_identifier(r: &mut der::Reader<'_>, what: &'static str) -> Result<Algorithm> {
    let mut id = der::Reader::new(r.read(der::SEQUENCE, what)?);
    let oid = id.read(der::OID, what)?;
    if !id.is_empty() {
        return Err(malformed(what, "algorithm parameters must be absent"));
    }
    Algorithm::from_oid(oid).ok_or_else(|| {
        malformed(
            what,
            format!("unsupported algorithm OID (contents {})", hex::encode(oid)),
        )
    })
}

impl PrivateKey {
    /// Generates a fresh key.
    pub fn generate(alg: Algorithm) -> Result<Self> {
        check_pkcs8_alg(alg)?;
        Ok(match alg.family() {
            Family::Kem => PrivateKey::Kem(kem::DecapsulationKey::generate(alg)?),
            _ => PrivateKey::Signature(sig::SigningKey::generate(alg)?),
        })
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            PrivateKey::Kem(k) => k.algorithm(),
            PrivateKey::Signature(k) => k.algorithm(),
        }
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        match self {
            PrivateKey::Kem(k) => PublicKey::Kem(k.encapsulation_key()),
            PrivateKey::Signature(k) => PublicKey::Signature(k.verifying_key()),
        }
    }

    fn seed(&self) -> Option<&[u8]> {
        match self {
            PrivateKey::Kem(k) => k.seed(),
            PrivateKey::Signature(k) => k.seed(),
        }
    }

    fn expanded(&self) -> SecretBytes {
        match self {
            PrivateKey::Kem(k) => k.expanded(),
            PrivateKey::Signature(k) => k.expanded(),
        }
    }

    /// The contents of the PKCS#8 `privateKey` OCTET STRING.
    fn private_key_field(&self, form: PrivateKeyForm) -> Result<Zeroizing<Vec<u8>>> {
        let alg = self.algorithm();
        let lattice = matches!(
            alg,
            Algorithm::MlKem512
                | Algorithm::MlKem768
                | Algorithm::MlKem1024
                | Algorithm::MlDsa44
                | Algorithm::MlDsa65
                | Algorithm::MlDsa87
        );
        if alg == Algorithm::Ed25519 {
            let seed = self.expanded();
            return Ok(Zeroizing::new(der::tlv(der::OCTET_STRING, seed.expose())));
        }
        if !lattice {
            // SLH-DSA: the raw FIPS 205 private key.
            return Ok(Zeroizing::new(self.expanded().expose().to_vec()));
        }
        let need_seed = || {
            self.seed().ok_or_else(|| {
                invalid_key(alg.name(), "the key was imported without its seed, so it can only be written in the expanded form")
            })
        };
        Ok(Zeroizing::new(match form {
            PrivateKeyForm::Seed => der::tlv(der::CONTEXT_0, need_seed()?),
            PrivateKeyForm::Expanded => der::tlv(der::OCTET_STRING, self.expanded().expose()),
            PrivateKeyForm::Both => der::sequence(&[
                &der::tlv(der::OCTET_STRING, need_seed()?),
                &der::tlv(der::OCTET_STRING, self.expanded().expose()),
            ]),
        }))
    }

    /// Encodes as PKCS#8 v1 (`PrivateKeyInfo`, RFC 5208/5958) DER.
    pub fn to_pkcs8_der(&self, form: PrivateKeyForm) -> Result<SecretBytes> {
        let field = self.private_key_field(form)?;
        let inner = Zeroizing::new(der::tlv(der::OCTET_STRING, &field));
        let body = Zeroizing::new(
            [
                der::uint(0).as_slice(),
                &alg_identifier(self.algorithm())?,
                &inner,
            ]
            .concat(),
        );
        Ok(SecretBytes::new(der::tlv(der::SEQUENCE, &body)))
    }

    /// Parses PKCS#8 v1 or v2 (`OneAsymmetricKey`) DER. A public key in a v2
    /// structure must match the private key.
    pub fn from_pkcs8_der(bytes: &[u8]) -> Result<Self> {
        const WHAT: &str = "PKCS#8 private key";
        let mut outer = der::Reader::new(bytes);
        let mut r = der::Reader::new(outer.read(der::SEQUENCE, WHAT)?);
        outer.finish(WHAT)?;
        let version = r.read_uint(WHAT)?;
        if version > 1 {
            return Err(malformed(WHAT, format!("unsupported version {version}")));
        }
        let alg = read_alg_identifier(&mut r, WHAT)?;
        let field = r.read(der::OCTET_STRING, WHAT)?;
        let _attributes = r.read_optional(der::CONTEXT_0_CONSTRUCTED, WHAT)?;
        let public = r.read_optional(der::CONTEXT_1, WHAT)?;
        r.finish(WHAT)?;
        if version == 0 && public.is_some() {
            return Err(malformed(
                WHAT,
                "a version 1 structure cannot carry a public key",
            ));
        }
        let key = Self::from_private_key_field(alg, field)?;
        if let Some(bits) = public {
            let (unused, pk) = bits
                .split_first()
                .ok_or_else(|| malformed(WHAT, "empty public key"))?;
            if *unused != 0 || pk != key.public_key().as_bytes().as_slice() {
                return Err(invalid_key(
                    alg.name(),
                    "the embedded public key does not match the private key",
                ));
            }
        }
        Ok(key)
    }

    fn from_private_key_field(alg: Algorithm, field: &[u8]) -> Result<Self> {
        const WHAT: &str = "PKCS#8 private key";
        match alg {
            Algorithm::Ed25519 => {
                let mut r = der::Reader::new(field);
                let seed = r.read(der::OCTET_STRING, WHAT)?;
                r.finish(WHAT)?;
                Ok(PrivateKey::Signature(sig::SigningKey::from_seed(
                    alg, seed,
                )?))
            }
            Algorithm::MlKem512
            | Algorithm::MlKem768
            | Algorithm::MlKem1024
            | Algorithm::MlDsa44
            | Algorithm::MlDsa65
            | Algorithm::MlDsa87 => {
                let is_kem = alg.family() == Family::Kem;
                let from_seed = |s: &[u8]| -> Result<PrivateKey> {
                    Ok(if is_kem {
                        PrivateKey::Kem(kem::DecapsulationKey::from_seed(alg, s)?)
                    } else {
                        PrivateKey::Signature(sig::SigningKey::from_seed(alg, s)?)
                    })
                };
                let from_expanded = |e: &[u8]| -> Result<PrivateKey> {
                    Ok(if is_kem {
                        PrivateKey::Kem(kem::DecapsulationKey::from_expanded(alg, e)?)
                    } else {
                        PrivateKey::Signature(sig::SigningKey::from_expanded(alg, e)?)
                    })
                };
                let mut r = der::Reader::new(field);
                let key = match r.read_any()? {
                    (der::CONTEXT_0, seed) => from_seed(seed)?,
                    (der::OCTET_STRING, expanded) => from_expanded(expanded)?,
                    (der::SEQUENCE, both) => {
                        let mut b = der::Reader::new(both);
                        let seed = b.read(der::OCTET_STRING, WHAT)?;
                        let expanded = b.read(der::OCTET_STRING, WHAT)?;
                        b.finish(WHAT)?;
                        let key = from_seed(seed)?;
                        if !crate::secret::ct_eq(key.expanded().expose(), expanded) {
                            return Err(invalid_key(
                                alg.name(),
                                "the seed and the expanded key in the file do not match",
                            ));
                        }
                        key
                    }
                    (tag, _) => {
                        return Err(malformed(
                            WHAT,
                            format!(
                                "unknown private key form (tag 0x{tag:02x}); expected seed, expandedKey or both"
                            ),
                        ));
                    }
                };
                r.finish(WHAT)?;
                Ok(key)
            }
            _ => Ok(PrivateKey::Signature(sig::SigningKey::from_expanded(
                alg, field,
            )?)),
        }
    }

    /// Encodes as PEM; with a passphrase, as an encrypted PKCS#8 (PBES2).
    pub fn to_pem(
        &self,
        form: PrivateKeyForm,
        passphrase: Option<(&[u8], Kdf)>,
    ) -> Result<Zeroizing<String>> {
        let der = self.to_pkcs8_der(form)?;
        Ok(match passphrase {
            None => pem::encode(pem::PRIVATE_KEY, der.expose()),
            Some((pass, kdf)) => pem::encode(
                pem::ENCRYPTED_PRIVATE_KEY,
                &pbes2::encrypt(der.expose(), pass, kdf)?,
            ),
        })
    }

    /// Parses a PEM private key, decrypting it if it is encrypted.
    pub fn from_pem(text: &str, passphrase: Option<&[u8]>) -> Result<Self> {
        let (label, der) = pem::decode(text)?;
        Self::from_labelled_der(&label, &der, passphrase)
    }

    /// Parses DER with the given PEM label (`PRIVATE KEY` or `ENCRYPTED PRIVATE KEY`).
    pub fn from_labelled_der(label: &str, der: &[u8], passphrase: Option<&[u8]>) -> Result<Self> {
        match label {
            pem::PRIVATE_KEY => Self::from_pkcs8_der(der),
            pem::ENCRYPTED_PRIVATE_KEY => {
                let pass = passphrase.ok_or(Error::PassphraseRequired)?;
                let plain = pbes2::decrypt(der, pass)?;
                Self::from_pkcs8_der(plain.expose()).map_err(|_| Error::BadPassphrase)
            }
            other => Err(malformed(
                "PEM",
                format!("expected a PRIVATE KEY, found '{other}'"),
            )),
        }
    }

    /// Whether PEM text holds an encrypted private key.
    pub fn pem_is_encrypted(text: &str) -> bool {
        text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----")
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKey({}, [REDACTED])", self.algorithm())
    }
}

impl PublicKey {
    /// Parses raw key bytes of a known algorithm.
    pub fn from_raw(alg: Algorithm, bytes: &[u8]) -> Result<Self> {
        check_pkcs8_alg(alg)?;
        Ok(match alg.family() {
            Family::Kem => PublicKey::Kem(kem::EncapsulationKey::from_bytes(alg, bytes)?),
            _ => PublicKey::Signature(sig::VerifyingKey::from_bytes(alg, bytes)?),
        })
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            PublicKey::Kem(k) => k.algorithm(),
            PublicKey::Signature(k) => k.algorithm(),
        }
    }

    /// The raw encoded key.
    pub fn as_bytes(&self) -> Vec<u8> {
        match self {
            PublicKey::Kem(k) => k.to_bytes(),
            PublicKey::Signature(k) => k.as_bytes().to_vec(),
        }
    }

    /// Encodes as `SubjectPublicKeyInfo` DER.
    pub fn to_spki_der(&self) -> Result<Vec<u8>> {
        let mut bits = vec![0u8];
        bits.extend_from_slice(&self.as_bytes());
        Ok(der::sequence(&[
            &alg_identifier(self.algorithm())?,
            &der::tlv(der::BIT_STRING, &bits),
        ]))
    }

    /// Parses `SubjectPublicKeyInfo` DER.
    pub fn from_spki_der(bytes: &[u8]) -> Result<Self> {
        const WHAT: &str = "SPKI public key";
        let mut outer = der::Reader::new(bytes);
        let mut r = der::Reader::new(outer.read(der::SEQUENCE, WHAT)?);
        outer.finish(WHAT)?;
        let alg = read_alg_identifier(&mut r, WHAT)?;
        let bits = r.read(der::BIT_STRING, WHAT)?;
        r.finish(WHAT)?;
        match bits.split_first() {
            Some((0, key)) => Self::from_raw(alg, key),
            _ => Err(malformed(
                WHAT,
                "public key BIT STRING must have no unused bits",
            )),
        }
    }

    /// Encodes as PEM.
    pub fn to_pem(&self) -> Result<String> {
        Ok(pem::encode(pem::PUBLIC_KEY, &self.to_spki_der()?).to_string())
    }

    /// Parses a PEM public key.
    pub fn from_pem(text: &str) -> Result<Self> {
        let (label, der) = pem::decode(text)?;
        if label != pem::PUBLIC_KEY {
            return Err(malformed(
                "PEM",
                format!("expected a PUBLIC KEY, found '{label}'"),
            ));
        }
        Self::from_spki_der(&der)
    }

    /// SHA-256 of the SPKI DER, as `SHA256:` and lowercase hex.
    pub fn fingerprint(&self) -> Result<String> {
        Ok(format!(
            "SHA256:{}",
            hex::encode(hash::sha256(&self.to_spki_der()?))
        ))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.algorithm())
    }
}

#[cfg(test)]
mod tests;
