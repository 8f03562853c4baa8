//! grab's HTTP handlers: each reads parse → load → decide → persist → respond.

use crate::breaker;
use crate::config::Config;
use crate::db;
use crate::pay_client;
use crate::COMPONENT;
use chrono::Utc;
use htaxi_shared::domain::grab::{
    self, secs_ceil, Admission, Breaker, Grab, GrabError, GrabStatus, PayOutcome, RequestGrab,
    RequestGrabDto,
};
use htaxi_shared::domain::{GeoPoint, PhoneNumber};
use htaxi_shared::events::DomainEvent;
use htaxi_shared::ids::GrabId;
use htaxi_shared::log;
use htaxi_shared::platform::db::Db;
use htaxi_shared::platform::http::{self, RequestContext};
use htaxi_shared::platform::idempotency::{self, StoredResponse};
use htaxi_shared::platform::outbox;
use htaxi_shared::problem::ApiError;
use serde::Serialize;
use spin_sdk::http::{Method, Request, Response};

/// The idempotency scope of `POST /grabs`.
const IDEMPOTENCY_SCOPE: &str = "POST /grabs";
/// `GET /grabs?phoneNumber=`: default and largest page.
const LIST_DEFAULT: u32 = 50;
const LIST_MAX: u32 = 500;
/// A `Requested` grab older than its longest possible pay call plus this is stale.
const STALE_MARGIN_MS: u64 = 30_000;

/// A grab as the API shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GrabView<'a> {
    pub id: &'a GrabId,
    pub grab_status: &'static str,
    pub phone_number: &'a PhoneNumber,
    pub starting_point: &'a GeoPoint,
    pub destination: &'a GeoPoint,
    pub estimated_fee: i64,
    pub payment_id: Option<String>,
    pub allocation_id: Option<String>,
    pub taxi_id: Option<String>,
    pub taxi_num: Option<&'a str>,
    pub reason: Option<&'a str>,
    pub correlation_id: &'a str,
    pub created_at: String,
    pub updated_at: String,
}

impl<'a> From<&'a Grab> for GrabView<'a> {
    fn from(g: &'a Grab) -> Self {
        Self {
            id: &g.id,
            grab_status: g.status.as_str(),
            phone_number: &g.phone_number,
            starting_point: &g.starting_point,
            destination: &g.destination,
            estimated_fee: g.estimated_fee.as_krw(),
            payment_id: g.payment_id.as_ref().map(ToString::to_string),
            allocation_id: g.allocation_id.as_ref().map(ToString::to_string),
            taxi_id: g.taxi_id.as_ref().map(ToString::to_string),
            taxi_num: g.taxi_num.as_deref(),
            reason: g.reason.as_deref(),
            correlation_id: g.correlation_id.as_str(),
            created_at: db::timestamp(g.created_at),
            updated_at: db::timestamp(g.updated_at),
        }
    }
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// `POST /grabs`: store the grab, charge it through pay, answer 201 (paid), 402
/// (rejected) or 503 + Retry-After (pay unavailable or breaker open; an open breaker
/// stores nothing). With `Idempotency-Key`, a retry replays the first final answer.
pub fn create_grab(ctx: &RequestContext, req: &Request) -> Result<Response, ApiError> {
    let config = Config::load()?;
    let idem_key = idempotency::key(req)?;
    let dto: RequestGrabDto = http::json_body(req)?;
    let cmd = RequestGrab::try_from(dto)?;

    let db = db::open()?;
    let fingerprint = idempotency::fingerprint(req);
    if let Some(key) = &idem_key {
        if let Some(stored) = idempotency::lookup(&db, IDEMPOTENCY_SCOPE, key, &fingerprint)? {
            log!(
                COMPONENT,
                ctx.correlation,
                "replaying the answer for Idempotency-Key {key}"
            );
            return Ok(stored.into_response(ctx.correlation.as_str()));
        }
    }

    let admission = breaker::admit(&db, &config.breaker, now_ms(), &ctx.correlation)?;
    if let Admission::Refuse { retry_after_ms } = admission {
        return Err(ApiError::Unavailable {
            detail: "the payment service is unavailable (circuit open); nothing was stored, try again later"
                .into(),
            retry_after_secs: secs_ceil(retry_after_ms),
        });
    }

    let (requested, event) = grab::request(
        GrabId::new_random(),
        cmd,
        ctx.correlation.clone(),
        Utc::now(),
    );
    db.transaction(|tx| -> Result<(), ApiError> {
        db::insert(tx, &requested)?;
        enqueue(tx, ctx, &event)?;
        Ok(())
    })?;
    log!(
        COMPONENT,
        ctx.correlation,
        "grab {} requested ({} KRW)",
        requested.id,
        requested.estimated_fee.as_krw()
    );

    // A half-open trial is one quick probe, not a full retry cycle.
    let attempts = if admission == Admission::Trial {
        1
    } else {
        config.pay_max_attempts
    };
    let call = pay_client::charge(&config, ctx, &requested, attempts);
    let failure = match &call.outcome {
        PayOutcome::Unavailable { detail } => Some(detail.as_str()),
        _ => None,
    };
    // The rider's answer must not be lost to a breaker bookkeeping failure.
    let breaker_now = breaker::record(&db, &config.breaker, now_ms(), failure, &ctx.correlation)
        .unwrap_or_else(|e| {
            log!(
                COMPONENT,
                ctx.correlation,
                "recording the pay call in the breaker failed: {e:#}"
            );
            Breaker::default()
        });
    log!(
        COMPONENT,
        ctx.correlation,
        "pay call for grab {} after {} attempt(s): {:?}",
        requested.id,
        call.attempts,
        call.outcome
    );

    let response = db.transaction(|tx| -> Result<Response, ApiError> {
        // Reload: the rider or an event may have moved the grab during the call.
        let current = db::find(tx, &requested.id)?
            .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("grab {} vanished", requested.id)))?;
        let settled = grab::settle_payment(&current, &call.outcome, Utc::now());
        if settled.grab != current {
            db::update(tx, &settled.grab)?;
        }
        for e in &settled.emit {
            enqueue(tx, ctx, e)?;
        }
        log!(
            COMPONENT,
            ctx.correlation,
            "grab {} is {}",
            settled.grab.id,
            settled.grab.status.as_str()
        );
        let response = creation_answer(ctx, &settled.grab, &call.outcome, &breaker_now, &config);
        if let Some(key) = &idem_key {
            let stored = StoredResponse::from_response(&response);
            idempotency::store(tx, IDEMPOTENCY_SCOPE, key, &fingerprint, &stored)?;
        }
        Ok(response)
    })?;
    flush_after_commit(ctx, &db, &config);
    Ok(response)
}

/// The rider's answer once pay has been heard from (or given up on).
fn creation_answer(
    ctx: &RequestContext,
    g: &Grab,
    outcome: &PayOutcome,
    breaker: &Breaker,
    config: &Config,
) -> Response {
    let refused = |err: ApiError| http::problem(&err, COMPONENT, Some(ctx.correlation.as_str()));
    match (g.status, outcome) {
        (GrabStatus::Rejected, _) => {
            let mut resp = refused(ApiError::PaymentRejected(
                g.reason.clone().unwrap_or_else(|| "payment rejected".into()),
            ));
            // The grab exists (as Rejected): say where.
            resp.set_header("location", format!("/grabs/{}", g.id));
            resp
        }
        (GrabStatus::Failed, PayOutcome::Unavailable { .. } | PayOutcome::RefusedAsCancelled) => {
            refused(ApiError::Unavailable {
                detail: format!(
                    "the payment service is unavailable; grab {} was not charged and is marked Failed, try again later",
                    g.id
                ),
                retry_after_secs: breaker.retry_after_secs(&config.breaker, now_ms()),
            })
        }
        _ => {
            let mut resp = http::json(201, &GrabView::from(g), ctx);
            resp.set_header("location", format!("/grabs/{}", g.id));
            resp
        }
    }
}

fn parse_id(id: &str) -> Result<GrabId, ApiError> {
    GrabId::parse(id).map_err(|_| ApiError::NotFound(format!("grab {id}")))
}

/// `GET /grabs/{id}`: 404 if unknown or not a UUID.
pub fn get_grab(ctx: &RequestContext, id: &str) -> Result<Response, ApiError> {
    let id = parse_id(id)?;
    let db = db::open()?;
    let g = db::find(&db, &id)?.ok_or_else(|| ApiError::NotFound(format!("grab {id}")))?;
    Ok(http::json(200, &GrabView::from(&g), ctx))
}

/// `GET /grabs?phoneNumber=&limit=`: a rider's grabs, newest first (422 without a valid
/// phone number or with a bad limit).
pub fn list_grabs(ctx: &RequestContext, req: &Request) -> Result<Response, ApiError> {
    let raw = http::query_param(req, "phoneNumber").ok_or_else(|| {
        ApiError::invalid("phoneNumber", "query parameter phoneNumber is required")
    })?;
    let phone = PhoneNumber::parse(&raw)?;
    let limit = match http::query_param(req, "limit") {
        None => LIST_DEFAULT,
        Some(l) => l
            .parse::<u32>()
            .ok()
            .filter(|l| (1..=LIST_MAX).contains(l))
            .ok_or_else(|| ApiError::invalid("limit", format!("must be 1-{LIST_MAX}")))?,
    };
    let db = db::open()?;
    let grabs = db::list_by_phone(&db, &phone, limit)?;
    let views: Vec<GrabView<'_>> = grabs.iter().map(GrabView::from).collect();
    Ok(http::json(200, &views, ctx))
}

/// `DELETE /grabs/{id}`: cancel before the ride starts (204, also when already
/// cancelled); 409 once started, rejected or failed; 404 if unknown.
pub fn cancel_grab(ctx: &RequestContext, id: &str) -> Result<Response, ApiError> {
    let config = Config::load()?;
    let id = parse_id(id)?;
    let db = db::open()?;
    let emitted = db.transaction(|tx| -> Result<usize, ApiError> {
        let current = db::find(tx, &id)?.ok_or_else(|| ApiError::NotFound(format!("grab {id}")))?;
        let events = grab::decide_cancel(&current, Utc::now()).map_err(|e| match e {
            GrabError::RideAlreadyStarted | GrabError::NothingToCancel(_) => {
                ApiError::Conflict(e.to_string())
            }
        })?;
        let next = events
            .iter()
            .fold(current.clone(), |g, e| grab::apply(&g, e));
        if next != current {
            db::update(tx, &next)?;
        }
        for e in &events {
            enqueue(tx, ctx, e)?;
        }
        Ok(events.len())
    })?;
    if emitted > 0 {
        log!(
            COMPONENT,
            ctx.correlation,
            "grab {id} cancelled by the rider"
        );
        flush_after_commit(ctx, &db, &config);
    } else {
        log!(
            COMPONENT,
            ctx.correlation,
            "grab {id} was already cancelled"
        );
    }
    Ok(http::empty(204, ctx))
}

/// `POST /outbox/flush/grab`: settle stale `Requested` grabs, then deliver pending
/// events. Any body is accepted (a Knative PingSource posts a CloudEvent here).
pub fn flush_outbox(ctx: &RequestContext) -> Result<Response, ApiError> {
    let config = Config::load()?;
    let db = db::open()?;
    reconcile_stale(ctx, &db, &config)?;
    outbox::flush_route(COMPONENT, ctx, &db, &config.broker_url)
}

/// Grabs left `Requested` by an instance that died before recording pay's answer are
/// settled as if pay stayed unavailable (→ `Failed` + a system `GrabCancelled`, so pay
/// refunds a charge it made and allocate releases a taxi). Runs with the periodic flush.
fn reconcile_stale(ctx: &RequestContext, db: &Db, config: &Config) -> Result<(), ApiError> {
    let longest_call_ms = u64::from(config.pay_max_attempts)
        * (config.pay_timeout.as_millis() as u64
            + grab::pay_retry_backoff_ms(config.pay_max_attempts));
    let cutoff =
        Utc::now() - chrono::Duration::milliseconds((longest_call_ms + STALE_MARGIN_MS) as i64);
    for stale in db::stale_requested(db, cutoff, outbox::BATCH as u32)? {
        db.transaction(|tx| -> Result<(), ApiError> {
            let Some(current) = db::find(tx, &stale.id)? else {
                return Ok(());
            };
            let outcome = PayOutcome::Unavailable {
                detail: "no pay answer was recorded".into(),
            };
            let settled = grab::settle_payment(&current, &outcome, Utc::now());
            if settled.grab != current {
                db::update(tx, &settled.grab)?;
                log!(
                    COMPONENT,
                    current.correlation_id,
                    "grab {} had no recorded pay answer: now {}",
                    current.id,
                    settled.grab.status.as_str()
                );
            }
            for e in &settled.emit {
                let env = e.to_envelope(
                    &current.correlation_id,
                    ctx.traceparent.as_deref(),
                    Utc::now(),
                );
                outbox::enqueue(tx, &env)?;
            }
            Ok(())
        })?;
    }
    Ok(())
}

/// The breaker as `GET /health/grab` shows it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BreakerView {
    state: &'static str,
    consecutive_failures: u32,
    failure_threshold: u32,
    cooldown_ms: i64,
    opened_at: Option<String>,
    retry_after_seconds: Option<u32>,
    last_failure_reason: Option<String>,
    last_failure_at: Option<String>,
}

/// `GET /health/grab`: 200 once the config reads and the database migrates, with the
/// pay breaker's state. Stays 200 when the breaker is open: pay being down must not get
/// grab restarted.
pub fn health(ctx: &RequestContext, req: &Request) -> Result<Response, ApiError> {
    if !matches!(req.method(), Method::Get | Method::Head) {
        return Err(ApiError::MethodNotAllowed { allow: "GET, HEAD" });
    }
    let config = Config::load()?;
    let db = db::open()?;
    let b = db::load_breaker(&db)?;
    let now = now_ms();
    let view = BreakerView {
        state: b.state.as_str(),
        consecutive_failures: b.consecutive_failures,
        failure_threshold: config.breaker.failure_threshold,
        cooldown_ms: config.breaker.cooldown_ms,
        opened_at: b.opened_at_ms.and_then(db::timestamp_ms),
        retry_after_seconds: match b.admit(&config.breaker, now).1 {
            Admission::Refuse { retry_after_ms } => Some(secs_ceil(retry_after_ms)),
            Admission::Call | Admission::Trial => None,
        },
        last_failure_reason: b.last_failure_reason.clone(),
        last_failure_at: b.last_failure_at_ms.and_then(db::timestamp_ms),
    };
    Ok(http::json(
        200,
        &serde_json::json!({ "status": "ok", "component": COMPONENT, "payBreaker": view }),
        ctx,
    ))
}

/// Put a decided event in the outbox (inside the caller's transaction).
pub fn enqueue(tx: &Db, ctx: &RequestContext, event: &DomainEvent) -> anyhow::Result<()> {
    let env = event.to_envelope(&ctx.correlation, ctx.traceparent.as_deref(), Utc::now());
    outbox::enqueue(tx, &env)
}

/// Deliver what this request enqueued. A broker outage is fine: rows stay pending.
pub fn flush_after_commit(ctx: &RequestContext, db: &Db, config: &Config) {
    outbox::flush_after_commit(COMPONENT, &ctx.correlation, db, &config.broker_url);
}
