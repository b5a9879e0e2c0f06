//! Where conclusions go: alert lines (JSON and human), the metrics, the HTTP server, tables
//! and groups, and the sentences and forecasts they show.
pub mod alerts;
pub mod forecast;
pub mod groups;
pub mod http;
pub mod human;
pub mod memory_metrics;
pub mod metrics;
pub mod reason;
pub mod table;
pub mod trees;
