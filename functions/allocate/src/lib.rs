//! allocate: the driver side of the saga. Drivers register taxis (`POST /taxis`), report
//! where they are and go on or off duty; a `PaymentApproved` event offers the ride to the
//! nearest available, on-duty taxi within `allocation_radius_m` (`TaxiOffered`, with a
//! deadline); the driver accepts (`TaxiAllocated`) or declines, and a decline or the
//! deadline (swept by the periodic flush) passes the ride to the next nearest taxi, until
//! `offer_max_count` offers or nobody is left (`AllocationFailed`). A `GrabCancelled`
//! withdraws the offer or releases the taxi; `POST /allocations/{id}/pickup` starts the
//! ride and `POST /allocations/{id}/complete` ends it, freeing the taxi. Every state change commits
//! with its outbox row and (for events) its inbox row; decisions live in
//! `htaxi_shared::domain::allocation`.

mod api;
mod config;
mod db;
mod events;

use htaxi_shared::platform::http::{self, RequestContext};
use htaxi_shared::problem::ApiError;
use spin_sdk::http::{Method, Request, Response};

/// The Spin component id (and CloudEvent source `/htaxi/allocate`).
pub const COMPONENT: &str = "allocate";

#[spin_sdk::http_component]
fn handle(req: Request) -> Response {
    http::serve(COMPONENT, req, route)
}

/// The current time at millisecond precision (what is stored, so answers match reads).
pub fn now() -> chrono::DateTime<chrono::Utc> {
    use chrono::SubsecRound;
    chrono::Utc::now().trunc_subsecs(3)
}

/// The routing table: (method, path segments) → handler.
fn route(ctx: &RequestContext, req: &Request) -> Result<Response, ApiError> {
    match (req.method(), http::path_segments(req).as_slice()) {
        (Method::Get, ["taxis"]) => api::list_taxis(ctx, req),
        (Method::Post, ["taxis"]) => api::register_taxi(ctx, req),
        (_, ["taxis"]) => Err(http::not_allowed("GET, POST")),
        (Method::Get, ["taxis", "nearby"]) => api::nearby_taxis(ctx, req),
        (_, ["taxis", "nearby"]) => Err(http::not_allowed("GET")),
        (Method::Get, ["taxis", id]) => api::get_taxi(ctx, req, id),
        (_, ["taxis", _]) => Err(http::not_allowed("GET")),
        (Method::Put, ["taxis", id, "location"]) => api::move_taxi(ctx, req, id),
        (Method::Put, ["taxis", id, "duty"]) => api::set_duty(ctx, req, id),
        (_, ["taxis", _, "location" | "duty"]) => Err(http::not_allowed("PUT")),
        (Method::Get, ["allocations"]) => api::list_allocations(ctx, req),
        (_, ["allocations"]) => Err(http::not_allowed("GET")),
        (Method::Get, ["allocations", id]) => api::get_allocation(ctx, req, id),
        (_, ["allocations", _]) => Err(http::not_allowed("GET")),
        (Method::Post, ["allocations", id, "accept"]) => {
            api::driver_action(ctx, req, id, api::DriverAction::Accept)
        }
        (Method::Post, ["allocations", id, "decline"]) => {
            api::driver_action(ctx, req, id, api::DriverAction::Decline)
        }
        (Method::Post, ["allocations", id, "pickup"]) => {
            api::driver_action(ctx, req, id, api::DriverAction::Pickup)
        }
        (Method::Post, ["allocations", id, "complete"]) => {
            api::driver_action(ctx, req, id, api::DriverAction::Complete)
        }
        (_, ["allocations", _, "accept" | "decline" | "pickup" | "complete"]) => {
            Err(http::not_allowed("POST"))
        }
        (Method::Post, ["events", "allocate"]) => events::receive(ctx, req),
        (_, ["events", "allocate"]) => Err(http::not_allowed("POST")),
        (Method::Post, ["outbox", "flush", "allocate"]) => api::flush_outbox(ctx),
        (_, ["outbox", "flush", "allocate"]) => Err(http::not_allowed("POST")),
        (_, ["health", "allocate"]) => http::health(ctx, req, || db::open().map(drop)),
        _ => Err(http::no_route(req)),
    }
}
