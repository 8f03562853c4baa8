//! The transactional outbox. [`enqueue`] runs inside the caller's transaction, next to the
//! state change; [`flush`] runs after commit (and from `POST /outbox/flush/<id>`, which a
//! Knative PingSource calls) and POSTs pending rows to the broker in binary mode until it
//! accepts them. Rows keep their deterministic event ids, so a resend dedupes downstream.
//!
//! A flush claims its rows with a lease before sending, so instances flushing at once (a
//! burst of requests, or a request racing the PingSource) send disjoint rows instead of
//! each re-sending the whole backlog. A lease left by a crashed instance expires after
//! [`LEASE`] and a later flush sends those rows.

use super::client::{self, OutboundRequest};
use super::db::{int, text, Db};
use super::http::{self, RequestContext};
use crate::cloudevent;
use crate::events::Envelope;
use crate::ids::CorrelationId;
use crate::problem::ApiError;
use anyhow::Context;
use serde::Serialize;
use spin_sdk::http::Response;
use std::time::Duration;

/// How long one delivery to the broker may take.
const BROKER_TIMEOUT: Duration = Duration::from_secs(5);

/// How many rows one flush sends at most; the rest wait for the next flush.
pub const BATCH: usize = 100;

/// How long a flush owns the rows it claimed. Longer than a few broker calls, short enough
/// that rows claimed by an instance that died go out on a PingSource flush soon after.
const LEASE: Duration = Duration::from_secs(30);

/// The database clock in epoch milliseconds (SQLite and libSQL alike).
const NOW_MS: &str = "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)";

/// What a flush did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FlushReport {
    /// Rows the broker accepted now.
    pub sent: usize,
    /// Rows the broker refused or could not be reached for (kept, retried later).
    pub failed: usize,
    /// Rows still waiting after this flush.
    pub pending: usize,
}

/// Add an event to the outbox, inside the caller's transaction. Enqueuing the same event
/// id twice keeps the first row (the fact is the same).
pub fn enqueue(tx: &Db, env: &Envelope) -> anyhow::Result<()> {
    tx.exec(
        "INSERT OR IGNORE INTO outbox (event_id, event_type, envelope, created_at) VALUES (?, ?, ?, strftime('%Y-%m-%dT%H:%M:%fZ','now'))",
        &[
            text(env.id.clone()),
            text(env.event_type.clone()),
            text(serde_json::to_string(env).context("encoding envelope")?),
        ],
    )
}

/// What one send pass did, before anyone counts what is left.
struct Sent {
    sent: usize,
    failed: usize,
}

/// Deliver up to `limit` pending rows, oldest first, to `broker_url`, and count what is
/// still pending ([`FlushReport`]).
pub fn flush(db: &Db, broker_url: &str, limit: usize) -> anyhow::Result<FlushReport> {
    let Sent { sent, failed } = send(db, broker_url, limit)?;
    Ok(FlushReport {
        sent,
        failed,
        pending: pending(db)?,
    })
}

/// The send pass of a flush. Rows another flush holds a live lease on are skipped. Stops
/// at the first transport failure (the broker is down: the rest would fail too); a refused
/// event is recorded and the next one tried. Whatever this pass claimed but did not send
/// is released for the next flush. Two statements when all goes well, a claim that
/// returns its rows and one mark per sent row: every producer runs this after each commit.
fn send(db: &Db, broker_url: &str, limit: usize) -> anyhow::Result<Sent> {
    let owner = uuid::Uuid::new_v4().to_string();
    let claimed = db.query(
        &format!(
            "UPDATE outbox SET lease_owner = ?, lease_until = {NOW_MS} + ? \
             WHERE seq IN (SELECT seq FROM outbox WHERE sent_at IS NULL AND lease_until <= {NOW_MS} ORDER BY seq LIMIT ?) \
             RETURNING seq, event_id, envelope"
        ),
        &[
            text(owner.clone()),
            int(LEASE.as_millis() as i64),
            int(limit as i64),
        ],
    )?;
    // RETURNING comes in no promised order: send oldest first.
    let mut rows = claimed.rows().collect::<Vec<_>>();
    rows.sort_by_key(|row| row.get::<i64>("seq"));
    let mut done = Sent { sent: 0, failed: 0 };
    for row in &rows {
        let id: &str = row.get("event_id").context("outbox.event_id")?;
        let raw: &str = row.get("envelope").context("outbox.envelope")?;
        let env: Envelope = serde_json::from_str(raw).context("decoding outbox envelope")?;
        let msg = cloudevent::encode_binary(&env).context("encoding CloudEvent")?;
        let outcome = client::send(&OutboundRequest {
            method: "POST",
            url: broker_url.to_owned(),
            headers: msg.headers,
            body: msg.body,
            timeout: BROKER_TIMEOUT,
        });
        match outcome {
            Ok(resp) if (200..300).contains(&resp.status) => {
                db.exec(
                    "UPDATE outbox SET sent_at = strftime('%Y-%m-%dT%H:%M:%fZ','now'), attempts = attempts + 1, lease_owner = NULL, lease_until = 0 WHERE event_id = ?",
                    &[text(id)],
                )?;
                done.sent += 1;
            }
            Ok(resp) => {
                record_failure(db, id, &format!("broker answered {}", resp.status))?;
                done.failed += 1;
            }
            Err(e) => {
                record_failure(db, id, &e.to_string())?;
                done.failed += 1;
                break;
            }
        }
    }
    if done.sent < rows.len() {
        db.exec(
            "UPDATE outbox SET lease_owner = NULL, lease_until = 0 WHERE lease_owner = ? AND sent_at IS NULL",
            &[text(owner)],
        )?;
    }
    Ok(done)
}

fn record_failure(db: &Db, id: &str, error: &str) -> anyhow::Result<()> {
    db.exec(
        "UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE event_id = ?",
        &[text(error), text(id)],
    )
}

/// How many rows wait for delivery.
pub fn pending(db: &Db) -> anyhow::Result<usize> {
    let r = db.query("SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL", &[])?;
    Ok(r.rows.first().and_then(|r| r.get::<i64>(0)).unwrap_or(0) as usize)
}

/// After a commit: deliver what is pending. A broker outage only delays delivery (rows
/// stay for the next request or `POST /outbox/flush/<id>`), so it is logged, not raised.
pub fn flush_after_commit(component: &str, correlation: &CorrelationId, db: &Db, broker_url: &str) {
    match send(db, broker_url, BATCH) {
        Ok(s) if s.failed > 0 => crate::log!(
            component,
            correlation,
            "outbox: broker unavailable, {} event(s) pending for retry",
            pending(db).map_or_else(|e| format!("? ({e:#})"), |n| n.to_string())
        ),
        Ok(_) => {}
        Err(e) => crate::log!(
            component,
            correlation,
            "outbox flush failed, will retry: {e:#}"
        ),
    }
}

/// The `POST /outbox/flush/<id>` answer: flush now and report what happened as JSON
/// ([`FlushReport`]); logs only when it sent or failed something. Any request body is
/// accepted (a Knative PingSource posts a CloudEvent).
pub fn flush_route(
    component: &str,
    ctx: &RequestContext,
    db: &Db,
    broker_url: &str,
) -> Result<Response, ApiError> {
    let report = flush(db, broker_url, BATCH)?;
    // A tick that found nothing to send says nothing (the PingSource calls every second).
    if report.sent + report.failed > 0 {
        crate::log!(
            component,
            ctx.correlation,
            "outbox flush: sent={} failed={} pending={}",
            report.sent,
            report.failed,
            report.pending
        );
    }
    Ok(http::json(200, &report, ctx))
}
