//! Request parsing and responses: correlation ids, capped JSON bodies, CloudEvents in,
//! problem+json out. A handler returns `Result<Response, ApiError>`; [`respond`] turns
//! that into the one HTTP answer, so a bare `anyhow::Error` never reaches spin-sdk.

use crate::cloudevent;
use crate::events::Envelope;
use crate::ids::CorrelationId;
use crate::problem::ApiError;
use serde::{de::DeserializeOwned, Serialize};
use spin_sdk::http::{Method, Request, Response};

/// Bodies over this many bytes are refused with 413 before parsing.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The request header carrying the correlation id (echoed on every response).
pub const CORRELATION_HEADER: &str = "x-correlation-id";

/// What every handler knows about the request it serves.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// The component id, for logs.
    pub component: &'static str,
    /// The ride's correlation id (from `X-Correlation-Id`, or generated).
    pub correlation: CorrelationId,
    /// W3C `traceparent`, passed on to events unchanged.
    pub traceparent: Option<String>,
}

impl RequestContext {
    /// Read the correlation id and trace context; an unusable `X-Correlation-Id` is a 400.
    pub fn from_request(component: &'static str, req: &Request) -> Result<Self, ApiError> {
        let correlation = match header(req, CORRELATION_HEADER) {
            Some(raw) => CorrelationId::parse(&raw)
                .map_err(|e| ApiError::invalid("X-Correlation-Id", e.to_string()))?,
            None => CorrelationId::new_random(),
        };
        Ok(Self {
            component,
            correlation,
            traceparent: header(req, "traceparent"),
        })
    }

    /// A context for an event: its correlation id continues the ride's.
    pub fn for_event(&self, env: &Envelope) -> Self {
        Self {
            component: self.component,
            correlation: env.correlation(),
            traceparent: env.traceparent.clone().or_else(|| self.traceparent.clone()),
        }
    }
}

/// A request header as UTF-8 text, if present.
pub fn header(req: &Request, name: &str) -> Option<String> {
    req.header(name)
        .and_then(|v| v.as_str())
        .map(|s| s.trim().to_owned())
}

/// The path's non-empty segments (no query string): what every component's routing table
/// matches, with the method, as `(method, segments)`.
pub fn path_segments(req: &Request) -> Vec<&str> {
    req.path().split('/').filter(|s| !s.is_empty()).collect()
}

/// A routing table's answer for a known path and another method: 405 naming `allow`.
pub fn not_allowed(allow: &'static str) -> ApiError {
    ApiError::MethodNotAllowed { allow }
}

/// A routing table's answer for a path it does not know: 404.
pub fn no_route(req: &Request) -> ApiError {
    ApiError::NotFound(format!("no route for {}", req.path()))
}

/// A query parameter, percent-decoded (`+` is a space).
pub fn query_param(req: &Request, name: &str) -> Option<String> {
    req.query().split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k) == name).then(|| percent_decode(v))
    })
}

/// A list's page size when `?limit=` is absent, and the most it may ask for: the same for
/// every list of every component.
pub const LIST_DEFAULT: u32 = 50;
pub const LIST_MAX: u32 = 500;

/// A page size from `?limit=`: a whole number from 1 to [`LIST_MAX`], [`LIST_DEFAULT`]
/// when absent; anything else is a 422 naming `limit`.
pub fn limit_param(req: &Request) -> Result<u32, ApiError> {
    parse_limit(query_param(req, "limit").as_deref(), LIST_DEFAULT, LIST_MAX)
}

fn parse_limit(raw: Option<&str>, default: u32, max: u32) -> Result<u32, ApiError> {
    match raw {
        None => Ok(default),
        Some(raw) => raw
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| {
                ApiError::invalid("limit", format!("must be a whole number from 1 to {max}"))
            }),
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(hi), Some(lo)) => {
                    out.push(hi * 16 + lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn check_size(req: &Request) -> Result<(), ApiError> {
    let declared = header(req, "content-length").and_then(|v| v.parse::<usize>().ok());
    if declared.unwrap_or(0) > MAX_BODY_BYTES || req.body().len() > MAX_BODY_BYTES {
        return Err(ApiError::PayloadTooLarge {
            limit: MAX_BODY_BYTES,
        });
    }
    Ok(())
}

/// Parse a JSON body into `T`. Not JSON → 400; JSON of the wrong shape (missing field,
/// wrong type, unknown field, invalid value) → 422 naming the problem; over the cap → 413;
/// a content type other than JSON → 415.
pub fn json_body<T: DeserializeOwned>(req: &Request) -> Result<T, ApiError> {
    check_size(req)?;
    if let Some(ct) = header(req, "content-type") {
        let essence = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if essence != "application/json" && !essence.ends_with("+json") {
            return Err(ApiError::UnsupportedMediaType(ct));
        }
    }
    parse_json(req.body())
}

/// The JSON half of [`json_body`]: shape errors name the field by its path
/// (`pickup.lat`, `stops[1]`), syntax errors are 400.
fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                let reason = strip_position(&inner.to_string());
                ApiError::invalid(field_of(&path, &reason), reason)
            }
            _ => ApiError::Malformed(format!("body is not valid JSON: {inner}")),
        }
    })?;
    de.end()
        .map_err(|e| ApiError::Malformed(format!("body is not valid JSON: {e}")))?;
    Ok(value)
}

/// serde_json appends " at line L column C"; the field name says where already.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg.to_owned(),
    }
}

/// The field a shape error is about: the path serde was at, plus the field a
/// "missing field `x`" / "unknown field `x`" message names.
fn field_of(path: &str, reason: &str) -> String {
    let named = ["missing field `", "unknown field `"]
        .iter()
        .find_map(|p| reason.strip_prefix(p))
        .and_then(|rest| rest.split('`').next());
    let base = if path == "." { "" } else { path };
    match (base, named) {
        ("", Some(name)) => name.to_owned(),
        (b, Some(name)) if !b.ends_with(name) => format!("{b}.{name}"),
        ("", None) => "body".to_owned(),
        (b, _) => b.to_owned(),
    }
}

/// Decode the request as a CloudEvent (binary or structured mode); refusals are 400.
pub fn cloudevent(req: &Request) -> Result<Envelope, ApiError> {
    check_size(req)?;
    let headers: Vec<(String, Vec<u8>)> = req
        .headers()
        .map(|(k, v)| (k.to_owned(), v.as_bytes().to_vec()))
        .collect();
    Ok(cloudevent::decode(&headers, req.body().to_vec())?)
}

/// A JSON response with the correlation id echoed.
pub fn json<T: Serialize>(status: u16, body: &T, ctx: &RequestContext) -> Response {
    let bytes = serde_json::to_vec(body).expect("response bodies are plain data");
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header(CORRELATION_HEADER, ctx.correlation.as_str())
        .body(bytes)
        .build()
}

/// An empty response (e.g. 204, 202) with the correlation id echoed.
pub fn empty(status: u16, ctx: &RequestContext) -> Response {
    Response::builder()
        .status(status)
        .header(CORRELATION_HEADER, ctx.correlation.as_str())
        .body(Vec::new())
        .build()
}

/// The header a consumer's answer to a delivered event names what it did with it.
pub const OUTCOME_HEADER: &str = "htaxi-outcome";

/// What a consumer did with a delivered CloudEvent, for the log and [`OUTCOME_HEADER`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventOutcome {
    /// The state changed; the word says how (`applied`, `allocated`, `refunded`...).
    Applied(&'static str),
    /// The inbox had seen this (source, id): nothing changed.
    Duplicate,
    /// Irrelevant in the current state (e.g. a late approval after a cancel).
    Ignored,
    /// Nothing here to apply it to (e.g. `unknown-grab`); it is not an error to retry.
    Skipped(&'static str),
}

impl EventOutcome {
    /// The word sent in [`OUTCOME_HEADER`].
    pub fn word(self) -> &'static str {
        match self {
            EventOutcome::Applied(w) | EventOutcome::Skipped(w) => w,
            EventOutcome::Duplicate => "duplicate",
            EventOutcome::Ignored => "ignored",
        }
    }

    /// Whether state changed (and so the outbox may have something to send).
    pub fn changed(self) -> bool {
        matches!(self, EventOutcome::Applied(_))
    }
}

/// The answer to a handled CloudEvent: `204` with no body (a Knative broker treats a reply
/// body as a new event to route) and the outcome in [`OUTCOME_HEADER`].
pub fn event_handled(ctx: &RequestContext, outcome: EventOutcome) -> Response {
    let mut resp = empty(204, ctx);
    resp.set_header(OUTCOME_HEADER, outcome.word());
    resp
}

/// The problem+json answer for an error. Internal errors are logged with their cause chain.
pub fn problem(err: &ApiError, component: &str, correlation: Option<&str>) -> Response {
    let corr = correlation.unwrap_or("-");
    match err {
        ApiError::Internal(e) => crate::log!(component, corr, "internal error: {e:#}"),
        other => crate::log!(component, corr, "refused {}: {other}", other.status()),
    }
    let body = serde_json::to_vec(&err.problem(correlation)).expect("problem is plain data");
    let mut b = Response::builder();
    b.status(err.status())
        .header("content-type", "application/problem+json");
    if let Some(c) = correlation {
        b.header(CORRELATION_HEADER, c);
    }
    for (k, v) in err.headers() {
        b.header(k, v);
    }
    b.body(body).build()
}

/// Turn a handler's result into the HTTP answer.
pub fn respond(ctx: &RequestContext, result: Result<Response, ApiError>) -> Response {
    result.unwrap_or_else(|e| problem(&e, ctx.component, Some(ctx.correlation.as_str())))
}

/// Run a component's router: build the context (a bad `X-Correlation-Id` is itself a
/// problem+json 400), call `route`, and map any error to problem+json.
pub fn serve(
    component: &'static str,
    req: Request,
    route: impl FnOnce(&RequestContext, &Request) -> Result<Response, ApiError>,
) -> Response {
    let ctx = match RequestContext::from_request(component, &req) {
        Ok(ctx) => ctx,
        Err(e) => return problem(&e, component, None),
    };
    let result = route(&ctx, &req);
    respond(&ctx, result)
}

/// [`serve`] for a route that awaits (the broker's dispatcher keeps several outbound
/// requests in flight); the route gets its own copy of the context and the request.
pub async fn serve_async<F>(
    component: &'static str,
    req: Request,
    route: impl FnOnce(RequestContext, Request) -> F,
) -> Response
where
    F: std::future::Future<Output = Result<Response, ApiError>>,
{
    let ctx = match RequestContext::from_request(component, &req) {
        Ok(ctx) => ctx,
        Err(e) => return problem(&e, component, None),
    };
    let result = route(ctx.clone(), req).await;
    respond(&ctx, result)
}

/// `GET /health/<id>`: liveness/readiness for Knative probes. Answers 200 once the
/// component's database opens and its migrations are applied.
pub fn health(
    ctx: &RequestContext,
    req: &Request,
    check: impl FnOnce() -> anyhow::Result<()>,
) -> Result<Response, ApiError> {
    if !matches!(req.method(), Method::Get | Method::Head) {
        return Err(ApiError::MethodNotAllowed { allow: "GET, HEAD" });
    }
    check()?;
    Ok(json(
        200,
        &serde_json::json!({ "status": "ok", "component": ctx.component }),
        ctx,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_size_is_a_whole_number_within_its_bounds() {
        assert_eq!(parse_limit(None, 50, 500).unwrap(), 50);
        assert_eq!(parse_limit(Some(" 7 "), 50, 500).unwrap(), 7);
        assert_eq!(parse_limit(Some("500"), 50, 500).unwrap(), 500);
        for bad in ["0", "501", "-1", "ten", "", "1.5"] {
            let e = parse_limit(Some(bad), 50, 500).unwrap_err();
            assert_eq!(e.status(), 422, "{bad}");
            assert_eq!(e.problem(None).field.as_deref(), Some("limit"));
        }
    }
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Point {
        lat: f64,
        lng: f64,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    #[allow(dead_code)]
    struct Ride {
        phone: String,
        pickup: Point,
        stops: Vec<Point>,
    }

    fn field(body: &str) -> (u16, Option<String>, String) {
        let e = parse_json::<Ride>(body.as_bytes()).unwrap_err();
        let p = e.problem(None);
        (e.status(), p.field, p.detail)
    }

    #[test]
    fn a_wrong_type_names_the_nested_field() {
        let (status, f, detail) =
            field(r#"{"phone":"010","pickup":{"lat":"x","lng":1},"stops":[]}"#);
        assert_eq!((status, f.as_deref()), (422, Some("pickup.lat")));
        assert!(!detail.contains("line 1"), "{detail}");
    }

    #[test]
    fn a_missing_field_is_named_with_its_parent() {
        assert_eq!(
            field(r#"{"phone":"010","pickup":{"lat":1},"stops":[]}"#)
                .1
                .as_deref(),
            Some("pickup.lng")
        );
        assert_eq!(
            field(r#"{"pickup":{"lat":1,"lng":2},"stops":[]}"#)
                .1
                .as_deref(),
            Some("phone")
        );
    }

    #[test]
    fn unknown_fields_and_list_items_are_named() {
        assert_eq!(
            field(r#"{"phone":"010","pickup":{"lat":1,"lng":2},"stops":[],"tip":5}"#)
                .1
                .as_deref(),
            Some("tip")
        );
        assert_eq!(
            field(r#"{"phone":"010","pickup":{"lat":1,"lng":2},"stops":[{"lat":1,"lng":true}]}"#)
                .1
                .as_deref(),
            Some("stops[0].lng")
        );
    }

    #[test]
    fn syntax_errors_and_trailing_garbage_are_400() {
        assert_eq!(field(r#"{"phone":"#).0, 400);
        assert_eq!(
            field(r#"{"phone":"0","pickup":{"lat":1,"lng":2},"stops":[]} x"#).0,
            400
        );
    }
}
