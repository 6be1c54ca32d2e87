//! Read latency of `plaudit serve`: each path read `N` times in a row over one keep-alive
//! connection, the first read apart (it may fold what was not read before), then p50, p95 and
//! the maximum of the others.
//!
//! `cargo run --release -p plaudit-benches --bin reads -- ADDR KEY N PATH...`
//! (e.g. `127.0.0.1:8080 $KEY 100 /v1/orgs/acme/insights/activity /v1/orgs/acme/insights/quiet`;
//! a path may end in `#csv` to ask for `text/csv`). KEY `cookie:NAME=VALUE` sends that cookie
//! instead of a key (the console's pages, signed in). Prints a Markdown table.

use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use tokio::net::TcpStream;

fn main() -> Result<(), String> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: reads ADDR KEY N PATH...";
    let (Some(addr), Some(key), Some(n)) = (a.first(), a.get(1), a.get(2)) else { return Err(usage.into()) };
    let n: usize = n.parse().map_err(|e| format!("N {n:?}: {e}; {usage}"))?;
    let paths = &a[3..];
    if paths.is_empty() || n < 2 {
        return Err(usage.into());
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let stream = TcpStream::connect(addr).await.map_err(|e| format!("connect {addr}: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let io = hyper_util::rt::TokioIo::new(stream);
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        println!("| read | first | p50 | p95 | max | bytes |");
        println!("|---|---:|---:|---:|---:|---:|");
        for path in paths {
            let (uri, accept) = match path.strip_suffix("#csv") {
                Some(p) => (p, "text/csv"),
                None => (path.as_str(), "application/json"),
            };
            let mut times = Vec::with_capacity(n);
            let mut bytes = 0;
            for _ in 0..n {
                let request = hyper::Request::get(uri).header("host", addr).header("accept", accept);
                let request = match key.strip_prefix("cookie:") {
                    Some(cookie) => request.header("cookie", cookie),
                    None => request.header("authorization", format!("Bearer {key}")),
                };
                let request = request.body(Empty::<Bytes>::new()).map_err(|e| e.to_string())?;
                let started = Instant::now();
                let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
                let status = response.status();
                let body = response.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
                times.push(started.elapsed());
                if !status.is_success() {
                    return Err(format!("{path}: {status}: {}", String::from_utf8_lossy(&body)));
                }
                bytes = body.len();
            }
            let first = times[0];
            let mut rest = times[1..].to_vec();
            rest.sort_unstable();
            let at = |q: f64| rest[((rest.len() as f64 * q).ceil() as usize).clamp(1, rest.len()) - 1];
            let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1e3);
            println!(
                "| `{path}` | {} | {} | {} | {} | {bytes} |",
                ms(first),
                ms(at(0.5)),
                ms(at(0.95)),
                ms(rest[rest.len() - 1])
            );
        }
        Ok(())
    })
}
