//! `citadel completions SHELL` and `citadel man -o DIR`: what a shell and
//! `man` need, generated from the command definition itself (so they never
//! drift from `--help`).

use crate::files::{print_json, write_output};
use anyhow::{Context, Result, bail};
use clap::{Args, CommandFactory};
use serde_json::json;
use std::path::PathBuf;

#[derive(Args)]
pub(crate) struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell. Bash: `citadel
    /// completions bash > ~/.local/share/bash-completion/completions/citadel`.
    shell: clap_complete::Shell,
    /// Print {"shell", "script"}.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub(crate) struct ManArgs {
    /// The directory to write the pages to (created if needed):
    /// citadel.1, citadel-sign.1, citadel-ca-issue.1, …
    #[arg(long, short = 'o', value_name = "DIR")]
    output: PathBuf,
    /// Replace pages that exist.
    #[arg(long)]
    force: bool,
    /// Print {"pages": [file, …]}.
    #[arg(long)]
    json: bool,
}

pub(crate) fn completions(a: CompletionsArgs) -> Result<()> {
    let mut script = Vec::new();
    clap_complete::generate(a.shell, &mut crate::Cli::command(), "citadel", &mut script);
    if a.json {
        print_json(
            &json!({"shell": a.shell.to_string(), "script": String::from_utf8_lossy(&script)}),
        );
    } else {
        crate::out_raw!("{}", String::from_utf8_lossy(&script));
    }
    Ok(())
}

pub(crate) fn man(a: ManArgs) -> Result<()> {
    if a.output.exists() && !a.output.is_dir() {
        bail!("{} is not a directory", a.output.display());
    }
    std::fs::create_dir_all(&a.output)
        .with_context(|| format!("cannot create {}", a.output.display()))?;
    let mut cmd = crate::Cli::command();
    cmd.build();
    // Every command and subcommand, as `citadel-ca-issue` names it.
    let mut pending = vec![(String::from("citadel"), cmd)];
    let mut pages = Vec::new();
    while let Some((name, cmd)) = pending.pop() {
        for sub in cmd.get_subcommands().filter(|c| c.get_name() != "help") {
            pending.push((format!("{name}-{}", sub.get_name()), sub.clone()));
        }
        let cmd = cmd.name(name.clone()).bin_name(name.replace('-', " "));
        let mut page = Vec::new();
        clap_mangen::Man::new(cmd)
            .render(&mut page)
            .with_context(|| format!("cannot render the page of {name}"))?;
        pages.push((a.output.join(format!("{name}.1")), page));
    }
    // Every page is checked before any is written.
    for (p, _) in &pages {
        crate::files::check_free(p, a.force)?;
    }
    for (p, page) in &pages {
        write_output(p, page, false, a.force)?;
    }
    if a.json {
        let names: Vec<String> = pages.iter().map(|(p, _)| p.display().to_string()).collect();
        print_json(&json!({"pages": names}));
    } else {
        crate::say!("{} pages written to {}", pages.len(), a.output.display());
    }
    Ok(())
}
