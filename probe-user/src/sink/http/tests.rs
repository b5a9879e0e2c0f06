use std::{collections::HashMap, sync::Arc};

use crate::sessions::remote::{get, get_with};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use super::*;

/// Anything a correct server does in these tests happens within a second; this only
/// stops a broken one from hanging the run.
const GENEROUS: Duration = Duration::from_secs(30);
/// Keeps a limit other than the one under test from closing the connection first.
/// Also shows that a limit too long for Instant arithmetic is taken as "very long".
const NEVER: Duration = Duration::MAX;

struct TestPages;

impl Pages for TestPages {
    fn get(&self, path: &str, viewer: Viewer) -> Option<Page> {
        match path {
            "/api/sessions" => Some(Page::new(
                "application/json",
                br#"{"sessions":[]}"#.to_vec(),
            )),
            "/metrics" => Some(Page::new(
                "text/plain; version=0.0.4",
                b"hupwatch_up 1\n".to_vec(),
            )),
            // Larger than loopback's socket buffers, so a client that does not read
            // leaves the server stuck writing.
            "/big" => Some(Page::new("application/octet-stream", vec![b'x'; 64 << 20])),
            "/viewer" => Some(Page::new("text/plain", format!("{viewer:?}").into_bytes())),
            _ => None,
        }
    }
}

async fn start(limits: ServerLimits) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = bind("127.0.0.1:0").await.expect("binds");
    let addr = listener.local_addr();
    let server = tokio::spawn(serve_with(
        listener,
        Arc::new(TestPages),
        limits,
        WebConfig::open(),
    ));
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
    let request = format!("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Filler: {filler}\r\n\r\n");
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
        let request = format!("GET /metrics HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        assert_eq!(raw(addr, &request).await.status, 200, "{host}");
    }
    for host in [
        format!("evil.example:{port}"),
        "localhost.evil.example".into(),
    ] {
        let request = format!("GET /metrics HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
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
        (
            "https://127.0.0.1:9464",
            "only http:// and unix: are supported",
        ),
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
        ..ServerLimits::default()
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

/// A folder of this test's own for a socket, owned by this user and writable by nobody else.
fn socket_folder(name: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("hupwatch-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

fn me() -> Viewer {
    // SAFETY: geteuid has no preconditions.
    Viewer::local(unsafe { libc::geteuid() })
}

#[tokio::test]
async fn a_loopback_client_is_named_by_the_kernel() {
    let addr = start_default().await;
    let body = get(&format!("http://{addr}/viewer"), "/").await.unwrap();
    assert_eq!(String::from_utf8(body).unwrap(), format!("{:?}", me()));
}

#[tokio::test]
async fn the_socket_names_its_peer_and_its_file_goes_with_it() {
    let folder = socket_folder("api-socket");
    let path = folder.join("api.sock");
    let api = Arc::new(bind_unix(&path).unwrap());
    let listener = tokio::net::UnixListener::from_std(api.std_listener().unwrap()).unwrap();
    let server = tokio::spawn(serve_unix(
        Arc::clone(&api),
        listener,
        Arc::new(TestPages),
        ServerLimits::default(),
    ));
    let url = format!("unix:{}", path.display());
    let body = get(&url, "/viewer").await.unwrap();
    assert_eq!(String::from_utf8(body).unwrap(), format!("{:?}", me()));
    let sessions = get(&url, "/api/sessions").await.unwrap();
    assert_eq!(sessions, br#"{"sessions":[]}"#);
    // A second server on the same path while the first answers is refused.
    let err = bind_unix(&path).unwrap_err().to_string();
    assert!(err.contains("another hupwatch is serving it"), "{err}");
    server.abort();
    let _ = server.await;
    drop(api);
    assert!(!path.exists(), "the socket file outlived its server");
    // A socket file nothing listens on any more is replaced.
    let stale = std::os::unix::net::UnixListener::bind(&path).unwrap();
    drop(stale);
    assert!(path.exists());
    drop(bind_unix(&path).expect("a stale socket is replaced"));
}

#[tokio::test]
async fn a_socket_folder_others_can_write_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let folder = socket_folder("api-open");
    std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o777)).unwrap();
    let err = bind_unix(&folder.join("api.sock")).unwrap_err().to_string();
    assert!(
        err.contains("another user could replace the socket"),
        "{err}"
    );
    assert!(!err.contains('\n'), "{err}");
}

/// One response read off a kept-alive connection: its status and body.
async fn next_response(stream: &mut TcpStream) -> (u16, Vec<u8>) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end]).to_string();
            let length: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if got.len() >= end + 4 + length {
                let status = head[9..12].parse().unwrap();
                return (status, got[end + 4..end + 4 + length].to_vec());
            }
        }
        let n = tokio::time::timeout(GENEROUS, stream.read(&mut buf))
            .await
            .expect("answered")
            .unwrap();
        assert!(n > 0, "closed before a whole response");
        got.extend_from_slice(&buf[..n]);
    }
}

#[tokio::test]
async fn a_reload_that_removes_a_user_reaches_kept_alive_connections() {
    let dir = socket_folder("web-reload");
    let file = dir.join("web.yml");
    let write = |user: &str| {
        let hash = bcrypt::hash("secret", 4).unwrap();
        std::fs::write(&file, format!("basic_auth_users:\n  {user}: '{hash}'\n")).unwrap();
    };
    write("alice");
    let web = WebConfig::load(&file).unwrap();
    let listener = bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr();
    let server = tokio::spawn(serve_with(
        listener,
        Arc::new(TestPages),
        ServerLimits::default(),
        web.clone(),
    ));
    let mut stream = TcpStream::connect(addr).await.unwrap();
    // alice:secret
    let request =
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic YWxpY2U6c2VjcmV0\r\n\r\n";
    stream.write_all(request.as_bytes()).await.unwrap();
    assert_eq!(next_response(&mut stream).await.0, 200);
    write("bob");
    web.reload().unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    assert_eq!(
        next_response(&mut stream).await.0,
        401,
        "a removed user still reads on a connection opened before the reload"
    );
    server.abort();
}

#[tokio::test]
async fn a_busy_connection_ends_at_its_lifetime() {
    let limits = ServerLimits {
        idle_timeout: NEVER,
        header_read_timeout: NEVER,
        max_lifetime: Duration::from_secs(1),
        ..ServerLimits::default()
    };
    let (addr, _server) = start(limits).await;
    let stream = TcpStream::connect(addr).await.unwrap();
    let started = std::time::Instant::now();
    closed(stream).await;
    let lived = started.elapsed();
    assert!(lived < Duration::from_secs(10), "lived {lived:?}");
}
