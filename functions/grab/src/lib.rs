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

/// Route on (path segments, method); a known path with another method is 405 with `Allow`.
fn route(ctx: &RequestContext, req: &Request) -> Result<Response, ApiError> {
    let segments = http::path_segments(req);
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let method = req.method();
    match segments.as_slice() {
        ["grabs"] => match method {
            Method::Post => api::create_grab(ctx, req),
            Method::Get => api::list_grabs(ctx, req),
            _ => Err(ApiError::MethodNotAllowed { allow: "GET, POST" }),
        },
        ["grabs", id] => match method {
            Method::Get => api::get_grab(ctx, req, id),
            Method::Delete => api::cancel_grab(ctx, req, id),
            _ => Err(ApiError::MethodNotAllowed {
                allow: "GET, DELETE",
            }),
        },
        ["fares", "quote"] => match method {
            Method::Post => api::quote_fare(ctx, req),
            _ => Err(ApiError::MethodNotAllowed { allow: "POST" }),
        },
        ["events", "grab"] => match method {
            Method::Post => events::receive(ctx, req),
            _ => Err(ApiError::MethodNotAllowed { allow: "POST" }),
        },
        ["outbox", "flush", "grab"] => match method {
            Method::Post => api::flush_outbox(ctx),
            _ => Err(ApiError::MethodNotAllowed { allow: "POST" }),
        },
        ["health", "grab"] => api::health(ctx, req),
        _ => Err(ApiError::NotFound(format!("no route for {}", req.path()))),
    }
}
