//! The accept loop and one connection's life: TLS when the web config asks for it, then
//! HTTP/1.1, under the limits of `ServerLimits`.
use std::{
    convert::Infallible,
    io,
    pin::pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use hyper::{Request, body::Incoming, service::service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpStream,
    task::JoinSet,
    time::Instant,
};

use super::{
    ACCEPT_BACKOFF_MAX, ACCEPT_BACKOFF_MIN, ACCEPT_LOG_INTERVAL, Listener, MAX_BUF_SIZE, Pages,
    ServerLimits, Viewer,
    clients::{Client, Clients},
    respond::Access,
    security::{Security, WebConfig},
    watched::Watched,
};

/// Serves `pages` with the default limits until the future is dropped.
pub async fn serve(listener: Listener, pages: Arc<dyn Pages>, web: WebConfig) {
    serve_with(listener, pages, ServerLimits::default(), web).await
}

/// Serves `pages` until the future is dropped, which also closes every open connection.
/// Each connection is served under the web config in force when it was accepted.
pub async fn serve_with(
    listener: Listener,
    pages: Arc<dyn Pages>,
    limits: ServerLimits,
    web: WebConfig,
) {
    let limits = limits.bounded();
    let max_connections = limits.max_connections;
    let loopback = listener.is_loopback();
    let clients = Clients::default();
    // Owning the connection tasks here is what lets dropping `serve` end them.
    let mut connections = JoinSet::new();
    let mut backoff = ACCEPT_BACKOFF_MIN;
    let mut last_logged: Option<Instant> = None;
    loop {
        // A connection task that panicked has already reported it through the panic hook.
        while connections.try_join_next().is_some() {}
        if connections.len() >= max_connections {
            connections.join_next().await;
            continue;
        }
        match listener.inner.accept().await {
            Ok((stream, peer)) => {
                backoff = ACCEPT_BACKOFF_MIN;
                // One reading for both: a reload in between must not pair one file's users
                // with another's TLS.
                let security = web.current();
                let viewer = if loopback {
                    // The client's socket is listed by now: the connection is established.
                    crate::host::tcp_peer_uid(listener.local, peer)
                        .map_or(Viewer::Unknown, Viewer::local)
                } else {
                    Viewer::Unknown
                };
                let client = match viewer {
                    Viewer::All => Client::Uid(0),
                    Viewer::Own(uid) => Client::Uid(uid),
                    Viewer::Unknown => Client::Address(peer.ip().to_canonical()),
                };
                // Over its share: closed at once, which it sees as a reset. Root is this
                // machine's owner: only the overall bound holds it.
                let slot = match viewer {
                    Viewer::All => None,
                    _ => match clients.take(client, limits.max_per_client) {
                        Some(slot) => Some(slot),
                        None => continue,
                    },
                };
                let access =
                    Access::new(Arc::clone(&pages), loopback, &security, web.clone(), viewer);
                connections.spawn(async move {
                    connection(stream, access, limits, security).await;
                    drop(slot);
                });
            }
            // The client gave up between the handshake and accept; nothing to wait for.
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::ConnectionAborted
                        | io::ErrorKind::ConnectionReset
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(err) => {
                if last_logged.is_none_or(|at| at.elapsed() >= ACCEPT_LOG_INTERVAL) {
                    eprintln!(
                        "hupwatch: warning: http: cannot accept a connection on {}: {err}; \
                         retrying",
                        listener.local
                    );
                    last_logged = Some(Instant::now());
                }
                // Out of descriptors or memory, accept fails at once for as long as the
                // connection waits in the backlog; retrying without a pause would spin.
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
            }
        }
    }
}

async fn connection(
    stream: TcpStream,
    access: Access,
    limits: ServerLimits,
    security: Arc<Security>,
) {
    // Responses are written whole; Nagle would only delay the last segment.
    let _ = stream.set_nodelay(true);
    let start = Instant::now();
    let activity = Arc::new(AtomicU64::new(0));
    let Some(acceptor) = &security.tls else {
        let watched = Watched::new(stream, start, Arc::clone(&activity));
        return http(watched, access, limits, start, &activity).await;
    };
    #[cfg(target_os = "linux")]
    {
        if !starts_a_tls_handshake(&stream, limits).await {
            return;
        }
        let watched = Watched::new(stream, start, Arc::clone(&activity));
        // The handshake comes before the request head and gets the same time. A client
        // showing a certificate no configured CA signed fails it and the connection closes.
        let handshake = tokio::time::timeout(limits.header_read_timeout, acceptor.accept(watched));
        if let Ok(Ok(tls)) = handshake.await {
            http(tls, access, limits, start, &activity).await;
        }
    }
    #[cfg(not(target_os = "linux"))]
    match *acceptor {}
}

/// A TLS record starts with its content type, 22 for a handshake. Anything else on a TLS
/// port is most likely a plain `http://` request: it gets a 400 that says so, as Go's
/// exporters answer, rather than a TLS alert a person cannot read.
#[cfg(target_os = "linux")]
async fn starts_a_tls_handshake(stream: &TcpStream, limits: ServerLimits) -> bool {
    const HANDSHAKE: u8 = 22;
    let mut first = [0u8; 1];
    match tokio::time::timeout(limits.header_read_timeout, stream.peek(&mut first)).await {
        Ok(Ok(1)) if first[0] != HANDSHAKE => {
            // The request is read first: closing a socket with unread data resets it, and
            // the reset can overtake the answer.
            let mut request = [0u8; 4096];
            let _ = stream.try_read(&mut request);
            let _ = stream.try_write(PLAIN_HTTP_ON_TLS);
            false
        }
        Ok(Ok(1)) => true,
        _ => false,
    }
}

#[cfg(target_os = "linux")]
const PLAIN_HTTP_ON_TLS: &[u8] = b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\nClient sent an HTTP request to an HTTPS server: use https://\n";

/// HTTP/1.1 over `io` until the client is done, fails or goes idle.
pub(super) async fn http<I>(
    io: I,
    access: Access,
    limits: ServerLimits,
    start: Instant,
    activity: &AtomicU64,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |request: Request<Incoming>| {
        let access = access.clone();
        async move { Ok::<_, Infallible>(access.respond(request).await) }
    });
    let mut conn = pin!(
        hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .max_buf_size(MAX_BUF_SIZE)
            .serve_connection(TokioIo::new(io), service)
    );
    // hyper has no timeout for a stalled write, nor for a body it is not reading; this one
    // counts any progress in either direction.
    let end_of_life = start + limits.max_lifetime;
    let mut deadline = (start + limits.idle_timeout).min(end_of_life);
    loop {
        tokio::select! {
            // An error here is the client's doing (reset, malformed request, timeout) and
            // hyper has already answered what it could.
            _ = conn.as_mut() => return,
            () = tokio::time::sleep_until(deadline) => {
                let last = start + Duration::from_millis(activity.load(Ordering::Relaxed));
                let next = last + limits.idle_timeout;
                if next <= Instant::now() || Instant::now() >= end_of_life {
                    return;
                }
                deadline = next.min(end_of_life);
            }
        }
    }
}
