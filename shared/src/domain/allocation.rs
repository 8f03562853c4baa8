//! The taxi and allocation aggregates (owned by the allocate component).
//!
//! - A [`Taxi`] is registered from a [`RegisterTaxiDto`] (parse, don't validate), is
//!   `Available` or `Busy`, `OnDuty` or `OffDuty`, and moves ([`decide_move`]).
//! - A [`GrabAllocation`] is what allocate knows about one ride: whether the grab was
//!   cancelled (a tombstone, so a late `PaymentApproved` does nothing), whether allocation
//!   failed, every taxi it was offered to, and its latest [`Allocation`].
//! - A ride is offered to one driver at a time (Kakao T's dispatch):
//!   `Offered` (with a deadline) → `Allocated` (the driver accepted) → `RideStarted`
//!   (pickup) → `Completed`; or `Declined` / `Expired`, and then the next nearest taxi
//!   not yet offered the ride gets a new offer, until [`OfferPolicy::max_offers`] or
//!   nobody is left (`AllocationFailed`); or `Cancelled` when the rider cancels.
//! - Decisions are pure: [`decide_allocate`], [`decide_decline`], [`decide_expire`],
//!   [`decide_accept`], [`decide_pickup`], [`decide_complete`], [`decide_cancel`]. Each
//!   returns [`AllocationEvent`]s; [`GrabAllocation::apply`] folds them in. Ids and time
//!   come from the shell; expiry is decided on the stored deadline against `now`, so a
//!   late sweep decides the same.

use super::values::{GeoPoint, GeoPointDto, InvalidValue};
use crate::events::{self, DomainEvent};
use crate::ids::{AllocationId, GrabId, PaymentId, TaxiId};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A taxi's licence plate as drivers know it, e.g. `서울32저4703`: 1–20 characters, trimmed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TaxiNum(String);

impl TaxiNum {
    /// The longest plate we accept, in characters (not bytes: Hangul plates are common).
    pub const MAX_CHARS: usize = 20;

    /// Parse a plate; fails when it is empty after trimming, too long, or has control characters.
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        let s = s.trim();
        let n = s.chars().count();
        if n == 0 || n > Self::MAX_CHARS {
            return Err(InvalidValue::new(
                "taxiNum",
                format!("must be 1-{} characters", Self::MAX_CHARS),
            ));
        }
        if s.chars().any(char::is_control) {
            return Err(InvalidValue::new(
                "taxiNum",
                "must not contain control characters",
            ));
        }
        Ok(Self(s.to_owned()))
    }

    /// The plate as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TaxiNum {
    type Error = InvalidValue;
    fn try_from(s: String) -> Result<Self, InvalidValue> {
        Self::parse(&s)
    }
}

impl From<TaxiNum> for String {
    fn from(t: TaxiNum) -> String {
        t.0
    }
}

impl fmt::Display for TaxiNum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The body of `POST /taxis`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegisterTaxiDto {
    /// The plate, 1–20 characters once trimmed.
    pub taxi_num: String,
    /// Where the taxi is now.
    pub location: GeoPointDto,
}

/// Command: put a taxi on the road.
#[derive(Debug, Clone, PartialEq)]
pub struct RegisterTaxi {
    pub taxi_num: TaxiNum,
    pub location: GeoPoint,
}

impl TryFrom<RegisterTaxiDto> for RegisterTaxi {
    type Error = InvalidValue;
    fn try_from(d: RegisterTaxiDto) -> Result<Self, InvalidValue> {
        let taxi_num = TaxiNum::parse(&d.taxi_num)?;
        let location = GeoPoint::try_from(d.location)
            .map_err(|e| InvalidValue::new("location", format!("{}: {}", e.field, e.reason)))?;
        Ok(Self { taxi_num, location })
    }
}

/// Whether a taxi can take a ride.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TaxiStatus {
    Available,
    Busy,
}

impl TaxiStatus {
    /// The status word stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            TaxiStatus::Available => "Available",
            TaxiStatus::Busy => "Busy",
        }
    }

    /// Parse a status word (exact); `None` otherwise.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "Available" => Some(TaxiStatus::Available),
            "Busy" => Some(TaxiStatus::Busy),
            _ => None,
        }
    }
}

/// Whether the driver is working. An off-duty taxi is never offered a ride.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Duty {
    OnDuty,
    OffDuty,
}

impl Duty {
    /// The duty word stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Duty::OnDuty => "OnDuty",
            Duty::OffDuty => "OffDuty",
        }
    }

    /// Parse a duty word (exact); `None` otherwise.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "OnDuty" => Some(Duty::OnDuty),
            "OffDuty" => Some(Duty::OffDuty),
            _ => None,
        }
    }
}

/// A registered taxi.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Taxi {
    pub taxi_id: TaxiId,
    pub taxi_num: TaxiNum,
    pub status: TaxiStatus,
    pub duty: Duty,
    pub location: GeoPoint,
    /// When the driver last reported the location (registration counts).
    pub location_at: DateTime<Utc>,
    pub registered_at: DateTime<Utc>,
}

/// Decide a registration. `existing` is the taxi already holding this plate, if any.
/// Fails with [`AllocationError::TaxiNumTaken`] when the plate is registered already.
pub fn register_taxi(
    existing: Option<&Taxi>,
    cmd: RegisterTaxi,
    taxi_id: TaxiId,
    now: DateTime<Utc>,
) -> Result<Taxi, AllocationError> {
    if let Some(t) = existing {
        return Err(AllocationError::TaxiNumTaken(t.taxi_num.to_string()));
    }
    Ok(Taxi {
        taxi_id,
        taxi_num: cmd.taxi_num,
        status: TaxiStatus::Available,
        duty: Duty::OnDuty,
        location: cmd.location,
        location_at: now,
        registered_at: now,
    })
}

/// The body of `PUT /taxis/{id}/location`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MoveTaxiDto {
    pub location: GeoPointDto,
}

/// Command: the driver reports where the taxi is.
#[derive(Debug, Clone, PartialEq)]
pub struct MoveTaxi {
    pub location: GeoPoint,
}

impl TryFrom<MoveTaxiDto> for MoveTaxi {
    type Error = InvalidValue;
    fn try_from(d: MoveTaxiDto) -> Result<Self, InvalidValue> {
        let location = GeoPoint::try_from(d.location)
            .map_err(|e| InvalidValue::new("location", format!("{}: {}", e.field, e.reason)))?;
        Ok(Self { location })
    }
}

/// Decide a location report: the taxi moves, unless the last report is less than
/// `min_interval` old ([`AllocationError::LocationTooFrequent`], answered 429).
pub fn decide_move(
    taxi: &Taxi,
    cmd: MoveTaxi,
    min_interval: Duration,
    now: DateTime<Utc>,
) -> Result<Taxi, AllocationError> {
    let next_allowed = taxi.location_at + min_interval;
    if now < next_allowed {
        let wait = (next_allowed - now).num_milliseconds().max(1);
        return Err(AllocationError::LocationTooFrequent {
            retry_after_ms: wait as u64,
        });
    }
    Ok(Taxi {
        location: cmd.location,
        location_at: now,
        ..taxi.clone()
    })
}

/// The body of `PUT /taxis/{id}/duty`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetDutyDto {
    pub duty: String,
}

/// Command: the driver goes on or off duty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetDuty {
    pub duty: Duty,
}

impl TryFrom<SetDutyDto> for SetDuty {
    type Error = InvalidValue;
    fn try_from(d: SetDutyDto) -> Result<Self, InvalidValue> {
        Duty::parse(d.duty.trim())
            .map(|duty| SetDuty { duty })
            .ok_or_else(|| InvalidValue::new("duty", "must be OnDuty or OffDuty"))
    }
}

/// Decide a duty change (idempotent). Going off duty with an open offer also declines
/// that offer: the shell then runs [`decide_decline`] with [`OfferEnd::DriverOffDuty`].
pub fn decide_duty(taxi: &Taxi, cmd: SetDuty) -> Taxi {
    Taxi {
        duty: cmd.duty,
        ..taxi.clone()
    }
}

/// An available, on-duty taxi the shell offers to [`nearest_taxi`].
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub taxi_id: TaxiId,
    pub taxi_num: TaxiNum,
    pub location: GeoPoint,
}

/// The taxi [`nearest_taxi`] chose and how far it is from the pickup point.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    pub taxi_id: TaxiId,
    pub taxi_num: TaxiNum,
    pub distance_meters: u64,
}

/// The nearest candidate within `radius_m` metres of `pickup` (inclusive); ties go to the
/// lowest taxiNum, then the lowest taxi id, so the choice never depends on list order.
pub fn nearest_taxi(pickup: &GeoPoint, radius_m: u64, candidates: &[Candidate]) -> Option<Choice> {
    candidates
        .iter()
        .map(|c| (pickup.distance_meters(&c.location), c))
        .filter(|(d, _)| *d <= radius_m)
        .min_by(|(da, a), (db, b)| {
            da.cmp(db)
                .then_with(|| a.taxi_num.cmp(&b.taxi_num))
                .then_with(|| a.taxi_id.cmp(&b.taxi_id))
        })
        .map(|(d, c)| Choice {
            taxi_id: c.taxi_id.clone(),
            taxi_num: c.taxi_num.clone(),
            distance_meters: d,
        })
}

/// An available taxi as anyone signed in may see it on a map: roughly where, never which.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NearbyTaxi {
    /// Rounded to 0.001° (about 100 m): a dot on the map, not a driver's position.
    pub lat: f64,
    pub lng: f64,
    /// From the asked-for point, rounded to 100 m.
    pub distance_meters: u64,
}

/// The available taxis within `radius_m` of `around`, nearest first, at most `limit`,
/// without plate or id and with their positions coarsened (see [`NearbyTaxi`]).
pub fn nearby_taxis(
    around: &GeoPoint,
    radius_m: u64,
    candidates: &[Candidate],
    limit: usize,
) -> Vec<NearbyTaxi> {
    let coarse = |x: f64| (x * 1000.0).round() / 1000.0;
    let mut near: Vec<(u64, &Candidate)> = candidates
        .iter()
        .map(|c| (around.distance_meters(&c.location), c))
        .filter(|(d, _)| *d <= radius_m)
        .collect();
    near.sort_by_key(|(d, _)| *d);
    near.into_iter()
        .take(limit)
        .map(|(d, c)| NearbyTaxi {
            lat: coarse(c.location.lat()),
            lng: coarse(c.location.lng()),
            distance_meters: d.div_ceil(100) * 100,
        })
        .collect()
}

/// A latitude/longitude box that contains every point within a radius of a centre: a cheap
/// index-friendly pre-filter before the exact distance check. `lng` is `None` when the box
/// would wrap the antimeridian or reach a pole (then no longitude filter applies).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BoundingBox {
    pub min_lat: f64,
    pub max_lat: f64,
    pub lng: Option<(f64, f64)>,
}

/// The [`BoundingBox`] around `center` for `radius_m` metres (with a small safety margin).
pub fn bounding_box(center: &GeoPoint, radius_m: u64) -> BoundingBox {
    const METRES_PER_DEGREE: f64 = 111_000.0; // a little under the true ~111,195: errs wide
    let dlat = radius_m as f64 / METRES_PER_DEGREE * 1.01;
    let min_lat = center.lat() - dlat;
    let max_lat = center.lat() + dlat;
    let lng = if min_lat <= -89.0 || max_lat >= 89.0 {
        None
    } else {
        let widest = min_lat.abs().max(max_lat.abs()).to_radians().cos();
        let dlng = dlat / widest;
        let (lo, hi) = (center.lng() - dlng, center.lng() + dlng);
        (dlng < 180.0 && lo >= -180.0 && hi <= 180.0).then_some((lo, hi))
    };
    BoundingBox {
        min_lat: min_lat.max(-90.0),
        max_lat: max_lat.min(90.0),
        lng,
    }
}

/// Where an allocation (one offer of the ride to one taxi) is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AllocationStatus {
    /// The ride is offered to this taxi until `expiresAt`; the taxi is held for it.
    Offered,
    /// The driver accepted; the taxi is on its way.
    Allocated,
    /// The driver picked the rider up; the ride is on.
    RideStarted,
    /// The driver dropped the rider off; the taxi is free again.
    Completed,
    /// The grab was cancelled; the taxi was released.
    Cancelled,
    /// The driver declined the offer (or went off duty); the taxi was released.
    Declined,
    /// Nobody answered before the deadline; the taxi was released.
    Expired,
}

impl AllocationStatus {
    /// Every status.
    pub const ALL: [AllocationStatus; 7] = [
        AllocationStatus::Offered,
        AllocationStatus::Allocated,
        AllocationStatus::RideStarted,
        AllocationStatus::Completed,
        AllocationStatus::Cancelled,
        AllocationStatus::Declined,
        AllocationStatus::Expired,
    ];

    /// The status word stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            AllocationStatus::Offered => "Offered",
            AllocationStatus::Allocated => "Allocated",
            AllocationStatus::RideStarted => "RideStarted",
            AllocationStatus::Completed => "Completed",
            AllocationStatus::Cancelled => "Cancelled",
            AllocationStatus::Declined => "Declined",
            AllocationStatus::Expired => "Expired",
        }
    }

    /// Parse a status word (exact); `None` otherwise.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Whether the allocation still holds its taxi.
    pub fn is_active(self) -> bool {
        matches!(
            self,
            AllocationStatus::Offered | AllocationStatus::Allocated | AllocationStatus::RideStarted
        )
    }

    /// Whether this offer ended without the ride (the grab may go to another taxi).
    pub fn is_passed_on(self) -> bool {
        matches!(self, AllocationStatus::Declined | AllocationStatus::Expired)
    }
}

/// Why an offer ended without the driver taking the ride.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OfferEnd {
    /// `POST /allocations/{id}/decline`.
    Declined,
    /// The driver went off duty with the offer open.
    DriverOffDuty,
    /// Nobody answered before `expiresAt`.
    Expired,
}

impl OfferEnd {
    /// The reason stored and shown.
    pub fn reason(self) -> &'static str {
        match self {
            OfferEnd::Declined => "declined by the driver",
            OfferEnd::DriverOffDuty => "the driver went off duty",
            OfferEnd::Expired => "not answered in time",
        }
    }

    /// The status the offer ends in.
    pub fn status(self) -> AllocationStatus {
        match self {
            OfferEnd::Declined | OfferEnd::DriverOffDuty => AllocationStatus::Declined,
            OfferEnd::Expired => AllocationStatus::Expired,
        }
    }
}

/// One offer of a ride to a taxi, and what became of it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Allocation {
    pub allocation_id: AllocationId,
    pub grab_id: GrabId,
    pub payment_id: Option<PaymentId>,
    pub taxi_id: TaxiId,
    pub taxi_num: String,
    pub status: AllocationStatus,
    pub distance_meters: u64,
    pub pickup: GeoPoint,
    /// 1 for the first taxi offered the ride, 2 for the next, ...
    pub offer_number: u32,
    /// When the offer was made.
    pub allocated_at: DateTime<Utc>,
    /// The driver must accept before this.
    pub expires_at: DateTime<Utc>,
    pub accepted_at: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub cancelled_at: Option<DateTime<Utc>>,
    pub cancel_reason: Option<String>,
    /// When and why a declined or expired offer ended.
    pub ended_at: Option<DateTime<Utc>>,
    pub end_reason: Option<String>,
}

/// Everything allocate knows about one grab.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GrabAllocation {
    /// `GrabCancelled` was seen: never allocate for this grab again.
    pub cancelled: bool,
    /// Allocation was attempted and no taxi took the ride (the reason sent).
    pub failed_reason: Option<String>,
    /// Every taxi this ride was offered to, in order (never offered twice).
    pub offered_taxis: Vec<TaxiId>,
    /// The latest offer, if one was made.
    pub allocation: Option<Allocation>,
}

/// How dispatch works: how far, how long a driver has to answer, how many offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OfferPolicy {
    /// How far (metres, great-circle) a taxi may be from the pickup point.
    pub radius_m: u64,
    /// How long a driver has to accept an offer.
    pub offer_ttl: Duration,
    /// After this many offers the ride fails (at least 1).
    pub max_offers: u32,
}

/// Command: a payment was approved; offer the ride to the nearest taxi.
#[derive(Debug, Clone, PartialEq)]
pub struct AllocateTaxi {
    pub grab_id: GrabId,
    pub payment_id: PaymentId,
    pub pickup: GeoPoint,
    /// Available, on-duty taxis (the shell may pre-filter with [`bounding_box`]).
    pub candidates: Vec<Candidate>,
    pub policy: OfferPolicy,
    /// The id a new offer gets.
    pub allocation_id: AllocationId,
    pub now: DateTime<Utc>,
}

/// What passing an offer on needs: who else could take the ride.
#[derive(Debug, Clone, PartialEq)]
pub struct PassOn {
    /// Available, on-duty taxis near the pickup point.
    pub candidates: Vec<Candidate>,
    pub policy: OfferPolicy,
    /// The id the next offer gets.
    pub next_allocation_id: AllocationId,
    pub now: DateTime<Utc>,
}

/// Command: the grab was cancelled (by the rider, or by the system).
#[derive(Debug, Clone, PartialEq)]
pub struct CancelGrab {
    pub grab_id: GrabId,
    pub reason: String,
    pub now: DateTime<Utc>,
}

/// Command: the driver accepted the offer.
#[derive(Debug, Clone, PartialEq)]
pub struct AcceptRide {
    pub now: DateTime<Utc>,
}

/// Command: the driver picked the rider up.
#[derive(Debug, Clone, PartialEq)]
pub struct PickUpRider {
    pub now: DateTime<Utc>,
}

/// Command: the driver drops the rider off.
#[derive(Debug, Clone, PartialEq)]
pub struct CompleteRide {
    pub now: DateTime<Utc>,
}

/// What a decision produced: published events and the local facts that go with them.
#[derive(Debug, Clone, PartialEq)]
pub enum AllocationEvent {
    /// The ride is offered to a taxi (taxi becomes Busy). Published.
    TaxiOffered {
        event: events::TaxiOffered,
        payment_id: PaymentId,
        pickup: GeoPoint,
    },
    /// Local only: the offer ended without the ride (taxi becomes Available).
    OfferPassedOn {
        allocation_id: AllocationId,
        grab_id: GrabId,
        taxi_id: TaxiId,
        end: OfferEnd,
        at: DateTime<Utc>,
    },
    /// The driver accepted: the taxi is assigned. Published.
    TaxiAllocated(events::TaxiAllocated),
    /// No taxi took the ride. Published.
    AllocationFailed(events::AllocationFailed),
    /// Local only: the grab is cancelled; remember it so nothing is allocated later.
    GrabTombstoned {
        grab_id: GrabId,
        reason: String,
        at: DateTime<Utc>,
    },
    /// The offer was withdrawn or the allocation cancelled (taxi becomes Available). Published.
    AllocationCancelled(events::AllocationCancelled),
    /// The driver picked the rider up. Published.
    RideStarted(events::RideStarted),
    /// The driver dropped the rider off (taxi becomes Available). Published.
    RideCompleted(events::RideCompleted),
}

impl AllocationEvent {
    /// The catalogue event to publish through the outbox, if this one is published.
    pub fn published(&self) -> Option<DomainEvent> {
        match self {
            AllocationEvent::TaxiOffered { event, .. } => {
                Some(DomainEvent::TaxiOffered(event.clone()))
            }
            AllocationEvent::OfferPassedOn { .. } | AllocationEvent::GrabTombstoned { .. } => None,
            AllocationEvent::TaxiAllocated(e) => Some(DomainEvent::TaxiAllocated(e.clone())),
            AllocationEvent::AllocationFailed(e) => Some(DomainEvent::AllocationFailed(e.clone())),
            AllocationEvent::AllocationCancelled(e) => {
                Some(DomainEvent::AllocationCancelled(e.clone()))
            }
            AllocationEvent::RideStarted(e) => Some(DomainEvent::RideStarted(e.clone())),
            AllocationEvent::RideCompleted(e) => Some(DomainEvent::RideCompleted(e.clone())),
        }
    }
}

/// Why a decision was refused. Each maps to an HTTP status in the shell.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllocationError {
    /// `POST /taxis` with a plate already registered (409).
    #[error("taxi {0} is already registered")]
    TaxiNumTaken(String),
    /// Acting on an allocation whose grab was cancelled (409).
    #[error("allocation {0} was cancelled; the ride cannot go ahead")]
    AllocationCancelled(String),
    /// Accepting an offer after its deadline (409).
    #[error("the offer {0} expired; the ride went to another taxi or failed")]
    OfferExpired(String),
    /// Accepting an offer the driver declined (409).
    #[error("the offer {0} was declined")]
    OfferDeclined(String),
    /// Declining a ride already accepted (409).
    #[error("allocation {0} was already accepted; it can no longer be declined")]
    AlreadyAccepted(String),
    /// Picking up before accepting (409).
    #[error("allocation {0} is only offered; accept it first")]
    NotAccepted(String),
    /// Completing a ride the driver has not picked up yet (409).
    #[error("allocation {0} has not started; pick the rider up first")]
    RideNotStarted(String),
    /// Acting on a ride that is already over (409).
    #[error("allocation {0} is completed")]
    RideCompleted(String),
    /// A location report sooner than the minimum interval (429).
    #[error("location reported too often; try again in {retry_after_ms} ms")]
    LocationTooFrequent { retry_after_ms: u64 },
}

/// Decide what a `PaymentApproved` does. No-op (no events) when the grab was cancelled,
/// already has an offer, or already failed; otherwise an offer to the nearest taxi, or a
/// failure.
pub fn decide_allocate(
    state: &GrabAllocation,
    cmd: AllocateTaxi,
) -> Result<Vec<AllocationEvent>, AllocationError> {
    if state.cancelled || state.allocation.is_some() || state.failed_reason.is_some() {
        return Ok(Vec::new());
    }
    Ok(vec![next_offer(
        state,
        &cmd.grab_id,
        &cmd.payment_id,
        &cmd.pickup,
        PassOn {
            candidates: cmd.candidates,
            policy: cmd.policy,
            next_allocation_id: cmd.allocation_id,
            now: cmd.now,
        },
    )])
}

/// The next offer of the ride: the nearest candidate within the radius that was not
/// offered the ride yet, or `AllocationFailed` once `max_offers` were made or nobody is left.
fn next_offer(
    state: &GrabAllocation,
    grab_id: &GrabId,
    payment_id: &PaymentId,
    pickup: &GeoPoint,
    p: PassOn,
) -> AllocationEvent {
    let made = u32::try_from(state.offered_taxis.len()).unwrap_or(u32::MAX);
    let fail = |reason: String| {
        AllocationEvent::AllocationFailed(events::AllocationFailed {
            grab_id: grab_id.clone(),
            reason,
            failed_at: p.now,
        })
    };
    if made >= p.policy.max_offers {
        return fail(format!("no driver accepted the ride after {made} offers"));
    }
    let fresh: Vec<Candidate> = p
        .candidates
        .into_iter()
        .filter(|c| !state.offered_taxis.contains(&c.taxi_id))
        .collect();
    match nearest_taxi(pickup, p.policy.radius_m, &fresh) {
        Some(choice) => AllocationEvent::TaxiOffered {
            event: events::TaxiOffered {
                allocation_id: p.next_allocation_id,
                grab_id: grab_id.clone(),
                taxi_id: choice.taxi_id,
                taxi_num: choice.taxi_num.to_string(),
                distance_meters: choice.distance_meters,
                offer_number: made + 1,
                expires_at: p.now + p.policy.offer_ttl,
                offered_at: p.now,
            },
            payment_id: payment_id.clone(),
            pickup: pickup.clone(),
        },
        None if made == 0 => fail(format!("no taxi available within {} m", p.policy.radius_m)),
        None => fail(format!(
            "no other taxi available within {} m after {made} offers",
            p.policy.radius_m
        )),
    }
}

/// The offer passes on: it ends (`end`) and the ride goes to the next taxi, or fails.
fn pass_on(
    state: &GrabAllocation,
    offer: &Allocation,
    end: OfferEnd,
    p: PassOn,
) -> Vec<AllocationEvent> {
    let ended = AllocationEvent::OfferPassedOn {
        allocation_id: offer.allocation_id.clone(),
        grab_id: offer.grab_id.clone(),
        taxi_id: offer.taxi_id.clone(),
        end,
        at: p.now,
    };
    let payment_id = match &offer.payment_id {
        Some(id) => id.clone(),
        // Offers are only made for a paid ride; without the payment there is nothing to offer.
        None => return vec![ended],
    };
    let next = next_offer(state, &offer.grab_id, &payment_id, &offer.pickup, p);
    vec![ended, next]
}

/// Decide a driver's decline of `offer` (or their going off duty, `end`): an open offer
/// ends and the ride is offered to the next nearest taxi not offered it yet (or fails).
/// Declining again is idempotent; declining an accepted ride is
/// [`AllocationError::AlreadyAccepted`]; an expired offer [`AllocationError::OfferExpired`].
pub fn decide_decline(
    state: &GrabAllocation,
    offer: &Allocation,
    end: OfferEnd,
    p: PassOn,
) -> Result<Vec<AllocationEvent>, AllocationError> {
    let id = || offer.allocation_id.to_string();
    match offer.status {
        // Past its deadline the offer had already expired, whatever ends it now.
        AllocationStatus::Offered if p.now >= offer.expires_at => {
            Ok(pass_on(state, offer, OfferEnd::Expired, p))
        }
        AllocationStatus::Offered => Ok(pass_on(state, offer, end, p)),
        AllocationStatus::Declined => Ok(Vec::new()),
        AllocationStatus::Expired => Err(AllocationError::OfferExpired(id())),
        AllocationStatus::Cancelled => Err(AllocationError::AllocationCancelled(id())),
        AllocationStatus::Allocated | AllocationStatus::RideStarted => {
            Err(AllocationError::AlreadyAccepted(id()))
        }
        AllocationStatus::Completed => Err(AllocationError::RideCompleted(id())),
    }
}

/// Decide the sweep for a grab: its open offer whose deadline is at or before `now`
/// expires and the ride passes on. Nothing otherwise (an accepted, declined or
/// withdrawn offer, or one still running). Decided on the stored deadline, so a sweep
/// that runs late decides the same.
pub fn decide_expire(state: &GrabAllocation, p: PassOn) -> Vec<AllocationEvent> {
    match &state.allocation {
        Some(a) if a.status == AllocationStatus::Offered && p.now >= a.expires_at => {
            pass_on(state, a, OfferEnd::Expired, p)
        }
        _ => Vec::new(),
    }
}

/// Decide what a `GrabCancelled` does: always tombstone the grab (once); the latest
/// allocation, unless it already ended (cancelled, declined, expired), is cancelled,
/// because grab accepted the cancel, so it wins: an open offer is withdrawn, and a ride
/// the driver accepted, started or even completed before the cancel reached us is
/// cancelled too (the rider is refunded either way). Its taxi is released unless the
/// completion already freed it.
pub fn decide_cancel(
    state: &GrabAllocation,
    cmd: CancelGrab,
) -> Result<Vec<AllocationEvent>, AllocationError> {
    let mut out = Vec::new();
    if !state.cancelled {
        out.push(AllocationEvent::GrabTombstoned {
            grab_id: cmd.grab_id.clone(),
            reason: cmd.reason.clone(),
            at: cmd.now,
        });
    }
    if let Some(a) = state
        .allocation
        .as_ref()
        .filter(|a| a.status != AllocationStatus::Cancelled && !a.status.is_passed_on())
    {
        out.push(AllocationEvent::AllocationCancelled(
            events::AllocationCancelled {
                allocation_id: a.allocation_id.clone(),
                grab_id: a.grab_id.clone(),
                taxi_id: a.taxi_id.clone(),
                reason: cmd.reason,
                cancelled_at: cmd.now,
            },
        ));
    }
    Ok(out)
}

/// Decide a driver's accept: an open offer before its deadline → `TaxiAllocated`; at or
/// after the deadline → [`AllocationError::OfferExpired`] even if no sweep ran yet;
/// already accepted (or picked up) → nothing (idempotent); declined, expired, cancelled
/// or completed → refused.
pub fn decide_accept(
    allocation: &Allocation,
    cmd: AcceptRide,
) -> Result<Vec<AllocationEvent>, AllocationError> {
    let id = || allocation.allocation_id.to_string();
    match allocation.status {
        AllocationStatus::Offered if cmd.now >= allocation.expires_at => {
            Err(AllocationError::OfferExpired(id()))
        }
        AllocationStatus::Offered => Ok(vec![AllocationEvent::TaxiAllocated(
            events::TaxiAllocated {
                allocation_id: allocation.allocation_id.clone(),
                grab_id: allocation.grab_id.clone(),
                taxi_id: allocation.taxi_id.clone(),
                taxi_num: allocation.taxi_num.clone(),
                distance_meters: allocation.distance_meters,
                allocated_at: cmd.now,
            },
        )]),
        AllocationStatus::Allocated | AllocationStatus::RideStarted => Ok(Vec::new()),
        AllocationStatus::Expired => Err(AllocationError::OfferExpired(id())),
        AllocationStatus::Declined => Err(AllocationError::OfferDeclined(id())),
        AllocationStatus::Completed => Err(AllocationError::RideCompleted(id())),
        AllocationStatus::Cancelled => Err(AllocationError::AllocationCancelled(id())),
    }
}

/// Decide a pickup: Allocated → RideStarted; already started → nothing (idempotent);
/// only offered → [`AllocationError::NotAccepted`]; otherwise refused.
pub fn decide_pickup(
    allocation: &Allocation,
    cmd: PickUpRider,
) -> Result<Vec<AllocationEvent>, AllocationError> {
    let id = || allocation.allocation_id.to_string();
    match allocation.status {
        AllocationStatus::Allocated => {
            Ok(vec![AllocationEvent::RideStarted(events::RideStarted {
                allocation_id: allocation.allocation_id.clone(),
                grab_id: allocation.grab_id.clone(),
                taxi_id: allocation.taxi_id.clone(),
                taxi_num: allocation.taxi_num.clone(),
                started_at: cmd.now,
            })])
        }
        AllocationStatus::RideStarted => Ok(Vec::new()),
        AllocationStatus::Offered => Err(AllocationError::NotAccepted(id())),
        AllocationStatus::Expired => Err(AllocationError::OfferExpired(id())),
        AllocationStatus::Declined => Err(AllocationError::OfferDeclined(id())),
        AllocationStatus::Completed => Err(AllocationError::RideCompleted(id())),
        AllocationStatus::Cancelled => Err(AllocationError::AllocationCancelled(id())),
    }
}

/// Decide a driver's drop-off: RideStarted → Completed (the taxi is free again); already
/// completed → nothing (idempotent); not started yet, passed on or cancelled → refused.
pub fn decide_complete(
    allocation: &Allocation,
    cmd: CompleteRide,
) -> Result<Vec<AllocationEvent>, AllocationError> {
    let id = || allocation.allocation_id.to_string();
    match allocation.status {
        AllocationStatus::RideStarted => Ok(vec![AllocationEvent::RideCompleted(
            events::RideCompleted {
                allocation_id: allocation.allocation_id.clone(),
                grab_id: allocation.grab_id.clone(),
                taxi_id: allocation.taxi_id.clone(),
                taxi_num: allocation.taxi_num.clone(),
                completed_at: cmd.now,
            },
        )]),
        AllocationStatus::Completed => Ok(Vec::new()),
        AllocationStatus::Offered | AllocationStatus::Allocated => {
            Err(AllocationError::RideNotStarted(id()))
        }
        AllocationStatus::Expired => Err(AllocationError::OfferExpired(id())),
        AllocationStatus::Declined => Err(AllocationError::OfferDeclined(id())),
        AllocationStatus::Cancelled => Err(AllocationError::AllocationCancelled(id())),
    }
}

impl GrabAllocation {
    /// Fold one decided event into the state.
    pub fn apply(mut self, event: &AllocationEvent) -> Self {
        match event {
            AllocationEvent::TaxiOffered {
                event,
                payment_id,
                pickup,
            } => {
                self.offered_taxis.push(event.taxi_id.clone());
                self.allocation = Some(Allocation {
                    allocation_id: event.allocation_id.clone(),
                    grab_id: event.grab_id.clone(),
                    payment_id: Some(payment_id.clone()),
                    taxi_id: event.taxi_id.clone(),
                    taxi_num: event.taxi_num.clone(),
                    status: AllocationStatus::Offered,
                    distance_meters: event.distance_meters,
                    pickup: pickup.clone(),
                    offer_number: event.offer_number,
                    allocated_at: event.offered_at,
                    expires_at: event.expires_at,
                    accepted_at: None,
                    started_at: None,
                    completed_at: None,
                    cancelled_at: None,
                    cancel_reason: None,
                    ended_at: None,
                    end_reason: None,
                });
            }
            AllocationEvent::OfferPassedOn {
                allocation_id,
                end,
                at,
                ..
            } => {
                if let Some(a) = self
                    .allocation
                    .as_mut()
                    .filter(|a| a.allocation_id == *allocation_id)
                {
                    a.status = end.status();
                    a.ended_at = Some(*at);
                    a.end_reason = Some(end.reason().to_owned());
                }
            }
            AllocationEvent::TaxiAllocated(e) => {
                if let Some(a) = self.allocation.as_mut() {
                    a.status = AllocationStatus::Allocated;
                    a.accepted_at = Some(e.allocated_at);
                }
            }
            AllocationEvent::AllocationFailed(e) => {
                self.failed_reason = Some(e.reason.clone());
            }
            AllocationEvent::GrabTombstoned { .. } => {
                self.cancelled = true;
            }
            AllocationEvent::AllocationCancelled(e) => {
                if let Some(a) = self.allocation.as_mut() {
                    a.status = AllocationStatus::Cancelled;
                    a.cancelled_at = Some(e.cancelled_at);
                    a.cancel_reason = Some(e.reason.clone());
                }
            }
            AllocationEvent::RideStarted(e) => {
                if let Some(a) = self.allocation.as_mut() {
                    a.status = AllocationStatus::RideStarted;
                    a.started_at = Some(e.started_at);
                }
            }
            AllocationEvent::RideCompleted(e) => {
                if let Some(a) = self.allocation.as_mut() {
                    a.status = AllocationStatus::Completed;
                    a.completed_at = Some(e.completed_at);
                }
            }
        }
        self
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    // ---------------------------------------------------------------- fixtures

    fn now() -> DateTime<Utc> {
        "2026-11-25T10:00:00Z".parse().unwrap()
    }

    fn secs(n: i64) -> DateTime<Utc> {
        now() + Duration::seconds(n)
    }

    fn grab_id() -> GrabId {
        GrabId::parse("7f1c1a52-6b0e-4c4f-9f51-1d3c2b9a0e11").unwrap()
    }

    fn payment_id() -> PaymentId {
        PaymentId::parse("11111111-2222-4333-8444-555555555555").unwrap()
    }

    fn allocation_id() -> AllocationId {
        offer_id(1)
    }

    fn offer_id(n: u8) -> AllocationId {
        AllocationId::parse(&format!("aaaaaaaa-0000-4000-8000-0000000000{n:02}")).unwrap()
    }

    fn taxi_id(n: u8) -> TaxiId {
        TaxiId::parse(&format!("bbbbbbbb-0000-4000-8000-0000000000{n:02}")).unwrap()
    }

    /// Seoul Station.
    fn pickup() -> GeoPoint {
        GeoPoint::new(37.5547, 126.9707, Some("Seoul Station".into())).unwrap()
    }

    /// A point `metres_north` north of the pickup point.
    fn north_of_pickup(metres_north: f64) -> GeoPoint {
        GeoPoint::new(37.5547 + metres_north / 111_195.0, 126.9707, None).unwrap()
    }

    fn candidate(n: u8, num: &str, at: GeoPoint) -> Candidate {
        Candidate {
            taxi_id: taxi_id(n),
            taxi_num: TaxiNum::parse(num).unwrap(),
            location: at,
        }
    }

    /// Three taxis, 1 km, 2 km and 3 km away.
    fn three_taxis() -> Vec<Candidate> {
        vec![
            candidate(1, "서울1", north_of_pickup(1_000.0)),
            candidate(2, "서울2", north_of_pickup(2_000.0)),
            candidate(3, "서울3", north_of_pickup(3_000.0)),
        ]
    }

    fn policy() -> OfferPolicy {
        OfferPolicy {
            radius_m: 5_000,
            offer_ttl: Duration::seconds(15),
            max_offers: 3,
        }
    }

    fn allocate_with(candidates: Vec<Candidate>) -> AllocateTaxi {
        AllocateTaxi {
            grab_id: grab_id(),
            payment_id: payment_id(),
            pickup: pickup(),
            candidates,
            policy: policy(),
            allocation_id: allocation_id(),
            now: now(),
        }
    }

    /// Passing on at `at` seconds, to the taxis that are available then.
    fn pass_on_at(at: i64, next: u8, candidates: Vec<Candidate>) -> PassOn {
        PassOn {
            candidates,
            policy: policy(),
            next_allocation_id: offer_id(next),
            now: secs(at),
        }
    }

    fn cancel() -> CancelGrab {
        CancelGrab {
            grab_id: grab_id(),
            reason: "cancelled by rider".into(),
            now: now(),
        }
    }

    fn fresh() -> GrabAllocation {
        GrabAllocation::default()
    }

    fn fold(s: GrabAllocation, events: &[AllocationEvent]) -> GrabAllocation {
        events.iter().fold(s, GrabAllocation::apply)
    }

    fn current(s: &GrabAllocation) -> &Allocation {
        s.allocation.as_ref().expect("an allocation")
    }

    /// Given: the ride was offered to the nearest of three taxis (1 km away).
    fn offered() -> GrabAllocation {
        let events = decide_allocate(&fresh(), allocate_with(three_taxis())).unwrap();
        fold(fresh(), &events)
    }

    /// Given: the driver of the offered taxi accepted.
    fn allocated() -> GrabAllocation {
        let s = offered();
        let events = decide_accept(current(&s), AcceptRide { now: secs(5) }).unwrap();
        fold(s, &events)
    }

    fn ride_started() -> GrabAllocation {
        let s = allocated();
        let events = decide_pickup(current(&s), PickUpRider { now: secs(60) }).unwrap();
        fold(s, &events)
    }

    fn cancelled(s: GrabAllocation) -> GrabAllocation {
        let events = decide_cancel(&s, cancel()).unwrap();
        fold(s, &events)
    }

    /// The remaining candidates (the ones not holding this ride's offer).
    fn others(s: &GrabAllocation) -> Vec<Candidate> {
        three_taxis()
            .into_iter()
            .filter(|c| s.allocation.as_ref().is_none_or(|a| a.taxi_id != c.taxi_id))
            .collect()
    }

    fn declined(s: GrabAllocation, at: i64, next: u8) -> GrabAllocation {
        let offer = current(&s).clone();
        let events = decide_decline(
            &s,
            &offer,
            OfferEnd::Declined,
            pass_on_at(at, next, others(&s)),
        )
        .unwrap();
        fold(s, &events)
    }

    // ---------------------------------------------------------------- registration

    #[test]
    fn registering_a_taxi_makes_it_available() {
        let dto: RegisterTaxiDto = serde_json::from_str(
            r#"{"taxiNum":"  서울32저4703 ","location":{"lat":37.5665,"lng":126.978}}"#,
        )
        .unwrap();
        let taxi = register_taxi(None, dto.try_into().unwrap(), taxi_id(1), now()).unwrap();
        assert_eq!(taxi.taxi_num.as_str(), "서울32저4703");
        assert_eq!(taxi.status, TaxiStatus::Available);
        assert_eq!(taxi.registered_at, now());
    }

    #[test]
    fn registering_a_plate_twice_is_refused() {
        let cmd = RegisterTaxi {
            taxi_num: TaxiNum::parse("서울1").unwrap(),
            location: pickup(),
        };
        let first = register_taxi(None, cmd.clone(), taxi_id(1), now()).unwrap();
        assert_eq!(
            register_taxi(Some(&first), cmd, taxi_id(2), now()),
            Err(AllocationError::TaxiNumTaken("서울1".into()))
        );
    }

    #[test]
    fn taxi_numbers_are_trimmed_and_1_to_20_characters() {
        assert!(TaxiNum::parse("   ").is_err());
        assert!(TaxiNum::parse("").is_err());
        assert!(TaxiNum::parse(&"가".repeat(20)).is_ok());
        assert!(TaxiNum::parse(&"가".repeat(21)).is_err());
        assert!(TaxiNum::parse("a\nb").is_err());
        assert_eq!(TaxiNum::parse(" 12가3456 ").unwrap().as_str(), "12가3456");
    }

    #[test]
    fn a_taxi_with_an_invalid_location_is_refused_naming_the_field() {
        let dto: RegisterTaxiDto =
            serde_json::from_str(r#"{"taxiNum":"x","location":{"lat":95,"lng":0}}"#).unwrap();
        let err = RegisterTaxi::try_from(dto).unwrap_err();
        assert_eq!(err.field, "location");
        assert!(err.reason.contains("lat"));
    }

    #[test]
    fn a_taxi_body_with_unknown_fields_is_refused() {
        let r = serde_json::from_str::<RegisterTaxiDto>(
            r#"{"taxiNum":"x","location":{"lat":1,"lng":2},"status":"Busy"}"#,
        );
        assert!(r.is_err());
    }

    // ---------------------------------------------------------------- choosing a taxi

    #[test]
    fn nearby_taxis_are_the_ones_in_the_radius_nearest_first_as_coarse_dots() {
        let taxis = vec![
            candidate(3, "서울3", north_of_pickup(2_960.0)),
            candidate(1, "서울1", north_of_pickup(1_040.0)),
            candidate(2, "서울2", north_of_pickup(9_000.0)),
        ];
        let near = nearby_taxis(&pickup(), 5_000, &taxis, 10);
        assert_eq!(
            near.iter().map(|t| t.distance_meters).collect::<Vec<_>>(),
            vec![1_100, 3_000],
            "within 5 km, nearest first, distances up to the next 100 m"
        );
        assert_eq!((near[0].lat, near[0].lng), (37.564, 126.971));
        assert_eq!(nearby_taxis(&pickup(), 5_000, &taxis, 1).len(), 1);
    }

    #[test]
    fn the_nearest_taxi_within_the_radius_is_chosen() {
        let choice = nearest_taxi(
            &pickup(),
            5_000,
            &[
                candidate(1, "far", north_of_pickup(3_000.0)),
                candidate(2, "near", north_of_pickup(500.0)),
                candidate(3, "outside", north_of_pickup(6_000.0)),
            ],
        )
        .unwrap();
        assert_eq!(choice.taxi_num.as_str(), "near");
        assert!((495..=505).contains(&choice.distance_meters));
    }

    #[test]
    fn equally_near_taxis_go_to_the_lowest_taxi_num_whatever_the_order() {
        let a = candidate(1, "B-2", north_of_pickup(800.0));
        let b = candidate(2, "A-1", north_of_pickup(800.0));
        let one = nearest_taxi(&pickup(), 5_000, &[a.clone(), b.clone()]).unwrap();
        let other = nearest_taxi(&pickup(), 5_000, &[b, a]).unwrap();
        assert_eq!(one.taxi_num.as_str(), "A-1");
        assert_eq!(one, other);
    }

    #[test]
    fn a_taxi_exactly_on_the_radius_counts_and_one_beyond_does_not() {
        let c = candidate(1, "edge", north_of_pickup(1_000.0));
        let d = pickup().distance_meters(&c.location);
        assert!(nearest_taxi(&pickup(), d, std::slice::from_ref(&c)).is_some());
        assert!(nearest_taxi(&pickup(), d - 1, &[c]).is_none());
    }

    #[test]
    fn the_bounding_box_contains_every_point_within_the_radius() {
        let bb = bounding_box(&pickup(), 10_000);
        for (dlat, dlng) in [(0.0899, 0.0), (-0.0899, 0.0), (0.0, 0.113), (0.0, -0.113)] {
            let p = GeoPoint::new(37.5547 + dlat, 126.9707 + dlng, None).unwrap();
            assert!(pickup().distance_meters(&p) <= 10_050);
            assert!(p.lat() >= bb.min_lat && p.lat() <= bb.max_lat);
            let (lo, hi) = bb.lng.unwrap();
            assert!(p.lng() >= lo && p.lng() <= hi, "{p:?} outside {bb:?}");
        }
    }

    #[test]
    fn the_bounding_box_drops_the_longitude_filter_across_the_antimeridian() {
        let fiji = GeoPoint::new(-17.7, 179.99, None).unwrap();
        assert!(bounding_box(&fiji, 10_000).lng.is_none());
        let pole = GeoPoint::new(89.95, 0.0, None).unwrap();
        assert!(bounding_box(&pole, 10_000).lng.is_none());
    }

    // ---------------------------------------------------------------- PaymentApproved

    #[test]
    fn payment_approved_offers_the_ride_to_the_nearest_taxi_with_a_deadline() {
        let events = decide_allocate(&fresh(), allocate_with(three_taxis())).unwrap();
        let [AllocationEvent::TaxiOffered {
            event,
            payment_id: p,
            ..
        }] = events.as_slice()
        else {
            panic!("expected one TaxiOffered, got {events:?}");
        };
        assert_eq!(event.taxi_id, taxi_id(1));
        assert_eq!(event.offer_number, 1);
        assert_eq!(event.expires_at, secs(15));
        assert_eq!(p, &payment_id());
        assert!(events[0].published().is_some(), "TaxiOffered is published");
        let state = fold(fresh(), &events);
        assert_eq!(current(&state).status, AllocationStatus::Offered);
        assert!(current(&state).status.is_active(), "the taxi is held");
        assert_eq!(state.offered_taxis, vec![taxi_id(1)]);
    }

    #[test]
    fn payment_approved_with_no_taxi_in_range_fails_naming_the_radius() {
        let events = decide_allocate(
            &fresh(),
            allocate_with(vec![candidate(1, "far", north_of_pickup(9_000.0))]),
        )
        .unwrap();
        let [AllocationEvent::AllocationFailed(f)] = events.as_slice() else {
            panic!("expected AllocationFailed, got {events:?}");
        };
        assert_eq!(f.reason, "no taxi available within 5000 m");
        let state = fold(fresh(), &events);
        assert_eq!(
            state.failed_reason.as_deref(),
            Some("no taxi available within 5000 m")
        );
    }

    #[test]
    fn payment_approved_after_the_grab_was_cancelled_does_nothing() {
        let state = cancelled(fresh());
        assert!(decide_allocate(&state, allocate_with(three_taxis()))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn payment_approved_for_an_already_offered_grab_does_nothing() {
        assert!(decide_allocate(&offered(), allocate_with(three_taxis()))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn payment_approved_for_a_grab_that_already_failed_does_nothing() {
        let failed = fold(
            fresh(),
            &decide_allocate(&fresh(), allocate_with(vec![])).unwrap(),
        );
        assert!(decide_allocate(&failed, allocate_with(three_taxis()))
            .unwrap()
            .is_empty());
    }

    // ---------------------------------------------------------------- accept

    #[test]
    fn accepting_an_open_offer_allocates_the_taxi() {
        let s = offered();
        let events = decide_accept(current(&s), AcceptRide { now: secs(14) }).unwrap();
        let [AllocationEvent::TaxiAllocated(e)] = events.as_slice() else {
            panic!("expected TaxiAllocated, got {events:?}");
        };
        assert_eq!(e.taxi_id, taxi_id(1));
        assert_eq!(e.allocation_id, allocation_id());
        let s = fold(s, &events);
        assert_eq!(current(&s).status, AllocationStatus::Allocated);
        assert_eq!(current(&s).accepted_at, Some(secs(14)));
    }

    #[test]
    fn accepting_twice_is_idempotent_and_emits_nothing() {
        let s = allocated();
        assert!(decide_accept(current(&s), AcceptRide { now: secs(6) })
            .unwrap()
            .is_empty());
    }

    #[test]
    fn accepting_at_the_deadline_is_refused_even_before_the_sweep_ran() {
        let s = offered();
        assert_eq!(
            decide_accept(current(&s), AcceptRide { now: secs(15) }),
            Err(AllocationError::OfferExpired(allocation_id().to_string()))
        );
    }

    #[test]
    fn accepting_after_the_offer_expired_is_refused() {
        let s = offered();
        let first = current(&s).clone();
        let events = decide_expire(&s, pass_on_at(20, 2, others(&s)));
        let s = fold(s, &events);
        let mut expired = first;
        expired.status = AllocationStatus::Expired;
        assert_eq!(
            decide_accept(&expired, AcceptRide { now: secs(21) }),
            Err(AllocationError::OfferExpired(allocation_id().to_string()))
        );
        assert_eq!(current(&s).taxi_id, taxi_id(2), "the ride moved on");
    }

    #[test]
    fn accepting_after_cancel_is_refused() {
        let s = cancelled(offered());
        assert_eq!(
            decide_accept(current(&s), AcceptRide { now: secs(1) }),
            Err(AllocationError::AllocationCancelled(
                allocation_id().to_string()
            ))
        );
    }

    // ---------------------------------------------------------------- decline

    #[test]
    fn a_declined_ride_goes_to_the_second_nearest_taxi() {
        let s = offered();
        let offer = current(&s).clone();
        let events =
            decide_decline(&s, &offer, OfferEnd::Declined, pass_on_at(3, 2, others(&s))).unwrap();
        let [AllocationEvent::OfferPassedOn {
            taxi_id: t, end, ..
        }, AllocationEvent::TaxiOffered { event, .. }] = events.as_slice()
        else {
            panic!("expected the offer to pass on, got {events:?}");
        };
        assert_eq!((t, *end), (&taxi_id(1), OfferEnd::Declined));
        assert_eq!(event.taxi_id, taxi_id(2));
        assert_eq!(event.offer_number, 2);
        assert_eq!(event.expires_at, secs(3 + 15), "a fresh deadline");
        assert_eq!(events[0].published(), None, "a decline is local");
        let s = fold(s, &events);
        assert_eq!(current(&s).allocation_id, offer_id(2));
        assert_eq!(s.offered_taxis, vec![taxi_id(1), taxi_id(2)]);
    }

    #[test]
    fn a_taxi_that_declined_is_never_offered_the_ride_again() {
        // The first taxi is free again and still the nearest, but it said no.
        let s = offered();
        let offer = current(&s).clone();
        let events = decide_decline(
            &s,
            &offer,
            OfferEnd::Declined,
            pass_on_at(3, 2, three_taxis()),
        )
        .unwrap();
        let AllocationEvent::TaxiOffered { event, .. } = &events[1] else {
            panic!("expected a new offer, got {events:?}");
        };
        assert_eq!(event.taxi_id, taxi_id(2));
    }

    #[test]
    fn declining_twice_is_idempotent() {
        let s = offered();
        let first = current(&s).clone();
        let s = declined(s, 3, 2);
        let mut again = first;
        again.status = AllocationStatus::Declined;
        assert!(
            decide_decline(&s, &again, OfferEnd::Declined, pass_on_at(4, 3, others(&s)))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn declining_an_accepted_ride_is_refused() {
        let s = allocated();
        assert_eq!(
            decide_decline(
                &s,
                current(&s),
                OfferEnd::Declined,
                pass_on_at(6, 2, others(&s))
            ),
            Err(AllocationError::AlreadyAccepted(
                allocation_id().to_string()
            ))
        );
    }

    #[test]
    fn going_off_duty_with_an_open_offer_declines_it() {
        let s = offered();
        let offer = current(&s).clone();
        let events = decide_decline(
            &s,
            &offer,
            OfferEnd::DriverOffDuty,
            pass_on_at(2, 2, others(&s)),
        )
        .unwrap();
        let s = fold(s, &events);
        assert_eq!(current(&s).taxi_id, taxi_id(2));
        assert_eq!(s.offered_taxis.len(), 2);
    }

    #[test]
    fn after_n_offers_the_ride_fails() {
        // max_offers = 3: three declines, then the fourth taxi is never asked.
        let mut four = three_taxis();
        four.push(candidate(4, "서울4", north_of_pickup(4_000.0)));
        let s = offered();
        let s = declined(s, 1, 2);
        let s = declined(s, 2, 3);
        assert_eq!(s.offered_taxis.len(), 3);
        let offer = current(&s).clone();
        let events =
            decide_decline(&s, &offer, OfferEnd::Declined, pass_on_at(3, 4, four)).unwrap();
        let [AllocationEvent::OfferPassedOn { .. }, AllocationEvent::AllocationFailed(f)] =
            events.as_slice()
        else {
            panic!("expected the ride to fail, got {events:?}");
        };
        assert_eq!(f.reason, "no driver accepted the ride after 3 offers");
        let s = fold(s, &events);
        assert!(s.failed_reason.is_some());
        assert!(!current(&s).status.is_active(), "the last taxi is released");
    }

    #[test]
    fn with_nobody_left_to_ask_the_ride_fails() {
        let s = offered();
        let offer = current(&s).clone();
        let events =
            decide_decline(&s, &offer, OfferEnd::Declined, pass_on_at(3, 2, vec![])).unwrap();
        let AllocationEvent::AllocationFailed(f) = &events[1] else {
            panic!("expected AllocationFailed, got {events:?}");
        };
        assert_eq!(
            f.reason,
            "no other taxi available within 5000 m after 1 offers"
        );
    }

    // ---------------------------------------------------------------- expiry

    #[test]
    fn an_unanswered_offer_expires_and_moves_on() {
        let s = offered();
        let events = decide_expire(&s, pass_on_at(15, 2, others(&s)));
        let [AllocationEvent::OfferPassedOn { end, .. }, AllocationEvent::TaxiOffered { event, .. }] =
            events.as_slice()
        else {
            panic!("expected expiry and a new offer, got {events:?}");
        };
        assert_eq!(*end, OfferEnd::Expired);
        assert_eq!(event.taxi_id, taxi_id(2));
        let s = fold(s, &events);
        assert_eq!(current(&s).status, AllocationStatus::Offered);
        assert_eq!(current(&s).offer_number, 2);
    }

    #[test]
    fn a_decline_after_the_deadline_records_an_expiry() {
        // The sweep has not run yet; the driver's late decline still moves the ride on.
        let s = offered();
        let offer = current(&s).clone();
        let events = decide_decline(
            &s,
            &offer,
            OfferEnd::Declined,
            pass_on_at(15, 2, others(&s)),
        )
        .unwrap();
        let [AllocationEvent::OfferPassedOn { end, .. }, AllocationEvent::TaxiOffered { .. }] =
            events.as_slice()
        else {
            panic!("expected expiry and a new offer, got {events:?}");
        };
        assert_eq!(*end, OfferEnd::Expired);
    }

    #[test]
    fn a_sweep_before_the_deadline_does_nothing() {
        let s = offered();
        assert!(decide_expire(&s, pass_on_at(14, 2, others(&s))).is_empty());
    }

    #[test]
    fn a_late_sweep_expires_only_the_open_offer_once() {
        // The tick came a minute late: the first offer expires, the second one is fresh.
        let s = offered();
        let s = fold(s.clone(), &decide_expire(&s, pass_on_at(75, 2, others(&s))));
        assert_eq!(current(&s).expires_at, secs(75 + 15));
        assert!(decide_expire(&s, pass_on_at(76, 3, others(&s))).is_empty());
    }

    #[test]
    fn an_accepted_offer_never_expires() {
        let s = allocated();
        assert!(decide_expire(&s, pass_on_at(3_600, 2, others(&s))).is_empty());
    }

    // ---------------------------------------------------------------- GrabCancelled

    #[test]
    fn a_cancel_during_an_offer_withdraws_it() {
        let events = decide_cancel(&offered(), cancel()).unwrap();
        let [AllocationEvent::GrabTombstoned { .. }, AllocationEvent::AllocationCancelled(c)] =
            events.as_slice()
        else {
            panic!("expected the offer withdrawn, got {events:?}");
        };
        assert_eq!(c.taxi_id, taxi_id(1));
        let s = fold(offered(), &events);
        assert_eq!(current(&s).status, AllocationStatus::Cancelled);
        assert!(decide_expire(&s, pass_on_at(60, 2, others(&s))).is_empty());
    }

    #[test]
    fn cancelling_an_allocated_grab_releases_the_taxi() {
        let events = decide_cancel(&allocated(), cancel()).unwrap();
        let AllocationEvent::AllocationCancelled(c) = &events[1] else {
            panic!("expected AllocationCancelled, got {events:?}");
        };
        assert_eq!(c.reason, "cancelled by rider");
        assert_eq!(events[0].published(), None);
        let s = fold(allocated(), &events);
        assert!(s.cancelled);
        assert_eq!(current(&s).status, AllocationStatus::Cancelled);
    }

    #[test]
    fn cancelling_after_ride_started_still_wins_because_grab_accepted_it() {
        let events = decide_cancel(&ride_started(), cancel()).unwrap();
        assert!(matches!(
            events.as_slice(),
            [
                AllocationEvent::GrabTombstoned { .. },
                AllocationEvent::AllocationCancelled(_)
            ]
        ));
    }

    #[test]
    fn cancelling_before_payment_only_tombstones_the_grab() {
        let events = decide_cancel(&fresh(), cancel()).unwrap();
        assert!(matches!(
            events.as_slice(),
            [AllocationEvent::GrabTombstoned { .. }]
        ));
    }

    #[test]
    fn cancelling_twice_changes_nothing_the_second_time() {
        let once = cancelled(allocated());
        assert!(decide_cancel(&once, cancel()).unwrap().is_empty());
    }

    #[test]
    fn cancelling_a_failed_grab_only_tombstones_it() {
        let failed = fold(
            fresh(),
            &decide_allocate(&fresh(), allocate_with(vec![])).unwrap(),
        );
        assert!(matches!(
            decide_cancel(&failed, cancel()).unwrap().as_slice(),
            [AllocationEvent::GrabTombstoned { .. }]
        ));
    }

    #[test]
    fn cancelling_after_the_last_offer_expired_releases_nothing_twice() {
        let s = offered();
        let offer = current(&s).clone();
        let s = fold(
            s.clone(),
            &decide_decline(&s, &offer, OfferEnd::Declined, pass_on_at(3, 2, vec![])).unwrap(),
        );
        assert!(matches!(
            decide_cancel(&s, cancel()).unwrap().as_slice(),
            [AllocationEvent::GrabTombstoned { .. }]
        ));
    }

    // ---------------------------------------------------------------- pickup and complete

    #[test]
    fn picking_up_an_accepted_ride_starts_it() {
        let s = allocated();
        let events = decide_pickup(current(&s), PickUpRider { now: secs(60) }).unwrap();
        let [AllocationEvent::RideStarted(r)] = events.as_slice() else {
            panic!("expected RideStarted, got {events:?}");
        };
        assert_eq!(r.taxi_num, "서울1");
        let s = fold(s, &events);
        assert_eq!(current(&s).status, AllocationStatus::RideStarted);
        assert_eq!(current(&s).started_at, Some(secs(60)));
        assert!(decide_pickup(current(&s), PickUpRider { now: secs(61) })
            .unwrap()
            .is_empty());
    }

    #[test]
    fn picking_up_before_accepting_is_refused() {
        let s = offered();
        assert_eq!(
            decide_pickup(current(&s), PickUpRider { now: secs(1) }),
            Err(AllocationError::NotAccepted(allocation_id().to_string()))
        );
    }

    fn complete(s: &GrabAllocation) -> Result<Vec<AllocationEvent>, AllocationError> {
        decide_complete(current(s), CompleteRide { now: secs(900) })
    }

    #[test]
    fn completing_a_started_ride_frees_the_taxi() {
        let s = ride_started();
        let events = complete(&s).unwrap();
        let [AllocationEvent::RideCompleted(r)] = events.as_slice() else {
            panic!("expected RideCompleted, got {events:?}");
        };
        assert_eq!(r.allocation_id, allocation_id());
        let s = fold(s, &events);
        assert_eq!(current(&s).status, AllocationStatus::Completed);
        assert!(!current(&s).status.is_active());
    }

    #[test]
    fn completing_twice_is_idempotent_and_accepting_a_completed_ride_is_refused() {
        let s = ride_started();
        let s = fold(s.clone(), &complete(&s).unwrap());
        assert!(complete(&s).unwrap().is_empty());
        assert_eq!(
            decide_accept(current(&s), AcceptRide { now: secs(901) }),
            Err(AllocationError::RideCompleted(allocation_id().to_string()))
        );
    }

    #[test]
    fn a_cancel_grab_accepted_before_the_ride_was_completed_still_wins() {
        let s = ride_started();
        let s = fold(s.clone(), &complete(&s).unwrap());
        let s = cancelled(s);
        assert_eq!(current(&s).status, AllocationStatus::Cancelled);
        assert!(decide_cancel(&s, cancel()).unwrap().is_empty(), "once only");
    }

    #[test]
    fn completing_before_pickup_or_after_cancel_is_refused() {
        assert_eq!(
            complete(&allocated()),
            Err(AllocationError::RideNotStarted(allocation_id().to_string()))
        );
        assert_eq!(
            complete(&offered()),
            Err(AllocationError::RideNotStarted(allocation_id().to_string()))
        );
        assert_eq!(
            complete(&cancelled(allocated())),
            Err(AllocationError::AllocationCancelled(
                allocation_id().to_string()
            ))
        );
    }

    // ---------------------------------------------------------------- drivers move and rest

    fn a_taxi() -> Taxi {
        register_taxi(
            None,
            RegisterTaxi {
                taxi_num: TaxiNum::parse("서울1").unwrap(),
                location: pickup(),
            },
            taxi_id(1),
            now(),
        )
        .unwrap()
    }

    #[test]
    fn a_registered_taxi_is_on_duty() {
        assert_eq!(a_taxi().duty, Duty::OnDuty);
    }

    #[test]
    fn a_driver_reports_a_new_location_but_not_more_often_than_the_interval() {
        let every = Duration::seconds(2);
        let to = MoveTaxi {
            location: north_of_pickup(300.0),
        };
        assert_eq!(
            decide_move(&a_taxi(), to.clone(), every, secs(1)),
            Err(AllocationError::LocationTooFrequent {
                retry_after_ms: 1_000
            })
        );
        let moved = decide_move(&a_taxi(), to.clone(), every, secs(2)).unwrap();
        assert_eq!(moved.location, to.location);
        assert_eq!(moved.location_at, secs(2));
    }

    #[test]
    fn a_location_or_duty_body_is_parsed_strictly() {
        let bad: MoveTaxiDto = serde_json::from_str(r#"{"location":{"lat":91,"lng":0}}"#).unwrap();
        assert_eq!(MoveTaxi::try_from(bad).unwrap_err().field, "location");
        assert!(serde_json::from_str::<MoveTaxiDto>(r#"{"lat":1,"lng":2}"#).is_err());
        let off: SetDutyDto = serde_json::from_str(r#"{"duty":"OffDuty"}"#).unwrap();
        assert_eq!(SetDuty::try_from(off).unwrap().duty, Duty::OffDuty);
        let bad: SetDutyDto = serde_json::from_str(r#"{"duty":"Napping"}"#).unwrap();
        assert_eq!(SetDuty::try_from(bad).unwrap_err().field, "duty");
    }

    #[test]
    fn going_off_duty_keeps_the_ride_the_taxi_is_on() {
        let t = decide_duty(
            &a_taxi(),
            SetDuty {
                duty: Duty::OffDuty,
            },
        );
        assert_eq!(t.duty, Duty::OffDuty);
        assert_eq!(t.status, a_taxi().status);
    }

    #[test]
    fn status_words_round_trip() {
        for s in AllocationStatus::ALL {
            assert_eq!(AllocationStatus::parse(s.as_str()), Some(s));
        }
        for s in [TaxiStatus::Available, TaxiStatus::Busy] {
            assert_eq!(TaxiStatus::parse(s.as_str()), Some(s));
        }
        for d in [Duty::OnDuty, Duty::OffDuty] {
            assert_eq!(Duty::parse(d.as_str()), Some(d));
        }
        assert_eq!(TaxiStatus::parse("available"), None);
    }
}
