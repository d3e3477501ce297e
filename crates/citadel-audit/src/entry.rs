//! Audit entries: JSON objects with well-known fields, and the HMAC of
//! sensitive values (as Vault's audit devices do) so a log can be shared
//! for verification without revealing secrets, while the holder of the
//! log's HMAC key can still find a known value.

use crate::error::Error;
use serde_json::{Map, Value};

/// The prefix of a value replaced by its HMAC.
pub const HMAC_PREFIX: &str = "hmac-sha256:";

/// Fields every entry has (`time` and `action` must be non-empty strings;
/// the others are optional).
pub const FIELDS: [&str; 7] = [
    "time",
    "actor",
    "action",
    "resource",
    "outcome",
    "request_id",
    "details",
];

/// The HMAC form of a value: strings are keyed over their UTF-8 bytes,
/// anything else over its compact JSON.
pub fn hmac_value(key: &[u8], value: &Value) -> String {
    let bytes = match value {
        Value::String(s) => s.as_bytes().to_vec(),
        other => other.to_string().into_bytes(),
    };
    format!(
        "{HMAC_PREFIX}{}",
        hex::encode(citadel_crypto::kdf::hmac_sha256(key, &bytes))
    )
}

/// Looks up a dotted path (`details.password`) in an object.
pub fn lookup<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |v, k| v.as_object()?.get(k))
}

fn lookup_mut<'a>(v: &'a mut Value, path: &str) -> Option<&'a mut Value> {
    path.split('.')
        .try_fold(v, |v, k| v.as_object_mut()?.get_mut(k))
}

/// Checks an entry, replaces each `sensitive` field (dotted paths; absent
/// ones are skipped) by its HMAC, whatever it holds, and returns the canonical bytes that are
/// stored: compact JSON with keys sorted.
pub fn prepare(mut entry: Value, sensitive: &[String], hmac_key: &[u8]) -> Result<Vec<u8>, Error> {
    let obj: &Map<String, Value> = entry
        .as_object()
        .ok_or_else(|| Error::InvalidEntry("an entry must be a JSON object".into()))?;
    match obj.get("action") {
        Some(Value::String(s)) if !s.is_empty() => {}
        _ => {
            return Err(Error::InvalidEntry(
                "\"action\" must be a non-empty string".into(),
            ));
        }
    }
    if obj
        .get("time")
        .and_then(Value::as_str)
        .and_then(parse_time)
        .is_none()
    {
        return Err(Error::InvalidEntry(
            "\"time\" must be an RFC 3339 timestamp such as 2026-11-26T10:00:00Z".into(),
        ));
    }
    for f in ["actor", "resource", "outcome", "request_id"] {
        if !matches!(obj.get(f), None | Some(Value::String(_))) {
            return Err(Error::InvalidEntry(format!("\"{f}\" must be a string")));
        }
    }
    // Whatever a sensitive value looks like (an `hmac-sha256:` string
    // included), it is HMACed: a writer cannot make a value pass for
    // another's HMAC.
    for path in sensitive {
        if let Some(v) = lookup_mut(&mut entry, path) {
            *v = Value::String(hmac_value(hmac_key, v));
        }
    }
    // serde_json's map keeps keys sorted, so this is canonical.
    serde_json::to_vec(&entry).map_err(|e| Error::InvalidEntry(e.to_string()))
}

/// Parses an RFC 3339 timestamp.
pub fn parse_time(s: &str) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}

/// The current time as RFC 3339 UTC, for entries written without one.
pub fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// A filter over stored entries (all given conditions must hold).
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// `actor` equals this.
    pub actor: Option<String>,
    /// `action` equals this.
    pub action: Option<String>,
    /// `resource` equals this.
    pub resource: Option<String>,
    /// `outcome` equals this.
    pub outcome: Option<String>,
    /// `time` is at or after this.
    pub since: Option<time::OffsetDateTime>,
    /// (dotted path, expected stored value): for sensitive fields, pass
    /// [`hmac_value`] of the value searched for.
    pub fields: Vec<(String, Value)>,
}

impl Filter {
    /// Whether `entry` passes.
    pub fn matches(&self, entry: &Value) -> bool {
        let eq = |k: &str, want: &Option<String>| {
            want.as_ref()
                .is_none_or(|w| entry.get(k).and_then(Value::as_str) == Some(w.as_str()))
        };
        eq("actor", &self.actor)
            && eq("action", &self.action)
            && eq("resource", &self.resource)
            && eq("outcome", &self.outcome)
            && self.since.is_none_or(|s| {
                entry
                    .get("time")
                    .and_then(Value::as_str)
                    .and_then(parse_time)
                    .is_some_and(|t| t >= s)
            })
            && self.fields.iter().all(|(p, v)| lookup(entry, p) == Some(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sensitive_fields_are_hmaced_and_searchable() {
        let key = [7u8; 32];
        let e = json!({"time": "2026-11-26T00:00:00Z", "action": "login", "actor": "bob",
                       "details": {"password": "hunter2", "n": 3}});
        let bytes = prepare(
            e,
            &["details.password".into(), "details.absent".into()],
            &key,
        )
        .unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(!text.contains("hunter2"), "{text}");
        let stored: Value = serde_json::from_slice(&bytes).unwrap();
        let f = Filter {
            fields: vec![(
                "details.password".into(),
                Value::String(hmac_value(&key, &json!("hunter2"))),
            )],
            ..Default::default()
        };
        assert!(f.matches(&stored));
        let wrong = Filter {
            fields: vec![(
                "details.password".into(),
                Value::String(hmac_value(&key, &json!("hunter3"))),
            )],
            ..Default::default()
        };
        assert!(!wrong.matches(&stored));
        assert!(text.starts_with("{\"action\""), "keys sorted: {text}");
    }

    /// Issue 12, item 13: a value shaped like an HMAC is HMACed all the
    /// same, so a writer cannot plant another user's HMAC.
    #[test]
    fn values_that_look_like_hmacs_are_still_hmaced() {
        let key = [7u8; 32];
        let forged = hmac_value(&key, &json!("alice"));
        let e = json!({"time": "2026-11-26T00:00:00Z", "action": "login", "actor": forged});
        let bytes = prepare(e, &["actor".into()], &key).unwrap();
        let stored: Value = serde_json::from_slice(&bytes).unwrap();
        assert_ne!(stored["actor"], json!(forged));
        assert_eq!(stored["actor"], json!(hmac_value(&key, &json!(forged))));
    }

    #[test]
    fn malformed_entries_are_refused() {
        for bad in [
            json!([1]),
            json!({"action": "x"}),
            json!({"time": "2026-11-26T00:00:00Z", "action": ""}),
            json!({"time": "yesterday", "action": "a"}),
            json!({"time": "2026-11-26T00:00:00Z", "action": "a", "actor": 5}),
        ] {
            assert!(prepare(bad.clone(), &[], &[0; 32]).is_err(), "{bad}");
        }
    }
}
