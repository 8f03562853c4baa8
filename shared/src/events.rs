//! The event catalogue (DESIGN.md §4): every event type, who emits it, what it carries,
//! and the [`Envelope`] it travels in. This file is the one place event types are named.

use crate::domain::{GeoPoint, Money, PhoneNumber};
use crate::ids::{AllocationId, CorrelationId, GrabId, PaymentId, QuoteId, TaxiId};
use chrono::{DateTime, Utc};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

/// Every event type of the saga. `as_str` gives the CloudEvent `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    /// A rider asked for a taxi (grab).
    GrabRequested,
    /// The rider (or the system, when pay stayed unavailable) cancelled the grab.
    GrabCancelled,
    /// pay charged the rider (pay).
    PaymentApproved,
    /// pay refused the charge (pay).
    PaymentRejected,
    /// pay gave the money back (pay).
    PaymentRefunded,
    /// allocate offered the ride to one taxi, until a deadline (allocate).
    TaxiOffered,
    /// The driver accepted the offer: the taxi is assigned (allocate).
    TaxiAllocated,
    /// allocate found no taxi (allocate).
    AllocationFailed,
    /// allocate released a taxi after a cancel (allocate).
    AllocationCancelled,
    /// The driver accepted; the ride is on (allocate).
    RideStarted,
    /// The driver dropped the rider off; the taxi is free again (allocate).
    RideCompleted,
}

impl EventType {
    /// All types, in saga order.
    pub const ALL: [EventType; 11] = [
        EventType::GrabRequested,
        EventType::GrabCancelled,
        EventType::PaymentApproved,
        EventType::PaymentRejected,
        EventType::PaymentRefunded,
        EventType::TaxiOffered,
        EventType::TaxiAllocated,
        EventType::AllocationFailed,
        EventType::AllocationCancelled,
        EventType::RideStarted,
        EventType::RideCompleted,
    ];

    /// The CloudEvent `type`, e.g. `htaxi.PaymentApproved`.
    pub const fn as_str(self) -> &'static str {
        match self {
            EventType::GrabRequested => "htaxi.GrabRequested",
            EventType::GrabCancelled => "htaxi.GrabCancelled",
            EventType::PaymentApproved => "htaxi.PaymentApproved",
            EventType::PaymentRejected => "htaxi.PaymentRejected",
            EventType::PaymentRefunded => "htaxi.PaymentRefunded",
            EventType::TaxiOffered => "htaxi.TaxiOffered",
            EventType::TaxiAllocated => "htaxi.TaxiAllocated",
            EventType::AllocationFailed => "htaxi.AllocationFailed",
            EventType::AllocationCancelled => "htaxi.AllocationCancelled",
            EventType::RideStarted => "htaxi.RideStarted",
            EventType::RideCompleted => "htaxi.RideCompleted",
        }
    }

    /// The event name without the `htaxi.` prefix.
    pub fn name(self) -> &'static str {
        &self.as_str()["htaxi.".len()..]
    }

    /// The component id that emits this type (its CloudEvent `source` is `/htaxi/<id>`).
    pub const fn emitter(self) -> &'static str {
        match self {
            EventType::GrabRequested | EventType::GrabCancelled => "grab",
            EventType::PaymentApproved
            | EventType::PaymentRejected
            | EventType::PaymentRefunded => "pay",
            EventType::TaxiOffered
            | EventType::TaxiAllocated
            | EventType::AllocationFailed
            | EventType::AllocationCancelled
            | EventType::RideStarted
            | EventType::RideCompleted => "allocate",
        }
    }

    /// The `data` field that says when the fact happened. The published contract
    /// (docs/events/schemas) makes it optional: [`DomainEvent::from_envelope`] falls back to
    /// the CloudEvent `time` attribute, then to the time of receipt.
    pub const fn time_field(self) -> &'static str {
        match self {
            EventType::GrabRequested => "requestedAt",
            EventType::GrabCancelled | EventType::AllocationCancelled => "cancelledAt",
            EventType::PaymentApproved => "approvedAt",
            EventType::PaymentRejected => "rejectedAt",
            EventType::PaymentRefunded => "refundedAt",
            EventType::TaxiOffered => "offeredAt",
            EventType::TaxiAllocated => "allocatedAt",
            EventType::AllocationFailed => "failedAt",
            EventType::RideStarted => "startedAt",
            EventType::RideCompleted => "completedAt",
        }
    }

    /// Parse a CloudEvent `type`; `None` if it is not one of ours.
    pub fn parse(s: &str) -> Option<EventType> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// `htaxi.GrabRequested`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GrabRequested {
    pub grab_id: GrabId,
    pub phone_number: PhoneNumber,
    pub starting_point: GeoPoint,
    pub destination: GeoPoint,
    /// The fare charged (the quote's).
    pub estimated_fee: Money,
    /// The quote the ride was booked on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quote_id: Option<QuoteId>,
    pub requested_at: DateTime<Utc>,
}

/// `htaxi.GrabCancelled`. `initiated_by` is `rider`, or `system` when grab gave up on pay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GrabCancelled {
    pub grab_id: GrabId,
    pub reason: String,
    pub initiated_by: String,
    pub cancelled_at: DateTime<Utc>,
}

/// `htaxi.PaymentApproved`: carries the ride so allocate never has to call grab.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentApproved {
    pub payment_id: PaymentId,
    pub grab_id: GrabId,
    pub amount: Money,
    pub phone_number: PhoneNumber,
    pub starting_point: GeoPoint,
    pub destination: GeoPoint,
    pub approved_at: DateTime<Utc>,
}

/// `htaxi.PaymentRejected`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentRejected {
    pub grab_id: GrabId,
    pub reason: String,
    pub phone_number: PhoneNumber,
    pub amount: Money,
    pub rejected_at: DateTime<Utc>,
}

/// `htaxi.PaymentRefunded`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentRefunded {
    pub payment_id: PaymentId,
    pub grab_id: GrabId,
    pub amount: Money,
    pub reason: String,
    pub refunded_at: DateTime<Utc>,
}

/// `htaxi.TaxiOffered`: the ride is offered to one taxi; its driver has until
/// `expiresAt` to accept (`POST /allocations/{allocationId}/accept`). `offerNumber` counts
/// the offers of this ride (1, 2, ...), so a view keeps the latest whatever the arrival order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaxiOffered {
    pub allocation_id: AllocationId,
    pub grab_id: GrabId,
    pub taxi_id: TaxiId,
    pub taxi_num: String,
    pub distance_meters: u64,
    pub offer_number: u32,
    pub expires_at: DateTime<Utc>,
    pub offered_at: DateTime<Utc>,
}

/// `htaxi.TaxiAllocated`: the driver accepted the offer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaxiAllocated {
    pub allocation_id: AllocationId,
    pub grab_id: GrabId,
    pub taxi_id: TaxiId,
    pub taxi_num: String,
    pub distance_meters: u64,
    pub allocated_at: DateTime<Utc>,
}

/// `htaxi.AllocationFailed`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AllocationFailed {
    pub grab_id: GrabId,
    pub reason: String,
    pub failed_at: DateTime<Utc>,
}

/// `htaxi.AllocationCancelled`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AllocationCancelled {
    pub allocation_id: AllocationId,
    pub grab_id: GrabId,
    pub taxi_id: TaxiId,
    pub reason: String,
    pub cancelled_at: DateTime<Utc>,
}

/// `htaxi.RideStarted`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RideStarted {
    pub allocation_id: AllocationId,
    pub grab_id: GrabId,
    pub taxi_id: TaxiId,
    pub taxi_num: String,
    pub started_at: DateTime<Utc>,
}

/// `htaxi.RideCompleted`. Not in DESIGN.md's table: the driver ends the ride, the taxi
/// becomes available again, and the fare stays charged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RideCompleted {
    pub allocation_id: AllocationId,
    pub grab_id: GrabId,
    pub taxi_id: TaxiId,
    pub taxi_num: String,
    pub completed_at: DateTime<Utc>,
}

/// One event of the catalogue, typed.
#[derive(Debug, Clone, PartialEq)]
pub enum DomainEvent {
    GrabRequested(GrabRequested),
    GrabCancelled(GrabCancelled),
    PaymentApproved(PaymentApproved),
    PaymentRejected(PaymentRejected),
    PaymentRefunded(PaymentRefunded),
    TaxiOffered(TaxiOffered),
    TaxiAllocated(TaxiAllocated),
    AllocationFailed(AllocationFailed),
    AllocationCancelled(AllocationCancelled),
    RideStarted(RideStarted),
    RideCompleted(RideCompleted),
}

/// Why an envelope could not become a [`DomainEvent`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EventError {
    #[error("unsupported event type {0:?}")]
    UnsupportedType(String),
    #[error("invalid data for {event_type}: {reason}")]
    InvalidData { event_type: String, reason: String },
    #[error("subject {subject:?} does not match data.grabId {grab_id}")]
    SubjectMismatch { subject: String, grab_id: String },
}

impl DomainEvent {
    /// The catalogue type of this event.
    pub fn event_type(&self) -> EventType {
        match self {
            DomainEvent::GrabRequested(_) => EventType::GrabRequested,
            DomainEvent::GrabCancelled(_) => EventType::GrabCancelled,
            DomainEvent::PaymentApproved(_) => EventType::PaymentApproved,
            DomainEvent::PaymentRejected(_) => EventType::PaymentRejected,
            DomainEvent::PaymentRefunded(_) => EventType::PaymentRefunded,
            DomainEvent::TaxiOffered(_) => EventType::TaxiOffered,
            DomainEvent::TaxiAllocated(_) => EventType::TaxiAllocated,
            DomainEvent::AllocationFailed(_) => EventType::AllocationFailed,
            DomainEvent::AllocationCancelled(_) => EventType::AllocationCancelled,
            DomainEvent::RideStarted(_) => EventType::RideStarted,
            DomainEvent::RideCompleted(_) => EventType::RideCompleted,
        }
    }

    /// The ride this event belongs to (CloudEvent `subject` and `partitionkey`).
    pub fn grab_id(&self) -> &GrabId {
        match self {
            DomainEvent::GrabRequested(e) => &e.grab_id,
            DomainEvent::GrabCancelled(e) => &e.grab_id,
            DomainEvent::PaymentApproved(e) => &e.grab_id,
            DomainEvent::PaymentRejected(e) => &e.grab_id,
            DomainEvent::PaymentRefunded(e) => &e.grab_id,
            DomainEvent::TaxiOffered(e) => &e.grab_id,
            DomainEvent::TaxiAllocated(e) => &e.grab_id,
            DomainEvent::AllocationFailed(e) => &e.grab_id,
            DomainEvent::AllocationCancelled(e) => &e.grab_id,
            DomainEvent::RideStarted(e) => &e.grab_id,
            DomainEvent::RideCompleted(e) => &e.grab_id,
        }
    }

    /// The deterministic CloudEvent id: the same logical fact always gets the same id,
    /// so a re-sent event (outbox retry, crash before marking sent) dedupes downstream.
    /// One fact per (type, key): each offer is made once, a grab is requested/cancelled/allocated/failed once,
    /// a payment is approved/refunded once, an allocation is cancelled/started/completed once.
    pub fn event_id(&self) -> String {
        let key = match self {
            DomainEvent::GrabRequested(e) => e.grab_id.to_string(),
            DomainEvent::GrabCancelled(e) => e.grab_id.to_string(),
            DomainEvent::PaymentApproved(e) => e.payment_id.to_string(),
            DomainEvent::PaymentRejected(e) => e.grab_id.to_string(),
            DomainEvent::PaymentRefunded(e) => e.payment_id.to_string(),
            DomainEvent::TaxiOffered(e) => e.allocation_id.to_string(),
            DomainEvent::TaxiAllocated(e) => e.grab_id.to_string(),
            DomainEvent::AllocationFailed(e) => e.grab_id.to_string(),
            DomainEvent::AllocationCancelled(e) => e.allocation_id.to_string(),
            DomainEvent::RideStarted(e) => e.allocation_id.to_string(),
            DomainEvent::RideCompleted(e) => e.allocation_id.to_string(),
        };
        format!("{}:{}", self.event_type().name(), key)
    }

    fn data(&self) -> serde_json::Value {
        let v = match self {
            DomainEvent::GrabRequested(e) => serde_json::to_value(e),
            DomainEvent::GrabCancelled(e) => serde_json::to_value(e),
            DomainEvent::PaymentApproved(e) => serde_json::to_value(e),
            DomainEvent::PaymentRejected(e) => serde_json::to_value(e),
            DomainEvent::PaymentRefunded(e) => serde_json::to_value(e),
            DomainEvent::TaxiOffered(e) => serde_json::to_value(e),
            DomainEvent::TaxiAllocated(e) => serde_json::to_value(e),
            DomainEvent::AllocationFailed(e) => serde_json::to_value(e),
            DomainEvent::AllocationCancelled(e) => serde_json::to_value(e),
            DomainEvent::RideStarted(e) => serde_json::to_value(e),
            DomainEvent::RideCompleted(e) => serde_json::to_value(e),
        };
        v.expect("event payloads are plain data and always serialise")
    }

    /// Wrap this event for publishing: source `/htaxi/<emitter>`, subject and partitionkey
    /// = grab id, deterministic id, the ride's correlation id and trace context.
    pub fn to_envelope(
        &self,
        correlation_id: &CorrelationId,
        traceparent: Option<&str>,
        time: DateTime<Utc>,
    ) -> Envelope {
        let t = self.event_type();
        Envelope {
            id: self.event_id(),
            event_type: t.as_str().to_owned(),
            source: format!("/htaxi/{}", t.emitter()),
            subject: Some(self.grab_id().to_string()),
            time: Some(time),
            correlation_id: Some(correlation_id.to_string()),
            partition_key: Some(self.grab_id().to_string()),
            traceparent: traceparent.map(str::to_owned),
            data: self.data(),
        }
    }

    /// Read the typed event out of an envelope, as the published contract (docs/events/)
    /// allows: extra data fields are ignored; a missing timestamp field
    /// ([`EventType::time_field`]) is the envelope's `time`, else `received_at`; missing or
    /// invalid other fields are refused, and so is a `subject` that names another ride than
    /// `data.grabId`.
    pub fn from_envelope(
        env: &Envelope,
        received_at: DateTime<Utc>,
    ) -> Result<DomainEvent, EventError> {
        let t = EventType::parse(&env.event_type)
            .ok_or_else(|| EventError::UnsupportedType(env.event_type.clone()))?;
        let mut value = env.data.clone();
        if let Some(fields) = value.as_object_mut() {
            let when = env.time.unwrap_or(received_at);
            fields
                .entry(t.time_field())
                .or_insert_with(|| serde_json::Value::String(when.to_rfc3339()));
        }
        fn typed<T: DeserializeOwned>(
            t: EventType,
            value: serde_json::Value,
        ) -> Result<T, EventError> {
            serde_json::from_value(value).map_err(|e| EventError::InvalidData {
                event_type: t.as_str().to_owned(),
                reason: e.to_string(),
            })
        }
        let ev = match t {
            EventType::GrabRequested => DomainEvent::GrabRequested(typed(t, value)?),
            EventType::GrabCancelled => DomainEvent::GrabCancelled(typed(t, value)?),
            EventType::PaymentApproved => DomainEvent::PaymentApproved(typed(t, value)?),
            EventType::PaymentRejected => DomainEvent::PaymentRejected(typed(t, value)?),
            EventType::PaymentRefunded => DomainEvent::PaymentRefunded(typed(t, value)?),
            EventType::TaxiOffered => DomainEvent::TaxiOffered(typed(t, value)?),
            EventType::TaxiAllocated => DomainEvent::TaxiAllocated(typed(t, value)?),
            EventType::AllocationFailed => DomainEvent::AllocationFailed(typed(t, value)?),
            EventType::AllocationCancelled => DomainEvent::AllocationCancelled(typed(t, value)?),
            EventType::RideStarted => DomainEvent::RideStarted(typed(t, value)?),
            EventType::RideCompleted => DomainEvent::RideCompleted(typed(t, value)?),
        };
        if let Some(subject) = &env.subject {
            if subject != ev.grab_id().as_str() {
                return Err(EventError::SubjectMismatch {
                    subject: subject.clone(),
                    grab_id: ev.grab_id().to_string(),
                });
            }
        }
        Ok(ev)
    }
}

/// A CloudEvent as the saga sees it: the context attributes we use plus JSON data.
/// Built by [`DomainEvent::to_envelope`] or decoded by [`crate::cloudevent::decode`];
/// stored as JSON in outbox rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<DateTime<Utc>>,
    /// Extension `correlationid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// Extension `partitionkey` (= grab id: per-ride ordering on Kafka).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_key: Option<String>,
    /// Extension `traceparent` (W3C trace context), passed on unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    pub data: serde_json::Value,
}

impl Envelope {
    /// The correlation id to continue with: the event's own, or a new one if it had none
    /// or an unusable one (an injected event may carry anything).
    pub fn correlation(&self) -> CorrelationId {
        self.correlation_id
            .as_deref()
            .and_then(|c| CorrelationId::parse(c).ok())
            .unwrap_or_else(CorrelationId::new_random)
    }
}

#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;

    pub fn grab_id() -> GrabId {
        GrabId::parse("7f1c1a52-6b0e-4c4f-9f51-1d3c2b9a0e11").unwrap()
    }

    pub fn payment_approved() -> DomainEvent {
        DomainEvent::PaymentApproved(PaymentApproved {
            payment_id: PaymentId::parse("11111111-2222-4333-8444-555555555555").unwrap(),
            grab_id: grab_id(),
            amount: Money::krw(15_000).unwrap(),
            phone_number: PhoneNumber::parse("010-1234-5678").unwrap(),
            starting_point: GeoPoint::new(37.5547, 126.9707, Some("Seoul Station".into())).unwrap(),
            destination: GeoPoint::new(37.4979, 127.0276, Some("Gangnam".into())).unwrap(),
            approved_at: "2026-11-25T10:00:00Z".parse().unwrap(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_round_trips_through_its_name() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
            assert!(t.as_str().starts_with("htaxi."));
        }
        assert_eq!(EventType::parse("htaxi.Nope"), None);
    }

    #[test]
    fn the_same_fact_always_gets_the_same_event_id() {
        let a = fixtures::payment_approved();
        assert_eq!(a.event_id(), fixtures::payment_approved().event_id());
        assert_eq!(
            a.event_id(),
            "PaymentApproved:11111111-2222-4333-8444-555555555555"
        );
    }

    #[test]
    fn envelopes_carry_ride_and_correlation() {
        let corr = CorrelationId::parse("ride-1").unwrap();
        let env = fixtures::payment_approved().to_envelope(&corr, None, Utc::now());
        assert_eq!(env.source, "/htaxi/pay");
        assert_eq!(env.subject.as_deref(), Some(fixtures::grab_id().as_str()));
        assert_eq!(env.partition_key, env.subject);
        assert_eq!(env.correlation_id.as_deref(), Some("ride-1"));
        assert_eq!(
            DomainEvent::from_envelope(&env, Utc::now()).unwrap(),
            fixtures::payment_approved()
        );
    }

    #[test]
    fn a_subject_naming_another_ride_is_refused() {
        let corr = CorrelationId::new_random();
        let mut env = fixtures::payment_approved().to_envelope(&corr, None, Utc::now());
        env.subject = Some("another".into());
        assert!(matches!(
            DomainEvent::from_envelope(&env, Utc::now()),
            Err(EventError::SubjectMismatch { .. })
        ));
    }

    fn approved_at(ev: DomainEvent) -> DateTime<Utc> {
        match ev {
            DomainEvent::PaymentApproved(e) => e.approved_at,
            other => panic!("not a PaymentApproved: {other:?}"),
        }
    }

    #[test]
    fn a_timestamp_missing_from_data_is_the_time_attribute_else_the_time_of_receipt() {
        let corr = CorrelationId::new_random();
        let sent: DateTime<Utc> = "2026-11-25T10:00:07Z".parse().unwrap();
        let received: DateTime<Utc> = "2026-11-25T11:00:00Z".parse().unwrap();
        for (time, want) in [(Some(sent), sent), (None, received)] {
            let mut env = fixtures::payment_approved().to_envelope(&corr, None, sent);
            env.time = time;
            env.data.as_object_mut().unwrap().remove("approvedAt");
            let ev = DomainEvent::from_envelope(&env, received).unwrap();
            assert_eq!(approved_at(ev), want, "time attribute {time:?}");
        }
    }

    #[test]
    fn a_timestamp_in_data_wins_over_the_time_attribute() {
        let corr = CorrelationId::new_random();
        let env = fixtures::payment_approved().to_envelope(&corr, None, Utc::now());
        let ev = DomainEvent::from_envelope(&env, Utc::now()).unwrap();
        assert_eq!(ev, fixtures::payment_approved());
    }

    #[test]
    fn an_invalid_or_null_timestamp_is_refused() {
        let corr = CorrelationId::new_random();
        let mut env = fixtures::payment_approved().to_envelope(&corr, None, Utc::now());
        for bad in [serde_json::json!("yesterday"), serde_json::Value::Null] {
            env.data["approvedAt"] = bad;
            assert!(matches!(
                DomainEvent::from_envelope(&env, Utc::now()),
                Err(EventError::InvalidData { .. })
            ));
        }
    }

    #[test]
    fn every_type_names_its_timestamp_field() {
        for t in EventType::ALL {
            assert!(t.time_field().ends_with("At"), "{t:?}");
        }
    }

    /// The published schema of a type (docs/events/schemas/<Name>.json).
    fn schema(t: EventType) -> serde_json::Value {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../docs/events/schemas")
            .join(format!("{}.json", t.name()));
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        serde_json::from_str(&text).expect("schema is JSON")
    }

    #[test]
    fn the_published_schemas_require_what_the_catalogue_requires_except_the_timestamp() {
        for t in EventType::ALL {
            let s = schema(t);
            let required: Vec<&str> = s["required"]
                .as_array()
                .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
                .unwrap_or_default();
            assert_eq!(s["type"], "object", "{t:?}");
            assert!(s["properties"].get(t.time_field()).is_some(), "{t:?}");
            assert!(!required.contains(&t.time_field()), "{t:?}: optional");
        }
        // A PaymentApproved with exactly the schema's required fields is accepted.
        let s = schema(EventType::PaymentApproved);
        let required: Vec<&str> = s["required"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        let corr = CorrelationId::new_random();
        let mut env = fixtures::payment_approved().to_envelope(&corr, None, Utc::now());
        let fields = env.data.as_object_mut().unwrap();
        fields.retain(|k, _| required.contains(&k.as_str()));
        assert!(DomainEvent::from_envelope(&env, Utc::now()).is_ok());
    }

    #[test]
    fn data_with_a_missing_field_is_refused_but_extra_fields_are_fine() {
        let corr = CorrelationId::new_random();
        let mut env = fixtures::payment_approved().to_envelope(&corr, None, Utc::now());
        env.data["loyaltyPoints"] = serde_json::json!(12);
        assert!(DomainEvent::from_envelope(&env, Utc::now()).is_ok());
        env.data.as_object_mut().unwrap().remove("amount");
        assert!(matches!(
            DomainEvent::from_envelope(&env, Utc::now()),
            Err(EventError::InvalidData { .. })
        ));
    }
}
