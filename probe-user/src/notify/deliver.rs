//! Delivery of what the policy (policy.rs) decided to say.
//!
//! Linux: `org.freedesktop.Notifications.Notify` on a session bus (zbus, on the tokio
//! runtime hupwatch already runs). Which bus ([`target`]): a user's own hupwatch uses its
//! own bus; root's (a service) uses the logged-in desktop user's, which refuses a
//! connection from root (dbus-daemon's session policy lets only the bus's owner in), so
//! root delivers through a helper: hupwatch itself, started as that user with the hidden
//! subcommand `__notify-helper BUS` ([`helper_main`]), fed one JSON [`Notification`] a
//! line on its stdin. The helper is started by [`Notifier::start`], which therefore must
//! run BEFORE hupwatch drops its privileges (`privileges::drop_after_attach`): afterwards
//! it can no longer change user.
//!
//! macOS: `osascript -e 'display notification ...'`, one child process per notification.
//!
//! Nothing here is ever an error for hupwatch: [`Notifier::notify`] queues without
//! waiting (a full queue drops and counts), and the first notification that cannot be
//! delivered prints one warning line on stderr ([`warn`]); later failures are silent.
use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::{sync::mpsc, task::JoinHandle};

use super::message::Notification;
#[cfg(target_os = "macos")]
use super::osascript;
#[cfg(target_os = "linux")]
use super::{dbus, helper, target};

/// Notifications waiting for delivery at most; more are dropped and counted.
pub const QUEUE: usize = 32;
/// How long one delivery may take before it counts as failed.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// The hidden subcommand the helper runs as (`hupwatch __notify-helper BUS`).
pub const HELPER_SUBCOMMAND: &str = "__notify-helper";

/// Hands notifications to a delivery task. Dropping it ends the task (and the helper,
/// whose stdin closes); [`Notifier::close`] first waits for what is queued.
pub struct Notifier {
    queue: mpsc::Sender<Notification>,
    task: JoinHandle<()>,
    dropped: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
}

impl Notifier {
    /// Starts delivery to `user`'s desktop (a uid), or with `None` to the desktop this
    /// hupwatch belongs to: its own session bus (DBUS_SESSION_BUS_ADDRESS, else
    /// /run/user/UID/bus); as root, SUDO_UID's, else root's own DBUS_SESSION_BUS_ADDRESS,
    /// else the single user >= 1000 with a bus in /run/user (several: the one `loginctl`
    /// shows in an active graphical session, else the first, said on stderr).
    ///
    /// Delivering to another user starts the helper (hupwatch `__notify-helper`, as that
    /// user) now: call this before privileges are dropped. The bus itself is connected
    /// lazily, at the first notification, and again after a failure, so a desktop that
    /// logs in later is still reached. An error says why there is nothing to deliver to
    /// (print it with [`warn`] and go on without notifications).
    pub async fn start(user: Option<u32>) -> anyhow::Result<Self> {
        #[cfg(target_os = "linux")]
        {
            let delivery = match target::choose(user)? {
                target::Target::InProcess { address } => {
                    Delivery::Dbus(dbus::Session::new(address))
                }
                target::Target::Helper { uid, gid, address } => {
                    let program = std::env::current_exe().map_err(|e| {
                        anyhow::anyhow!("cannot find hupwatch's own executable: {e}")
                    })?;
                    Delivery::Helper(Box::new(helper::Client::spawn(
                        &program,
                        &[
                            std::ffi::OsStr::new(HELPER_SUBCOMMAND),
                            std::ffi::OsStr::new(&address),
                        ],
                        uid,
                        gid,
                    )?))
                }
            };
            Ok(Self::with(delivery))
        }
        #[cfg(target_os = "macos")]
        {
            if let Some(uid) = user {
                // SAFETY: geteuid has no preconditions.
                let euid = unsafe { libc::geteuid() };
                anyhow::ensure!(
                    uid == euid,
                    "on macOS hupwatch notifies only the user it runs as ({euid}), not {uid}"
                );
            }
            Ok(Self::with(Delivery::Osascript))
        }
        #[cfg(not(any(target_os = "linux", target_os = "macos")))]
        {
            let _ = user;
            anyhow::bail!("desktop notifications are built for Linux and macOS only")
        }
    }

    /// Delivers in-process on the session bus at `address` (a D-Bus address such as
    /// `unix:path=/run/user/1000/bus`), with no change of user.
    #[cfg(target_os = "linux")]
    pub async fn start_on(address: &str) -> anyhow::Result<Self> {
        Ok(Self::with(Delivery::Dbus(dbus::Session::new(
            address.to_string(),
        ))))
    }

    /// Delivers through a helper process: `program ARGS`, started now as `uid`/`gid` (no
    /// supplementary groups), which must serve [`helper_main`]'s protocol. [`Notifier::start`]
    /// uses hupwatch itself with `__notify-helper BUS`; tests use their own binary.
    #[cfg(target_os = "linux")]
    #[doc(hidden)]
    pub async fn start_helper(
        program: &std::path::Path,
        args: &[&std::ffi::OsStr],
        uid: u32,
        gid: u32,
    ) -> anyhow::Result<Self> {
        Ok(Self::with(Delivery::Helper(Box::new(
            helper::Client::spawn(program, args, uid, gid)?,
        ))))
    }

    fn with(delivery: Delivery) -> Self {
        let (queue, receiver) = mpsc::channel(QUEUE);
        let failed = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(deliver_all(delivery, receiver, Arc::clone(&failed)));
        Self {
            queue,
            task,
            dropped: Arc::new(AtomicU64::new(0)),
            failed,
        }
    }

    /// Queues `n` for delivery and returns at once; with [`QUEUE`] already waiting it is
    /// dropped and counted ([`Notifier::dropped`]).
    pub fn notify(&mut self, n: &Notification) {
        if self.queue.try_send(n.clone()).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Notifications dropped because the queue was full (or delivery had ended).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Notifications that were tried and not delivered.
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    /// Delivers what is queued (each within [`DELIVERY_TIMEOUT`]), ends, and says how
    /// many were dropped and how many failed in all.
    pub async fn close(self) -> NotifierStats {
        drop(self.queue);
        let _ = self.task.await;
        NotifierStats {
            dropped: self.dropped.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
        }
    }
}

/// What a [`Notifier`] could not deliver, over its life.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NotifierStats {
    /// Dropped because the queue was full.
    pub dropped: u64,
    /// Tried and not delivered.
    pub failed: u64,
}

/// Prints the one warning line for a notification that could not be delivered.
pub fn warn(reason: &str) {
    eprintln!(
        "hupwatch: warning: desktop notification not delivered ({reason}); going on without it (later failures are not reported)"
    );
}

enum Delivery {
    #[cfg(target_os = "linux")]
    Dbus(dbus::Session),
    #[cfg(target_os = "linux")]
    Helper(Box<helper::Client>),
    #[cfg(target_os = "macos")]
    Osascript,
}

impl Delivery {
    async fn deliver(&mut self, n: &Notification) -> Result<(), String> {
        match self {
            #[cfg(target_os = "linux")]
            Self::Dbus(session) => session.deliver(n).await,
            #[cfg(target_os = "linux")]
            Self::Helper(client) => client.deliver(n).await,
            #[cfg(target_os = "macos")]
            Self::Osascript => osascript::deliver(n).await,
        }
    }
}

/// The delivery task: one notification at a time; the first failure warns, once for the
/// task's life. Later notifications are still tried (a desktop may log in later).
async fn deliver_all(
    mut delivery: Delivery,
    mut receiver: mpsc::Receiver<Notification>,
    failed: Arc<AtomicU64>,
) {
    let mut warned = false;
    while let Some(n) = receiver.recv().await {
        let outcome = match tokio::time::timeout(DELIVERY_TIMEOUT, delivery.deliver(&n)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(format!("no answer within {}s", DELIVERY_TIMEOUT.as_secs())),
        };
        if let Err(reason) = outcome {
            failed.fetch_add(1, Ordering::Relaxed);
            if !warned {
                warned = true;
                warn(&reason);
            }
        }
    }
}

/// The helper's side (`hupwatch __notify-helper BUS`, run as the desktop's user): reads
/// one JSON [`Notification`] a line on stdin until it closes, sends each on the session
/// bus at `bus`, and answers each with one line on stdout, `ok` or `error REASON`.
#[cfg(target_os = "linux")]
pub async fn helper_main(bus: &str) -> anyhow::Result<()> {
    helper::serve(
        bus,
        tokio::io::BufReader::new(tokio::io::stdin()),
        tokio::io::stdout(),
    )
    .await
}

#[cfg(not(target_os = "linux"))]
pub async fn helper_main(bus: &str) -> anyhow::Result<()> {
    let _ = bus;
    anyhow::bail!("the notification helper serves D-Bus, which hupwatch uses on Linux only")
}
