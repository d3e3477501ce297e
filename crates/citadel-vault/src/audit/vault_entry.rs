//! Vault's audit entry, as its `file` device writes one per line: `time`,
//! `type` (`request` or `response`), `auth` (the client token and its
//! accessor as `hmac-sha256:` HMACs, display name, policies), `request`
//! (id, operation, path, namespace, remote address), `response` (the
//! accessor of a token a login or a token creation issued) and `error`.
//! Request and response bodies are not recorded (Vault records them with
//! every string HMACed); a failed response's `error` is its first error
//! message, or the HTTP reason when it has none.

use super::Record;
use serde_json::{Map, Value, json};

/// One line (without its newline).
pub(super) fn line(
    r: &Record<'_>,
    hmac: &dyn Fn(&str) -> String,
    hmac_accessor: bool,
    time: &str,
) -> Result<Vec<u8>, serde_json::Error> {
    let accessor = |a: &str| {
        if hmac_accessor {
            hmac(a)
        } else {
            a.to_string()
        }
    };
    let token = r.token.filter(|t| !t.is_empty()).map(hmac);
    let token_accessor = r.accessor.map(accessor);
    let mut auth = Map::new();
    if let Some(t) = &token {
        auth.insert("client_token".into(), json!(t));
    }
    if let Some(a) = &token_accessor {
        auth.insert("accessor".into(), json!(a));
    }
    if let Some(n) = r.display_name {
        auth.insert("display_name".into(), json!(n));
    }
    if let Some(p) = r.policies {
        auth.insert("policies".into(), json!(p));
        auth.insert("token_policies".into(), json!(p));
        auth.insert("token_type".into(), json!("service"));
    }
    let mut request = json!({
        "id": r.request_id,
        "operation": r.operation,
        "path": r.path,
        "namespace": {"id": "root"},
    });
    if let Some(c) = r.client {
        request["remote_address"] = json!(c.to_string());
    }
    if let Some(t) = &token {
        request["client_token"] = json!(t);
    }
    if let Some(a) = &token_accessor {
        request["client_token_accessor"] = json!(a);
    }
    let mut entry = json!({
        "time": time,
        "type": r.kind,
        "auth": auth,
        "request": request,
    });
    if r.kind == "response" {
        let mut response = Map::new();
        if let Some(a) = r.issued_accessor {
            response.insert("auth".into(), json!({"accessor": accessor(a)}));
        }
        entry["response"] = Value::Object(response);
        if let Some(s) = r.status.filter(|s| *s >= 400) {
            let e = r
                .error
                .filter(|e| !e.is_empty())
                .map(str::to_string)
                .unwrap_or_else(|| reason(s).to_string());
            entry["error"] = json!(e);
        }
    }
    serde_json::to_vec(&entry)
}

/// The HTTP reason phrase of the statuses the vault answers with.
fn reason(status: u16) -> &'static str {
    match status {
        400 => "bad request",
        403 => "permission denied",
        404 => "not found",
        405 => "method not allowed",
        409 => "conflict",
        412 => "precondition failed",
        413 => "request entity too large",
        429 => "too many requests",
        500 => "internal error",
        503 => "service unavailable",
        _ => "error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec<'a>(kind: &'static str, status: Option<u16>, policies: &'a [String]) -> Record<'a> {
        Record {
            kind,
            operation: "update",
            path: "auth/token/create",
            token: Some("hvs.secret-token"),
            accessor: Some("acc1"),
            request_id: "rid",
            status,
            client: Some("127.0.0.1".parse().unwrap()),
            issued_accessor: Some("acc2"),
            policies: Some(policies),
            display_name: Some("root"),
            error: None,
        }
    }

    #[test]
    fn the_entry_has_vaults_shape_and_no_token() {
        let h = |s: &str| format!("hmac-sha256:{}", s.len());
        let p = vec!["root".to_string()];
        let b = line(&rec("response", Some(404), &p), &h, true, "T").unwrap();
        let text = String::from_utf8(b).unwrap();
        assert!(
            !text.contains("hvs.secret-token") && !text.contains("acc1"),
            "{text}"
        );
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["type"], "response");
        assert_eq!(v["auth"]["client_token"], "hmac-sha256:16");
        assert_eq!(v["auth"]["accessor"], "hmac-sha256:4");
        assert_eq!(v["auth"]["policies"][0], "root");
        assert_eq!(v["request"]["path"], "auth/token/create");
        assert_eq!(v["request"]["remote_address"], "127.0.0.1");
        assert_eq!(v["response"]["auth"]["accessor"], "hmac-sha256:4");
        assert_eq!(v["error"], "not found");
        // hmac_accessor=false: accessors plain, the token still HMACed;
        // a request has no response or error.
        let b = line(&rec("request", None, &p), &h, false, "T").unwrap();
        let v: Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["auth"]["accessor"], "acc1");
        assert_eq!(v["auth"]["client_token"], "hmac-sha256:16");
        assert!(v.get("response").is_none() && v.get("error").is_none());
    }
}
