//! The Vault CLI's administrative verbs, as Vault and OpenBao users type
//! them: `vault token create|lookup|renew|revoke`, `vault secrets
//! enable|disable|list`, `vault audit enable|disable|list`, `vault auth
//! enable|disable|list`. Each is one API call (the same the generic
//! `read`/`write` verbs can make), with Vault's table output.

use crate::vault_http::Conn;
use crate::vault_verbs::{done, parse_fields, print_json, show_auth};
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use serde_json::{Map, Value, json};

/// `token …`.
#[derive(Args)]
pub(crate) struct TokenArgs {
    #[command(flatten)]
    conn: Conn,
    #[command(subcommand)]
    command: TokenCommand,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a token (a child of the caller's, unless --orphan).
    Create {
        /// A policy of the new token (repeat for more) [default: the
        /// caller's].
        #[arg(long = "policy", value_delimiter = ',')]
        policies: Vec<String>,
        /// Time to live, e.g. `1h`, `30m`, `3600`.
        #[arg(long)]
        ttl: Option<String>,
        /// Longest time to live it may be renewed to.
        #[arg(long)]
        explicit_max_ttl: Option<String>,
        /// A name shown in lookups and the audit log.
        #[arg(long)]
        display_name: Option<String>,
        /// How many requests it may make (0: no limit).
        #[arg(long)]
        use_limit: Option<u64>,
        /// Leave out the `default` policy.
        #[arg(long)]
        no_default_policy: bool,
        /// A token with no parent (revoking the caller leaves it).
        #[arg(long)]
        orphan: bool,
        /// Print only this field: `token`, `token_accessor`, … (as in the
        /// table).
        #[arg(long)]
        field: Option<String>,
    },
    /// Show a token's properties [default: the caller's own].
    Lookup {
        /// The token to look up; omit it for the caller's own.
        token: Option<String>,
        /// Look the token up by its accessor instead.
        #[arg(long)]
        accessor: bool,
        /// Print only this field of the data.
        #[arg(long)]
        field: Option<String>,
    },
    /// Renew a token's lease [default: the caller's own].
    Renew {
        /// The token to renew; omit it for the caller's own.
        token: Option<String>,
        /// Ask for this much more time, e.g. `1h`.
        #[arg(long)]
        increment: Option<String>,
    },
    /// Revoke a token and its children.
    Revoke {
        /// The token to revoke (or its accessor, with --accessor).
        #[arg(required_unless_present = "self_")]
        token: Option<String>,
        /// Revoke the caller's own token.
        #[arg(long = "self", id = "self_", conflicts_with = "token")]
        self_: bool,
        /// TOKEN is an accessor.
        #[arg(long)]
        accessor: bool,
    },
}

/// `secrets …`, `audit …` and `auth …`: what is mounted where.
#[derive(Args)]
pub(crate) struct MountArgs {
    #[command(flatten)]
    conn: Conn,
    #[command(subcommand)]
    command: MountCommand,
}

#[derive(Subcommand)]
enum MountCommand {
    /// Enable TYPE at --path [default: TYPE].
    #[command(disable_version_flag = true)]
    Enable {
        /// The engine, device or method type (e.g. `kv`, `transit`,
        /// `file`, `userpass`, `approle`).
        #[arg(value_name = "TYPE")]
        kind: String,
        /// Where to mount it [default: TYPE].
        #[arg(long)]
        path: Option<String>,
        /// A description.
        #[arg(long)]
        description: Option<String>,
        /// For `kv`: the KV version (Vault's `-version=2`; only 2 is
        /// served).
        #[arg(long = "version", value_name = "N")]
        kv_version: Option<String>,
        /// Options, `key=value` (e.g. `version=2` for kv, `file_path=…` for
        /// an audit device).
        options: Vec<String>,
    },
    /// Disable what is mounted at PATH (its data is deleted).
    Disable {
        /// The mount path.
        path: String,
    },
    /// List what is mounted.
    List,
}

/// Which mount table `MountArgs` acts on.
#[derive(Clone, Copy)]
pub(crate) enum Table {
    /// `sys/mounts`: secrets engines.
    Secrets,
    /// `sys/audit`: audit devices.
    Audit,
    /// `sys/auth`: auth methods.
    Auth,
}

impl Table {
    fn api(self) -> &'static str {
        match self {
            Table::Secrets => "sys/mounts",
            Table::Audit => "sys/audit",
            Table::Auth => "sys/auth",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Table::Secrets => "secrets engine",
            Table::Audit => "audit device",
            Table::Auth => "auth method",
        }
    }
}

/// `token …`.
pub(crate) fn token(a: TokenArgs) -> Result<()> {
    let c = a.conn.client()?;
    let json_out = a.conn.json;
    match a.command {
        TokenCommand::Create {
            policies,
            ttl,
            explicit_max_ttl,
            display_name,
            use_limit,
            no_default_policy,
            orphan,
            field,
        } => {
            let mut body = Map::new();
            if !policies.is_empty() {
                body.insert("policies".into(), json!(policies));
            }
            for (k, v) in [
                ("ttl", ttl),
                ("explicit_max_ttl", explicit_max_ttl),
                ("display_name", display_name),
            ] {
                if let Some(v) = v {
                    body.insert(k.into(), json!(v));
                }
            }
            if let Some(n) = use_limit {
                body.insert("num_uses".into(), json!(n));
            }
            if no_default_policy {
                body.insert("no_default_policy".into(), json!(true));
            }
            if orphan {
                body.insert("no_parent".into(), json!(true));
            }
            let path = if orphan {
                "auth/token/create-orphan"
            } else {
                "auth/token/create"
            };
            let v = c.call("POST", path, Some(&Value::Object(body)))?;
            show_auth(json_out, &v, field.as_deref())
        }
        TokenCommand::Lookup {
            token,
            accessor,
            field,
        } => {
            let v = match (token, accessor) {
                (None, _) => c.call("GET", "auth/token/lookup-self", None)?,
                (Some(t), false) => {
                    c.call("POST", "auth/token/lookup", Some(&json!({"token": t})))?
                }
                (Some(t), true) => c.call(
                    "POST",
                    "auth/token/lookup-accessor",
                    Some(&json!({"accessor": t})),
                )?,
            };
            crate::vault_verbs::show(json_out, &v, field.as_deref())
        }
        TokenCommand::Renew { token, increment } => {
            let mut body = Map::new();
            if let Some(i) = increment {
                body.insert("increment".into(), json!(i));
            }
            let path = match token {
                Some(t) => {
                    body.insert("token".into(), json!(t));
                    "auth/token/renew"
                }
                None => "auth/token/renew-self",
            };
            let v = c.call("POST", path, Some(&Value::Object(body)))?;
            show_auth(json_out, &v, None)
        }
        TokenCommand::Revoke {
            token,
            self_,
            accessor,
        } => {
            match (token, self_, accessor) {
                (_, true, _) => c.call("POST", "auth/token/revoke-self", None)?,
                (Some(t), false, false) => {
                    c.call("POST", "auth/token/revoke", Some(&json!({"token": t})))?
                }
                (Some(t), false, true) => c.call(
                    "POST",
                    "auth/token/revoke-accessor",
                    Some(&json!({"accessor": t})),
                )?,
                (None, false, _) => anyhow::bail!("pass the TOKEN to revoke, or --self"),
            };
            done(
                json_out,
                json!({"revoked": true}),
                "Success! Revoked the token (if it existed).",
            )
        }
    }
}

/// `secrets …`, `audit …`, `auth …`.
pub(crate) fn mounts(table: Table, a: MountArgs) -> Result<()> {
    let c = a.conn.client()?;
    let json_out = a.conn.json;
    match a.command {
        MountCommand::Enable {
            kind,
            path,
            description,
            kv_version,
            options,
        } => {
            let path = path.unwrap_or_else(|| kind.clone());
            let path = path.trim_matches('/');
            let mut body = Map::new();
            body.insert("type".into(), json!(kind));
            if let Some(d) = description {
                body.insert("description".into(), json!(d));
            }
            let mut options = parse_fields(&options, false)?;
            if let Some(v) = kv_version {
                options.insert("version".into(), json!(v));
            }
            if !options.is_empty() {
                body.insert("options".into(), Value::Object(options));
            }
            let verb = if matches!(table, Table::Audit) {
                "PUT"
            } else {
                "POST"
            };
            c.call(
                verb,
                &format!("{}/{path}", table.api()),
                Some(&Value::Object(body)),
            )?;
            done(
                json_out,
                json!({"enabled": format!("{path}/"), "type": kind}),
                &format!("Success! Enabled the {kind} {} at: {path}/", table.what()),
            )
        }
        MountCommand::Disable { path } => {
            let path = path.trim_matches('/');
            c.call("DELETE", &format!("{}/{path}", table.api()), None)?;
            done(
                json_out,
                json!({"disabled": format!("{path}/")}),
                &format!("Success! Disabled the {} at: {path}/", table.what()),
            )
        }
        MountCommand::List => {
            let v = c.call("GET", table.api(), None)?;
            if json_out {
                return print_json(&v);
            }
            let data = v.get("data").unwrap_or(&v);
            let rows = data
                .as_object()
                .context("the server's answer lists no mounts")?;
            print_mounts(rows)
        }
    }
}

/// Vault's table: Path, Type, Description.
fn print_mounts(rows: &Map<String, Value>) -> Result<()> {
    // A server's text never drives the terminal.
    let text =
        |v: &Value, k: &str| crate::printable(v.get(k).and_then(Value::as_str).unwrap_or("n/a"));
    let cells: Vec<[String; 3]> = rows
        .iter()
        .map(|(p, v)| [crate::printable(p), text(v, "type"), text(v, "description")])
        .collect();
    let w0 = cells.iter().map(|c| c[0].len()).max().unwrap_or(0).max(4);
    let w1 = cells.iter().map(|c| c[1].len()).max().unwrap_or(0).max(4);
    crate::out!("{:w0$}    {:w1$}    Description", "Path", "Type");
    crate::out!("{:w0$}    {:w1$}    -----------", "----", "----");
    for [p, t, d] in cells {
        crate::out!("{p:w0$}    {t:w1$}    {d}");
    }
    Ok(())
}
