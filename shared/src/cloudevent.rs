//! The one CloudEvents codec (HTTP binding, CloudEvents 1.0), on `cloudevents-sdk`.
//! In: binary mode (`ce-*` headers) and structured mode (`application/cloudevents+json`).
//! Out: binary mode only, as DESIGN.md §4 asks of producers.

use crate::events::Envelope;
use cloudevents::binding::http::{builder::Builder, to_event, Serializer};
use cloudevents::message::{BinaryDeserializer, Result as MessageResult};
use cloudevents::{AttributesReader, Data, Event, EventBuilder, EventBuilderV10};

/// Why a request is not a CloudEvent we can use. Always the sender's fault (400: poison).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CloudEventError {
    #[error("not a valid CloudEvent: {0}")]
    Malformed(String),
    #[error("CloudEvent data must be JSON (datacontenttype application/json)")]
    NotJson,
    #[error("CloudEvent attribute {0} is required")]
    Missing(&'static str),
}

/// Decode an HTTP request (headers + body) into an [`Envelope`]. Extension names are
/// the CloudEvents ones: `correlationid`, `partitionkey`, `traceparent`.
pub fn decode(headers: &[(String, Vec<u8>)], body: Vec<u8>) -> Result<Envelope, CloudEventError> {
    let mut map = http::HeaderMap::new();
    for (name, value) in headers {
        let name = http::header::HeaderName::from_bytes(name.as_bytes())
            .map_err(|e| CloudEventError::Malformed(e.to_string()))?;
        let value = http::HeaderValue::from_bytes(value)
            .map_err(|e| CloudEventError::Malformed(e.to_string()))?;
        map.append(name, value);
    }
    let event = to_event(&map, body).map_err(|e| CloudEventError::Malformed(e.to_string()))?;
    from_event(&event)
}

fn from_event(event: &Event) -> Result<Envelope, CloudEventError> {
    if let Some(ct) = event.datacontenttype() {
        let essence = ct.split(';').next().unwrap_or("").trim();
        if essence != "application/json" && !essence.ends_with("+json") {
            return Err(CloudEventError::NotJson);
        }
    }
    let data = match event.data() {
        Some(Data::Json(v)) => v.clone(),
        Some(Data::Binary(b)) => serde_json::from_slice(b).map_err(|_| CloudEventError::NotJson)?,
        Some(Data::String(s)) => serde_json::from_str(s).map_err(|_| CloudEventError::NotJson)?,
        None => return Err(CloudEventError::Missing("data")),
    };
    let ext = |name: &str| event.extension(name).map(|v| v.to_string());
    Ok(Envelope {
        id: event.id().to_owned(),
        event_type: event.ty().to_owned(),
        source: event.source().to_string(),
        subject: event.subject().map(str::to_owned),
        time: event.time().copied(),
        correlation_id: ext("correlationid"),
        partition_key: ext("partitionkey"),
        traceparent: ext("traceparent"),
        data,
    })
}

/// Build the cloudevents-sdk event for an envelope.
pub fn to_event_v10(env: &Envelope) -> Result<Event, CloudEventError> {
    let mut b = EventBuilderV10::new()
        .id(env.id.clone())
        .ty(env.event_type.clone())
        .source(env.source.clone())
        .data("application/json", env.data.clone());
    if let Some(s) = &env.subject {
        b = b.subject(s.clone());
    }
    if let Some(t) = env.time {
        b = b.time(t);
    }
    for (name, value) in [
        ("correlationid", &env.correlation_id),
        ("partitionkey", &env.partition_key),
        ("traceparent", &env.traceparent),
    ] {
        if let Some(v) = value {
            b = b.extension(name, v.clone());
        }
    }
    b.build()
        .map_err(|e| CloudEventError::Malformed(e.to_string()))
}

/// An HTTP message in CloudEvents binary mode: headers (incl. `content-type`) and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinaryMessage {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

#[derive(Default)]
struct Collect {
    headers: Vec<(String, String)>,
}

impl Builder<BinaryMessage> for Collect {
    fn header(&mut self, key: &str, value: http::header::HeaderValue) {
        let value = value.to_str().unwrap_or_default().to_owned();
        // cloudevents-sdk names the content type `ce-datacontenttype`; HTTP binary mode
        // carries it as `content-type` (CloudEvents HTTP binding §3.1.1).
        let key = if key == "ce-datacontenttype" {
            "content-type"
        } else {
            key
        };
        self.headers.push((key.to_owned(), value));
    }
    fn body(&mut self, bytes: Vec<u8>) -> MessageResult<BinaryMessage> {
        Ok(BinaryMessage {
            headers: std::mem::take(&mut self.headers),
            body: bytes,
        })
    }
    fn finish(&mut self) -> MessageResult<BinaryMessage> {
        self.body(Vec::new())
    }
}

/// Encode an envelope as a binary-mode HTTP message.
pub fn encode_binary(env: &Envelope) -> Result<BinaryMessage, CloudEventError> {
    let event = to_event_v10(env)?;
    event
        .deserialize_binary(Serializer::new(Collect::default()))
        .map_err(|e| CloudEventError::Malformed(e.to_string()))
}

/// Encode an envelope as a structured-mode JSON document (`application/cloudevents+json`).
pub fn encode_structured(env: &Envelope) -> Result<Vec<u8>, CloudEventError> {
    let event = to_event_v10(env)?;
    serde_json::to_vec(&event).map_err(|e| CloudEventError::Malformed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::fixtures;
    use crate::ids::CorrelationId;

    fn envelope() -> Envelope {
        fixtures::payment_approved().to_envelope(
            &CorrelationId::parse("corr-1").unwrap(),
            Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            "2026-11-25T10:00:01Z".parse().unwrap(),
        )
    }

    fn as_bytes(headers: &[(String, String)]) -> Vec<(String, Vec<u8>)> {
        headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
            .collect()
    }

    #[test]
    fn binary_mode_round_trips_with_extensions() {
        let env = envelope();
        let msg = encode_binary(&env).unwrap();
        let get = |k: &str| {
            msg.headers
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("ce-type"), Some("htaxi.PaymentApproved"));
        assert_eq!(get("ce-correlationid"), Some("corr-1"));
        assert_eq!(get("content-type"), Some("application/json"));
        let back = decode(&as_bytes(&msg.headers), msg.body).unwrap();
        assert_eq!(back, env);
    }

    #[test]
    fn structured_mode_decodes_to_the_same_envelope() {
        let env = envelope();
        let body = encode_structured(&env).unwrap();
        let headers = vec![(
            "content-type".to_owned(),
            b"application/cloudevents+json".to_vec(),
        )];
        assert_eq!(decode(&headers, body).unwrap(), env);
    }

    #[test]
    fn a_request_without_ce_headers_is_refused() {
        let headers = vec![("content-type".to_owned(), b"application/json".to_vec())];
        assert!(decode(&headers, b"{}".to_vec()).is_err());
    }

    fn binary_headers(content_type: Option<&str>) -> Vec<(String, Vec<u8>)> {
        let mut h: Vec<(String, Vec<u8>)> = [
            ("ce-specversion", "1.0"),
            ("ce-id", "1"),
            ("ce-type", "htaxi.GrabRequested"),
            ("ce-source", "/test"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
        .collect();
        if let Some(ct) = content_type {
            h.push(("content-type".to_owned(), ct.as_bytes().to_vec()));
        }
        h
    }

    #[test]
    fn binary_mode_without_a_content_type_reads_a_json_body_as_json() {
        // What the CloudEvents SDKs send for a dict/object: no Content-Type at all.
        let env = decode(&binary_headers(None), br#"{"grabId":"g"}"#.to_vec()).unwrap();
        assert_eq!(env.data, serde_json::json!({"grabId": "g"}));
    }

    #[test]
    fn binary_mode_without_a_content_type_and_a_body_that_is_not_json_is_refused() {
        assert_eq!(
            decode(&binary_headers(None), b"hello".to_vec()),
            Err(CloudEventError::NotJson)
        );
    }

    #[test]
    fn non_json_data_is_refused() {
        let headers: Vec<(String, Vec<u8>)> = [
            ("ce-specversion", "1.0"),
            ("ce-id", "1"),
            ("ce-type", "htaxi.GrabRequested"),
            ("ce-source", "/test"),
            ("content-type", "text/plain"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
        .collect();
        assert_eq!(
            decode(&headers, b"hello".to_vec()),
            Err(CloudEventError::NotJson)
        );
    }
}
