//! The local sessions API on a Unix socket: the way `sessions`, `top` and `reap` reach a
//! running `hupwatch run` without any other user being able to stand in for it (the
//! socket lives in a folder only root can write) or to read more than their own sessions
//! (the kernel names each peer, SO_PEERCRED or getpeereid).
use std::{
    io,
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use tokio::{
    net::{UnixListener, UnixStream},
    task::JoinSet,
    time::Instant,
};

use super::{
    HttpError, Pages, ServerLimits, Viewer,
    clients::{Client, Clients},
    respond::Access,
    server::http,
    watched::Watched,
};

/// Where root's `hupwatch run` serves it unless `--api-socket` says otherwise.
#[cfg(target_os = "linux")]
pub const DEFAULT_SOCKET: &str = "/run/hupwatch/api.sock";
#[cfg(not(target_os = "linux"))]
pub const DEFAULT_SOCKET: &str = "/var/run/hupwatch/api.sock";

/// A bound socket; its file is removed when this is dropped.
#[derive(Debug)]
pub struct UnixApi {
    listener: std::os::unix::net::UnixListener,
    path: PathBuf,
}

impl UnixApi {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The socket, non-blocking, for the runtime that serves it.
    pub(super) fn std_listener(&self) -> io::Result<std::os::unix::net::UnixListener> {
        let listener = self.listener.try_clone()?;
        listener.set_nonblocking(true)?;
        Ok(listener)
    }
}

impl Drop for UnixApi {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Binds `path`: its folder is made (0755) if missing and must belong to this user and be
/// writable by nobody else, so no other user can put a socket of their own there; a socket
/// left by a hupwatch that is gone is replaced, one that still answers is an error.
pub fn bind_unix(path: &Path) -> Result<UnixApi, HttpError> {
    let fail = |reason: String| HttpError::Socket {
        path: path.to_path_buf(),
        reason,
    };
    let folder = path
        .parent()
        .filter(|f| !f.as_os_str().is_empty())
        .ok_or_else(|| fail("give an absolute path, like /run/hupwatch/api.sock".into()))?;
    if !folder.exists() {
        std::fs::create_dir_all(folder)
            .map_err(|e| fail(format!("cannot create {}: {e}", folder.display())))?;
        std::fs::set_permissions(folder, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| fail(format!("cannot set the mode of {}: {e}", folder.display())))?;
    }
    let meta = std::fs::metadata(folder)
        .map_err(|e| fail(format!("cannot read {}: {e}", folder.display())))?;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me || meta.mode() & 0o022 != 0 {
        return Err(fail(format!(
            "its folder {} belongs to uid {} with mode {:o}: another user could replace the \
             socket; use a folder only you can write (chmod go-w, or another --api-socket)",
            folder.display(),
            meta.uid(),
            meta.mode() & 0o7777
        )));
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => {
            return Err(fail(
                "another hupwatch is serving it; stop it or give another --api-socket PATH".into(),
            ));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        // Refused: a socket file no process listens on any more.
        Err(_) => {
            std::fs::remove_file(path).map_err(|e| fail(format!("cannot replace it: {e}")))?;
        }
    }
    let listener = std::os::unix::net::UnixListener::bind(path).map_err(|e| fail(e.to_string()))?;
    let api = UnixApi {
        listener,
        path: path.to_path_buf(),
    };
    // Every local user may connect; what each one reads is decided per peer.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))
        .map_err(|e| fail(format!("cannot set its mode: {e}")))?;
    Ok(api)
}

/// Serves `pages` on `listener` (`api`'s socket on this runtime) until the future is
/// dropped; each peer sees what its uid may. `api` is held so its file stays meanwhile.
pub async fn serve_unix(
    api: Arc<UnixApi>,
    listener: UnixListener,
    pages: Arc<dyn Pages>,
    limits: ServerLimits,
) {
    let _file = api;
    let limits = limits.bounded();
    let max_connections = limits.max_connections;
    let clients = Clients::default();
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        if connections.len() >= max_connections {
            connections.join_next().await;
            continue;
        }
        match listener.accept().await {
            Ok((stream, _)) => {
                // A peer the kernel cannot name reads nothing.
                let viewer = stream
                    .peer_cred()
                    .map_or(Viewer::Unknown, |cred| Viewer::local(cred.uid()));
                let client = match viewer {
                    Viewer::Own(uid) => Client::Uid(uid),
                    Viewer::All => Client::Uid(0),
                    Viewer::Unknown => Client::Uid(u32::MAX),
                };
                // Root is this machine's owner: only the overall bound holds it.
                let slot = match viewer {
                    Viewer::All => None,
                    _ => match clients.take(client, limits.max_per_client) {
                        Some(slot) => Some(slot),
                        None => continue,
                    },
                };
                let pages = Arc::clone(&pages);
                connections.spawn(async move {
                    connection(stream, viewer, pages, limits).await;
                    drop(slot);
                });
            }
            // Out of descriptors: the TCP listener's loop logs and backs off; here a pause
            // is enough, since the socket is for this machine's own clients.
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
        }
    }
}

async fn connection(
    stream: UnixStream,
    viewer: Viewer,
    pages: Arc<dyn Pages>,
    limits: ServerLimits,
) {
    let start = Instant::now();
    let activity = Arc::new(AtomicU64::new(0));
    let watched = Watched::new(stream, start, Arc::clone(&activity));
    activity.store(0, Ordering::Relaxed);
    http(
        watched,
        Access::local(pages, viewer),
        limits,
        start,
        &activity,
    )
    .await;
}
