//! ACL policies in Vault's language (HCL or JSON):
//!
//! ```hcl
//! path "secret/data/app/*" { capabilities = ["create", "read", "update"] }
//! path "secret/metadata/+/config" { capabilities = ["list"] }
//! ```
//!
//! A trailing `*` matches any suffix; `+` matches one path segment. When
//! several rules match a request, the most specific one decides (an exact
//! path beats a glob; then the longer literal prefix; then fewer `+`), as
//! in Vault. Rules with the same path from several policies are merged
//! (their capabilities united). `deny` in the deciding rule refuses
//! everything; a capability not granted is refused (deny by default).
//! The `root` policy allows everything.

use crate::Error;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};

/// The capabilities Vault knows.
pub const CAPABILITIES: [&str; 8] = [
    "create", "read", "update", "patch", "delete", "list", "sudo", "deny",
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    #[serde(default)]
    path: BTreeMap<String, RuleDoc>,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
struct RuleDoc {
    #[serde(default)]
    capabilities: Vec<String>,
    /// Legacy shorthand: read, write, deny, sudo.
    #[serde(default)]
    policy: Option<String>,
}

/// A parsed policy: path pattern → capabilities.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    /// The rules.
    pub rules: BTreeMap<String, BTreeSet<String>>,
}

impl Policy {
    /// Parses HCL or JSON policy text.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let bad = |e: String| Error::BadRequest(format!("failed to parse policy: {e}"));
        let doc: Document = if text.trim_start().starts_with('{') {
            serde_json::from_str(text).map_err(|e| bad(e.to_string()))?
        } else {
            hcl::from_str(text).map_err(|e| bad(e.to_string()))?
        };
        let _ = doc.name;
        let mut rules = BTreeMap::new();
        for (path, r) in doc.path {
            let path = path.trim_start_matches('/').to_string();
            if path.contains("+*") || path[..path.len().saturating_sub(1)].contains('*') {
                return Err(bad(format!(
                    "path {path:?}: '*' is allowed only at the end"
                )));
            }
            let mut caps: BTreeSet<String> = BTreeSet::new();
            for c in &r.capabilities {
                let c = c.to_ascii_lowercase();
                if !CAPABILITIES.contains(&c.as_str()) {
                    return Err(bad(format!("path {path:?}: unknown capability {c:?}")));
                }
                caps.insert(c);
            }
            match r.policy.as_deref() {
                None => {}
                Some("read") => caps.extend(["read", "list"].map(String::from)),
                Some("write") => caps.extend(
                    ["create", "read", "update", "patch", "delete", "list"].map(String::from),
                ),
                Some("sudo") => caps.extend(
                    [
                        "create", "read", "update", "patch", "delete", "list", "sudo",
                    ]
                    .map(String::from),
                ),
                Some("deny") => {
                    caps.insert("deny".into());
                }
                Some(other) => return Err(bad(format!("path {path:?}: unknown policy {other:?}"))),
            }
            rules.insert(path, caps);
        }
        Ok(Self { rules })
    }
}

fn matches(pattern: &str, path: &str) -> bool {
    let (pat, glob) = match pattern.strip_suffix('*') {
        Some(p) => (p, true),
        None => (pattern, false),
    };
    let mut pats = pat.split('/').peekable();
    let mut segs = path.split('/');
    while let Some(p) = pats.next() {
        let Some(s) = segs.next() else {
            return false;
        };
        // With a trailing '*', the last pattern segment is a prefix of the
        // corresponding path segment and anything may follow.
        if glob && pats.peek().is_none() {
            return p == "+" || s.starts_with(p);
        }
        if p != "+" && p != s {
            return false;
        }
    }
    segs.next().is_none()
}

fn rank(pattern: &str) -> (bool, usize, std::cmp::Reverse<usize>, bool) {
    let exact = !pattern.contains('*') && !pattern.contains('+');
    let literal = pattern.find(['*', '+']).unwrap_or(pattern.len());
    let pluses = pattern.matches('+').count();
    (
        exact,
        literal,
        std::cmp::Reverse(pluses),
        !pattern.ends_with('*'),
    )
}

/// A token's policies, checked together: the most specific matching path
/// pattern across all of them decides, with the capabilities every policy
/// grants on that pattern united.
#[derive(Debug, Default)]
pub struct Acl {
    root: bool,
    policies: Vec<std::sync::Arc<Policy>>,
}

impl Acl {
    /// The ACL of `policies` (`root` means everything).
    pub fn new<'a>(
        names: impl IntoIterator<Item = &'a str>,
        load: impl Fn(&str) -> Option<std::sync::Arc<Policy>>,
    ) -> Self {
        let mut acl = Acl::default();
        for n in names {
            if n == "root" {
                acl.root = true;
                continue;
            }
            if let Some(p) = load(n) {
                acl.policies.push(p);
            }
        }
        acl
    }

    /// Whether any rule grants something (not `deny`) on a path under
    /// `prefix` (a mount path ending in `/`): Vault's preflight check for
    /// `sys/internal/ui/mounts`.
    pub fn reaches_under(&self, prefix: &str) -> bool {
        if self.root {
            return true;
        }
        self.policies.iter().any(|p| {
            p.rules.iter().any(|(pat, caps)| {
                let literal = &pat[..pat.find(['*', '+']).unwrap_or(pat.len())];
                let overlaps = literal.starts_with(prefix)
                    || (literal.len() < pat.len() && prefix.starts_with(literal));
                overlaps && !caps.contains("deny") && !caps.is_empty()
            })
        })
    }

    /// Whether `capability` is allowed on `path`.
    pub fn allows(&self, path: &str, capability: &str) -> bool {
        if self.root {
            return true;
        }
        let mut best: Option<(_, &str)> = None;
        for p in &self.policies {
            for pat in p.rules.keys() {
                if matches(pat, path) {
                    let key = (rank(pat), pat.as_str());
                    if best.is_none_or(|b| key > b) {
                        best = Some(key);
                    }
                }
            }
        }
        let Some((_, pat)) = best else {
            return false;
        };
        let mut granted = false;
        for p in &self.policies {
            if let Some(caps) = p.rules.get(pat) {
                if caps.contains("deny") {
                    return false;
                }
                granted |= caps.contains(capability);
            }
        }
        granted
    }
}

/// The built-in `default` policy (used until one is written): a token may
/// look itself up, renew and revoke itself.
pub const DEFAULT_POLICY: &str = r#"
path "auth/token/lookup-self" { capabilities = ["read"] }
path "auth/token/renew-self" { capabilities = ["update"] }
path "auth/token/revoke-self" { capabilities = ["update"] }
"#;

fn key(name: &str) -> String {
    format!("sys/policy/{name}")
}

/// Checks a policy name: lowercase letters, digits, `-`, `_`, `.`.
pub fn check_name(name: &str) -> Result<String, Error> {
    let n = name.trim().to_lowercase();
    if n.is_empty()
        || n.len() > 128
        || !n
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(Error::BadRequest(format!("invalid policy name {name:?}")));
    }
    Ok(n)
}

/// The text of a stored policy (the built-in `default` when not written).
pub fn read_text(v: &crate::core::Vault, name: &str) -> Result<Option<String>, Error> {
    if name == "root" {
        return Ok(Some(String::new()));
    }
    match v.get(&key(name))? {
        Some(b) => Ok(Some(String::from_utf8_lossy(&b).into_owned())),
        None if name == "default" => Ok(Some(DEFAULT_POLICY.to_string())),
        None => Ok(None),
    }
}

/// A stored policy, parsed (once, shared until it is rewritten).
pub fn load(v: &crate::core::Vault, name: &str) -> Option<std::sync::Arc<Policy>> {
    if name == "root" {
        return None;
    }
    let parsed = v
        .get_parsed(&key(name), |b| {
            Ok(match b {
                Some(b) => Policy::parse(&String::from_utf8_lossy(b)).ok(),
                None if name == "default" => Policy::parse(DEFAULT_POLICY).ok(),
                None => None,
            }
            .map(std::sync::Arc::new))
        })
        .ok()?;
    parsed.as_ref().clone()
}

/// Stores a policy after checking that it parses.
pub fn write(v: &crate::core::Vault, name: &str, text: &str) -> Result<(), Error> {
    let name = check_name(name)?;
    if name == "root" {
        return Err(Error::BadRequest("cannot update \"root\" policy".into()));
    }
    Policy::parse(text)?;
    v.put(&key(&name), text.as_bytes())
}

/// Deletes a policy.
pub fn delete(v: &crate::core::Vault, name: &str) -> Result<(), Error> {
    let name = check_name(name)?;
    if name == "root" || name == "default" {
        return Err(Error::BadRequest(format!(
            "cannot delete \"{name}\" policy"
        )));
    }
    v.delete(&key(&name))
}

/// Every policy name, `default` and `root` included.
pub fn list(v: &crate::core::Vault) -> Result<Vec<String>, Error> {
    let mut names = v.list("sys/policy/")?;
    names.retain(|n| !n.ends_with('/'));
    for builtin in ["default", "root"] {
        if !names.iter().any(|n| n == builtin) {
            names.push(builtin.into());
        }
    }
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hcl_and_json_policies_parse_alike() {
        let hcl = r#"
            # app policy
            path "secret/data/app/*" { capabilities = ["read", "create"] }
            path "secret/data/app/locked" { capabilities = ["deny"] }
            path "secret/metadata/+/list" { policy = "read" }
        "#;
        let json = r#"{"path": {"secret/data/app/*": {"capabilities": ["read","create"]},
                                "secret/data/app/locked": {"capabilities": ["deny"]},
                                "secret/metadata/+/list": {"policy": "read"}}}"#;
        let a = Policy::parse(hcl).unwrap();
        assert_eq!(a, Policy::parse(json).unwrap());
        assert!(Policy::parse(r#"path "x" { capabilities = ["fly"] }"#).is_err());
        assert!(Policy::parse(r#"path "a*/b" { capabilities = ["read"] }"#).is_err());
        assert!(Policy::parse("path {").is_err());
    }

    #[test]
    fn globs_and_plus_segments_match_as_in_vault() {
        for (pattern, path, want) in [
            ("secret/data/app", "secret/data/app", true),
            ("secret/data/app", "secret/data/app/x", false),
            ("secret/data/app", "secret/data", false),
            ("secret/*", "secret/", true),
            ("secret/*", "secret/a/b/c", true),
            ("secret/*", "secret", false),
            ("secret/a*", "secret/abc/d", true),
            ("secret/a*", "secret/b", false),
            ("secret/+", "secret/a", true),
            ("secret/+", "secret/a/b", false),
            ("secret/+/x", "secret/a/x", true),
            ("secret/+/x", "secret/a/y", false),
            ("secret/+/x*", "secret/a/xyz/1", true),
            ("secret/+/*", "secret/a/b", true),
            ("+/data/*", "kv/data/a", true),
            ("*", "anything/at/all", true),
        ] {
            assert_eq!(matches(pattern, path), want, "{pattern} vs {path}");
        }
    }

    #[test]
    fn most_specific_rule_decides_deny_wins_and_default_is_deny() {
        let p = Policy::parse(
            r#"
            path "secret/*" { capabilities = ["read"] }
            path "secret/data/app/*" { capabilities = ["read", "update"] }
            path "secret/data/app/locked" { capabilities = ["deny"] }
            path "secret/data/+/shared" { capabilities = ["list"] }
        "#,
        )
        .unwrap();
        let acl = Acl::new(["app"], |_| Some(p.clone().into()));
        assert!(acl.allows("secret/data/app/db", "update"));
        assert!(acl.allows("secret/other", "read"));
        assert!(!acl.allows("secret/other", "update"));
        assert!(
            !acl.allows("secret/data/app/locked", "read"),
            "deny over a matching allow"
        );
        assert!(acl.allows("secret/data/team/shared", "list"));
        assert!(!acl.allows("kv/anything", "read"), "deny by default");
        assert!(Acl::new(["root"], |_| None).allows("anything/at/all", "sudo"));
        // Two policies on the same path unite.
        let q = Policy::parse(r#"path "secret/*" { capabilities = ["list"] }"#).unwrap();
        let acl = Acl::new(["app", "q"], |n| {
            Some(if n == "app" { p.clone() } else { q.clone() }.into())
        });
        assert!(acl.allows("secret/other", "list") && acl.allows("secret/other", "read"));
    }
}
