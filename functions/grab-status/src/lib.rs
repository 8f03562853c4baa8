//! grab-status: the read model of every ride (CQRS view). It consumes all ten saga events
//! at `/events/grab-status`, stores the facts each one brings (in the same transaction as
//! its inbox row) and derives grabStatus / paymentStatus / allocationStatus with the pure,
//! order-independent `htaxi_shared::domain::grab_status::derive`. Queries never call
//! another service. It emits nothing, so it has no outbox to flush.

mod api;
mod db;
mod events;

use htaxi_shared::platform::http::{self, RequestContext};
use htaxi_shared::problem::ApiError;
use spin_sdk::http::{Method, Request, Response};

/// The Spin component id.
pub const COMPONENT: &str = "grab-status";

#[spin_sdk::http_component]
fn handle(req: Request) -> Response {
    http::serve(COMPONENT, req, route)
}

/// The routing table: (method, path segments) → handler.
fn route(ctx: &RequestContext, req: &Request) -> Result<Response, ApiError> {
    match (req.method(), http::path_segments(req).as_slice()) {
        (Method::Get, ["grabStatuses"]) => api::list(ctx, req),
        (Method::Get, ["grabStatuses", id]) => api::get(ctx, req, id),
        (_, ["grabStatuses"] | ["grabStatuses", _]) => Err(http::not_allowed("GET")),
        (Method::Post, ["events", "grab-status"]) => events::receive(ctx, req),
        (_, ["events", "grab-status"]) => Err(http::not_allowed("POST")),
        (_, ["health", "grab-status"]) => http::health(ctx, req, || db::open().map(drop)),
        _ => Err(http::no_route(req)),
    }
}
