//! CloudEvents in (`POST /events/allocate`) and out (the outbox). allocate consumes
//! `PaymentApproved` (allocate a taxi) and `GrabCancelled` (tombstone + release); any other
//! type is poison (400). Applied, duplicate and irrelevant-by-state events all answer
//! 204 with no body (a Knative Kafka Broker treats a non-CloudEvent reply body as a
//! failure); the `htaxi-outcome` header says which it was.

use crate::api::domain_error;
use crate::config::Config;
use crate::db;
use crate::COMPONENT;
use chrono::{DateTime, Utc};
use htaxi_shared::domain::allocation::{
    decide_allocate, decide_cancel, AllocateTaxi, AllocationEvent, CancelGrab, GrabAllocation,
};
use htaxi_shared::events::{DomainEvent, Envelope, GrabCancelled, PaymentApproved};
use htaxi_shared::ids::{AllocationId, CorrelationId, GrabId};
use htaxi_shared::log;
use htaxi_shared::platform::db::Db;
use htaxi_shared::platform::http::{self, EventOutcome, RequestContext};
use htaxi_shared::platform::inbox::{self, Delivery};
use htaxi_shared::platform::outbox;
use htaxi_shared::problem::ApiError;
use spin_sdk::http::{Request, Response};

/// What a decision did, for the `htaxi-outcome` header and the log. The last event is
/// the most telling one (a cancel tombstones, then releases).
fn outcome_of(events: &[AllocationEvent]) -> EventOutcome {
    let word = |e: &AllocationEvent| match e {
        AllocationEvent::TaxiOffered { .. } => "offered",
        AllocationEvent::OfferPassedOn { .. } => "passed on",
        AllocationEvent::TaxiAllocated(_) => "allocated",
        AllocationEvent::AllocationFailed(_) => "failed",
        AllocationEvent::GrabTombstoned { .. } => "tombstoned",
        AllocationEvent::AllocationCancelled(_) => "cancelled",
        AllocationEvent::RideStarted(_) => "started",
        AllocationEvent::RideCompleted(_) => "completed",
    };
    events
        .last()
        .map_or(EventOutcome::Ignored, |e| EventOutcome::Applied(word(e)))
}

/// `POST /events/allocate`.
pub fn receive(ctx: &RequestContext, req: &Request) -> Result<Response, ApiError> {
    let env = http::cloudevent(req)?;
    let event = DomainEvent::from_envelope(&env, chrono::Utc::now())?;
    let ctx = ctx.for_event(&env);
    let outcome = match event {
        DomainEvent::PaymentApproved(e) => on_payment_approved(&ctx, &env, e)?,
        DomainEvent::GrabCancelled(e) => on_grab_cancelled(&ctx, &env, e)?,
        other => {
            return Err(ApiError::InvalidEvent(format!(
                "{} is not consumed by {COMPONENT}",
                other.event_type().as_str()
            )))
        }
    };
    log!(
        COMPONENT,
        ctx.correlation,
        "{} {} → {}",
        env.event_type,
        env.id,
        outcome.word()
    );
    Ok(http::event_handled(&ctx, outcome))
}

/// PaymentApproved: offer the ride to the nearest available, on-duty taxi within the
/// radius, or fail.
fn on_payment_approved(
    ctx: &RequestContext,
    env: &Envelope,
    e: PaymentApproved,
) -> Result<EventOutcome, ApiError> {
    consume(ctx, env, &e.grab_id, |tx, state, config, now| {
        let cmd = AllocateTaxi {
            grab_id: e.grab_id.clone(),
            payment_id: e.payment_id.clone(),
            pickup: e.starting_point.clone(),
            candidates: db::nearest_candidates(
                tx,
                &e.starting_point,
                config.offers.radius_m,
                state.offered_taxis.len() + 1,
            )?,
            policy: config.offers,
            allocation_id: AllocationId::new_random(),
            now,
        };
        decide_allocate(&state, cmd).map_err(domain_error)
    })
}

/// GrabCancelled: tombstone the grab and release an active allocation.
fn on_grab_cancelled(
    ctx: &RequestContext,
    env: &Envelope,
    e: GrabCancelled,
) -> Result<EventOutcome, ApiError> {
    consume(ctx, env, &e.grab_id, |_, state, _, now| {
        let cmd = CancelGrab {
            grab_id: e.grab_id.clone(),
            reason: e.reason.clone(),
            now,
        };
        decide_cancel(&state, cmd).map_err(domain_error)
    })
}

/// Every consumer's shape: in ONE transaction (BEGIN IMMEDIATE) record the delivery in the
/// inbox (a duplicate stops there), load the grab's state, decide, persist and enqueue;
/// then flush the outbox.
fn consume(
    ctx: &RequestContext,
    env: &Envelope,
    grab_id: &GrabId,
    decide: impl FnOnce(
        &Db,
        GrabAllocation,
        &Config,
        DateTime<Utc>,
    ) -> Result<Vec<AllocationEvent>, ApiError>,
) -> Result<EventOutcome, ApiError> {
    let config = Config::load()?;
    let db = db::open()?;
    let now = crate::now();
    let outcome = db.transaction(|tx| {
        if inbox::record(tx, env)? == Delivery::Duplicate {
            return Ok::<_, ApiError>(EventOutcome::Duplicate);
        }
        let state = db::grab_state(tx, grab_id)?;
        let events = decide(tx, state, &config, now)?;
        record_all(
            tx,
            &events,
            &ctx.correlation,
            ctx.traceparent.as_deref(),
            now,
        )?;
        Ok(outcome_of(&events))
    })?;
    flush_after_commit(&db, &config, &ctx.correlation);
    Ok(outcome)
}

/// Persist decided events and enqueue the published ones, inside the caller's transaction.
/// One log line per decision.
pub fn record_all(
    tx: &Db,
    events: &[AllocationEvent],
    correlation: &CorrelationId,
    traceparent: Option<&str>,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    for event in events {
        db::persist(tx, event, correlation)?;
        log!(COMPONENT, correlation, "{}", describe(event));
        if let Some(published) = event.published() {
            outbox::enqueue(tx, &published.to_envelope(correlation, traceparent, now))?;
        }
    }
    Ok(())
}

fn describe(event: &AllocationEvent) -> String {
    match event {
        AllocationEvent::TaxiOffered { event: e, .. } => format!(
            "grab {} offered (offer {}) to taxi {} ({}) {} m away as allocation {} until {}",
            e.grab_id,
            e.offer_number,
            e.taxi_num,
            e.taxi_id,
            e.distance_meters,
            e.allocation_id,
            e.expires_at
        ),
        AllocationEvent::OfferPassedOn {
            allocation_id,
            grab_id,
            taxi_id,
            end,
            ..
        } => format!(
            "offer {allocation_id} of grab {grab_id} to taxi {taxi_id} ended: {}; taxi released",
            end.reason()
        ),
        AllocationEvent::TaxiAllocated(e) => format!(
            "allocation {} accepted by taxi {} ({}): taxi allocated to grab {}",
            e.allocation_id, e.taxi_num, e.taxi_id, e.grab_id
        ),
        AllocationEvent::AllocationFailed(e) => {
            format!("grab {} allocation failed: {}", e.grab_id, e.reason)
        }
        AllocationEvent::GrabTombstoned { grab_id, .. } => {
            format!("grab {grab_id} cancelled: no taxi will be allocated for it")
        }
        AllocationEvent::AllocationCancelled(e) => format!(
            "allocation {} cancelled, taxi {} released: {}",
            e.allocation_id, e.taxi_id, e.reason
        ),
        AllocationEvent::RideStarted(e) => format!(
            "allocation {} picked up by taxi {}: ride started",
            e.allocation_id, e.taxi_num
        ),
        AllocationEvent::RideCompleted(e) => format!(
            "allocation {} completed by taxi {}: taxi available again",
            e.allocation_id, e.taxi_num
        ),
    }
}

/// Deliver pending outbox rows after a commit (a broker outage is logged, not raised).
pub fn flush_after_commit(db: &Db, config: &Config, correlation: &CorrelationId) {
    outbox::flush_after_commit(COMPONENT, correlation, db, &config.broker_url);
}
