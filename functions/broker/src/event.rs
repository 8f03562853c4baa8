//! The event as the broker keeps it: the shared [`Envelope`] (every attribute the saga
//! knows, and the JSON data) plus any other extension attributes the producer set, so a
//! delivery re-emits the same CloudEvent. Attribute lookup for Trigger filters and the
//! outgoing binary-mode message (with the Kafka broker's partition/offset extensions)
//! live here too. No I/O.

use htaxi_shared::cloudevent::{self, BinaryMessage, CloudEventError};
use htaxi_shared::events::Envelope;
use htaxi_shared::ids::CorrelationId;
use std::collections::BTreeMap;

/// Attributes the [`Envelope`] carries itself (or that the codec sets), never kept as extras.
const KNOWN: &[&str] = &[
    "specversion",
    "id",
    "type",
    "source",
    "subject",
    "time",
    "datacontenttype",
    "data",
    "data_base64",
    "correlationid",
    "partitionkey",
    "traceparent",
];

/// Extensions the broker itself sets on every delivery; a producer's copies are dropped.
const BROKER_SET: &[&str] = &["knativekafkapartition", "knativekafkaoffset"];

/// The Kafka partition every local delivery reports (one partition, ordered by offset).
pub const LOCAL_PARTITION: i64 = 0;

/// An accepted event: the envelope plus other attributes (`dataschema`, extensions).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub envelope: Envelope,
    pub extras: BTreeMap<String, String>,
}

impl StoredEvent {
    /// An attribute's value as a Trigger filter sees it (`None` when absent).
    pub fn attribute(&self, name: &str) -> Option<String> {
        let env = &self.envelope;
        match name {
            "specversion" => Some("1.0".to_owned()),
            "id" => Some(env.id.clone()),
            "type" => Some(env.event_type.clone()),
            "source" => Some(env.source.clone()),
            "subject" => env.subject.clone(),
            "time" => env.time.map(|t| t.to_rfc3339()),
            "datacontenttype" => Some("application/json".to_owned()),
            "correlationid" => env.correlation_id.clone(),
            "partitionkey" => env.partition_key.clone(),
            "traceparent" => env.traceparent.clone(),
            other => self.extras.get(other).cloned(),
        }
    }

    /// Every attribute (data excluded), for the inspection routes.
    pub fn attributes(&self) -> BTreeMap<String, String> {
        let mut all: BTreeMap<String, String> = KNOWN
            .iter()
            .filter_map(|k| self.attribute(k).map(|v| ((*k).to_owned(), v)))
            .collect();
        all.extend(self.extras.clone());
        all
    }

    /// The binary-mode HTTP message for a delivery: the shared codec's headers, the
    /// extra attributes, `knativekafkapartition`/`knativekafkaoffset`, and
    /// `X-Correlation-Id` when the event's correlation id is usable as one.
    pub fn delivery_message(&self, offset: i64) -> Result<BinaryMessage, CloudEventError> {
        let mut msg = cloudevent::encode_binary(&self.envelope)?;
        for (name, value) in &self.extras {
            msg.headers.push((format!("ce-{name}"), value.clone()));
        }
        msg.headers.push((
            "ce-knativekafkapartition".to_owned(),
            LOCAL_PARTITION.to_string(),
        ));
        msg.headers
            .push(("ce-knativekafkaoffset".to_owned(), offset.to_string()));
        if let Some(c) = self.envelope.correlation_id.as_deref() {
            if let Ok(c) = CorrelationId::parse(c) {
                msg.headers.push((
                    htaxi_shared::platform::http::CORRELATION_HEADER.to_owned(),
                    c.as_str().to_owned(),
                ));
            }
        }
        Ok(msg)
    }
}

/// The attributes of an incoming request that the [`Envelope`] does not carry:
/// `ce-*` headers in binary mode, top-level members in structured mode. Names that are
/// not valid CloudEvents attribute names (`[a-z0-9]{1,20}`) are ignored, and so are
/// values that are not text, numbers or booleans.
pub fn extra_attributes(headers: &[(String, String)], body: &[u8]) -> BTreeMap<String, String> {
    let content_type = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| v.to_ascii_lowercase())
        .unwrap_or_default();
    let pairs: Vec<(String, String)> = if content_type.starts_with("application/cloudevents+json") {
        structured_members(body)
    } else {
        headers
            .iter()
            .filter_map(|(k, v)| {
                let k = k.to_ascii_lowercase();
                k.strip_prefix("ce-").map(|n| (n.to_owned(), v.clone()))
            })
            .collect()
    };
    pairs
        .into_iter()
        .filter(|(name, _)| is_attribute_name(name))
        .filter(|(name, _)| !KNOWN.contains(&name.as_str()) && !BROKER_SET.contains(&name.as_str()))
        .collect()
}

fn structured_members(body: &[u8]) -> Vec<(String, String)> {
    let Ok(serde_json::Value::Object(map)) = serde_json::from_slice(body) else {
        return Vec::new();
    };
    map.into_iter()
        .filter_map(|(k, v)| {
            let v = match v {
                serde_json::Value::String(s) => s,
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Bool(b) => b.to_string(),
                _ => return None,
            };
            Some((k, v))
        })
        .collect()
}

fn is_attribute_name(name: &str) -> bool {
    (1..=20).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn envelope(event_type: &str) -> Envelope {
        Envelope {
            id: "evt-1".into(),
            event_type: event_type.into(),
            source: "/htaxi/pay".into(),
            subject: Some("grab-1".into()),
            time: Some("2026-11-25T10:00:01Z".parse().unwrap()),
            correlation_id: Some("corr-1".into()),
            partition_key: Some("grab-1".into()),
            traceparent: None,
            data: serde_json::json!({"grabId": "grab-1"}),
        }
    }

    pub fn stored(event_type: &str) -> StoredEvent {
        StoredEvent {
            envelope: envelope(event_type),
            extras: BTreeMap::new(),
        }
    }

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn binary_mode_extensions_are_kept_and_known_ones_are_not_duplicated() {
        let extras = extra_attributes(
            &h(&[
                ("ce-id", "1"),
                ("ce-type", "htaxi.X"),
                ("Ce-Tenant", "seoul"),
                ("ce-dataschema", "https://htaxi.dev/s"),
                ("ce-correlationid", "c"),
                ("ce-knativekafkaoffset", "9"),
                ("ce-Bad_Name", "x"),
                ("content-type", "application/json"),
            ]),
            b"{}",
        );
        assert_eq!(
            extras,
            BTreeMap::from([
                ("dataschema".to_owned(), "https://htaxi.dev/s".to_owned()),
                ("tenant".to_owned(), "seoul".to_owned()),
            ])
        );
    }

    #[test]
    fn structured_mode_extensions_are_read_from_the_body() {
        let body = br#"{"specversion":"1.0","id":"1","type":"t","source":"/s","tenant":"seoul","priority":3,"nested":{"a":1},"data":{}}"#;
        let extras = extra_attributes(
            &h(&[(
                "content-type",
                "application/cloudevents+json; charset=utf-8",
            )]),
            body,
        );
        assert_eq!(
            extras,
            BTreeMap::from([
                ("priority".to_owned(), "3".to_owned()),
                ("tenant".to_owned(), "seoul".to_owned()),
            ])
        );
    }

    #[test]
    fn attributes_include_extensions_for_filters() {
        let mut e = stored("htaxi.PaymentApproved");
        e.extras.insert("tenant".into(), "seoul".into());
        assert_eq!(
            e.attribute("type").as_deref(),
            Some("htaxi.PaymentApproved")
        );
        assert_eq!(e.attribute("source").as_deref(), Some("/htaxi/pay"));
        assert_eq!(e.attribute("tenant").as_deref(), Some("seoul"));
        assert_eq!(e.attribute("traceparent"), None);
        assert_eq!(e.attribute("missing"), None);
    }

    #[test]
    fn a_delivery_re_emits_the_event_with_partition_and_offset() {
        let mut e = stored("htaxi.PaymentApproved");
        e.extras.insert("tenant".into(), "seoul".into());
        let msg = e.delivery_message(42).unwrap();
        let get = |k: &str| {
            msg.headers
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("ce-id"), Some("evt-1"));
        assert_eq!(get("ce-type"), Some("htaxi.PaymentApproved"));
        assert_eq!(get("ce-correlationid"), Some("corr-1"));
        assert_eq!(get("ce-partitionkey"), Some("grab-1"));
        assert_eq!(get("ce-tenant"), Some("seoul"));
        assert_eq!(get("ce-knativekafkapartition"), Some("0"));
        assert_eq!(get("ce-knativekafkaoffset"), Some("42"));
        assert_eq!(get("x-correlation-id"), Some("corr-1"));
        let headers: Vec<(String, Vec<u8>)> = msg
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
            .collect();
        let back = cloudevent::decode(&headers, msg.body).unwrap();
        assert_eq!(back, e.envelope);
    }

    #[test]
    fn an_unusable_correlation_id_is_not_sent_as_a_header() {
        let mut e = stored("htaxi.PaymentApproved");
        e.envelope.correlation_id = Some("bad id!".into());
        let msg = e.delivery_message(1).unwrap();
        assert!(!msg.headers.iter().any(|(k, _)| k == "x-correlation-id"));
    }
}
