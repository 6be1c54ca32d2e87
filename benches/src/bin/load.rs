//! A fixed-rate HTTP load generator for `plaudit serve`: single moments sent at a constant
//! rate over keep-alive connections, latency measured from when each request was due (so a
//! stalled server shows up in the figures instead of slowing the generator down: no
//! coordinated omission).
//!
//! `cargo run --release -p plaudit-benches --bin load -- ADDR KEY [RATE] [SECONDS] [CONNECTIONS]`
//! (defaults: 5000 requests/s, 10 s, 64 connections), to organisation `acme` or the one `ORG`
//! (environment) names. Prints the achieved rate, the status
//! counts and p50/p90/p99/p99.9/max latency; then the server's own view of the same requests,
//! from its `/metrics` histogram before and after the run (time inside the server, from the
//! router to the answer), so that a tail added by this generator or the machine can be told
//! apart from one the server makes.

use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use tokio::net::TcpStream;

struct Args {
    addr: String,
    key: String,
    /// The moments' path, for the organisation `ORG` names (default `acme`).
    path: String,
    rate: f64,
    seconds: f64,
    connections: usize,
}

fn args() -> Result<Args, String> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: load ADDR KEY [RATE] [SECONDS] [CONNECTIONS]";
    let (Some(addr), Some(key)) = (a.first(), a.get(1)) else { return Err(usage.to_string()) };
    let num = |i: usize, default: f64| -> Result<f64, String> {
        a.get(i).map_or(Ok(default), |v| v.parse().map_err(|e| format!("argument {}: {v:?}: {e}; {usage}", i + 1)))
    };
    Ok(Args {
        addr: addr.clone(),
        key: key.clone(),
        path: format!("/v1/orgs/{}/moments", std::env::var("ORG").unwrap_or_else(|_| "acme".to_string())),
        rate: num(2, 5000.0)?,
        seconds: num(3, 10.0)?,
        connections: num(4, 64.0)? as usize,
    })
}

/// One connection's share: every `connections`-th request, each sent when due.
async fn connection(
    args: std::sync::Arc<Args>,
    index: usize,
    start: Instant,
    run: u64,
) -> Result<(Vec<u32>, [u64; 3]), String> {
    let stream = TcpStream::connect(&args.addr).await.map_err(|e| format!("connect: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let total = (args.rate * args.seconds) as usize;
    let gap = Duration::from_secs_f64(1.0 / args.rate);
    let mut latencies = Vec::with_capacity(total / args.connections + 1);
    let mut statuses = [0u64; 3];
    let mut i = index;
    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ (index as u64 + 1);
    while i < total {
        let due = start + gap * i as u32;
        tokio::time::sleep_until(due.into()).await;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // Over the 28 days from 30 days before the run began, at 10:00 UTC: within what a server
        // takes by default (90 days back).
        let at = plaudit_core::calendar::format_rfc3339((run as i64 / 86_400 - 30 + (i % 28) as i64) * 86_400 + 36_000);
        let body = format!(
            r#"{{"id":"load-{run}-{i}","stakeholder":"s{}","counterpart":"s{}","kind":"answer","channel":"forum","at":"{at}"}}"#,
            x % 10_000,
            (x >> 20) % 10_000 + 10_000,
        );
        let request = hyper::Request::post(&args.path)
            .header("host", &args.addr)
            .header("authorization", format!("Bearer {}", args.key))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        response.into_body().collect().await.map_err(|e| e.to_string())?;
        latencies.push(u32::try_from(due.elapsed().as_micros()).unwrap_or(u32::MAX));
        statuses[match status {
            200..=299 => 0,
            400..=499 => 1,
            _ => 2,
        }] += 1;
        i += args.connections;
    }
    Ok((latencies, statuses))
}

fn main() -> Result<(), String> {
    let args = std::sync::Arc::new(args()?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let run = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let before = runtime.block_on(moments_histogram(&args.addr))?;
    let (latencies, statuses, elapsed) = runtime.block_on(async {
        let start = Instant::now() + Duration::from_millis(200);
        let tasks: Vec<_> =
            (0..args.connections).map(|c| tokio::spawn(connection(args.clone(), c, start, run))).collect();
        let mut latencies = Vec::new();
        let mut statuses = [0u64; 3];
        for t in tasks {
            let (l, s) = t.await.map_err(|e| e.to_string())??;
            latencies.extend(l);
            for (a, b) in statuses.iter_mut().zip(s) {
                *a += b;
            }
        }
        Ok::<_, String>((latencies, statuses, start.elapsed()))
    })?;
    let mut sorted = latencies;
    sorted.sort_unstable();
    let pct = |p: f64| {
        sorted.get(((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1))).copied().unwrap_or(0)
    };
    let ms = |us: u32| f64::from(us) / 1000.0;
    println!(
        "{} requests in {:.1} s ({:.0}/s, asked {:.0}/s over {} connections): 2xx {} 4xx {} other {}",
        sorted.len(),
        elapsed.as_secs_f64(),
        sorted.len() as f64 / elapsed.as_secs_f64(),
        args.rate,
        args.connections,
        statuses[0],
        statuses[1],
        statuses[2]
    );
    println!(
        "latency from due time: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
        ms(pct(0.50)),
        ms(pct(0.90)),
        ms(pct(0.99)),
        ms(pct(0.999)),
        ms(sorted.last().copied().unwrap_or(0))
    );
    let after = runtime.block_on(moments_histogram(&args.addr))?;
    let counts: Vec<(f64, u64)> =
        after.iter().map(|&(le, n)| (le, n - before.iter().find(|b| b.0 == le).map_or(0, |b| b.1))).collect();
    let total = counts.last().map_or(0, |c| c.1).max(1) as f64;
    let under = |ms: f64| counts.iter().find(|c| (c.0 - ms / 1000.0).abs() < 1e-9).map_or(0.0, |c| c.1 as f64 / total);
    let bucket_of = |p: f64| counts.iter().find(|c| c.1 as f64 >= p * total).map_or(f64::INFINITY, |c| c.0 * 1000.0);
    println!(
        "inside the server (its histogram): {:.1} % under 5 ms, {:.1} % under 10 ms; p50 <= {} ms, p99 <= {} ms",
        100.0 * under(5.0),
        100.0 * under(10.0),
        bucket_of(0.50),
        bucket_of(0.99)
    );
    Ok(())
}

/// The server's cumulative latency histogram of the moments route, from `/metrics`: (upper
/// bound in seconds, requests at most that long), `+Inf` as infinity.
async fn moments_histogram(addr: &str) -> Result<Vec<(f64, u64)>, String> {
    let stream = TcpStream::connect(addr).await.map_err(|e| format!("connect: {e}"))?;
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let request = hyper::Request::get("/metrics")
        .header("host", addr)
        .body(Full::new(Bytes::new()))
        .map_err(|e| e.to_string())?;
    let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
    let body = response.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
    let text = String::from_utf8_lossy(&body);
    let prefix = "plaudit_http_request_seconds_bucket{route=\"/v1/orgs/{org}/moments\",le=\"";
    Ok(text
        .lines()
        .filter_map(|l| l.strip_prefix(prefix))
        .filter_map(|rest| {
            let (le, n) = rest.split_once("\"} ")?;
            let le = if le == "+Inf" { f64::INFINITY } else { le.parse().ok()? };
            Some((le, n.trim().parse().ok()?))
        })
        .collect())
}
