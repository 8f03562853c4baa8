//! Queries: `GET /grabStatuses[?phoneNumber=][&limit=]` and `GET /grabStatuses/{grabId}`.

use crate::db;
use htaxi_shared::auth;
use htaxi_shared::domain::grab_status::derive;
use htaxi_shared::domain::PhoneNumber;
use htaxi_shared::ids::GrabId;
use htaxi_shared::platform::http::{self, query_param, RequestContext};
use htaxi_shared::problem::ApiError;
use spin_sdk::http::{Request, Response};

/// `GET /grabStatuses`: the most recently updated rides, newest first; `?phoneNumber=`
/// keeps one rider's (matched on digits, so `010-1234-5678` = `01012345678`). A rider
/// sees only their own; an operator every rider's.
pub fn list(ctx: &RequestContext, req: &Request) -> Result<Response, ApiError> {
    let who = auth::authenticate(req)?;
    let asked = query_param(req, "phoneNumber")
        .map(|p| PhoneNumber::parse(&p))
        .transpose()?;
    let phone = who.rides_listed(asked)?;
    let limit = http::limit_param(req)?;
    let db = db::open()?;
    let views = db::list(&db, phone.as_ref().map(PhoneNumber::as_str), limit)?;
    Ok(http::json(200, &views, ctx))
}

/// `GET /grabStatuses/{grabId}`; a ride no event mentioned (or a non-UUID id), or
/// another rider's → 404.
pub fn get(ctx: &RequestContext, req: &Request, id: &str) -> Result<Response, ApiError> {
    let who = auth::authenticate(req)?;
    let not_found = || ApiError::NotFound(format!("grab status {id}"));
    let grab = GrabId::parse(id).map_err(|_| not_found())?;
    let db = db::open()?;
    let facts = db::facts(&db, &grab)?.ok_or_else(not_found)?;
    let view = derive(&grab, &facts);
    who.read_ride(view.phone_number.as_ref(), not_found())?;
    Ok(http::json(200, &view, ctx))
}
