//! The sessions of a running `hupwatch run`, read over HTTP (`sessions --from`, `reap
//! --from`): a plain HTTP/1.1 GET with a bounded answer and time, over TCP or the daemon's
//! Unix socket (`unix:/run/hupwatch/api.sock`). A socket's server must be root or this
//! user: the kernel names it, so no other user can stand in for root's hupwatch there.
use std::{io, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, LengthLimitError, Limited};
use hyper::{Request, StatusCode, Uri, header};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpStream, UnixStream};

/// Errors from fetching a running hupwatch's page. Each displays as one line naming the URL
/// and, where there is one, the fix.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{url:?}: {reason}")]
    BadUrl { url: String, reason: &'static str },
    #[error("cannot fetch {url}: {reason}")]
    Fetch { url: String, reason: String },
    #[error(
        "cannot fetch {url}: the server answered {status}; give the --listen address of `hupwatch run`"
    )]
    Status { url: String, status: StatusCode },
    #[error(
        "{url}: the socket is served by uid {uid}, not by root or you; only a hupwatch run by root (or by yourself) is believed"
    )]
    Untrusted { url: String, uid: u32 },
}

/// The responses `get` reads are JSON documents; this only stops a wrong URL from filling
/// memory.
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

/// GETs an http:// URL and returns the body of a 200 answer, within 5 s. A bare
/// "host:port", or a URL whose path is empty or "/", gets `default_path`.
pub async fn get(url: &str, default_path: &str) -> Result<Vec<u8>, FetchError> {
    get_with(url, default_path, CLIENT_TIMEOUT).await
}

/// `get` with a chosen time limit for the whole exchange.
pub async fn get_with(
    url: &str,
    default_path: &str,
    timeout: Duration,
) -> Result<Vec<u8>, FetchError> {
    let target = Target::parse(url, default_path)?;
    match tokio::time::timeout(timeout, fetch(&target)).await {
        Ok(result) => result,
        Err(_elapsed) => Err(target.error(format!(
            "no answer within {}; check that it is the --listen address of a running `hupwatch run`",
            humantime::format_duration(timeout)
        ))),
    }
}

/// Where a `get` goes, parsed once.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    /// The URL as fetched, for messages.
    url: String,
    endpoint: Endpoint,
    /// For the Host header: host and port as the user wrote them.
    authority: String,
    path: String,
}

#[derive(Debug, PartialEq, Eq)]
enum Endpoint {
    /// The host without IPv6 brackets, and the port.
    Tcp {
        host: String,
        port: u16,
    },
    Unix(std::path::PathBuf),
}

const NOT_A_URL: &str = "not a URL like http://127.0.0.1:9464 or unix:/run/hupwatch/api.sock";

impl Target {
    fn parse(url: &str, default_path: &str) -> Result<Self, FetchError> {
        let bad = |reason| FetchError::BadUrl {
            url: url.to_string(),
            reason,
        };
        let trimmed = url.trim();
        let default_path = if default_path.starts_with('/') {
            default_path.to_string()
        } else {
            format!("/{default_path}")
        };
        if let Some(socket) = trimmed.strip_prefix("unix:") {
            if !socket.starts_with('/') {
                return Err(bad(
                    "a socket is an absolute path, like unix:/run/hupwatch/api.sock",
                ));
            }
            return Ok(Self {
                url: format!("unix:{socket}"),
                endpoint: Endpoint::Unix(socket.into()),
                authority: "localhost".to_string(),
                path: default_path,
            });
        }
        let with_scheme = match trimmed.split_once("://") {
            Some((scheme, _)) if scheme.eq_ignore_ascii_case("http") => trimmed.to_string(),
            Some(_) => {
                return Err(bad(
                    "only http:// and unix: are supported, like http://127.0.0.1:9464",
                ));
            }
            None => format!("http://{trimmed}"),
        };
        let uri: Uri = with_scheme.parse().map_err(|_| bad(NOT_A_URL))?;
        let authority = uri.authority().ok_or_else(|| bad(NOT_A_URL))?;
        if authority.as_str().contains('@') {
            return Err(bad("user names and passwords in URLs are not supported"));
        }
        let host = authority.host();
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if host.is_empty() {
            return Err(bad(NOT_A_URL));
        }
        let path = match uri.path_and_query().map(|pq| pq.as_str()) {
            Some(pq) if pq != "/" => pq.to_string(),
            _ => default_path,
        };
        Ok(Self {
            url: format!("http://{authority}{path}"),
            endpoint: Endpoint::Tcp {
                host: host.to_string(),
                port: authority.port_u16().unwrap_or(80),
            },
            authority: authority.to_string(),
            path,
        })
    }

    fn error(&self, reason: impl Into<String>) -> FetchError {
        FetchError::Fetch {
            url: self.url.clone(),
            reason: reason.into(),
        }
    }
}

/// Whether `url` names a Unix socket (`unix:PATH`), the channel only root's hupwatch (or
/// the user's own) can serve.
pub fn is_socket(url: &str) -> bool {
    url.trim().starts_with("unix:")
}

async fn fetch(target: &Target) -> Result<Vec<u8>, FetchError> {
    match &target.endpoint {
        Endpoint::Tcp { host, port } => {
            let stream = TcpStream::connect((host.as_str(), *port))
                .await
                .map_err(|err| target.error(connect_reason(&err)))?;
            let _ = stream.set_nodelay(true);
            exchange(stream, target).await
        }
        Endpoint::Unix(path) => {
            let stream = UnixStream::connect(path)
                .await
                .map_err(|err| target.error(socket_reason(&err)))?;
            let server = stream
                .peer_cred()
                .map_err(|err| target.error(format!("cannot tell who serves it: {err}")))?
                .uid();
            // SAFETY: geteuid has no preconditions.
            let me = unsafe { libc::geteuid() };
            if server != 0 && server != me {
                return Err(FetchError::Untrusted {
                    url: target.url.clone(),
                    uid: server,
                });
            }
            exchange(stream, target).await
        }
    }
}

/// One GET over `io` and its answer, bounded.
async fn exchange<I>(io: I, target: &Target) -> Result<Vec<u8>, FetchError>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let stream = io;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
            .await
            .map_err(|err| target.error(not_hupwatch(&err)))?;
    let request = Request::get(target.path.as_str())
        .header(header::HOST, target.authority.as_str())
        .header(
            header::USER_AGENT,
            concat!("hupwatch/", env!("CARGO_PKG_VERSION")),
        )
        .header(header::CONNECTION, "close")
        .body(Empty::new())
        .map_err(|err| target.error(err.to_string()))?;
    // `sender` moves in, so the connection's future ends once the exchange does; both run
    // here rather than in a spawned task that could outlive a timeout.
    let exchange = async move {
        let response = sender
            .send_request(request)
            .await
            .map_err(|err| target.error(not_hupwatch(&err)))?;
        let status = response.status();
        if status != StatusCode::OK {
            return Err(FetchError::Status {
                url: target.url.clone(),
                status,
            });
        }
        let body = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map_err(|err| {
                if err.is::<LengthLimitError>() {
                    target.error(format!(
                        "the answer is larger than {} MiB",
                        MAX_RESPONSE_BYTES >> 20
                    ))
                } else {
                    target.error(not_hupwatch(&*err))
                }
            })?;
        Ok(Vec::from(body.to_bytes()))
    };
    let (_connection_result, body) = tokio::join!(conn, exchange);
    body
}

/// The other end spoke, but not as hupwatch's server does (a different service, or not HTTP).
fn not_hupwatch(err: &dyn std::fmt::Display) -> String {
    format!("{err}; check that it is the --listen address of a running `hupwatch run`")
}

fn socket_reason(err: &io::Error) -> String {
    match err.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => {
            "no hupwatch serves it; start `hupwatch run` as root (it serves /run/hupwatch/api.sock), or give its --api-socket".to_string()
        }
        io::ErrorKind::PermissionDenied => {
            "permission denied; check the socket's folder".to_string()
        }
        _ => err.to_string(),
    }
}

fn connect_reason(err: &io::Error) -> String {
    match err.kind() {
        io::ErrorKind::ConnectionRefused => {
            "connection refused; check the address and that hupwatch is serving there \
             (--listen)"
                .to_string()
        }
        // A name that does not resolve, a network that is unreachable: the address is wrong.
        _ => format!("{err}; check the host and port, like http://127.0.0.1:9464"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_without_a_path_gets_the_default_one() {
        let target = Target::parse("[::1]:9464", "api/sessions").unwrap();
        assert_eq!(
            target,
            Target {
                url: "http://[::1]:9464/api/sessions".into(),
                endpoint: Endpoint::Tcp {
                    host: "::1".into(),
                    port: 9464,
                },
                authority: "[::1]:9464".into(),
                path: "/api/sessions".into(),
            }
        );
        let target = Target::parse("HTTP://host/x?y=1", "/api/sessions").unwrap();
        assert_eq!(target.url, "http://host/x?y=1");
        assert!(matches!(target.endpoint, Endpoint::Tcp { port: 80, .. }));
        let target = Target::parse("unix:/run/hupwatch/api.sock", "/api/sessions").unwrap();
        assert_eq!(
            target.endpoint,
            Endpoint::Unix("/run/hupwatch/api.sock".into())
        );
        assert_eq!(target.path, "/api/sessions");
        assert!(Target::parse("unix:api.sock", "/api/sessions").is_err());
    }
}
