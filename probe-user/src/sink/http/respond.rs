//! What one request gets: the loopback host check, authentication, the page.
use std::{net::IpAddr, sync::Arc};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{
    Method, Request, Response, StatusCode,
    body::Incoming,
    header::{self, HeaderValue},
};

use super::{
    Pages, Viewer,
    auth::Users,
    security::{Security, WebConfig},
};

/// Everything a request is answered from.
#[derive(Clone)]
pub(super) struct Access {
    pages: Arc<dyn Pages>,
    loopback: bool,
    /// The users when the connection was accepted, for a connection with no web config
    /// to follow (the socket's).
    users: Option<Arc<Users>>,
    /// The web config in force, read again for each request's users.
    web: Option<WebConfig>,
    /// Who the connection is from, before any password: see `viewer`.
    peer: Viewer,
    /// Every client showed a certificate a configured CA signed.
    clients_verified: bool,
}

impl Access {
    pub(super) fn new(
        pages: Arc<dyn Pages>,
        loopback: bool,
        security: &Security,
        web: WebConfig,
        peer: Viewer,
    ) -> Self {
        Self {
            pages,
            loopback,
            users: security.users.clone(),
            web: Some(web),
            peer,
            clients_verified: security.verifies_clients(),
        }
    }

    /// A Unix socket's connection: no host to check, no password; the kernel named the
    /// peer.
    pub(super) fn local(pages: Arc<dyn Pages>, peer: Viewer) -> Self {
        Self {
            pages,
            loopback: false,
            users: None,
            web: None,
            peer,
            clients_verified: false,
        }
    }

    /// The users a request must be one of: those in force now (a reload since the
    /// connection was accepted counts).
    fn users(&self) -> Option<Arc<Users>> {
        match &self.web {
            Some(web) => web.current().users.clone(),
            None => self.users.clone(),
        }
    }

    /// A client that passed the web config's authentication sees everything; otherwise
    /// what the kernel says of the peer decides.
    fn viewer(&self, authenticated: bool) -> Viewer {
        if authenticated || self.clients_verified {
            Viewer::All
        } else {
            self.peer
        }
    }

    pub(super) async fn respond(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        if self.loopback && !host_allowed_on_loopback(&request) {
            return text(
                StatusCode::FORBIDDEN,
                "forbidden: on a loopback address, use http://127.0.0.1, http://[::1] or \
                 http://localhost\n",
            );
        }
        let users = self.users();
        if let Some(users) = &users {
            let header = request.headers().get(header::AUTHORIZATION).cloned();
            if !Arc::clone(users).allow(header).await {
                let mut response = text(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized: give a user and password of the --web-config file\n",
                );
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"hupwatch\", charset=\"UTF-8\""),
                );
                // A client guessing passwords gives its slot back after each guess.
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
                return response;
            }
        }
        if request.method() != Method::GET && request.method() != Method::HEAD {
            let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return response;
        }
        // For HEAD the whole page is still built: hyper takes Content-Length from it and
        // drops the body, so HEAD and GET agree.
        match self
            .pages
            .get(request.uri().path(), self.viewer(users.is_some()))
        {
            Some(page) if page.forbidden => response(
                StatusCode::FORBIDDEN,
                page.content_type,
                Bytes::from(page.body),
            ),
            Some(page) => response(StatusCode::OK, page.content_type, Bytes::from(page.body)),
            None => text(StatusCode::NOT_FOUND, "not found\n"),
        }
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
