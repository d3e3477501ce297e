//! `citadel vault status|init|unseal|seal|login|read|write|list|delete|kv|
//! transit|policy`: thin clients of the HTTP API (see `vault_http`).

use crate::VerificationFailed;
use crate::vault_http::Conn;
use anyhow::{Context, Result, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use clap::{Args, Subcommand};
use serde_json::{Map, Value, json};
use std::io::{BufRead, Read, Write};
use std::path::PathBuf;
use zeroize::Zeroizing;

/// The vault is sealed: `status` exits 3.
#[derive(Debug)]
pub(crate) struct Sealed {
    /// Whether the vault was ever initialised (a new one is sealed too).
    pub(crate) initialized: bool,
}

impl std::fmt::Display for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.initialized {
            "the vault is sealed: unseal it with `citadel vault unseal` (threshold of key shares)"
        } else {
            "the vault is not initialised: run `citadel vault init` (it prints the unseal keys and the root token), then `citadel vault unseal`"
        })
    }
}

impl std::error::Error for Sealed {}

/// Connection options only.
#[derive(Args)]
pub(crate) struct ConnArgs {
    #[command(flatten)]
    conn: Conn,
}

/// `init`.
#[derive(Args)]
pub(crate) struct InitArgs {
    #[command(flatten)]
    conn: Conn,
    /// Number of unseal key shares to split the root key into.
    #[arg(long, default_value_t = 5)]
    key_shares: u8,
    /// Number of shares needed to unseal.
    #[arg(long, default_value_t = 3)]
    key_threshold: u8,
}

/// `unseal`.
#[derive(Args)]
pub(crate) struct UnsealArgs {
    #[command(flatten)]
    conn: Conn,
    /// One unseal key share (base64 or hex). Omit it (or give `-`) to read it
    /// from standard input, which keeps it out of shell history.
    key: Option<String>,
    /// Discard the shares entered so far.
    #[arg(long, conflicts_with = "key")]
    reset: bool,
}

/// How `login` authenticates.
#[derive(Clone, Copy, clap::ValueEnum)]
enum LoginMethod {
    /// An existing token (checked with `auth/token/lookup-self`).
    Token,
    /// A username and password (`auth/userpass`); the password is read from
    /// standard input.
    Userpass,
    /// An AppRole role ID and secret ID (`auth/approle`); the secret ID is
    /// read from standard input.
    Approle,
}

/// `login`.
#[derive(Args)]
pub(crate) struct LoginArgs {
    #[command(flatten)]
    conn: Conn,
    /// The token, for `--method token`; omit it (or give `-`) to read it
    /// from standard input.
    token: Option<String>,
    /// The auth method.
    #[arg(long, value_enum, default_value = "token")]
    method: LoginMethod,
    /// Where the auth method is mounted [default: the method's name].
    #[arg(long)]
    path: Option<String>,
    /// The user, for `--method userpass`.
    #[arg(long, required_if_eq("method", "userpass"))]
    username: Option<String>,
    /// The role ID, for `--method approle`.
    #[arg(long, required_if_eq("method", "approle"))]
    role_id: Option<String>,
    /// Print the token instead of writing it to the token file.
    #[arg(long)]
    no_store: bool,
}

/// `read`, `list`, `delete`.
#[derive(Args)]
pub(crate) struct PathArgs {
    #[command(flatten)]
    conn: Conn,
    /// The API path, without `/v1/` (e.g. `sys/mounts`, `transit/keys/app`).
    path: String,
    /// Print only this field of the response's data, raw.
    #[arg(long)]
    field: Option<String>,
}

/// `write`.
#[derive(Args)]
pub(crate) struct WriteArgs {
    #[command(flatten)]
    conn: Conn,
    /// The API path, without `/v1/`.
    path: String,
    /// Body fields: `key=value`, `key=@file` (the file's contents) or
    /// `key=-` (standard input). Values that parse as JSON numbers, booleans,
    /// arrays or objects are sent as such.
    fields: Vec<String>,
    /// Print only this field of the response's data, raw.
    #[arg(long)]
    field: Option<String>,
}

/// `kv …`.
#[derive(Args)]
pub(crate) struct KvArgs {
    #[command(flatten)]
    conn: Conn,
    /// The KV v2 mount [default: the path's first segment].
    #[arg(long, global = true)]
    mount: Option<String>,
    #[command(subcommand)]
    command: KvCommand,
}

#[derive(Subcommand)]
pub(crate) enum KvCommand {
    /// Read a secret (the latest version, or `--version N`).
    #[command(disable_version_flag = true)]
    Get {
        /// `MOUNT/PATH`, or `PATH` with `--mount`.
        path: String,
        /// The version to read.
        #[arg(long)]
        version: Option<u64>,
        /// Print only this key's value, raw.
        #[arg(long)]
        field: Option<String>,
    },
    /// Write a new version of a secret.
    Put {
        /// `MOUNT/PATH`, or `PATH` with `--mount`.
        path: String,
        /// `key=value`, `key=@file` or `key=-` (standard input).
        #[arg(required = true)]
        fields: Vec<String>,
        /// Check-and-set: write only if the current version is this (0: only
        /// if the secret does not exist).
        #[arg(long)]
        cas: Option<u64>,
    },
    /// List the keys under a path.
    List {
        /// `MOUNT/PATH`, or `PATH` with `--mount`.
        path: String,
    },
    /// Delete the latest version (or `--versions`); undelete restores.
    Delete {
        /// `MOUNT/PATH`, or `PATH` with `--mount`.
        path: String,
        /// Versions to delete, comma-separated.
        #[arg(long, value_delimiter = ',')]
        versions: Vec<u64>,
    },
    /// Restore deleted versions.
    Undelete {
        /// `MOUNT/PATH`, or `PATH` with `--mount`.
        path: String,
        /// Versions to restore, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        versions: Vec<u64>,
    },
}

/// `transit …`.
#[derive(Args)]
pub(crate) struct TransitArgs {
    #[command(flatten)]
    conn: Conn,
    /// Where the transit engine is mounted.
    #[arg(long, default_value = "transit", global = true)]
    mount: String,
    #[command(subcommand)]
    command: TransitCommand,
}

#[derive(Subcommand)]
pub(crate) enum TransitCommand {
    /// Create a key: aes256-gcm96, chacha20-poly1305, mlkem768x25519
    /// (post-quantum hybrid encryption), ed25519, ecdsa-p256, ml-dsa-44/65/87,
    /// slh-dsa-*.
    Create {
        /// Key name.
        key: String,
        /// Key type.
        #[arg(long = "type", default_value = "aes256-gcm96")]
        kind: String,
    },
    /// Show a key's versions, public keys and settings.
    Read {
        /// Key name.
        key: String,
    },
    /// List the keys.
    List,
    /// Add a new version and use it for new encryptions and signatures.
    Rotate {
        /// Key name.
        key: String,
    },
    /// Encrypt a file (or standard input); prints `vault:vN:…`.
    Encrypt {
        /// Key name.
        key: String,
        /// The plaintext file [default: standard input].
        file: Option<PathBuf>,
    },
    /// Decrypt a `vault:vN:…` ciphertext; writes the plaintext to standard output.
    Decrypt {
        /// Key name.
        key: String,
        /// The ciphertext.
        ciphertext: String,
    },
    /// Re-encrypt a ciphertext under the key's latest version, without
    /// revealing the plaintext.
    Rewrap {
        /// Key name.
        key: String,
        /// The ciphertext.
        ciphertext: String,
    },
    /// A fresh data key, wrapped by the key (and in the clear unless `--wrapped`).
    Datakey {
        /// Key name.
        key: String,
        /// Return only the wrapped form.
        #[arg(long)]
        wrapped: bool,
        /// Key size in bits (128, 256 or 512).
        #[arg(long, default_value_t = 256)]
        bits: u32,
    },
    /// Sign a file (or standard input); prints `vault:vN:…`.
    Sign {
        /// Key name.
        key: String,
        /// The file to sign [default: standard input].
        file: Option<PathBuf>,
    },
    /// Verify a signature over a file (or standard input); exit 1 if invalid.
    Verify {
        /// Key name.
        key: String,
        /// The `vault:vN:…` signature, `@FILE` for one in a file (an ML-DSA
        /// or SLH-DSA signature is kilobytes), or `-` for standard input.
        signature: String,
        /// The signed file [default: standard input].
        file: Option<PathBuf>,
    },
}

/// `policy …`.
#[derive(Args)]
pub(crate) struct PolicyArgs {
    #[command(flatten)]
    conn: Conn,
    #[command(subcommand)]
    command: PolicyCommand,
}

#[derive(Subcommand)]
pub(crate) enum PolicyCommand {
    /// Create or replace an ACL policy from an HCL (or JSON) file; `-` reads
    /// standard input.
    Write {
        /// Policy name.
        name: String,
        /// The policy file.
        file: PathBuf,
    },
    /// Print a policy's text.
    Read {
        /// Policy name.
        name: String,
    },
    /// List the policies.
    List,
    /// Delete a policy.
    Delete {
        /// Policy name.
        name: String,
    },
}

/// Ends a verb whose answer is empty: a small JSON document with `--json`
/// (scripts always get one), else a confirmation line (`-q` hides it).
pub(crate) fn done(json_out: bool, doc: Value, text: &str) -> Result<()> {
    if json_out {
        return print_json(&doc);
    }
    crate::say!("{text}");
    Ok(())
}

pub(crate) fn print_json(v: &Value) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, v)?;
    writeln!(out)?;
    Ok(())
}

/// Prints `data` as aligned `key value` lines (values that are not strings
/// as JSON).
fn print_table<'a>(data: impl IntoIterator<Item = (&'a String, &'a Value)> + Clone) -> Result<()> {
    let width = data
        .clone()
        .into_iter()
        .map(|(k, _)| k.len())
        .max()
        .unwrap_or(0)
        .max(3);
    let mut out = std::io::stdout().lock();
    writeln!(out, "{:width$}    Value", "Key")?;
    writeln!(out, "{:width$}    -----", "---")?;
    for (k, v) in data {
        // A server's text never drives the terminal (an escape sequence
        // in a description, say).
        let s = crate::printable(&match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        });
        writeln!(out, "{:width$}    {s}", crate::printable(k))?;
    }
    Ok(())
}

fn print_field(data: &Value, field: &str) -> Result<()> {
    let v = data
        .get(field)
        .with_context(|| format!("the response has no field {field:?}"))?;
    match v {
        Value::String(s) => crate::out!("{s}"),
        other => crate::out!("{other}"),
    }
    Ok(())
}

/// Reads one line (a key, token or password) from standard input; on a
/// terminal, prompts with echo off.
fn read_secret_line(what: &str) -> Result<Zeroizing<String>> {
    let stdin = std::io::stdin();
    let mut line = Zeroizing::new(String::new());
    if std::io::IsTerminal::is_terminal(&stdin) {
        *line = rpassword::prompt_password(format!("{what} (input hidden): "))
            .with_context(|| format!("cannot read the {what} from the terminal"))?;
    } else {
        stdin
            .lock()
            .read_line(&mut line)
            .with_context(|| format!("cannot read the {what} from standard input"))?;
    }
    let t = Zeroizing::new(line.trim().to_string());
    if t.is_empty() {
        bail!("no {what} given on standard input");
    }
    Ok(t)
}

/// A transit signature from a file or standard input: text, at most
/// 256 KiB (an SLH-DSA-256f signature, the longest, is 66 kB in base64).
fn read_signature(file: Option<&std::path::Path>) -> Result<String> {
    const MAX: u64 = 256 << 10;
    let mut buf = Vec::new();
    let what = file.map_or("standard input".to_string(), |p| p.display().to_string());
    let r: Box<dyn Read> = match file {
        Some(p) => Box::new(
            std::fs::File::open(p)
                .with_context(|| format!("cannot read the signature file {what}"))?,
        ),
        None => Box::new(std::io::stdin()),
    };
    r.take(MAX + 1)
        .read_to_end(&mut buf)
        .with_context(|| format!("cannot read the signature from {what}"))?;
    if buf.len() as u64 > MAX {
        bail!("the signature in {what} is longer than 256 KiB: not a transit signature");
    }
    String::from_utf8(buf).with_context(|| format!("the signature in {what} is not text"))
}

fn read_input(file: Option<&PathBuf>) -> Result<Zeroizing<Vec<u8>>> {
    let mut buf = Zeroizing::new(Vec::new());
    match file {
        Some(p) => {
            std::fs::File::open(p)
                .and_then(|mut f| f.read_to_end(&mut buf))
                .with_context(|| format!("cannot read {}", p.display()))?;
        }
        None => {
            std::io::stdin()
                .lock()
                .read_to_end(&mut buf)
                .context("cannot read standard input")?;
        }
    }
    Ok(buf)
}

/// Parses `key=value`, `key=@file` and `key=-` arguments into a JSON object.
pub(crate) fn parse_fields(fields: &[String], json_values: bool) -> Result<Map<String, Value>> {
    let mut m = Map::new();
    for (i, f) in fields.iter().enumerate() {
        // The argument is not echoed: `password s3cr3t` (a typo for
        // `password=s3cr3t`) must not print the secret.
        let (k, v) = f.split_once('=').with_context(|| {
            format!(
                "field {} is not key=value (its text is not shown, in case it holds a secret)",
                i + 1
            )
        })?;
        let raw = if v == "-" {
            let mut s = String::new();
            std::io::stdin()
                .lock()
                .read_to_string(&mut s)
                .context("cannot read standard input")?;
            s
        } else if let Some(p) = v.strip_prefix('@') {
            std::fs::read_to_string(p).with_context(|| format!("cannot read {p}"))?
        } else {
            v.to_string()
        };
        let value = match serde_json::from_str::<Value>(&raw) {
            Ok(j) if json_values && !j.is_string() => j,
            _ => Value::String(raw),
        };
        m.insert(k.to_string(), value);
    }
    Ok(m)
}

fn status_text(v: &Value) -> Result<()> {
    let mut m = Vec::new();
    for (label, key) in [
        ("Seal Type", "type"),
        ("Initialized", "initialized"),
        ("Sealed", "sealed"),
        ("Total Shares", "n"),
        ("Threshold", "t"),
        ("Unseal Progress", "progress"),
        ("Version", "version"),
        ("Storage Type", "storage_type"),
    ] {
        if let Some(x) = v.get(key) {
            m.push((label.to_string(), x.clone()));
        }
    }
    print_table(m.iter().map(|(k, v)| (k, v)))
}

fn sealed_exit(v: &Value) -> Result<()> {
    if v.get("sealed").and_then(Value::as_bool) == Some(true) {
        let initialized = v.get("initialized").and_then(Value::as_bool) != Some(false);
        return Err(Sealed { initialized }.into());
    }
    Ok(())
}

/// `status`: exit 0 when unsealed, 3 when sealed.
pub(crate) fn status(a: ConnArgs) -> Result<()> {
    let c = a.conn.client()?;
    let v = c.call("GET", "sys/seal-status", None)?;
    if a.conn.json {
        print_json(&v)?;
    } else {
        status_text(&v)?;
    }
    sealed_exit(&v)
}

/// `init`.
pub(crate) fn init(a: InitArgs) -> Result<()> {
    let c = a.conn.client()?;
    let v = c.call(
        "PUT",
        "sys/init",
        Some(&json!({"secret_shares": a.key_shares, "secret_threshold": a.key_threshold})),
    )?;
    if a.conn.json {
        return print_json(&v);
    }
    let mut out = std::io::stdout().lock();
    for (i, k) in v["keys_base64"]
        .as_array()
        .context("the server sent no keys")?
        .iter()
        .enumerate()
    {
        writeln!(
            out,
            "Unseal Key {}: {}",
            i + 1,
            k.as_str().unwrap_or_default()
        )?;
    }
    writeln!(
        out,
        "\nInitial Root Token: {}\n",
        v["root_token"].as_str().unwrap_or_default()
    )?;
    writeln!(
        out,
        "The vault is initialised with {} key shares and a threshold of {}. It is\nsealed: give `citadel vault unseal` {} of the keys. Keep the keys apart;\nthey cannot be recovered if lost.",
        a.key_shares, a.key_threshold, a.key_threshold
    )?;
    Ok(())
}

/// `unseal`: one key share per call, as in Vault.
pub(crate) fn unseal(a: UnsealArgs) -> Result<()> {
    let c = a.conn.client()?;
    let body = if a.reset {
        json!({"reset": true})
    } else {
        let key = match a.key.as_deref() {
            None | Some("-") => read_secret_line("unseal key")?,
            Some(k) => Zeroizing::new(k.to_string()),
        };
        json!({"key": key.as_str()})
    };
    let v = c.call("PUT", "sys/unseal", Some(&body))?;
    if a.conn.json {
        print_json(&v)
    } else {
        status_text(&v)
    }
}

/// `seal`.
pub(crate) fn seal(a: ConnArgs) -> Result<()> {
    let c = a.conn.client()?;
    c.call("PUT", "sys/seal", None)?;
    done(a.conn.json, json!({"sealed": true}), "sealed")
}

/// `login`: obtains or checks a token and stores it in the token file.
pub(crate) fn login(a: LoginArgs) -> Result<()> {
    let mut c = a.conn.client()?;
    let (token, info) = match a.method {
        LoginMethod::Token => {
            let t = match a.token.as_deref() {
                None | Some("-") => read_secret_line("token")?,
                Some(t) => Zeroizing::new(t.to_string()),
            };
            c.set_token(t.clone());
            let v = c.call("GET", "auth/token/lookup-self", None)?;
            (t, v["data"].clone())
        }
        LoginMethod::Userpass => {
            let user = a.username.as_deref().unwrap_or_default();
            let pw = read_secret_line("password")?;
            let path = a.path.as_deref().unwrap_or("userpass");
            let v = c.call(
                "POST",
                &format!("auth/{path}/login/{user}"),
                Some(&json!({"password": pw.as_str()})),
            )?;
            let t = v["auth"]["client_token"]
                .as_str()
                .context("the server returned no token")?;
            (Zeroizing::new(t.to_string()), v["auth"].clone())
        }
        LoginMethod::Approle => {
            let secret_id = read_secret_line("secret ID")?;
            let path = a.path.as_deref().unwrap_or("approle");
            let v = c.call(
                "POST",
                &format!("auth/{path}/login"),
                Some(&json!({"role_id": a.role_id, "secret_id": secret_id.as_str()})),
            )?;
            let t = v["auth"]["client_token"]
                .as_str()
                .context("the server returned no token")?;
            (Zeroizing::new(t.to_string()), v["auth"].clone())
        }
    };
    if a.no_store {
        crate::out!("{}", token.as_str());
        return Ok(());
    }
    write_token_file(c.token_file(), &token)?;
    if a.conn.json {
        return print_json(&info);
    }
    let policies = info
        .get("policies")
        .or_else(|| info.get("token_policies"))
        .cloned()
        .unwrap_or(Value::Null);
    crate::say!(
        "Logged in; the token is stored in {} (policies: {policies}).",
        c.token_file().display()
    );
    Ok(())
}

/// Writes the token file readable by its owner only, replacing it atomically.
fn write_token_file(path: &std::path::Path, token: &str) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write the token file in {}", dir.display()))?;
    tmp.write_all(token.as_bytes())?;
    tmp.as_file().sync_all()?;
    tmp.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// A duration in seconds as Vault prints it (`768h`, `30m`, `45s`; `∞`
/// for none).
fn duration(secs: &Value) -> Value {
    match secs.as_u64() {
        Some(0) => json!("∞"),
        Some(s) if s % 3600 == 0 => json!(format!("{}h", s / 3600)),
        Some(s) if s % 60 == 0 => json!(format!("{}m", s / 60)),
        Some(s) => json!(format!("{s}s")),
        None => secs.clone(),
    }
}

/// Shows a response that carries an `auth` block (a new, renewed or
/// logged-in token) as Vault does: `token`, `token_accessor`,
/// `token_duration`, `token_renewable`, `token_policies`, `policies`, and
/// `--field` reaching those names or the block's own (`client_token`).
pub(crate) fn show_auth(c_json: bool, v: &Value, field: Option<&str>) -> Result<()> {
    let auth = match v.get("auth") {
        Some(a @ Value::Object(_)) => a,
        _ => return show(c_json, v, field),
    };
    let rows: Vec<(String, Value)> = [
        ("token", auth["client_token"].clone()),
        ("token_accessor", auth["accessor"].clone()),
        ("token_duration", duration(&auth["lease_duration"])),
        ("token_renewable", auth["renewable"].clone()),
        ("token_policies", auth["token_policies"].clone()),
        ("identity_policies", json!([])),
        ("policies", auth["policies"].clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    if let Some(f) = field {
        if let Some((_, x)) = rows.iter().find(|(k, _)| k == f) {
            return print_field(&json!({ f: x }), f);
        }
        return print_field(auth, f);
    }
    if c_json {
        return print_json(v);
    }
    print_table(rows.iter().map(|(k, v)| (k, v)))
}

pub(crate) fn show(c_json: bool, v: &Value, field: Option<&str>) -> Result<()> {
    if v.get("data").is_none_or(Value::is_null) && v.get("auth").is_some_and(Value::is_object) {
        return show_auth(c_json, v, field);
    }
    let data = v.get("data").unwrap_or(v);
    if let Some(f) = field {
        return print_field(data, f);
    }
    if c_json {
        return print_json(v);
    }
    match data {
        Value::Object(m) => print_table(m),
        Value::Null => Ok(()),
        other => print_json(other),
    }
}

/// `read PATH`.
pub(crate) fn read(a: PathArgs) -> Result<()> {
    let c = a.conn.client()?;
    let v = c.call("GET", &a.path, None)?;
    show(a.conn.json, &v, a.field.as_deref())
}

/// `list PATH`.
pub(crate) fn list(a: PathArgs) -> Result<()> {
    let c = a.conn.client()?;
    let v = c.call("LIST", &a.path, None)?;
    print_keys(a.conn.json, &v)
}

fn print_keys(json_out: bool, v: &Value) -> Result<()> {
    if json_out {
        return print_json(v);
    }
    for k in v["data"]["keys"].as_array().into_iter().flatten() {
        crate::out!("{}", k.as_str().unwrap_or_default());
    }
    Ok(())
}

/// `delete PATH`.
pub(crate) fn delete(a: PathArgs) -> Result<()> {
    let c = a.conn.client()?;
    c.call("DELETE", &a.path, None)?;
    done(
        a.conn.json,
        json!({"deleted": a.path}),
        &format!("deleted {}", a.path),
    )
}

/// `write PATH key=value…`.
pub(crate) fn write(a: WriteArgs) -> Result<()> {
    let c = a.conn.client()?;
    let body = Value::Object(parse_fields(&a.fields, true)?);
    let v = c.call("POST", &a.path, Some(&body))?;
    if v.is_null() {
        return done(
            a.conn.json,
            json!({"written": a.path}),
            &format!("wrote {}", a.path),
        );
    }
    show(a.conn.json, &v, a.field.as_deref())
}

/// Splits a KV path into its mount and the path inside it (which may be
/// empty only for `list`).
fn kv_split(mount: Option<&str>, path: &str, listing: bool) -> Result<(String, String)> {
    let path = path.trim_matches('/');
    Ok(match mount {
        Some(m) => (m.trim_matches('/').to_string(), path.to_string()),
        None if listing && !path.contains('/') => (path.to_string(), String::new()),
        None => {
            let (m, p) = path.split_once('/').with_context(|| {
                format!(
                    "{path:?} names no secret: write MOUNT/PATH (e.g. secret/app) or pass --mount"
                )
            })?;
            (m.to_string(), p.to_string())
        }
    })
}

/// `kv …`.
pub(crate) fn kv(a: KvArgs) -> Result<()> {
    let c = a.conn.client()?;
    let json_out = a.conn.json;
    let mount = a.mount.as_deref();
    match a.command {
        KvCommand::Get {
            path,
            version,
            field,
        } => {
            let (m, p) = kv_split(mount, &path, false)?;
            let q = version.map(|n| format!("?version={n}")).unwrap_or_default();
            let (status, v) = c.raw("GET", &format!("{m}/data/{p}{q}"), None)?;
            // A KV 404 has no error messages; anything else (no such mount)
            // is the server's error.
            let kv_404 = status == 404
                && v.get("errors")
                    .and_then(Value::as_array)
                    .is_none_or(Vec::is_empty);
            if kv_404 && v["data"].is_null() {
                bail!("no secret at {m}/{p}");
            }
            if kv_404 {
                bail!(
                    "version {} of {m}/{p} is deleted or destroyed",
                    v["data"]["metadata"]["version"]
                );
            }
            let v = citadel_vault::client::check(status, v).map_err(crate::vault_http::said)?;
            if let Some(f) = field {
                return print_field(&v["data"]["data"], &f);
            }
            if json_out {
                return print_json(&v);
            }
            let meta = &v["data"]["metadata"];
            crate::say!(
                "version {} created {}",
                meta["version"],
                meta["created_time"].as_str().unwrap_or_default()
            );
            match &v["data"]["data"] {
                Value::Object(d) => print_table(d),
                _ => Ok(()),
            }
        }
        KvCommand::Put { path, fields, cas } => {
            let (m, p) = kv_split(mount, &path, false)?;
            let mut body = json!({"data": parse_fields(&fields, false)?});
            if let Some(n) = cas {
                body["options"] = json!({"cas": n});
            }
            let v = c.call("POST", &format!("{m}/data/{p}"), Some(&body))?;
            if json_out {
                return print_json(&v);
            }
            crate::say!("{m}/{p}: version {}", v["data"]["version"]);
            Ok(())
        }
        KvCommand::List { path } => {
            let (m, p) = kv_split(mount, &path, true)?;
            let v = c.call("LIST", &format!("{m}/metadata/{p}"), None)?;
            print_keys(json_out, &v)
        }
        KvCommand::Delete { path, versions } => {
            let (m, p) = kv_split(mount, &path, false)?;
            if versions.is_empty() {
                c.call("DELETE", &format!("{m}/data/{p}"), None)?;
            } else {
                c.call(
                    "POST",
                    &format!("{m}/delete/{p}"),
                    Some(&json!({"versions": versions})),
                )?;
            }
            done(
                json_out,
                json!({"deleted": format!("{m}/{p}"), "versions": versions}),
                &format!("deleted {m}/{p}"),
            )
        }
        KvCommand::Undelete { path, versions } => {
            let (m, p) = kv_split(mount, &path, false)?;
            c.call(
                "POST",
                &format!("{m}/undelete/{p}"),
                Some(&json!({"versions": versions})),
            )?;
            done(
                json_out,
                json!({"restored": format!("{m}/{p}"), "versions": versions}),
                &format!("restored {m}/{p}"),
            )
        }
    }
}

/// `transit …`.
pub(crate) fn transit(a: TransitArgs) -> Result<()> {
    let c = a.conn.client()?;
    let json_out = a.conn.json;
    let m = a.mount.trim_matches('/');
    let one = |v: &Value, field: &str| -> Result<()> {
        if json_out {
            return print_json(v);
        }
        print_field(&v["data"], field)
    };
    match a.command {
        TransitCommand::Create { key, kind } => {
            let v = c.call(
                "POST",
                &format!("{m}/keys/{key}"),
                Some(&json!({"type": kind})),
            )?;
            if json_out {
                return print_json(&v);
            }
            // The canonical name, as stored, not the alias typed.
            let shown = v["data"]["type"].as_str().unwrap_or(&kind);
            crate::say!("created {shown} key {key}");
            Ok(())
        }
        TransitCommand::Read { key } => {
            let v = c.call("GET", &format!("{m}/keys/{key}"), None)?;
            show(json_out, &v, None)
        }
        TransitCommand::List => {
            let v = c.call("LIST", &format!("{m}/keys"), None)?;
            print_keys(json_out, &v)
        }
        TransitCommand::Rotate { key } => {
            let v = c.call("POST", &format!("{m}/keys/{key}/rotate"), None)?;
            if json_out {
                return print_json(&v);
            }
            crate::out!("{key}: version {}", v["data"]["latest_version"]);
            Ok(())
        }
        TransitCommand::Encrypt { key, file } => {
            let pt = read_input(file.as_ref())?;
            let body = json!({"plaintext": B64.encode(&pt[..])});
            let v = c.call("POST", &format!("{m}/encrypt/{key}"), Some(&body))?;
            one(&v, "ciphertext")
        }
        TransitCommand::Decrypt { key, ciphertext } => {
            let v = c.call(
                "POST",
                &format!("{m}/decrypt/{key}"),
                Some(&json!({"ciphertext": ciphertext})),
            )?;
            if json_out {
                return print_json(&v);
            }
            let pt = Zeroizing::new(
                B64.decode(v["data"]["plaintext"].as_str().unwrap_or_default())
                    .context("the server sent a plaintext that is not base64")?,
            );
            let mut out = std::io::stdout().lock();
            out.write_all(&pt)?;
            out.flush()?;
            Ok(())
        }
        TransitCommand::Rewrap { key, ciphertext } => {
            let v = c.call(
                "POST",
                &format!("{m}/rewrap/{key}"),
                Some(&json!({"ciphertext": ciphertext})),
            )?;
            one(&v, "ciphertext")
        }
        TransitCommand::Datakey { key, wrapped, bits } => {
            let kind = if wrapped { "wrapped" } else { "plaintext" };
            let v = c.call(
                "POST",
                &format!("{m}/datakey/{kind}/{key}"),
                Some(&json!({"bits": bits})),
            )?;
            show(json_out, &v, None)
        }
        TransitCommand::Sign { key, file } => {
            let input = read_input(file.as_ref())?;
            let v = c.call(
                "POST",
                &format!("{m}/sign/{key}"),
                Some(&json!({"input": B64.encode(&input[..])})),
            )?;
            one(&v, "signature")
        }
        TransitCommand::Verify {
            key,
            signature,
            file,
        } => {
            let signature = match signature.as_str() {
                "-" if file.is_none() => bail!(
                    "the signature and the signed data cannot both come from standard input: pass the signed FILE, or the signature as @FILE"
                ),
                "-" if file.as_deref() == Some(std::path::Path::new("-")) => bail!(
                    "the signature and the signed data cannot both come from standard input: pass the signed FILE, or the signature as @FILE"
                ),
                "-" => read_signature(None)?,
                s => match s.strip_prefix('@') {
                    Some(p) => read_signature(Some(std::path::Path::new(p)))?,
                    None => s.to_string(),
                },
            };
            let signature = signature.trim();
            let input = read_input(file.as_ref())?;
            let v = c.call(
                "POST",
                &format!("{m}/verify/{key}"),
                Some(&json!({"input": B64.encode(&input[..]), "signature": signature})),
            )?;
            if json_out {
                print_json(&v)?;
            }
            if v["data"]["valid"].as_bool() == Some(true) {
                if !json_out {
                    crate::say!("valid");
                }
                Ok(())
            } else {
                Err(VerificationFailed(format!(
                    "the signature does not match the input under key {key}"
                ))
                .into())
            }
        }
    }
}

/// `policy …`.
pub(crate) fn policy(a: PolicyArgs) -> Result<()> {
    let c = a.conn.client()?;
    let json_out = a.conn.json;
    match a.command {
        PolicyCommand::Write { name, file } => {
            let text = if file.as_os_str() == "-" {
                let mut s = String::new();
                std::io::stdin()
                    .lock()
                    .read_to_string(&mut s)
                    .context("cannot read standard input")?;
                s
            } else {
                std::fs::read_to_string(&file)
                    .with_context(|| format!("cannot read {}", file.display()))?
            };
            c.call(
                "PUT",
                &format!("sys/policies/acl/{name}"),
                Some(&json!({"policy": text})),
            )?;
            done(
                json_out,
                json!({"written": format!("sys/policies/acl/{name}")}),
                &format!("wrote policy {name}"),
            )
        }
        PolicyCommand::Read { name } => {
            let v = c.call("GET", &format!("sys/policies/acl/{name}"), None)?;
            if json_out {
                return print_json(&v);
            }
            crate::out_raw!("{}", v["data"]["policy"].as_str().unwrap_or_default());
            Ok(())
        }
        PolicyCommand::List => {
            let v = c.call("LIST", "sys/policies/acl", None)?;
            print_keys(json_out, &v)
        }
        PolicyCommand::Delete { name } => {
            c.call("DELETE", &format!("sys/policies/acl/{name}"), None)?;
            done(
                json_out,
                json!({"deleted": format!("sys/policies/acl/{name}")}),
                &format!("deleted policy {name}"),
            )
        }
    }
}
