//! Delivery: claim a due row, POST the event to the Trigger's subscriber in binary mode,
//! read the answer with [`policy::next`], record the outcome. Each claim and each record
//! is its own short transaction: no SQLite write lock is held while a subscriber runs
//! (subscribers publish back into the broker, re-entrantly, while we wait on them).

use crate::db::{self, AttemptRecord, Claimed};
use crate::manifest::Wiring;
use crate::policy::{self, Attempt, DeadLetter, Next};
use htaxi_shared::platform::client::{self, OutboundRequest, SendFailure};
use htaxi_shared::platform::db::Db;
use serde::Serialize;
use std::time::{SystemTime, UNIX_EPOCH};

/// A lease outlives the attempt's timeout by this much before another instance may retake it.
const LEASE_SLACK_MS: i64 = 5_000;

/// What a delivery run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Attempts that ended delivered.
    pub delivered: usize,
    /// Attempts that failed and were rescheduled.
    pub retried: usize,
    /// Attempts that ended in a dead letter.
    pub dead_lettered: usize,
    /// Rows still pending after the run.
    pub pending: usize,
}

/// Now, in unix milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Deliver due rows (those of event `prefer_seq` first), at most `max_attempts` of them.
/// Never sleeps: a retry that is not due yet is left to a later run.
pub fn run(
    db: &Db,
    wiring: &Wiring,
    prefer_seq: Option<i64>,
    max_attempts: usize,
) -> anyhow::Result<Report> {
    let mut report = Report::default();
    let lease = |trigger: &str| {
        wiring
            .trigger(trigger)
            .map(|t| t.delivery.timeout.as_millis() as i64)
            .unwrap_or(0)
            + LEASE_SLACK_MS
    };
    for _ in 0..max_attempts {
        let Some(claimed) = db::claim_next(db, now_ms(), prefer_seq, lease)? else {
            break;
        };
        attempt(db, wiring, &claimed, &mut report)?;
    }
    report.pending = db::count_pending(db)?;
    Ok(report)
}

/// Dead-letter a delivery that could not even be attempted (no subscriber answer to record).
fn dead_letter_unsent(
    db: &Db,
    c: &Claimed,
    what: &str,
    reason: String,
    report: &mut Report,
) -> anyhow::Result<()> {
    let corr = c.event.envelope.correlation();
    htaxi_shared::log!(crate::COMPONENT, corr, "dead letter: {what}: {reason}");
    report.dead_lettered += 1;
    let dl = DeadLetter {
        reason,
        knativeerrorcode: None,
        knativeerrordata: None,
    };
    db::record_dead_letter(
        db,
        c.id,
        &dl,
        &AttemptRecord {
            status: None,
            error: None,
            response: None,
        },
    )
}

/// One attempt at one delivery, and its record.
fn attempt(db: &Db, wiring: &Wiring, c: &Claimed, report: &mut Report) -> anyhow::Result<()> {
    let corr = c.event.envelope.correlation();
    let what = format!(
        "{} {} (offset {}) -> {} [{}] attempt {}",
        c.event.envelope.event_type,
        c.event.envelope.id,
        c.event_seq,
        c.subscriber,
        c.trigger,
        c.attempt
    );
    let Some(trigger) = wiring.trigger(&c.trigger) else {
        let reason = format!("Trigger {} is no longer in the manifests", c.trigger);
        return dead_letter_unsent(db, c, &what, reason, report);
    };
    let msg = match c.event.delivery_message(c.event_seq) {
        Ok(m) => m,
        Err(e) => {
            let reason = format!("the stored event cannot be re-encoded: {e}");
            return dead_letter_unsent(db, c, &what, reason, report);
        }
    };
    let sent = client::send(&OutboundRequest {
        method: "POST",
        url: c.subscriber.clone(),
        headers: msg.headers,
        body: msg.body,
        timeout: trigger.delivery.timeout,
    });
    let outcome = match sent {
        Ok(resp) => Attempt::Answered {
            status: resp.status,
            body: resp.body,
        },
        Err(SendFailure::TimedOut(_)) => Attempt::TimedOut,
        Err(e) => Attempt::Transport(e.to_string()),
    };
    let described = policy::describe(&outcome);
    let rec = AttemptRecord {
        status: match &outcome {
            Attempt::Answered { status, .. } => Some(*status),
            _ => None,
        },
        error: match &outcome {
            Attempt::Answered {
                status: 200..=299, ..
            } => None,
            _ => Some(described.as_str()),
        },
        response: match &outcome {
            Attempt::Answered { body, .. } if !body.is_empty() => Some(db::excerpt(body)),
            _ => None,
        },
    };
    match policy::next(&trigger.delivery, c.attempt, &outcome) {
        Next::Delivered => {
            htaxi_shared::log!(crate::COMPONENT, corr, "delivered: {what}: {described}");
            report.delivered += 1;
            db::record_delivered(db, c.id, &rec)
        }
        Next::RetryAfter(wait) => {
            htaxi_shared::log!(
                crate::COMPONENT,
                corr,
                "retry in {} ms: {what}: {described}",
                wait.as_millis()
            );
            report.retried += 1;
            let wait_ms = i64::try_from(wait.as_millis()).unwrap_or(i64::MAX / 2);
            db::record_retry(db, c.id, now_ms().saturating_add(wait_ms), &rec)
        }
        Next::DeadLetter(dl) => {
            htaxi_shared::log!(crate::COMPONENT, corr, "dead letter: {what}: {}", dl.reason);
            report.dead_lettered += 1;
            db::record_dead_letter(db, c.id, &dl, &rec)
        }
    }
}
