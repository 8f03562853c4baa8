//! The broker's tables (`broker_events`, `broker_deliveries`) and every query on them.
//! Writes that belong together run inside the caller's transaction; nothing here makes
//! an outbound call.

use crate::event::StoredEvent;
use crate::manifest::Wiring;
use crate::policy::DeadLetter;
use anyhow::Context;
use htaxi_shared::events::Envelope;
use htaxi_shared::platform::db::{int, opt_text, text, Db, Migration};
use serde::Serialize;
use spin_sdk::sqlite3::{QueryResult, Value};
use std::collections::BTreeMap;

/// The broker's own migrations (after the platform ones).
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        id: "broker/0001_broker",
        sql: include_str!("../migrations/0001_broker.sql"),
    },
    Migration {
        id: "broker/0002_ordered_dispatch",
        sql: include_str!("../migrations/0002_ordered_dispatch.sql"),
    },
    Migration {
        id: "broker/0003_wiring_cache",
        sql: include_str!("../migrations/0003_wiring_cache.sql"),
    },
];

const NOW: &str = "strftime('%Y-%m-%dT%H:%M:%fZ','now')";

/// Delivery row states.
pub const PENDING: &str = "pending";
pub const DELIVERED: &str = "delivered";
pub const DEAD_LETTERED: &str = "deadlettered";

/// Longest subscriber answer kept on a delivery row (for operators; not the error data).
const RESPONSE_EXCERPT_BYTES: usize = 2048;

/// The stored wiring, if it was loaded at or after `since_ms` (a copy that no longer
/// decodes, e.g. from an older broker, counts as absent).
pub fn cached_wiring(db: &Db, since_ms: i64) -> anyhow::Result<Option<Wiring>> {
    let r = db.query(
        "SELECT wiring FROM broker_wiring WHERE id = 1 AND loaded_ms >= ?",
        &[int(since_ms)],
    )?;
    let json = r
        .rows()
        .next()
        .and_then(|row| row.get::<&str>("wiring").map(str::to_owned));
    Ok(json.and_then(|json| serde_json::from_str(&json).ok()))
}

/// Store `wiring` as loaded at `now_ms`.
pub fn cache_wiring(db: &Db, wiring: &Wiring, now_ms: i64) -> anyhow::Result<()> {
    let json = serde_json::to_string(wiring).context("encoding the wiring")?;
    db.exec(
        "INSERT INTO broker_wiring (id, loaded_ms, wiring) VALUES (1, ?1, ?2) ON CONFLICT (id) DO UPDATE SET loaded_ms = ?1, wiring = ?2",
        &[int(now_ms), text(json)],
    )
}

/// Append an event to the log; returns its `seq` (the local Kafka offset).
pub fn insert_event(tx: &Db, e: &StoredEvent) -> anyhow::Result<i64> {
    let r = tx.query(
        &format!(
            "INSERT INTO broker_events (event_id, source, event_type, envelope, extras, correlation_id, received_at) VALUES (?, ?, ?, ?, ?, ?, {NOW}) RETURNING seq"
        ),
        &[
            text(e.envelope.id.clone()),
            text(e.envelope.source.clone()),
            text(e.envelope.event_type.clone()),
            text(serde_json::to_string(&e.envelope).context("encoding envelope")?),
            text(serde_json::to_string(&e.extras).context("encoding extras")?),
            opt_text(e.envelope.correlation_id.clone()),
        ],
    )?;
    r.rows
        .first()
        .and_then(|r| r.get::<i64>(0))
        .context("reading the new event seq")
}

/// Where a delivery goes: the Trigger, its subscriber, and whether it keeps the
/// partition's order (`ordered`, keyed by the event's `partitionkey`).
pub struct Route<'a> {
    pub trigger: &'a str,
    pub subscriber: &'a str,
    pub ordered: bool,
    pub partition_key: Option<&'a str>,
}

/// Queue a delivery of event `seq` (that is `e`) along `route`, due now, unless the same
/// (source, id) is already pending or delivered for this Trigger (a dead-lettered one
/// does not count: a re-publish gets a fresh chance). Returns whether it was queued. One
/// statement: the check is the insert's own condition.
pub fn queue_delivery(
    tx: &Db,
    seq: i64,
    e: &Envelope,
    route: &Route<'_>,
    now_ms: i64,
) -> anyhow::Result<bool> {
    tx.exec(
        &format!(
            "INSERT INTO broker_deliveries (event_seq, trigger_name, subscriber, status, next_attempt_ms, partition_key, ordered, created_at, updated_at) \
             SELECT ?1, ?2, ?3, 'pending', ?4, ?5, ?6, {NOW}, {NOW} \
             WHERE NOT EXISTS (SELECT 1 FROM broker_deliveries d JOIN broker_events e ON e.seq = d.event_seq WHERE e.source = ?7 AND e.event_id = ?8 AND d.trigger_name = ?2 AND d.status IN ('pending', 'delivered'))"
        ),
        &[
            int(seq),
            text(route.trigger),
            text(route.subscriber),
            int(now_ms),
            opt_text(route.partition_key),
            int(i64::from(route.ordered)),
            text(e.source.clone()),
            text(e.id.clone()),
        ],
    )?;
    Ok(tx.changes() == 1)
}

/// A delivery claimed for one attempt.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: i64,
    pub event_seq: i64,
    pub trigger: String,
    pub subscriber: String,
    /// Attempts including the one being made now.
    pub attempt: u32,
    pub event: StoredEvent,
}

/// Rows that may be sent at `?1` (due, not leased), oldest due first, at most `?2`. A
/// row of an ordered Trigger waits while an earlier row of its partition is pending.
const DUE: &str = "SELECT d.id FROM broker_deliveries d WHERE d.status = 'pending' AND d.next_attempt_ms <= ?1 AND d.lease_until_ms <= ?1 AND NOT (d.ordered = 1 AND d.partition_key IS NOT NULL AND EXISTS (SELECT 1 FROM broker_deliveries p WHERE p.trigger_name = d.trigger_name AND p.partition_key = d.partition_key AND p.status = 'pending' AND p.event_seq < d.event_seq)) ORDER BY d.next_attempt_ms, d.id LIMIT ?2";

/// Whether any row may be sent now (a read: no write lock, cheap to poll).
pub fn any_due(db: &Db, now_ms: i64) -> anyhow::Result<bool> {
    Ok(!db.query(DUE, &[int(now_ms), int(1)])?.rows.is_empty())
}

/// Claim up to `limit` due rows for one attempt each, in one statement: count the
/// attempt and lease each row until `lease_until_ms`, so no other dispatch call takes
/// it while it is in flight. Oldest due first. A bare statement, not a transaction: the
/// shared runner waits for the write lock the same way.
pub fn claim_due(
    db: &Db,
    now_ms: i64,
    limit: usize,
    lease_until_ms: i64,
) -> anyhow::Result<Vec<Claimed>> {
    let r = db.query(
        &format!(
            "UPDATE broker_deliveries SET attempts = attempts + 1, lease_until_ms = ?3, last_attempt_at = {NOW}, updated_at = {NOW} WHERE id IN ({DUE}) RETURNING id, event_seq, trigger_name, subscriber, attempts, (SELECT envelope FROM broker_events WHERE seq = event_seq) AS envelope, (SELECT extras FROM broker_events WHERE seq = event_seq) AS extras"
        ),
        &[int(now_ms), int(limit as i64), int(lease_until_ms)],
    )?;
    let mut claimed = r
        .rows()
        .map(|row| {
            Ok(Claimed {
                id: row.get("id").context("id")?,
                event_seq: row.get("event_seq").context("event_seq")?,
                trigger: row
                    .get::<&str>("trigger_name")
                    .context("trigger_name")?
                    .to_owned(),
                subscriber: row
                    .get::<&str>("subscriber")
                    .context("subscriber")?
                    .to_owned(),
                attempt: row.get::<u32>("attempts").context("attempts")?,
                event: stored_event(&row)?,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    claimed.sort_by_key(|c| c.id);
    Ok(claimed)
}

fn stored_event(row: &spin_sdk::sqlite3::Row<'_>) -> anyhow::Result<StoredEvent> {
    let envelope: Envelope = serde_json::from_str(row.get::<&str>("envelope").context("envelope")?)
        .context("decoding stored envelope")?;
    let extras: BTreeMap<String, String> =
        serde_json::from_str(row.get::<&str>("extras").context("extras")?)
            .context("decoding stored extras")?;
    Ok(StoredEvent { envelope, extras })
}

/// The subscriber's answer, cut for storage.
pub fn excerpt(body: &[u8]) -> String {
    String::from_utf8_lossy(&body[..body.len().min(RESPONSE_EXCERPT_BYTES)]).into_owned()
}

/// What an attempt left on the row, whatever the outcome.
pub struct AttemptRecord<'a> {
    pub status: Option<u16>,
    pub error: Option<&'a str>,
    pub response: Option<String>,
}

/// The attempt succeeded (in the caller's transaction).
pub fn record_delivered(tx: &Db, id: i64, rec: &AttemptRecord<'_>) -> anyhow::Result<()> {
    tx.exec(
        &format!(
            "UPDATE broker_deliveries SET status = 'delivered', lease_until_ms = 0, last_status = ?, last_error = NULL, last_response = ?, delivered_at = {NOW}, updated_at = {NOW} WHERE id = ?"
        ),
        &[opt_status(rec.status), opt_text(rec.response.clone()), int(id)],
    )
}

/// The attempt failed; try again at `next_ms` (in the caller's transaction).
pub fn record_retry(tx: &Db, id: i64, next_ms: i64, rec: &AttemptRecord<'_>) -> anyhow::Result<()> {
    tx.exec(
        &format!(
            "UPDATE broker_deliveries SET next_attempt_ms = ?, lease_until_ms = 0, last_status = ?, last_error = ?, last_response = ?, updated_at = {NOW} WHERE id = ?"
        ),
        &[
            int(next_ms),
            opt_status(rec.status),
            opt_text(rec.error),
            opt_text(rec.response.clone()),
            int(id),
        ],
    )
}

/// Give up: the row becomes a dead letter with Knative's error extensions (in the
/// caller's transaction).
pub fn record_dead_letter(
    tx: &Db,
    id: i64,
    dl: &DeadLetter,
    rec: &AttemptRecord<'_>,
) -> anyhow::Result<()> {
    tx.exec(
        &format!(
            "UPDATE broker_deliveries SET status = 'deadlettered', lease_until_ms = 0, last_status = ?, last_error = ?, last_response = ?, reason = ?, error_code = ?, error_data = ?, dead_lettered_at = {NOW}, updated_at = {NOW} WHERE id = ?"
        ),
        &[
            opt_status(rec.status),
            opt_text(rec.error),
            opt_text(rec.response.clone()),
            text(dl.reason.clone()),
            opt_status(dl.knativeerrorcode),
            opt_text(dl.knativeerrordata.clone()),
            int(id),
        ],
    )
}

fn opt_status(s: Option<u16>) -> Value {
    s.map(|s| int(i64::from(s))).unwrap_or(Value::Null)
}

/// Rows still waiting for delivery.
pub fn count_pending(db: &Db) -> anyhow::Result<usize> {
    let r = db.query(
        "SELECT COUNT(*) FROM broker_deliveries WHERE status = 'pending'",
        &[],
    )?;
    Ok(r.rows.first().and_then(|r| r.get::<i64>(0)).unwrap_or(0) as usize)
}

/// Put a dead letter back in the queue, due now. `Ok(false)` when the row is not a
/// dead letter (unknown rows are the caller's 404).
pub fn redeliver(tx: &Db, id: i64, now_ms: i64) -> anyhow::Result<bool> {
    tx.exec(
        &format!(
            "UPDATE broker_deliveries SET status = 'pending', attempts = 0, next_attempt_ms = ?, lease_until_ms = 0, reason = NULL, error_code = NULL, error_data = NULL, dead_lettered_at = NULL, redeliveries = redeliveries + 1, updated_at = {NOW} WHERE id = ? AND status = 'deadlettered'"
        ),
        &[int(now_ms), int(id)],
    )?;
    Ok(tx.changes() == 1)
}

/// A delivery row as the inspection routes show it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryView {
    pub id: i64,
    pub event_seq: i64,
    pub trigger: String,
    pub subscriber: String,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_ms: Option<i64>,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub response_body: Option<String>,
    pub reason: Option<String>,
    /// Knative's dead-letter extensions (set on dead letters only).
    pub knativeerrordest: Option<String>,
    pub knativeerrorcode: Option<i64>,
    pub knativeerrordata: Option<String>,
    pub redeliveries: i64,
    pub created_at: String,
    pub updated_at: String,
    pub last_attempt_at: Option<String>,
    pub delivered_at: Option<String>,
    pub dead_lettered_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<EventView>,
}

/// An event as the inspection routes show it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventView {
    pub seq: i64,
    pub attributes: BTreeMap<String, String>,
    pub data: serde_json::Value,
    pub received_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deliveries: Option<Vec<DeliveryView>>,
}

const DELIVERY_COLUMNS: &str = "d.id, d.event_seq, d.trigger_name, d.subscriber, d.status, d.attempts, d.next_attempt_ms, d.last_status, d.last_error, d.last_response, d.reason, d.error_code, d.error_data, d.redeliveries, d.created_at, d.updated_at, d.last_attempt_at, d.delivered_at, d.dead_lettered_at, e.seq, e.envelope, e.extras, e.received_at";

fn opt_string(row: &spin_sdk::sqlite3::Row<'_>, col: &str) -> Option<String> {
    row.get::<&str>(col).map(str::to_owned)
}

fn delivery_views(r: &QueryResult, with_event: bool) -> anyhow::Result<Vec<DeliveryView>> {
    r.rows()
        .map(|row| {
            let status: String = row.get::<&str>("status").context("status")?.to_owned();
            let dead = status == DEAD_LETTERED;
            let subscriber = row
                .get::<&str>("subscriber")
                .context("subscriber")?
                .to_owned();
            Ok(DeliveryView {
                id: row.get("id").context("id")?,
                event_seq: row.get("event_seq").context("event_seq")?,
                trigger: row
                    .get::<&str>("trigger_name")
                    .context("trigger_name")?
                    .to_owned(),
                knativeerrordest: dead.then(|| subscriber.clone()),
                subscriber,
                next_attempt_ms: (status == PENDING)
                    .then(|| row.get::<i64>("next_attempt_ms"))
                    .flatten(),
                status,
                attempts: row.get("attempts").context("attempts")?,
                last_status: row.get("last_status"),
                last_error: opt_string(&row, "last_error"),
                response_body: opt_string(&row, "last_response"),
                reason: opt_string(&row, "reason"),
                knativeerrorcode: row.get("error_code"),
                knativeerrordata: opt_string(&row, "error_data"),
                redeliveries: row.get("redeliveries").unwrap_or(0),
                created_at: opt_string(&row, "created_at").unwrap_or_default(),
                updated_at: opt_string(&row, "updated_at").unwrap_or_default(),
                last_attempt_at: opt_string(&row, "last_attempt_at"),
                delivered_at: opt_string(&row, "delivered_at"),
                dead_lettered_at: opt_string(&row, "dead_lettered_at"),
                event: if with_event {
                    Some(event_view(&row)?)
                } else {
                    None
                },
            })
        })
        .collect()
}

fn event_view(row: &spin_sdk::sqlite3::Row<'_>) -> anyhow::Result<EventView> {
    let event = stored_event(row)?;
    Ok(EventView {
        seq: row.get("seq").context("seq")?,
        attributes: event.attributes(),
        data: event.envelope.data,
        received_at: opt_string(row, "received_at").unwrap_or_default(),
        deliveries: None,
    })
}

/// Dead letters, newest first.
pub fn dead_letters(db: &Db, limit: i64) -> anyhow::Result<Vec<DeliveryView>> {
    let r = db.query(
        &format!(
            "SELECT {DELIVERY_COLUMNS} FROM broker_deliveries d JOIN broker_events e ON e.seq = d.event_seq WHERE d.status = 'deadlettered' ORDER BY d.dead_lettered_at DESC, d.id DESC LIMIT ?"
        ),
        &[int(limit)],
    )?;
    delivery_views(&r, true)
}

/// One delivery row with its event.
pub fn delivery(db: &Db, id: i64) -> anyhow::Result<Option<DeliveryView>> {
    let r = db.query(
        &format!(
            "SELECT {DELIVERY_COLUMNS} FROM broker_deliveries d JOIN broker_events e ON e.seq = d.event_seq WHERE d.id = ?"
        ),
        &[int(id)],
    )?;
    Ok(delivery_views(&r, true)?.into_iter().next())
}

/// Events, newest first, each with its deliveries. `status` keeps the events that have
/// at least one delivery in that state; `event_type` filters on the type.
pub fn events(
    db: &Db,
    status: Option<&str>,
    event_type: Option<&str>,
    limit: i64,
) -> anyhow::Result<Vec<EventView>> {
    let r = db.query(
        "SELECT e.seq, e.envelope, e.extras, e.received_at FROM broker_events e WHERE (?1 IS NULL OR EXISTS (SELECT 1 FROM broker_deliveries d WHERE d.event_seq = e.seq AND d.status = ?1)) AND (?2 IS NULL OR e.event_type = ?2) ORDER BY e.seq DESC LIMIT ?3",
        &[opt_text(status), opt_text(event_type), int(limit)],
    )?;
    let mut out = Vec::new();
    for row in r.rows() {
        let mut view = event_view(&row)?;
        let d = db.query(
            &format!(
                "SELECT {DELIVERY_COLUMNS} FROM broker_deliveries d JOIN broker_events e ON e.seq = d.event_seq WHERE d.event_seq = ? ORDER BY d.id"
            ),
            &[int(view.seq)],
        )?;
        view.deliveries = Some(delivery_views(&d, false)?);
        out.push(view);
    }
    Ok(out)
}
