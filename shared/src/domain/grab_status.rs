//! The grab-status read model (CQRS view fed only by events).
//!
//! Events arrive at least once and in any order, so the view never stores a status: it
//! stores the *facts* each event brings ([`GrabFacts`], one slot per event type) and
//! [`derive`]s every status from them with a fixed precedence. Recording is commutative
//! and idempotent (a slot is filled once; the applied-event list is a sorted set), so any
//! order of the same events, with any duplicates, yields the same [`GrabStatusView`].

use super::values::{GeoPoint, Money, PhoneNumber};
use crate::events::{self, DomainEvent};
use crate::ids::{AllocationId, GrabId, PaymentId, QuoteId, TaxiId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The `initiatedBy` of a `GrabCancelled` that grab sent because pay stayed unavailable.
pub const CANCELLED_BY_SYSTEM: &str = "system";

/// One applied event, as listed in the view. `correlationId` is kept to pick the ride's.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppliedEvent {
    /// When the fact happened (the event's own timestamp, so it is the same on every resend).
    pub time: DateTime<Utc>,
    /// The event name, e.g. `PaymentApproved`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The CloudEvent id.
    pub id: String,
    /// The CloudEvent `correlationid`, if it had one.
    #[serde(default)]
    pub correlation_id: Option<String>,
}

impl AppliedEvent {
    /// Describe `event`, delivered with CloudEvent id `id` and `correlation_id`.
    pub fn of(event: &DomainEvent, id: impl Into<String>, correlation_id: Option<String>) -> Self {
        Self {
            time: occurred_at(event),
            event_type: event.event_type().name().to_owned(),
            id: id.into(),
            correlation_id,
        }
    }
}

/// When the fact an event reports happened (its payload timestamp).
pub fn occurred_at(event: &DomainEvent) -> DateTime<Utc> {
    match event {
        DomainEvent::GrabRequested(e) => e.requested_at,
        DomainEvent::GrabCancelled(e) => e.cancelled_at,
        DomainEvent::PaymentApproved(e) => e.approved_at,
        DomainEvent::PaymentRejected(e) => e.rejected_at,
        DomainEvent::PaymentRefunded(e) => e.refunded_at,
        DomainEvent::TaxiOffered(e) => e.offered_at,
        DomainEvent::TaxiAllocated(e) => e.allocated_at,
        DomainEvent::AllocationFailed(e) => e.failed_at,
        DomainEvent::AllocationCancelled(e) => e.cancelled_at,
        DomainEvent::RideStarted(e) => e.started_at,
        DomainEvent::RideCompleted(e) => e.completed_at,
    }
}

/// Everything the events of one ride told us. Stored as JSON; statuses are derived.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GrabFacts {
    pub requested: Option<events::GrabRequested>,
    pub cancelled: Option<events::GrabCancelled>,
    pub payment_approved: Option<events::PaymentApproved>,
    pub payment_rejected: Option<events::PaymentRejected>,
    pub payment_refunded: Option<events::PaymentRefunded>,
    /// The latest offer (highest `offerNumber`) whatever the arrival order.
    #[serde(default)]
    pub latest_offer: Option<events::TaxiOffered>,
    pub taxi_allocated: Option<events::TaxiAllocated>,
    pub allocation_failed: Option<events::AllocationFailed>,
    pub allocation_cancelled: Option<events::AllocationCancelled>,
    pub ride_started: Option<events::RideStarted>,
    pub ride_completed: Option<events::RideCompleted>,
    /// Applied events, sorted by (time, type, id), without duplicates.
    pub events: Vec<AppliedEvent>,
}

/// Whether recording changed the facts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// A new fact (or a new delivery of one) was added.
    Applied,
    /// This (type, id) was applied before: nothing changed.
    AlreadyApplied,
}

fn fill<T: Clone>(slot: &mut Option<T>, value: &T) {
    // One fact per (type, ride): the first delivery fills the slot, resends carry the same data.
    if slot.is_none() {
        *slot = Some(value.clone());
    }
}

impl GrabFacts {
    /// Record one event. Commutative and idempotent: the order of calls does not matter,
    /// and the same (type, id) twice changes nothing.
    pub fn record(&mut self, event: &DomainEvent, applied: AppliedEvent) -> Recorded {
        let seen = self
            .events
            .iter()
            .any(|e| e.event_type == applied.event_type && e.id == applied.id);
        if seen {
            return Recorded::AlreadyApplied;
        }
        match event {
            DomainEvent::GrabRequested(e) => fill(&mut self.requested, e),
            DomainEvent::GrabCancelled(e) => fill(&mut self.cancelled, e),
            DomainEvent::PaymentApproved(e) => fill(&mut self.payment_approved, e),
            DomainEvent::PaymentRejected(e) => fill(&mut self.payment_rejected, e),
            DomainEvent::PaymentRefunded(e) => fill(&mut self.payment_refunded, e),
            DomainEvent::TaxiOffered(e) => {
                if self
                    .latest_offer
                    .as_ref()
                    .is_none_or(|o| o.offer_number < e.offer_number)
                {
                    self.latest_offer = Some(e.clone());
                }
            }
            DomainEvent::TaxiAllocated(e) => fill(&mut self.taxi_allocated, e),
            DomainEvent::AllocationFailed(e) => fill(&mut self.allocation_failed, e),
            DomainEvent::AllocationCancelled(e) => fill(&mut self.allocation_cancelled, e),
            DomainEvent::RideStarted(e) => fill(&mut self.ride_started, e),
            DomainEvent::RideCompleted(e) => fill(&mut self.ride_completed, e),
        }
        let at = self.events.partition_point(|e| e < &applied);
        self.events.insert(at, applied);
        Recorded::Applied
    }
}

/// The rider-facing status of a grab: the same words grab itself uses.
pub use super::grab::GrabStatus;

/// The payment's status as events report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PaymentStatus {
    Approved,
    Rejected,
    Refunded,
}

/// The allocation's status as events report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AllocationStatus {
    /// Offered to a taxi whose driver has not answered yet.
    Offered,
    Allocated,
    Failed,
    Cancelled,
    RideStarted,
    Completed,
}

/// A summary of one applied event, as shown in the view.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventSummary {
    #[serde(rename = "type")]
    pub event_type: String,
    pub id: String,
    pub time: DateTime<Utc>,
}

/// `GET /grabStatuses/{grabId}`: everything known about a ride; unknown fields are null.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GrabStatusView {
    pub grab_id: GrabId,
    pub grab_status: GrabStatus,
    pub payment_status: Option<PaymentStatus>,
    pub allocation_status: Option<AllocationStatus>,
    pub phone_number: Option<PhoneNumber>,
    pub starting_point: Option<GeoPoint>,
    pub destination: Option<GeoPoint>,
    pub estimated_fee: Option<Money>,
    /// What the ride costs: the quoted fare (GrabRequested), else the amount charged.
    pub fare: Option<Money>,
    /// The quote the ride was booked on.
    pub quote_id: Option<QuoteId>,
    pub payment_id: Option<PaymentId>,
    pub amount: Option<Money>,
    pub allocation_id: Option<AllocationId>,
    pub taxi_id: Option<TaxiId>,
    pub taxi_num: Option<String>,
    pub distance_meters: Option<u64>,
    /// How many taxis the ride was offered to so far.
    pub offer_number: Option<u32>,
    /// Until when the current offer waits for its driver (until one accepted).
    pub offer_expires_at: Option<DateTime<Utc>>,
    /// Why the ride ended where it did (cancel, failure, rejection, refund).
    pub reason: Option<String>,
    /// `rider` or `system` when the grab was cancelled.
    pub cancelled_by: Option<String>,
    pub correlation_id: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
    pub events: Vec<EventSummary>,
}

/// The grab status, first match wins: Cancelled (by the rider) | Failed (system cancel or
/// allocation failed) | Rejected | Completed | RideStarted | Allocated | Paid | Requested.
pub fn grab_status(f: &GrabFacts) -> GrabStatus {
    let by_system = |c: &events::GrabCancelled| c.initiated_by == CANCELLED_BY_SYSTEM;
    match f {
        GrabFacts {
            cancelled: Some(c), ..
        } if !by_system(c) => GrabStatus::Cancelled,
        GrabFacts {
            cancelled: Some(_), ..
        } => GrabStatus::Failed,
        GrabFacts {
            allocation_failed: Some(_),
            ..
        } => GrabStatus::Failed,
        GrabFacts {
            payment_rejected: Some(_),
            ..
        } => GrabStatus::Rejected,
        GrabFacts {
            ride_completed: Some(_),
            ..
        } => GrabStatus::Completed,
        GrabFacts {
            ride_started: Some(_),
            ..
        } => GrabStatus::RideStarted,
        GrabFacts {
            taxi_allocated: Some(_),
            ..
        } => GrabStatus::Allocated,
        GrabFacts {
            payment_approved: Some(_),
            ..
        } => GrabStatus::Paid,
        _ => GrabStatus::Requested,
    }
}

/// The payment status: Refunded > Approved | Rejected; `None` before any payment event.
pub fn payment_status(f: &GrabFacts) -> Option<PaymentStatus> {
    if f.payment_refunded.is_some() {
        Some(PaymentStatus::Refunded)
    } else if f.payment_approved.is_some() {
        Some(PaymentStatus::Approved)
    } else if f.payment_rejected.is_some() {
        Some(PaymentStatus::Rejected)
    } else {
        None
    }
}

/// The allocation status: Cancelled > Completed > RideStarted > Allocated > Failed >
/// Offered; `None` before any.
pub fn allocation_status(f: &GrabFacts) -> Option<AllocationStatus> {
    if f.allocation_cancelled.is_some() {
        Some(AllocationStatus::Cancelled)
    } else if f.ride_completed.is_some() {
        Some(AllocationStatus::Completed)
    } else if f.ride_started.is_some() {
        Some(AllocationStatus::RideStarted)
    } else if f.taxi_allocated.is_some() {
        Some(AllocationStatus::Allocated)
    } else if f.allocation_failed.is_some() {
        Some(AllocationStatus::Failed)
    } else if f.latest_offer.is_some() {
        Some(AllocationStatus::Offered)
    } else {
        None
    }
}

fn reason(f: &GrabFacts, status: GrabStatus) -> Option<String> {
    match status {
        GrabStatus::Cancelled => f.cancelled.as_ref().map(|c| c.reason.clone()),
        GrabStatus::Failed => f
            .allocation_failed
            .as_ref()
            .map(|a| a.reason.clone())
            .or_else(|| f.cancelled.as_ref().map(|c| c.reason.clone())),
        GrabStatus::Rejected => f.payment_rejected.as_ref().map(|r| r.reason.clone()),
        _ => f.payment_refunded.as_ref().map(|r| r.reason.clone()),
    }
}

/// Derive the view of ride `grab_id` from its facts. Pure: the same facts give the same view.
pub fn derive(grab_id: &GrabId, f: &GrabFacts) -> GrabStatusView {
    let status = grab_status(f);
    let (req, appr) = (f.requested.as_ref(), f.payment_approved.as_ref());
    let correlation_id = f
        .events
        .iter()
        .find(|e| e.event_type == events::EventType::GrabRequested.name())
        .or_else(|| f.events.first())
        .and_then(|e| e.correlation_id.clone());
    GrabStatusView {
        grab_id: grab_id.clone(),
        grab_status: status,
        payment_status: payment_status(f),
        allocation_status: allocation_status(f),
        phone_number: req
            .map(|r| r.phone_number.clone())
            .or_else(|| appr.map(|a| a.phone_number.clone()))
            .or_else(|| f.payment_rejected.as_ref().map(|r| r.phone_number.clone())),
        starting_point: req
            .map(|r| r.starting_point.clone())
            .or_else(|| appr.map(|a| a.starting_point.clone())),
        destination: req
            .map(|r| r.destination.clone())
            .or_else(|| appr.map(|a| a.destination.clone())),
        estimated_fee: req.map(|r| r.estimated_fee),
        fare: req
            .map(|r| r.estimated_fee)
            .or_else(|| appr.map(|a| a.amount)),
        quote_id: req.and_then(|r| r.quote_id.clone()),
        payment_id: appr
            .map(|a| a.payment_id.clone())
            .or_else(|| f.payment_refunded.as_ref().map(|r| r.payment_id.clone())),
        amount: appr
            .map(|a| a.amount)
            .or_else(|| f.payment_refunded.as_ref().map(|r| r.amount))
            .or_else(|| f.payment_rejected.as_ref().map(|r| r.amount)),
        allocation_id: f
            .taxi_allocated
            .as_ref()
            .map(|a| a.allocation_id.clone())
            .or_else(|| f.ride_started.as_ref().map(|r| r.allocation_id.clone()))
            .or_else(|| {
                f.allocation_cancelled
                    .as_ref()
                    .map(|c| c.allocation_id.clone())
            })
            .or_else(|| f.latest_offer.as_ref().map(|o| o.allocation_id.clone())),
        taxi_id: f
            .taxi_allocated
            .as_ref()
            .map(|a| a.taxi_id.clone())
            .or_else(|| f.ride_started.as_ref().map(|r| r.taxi_id.clone()))
            .or_else(|| f.allocation_cancelled.as_ref().map(|c| c.taxi_id.clone()))
            .or_else(|| f.latest_offer.as_ref().map(|o| o.taxi_id.clone())),
        taxi_num: f
            .taxi_allocated
            .as_ref()
            .map(|a| a.taxi_num.clone())
            .or_else(|| f.ride_started.as_ref().map(|r| r.taxi_num.clone()))
            .or_else(|| f.latest_offer.as_ref().map(|o| o.taxi_num.clone())),
        distance_meters: f
            .taxi_allocated
            .as_ref()
            .map(|a| a.distance_meters)
            .or_else(|| f.latest_offer.as_ref().map(|o| o.distance_meters)),
        offer_number: f.latest_offer.as_ref().map(|o| o.offer_number),
        offer_expires_at: f
            .latest_offer
            .as_ref()
            .filter(|_| f.taxi_allocated.is_none())
            .map(|o| o.expires_at),
        reason: reason(f, status),
        cancelled_by: f.cancelled.as_ref().map(|c| c.initiated_by.clone()),
        correlation_id,
        created_at: req
            .map(|r| r.requested_at)
            .or_else(|| f.events.first().map(|e| e.time)),
        updated_at: f.events.iter().map(|e| e.time).max(),
        events: f
            .events
            .iter()
            .map(|e| EventSummary {
                event_type: e.event_type.clone(),
                id: e.id.clone(),
                time: e.time,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::CorrelationId;

    // ---------------------------------------------------------------- fixtures

    fn at(minute: u32) -> DateTime<Utc> {
        format!("2026-11-25T10:{minute:02}:00Z").parse().unwrap()
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

    fn taxi_id() -> TaxiId {
        TaxiId::parse("bbbbbbbb-0000-4000-8000-000000000001").unwrap()
    }

    fn phone() -> PhoneNumber {
        PhoneNumber::parse("010-1234-5678").unwrap()
    }

    fn station() -> GeoPoint {
        GeoPoint::new(37.5547, 126.9707, Some("Seoul Station".into())).unwrap()
    }

    fn gangnam() -> GeoPoint {
        GeoPoint::new(37.4979, 127.0276, Some("Gangnam".into())).unwrap()
    }

    fn grab_requested() -> DomainEvent {
        DomainEvent::GrabRequested(events::GrabRequested {
            grab_id: grab_id(),
            phone_number: phone(),
            starting_point: station(),
            destination: gangnam(),
            estimated_fee: Money::krw(15_000).unwrap(),
            quote_id: None,
            requested_at: at(0),
        })
    }

    fn payment_approved() -> DomainEvent {
        DomainEvent::PaymentApproved(events::PaymentApproved {
            payment_id: payment_id(),
            grab_id: grab_id(),
            amount: Money::krw(15_000).unwrap(),
            phone_number: phone(),
            starting_point: station(),
            destination: gangnam(),
            approved_at: at(1),
        })
    }

    fn payment_rejected() -> DomainEvent {
        DomainEvent::PaymentRejected(events::PaymentRejected {
            grab_id: grab_id(),
            reason: "amount over the limit".into(),
            phone_number: phone(),
            amount: Money::krw(500_000).unwrap(),
            rejected_at: at(1),
        })
    }

    fn taxi_allocated() -> DomainEvent {
        DomainEvent::TaxiAllocated(events::TaxiAllocated {
            allocation_id: allocation_id(),
            grab_id: grab_id(),
            taxi_id: taxi_id(),
            taxi_num: "서울32저4703".into(),
            distance_meters: 812,
            allocated_at: at(2),
        })
    }

    fn allocation_failed() -> DomainEvent {
        DomainEvent::AllocationFailed(events::AllocationFailed {
            grab_id: grab_id(),
            reason: "no taxi available within 10000 m".into(),
            failed_at: at(2),
        })
    }

    fn ride_started() -> DomainEvent {
        DomainEvent::RideStarted(events::RideStarted {
            allocation_id: allocation_id(),
            grab_id: grab_id(),
            taxi_id: taxi_id(),
            taxi_num: "서울32저4703".into(),
            started_at: at(3),
        })
    }

    fn ride_completed() -> DomainEvent {
        DomainEvent::RideCompleted(events::RideCompleted {
            allocation_id: allocation_id(),
            grab_id: grab_id(),
            taxi_id: taxi_id(),
            taxi_num: "서울32저4703".into(),
            completed_at: at(4),
        })
    }

    fn grab_cancelled(by: &str) -> DomainEvent {
        DomainEvent::GrabCancelled(events::GrabCancelled {
            grab_id: grab_id(),
            reason: if by == CANCELLED_BY_SYSTEM {
                "payment unavailable".into()
            } else {
                "cancelled by rider".into()
            },
            initiated_by: by.into(),
            cancelled_at: at(4),
        })
    }

    fn allocation_cancelled() -> DomainEvent {
        DomainEvent::AllocationCancelled(events::AllocationCancelled {
            allocation_id: allocation_id(),
            grab_id: grab_id(),
            taxi_id: taxi_id(),
            reason: "cancelled by rider".into(),
            cancelled_at: at(5),
        })
    }

    fn payment_refunded(reason: &str) -> DomainEvent {
        DomainEvent::PaymentRefunded(events::PaymentRefunded {
            payment_id: payment_id(),
            grab_id: grab_id(),
            amount: Money::krw(15_000).unwrap(),
            reason: reason.into(),
            refunded_at: at(6),
        })
    }

    /// Record events in this order, each with its deterministic id and the ride's correlation.
    fn view_of(events: &[DomainEvent]) -> GrabStatusView {
        let mut facts = GrabFacts::default();
        for e in events {
            facts.record(e, AppliedEvent::of(e, e.event_id(), Some("ride-1".into())));
        }
        derive(&grab_id(), &facts)
    }

    /// Every ordering of `items` (Heap's algorithm).
    fn permutations<T: Clone>(items: &[T]) -> Vec<Vec<T>> {
        fn heap<T: Clone>(k: usize, a: &mut Vec<T>, out: &mut Vec<Vec<T>>) {
            if k <= 1 {
                out.push(a.clone());
                return;
            }
            for i in 0..k {
                heap(k - 1, a, out);
                let j = if k & 1 == 0 { i } else { 0 };
                a.swap(j, k - 1);
            }
        }
        let mut out = Vec::new();
        heap(items.len(), &mut items.to_vec(), &mut out);
        out
    }

    /// Given these events in every order (and every order with each event delivered twice),
    /// then the view is always the one of the saga order.
    fn assert_order_independent(events: &[DomainEvent]) -> GrabStatusView {
        let expected = view_of(events);
        let all = permutations(events);
        assert_eq!(all.len(), (1..=events.len()).product::<usize>());
        for order in all {
            assert_eq!(view_of(&order), expected, "order {:?}", names(&order));
            let mut doubled = order.clone();
            doubled.extend(order.iter().rev().cloned());
            assert_eq!(view_of(&doubled), expected, "doubled {:?}", names(&doubled));
        }
        expected
    }

    fn names(events: &[DomainEvent]) -> Vec<&'static str> {
        events.iter().map(|e| e.event_type().name()).collect()
    }

    // ---------------------------------------------------------------- order independence

    #[test]
    fn a_completed_ride_converges_to_completed_whatever_the_order() {
        let v = assert_order_independent(&[
            grab_requested(),
            payment_approved(),
            taxi_allocated(),
            ride_started(),
            ride_completed(),
        ]);
        assert_eq!(v.grab_status, GrabStatus::Completed);
        assert_eq!(v.payment_status, Some(PaymentStatus::Approved));
        assert_eq!(v.allocation_status, Some(AllocationStatus::Completed));
        assert_eq!(v.updated_at, Some(at(4)));
    }

    #[test]
    fn a_ride_converges_to_ride_started_whatever_the_order() {
        let v = assert_order_independent(&[
            grab_requested(),
            payment_approved(),
            taxi_allocated(),
            ride_started(),
        ]);
        assert_eq!(v.grab_status, GrabStatus::RideStarted);
        assert_eq!(v.payment_status, Some(PaymentStatus::Approved));
        assert_eq!(v.allocation_status, Some(AllocationStatus::RideStarted));
        assert_eq!(v.taxi_num.as_deref(), Some("서울32저4703"));
        assert_eq!(v.distance_meters, Some(812));
        assert_eq!(v.payment_id, Some(payment_id()));
        assert_eq!(v.estimated_fee, Some(Money::krw(15_000).unwrap()));
        assert_eq!(
            v.fare,
            Some(Money::krw(15_000).unwrap()),
            "the fare is shown"
        );
        assert_eq!(v.created_at, Some(at(0)));
        assert_eq!(v.updated_at, Some(at(3)));
        assert_eq!(v.correlation_id.as_deref(), Some("ride-1"));
        assert_eq!(v.reason, None);
        let types: Vec<_> = v.events.iter().map(|e| e.event_type.as_str()).collect();
        assert_eq!(
            types,
            [
                "GrabRequested",
                "PaymentApproved",
                "TaxiAllocated",
                "RideStarted"
            ]
        );
    }

    #[test]
    fn a_rider_cancel_converges_to_cancelled_and_refunded_whatever_the_order() {
        let v = assert_order_independent(&[
            grab_requested(),
            payment_approved(),
            taxi_allocated(),
            grab_cancelled("rider"),
            allocation_cancelled(),
            payment_refunded("cancelled by rider"),
        ]);
        assert_eq!(v.grab_status, GrabStatus::Cancelled);
        assert_eq!(v.payment_status, Some(PaymentStatus::Refunded));
        assert_eq!(v.allocation_status, Some(AllocationStatus::Cancelled));
        assert_eq!(v.cancelled_by.as_deref(), Some("rider"));
        assert_eq!(v.reason.as_deref(), Some("cancelled by rider"));
        assert_eq!(v.taxi_id, Some(taxi_id()));
    }

    #[test]
    fn a_failed_allocation_converges_to_failed_and_refunded_whatever_the_order() {
        let v = assert_order_independent(&[
            grab_requested(),
            payment_approved(),
            allocation_failed(),
            payment_refunded("no taxi available within 10000 m"),
        ]);
        assert_eq!(v.grab_status, GrabStatus::Failed);
        assert_eq!(v.payment_status, Some(PaymentStatus::Refunded));
        assert_eq!(v.allocation_status, Some(AllocationStatus::Failed));
        assert_eq!(
            v.reason.as_deref(),
            Some("no taxi available within 10000 m")
        );
        assert_eq!(v.taxi_id, None);
    }

    #[test]
    fn a_late_approval_after_a_system_cancel_converges_to_failed_and_refunded() {
        let v = assert_order_independent(&[
            grab_requested(),
            grab_cancelled(CANCELLED_BY_SYSTEM),
            payment_approved(),
            payment_refunded("payment unavailable"),
        ]);
        assert_eq!(v.grab_status, GrabStatus::Failed);
        assert_eq!(v.payment_status, Some(PaymentStatus::Refunded));
        assert_eq!(v.allocation_status, None);
        assert_eq!(v.cancelled_by.as_deref(), Some("system"));
        assert_eq!(v.reason.as_deref(), Some("payment unavailable"));
    }

    #[test]
    fn a_rejected_payment_converges_to_rejected_whatever_the_order() {
        let v = assert_order_independent(&[grab_requested(), payment_rejected()]);
        assert_eq!(v.grab_status, GrabStatus::Rejected);
        assert_eq!(v.payment_status, Some(PaymentStatus::Rejected));
        assert_eq!(v.reason.as_deref(), Some("amount over the limit"));
        assert_eq!(v.amount, Some(Money::krw(500_000).unwrap()));
    }

    #[test]
    fn a_cancel_that_races_the_drivers_accept_ends_cancelled_whatever_the_order() {
        let v = assert_order_independent(&[
            grab_requested(),
            payment_approved(),
            taxi_allocated(),
            ride_started(),
            grab_cancelled("rider"),
            allocation_cancelled(),
        ]);
        assert_eq!(v.grab_status, GrabStatus::Cancelled);
        assert_eq!(v.allocation_status, Some(AllocationStatus::Cancelled));
    }

    // ---------------------------------------------------------------- duplicates

    #[test]
    fn a_duplicate_delivery_changes_nothing() {
        let mut facts = GrabFacts::default();
        let e = payment_approved();
        let first = facts.record(&e, AppliedEvent::of(&e, e.event_id(), None));
        let before = facts.clone();
        let again = facts.record(&e, AppliedEvent::of(&e, e.event_id(), None));
        assert_eq!(
            (first, again),
            (Recorded::Applied, Recorded::AlreadyApplied)
        );
        assert_eq!(facts, before);
    }

    #[test]
    fn facts_survive_a_json_round_trip() {
        let mut facts = GrabFacts::default();
        for e in [grab_requested(), taxi_allocated(), grab_cancelled("rider")] {
            facts.record(&e, AppliedEvent::of(&e, e.event_id(), Some("c-1".into())));
        }
        let back: GrabFacts =
            serde_json::from_str(&serde_json::to_string(&facts).unwrap()).unwrap();
        assert_eq!(back, facts);
    }

    // ---------------------------------------------------------------- partial knowledge

    #[test]
    fn an_allocation_seen_before_the_request_makes_a_row_with_nulls() {
        let v = view_of(&[taxi_allocated()]);
        assert_eq!(v.grab_status, GrabStatus::Allocated);
        assert_eq!(v.payment_status, None);
        assert_eq!(v.allocation_status, Some(AllocationStatus::Allocated));
        assert_eq!(v.phone_number, None);
        assert_eq!(v.starting_point, None);
        assert_eq!(v.estimated_fee, None);
        assert_eq!(v.created_at, Some(at(2)));
        let json = serde_json::to_value(&v).unwrap();
        assert!(json["phoneNumber"].is_null());
        assert_eq!(json["grabStatus"], "Allocated");
    }

    #[test]
    fn the_approval_fills_the_ride_when_the_request_is_missing() {
        let v = view_of(&[payment_approved()]);
        assert_eq!(v.grab_status, GrabStatus::Paid);
        assert_eq!(v.phone_number, Some(phone()));
        assert_eq!(v.starting_point, Some(station()));
    }

    #[test]
    fn a_fresh_request_is_requested() {
        assert_eq!(
            view_of(&[grab_requested()]).grab_status,
            GrabStatus::Requested
        );
    }

    #[test]
    fn the_requests_correlation_id_wins_over_earlier_events() {
        let mut facts = GrabFacts::default();
        let (a, r) = (taxi_allocated(), grab_requested());
        facts.record(&a, AppliedEvent::of(&a, a.event_id(), Some("other".into())));
        facts.record(
            &r,
            AppliedEvent::of(
                &r,
                r.event_id(),
                Some(CorrelationId::parse("ride-1").unwrap().to_string()),
            ),
        );
        assert_eq!(
            derive(&grab_id(), &facts).correlation_id.as_deref(),
            Some("ride-1")
        );
    }

    // ---------------------------------------------------------------- precedence

    #[test]
    fn rider_cancel_beats_everything() {
        let v = view_of(&[
            ride_started(),
            payment_rejected(),
            allocation_failed(),
            grab_cancelled("rider"),
        ]);
        assert_eq!(v.grab_status, GrabStatus::Cancelled);
    }

    #[test]
    fn allocation_failure_beats_allocation_and_rejection() {
        let v = view_of(&[taxi_allocated(), payment_rejected(), allocation_failed()]);
        assert_eq!(v.grab_status, GrabStatus::Failed);
    }

    #[test]
    fn rejection_beats_ride_progress() {
        assert_eq!(
            view_of(&[ride_started(), payment_rejected()]).grab_status,
            GrabStatus::Rejected
        );
    }

    #[test]
    fn ride_started_beats_allocated_beats_paid() {
        assert_eq!(
            view_of(&[payment_approved(), ride_started()]).grab_status,
            GrabStatus::RideStarted
        );
        assert_eq!(
            view_of(&[payment_approved(), taxi_allocated()]).grab_status,
            GrabStatus::Allocated
        );
    }

    #[test]
    fn refund_beats_approval_and_cancel_beats_ride_started_for_allocations() {
        let v = view_of(&[
            payment_approved(),
            payment_refunded("x"),
            ride_started(),
            allocation_cancelled(),
        ]);
        assert_eq!(v.payment_status, Some(PaymentStatus::Refunded));
        assert_eq!(v.allocation_status, Some(AllocationStatus::Cancelled));
        let v = view_of(&[allocation_failed(), taxi_allocated()]);
        assert_eq!(v.allocation_status, Some(AllocationStatus::Allocated));
    }
}
