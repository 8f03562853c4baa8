//! console: the rider, driver and operations web app (a Vite build of `functions/console/web`)
//! served from Spin `files` under `/console/...`. Hashed assets are cached for a year,
//! `index.html` is revalidated on every load, and every answer carries a strict
//! Content-Security-Policy: the app loads nothing that is not its own. The app talks to
//! the other components' public routes; this component owns no database and emits nothing.
//!
//! Locally, `make up` sets `console_dev_signing_key` to its throw-away key and
//! `POST /console/dev/token` signs a token for a chosen role (the same key and claims as
//! `scripts/token`). No cluster manifest sets it, so there the route is a 404 and the
//! token comes from the identity provider.

pub mod assets;
pub mod dev_token;

use htaxi_shared::platform::http::{self, RequestContext};
use htaxi_shared::problem::ApiError;
use spin_sdk::http::{Method, Request, Response};

/// The Spin component id.
pub const COMPONENT: &str = "console";

/// The Spin entry point. Only built for wasm: natively (`cargo test`) the crate is its
/// pure logic and tests, and the wasi-http export would not link as a shared library.
#[cfg(target_arch = "wasm32")]
#[spin_sdk::http_component]
fn handle(req: Request) -> Response {
    let mut resp = http::serve(COMPONENT, req, route);
    // Problem answers too: nothing from this origin may be framed or run inline script.
    for (name, value) in assets::SECURITY_HEADERS {
        resp.set_header(*name, *value);
    }
    resp
}

/// The routing table: (method, path segments) → handler.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
fn route(ctx: &RequestContext, req: &Request) -> Result<Response, ApiError> {
    match (req.method(), http::path_segments(req).as_slice()) {
        (Method::Post, ["console", "dev", "token"]) => dev_token::issue(ctx, req),
        (_, ["console", "dev", "token"]) => Err(http::not_allowed("POST")),
        (Method::Get | Method::Head, ["console", rest @ ..]) => assets::serve(ctx, req, rest),
        (_, ["console", ..]) => Err(http::not_allowed("GET, HEAD")),
        (_, ["health", "console"]) => http::health(ctx, req, assets::check_index),
        _ => Err(http::no_route(req)),
    }
}
