//! Where conclusions go: HTTP (the sessions API, later metrics), alert lines, tables.
pub mod http;
