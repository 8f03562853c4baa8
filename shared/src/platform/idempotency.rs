//! `Idempotency-Key` support, after the IETF HTTPAPI draft "The Idempotency-Key HTTP
//! Header Field" and Stripe's documented behaviour: a (scope, key) is **reserved in the
//! same transaction that creates the resource**, before anything is charged, and names
//! that resource and the request's fingerprint.
//!
//! | the key is…                                   | a request with it gets                    |
//! |-----------------------------------------------|-------------------------------------------|
//! | new, or expired (`ttl`)                       | reserved for a new resource; runs          |
//! | reserved, first request still running         | `409` + `Retry-After`; nothing stored      |
//! | reserved, its lease lapsed (the first crashed) | the same resource, resumed                 |
//! | done                                          | the stored answer, replayed               |
//! | used with another method, path or body        | `422`                                     |
//!
//! A `5xx` final answer releases the key (nothing of it was kept: a retry really retries).
//! The pure state machine is [`decide`] and [`completion`]; the rest runs it on SQLite.

use super::config;
use super::db::{int, text, Db};
use super::http::header;
use crate::problem::ApiError;
use anyhow::Context;
use spin_sdk::http::{Request, Response};
use spin_sdk::sqlite3::Value;

/// The request header.
pub const HEADER: &str = "idempotency-key";

/// How long a reservation and a finished key last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// How long a running request holds its key (`idempotency_lease_ms`); a retry after
    /// that resumes the work. Must outlast the longest request of the route.
    pub lease_ms: i64,
    /// How long a key is remembered (`idempotency_ttl_secs`, 24 h by default).
    pub ttl_ms: i64,
}

impl Policy {
    /// Read `idempotency_lease_ms` and `idempotency_ttl_secs`; both must be positive.
    pub fn load() -> anyhow::Result<Policy> {
        let lease_ms: i64 = config::parsed("idempotency_lease_ms")?;
        let ttl_secs: i64 = config::parsed("idempotency_ttl_secs")?;
        if lease_ms <= 0 || ttl_secs <= 0 {
            anyhow::bail!(
                "invalid idempotency settings: idempotency_lease_ms={lease_ms} (>0), idempotency_ttl_secs={ttl_secs} (>0)"
            );
        }
        Ok(Policy {
            lease_ms,
            ttl_ms: ttl_secs.saturating_mul(1000),
        })
    }
}

/// A stored answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl StoredResponse {
    /// Capture a response for storing.
    pub fn from_response(resp: &Response) -> Self {
        Self {
            status: *resp.status(),
            headers: resp
                .headers()
                .filter(|(k, _)| !k.eq_ignore_ascii_case("x-correlation-id"))
                .map(|(k, v)| (k.to_owned(), v.as_str().unwrap_or_default().to_owned()))
                .collect(),
            body: resp.body().to_vec(),
        }
    }

    /// Replay it, marked with `idempotent-replayed: true`.
    pub fn into_response(self, correlation: &str) -> Response {
        let mut b = Response::builder();
        b.status(self.status);
        for (k, v) in self.headers {
            b.header(k, v);
        }
        b.header("idempotent-replayed", "true")
            .header("x-correlation-id", correlation);
        b.body(self.body).build()
    }
}

/// What is known of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    /// The fingerprint of the request that reserved it.
    pub request_hash: String,
    /// The resource the first request created (absent on keys stored before reservations).
    pub resource_id: Option<String>,
    pub state: KeyState,
    /// When the key is forgotten (ms since the epoch).
    pub expires_at_ms: i64,
}

/// Where the request that holds a key is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyState {
    /// Running, or crashed; its lease runs until `lease_until_ms`.
    InProgress { lease_until_ms: i64 },
    /// Finished with this answer.
    Done(StoredResponse),
}

/// What a request carrying a key may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nobody holds the key (or it expired): reserve it for a new resource.
    Reserve,
    /// The holder's lease lapsed without an answer: take it over and finish its resource.
    Resume { resource_id: String },
    /// The request finished before: answer what it answered.
    Replay(StoredResponse),
    /// The holder is still running: try again in `retry_after_ms`.
    InProgress { retry_after_ms: i64 },
    /// The key belongs to another request.
    Mismatch,
}

/// Decide what a request with fingerprint `request_hash` may do with the key as it stands.
pub fn decide(existing: Option<&KeyRecord>, request_hash: &str, now_ms: i64) -> Decision {
    let Some(record) = existing.filter(|r| r.expires_at_ms > now_ms) else {
        return Decision::Reserve;
    };
    if record.request_hash != request_hash {
        return Decision::Mismatch;
    }
    match (&record.state, &record.resource_id) {
        (KeyState::Done(answer), _) => Decision::Replay(answer.clone()),
        (KeyState::InProgress { lease_until_ms }, _) if *lease_until_ms > now_ms => {
            Decision::InProgress {
                retry_after_ms: lease_until_ms - now_ms,
            }
        }
        (KeyState::InProgress { .. }, Some(resource_id)) => Decision::Resume {
            resource_id: resource_id.clone(),
        },
        // A lapsed reservation that names nothing has nothing to resume.
        (KeyState::InProgress { .. }, None) => Decision::Reserve,
    }
}

/// What a final answer does to the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    /// Keep the answer for replays.
    Store,
    /// Forget the key: a `5xx` kept nothing, so a retry must really retry.
    Release,
}

/// How a final answer with `status` completes its key.
pub fn completion(status: u16) -> Completion {
    if status >= 500 {
        Completion::Release
    } else {
        Completion::Store
    }
}

/// `Retry-After` seconds for an in-progress key: the lease's rest, at least 1.
pub fn retry_after_secs(retry_after_ms: i64) -> u32 {
    u32::try_from((retry_after_ms.max(1) + 999) / 1000).unwrap_or(u32::MAX)
}

/// A request that carries an `Idempotency-Key`, fingerprinted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyed {
    pub scope: &'static str,
    pub key: String,
    pub fingerprint: String,
}

impl Keyed {
    /// The request's key under `scope`, if it sends one (1–255 visible ASCII characters,
    /// else 422).
    pub fn from_request(scope: &'static str, req: &Request) -> Result<Option<Keyed>, ApiError> {
        Ok(key(req)?.map(|key| Keyed {
            scope,
            key,
            fingerprint: fingerprint(req),
        }))
    }

    /// The same key scoped to one caller (an [`crate::auth::Principal::subject`]): equal
    /// keys of two callers never meet, so one can neither replay nor block the other's.
    pub fn owned_by(mut self, owner: &str) -> Keyed {
        self.key = format!("{owner}:{}", self.key);
        self
    }
}

/// What the route does after [`claim`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Create the resource with the id the caller proposed (the key now names it).
    Create,
    /// Finish the resource an earlier, unfinished request created.
    Resume { resource_id: String },
    /// Answer this (the request already finished).
    Replay(StoredResponse),
}

/// Claim the key inside the caller's write transaction (which must also create the
/// resource, so both commit or neither). A held key is `409` + `Retry-After`; another
/// request's key is `422`.
pub fn claim(
    tx: &Db,
    req: &Keyed,
    new_resource_id: &str,
    policy: &Policy,
    now_ms: i64,
) -> Result<Claim, ApiError> {
    let existing = load(tx, req)?;
    let lease_until_ms = now_ms + policy.lease_ms;
    match decide(existing.as_ref(), &req.fingerprint, now_ms) {
        Decision::Reserve => {
            tx.exec(
                "INSERT OR REPLACE INTO idempotency_keys (scope, idem_key, request_hash, resource_id, state, lease_until_ms, expires_at_ms, created_at_ms) VALUES (?, ?, ?, ?, 'InProgress', ?, ?, ?)",
                &[
                    text(req.scope),
                    text(&req.key),
                    text(&req.fingerprint),
                    text(new_resource_id),
                    int(lease_until_ms),
                    int(now_ms + policy.ttl_ms),
                    int(now_ms),
                ],
            )?;
            Ok(Claim::Create)
        }
        Decision::Resume { resource_id } => {
            tx.exec(
                "UPDATE idempotency_keys SET lease_until_ms = ? WHERE scope = ? AND idem_key = ?",
                &[int(lease_until_ms), text(req.scope), text(&req.key)],
            )?;
            Ok(Claim::Resume { resource_id })
        }
        Decision::Replay(answer) => Ok(Claim::Replay(answer)),
        Decision::InProgress { retry_after_ms } => Err(ApiError::InProgress {
            detail: "a request with this Idempotency-Key is in progress; nothing was stored or charged, retry after it finishes".into(),
            retry_after_secs: retry_after_secs(retry_after_ms),
        }),
        Decision::Mismatch => Err(ApiError::invalid(
            "Idempotency-Key",
            "this key was already used for a different request",
        )),
    }
}

/// Record the final answer inside the caller's transaction: stored for replays, or the
/// key released on a `5xx`. Only the reservation for `resource_id` is completed, so a
/// slow request whose key was taken over never overwrites a newer answer.
pub fn complete(tx: &Db, req: &Keyed, resource_id: &str, resp: &Response) -> anyhow::Result<()> {
    let answer = StoredResponse::from_response(resp);
    let (scope, key, resource) = (text(req.scope), text(&req.key), text(resource_id));
    match completion(answer.status) {
        Completion::Release => tx.exec(
            "DELETE FROM idempotency_keys WHERE scope = ? AND idem_key = ? AND resource_id = ? AND state = 'InProgress'",
            &[scope, key, resource],
        ),
        Completion::Store => tx.exec(
            "UPDATE idempotency_keys SET state = 'Done', status = ?, headers = ?, body = ? WHERE scope = ? AND idem_key = ? AND resource_id = ? AND state = 'InProgress'",
            &[
                int(i64::from(answer.status)),
                text(serde_json::to_string(&answer.headers).context("encoding headers")?),
                Value::Blob(answer.body),
                scope,
                key,
                resource,
            ],
        ),
    }
}

/// Forget expired keys (the periodic tick calls this); returns how many went.
pub fn sweep(db: &Db, now_ms: i64) -> anyhow::Result<u64> {
    db.exec(
        "DELETE FROM idempotency_keys WHERE expires_at_ms <= ?",
        &[int(now_ms)],
    )?;
    Ok(db.changes())
}

fn load(tx: &Db, req: &Keyed) -> anyhow::Result<Option<KeyRecord>> {
    let r = tx.query(
        "SELECT request_hash, resource_id, state, lease_until_ms, expires_at_ms, status, headers, body FROM idempotency_keys WHERE scope = ? AND idem_key = ?",
        &[text(req.scope), text(&req.key)],
    )?;
    let Some(row) = r.rows().next() else {
        return Ok(None);
    };
    let state = match row.get::<&str>("state").context("state")? {
        "Done" => KeyState::Done(StoredResponse {
            status: row.get::<u16>("status").context("status")?,
            headers: serde_json::from_str(row.get::<&str>("headers").context("headers")?)
                .context("decoding stored headers")?,
            body: row.get::<&[u8]>("body").context("body")?.to_vec(),
        }),
        _ => KeyState::InProgress {
            lease_until_ms: row.get::<i64>("lease_until_ms").context("lease_until_ms")?,
        },
    };
    Ok(Some(KeyRecord {
        request_hash: row
            .get::<&str>("request_hash")
            .context("request_hash")?
            .to_owned(),
        resource_id: row.get::<&str>("resource_id").map(str::to_owned),
        state,
        expires_at_ms: row.get::<i64>("expires_at_ms").context("expires_at_ms")?,
    }))
}

/// The `Idempotency-Key` header, if any: 1–255 visible ASCII characters, else 422.
pub fn key(req: &Request) -> Result<Option<String>, ApiError> {
    match header(req, HEADER) {
        None => Ok(None),
        Some(k) if !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| b.is_ascii_graphic()) => {
            Ok(Some(k))
        }
        Some(_) => Err(ApiError::invalid(
            "Idempotency-Key",
            "must be 1-255 visible ASCII characters",
        )),
    }
}

/// A stable fingerprint of the request (method, path, body): FNV-1a 64.
pub fn fingerprint(req: &Request) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let method = format!("{:?}", req.method());
    for part in [method.as_bytes(), req.path().as_bytes(), req.body()] {
        for b in part.iter().chain(std::iter::once(&0u8)) {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_000_000;

    fn answer(status: u16) -> StoredResponse {
        StoredResponse {
            status,
            headers: vec![("location".into(), "/grabs/g1".into())],
            body: b"{}".to_vec(),
        }
    }

    fn held(lease_until_ms: i64) -> KeyRecord {
        KeyRecord {
            request_hash: "h1".into(),
            resource_id: Some("g1".into()),
            state: KeyState::InProgress { lease_until_ms },
            expires_at_ms: NOW + 86_400_000,
        }
    }

    fn done() -> KeyRecord {
        KeyRecord {
            state: KeyState::Done(answer(201)),
            ..held(NOW - 1)
        }
    }

    #[test]
    fn a_fresh_key_is_reserved() {
        assert_eq!(decide(None, "h1", NOW), Decision::Reserve);
    }

    #[test]
    fn a_duplicate_while_the_first_request_runs_is_told_to_retry_after_its_lease() {
        assert_eq!(
            decide(Some(&held(NOW + 2_500)), "h1", NOW),
            Decision::InProgress {
                retry_after_ms: 2_500
            }
        );
        assert_eq!(retry_after_secs(2_500), 3);
        assert_eq!(retry_after_secs(0), 1);
    }

    #[test]
    fn a_finished_request_is_replayed() {
        assert_eq!(
            decide(Some(&done()), "h1", NOW),
            Decision::Replay(answer(201))
        );
    }

    #[test]
    fn the_same_key_with_another_body_is_refused_whatever_its_state() {
        for record in [held(NOW + 1_000), held(NOW - 1), done()] {
            assert_eq!(decide(Some(&record), "h2", NOW), Decision::Mismatch);
        }
    }

    #[test]
    fn a_retry_after_the_holder_crashed_resumes_the_same_resource() {
        assert_eq!(
            decide(Some(&held(NOW)), "h1", NOW),
            Decision::Resume {
                resource_id: "g1".into()
            }
        );
    }

    #[test]
    fn an_expired_key_is_reserved_anew_even_with_another_body() {
        let expired = KeyRecord {
            expires_at_ms: NOW,
            ..done()
        };
        assert_eq!(decide(Some(&expired), "h2", NOW), Decision::Reserve);
        assert_eq!(decide(Some(&expired), "h1", NOW), Decision::Reserve);
    }

    #[test]
    fn a_lapsed_reservation_without_a_resource_is_reserved_anew() {
        let orphan = KeyRecord {
            resource_id: None,
            ..held(NOW - 1)
        };
        assert_eq!(decide(Some(&orphan), "h1", NOW), Decision::Reserve);
    }

    #[test]
    fn final_answers_are_stored_and_server_errors_release_the_key() {
        for status in [200, 201, 402, 409, 422] {
            assert_eq!(completion(status), Completion::Store, "{status}");
        }
        for status in [500, 503] {
            assert_eq!(completion(status), Completion::Release, "{status}");
        }
    }
}
