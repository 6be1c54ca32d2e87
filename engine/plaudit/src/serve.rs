//! `plaudit serve`: the HTTP API over a data directory.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use plaudit_server::datadir::DataDir;
use plaudit_server::http;

pub struct Options {
    pub config: Option<PathBuf>,
    pub data: Option<PathBuf>,
    pub listen: Option<String>,
    /// Rule sets to create organisations from when the data directory has none.
    pub demo: Option<PathBuf>,
    /// Where the demo's example plugins are (built `.wasm` modules), installed into the demo
    /// organisation `acme`; `None` for none.
    pub demo_plugins: Option<PathBuf>,
}

pub fn run(o: &Options) -> anyhow::Result<ExitCode> {
    let mut config = http::ServerConfig::load(o.config.as_deref(), |v| std::env::var(v).ok())?;
    if let Some(data) = &o.data {
        config.data = data.clone();
    }
    if let Some(listen) = &o.listen {
        config.listen = listen.clone();
    }
    init_logs(&config)?;
    let orgs = DataDir::new(&config.data).orgs();
    std::fs::create_dir_all(&orgs).with_context(|| format!("cannot create {}", orgs.display()))?;
    let state = http::open(&config).with_context(|| format!("opening {}", config.data.display()))?;
    let created = match &o.demo {
        Some(rules) => demo(&state, &config.data, rules)?,
        None => Vec::new(),
    };
    if config.admin_key.is_none() {
        tracing::info!("no admin key (PLAUDIT_ADMIN_KEY): organisations cannot be created over HTTP");
    }
    let state = Arc::new(state);
    // Each on a thread of its own; the server answers while they open.
    state.open_organisations();
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        if let (Some(dir), true) = (&o.demo_plugins, created.iter().any(|org| org == DEMO_PLUGINS_ORG)) {
            demo_plugins(&state, dir).await?;
        }
        let listener = tokio::net::TcpListener::bind(&config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let orgs = state.known();
        tracing::info!(listen = %listener.local_addr()?, organisations = orgs.len(), "serving");
        // "listening on" comes last: scripts and tests read up to it, then may close our stdout.
        println!("console: http://{}/console/ (sign in with an organisation's own key)", listener.local_addr()?);
        println!("listening on {} ({} organisations: {})", listener.local_addr()?, orgs.len(), orgs.join(", "));
        // The API, and the console beside it (its pages call the API in process).
        let app = plaudit_console::mount(http::router(Arc::clone(&state)));
        http::serve(listener, Arc::clone(&state), app, shutdown_signal()).await.context("serving")?;
        state.close().await;
        anyhow::Ok(())
    })?;
    tracing::info!("stopped: every accepted request was answered");
    Ok(ExitCode::SUCCESS)
}

/// The demo organisation that gets the example plugins.
const DEMO_PLUGINS_ORG: &str = "acme";

/// Installs every example plugin module in `dir` (`*.wasm` but the template's) into the demo
/// organisation, named after its file (`bridge_builder.wasm` -> `bridge-builder`). Without a
/// `dir` (the plugins were not built) it says so and goes on.
async fn demo_plugins(state: &http::AppState, dir: &Path) -> anyhow::Result<()> {
    let mut modules: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "wasm"))
            .filter(|p| p.file_stem().is_some_and(|s| s != "plugin_template"))
            .collect(),
        Err(e) => {
            println!(
                "demo: no example plugins in {} ({e}); build them with bash scripts/build-plugins.sh",
                dir.display()
            );
            return Ok(());
        }
    };
    modules.sort();
    for module in modules {
        let name = module.file_stem().map(|s| s.to_string_lossy().replace('_', "-")).unwrap_or_default();
        let wasm = std::fs::read(&module).with_context(|| format!("cannot read {}", module.display()))?;
        state
            .install_plugin(DEMO_PLUGINS_ORG, &name, wasm)
            .await
            .map_err(|e| anyhow::anyhow!("installing {} as plugin {name}: {}", module.display(), e.message))?;
        println!("demo: plugin {name} ({}) installed in {DEMO_PLUGINS_ORG}", module.display());
    }
    Ok(())
}

/// On an empty data directory, an organisation for each rule set in `rules` (a file or a
/// directory of `.toml` files), with its key printed once. Returns the organisations created.
fn demo(state: &http::AppState, data: &Path, rules: &Path) -> anyhow::Result<Vec<String>> {
    if !state.known().is_empty() {
        println!("demo: {} has organisations already; their keys were printed when they were created", data.display());
        return Ok(Vec::new());
    }
    let mut files: Vec<PathBuf> = if rules.is_dir() {
        std::fs::read_dir(rules)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect()
    } else {
        vec![rules.to_path_buf()]
    };
    files.sort();
    let mut created = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
        let doc = plaudit_core::ruleset::parse_toml(&text, &file.display().to_string())?;
        let org = doc.organisation.id;
        let key = state
            .create_org(&org, &text, plaudit_core::ruleset::Format::Toml)
            .with_context(|| format!("creating an organisation from {}", file.display()))?;
        println!("demo: organisation {org} ({}) key {key}", file.display());
        created.push(org);
    }
    Ok(created)
}

/// Structured logs on stderr, filtered and formatted as configured.
fn init_logs(config: &http::ServerConfig) -> anyhow::Result<()> {
    let filter: tracing_subscriber::EnvFilter = config.log.parse().context("the log filter")?;
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let installed = match config.log_format {
        http::config::LogFormat::Text => builder.try_init(),
        http::config::LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    installed.map_err(|e| anyhow::anyhow!("cannot install the logger: {e}"))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: no new connections; finishing the requests in flight");
}
