//! A real `plaudit serve` on a free loopback port, driven over TCP with plain HTTP/1.1
//! requests: what the HTTP and tenancy tests start.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

use plaudit_tests::repo_root;

use crate::plaudit_bin;
use serde_json::Value;

/// A running server and what it printed at start.
pub struct Server {
    pub child: Child,
    pub addr: String,
    pub keys: Vec<(String, String)>,
}

impl Server {
    pub fn start(data: &std::path::Path) -> Server {
        Server::start_with(data, None)
    }

    /// A server with `admin` as its `PLAUDIT_ADMIN_KEY` (none if `None`).
    pub fn start_with(data: &std::path::Path, admin: Option<&str>) -> Server {
        Server::start_args(data, admin, &["--no-demo-plugins"])
    }

    /// A server with `admin` as its `PLAUDIT_ADMIN_KEY` and `extra` arguments to `serve`, once
    /// its organisations are open.
    pub fn start_args(data: &std::path::Path, admin: Option<&str>, extra: &[&str]) -> Server {
        let server = Server::start_args_unwaited(data, admin, extra);
        server.wait_open();
        server
    }

    /// [`Server::start_args`] as soon as it listens, its organisations perhaps still opening.
    /// Its configuration (`--config`, or none) with [`plaudit_tests::PERMISSIVE`] added.
    pub fn start_args_unwaited(data: &std::path::Path, admin: Option<&str>, extra: &[&str]) -> Server {
        let mut extra: Vec<String> = extra.iter().map(|a| a.to_string()).collect();
        let given = extra.iter().position(|a| a == "--config").and_then(|i| extra.get(i + 1).cloned());
        let own =
            given.map(|path| std::fs::read_to_string(path).expect("the test's configuration")).unwrap_or_default();
        let config = data.with_extension("permissive.toml");
        std::fs::write(&config, own + plaudit_tests::PERMISSIVE).expect("the configuration");
        match extra.iter().position(|a| a == "--config") {
            Some(i) => extra[i + 1] = config.display().to_string(),
            None => extra.extend(["--config".to_string(), config.display().to_string()]),
        }
        let mut command = Command::new(plaudit_bin());
        match admin {
            Some(key) => command.env("PLAUDIT_ADMIN_KEY", key),
            None => command.env_remove("PLAUDIT_ADMIN_KEY"),
        };
        let mut child = command
            .current_dir(repo_root())
            .args(["serve", "--listen", "127.0.0.1:0", "--demo", "--data"])
            .arg(data)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("plaudit serve starts");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut keys = Vec::new();
        let addr = loop {
            let line = lines.next().expect("the server says where it listens").expect("utf-8");
            if let Some(rest) = line.strip_prefix("demo: organisation ") {
                let org = rest.split(' ').next().expect("org").to_string();
                keys.push((org, rest.rsplit(' ').next().expect("key").to_string()));
            }
            if let Some(rest) = line.strip_prefix("listening on ") {
                break rest.split(' ').next().expect("address").to_string();
            }
        };
        Server { child, addr, keys }
    }

    /// Waits until every organisation is open (`/healthz` says none is opening): the server
    /// answers at once, and opens its organisations meanwhile, each on its own.
    pub fn wait_open(&self) {
        // A bound for a stuck server, not a timing check: a loaded 2-core machine compiling
        // plugins in a debug build can take seconds.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        while std::time::Instant::now() < deadline {
            let (status, health) = self.request("GET", "/healthz", None, "");
            assert_eq!(status, 200, "{health}");
            if health["organisations"]["opening"] == 0 {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("the organisations did not open within 120 s");
    }

    pub fn key(&self, org: &str) -> &str {
        &self.keys.iter().find(|(o, _)| o == org).expect("a demo organisation").1
    }

    /// Sends a JSON request and returns the status and the body as JSON (or as a string).
    pub fn request(&self, method: &str, path: &str, key: Option<&str>, body: &str) -> (u16, Value) {
        let (status, _, body) = self.send(method, path, key, "application/json", body.as_bytes());
        (status, body)
    }

    /// Sends `body` as `content_type`; returns the status, the response's head and its body.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        content_type: &str,
        body: &[u8],
    ) -> (u16, String, Value) {
        let mut stream = TcpStream::connect(&self.addr).expect("connects");
        let auth = key.map(|k| format!("Authorization: Bearer {k}\r\n")).unwrap_or_default();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n{auth}Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).expect("sends");
        stream.write_all(body).expect("sends");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("reads");
        let status: u16 = response.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status line");
        let (head, text) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
        (status, head.to_ascii_lowercase(), serde_json::from_str(text).unwrap_or(Value::String(text.to_string())))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
