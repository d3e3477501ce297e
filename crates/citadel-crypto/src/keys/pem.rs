//! PEM (RFC 7468) armor for DER documents.

use crate::Result;
use crate::error::malformed;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

/// Label of a PKCS#8 private key.
pub const PRIVATE_KEY: &str = "PRIVATE KEY";
/// Label of a PKCS#8 encrypted private key.
pub const ENCRYPTED_PRIVATE_KEY: &str = "ENCRYPTED PRIVATE KEY";
/// Label of an SPKI public key.
pub const PUBLIC_KEY: &str = "PUBLIC KEY";

/// Encodes DER as PEM with 64-column lines.
pub fn encode(label: &str, der: &[u8]) -> Zeroizing<String> {
    let b64 = Zeroizing::new(STANDARD.encode(der));
    let mut out = Zeroizing::new(String::with_capacity(b64.len() + b64.len() / 64 + 64));
    out.push_str(&format!("-----BEGIN {label}-----\n"));
    for chunk in b64.as_bytes().chunks(64) {
        // base64 output is ASCII, so every chunk is valid UTF-8.
        out.push_str(core::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Finds the first PEM block in `text`, returning its label and DER bytes.
/// Text before BEGIN and after END is ignored (as OpenSSL does); inside the
/// block only base64 and line breaks are allowed.
pub fn decode(text: &str) -> Result<(String, Zeroizing<Vec<u8>>)> {
    const WHAT: &str = "PEM";
    let start = text
        .find("-----BEGIN ")
        .ok_or_else(|| malformed(WHAT, "no '-----BEGIN' line found; is this a PEM file?"))?;
    let after = &text[start + 11..];
    let label_end = after
        .find("-----")
        .ok_or_else(|| malformed(WHAT, "unterminated BEGIN line"))?;
    let label = &after[..label_end];
    if label.contains('\n') {
        return Err(malformed(WHAT, "unterminated BEGIN line"));
    }
    let body_start = &after[label_end + 5..];
    let end_marker = format!("-----END {label}-----");
    let body_end = body_start
        .find(&end_marker)
        .ok_or_else(|| malformed(WHAT, format!("missing '{end_marker}'")))?;
    let body: Zeroizing<String> = Zeroizing::new(
        body_start[..body_end]
            .chars()
            .filter(|c| !matches!(c, '\n' | '\r' | ' ' | '\t'))
            .collect(),
    );
    let der = STANDARD
        .decode(body.as_bytes())
        .map_err(|e| malformed(WHAT, format!("bad base64: {e}")))?;
    Ok((label.to_string(), Zeroizing::new(der)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trip(der in prop::collection::vec(any::<u8>(), 0..500)) {
            let pem = encode(PUBLIC_KEY, &der);
            let (label, back) = decode(&pem).unwrap();
            prop_assert_eq!(label, PUBLIC_KEY);
            prop_assert_eq!(&back[..], &der[..]);
        }

        #[test]
        fn never_panics(s in ".{0,200}") {
            let _ = decode(&s);
        }
    }

    #[test]
    fn errors_are_clear() {
        assert!(decode("hello").is_err());
        assert!(decode("-----BEGIN X-----\nAAAA\n").is_err());
        assert!(decode("-----BEGIN X-----\n!!!!\n-----END X-----\n").is_err());
    }
}
