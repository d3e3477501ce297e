//! Bech32 (BIP 173) as age uses it: no limit on the data length.

use bech32::Hrp;
use bech32::primitives::checksum::Checksum;
use bech32::primitives::decode::CheckedHrpstring;
use bech32::primitives::gf32::Fe32;
use bech32::primitives::gf32_ext::Fe1024;

/// BIP 173 Bech32 with the code-length limit lifted, as the age spec requires
/// (post-quantum recipients are 1,959 characters long).
pub(crate) enum AgeBech32 {}

impl Checksum for AgeBech32 {
    type MidstateRepr = u32;
    type CorrectionField = Fe1024;
    const ROOT_GENERATOR: Self::CorrectionField = Fe1024::new([Fe32::P, Fe32::X]);
    const ROOT_EXPONENTS: core::ops::RangeInclusive<usize> = 24..=26;
    const CODE_LENGTH: usize = 1 << 16;
    const CHECKSUM_LENGTH: usize = 6;
    const GENERATOR_SH: [u32; 5] = [
        0x3b6a_57b2,
        0x2650_8e6d,
        0x1ea1_19fa,
        0x3d42_33dd,
        0x2a14_62b3,
    ];
    const TARGET_RESIDUE: u32 = 1;
}

/// Encodes `data` under `hrp`, upper-case when `upper`.
pub(crate) fn encode(hrp: &str, data: &[u8], upper: bool) -> Result<String, String> {
    let hrp = Hrp::parse(&hrp.to_ascii_lowercase()).map_err(|e| e.to_string())?;
    if upper {
        bech32::encode_upper::<AgeBech32>(hrp, data).map_err(|e| e.to_string())
    } else {
        bech32::encode_lower::<AgeBech32>(hrp, data).map_err(|e| e.to_string())
    }
}

/// A Bech32 error in words: the crate's own top message is terse ("parse
/// failed"), its causes say what is wrong.
fn said(e: &dyn std::error::Error) -> String {
    let mut causes = Vec::new();
    let mut cur = e.source();
    while let Some(c) = cur {
        causes.push(c.to_string());
        cur = c.source();
    }
    match causes.last() {
        Some(why) => format!("not a valid Bech32 string ({why})"),
        None => format!("not a valid Bech32 string ({e})"),
    }
}

/// Decodes a Bech32 string, returning the lower-case HRP and the data.
pub(crate) fn decode(s: &str) -> Result<(String, Vec<u8>), String> {
    if s.chars().any(|c| c.is_ascii_uppercase()) && s.chars().any(|c| c.is_ascii_lowercase()) {
        return Err("mixed upper and lower case".into());
    }
    let checked = CheckedHrpstring::new::<AgeBech32>(s).map_err(|e| said(&e))?;
    let hrp = checked.hrp().to_lowercase();
    let data: Vec<u8> = checked.byte_iter().collect();
    Ok((hrp, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Helper-16: "invalid recipient 'age1bogus': parse failed" said
    /// nothing of what was wrong.
    #[test]
    fn errors_say_what_is_wrong() {
        let e = decode("age1bogus").unwrap_err();
        assert!(
            e.contains("invalid character") && !e.contains("parse failed"),
            "{e}"
        );
    }

    #[test]
    fn long_strings_round_trip() {
        let data = vec![0xA5u8; 1216];
        let s = encode("age1pq", &data, false).unwrap();
        assert_eq!(s.len(), 1959);
        assert_eq!(decode(&s).unwrap(), ("age1pq".to_string(), data));
        let id = encode("AGE-SECRET-KEY-PQ-", &[1u8; 32], true).unwrap();
        assert!(id.starts_with("AGE-SECRET-KEY-PQ-1"));
        assert_eq!(decode(&id).unwrap().0, "age-secret-key-pq-");
        let mut bad = s.clone().into_bytes();
        bad[100] = if bad[100] == b'q' { b'p' } else { b'q' };
        assert!(decode(core::str::from_utf8(&bad).unwrap()).is_err());
    }
}
