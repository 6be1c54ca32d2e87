//! The server in process: its real state over a real data directory, and its router driven with
//! `oneshot`, for the HTTP tests that need no socket (restarts, SIGTERM, streams and
//! connections need the binary: `server`). The same calls as [`crate::server::Server`].

use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use plaudit_core::ruleset::Format;
use plaudit_server::http::{AppState, ServerConfig};
use serde_json::Value;
use tower::ServiceExt;

/// A server in process: its state, its router, and the demo organisations' keys.
pub struct App {
    runtime: tokio::runtime::Runtime,
    pub state: Arc<AppState>,
    router: axum::Router,
    pub keys: Vec<(String, String)>,
}

impl App {
    /// A server over `data` with the demo organisations (one per `rules/*.toml`) created, as
    /// `plaudit serve --demo --no-demo-plugins` makes them.
    pub fn start(data: &Path) -> App {
        App::start_with(ServerConfig { data: data.to_path_buf(), ..ServerConfig::default() })
    }

    /// [`App::start`] with a configuration of the test's own, taking moments of any date and
    /// records as fast as they come ([`plaudit_tests::PERMISSIVE`]) unless it says otherwise.
    pub fn start_with(mut config: ServerConfig) -> App {
        let defaults = ServerConfig::default();
        if (config.moments, config.quotas) == (defaults.moments, defaults.quotas) {
            plaudit_tests::permissive(&mut config);
        }
        let runtime = tokio::runtime::Runtime::new().expect("a runtime");
        let state = Arc::new(plaudit_server::http::open(&config).expect("the data directory opens"));
        let mut keys = Vec::new();
        if state.known().is_empty() {
            let mut files: Vec<_> = std::fs::read_dir(plaudit_tests::repo_root().join("rules"))
                .expect("rules/")
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect();
            files.sort();
            for file in files {
                let text = std::fs::read_to_string(&file).expect("a rule set");
                let doc = plaudit_core::ruleset::parse_toml(&text, "demo").expect("parses");
                let org = doc.organisation.id;
                let key = state.create_org(&org, &text, Format::Toml).expect("created");
                keys.push((org, key));
            }
        }
        state.open_organisations();
        runtime.block_on(state.start_background());
        let app = App { router: plaudit_server::http::router(Arc::clone(&state)), runtime, state, keys };
        app.wait_open();
        app
    }

    /// Waits until every organisation is open.
    pub fn wait_open(&self) {
        // A bound for a stuck server, not a timing check: a loaded 2-core machine compiling
        // plugins in a debug build can take seconds.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        while std::time::Instant::now() < deadline {
            if self.state.counts().1 == 0 {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("the organisations did not open within 120 s");
    }

    pub fn key(&self, org: &str) -> &str {
        &self.keys.iter().find(|(o, _)| o == org).expect("a demo organisation").1
    }

    /// Sends a JSON request; returns the status and the body as JSON (or as a string).
    pub fn request(&self, method: &str, path: &str, key: Option<&str>, body: &str) -> (u16, Value) {
        let (status, _, body) = self.send(method, path, key, "application/json", body.as_bytes());
        (status, body)
    }

    /// Sends `body` as `content_type`; returns the status, the answer's head (lowercase
    /// `name: value` lines) and its body.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        content_type: &str,
        body: &[u8],
    ) -> (u16, String, Value) {
        self.send_with(method, path, key, &[("content-type", content_type)], body)
    }

    /// A GET with `Accept: accept` (no `Accept` header for `None`); the status, head and body
    /// as [`App::send`] gives them.
    pub fn get_accepting(&self, path: &str, key: Option<&str>, accept: Option<&str>) -> (u16, String, Value) {
        let headers: Vec<(&str, &str)> = accept.map(|a| ("accept", a)).into_iter().collect();
        self.send_with("GET", path, key, &headers, b"")
    }

    /// Sends `body` with `headers`; answers as [`App::send`].
    pub fn send_with(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, String, Value) {
        let (status, head, bytes) = self.exchange(method, path, key, headers, body);
        let text = String::from_utf8_lossy(&bytes).into_owned();
        (status, head, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// [`App::send_with`], the body as the bytes that came (compressed ones stay so).
    pub fn exchange(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, String, Vec<u8>) {
        let mut request = Request::builder().method(method).uri(path);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(key) = key {
            request = request.header("authorization", format!("Bearer {key}"));
        }
        let request = request.body(Body::from(body.to_vec())).expect("a request");
        let router = self.router.clone();
        self.runtime.block_on(async move {
            let response = router.oneshot(request).await.expect("an answer");
            let status = response.status().as_u16();
            let head: String = response
                .headers()
                .iter()
                .map(|(name, value)| format!("{}: {}\r\n", name, value.to_str().unwrap_or("")).to_ascii_lowercase())
                .collect();
            let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("a body");
            (status, head, bytes.to_vec())
        })
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let state = Arc::clone(&self.state);
        self.runtime.block_on(async move { state.close().await });
    }
}
