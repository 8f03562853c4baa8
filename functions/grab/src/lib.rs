//! grab: the rider's front door. `POST /grabs` stores a ride request and charges it
//! synchronously through pay (deadline, bounded retries with one Idempotency-Key, and a
//! circuit breaker shared by every instance in SQLite); `POST /fares/quote` prices a trip from the
//! tariff (the grab is charged its quote's fare, never one the client sent);
//! `DELETE /grabs/{id}` cancels it
//! before the ride starts; `/events/grab` folds allocate's facts in. It emits
//! GrabRequested and GrabCancelled through its outbox.

mod api;
mod breaker;
mod config;
mod db;
mod events;
mod pay_client;

use htaxi_shared::platform::http::{self, RequestContext};
use htaxi_shared::problem::ApiError;
use spin_sdk::http::{Method, Request, Response};
use spin_sdk::http_component;

/// The Spin component id (logs, CloudEvent source).
pub const COMPONENT: &str = "grab";

#[http_component]
fn handle(req: Request) -> Response {
    http::serve(COMPONENT, req, route)
}

/// The routing table: (method, path segments) → handler.
fn route(ctx: &RequestContext, req: &Request) -> Result<Response, ApiError> {
    match (req.method(), http::path_segments(req).as_slice()) {
        (Method::Post, ["grabs"]) => api::create_grab(ctx, req),
        (Method::Get, ["grabs"]) => api::list_grabs(ctx, req),
        (_, ["grabs"]) => Err(http::not_allowed("GET, POST")),
        (Method::Get, ["grabs", id]) => api::get_grab(ctx, req, id),
        (Method::Delete, ["grabs", id]) => api::cancel_grab(ctx, req, id),
        (_, ["grabs", _]) => Err(http::not_allowed("GET, DELETE")),
        (Method::Post, ["fares", "quote"]) => api::quote_fare(ctx, req),
        (_, ["fares", "quote"]) => Err(http::not_allowed("POST")),
        (Method::Post, ["events", "grab"]) => events::receive(ctx, req),
        (_, ["events", "grab"]) => Err(http::not_allowed("POST")),
        (Method::Post, ["outbox", "flush", "grab"]) => api::flush_outbox(ctx),
        (_, ["outbox", "flush", "grab"]) => Err(http::not_allowed("POST")),
        (_, ["health", "grab"]) => api::health(ctx, req),
        _ => Err(http::no_route(req)),
    }
}
