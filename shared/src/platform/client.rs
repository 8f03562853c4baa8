//! Outbound HTTP with a deadline, on spin-sdk's async `send`. spin-sdk's `send` has no
//! timeout, and grab must not wait on a hung pay for ever: we race the call against a
//! monotonic-clock timer and drop the request when the timer wins (dropping the
//! future-incoming-response cancels the call in Spin and in wasmtime-wasi-http).
//! [`send`] blocks (every request runs in its own component instance); [`send_async`]
//! lets one handler keep several requests in flight (the broker's dispatcher).

use futures::future::Either;
use spin_sdk::http::{Method, SendError};
use spin_sdk::wit::wasi::http0_2_0::types::ErrorCode;
use std::task::Poll;
use std::time::Duration;
use wasi::clocks::monotonic_clock;

/// An outbound request.
#[derive(Debug, Clone)]
pub struct OutboundRequest {
    pub method: &'static str,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub timeout: Duration,
}

/// What came back.
#[derive(Debug, Clone)]
pub struct OutboundResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl OutboundResponse {
    /// A response header, case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Why no response came back. `TimedOut` means the callee may still have acted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SendFailure {
    #[error("invalid outbound URL {0:?}")]
    InvalidUrl(String),
    #[error("no response within {0:?}")]
    TimedOut(Duration),
    #[error("outbound request refused by allowed_outbound_hosts")]
    Denied,
    #[error("transport error: {0}")]
    Transport(String),
}

/// Whether `url` is `http(s)://authority[/path]`; returns the authority and the path.
fn split_url(url: &str) -> Option<(&str, &str)> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))?;
    let slash = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(slash);
    if authority.is_empty() {
        return None;
    }
    Some((authority, if path.is_empty() { "/" } else { path }))
}

/// Send a request and wait at most `req.timeout` for the whole response, blocking
/// this instance: the synchronous form of [`send_async`] for handlers that make one
/// call at a time.
pub fn send(req: &OutboundRequest) -> Result<OutboundResponse, SendFailure> {
    spin_sdk::http::run(send_async(req))
}

/// Send a request on spin-sdk's async outbound HTTP and wait at most `req.timeout` for
/// the whole response (status, headers and body). Several of these futures polled
/// together (e.g. `join_all`) have their requests in flight at once.
pub async fn send_async(req: &OutboundRequest) -> Result<OutboundResponse, SendFailure> {
    split_url(&req.url).ok_or_else(|| SendFailure::InvalidUrl(req.url.clone()))?;
    let method = match req.method {
        "GET" => Method::Get,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        other => Method::Other(other.to_owned()),
    };
    let mut builder = spin_sdk::http::Request::builder();
    builder.method(method).uri(req.url.as_str());
    for (k, v) in &req.headers {
        builder.header(k.to_ascii_lowercase(), v.as_str());
    }
    let request = builder.body(req.body.clone()).build();
    let call = std::pin::pin!(spin_sdk::http::send::<_, spin_sdk::http::Response>(request));
    let deadline = std::pin::pin!(sleep(req.timeout));
    match futures::future::select(call, deadline).await {
        Either::Left((Ok(response), _)) => Ok(OutboundResponse {
            status: *response.status(),
            headers: response
                .headers()
                .map(|(k, v)| {
                    (
                        k.to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body: response.into_body(),
        }),
        Either::Left((Err(e), _)) => Err(match e {
            SendError::Http(code) => map_error(code),
            SendError::RequestConversion(e) => SendFailure::InvalidUrl(format!("{}: {e}", req.url)),
            other => SendFailure::Transport(other.to_string()),
        }),
        // Dropping the call cancels the request (Spin and wasmtime-wasi-http alike).
        Either::Right(((), _)) => Err(SendFailure::TimedOut(req.timeout)),
    }
}

/// Wait `d` without blocking the instance: other futures of the same handler (sends in
/// flight) make progress meanwhile.
pub async fn sleep(d: Duration) {
    let deadline =
        monotonic_clock::now().saturating_add(d.as_nanos().min(u128::from(u64::MAX)) as u64);
    let mut registration: Option<spin_executor::CancelOnDropToken> = None;
    futures::future::poll_fn(move |cx| {
        if monotonic_clock::now() >= deadline {
            return Poll::Ready(());
        }
        // One registration at a time: replacing it cancels the previous one.
        let token = spin_executor::push_waker_and_get_token(
            monotonic_clock::subscribe_instant(deadline),
            cx.waker().clone(),
        );
        drop(registration.replace(token.into()));
        Poll::Pending
    })
    .await
}

fn map_error(e: ErrorCode) -> SendFailure {
    match e {
        ErrorCode::HttpRequestDenied => SendFailure::Denied,
        ErrorCode::ConnectionTimeout | ErrorCode::HttpResponseTimeout => {
            SendFailure::Transport(format!("{e:?}"))
        }
        other => SendFailure::Transport(format!("{other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_scheme_authority_and_path() {
        let (authority, path) = split_url("http://pay.spin.internal/payments?x=1").unwrap();
        assert_eq!(authority, "pay.spin.internal");
        assert_eq!(path, "/payments?x=1");
        assert_eq!(split_url("http://broker:8080").unwrap().1, "/");
        assert!(split_url("ftp://x/").is_none());
        assert!(split_url("http:///nohost").is_none());
    }
}
