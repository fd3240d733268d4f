//! Serving an axum router on a TCP listener with the limits a public port needs: every
//! service's listeners (public and internal) go through [`serve`].
//!
//! `axum::serve` sets no timer, so hyper enforces no header-read timeout, and it accepts
//! connections without bound: a few thousand sockets that each send one header byte now and
//! then hold a service (slowloris). Here:
//!
//! 1. Accept. Over [`ServeLimits::max_connections`] open connections, or over
//!    [`ServeLimits::max_connections_per_ip`] from one client address (IPv6 by /64; trusted
//!    proxies exempt), the new one is closed at once and counted: refusing costs nothing,
//!    while a queue of waiting sockets would only time out later. The per-address bound keeps
//!    one host from taking every slot.
//! 2. Each connection's socket is wrapped in [`IdleTimeout`]: when neither a read nor a write
//!    makes progress for [`ServeLimits::idle_timeout`], the connection fails. This bounds a
//!    client that stops reading a response.
//! 3. hyper reads the request head under [`ServeLimits::header_read_timeout`]. Its clock starts
//!    when hyper starts waiting for a head, so it also closes a keep-alive connection that sits
//!    idle between requests. The body is bounded by each router's request timeout layer.
//! 4. On shutdown: stop accepting, ask every connection to finish its request in flight and
//!    close, and wait for them up to [`DRAIN_LIMIT`].
//!
//! A service runs its public and its internal (metrics) listener as one [`Servers`].

use std::{
    collections::HashMap,
    future::Future,
    io,
    net::{IpAddr, SocketAddr},
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::Duration,
};

use axum::{Router, body::Body, extract::ConnectInfo, http::Request};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpListener,
    sync::Semaphore,
    task::JoinHandle,
    time::{Instant, Sleep},
};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

use crate::telemetry::Chain;
use crate::{client_ip::TrustedProxies, config as env, metrics::HttpMetrics};

/// Longest wait, at shutdown, for open connections to finish.
pub const DRAIN_LIMIT: Duration = Duration::from_secs(12);

/// hyper's read buffer, which bounds the request head; bodies stream through it.
const MAX_READ_BUFFER: usize = 64 * 1024;

/// Default of [`ServeLimits::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;

/// Default of [`ServeLimits::max_connections_per_ip`]: a 64th of the total, so it takes at
/// least 64 client addresses to fill every slot (at 512, eight could). A browser opens about
/// six connections to a host; a proxy in front of many users belongs in `CP_TRUSTED_PROXIES`.
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 64;
const _: () = assert!(DEFAULT_MAX_CONNECTIONS / DEFAULT_MAX_CONNECTIONS_PER_IP >= 64, "a few hosts could take every slot");

/// Connection limits of one listener.
#[derive(Debug, Clone)]
pub struct ServeLimits {
    /// `CP_HTTP_HEADER_TIMEOUT_MS`: time to send a whole request head, and how long a
    /// keep-alive connection may sit idle between requests; default 10 s.
    pub header_read_timeout: Duration,
    /// `CP_HTTP_IDLE_TIMEOUT_MS`: longest time a connection may make no read or write progress
    /// while the server waits on the client; default 30 s.
    pub idle_timeout: Duration,
    /// `CP_HTTP_MAX_CONNECTIONS`: open connections on a public listener; more are closed at
    /// once; default 4096 (keep the process's open-file limit above it).
    pub max_connections: usize,
    /// `CP_HTTP_MAX_CONNECTIONS_PER_IP`: open connections from one client address (IPv6 by
    /// /64); default 64, so that at least 64 addresses are needed to fill every slot; 0 turns
    /// the bound off.
    pub max_connections_per_ip: usize,
    /// `CP_TRUSTED_PROXIES`: peers exempt from the per-address bound (a balancer in front
    /// connects for everyone).
    pub trusted_proxies: TrustedProxies,
}

impl ServeLimits {
    /// The public listener's limits, from the environment.
    pub fn from_env() -> anyhow::Result<Self> {
        Ok(Self {
            header_read_timeout: env::millis("CP_HTTP_HEADER_TIMEOUT_MS", 10_000, 100, 600_000)?,
            idle_timeout: env::millis("CP_HTTP_IDLE_TIMEOUT_MS", 30_000, 100, 3_600_000)?,
            max_connections: env::ranged("CP_HTTP_MAX_CONNECTIONS", DEFAULT_MAX_CONNECTIONS, 1, 1_000_000)?,
            max_connections_per_ip: env::ranged(
                "CP_HTTP_MAX_CONNECTIONS_PER_IP",
                DEFAULT_MAX_CONNECTIONS_PER_IP,
                0,
                1_000_000,
            )?,
            trusted_proxies: TrustedProxies::parse(&env::string("CP_TRUSTED_PROXIES", ""))?,
        })
    }

    /// The internal (metrics) listener's limits: the same timeouts, few connections.
    pub fn internal(&self) -> Self {
        Self { max_connections: 64, max_connections_per_ip: 0, ..self.clone() }
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains (see the module doc).
/// Handlers see the peer address as `ConnectInfo<SocketAddr>`. `metrics`, when given, counts
/// open and refused connections.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: &ServeLimits,
    metrics: Option<&HttpMetrics>,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let per_ip = Arc::new(PerAddress::new(limits.max_connections_per_ip, limits.trusted_proxies.clone()));
    let stop = CancellationToken::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(MAX_READ_BUFFER)
        .keep_alive(true);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    accept_error(e).await;
                    continue;
                }
            },
        };
        let slots = permits.clone().try_acquire_owned().ok().zip(PerAddress::take(&per_ip, peer.ip()));
        let Some((permit, address_slot)) = slots else {
            if let Some(m) = metrics {
                m.connections_refused.inc();
            }
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let io = TokioIo::new(IdleTimeout::new(stream, limits.idle_timeout));
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            app.clone().oneshot(req.map(Body::new))
        });
        let conn = http.serve_connection(io, service);
        let stop = stop.clone();
        let open = metrics.map(|m| m.connections_open.clone());
        tokio::spawn(async move {
            if let Some(open) = &open {
                open.inc();
            }
            let mut conn = std::pin::pin!(conn);
            let result = tokio::select! {
                r = conn.as_mut() => r,
                () = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(error = %Chain(&e), %peer, "connection ended with an error");
            }
            if let Some(open) = &open {
                open.dec();
            }
            drop((permit, address_slot));
        });
    }
    stop.cancel();
    // Every connection holds a permit until it is gone: holding them all means drained.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(DRAIN_LIMIT, permits.acquire_many(all)).await.is_err() {
        tracing::warn!("connections still open after the drain limit; closing them");
    }
    Ok(())
}

/// A service's two listeners, served in the background: the public router, and the internal
/// one that answers `/metrics` (`CP_METRICS_ADDR`).
pub struct Servers {
    public: JoinHandle<io::Result<()>>,
    internal: JoinHandle<io::Result<()>>,
    stop: CancellationToken,
}

impl Servers {
    /// Serves `app` on `public` with `limits`, counting connections in `metrics`, and the
    /// metrics of `registry` on `internal` with [`ServeLimits::internal`].
    pub fn spawn(
        public: TcpListener,
        app: Router,
        internal: TcpListener,
        registry: prometheus::Registry,
        limits: &ServeLimits,
        metrics: HttpMetrics,
    ) -> Self {
        let stop = CancellationToken::new();
        let (public_limits, internal_limits) = (limits.clone(), limits.internal());
        let public_stop = stop.clone().cancelled_owned();
        let public = tokio::spawn(async move { serve(public, app, &public_limits, Some(&metrics), public_stop).await });
        let internal_stop = stop.clone().cancelled_owned();
        let internal = tokio::spawn(async move {
            serve(internal, crate::http::metrics_router(registry), &internal_limits, None, internal_stop).await
        });
        Self { public, internal, stop }
    }

    /// Resolves only if a listener stops by itself, with why: the process should exit then.
    pub async fn failed(&mut self) -> anyhow::Error {
        tokio::select! {
            r = &mut self.public => anyhow::anyhow!("public listener ended: {r:?}"),
            r = &mut self.internal => anyhow::anyhow!("metrics listener ended: {r:?}"),
        }
    }

    /// Stops accepting, lets connections finish (at most [`DRAIN_LIMIT`]), and waits.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = tokio::join!(self.public, self.internal);
    }
}

/// Open connections per client address. The map only holds addresses with a connection open,
/// so it is bounded by the listener's connection cap.
struct PerAddress {
    max: usize,
    exempt: TrustedProxies,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One connection's place in [`PerAddress`], given back when dropped.
struct AddressSlot {
    owner: Arc<PerAddress>,
    key: Option<IpAddr>,
}

impl PerAddress {
    fn new(max: usize, exempt: TrustedProxies) -> Self {
        Self { max, exempt, open: Mutex::new(HashMap::new()) }
    }

    /// A slot for a connection from `ip`, or `None` when that address is at its bound.
    fn take(this: &Arc<Self>, ip: IpAddr) -> Option<AddressSlot> {
        if this.max == 0 || this.exempt.contains(ip) {
            return Some(AddressSlot { owner: Arc::clone(this), key: None });
        }
        let key = crate::client_ip::client_net(ip);
        let mut open = this.open.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(key).or_insert(0);
        if *count >= this.max {
            return None;
        }
        *count += 1;
        Some(AddressSlot { owner: Arc::clone(this), key: Some(key) })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let Some(key) = self.key else { return };
        let mut open = self.owner.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&key) {
            *count -= 1;
            if *count == 0 {
                open.remove(&key);
            }
        }
    }
}

/// Accept errors are per connection (reset before accept) or a lack of resources such as file
/// descriptors; neither should stop the server. A pause lets resources come back.
async fn accept_error(e: io::Error) {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(e.kind(), ConnectionAborted | ConnectionRefused | ConnectionReset) {
        return;
    }
    tracing::error!(error = %Chain(&e), "accepting a connection");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// Binds `addr` and logs `"<what> listening addr=..."`, the line the test harness and
/// operators read the bound port from (port 0 picks a free one).
pub async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    use anyhow::Context as _;
    let listener = TcpListener::bind(addr).await.with_context(|| format!("binding {what} to {addr}"))?;
    tracing::info!(addr = %listener.local_addr()?, "{what} listening");
    Ok(listener)
}

/// A socket that fails when neither direction makes progress for `limit` while the server is
/// waiting on it. Progress resets the clock; the timer is only re-armed when an operation has
/// to wait, so a busy connection pays for no timer per read.
pub struct IdleTimeout<T> {
    inner: T,
    limit: Duration,
    last_progress: Instant,
    timer: Pin<Box<Sleep>>,
}

impl<T> IdleTimeout<T> {
    pub fn new(inner: T, limit: Duration) -> Self {
        let now = Instant::now();
        Self { inner, limit, last_progress: now, timer: Box::pin(tokio::time::sleep_until(now + limit)) }
    }

    fn progressed(&mut self) {
        self.last_progress = Instant::now();
    }

    /// Called when the inner operation is pending: fails once the limit has passed.
    fn check(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let due = self.last_progress + self.limit;
        if self.timer.deadline() != due {
            self.timer.as_mut().reset(due);
        }
        match self.timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(io::Error::new(io::ErrorKind::TimedOut, "connection idle too long")),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for IdleTimeout<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                this.progressed();
                Poll::Ready(r)
            }
            Poll::Pending => this.check(cx).map(Err),
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for IdleTimeout<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Ready(r) => {
                this.progressed();
                Poll::Ready(r)
            }
            Poll::Pending => this.check(cx).map(Err),
        }
    }

    fn poll_write_vectored(self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write_vectored(cx, bufs) {
            Poll::Ready(r) => {
                this.progressed();
                Poll::Ready(r)
            }
            Poll::Pending => this.check(cx).map(Err),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_flush(cx) {
            Poll::Ready(r) => Poll::Ready(r),
            Poll::Pending => this.check(cx).map(Err),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_shutdown(cx) {
            Poll::Ready(r) => Poll::Ready(r),
            Poll::Pending => this.check(cx).map(Err),
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn one_address_holds_at_most_its_share_and_gets_it_back() {
        let per = Arc::new(PerAddress::new(2, TrustedProxies::default()));
        let held: Vec<_> = (0..2).map(|_| PerAddress::take(&per, ip("198.51.100.7")).expect("slot")).collect();
        assert!(PerAddress::take(&per, ip("198.51.100.7")).is_none(), "a third is refused");
        assert!(PerAddress::take(&per, ip("::ffff:198.51.100.7")).is_none(), "the mapped form is the same address");
        assert!(PerAddress::take(&per, ip("198.51.100.8")).is_some(), "another address is not");
        drop(held);
        assert!(PerAddress::take(&per, ip("198.51.100.7")).is_some(), "closing gives the slots back");
        assert!(per.open.lock().expect("lock").is_empty(), "no entry outlives its connections");
    }

    #[test]
    fn by_default_one_address_gets_its_share_and_not_one_more() {
        // The ratio itself is a compile-time assertion next to the constants.
        let share = DEFAULT_MAX_CONNECTIONS_PER_IP;
        let per = Arc::new(PerAddress::new(share, TrustedProxies::default()));
        let held: Vec<_> = (0..share).map(|_| PerAddress::take(&per, ip("198.51.100.7"))).collect();
        assert!(held.iter().all(Option::is_some), "one address gets its whole share");
        assert!(PerAddress::take(&per, ip("198.51.100.7")).is_none(), "and not one more");
    }

    #[test]
    fn ipv6_shares_a_bound_per_64_and_trusted_proxies_and_zero_are_unbounded() {
        let per = Arc::new(PerAddress::new(1, TrustedProxies::parse("10.0.0.0/8").expect("proxies")));
        let _a = PerAddress::take(&per, ip("2001:db8:1:2::1")).expect("slot");
        assert!(PerAddress::take(&per, ip("2001:db8:1:2:ffff::9")).is_none(), "same /64");
        assert!(PerAddress::take(&per, ip("2001:db8:1:3::1")).is_some(), "another /64");
        let proxy: Vec<_> = (0..5).map(|_| PerAddress::take(&per, ip("10.1.2.3"))).collect();
        assert!(proxy.iter().all(Option::is_some), "a trusted proxy is exempt");
        let off = Arc::new(PerAddress::new(0, TrustedProxies::default()));
        let many: Vec<_> = (0..5).map(|_| PerAddress::take(&off, ip("192.0.2.1"))).collect();
        assert!(many.iter().all(Option::is_some), "0 turns the bound off");
    }

    #[tokio::test(start_paused = true)]
    async fn a_reader_that_never_reads_fails_the_writer_after_the_limit() {
        let (server, _client) = tokio::io::duplex(16);
        let mut server = IdleTimeout::new(server, Duration::from_secs(30));
        let started = Instant::now();
        let err = server.write_all(&[0u8; 1024]).await.expect_err("the write cannot finish");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(30));
    }

    #[tokio::test(start_paused = true)]
    async fn progress_resets_the_clock() {
        let (server, mut client) = tokio::io::duplex(64);
        let mut server = IdleTimeout::new(server, Duration::from_secs(30));
        let started = Instant::now();
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 1];
            let mut got = 0;
            loop {
                match server.read(&mut buf).await {
                    Ok(0) => return (got, None),
                    Ok(_) => got += 1,
                    Err(e) => return (got, Some(e.kind())),
                }
            }
        });
        // One byte every 20 s: never 30 s without progress, so the reader keeps going.
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_secs(20)).await;
            client.write_all(b"x").await.expect("write");
        }
        let (got, err) = reader.await.expect("reader");
        assert_eq!((got, err), (3, Some(io::ErrorKind::TimedOut)));
        assert_eq!(started.elapsed(), Duration::from_secs(60 + 30));
    }
}
