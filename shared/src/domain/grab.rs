//! The grab aggregate (owned by the grab component): the ride request lifecycle and the
//! circuit breaker that guards grab's synchronous call to pay.
//!
//! A grab moves `Requested → Paid → Allocated → RideStarted → Completed`, or ends `Cancelled`,
//! `Rejected` (pay refused the fare) or `Failed` (pay unavailable, or no taxi). Facts
//! arrive unordered (the synchronous pay answer may land after `TaxiAllocated`), so
//! every transition only ever moves forward: a late fact never undoes a later one.
//! Everything here is pure: the shell passes ids and time in.

use crate::domain::fare::Quote;
use crate::domain::payment::point_field;
use crate::domain::values::GeoPointDto;
use crate::domain::{GeoPoint, InvalidValue, Money, PhoneNumber};
use crate::events::{DomainEvent, GrabCancelled, GrabRequested};
use crate::ids::{AllocationId, CorrelationId, GrabId, PaymentId, QuoteId, TaxiId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Where a grab stands. Serialised as its status word (see [`GrabStatus::as_str`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum GrabStatus {
    /// Stored; pay has not answered yet.
    Requested,
    /// pay approved the fare; waiting for a taxi.
    Paid,
    /// A taxi is on its way.
    Allocated,
    /// The driver accepted; the ride is on. Can no longer be cancelled.
    RideStarted,
    /// The rider was dropped off; the fare stays charged.
    Completed,
    /// Cancelled by the rider.
    Cancelled,
    /// pay refused the fare.
    Rejected,
    /// pay stayed unavailable, or no taxi could be allocated.
    Failed,
}

impl GrabStatus {
    /// Every status.
    pub const ALL: [GrabStatus; 8] = [
        GrabStatus::Requested,
        GrabStatus::Paid,
        GrabStatus::Allocated,
        GrabStatus::RideStarted,
        GrabStatus::Completed,
        GrabStatus::Cancelled,
        GrabStatus::Rejected,
        GrabStatus::Failed,
    ];

    /// The status word on the wire and in the database.
    pub const fn as_str(self) -> &'static str {
        match self {
            GrabStatus::Requested => "Requested",
            GrabStatus::Paid => "Paid",
            GrabStatus::Allocated => "Allocated",
            GrabStatus::RideStarted => "RideStarted",
            GrabStatus::Completed => "Completed",
            GrabStatus::Cancelled => "Cancelled",
            GrabStatus::Rejected => "Rejected",
            GrabStatus::Failed => "Failed",
        }
    }

    /// Parse a stored status word; `None` if unknown.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Whether the grab is over: nothing moves it any more.
    pub const fn is_final(self) -> bool {
        matches!(
            self,
            GrabStatus::Completed
                | GrabStatus::Cancelled
                | GrabStatus::Rejected
                | GrabStatus::Failed
        )
    }
}

/// One ride request.
#[derive(Debug, Clone, PartialEq)]
pub struct Grab {
    pub id: GrabId,
    pub status: GrabStatus,
    pub phone_number: PhoneNumber,
    pub starting_point: GeoPoint,
    pub destination: GeoPoint,
    /// The fare charged: the quote's, never one the client sent.
    pub estimated_fee: Money,
    /// The quote the grab was booked on (none for grabs stored before quotes existed).
    pub quote_id: Option<QuoteId>,
    pub payment_id: Option<PaymentId>,
    pub allocation_id: Option<AllocationId>,
    pub taxi_id: Option<TaxiId>,
    pub taxi_num: Option<String>,
    /// Why it was rejected, failed or cancelled.
    pub reason: Option<String>,
    pub correlation_id: CorrelationId,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Command: a rider books a quoted trip. The points are optional; when given they must be
/// the quote's (the rider is charged for the trip that was priced).
#[derive(Debug, Clone, PartialEq)]
pub struct RequestGrab {
    pub phone_number: PhoneNumber,
    pub quote_id: QuoteId,
    pub starting_point: Option<GeoPoint>,
    pub destination: Option<GeoPoint>,
}

/// The wire shape of `POST /grabs`. `estimatedFee` is still accepted from older clients
/// but never sets the charge: the grab costs its quote's fare.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestGrabDto {
    pub phone_number: String,
    #[serde(default)]
    pub quote_id: Option<String>,
    #[serde(default)]
    pub starting_point: Option<GeoPointDto>,
    #[serde(default)]
    pub destination: Option<GeoPointDto>,
    #[serde(default)]
    pub estimated_fee: Option<i64>,
}

impl TryFrom<RequestGrabDto> for RequestGrab {
    type Error = InvalidValue;

    /// Parse every field; fails naming the first invalid one (`quoteId`, `startingPoint.lat`, ...).
    fn try_from(d: RequestGrabDto) -> Result<Self, InvalidValue> {
        let quote_id = d.quote_id.ok_or_else(|| {
            InvalidValue::new(
                "quoteId",
                "is required: ask POST /fares/quote for a fare first",
            )
        })?;
        let point = |p: Option<GeoPointDto>, name: &'static str| {
            p.map(|p| {
                GeoPoint::try_from(p)
                    .map_err(|e| InvalidValue::new(point_field(name, e.field), e.reason))
            })
            .transpose()
        };
        Ok(Self {
            phone_number: PhoneNumber::parse(&d.phone_number)?,
            quote_id: QuoteId::parse(quote_id.trim())
                .map_err(|e| InvalidValue::new("quoteId", e.to_string()))?,
            starting_point: point(d.starting_point, "startingPoint")?,
            destination: point(d.destination, "destination")?,
        })
    }
}

/// The reason recorded when grab gives up on pay.
pub const PAYMENT_UNAVAILABLE: &str = "payment unavailable";
/// The reason recorded when the rider cancels.
pub const CANCELLED_BY_RIDER: &str = "cancelled by rider";

/// How the synchronous pay call ended.
#[derive(Debug, Clone, PartialEq)]
pub enum PayOutcome {
    /// pay approved (201).
    Approved { payment_id: PaymentId },
    /// pay refused the fare (402).
    Rejected { reason: String },
    /// pay refused to charge because it already saw this grab cancelled (409).
    RefusedAsCancelled,
    /// No answer after every attempt (timeouts, transport errors, 5xx, misconfiguration).
    Unavailable { detail: String },
}

/// What one answer from pay means for the call: a decision, worth retrying with the
/// same Idempotency-Key, or pointless to retry.
#[derive(Debug, Clone, PartialEq)]
pub enum PayAnswer {
    /// pay decided (201 approved, 402 rejected, 409 grab already called off).
    Decided(PayOutcome),
    /// An outage: 5xx, 429, or a 2xx without a readable payment id.
    Retry(String),
    /// A misconfiguration (401, other 4xx): retrying cannot help.
    GiveUp(String),
}

/// Read pay's HTTP answer. `body` is the JSON pay sent: `{"paymentId"}` on approval,
/// problem+json (`detail`) on rejection.
pub fn read_pay_answer(status: u16, body: &[u8]) -> PayAnswer {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Approved {
        payment_id: String,
    }
    #[derive(Deserialize)]
    struct Problem {
        detail: Option<String>,
    }
    match status {
        200 | 201 => match serde_json::from_slice::<Approved>(body)
            .ok()
            .and_then(|a| PaymentId::parse(&a.payment_id).ok())
        {
            Some(payment_id) => PayAnswer::Decided(PayOutcome::Approved { payment_id }),
            None => PayAnswer::Retry(format!("pay answered {status} without a payment id")),
        },
        402 => {
            let detail = serde_json::from_slice::<Problem>(body)
                .ok()
                .and_then(|p| p.detail)
                .unwrap_or_else(|| "payment rejected".to_owned());
            let reason = detail
                .strip_prefix("payment rejected: ")
                .unwrap_or(&detail)
                .to_owned();
            PayAnswer::Decided(PayOutcome::Rejected { reason })
        }
        409 => PayAnswer::Decided(PayOutcome::RefusedAsCancelled),
        429 | 500..=599 => PayAnswer::Retry(format!("pay answered {status}")),
        other => PayAnswer::GiveUp(format!("pay refused the call with {other}")),
    }
}

/// The pause before attempt `n` (n >= 2) of a pay call: 100 ms, 200 ms, 400 ms, ... at
/// most 1 s. Short: the rider is waiting.
pub fn pay_retry_backoff_ms(n: u32) -> u64 {
    (100u64 << n.saturating_sub(2).min(4)).min(1_000)
}

/// Why grab refuses a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrabError {
    /// The driver already accepted: too late to cancel.
    #[error("the ride has already started; it can no longer be cancelled")]
    RideAlreadyStarted,
    /// The grab already ended without a ride (rejected or failed): nothing to cancel.
    #[error("the grab already ended as {0}; there is nothing to cancel")]
    NothingToCancel(&'static str),
}

/// Decide a new grab for a quote the rider may book (see [`crate::domain::fare::redeem`]):
/// it starts `Requested`, costs the quote's fare and `GrabRequested` is published. Fails
/// naming the point when the request names another trip than the quote priced.
pub fn request(
    id: GrabId,
    cmd: RequestGrab,
    quote: &Quote,
    correlation_id: CorrelationId,
    now: DateTime<Utc>,
) -> Result<(Grab, DomainEvent), InvalidValue> {
    let same_place = |a: &GeoPoint, b: &GeoPoint| a.lat() == b.lat() && a.lng() == b.lng();
    for (field, asked, quoted) in [
        ("startingPoint", &cmd.starting_point, &quote.starting_point),
        ("destination", &cmd.destination, &quote.destination),
    ] {
        if asked.as_ref().is_some_and(|p| !same_place(p, quoted)) {
            return Err(InvalidValue::new(
                field,
                "is not the point the quote priced",
            ));
        }
    }
    // A name the rider gives now wins over the quote's; the coordinates are the quote's.
    let named =
        |asked: Option<GeoPoint>, quoted: &GeoPoint| asked.unwrap_or_else(|| quoted.clone());
    let starting_point = named(cmd.starting_point, &quote.starting_point);
    let destination = named(cmd.destination, &quote.destination);
    let event = DomainEvent::GrabRequested(GrabRequested {
        grab_id: id.clone(),
        phone_number: cmd.phone_number.clone(),
        starting_point: starting_point.clone(),
        destination: destination.clone(),
        estimated_fee: quote.fare,
        quote_id: Some(quote.quote_id.clone()),
        requested_at: now,
    });
    let grab = Grab {
        id,
        status: GrabStatus::Requested,
        phone_number: cmd.phone_number,
        starting_point,
        destination,
        estimated_fee: quote.fare,
        quote_id: Some(quote.quote_id.clone()),
        payment_id: None,
        allocation_id: None,
        taxi_id: None,
        taxi_num: None,
        reason: None,
        correlation_id,
        created_at: now,
        updated_at: now,
    };
    Ok((grab, event))
}

/// The result of settling the pay call: the grab as it now stands and what to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct Settlement {
    pub grab: Grab,
    pub emit: Vec<DomainEvent>,
}

/// Apply pay's answer. Only a `Requested` grab moves: to `Paid`, `Rejected`, or `Failed`
/// with a system `GrabCancelled` (so pay refunds a charge it made after all and allocate
/// ignores a late `PaymentApproved`). A grab that events or the rider already moved on
/// stays where it is; an approval still records its payment id.
pub fn settle_payment(grab: &Grab, outcome: &PayOutcome, now: DateTime<Utc>) -> Settlement {
    let mut next = grab.clone();
    let mut emit = Vec::new();
    match (grab.status, outcome) {
        (GrabStatus::Requested, PayOutcome::Approved { payment_id }) => {
            next.status = GrabStatus::Paid;
            next.payment_id = Some(payment_id.clone());
        }
        (_, PayOutcome::Approved { payment_id }) => {
            if next.payment_id.is_none() {
                next.payment_id = Some(payment_id.clone());
            }
        }
        (GrabStatus::Requested, PayOutcome::Rejected { reason }) => {
            next.status = GrabStatus::Rejected;
            next.reason = Some(reason.clone());
        }
        (
            GrabStatus::Requested,
            PayOutcome::Unavailable { .. } | PayOutcome::RefusedAsCancelled,
        ) => {
            next.status = GrabStatus::Failed;
            next.reason = Some(PAYMENT_UNAVAILABLE.to_owned());
            emit.push(DomainEvent::GrabCancelled(GrabCancelled {
                grab_id: grab.id.clone(),
                reason: PAYMENT_UNAVAILABLE.to_owned(),
                initiated_by: "system".to_owned(),
                cancelled_at: now,
            }));
        }
        (_, PayOutcome::Rejected { .. })
        | (_, PayOutcome::Unavailable { .. })
        | (_, PayOutcome::RefusedAsCancelled) => {}
    }
    if next != *grab {
        next.updated_at = now;
    }
    Settlement { grab: next, emit }
}

/// Decide a rider's cancel. Before the ride starts it is accepted and `GrabCancelled`
/// published; cancelling a cancelled grab again decides nothing (idempotent); after
/// the ride started, or once the grab was rejected or failed, it is refused.
pub fn decide_cancel(grab: &Grab, now: DateTime<Utc>) -> Result<Vec<DomainEvent>, GrabError> {
    match grab.status {
        GrabStatus::Requested | GrabStatus::Paid | GrabStatus::Allocated => {
            Ok(vec![DomainEvent::GrabCancelled(GrabCancelled {
                grab_id: grab.id.clone(),
                reason: CANCELLED_BY_RIDER.to_owned(),
                initiated_by: "rider".to_owned(),
                cancelled_at: now,
            })])
        }
        GrabStatus::Cancelled => Ok(Vec::new()),
        GrabStatus::RideStarted | GrabStatus::Completed => Err(GrabError::RideAlreadyStarted),
        s @ (GrabStatus::Rejected | GrabStatus::Failed) => {
            Err(GrabError::NothingToCancel(s.as_str()))
        }
    }
}

/// Fold a fact into the grab, never moving it backwards:
/// - `GrabCancelled` (its own, by the rider) → `Cancelled` unless the grab already ended
///   or the ride started;
/// - `TaxiAllocated` → `Allocated` unless it ended or the ride started;
/// - `RideStarted` → `RideStarted` unless the grab ended (completed included);
/// - `RideCompleted` → `Completed` unless the grab ended;
/// - `AllocationFailed` → `Failed` unless it ended or the ride started.
///
/// Any other event, or one that does not apply, returns the grab unchanged.
/// `updatedAt` becomes the event's time, never earlier than it was.
pub fn apply(grab: &Grab, event: &DomainEvent) -> Grab {
    let mut next = grab.clone();
    let before_ride = matches!(
        grab.status,
        GrabStatus::Requested | GrabStatus::Paid | GrabStatus::Allocated
    );
    match event {
        DomainEvent::GrabCancelled(e) if before_ride => {
            next.status = if e.initiated_by == "system" {
                GrabStatus::Failed
            } else {
                GrabStatus::Cancelled
            };
            next.reason = Some(e.reason.clone());
            next.updated_at = next.updated_at.max(e.cancelled_at);
        }
        DomainEvent::TaxiAllocated(e) if before_ride => {
            next.status = GrabStatus::Allocated;
            next.allocation_id = Some(e.allocation_id.clone());
            next.taxi_id = Some(e.taxi_id.clone());
            next.taxi_num = Some(e.taxi_num.clone());
            next.updated_at = next.updated_at.max(e.allocated_at);
        }
        DomainEvent::RideStarted(e) if !grab.status.is_final() => {
            next.status = GrabStatus::RideStarted;
            next.allocation_id = Some(e.allocation_id.clone());
            next.taxi_id = Some(e.taxi_id.clone());
            next.taxi_num = Some(e.taxi_num.clone());
            next.updated_at = next.updated_at.max(e.started_at);
        }
        DomainEvent::RideCompleted(e) if !grab.status.is_final() => {
            next.status = GrabStatus::Completed;
            next.allocation_id = Some(e.allocation_id.clone());
            next.taxi_id = Some(e.taxi_id.clone());
            next.taxi_num = Some(e.taxi_num.clone());
            next.updated_at = next.updated_at.max(e.completed_at);
        }
        DomainEvent::AllocationFailed(e) if before_ride => {
            next.status = GrabStatus::Failed;
            next.reason = Some(e.reason.clone());
            next.updated_at = next.updated_at.max(e.failed_at);
        }
        _ => {}
    }
    next
}

// ---------------------------------------------------------------- circuit breaker

/// The breaker's position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum BreakerState {
    /// Calls go through; consecutive failures are counted.
    #[default]
    Closed,
    /// Calls are refused until the cool-down has passed.
    Open,
    /// One trial call is in flight; everyone else is refused until it reports or its
    /// cool-down window passes (then one more trial is admitted).
    HalfOpen,
}

impl BreakerState {
    /// The state word (as stored and shown in `GET /health/grab`).
    pub const fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half-open",
        }
    }

    /// Parse a stored state word; `None` if unknown.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Closed, Self::Open, Self::HalfOpen]
            .into_iter()
            .find(|st| st.as_str() == s)
    }
}

/// When the breaker opens and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerPolicy {
    /// Consecutive failed calls that open the breaker (at least 1).
    pub failure_threshold: u32,
    /// How long it stays open before one trial call is admitted.
    pub cooldown_ms: i64,
}

/// The circuit breaker guarding calls to pay, shared by every grab instance.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Breaker {
    pub state: BreakerState,
    pub consecutive_failures: u32,
    /// When it last opened (epoch ms).
    pub opened_at_ms: Option<i64>,
    /// When the current half-open trial was admitted (epoch ms).
    pub trial_started_at_ms: Option<i64>,
    pub last_failure_reason: Option<String>,
    pub last_failure_at_ms: Option<i64>,
}

/// Whether a call may go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Closed: call as usual.
    Call,
    /// Half-open: this call is the one trial of its window.
    Trial,
    /// Open (or a trial is already in flight): don't call; retry after this long.
    Refuse { retry_after_ms: i64 },
}

impl Breaker {
    /// Ask to call at `now_ms`. Returns the breaker to store (claiming the trial moves it
    /// to half-open, so concurrent instances that load it next are refused) and the answer.
    pub fn admit(&self, policy: &BreakerPolicy, now_ms: i64) -> (Breaker, Admission) {
        let window_end =
            |since: Option<i64>| since.unwrap_or(now_ms).saturating_add(policy.cooldown_ms);
        let since = match self.state {
            BreakerState::Closed => return (self.clone(), Admission::Call),
            BreakerState::Open => self.opened_at_ms,
            BreakerState::HalfOpen => self.trial_started_at_ms,
        };
        let end = window_end(since);
        if now_ms >= end || since.is_none() {
            let next = Breaker {
                state: BreakerState::HalfOpen,
                trial_started_at_ms: Some(now_ms),
                ..self.clone()
            };
            (next, Admission::Trial)
        } else {
            // A clock behind the stored time still waits at most one cool-down.
            let retry_after_ms = (end - now_ms).min(policy.cooldown_ms).max(1);
            (self.clone(), Admission::Refuse { retry_after_ms })
        }
    }

    /// A call succeeded: pay is answering, close and forget the failures.
    pub fn on_success(&self) -> Breaker {
        Breaker {
            state: BreakerState::Closed,
            consecutive_failures: 0,
            opened_at_ms: None,
            trial_started_at_ms: None,
            ..self.clone()
        }
    }

    /// A call failed at `now_ms` for `reason`: count it; open at the threshold; a failed
    /// trial opens it again for a fresh cool-down. A straggler failing while already
    /// open does not extend the cool-down.
    pub fn on_failure(&self, policy: &BreakerPolicy, now_ms: i64, reason: &str) -> Breaker {
        let mut next = Breaker {
            consecutive_failures: self.consecutive_failures.saturating_add(1),
            last_failure_reason: Some(reason.chars().take(500).collect()),
            last_failure_at_ms: Some(now_ms),
            ..self.clone()
        };
        let open_now = match self.state {
            BreakerState::Closed => next.consecutive_failures >= policy.failure_threshold.max(1),
            BreakerState::HalfOpen => true,
            BreakerState::Open => false,
        };
        if open_now {
            next.state = BreakerState::Open;
            next.opened_at_ms = Some(now_ms);
            next.trial_started_at_ms = None;
        }
        next
    }

    /// Whole seconds (at least 1) a caller should wait before trying again.
    pub fn retry_after_secs(&self, policy: &BreakerPolicy, now_ms: i64) -> u32 {
        let ms = match self.state {
            BreakerState::Closed => 1_000,
            BreakerState::Open | BreakerState::HalfOpen => {
                let since = if self.state == BreakerState::Open {
                    self.opened_at_ms
                } else {
                    self.trial_started_at_ms
                };
                since
                    .map(|s| s.saturating_add(policy.cooldown_ms) - now_ms)
                    .unwrap_or(policy.cooldown_ms)
                    .clamp(1, policy.cooldown_ms.max(1))
            }
        };
        secs_ceil(ms)
    }
}

/// Milliseconds → whole seconds, rounded up, at least 1.
pub fn secs_ceil(ms: i64) -> u32 {
    let secs = (ms.max(1) + 999) / 1000;
    u32::try_from(secs).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{AllocationFailed, RideCompleted, RideStarted, TaxiAllocated};

    fn t(s: &str) -> DateTime<Utc> {
        format!("2026-11-25T{s}Z").parse().unwrap()
    }

    fn grab_id() -> GrabId {
        GrabId::parse("7f1c1a52-6b0e-4c4f-9f51-1d3c2b9a0e11").unwrap()
    }

    fn payment_id() -> PaymentId {
        PaymentId::parse("11111111-2222-4333-8444-555555555555").unwrap()
    }

    fn allocation_id() -> AllocationId {
        AllocationId::parse("22222222-2222-4333-8444-555555555555").unwrap()
    }

    fn taxi_id() -> TaxiId {
        TaxiId::parse("33333333-2222-4333-8444-555555555555").unwrap()
    }

    fn quote_id() -> QuoteId {
        QuoteId::parse("44444444-2222-4333-8444-555555555555").unwrap()
    }

    fn dto() -> RequestGrabDto {
        serde_json::from_value(serde_json::json!({
            "phoneNumber": "010-1234-5678",
            "quoteId": quote_id().to_string(),
            "startingPoint": {"lat": 37.5547, "lng": 126.9707, "name": "Seoul Station"},
            "destination": {"lat": 37.4979, "lng": 127.0276, "name": "Gangnam"},
            "estimatedFee": 1
        }))
        .unwrap()
    }

    /// The quote the rider asked for: Seoul Station to Gangnam, 12,400 KRW.
    fn a_quote() -> Quote {
        Quote {
            quote_id: quote_id(),
            phone_number: PhoneNumber::parse("010-1234-5678").unwrap(),
            starting_point: GeoPoint::new(37.5547, 126.9707, None).unwrap(),
            destination: GeoPoint::new(37.4979, 127.0276, None).unwrap(),
            fare: Money::krw(12_400).unwrap(),
            straight_line_meters: 8_000,
            road_meters: 10_400,
            night_surcharge: false,
            quoted_at: t("09:59:00"),
            expires_at: t("10:04:00"),
        }
    }

    fn request_with(d: RequestGrabDto) -> Result<(Grab, DomainEvent), InvalidValue> {
        request(
            grab_id(),
            RequestGrab::try_from(d).unwrap(),
            &a_quote(),
            CorrelationId::parse("ride-1").unwrap(),
            t("10:00:00"),
        )
    }

    /// A grab just requested.
    fn requested() -> Grab {
        request_with(dto()).unwrap().0
    }

    /// A grab in `status` (built through real transitions where it matters).
    fn grab_in(status: GrabStatus) -> Grab {
        Grab {
            status,
            ..requested()
        }
    }

    fn taxi_allocated() -> DomainEvent {
        DomainEvent::TaxiAllocated(TaxiAllocated {
            allocation_id: allocation_id(),
            grab_id: grab_id(),
            taxi_id: taxi_id(),
            taxi_num: "서울32저4703".into(),
            distance_meters: 420,
            allocated_at: t("10:01:00"),
        })
    }

    fn ride_started() -> DomainEvent {
        DomainEvent::RideStarted(RideStarted {
            allocation_id: allocation_id(),
            grab_id: grab_id(),
            taxi_id: taxi_id(),
            taxi_num: "서울32저4703".into(),
            started_at: t("10:03:00"),
        })
    }

    fn ride_completed() -> DomainEvent {
        DomainEvent::RideCompleted(RideCompleted {
            allocation_id: allocation_id(),
            grab_id: grab_id(),
            taxi_id: taxi_id(),
            taxi_num: "서울32저4703".into(),
            completed_at: t("10:20:00"),
        })
    }

    fn allocation_failed() -> DomainEvent {
        DomainEvent::AllocationFailed(AllocationFailed {
            grab_id: grab_id(),
            reason: "no taxi available within 10000 m".into(),
            failed_at: t("10:01:00"),
        })
    }

    fn approved() -> PayOutcome {
        PayOutcome::Approved {
            payment_id: payment_id(),
        }
    }

    fn unavailable() -> PayOutcome {
        PayOutcome::Unavailable {
            detail: "no response within 1.5s".into(),
        }
    }

    // ------------------------------------------------------------ request

    #[test]
    fn requesting_a_grab_stores_it_requested_and_publishes_grab_requested() {
        let (grab, event) = request_with(dto()).unwrap();
        assert_eq!(grab.status, GrabStatus::Requested);
        assert_eq!(grab.quote_id, Some(quote_id()));
        assert_eq!(grab.created_at, grab.updated_at);
        let DomainEvent::GrabRequested(e) = event else {
            panic!("expected GrabRequested")
        };
        assert_eq!(e.grab_id, grab_id());
        assert_eq!(e.starting_point.name(), Some("Seoul Station"));
        assert_eq!(e.requested_at, t("10:00:00"));
        assert_eq!(e.quote_id, Some(quote_id()));
    }

    #[test]
    fn a_rider_who_sends_a_made_up_fare_is_charged_the_quote() {
        let (grab, event) = request_with(dto()).unwrap();
        assert_eq!(grab.estimated_fee.as_krw(), 12_400, "not the 1 KRW sent");
        let DomainEvent::GrabRequested(e) = event else {
            panic!("expected GrabRequested")
        };
        assert_eq!(e.estimated_fee.as_krw(), 12_400);
    }

    #[test]
    fn a_request_without_points_takes_the_quotes_trip() {
        let mut d = dto();
        d.starting_point = None;
        d.destination = None;
        let (grab, _) = request_with(d).unwrap();
        assert_eq!(grab.starting_point, a_quote().starting_point);
        assert_eq!(grab.destination, a_quote().destination);
    }

    #[test]
    fn a_request_for_another_trip_than_the_quote_is_refused_naming_the_point() {
        let mut d = dto();
        d.destination = Some(GeoPointDto {
            lat: 37.5665,
            lng: 126.978,
            name: None,
        });
        assert_eq!(request_with(d).unwrap_err().field, "destination");
    }

    #[test]
    fn a_request_with_invalid_values_names_the_field() {
        let field = |f: fn(&mut RequestGrabDto)| {
            let mut d = dto();
            f(&mut d);
            RequestGrab::try_from(d).unwrap_err().field
        };
        assert_eq!(field(|d| d.phone_number = "call me".into()), "phoneNumber");
        assert_eq!(field(|d| d.quote_id = None), "quoteId");
        assert_eq!(field(|d| d.quote_id = Some("q-1".into())), "quoteId");
        assert_eq!(
            field(|d| d.starting_point.as_mut().unwrap().lat = 95.0),
            "startingPoint.lat"
        );
        assert_eq!(
            field(|d| d.destination.as_mut().unwrap().lng = -181.0),
            "destination.lng"
        );
        assert_eq!(
            field(|d| d.destination.as_mut().unwrap().name = Some("x".repeat(201))),
            "destination.name"
        );
    }

    #[test]
    fn a_request_dto_refuses_the_wrong_types() {
        let bad = serde_json::from_value::<RequestGrabDto>(serde_json::json!({
            "phoneNumber": "010-1234-5678",
            "startingPoint": {"lat": 1, "lng": 2},
            "destination": {"lat": 1, "lng": 2},
            "estimatedFee": "lots"
        }));
        assert!(bad.is_err());
    }

    // ------------------------------------------------------------ pay outcome

    #[test]
    fn an_approved_payment_makes_a_requested_grab_paid() {
        let s = settle_payment(&requested(), &approved(), t("10:00:01"));
        assert_eq!(s.grab.status, GrabStatus::Paid);
        assert_eq!(s.grab.payment_id, Some(payment_id()));
        assert_eq!(s.grab.updated_at, t("10:00:01"));
        assert!(s.emit.is_empty());
    }

    #[test]
    fn a_rejected_payment_makes_a_requested_grab_rejected_with_the_reason() {
        let outcome = PayOutcome::Rejected {
            reason: "amount 400000 KRW exceeds the payment limit of 300000 KRW".into(),
        };
        let s = settle_payment(&requested(), &outcome, t("10:00:01"));
        assert_eq!(s.grab.status, GrabStatus::Rejected);
        assert!(s.grab.reason.unwrap().contains("exceeds"));
        assert!(s.emit.is_empty());
    }

    #[test]
    fn pay_unavailable_fails_the_grab_and_cancels_it_for_the_system() {
        let s = settle_payment(&requested(), &unavailable(), t("10:00:05"));
        assert_eq!(s.grab.status, GrabStatus::Failed);
        assert_eq!(s.grab.reason.as_deref(), Some(PAYMENT_UNAVAILABLE));
        let [DomainEvent::GrabCancelled(e)] = s.emit.as_slice() else {
            panic!("expected one GrabCancelled, got {:?}", s.emit)
        };
        assert_eq!(e.initiated_by, "system");
        assert_eq!(e.reason, PAYMENT_UNAVAILABLE);
        assert_eq!(e.cancelled_at, t("10:00:05"));
    }

    #[test]
    fn pay_refusing_a_cancelled_grab_fails_a_still_requested_one() {
        let s = settle_payment(&requested(), &PayOutcome::RefusedAsCancelled, t("10:00:05"));
        assert_eq!(s.grab.status, GrabStatus::Failed);
        assert_eq!(s.emit.len(), 1);
    }

    #[test]
    fn a_late_approval_does_not_move_an_allocated_grab_back_to_paid() {
        let allocated = apply(&requested(), &taxi_allocated());
        let s = settle_payment(&allocated, &approved(), t("10:02:00"));
        assert_eq!(s.grab.status, GrabStatus::Allocated);
        assert_eq!(
            s.grab.payment_id,
            Some(payment_id()),
            "the payment id is still learned"
        );
        assert!(s.emit.is_empty());
    }

    #[test]
    fn pay_answers_after_the_rider_cancelled_change_nothing() {
        let cancelled = grab_in(GrabStatus::Cancelled);
        for outcome in [
            PayOutcome::Rejected { reason: "x".into() },
            unavailable(),
            PayOutcome::RefusedAsCancelled,
        ] {
            let s = settle_payment(&cancelled, &outcome, t("10:02:00"));
            assert_eq!(s.grab, cancelled);
            assert!(s.emit.is_empty());
        }
        let s = settle_payment(&cancelled, &approved(), t("10:02:00"));
        assert_eq!(s.grab.status, GrabStatus::Cancelled);
        assert_eq!(s.grab.payment_id, Some(payment_id()));
    }

    #[test]
    fn pay_unavailable_after_the_taxi_came_does_not_fail_the_grab() {
        let allocated = apply(&requested(), &taxi_allocated());
        let s = settle_payment(&allocated, &unavailable(), t("10:02:00"));
        assert_eq!(s.grab, allocated);
        assert!(s.emit.is_empty());
    }

    #[test]
    fn reading_an_approval_learns_the_payment_id() {
        let body =
            br#"{"paymentId":"11111111-2222-4333-8444-555555555555","paymentStatus":"Approved"}"#;
        assert_eq!(read_pay_answer(201, body), PayAnswer::Decided(approved()));
    }

    #[test]
    fn reading_a_rejection_keeps_the_reason_without_the_prefix() {
        let body = br#"{"status":402,"detail":"payment rejected: amount too high"}"#;
        assert_eq!(
            read_pay_answer(402, body),
            PayAnswer::Decided(PayOutcome::Rejected {
                reason: "amount too high".into()
            })
        );
        assert_eq!(
            read_pay_answer(402, b""),
            PayAnswer::Decided(PayOutcome::Rejected {
                reason: "payment rejected".into()
            })
        );
    }

    #[test]
    fn reading_a_conflict_means_pay_saw_the_grab_cancelled() {
        assert_eq!(
            read_pay_answer(409, b"{}"),
            PayAnswer::Decided(PayOutcome::RefusedAsCancelled)
        );
    }

    #[test]
    fn outages_are_retried_and_misconfiguration_is_not() {
        assert!(matches!(read_pay_answer(503, b""), PayAnswer::Retry(_)));
        assert!(matches!(read_pay_answer(500, b""), PayAnswer::Retry(_)));
        assert!(matches!(read_pay_answer(429, b""), PayAnswer::Retry(_)));
        assert!(matches!(
            read_pay_answer(201, b"garbage"),
            PayAnswer::Retry(_)
        ));
        assert!(matches!(read_pay_answer(401, b""), PayAnswer::GiveUp(_)));
        assert!(matches!(read_pay_answer(422, b""), PayAnswer::GiveUp(_)));
    }

    #[test]
    fn pay_retry_backoff_grows_and_is_capped() {
        assert_eq!(pay_retry_backoff_ms(2), 100);
        assert_eq!(pay_retry_backoff_ms(3), 200);
        assert_eq!(pay_retry_backoff_ms(4), 400);
        assert_eq!(pay_retry_backoff_ms(10), 1_000);
    }

    // ------------------------------------------------------------ cancel

    #[test]
    fn cancelling_before_the_ride_starts_is_accepted_and_published() {
        for status in [
            GrabStatus::Requested,
            GrabStatus::Paid,
            GrabStatus::Allocated,
        ] {
            let grab = grab_in(status);
            let events = decide_cancel(&grab, t("10:02:00")).unwrap();
            let [DomainEvent::GrabCancelled(e)] = events.as_slice() else {
                panic!("expected GrabCancelled for {status:?}")
            };
            assert_eq!(e.initiated_by, "rider");
            assert_eq!(e.reason, CANCELLED_BY_RIDER);
            let after = apply(&grab, &events[0]);
            assert_eq!(after.status, GrabStatus::Cancelled);
            assert_eq!(after.reason.as_deref(), Some(CANCELLED_BY_RIDER));
            assert_eq!(after.updated_at, t("10:02:00"));
        }
    }

    #[test]
    fn cancelling_a_cancelled_grab_again_decides_nothing() {
        assert_eq!(
            decide_cancel(&grab_in(GrabStatus::Cancelled), t("10:02:00")),
            Ok(Vec::new())
        );
    }

    #[test]
    fn cancelling_after_ride_started_is_refused() {
        assert_eq!(
            decide_cancel(&grab_in(GrabStatus::RideStarted), t("10:05:00")),
            Err(GrabError::RideAlreadyStarted)
        );
    }

    #[test]
    fn cancelling_a_rejected_or_failed_grab_is_refused_as_nothing_to_cancel() {
        assert_eq!(
            decide_cancel(&grab_in(GrabStatus::Rejected), t("10:05:00")),
            Err(GrabError::NothingToCancel("Rejected"))
        );
        assert_eq!(
            decide_cancel(&grab_in(GrabStatus::Failed), t("10:05:00")),
            Err(GrabError::NothingToCancel("Failed"))
        );
    }

    // ------------------------------------------------------------ events

    #[test]
    fn a_taxi_allocated_to_a_paid_grab_records_the_taxi() {
        let grab = apply(&grab_in(GrabStatus::Paid), &taxi_allocated());
        assert_eq!(grab.status, GrabStatus::Allocated);
        assert_eq!(grab.allocation_id, Some(allocation_id()));
        assert_eq!(grab.taxi_id, Some(taxi_id()));
        assert_eq!(grab.taxi_num.as_deref(), Some("서울32저4703"));
        assert_eq!(grab.updated_at, t("10:01:00"));
    }

    #[test]
    fn an_event_stamped_before_the_last_change_does_not_move_updated_at_back() {
        let mut grab = grab_in(GrabStatus::Paid);
        grab.updated_at = t("11:00:00");
        let after = apply(&grab, &taxi_allocated());
        assert_eq!(after.status, GrabStatus::Allocated);
        assert_eq!(after.updated_at, t("11:00:00"));
    }

    #[test]
    fn a_taxi_allocated_before_the_pay_answer_still_allocates() {
        let grab = apply(&requested(), &taxi_allocated());
        assert_eq!(grab.status, GrabStatus::Allocated);
    }

    #[test]
    fn a_taxi_allocated_to_an_ended_or_started_grab_is_ignored() {
        for status in [
            GrabStatus::Cancelled,
            GrabStatus::Failed,
            GrabStatus::Rejected,
            GrabStatus::RideStarted,
        ] {
            let grab = grab_in(status);
            assert_eq!(apply(&grab, &taxi_allocated()), grab, "{status:?}");
        }
    }

    #[test]
    fn a_ride_started_moves_the_grab_on_even_before_taxi_allocated() {
        for status in [
            GrabStatus::Requested,
            GrabStatus::Paid,
            GrabStatus::Allocated,
        ] {
            let grab = apply(&grab_in(status), &ride_started());
            assert_eq!(grab.status, GrabStatus::RideStarted, "{status:?}");
            assert_eq!(grab.taxi_id, Some(taxi_id()));
        }
    }

    #[test]
    fn a_ride_started_for_a_cancelled_or_failed_grab_is_ignored() {
        for status in [
            GrabStatus::Cancelled,
            GrabStatus::Failed,
            GrabStatus::Rejected,
        ] {
            let grab = grab_in(status);
            assert_eq!(apply(&grab, &ride_started()), grab, "{status:?}");
        }
    }

    #[test]
    fn a_late_taxi_allocated_does_not_undo_a_started_ride() {
        let started = apply(&grab_in(GrabStatus::Allocated), &ride_started());
        assert_eq!(
            apply(&started, &taxi_allocated()).status,
            GrabStatus::RideStarted
        );
    }

    #[test]
    fn a_completed_ride_ends_the_grab_and_nothing_moves_it_back() {
        let started = apply(&grab_in(GrabStatus::Allocated), &ride_started());
        let done = apply(&started, &ride_completed());
        assert_eq!(done.status, GrabStatus::Completed);
        assert_eq!(done.updated_at, t("10:20:00"));
        assert!(done.status.is_final());
        for late in [taxi_allocated(), ride_started(), allocation_failed()] {
            assert_eq!(apply(&done, &late), done, "{late:?}");
        }
        assert_eq!(
            decide_cancel(&done, t("10:30:00")),
            Err(GrabError::RideAlreadyStarted)
        );
    }

    #[test]
    fn a_ride_completed_before_ride_started_still_completes_but_not_a_cancelled_grab() {
        assert_eq!(
            apply(&grab_in(GrabStatus::Allocated), &ride_completed()).status,
            GrabStatus::Completed
        );
        let cancelled = grab_in(GrabStatus::Cancelled);
        assert_eq!(apply(&cancelled, &ride_completed()), cancelled);
    }

    #[test]
    fn an_allocation_failure_fails_the_grab_with_its_reason() {
        for status in [GrabStatus::Requested, GrabStatus::Paid] {
            let grab = apply(&grab_in(status), &allocation_failed());
            assert_eq!(grab.status, GrabStatus::Failed);
            assert_eq!(
                grab.reason.as_deref(),
                Some("no taxi available within 10000 m")
            );
        }
    }

    #[test]
    fn an_allocation_failure_after_a_cancel_is_ignored() {
        let grab = grab_in(GrabStatus::Cancelled);
        assert_eq!(apply(&grab, &allocation_failed()), grab);
    }

    #[test]
    fn an_allocation_failure_does_not_touch_a_started_rejected_or_failed_grab() {
        for status in [
            GrabStatus::RideStarted,
            GrabStatus::Rejected,
            GrabStatus::Failed,
        ] {
            let grab = grab_in(status);
            assert_eq!(apply(&grab, &allocation_failed()), grab, "{status:?}");
        }
    }

    #[test]
    fn a_system_cancel_marks_the_grab_failed() {
        let s = settle_payment(&requested(), &unavailable(), t("10:00:05"));
        let again = apply(&requested(), &s.emit[0]);
        assert_eq!(again.status, GrabStatus::Failed);
    }

    #[test]
    fn events_for_other_aggregates_change_nothing() {
        let grab = requested();
        let other = crate::events::fixtures::payment_approved();
        assert_eq!(apply(&grab, &other), grab);
    }

    #[test]
    fn status_words_round_trip() {
        for s in GrabStatus::ALL {
            assert_eq!(GrabStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(GrabStatus::parse("Nope"), None);
        for s in [
            BreakerState::Closed,
            BreakerState::Open,
            BreakerState::HalfOpen,
        ] {
            assert_eq!(BreakerState::parse(s.as_str()), Some(s));
        }
    }

    // ------------------------------------------------------------ breaker

    const POLICY: BreakerPolicy = BreakerPolicy {
        failure_threshold: 3,
        cooldown_ms: 10_000,
    };

    fn failed_times(n: u32, at: i64) -> Breaker {
        (0..n).fold(Breaker::default(), |b, _| {
            b.on_failure(&POLICY, at, "timeout")
        })
    }

    #[test]
    fn a_closed_breaker_admits_calls_without_changing() {
        let b = Breaker::default();
        assert_eq!(b.admit(&POLICY, 0), (b.clone(), Admission::Call));
    }

    #[test]
    fn failures_below_the_threshold_keep_it_closed_and_record_the_reason() {
        let b = failed_times(2, 1_000);
        assert_eq!(b.state, BreakerState::Closed);
        assert_eq!(b.consecutive_failures, 2);
        assert_eq!(b.last_failure_reason.as_deref(), Some("timeout"));
        assert_eq!(b.last_failure_at_ms, Some(1_000));
    }

    #[test]
    fn a_success_resets_the_failure_count() {
        let b = failed_times(2, 1_000).on_success();
        assert_eq!(b.consecutive_failures, 0);
        assert_eq!(
            b.on_failure(&POLICY, 2_000, "x").state,
            BreakerState::Closed
        );
    }

    #[test]
    fn the_threshold_of_consecutive_failures_opens_it() {
        let b = failed_times(3, 1_000);
        assert_eq!(b.state, BreakerState::Open);
        assert_eq!(b.opened_at_ms, Some(1_000));
    }

    #[test]
    fn an_open_breaker_refuses_calls_with_the_remaining_cool_down() {
        let b = failed_times(3, 1_000);
        let (after, adm) = b.admit(&POLICY, 4_000);
        assert_eq!(
            adm,
            Admission::Refuse {
                retry_after_ms: 7_000
            }
        );
        assert_eq!(after, b);
        assert_eq!(b.retry_after_secs(&POLICY, 4_000), 7);
        assert_eq!(b.retry_after_secs(&POLICY, 10_999), 1);
    }

    #[test]
    fn after_the_cool_down_exactly_one_trial_is_admitted() {
        let b = failed_times(3, 1_000);
        let (b, first) = b.admit(&POLICY, 11_000);
        assert_eq!(first, Admission::Trial);
        assert_eq!(b.state, BreakerState::HalfOpen);
        assert_eq!(b.trial_started_at_ms, Some(11_000));
        let (b2, second) = b.admit(&POLICY, 11_001);
        assert_eq!(
            second,
            Admission::Refuse {
                retry_after_ms: 9_999
            }
        );
        assert_eq!(b2, b);
    }

    #[test]
    fn a_trial_that_never_reports_frees_the_next_window() {
        let (b, _) = failed_times(3, 1_000).admit(&POLICY, 11_000);
        let (b, adm) = b.admit(&POLICY, 21_000);
        assert_eq!(adm, Admission::Trial);
        assert_eq!(b.trial_started_at_ms, Some(21_000));
    }

    #[test]
    fn a_successful_trial_closes_it() {
        let (b, _) = failed_times(3, 1_000).admit(&POLICY, 11_000);
        let b = b.on_success();
        assert_eq!(b.state, BreakerState::Closed);
        assert_eq!(b.consecutive_failures, 0);
        assert_eq!(b.admit(&POLICY, 11_001).1, Admission::Call);
        assert_eq!(
            b.last_failure_reason.as_deref(),
            Some("timeout"),
            "kept for operators"
        );
    }

    #[test]
    fn a_failed_trial_opens_it_again_for_a_fresh_cool_down() {
        let (b, _) = failed_times(3, 1_000).admit(&POLICY, 11_000);
        let b = b.on_failure(&POLICY, 12_000, "pay answered 503");
        assert_eq!(b.state, BreakerState::Open);
        assert_eq!(b.opened_at_ms, Some(12_000));
        assert_eq!(b.trial_started_at_ms, None);
        assert_eq!(
            b.admit(&POLICY, 21_999).1,
            Admission::Refuse { retry_after_ms: 1 }
        );
        assert_eq!(b.admit(&POLICY, 22_000).1, Admission::Trial);
    }

    #[test]
    fn a_straggler_failing_while_open_does_not_extend_the_cool_down() {
        let b = failed_times(3, 1_000).on_failure(&POLICY, 5_000, "late timeout");
        assert_eq!(b.state, BreakerState::Open);
        assert_eq!(b.opened_at_ms, Some(1_000));
        assert_eq!(b.last_failure_at_ms, Some(5_000));
    }

    #[test]
    fn a_clock_behind_the_opening_waits_at_most_one_cool_down() {
        let b = failed_times(3, 50_000);
        assert_eq!(
            b.admit(&POLICY, 0).1,
            Admission::Refuse {
                retry_after_ms: 10_000
            }
        );
    }

    #[test]
    fn a_threshold_of_zero_behaves_as_one() {
        let policy = BreakerPolicy {
            failure_threshold: 0,
            cooldown_ms: 1_000,
        };
        let b = Breaker::default().on_failure(&policy, 0, "x");
        assert_eq!(b.state, BreakerState::Open);
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(secs_ceil(1), 1);
        assert_eq!(secs_ceil(1_000), 1);
        assert_eq!(secs_ceil(1_001), 2);
        assert_eq!(secs_ceil(-5), 1);
        assert_eq!(Breaker::default().retry_after_secs(&POLICY, 0), 1);
    }
}
