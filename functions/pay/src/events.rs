//! `POST /events/pay`: the CloudEvents pay consumes (AllocationFailed, GrabCancelled),
//! decoded at the edge and turned into a [`RefundPayment`] command.
//! Answers 200 when applied, duplicate or irrelevant; 400 for poison; 5xx to be retried.

use crate::api::flush_after_commit;
use crate::config::Config;
use crate::db;
use crate::COMPONENT;
use chrono::Utc;
use htaxi_shared::domain::payment::{self, RefundPayment, RefundTrigger};
use htaxi_shared::events::DomainEvent;
use htaxi_shared::log;
use htaxi_shared::platform::http::{self, EventOutcome, RequestContext};
use htaxi_shared::platform::inbox::{self, Delivery};
use htaxi_shared::platform::outbox;
use htaxi_shared::problem::ApiError;
use spin_sdk::http::{Request, Response};

/// Decode, dispatch and apply one CloudEvent.
pub fn receive(ctx: &RequestContext, req: &Request) -> Result<Response, ApiError> {
    let env = http::cloudevent(req)?;
    let ctx = ctx.for_event(&env);
    let result = apply(&ctx, &env);
    Ok(http::respond(&ctx, result))
}

fn apply(ctx: &RequestContext, env: &htaxi_shared::events::Envelope) -> Result<Response, ApiError> {
    let event = DomainEvent::from_envelope(env, chrono::Utc::now())?;
    let cmd = match &event {
        DomainEvent::GrabCancelled(e) => RefundPayment {
            grab_id: e.grab_id.clone(),
            trigger: RefundTrigger::GrabCancelled,
            reason: e.reason.clone(),
        },
        DomainEvent::AllocationFailed(e) => RefundPayment {
            grab_id: e.grab_id.clone(),
            trigger: RefundTrigger::AllocationFailed,
            reason: e.reason.clone(),
        },
        other => {
            return Err(ApiError::InvalidEvent(format!(
                "pay does not subscribe to {}",
                other.event_type().as_str()
            )))
        }
    };
    let config = Config::load()?;
    let db = db::open()?;
    let outcome = db.transaction(|tx| -> Result<EventOutcome, ApiError> {
        if inbox::record(tx, env)? == Delivery::Duplicate {
            return Ok(EventOutcome::Duplicate);
        }
        let state = db::load_state(tx, &cmd.grab_id)?;
        let decided = payment::decide_refund(&state, &cmd, Utc::now());
        for fact in &decided {
            db::persist(tx, &cmd.grab_id, fact, &ctx.correlation)?;
            if let Some(public) = fact.published() {
                let out =
                    public.to_envelope(&ctx.correlation, ctx.traceparent.as_deref(), Utc::now());
                outbox::enqueue(tx, &out)?;
            }
        }
        Ok(if decided.is_empty() {
            EventOutcome::Ignored
        } else {
            EventOutcome::Applied("refunded")
        })
    })?;
    log!(
        COMPONENT,
        ctx.correlation,
        "{} {} for grab {}: {}",
        env.event_type,
        env.id,
        cmd.grab_id,
        outcome.word()
    );
    if outcome.changed() {
        flush_after_commit(ctx, &db, &config);
    }
    Ok(http::event_handled(ctx, outcome))
}
