//! `plaudit plugin check`: validates a module the way the engine will when it is uploaded.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use plaudit_engine::plugins::{Limits, PluginHost};

pub fn check(path: &Path) -> anyhow::Result<ExitCode> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let limits = Limits::default();
    let host = PluginHost::new(&limits).context("starting the plugin sandbox")?;
    let name = path.file_stem().map_or_else(|| "plugin".into(), |s| s.to_string_lossy().into_owned());
    match host.compile(&name, &bytes, limits) {
        Ok(plugin) => {
            println!(
                "{}: ok: {} bytes; imports: [{}]; exports: [{}]",
                path.display(),
                bytes.len(),
                plugin.imports().join(", "),
                plugin.exports().join(", ")
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            // The first line says what is wrong; wasmtime's detail after it is byte dumps.
            let message = e.to_string();
            eprintln!("{}: refused: {}", path.display(), message.lines().next().unwrap_or_default());
            Ok(ExitCode::FAILURE)
        }
    }
}
