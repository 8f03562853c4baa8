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

/// The routing table: (method, path segments) → handler.
fn route(ctx: &RequestContext, req: &Request) -> Result<Response, ApiError> {
    match (req.method(), http::path_segments(req).as_slice()) {
        (Method::Post, ["payments"]) => api::request_payment(ctx, req),
        (Method::Get, ["payments"]) => api::find_payment(ctx, req),
        (_, ["payments"]) => Err(http::not_allowed("GET, POST")),
        (Method::Get, ["payments", id]) => api::get_payment(ctx, req, id),
        (_, ["payments", _]) => Err(http::not_allowed("GET")),
        (Method::Post, ["events", "pay"]) => events::receive(ctx, req),
        (_, ["events", "pay"]) => Err(http::not_allowed("POST")),
        (Method::Post, ["outbox", "flush", "pay"]) => api::flush_outbox(ctx),
        (_, ["outbox", "flush", "pay"]) => Err(http::not_allowed("POST")),
        (_, ["health", "pay"]) => api::health(ctx, req),
        _ => Err(http::no_route(req)),
    }
}
