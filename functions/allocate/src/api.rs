//! HTTP handlers for drivers and operators: register and list taxis, read allocations,
//! move them and put them on or off duty; accept, decline, pick up and complete a ride;
//! sweep expired offers and flush the outbox. Each reads parse → load → decide → persist → respond.

use crate::config::Config;
use crate::db::{self, StoredAllocation};
use crate::events::{flush_after_commit, record_all};
use crate::COMPONENT;
use htaxi_shared::auth;
use htaxi_shared::domain::allocation::{
    self, decide_accept, decide_complete, decide_decline, decide_duty, decide_expire, decide_move,
    decide_pickup, register_taxi as decide_register, AcceptRide, Allocation, AllocationError,
    AllocationEvent, CompleteRide, Duty, GrabAllocation, MoveTaxi, MoveTaxiDto, OfferEnd, PassOn,
    PickUpRider, RegisterTaxi, RegisterTaxiDto, SetDuty, SetDutyDto, TaxiStatus,
};
use htaxi_shared::domain::GeoPoint;
use htaxi_shared::ids::{AllocationId, GrabId, TaxiId};
use htaxi_shared::log;
use htaxi_shared::platform::db::Db;
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
        | AllocationError::OfferExpired(_)
        | AllocationError::OfferDeclined(_)
        | AllocationError::AlreadyAccepted(_)
        | AllocationError::NotAccepted(_)
        | AllocationError::RideNotStarted(_)
        | AllocationError::RideCompleted(_) => ApiError::Conflict(e.to_string()),
        AllocationError::LocationTooFrequent { retry_after_ms } => ApiError::TooManyRequests {
            detail: e.to_string(),
            retry_after_secs: u32::try_from(retry_after_ms.div_ceil(1_000)).unwrap_or(u32::MAX),
        },
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

/// How many dots `GET /taxis/nearby` answers at most.
const NEARBY_MAX: usize = 50;

/// `GET /taxis/nearby?lat=&lng=`: the available, on-duty taxis within the allocation
/// radius of a point, nearest first, as coarse dots (no plate, no id): what a rider's map
/// shows. Anyone signed in.
pub fn nearby_taxis(ctx: &RequestContext, req: &Request) -> Result<Response, ApiError> {
    auth::authenticate(req)?;
    let coordinate = |name: &'static str| -> Result<f64, ApiError> {
        query_param(req, name)
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|v| v.is_finite())
            .ok_or_else(|| ApiError::invalid(name, "must be a number"))
    };
    let around = GeoPoint::new(coordinate("lat")?, coordinate("lng")?, None)?;
    let radius_m = Config::load()?.offers.radius_m;
    let db = db::open()?;
    let candidates = db::nearest_candidates(&db, &around, radius_m, NEARBY_MAX)?;
    let near = allocation::nearby_taxis(&around, radius_m, &candidates, NEARBY_MAX);
    Ok(http::json(200, &near, ctx))
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

/// `GET /allocations?grabId=` (every offer of the grab, latest first), or without
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
        (Some(g), _) => db::allocations_for_grab(&db, &g)?,
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
    /// `POST /allocations/{id}/accept`: Offered → Allocated (before the deadline).
    Accept,
    /// `POST /allocations/{id}/decline`: Offered → Declined; the ride goes to the next taxi.
    Decline,
    /// `POST /allocations/{id}/pickup`: Allocated → RideStarted.
    Pickup,
    /// `POST /allocations/{id}/complete`: RideStarted → Completed, taxi Available again.
    Complete,
}

/// A driver's accept, decline, pickup or complete: decide, persist and enqueue the events
/// in one transaction, answer 200 with the allocation. Repeating it answers 200 with
/// nothing new; a step out of order (accept after the deadline or a withdrawal, decline
/// after accepting, complete before pickup) is 409; unknown or another taxi's → 404.
/// Only the offered taxi's driver may.
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
        let offer = &stored.allocation;
        let events = match action {
            DriverAction::Accept => decide_accept(offer, AcceptRide { now }),
            DriverAction::Decline => {
                let state = db::grab_state(tx, &offer.grab_id)?;
                let pass = pass_on(tx, &config, &state, offer, now)?;
                decide_decline(&state, offer, OfferEnd::Declined, pass)
            }
            DriverAction::Pickup => decide_pickup(offer, PickUpRider { now }),
            DriverAction::Complete => decide_complete(offer, CompleteRide { now }),
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

/// Who else could take the ride of `offer`: available, on-duty taxis around its pickup,
/// enough of the nearest for one not offered the ride yet (`state` says who was).
fn pass_on(
    tx: &Db,
    config: &Config,
    state: &GrabAllocation,
    offer: &Allocation,
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<PassOn> {
    let want = state.offered_taxis.len() + 1;
    Ok(PassOn {
        candidates: db::nearest_candidates(tx, &offer.pickup, config.offers.radius_m, want)?,
        policy: config.offers,
        next_allocation_id: AllocationId::new_random(),
        now,
    })
}

/// The taxi a driver may update: their own (someone else's, or unknown → 404).
fn own_taxi_id(req: &Request, id: &str) -> Result<TaxiId, ApiError> {
    let who = auth::authenticate(req)?;
    who.driver("updating a taxi")?;
    let not_found = || ApiError::NotFound(format!("taxi {id}"));
    let id = TaxiId::parse(id).map_err(|_| not_found())?;
    who.own_taxi(&id, not_found())?;
    Ok(id)
}

/// `PUT /taxis/{id}/location` `{"location":{lat,lng}}`: the driver reports where the taxi
/// is → 200 with the taxi; more often than `location_min_interval_ms` → 429 +
/// Retry-After; an invalid point → 422. Nothing changes on a refusal.
pub fn move_taxi(ctx: &RequestContext, req: &Request, id: &str) -> Result<Response, ApiError> {
    let id = own_taxi_id(req, id)?;
    let config = Config::load()?;
    let dto: MoveTaxiDto = http::json_body(req)?;
    let cmd = MoveTaxi::try_from(dto)?;
    let db = db::open()?;
    let now = crate::now();
    let taxi = db.transaction(|tx| {
        let taxi = db::taxi(tx, &id)?.ok_or_else(|| ApiError::NotFound(format!("taxi {id}")))?;
        let moved =
            decide_move(&taxi, cmd, config.location_min_interval, now).map_err(domain_error)?;
        db::update_taxi(tx, &moved, now)?;
        Ok::<_, ApiError>(moved)
    })?;
    Ok(http::json(200, &taxi, ctx))
}

/// `PUT /taxis/{id}/duty` `{"duty":"OnDuty"|"OffDuty"}` → 200 with the taxi. An off-duty
/// taxi is never offered a ride; going off duty with an open offer declines it (the ride
/// goes to the next taxi) in the same transaction. A ride already accepted stays.
pub fn set_duty(ctx: &RequestContext, req: &Request, id: &str) -> Result<Response, ApiError> {
    let id = own_taxi_id(req, id)?;
    let config = Config::load()?;
    let dto: SetDutyDto = http::json_body(req)?;
    let cmd = SetDuty::try_from(dto)?;
    let db = db::open()?;
    let now = crate::now();
    let (taxi, correlation) = db.transaction(|tx| {
        let taxi = db::taxi(tx, &id)?.ok_or_else(|| ApiError::NotFound(format!("taxi {id}")))?;
        db::update_taxi(tx, &decide_duty(&taxi, cmd), now)?;
        let mut correlation = None;
        if cmd.duty == Duty::OffDuty {
            if let Some(open) = db::open_offer_of_taxi(tx, &id)? {
                let state = db::grab_state(tx, &open.allocation.grab_id)?;
                let pass = pass_on(tx, &config, &state, &open.allocation, now)?;
                let events =
                    decide_decline(&state, &open.allocation, OfferEnd::DriverOffDuty, pass)
                        .map_err(domain_error)?;
                record_all(
                    tx,
                    &events,
                    &open.correlation,
                    ctx.traceparent.as_deref(),
                    now,
                )?;
                correlation = Some(open.correlation);
            }
        }
        let after = db::taxi(tx, &id)?.ok_or_else(|| ApiError::NotFound(format!("taxi {id}")))?;
        Ok::<_, ApiError>((after, correlation))
    })?;
    if let Some(c) = correlation {
        flush_after_commit(&db, &config, &c);
    }
    Ok(http::json(200, &taxi, ctx))
}

/// The sweep: every open offer whose deadline has passed expires and its ride goes to the
/// next taxi, one grab per transaction. Decided on the stored `expiresAt` against now, so
/// a late tick decides the same as a punctual one. Runs with the periodic flush.
fn sweep_expired_offers(ctx: &RequestContext, db: &Db, config: &Config) -> Result<(), ApiError> {
    const BATCH: u32 = 100;
    let now = crate::now();
    for (grab, correlation) in db::grabs_with_expired_offers(db, now, BATCH)? {
        db.transaction(|tx| {
            let state: GrabAllocation = db::grab_state(tx, &grab)?;
            let Some(open) = state.allocation.clone() else {
                return Ok::<_, ApiError>(());
            };
            let events: Vec<AllocationEvent> =
                decide_expire(&state, pass_on(tx, config, &state, &open, now)?);
            record_all(tx, &events, &correlation, ctx.traceparent.as_deref(), now)?;
            Ok(())
        })?;
    }
    Ok(())
}

/// `POST /outbox/flush/allocate`: deliver pending events now. Any body is accepted (a
/// Knative PingSource POSTs a CloudEvent here); answers the [`outbox::FlushReport`].
pub fn flush_outbox(ctx: &RequestContext) -> Result<Response, ApiError> {
    let config = Config::load()?;
    let db = db::open()?;
    sweep_expired_offers(ctx, &db, &config)?;
    idempotency::sweep(&db, crate::now().timestamp_millis())?;
    outbox::flush_route(COMPONENT, ctx, &db, &config.broker_url)
}
