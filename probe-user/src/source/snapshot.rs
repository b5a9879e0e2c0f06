//! Processes that exist before the probes attach, as `existing` events.
