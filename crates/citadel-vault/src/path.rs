//! The one place a request path is decoded and normalised. Everything
//! downstream (the ACL check, routing, the backends, storage keys) sees the
//! [`CanonicalPath`] made here and never normalises again.
//!
//! The rules, from the raw (percent-encoded) path after `/v1/`:
//!
//! 1. A raw path that is not clean — an empty segment (`a//b`, a leading
//!    `/`), or a `.` or `..` segment — is answered with a redirect to its
//!    cleaned form, as OpenBao (Go's `ServeMux`) does; the cleaned path is
//!    then a new request, checked from the start.
//! 2. The path is percent-decoded once, strictly: a malformed escape, bytes
//!    that are not UTF-8, or a control character (`%00`, `%0a`, DEL) is
//!    refused.
//! 3. After decoding, a `.` or `..` segment is refused ("relative paths not
//!    supported", as OpenBao), and so is an empty segment (`a%2F%2Fb`),
//!    which OpenBao passes on (where `+` in a policy matches it).
//! 4. A trailing `/` is removed; it is kept only as a flag, which matters
//!    to list operations alone (their ACL path is the directory, `P/`).
//!    So `sys/mounts/x/` and `sys/mounts/x` are the same name to the ACL
//!    and to the backend.
//! 5. At most [`MAX_PATH`] bytes and [`MAX_SEGMENTS`] segments.
//!
//! Case and whitespace are kept: paths are case-sensitive. Names that a
//! backend folds (policy, user and role names) are folded by the router,
//! before the ACL check, not here.

use crate::error::Error;

/// Longest accepted path, in bytes after decoding.
pub const MAX_PATH: usize = 4096;
/// Most segments in a path.
pub const MAX_SEGMENTS: usize = 256;

/// A path after [`canonicalize`]: no leading or trailing `/`, no empty,
/// `.` or `..` segment, decoded, free of control characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CanonicalPath {
    path: String,
    trailing_slash: bool,
}

impl CanonicalPath {
    /// The path, without leading or trailing `/`.
    pub fn as_str(&self) -> &str {
        &self.path
    }

    /// Whether the request spelled it with a trailing `/`.
    pub fn trailing_slash(&self) -> bool {
        self.trailing_slash
    }

    /// For tests and internal requests: a path already in canonical form.
    pub fn parse(path: &str) -> Result<Self, Error> {
        match canonicalize(path)? {
            Canon::Path(p) => Ok(p),
            Canon::Redirect(_) => Err(Error::bad(format!("{path:?} is not a clean path"))),
        }
    }
}

/// The outcome of [`canonicalize`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Canon {
    /// The canonical path.
    Path(CanonicalPath),
    /// The raw path was not clean: redirect (307) to this path, relative
    /// to `/v1/` (still percent-encoded, as it came).
    Redirect(String),
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Strict percent-decoding (`plus_is_space` for query strings).
pub fn percent_decode(s: &str, plus_is_space: bool) -> Result<String, Error> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let (Some(h), Some(l)) = (
                    b.get(i + 1).copied().and_then(hex_val),
                    b.get(i + 2).copied().and_then(hex_val),
                ) else {
                    return Err(Error::bad(format!(
                        "invalid URL escape at byte {i} of the path or query"
                    )));
                };
                out.push(h << 4 | l);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    let s = String::from_utf8(out)
        .map_err(|_| Error::bad("the path or query is not valid UTF-8 once decoded"))?;
    if s.chars().any(char::is_control) {
        return Err(Error::bad(
            "the path or query holds a control character; refusing it",
        ));
    }
    Ok(s)
}

/// Go's `path.Clean` of the raw path (with a trailing `/` kept, as
/// `ServeMux` keeps it), relative to `/v1/`.
fn clean(raw: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for seg in raw.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let mut c = out.join("/");
    // Go's mux also sends `/v1/sys` on to `/v1/sys/`.
    if (raw.ends_with('/') || c == "sys") && !c.is_empty() {
        c.push('/');
    }
    c
}

/// Canonicalises the raw path after `/v1/` (see the module docs).
pub fn canonicalize(raw: &str) -> Result<Canon, Error> {
    if raw.len() > 3 * MAX_PATH {
        return Err(Error::bad("the path is too long"));
    }
    // 1. The raw path must be clean.
    let body = raw.strip_suffix('/').unwrap_or(raw);
    let unclean = raw.starts_with('/')
        || (!body.is_empty()
            && body
                .split('/')
                .any(|s| s.is_empty() || s == "." || s == ".."));
    if unclean {
        return Ok(Canon::Redirect(clean(raw)));
    }
    // 2. Decode once.
    let decoded = percent_decode(raw, false)?;
    if decoded.len() > MAX_PATH {
        return Err(Error::bad(format!(
            "the path is longer than {MAX_PATH} bytes"
        )));
    }
    // 4. One trailing slash is a flag.
    let (path, trailing_slash) = match decoded.strip_suffix('/') {
        Some(p) => (p, true),
        None => (decoded.as_str(), false),
    };
    // 3. No relative or empty segments after decoding.
    if !path.is_empty() {
        let mut n = 0usize;
        for seg in path.split('/') {
            n += 1;
            match seg {
                "." | ".." => return Err(Error::bad("relative paths not supported")),
                "" => {
                    return Err(Error::bad(
                        "invalid path: it has an empty segment (an encoded '//' or a leading '/')",
                    ));
                }
                _ => {}
            }
        }
        if n > MAX_SEGMENTS {
            return Err(Error::bad(format!(
                "the path has more than {MAX_SEGMENTS} segments"
            )));
        }
    }
    Ok(Canon::Path(CanonicalPath {
        path: path.to_string(),
        trailing_slash,
    }))
}

/// Normalises a path given in a request body (`sys/capabilities`): no
/// percent-decoding (it is not a URL), otherwise the rules of
/// [`canonicalize`]; a trailing `/` is kept (it names a directory).
pub fn logical(p: &str) -> Result<String, Error> {
    let p = p.strip_prefix('/').unwrap_or(p);
    if p.len() > MAX_PATH || p.chars().any(char::is_control) {
        return Err(Error::bad(format!("invalid path {p:?}")));
    }
    let (body, dir) = match p.strip_suffix('/') {
        Some(b) => (b, true),
        None => (p, false),
    };
    if !body.is_empty()
        && body
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err(Error::bad(format!(
            "invalid path {p:?}: empty, '.' or '..' segment"
        )));
    }
    Ok(if dir && !body.is_empty() {
        format!("{body}/")
    } else {
        body.to_string()
    })
}

/// Decodes a query string (`a=1&b=two`) into pairs; a key given twice is
/// refused, since it would be read one way here and another way elsewhere.
pub fn parse_query(raw: &str) -> Result<Vec<(String, String)>, Error> {
    let mut out: Vec<(String, String)> = Vec::new();
    for part in raw.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        let k = percent_decode(k, true)?;
        let v = percent_decode(v, true)?;
        if out.iter().any(|(x, _)| *x == k) {
            return Err(Error::bad(format!(
                "query parameter {k:?} is given more than once"
            )));
        }
        out.push((k, v));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(raw: &str) -> Result<(String, bool), String> {
        match canonicalize(raw) {
            Ok(Canon::Path(p)) => Ok((p.as_str().to_string(), p.trailing_slash())),
            Ok(Canon::Redirect(r)) => Err(format!("redirect {r}")),
            Err(e) => Err(e.to_string()),
        }
    }

    #[test]
    fn paths_as_openbao_sees_them_or_stricter() {
        // Clean paths pass; the trailing slash becomes a flag.
        assert_eq!(path("secret/data/a"), Ok(("secret/data/a".into(), false)));
        assert_eq!(path("sys/mounts/x/"), Ok(("sys/mounts/x".into(), true)));
        assert_eq!(path(""), Ok(("".into(), false)));
        // Raw paths that are not clean redirect to the cleaned path.
        for (raw, to) in [
            ("secret/data//prod/db", "secret/data/prod/db"),
            ("/secret/data/prod/db", "secret/data/prod/db"),
            ("secret/data/./prod/db", "secret/data/prod/db"),
            ("secret/data/x/../prod/db", "secret/data/prod/db"),
            ("secret/data/prod/db/.", "secret/data/prod/db"),
            ("secret/data/prod/db//", "secret/data/prod/db/"),
            ("../../sys/seal", "sys/seal"),
        ] {
            assert_eq!(path(raw), Err(format!("redirect {to}")), "{raw}");
        }
        // Decoded once; what decoding reveals is refused.
        assert_eq!(
            path("secret%2Fdata%2Fa"),
            Ok(("secret/data/a".into(), false))
        );
        assert_eq!(path("secret/data/a%2F"), Ok(("secret/data/a".into(), true)));
        assert_eq!(
            path("secret/data/a%20b"),
            Ok(("secret/data/a b".into(), false))
        );
        for raw in [
            "secret/data/%2e/prod",
            "secret/data/prod%2f%2e%2e%2fapp",
            "secret/data/prod%2F%2Fdb",
            "%2Fsecret/data",
            "secret/data/a%00",
            "secret/data/a%0a",
            "secret/data/a%zz",
            "secret/data/a%2",
            "secret/data/%ff",
        ] {
            assert!(
                path(raw).is_err_and(|e| !e.starts_with("redirect")),
                "{raw}"
            );
        }
        assert!(path(&"a/".repeat(300)).is_err());
        assert!(path(&"a".repeat(5000)).is_err());
    }

    #[test]
    fn queries_decode_strictly_and_once() {
        assert_eq!(
            parse_query("list=true&version=2&x=a+b%2B").unwrap(),
            vec![
                ("list".into(), "true".into()),
                ("version".into(), "2".into()),
                ("x".into(), "a b+".into())
            ]
        );
        assert!(parse_query("a=1&a=2").is_err());
        assert!(parse_query("a=%").is_err());
        assert!(parse_query("a=%00").is_err());
    }
}
