//! A small read-only HTTP server and client.
