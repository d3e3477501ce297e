//! ACL policies in Vault's language (HCL or JSON), evaluated as Vault
//! evaluates them, and the store that keeps them.
//!
//! ```hcl
//! path "secret/data/app/*" { capabilities = ["create", "read", "update"] }
//! path "secret/metadata/+/config" { capabilities = ["list"] }
//! ```
//!
//! Matching (Vault's `acl.go`): an exact rule for the path wins; otherwise
//! the longest matching `*` prefix rule and every matching `+` rule compete,
//! and the highest priority wins: the later first wildcard, then a rule
//! without a trailing `*`, then fewer `+` segments, then the longer
//! pattern. The rules of one pattern from all of a token's policies are
//! merged: capabilities united, and `deny` in any of them is `deny` alone.
//! A path no rule matches is denied. The `root` policy allows everything.
//!
//! One difference, by design: a pattern without a trailing `*` is stored
//! without a trailing `/`, since request paths reach the ACL without one
//! (see [`crate::path`]): `path "sys/mounts/prod/"` governs
//! `sys/mounts/prod`, whichever way the client spells it.
//!
//! Policy names are folded (trimmed, lowercased) before anything else,
//! including the ACL check on `sys/policies/acl/:name`.

use crate::error::Error;
use crate::request::Operation;
use crate::view::View;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Capability bits.
mod cap {
    pub const CREATE: u16 = 1;
    pub const READ: u16 = 1 << 1;
    pub const UPDATE: u16 = 1 << 2;
    pub const DELETE: u16 = 1 << 3;
    pub const LIST: u16 = 1 << 4;
    pub const SUDO: u16 = 1 << 5;
    pub const DENY: u16 = 1 << 6;
    pub const PATCH: u16 = 1 << 7;
    pub const SCAN: u16 = 1 << 8;
    pub const STREAM: u16 = 1 << 9;
}

/// The capabilities Vault knows, in the order `sys/capabilities` lists
/// them.
const NAMES: [(&str, u16); 10] = [
    ("sudo", cap::SUDO),
    ("read", cap::READ),
    ("list", cap::LIST),
    ("update", cap::UPDATE),
    ("delete", cap::DELETE),
    ("create", cap::CREATE),
    ("patch", cap::PATCH),
    ("scan", cap::SCAN),
    ("stream", cap::STREAM),
    ("deny", cap::DENY),
];

fn cap_bit(name: &str) -> Option<u16> {
    NAMES.iter().find(|(n, _)| *n == name).map(|(_, b)| *b)
}

/// The operation a capability name grants (`None` for `sudo`, `deny`,
/// `root`).
pub fn operation_of(capability: &str) -> Option<Operation> {
    Some(match capability {
        "create" => Operation::Create,
        "read" => Operation::Read,
        "update" => Operation::Update,
        "delete" => Operation::Delete,
        "list" => Operation::List,
        "patch" => Operation::Patch,
        _ => return None,
    })
}

fn op_bit(op: Operation) -> u16 {
    match op {
        Operation::Read => cap::READ,
        Operation::List => cap::LIST,
        Operation::Create => cap::CREATE,
        Operation::Update => cap::UPDATE,
        Operation::Delete => cap::DELETE,
        Operation::Patch => cap::PATCH,
    }
}

/// Longest accepted policy text.
pub const MAX_POLICY_BYTES: usize = 256 * 1024;
/// Deepest bracket nesting accepted in policy text (the HCL parser
/// recurses on it).
const MAX_NESTING: usize = 32;

/// One rule: a pattern and its capability bits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// The pattern as normalised (leading `/` and, without a trailing
    /// `*`, trailing `/` removed).
    pub pattern: String,
    caps: u16,
}

/// A parsed policy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    /// Its rules, in the order written (same-pattern rules merged).
    pub rules: Vec<Rule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonDoc {
    #[serde(default)]
    path: std::collections::BTreeMap<String, JsonRule>,
    #[serde(default)]
    name: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct JsonRule {
    #[serde(default)]
    capabilities: Vec<String>,
    #[serde(default)]
    policy: Option<String>,
    #[serde(default)]
    comment: Option<serde_json::Value>,
    #[serde(flatten)]
    other: std::collections::BTreeMap<String, serde_json::Value>,
}

fn bad(m: impl std::fmt::Display) -> Error {
    Error::bad(format!("failed to parse policy: {m}"))
}

/// Keys of a `path` block Vault knows but citadel does not implement:
/// refused, since ignoring them would grant more than the policy says.
const UNSUPPORTED_KEYS: [&str; 8] = [
    "allowed_parameters",
    "denied_parameters",
    "required_parameters",
    "min_wrapping_ttl",
    "max_wrapping_ttl",
    "mfa_methods",
    "control_group",
    "pagination_limit",
];

fn check_key(path: &str, key: &str) -> Result<(), Error> {
    match key {
        "capabilities" | "policy" | "comment" => Ok(()),
        k if UNSUPPORTED_KEYS.contains(&k) => Err(bad(format!(
            "path {path:?}: {k} is not supported by citadel; write the rule without it (citadel would otherwise grant more than the policy says)"
        ))),
        k => Err(bad(format!("path {path:?}: unknown key {k:?}"))),
    }
}

/// Turns one written rule into capability bits.
fn rule_caps(path: &str, caps: &[String], legacy: Option<&str>) -> Result<u16, Error> {
    let mut bits = 0u16;
    for c in caps {
        let b = cap_bit(&c.to_ascii_lowercase())
            .ok_or_else(|| bad(format!("path {path:?}: invalid capability {c:?}")))?;
        bits |= b;
    }
    match legacy {
        None => {}
        Some("deny") => bits |= cap::DENY,
        Some("read") => bits |= cap::READ | cap::LIST,
        Some("write") => bits |= cap::CREATE | cap::READ | cap::UPDATE | cap::DELETE | cap::LIST,
        Some("sudo") => {
            bits |= cap::CREATE | cap::READ | cap::UPDATE | cap::DELETE | cap::LIST | cap::SUDO
        }
        Some(other) => return Err(bad(format!("path {path:?}: invalid policy {other:?}"))),
    }
    // As Vault: deny alone.
    if bits & cap::DENY != 0 {
        bits = cap::DENY;
    }
    Ok(bits)
}

/// Normalises a written pattern; refuses what Vault refuses, and a `*`
/// anywhere but at the end (which Vault would take literally).
fn normalize_pattern(p: &str) -> Result<String, Error> {
    let p = p.strip_prefix('/').unwrap_or(p);
    if p.contains("+*") {
        return Err(bad(format!(
            "path {p:?}: invalid use of wildcards ('+*' is forbidden)"
        )));
    }
    if p.trim_end_matches('*').contains('*') || p.ends_with("**") {
        return Err(bad(format!("path {p:?}: '*' is allowed only at the end")));
    }
    if p.chars().any(char::is_control) {
        return Err(bad(format!("path {p:?}: control character")));
    }
    Ok(if p.ends_with('*') {
        p.to_string()
    } else {
        p.trim_end_matches('/').to_string()
    })
}

fn nesting_ok(text: &str) -> bool {
    let mut depth = 0usize;
    for c in text.chars() {
        match c {
            '[' | '{' | '(' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return false;
                }
            }
            ']' | '}' | ')' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    true
}

fn hcl_strings(path: &str, key: &str, e: &hcl::Expression) -> Result<Vec<String>, Error> {
    match e {
        hcl::Expression::Array(items) => items
            .iter()
            .map(|i| match i {
                hcl::Expression::String(s) => Ok(s.clone()),
                _ => Err(bad(format!(
                    "path {path:?}: {key} must be a list of strings"
                ))),
            })
            .collect(),
        _ => Err(bad(format!(
            "path {path:?}: {key} must be a list of strings"
        ))),
    }
}

impl Policy {
    /// Parses HCL or JSON policy text.
    pub fn parse(text: &str) -> Result<Self, Error> {
        if text.len() > MAX_POLICY_BYTES {
            return Err(bad(format!("longer than {MAX_POLICY_BYTES} bytes")));
        }
        if !nesting_ok(text) {
            return Err(bad(format!("nested deeper than {MAX_NESTING} levels")));
        }
        let mut written: Vec<(String, u16)> = Vec::new();
        if text.trim_start().starts_with('{') {
            // Parsed by the request-body parser, which refuses a key given
            // twice (serde would keep the last rule of a repeated path).
            let map = crate::fields::parse_body(text.as_bytes(), 1_000_000)?;
            let doc: JsonDoc =
                serde_json::from_value(serde_json::Value::Object(map)).map_err(bad)?;
            let _ = doc.name;
            for (path, r) in doc.path {
                if let Some(k) = r.other.keys().next() {
                    check_key(&path, k)?;
                }
                let _ = r.comment;
                written.push((
                    normalize_pattern(&path)?,
                    rule_caps(&path, &r.capabilities, r.policy.as_deref())?,
                ));
            }
        } else {
            let body = hcl::parse(text).map_err(bad)?;
            for s in body.into_iter() {
                match s {
                    hcl::Structure::Attribute(a) if a.key.as_str() == "name" => {}
                    hcl::Structure::Attribute(a) => {
                        return Err(bad(format!("unknown top-level key {:?}", a.key.as_str())));
                    }
                    hcl::Structure::Block(b) => {
                        if b.identifier.as_str() != "path" || b.labels.len() != 1 {
                            return Err(bad(format!(
                                "unexpected block {:?}: only path \"...\" {{ ... }} blocks are allowed",
                                b.identifier.as_str()
                            )));
                        }
                        let path = b.labels[0].as_str().to_string();
                        let mut caps = Vec::new();
                        let mut legacy = None;
                        for inner in b.body.into_iter() {
                            let hcl::Structure::Attribute(a) = inner else {
                                return Err(bad(format!("path {path:?}: unexpected block")));
                            };
                            check_key(&path, a.key.as_str())?;
                            match a.key.as_str() {
                                "capabilities" => {
                                    caps.extend(hcl_strings(&path, "capabilities", &a.expr)?)
                                }
                                "policy" => match &a.expr {
                                    hcl::Expression::String(s) => legacy = Some(s.clone()),
                                    _ => {
                                        return Err(bad(format!(
                                            "path {path:?}: policy must be a string"
                                        )));
                                    }
                                },
                                _ => {}
                            }
                        }
                        written.push((
                            normalize_pattern(&path)?,
                            rule_caps(&path, &caps, legacy.as_deref())?,
                        ));
                    }
                }
            }
        }
        let mut p = Policy::default();
        for (pattern, caps) in written {
            p.add(pattern, caps);
        }
        Ok(p)
    }

    fn add(&mut self, pattern: String, caps: u16) {
        match self.rules.iter_mut().find(|r| r.pattern == pattern) {
            Some(r) => r.caps = merge(r.caps, caps),
            None => self.rules.push(Rule { pattern, caps }),
        }
    }
}

/// Vault's merge of two rules for the same pattern.
fn merge(a: u16, b: u16) -> u16 {
    if (a | b) & cap::DENY != 0 {
        cap::DENY
    } else {
        a | b
    }
}

/// A rule with `+` segments.
#[derive(Debug)]
struct Wildcard {
    /// The pattern without its trailing `*`.
    body: String,
    parts: Vec<String>,
    prefix: bool,
    first_wildcard: usize,
    wildcards: usize,
    caps: u16,
}

/// A token's policies, merged and ready to check requests against.
#[derive(Debug, Default)]
pub struct Acl {
    root: bool,
    exact: HashMap<String, u16>,
    /// `*` rules without `+`: (prefix, caps), longest prefix first.
    prefixes: Vec<(String, u16)>,
    wildcards: Vec<Wildcard>,
}

fn has_segment_wildcard(p: &str) -> bool {
    p == "+" || p.contains("/+") || p.starts_with("+/")
}

impl Acl {
    /// The ACL of `policies` (a `root` among them means everything).
    pub fn new(root: bool, policies: &[Arc<Policy>]) -> Self {
        let mut exact: HashMap<String, u16> = HashMap::new();
        let mut prefixes: HashMap<String, u16> = HashMap::new();
        let mut wild: HashMap<String, u16> = HashMap::new();
        for p in policies {
            for r in &p.rules {
                let (map, key) = if has_segment_wildcard(&r.pattern) {
                    (&mut wild, r.pattern.clone())
                } else if let Some(prefix) = r.pattern.strip_suffix('*') {
                    (&mut prefixes, prefix.to_string())
                } else {
                    (&mut exact, r.pattern.clone())
                };
                let e = map.entry(key).or_insert(0);
                *e = merge(*e, r.caps);
            }
        }
        let mut prefixes: Vec<(String, u16)> = prefixes.into_iter().collect();
        prefixes.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        let wildcards = wild
            .into_iter()
            .map(|(pattern, caps)| {
                let prefix = pattern.ends_with('*');
                let body = pattern.strip_suffix('*').unwrap_or(&pattern).to_string();
                let parts: Vec<String> = body.split('/').map(String::from).collect();
                Wildcard {
                    first_wildcard: pattern.find('+').unwrap_or(pattern.len()),
                    wildcards: parts.iter().filter(|p| *p == "+").count(),
                    body,
                    parts,
                    prefix,
                    caps,
                }
            })
            .collect();
        Acl {
            root,
            exact,
            prefixes,
            wildcards,
        }
    }

    /// Whether this is the root policy.
    pub fn is_root(&self) -> bool {
        self.root
    }

    /// Vault's `CheckAllowedFromNonExactPaths`: the winning `*` or `+`
    /// rule's capabilities.
    fn non_exact(&self, path: &str) -> Option<u16> {
        // (first wildcard, not a prefix, -wildcards, length, pattern) —
        // the highest wins.
        type Key<'a> = (usize, bool, std::cmp::Reverse<usize>, usize, &'a str);
        let mut best: Option<(Key<'_>, u16)> = None;
        fn consider<'a>(k: Key<'a>, caps: u16, best: &mut Option<(Key<'a>, u16)>) {
            if best.as_ref().is_none_or(|(b, _)| k > *b) {
                *best = Some((k, caps));
            }
        }
        // Only the longest matching prefix rule competes, as in Vault.
        if let Some((p, caps)) = self
            .prefixes
            .iter()
            .find(|(p, _)| path.starts_with(p.as_str()))
        {
            let k: Key<'_> = (p.len(), false, std::cmp::Reverse(0), p.len(), p.as_str());
            consider(k, *caps, &mut best);
        }
        if !self.wildcards.is_empty() {
            let parts: Vec<&str> = path.split('/').collect();
            for w in &self.wildcards {
                if parts.len() < w.parts.len() || (!w.prefix && parts.len() != w.parts.len()) {
                    continue;
                }
                let last = w.parts.len() - 1;
                let ok = w.parts.iter().enumerate().all(|(i, a)| {
                    a == "+"
                        || a == parts[i]
                        || (w.prefix && i == last && parts[i].starts_with(a.as_str()))
                });
                if ok {
                    let k: Key<'_> = (
                        w.first_wildcard,
                        !w.prefix,
                        std::cmp::Reverse(w.wildcards),
                        w.body.len(),
                        w.body.as_str(),
                    );
                    consider(k, w.caps, &mut best);
                }
            }
        }
        best.map(|(_, c)| c)
    }

    /// The deciding rule's capability bits for `path` (Vault's
    /// `AllowOperation` up to its `CHECK` label, in the order OpenBao 2.7.2
    /// applies). `path` is canonical; for a list operation it ends in `/`
    /// (the directory).
    fn decide(&self, path: &str, op: Operation) -> Option<u16> {
        let bare = path.strip_suffix('/').unwrap_or(path);
        if let Some(c) = self.exact.get(bare) {
            return Some(*c);
        }
        // A list names the directory `P/`: rules on it come first (so a
        // `P/*` deny stops a list of P), and only when none matches, rules
        // on `P` itself — OpenBao 2.7.2's order.
        if let Some(c) = self.non_exact(path) {
            return Some(c);
        }
        if op == Operation::List && path.ends_with('/') {
            return self.non_exact(bare);
        }
        None
    }

    /// Whether `op` is allowed on `path`, and whether `sudo` is granted
    /// there too.
    pub fn check(&self, path: &str, op: Operation) -> (bool, bool) {
        if self.root {
            return (true, true);
        }
        match self.decide(path, op) {
            None => (false, false),
            Some(c) if c & cap::DENY != 0 => (false, false),
            Some(c) => (c & op_bit(op) != 0, c & cap::SUDO != 0),
        }
    }

    /// Whether a rule governing `path` forbids `op` there (a `deny`, or a
    /// rule without the operation's capability); no rule forbids nothing.
    /// `exact_only` looks at exact rules alone (a rule written for that
    /// very spelling).
    pub fn forbids(&self, path: &str, op: Operation, exact_only: bool) -> bool {
        if self.root {
            return false;
        }
        let c = if exact_only {
            self.exact
                .get(path.strip_suffix('/').unwrap_or(path))
                .copied()
        } else {
            self.decide(path, op)
        };
        c.is_some_and(|c| c & cap::DENY != 0 || c & op_bit(op) == 0)
    }

    /// `sys/capabilities`: the capabilities on `path`, by name; `["root"]`
    /// for the root policy and `["deny"]` when nothing is granted.
    pub fn capabilities(&self, path: &str) -> Vec<&'static str> {
        if self.root {
            return vec!["root"];
        }
        let c = self.decide(path, Operation::List).unwrap_or(0);
        if c & cap::DENY != 0 || c == 0 {
            return vec!["deny"];
        }
        NAMES
            .iter()
            .filter(|(n, b)| *n != "deny" && c & b != 0)
            .map(|(n, _)| *n)
            .collect()
    }

    /// Whether any rule grants something (not `deny`) on a path under
    /// `prefix` (a mount path ending in `/`): Vault's preflight check for
    /// `sys/internal/ui/mounts`.
    pub fn reaches_under(&self, prefix: &str) -> bool {
        if self.root {
            return true;
        }
        let grants = |c: u16| c & cap::DENY == 0 && c != 0;
        let bare = prefix.trim_end_matches('/');
        self.exact
            .iter()
            .any(|(p, c)| grants(*c) && (p.starts_with(prefix) || p == bare))
            || self.prefixes.iter().any(|(p, c)| {
                grants(*c) && (p.starts_with(prefix) || prefix.starts_with(p.as_str()))
            })
            || self.wildcards.iter().any(|w| {
                grants(w.caps) && {
                    let pp: Vec<&str> = prefix.trim_end_matches('/').split('/').collect();
                    pp.iter().zip(&w.parts).all(|(a, b)| {
                        b == "+" || *a == b || (w.prefix && a.starts_with(b.as_str()))
                    })
                }
            })
    }
}

/// The built-in `default` policy (used until one is written): a token may
/// look itself up, renew and revoke itself, and ask its capabilities.
pub const DEFAULT_POLICY: &str = r#"
path "auth/token/lookup-self" { capabilities = ["read"] }
path "auth/token/renew-self" { capabilities = ["update"] }
path "auth/token/revoke-self" { capabilities = ["update"] }
path "sys/capabilities-self" { capabilities = ["update"] }
"#;

/// Folds a policy name as OpenBao does (trimmed, lowercased) and checks
/// what is left: letters, digits, `-`, `_`, `.`, at most 128 bytes.
pub fn fold_name(name: &str) -> Option<String> {
    let n = name.trim().to_lowercase();
    let ok = !n.is_empty()
        && n.len() <= 128
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    ok.then_some(n)
}

/// The policies, stored under `sys/policy/` behind the barrier, parsed
/// once and shared until written; and the merged ACLs of the policy sets
/// tokens carry.
pub struct PolicyStore {
    view: View,
    acls: Mutex<AclCache>,
}

#[derive(Default)]
struct AclCache {
    generation: u64,
    by_set: HashMap<Vec<String>, Arc<Acl>>,
}

/// Distinct policy sets whose merged ACL is kept.
const ACL_CACHE_ENTRIES: usize = 4096;

impl PolicyStore {
    /// The store over `view` (`sys/policy/`).
    pub fn new(view: View) -> Self {
        Self {
            view,
            acls: Mutex::new(AclCache::default()),
        }
    }

    fn acls(&self) -> std::sync::MutexGuard<'_, AclCache> {
        self.acls.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets the merged ACLs (at seal, and on every policy change).
    pub fn forget(&self) {
        let mut c = self.acls();
        c.generation += 1;
        c.by_set.clear();
    }

    /// The text of a stored policy (the built-in `default` when not
    /// written; `root` has none).
    pub fn read_text(&self, name: &str) -> Result<Option<String>, Error> {
        if name == "root" {
            return Ok(None);
        }
        match self.view.get(name)? {
            Some(b) => Ok(Some(String::from_utf8_lossy(&b).into_owned())),
            None if name == "default" => Ok(Some(DEFAULT_POLICY.to_string())),
            None => Ok(None),
        }
    }

    /// A stored policy, parsed (once, shared until it is rewritten). A
    /// missing policy is `None`: it grants nothing, as in Vault.
    fn load(&self, name: &str) -> Result<Option<Arc<Policy>>, Error> {
        let text: Arc<Option<Arc<Policy>>> = self.view.get_parsed_with(name, |b| {
            Ok(match b {
                Some(b) => Some(Arc::new(Policy::parse(&String::from_utf8_lossy(b))?)),
                None if name == "default" => Some(Arc::new(Policy::parse(DEFAULT_POLICY)?)),
                None => None,
            })
        })?;
        Ok(text.as_ref().clone())
    }

    /// The merged ACL of a token's policies (cached per policy set until a
    /// policy changes).
    pub fn acl(&self, names: &[String]) -> Result<Arc<Acl>, Error> {
        let generation = {
            let c = self.acls();
            if let Some(a) = c.by_set.get(names) {
                return Ok(a.clone());
            }
            c.generation
        };
        let root = names.iter().any(|n| n == "root");
        let mut policies = Vec::new();
        if !root {
            for n in names {
                if let Some(p) = self.load(n)? {
                    policies.push(p);
                }
            }
        }
        let acl = Arc::new(Acl::new(root, &policies));
        let mut c = self.acls();
        if c.generation == generation {
            if c.by_set.len() >= ACL_CACHE_ENTRIES {
                c.by_set.clear();
            }
            c.by_set.insert(names.to_vec(), acl.clone());
        }
        Ok(acl)
    }

    /// Stores a policy (its name already folded) after checking that it
    /// parses.
    pub fn write(&self, name: &str, text: &str) -> Result<(), Error> {
        if name == "root" {
            return Err(Error::bad("cannot update \"root\" policy"));
        }
        Policy::parse(text)?;
        let r = self.view.put(name, text.as_bytes());
        self.forget();
        r
    }

    /// Deletes a policy (its name already folded).
    pub fn delete(&self, name: &str) -> Result<(), Error> {
        if name == "root" || name == "default" {
            return Err(Error::bad(format!("cannot delete \"{name}\" policy")));
        }
        let r = self.view.delete(name);
        self.forget();
        r
    }

    /// Every policy name, `default` and `root` included.
    pub fn list(&self) -> Result<Vec<String>, Error> {
        let mut names = self.view.list("")?;
        names.retain(|n| !n.ends_with('/'));
        for builtin in ["default", "root"] {
            if !names.iter().any(|n| n == builtin) {
                names.push(builtin.into());
            }
        }
        names.sort();
        Ok(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(texts: &[&str]) -> Acl {
        let ps: Vec<Arc<Policy>> = texts
            .iter()
            .map(|t| Arc::new(Policy::parse(t).unwrap()))
            .collect();
        Acl::new(false, &ps)
    }

    fn allows(a: &Acl, path: &str, op: Operation) -> bool {
        a.check(path, op).0
    }

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
        let mut a = Policy::parse(hcl).unwrap();
        let mut b = Policy::parse(json).unwrap();
        a.rules.sort_by(|x, y| x.pattern.cmp(&y.pattern));
        b.rules.sort_by(|x, y| x.pattern.cmp(&y.pattern));
        assert_eq!(a, b);
        for bad in [
            r#"path "x" { capabilities = ["fly"] }"#,
            r#"path "a*/b" { capabilities = ["read"] }"#,
            r#"path "a/+*" { capabilities = ["read"] }"#,
            "path {",
            r#"path "x" { capabilities = ["read"] allowed_parameters = { "a" = [] } }"#,
            r#"path "x" { capabilities = ["read"] colour = "red" }"#,
            r#"{"path": {"x": {"capabilities": ["read"], "denied_parameters": {}}}}"#,
            r#"other "x" { }"#,
        ] {
            assert!(Policy::parse(bad).is_err(), "{bad}");
        }
        let deep = format!(
            "path \"x\" {{ capabilities = {}\"read\"{} }}",
            "[".repeat(200),
            "]".repeat(200)
        );
        assert!(
            Policy::parse(&deep)
                .unwrap_err()
                .to_string()
                .contains("nested")
        );
    }

    #[test]
    fn legacy_write_is_vaults_set_and_deny_is_alone() {
        let p = Policy::parse(
            "path \"a\" { policy = \"write\" }\npath \"b\" { capabilities = [\"read\", \"deny\"] }",
        )
        .unwrap();
        let a = Acl::new(false, &[Arc::new(p)]);
        assert!(allows(&a, "a", Operation::Update));
        assert!(
            !allows(&a, "a", Operation::Patch),
            "Vault's write has no patch"
        );
        assert!(!allows(&a, "b", Operation::Read));
    }

    #[test]
    fn vaults_priority_rules() {
        let a = acl(&[r#"
            path "secret/*" { capabilities = ["read"] }
            path "secret/data/app/*" { capabilities = ["read", "update"] }
            path "secret/data/app/locked" { capabilities = ["deny"] }
            path "secret/data/+/shared" { capabilities = ["list"] }
            path "kv/+/a*" { capabilities = ["update"] }
            path "kv/+/ab" { capabilities = ["read"] }
            path "kv/x/*" { capabilities = ["delete"] }
        "#]);
        assert!(allows(&a, "secret/data/app/db", Operation::Update));
        assert!(allows(&a, "secret/other", Operation::Read));
        assert!(!allows(&a, "secret/other", Operation::Update));
        assert!(!allows(&a, "secret/data/app/locked", Operation::Read));
        assert!(allows(&a, "secret/data/team/shared", Operation::List));
        // secret/data/app/* (first glob at 16) beats secret/data/+/shared
        // (first wildcard at 12).
        assert!(!allows(&a, "secret/data/app/shared", Operation::List));
        // kv/x/* (glob at 5) vs kv/+/ab (wildcard at 3): the glob wins.
        assert!(allows(&a, "kv/x/ab", Operation::Delete));
        // Same first wildcard: no trailing * wins.
        assert!(
            allows(&a, "kv/y/ab", Operation::Read) && !allows(&a, "kv/y/ab", Operation::Update)
        );
        assert!(allows(&a, "kv/y/abc", Operation::Update));
        assert!(!allows(&a, "other", Operation::Read), "deny by default");
        assert!(Acl::new(true, &[]).check("anything", Operation::Update) == (true, true));
    }

    #[test]
    fn same_pattern_rules_merge_and_deny_wins() {
        let a = acl(&[
            r#"path "secret/*" { capabilities = ["read"] }"#,
            r#"path "secret/*" { capabilities = ["list"] }"#,
        ]);
        assert!(allows(&a, "secret/x", Operation::List) && allows(&a, "secret/x", Operation::Read));
        let a = acl(&[
            r#"path "secret/x" { capabilities = ["read"] }"#,
            r#"path "secret/x/" { capabilities = ["deny"] }"#,
        ]);
        assert!(!allows(&a, "secret/x", Operation::Read), "x/ is x");
    }

    #[test]
    fn list_checks_the_directory_as_vault_does() {
        let a = acl(&[r#"
            path "secret/metadata/*" { capabilities = ["list"] }
            path "kv/metadata" { capabilities = ["list"] }
            path "sys/mounts/prodkv" { capabilities = ["deny"] }
            path "sys/mounts/*" { capabilities = ["delete", "read"] }
        "#]);
        assert!(allows(&a, "secret/metadata/", Operation::List));
        // A deny on the directory's contents stops a list of it, even when
        // a shorter glob grants list (the order OpenBao 2.7.2 applies).
        let d = acl(&[r#"
            path "secret/metadata/prod/*" { capabilities = ["deny"] }
            path "secret/metadata/*" { capabilities = ["list"] }
            path "kv/metadata/+" { capabilities = ["list"] }
        "#]);
        assert!(!allows(&d, "secret/metadata/prod/", Operation::List));
        assert!(allows(&d, "secret/metadata/dev/", Operation::List));
        assert!(
            allows(&d, "kv/metadata/team/", Operation::List),
            "+ on the trimmed path"
        );
        assert!(allows(&a, "secret/metadata/dir/", Operation::List));
        assert!(allows(&a, "kv/metadata/", Operation::List));
        assert!(!allows(&a, "sys/mounts/prodkv", Operation::Delete));
        assert_eq!(a.capabilities("sys/mounts/prodkv"), ["deny"]);
        assert_eq!(a.capabilities("sys/mounts/other"), ["read", "delete"]);
        assert!(a.reaches_under("secret/"));
        assert!(!a.reaches_under("transit/"));
    }

    #[test]
    fn names_fold_as_openbao_folds_them() {
        assert_eq!(fold_name("OPS").as_deref(), Some("ops"));
        assert_eq!(fold_name(" ops ").as_deref(), Some("ops"));
        assert_eq!(fold_name("o/ps"), None);
        assert_eq!(fold_name(""), None);
    }
}
