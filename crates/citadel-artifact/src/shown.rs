//! Names as they may be shown on a terminal.

use std::fmt::Write as _;

/// A file name as it may be shown to a person: printable ASCII as is; every
/// other character — control characters that could move the cursor or
/// rewrite a line, invisible and direction-changing characters, letters
/// that look like ASCII ones — as `\u{…}`, a backslash as `\\`, a quote as
/// `\"`; bytes that are not UTF-8 as `\x..`. A name that needed any of this
/// is shown in double quotes, as git does with `core.quotePath`, so what is
/// on the screen is unambiguous and cannot pass for another name.
pub fn shown(name: &[u8]) -> String {
    let mut out = String::new();
    let mut escaped = false;
    let mut rest = name;
    while !rest.is_empty() {
        let (valid, bad) = match std::str::from_utf8(rest) {
            Ok(s) => (s, None),
            Err(e) => {
                let (ok, tail) = rest.split_at(e.valid_up_to());
                // valid_up_to marks a UTF-8 boundary.
                let s = std::str::from_utf8(ok).unwrap_or_default();
                let n = e.error_len().unwrap_or(tail.len());
                (s, Some(&tail[..n]))
            }
        };
        for c in valid.chars() {
            match c {
                '\\' => {
                    out.push_str("\\\\");
                    escaped = true;
                }
                '"' => {
                    out.push_str("\\\"");
                    escaped = true;
                }
                ' '..='~' => out.push(c),
                _ => {
                    let _ = write!(out, "\\u{{{:x}}}", c as u32);
                    escaped = true;
                }
            }
        }
        rest = &rest[valid.len()..];
        if let Some(bad) = bad {
            for b in bad {
                let _ = write!(out, "\\x{b:02x}");
            }
            escaped = true;
            rest = &rest[bad.len()..];
        }
    }
    // Leading or trailing spaces are invisible too.
    if escaped || out.is_empty() || out.starts_with(' ') || out.ends_with(' ') {
        format!("\"{out}\"")
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::shown;

    #[test]
    fn plain_names_stay_plain_and_the_rest_is_escaped_and_quoted() {
        for (raw, want) in [
            (&b"model.bin"[..], "model.bin"),
            (b"a b/c-d_e.txt", "a b/c-d_e.txt"),
            (b"\r\x1b[2KOK: x", r#""\u{d}\u{1b}[2KOK: x""#),
            (b"evil\xe2\x80\xaetxt.exe", r#""evil\u{202e}txt.exe""#),
            // A Cyrillic a that looks like a Latin one.
            ("mod\u{0430}l".as_bytes(), r#""mod\u{430}l""#),
            (b"bad\xff\xfe", r#""bad\xff\xfe""#),
            (b"x\\y\"z", r#""x\\y\"z""#),
            (b" lead", r#"" lead""#),
            (b"trail ", r#""trail ""#),
            (b"", r#""""#),
        ] {
            assert_eq!(shown(raw), want, "{raw:?}");
        }
    }

    proptest::proptest! {
        /// Whatever the bytes, what is shown is printable ASCII.
        #[test]
        fn what_is_shown_is_printable_ascii(raw in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let s = shown(&raw);
            proptest::prop_assert!(s.bytes().all(|b| (b' '..=b'~').contains(&b)));
        }
    }
}
