//! Passphrase-protected PKCS#8 (RFC 5958 `EncryptedPrivateKeyInfo`, PBES2 of
//! RFC 8018): scrypt (RFC 7914) or PBKDF2-HMAC-SHA-256 with AES-256-CBC.
//!
//! Written: PBES2 with the chosen KDF and AES-256-CBC, which OpenSSL and
//! Python's `cryptography` read. Read: PBKDF2 (HMAC-SHA-1/256/384/512) or
//! scrypt, with AES-256-CBC. Cost parameters from a file are capped so a
//! hostile key file cannot make us spin or allocate without bound.

use super::der::{self, Reader};
use crate::error::malformed;
use crate::secret::SecretBytes;
use crate::{Error, Result, random};
use aws_lc_rs::cipher::{
    AES_256, DecryptionContext, EncryptionContext, PaddedBlockDecryptingKey,
    PaddedBlockEncryptingKey, UnboundCipherKey,
};
use aws_lc_rs::iv::FixedLength;
use aws_lc_rs::pbkdf2;
use core::num::NonZeroU32;
use zeroize::Zeroizing;

const OID_PBES2: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x05, 0x0D];
const OID_PBKDF2: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x05, 0x0C];
const OID_SCRYPT: &[u8] = &[0x2B, 0x06, 0x01, 0x04, 0x01, 0xDA, 0x47, 0x04, 0x0B];
const OID_HMAC_SHA1: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x02, 0x07];
const OID_HMAC_SHA256: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x02, 0x09];
const OID_HMAC_SHA384: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x02, 0x0A];
const OID_HMAC_SHA512: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x02, 0x0B];
const OID_AES256_CBC: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2A];

const WHAT: &str = "encrypted private key";
/// Most PBKDF2 iterations accepted from a file.
pub const MAX_PBKDF2_ITERATIONS: u64 = 10_000_000;
/// Largest scrypt log2(N) accepted from a file (1 GiB with r = 8).
pub const MAX_SCRYPT_LOG_N: u8 = 20;

/// How a passphrase becomes a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kdf {
    /// scrypt with N = 2^log_n, r = 8, p = 1.
    Scrypt {
        /// log2 of the cost parameter N.
        log_n: u8,
    },
    /// PBKDF2-HMAC-SHA-256.
    Pbkdf2 {
        /// Iteration count.
        iterations: u32,
    },
}

impl Default for Kdf {
    /// scrypt, N = 2^17 (128 MiB, a few hundred milliseconds).
    fn default() -> Self {
        Kdf::Scrypt { log_n: 17 }
    }
}

fn derive_key(kdf: &ParsedKdf, passphrase: &[u8]) -> Result<Zeroizing<[u8; 32]>> {
    let mut key = Zeroizing::new([0u8; 32]);
    match kdf {
        ParsedKdf::Pbkdf2 {
            salt,
            iterations,
            prf,
        } => {
            let iterations = NonZeroU32::new(*iterations)
                .ok_or_else(|| malformed(WHAT, "zero PBKDF2 iterations"))?;
            pbkdf2::derive(*prf, iterations, salt, passphrase, key.as_mut());
        }
        ParsedKdf::Scrypt { salt, log_n, r, p } => {
            let params = scrypt::Params::new(*log_n, *r, *p)
                .map_err(|_| malformed(WHAT, "invalid scrypt parameters"))?;
            scrypt::scrypt(passphrase, salt, &params, key.as_mut())
                .map_err(|_| Error::Backend("scrypt"))?;
        }
    }
    Ok(key)
}

enum ParsedKdf {
    Pbkdf2 {
        salt: Vec<u8>,
        iterations: u32,
        prf: pbkdf2::Algorithm,
    },
    Scrypt {
        salt: Vec<u8>,
        log_n: u8,
        r: u32,
        p: u32,
    },
}

fn alg_id(oid: &[u8], params: &[u8]) -> Vec<u8> {
    der::sequence(&[&der::tlv(der::OID, oid), params])
}

/// Encrypts a PKCS#8 `PrivateKeyInfo` DER into `EncryptedPrivateKeyInfo` DER.
pub fn encrypt(pkcs8: &[u8], passphrase: &[u8], kdf: Kdf) -> Result<Vec<u8>> {
    if passphrase.is_empty() {
        return Err(Error::InvalidParameter("the passphrase is empty".into()));
    }
    let salt = random::array::<16>()?;
    let iv = random::array::<16>()?;
    let (parsed, kdf_params) = match kdf {
        Kdf::Scrypt { log_n } => {
            if log_n == 0 || log_n > MAX_SCRYPT_LOG_N {
                return Err(Error::InvalidParameter(format!(
                    "scrypt log2(N) must be 1..={MAX_SCRYPT_LOG_N}"
                )));
            }
            let params = der::sequence(&[
                &der::tlv(der::OCTET_STRING, &salt),
                &der::uint(1u64 << log_n),
                &der::uint(8),
                &der::uint(1),
                &der::uint(32),
            ]);
            (
                ParsedKdf::Scrypt {
                    salt: salt.to_vec(),
                    log_n,
                    r: 8,
                    p: 1,
                },
                alg_id(OID_SCRYPT, &params),
            )
        }
        Kdf::Pbkdf2 { iterations } => {
            if iterations < 1000 {
                return Err(Error::InvalidParameter(
                    "PBKDF2 needs at least 1000 iterations".into(),
                ));
            }
            let params = der::sequence(&[
                &der::tlv(der::OCTET_STRING, &salt),
                &der::uint(u64::from(iterations)),
                &der::uint(32),
                &alg_id(OID_HMAC_SHA256, &der::tlv(der::NULL, &[])),
            ]);
            (
                ParsedKdf::Pbkdf2 {
                    salt: salt.to_vec(),
                    iterations,
                    prf: pbkdf2::PBKDF2_HMAC_SHA256,
                },
                alg_id(OID_PBKDF2, &params),
            )
        }
    };
    let key = derive_key(&parsed, passphrase)?;
    let cipher =
        UnboundCipherKey::new(&AES_256, key.as_ref()).map_err(|_| Error::Backend("AES key"))?;
    let enc = PaddedBlockEncryptingKey::cbc_pkcs7(cipher).map_err(|_| Error::Backend("AES-CBC"))?;
    let mut data = pkcs8.to_vec();
    enc.less_safe_encrypt(&mut data, EncryptionContext::Iv128(FixedLength::from(iv)))
        .map_err(|_| Error::Backend("AES-CBC encryption"))?;
    let scheme = alg_id(OID_AES256_CBC, &der::tlv(der::OCTET_STRING, &iv));
    let pbes2_params = der::sequence(&[&kdf_params, &scheme]);
    Ok(der::sequence(&[
        &alg_id(OID_PBES2, &pbes2_params),
        &der::tlv(der::OCTET_STRING, &data),
    ]))
}

fn parse_kdf(r: &mut Reader<'_>) -> Result<ParsedKdf> {
    let mut kdf = Reader::new(r.read(der::SEQUENCE, WHAT)?);
    let oid = kdf.read(der::OID, WHAT)?;
    let mut params = Reader::new(kdf.read(der::SEQUENCE, WHAT)?);
    kdf.finish(WHAT)?;
    if oid == OID_PBKDF2 {
        let salt = params.read(der::OCTET_STRING, WHAT)?.to_vec();
        let iterations = params.read_uint(WHAT)?;
        if iterations == 0 || iterations > MAX_PBKDF2_ITERATIONS {
            return Err(malformed(
                WHAT,
                format!(
                    "PBKDF2 iteration count {iterations} is outside 1..={MAX_PBKDF2_ITERATIONS}"
                ),
            ));
        }
        if params.peek_tag() == Some(der::INTEGER) {
            let len = params.read_uint(WHAT)?;
            if len != 32 {
                return Err(malformed(WHAT, "PBKDF2 key length must be 32 for AES-256"));
            }
        }
        let prf = if params.is_empty() {
            pbkdf2::PBKDF2_HMAC_SHA1
        } else {
            let mut prf = Reader::new(params.read(der::SEQUENCE, WHAT)?);
            let prf_oid = prf.read(der::OID, WHAT)?;
            let _ = prf.read_optional(der::NULL, WHAT)?;
            prf.finish(WHAT)?;
            match prf_oid {
                o if o == OID_HMAC_SHA1 => pbkdf2::PBKDF2_HMAC_SHA1,
                o if o == OID_HMAC_SHA256 => pbkdf2::PBKDF2_HMAC_SHA256,
                o if o == OID_HMAC_SHA384 => pbkdf2::PBKDF2_HMAC_SHA384,
                o if o == OID_HMAC_SHA512 => pbkdf2::PBKDF2_HMAC_SHA512,
                _ => return Err(malformed(WHAT, "unsupported PBKDF2 PRF")),
            }
        };
        params.finish(WHAT)?;
        Ok(ParsedKdf::Pbkdf2 {
            salt,
            iterations: iterations as u32,
            prf,
        })
    } else if oid == OID_SCRYPT {
        let salt = params.read(der::OCTET_STRING, WHAT)?.to_vec();
        let n = params.read_uint(WHAT)?;
        let r = params.read_uint(WHAT)?;
        let p = params.read_uint(WHAT)?;
        if params.peek_tag() == Some(der::INTEGER) && params.read_uint(WHAT)? != 32 {
            return Err(malformed(WHAT, "scrypt key length must be 32 for AES-256"));
        }
        params.finish(WHAT)?;
        if !n.is_power_of_two() || n < 2 {
            return Err(malformed(WHAT, "scrypt N must be a power of two"));
        }
        let log_n = n.trailing_zeros() as u8;
        if log_n > MAX_SCRYPT_LOG_N || r == 0 || r > 32 || p == 0 || p > 16 {
            return Err(malformed(
                WHAT,
                format!("scrypt cost (N=2^{log_n}, r={r}, p={p}) exceeds the accepted limits"),
            ));
        }
        Ok(ParsedKdf::Scrypt {
            salt,
            log_n,
            r: r as u32,
            p: p as u32,
        })
    } else {
        Err(malformed(
            WHAT,
            "unsupported key-derivation function (PBKDF2 and scrypt are supported)",
        ))
    }
}

/// Decrypts `EncryptedPrivateKeyInfo` DER, returning the inner PKCS#8 DER.
pub fn decrypt(der_bytes: &[u8], passphrase: &[u8]) -> Result<SecretBytes> {
    let mut outer = Reader::new(der_bytes);
    let mut info = Reader::new(outer.read(der::SEQUENCE, WHAT)?);
    outer.finish(WHAT)?;
    let mut alg = Reader::new(info.read(der::SEQUENCE, WHAT)?);
    let data = info.read(der::OCTET_STRING, WHAT)?;
    info.finish(WHAT)?;
    if alg.read(der::OID, WHAT)? != OID_PBES2 {
        return Err(malformed(WHAT, "only PBES2 encryption is supported"));
    }
    let mut params = Reader::new(alg.read(der::SEQUENCE, WHAT)?);
    alg.finish(WHAT)?;
    let kdf = parse_kdf(&mut params)?;
    let mut scheme = Reader::new(params.read(der::SEQUENCE, WHAT)?);
    params.finish(WHAT)?;
    if scheme.read(der::OID, WHAT)? != OID_AES256_CBC {
        return Err(malformed(
            WHAT,
            "unsupported cipher (AES-256-CBC is supported)",
        ));
    }
    let iv: [u8; 16] = scheme
        .read(der::OCTET_STRING, WHAT)?
        .try_into()
        .map_err(|_| malformed(WHAT, "AES-CBC IV must be 16 bytes"))?;
    scheme.finish(WHAT)?;
    if data.is_empty() || data.len() % 16 != 0 {
        return Err(malformed(
            WHAT,
            "ciphertext is not a whole number of AES blocks",
        ));
    }
    let key = derive_key(&kdf, passphrase)?;
    let cipher =
        UnboundCipherKey::new(&AES_256, key.as_ref()).map_err(|_| Error::Backend("AES key"))?;
    let dec = PaddedBlockDecryptingKey::cbc_pkcs7(cipher).map_err(|_| Error::Backend("AES-CBC"))?;
    let mut buf = Zeroizing::new(data.to_vec());
    let plain = dec
        .decrypt(&mut buf, DecryptionContext::Iv128(FixedLength::from(iv)))
        .map_err(|_| Error::BadPassphrase)?;
    // A wrong passphrase passes the padding check about 1 time in 256; the
    // caller's PKCS#8 parse then fails, which it reports as BadPassphrase too.
    Ok(SecretBytes::from_slice(plain))
}
