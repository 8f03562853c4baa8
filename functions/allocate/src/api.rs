//! HTTP handlers for drivers and operators: register and list taxis, read allocations,
//! accept and complete a ride, flush the outbox. Each reads parse → load → decide → persist → respond.

use crate::config::Config;
use crate::db::{self, StoredAllocation};
use crate::events::{flush_after_commit, record_all};
use crate::COMPONENT;
use htaxi_shared::auth;
use htaxi_shared::domain::allocation::{
    decide_accept, decide_complete, register_taxi as decide_register, AcceptRide, AllocationError,
    CompleteRide, RegisterTaxi, RegisterTaxiDto, TaxiStatus,
};
use htaxi_shared::ids::{AllocationId, GrabId, TaxiId};
use htaxi_shared::log;
use htaxi_shared::platform::http::{self, query_param, RequestContext};
use htaxi_shared::platform::idempotency::{self, Claim, Keyed};
use htaxi_shared::platform::outbox;
use htaxi_shared::problem::ApiError;
use spin_sdk::http::{Request, Response};

/// The `Idempotency-Key` scope of taxi registration.
const REGISTER_SCOPE: &str = "POST /taxis";

/// Map a domain refusal to its HTTP answer.
pub fn domain_error(e: AllocationError) -> ApiError {
    match e {
        AllocationError::TaxiNumTaken(_)
        | AllocationError::AllocationCancelled(_)
        | AllocationError::RideNotStarted(_)
        | AllocationError::RideCompleted(_) => ApiError::Conflict(e.to_string()),
    }
}

/// `POST /taxis`: a driver registers the taxi their token names → 201 + Location; a
/// plate or taxi already registered → 409. An `Idempotency-Key` is claimed in the
/// transaction that registers the taxi, so a retry, even one sent at the same time,
/// answers the original 201.
pub fn register_taxi(ctx: &RequestContext, req: &Request) -> Result<Response, ApiError> {
    let who = auth::authenticate(req)?;
    let proposed = who.driver("registering a taxi")?.clone();
    let config = Config::load()?;
    let keyed = Keyed::from_request(REGISTER_SCOPE, req)?.map(|k| k.owned_by(&who.subject()));
    let dto: RegisterTaxiDto = http::json_body(req)?;
    let cmd = RegisterTaxi::try_from(dto)?;
    let db = db::open()?;
    db.transaction(|tx| {
        let mut taxi_id = proposed.clone();
        if let Some(k) = &keyed {
            let now_ms = crate::now().timestamp_millis();
            match idempotency::claim(tx, k, proposed.as_str(), &config.idempotency, now_ms)? {
                Claim::Replay(answer) => return Ok(answer.into_response(ctx.correlation.as_str())),
                Claim::Create => {}
                // Registration commits in one transaction, so no key is left unfinished;
                // should one be, it finishes under the id it reserved.
                Claim::Resume { resource_id } => {
                    taxi_id = TaxiId::parse(&resource_id).map_err(|e| {
                        anyhow::anyhow!("Idempotency-Key names taxi {resource_id:?}: {e}")
                    })?;
                }
            }
        }
        if db::taxi(tx, &taxi_id)?.is_some() {
            return Err(ApiError::Conflict(format!(
                "taxi {taxi_id} is already registered"
            )));
        }
        let existing = db::taxi_by_num(tx, &cmd.taxi_num)?;
        let taxi =
            decide_register(existing.as_ref(), cmd, taxi_id, crate::now()).map_err(domain_error)?;
        db::insert_taxi(tx, &taxi)?;
        let mut resp = http::json(201, &taxi, ctx);
        resp.set_header("location", format!("/taxis/{}", taxi.taxi_id));
        if let Some(k) = &keyed {
            idempotency::complete(tx, k, taxi.taxi_id.as_str(), &resp)?;
        }
        log!(
            COMPONENT,
            ctx.correlation,
            "taxi {} registered as {}",
            taxi.taxi_num,
            taxi.taxi_id
        );
        Ok(resp)
    })
}

/// `GET /taxis[?status=Available|Busy][&limit=]`: taxis by plate (operators).
pub fn list_taxis(ctx: &RequestContext, req: &Request) -> Result<Response, ApiError> {
    auth::authenticate(req)?.operator("listing taxis")?;
    let status = query_param(req, "status")
        .map(|s| {
            TaxiStatus::parse(s.trim())
                .ok_or_else(|| ApiError::invalid("status", "must be Available or Busy"))
        })
        .transpose()?;
    let limit = http::limit_param(req)?;
    let db = db::open()?;
    Ok(http::json(200, &db::list_taxis(&db, status, limit)?, ctx))
}

/// `GET /taxis/{id}`: its driver or an operator; unknown, not a UUID or another
/// driver's → 404.
pub fn get_taxi(ctx: &RequestContext, req: &Request, id: &str) -> Result<Response, ApiError> {
    let who = auth::authenticate(req)?;
    let not_found = || ApiError::NotFound(format!("taxi {id}"));
    let id = TaxiId::parse(id).map_err(|_| not_found())?;
    who.read_taxi(&id, not_found())?;
    let db = db::open()?;
    let taxi = db::taxi(&db, &id)?.ok_or_else(not_found)?;
    Ok(http::json(200, &taxi, ctx))
}

/// `GET /allocations?grabId=` (the grab's allocation, as a list of 0 or 1), or without
/// `grabId` the most recent allocations (`?limit=`). A driver sees only their taxi's
/// offers; an operator every taxi's.
pub fn list_allocations(ctx: &RequestContext, req: &Request) -> Result<Response, ApiError> {
    let who = auth::authenticate(req)?;
    let only_taxi = who.allocations_listed()?;
    let grab = query_param(req, "grabId")
        .map(|g| GrabId::parse(g.trim()).map_err(|e| ApiError::invalid("grabId", e.to_string())))
        .transpose()?;
    let limit = http::limit_param(req)?;
    let db = db::open()?;
    let found: Vec<StoredAllocation> = match (grab, only_taxi) {
        (Some(g), _) => db::allocation_for_grab(&db, &g)?.into_iter().collect(),
        (None, Some(taxi)) => db::recent_allocations_of_taxi(&db, taxi, limit)?,
        (None, None) => db::recent_allocations(&db, limit)?,
    };
    let body: Vec<_> = found
        .into_iter()
        .map(|s| s.allocation)
        .filter(|a| only_taxi.is_none_or(|t| *t == a.taxi_id))
        .collect();
    Ok(http::json(200, &body, ctx))
}

/// `GET /allocations/{id}`: its taxi's driver or an operator; unknown, not a UUID or
/// another taxi's → 404.
pub fn get_allocation(ctx: &RequestContext, req: &Request, id: &str) -> Result<Response, ApiError> {
    let who = auth::authenticate(req)?;
    let not_found = || ApiError::NotFound(format!("allocation {id}"));
    let id = AllocationId::parse(id).map_err(|_| not_found())?;
    let db = db::open()?;
    let found = db::allocation(&db, &id)?.ok_or_else(not_found)?;
    who.read_taxi(&found.allocation.taxi_id, not_found())?;
    Ok(http::json(200, &found.allocation, ctx))
}

/// What a driver does to an allocation.
#[derive(Debug, Clone, Copy)]
pub enum DriverAction {
    /// `POST /allocations/{id}/accept`: Allocated → RideStarted.
    Accept,
    /// `POST /allocations/{id}/complete`: RideStarted → Completed, taxi Available again.
    Complete,
}

/// A driver's accept or complete: decide, persist and enqueue the event in one transaction,
/// answer 200 with the allocation. Repeating it answers 200 with nothing new; a step out of
/// order (complete before accept, anything after a cancel) is 409; unknown or another
/// taxi's → 404. Only the allocated taxi's driver may.
pub fn driver_action(
    ctx: &RequestContext,
    req: &Request,
    id: &str,
    action: DriverAction,
) -> Result<Response, ApiError> {
    let who = auth::authenticate(req)?;
    who.driver("a driver's action")?;
    let not_found = || ApiError::NotFound(format!("allocation {id}"));
    let id = AllocationId::parse(id).map_err(|_| not_found())?;
    let config = Config::load()?;
    let db = db::open()?;
    let now = crate::now();
    let done = db.transaction(|tx| {
        let stored = db::allocation(tx, &id)?.ok_or_else(not_found)?;
        who.own_taxi(&stored.allocation.taxi_id, not_found())?;
        let events = match action {
            DriverAction::Accept => decide_accept(&stored.allocation, AcceptRide { now }),
            DriverAction::Complete => decide_complete(&stored.allocation, CompleteRide { now }),
        }
        .map_err(domain_error)?;
        // Events about the ride continue the ride's correlation id, not the driver's call.
        record_all(
            tx,
            &events,
            &stored.correlation,
            ctx.traceparent.as_deref(),
            now,
        )?;
        if events.is_empty() {
            log!(
                COMPONENT,
                stored.correlation,
                "allocation {id}: {action:?} again, nothing new"
            );
        }
        let after = db::allocation(tx, &id)?.ok_or_else(not_found)?;
        Ok::<_, ApiError>(after)
    })?;
    flush_after_commit(&db, &config, &done.correlation);
    Ok(http::json(200, &done.allocation, ctx))
}

/// `POST /outbox/flush/allocate`: deliver pending events now. Any body is accepted (a
/// Knative PingSource POSTs a CloudEvent here); answers the [`outbox::FlushReport`].
pub fn flush_outbox(ctx: &RequestContext) -> Result<Response, ApiError> {
    let config = Config::load()?;
    let db = db::open()?;
    idempotency::sweep(&db, crate::now().timestamp_millis())?;
    outbox::flush_route(COMPONENT, ctx, &db, &config.broker_url)
}
