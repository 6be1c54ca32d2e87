//! Connections no client can hold: silent ones, half a request line, half the headers, a body
//! never finished, an idle keep-alive are all closed by the server's timeouts, no more
//! connections are kept than its limit (and its open-file limit) allow, and `/healthz` answers
//! again as soon as they are gone. Short timeouts here, so that the server's closing comes
//! quickly; each wait is bounded.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use plaudit_tests::{repo_root, scratch_dir};

use crate::plaudit_bin;

use crate::server::Server;

const LIMITS: &str = "[limits]\nconnections = 32\nheader_timeout_ms = 300\nidle_timeout_ms = 600\nbody_timeout_ms = 300\nrequest_timeout_ms = 1500\n";

fn start(data: &std::path::Path) -> Server {
    let config = data.with_extension("toml");
    std::fs::write(&config, LIMITS).expect("the configuration");
    Server::start_args(data, None, &["--no-demo-plugins", "--config", &config.display().to_string()])
}

/// Whether the server closes `stream` (an end of file, or a reset) within a bounded wait,
/// after answering whatever it answers; returns what it sent.
fn closed_by_server(mut stream: TcpStream) -> Option<String> {
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("a read timeout");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Some(String::from_utf8_lossy(&got).into_owned()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return Some(String::from_utf8_lossy(&got).into_owned());
            }
            Err(_) => return None, // still open after the wait
        }
    }
}

/// Polls `/healthz` until it answers (at most 10 s).
fn healthz_answers(server: &Server) -> bool {
    for _ in 0..500 {
        if let Ok(mut stream) = TcpStream::connect(&server.addr) {
            let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
            let asked = stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").is_ok();
            let mut answer = String::new();
            if asked && stream.read_to_string(&mut answer).is_ok() && answer.starts_with("HTTP/1.1 200") {
                return true;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn slow_and_silent_connections_are_closed_by_the_server() {
    let data = scratch_dir("plaudit-connections-slow");
    let server = start(&data);
    let connect = || TcpStream::connect(&server.addr).expect("connects");
    let silent = connect();
    let mut half_line = connect();
    half_line.write_all(b"GET /heal").expect("writes");
    let mut half_head = connect();
    half_head.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: ").expect("writes");
    let mut half_body = connect();
    let key = server.key("acme");
    write!(half_body, "POST /v1/orgs/acme/moments HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"id\":").expect("writes");
    let mut idle = connect();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n").expect("writes");
    for (what, stream) in [("silent", silent), ("half a request line", half_line), ("half the headers", half_head)] {
        assert_eq!(closed_by_server(stream).as_deref(), Some(""), "{what}: closed without an answer");
    }
    let answered = closed_by_server(half_body).expect("a body never finished is ended");
    assert!(answered.is_empty() || answered.starts_with("HTTP/1.1 4"), "{answered}");
    let kept_alive = closed_by_server(idle).expect("an idle keep-alive is closed");
    assert!(kept_alive.starts_with("HTTP/1.1 200"), "answered first, then closed: {kept_alive}");
    drop(server);
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn past_the_connection_limit_connections_are_closed_at_once_and_healthz_answers_again() {
    let data = scratch_dir("plaudit-connections-limit");
    let server = start(&data);
    let held: Vec<TcpStream> = (0..40).map(|_| TcpStream::connect(&server.addr).expect("connects")).collect();
    // 32 held by the server until their header timeout; the others closed at once.
    let mut refused = 0;
    for stream in &held {
        stream.set_read_timeout(Some(Duration::from_millis(100))).expect("timeout");
        let mut byte = [0u8; 1];
        if matches!((&*stream).read(&mut byte), Ok(0)) {
            refused += 1;
        }
    }
    assert!(refused >= 8, "at least the connections past the limit were closed: {refused}");
    assert!(healthz_answers(&server), "the held ones time out, and /healthz answers");
    let (_, _, metrics) = server.send("GET", "/metrics", None, "text/plain", b"");
    let text = metrics.as_str().unwrap_or_default();
    let refused_total = text
        .lines()
        .find_map(|l| l.strip_prefix("plaudit_connections_refused_total "))
        .and_then(|v| v.parse::<u64>().ok());
    assert!(refused_total >= Some(8), "{text}");
    assert!(text.contains("plaudit_connections_limit 32"), "{text}");
    drop(held);
    drop(server);
    let _ = std::fs::remove_dir_all(&data);
}

/// Under a file limit of 256, many more silent connections than files: the server keeps
/// files for itself (its connection limit is under the file limit), closes what it cannot
/// hold, and `/healthz` answers again once the held ones time out.
#[test]
fn under_a_low_file_limit_many_silent_connections_do_not_stop_the_server() {
    let data = scratch_dir("plaudit-connections-files");
    let config = data.with_extension("toml");
    std::fs::write(&config, "[limits]\nheader_timeout_ms = 300\n").expect("the configuration");
    let mut child = Command::new("sh")
        .current_dir(repo_root())
        .arg("-c")
        .arg("ulimit -n 256 && exec \"$0\" \"$@\"")
        .arg(plaudit_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--demo", "--no-demo-plugins", "--config"])
        .arg(&config)
        .arg("--data")
        .arg(&data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the server starts");
    let mut out = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let addr = loop {
        let mut line = String::new();
        assert!(std::io::BufRead::read_line(&mut out, &mut line).expect("reads") > 0, "the server says where");
        if let Some(rest) = line.strip_prefix("listening on ") {
            break rest.split(' ').next().expect("an address").to_string();
        }
    };
    let server = Server { child, addr, keys: Vec::new() };
    let held: Vec<TcpStream> = (0..260).filter_map(|_| TcpStream::connect(&server.addr).ok()).collect();
    assert!(held.len() > 200, "{}", held.len());
    assert!(healthz_answers(&server), "/healthz answers");
    let (_, _, metrics) = server.send("GET", "/metrics", None, "text/plain", b"");
    let limit = metrics.as_str().unwrap_or_default().lines().find_map(|l| l.strip_prefix("plaudit_connections_limit "));
    assert_eq!(limit, Some("128"), "256 files less the 128 kept for the server");
    drop(held);
    drop(server);
    let _ = std::fs::remove_dir_all(&data);
}
