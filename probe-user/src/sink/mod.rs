//! Where conclusions go: alert lines, the HTTP API (later metrics), tables.
pub mod alerts;
pub mod exhaustion;
pub mod forecast;
pub mod groups;
pub mod http;
pub mod human;
pub mod memory_metrics;
pub mod metrics;
pub mod notify;
pub mod reason;
pub mod table;
