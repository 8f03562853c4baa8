//! pay: charges a grab once (idempotent per grab) against a limit, answering grab's
//! synchronous `POST /payments`, and refunds it at most once when the ride is called off
//! (`GrabCancelled` / `AllocationFailed` at `/events/pay`). Every fact it records commits
//! with its outbox row (PaymentApproved, PaymentRejected, PaymentRefunded).

mod api;
mod config;
mod db;
mod events;

use htaxi_shared::platform::http::{self, RequestContext};
use htaxi_shared::problem::ApiError;
use spin_sdk::http::{Method, Request, Response};
use spin_sdk::http_component;

/// The Spin component id (logs, CloudEvent source).
pub const COMPONENT: &str = "pay";

#[http_component]
fn handle(req: Request) -> Response {
    http::serve(COMPONENT, req, route)
}

/// Route on (path segments, method); a known path with another method is 405 with `Allow`.
fn route(ctx: &RequestContext, req: &Request) -> Result<Response, ApiError> {
    let segments = http::path_segments(req);
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let method = req.method();
    match segments.as_slice() {
        ["payments"] => match method {
            Method::Post => api::request_payment(ctx, req),
            Method::Get => api::find_payment(ctx, req),
            _ => Err(ApiError::MethodNotAllowed { allow: "GET, POST" }),
        },
        ["payments", id] => match method {
            Method::Get => api::get_payment(ctx, req, id),
            _ => Err(ApiError::MethodNotAllowed { allow: "GET" }),
        },
        ["events", "pay"] => match method {
            Method::Post => events::receive(ctx, req),
            _ => Err(ApiError::MethodNotAllowed { allow: "POST" }),
        },
        ["outbox", "flush", "pay"] => match method {
            Method::Post => api::flush_outbox(ctx),
            _ => Err(ApiError::MethodNotAllowed { allow: "POST" }),
        },
        ["health", "pay"] => api::health(ctx, req),
        _ => Err(ApiError::NotFound(format!("no route for {}", req.path()))),
    }
}
