//! The invariant of the request core, as a property: for any request, the
//! path the ACL evaluated is the path the backend served, so the storage
//! keys a request touches under its mount are named by that path and by
//! nothing else. Requests are spelt with the tricks attackers use (`//`,
//! `/./`, `..`, trailing `/`, case, whitespace, percent-encoding, empty and
//! very long segments).

use citadel_vault::core::{Config, Core};
use citadel_vault::request::{Operation, Request};
use citadel_vault::storage::{Change, Memory, Physical};
use proptest::prelude::*;
use serde_json::json;
use std::sync::{Arc, Mutex};

/// Memory storage that records the keys read and written.
#[derive(Default)]
struct Recording {
    inner: Memory,
    touched: Mutex<Vec<String>>,
}

impl Physical for Recording {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, citadel_vault::Error> {
        self.touched.lock().unwrap().push(key.to_string());
        self.inner.get(key)
    }
    fn write(&self, changes: &[Change<'_>]) -> Result<(), citadel_vault::Error> {
        let mut t = self.touched.lock().unwrap();
        for c in changes {
            t.push(c.key().to_string());
        }
        drop(t);
        self.inner.write(changes)
    }
    fn list(&self, prefix: &str) -> Result<Vec<String>, citadel_vault::Error> {
        self.touched.lock().unwrap().push(format!("{prefix}*"));
        self.inner.list(prefix)
    }
    fn scan(&self, f: &mut citadel_vault::storage::ScanFn<'_>) -> Result<(), citadel_vault::Error> {
        self.inner.scan(f)
    }
}

struct World {
    core: Core,
    storage: Arc<Recording>,
    root: String,
    /// `logical/<uuid>/` of the `secret/` mount.
    kv_prefix: String,
}

fn world() -> World {
    let storage = Arc::new(Recording::default());
    let core = Core::new(storage.clone(), "inmem", Config::default());
    let (_, root) = core.init_dev().unwrap();
    let root = root.to_string();
    for p in ["app", "prod/db", "Prod/db", "a b", "team/x/y"] {
        let r = core.handle(
            Request::new(
                Operation::Update,
                format!("secret/data/{}", p.replace(' ', "%20")),
            )
            .token(&root)
            .json(&json!({"data": {"k": p}})),
        );
        assert_eq!(r.status, 200);
    }
    let r = core.handle(Request::new(Operation::Read, "sys/mounts").token(&root));
    let uuid = r.json_body().unwrap()["data"]["secret/"]["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    World {
        core,
        storage,
        root,
        kv_prefix: format!("logical/{uuid}/"),
    }
}

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("app".to_string()),
        Just("prod".to_string()),
        Just("Prod".to_string()),
        Just("db".to_string()),
        Just("team".to_string()),
        Just("x".to_string()),
        Just("y".to_string()),
        Just("a%20b".to_string()),
        Just("a b".to_string()),
        Just("%2e%2e".to_string()),
        Just("..".to_string()),
        Just(".".to_string()),
        Just("".to_string()),
        Just("%2F".to_string()),
        Just("%2f%2f".to_string()),
        Just("PROD".to_string()),
        Just("db%20".to_string()),
        Just("+".to_string()),
        Just("*".to_string()),
        Just("%00".to_string()),
        Just("x".repeat(300)),
        "[a-zA-Z0-9%._ -]{1,6}",
    ]
}

fn request() -> impl Strategy<Value = (Operation, String)> {
    let op = prop_oneof![
        Just(Operation::Read),
        Just(Operation::List),
        Just(Operation::Update),
        Just(Operation::Delete),
        Just(Operation::Patch),
    ];
    let head = prop_oneof![
        Just("data"),
        Just("metadata"),
        Just("delete"),
        Just("destroy")
    ];
    (
        op,
        head,
        proptest::collection::vec(segment(), 0..5),
        any::<bool>(),
    )
        .prop_map(|(op, head, segs, trailing)| {
            let mut p = format!("secret/{head}/{}", segs.join("/"));
            if trailing {
                p.push('/');
            }
            (op, p)
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    /// Whatever the spelling, the KV keys a request touched are the ones
    /// its canonical path names.
    #[test]
    fn the_path_the_acl_checked_is_the_path_served((op, path) in request()) {
        let w = world_cached();
        w.storage.touched.lock().unwrap().clear();
        let mut req = Request::new(op, path.clone()).token(&w.root);
        if matches!(op, Operation::Update | Operation::Patch) {
            req = req.json(&if path.starts_with("secret/data/") || path.starts_with("secret/metadata/") {
                json!({"data": {"k": "v"}})
            } else {
                json!({"versions": [1]})
            });
        }
        let r = w.core.handle(req);
        prop_assert_ne!(r.status, 500, "{} {}: {:?}", op.as_str(), path, r.json_body());
        let touched: Vec<String> = w.storage.touched.lock().unwrap().clone();
        let under: Vec<&str> = touched
            .iter()
            .filter_map(|k| k.strip_prefix(w.kv_prefix.as_str()))
            .collect();
        if r.status == 307 || r.status == 400 && under.is_empty() {
            return Ok(());
        }
        // The canonical path the ACL saw: secret/<head>/<p>, or the
        // directory secret/metadata/<p>/ for a list.
        let acl = r.path.strip_prefix("secret/").unwrap_or("");
        let (head, p) = acl.split_once('/').unwrap_or((acl, ""));
        let p = p.trim_end_matches('/');
        for k in under {
            let ok = k == "config"
                || (!p.is_empty() && (k == format!("meta/{p}")
                    || k.strip_prefix(&format!("data/{p}/")).is_some_and(|v| v.parse::<u64>().is_ok())))
                || (head == "metadata" && op == Operation::List
                    && k == if p.is_empty() { "meta/*".to_string() } else { format!("meta/{p}/*") });
            prop_assert!(ok, "{} {} was checked as {:?} but touched {:?}", op.as_str(), path, r.path, k);
        }
    }
}

/// One world for all cases (building one per case would dominate).
fn world_cached() -> &'static World {
    static W: std::sync::OnceLock<World> = std::sync::OnceLock::new();
    W.get_or_init(world)
}

// `Core` holds no thread-bound state; the proptest runner is one thread.
#[allow(dead_code)]
fn assert_sync() {
    fn is<T: Sync + Send>() {}
    is::<Core>();
}
