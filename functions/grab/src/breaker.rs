//! The pay circuit breaker's shell: the pure transitions live in
//! `htaxi_shared::domain::grab::Breaker`; here they run inside a write transaction on
//! the one `pay_breaker` row, so every grab instance shares the breaker and exactly one
//! of them claims the half-open trial.

use crate::db;
use crate::COMPONENT;
use htaxi_shared::domain::grab::{Admission, Breaker, BreakerPolicy};
use htaxi_shared::ids::CorrelationId;
use htaxi_shared::log;
use htaxi_shared::platform::db::Db;

/// Ask the shared breaker whether to call pay now, inside the caller's write transaction
/// (claims the trial when half-opening).
pub fn admit(
    tx: &Db,
    policy: &BreakerPolicy,
    now_ms: i64,
    corr: &CorrelationId,
) -> anyhow::Result<Admission> {
    let before = db::load_breaker(tx)?;
    let (after, admission) = before.admit(policy, now_ms);
    if after != before {
        db::save_breaker(tx, &after)?;
        log_transition(&before, &after, corr);
    }
    Ok(admission)
}

/// Record how a call went, inside the caller's write transaction (the one that settles
/// the grab); returns the breaker as it now stands.
pub fn record(
    tx: &Db,
    policy: &BreakerPolicy,
    now_ms: i64,
    failure: Option<&str>,
    corr: &CorrelationId,
) -> anyhow::Result<Breaker> {
    let before = db::load_breaker(tx)?;
    let after = match failure {
        None => before.on_success(),
        Some(reason) => before.on_failure(policy, now_ms, reason),
    };
    if after != before {
        db::save_breaker(tx, &after)?;
        log_transition(&before, &after, corr);
    }
    Ok(after)
}

fn log_transition(before: &Breaker, after: &Breaker, corr: &CorrelationId) {
    if before.state != after.state {
        log!(
            COMPONENT,
            corr,
            "pay circuit breaker {} -> {} (consecutive failures {}, last failure: {})",
            before.state.as_str(),
            after.state.as_str(),
            after.consecutive_failures,
            after.last_failure_reason.as_deref().unwrap_or("-")
        );
    }
}
