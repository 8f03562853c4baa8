//! pay's HTTP handlers: each reads parse → load → decide → persist → respond.

use crate::config::Config;
use crate::db;
use crate::COMPONENT;
use chrono::Utc;
use htaxi_shared::auth;
use htaxi_shared::domain::payment::{
    self, Payment, PaymentError, PaymentStatus, RequestPayment, RequestPaymentDto,
};
use htaxi_shared::ids::{GrabId, PaymentId};
use htaxi_shared::log;
use htaxi_shared::platform::db::Db;
use htaxi_shared::platform::http::{self, RequestContext};
use htaxi_shared::platform::outbox;
use htaxi_shared::problem::ApiError;
use serde::Serialize;
use spin_sdk::http::{Request, Response};

/// A payment as the API shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentView {
    pub payment_id: String,
    pub grab_id: String,
    pub amount: i64,
    pub payment_status: &'static str,
    pub reason: Option<String>,
    pub created_at: String,
    pub approved_at: Option<String>,
    pub refunded_at: Option<String>,
}

impl From<&Payment> for PaymentView {
    fn from(p: &Payment) -> Self {
        Self {
            payment_id: p.payment_id.to_string(),
            grab_id: p.grab_id.to_string(),
            amount: p.amount.as_krw(),
            payment_status: p.status.as_str(),
            reason: p.reason.clone(),
            created_at: db::timestamp(p.created_at),
            approved_at: p.approved_at.map(db::timestamp),
            refunded_at: p.refunded_at.map(db::timestamp),
        }
    }
}

/// `POST /payments` (grab only, `Authorization: Bearer <pay_api_key>`): charge a grab.
/// Idempotent per grab: a repeat answers the original outcome with the same payment id.
/// 201 approved · 402 rejected (over the limit) · 409 grab already called off · 401.
pub fn request_payment(ctx: &RequestContext, req: &Request) -> Result<Response, ApiError> {
    let config = Config::load()?;
    authorize(req, &config.api_key)?;
    let dto: RequestPaymentDto = http::json_body(req)?;
    let cmd = RequestPayment::try_from(dto)?;

    let db = db::open()?;
    let (state, replayed) = db.transaction(|tx| -> Result<_, ApiError> {
        let state = db::load_state(tx, &cmd.grab_id)?;
        let events = payment::decide_request(
            &state,
            &cmd,
            &config.policy,
            PaymentId::new_random(),
            Utc::now(),
        )
        .map_err(|e| match e {
            PaymentError::GrabAlreadyCancelled { .. } => ApiError::Conflict(e.to_string()),
        })?;
        for event in &events {
            db::persist(tx, &cmd.grab_id, event, &ctx.correlation)?;
            if let Some(public) = event.published() {
                let env =
                    public.to_envelope(&ctx.correlation, ctx.traceparent.as_deref(), Utc::now());
                outbox::enqueue(tx, &env)?;
            }
        }
        Ok((payment::apply_all(state, &events), events.is_empty()))
    })?;
    flush_after_commit(ctx, &db, &config);

    let payment = state
        .payment
        .as_ref()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("no payment after deciding")))?;
    log!(
        COMPONENT,
        ctx.correlation,
        "payment {} for grab {}: {} ({} KRW){}",
        payment.payment_id,
        payment.grab_id,
        payment.status.as_str(),
        payment.amount.as_krw(),
        if replayed { ", replayed" } else { "" }
    );
    payment_answer(ctx, payment, replayed)
}

/// The answer for a grab's payment: 201 for a charge that happened (approved, or since
/// refunded), 402 for a rejected one. Replays carry `idempotent-replayed: true`.
fn payment_answer(ctx: &RequestContext, p: &Payment, replayed: bool) -> Result<Response, ApiError> {
    if p.status == PaymentStatus::Rejected {
        return Err(ApiError::PaymentRejected(
            p.reason.clone().unwrap_or_else(|| "rejected".into()),
        ));
    }
    let mut resp = http::json(201, &PaymentView::from(p), ctx);
    resp.set_header("location", format!("/payments/{}", p.payment_id));
    if replayed {
        resp.set_header("idempotent-replayed", "true");
    }
    Ok(resp)
}

/// `GET /payments/{id}`: 404 if unknown or not a UUID.
pub fn get_payment(ctx: &RequestContext, req: &Request, id: &str) -> Result<Response, ApiError> {
    auth::authenticate(req)?.operator("reading payments")?;
    let not_found = || ApiError::NotFound(format!("payment {id}"));
    let id = PaymentId::parse(id).map_err(|_| not_found())?;
    let db = db::open()?;
    let p = db::find_by_id(&db, &id)?.ok_or_else(not_found)?;
    Ok(http::json(200, &PaymentView::from(&p), ctx))
}

/// `GET /payments?grabId=`: the grab's payment (one per grab); 404 if none, 422 without
/// a valid `grabId`.
pub fn find_payment(ctx: &RequestContext, req: &Request) -> Result<Response, ApiError> {
    auth::authenticate(req)?.operator("reading payments")?;
    let raw = http::query_param(req, "grabId")
        .ok_or_else(|| ApiError::invalid("grabId", "query parameter grabId is required"))?;
    let grab_id = GrabId::parse(&raw).map_err(|e| ApiError::invalid("grabId", e.to_string()))?;
    let db = db::open()?;
    let p = db::find_by_grab(&db, &grab_id)?
        .ok_or_else(|| ApiError::NotFound(format!("payment for grab {grab_id}")))?;
    Ok(http::json(200, &PaymentView::from(&p), ctx))
}

/// `POST /outbox/flush/pay`: deliver pending events now. Any body is accepted (a Knative
/// PingSource posts a CloudEvent here).
pub fn flush_outbox(ctx: &RequestContext) -> Result<Response, ApiError> {
    let config = Config::load()?;
    let db = db::open()?;
    outbox::flush_route(COMPONENT, ctx, &db, &config.broker_url)
}

/// `GET /health/pay`: 200 once the config reads and the database migrates.
pub fn health(ctx: &RequestContext, req: &Request) -> Result<Response, ApiError> {
    http::health(ctx, req, || {
        Config::load()?;
        db::open().map(|_| ())
    })
}

/// Deliver what this request enqueued. A broker outage is fine: rows stay pending.
pub fn flush_after_commit(ctx: &RequestContext, db: &Db, config: &Config) {
    outbox::flush_after_commit(COMPONENT, &ctx.correlation, db, &config.broker_url);
}

/// Check `Authorization: Bearer <key>` in constant time; 401 otherwise.
fn authorize(req: &Request, key: &str) -> Result<(), ApiError> {
    let given = http::header(req, "authorization");
    let token = auth::bearer(given.as_deref()).unwrap_or("");
    if constant_time_eq(token.as_bytes(), key.as_bytes()) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized(
            "the pay service key is required".into(),
        ))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
