//! `POST /events/grab`: the CloudEvents grab consumes (TaxiAllocated, RideStarted,
//! RideCompleted, AllocationFailed), decoded at the edge and folded into the grab with
//! `domain::grab::apply` (which never moves a grab backwards).
//! Answers 204 when applied, duplicate or irrelevant; 400 for poison; 5xx to be retried.

use crate::db;
use crate::COMPONENT;
use htaxi_shared::domain::grab;
use htaxi_shared::events::{DomainEvent, Envelope, EventType};
use htaxi_shared::log;
use htaxi_shared::platform::http::{self, EventOutcome, RequestContext};
use htaxi_shared::platform::inbox::{self, Delivery};
use htaxi_shared::problem::ApiError;
use spin_sdk::http::{Request, Response};

/// The event types grab subscribes to.
const SUBSCRIBED: [EventType; 4] = [
    EventType::TaxiAllocated,
    EventType::RideStarted,
    EventType::RideCompleted,
    EventType::AllocationFailed,
];

/// Decode, dispatch and apply one CloudEvent.
pub fn receive(ctx: &RequestContext, req: &Request) -> Result<Response, ApiError> {
    let env = http::cloudevent(req)?;
    let ctx = ctx.for_event(&env);
    let result = apply(&ctx, &env);
    Ok(http::respond(&ctx, result))
}

fn apply(ctx: &RequestContext, env: &Envelope) -> Result<Response, ApiError> {
    let event = DomainEvent::from_envelope(env, chrono::Utc::now())?;
    if !SUBSCRIBED.contains(&event.event_type()) {
        return Err(ApiError::InvalidEvent(format!(
            "grab does not subscribe to {}",
            event.event_type().as_str()
        )));
    }
    let grab_id = event.grab_id().clone();
    let db = db::open()?;
    let (outcome, status) = db.transaction(|tx| -> Result<_, ApiError> {
        if inbox::record(tx, env)? == Delivery::Duplicate {
            return Ok((EventOutcome::Duplicate, None));
        }
        let Some(current) = db::find(tx, &grab_id)? else {
            return Ok((EventOutcome::Skipped("unknown-grab"), None));
        };
        let next = grab::apply(&current, &event);
        if next == current {
            return Ok((EventOutcome::Ignored, Some(current.status)));
        }
        db::update(tx, &next)?;
        Ok((EventOutcome::Applied("applied"), Some(next.status)))
    })?;
    log!(
        COMPONENT,
        ctx.correlation,
        "{} {} for grab {grab_id}: {}{}",
        env.event_type,
        env.id,
        outcome.word(),
        status
            .map(|s| format!(" (grab is {})", s.as_str()))
            .unwrap_or_default()
    );
    Ok(http::event_handled(ctx, outcome))
}
