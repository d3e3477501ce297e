//! Request → response tables, one scenario per file in `tests/data/tables/`
//! (see its README), run against [`Core::handle`] in memory: what a client
//! sends and what Vault's API answers, status, body fields and error text.

use citadel_vault::core::{Config, Core};
use citadel_vault::request::{Body, Operation, Request};
use citadel_vault::storage::Memory;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

fn operation(method: &str) -> Operation {
    match method {
        "GET" | "HEAD" => Operation::Read,
        "LIST" => Operation::List,
        "PUT" | "POST" => Operation::Update,
        "DELETE" => Operation::Delete,
        "PATCH" => Operation::Patch,
        other => panic!("unknown method {other}"),
    }
}

/// Replaces `{{name}}` by saved values.
fn fill(s: &str, saved: &HashMap<String, String>) -> String {
    let mut out = s.to_string();
    for (k, v) in saved {
        out = out.replace(&format!("{{{{{k}}}}}"), v);
    }
    out
}

fn fill_json(v: &Value, saved: &HashMap<String, String>) -> Value {
    match v {
        Value::String(s) => Value::String(fill(s, saved)),
        Value::Array(a) => Value::Array(a.iter().map(|x| fill_json(x, saved)).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| (fill(k, saved), fill_json(x, saved)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn run_file(path: &Path) {
    let name = path.file_name().unwrap().to_string_lossy().to_string();
    let case: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap())
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let core = Core::new(Arc::new(Memory::default()), "inmem", Config::default());
    let mut saved: HashMap<String, String> = HashMap::new();
    match case["setup"].as_str().unwrap_or("dev") {
        "dev" => {
            let (key, root) = core.init_dev().unwrap();
            saved.insert("root".into(), root.to_string());
            saved.insert("unseal_key".into(), hex::encode(&key[..]));
        }
        "uninitialized" => {}
        other => panic!("{name}: unknown setup {other}"),
    }
    for (i, step) in case["steps"].as_array().unwrap().iter().enumerate() {
        let what = step["do"]
            .as_str()
            .unwrap_or_else(|| panic!("{name} step {i}: no \"do\""));
        let (method, target) = what.split_once(' ').unwrap();
        let target = fill(target.strip_prefix('/').unwrap_or(target), &saved);
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let mut req = Request::new(operation(method), path).query(query);
        match &step["as"] {
            Value::Null => {
                if let Some(root) = saved.get("root") {
                    req = req.token(root);
                }
            }
            Value::String(s) if s == "none" => {}
            Value::String(s) => {
                let t = match s.strip_prefix('$') {
                    Some(n) => saved
                        .get(n)
                        .unwrap_or_else(|| panic!("{name} step {i}: nothing saved as {n}"))
                        .clone(),
                    None => s.clone(),
                };
                req = req.token(&t);
            }
            other => panic!("{name} step {i}: bad \"as\" {other}"),
        }
        if let Some(b) = step.get("body") {
            req = req.json(&fill_json(b, &saved));
        }
        if let Some(r) = step.get("raw").and_then(Value::as_str) {
            req.body = fill(r, &saved).into_bytes();
        }
        let resp = core.handle(req);
        let body = resp.json_body().unwrap_or(Value::Null);
        let ctx = || format!("{name} step {i} ({what}): {} {body}", resp.status);
        if let Some(s) = step.get("status") {
            assert_eq!(json!(resp.status), *s, "{}", ctx());
        }
        if let Some(expect) = step.get("json").and_then(Value::as_object) {
            for (ptr, want) in expect {
                let got = body.pointer(ptr).cloned().unwrap_or(Value::Null);
                assert_eq!(got, fill_json(want, &saved), "{} at {ptr}", ctx());
            }
        }
        if let Some(want) = step.get("error").and_then(Value::as_str) {
            let errs: String = body["errors"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join("; ")
                })
                .unwrap_or_default();
            assert!(
                errs.contains(&fill(want, &saved)),
                "{}: wanted error {want:?}",
                ctx()
            );
        }
        if let Some(want) = step.get("errors") {
            assert_eq!(body["errors"], *want, "{}", ctx());
        }
        for bad in step
            .get("not_contains")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let bad = fill(bad.as_str().unwrap(), &saved);
            assert!(!body.to_string().contains(&bad), "{}: holds {bad:?}", ctx());
        }
        if let Some(want) = step.get("location").and_then(Value::as_str) {
            assert_eq!(resp.body, Body::Redirect(want.to_string()), "{}", ctx());
        }
        if let Some(want) = step.get("text").and_then(Value::as_str) {
            match &resp.body {
                Body::Text { text, .. } => assert!(text.contains(want), "{}: {text}", ctx()),
                other => panic!("{}: not text: {other:?}", ctx()),
            }
        }
        if let Some(saves) = step.get("save").and_then(Value::as_object) {
            for (k, ptr) in saves {
                let v = body
                    .pointer(ptr.as_str().unwrap())
                    .unwrap_or_else(|| panic!("{}: nothing at {ptr}", ctx()));
                let s = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                saved.insert(k.clone(), s);
            }
        }
    }
}

#[test]
fn every_table_holds() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tables");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 20, "the tables are missing");
    let mut failed = Vec::new();
    for f in &files {
        if let Err(e) = std::panic::catch_unwind(|| run_file(f)) {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failed.push(msg);
        }
    }
    assert!(
        failed.is_empty(),
        "{} table(s) failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
}
