//! The dispatcher: the Kafka broker's delivery half. A run claims due rows (one
//! statement that leases them), POSTs each event to its Trigger's subscriber in binary
//! mode with several requests in flight at once (spin-sdk's async outbound HTTP), reads
//! each answer with [`policy::next`] and records the answers that are in together, one
//! statement each (in one short transaction when there are several). No transaction is
//! open while a subscriber runs, and a leased row is never claimed twice, so dispatch
//! calls running at once send disjoint rows.
//!
//! A long-poll run keeps claiming until its window closes, checking for new rows every
//! few milliseconds ([`POLL_MIN`], backing off while idle), so a loop of dispatch calls
//! picks an event up within milliseconds without spinning; it answers once the window
//! is over and nothing is in flight.

use crate::db::{self, AttemptRecord, Claimed};
use crate::manifest::Wiring;
use crate::policy::{self, Attempt, DeadLetter, Next};
use futures::future::{Either, FutureExt};
use futures::stream::{FuturesUnordered, StreamExt};
use htaxi_shared::platform::client::{self, OutboundRequest, SendFailure};
use htaxi_shared::platform::db::Db;
use serde::Serialize;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A lease outlives the longest attempt timeout by this much before another instance
/// may retake the row.
const LEASE_SLACK_MS: i64 = 5_000;

/// Deliveries one run keeps in flight at most.
const MAX_IN_FLIGHT: usize = 64;

/// How often a run looks for new due rows while it waits: every 2 ms right after
/// activity, backing off to 25 ms while idle (an idle loop costs next to nothing, a busy
/// one picks each new row up within a few milliseconds).
const POLL_MIN: Duration = Duration::from_millis(2);
const POLL_MAX: Duration = Duration::from_millis(25);

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

impl Report {
    /// Whether the run attempted anything (an idle run logs nothing).
    pub fn did_something(&self) -> bool {
        self.delivered + self.retried + self.dead_lettered > 0
    }
}

/// How long a run may take and how much it may send.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// Keep looking for new rows this long; zero sends what is due now and answers.
    pub wait: Duration,
    /// Attempts one run makes at most.
    pub max_attempts: usize,
}

/// Now, in unix milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// One delivery in flight: the claimed row and the subscriber's answer, once it comes.
type InFlight = std::pin::Pin<Box<dyn std::future::Future<Output = (Claimed, Attempt)>>>;

/// Deliver due rows within `window`. Never sleeps past the window for a backoff: a
/// retry that is not due yet is left to a later run.
pub async fn run(db: &Db, wiring: &Wiring, window: Window) -> anyhow::Result<Report> {
    let mut report = Report::default();
    let lease_ms = lease_ms(wiring);
    let until = Instant::now() + window.wait;
    let mut attempts = 0;
    let mut in_flight: FuturesUnordered<InFlight> = FuturesUnordered::new();
    let mut poll = POLL_MIN;
    loop {
        let open = Instant::now() < until;
        // A zero window (a flush) claims while rows are due; a long poll while it is open.
        let may_claim = (open || window.wait.is_zero()) && attempts < window.max_attempts;
        let budget = (window.max_attempts - attempts).min(MAX_IN_FLIGHT - in_flight.len());
        let mut claimed_now = 0;
        if may_claim && budget > 0 && db::any_due(db, now_ms())? {
            let now = now_ms();
            for claimed in db::claim_due(db, now, budget, now + lease_ms)? {
                poll = POLL_MIN;
                attempts += 1;
                claimed_now += 1;
                match start(wiring, claimed) {
                    Ok(sending) => in_flight.push(sending),
                    Err((claimed, what, reason)) => db.transaction(|tx| {
                        dead_letter_unsent(tx, &claimed, &what, reason, &mut report)
                    })?,
                }
            }
        }
        if in_flight.is_empty() {
            if claimed_now > 0 {
                continue;
            }
            if !open || !may_claim {
                break;
            }
            client::sleep(poll).await;
            poll = (poll * 2).min(POLL_MAX);
            continue;
        }
        // The next answer, or a tick to look for new rows meanwhile; every answer that
        // is in by then is recorded in one transaction.
        let tick = client::sleep(POLL_MIN);
        futures::pin_mut!(tick);
        if let Either::Left((Some(first), _)) =
            futures::future::select(in_flight.next(), tick).await
        {
            let mut answers = vec![first];
            while let Some(Some(next)) = in_flight.next().now_or_never() {
                answers.push(next);
            }
            record_answers(db, wiring, answers, &mut report)?;
        }
    }
    report.pending = db::count_pending(db)?;
    Ok(report)
}

/// How long a claimed row stays leased: the longest Trigger timeout plus slack (one
/// lease for the whole claim, which is one statement).
fn lease_ms(wiring: &Wiring) -> i64 {
    let longest = wiring
        .triggers
        .iter()
        .map(|t| t.delivery.timeout)
        .chain(std::iter::once(wiring.defaults.timeout))
        .max()
        .unwrap_or_default();
    i64::try_from(longest.as_millis()).unwrap_or(i64::MAX / 4) + LEASE_SLACK_MS
}

fn describe(c: &Claimed) -> String {
    format!(
        "{} {} (offset {}) -> {} [{}] attempt {}",
        c.event.envelope.event_type,
        c.event.envelope.id,
        c.event_seq,
        c.subscriber,
        c.trigger,
        c.attempt
    )
}

/// Start one attempt; a row that cannot be sent at all comes back with the reason.
#[allow(clippy::result_large_err)]
fn start(wiring: &Wiring, c: Claimed) -> Result<InFlight, (Claimed, String, String)> {
    let Some(trigger) = wiring.trigger(&c.trigger) else {
        let reason = format!("Trigger {} is no longer in the manifests", c.trigger);
        return Err((c.clone(), describe(&c), reason));
    };
    let msg = match c.event.delivery_message(c.event_seq) {
        Ok(m) => m,
        Err(e) => {
            let reason = format!("the stored event cannot be re-encoded: {e}");
            return Err((c.clone(), describe(&c), reason));
        }
    };
    let request = OutboundRequest {
        method: "POST",
        url: c.subscriber.clone(),
        headers: msg.headers,
        body: msg.body,
        timeout: trigger.delivery.timeout,
    };
    Ok(Box::pin(async move {
        let outcome = match client::send_async(&request).await {
            Ok(resp) => Attempt::Answered {
                status: resp.status,
                body: resp.body,
            },
            Err(SendFailure::TimedOut(_)) => Attempt::TimedOut,
            Err(e) => Attempt::Transport(e.to_string()),
        };
        (c, outcome)
    }))
}

/// Dead-letter a delivery that could not even be attempted (no subscriber answer to
/// record), in the caller's transaction.
fn dead_letter_unsent(
    tx: &Db,
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
    let rec = AttemptRecord {
        status: None,
        error: None,
        response: None,
    };
    db::record_dead_letter(tx, c.id, &dl, &rec)
}

/// Record the answers that are in, one statement each: in one transaction when there are
/// several, as a bare statement when there is one (the shared runner waits for the write
/// lock either way).
fn record_answers(
    db: &Db,
    wiring: &Wiring,
    answers: Vec<(Claimed, Attempt)>,
    report: &mut Report,
) -> anyhow::Result<()> {
    let several = answers.len() > 1;
    let each = |tx: &Db| {
        answers
            .into_iter()
            .try_for_each(|(c, outcome)| record(tx, wiring, &c, outcome, report))
    };
    if several {
        db.transaction(each)
    } else {
        each(db)
    }
}

/// Record one attempt's outcome on its row: one statement, in the caller's transaction
/// if there is one.
fn record(
    tx: &Db,
    wiring: &Wiring,
    c: &Claimed,
    outcome: Attempt,
    report: &mut Report,
) -> anyhow::Result<()> {
    let corr = c.event.envelope.correlation();
    let what = describe(c);
    let Some(trigger) = wiring.trigger(&c.trigger) else {
        let reason = format!("Trigger {} is no longer in the manifests", c.trigger);
        return dead_letter_unsent(tx, c, &what, reason, report);
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
            db::record_delivered(tx, c.id, &rec)
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
            db::record_retry(tx, c.id, now_ms().saturating_add(wait_ms), &rec)
        }
        Next::DeadLetter(dl) => {
            htaxi_shared::log!(crate::COMPONENT, corr, "dead letter: {what}: {}", dl.reason);
            report.dead_lettered += 1;
            db::record_dead_letter(tx, c.id, &dl, &rec)
        }
    }
}
