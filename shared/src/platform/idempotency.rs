//! `Idempotency-Key` support: the first final answer to a (scope, key) is stored and
//! replayed to retries. A key reused with a different request is refused (422).
//! 5xx answers are never stored: a retry after an outage must really retry.

use super::db::{int, text, Db};
use super::http::header;
use crate::problem::ApiError;
use anyhow::Context;
use spin_sdk::http::{Request, Response};
use spin_sdk::sqlite3::Value;

/// The request header.
pub const HEADER: &str = "idempotency-key";

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

/// The stored answer for this key, if there is one. Fails with 422 if the key was used
/// for a different request.
pub fn lookup(
    db: &Db,
    scope: &str,
    key: &str,
    request_hash: &str,
) -> Result<Option<StoredResponse>, ApiError> {
    let r = db.query(
        "SELECT request_hash, status, headers, body FROM idempotency_keys WHERE scope = ? AND idem_key = ?",
        &[text(scope), text(key)],
    )?;
    let Some(row) = r.rows().next() else {
        return Ok(None);
    };
    let stored_hash: &str = row.get("request_hash").context("request_hash")?;
    if stored_hash != request_hash {
        return Err(ApiError::invalid(
            "Idempotency-Key",
            "this key was already used for a different request",
        ));
    }
    let headers: Vec<(String, String)> =
        serde_json::from_str(row.get::<&str>("headers").context("headers")?)
            .context("decoding stored headers")?;
    Ok(Some(StoredResponse {
        status: row.get::<u16>("status").context("status")?,
        headers,
        body: row.get::<&[u8]>("body").context("body")?.to_vec(),
    }))
}

/// Store a final answer inside the caller's transaction (first one wins). 5xx is skipped.
pub fn store(
    tx: &Db,
    scope: &str,
    key: &str,
    request_hash: &str,
    resp: &StoredResponse,
) -> anyhow::Result<()> {
    if resp.status >= 500 {
        return Ok(());
    }
    tx.exec(
        "INSERT OR IGNORE INTO idempotency_keys (scope, idem_key, request_hash, status, headers, body, created_at) VALUES (?, ?, ?, ?, ?, ?, strftime('%Y-%m-%dT%H:%M:%fZ','now'))",
        &[
            text(scope),
            text(key),
            text(request_hash),
            int(i64::from(resp.status)),
            text(serde_json::to_string(&resp.headers).context("encoding headers")?),
            Value::Blob(resp.body.clone()),
        ],
    )
}
