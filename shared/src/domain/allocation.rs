//! The taxi and allocation aggregates (owned by the allocate component).
//!
//! - A [`Taxi`] is registered from a [`RegisterTaxiDto`] (parse, don't validate) and is
//!   `Available` or `Busy`.
//! - A [`GrabAllocation`] is what allocate knows about one ride: whether the grab was
//!   cancelled (a tombstone, so a late `PaymentApproved` does nothing), whether allocation
//!   failed, and the [`Allocation`] of a taxi if there is one.
//! - Decisions are pure: [`decide_allocate`] picks the nearest available taxi within the
//!   radius ([`nearest_taxi`]), [`decide_cancel`] releases it, [`decide_accept`] starts the
//!   ride. Each returns [`AllocationEvent`]s; [`GrabAllocation::apply`] folds them in.
//!   Ids and time come from the shell.

use super::values::{GeoPoint, GeoPointDto, InvalidValue};
use crate::events::{self, DomainEvent};
use crate::ids::{AllocationId, GrabId, PaymentId, TaxiId};
use chrono::{DateTime, Utc};
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

/// A registered taxi.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Taxi {
    pub taxi_id: TaxiId,
    pub taxi_num: TaxiNum,
    pub status: TaxiStatus,
    pub location: GeoPoint,
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
        location: cmd.location,
        registered_at: now,
    })
}

/// An available taxi the shell offers to [`nearest_taxi`].
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

/// Where an allocation is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AllocationStatus {
    /// A taxi is assigned and on its way.
    Allocated,
    /// The driver accepted; the ride is on.
    RideStarted,
    /// The driver dropped the rider off; the taxi is free again.
    Completed,
    /// The grab was cancelled; the taxi was released.
    Cancelled,
}

impl AllocationStatus {
    /// The status word stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            AllocationStatus::Allocated => "Allocated",
            AllocationStatus::RideStarted => "RideStarted",
            AllocationStatus::Completed => "Completed",
            AllocationStatus::Cancelled => "Cancelled",
        }
    }

    /// Parse a status word (exact); `None` otherwise.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "Allocated" => Some(AllocationStatus::Allocated),
            "RideStarted" => Some(AllocationStatus::RideStarted),
            "Completed" => Some(AllocationStatus::Completed),
            "Cancelled" => Some(AllocationStatus::Cancelled),
            _ => None,
        }
    }

    /// Whether the allocation still holds its taxi.
    pub fn is_active(self) -> bool {
        matches!(
            self,
            AllocationStatus::Allocated | AllocationStatus::RideStarted
        )
    }
}

/// One assignment of a taxi to a grab.
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
    pub allocated_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub cancelled_at: Option<DateTime<Utc>>,
    pub cancel_reason: Option<String>,
}

/// Everything allocate knows about one grab.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GrabAllocation {
    /// `GrabCancelled` was seen: never allocate for this grab again.
    pub cancelled: bool,
    /// Allocation was attempted and no taxi was found (the reason sent).
    pub failed_reason: Option<String>,
    /// The taxi assignment, if one was made.
    pub allocation: Option<Allocation>,
}

/// Command: a payment was approved; find a taxi for the ride.
#[derive(Debug, Clone, PartialEq)]
pub struct AllocateTaxi {
    pub grab_id: GrabId,
    pub payment_id: PaymentId,
    pub pickup: GeoPoint,
    /// Available taxis (the shell may pre-filter with [`bounding_box`]).
    pub candidates: Vec<Candidate>,
    pub radius_m: u64,
    /// The id a new allocation gets.
    pub allocation_id: AllocationId,
    pub now: DateTime<Utc>,
}

/// Command: the grab was cancelled (by the rider, or by the system).
#[derive(Debug, Clone, PartialEq)]
pub struct CancelGrab {
    pub grab_id: GrabId,
    pub reason: String,
    pub now: DateTime<Utc>,
}

/// Command: the driver accepted the ride.
#[derive(Debug, Clone, PartialEq)]
pub struct AcceptRide {
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
    /// A taxi was assigned (taxi becomes Busy). Published.
    TaxiAllocated {
        event: events::TaxiAllocated,
        payment_id: PaymentId,
        pickup: GeoPoint,
    },
    /// No taxi within the radius. Published.
    AllocationFailed(events::AllocationFailed),
    /// Local only: the grab is cancelled; remember it so nothing is allocated later.
    GrabTombstoned {
        grab_id: GrabId,
        reason: String,
        at: DateTime<Utc>,
    },
    /// The active allocation was cancelled (taxi becomes Available). Published.
    AllocationCancelled(events::AllocationCancelled),
    /// The driver accepted. Published.
    RideStarted(events::RideStarted),
    /// The driver dropped the rider off (taxi becomes Available). Published.
    RideCompleted(events::RideCompleted),
}

impl AllocationEvent {
    /// The catalogue event to publish through the outbox, if this one is published.
    pub fn published(&self) -> Option<DomainEvent> {
        match self {
            AllocationEvent::TaxiAllocated { event, .. } => {
                Some(DomainEvent::TaxiAllocated(event.clone()))
            }
            AllocationEvent::AllocationFailed(e) => Some(DomainEvent::AllocationFailed(e.clone())),
            AllocationEvent::GrabTombstoned { .. } => None,
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
    /// Accepting a ride whose allocation was cancelled (409).
    #[error("allocation {0} was cancelled; the ride cannot start")]
    AllocationCancelled(String),
    /// Completing a ride the driver has not accepted yet (409).
    #[error("allocation {0} has not started; accept the ride first")]
    RideNotStarted(String),
    /// Accepting a ride that is already over (409).
    #[error("allocation {0} is completed")]
    RideCompleted(String),
}

/// Decide what a `PaymentApproved` does. No-op (no events) when the grab was cancelled,
/// already has an allocation, or already failed; otherwise the nearest taxi or a failure.
pub fn decide_allocate(
    state: &GrabAllocation,
    cmd: AllocateTaxi,
) -> Result<Vec<AllocationEvent>, AllocationError> {
    if state.cancelled || state.allocation.is_some() || state.failed_reason.is_some() {
        return Ok(Vec::new());
    }
    let event = match nearest_taxi(&cmd.pickup, cmd.radius_m, &cmd.candidates) {
        Some(choice) => AllocationEvent::TaxiAllocated {
            event: events::TaxiAllocated {
                allocation_id: cmd.allocation_id,
                grab_id: cmd.grab_id,
                taxi_id: choice.taxi_id,
                taxi_num: choice.taxi_num.to_string(),
                distance_meters: choice.distance_meters,
                allocated_at: cmd.now,
            },
            payment_id: cmd.payment_id,
            pickup: cmd.pickup,
        },
        None => AllocationEvent::AllocationFailed(events::AllocationFailed {
            grab_id: cmd.grab_id,
            reason: format!("no taxi available within {} m", cmd.radius_m),
            failed_at: cmd.now,
        }),
    };
    Ok(vec![event])
}

/// Decide what a `GrabCancelled` does: always tombstone the grab (once); an allocation
/// that is not already cancelled is cancelled, because grab accepted the cancel, so it wins.
/// That covers a ride the driver started, or even completed, before the cancel reached us
/// (the rider is refunded either way). Its taxi is released unless the completion already
/// freed it.
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
        .filter(|a| a.status != AllocationStatus::Cancelled)
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

/// Decide a driver's accept: Allocated → RideStarted; already started → nothing
/// (idempotent); cancelled → [`AllocationError::AllocationCancelled`].
pub fn decide_accept(
    allocation: &Allocation,
    cmd: AcceptRide,
) -> Result<Vec<AllocationEvent>, AllocationError> {
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
        AllocationStatus::Completed => Err(AllocationError::RideCompleted(
            allocation.allocation_id.to_string(),
        )),
        AllocationStatus::Cancelled => Err(AllocationError::AllocationCancelled(
            allocation.allocation_id.to_string(),
        )),
    }
}

/// Decide a driver's drop-off: RideStarted → Completed (the taxi is free again); already
/// completed → nothing (idempotent); not started yet or cancelled → refused.
pub fn decide_complete(
    allocation: &Allocation,
    cmd: CompleteRide,
) -> Result<Vec<AllocationEvent>, AllocationError> {
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
        AllocationStatus::Allocated => Err(AllocationError::RideNotStarted(
            allocation.allocation_id.to_string(),
        )),
        AllocationStatus::Cancelled => Err(AllocationError::AllocationCancelled(
            allocation.allocation_id.to_string(),
        )),
    }
}

impl GrabAllocation {
    /// Fold one decided event into the state.
    pub fn apply(mut self, event: &AllocationEvent) -> Self {
        match event {
            AllocationEvent::TaxiAllocated {
                event,
                payment_id,
                pickup,
            } => {
                self.allocation = Some(Allocation {
                    allocation_id: event.allocation_id.clone(),
                    grab_id: event.grab_id.clone(),
                    payment_id: Some(payment_id.clone()),
                    taxi_id: event.taxi_id.clone(),
                    taxi_num: event.taxi_num.clone(),
                    status: AllocationStatus::Allocated,
                    distance_meters: event.distance_meters,
                    pickup: pickup.clone(),
                    allocated_at: event.allocated_at,
                    started_at: None,
                    completed_at: None,
                    cancelled_at: None,
                    cancel_reason: None,
                });
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

    fn grab_id() -> GrabId {
        GrabId::parse("7f1c1a52-6b0e-4c4f-9f51-1d3c2b9a0e11").unwrap()
    }

    fn payment_id() -> PaymentId {
        PaymentId::parse("11111111-2222-4333-8444-555555555555").unwrap()
    }

    fn allocation_id() -> AllocationId {
        AllocationId::parse("aaaaaaaa-0000-4000-8000-000000000001").unwrap()
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

    fn allocate_with(candidates: Vec<Candidate>) -> AllocateTaxi {
        AllocateTaxi {
            grab_id: grab_id(),
            payment_id: payment_id(),
            pickup: pickup(),
            candidates,
            radius_m: 5_000,
            allocation_id: allocation_id(),
            now: now(),
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

    /// Given: a taxi 1 km away was allocated.
    fn allocated() -> GrabAllocation {
        let events = decide_allocate(
            &fresh(),
            allocate_with(vec![candidate(1, "서울1", north_of_pickup(1_000.0))]),
        )
        .unwrap();
        events.iter().fold(fresh(), GrabAllocation::apply)
    }

    fn ride_started() -> GrabAllocation {
        let s = allocated();
        let events =
            decide_accept(s.allocation.as_ref().unwrap(), AcceptRide { now: now() }).unwrap();
        events.iter().fold(s, GrabAllocation::apply)
    }

    fn cancelled(s: GrabAllocation) -> GrabAllocation {
        let events = decide_cancel(&s, cancel()).unwrap();
        events.iter().fold(s, GrabAllocation::apply)
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
    fn payment_approved_allocates_the_nearest_available_taxi() {
        let events = decide_allocate(
            &fresh(),
            allocate_with(vec![
                candidate(1, "서울1", north_of_pickup(2_000.0)),
                candidate(2, "서울2", north_of_pickup(300.0)),
            ]),
        )
        .unwrap();
        let [AllocationEvent::TaxiAllocated {
            event,
            payment_id: p,
            ..
        }] = events.as_slice()
        else {
            panic!("expected one TaxiAllocated, got {events:?}");
        };
        assert_eq!(event.taxi_id, taxi_id(2));
        assert_eq!(event.taxi_num, "서울2");
        assert_eq!(event.allocation_id, allocation_id());
        assert_eq!(event.grab_id, grab_id());
        assert_eq!(p, &payment_id());
        let state = events.iter().fold(fresh(), GrabAllocation::apply);
        let a = state.allocation.unwrap();
        assert_eq!(a.status, AllocationStatus::Allocated);
        assert_eq!(a.distance_meters, event.distance_meters);
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
        assert!(events[0].published().is_some());
        let state = events.iter().fold(fresh(), GrabAllocation::apply);
        assert_eq!(
            state.failed_reason.as_deref(),
            Some("no taxi available within 5000 m")
        );
    }

    #[test]
    fn payment_approved_with_no_taxi_at_all_fails() {
        let events = decide_allocate(&fresh(), allocate_with(vec![])).unwrap();
        assert!(matches!(
            events.as_slice(),
            [AllocationEvent::AllocationFailed(_)]
        ));
    }

    #[test]
    fn payment_approved_after_the_grab_was_cancelled_does_nothing() {
        let state = cancelled(fresh());
        let events = decide_allocate(
            &state,
            allocate_with(vec![candidate(1, "near", north_of_pickup(100.0))]),
        )
        .unwrap();
        assert!(events.is_empty());
    }

    #[test]
    fn payment_approved_for_an_already_allocated_grab_does_nothing() {
        let events = decide_allocate(
            &allocated(),
            allocate_with(vec![candidate(2, "other", north_of_pickup(10.0))]),
        )
        .unwrap();
        assert!(events.is_empty());
    }

    #[test]
    fn payment_approved_for_a_grab_that_already_failed_does_nothing() {
        let failed = decide_allocate(&fresh(), allocate_with(vec![]))
            .unwrap()
            .iter()
            .fold(fresh(), GrabAllocation::apply);
        let events = decide_allocate(
            &failed,
            allocate_with(vec![candidate(1, "new", north_of_pickup(10.0))]),
        )
        .unwrap();
        assert!(events.is_empty());
    }

    // ---------------------------------------------------------------- GrabCancelled

    #[test]
    fn cancelling_an_allocated_grab_releases_the_taxi() {
        let events = decide_cancel(&allocated(), cancel()).unwrap();
        assert!(matches!(events[0], AllocationEvent::GrabTombstoned { .. }));
        let AllocationEvent::AllocationCancelled(c) = &events[1] else {
            panic!("expected AllocationCancelled, got {events:?}");
        };
        assert_eq!(c.taxi_id, taxi_id(1));
        assert_eq!(c.reason, "cancelled by rider");
        assert_eq!(events[0].published(), None);
        let state = events.iter().fold(allocated(), GrabAllocation::apply);
        assert!(state.cancelled);
        assert_eq!(
            state.allocation.unwrap().status,
            AllocationStatus::Cancelled
        );
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
        assert!(events.iter().fold(fresh(), GrabAllocation::apply).cancelled);
    }

    #[test]
    fn cancelling_twice_changes_nothing_the_second_time() {
        let once = cancelled(allocated());
        assert!(decide_cancel(&once, cancel()).unwrap().is_empty());
    }

    #[test]
    fn cancelling_a_failed_grab_only_tombstones_it() {
        let failed = decide_allocate(&fresh(), allocate_with(vec![]))
            .unwrap()
            .iter()
            .fold(fresh(), GrabAllocation::apply);
        let events = decide_cancel(&failed, cancel()).unwrap();
        assert!(matches!(
            events.as_slice(),
            [AllocationEvent::GrabTombstoned { .. }]
        ));
    }

    // ---------------------------------------------------------------- accept

    #[test]
    fn accepting_an_allocation_starts_the_ride() {
        let s = allocated();
        let events =
            decide_accept(s.allocation.as_ref().unwrap(), AcceptRide { now: now() }).unwrap();
        let [AllocationEvent::RideStarted(r)] = events.as_slice() else {
            panic!("expected RideStarted, got {events:?}");
        };
        assert_eq!(r.allocation_id, allocation_id());
        assert_eq!(r.taxi_num, "서울1");
        let a = events
            .iter()
            .fold(s, GrabAllocation::apply)
            .allocation
            .unwrap();
        assert_eq!(a.status, AllocationStatus::RideStarted);
        assert_eq!(a.started_at, Some(now()));
    }

    #[test]
    fn accepting_twice_is_idempotent_and_emits_nothing() {
        let s = ride_started();
        let events =
            decide_accept(s.allocation.as_ref().unwrap(), AcceptRide { now: now() }).unwrap();
        assert!(events.is_empty());
    }

    #[test]
    fn accepting_after_cancel_is_refused() {
        let s = cancelled(allocated());
        assert_eq!(
            decide_accept(s.allocation.as_ref().unwrap(), AcceptRide { now: now() }),
            Err(AllocationError::AllocationCancelled(
                allocation_id().to_string()
            ))
        );
    }

    // ---------------------------------------------------------------- complete

    fn complete(s: &GrabAllocation) -> Result<Vec<AllocationEvent>, AllocationError> {
        decide_complete(s.allocation.as_ref().unwrap(), CompleteRide { now: now() })
    }

    #[test]
    fn completing_a_started_ride_frees_the_taxi() {
        let s = ride_started();
        let events = complete(&s).unwrap();
        let [AllocationEvent::RideCompleted(r)] = events.as_slice() else {
            panic!("expected RideCompleted, got {events:?}");
        };
        assert_eq!(r.allocation_id, allocation_id());
        let a = events
            .iter()
            .fold(s, GrabAllocation::apply)
            .allocation
            .unwrap();
        assert_eq!(a.status, AllocationStatus::Completed);
        assert_eq!(a.completed_at, Some(now()));
        assert!(
            !a.status.is_active(),
            "a completed ride no longer holds its taxi"
        );
    }

    #[test]
    fn completing_twice_is_idempotent_and_accepting_a_completed_ride_is_refused() {
        let s = ride_started();
        let s = complete(&s).unwrap().iter().fold(s, GrabAllocation::apply);
        assert!(complete(&s).unwrap().is_empty());
        assert_eq!(
            decide_accept(s.allocation.as_ref().unwrap(), AcceptRide { now: now() }),
            Err(AllocationError::RideCompleted(allocation_id().to_string()))
        );
    }

    #[test]
    fn a_cancel_grab_accepted_before_the_ride_was_completed_still_wins() {
        // The rider cancelled while the driver accepted and dropped off: grab accepted the
        // cancel (and pay refunds it), so the allocation ends Cancelled, not Completed.
        let s = ride_started();
        let s = complete(&s).unwrap().iter().fold(s, GrabAllocation::apply);
        let s = cancelled(s);
        assert!(s.cancelled);
        assert_eq!(
            s.allocation.as_ref().unwrap().status,
            AllocationStatus::Cancelled
        );
        assert!(decide_cancel(&s, cancel()).unwrap().is_empty(), "once only");
    }

    #[test]
    fn completing_before_accept_or_after_cancel_is_refused() {
        assert_eq!(
            complete(&allocated()),
            Err(AllocationError::RideNotStarted(allocation_id().to_string()))
        );
        assert_eq!(
            complete(&cancelled(allocated())),
            Err(AllocationError::AllocationCancelled(
                allocation_id().to_string()
            ))
        );
    }

    #[test]
    fn status_words_round_trip() {
        for s in [
            AllocationStatus::Allocated,
            AllocationStatus::RideStarted,
            AllocationStatus::Completed,
            AllocationStatus::Cancelled,
        ] {
            assert_eq!(AllocationStatus::parse(s.as_str()), Some(s));
        }
        for s in [TaxiStatus::Available, TaxiStatus::Busy] {
            assert_eq!(TaxiStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(TaxiStatus::parse("available"), None);
    }
}
