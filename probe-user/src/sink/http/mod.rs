//! A small read-only HTTP/1.1 server for the collector's pages (the sessions API and
//! metrics). The client that reads them (`--from`) is `sessions::remote`.
//!
//! The server runs for as long as the collector does, so everything a client can make it
//! hold is bounded: connections (the rest wait in the kernel's backlog), the time to send a
//! request head, the time a connection may make no progress, and the request head's size.
//! Request bodies are never read. On a loopback address, requests naming a host other than
//! an IP address or `localhost` are refused, so a web page cannot reach the API through DNS
//! rebinding. Off loopback, `--web-config` (read by web_config.rs, enforced as security.rs
//! builds it) adds TLS (tls.rs) and basic authentication (auth.rs), as Prometheus
//! exporters do.
use std::{
    io,
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use tokio::net::TcpListener;

mod auth;
mod clients;
mod respond;
mod security;
mod server;
mod thread;
mod tls;
mod unix;
mod watched;
pub mod web_config;

pub use security::{Security, WebConfig};
pub use server::{serve, serve_with};
pub use thread::{ServerThread, spawn_servers};
pub use unix::{DEFAULT_SOCKET, UnixApi, bind_unix, serve_unix};
pub use web_config::WebConfigError;

/// One response body and its media type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub content_type: &'static str,
    pub body: Vec<u8>,
    /// Not this viewer's to read: answered 403 with the body as the reason.
    pub forbidden: bool,
}

impl Page {
    pub fn new(content_type: &'static str, body: Vec<u8>) -> Self {
        Self {
            content_type,
            body,
            forbidden: false,
        }
    }

    /// A refusal, with the reason and the way around it.
    pub fn forbidden(reason: &str) -> Self {
        Self {
            content_type: "text/plain; charset=utf-8",
            body: format!("forbidden: {reason}\n").into_bytes(),
            forbidden: true,
        }
    }
}

/// Who asks, as far as the server can tell: it decides how much of the sessions a client
/// sees (docs/service.md, "Who can see what").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Viewer {
    /// Root on this machine, or a client the web config authenticated: everything.
    All,
    /// A local user, known by the kernel (a Unix socket's peer, a loopback connection's
    /// owner in the socket table): that user's own processes only.
    Own(u32),
    /// Nobody the server can name (off loopback without authentication, or a loopback
    /// client the OS does not name): no sessions.
    Unknown,
}

impl Viewer {
    /// The viewer a local user's uid makes.
    pub fn local(uid: u32) -> Self {
        if uid == 0 { Self::All } else { Self::Own(uid) }
    }
}

/// What the server serves; implemented by the collector. Called for GET and HEAD only,
/// with the path alone (no query string) and who asks.
pub trait Pages: Send + Sync + 'static {
    fn get(&self, path: &str, viewer: Viewer) -> Option<Page>;
}

/// Errors from binding the listener. Each displays as one line naming the address and,
/// where there is one, the fix.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("--listen {0:?}: not an address like 127.0.0.1:9464 or [::1]:9464")]
    BadAddress(String),
    #[error("cannot listen on {addr}: {reason}")]
    Bind { addr: SocketAddr, reason: String },
    #[error("--api-socket {}: {reason}", path.display())]
    Socket {
        path: std::path::PathBuf,
        reason: String,
    },
}

/// Bounds on what one client can make the server hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// Connections served at once. At the limit the server stops accepting; new connections
    /// wait in the kernel's backlog until one ends.
    pub max_connections: usize,
    /// Connections one client holds at once (one local user, or one remote address);
    /// more are closed as they come, so no one client can take every slot.
    pub max_per_client: usize,
    /// Time a client has to send a complete request head, counted from the connection's
    /// start and, on a kept-alive connection, from the end of the previous response.
    pub header_read_timeout: Duration,
    /// Time a connection may go without a byte read or written before it is closed; this is
    /// what ends a client that stops reading a response.
    pub idle_timeout: Duration,
    /// Time a connection may last at all, however busy: a client that trickles requests
    /// or reads a response a byte at a time gives its slot back then (clients reconnect).
    pub max_lifetime: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            max_connections: 64,
            max_per_client: 8,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            max_lifetime: Duration::from_secs(60),
        }
    }
}

impl ServerLimits {
    /// The limits as a server applies them: at least one connection each, and times no
    /// longer than a day (deadlines are an Instant plus these, which panics on overflow; a
    /// day is forever here).
    fn bounded(self) -> Self {
        Self {
            max_connections: self.max_connections.max(1),
            max_per_client: self.max_per_client.max(1),
            header_read_timeout: self.header_read_timeout.min(LONGEST_TIMEOUT),
            idle_timeout: self.idle_timeout.min(LONGEST_TIMEOUT),
            max_lifetime: self.max_lifetime.min(LONGEST_TIMEOUT),
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

/// What a listener reachable from other machines gives away, as a warning with the fix;
/// `None` on loopback and when TLS and authentication both guard it.
pub fn exposure_warning(
    listener: &Listener,
    web: &WebConfig,
    metrics_only: bool,
) -> Option<String> {
    if listener.is_loopback() {
        return None;
    }
    let security = web.current();
    let authenticated = security.has_users() || security.verifies_clients();
    let what = if metrics_only {
        "the metrics (process names and memory)"
    } else {
        "/api/sessions, every command line on this machine"
    };
    let addr = listener.local_addr();
    match (security.is_tls(), authenticated) {
        (true, true) => None,
        (false, false) => Some(format!(
            "listening on {addr} over plain HTTP with no password: anyone who reaches it reads \
             {what}; give --web-config with tls_server_config and basic_auth_users \
             (docs/fleet.md)"
        )),
        (true, false) => Some(format!(
            "listening on {addr} with TLS but no basic_auth_users or client certificates: \
             anyone who reaches it reads {what}; add basic_auth_users to --web-config"
        )),
        (false, true) => Some(format!(
            "listening on {addr} with passwords over plain HTTP: they and {what} cross the \
             network readable; add tls_server_config to --web-config"
        )),
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

#[cfg(test)]
mod tests;
