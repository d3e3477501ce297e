//! The algorithms Citadel knows, their names, OIDs and sizes.

use crate::{Error, Result};
use core::fmt;
use core::str::FromStr;

/// What a key of an algorithm is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    /// A key-encapsulation mechanism (ML-KEM).
    Kem,
    /// A signature scheme (ML-DSA, SLH-DSA, Ed25519).
    Signature,
    /// An age recipient type (X25519, MLKEM768-X25519); keys use age's encodings.
    AgeRecipient,
}

macro_rules! algorithms {
    ($( $variant:ident => $name:literal, $family:ident, $oid:expr, $pk:expr, $sk:expr, $out:expr, $doc:literal; )*) => {
        /// A public-key algorithm.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum Algorithm {
            $( #[doc = $doc] $variant, )*
        }

        impl Algorithm {
            /// Every algorithm, in the order `list-algs` shows them.
            pub const ALL: &'static [Algorithm] = &[ $( Algorithm::$variant, )* ];

            /// The command-line name, e.g. `ml-dsa-65`.
            pub const fn name(self) -> &'static str {
                match self { $( Algorithm::$variant => $name, )* }
            }

            /// What the algorithm is for.
            pub const fn family(self) -> Family {
                match self { $( Algorithm::$variant => Family::$family, )* }
            }

            /// The DER contents of its object identifier (no tag or length), if it has one.
            pub const fn oid(self) -> Option<&'static [u8]> {
                match self { $( Algorithm::$variant => $oid, )* }
            }

            /// Public key size in bytes.
            pub const fn public_key_len(self) -> usize {
                match self { $( Algorithm::$variant => $pk, )* }
            }

            /// Private key size in bytes in the form Citadel stores (the seed for
            /// ML-KEM, ML-DSA and the hybrid; the full key for SLH-DSA).
            pub const fn private_key_len(self) -> usize {
                match self { $( Algorithm::$variant => $sk, )* }
            }

            /// Signature size (signatures) or ciphertext size (KEMs) in bytes.
            pub const fn output_len(self) -> usize {
                match self { $( Algorithm::$variant => $out, )* }
            }
        }
    };
}

const NIST_SIG: [u8; 8] = [0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x03];
const NIST_KEM: [u8; 8] = [0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x04];

const fn nist(arc: [u8; 8], last: u8) -> [u8; 9] {
    [
        arc[0], arc[1], arc[2], arc[3], arc[4], arc[5], arc[6], arc[7], last,
    ]
}

macro_rules! oid {
    (sig $n:expr) => {
        Some(&const { nist(NIST_SIG, $n) })
    };
    (kem $n:expr) => {
        Some(&const { nist(NIST_KEM, $n) })
    };
}

algorithms! {
    MlKem512 => "ml-kem-512", Kem, oid!(kem 1), 800, 64, 768, "ML-KEM-512 (FIPS 203).";
    MlKem768 => "ml-kem-768", Kem, oid!(kem 2), 1184, 64, 1088, "ML-KEM-768 (FIPS 203).";
    MlKem1024 => "ml-kem-1024", Kem, oid!(kem 3), 1568, 64, 1568, "ML-KEM-1024 (FIPS 203).";
    MlDsa44 => "ml-dsa-44", Signature, oid!(sig 17), 1312, 32, 2420, "ML-DSA-44 (FIPS 204, pure).";
    MlDsa65 => "ml-dsa-65", Signature, oid!(sig 18), 1952, 32, 3309, "ML-DSA-65 (FIPS 204, pure).";
    MlDsa87 => "ml-dsa-87", Signature, oid!(sig 19), 2592, 32, 4627, "ML-DSA-87 (FIPS 204, pure).";
    SlhDsaSha2_128s => "slh-dsa-sha2-128s", Signature, oid!(sig 20), 32, 64, 7856, "SLH-DSA-SHA2-128s (FIPS 205, pure).";
    SlhDsaSha2_128f => "slh-dsa-sha2-128f", Signature, oid!(sig 21), 32, 64, 17088, "SLH-DSA-SHA2-128f (FIPS 205, pure).";
    SlhDsaSha2_192s => "slh-dsa-sha2-192s", Signature, oid!(sig 22), 48, 96, 16224, "SLH-DSA-SHA2-192s (FIPS 205, pure).";
    SlhDsaSha2_192f => "slh-dsa-sha2-192f", Signature, oid!(sig 23), 48, 96, 35664, "SLH-DSA-SHA2-192f (FIPS 205, pure).";
    SlhDsaSha2_256s => "slh-dsa-sha2-256s", Signature, oid!(sig 24), 64, 128, 29792, "SLH-DSA-SHA2-256s (FIPS 205, pure).";
    SlhDsaSha2_256f => "slh-dsa-sha2-256f", Signature, oid!(sig 25), 64, 128, 49856, "SLH-DSA-SHA2-256f (FIPS 205, pure).";
    SlhDsaShake128s => "slh-dsa-shake-128s", Signature, oid!(sig 26), 32, 64, 7856, "SLH-DSA-SHAKE-128s (FIPS 205, pure).";
    SlhDsaShake128f => "slh-dsa-shake-128f", Signature, oid!(sig 27), 32, 64, 17088, "SLH-DSA-SHAKE-128f (FIPS 205, pure).";
    SlhDsaShake192s => "slh-dsa-shake-192s", Signature, oid!(sig 28), 48, 96, 16224, "SLH-DSA-SHAKE-192s (FIPS 205, pure).";
    SlhDsaShake192f => "slh-dsa-shake-192f", Signature, oid!(sig 29), 48, 96, 35664, "SLH-DSA-SHAKE-192f (FIPS 205, pure).";
    SlhDsaShake256s => "slh-dsa-shake-256s", Signature, oid!(sig 30), 64, 128, 29792, "SLH-DSA-SHAKE-256s (FIPS 205, pure).";
    SlhDsaShake256f => "slh-dsa-shake-256f", Signature, oid!(sig 31), 64, 128, 49856, "SLH-DSA-SHAKE-256f (FIPS 205, pure).";
    Ed25519 => "ed25519", Signature, Some(&[0x2B, 0x65, 0x70]), 32, 32, 64, "Ed25519 (RFC 8032), for classical compatibility.";
    X25519 => "x25519", AgeRecipient, Some(&[0x2B, 0x65, 0x6E]), 32, 32, 32, "X25519 age recipient (classical).";
    MlKem768X25519 => "mlkem768x25519", AgeRecipient, None, 1216, 32, 1120, "MLKEM768-X25519 (X-Wing) hybrid KEM; the age v1.3 post-quantum recipient.";
}

impl Algorithm {
    /// Finds the algorithm whose OID has these DER contents.
    pub fn from_oid(oid: &[u8]) -> Option<Algorithm> {
        Algorithm::ALL
            .iter()
            .copied()
            .find(|a| a.oid() == Some(oid))
    }

    /// The dotted form of the OID, for display.
    pub fn oid_string(self) -> Option<String> {
        let bytes = self.oid()?;
        let mut arcs: Vec<u64> = Vec::new();
        let mut acc = 0u64;
        for (i, b) in bytes.iter().enumerate() {
            acc = (acc << 7) | u64::from(b & 0x7F);
            if b & 0x80 == 0 {
                if i == 0 || arcs.is_empty() {
                    let first = if acc >= 80 { 2 } else { acc / 40 };
                    arcs.push(first);
                    arcs.push(acc - first * 40);
                } else {
                    arcs.push(acc);
                }
                acc = 0;
            }
        }
        Some(
            arcs.iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join("."),
        )
    }

    /// Whether the algorithm resists quantum attacks on its own or in a hybrid.
    pub const fn is_post_quantum(self) -> bool {
        !matches!(self, Algorithm::Ed25519 | Algorithm::X25519)
    }

    /// Whether the signature scheme takes a FIPS 204/205 context string.
    pub const fn takes_context(self) -> bool {
        matches!(self.family(), Family::Signature) && !matches!(self, Algorithm::Ed25519)
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Algorithm {
    type Err = Error;

    /// The canonical name (FIPS spelling, as [`Algorithm::name`] prints),
    /// or any spelling that differs from one only in case, hyphens and
    /// underscores (`ML_DSA_65`, `mldsa65`, `mlkem768-x25519`), or
    /// `x-wing`/`xwing` for the X-Wing hybrid.
    fn from_str(s: &str) -> Result<Self> {
        // ASCII only: Unicode case folding would take look-alikes (the
        // Kelvin sign for K).
        let squash = |n: &str| -> String {
            n.trim()
                .chars()
                .filter(|c| *c != '-' && *c != '_')
                .map(|c| {
                    if c.is_ascii() {
                        c.to_ascii_lowercase()
                    } else {
                        '\u{fffd}'
                    }
                })
                .collect()
        };
        let wanted = squash(s);
        if wanted == "xwing" {
            return Ok(Algorithm::MlKem768X25519);
        }
        Algorithm::ALL
            .iter()
            .copied()
            .find(|a| squash(a.name()) == wanted)
            .ok_or_else(|| Error::UnknownAlgorithm(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for a in Algorithm::ALL {
            assert_eq!(a.name().parse::<Algorithm>().unwrap(), *a);
        }
        assert!("rsa-2048".parse::<Algorithm>().is_err());
    }

    /// One vocabulary (issue 15): every spelling a user of another tool
    /// types names the same algorithm, and no two names squash together.
    #[test]
    fn aliases_differ_only_in_case_and_hyphens() {
        for (alias, alg) in [
            ("ML-DSA-65", Algorithm::MlDsa65),
            ("mldsa65", Algorithm::MlDsa65),
            ("ml-dsa65", Algorithm::MlDsa65),
            ("ML_KEM_768", Algorithm::MlKem768),
            ("mlkem768-x25519", Algorithm::MlKem768X25519),
            ("X-Wing", Algorithm::MlKem768X25519),
            ("SLH-DSA-SHA2-128s", Algorithm::SlhDsaSha2_128s),
        ] {
            assert_eq!(alias.parse::<Algorithm>().unwrap(), alg, "{alias}");
        }
        let squashed: std::collections::BTreeSet<String> = Algorithm::ALL
            .iter()
            .map(|a| a.name().replace('-', ""))
            .collect();
        assert_eq!(squashed.len(), Algorithm::ALL.len());
        assert!("ml-dsa-66".parse::<Algorithm>().is_err());
        assert!(
            "ML-\u{212a}EM-768".parse::<Algorithm>().is_err(),
            "a Kelvin sign is not a K"
        );
    }

    #[test]
    fn oids_are_the_nist_and_ietf_ones() {
        assert_eq!(
            Algorithm::MlKem768.oid_string().unwrap(),
            "2.16.840.1.101.3.4.4.2"
        );
        assert_eq!(
            Algorithm::MlDsa65.oid_string().unwrap(),
            "2.16.840.1.101.3.4.3.18"
        );
        assert_eq!(
            Algorithm::SlhDsaShake256f.oid_string().unwrap(),
            "2.16.840.1.101.3.4.3.31"
        );
        assert_eq!(Algorithm::Ed25519.oid_string().unwrap(), "1.3.101.112");
        for a in Algorithm::ALL {
            if let Some(oid) = a.oid() {
                assert_eq!(Algorithm::from_oid(oid), Some(*a));
            }
        }
    }
}
