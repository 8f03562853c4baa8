//! broker: the local-only stand-in for Knative's Kafka Broker, for `spin up` runs (never
//! deployed; in the cluster the real broker does this). It reads the same Trigger and
//! Broker manifests the cluster applies and has the Kafka broker's two halves:
//! - the **ingress**, `POST /broker`: accepts a CloudEvent, stores it with a delivery row
//!   per matching Trigger in one transaction and answers 202 at once — it delivers
//!   nothing, so a producer's after-commit send is one quick call;
//! - the **dispatcher**, `POST /broker/dispatch`: a bounded long-poll that sends due rows
//!   concurrently in binary mode and records the outcomes ([`dispatch`]). Spin gives a
//!   guest no background time it may rely on, so `make up` and the test harness run a
//!   loop of these calls (`scripts/local-dispatch.sh`); `POST /broker/flush` sends what
//!   is due without waiting.
//!
//! Retries follow the Kafka broker's retry, backoff and dead-letter rules (see
//! [`policy`]); a Trigger marked `delivery.order: ordered` gets one event per partition
//! key at a time, in offset order. Operators inspect events, triggers and dead letters
//! and replay dead letters over HTTP.
//!
//! Delivery is at-least-once and unordered, as on Knative: consumers dedupe with their
//! inboxes. Duplicates: every accepted POST is appended to the log (a new offset, like a
//! Kafka record, visible in `GET /broker/events`), but a Trigger that already has the
//! same (source, id) pending or delivered gets no second delivery row. Knative would
//! deliver it again and the consumer's inbox would drop it; locally that is pointless
//! work (a producer re-sends a row whose send timed out or whose lease expired, which
//! would multiply the traffic). A re-publish of a dead-lettered event is queued again. Consumers' duplicate
//! handling is still exercised by retries (a timed-out attempt the subscriber did
//! process is delivered again) and by operator redelivery.

pub mod api;
pub mod config;
pub mod db;
pub mod dispatch;
pub mod duration;
pub mod event;
pub mod manifest;
pub mod policy;

/// This component's id (logs, health).
pub const COMPONENT: &str = "broker";

/// The Spin entry point. Only built for wasm: natively (`cargo test`) the crate is the
/// pure logic and its tests, and the wasi-http export would not link as a shared library.
#[cfg(target_arch = "wasm32")]
mod component {
    use super::COMPONENT;
    use crate::api::{self, Handled, Refusal};
    use htaxi_shared::platform::http::{self, RequestContext};
    use htaxi_shared::problem::ApiError;
    use spin_sdk::http::{OutgoingResponse, Request, Response, ResponseOutparam};
    use spin_sdk::http_component;

    /// Route, answer. Only the dispatcher awaits (its sends are in flight together).
    #[http_component]
    async fn handle(req: Request, out: ResponseOutparam) {
        let response = http::serve_async(COMPONENT, req, |ctx, req| async move {
            finish(&ctx, route(&ctx, &req).await)
        })
        .await;
        send(out, response).await;
    }

    async fn send(out: ResponseOutparam, mut response: Response) {
        let body = std::mem::take(response.body_mut());
        match OutgoingResponse::try_from(response) {
            Ok(outgoing) => {
                if let Err(e) = out.set_with_body(outgoing, body).await {
                    eprintln!("[{COMPONENT}] could not send the response: {e}");
                }
            }
            Err(e) => eprintln!("[{COMPONENT}] could not build the response: {e}"),
        }
    }

    fn finish(ctx: &RequestContext, handled: Handled) -> Result<Response, ApiError> {
        match handled {
            Ok(r) => Ok(r),
            Err(Refusal::Api(e)) => Err(e),
            Err(Refusal::Manifest(e)) => Ok(api::manifest_problem(&e, ctx)),
        }
    }

    async fn route(ctx: &RequestContext, req: &Request) -> Handled {
        match http::path_segments(req).as_slice() {
            ["broker"] => api::ingest(ctx, req),
            ["broker", "dispatch"] => api::dispatch(ctx, req).await,
            ["broker", "flush"] => api::flush(ctx, req).await,
            ["broker", "triggers"] => api::triggers(ctx, req),
            ["broker", "events"] => api::events(ctx, req),
            ["broker", "deadletters"] => api::dead_letters(ctx, req),
            ["broker", "deadletters", id] => api::dead_letter(ctx, req, id),
            ["broker", "deadletters", id, "redeliver"] => api::redeliver(ctx, req, id),
            ["health", "broker"] => api::health(ctx, req),
            _ => Err(http::no_route(req).into()),
        }
    }
}
