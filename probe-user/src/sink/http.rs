//! A small read-only HTTP/1.1 server for the collector's pages (the sessions API and
//! metrics). The client that reads them (`--from`) is an input: `source::remote`.
//!
//! The server runs for as long as the collector does, so everything a client can make it
//! hold is bounded: connections (the rest wait in the kernel's backlog), the time to send a
//! request head, the time a connection may make no progress, and the request head's size.
//! Request bodies are never read. On a loopback address, requests naming a host other than
//! an IP address or `localhost` are refused, so a web page cannot reach the API through DNS
//! rebinding.
use std::{
    convert::Infallible,
    future::ready,
    io,
    net::{IpAddr, SocketAddr},
    pin::{Pin, pin},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{
    Method, Request, Response, StatusCode,
    body::Incoming,
    header::{self, HeaderValue},
    service::service_fn,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    task::JoinSet,
    time::Instant,
};

/// One response body and its media type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

/// What the server serves; implemented by the collector. Called for GET and HEAD only,
/// with the path alone (no query string).
pub trait Pages: Send + Sync + 'static {
    fn get(&self, path: &str) -> Option<Page>;
}

/// Errors from binding and fetching. Each displays as one line naming the address or URL
/// and, where there is one, the fix.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("--listen {0:?}: not an address like 127.0.0.1:9464 or [::1]:9464")]
    BadAddress(String),
    #[error("cannot listen on {addr}: {reason}")]
    Bind { addr: SocketAddr, reason: String },
    #[error("{url:?}: {reason}")]
    BadUrl { url: String, reason: &'static str },
    #[error("cannot fetch {url}: {reason}")]
    Fetch { url: String, reason: String },
    #[error(
        "cannot fetch {url}: the server answered {status}; give the --listen address of `hupwatch run`"
    )]
    Status { url: String, status: StatusCode },
}

/// Bounds on what one client can make the server hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// Connections served at once. At the limit the server stops accepting; new connections
    /// wait in the kernel's backlog until one ends.
    pub max_connections: usize,
    /// Time a client has to send a complete request head, counted from the connection's
    /// start and, on a kept-alive connection, from the end of the previous response.
    pub header_read_timeout: Duration,
    /// Time a connection may go without a byte read or written before it is closed; this is
    /// what ends a client that stops reading a response.
    pub idle_timeout: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            max_connections: 64,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
        }
    }
}

/// hyper's default (~400 KiB) is far more than any GET for a handful of pages needs, and it
/// is per connection.
const MAX_BUF_SIZE: usize = 16 * 1024;
const LONGEST_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(50);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// A persistent accept failure (EMFILE) is worth one line now and then, not one per retry.
const ACCEPT_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// A bound socket, not yet serving.
#[derive(Debug)]
pub struct Listener {
    inner: TcpListener,
    local: SocketAddr,
}

impl Listener {
    /// The bound address, with the port the kernel chose if `:0` was asked for.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Whether only this machine can connect; the caller warns when it is not.
    pub fn is_loopback(&self) -> bool {
        is_loopback(self.local.ip())
    }
}

fn is_loopback(ip: IpAddr) -> bool {
    // An IPv4-mapped ::ffff:127.0.0.1 is loopback too, which Ipv6Addr::is_loopback denies.
    ip.to_canonical().is_loopback()
}

/// Binds `addr`, an IP address and port ("127.0.0.1:9464", "[::1]:9464", "0.0.0.0:9464").
pub async fn bind(addr: &str) -> Result<Listener, HttpError> {
    let parsed: SocketAddr = addr
        .trim()
        .parse()
        .map_err(|_| HttpError::BadAddress(addr.to_string()))?;
    let inner = TcpListener::bind(parsed)
        .await
        .map_err(|err| HttpError::Bind {
            addr: parsed,
            reason: bind_reason(&err, parsed),
        })?;
    let local = inner.local_addr().map_err(|err| HttpError::Bind {
        addr: parsed,
        reason: err.to_string(),
    })?;
    Ok(Listener { inner, local })
}

fn bind_reason(err: &io::Error, addr: SocketAddr) -> String {
    match err.kind() {
        io::ErrorKind::AddrInUse => {
            "address already in use; stop the other process or choose another with --listen ADDR"
                .to_string()
        }
        io::ErrorKind::AddrNotAvailable => {
            "this machine has no such address; choose one it has, like 127.0.0.1:9464, with \
             --listen ADDR"
                .to_string()
        }
        io::ErrorKind::PermissionDenied if addr.port() < 1024 => {
            "permission denied (ports below 1024 need CAP_NET_BIND_SERVICE); choose a port \
             above 1023 with --listen ADDR"
                .to_string()
        }
        _ if err.raw_os_error() == Some(libc::EAFNOSUPPORT) => {
            "IPv6 is not available here; use an IPv4 address like 127.0.0.1:9464 with \
             --listen ADDR"
                .to_string()
        }
        _ => format!("{err}; choose another address with --listen ADDR"),
    }
}

/// Serves `pages` with the default limits until the future is dropped.
pub async fn serve(listener: Listener, pages: Arc<dyn Pages>) {
    serve_with(listener, pages, ServerLimits::default()).await
}

/// Serves `pages` until the future is dropped, which also closes every open connection.
pub async fn serve_with(listener: Listener, pages: Arc<dyn Pages>, limits: ServerLimits) {
    let max_connections = limits.max_connections.max(1);
    // Deadlines are an Instant plus these, which panics on overflow; a day is forever here.
    let limits = ServerLimits {
        header_read_timeout: limits.header_read_timeout.min(LONGEST_TIMEOUT),
        idle_timeout: limits.idle_timeout.min(LONGEST_TIMEOUT),
        ..limits
    };
    let loopback = listener.is_loopback();
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
            Ok((stream, _peer)) => {
                backoff = ACCEPT_BACKOFF_MIN;
                connections.spawn(connection(stream, Arc::clone(&pages), limits, loopback));
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
    pages: Arc<dyn Pages>,
    limits: ServerLimits,
    loopback: bool,
) {
    // Responses are written whole; Nagle would only delay the last segment.
    let _ = stream.set_nodelay(true);
    let start = Instant::now();
    let activity = Arc::new(AtomicU64::new(0));
    let io = TokioIo::new(Watched {
        inner: stream,
        start,
        last_activity: Arc::clone(&activity),
    });
    let service = service_fn(move |request: Request<Incoming>| {
        ready(Ok::<_, Infallible>(respond(
            pages.as_ref(),
            &request,
            loopback,
        )))
    });
    let mut conn = pin!(
        hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .max_buf_size(MAX_BUF_SIZE)
            .serve_connection(io, service)
    );
    // hyper has no timeout for a stalled write, nor for a body it is not reading; this one
    // counts any progress in either direction.
    let mut deadline = start + limits.idle_timeout;
    loop {
        tokio::select! {
            // An error here is the client's doing (reset, malformed request, timeout) and
            // hyper has already answered what it could.
            _ = conn.as_mut() => return,
            () = tokio::time::sleep_until(deadline) => {
                let last = start + Duration::from_millis(activity.load(Ordering::Relaxed));
                let next = last + limits.idle_timeout;
                if next <= Instant::now() {
                    return;
                }
                deadline = next;
            }
        }
    }
}

fn respond(
    pages: &dyn Pages,
    request: &Request<Incoming>,
    loopback: bool,
) -> Response<Full<Bytes>> {
    if loopback && !host_allowed_on_loopback(request) {
        return text(
            StatusCode::FORBIDDEN,
            "forbidden: on a loopback address, use http://127.0.0.1, http://[::1] or \
             http://localhost\n",
        );
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    // For HEAD the whole page is still built: hyper takes Content-Length from it and drops
    // the body, so HEAD and GET agree.
    match pages.get(request.uri().path()) {
        Some(page) => response(StatusCode::OK, page.content_type, Bytes::from(page.body)),
        None => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    response(
        status,
        "text/plain; charset=utf-8",
        Bytes::from_static(body.as_bytes()),
    )
}

fn response(status: StatusCode, content_type: &str, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    // A content type hyper would refuse must not take the connection task down with it.
    let content_type = HeaderValue::from_str(content_type).unwrap_or_else(|_| {
        debug_assert!(false, "invalid content type {content_type:?}");
        HeaderValue::from_static("application/octet-stream")
    });
    headers.insert(header::CONTENT_TYPE, content_type);
    // Sessions change from one moment to the next, and they name users' commands.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// A DNS-rebinding page reaches a loopback server under the attacker's host name; an IP
/// address or `localhost` cannot be that name.
fn host_allowed_on_loopback(request: &Request<Incoming>) -> bool {
    let host = match request.uri().host() {
        Some(host) => host,
        None => match request.headers().get(header::HOST) {
            // HTTP/1.0 clients may send no Host; browsers always do.
            None => return true,
            Some(value) => match value.to_str() {
                Ok(value) => value,
                Err(_) => return false,
            },
        },
    };
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        host.rsplit_once(':').map_or(host, |(name, _port)| name)
    };
    if name.parse::<IpAddr>().is_ok() {
        return true;
    }
    // Names under .localhost never resolve off this machine (RFC 6761).
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost")
}

/// A connection's stream, noting when it last moved a byte for the idle timeout.
struct Watched {
    inner: TcpStream,
    start: Instant,
    /// Milliseconds from `start`.
    last_activity: Arc<AtomicU64>,
}

impl Watched {
    fn touch(&self) {
        let millis = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_activity.store(millis, Ordering::Relaxed);
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(poll, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.touch();
        }
        poll
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        poll
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        poll
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use crate::source::remote::{get, get_with};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// Anything a correct server does in these tests happens within a second; this only
    /// stops a broken one from hanging the run.
    const GENEROUS: Duration = Duration::from_secs(30);
    /// Keeps a limit other than the one under test from closing the connection first.
    /// Also shows that a limit too long for Instant arithmetic is taken as "very long".
    const NEVER: Duration = Duration::MAX;

    struct TestPages;

    impl Pages for TestPages {
        fn get(&self, path: &str) -> Option<Page> {
            match path {
                "/api/sessions" => Some(Page {
                    content_type: "application/json",
                    body: br#"{"sessions":[]}"#.to_vec(),
                }),
                "/metrics" => Some(Page {
                    content_type: "text/plain; version=0.0.4",
                    body: b"hupwatch_up 1\n".to_vec(),
                }),
                // Larger than loopback's socket buffers, so a client that does not read
                // leaves the server stuck writing.
                "/big" => Some(Page {
                    content_type: "application/octet-stream",
                    body: vec![b'x'; 64 << 20],
                }),
                _ => None,
            }
        }
    }

    async fn start(limits: ServerLimits) -> (SocketAddr, tokio::task::JoinHandle<()>) {
        let listener = bind("127.0.0.1:0").await.expect("binds");
        let addr = listener.local_addr();
        let server = tokio::spawn(serve_with(listener, Arc::new(TestPages), limits));
        (addr, server)
    }

    async fn start_default() -> SocketAddr {
        start(ServerLimits::default()).await.0
    }

    #[derive(Debug)]
    struct Answer {
        status: u16,
        headers: HashMap<String, String>,
        body: Vec<u8>,
    }

    fn parse_answer(raw: &[u8]) -> Answer {
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("no end of head in {:?}", String::from_utf8_lossy(raw)));
        let head = std::str::from_utf8(&raw[..split]).expect("ASCII head");
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap().split(' ').nth(1).unwrap();
        let headers = lines
            .map(|line| {
                let (name, value) = line.split_once(':').expect("header line");
                (name.to_ascii_lowercase(), value.trim().to_string())
            })
            .collect();
        Answer {
            status: status.parse().unwrap(),
            headers,
            body: raw[split + 4..].to_vec(),
        }
    }

    /// Sends `request` as written (it should ask for `Connection: close`) and reads the
    /// answer to the end.
    async fn raw(addr: SocketAddr, request: &str) -> Answer {
        let exchange = async {
            let mut stream = TcpStream::connect(addr).await.expect("connects");
            stream.write_all(request.as_bytes()).await.expect("sends");
            let mut answer = Vec::new();
            // A server refusing a request it did not read to the end resets the connection
            // after answering; the answer is still there to read.
            let _ = stream.read_to_end(&mut answer).await;
            answer
        };
        let answer = tokio::time::timeout(GENEROUS, exchange)
            .await
            .expect("answered");
        parse_answer(&answer)
    }

    fn request(method: &str, path: &str) -> String {
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    }

    /// Waits for the server to close `stream`, returning how many bytes came first.
    async fn closed(mut stream: TcpStream) -> usize {
        let drain = async {
            let mut total = 0;
            let mut buf = vec![0; 1 << 16];
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return total,
                    Ok(n) => total += n,
                }
            }
        };
        tokio::time::timeout(GENEROUS, drain)
            .await
            .expect("the server closes the connection")
    }

    #[tokio::test]
    async fn get_serves_a_known_page_with_its_content_type() {
        let addr = start_default().await;
        let answer = raw(addr, &request("GET", "/api/sessions")).await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.headers["content-type"], "application/json");
        assert_eq!(answer.headers["cache-control"], "no-store");
        assert_eq!(answer.headers["content-length"], "15");
        assert_eq!(answer.body, br#"{"sessions":[]}"#);
    }

    #[tokio::test]
    async fn head_has_the_same_headers_and_no_body() {
        let addr = start_default().await;
        let answer = raw(addr, &request("HEAD", "/metrics")).await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.headers["content-type"], "text/plain; version=0.0.4");
        assert_eq!(answer.headers["content-length"], "14");
        assert_eq!(answer.headers["cache-control"], "no-store");
        assert!(answer.body.is_empty(), "{:?}", answer.body);
    }

    #[tokio::test]
    async fn other_methods_get_405_naming_the_allowed_ones() {
        let addr = start_default().await;
        for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
            let answer = raw(addr, &request(method, "/api/sessions")).await;
            assert_eq!(answer.status, 405, "{method}");
            assert_eq!(answer.headers["allow"], "GET, HEAD", "{method}");
            assert_eq!(answer.headers["cache-control"], "no-store", "{method}");
        }
        // A body is never read, however much the client says it sends.
        let answer = raw(
            addr,
            "POST /api/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000000000\r\n\
             \r\nxyz",
        )
        .await;
        assert_eq!(answer.status, 405);
    }

    #[tokio::test]
    async fn an_unknown_path_is_404() {
        let addr = start_default().await;
        let answer = raw(addr, &request("GET", "/api/nothing")).await;
        assert_eq!(answer.status, 404);
        assert_eq!(answer.body, b"not found\n");
        assert_eq!(answer.headers["cache-control"], "no-store");
    }

    #[tokio::test]
    async fn an_oversized_request_head_is_refused() {
        let addr = start_default().await;
        let filler = "a".repeat(MAX_BUF_SIZE);
        let request =
            format!("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Filler: {filler}\r\n\r\n");
        let answer = raw(addr, &request).await;
        assert_eq!(answer.status, 431);
    }

    #[tokio::test]
    async fn the_query_string_does_not_change_the_route() {
        let addr = start_default().await;
        let answer = raw(addr, &request("GET", "/api/sessions?x=1&y")).await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.body, br#"{"sessions":[]}"#);
    }

    #[tokio::test]
    async fn on_loopback_only_ip_and_localhost_hosts_are_served() {
        let addr = start_default().await;
        let port = addr.port();
        for host in [
            format!("127.0.0.1:{port}"),
            "localhost".to_string(),
            format!("LOCALHOST:{port}"),
            format!("app.localhost:{port}"),
            format!("[::1]:{port}"),
        ] {
            let request =
                format!("GET /metrics HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
            assert_eq!(raw(addr, &request).await.status, 200, "{host}");
        }
        for host in [
            format!("evil.example:{port}"),
            "localhost.evil.example".into(),
        ] {
            let request =
                format!("GET /metrics HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
            assert_eq!(raw(addr, &request).await.status, 403, "{host}");
        }
    }

    #[tokio::test]
    async fn the_client_reads_a_page() {
        let addr = start_default().await;
        let explicit = get(&format!("http://{addr}/metrics"), "/api/sessions")
            .await
            .expect("fetched");
        assert_eq!(explicit, b"hupwatch_up 1\n");
        for bare in [
            format!("{addr}"),
            format!("http://{addr}"),
            format!("http://{addr}/"),
        ] {
            let body = get(&bare, "/api/sessions").await.expect("fetched");
            assert_eq!(body, br#"{"sessions":[]}"#, "{bare}");
        }
    }

    #[tokio::test]
    async fn the_client_names_the_url_and_status_of_a_failed_answer() {
        let addr = start_default().await;
        let err = get(&format!("http://{addr}/nope"), "/api/sessions")
            .await
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            format!(
                "cannot fetch http://{addr}/nope: the server answered 404 Not Found; give the --listen address of `hupwatch run`"
            )
        );
    }

    #[tokio::test]
    async fn the_client_names_the_url_of_a_closed_port() {
        let listener = bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr();
        drop(listener);
        let err = get(&addr.to_string(), "/api/sessions")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(&format!(
                "cannot fetch http://{addr}/api/sessions: connection refused"
            )),
            "{err}"
        );
        assert_eq!(err.lines().count(), 1, "{err}");
    }

    #[tokio::test]
    async fn the_client_gives_up_on_a_server_that_never_answers() {
        // Bound but never accepting: the kernel completes the handshake and takes the
        // request, and nothing answers.
        let listener = bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr();
        let err = get_with(
            &format!("http://{addr}/metrics"),
            "/",
            Duration::from_millis(200),
        )
        .await
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            format!(
                "cannot fetch http://{addr}/metrics: no answer within 200ms; check that it is the --listen address of a running `hupwatch run`"
            )
        );
    }

    #[tokio::test]
    async fn the_client_refuses_what_is_not_an_http_url() {
        for (url, needle) in [
            ("https://127.0.0.1:9464", "only http:// is supported"),
            ("http://", "not a URL like http://127.0.0.1:9464"),
            ("http://a b:1", "not a URL like http://127.0.0.1:9464"),
            ("http://me:pw@127.0.0.1:9464", "passwords in URLs"),
        ] {
            let err = get(url, "/api/sessions").await.unwrap_err().to_string();
            assert!(err.starts_with(&format!("{url:?}: ")), "{err}");
            assert!(err.contains(needle), "{err}");
        }
    }

    #[tokio::test]
    async fn an_address_in_use_is_named_with_the_fix() {
        let first = bind("127.0.0.1:0").await.unwrap();
        let addr = first.local_addr().to_string();
        let err = bind(&addr).await.unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "cannot listen on {addr}: address already in use; stop the other process or \
                 choose another with --listen ADDR"
            )
        );
    }

    #[tokio::test]
    async fn a_malformed_address_is_named_with_an_example() {
        for addr in [
            "foo",
            "127.0.0.1",
            "localhost:9464",
            "9464",
            "1.2.3.4:99999",
        ] {
            let err = bind(addr).await.unwrap_err().to_string();
            assert_eq!(
                err,
                format!("--listen {addr:?}: not an address like 127.0.0.1:9464 or [::1]:9464")
            );
        }
    }

    #[tokio::test]
    async fn loopback_is_told_apart_from_every_interface() {
        assert!(bind("127.0.0.1:0").await.unwrap().is_loopback());
        assert!(!bind("0.0.0.0:0").await.unwrap().is_loopback());
        // Whether IPv6 can be bound depends on the machine; the decision does not.
        for (ip, loopback) in [
            ("::1", true),
            ("::ffff:127.0.0.1", true),
            ("127.1.2.3", true),
            ("::", false),
            ("0.0.0.0", false),
            ("192.168.1.1", false),
        ] {
            assert_eq!(is_loopback(ip.parse().unwrap()), loopback, "{ip}");
        }
    }

    #[tokio::test]
    async fn a_silent_client_is_closed_after_the_header_timeout() {
        let limits = ServerLimits {
            header_read_timeout: Duration::from_millis(300),
            idle_timeout: NEVER,
            ..ServerLimits::default()
        };
        let (addr, _server) = start(limits).await;
        let silent = TcpStream::connect(addr).await.unwrap();
        closed(silent).await;
        // A slow trickle is no better than silence.
        let mut trickle = TcpStream::connect(addr).await.unwrap();
        trickle
            .write_all(b"GET /metrics HTTP/1.1\r\n")
            .await
            .unwrap();
        closed(trickle).await;
        // The server still answers.
        assert_eq!(raw(addr, &request("GET", "/metrics")).await.status, 200);
    }

    #[tokio::test]
    async fn a_client_that_stops_reading_is_closed_after_the_idle_timeout() {
        let limits = ServerLimits {
            header_read_timeout: NEVER,
            idle_timeout: Duration::from_millis(250),
            ..ServerLimits::default()
        };
        let (addr, _server) = start(limits).await;
        let mut stalled = TcpStream::connect(addr).await.unwrap();
        stalled
            .write_all(request("GET", "/big").as_bytes())
            .await
            .unwrap();
        // Not reading lets the socket buffers fill and the server's writes stall.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let received = closed(stalled).await;
        assert!(received < 64 << 20, "received the whole body");
    }

    #[tokio::test]
    async fn beyond_the_connection_cap_nothing_is_accepted_until_one_ends() {
        let header_read_timeout = Duration::from_secs(5);
        let limits = ServerLimits {
            max_connections: 2,
            header_read_timeout,
            idle_timeout: NEVER,
        };
        let (addr, _server) = start(limits).await;
        // Two kept-alive connections, proven accepted by their answers, fill the cap until
        // the header timeout for their next request ends them.
        let keep_alive = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
        let mut held = Vec::new();
        for _ in 0..2 {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            stream.write_all(keep_alive.as_bytes()).await.unwrap();
            let mut buf = vec![0; 4096];
            let n = tokio::time::timeout(GENEROUS, stream.read(&mut buf))
                .await
                .expect("answered")
                .unwrap();
            assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
            held.push(stream);
        }
        let mut third = TcpStream::connect(addr).await.unwrap();
        third
            .write_all(request("GET", "/metrics").as_bytes())
            .await
            .unwrap();
        let mut answer = Vec::new();
        // Far inside the 5 s the held connections have left.
        let early =
            tokio::time::timeout(Duration::from_millis(500), third.read_to_end(&mut answer)).await;
        assert!(early.is_err(), "answered beyond the cap: {answer:?}");
        tokio::time::timeout(GENEROUS, third.read_to_end(&mut answer))
            .await
            .expect("answered once a held connection ended")
            .unwrap();
        assert_eq!(parse_answer(&answer).status, 200);
        for stream in held {
            closed(stream).await;
        }
    }

    #[tokio::test]
    async fn dropping_the_server_closes_its_connections() {
        let limits = ServerLimits {
            header_read_timeout: NEVER,
            idle_timeout: NEVER,
            ..ServerLimits::default()
        };
        let (addr, server) = start(limits).await;
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .await
            .unwrap();
        let mut buf = vec![0; 4096];
        let n = tokio::time::timeout(GENEROUS, stream.read(&mut buf))
            .await
            .expect("answered")
            .unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        server.abort();
        closed(stream).await;
        assert!(TcpStream::connect(addr).await.is_err(), "still listening");
    }
}
