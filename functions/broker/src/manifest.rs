//! The Knative wiring, read from the same manifests the cluster applies
//! (`knative/base/eventing/*.yaml`, mounted at `/knative`): the `default` Broker's
//! delivery defaults and every Trigger on it (filter, subscriber, delivery). Pure: the
//! caller passes `(file name, text)` pairs; every failure names the file.
//!
//! Supported, as in Knative: multi-document YAML; `spec.filter.attributes` (exact match,
//! every attribute must match, none = match all); `spec.subscriber.ref` of kind
//! `Service` (resolved to `http://<name>.spin.internal`, Spin's service chaining) with an
//! optional relative `spec.subscriber.uri`, or an absolute `uri` alone; `spec.delivery`
//! merged field by field over the Broker's. Other kinds, and Triggers of other brokers,
//! are ignored. `spec.filters` (CESQL dialects) is refused rather than silently ignored.

use crate::duration;
use crate::event::StoredEvent;
use crate::policy::{BackoffPolicy, Delivery, DeliverySpec};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The Broker the local broker stands in for.
pub const BROKER_NAME: &str = "default";

/// The Kafka broker's ordering annotation on a Trigger.
const DELIVERY_ORDER: &str = "kafka.eventing.knative.dev/delivery.order";

/// A manifest the broker cannot use; `file` is the manifest's file name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {reason}")]
pub struct ManifestError {
    pub file: String,
    pub reason: String,
}

/// One Trigger, resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Trigger {
    pub name: String,
    pub file: String,
    /// `spec.filter.attributes`: exact match on every entry.
    pub filter: BTreeMap<String, String>,
    /// The URL deliveries are POSTed to.
    pub subscriber: String,
    pub delivery: Delivery,
    /// `ordered` | `unordered` (Kafka broker annotation; informational locally).
    pub delivery_order: String,
}

impl Trigger {
    /// Whether the event passes this Trigger's filter.
    pub fn matches(&self, event: &StoredEvent) -> bool {
        self.filter
            .iter()
            .all(|(name, want)| event.attribute(name).as_deref() == Some(want.as_str()))
    }
}

/// Everything the broker loaded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Wiring {
    /// The file that declared the `default` Broker, if any.
    pub broker_file: Option<String>,
    /// The Broker's delivery over the local fallbacks: what a Trigger without its own gets.
    pub defaults: Delivery,
    pub triggers: Vec<Trigger>,
}

impl Wiring {
    /// The Triggers whose filter the event passes, in name order.
    pub fn matching<'a>(&'a self, event: &'a StoredEvent) -> impl Iterator<Item = &'a Trigger> {
        self.triggers.iter().filter(|t| t.matches(event))
    }

    /// A Trigger by name.
    pub fn trigger(&self, name: &str) -> Option<&Trigger> {
        self.triggers.iter().find(|t| t.name == name)
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawMeta {
    name: Option<String>,
    #[serde(default)]
    annotations: BTreeMap<String, serde_norway::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDoc {
    kind: Option<String>,
    #[serde(default)]
    metadata: RawMeta,
    #[serde(default)]
    spec: serde_norway::Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawTriggerSpec {
    broker: String,
    #[serde(default)]
    filter: Option<RawFilter>,
    #[serde(default)]
    filters: Option<serde_norway::Value>,
    subscriber: RawDestination,
    #[serde(default)]
    delivery: Option<RawDelivery>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawBrokerSpec {
    #[serde(default)]
    delivery: Option<RawDelivery>,
}

#[derive(Deserialize)]
struct RawFilter {
    #[serde(default)]
    attributes: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
struct RawDestination {
    #[serde(rename = "ref")]
    reference: Option<RawRef>,
    uri: Option<String>,
}

#[derive(Deserialize)]
struct RawRef {
    kind: String,
    name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDelivery {
    retry: Option<i64>,
    backoff_policy: Option<String>,
    backoff_delay: Option<String>,
    timeout: Option<String>,
    dead_letter_sink: Option<RawDestination>,
}

struct PendingTrigger {
    name: String,
    file: String,
    filter: BTreeMap<String, String>,
    subscriber: String,
    delivery: DeliverySpec,
    delivery_order: String,
}

/// Parse every manifest. `fallback` fills what neither Trigger nor Broker says.
pub fn load(files: &[(String, String)], fallback: &Delivery) -> Result<Wiring, ManifestError> {
    let mut broker: Option<(String, DeliverySpec)> = None;
    let mut pending: Vec<PendingTrigger> = Vec::new();
    for (file, text) in files {
        let fail = |reason: String| ManifestError {
            file: file.clone(),
            reason,
        };
        for (index, doc) in serde_norway::Deserializer::from_str(text).enumerate() {
            let at = |reason: String| fail(format!("document {}: {reason}", index + 1));
            let value = serde_norway::Value::deserialize(doc).map_err(|e| at(e.to_string()))?;
            if value.is_null() {
                continue;
            }
            let raw: RawDoc =
                serde_norway::from_value(value).map_err(|e| at(format!("not a manifest: {e}")))?;
            match raw.kind.as_deref() {
                Some("Trigger") => {
                    if let Some(t) = trigger(file, raw).map_err(at)? {
                        if let Some(other) = pending.iter().find(|p| p.name == t.name) {
                            return Err(at(format!(
                                "Trigger {} is also declared in {}",
                                t.name, other.file
                            )));
                        }
                        pending.push(t);
                    }
                }
                Some("Broker") if raw.metadata.name.as_deref() == Some(BROKER_NAME) => {
                    if let Some((other, _)) = &broker {
                        return Err(at(format!(
                            "Broker {BROKER_NAME} is also declared in {other}"
                        )));
                    }
                    let spec: RawBrokerSpec = if raw.spec.is_null() {
                        RawBrokerSpec::default()
                    } else {
                        serde_norway::from_value(raw.spec)
                            .map_err(|e| at(format!("Broker spec: {e}")))?
                    };
                    let delivery = delivery_spec(spec.delivery).map_err(at)?;
                    broker = Some((file.clone(), delivery));
                }
                _ => {}
            }
        }
    }
    let (broker_file, broker_delivery) = match broker {
        Some((f, d)) => (Some(f), d),
        None => (None, DeliverySpec::default()),
    };
    let mut triggers: Vec<Trigger> = pending
        .into_iter()
        .map(|p| Trigger {
            name: p.name,
            file: p.file,
            filter: p.filter,
            subscriber: p.subscriber,
            delivery: p.delivery.or(&broker_delivery).resolve(fallback),
            delivery_order: p.delivery_order,
        })
        .collect();
    triggers.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Wiring {
        broker_file,
        defaults: broker_delivery.resolve(fallback),
        triggers,
    })
}

/// A Trigger document; `None` when it belongs to another Broker.
fn trigger(file: &str, raw: RawDoc) -> Result<Option<PendingTrigger>, String> {
    let name = raw
        .metadata
        .name
        .filter(|n| !n.trim().is_empty())
        .ok_or("Trigger has no metadata.name")?;
    let broker = raw.spec.get("broker").and_then(|b| b.as_str());
    match broker {
        None => return Err(format!("Trigger {name}: spec.broker is required")),
        Some(b) if b != BROKER_NAME => return Ok(None),
        Some(_) => {}
    }
    let spec: RawTriggerSpec =
        serde_norway::from_value(raw.spec).map_err(|e| format!("Trigger {name}: {e}"))?;
    debug_assert_eq!(spec.broker, BROKER_NAME);
    if spec.filters.as_ref().is_some_and(|f| !f.is_null()) {
        return Err(format!(
            "Trigger {name}: spec.filters (CESQL dialects) is not supported by the local broker; use spec.filter.attributes"
        ));
    }
    let subscriber = destination_url(&spec.subscriber)
        .map_err(|e| format!("Trigger {name}: spec.subscriber: {e}"))?;
    let delivery = delivery_spec(spec.delivery).map_err(|e| format!("Trigger {name}: {e}"))?;
    let delivery_order = match raw.metadata.annotations.get(DELIVERY_ORDER) {
        None => "unordered".to_owned(),
        Some(v) => match v.as_str() {
            Some(o @ ("ordered" | "unordered")) => o.to_owned(),
            _ => {
                return Err(format!(
                    "Trigger {name}: {DELIVERY_ORDER} must be ordered or unordered"
                ))
            }
        },
    };
    Ok(Some(PendingTrigger {
        name,
        file: file.to_owned(),
        filter: spec.filter.and_then(|f| f.attributes).unwrap_or_default(),
        subscriber,
        delivery,
        delivery_order,
    }))
}

/// Resolve a Knative destination to a URL the broker can call.
fn destination_url(d: &RawDestination) -> Result<String, String> {
    let uri = d.uri.as_deref().map(str::trim).filter(|u| !u.is_empty());
    match (&d.reference, uri) {
        (_, Some(u)) if u.contains("://") => Ok(u.to_owned()),
        (Some(r), uri) => {
            if r.kind != "Service" {
                return Err(format!(
                    "ref kind {} cannot be resolved locally (only Service, a Spin component id)",
                    r.kind
                ));
            }
            if r.name.is_empty()
                || !r
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            {
                return Err(format!("ref name {:?} is not a component id", r.name));
            }
            let path = match uri {
                None => String::new(),
                Some(p) if p.starts_with('/') => p.to_owned(),
                Some(p) => format!("/{p}"),
            };
            Ok(format!("http://{}.spin.internal{path}", r.name))
        }
        (None, Some(u)) => Err(format!(
            "uri {u:?} is relative but there is no ref to resolve it against"
        )),
        (None, None) => Err("neither ref nor uri is set".to_owned()),
    }
}

/// A manifest's `delivery` block, checked.
fn delivery_spec(raw: Option<RawDelivery>) -> Result<DeliverySpec, String> {
    let Some(raw) = raw else {
        return Ok(DeliverySpec::default());
    };
    let retry = raw
        .retry
        .map(|r| u32::try_from(r).map_err(|_| format!("delivery.retry {r} must be 0 or more")))
        .transpose()?;
    let backoff_policy = raw
        .backoff_policy
        .map(|p| {
            BackoffPolicy::parse(&p).ok_or_else(|| {
                format!("delivery.backoffPolicy {p:?} must be exponential or linear")
            })
        })
        .transpose()?;
    let iso = |field: &str, v: Option<String>| {
        v.map(|v| duration::parse(&v).map_err(|e| format!("delivery.{field}: {e}")))
            .transpose()
    };
    let dead_letter_sink = raw
        .dead_letter_sink
        .map(|d| match (&d.reference, &d.uri) {
            (Some(r), _) => Ok(format!("{}/{}", r.kind, r.name)),
            (None, Some(u)) => Ok(u.clone()),
            (None, None) => Err("delivery.deadLetterSink has neither ref nor uri".to_owned()),
        })
        .transpose()?;
    Ok(DeliverySpec {
        retry,
        backoff_policy,
        backoff_delay: iso("backoffDelay", raw.backoff_delay)?,
        timeout: iso("timeout", raw.timeout)?,
        dead_letter_sink,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::tests::stored;
    use std::time::Duration;

    fn fallback() -> Delivery {
        Delivery {
            retry: 4,
            backoff_policy: BackoffPolicy::Exponential,
            backoff_delay: Duration::from_millis(200),
            timeout: Duration::from_secs(30),
            dead_letter_sink: None,
        }
    }

    fn fixture(name: &str, text: &str) -> (String, String) {
        (name.to_owned(), text.to_owned())
    }

    fn fixtures() -> Vec<(String, String)> {
        vec![
            fixture(
                "broker.yaml",
                include_str!("../tests/fixtures/eventing/broker.yaml"),
            ),
            fixture(
                "triggers.yaml",
                include_str!("../tests/fixtures/eventing/triggers.yaml"),
            ),
        ]
    }

    #[test]
    fn a_loaded_wiring_survives_its_stored_json_copy() {
        let w = load(&fixtures(), &fallback()).unwrap();
        let json = serde_json::to_string(&w).unwrap();
        assert_eq!(serde_json::from_str::<Wiring>(&json).unwrap(), w);
    }

    #[test]
    fn the_fixture_triggers_load_with_resolved_subscribers() {
        let w = load(&fixtures(), &fallback()).unwrap();
        assert_eq!(w.broker_file.as_deref(), Some("broker.yaml"));
        let names: Vec<&str> = w.triggers.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "allocate-payment-approved",
                "audit-everything",
                "external-by-uri",
                "pay-grab-cancelled"
            ]
        );
        let t = w.trigger("allocate-payment-approved").unwrap();
        assert_eq!(
            t.subscriber,
            "http://allocate.spin.internal/events/allocate"
        );
        assert_eq!(t.delivery_order, "ordered");
        assert_eq!(
            w.trigger("external-by-uri").unwrap().subscriber,
            "http://audit.spin.internal/hooks/all"
        );
    }

    #[test]
    fn trigger_delivery_overrides_broker_defaults_field_by_field() {
        let w = load(&fixtures(), &fallback()).unwrap();
        let t = w.trigger("allocate-payment-approved").unwrap();
        assert_eq!(t.delivery.retry, 5);
        assert_eq!(t.delivery.backoff_delay, Duration::from_millis(500));
        assert_eq!(t.delivery.backoff_policy, BackoffPolicy::Linear);
        assert_eq!(t.delivery.timeout, Duration::from_secs(10));
        assert_eq!(
            t.delivery.dead_letter_sink.as_deref(),
            Some("KafkaSink/htaxi-dead-letters")
        );
        let d = &w.trigger("pay-grab-cancelled").unwrap().delivery;
        assert_eq!(d.retry, 10);
        assert_eq!(d.backoff_delay, Duration::from_millis(200));
        assert_eq!(d.backoff_policy, BackoffPolicy::Exponential);
        assert_eq!(d.timeout, Duration::from_secs(30));
    }

    #[test]
    fn without_a_broker_the_local_fallbacks_apply() {
        let files = vec![fixture(
            "triggers.yaml",
            include_str!("../tests/fixtures/eventing/triggers.yaml"),
        )];
        let w = load(&files, &fallback()).unwrap();
        assert_eq!(w.broker_file, None);
        assert_eq!(
            w.trigger("pay-grab-cancelled").unwrap().delivery,
            fallback()
        );
    }

    #[test]
    fn triggers_of_other_brokers_and_other_kinds_are_ignored() {
        let w = load(&fixtures(), &fallback()).unwrap();
        assert!(w.trigger("other-broker").is_none());
        assert_eq!(w.triggers.len(), 4);
    }

    #[test]
    fn filters_match_exactly_on_every_attribute() {
        let w = load(&fixtures(), &fallback()).unwrap();
        let approved = stored("htaxi.PaymentApproved");
        let names: Vec<&str> = w.matching(&approved).map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "allocate-payment-approved",
                "audit-everything",
                "external-by-uri"
            ]
        );
        let mut cancelled = stored("htaxi.GrabCancelled");
        let names: Vec<&str> = w.matching(&cancelled).map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            ["audit-everything", "external-by-uri"],
            "pay's trigger also wants source /htaxi/grab"
        );
        cancelled.envelope.source = "/htaxi/grab".into();
        let names: Vec<&str> = w.matching(&cancelled).map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            ["audit-everything", "external-by-uri", "pay-grab-cancelled"]
        );
    }

    #[test]
    fn filter_values_are_case_sensitive() {
        let w = load(&fixtures(), &fallback()).unwrap();
        let t = w.trigger("allocate-payment-approved").unwrap();
        assert!(!t.matches(&stored("htaxi.paymentapproved")));
    }

    fn broken(text: &str) -> ManifestError {
        let mut files = fixtures();
        files.push(fixture("broken.yaml", text));
        load(&files, &fallback()).unwrap_err()
    }

    #[test]
    fn a_yaml_syntax_error_names_the_file() {
        let e = broken("kind: Trigger\nmetadata: [unclosed\n");
        assert_eq!(e.file, "broken.yaml");
        assert!(e.to_string().starts_with("broken.yaml: document 1"), "{e}");
    }

    #[test]
    fn invalid_triggers_are_refused_with_a_reason() {
        let cases = [
            (include_str!("../tests/fixtures/broken/bad-backoff.yaml"), "backoffDelay"),
            (include_str!("../tests/fixtures/broken/no-subscriber.yaml"), "neither ref nor uri"),
            (
                "kind: Trigger\nmetadata: {name: x}\nspec: {broker: default, subscriber: {ref: {kind: Service, name: a}}, delivery: {backoffPolicy: random}}\n",
                "backoffPolicy",
            ),
            (
                "kind: Trigger\nmetadata: {name: x}\nspec: {broker: default, subscriber: {ref: {kind: Service, name: a}}, delivery: {retry: -1}}\n",
                "retry",
            ),
            ("kind: Trigger\nmetadata: {name: x}\nspec: {subscriber: {uri: http://a/}}\n", "spec.broker"),
            (
                "kind: Trigger\nmetadata: {name: x}\nspec: {broker: default, subscriber: {ref: {kind: Channel, name: a}}}\n",
                "only Service",
            ),
            (
                "kind: Trigger\nmetadata: {name: x}\nspec: {broker: default, filters: [{exact: {type: a}}], subscriber: {uri: http://a/}}\n",
                "spec.filters",
            ),
            (
                "kind: Trigger\nmetadata: {name: pay-grab-cancelled}\nspec: {broker: default, subscriber: {uri: http://a/}}\n",
                "also declared in triggers.yaml",
            ),
        ];
        for (text, needle) in cases {
            let e = broken(text);
            assert_eq!(e.file, "broken.yaml");
            assert!(e.reason.contains(needle), "{needle:?} not in {e}");
        }
    }

    #[test]
    fn the_project_manifests_load_if_present() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../knative/base/eventing");
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let files: Vec<(String, String)> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".yaml"))
            .map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                (name, std::fs::read_to_string(e.path()).unwrap())
            })
            .collect();
        let w = load(&files, &fallback()).unwrap();
        assert!(w.broker_file.is_some());
        for t in &w.triggers {
            assert!(t.subscriber.starts_with("http://"), "{}", t.subscriber);
            assert!(t.filter.contains_key("type"), "{}", t.name);
        }
    }
}
