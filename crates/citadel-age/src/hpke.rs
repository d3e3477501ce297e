//! The single-shot HPKE (RFC 9180, mode_base) that age's `mlkem768x25519`
//! recipient uses: KEM MLKEM768-X25519 (0x647a), HKDF-SHA-256, ChaCha20-Poly1305.
//!
//! The hybrid KEM's shared secret enters the key schedule directly, as
//! HPKE-PQ specifies (there is no DHKEM ExtractAndExpand step).

use citadel_crypto::aead::{AeadAlgorithm, AeadKey};
use citadel_crypto::kdf::{hkdf_sha256_expand, hkdf_sha256_extract};
use citadel_crypto::secret::SecretBytes;
use citadel_crypto::xwing;

const SUITE_ID: &[u8] = b"HPKE\x64\x7a\x00\x01\x00\x03";

fn labeled_extract(salt: &[u8], label: &[u8], ikm: &[u8]) -> SecretBytes {
    hkdf_sha256_extract(
        salt,
        &[b"HPKE-v1".as_slice(), SUITE_ID, label, ikm].concat(),
    )
}

fn labeled_expand(
    prk: &SecretBytes,
    label: &[u8],
    info: &[u8],
    len: u16,
) -> citadel_crypto::Result<SecretBytes> {
    let labeled = [&len.to_be_bytes()[..], b"HPKE-v1", SUITE_ID, label, info].concat();
    hkdf_sha256_expand(prk.expose(), &labeled, usize::from(len))
}

fn key_schedule(
    shared_secret: &SecretBytes,
    info: &[u8],
) -> citadel_crypto::Result<(AeadKey, [u8; 12])> {
    let psk_id_hash = labeled_extract(b"", b"psk_id_hash", b"");
    let info_hash = labeled_extract(b"", b"info_hash", info);
    let ctx = [&[0u8][..], psk_id_hash.expose(), info_hash.expose()].concat();
    let secret = labeled_extract(shared_secret.expose(), b"secret", b"");
    let key = labeled_expand(&secret, b"key", &ctx, 32)?;
    let nonce = labeled_expand(&secret, b"base_nonce", &ctx, 12)?;
    let mut n = [0u8; 12];
    n.copy_from_slice(nonce.expose());
    Ok((
        AeadKey::new(AeadAlgorithm::ChaCha20Poly1305, key.expose())?,
        n,
    ))
}

/// SealBase: returns `(enc, ciphertext)`.
pub(crate) fn seal(
    pk: &xwing::EncapsulationKey,
    info: &[u8],
    plaintext: &[u8],
) -> citadel_crypto::Result<(Vec<u8>, Vec<u8>)> {
    let (enc, ss) = pk.encapsulate()?;
    let (key, nonce) = key_schedule(&ss, info)?;
    Ok((enc, key.seal(&nonce, b"", plaintext)?))
}

/// OpenBase. `Err(DecryptionFailed)` means "not for this key".
pub(crate) fn open(
    sk: &xwing::DecapsulationKey,
    enc: &[u8],
    info: &[u8],
    ciphertext: &[u8],
) -> citadel_crypto::Result<Vec<u8>> {
    let ss = sk.decapsulate(enc)?;
    let (key, nonce) = key_schedule(&ss, info)?;
    key.open(&nonce, b"", ciphertext)
}
