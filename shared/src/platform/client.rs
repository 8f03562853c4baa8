//! Outbound HTTP with a deadline, on wasi:http 0.2 directly. spin-sdk's `send` has no
//! timeout, and grab must not wait on a hung pay for ever: we poll the response and a
//! monotonic-clock timer together and drop the request when the timer wins (dropping the
//! future-incoming-response cancels the call in Spin and in wasmtime-wasi-http).
//! Blocking is fine here: every request runs in its own component instance.

use spin_sdk::wit::wasi::http0_2_0::outgoing_handler;
use spin_sdk::wit::wasi::http0_2_0::types::{
    ErrorCode, Fields, IncomingBody, Method, OutgoingBody, OutgoingRequest, Scheme,
};
use std::time::Duration;

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

struct Url<'a> {
    scheme: Scheme,
    authority: &'a str,
    path_and_query: &'a str,
}

fn split_url(url: &str) -> Option<Url<'_>> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = match scheme {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        _ => return None,
    };
    let slash = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(slash);
    if authority.is_empty() {
        return None;
    }
    Some(Url {
        scheme,
        authority,
        path_and_query: if path.is_empty() { "/" } else { path },
    })
}

/// Send a request and wait at most `req.timeout` for the whole response.
pub fn send(req: &OutboundRequest) -> Result<OutboundResponse, SendFailure> {
    let url = split_url(&req.url).ok_or_else(|| SendFailure::InvalidUrl(req.url.clone()))?;
    let entries: Vec<(String, Vec<u8>)> = req
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.as_bytes().to_vec()))
        .collect();
    let fields = Fields::from_list(&entries)
        .map_err(|e| SendFailure::Transport(format!("invalid header: {e:?}")))?;
    let outgoing = OutgoingRequest::new(fields);
    let method = match req.method {
        "GET" => Method::Get,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        other => Method::Other(other.to_owned()),
    };
    let set = |ok: Result<(), ()>| ok.map_err(|_| SendFailure::InvalidUrl(req.url.clone()));
    set(outgoing.set_method(&method))?;
    set(outgoing.set_scheme(Some(&url.scheme)))?;
    set(outgoing.set_authority(Some(url.authority)))?;
    set(outgoing.set_path_with_query(Some(url.path_and_query)))?;
    let body = outgoing
        .body()
        .map_err(|_| SendFailure::Transport("request body already taken".into()))?;

    let future = outgoing_handler::handle(outgoing, None).map_err(map_error)?;
    {
        let stream = body
            .write()
            .map_err(|_| SendFailure::Transport("request body stream unavailable".into()))?;
        for chunk in req.body.chunks(4096) {
            stream
                .blocking_write_and_flush(chunk)
                .map_err(|e| SendFailure::Transport(format!("writing request body: {e:?}")))?;
        }
    }
    OutgoingBody::finish(body, None).map_err(map_error)?;

    let deadline = wasi::clocks::monotonic_clock::subscribe_duration(
        req.timeout.as_nanos().min(u64::MAX as u128) as u64,
    );
    let response = loop {
        if let Some(result) = future.get() {
            let response = result
                .map_err(|_| SendFailure::Transport("response already taken".into()))?
                .map_err(map_error)?;
            break response;
        }
        let ready = wasi::io::poll::poll(&[&future.subscribe(), &deadline]);
        if ready.contains(&1) && future.get().is_none() {
            return Err(SendFailure::TimedOut(req.timeout));
        }
    };

    let status = response.status();
    let headers = response
        .headers()
        .entries()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
        .collect();
    let incoming = response
        .consume()
        .map_err(|_| SendFailure::Transport("response body already taken".into()))?;
    let body = read_body(&incoming, &deadline, req.timeout)?;
    drop(incoming);
    Ok(OutboundResponse {
        status,
        headers,
        body,
    })
}

fn read_body(
    incoming: &IncomingBody,
    deadline: &wasi::io::poll::Pollable,
    timeout: Duration,
) -> Result<Vec<u8>, SendFailure> {
    let stream = incoming
        .stream()
        .map_err(|_| SendFailure::Transport("response stream unavailable".into()))?;
    let mut body = Vec::new();
    loop {
        match stream.read(64 * 1024) {
            Ok(chunk) if chunk.is_empty() => {
                let ready = wasi::io::poll::poll(&[&stream.subscribe(), deadline]);
                if ready.contains(&1) {
                    return Err(SendFailure::TimedOut(timeout));
                }
            }
            Ok(chunk) => body.extend_from_slice(&chunk),
            Err(wasi::io::streams::StreamError::Closed) => return Ok(body),
            Err(e) => return Err(SendFailure::Transport(format!("reading response: {e:?}"))),
        }
    }
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
        let u = split_url("http://pay.spin.internal/payments?x=1").unwrap();
        assert_eq!(u.authority, "pay.spin.internal");
        assert_eq!(u.path_and_query, "/payments?x=1");
        assert_eq!(split_url("http://broker:8080").unwrap().path_and_query, "/");
        assert!(split_url("ftp://x/").is_none());
        assert!(split_url("http:///nohost").is_none());
    }
}
