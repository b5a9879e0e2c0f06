//! The daemon's one way to take a lock on the state the loop and the pages share.
use std::sync::{Mutex, MutexGuard};

pub(super) fn lock<T>(shared: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave the state half-updated in a way that
    // matters more than stopping the daemon would.
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
