//! Delivery policy, as Knative's Kafka broker applies it: which answers count as
//! delivered, which are retried and which go straight to the dead-letter sink, how long
//! to wait between attempts, and the dead-letter extensions Knative adds.
//!
//! - `retry` is the number of retries AFTER the first attempt (Knative `DeliverySpec`), so
//!   an event is tried at most `1 + retry` times.
//! - Retry `n` (1-based) waits `backoffDelay * 2^n` (exponential) or `backoffDelay * n`
//!   (linear), as the Knative docs define `backoffPolicy`.
//! - 2xx: delivered. 404, 408, 409, 429, 5xx, a timeout or a transport error: retried.
//!   Any other status (400, 422, other 4xx, 1xx, 3xx): poison, dead-lettered at once.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Knative dead-letter extensions: `knativeerrordata` is capped at this many bytes.
pub const ERROR_DATA_MAX_BYTES: usize = 1024;

/// `spec.delivery.backoffPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackoffPolicy {
    Exponential,
    Linear,
}

impl BackoffPolicy {
    /// Parse the manifest word (`exponential` | `linear`).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "exponential" => Some(BackoffPolicy::Exponential),
            "linear" => Some(BackoffPolicy::Linear),
            _ => None,
        }
    }
}

/// A fully resolved delivery spec (trigger over broker over local fallbacks).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    /// Retries after the first attempt.
    pub retry: u32,
    pub backoff_policy: BackoffPolicy,
    #[serde(
        rename = "backoffDelayMs",
        serialize_with = "as_millis",
        deserialize_with = "from_millis"
    )]
    pub backoff_delay: Duration,
    /// Per-attempt timeout.
    #[serde(
        rename = "timeoutMs",
        serialize_with = "as_millis",
        deserialize_with = "from_millis"
    )]
    pub timeout: Duration,
    /// Where Knative would send dead letters (`Kind/name` or a URI); informational locally.
    pub dead_letter_sink: Option<String>,
}

fn as_millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis().min(u128::from(u64::MAX)) as u64)
}

fn from_millis<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    u64::deserialize(d).map(Duration::from_millis)
}

/// A delivery spec as written in one manifest: every field optional.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeliverySpec {
    pub retry: Option<u32>,
    pub backoff_policy: Option<BackoffPolicy>,
    pub backoff_delay: Option<Duration>,
    pub timeout: Option<Duration>,
    pub dead_letter_sink: Option<String>,
}

impl DeliverySpec {
    /// Field by field: this spec's values win, `fallback` fills the gaps (the Kafka broker
    /// merges a Trigger's delivery over its Broker's the same way).
    pub fn or(&self, fallback: &DeliverySpec) -> DeliverySpec {
        DeliverySpec {
            retry: self.retry.or(fallback.retry),
            backoff_policy: self.backoff_policy.or(fallback.backoff_policy),
            backoff_delay: self.backoff_delay.or(fallback.backoff_delay),
            timeout: self.timeout.or(fallback.timeout),
            dead_letter_sink: self
                .dead_letter_sink
                .clone()
                .or_else(|| fallback.dead_letter_sink.clone()),
        }
    }

    /// Fill what is still missing from the local defaults.
    pub fn resolve(&self, defaults: &Delivery) -> Delivery {
        Delivery {
            retry: self.retry.unwrap_or(defaults.retry),
            backoff_policy: self.backoff_policy.unwrap_or(defaults.backoff_policy),
            backoff_delay: self.backoff_delay.unwrap_or(defaults.backoff_delay),
            timeout: self.timeout.unwrap_or(defaults.timeout),
            dead_letter_sink: self
                .dead_letter_sink
                .clone()
                .or_else(|| defaults.dead_letter_sink.clone()),
        }
    }
}

/// What one delivery attempt produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// The subscriber answered.
    Answered { status: u16, body: Vec<u8> },
    /// No answer within the trigger's timeout.
    TimedOut,
    /// Connection refused, DNS, denied host...
    Transport(String),
}

/// How Knative's Kafka broker reads an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Delivered,
    Retryable,
    Poison,
}

/// Classify an attempt (see the module docs for the table).
pub fn classify(attempt: &Attempt) -> Verdict {
    match attempt {
        Attempt::Answered { status, .. } => match status {
            200..=299 => Verdict::Delivered,
            404 | 408 | 409 | 429 | 500..=599 => Verdict::Retryable,
            _ => Verdict::Poison,
        },
        Attempt::TimedOut | Attempt::Transport(_) => Verdict::Retryable,
    }
}

/// The wait before retry number `retry` (1 = the first retry).
pub fn backoff(policy: BackoffPolicy, delay: Duration, retry: u32) -> Duration {
    let factor = match policy {
        BackoffPolicy::Exponential => 2u32.saturating_pow(retry),
        BackoffPolicy::Linear => retry,
    };
    delay.saturating_mul(factor)
}

/// What to do with a delivery after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    Delivered,
    /// Try again after this long.
    RetryAfter(Duration),
    /// Give up: the event goes to the dead-letter sink.
    DeadLetter(DeadLetter),
}

/// A dead letter's reason and the extensions Knative adds to the event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    pub reason: String,
    /// `knativeerrorcode`: the subscriber's last status, when it answered.
    pub knativeerrorcode: Option<u16>,
    /// `knativeerrordata`: its answer, base64, first [`ERROR_DATA_MAX_BYTES`] bytes.
    pub knativeerrordata: Option<String>,
}

/// Decide after attempt number `attempts` (1-based, this one included).
pub fn next(delivery: &Delivery, attempts: u32, attempt: &Attempt) -> Next {
    let verdict = classify(attempt);
    let what = describe(attempt);
    match verdict {
        Verdict::Delivered => Next::Delivered,
        Verdict::Retryable if attempts <= delivery.retry => Next::RetryAfter(backoff(
            delivery.backoff_policy,
            delivery.backoff_delay,
            attempts,
        )),
        Verdict::Retryable => Next::DeadLetter(dead_letter(
            format!(
                "retries exhausted: {what} on attempt {attempts} of {}",
                delivery.retry + 1
            ),
            attempt,
        )),
        Verdict::Poison => Next::DeadLetter(dead_letter(
            format!("not retryable: {what} on attempt {attempts}"),
            attempt,
        )),
    }
}

/// One line about an attempt, for logs and reasons.
pub fn describe(attempt: &Attempt) -> String {
    match attempt {
        Attempt::Answered { status, .. } => format!("subscriber answered {status}"),
        Attempt::TimedOut => "no answer within the timeout".to_owned(),
        Attempt::Transport(e) => format!("transport error ({e})"),
    }
}

fn dead_letter(reason: String, attempt: &Attempt) -> DeadLetter {
    use base64::Engine as _;
    let (code, data) = match attempt {
        Attempt::Answered { status, body } => {
            let cut = &body[..body.len().min(ERROR_DATA_MAX_BYTES)];
            (
                Some(*status),
                Some(base64::engine::general_purpose::STANDARD.encode(cut)),
            )
        }
        _ => (None, None),
    };
    DeadLetter {
        reason,
        knativeerrorcode: code,
        knativeerrordata: data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(retry: u32, policy: BackoffPolicy) -> Delivery {
        Delivery {
            retry,
            backoff_policy: policy,
            backoff_delay: Duration::from_millis(200),
            timeout: Duration::from_secs(10),
            dead_letter_sink: None,
        }
    }

    fn answered(status: u16) -> Attempt {
        Attempt::Answered {
            status,
            body: b"{\"title\":\"nope\"}".to_vec(),
        }
    }

    #[test]
    fn two_hundreds_are_delivered() {
        for s in [200, 201, 202, 204, 299] {
            assert_eq!(classify(&answered(s)), Verdict::Delivered);
        }
    }

    #[test]
    fn knative_retries_404_408_409_429_and_5xx() {
        for s in [404, 408, 409, 429, 500, 502, 503, 504, 599] {
            assert_eq!(classify(&answered(s)), Verdict::Retryable, "{s}");
        }
        assert_eq!(classify(&Attempt::TimedOut), Verdict::Retryable);
        assert_eq!(
            classify(&Attempt::Transport("refused".into())),
            Verdict::Retryable
        );
    }

    #[test]
    fn other_statuses_are_poison() {
        for s in [100, 301, 400, 401, 403, 405, 410, 413, 415, 422] {
            assert_eq!(classify(&answered(s)), Verdict::Poison, "{s}");
        }
    }

    #[test]
    fn exponential_backoff_doubles_from_the_first_retry() {
        let d = Duration::from_millis(200);
        let waits: Vec<u128> = (1..=4)
            .map(|n| backoff(BackoffPolicy::Exponential, d, n).as_millis())
            .collect();
        assert_eq!(waits, [400, 800, 1600, 3200]);
    }

    #[test]
    fn linear_backoff_grows_by_the_delay() {
        let d = Duration::from_millis(200);
        let waits: Vec<u128> = (1..=3)
            .map(|n| backoff(BackoffPolicy::Linear, d, n).as_millis())
            .collect();
        assert_eq!(waits, [200, 400, 600]);
    }

    #[test]
    fn a_huge_retry_number_saturates_instead_of_overflowing() {
        let wait = backoff(BackoffPolicy::Exponential, Duration::from_secs(1), 200);
        assert!(wait >= Duration::from_secs(u64::from(u32::MAX)));
    }

    #[test]
    fn a_failed_attempt_is_retried_while_retries_remain() {
        let d = delivery(2, BackoffPolicy::Exponential);
        assert_eq!(
            next(&d, 1, &answered(503)),
            Next::RetryAfter(Duration::from_millis(400))
        );
        assert_eq!(
            next(&d, 2, &Attempt::TimedOut),
            Next::RetryAfter(Duration::from_millis(800))
        );
    }

    #[test]
    fn exhausted_retries_dead_letter_with_the_last_answer() {
        let d = delivery(2, BackoffPolicy::Linear);
        let Next::DeadLetter(dl) = next(&d, 3, &answered(503)) else {
            panic!("expected a dead letter");
        };
        assert!(dl.reason.contains("retries exhausted"), "{}", dl.reason);
        assert!(dl.reason.contains("attempt 3 of 3"), "{}", dl.reason);
        assert_eq!(dl.knativeerrorcode, Some(503));
        assert_eq!(
            dl.knativeerrordata.as_deref(),
            Some("eyJ0aXRsZSI6Im5vcGUifQ==")
        );
    }

    #[test]
    fn zero_retries_means_one_attempt() {
        let d = delivery(0, BackoffPolicy::Exponential);
        assert!(matches!(next(&d, 1, &answered(500)), Next::DeadLetter(_)));
    }

    #[test]
    fn poison_is_dead_lettered_on_the_first_attempt() {
        let d = delivery(5, BackoffPolicy::Exponential);
        let Next::DeadLetter(dl) = next(&d, 1, &answered(422)) else {
            panic!("expected a dead letter");
        };
        assert!(dl.reason.starts_with("not retryable"), "{}", dl.reason);
        assert_eq!(dl.knativeerrorcode, Some(422));
    }

    #[test]
    fn a_timeout_dead_letter_has_no_error_code() {
        let d = delivery(0, BackoffPolicy::Exponential);
        let Next::DeadLetter(dl) = next(&d, 1, &Attempt::TimedOut) else {
            panic!("expected a dead letter");
        };
        assert_eq!(dl.knativeerrorcode, None);
        assert_eq!(dl.knativeerrordata, None);
    }

    #[test]
    fn error_data_is_capped_at_1024_bytes() {
        let d = delivery(0, BackoffPolicy::Exponential);
        let attempt = Attempt::Answered {
            status: 400,
            body: vec![b'x'; 5000],
        };
        let Next::DeadLetter(dl) = next(&d, 1, &attempt) else {
            panic!("expected a dead letter");
        };
        use base64::Engine as _;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(dl.knativeerrordata.unwrap())
            .unwrap();
        assert_eq!(raw.len(), ERROR_DATA_MAX_BYTES);
    }

    #[test]
    fn trigger_delivery_overrides_the_broker_field_by_field() {
        let trigger = DeliverySpec {
            retry: Some(5),
            ..Default::default()
        };
        let broker = DeliverySpec {
            retry: Some(10),
            backoff_delay: Some(Duration::from_millis(200)),
            dead_letter_sink: Some("KafkaSink/dls".into()),
            ..Default::default()
        };
        let local = delivery(4, BackoffPolicy::Linear);
        let d = trigger.or(&broker).resolve(&local);
        assert_eq!(d.retry, 5);
        assert_eq!(d.backoff_delay, Duration::from_millis(200));
        assert_eq!(d.backoff_policy, BackoffPolicy::Linear);
        assert_eq!(d.timeout, Duration::from_secs(10));
        assert_eq!(d.dead_letter_sink.as_deref(), Some("KafkaSink/dls"));
    }
}
