//! The server's connections: the accept loop, their limit and timeouts, and a graceful stop.
//!
//! **Owns** [`Connections`] and [`serve`]. axum's own `serve` offers neither a connection limit
//! nor read timeouts, so a client (no key needed) could hold connections open forever: silent,
//! half a request line, half the headers, a body never finished, an idle keep-alive. Here:
//!
//! - at most [`super::config::Limits::connections`] connections at once, and never more than
//!   the process's open-file limit less [`RESERVED_FILES`] (raised to its hard limit at start):
//!   one more is closed at once and counted (`/metrics`), so that the server keeps its files for
//!   its store, its threads and `/healthz`;
//! - a connection with no request under way is closed once it has waited
//!   [`header_timeout`](super::config::Limits::header_timeout_ms) for a request's head to begin
//!   and end (a new connection, or one that has started sending a head), or
//!   [`idle_timeout`](super::config::Limits::idle_timeout_ms) between requests on a kept-alive
//!   connection; a request (its body included) is timed by the router
//!   ([`super::request_timeout`], the body's pauses by `body_timeout_ms`); an event stream,
//!   being a request under way, is never cut by these;
//! - HTTP/1.1, and HTTP/2 for clients that speak it from the first byte (h2c, as proxies do
//!   towards backends), on the same port;
//! - on stop, no new connection; idle ones close, requests under way are answered, streams end
//!   (see `AppState::closing`), for at most [`STOP_GRACE`].
//!
//! **Must not touch** organisations: it hands requests to the router.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tower::{Service, ServiceExt};

use super::AppState;

/// Open files kept for the server's own use (its store's files, threads, pipes, a `/healthz`
/// connection), whatever the connection limit.
pub const RESERVED_FILES: u64 = 128;

/// The longest a stop waits for requests under way.
pub const STOP_GRACE: Duration = Duration::from_secs(30);

/// The server's connections: a place each, at most `limit` (see the module's documentation).
#[derive(Debug)]
pub struct Connections {
    places: Arc<Semaphore>,
    limit: usize,
    refused: AtomicU64,
}

impl Connections {
    /// Room for `wanted` connections, at most the open-file limit allows.
    pub fn new(wanted: usize) -> Connections {
        let limit = match open_file_limit() {
            Some(files) => wanted.min(usize::try_from(files.saturating_sub(RESERVED_FILES)).unwrap_or(usize::MAX)),
            None => wanted,
        }
        .max(1);
        if limit < wanted {
            tracing::warn!(wanted, limit, "limits.connections is over the open-file limit: lowered");
        }
        Connections { places: Arc::new(Semaphore::new(limit)), limit, refused: AtomicU64::new(0) }
    }

    /// Connections open, the limit, and connections refused at it.
    pub fn usage(&self) -> (usize, usize, u64) {
        (self.limit - self.places.available_permits(), self.limit, self.refused.load(Ordering::Relaxed))
    }
}

/// The process's open-file limit, raised to the hard limit first (Linux).
fn open_file_limit() -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        use rustix::process::{Resource, getrlimit, setrlimit};
        let mut limit = getrlimit(Resource::Nofile);
        if limit.current < limit.maximum {
            limit.current = limit.maximum;
            if setrlimit(Resource::Nofile, limit).is_err() {
                limit = getrlimit(Resource::Nofile);
            }
        }
        limit.current
    }
    #[cfg(not(target_os = "linux"))]
    None
}

/// What a connection is doing, for its idle and header timeouts.
#[derive(Debug)]
struct Activity {
    /// When it was accepted.
    start: Instant,
    /// Requests under way (until their answer's body has been sent, or dropped).
    active: AtomicUsize,
    /// Requests it has begun.
    requests: AtomicU64,
    /// Milliseconds after `start` when it last had no request under way.
    idle_since: AtomicU64,
    /// Bytes read since then: a request's head on its way.
    read_since: AtomicU64,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            start: Instant::now(),
            active: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            idle_since: AtomicU64::new(0),
            read_since: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// When the connection is to be closed if nothing changes: `None` while a request is under
    /// way. Before its first request, or with a head on its way, it has the header timeout;
    /// between requests, the idle timeout.
    fn deadline(&self, header: Duration, idle: Duration) -> Option<Instant> {
        if self.active.load(Ordering::Acquire) > 0 {
            return None;
        }
        let waiting_for_head =
            self.requests.load(Ordering::Relaxed) == 0 || self.read_since.load(Ordering::Relaxed) > 0;
        let limit = if waiting_for_head { header } else { idle };
        Some(self.start + Duration::from_millis(self.idle_since.load(Ordering::Acquire)) + limit)
    }

    fn begin(self: &Arc<Self>) -> Underway {
        self.active.fetch_add(1, Ordering::AcqRel);
        self.requests.fetch_add(1, Ordering::Relaxed);
        Underway(Arc::clone(self))
    }
}

/// A request under way on a connection, until dropped (with its answer's body).
#[derive(Debug)]
struct Underway(Arc<Activity>);

impl Drop for Underway {
    fn drop(&mut self) {
        let a = &self.0;
        a.read_since.store(0, Ordering::Relaxed);
        a.idle_since.store(a.now_ms(), Ordering::Release);
        a.active.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A TCP stream that counts the bytes it reads into its connection's [`Activity`].
struct Watched {
    tcp: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.tcp).poll_read(cx, buf);
        let read = buf.filled().len() - before;
        if read > 0 {
            this.activity.read_since.fetch_add(read as u64, Ordering::Relaxed);
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }
}

/// An answer's body that keeps its request [`Underway`] until it is sent or dropped.
struct Tracked {
    body: Body,
    _underway: Underway,
}

impl axum::body::HttpBody for Tracked {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// Serves `state` on `listener` until `shutdown` resolves, then ends live streams and answers
/// the requests under way (see the module's documentation).
///
/// `app` is what answers: [`super::router`] over `state`, with whatever the binary mounts beside
/// it (the console).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    app: axum::Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    state.start_background().await;
    let limits = state.limits;
    let (header, idle) =
        (Duration::from_millis(limits.header_timeout_ms), Duration::from_millis(limits.idle_timeout_ms));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // HTTP/2 without TLS (h2c, prior knowledge) for proxies and clients that speak it; its
    // keep-alive pings need a timer (without one, hyper panics on the first HTTP/2 connection).
    builder
        .http2()
        .timer(hyper_util::rt::TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(20)))
        .keep_alive_timeout(Duration::from_secs(20));
    let builder = Arc::new(builder);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of files or the like: the connections open go on; try again shortly.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(place) = Arc::clone(&state.connections.places).try_acquire_owned() else {
            state.connections.refused.fetch_add(1, Ordering::Relaxed);
            drop(tcp);
            continue;
        };
        // Answers are small and written as they are ready: without TCP_NODELAY, Nagle's
        // algorithm holds a segment that follows another until the peer acknowledges the
        // first, which a client delays by up to 40 ms.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY on a connection");
        }
        let activity = Arc::new(Activity::new());
        let io = TokioIo::new(Watched { tcp, activity: Arc::clone(&activity) });
        let service = connection_service(app.clone(), peer, Arc::clone(&activity));
        let (builder, mut closing) = (Arc::clone(&builder), state.closing());
        tokio::spawn(async move {
            let conn = builder.serve_connection_with_upgrades(io, service);
            let mut conn = std::pin::pin!(conn);
            let mut stopping: Option<Instant> = None;
            loop {
                let deadline = match stopping {
                    Some(hard) => Some(hard),
                    None => activity.deadline(header, idle),
                };
                let sleep = async {
                    match deadline {
                        Some(at) => tokio::time::sleep_until(at.into()).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    _ = conn.as_mut() => break,
                    () = sleep => {
                        if stopping.is_some() {
                            break; // not closed within a second of being asked: dropped
                        }
                        if activity.deadline(header, idle).is_some_and(|at| at <= Instant::now()) {
                            conn.as_mut().graceful_shutdown();
                            stopping = Some(Instant::now() + Duration::from_secs(1));
                        }
                    }
                    _ = closing.changed(), if stopping.is_none() => {
                        conn.as_mut().graceful_shutdown();
                        stopping = Some(Instant::now() + STOP_GRACE);
                    }
                }
            }
            drop(place);
        });
    }
    drop(listener);
    state.closing.send_replace(true);
    // Every connection gives its place back when it ends.
    let all = u32::try_from(state.connections.limit).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(STOP_GRACE + Duration::from_secs(2), state.connections.places.acquire_many(all)).await;
    Ok(())
}

/// The router as one connection's hyper service: each request carries the peer's address,
/// and is counted under way (with its answer's body) in the connection's [`Activity`].
fn connection_service(
    app: axum::Router,
    peer: SocketAddr,
    activity: Arc<Activity>,
) -> hyper_util::service::TowerToHyperService<
    impl Service<
        Request<hyper::body::Incoming>,
        Response = Response<Body>,
        Error = Infallible,
        Future = impl Send + 'static,
    > + Clone,
> {
    let service = tower::service_fn(move |mut request: Request<hyper::body::Incoming>| {
        let underway = activity.begin();
        request.extensions_mut().insert(ConnectInfo(peer));
        let app = app.clone();
        async move {
            let response = app.oneshot(request.map(Body::new)).await?;
            Ok::<_, Infallible>(response.map(|body| Body::new(Tracked { body, _underway: underway })))
        }
    });
    hyper_util::service::TowerToHyperService::new(service)
}
