//! Queries: `GET /grabStatuses[?phoneNumber=][&limit=]` and `GET /grabStatuses/{grabId}`.

use crate::db;
use htaxi_shared::domain::grab_status::derive;
use htaxi_shared::domain::PhoneNumber;
use htaxi_shared::ids::GrabId;
use htaxi_shared::platform::http::{self, query_param, RequestContext};
use htaxi_shared::problem::ApiError;
use spin_sdk::http::{Request, Response};

const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 500;

/// `GET /grabStatuses`: the most recently updated rides, newest first; `?phoneNumber=`
/// keeps one rider's (matched on digits, so `010-1234-5678` = `01012345678`).
pub fn list(ctx: &RequestContext, req: &Request) -> Result<Response, ApiError> {
    let phone = query_param(req, "phoneNumber")
        .map(|p| PhoneNumber::parse(&p))
        .transpose()?;
    let limit = http::limit_param(req, DEFAULT_LIMIT, MAX_LIMIT)?;
    let db = db::open()?;
    let views = db::list(&db, phone.as_ref().map(PhoneNumber::as_str), limit)?;
    Ok(http::json(200, &views, ctx))
}

/// `GET /grabStatuses/{grabId}`; a ride no event mentioned (or a non-UUID id) → 404.
pub fn get(ctx: &RequestContext, id: &str) -> Result<Response, ApiError> {
    let not_found = || ApiError::NotFound(format!("grab status {id}"));
    let grab = GrabId::parse(id).map_err(|_| not_found())?;
    let db = db::open()?;
    let facts = db::facts(&db, &grab)?.ok_or_else(not_found)?;
    Ok(http::json(200, &derive(&grab, &facts), ctx))
}
