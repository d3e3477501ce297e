//! Rollback and tampering detection for the storage under the barrier.
//!
//! AES-GCM with the storage key as associated data stops a blob from being
//! moved to another key, but not from being replaced by an *older* blob of
//! the same key, deleted, or brought back after deletion: every such blob
//! still authenticates. So the barrier keeps, sealed in storage beside the
//! data, a keyed digest of the whole store:
//!
//! `digest = XOR over every stored (key, blob) of HMAC-SHA-256(k, len(key) ‖ key ‖ blob)`
//!
//! with `k` a key held in the keyring (never stored in clear), and an
//! `epoch` counting the write batches. Both are updated in the same storage
//! transaction as every write, so the record always describes the rows
//! beside it. At unseal the barrier recomputes the digest from the rows and
//! refuses to unseal when it differs: a row restored to an older version,
//! a deleted row, a row brought back, or a row added without the key is
//! found, whatever its position (an incremental multiset MAC; each blob has
//! a fresh random nonce, so no two blobs ever share a term of the XOR, and
//! without `k` nobody can compute a term).
//!
//! What the digest cannot see is the whole store rolled back at once (an
//! old backup restored with its own digest record). The epoch is for that:
//! the vault anchors it in its audit devices, and an unseal that finds a
//! storage epoch below the highest anchored one refuses too (the core
//! does this check). An attacker who can roll back the storage *and* every
//! audit device together is not detected; keep audit logs on other storage
//! and copy their signed checkpoints elsewhere.

use serde::{Deserialize, Serialize};

/// Where the sealed record is stored.
pub const RECORD: &str = "core/integrity";

/// The record sealed beside the data.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Write batches applied since the vault was initialised.
    pub epoch: u64,
    /// The XOR of every row's term, hex.
    #[serde(with = "hex_array")]
    pub digest: [u8; 32],
}

mod hex_array {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let s = String::deserialize(d)?;
        let b = hex::decode(&s).map_err(serde::de::Error::custom)?;
        b.try_into()
            .map_err(|_| serde::de::Error::custom("digest must be 32 bytes"))
    }
}

/// One row's term of the digest.
pub fn term(k: &[u8], key: &str, blob: &[u8]) -> [u8; 32] {
    let mut msg = Vec::with_capacity(8 + key.len() + blob.len());
    msg.extend_from_slice(&(key.len() as u64).to_be_bytes());
    msg.extend_from_slice(key.as_bytes());
    msg.extend_from_slice(blob);
    citadel_crypto::kdf::hmac_sha256(k, &msg)
}

/// `acc ^= t`.
pub fn fold(acc: &mut [u8; 32], t: &[u8; 32]) {
    for (a, b) in acc.iter_mut().zip(t) {
        *a ^= b;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_is_order_free_and_sees_a_replaced_row() {
        let k = [7u8; 32];
        let rows = [("a", &b"1"[..]), ("b", &b"2"[..]), ("c", &b"3"[..])];
        let mut fwd = [0u8; 32];
        for (key, v) in rows {
            fold(&mut fwd, &term(&k, key, v));
        }
        let mut rev = [0u8; 32];
        for (key, v) in rows.iter().rev() {
            fold(&mut rev, &term(&k, key, v));
        }
        assert_eq!(fwd, rev);
        // Replacing b's value by an older one changes the digest.
        let mut upd = fwd;
        fold(&mut upd, &term(&k, "b", b"2"));
        fold(&mut upd, &term(&k, "b", b"old"));
        assert_ne!(upd, fwd);
        // The same blob under another key is another term.
        assert_ne!(term(&k, "ab", b"c"), term(&k, "a", b"bc"));
        // Removing and re-adding a row returns to the same digest.
        fold(&mut upd, &term(&k, "b", b"old"));
        fold(&mut upd, &term(&k, "b", b"2"));
        assert_eq!(upd, fwd);
    }
}
