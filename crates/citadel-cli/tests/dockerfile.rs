//! The Dockerfile's structure, since no machine of CI can build it (no
//! container daemon): two stages, the release binary of this package built
//! with the lock file, a final image without a shell that runs as a user
//! other than root, the binary as an exec-form entry point.

fn instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim();
        if current.is_empty() && (line.is_empty() || line.starts_with('#')) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(l) => {
                current.push_str(l);
                current.push(' ');
            }
            None => {
                current.push_str(line);
                let (op, args) = current.split_once(' ').unwrap_or((&current, ""));
                out.push((op.to_uppercase(), args.trim().to_string()));
                current.clear();
            }
        }
    }
    out
}

#[test]
fn the_image_builds_the_binary_and_runs_it_as_non_root_without_a_shell() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let text = std::fs::read_to_string(root.join("Dockerfile")).unwrap();
    let ins = instructions(&text);
    let froms: Vec<&String> = ins
        .iter()
        .filter(|(o, _)| o == "FROM")
        .map(|(_, a)| a)
        .collect();
    assert_eq!(froms.len(), 2, "a build stage and a final stage: {froms:?}");
    assert!(froms[0].ends_with(" AS build"), "{}", froms[0]);
    // Distroless images have no shell; the nonroot tag's user is 65532.
    assert!(
        froms[1].starts_with("gcr.io/distroless/cc-debian12:nonroot"),
        "{}",
        froms[1]
    );
    let last_from = ins.iter().rposition(|(o, _)| o == "FROM").unwrap();
    let final_stage = &ins[last_from..];
    assert!(
        !final_stage.iter().any(|(o, _)| o == "RUN"),
        "the final stage has no shell to RUN with"
    );
    let user = final_stage
        .iter()
        .rev()
        .find(|(o, _)| o == "USER")
        .map(|(_, a)| a.as_str())
        .expect("the final stage sets USER");
    let uid = user.split(':').next().unwrap();
    assert!(
        uid != "0" && uid != "root" && !uid.is_empty(),
        "USER {user}"
    );
    let run = ins
        .iter()
        .find(|(o, _)| o == "RUN")
        .map(|(_, a)| a.as_str())
        .unwrap();
    let package = env!("CARGO_PKG_NAME");
    assert!(
        run.contains(&format!("cargo build --release --locked -p {package}")),
        "{run}"
    );
    // The binary built is the one copied and run.
    assert!(run.contains("target/release/citadel "), "{run}");
    let entry = final_stage
        .iter()
        .find(|(o, _)| o == "ENTRYPOINT")
        .map(|(_, a)| a.as_str())
        .unwrap();
    let entry: Vec<String> = serde_json::from_str(entry).expect("exec form: a JSON array");
    assert_eq!(entry, ["/usr/local/bin/citadel"]);
    assert!(final_stage.iter().any(|(o, a)| o == "COPY"
        && a.starts_with("--from=build ")
        && a.ends_with(" /usr/local/bin/citadel")));
    // The toolchain of the build stage is at least the workspace's MSRV.
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let msrv = manifest
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .unwrap()
        .trim_matches('"');
    let image = froms[0].split_whitespace().next().unwrap();
    let tag = image
        .strip_prefix("rust:")
        .unwrap()
        .split('-')
        .next()
        .unwrap();
    let v = |s: &str| -> Vec<u32> { s.split('.').map(|p| p.parse().unwrap()).collect() };
    assert!(
        v(tag) >= v(msrv),
        "rust:{tag} is older than rust-version {msrv}"
    );
    // The build context leaves out what would bloat or leak into it.
    let ignore = std::fs::read_to_string(root.join(".dockerignore")).unwrap();
    for p in ["target", ".git"] {
        assert!(ignore.lines().any(|l| l == p), ".dockerignore lacks {p}");
    }
}
