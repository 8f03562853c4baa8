//! The broker's HTTP handlers: ingress, dispatch (and flush), inspection, redelivery,
//! health. Each one reads parse → load → persist → respond. Only dispatch makes
//! outbound calls: the ingress and redelivery store rows and answer at once.

use crate::config::{Config, MANIFEST_DIR};
use crate::db;
use crate::dispatch;
use crate::event::{self, StoredEvent};
use crate::manifest::{self, ManifestError, Wiring};
use htaxi_shared::platform::db::Db;
use htaxi_shared::platform::http::{self, RequestContext};
use htaxi_shared::problem::{ApiError, Problem};
use serde_json::json;
use spin_sdk::http::{Method, Request, Response};
use std::time::Duration;

/// `POST /broker/dispatch` waits this long for new rows by default (`?waitMs=`), and
/// at most [`MAX_WAIT_MS`]: a loop of calls stays responsive without spinning.
const DEFAULT_WAIT_MS: u64 = 500;
const MAX_WAIT_MS: u64 = 900;
/// Attempts one dispatch or flush call makes at most.
const MAX_ATTEMPTS: usize = 2_000;

/// Why a broker request failed: an ordinary API error, or an unusable manifest (a 500
/// that names the file: the operator must fix the YAML, and nothing is stored).
#[derive(Debug)]
pub enum Refusal {
    Api(ApiError),
    Manifest(ManifestError),
}

impl<E: Into<ApiError>> From<E> for Refusal {
    fn from(e: E) -> Self {
        Refusal::Api(e.into())
    }
}

/// A handler's answer.
pub type Handled = Result<Response, Refusal>;

/// The 500 problem+json for a bad manifest, naming the file.
pub fn manifest_problem(e: &ManifestError, ctx: &RequestContext) -> Response {
    htaxi_shared::log!(crate::COMPONENT, ctx.correlation, "invalid manifest: {e}");
    let problem = Problem {
        problem_type: "https://htaxi.dev/problems/invalid-manifest".to_owned(),
        title: "Invalid Knative manifest",
        status: 500,
        detail: format!("{MANIFEST_DIR}/{e}"),
        field: Some(e.file.clone()),
        correlation_id: Some(ctx.correlation.as_str().to_owned()),
    };
    Response::builder()
        .status(500)
        .header("content-type", "application/problem+json")
        .header(http::CORRELATION_HEADER, ctx.correlation.as_str())
        .body(serde_json::to_vec(&problem).expect("problem is plain data"))
        .build()
}

fn open() -> Result<Db, Refusal> {
    Ok(Db::open("broker", db::MIGRATIONS)?)
}

/// How long a wiring loaded from the manifests serves the ingress and the dispatcher
/// before they are read again: reading and parsing every Trigger file through WASI
/// costs 10-60 ms, which would otherwise be paid by every `POST /broker`. An edited
/// Trigger takes effect within this time (Knative's own Trigger reconciliation is
/// eventual too).
const WIRING_TTL_MS: i64 = 1_000;

/// The wiring: the broker database's copy while it is younger than [`WIRING_TTL_MS`],
/// else read from the manifests (and the copy refreshed).
fn wiring(db: &Db) -> Result<Wiring, Refusal> {
    let now = dispatch::now_ms();
    if let Some(w) = db::cached_wiring(db, now - WIRING_TTL_MS)? {
        return Ok(w);
    }
    fresh_wiring(db)
}

/// The wiring read from the manifests now (what the inspection routes show), stored as
/// the broker's copy.
fn fresh_wiring(db: &Db) -> Result<Wiring, Refusal> {
    let w = read_wiring()?;
    db::cache_wiring(db, &w, dispatch::now_ms())?;
    Ok(w)
}

/// Read every `*.yaml`/`*.yml` under the manifest directory, in name order.
fn read_wiring() -> Result<Wiring, Refusal> {
    let config = Config::load()?;
    let dir_error = |e: std::io::Error| {
        Refusal::Manifest(ManifestError {
            file: MANIFEST_DIR.to_owned(),
            reason: format!("cannot read the manifest directory: {e}"),
        })
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(MANIFEST_DIR).map_err(dir_error)? {
        let entry = entry.map_err(dir_error)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !(name.ends_with(".yaml") || name.ends_with(".yml")) {
            continue;
        }
        let text = std::fs::read_to_string(entry.path()).map_err(|e| {
            Refusal::Manifest(ManifestError {
                file: name.clone(),
                reason: format!("cannot read: {e}"),
            })
        })?;
        files.push((name, text));
    }
    files.sort();
    manifest::load(&files, &config.fallback_delivery()).map_err(Refusal::Manifest)
}

fn only(req: &Request, method: Method, allow: &'static str) -> Result<(), Refusal> {
    if *req.method() == method {
        Ok(())
    } else {
        Err(ApiError::MethodNotAllowed { allow }.into())
    }
}

/// `POST /broker`: accept a CloudEvent (binary or structured), store it with one
/// delivery row per matching Trigger in one transaction and answer 202: delivery is the
/// dispatcher's job. A Trigger that already has the same (source, id) pending or
/// delivered gets no second row (see the crate docs).
pub fn ingest(ctx: &RequestContext, req: &Request) -> Handled {
    only(req, Method::Post, "POST")?;
    let envelope = http::cloudevent(req)?;
    let headers: Vec<(String, String)> = req
        .headers()
        .map(|(k, v)| {
            (
                k.to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let event = StoredEvent {
        extras: event::extra_attributes(&headers, req.body()),
        envelope,
    };
    let ctx = ctx.for_event(&event.envelope);
    let db = open()?;
    let wiring = wiring(&db)?;
    let now = dispatch::now_ms();
    let (seq, queued, coalesced) = db.transaction(|tx| {
        let seq = db::insert_event(tx, &event)?;
        let (mut queued, mut coalesced) = (Vec::new(), Vec::new());
        for t in wiring.matching(&event) {
            let route = db::Route {
                trigger: &t.name,
                subscriber: &t.subscriber,
                ordered: t.delivery_order == "ordered",
                partition_key: event.envelope.partition_key.as_deref(),
            };
            if db::queue_delivery(tx, seq, &event.envelope, &route, now)? {
                queued.push(t.name.clone());
            } else {
                coalesced.push(t.name.clone());
            }
        }
        Ok::<_, anyhow::Error>((seq, queued, coalesced))
    })?;
    htaxi_shared::log!(
        crate::COMPONENT,
        ctx.correlation,
        "accepted {} {} from {} at offset {seq}: triggers [{}]{}",
        event.envelope.event_type,
        event.envelope.id,
        event.envelope.source,
        queued.join(", "),
        if coalesced.is_empty() {
            String::new()
        } else {
            format!(
                ", already queued or delivered for [{}]",
                coalesced.join(", ")
            )
        }
    );
    Ok(http::json(
        202,
        &json!({
            "offset": seq,
            "id": event.envelope.id,
            "source": event.envelope.source,
            "type": event.envelope.event_type,
            "triggers": queued,
            "alreadyQueued": coalesced,
        }),
        &ctx,
    ))
}

/// `POST /broker/dispatch?waitMs=`: the dispatcher. Sends every due row with several
/// requests in flight and records the outcomes; while nothing is due it keeps looking
/// for new rows until `waitMs` (default 500, at most 900) has passed, then answers with
/// what it did. `make up` and the test harness call it in a loop. Takes any body.
pub async fn dispatch(ctx: &RequestContext, req: &Request) -> Handled {
    only(req, Method::Post, "POST")?;
    let wait_ms = match http::query_param(req, "waitMs") {
        None => DEFAULT_WAIT_MS,
        Some(w) => match w.parse::<u64>() {
            Ok(n) if n <= MAX_WAIT_MS => n,
            _ => {
                return Err(ApiError::invalid("waitMs", format!("must be 0-{MAX_WAIT_MS}")).into())
            }
        },
    };
    deliver(ctx, Duration::from_millis(wait_ms), "dispatch").await
}

/// `POST /broker/flush`: send what is due now and answer (a dispatch that does not
/// wait; the local stand-in for the Kafka broker's retry timer). Takes any body.
pub async fn flush(ctx: &RequestContext, req: &Request) -> Handled {
    only(req, Method::Post, "POST")?;
    deliver(ctx, Duration::ZERO, "flush").await
}

async fn deliver(ctx: &RequestContext, wait: Duration, what: &str) -> Handled {
    let db = open()?;
    let wiring = wiring(&db)?;
    let window = dispatch::Window {
        wait,
        max_attempts: MAX_ATTEMPTS,
    };
    let report = dispatch::run(&db, &wiring, window).await?;
    if report.did_something() {
        htaxi_shared::log!(
            crate::COMPONENT,
            ctx.correlation,
            "{what}: {} delivered, {} retried, {} dead-lettered, {} pending",
            report.delivered,
            report.retried,
            report.dead_lettered,
            report.pending
        );
    }
    Ok(http::json(200, &report, ctx))
}

/// `GET /broker/triggers`: what the broker loaded.
pub fn triggers(ctx: &RequestContext, req: &Request) -> Handled {
    only(req, Method::Get, "GET")?;
    operator(req, "the broker's triggers")?;
    Ok(http::json(200, &fresh_wiring(&open()?)?, ctx))
}

/// `GET /broker/events?status=pending|delivered|deadlettered&type=&limit=`.
pub fn events(ctx: &RequestContext, req: &Request) -> Handled {
    only(req, Method::Get, "GET")?;
    operator(req, "the broker's events")?;
    let status = http::query_param(req, "status").filter(|s| !s.is_empty());
    if let Some(s) = &status {
        if ![db::PENDING, db::DELIVERED, db::DEAD_LETTERED].contains(&s.as_str()) {
            return Err(
                ApiError::invalid("status", "must be pending, delivered or deadlettered").into(),
            );
        }
    }
    let event_type = http::query_param(req, "type").filter(|s| !s.is_empty());
    let limit = i64::from(http::limit_param(req)?);
    let db = open()?;
    let list = db::events(&db, status.as_deref(), event_type.as_deref(), limit)?;
    Ok(http::json(200, &list, ctx))
}

/// `GET /broker/deadletters`.
pub fn dead_letters(ctx: &RequestContext, req: &Request) -> Handled {
    only(req, Method::Get, "GET")?;
    operator(req, "dead letters")?;
    let limit = i64::from(http::limit_param(req)?);
    let db = open()?;
    Ok(http::json(200, &db::dead_letters(&db, limit)?, ctx))
}

fn delivery_id(raw: &str) -> Result<i64, Refusal> {
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::NotFound(format!("dead letter {raw}")).into())
}

/// `GET /broker/deadletters/{id}` (any delivery row, by id).
pub fn dead_letter(ctx: &RequestContext, req: &Request, raw_id: &str) -> Handled {
    only(req, Method::Get, "GET")?;
    operator(req, "dead letters")?;
    let id = delivery_id(raw_id)?;
    let db = open()?;
    let view =
        db::delivery(&db, id)?.ok_or_else(|| ApiError::NotFound(format!("delivery {id}")))?;
    Ok(http::json(200, &view, ctx))
}

/// `POST /broker/deadletters/{id}/redeliver`: the operator replays a dead letter. It is
/// queued as a fresh delivery (attempts reset), due now, for the dispatcher.
pub fn redeliver(ctx: &RequestContext, req: &Request, raw_id: &str) -> Handled {
    only(req, Method::Post, "POST")?;
    operator(req, "redelivering a dead letter")?;
    let id = delivery_id(raw_id)?;
    let db = open()?;
    let requeued = db.transaction(|tx| db::redeliver(tx, id, dispatch::now_ms()))?;
    let view =
        db::delivery(&db, id)?.ok_or_else(|| ApiError::NotFound(format!("dead letter {id}")))?;
    if !requeued {
        return Err(ApiError::Conflict(format!(
            "delivery {id} is {}, only dead letters can be redelivered",
            view.status
        ))
        .into());
    }
    htaxi_shared::log!(
        crate::COMPONENT,
        ctx.correlation,
        "redelivering dead letter {id} (offset {}) to {}",
        view.event_seq,
        view.subscriber
    );
    Ok(http::json(202, &view, ctx))
}

/// Operator routes need an operator's bearer token (401 without a valid one, 403 for
/// another role).
fn operator(req: &Request, what: &str) -> Result<(), Refusal> {
    htaxi_shared::auth::authenticate(req)?.operator(what)?;
    Ok(())
}

/// `GET /health/broker`: 200 when the manifests load and the database opens.
pub fn health(ctx: &RequestContext, req: &Request) -> Handled {
    if !matches!(req.method(), Method::Get | Method::Head) {
        return Err(ApiError::MethodNotAllowed { allow: "GET, HEAD" }.into());
    }
    let db = open()?;
    let wiring = fresh_wiring(&db)?;
    let pending = db::count_pending(&db)?;
    Ok(http::json(
        200,
        &json!({
            "status": "ok",
            "component": ctx.component,
            "brokerFile": wiring.broker_file,
            "triggers": wiring.triggers.len(),
            "pending": pending,
        }),
        ctx,
    ))
}
