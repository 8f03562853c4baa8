//! The synchronous call to pay: `POST {pay_url}/payments` with a per-attempt deadline and
//! bounded retries that reuse the same `Idempotency-Key` (= grab id), so an approval whose
//! answer timed out is learned on the next attempt (pay answers the original outcome).

use crate::config::Config;
use htaxi_shared::domain::grab::{
    pay_retry_backoff_ms, read_pay_answer, Grab, PayAnswer, PayOutcome,
};
use htaxi_shared::platform::client::{self, OutboundRequest, OutboundResponse, SendFailure};
use htaxi_shared::platform::http::RequestContext;
use std::time::Duration;

/// How the call went.
#[derive(Debug, Clone)]
pub struct PayCall {
    /// What pay decided, or that it could not be reached.
    pub outcome: PayOutcome,
    /// Attempts made.
    pub attempts: u32,
}

/// Charge the grab's fare, making at most `max_attempts` attempts.
pub fn charge(config: &Config, ctx: &RequestContext, grab: &Grab, max_attempts: u32) -> PayCall {
    let body = serde_json::json!({
        "grabId": grab.id,
        "amount": grab.estimated_fee,
        "phoneNumber": grab.phone_number,
        "startingPoint": grab.starting_point,
        "destination": grab.destination,
    });
    let mut headers = vec![
        ("content-type".to_owned(), "application/json".to_owned()),
        (
            "authorization".to_owned(),
            format!("Bearer {}", config.pay_api_key),
        ),
        ("idempotency-key".to_owned(), grab.id.to_string()),
        ("x-correlation-id".to_owned(), ctx.correlation.to_string()),
    ];
    if let Some(tp) = &ctx.traceparent {
        headers.push(("traceparent".to_owned(), tp.clone()));
    }
    let request = OutboundRequest {
        method: "POST",
        url: format!("{}/payments", config.pay_url),
        headers,
        body: serde_json::to_vec(&body).expect("the payment request is plain data"),
        timeout: config.pay_timeout,
    };

    let mut last_error = String::new();
    for attempt in 1..=max_attempts.max(1) {
        if attempt > 1 {
            std::thread::sleep(Duration::from_millis(pay_retry_backoff_ms(attempt)));
        }
        match classify(client::send(&request)) {
            PayAnswer::Decided(outcome) => {
                return PayCall {
                    outcome,
                    attempts: attempt,
                }
            }
            PayAnswer::GiveUp(detail) => {
                return PayCall {
                    outcome: PayOutcome::Unavailable { detail },
                    attempts: attempt,
                }
            }
            PayAnswer::Retry(detail) => {
                htaxi_shared::log!(
                    crate::COMPONENT,
                    ctx.correlation,
                    "pay attempt {attempt}/{max_attempts} for grab {} failed: {detail}",
                    grab.id
                );
                last_error = detail;
            }
        }
    }
    PayCall {
        outcome: PayOutcome::Unavailable {
            detail: format!("{last_error} (after {max_attempts} attempt(s))"),
        },
        attempts: max_attempts.max(1),
    }
}

/// Classify one attempt's result: transport failures here, pay's answers in the domain.
fn classify(result: Result<OutboundResponse, SendFailure>) -> PayAnswer {
    match result {
        Ok(resp) => read_pay_answer(resp.status, &resp.body),
        Err(e @ (SendFailure::TimedOut(_) | SendFailure::Transport(_))) => {
            PayAnswer::Retry(e.to_string())
        }
        Err(e @ (SendFailure::Denied | SendFailure::InvalidUrl(_))) => {
            PayAnswer::GiveUp(e.to_string())
        }
    }
}
