//! The payment aggregate (owned by the pay component): at most one payment per grab,
//! approved or rejected against a limit, refunded at most once when the ride is called off.
//!
//! The state is everything pay knows about one grab: its payment, if any, and a
//! tombstone if the grab was called off before any payment existed, so that a late
//! payment request (a retry from a grab that already gave up) charges nothing.
//! Decisions are pure: the shell passes the new payment id and the time in.

use crate::domain::values::GeoPointDto;
use crate::domain::{GeoPoint, InvalidValue, Money, PhoneNumber};
use crate::events::{DomainEvent, PaymentApproved, PaymentRefunded, PaymentRejected};
use crate::ids::{GrabId, PaymentId};
use chrono::{DateTime, Utc};
use serde::Deserialize;

/// Where a payment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PaymentStatus {
    /// The rider was charged.
    Approved,
    /// The charge was refused (over the limit); nothing was charged.
    Rejected,
    /// The charge was given back after the ride was called off.
    Refunded,
}

impl PaymentStatus {
    /// The status word on the wire and in the database.
    pub const fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Approved => "Approved",
            PaymentStatus::Rejected => "Rejected",
            PaymentStatus::Refunded => "Refunded",
        }
    }

    /// Parse a stored status word; `None` if unknown.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Approved, Self::Rejected, Self::Refunded]
            .into_iter()
            .find(|st| st.as_str() == s)
    }
}

/// One grab's payment.
#[derive(Debug, Clone, PartialEq)]
pub struct Payment {
    pub payment_id: PaymentId,
    pub grab_id: GrabId,
    pub amount: Money,
    pub phone_number: PhoneNumber,
    pub status: PaymentStatus,
    /// Why it was rejected or refunded.
    pub reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub approved_at: Option<DateTime<Utc>>,
    pub refunded_at: Option<DateTime<Utc>>,
}

/// The grab was called off before pay ever charged it.
#[derive(Debug, Clone, PartialEq)]
pub struct Tombstone {
    pub reason: String,
    pub recorded_at: DateTime<Utc>,
}

/// Everything pay knows about one grab.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PaymentState {
    pub payment: Option<Payment>,
    pub tombstone: Option<Tombstone>,
}

/// pay's business rule: the largest single charge it approves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PaymentPolicy {
    pub limit: Money,
}

/// Command: charge the rider for a grab.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestPayment {
    pub grab_id: GrabId,
    pub amount: Money,
    pub phone_number: PhoneNumber,
    pub starting_point: GeoPoint,
    pub destination: GeoPoint,
}

/// The wire shape of `POST /payments`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestPaymentDto {
    pub grab_id: String,
    pub amount: i64,
    pub phone_number: String,
    pub starting_point: GeoPointDto,
    pub destination: GeoPointDto,
}

impl TryFrom<RequestPaymentDto> for RequestPayment {
    type Error = InvalidValue;

    /// Parse every field; fails naming the first invalid one.
    fn try_from(d: RequestPaymentDto) -> Result<Self, InvalidValue> {
        Ok(Self {
            grab_id: GrabId::parse(&d.grab_id)
                .map_err(|e| InvalidValue::new("grabId", e.to_string()))?,
            amount: Money::krw(d.amount).map_err(|e| InvalidValue::new("amount", e.reason))?,
            phone_number: PhoneNumber::parse(&d.phone_number)?,
            starting_point: GeoPoint::try_from(d.starting_point)
                .map_err(|e| InvalidValue::new(point_field("startingPoint", e.field), e.reason))?,
            destination: GeoPoint::try_from(d.destination)
                .map_err(|e| InvalidValue::new(point_field("destination", e.field), e.reason))?,
        })
    }
}

/// `startingPoint` + `lat` → `startingPoint.lat` (the field names are a closed set).
pub(crate) fn point_field(point: &'static str, field: &str) -> &'static str {
    match (point, field) {
        ("startingPoint", "lat") => "startingPoint.lat",
        ("startingPoint", "lng") => "startingPoint.lng",
        ("startingPoint", "name") => "startingPoint.name",
        ("destination", "lat") => "destination.lat",
        ("destination", "lng") => "destination.lng",
        ("destination", "name") => "destination.name",
        (p, _) => p,
    }
}

/// What called the ride off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundTrigger {
    /// The rider (or grab, giving up on pay) cancelled the grab.
    GrabCancelled,
    /// allocate found no taxi.
    AllocationFailed,
}

/// Command: give the money back (if any was taken) because the ride is off.
#[derive(Debug, Clone, PartialEq)]
pub struct RefundPayment {
    pub grab_id: GrabId,
    pub trigger: RefundTrigger,
    /// The upstream reason (e.g. "cancelled by rider"), kept in the refund reason.
    pub reason: String,
}

impl RefundPayment {
    /// The reason recorded on the refund or the tombstone.
    pub fn refund_reason(&self) -> String {
        match self.trigger {
            RefundTrigger::GrabCancelled => format!("grab cancelled: {}", self.reason),
            RefundTrigger::AllocationFailed => format!("allocation failed: {}", self.reason),
        }
    }
}

/// A fact pay records. The first three are published; a tombstone stays local.
#[derive(Debug, Clone, PartialEq)]
pub enum PaymentEvent {
    Approved(PaymentApproved),
    Rejected {
        payment_id: PaymentId,
        event: PaymentRejected,
    },
    Refunded(PaymentRefunded),
    Tombstoned(Tombstone),
}

impl PaymentEvent {
    /// The catalogue event to put in the outbox, if this fact is public.
    pub fn published(&self) -> Option<DomainEvent> {
        match self {
            PaymentEvent::Approved(e) => Some(DomainEvent::PaymentApproved(e.clone())),
            PaymentEvent::Rejected { event, .. } => {
                Some(DomainEvent::PaymentRejected(event.clone()))
            }
            PaymentEvent::Refunded(e) => Some(DomainEvent::PaymentRefunded(e.clone())),
            PaymentEvent::Tombstoned(_) => None,
        }
    }
}

/// Why pay refuses a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentError {
    /// The grab was called off before it was ever charged: charge nothing.
    #[error("grab {grab_id} was already called off ({reason}); nothing was charged")]
    GrabAlreadyCancelled { grab_id: GrabId, reason: String },
}

/// Decide a payment request. Idempotent per grab: once a payment exists, a repeated
/// request decides nothing and the caller answers the stored outcome. Refused with
/// [`PaymentError::GrabAlreadyCancelled`] after a tombstone. Over the limit → rejected.
pub fn decide_request(
    state: &PaymentState,
    cmd: &RequestPayment,
    policy: &PaymentPolicy,
    new_payment_id: PaymentId,
    now: DateTime<Utc>,
) -> Result<Vec<PaymentEvent>, PaymentError> {
    if state.payment.is_some() {
        return Ok(Vec::new());
    }
    if let Some(t) = &state.tombstone {
        return Err(PaymentError::GrabAlreadyCancelled {
            grab_id: cmd.grab_id.clone(),
            reason: t.reason.clone(),
        });
    }
    if cmd.amount > policy.limit {
        return Ok(vec![PaymentEvent::Rejected {
            payment_id: new_payment_id,
            event: PaymentRejected {
                grab_id: cmd.grab_id.clone(),
                reason: format!(
                    "amount {} exceeds the payment limit of {}",
                    cmd.amount, policy.limit
                ),
                phone_number: cmd.phone_number.clone(),
                amount: cmd.amount,
                rejected_at: now,
            },
        }]);
    }
    Ok(vec![PaymentEvent::Approved(PaymentApproved {
        payment_id: new_payment_id,
        grab_id: cmd.grab_id.clone(),
        amount: cmd.amount,
        phone_number: cmd.phone_number.clone(),
        starting_point: cmd.starting_point.clone(),
        destination: cmd.destination.clone(),
        approved_at: now,
    })])
}

/// Decide what calling the ride off means for the money: an approved payment is
/// refunded (once); with no payment yet a tombstone is recorded (once); a rejected or
/// refunded payment needs nothing.
pub fn decide_refund(
    state: &PaymentState,
    cmd: &RefundPayment,
    now: DateTime<Utc>,
) -> Vec<PaymentEvent> {
    match (&state.payment, &state.tombstone) {
        (Some(p), _) if p.status == PaymentStatus::Approved => {
            vec![PaymentEvent::Refunded(PaymentRefunded {
                payment_id: p.payment_id.clone(),
                grab_id: p.grab_id.clone(),
                amount: p.amount,
                reason: cmd.refund_reason(),
                refunded_at: now,
            })]
        }
        (Some(_), _) | (None, Some(_)) => Vec::new(),
        (None, None) => vec![PaymentEvent::Tombstoned(Tombstone {
            reason: cmd.refund_reason(),
            recorded_at: now,
        })],
    }
}

/// Fold a fact into the state.
pub fn apply(mut state: PaymentState, event: &PaymentEvent) -> PaymentState {
    match event {
        PaymentEvent::Approved(e) => {
            state.payment = Some(Payment {
                payment_id: e.payment_id.clone(),
                grab_id: e.grab_id.clone(),
                amount: e.amount,
                phone_number: e.phone_number.clone(),
                status: PaymentStatus::Approved,
                reason: None,
                created_at: e.approved_at,
                approved_at: Some(e.approved_at),
                refunded_at: None,
            });
        }
        PaymentEvent::Rejected { payment_id, event } => {
            state.payment = Some(Payment {
                payment_id: payment_id.clone(),
                grab_id: event.grab_id.clone(),
                amount: event.amount,
                phone_number: event.phone_number.clone(),
                status: PaymentStatus::Rejected,
                reason: Some(event.reason.clone()),
                created_at: event.rejected_at,
                approved_at: None,
                refunded_at: None,
            });
        }
        PaymentEvent::Refunded(e) => {
            if let Some(p) = state.payment.as_mut() {
                p.status = PaymentStatus::Refunded;
                p.reason = Some(e.reason.clone());
                p.refunded_at = Some(e.refunded_at);
            }
        }
        PaymentEvent::Tombstoned(t) => state.tombstone = Some(t.clone()),
    }
    state
}

/// Fold several facts.
pub fn apply_all(state: PaymentState, events: &[PaymentEvent]) -> PaymentState {
    events.iter().fold(state, apply)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        format!("2026-11-25T{s}Z").parse().unwrap()
    }

    fn grab_id() -> GrabId {
        GrabId::parse("7f1c1a52-6b0e-4c4f-9f51-1d3c2b9a0e11").unwrap()
    }

    fn payment_id() -> PaymentId {
        PaymentId::parse("11111111-2222-4333-8444-555555555555").unwrap()
    }

    fn other_payment_id() -> PaymentId {
        PaymentId::parse("99999999-2222-4333-8444-555555555555").unwrap()
    }

    fn policy() -> PaymentPolicy {
        PaymentPolicy {
            limit: Money::krw(300_000).unwrap(),
        }
    }

    fn request(amount: i64) -> RequestPayment {
        RequestPayment {
            grab_id: grab_id(),
            amount: Money::krw(amount).unwrap(),
            phone_number: PhoneNumber::parse("010-1234-5678").unwrap(),
            starting_point: GeoPoint::new(37.5547, 126.9707, Some("Seoul Station".into())).unwrap(),
            destination: GeoPoint::new(37.4979, 127.0276, None).unwrap(),
        }
    }

    fn refund(trigger: RefundTrigger) -> RefundPayment {
        RefundPayment {
            grab_id: grab_id(),
            trigger,
            reason: "cancelled by rider".into(),
        }
    }

    /// Given: what happened before.
    fn given(events: &[PaymentEvent]) -> PaymentState {
        apply_all(PaymentState::default(), events)
    }

    fn approved() -> PaymentEvent {
        decide_request(
            &PaymentState::default(),
            &request(15_000),
            &policy(),
            payment_id(),
            t("10:00:00"),
        )
        .unwrap()
        .remove(0)
    }

    fn rejected() -> PaymentEvent {
        decide_request(
            &PaymentState::default(),
            &request(400_000),
            &policy(),
            payment_id(),
            t("10:00:00"),
        )
        .unwrap()
        .remove(0)
    }

    fn refunded() -> PaymentEvent {
        decide_refund(
            &given(&[approved()]),
            &refund(RefundTrigger::GrabCancelled),
            t("10:05:00"),
        )
        .remove(0)
    }

    fn tombstoned() -> PaymentEvent {
        decide_refund(
            &PaymentState::default(),
            &refund(RefundTrigger::GrabCancelled),
            t("10:05:00"),
        )
        .remove(0)
    }

    #[test]
    fn a_fare_within_the_limit_is_approved_and_published() {
        let events = decide_request(
            &given(&[]),
            &request(15_000),
            &policy(),
            payment_id(),
            t("10:00:00"),
        )
        .unwrap();
        assert_eq!(events.len(), 1);
        let PaymentEvent::Approved(e) = &events[0] else {
            panic!("expected approval, got {events:?}")
        };
        assert_eq!(e.payment_id, payment_id());
        assert_eq!(e.amount.as_krw(), 15_000);
        assert_eq!(e.starting_point.name(), Some("Seoul Station"));
        assert!(matches!(
            events[0].published(),
            Some(DomainEvent::PaymentApproved(_))
        ));
        let state = apply_all(given(&[]), &events);
        let p = state.payment.unwrap();
        assert_eq!(p.status, PaymentStatus::Approved);
        assert_eq!(p.approved_at, Some(t("10:00:00")));
    }

    #[test]
    fn a_fare_exactly_at_the_limit_is_approved() {
        let events = decide_request(
            &given(&[]),
            &request(300_000),
            &policy(),
            payment_id(),
            t("10:00:00"),
        )
        .unwrap();
        assert!(matches!(events[0], PaymentEvent::Approved(_)));
    }

    #[test]
    fn a_fare_over_the_limit_is_rejected_with_a_reason() {
        let events = decide_request(
            &given(&[]),
            &request(300_001),
            &policy(),
            payment_id(),
            t("10:00:00"),
        )
        .unwrap();
        let PaymentEvent::Rejected { event, .. } = &events[0] else {
            panic!("expected rejection, got {events:?}")
        };
        assert!(event.reason.contains("300001 KRW"), "{}", event.reason);
        assert!(event.reason.contains("300000 KRW"), "{}", event.reason);
        assert!(matches!(
            events[0].published(),
            Some(DomainEvent::PaymentRejected(_))
        ));
        let p = apply_all(given(&[]), &events).payment.unwrap();
        assert_eq!(p.status, PaymentStatus::Rejected);
        assert_eq!(p.approved_at, None);
        assert!(p.reason.is_some());
    }

    #[test]
    fn requesting_again_for_an_approved_grab_decides_nothing() {
        let state = given(&[approved()]);
        let events = decide_request(
            &state,
            &request(15_000),
            &policy(),
            other_payment_id(),
            t("10:01:00"),
        )
        .unwrap();
        assert!(events.is_empty());
        assert_eq!(apply_all(state.clone(), &events), state);
        assert_eq!(state.payment.unwrap().payment_id, payment_id());
    }

    #[test]
    fn requesting_again_for_a_rejected_grab_decides_nothing_even_with_a_lower_amount() {
        let state = given(&[rejected()]);
        let events = decide_request(
            &state,
            &request(1_000),
            &policy(),
            other_payment_id(),
            t("10:01:00"),
        )
        .unwrap();
        assert!(events.is_empty());
        assert_eq!(state.payment.unwrap().status, PaymentStatus::Rejected);
    }

    #[test]
    fn requesting_again_after_a_refund_decides_nothing() {
        let state = given(&[approved(), refunded()]);
        let events = decide_request(
            &state,
            &request(15_000),
            &policy(),
            other_payment_id(),
            t("10:06:00"),
        )
        .unwrap();
        assert!(events.is_empty());
    }

    #[test]
    fn requesting_payment_for_a_tombstoned_grab_is_refused() {
        let state = given(&[tombstoned()]);
        let err = decide_request(
            &state,
            &request(15_000),
            &policy(),
            payment_id(),
            t("10:06:00"),
        )
        .unwrap_err();
        assert!(matches!(err, PaymentError::GrabAlreadyCancelled { .. }));
        assert!(err.to_string().contains("cancelled by rider"));
    }

    #[test]
    fn cancelling_an_approved_grab_refunds_it_once() {
        let state = given(&[approved()]);
        let events = decide_refund(&state, &refund(RefundTrigger::GrabCancelled), t("10:05:00"));
        let PaymentEvent::Refunded(e) = &events[0] else {
            panic!("expected refund, got {events:?}")
        };
        assert_eq!(e.payment_id, payment_id());
        assert_eq!(e.amount.as_krw(), 15_000);
        assert_eq!(e.reason, "grab cancelled: cancelled by rider");
        assert!(matches!(
            events[0].published(),
            Some(DomainEvent::PaymentRefunded(_))
        ));
        let state = apply_all(state, &events);
        let p = state.payment.as_ref().unwrap();
        assert_eq!(p.status, PaymentStatus::Refunded);
        assert_eq!(p.refunded_at, Some(t("10:05:00")));
        // and again: nothing more
        assert!(
            decide_refund(&state, &refund(RefundTrigger::GrabCancelled), t("10:06:00")).is_empty()
        );
    }

    #[test]
    fn a_failed_allocation_refunds_an_approved_payment() {
        let state = given(&[approved()]);
        let mut cmd = refund(RefundTrigger::AllocationFailed);
        cmd.reason = "no taxi available within 10000 m".into();
        let events = decide_refund(&state, &cmd, t("10:05:00"));
        let PaymentEvent::Refunded(e) = &events[0] else {
            panic!("expected refund, got {events:?}")
        };
        assert_eq!(
            e.reason,
            "allocation failed: no taxi available within 10000 m"
        );
    }

    #[test]
    fn a_cancel_after_an_allocation_failure_refund_does_not_refund_twice() {
        let state = given(&[approved()]);
        let first = decide_refund(
            &state,
            &refund(RefundTrigger::AllocationFailed),
            t("10:05:00"),
        );
        let state = apply_all(state, &first);
        assert!(
            decide_refund(&state, &refund(RefundTrigger::GrabCancelled), t("10:06:00")).is_empty()
        );
    }

    #[test]
    fn cancelling_a_rejected_payment_changes_nothing() {
        let state = given(&[rejected()]);
        assert!(
            decide_refund(&state, &refund(RefundTrigger::GrabCancelled), t("10:05:00")).is_empty()
        );
    }

    #[test]
    fn cancelling_before_any_payment_records_a_tombstone_that_is_not_published() {
        let events = decide_refund(
            &given(&[]),
            &refund(RefundTrigger::GrabCancelled),
            t("10:05:00"),
        );
        assert_eq!(events.len(), 1);
        assert!(matches!(events[0], PaymentEvent::Tombstoned(_)));
        assert_eq!(events[0].published(), None);
        let state = apply_all(given(&[]), &events);
        assert_eq!(
            state.tombstone.unwrap().reason,
            "grab cancelled: cancelled by rider"
        );
        assert!(state.payment.is_none());
    }

    #[test]
    fn a_second_cancel_on_a_tombstoned_grab_changes_nothing() {
        let state = given(&[tombstoned()]);
        assert!(decide_refund(
            &state,
            &refund(RefundTrigger::AllocationFailed),
            t("10:06:00")
        )
        .is_empty());
    }

    #[test]
    fn a_request_dto_parses_into_a_command() {
        let dto: RequestPaymentDto = serde_json::from_value(serde_json::json!({
            "grabId": "7F1C1A52-6B0E-4C4F-9F51-1D3C2B9A0E11",
            "amount": 15000,
            "phoneNumber": "010-1234-5678",
            "startingPoint": {"lat": 37.55, "lng": 126.97, "name": "Seoul Station"},
            "destination": {"lat": 37.49, "lng": 127.02}
        }))
        .unwrap();
        let cmd = RequestPayment::try_from(dto).unwrap();
        assert_eq!(cmd.grab_id, grab_id());
        assert_eq!(cmd.amount.as_krw(), 15_000);
    }

    #[test]
    fn a_request_dto_with_bad_values_names_the_field() {
        let base = RequestPaymentDto {
            grab_id: grab_id().to_string(),
            amount: 15_000,
            phone_number: "010-1234-5678".into(),
            starting_point: GeoPointDto {
                lat: 37.5,
                lng: 126.9,
                name: None,
            },
            destination: GeoPointDto {
                lat: 37.4,
                lng: 127.0,
                name: None,
            },
        };
        let field = |d: RequestPaymentDto| RequestPayment::try_from(d).unwrap_err().field;
        assert_eq!(
            field(RequestPaymentDto {
                grab_id: "nope".into(),
                ..base.clone()
            }),
            "grabId"
        );
        assert_eq!(
            field(RequestPaymentDto {
                amount: 0,
                ..base.clone()
            }),
            "amount"
        );
        assert_eq!(
            field(RequestPaymentDto {
                phone_number: "call me".into(),
                ..base.clone()
            }),
            "phoneNumber"
        );
        let mut bad = base.clone();
        bad.destination.lng = 200.0;
        assert_eq!(field(bad), "destination.lng");
    }

    #[test]
    fn status_words_round_trip() {
        for s in [
            PaymentStatus::Approved,
            PaymentStatus::Rejected,
            PaymentStatus::Refunded,
        ] {
            assert_eq!(PaymentStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(PaymentStatus::parse("Pending"), None);
    }
}
