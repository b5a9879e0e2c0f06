//! The servers on a thread of their own: rendering a page, a TLS handshake or a flood of
//! requests then never holds up the thread that reads the ring buffer (the daemon's
//! runtime has one thread). Dropping the handle stops both servers and joins the thread.
use std::{sync::Arc, thread::JoinHandle};

use tokio::sync::oneshot;

use super::{Listener, Pages, ServerLimits, UnixApi, WebConfig, serve_unix, serve_with};

pub struct ServerThread {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// Serves `pages` on `listener` (and on `socket`) from a new thread, each socket moved onto
/// that thread's own runtime.
pub fn spawn_servers(
    listener: Listener,
    socket: Option<Arc<UnixApi>>,
    pages: Arc<dyn Pages>,
    web: WebConfig,
) -> std::io::Result<ServerThread> {
    let tcp = listener.inner.into_std()?;
    let local = listener.local;
    let unix = match &socket {
        Some(api) => Some(api.std_listener()?),
        None => None,
    };
    let (stop, stopped) = oneshot::channel();
    let thread = std::thread::Builder::new()
        .name("hupwatch-http".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(err) => {
                    eprintln!(
                        "hupwatch: warning: http: cannot start its thread ({err}); serving nothing"
                    );
                    return;
                }
            };
            runtime.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(tcp) {
                    Ok(inner) => Listener { inner, local },
                    Err(err) => {
                        eprintln!("hupwatch: warning: http: {err}; serving nothing");
                        return;
                    }
                };
                let on_socket = async {
                    match (socket, unix) {
                        (Some(api), Some(std)) => match tokio::net::UnixListener::from_std(std) {
                            Ok(listener) => {
                                serve_unix(api, listener, pages.clone(), ServerLimits::default())
                                    .await
                            }
                            Err(err) => eprintln!("hupwatch: warning: --api-socket: {err}"),
                        },
                        _ => std::future::pending().await,
                    }
                };
                tokio::select! {
                    () = serve_with(listener, pages.clone(), ServerLimits::default(), web) => {}
                    () = on_socket => {}
                    _ = stopped => {}
                }
            });
        })?;
    Ok(ServerThread {
        stop: Some(stop),
        thread: Some(thread),
    })
}

impl Drop for ServerThread {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
