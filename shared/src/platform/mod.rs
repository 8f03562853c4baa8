//! The thin Spin shell every component shares: one way to read requests and answer,
//! call other services, read variables, migrate SQLite, and keep the outbox, inbox and
//! idempotency keys. Business decisions never live here.

pub mod client;
pub mod config;
pub mod db;
pub mod http;
pub mod idempotency;
pub mod inbox;
pub mod outbox;
