//! `POST /events/grab-status`: every one of the ten saga events. The delivery's inbox row
//! and the ride's updated facts commit in one transaction; a duplicate changes nothing.
//! Answers 204 with no body (a Knative Kafka Broker treats a non-CloudEvent reply body as
//! a failure); the `htaxi-outcome` header says `applied` or `duplicate`.

use crate::db;
use crate::COMPONENT;
use htaxi_shared::domain::grab_status::{derive, AppliedEvent, GrabFacts, Recorded};
use htaxi_shared::events::DomainEvent;
use htaxi_shared::ids::CorrelationId;
use htaxi_shared::log;
use htaxi_shared::platform::http::{self, EventOutcome, RequestContext};
use htaxi_shared::platform::inbox::{self, Delivery};
use htaxi_shared::problem::ApiError;
use spin_sdk::http::{Request, Response};

/// Receive one CloudEvent (binary or structured mode).
pub fn receive(ctx: &RequestContext, req: &Request) -> Result<Response, ApiError> {
    let env = http::cloudevent(req)?;
    let event = DomainEvent::from_envelope(&env, chrono::Utc::now())?;
    let ctx = ctx.for_event(&env);
    let grab = event.grab_id().clone();
    // Only a usable correlation id is kept as a fact (an injected event may carry anything).
    let correlation = env
        .correlation_id
        .as_deref()
        .and_then(|c| CorrelationId::parse(c).ok())
        .map(String::from);
    let applied = AppliedEvent::of(&event, env.id.clone(), correlation);
    let db = db::open()?;
    let outcome = db.transaction(|tx| {
        if inbox::record(tx, &env)? == Delivery::Duplicate {
            return Ok::<_, ApiError>(None);
        }
        let mut facts = db::facts(tx, &grab)?.unwrap_or_else(GrabFacts::default);
        let recorded = facts.record(&event, applied);
        if recorded == Recorded::Applied {
            db::save(tx, &grab, &facts)?;
        }
        Ok(Some((recorded, derive(&grab, &facts))))
    })?;
    let handled = match &outcome {
        Some((Recorded::Applied, view)) => {
            log!(
                COMPONENT,
                ctx.correlation,
                "grab {grab}: {} applied → grabStatus {} paymentStatus {:?} allocationStatus {:?}",
                env.event_type,
                view.grab_status.as_str(),
                view.payment_status,
                view.allocation_status
            );
            EventOutcome::Applied("applied")
        }
        Some((Recorded::AlreadyApplied, _)) | None => {
            log!(
                COMPONENT,
                ctx.correlation,
                "grab {grab}: {} {} is a duplicate",
                env.event_type,
                env.id
            );
            EventOutcome::Duplicate
        }
    };
    Ok(http::event_handled(&ctx, handled))
}
