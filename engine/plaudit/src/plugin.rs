//! `plaudit plugin check` and `plaudit plugin new`, and plugins for `plaudit score --plugin`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use plaudit_core::OrgWorld;
use plaudit_core::plugins::{Limits, Loaded, PluginHost};

/// The template crate `plaudit plugin new` copies (the same files as `plugins/template/`).
const TEMPLATE_MANIFEST: &str = include_str!("../../../plugins/template/Cargo.toml");
const TEMPLATE_LIB: &str = include_str!("../../../plugins/template/src/lib.rs");
const TEMPLATE_NAME: &str = "plugin-template";

/// The name a module is installed under: its file name without the extension.
fn name_of(path: &Path) -> String {
    path.file_stem().map_or_else(|| "plugin".into(), |s| s.to_string_lossy().into_owned())
}

fn load(host: &PluginHost, path: &Path, limits: Limits) -> anyhow::Result<Loaded> {
    let mut bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    if path.extension().is_some_and(|e| e == "wat") {
        bytes = wat::parse_bytes(&bytes)
            .map_err(|e| anyhow::anyhow!("{}: refused: not valid WebAssembly text: {e}", path.display()))?
            .into_owned();
    }
    plaudit_core::plugins::load(host, &name_of(path), &bytes, limits).map_err(|e| {
        // The first line says what is wrong; wasmtime's detail after it is byte dumps.
        let message = e.to_string();
        anyhow::anyhow!("{}: refused: {}", path.display(), message.lines().next().unwrap_or_default())
    })
}

pub fn check(path: &Path) -> anyhow::Result<ExitCode> {
    let host = PluginHost::new(&Limits::default()).context("starting the plugin sandbox")?;
    match load(&host, path, Limits::default()) {
        Ok(loaded) => {
            let m = &loaded.manifest;
            println!("{}: ok", path.display());
            println!("  plugin:   {} {} (ABI {})", m.name, m.version, m.abi);
            println!("  context:  [{}]", m.context.join(", "));
            println!("  size:     {} bytes (limit {})", loaded.module_bytes, Limits::default().module_bytes);
            println!("  compiled: {:.1} ms", loaded.compile_time.as_secs_f64() * 1e3);
            println!("  imports:  [{}]", loaded.plugin().imports().join(", "));
            println!("  exports:  [{}]", loaded.plugin().exports().join(", "));
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Loads each module under the rule set's `[plugins]` limits and installs it into `world`; the
/// host must outlive the scoring.
pub fn install(world: &mut OrgWorld, paths: &[PathBuf]) -> anyhow::Result<PluginHost> {
    let limits = world.program().plugin_limits.clone();
    let host = PluginHost::new(&limits).context("starting the plugin sandbox")?;
    for path in paths {
        let loaded = load(&host, path, limits.clone())?;
        world.install_plugin(&name_of(path), Arc::new(loaded));
    }
    Ok(host)
}

/// Each plugin's status on stderr: calls, failures and why, fuel per moment.
pub fn report(world: &OrgWorld) {
    for s in world.plugins() {
        let per_moment = s.fuel_used.checked_div(s.moments).unwrap_or(0);
        let mut line = format!(
            "plugin {} {}: {:?}, {} calls ({} failed), {} moments, {per_moment} fuel a moment",
            s.name, s.version, s.state, s.calls, s.failed_calls, s.moments
        );
        if let Some(f) = &s.last_failure {
            let _ = write!(line, "\n  last failure, moments {}..={}: {}", f.first_seq, f.last_seq, f.reason);
            for log in f.logs.lines() {
                let _ = write!(line, "\n  | {log}");
            }
        }
        eprintln!("{line}");
    }
}

/// Creates `dir/name` from the template.
pub fn new(name: &str, dir: &Path) -> anyhow::Result<ExitCode> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && name.starts_with(|c: char| c.is_ascii_lowercase());
    if !valid {
        bail!("plugin name {name:?}: use 1 to 64 lowercase letters, digits and dashes, starting with a letter");
    }
    let root = dir.join(name);
    if root.exists() {
        bail!("{} exists already", root.display());
    }
    let crate_name = name.replace('-', "_");
    let manifest = TEMPLATE_MANIFEST
        .lines()
        .filter(|l| !l.starts_with("# A new plugin") && !l.starts_with("# rename the package"))
        .collect::<Vec<_>>()
        .join("\n")
        .replace(TEMPLATE_NAME, name);
    let lib = TEMPLATE_LIB.replace(TEMPLATE_NAME, name);
    std::fs::create_dir_all(root.join("src")).with_context(|| format!("cannot create {}", root.display()))?;
    std::fs::write(root.join("Cargo.toml"), manifest + "\n")?;
    std::fs::write(root.join("src/lib.rs"), lib)?;
    println!("created {}", root.display());
    println!("next:");
    println!("  1. add \"{name}\" to `members` in {}", dir.join("Cargo.toml").display());
    println!("  2. (cd {} && cargo test)                  # the handler's tests, natively", root.display());
    println!("  3. bash scripts/build-plugins.sh            # -> plugins/dist/{crate_name}.wasm");
    println!("  4. plaudit plugin check plugins/dist/{crate_name}.wasm");
    println!("  5. plaudit score --rules rules/acme.toml --plugin plugins/dist/{crate_name}.wasm MOMENTS.jsonl");
    Ok(ExitCode::SUCCESS)
}
