//! grab's HTTP handlers: each reads parse → load → decide → persist → respond.

use crate::breaker;
use crate::config::Config;
use crate::db;
use crate::pay_client;
use crate::COMPONENT;
use chrono::Utc;
use htaxi_shared::auth::{self, Principal};
use htaxi_shared::domain::fare::{self, QuoteFare, QuoteFareDto};
use htaxi_shared::domain::grab::{
    self, secs_ceil, Admission, Breaker, Grab, GrabError, GrabStatus, PayOutcome, RequestGrab,
    RequestGrabDto,
};
use htaxi_shared::domain::{GeoPoint, PhoneNumber};
use htaxi_shared::events::DomainEvent;
use htaxi_shared::ids::{GrabId, QuoteId};
use htaxi_shared::log;
use htaxi_shared::platform::db::Db;
use htaxi_shared::platform::http::{self, RequestContext};
use htaxi_shared::platform::idempotency::{self, Claim, Keyed, StoredResponse};
use htaxi_shared::platform::outbox;
use htaxi_shared::problem::ApiError;
use serde::Serialize;
use spin_sdk::http::{Method, Request, Response};

/// The idempotency scope of `POST /grabs`.
const IDEMPOTENCY_SCOPE: &str = "POST /grabs";
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
    /// The fare charged (the quote's); `estimatedFee` repeats it for older clients.
    pub fare: i64,
    pub estimated_fee: i64,
    pub quote_id: Option<String>,
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
            fare: g.estimated_fee.as_krw(),
            estimated_fee: g.estimated_fee.as_krw(),
            quote_id: g.quote_id.as_ref().map(ToString::to_string),
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

/// How `POST /grabs` starts, decided in its first transaction.
enum Begun {
    /// The key's request finished before: replay its answer.
    Replay(StoredResponse),
    /// Charge this grab (new, or resumed after its first request died unanswered).
    Charge {
        grab: Grab,
        admission: Admission,
        resumed: bool,
    },
}

/// `POST /grabs`: store the grab, charge it through pay, answer 201 (paid), 402
/// (rejected) or 503 + Retry-After (pay unavailable or breaker open; an open breaker
/// stores nothing). With `Idempotency-Key` the key is reserved in the transaction that
/// stores the grab: a duplicate while it runs is 409 + Retry-After, a retry after it
/// finished replays its answer, and a retry after it died resumes the same grab.
/// Riders only, for the phone number their token names (another number → 403).
pub fn create_grab(ctx: &RequestContext, req: &Request) -> Result<Response, ApiError> {
    let who = auth::authenticate(req)?;
    who.rider("requesting a ride")?;
    let config = Config::load()?;
    let keyed = Keyed::from_request(IDEMPOTENCY_SCOPE, req)?.map(|k| k.owned_by(&who.subject()));
    let dto: RequestGrabDto = http::json_body(req)?;
    let cmd = RequestGrab::try_from(dto)?;
    who.own_ride(
        &cmd.phone_number,
        ApiError::Forbidden("a rider requests rides for their own phone number only".into()),
    )?;

    let db = db::open()?;
    let grab_id = GrabId::new_random();
    // One write transaction claims the key, asks the breaker and stores the grab: a
    // refusal anywhere rolls all three back, so nothing is stored or charged.
    let begun = db.transaction(|tx| -> Result<Begun, ApiError> {
        let claim = match &keyed {
            Some(k) => idempotency::claim(tx, k, grab_id.as_str(), &config.idempotency, now_ms())?,
            None => Claim::Create,
        };
        if let Claim::Replay(answer) = claim {
            return Ok(Begun::Replay(answer));
        }
        let admission = breaker::admit(tx, &config.breaker, now_ms(), &ctx.correlation)?;
        if let Admission::Refuse { retry_after_ms } = admission {
            return Err(ApiError::Unavailable {
                detail: "the payment service is unavailable (circuit open); nothing was stored, try again later"
                    .into(),
                retry_after_secs: secs_ceil(retry_after_ms),
            });
        }
        let (grab, resumed) = match claim {
            Claim::Resume { resource_id } => (resume(tx, &resource_id)?, true),
            _ => {
                let now = Utc::now();
                let found = db::quote(tx, &cmd.quote_id)?;
                let quote = fare::redeem(found.as_ref(), &cmd.phone_number, now)
                    .map_err(|e| ApiError::invalid("quoteId", e.to_string()))?;
                let (fresh, grab_requested) =
                    grab::request(grab_id.clone(), cmd.clone(), quote, ctx.correlation.clone(), now)?;
                db::insert(tx, &fresh)?;
                enqueue(tx, ctx, &grab_requested)?;
                (fresh, false)
            }
        };
        Ok(Begun::Charge {
            grab,
            admission,
            resumed,
        })
    })?;
    let (requested, admission, resumed) = match begun {
        Begun::Replay(answer) => {
            log!(
                COMPONENT,
                ctx.correlation,
                "replaying the answer for an Idempotency-Key"
            );
            return Ok(answer.into_response(ctx.correlation.as_str()));
        }
        Begun::Charge {
            grab,
            admission,
            resumed,
        } => (grab, admission, resumed),
    };
    log!(
        COMPONENT,
        ctx.correlation,
        "grab {} {} ({} KRW)",
        requested.id,
        if resumed {
            "resumed: its first request ended unanswered"
        } else {
            "requested"
        },
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
    log!(
        COMPONENT,
        ctx.correlation,
        "pay call for grab {} after {} attempt(s): {:?}",
        requested.id,
        call.attempts,
        call.outcome
    );

    // One write transaction records the call in the breaker and settles the grab.
    let response = db.transaction(|tx| -> Result<Response, ApiError> {
        // The rider's answer must not be lost to a breaker bookkeeping failure.
        let breaker_now = breaker::record(tx, &config.breaker, now_ms(), failure, &ctx.correlation)
            .unwrap_or_else(|e| {
                log!(
                    COMPONENT,
                    ctx.correlation,
                    "recording the pay call in the breaker failed: {e:#}"
                );
                Breaker::default()
            });
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
        if let Some(k) = &keyed {
            idempotency::complete(tx, k, requested.id.as_str(), &response)?;
        }
        Ok(response)
    })?;
    flush_after_commit(ctx, &db, &config);
    Ok(response)
}

/// The grab an unfinished request with the same key stored (in the same transaction as
/// its key, so it is there).
fn resume(tx: &Db, resource_id: &str) -> Result<Grab, ApiError> {
    let id = GrabId::parse(resource_id)
        .map_err(|e| anyhow::anyhow!("Idempotency-Key names grab {resource_id:?}: {e}"))?;
    Ok(db::find(tx, &id)?
        .ok_or_else(|| anyhow::anyhow!("Idempotency-Key names grab {id}, which is not stored"))?)
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

/// `GET /grabs/{id}`: its rider or an operator; 404 if unknown, not a UUID or another
/// rider's.
pub fn get_grab(ctx: &RequestContext, req: &Request, id: &str) -> Result<Response, ApiError> {
    let who = auth::authenticate(req)?;
    let id = parse_id(id)?;
    let db = db::open()?;
    let not_found = || ApiError::NotFound(format!("grab {id}"));
    let g = db::find(&db, &id)?.ok_or_else(not_found)?;
    who.read_ride(Some(&g.phone_number), not_found())?;
    Ok(http::json(200, &GrabView::from(&g), ctx))
}

/// `GET /grabs?phoneNumber=&limit=`: a rider's grabs, newest first (422 without a valid
/// phone number or with a bad limit). A rider lists their own (the token's number when
/// none is given); an operator any rider's.
pub fn list_grabs(ctx: &RequestContext, req: &Request) -> Result<Response, ApiError> {
    let who = auth::authenticate(req)?;
    let asked = http::query_param(req, "phoneNumber")
        .map(|raw| PhoneNumber::parse(&raw))
        .transpose()?;
    let phone = who.rides_listed(asked)?.ok_or_else(|| {
        ApiError::invalid("phoneNumber", "query parameter phoneNumber is required")
    })?;
    let limit = http::limit_param(req)?;
    let db = db::open()?;
    let grabs = db::list_by_phone(&db, &phone, limit)?;
    let views: Vec<GrabView<'_>> = grabs.iter().map(GrabView::from).collect();
    Ok(http::json(200, &views, ctx))
}

/// `DELETE /grabs/{id}`: cancel before the ride starts (204, also when already
/// cancelled); 409 once started, rejected or failed; 404 if unknown or another rider's.
/// Its rider only.
pub fn cancel_grab(ctx: &RequestContext, req: &Request, id: &str) -> Result<Response, ApiError> {
    let who = auth::authenticate(req)?;
    who.rider("cancelling a ride")?;
    let config = Config::load()?;
    let id = parse_id(id)?;
    let db = db::open()?;
    let not_found = || ApiError::NotFound(format!("grab {id}"));
    let emitted = db.transaction(|tx| -> Result<usize, ApiError> {
        let current = db::find(tx, &id)?.ok_or_else(not_found)?;
        who.own_ride(&current.phone_number, not_found())?;
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
    idempotency::sweep(&db, now_ms())?;
    db::sweep_quotes(&db, Utc::now() - chrono::Duration::days(1))?;
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

/// `GET /health/grab`: 200 once the config reads and the database migrates; open to the
/// platform's probes. With an operator's token it adds the pay breaker's state and last
/// failure. Stays 200 when the breaker is open: pay being down must not get grab restarted.
pub fn health(ctx: &RequestContext, req: &Request) -> Result<Response, ApiError> {
    if !matches!(req.method(), Method::Get | Method::Head) {
        return Err(ApiError::MethodNotAllowed { allow: "GET, HEAD" });
    }
    let config = Config::load()?;
    let db = db::open()?;
    if !matches!(
        auth::authenticate_optional(req),
        Ok(Some(Principal::Operator))
    ) {
        return Ok(http::json(
            200,
            &serde_json::json!({ "status": "ok", "component": COMPONENT }),
            ctx,
        ));
    }
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

/// `POST /fares/quote` `{startingPoint, destination}`: price the trip from the tariff and
/// store the quote for this rider → 201 with the fare, the straight-line and estimated
/// road distance, `quoteId` and `expiresAt`. Riders only; bad input → 422, nothing stored.
pub fn quote_fare(ctx: &RequestContext, req: &Request) -> Result<Response, ApiError> {
    let who = auth::authenticate(req)?;
    let rider = who.rider("asking for a fare")?.clone();
    let config = Config::load()?;
    let dto: QuoteFareDto = http::json_body(req)?;
    let cmd = QuoteFare::try_from(dto)?;
    let q = fare::quote(
        QuoteId::new_random(),
        rider,
        cmd,
        &config.tariff,
        config.quote_ttl,
        Utc::now(),
    )?;
    let db = db::open()?;
    db.transaction(|tx| db::insert_quote(tx, &q))?;
    log!(
        COMPONENT,
        ctx.correlation,
        "quote {}: {} KRW for {} m by road{}",
        q.quote_id,
        q.fare.as_krw(),
        q.road_meters,
        if q.night_surcharge { " (night)" } else { "" }
    );
    Ok(http::json(201, &q, ctx))
}
