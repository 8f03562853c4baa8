//! `wasi:http/outgoing-handler` with Spin's outbound rules
//! (`crates/factor-outbound-http/src/wasi.rs`, `RequestSender::prepare_request`,
//! and `crates/trigger-http/src/outbound_http.rs`):
//!
//! * a request with no authority (relative URL) or to host `self.alt` is a
//!   *self request*: allowed only by `http://self`/`*` entries, then routed
//!   through this app's router (in-process here; Spin sends it over loopback);
//! * any other URL must match `allowed_outbound_hosts`, else the guest gets
//!   `error-code::http-request-denied`;
//! * the `Host` header is dropped before sending;
//! * `http://<component>.spin.internal/...` is dispatched in-process to that
//!   component with a synthetic `/...` route match and client address
//!   `0.0.0.0:0`; a chained call to an unknown component traps the caller, as
//!   Spin's interceptor does;
//! * everything else is sent for real by wasmtime-wasi-http's default sender
//!   (to the address `AppOptions::host_map` gives its host name, if any: a
//!   test-only stand-in for cluster DNS).
//!
//! We implement `handle` ourselves instead of using `WasiHttpHooks` because
//! wasmtime-wasi-http 48 rejects relative URLs before any hook runs.

use std::pin::Pin;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::Method;
use wasmtime::component::{Linker, Resource};
use wasmtime::StoreContextMut;
use wasmtime_wasi_http::p2::bindings::http::types;
use wasmtime_wasi_http::p2::body::HyperIncomingBody;
use wasmtime_wasi_http::p2::types::{HostFutureIncomingResponse, HostOutgoingRequest};
use wasmtime_wasi_http::p2::{HttpError, HttpResult};
use wasmtime_wasi_http::{Error as HttpErr, RequestOptions};

use crate::allowed_hosts::service_chaining_target;
use crate::host::HostState;

/// The `wasi:http` version wasmtime-wasi-http 48 links; guests importing any
/// compatible 0.2.x version resolve to it.
const OUTGOING_HANDLER: &str = "wasi:http/outgoing-handler@0.2.12";

/// Replaces wasmtime-wasi-http's `outgoing-handler.handle` (already linked)
/// with ours.
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    linker.instance(OUTGOING_HANDLER)?.func_wrap(
        "handle",
        |mut store: StoreContextMut<'_, HostState>,
         (request, options): (
            Resource<HostOutgoingRequest>,
            Option<Resource<types::RequestOptions>>,
        )| {
            match handle(store.data_mut(), request, options) {
                Ok(r) => Ok((Ok(r),)),
                Err(e) => Ok((Err(e.downcast()?),)),
            }
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

fn method(m: &types::Method) -> Result<Method, types::ErrorCode> {
    Ok(match m {
        types::Method::Get => Method::GET,
        types::Method::Head => Method::HEAD,
        types::Method::Post => Method::POST,
        types::Method::Put => Method::PUT,
        types::Method::Delete => Method::DELETE,
        types::Method::Connect => Method::CONNECT,
        types::Method::Options => Method::OPTIONS,
        types::Method::Trace => Method::TRACE,
        types::Method::Patch => Method::PATCH,
        types::Method::Other(m) => Method::from_bytes(m.as_bytes())
            .map_err(|_| types::ErrorCode::HttpRequestMethodInvalid)?,
    })
}

fn handle(
    state: &mut HostState,
    request_id: Resource<HostOutgoingRequest>,
    options: Option<Resource<types::RequestOptions>>,
) -> HttpResult<Resource<HostFutureIncomingResponse>> {
    let opts: Option<RequestOptions> = options.and_then(|o| state.table.get(&o).ok()).cloned();
    let req = state.table.delete(request_id)?;
    let method = method(&req.method)?;

    let authority = req.authority.clone().filter(|a| !a.is_empty());
    let host_of = |a: &str| a.rsplit_once(':').map(|(h, _)| h).unwrap_or(a).to_owned();
    // spin-sdk renders a relative URL as `https://:443/path`: an empty host.
    let is_self = authority
        .as_deref()
        .is_none_or(|a| host_of(a).is_empty() || host_of(a) == "self.alt");
    let path = req
        .path_with_query
        .clone()
        .unwrap_or_else(|| "/".to_owned());

    let uri = if let Some(authority) = authority.as_deref().filter(|_| !is_self) {
        let scheme = match &req.scheme {
            Some(types::Scheme::Http) => "http".to_owned(),
            Some(types::Scheme::Https) | None => "https".to_owned(),
            Some(types::Scheme::Other(s)) => s.clone(),
        };
        format!("{scheme}://{authority}{path}")
    } else {
        path.clone()
    };
    let uri: http::Uri = uri
        .parse()
        .map_err(|_| types::ErrorCode::HttpRequestUriInvalid)?;

    let component = state.component.clone();
    let app = state.app.clone();
    let allowed = &app.components[&component].allowed_hosts;
    let permitted = if is_self {
        allowed.allows_relative(&["http", "https"])
    } else {
        allowed.allows_url(&uri.to_string(), "https")
    };
    app.faults.record_outbound(&component, !permitted);
    if !permitted {
        eprintln!(
            "spin-host: {component}: outbound request to {uri} denied by allowed_outbound_hosts"
        );
        return Err(types::ErrorCode::HttpRequestDenied.into());
    }
    let chained = if is_self {
        None
    } else {
        service_chaining_target(&uri)
    };
    if let Some(target) = &chained {
        if !app.components.contains_key(target) {
            return Err(HttpError::trap(wasmtime::format_err!(
                "unknown routing destination '{target}' for service chaining request {uri}"
            )));
        }
    }

    let mut builder = hyper::Request::builder().method(method).uri(uri.clone());
    for (k, v) in req.headers.iter() {
        if k != http::header::HOST {
            builder = builder.header(k, v);
        }
    }
    let body = req.body.unwrap_or_else(|| {
        Empty::<Bytes>::new()
            .map_err(|_| unreachable!("infallible"))
            .boxed_unsync()
    });
    let request = builder
        .body(body)
        .map_err(|e| types::ErrorCode::InternalError(Some(e.to_string())))?;

    let fault_host = uri.host().unwrap_or("self").to_owned();
    let future = wasmtime_wasi::runtime::spawn(async move {
        let (delay, fail) = app.faults.take_outbound(&component, &fault_host);
        if let Some(ms) = delay {
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        }
        if fail {
            return Err(HttpErr::ConnectionRefused);
        }
        let resp: http::Response<HyperIncomingBody> = if let Some(target) = chained {
            let path = request.uri().path().to_owned();
            app.dispatch_chained(&target, &path, request).await
        } else if is_self {
            app.dispatch_self(request).await
        } else {
            // Spin's hyper client sends a Host header derived from the URL.
            let mut request = request;
            if let Some(v) = request
                .uri()
                .authority()
                .and_then(|a| http::HeaderValue::from_str(a.as_str()).ok())
            {
                request.headers_mut().insert(http::header::HOST, v);
            }
            // Test-only `host_map`: connect elsewhere, keep the Host header.
            if let Some(addr) = request.uri().host().and_then(|h| app.host_map.get(h)) {
                let mut parts = request.uri().clone().into_parts();
                parts.authority = addr.to_string().parse().ok();
                *request.uri_mut() =
                    http::Uri::from_parts(parts).map_err(|_| HttpErr::HttpRequestUriInvalid)?;
            }
            let (resp, io) = wasmtime_wasi_http::default_send_request(request, opts).await?;
            tokio::spawn(async move {
                let _ = Pin::from(Box::new(io)).await;
            });
            resp.map(|b| b.boxed_unsync())
        };
        Ok((resp, wasmtime_wasi::runtime::spawn(async {})))
    });
    Ok(state
        .table
        .push(HostFutureIncomingResponse::Pending(future))?)
}
