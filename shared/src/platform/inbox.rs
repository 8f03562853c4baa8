//! The inbox: at-least-once delivery made exactly-once in effect. [`record`] runs in the
//! same transaction as the state change; if the (source, id) pair was seen, the caller
//! changes nothing and answers 2xx.

use super::db::{text, Db};
use crate::events::Envelope;

/// Whether this delivery is new.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// First time: apply it.
    New,
    /// Seen before: change nothing.
    Duplicate,
}

/// Record the event's (source, id) inside the caller's transaction.
pub fn record(tx: &Db, env: &Envelope) -> anyhow::Result<Delivery> {
    tx.exec(
        "INSERT OR IGNORE INTO inbox (source, event_id, event_type, received_at) VALUES (?, ?, ?, strftime('%Y-%m-%dT%H:%M:%fZ','now'))",
        &[
            text(env.source.clone()),
            text(env.id.clone()),
            text(env.event_type.clone()),
        ],
    )?;
    Ok(if tx.changes() == 1 {
        Delivery::New
    } else {
        Delivery::Duplicate
    })
}
