//! Desktop notifications (`hupwatch run --notify`), everything about them in one folder:
//! what is worth saying (policy.rs, and exhaustion.rs for the machine's memory), what one
//! notification says (message.rs), how it reaches the desktop (deliver.rs: D-Bus through
//! dbus.rs, as another user through helper.rs, whose bus target.rs finds; osascript.rs on
//! macOS), and the daemon's handle on both (desktop.rs).
#[cfg(target_os = "linux")]
mod dbus;
mod deliver;
mod desktop;
pub mod exhaustion;
#[cfg(target_os = "linux")]
mod helper;
mod message;
#[cfg(target_os = "macos")]
mod osascript;
pub mod policy;
#[cfg(target_os = "linux")]
pub mod target;

pub use deliver::{
    DELIVERY_TIMEOUT, HELPER_SUBCOMMAND, Notifier, NotifierStats, QUEUE, helper_main, warn,
};
pub use desktop::{Notifications, NotifyOptions};
pub use message::{APP_NAME, Notification, Urgency};
pub use policy::{NotifyPolicy, default_total};
