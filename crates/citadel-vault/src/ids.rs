//! Random identifiers (request ids, tokens, accessors) and the clock.

use crate::error::{Error, internal};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use zeroize::Zeroizing;

/// `n` random bytes in unpadded base64url.
pub fn random_b64url(n: usize) -> Result<String, Error> {
    let mut b = Zeroizing::new(vec![0u8; n]);
    citadel_crypto::random::fill(&mut b).map_err(internal)?;
    Ok(URL_SAFE_NO_PAD.encode(&b[..]))
}

/// A random identifier in UUID form (request ids, role ids, nonces).
pub fn uuid() -> Result<String, Error> {
    let b = citadel_crypto::random::array::<16>().map_err(internal)?;
    let h = hex::encode(b);
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    ))
}

/// A new random token string (192 bits), `hvs.`-prefixed as Vault's.
pub fn new_token() -> Result<Zeroizing<String>, Error> {
    Ok(Zeroizing::new(format!("hvs.{}", random_b64url(24)?)))
}

/// A new random accessor (144 bits), in hex: letters and digits only, as
/// Vault's, so one never begins with `-` and reads as a flag.
pub fn new_accessor() -> Result<String, Error> {
    Ok(hex::encode(
        citadel_crypto::random::array::<18>().map_err(internal)?,
    ))
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The current time as RFC 3339 UTC.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// A Unix time as RFC 3339 (null when out of range).
pub fn rfc3339(unix: u64) -> serde_json::Value {
    i64::try_from(unix)
        .ok()
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .map_or(serde_json::Value::Null, serde_json::Value::String)
}
