//! The published event contract (`docs/events/`: the AsyncAPI document and one JSON Schema
//! per event's data), compiled with the `jsonschema` crate so that tests check real events
//! against the very document a team in another language reads.

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::repo_root;

/// Where the documents claim to live (their `$id`s); nothing is fetched from there.
const BASE: &str = "https://htaxi.dev/events/";

/// One message of the AsyncAPI document, compiled.
struct Message {
    /// `x-htaxi-id-key`: the data field the CloudEvent id is keyed by.
    id_key: String,
    headers: jsonschema::Validator,
    data: jsonschema::Validator,
}

/// The compiled contract.
pub struct Contract {
    doc: Value,
    messages: BTreeMap<String, Message>,
}

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
}

/// Every event type the contract lists, with its schema file, from `docs/events/schemas`.
pub fn schema_files() -> Result<BTreeMap<String, Value>> {
    let dir = repo_root().join("docs/events/schemas");
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("{}", dir.display()))? {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) == Some("json") {
            let name = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default();
            out.insert(name.to_owned(), read_json(&path)?);
        }
    }
    Ok(out)
}

impl Contract {
    /// Load and compile `docs/events/asyncapi.yaml` and the schemas it refers to.
    pub fn load() -> Result<Contract> {
        let root = repo_root();
        let yaml = std::fs::read_to_string(root.join("docs/events/asyncapi.yaml"))?;
        let doc: Value = serde_norway::from_str(&yaml).context("asyncapi.yaml is YAML")?;
        if doc["asyncapi"].as_str().map(|v| v.starts_with("3.")) != Some(true) {
            bail!("asyncapi.yaml must be AsyncAPI 3.x");
        }
        let resource = |v: Value| {
            jsonschema::Resource::from_contents(v).map_err(|e| anyhow!("not a resource: {e}"))
        };
        let mut resources = vec![(format!("{BASE}asyncapi.yaml"), resource(doc.clone())?)];
        for (name, schema) in schema_files()? {
            let id = format!("{BASE}schemas/{name}.json");
            if schema["$id"] != json!(id) {
                bail!("schemas/{name}.json: $id must be {id}");
            }
            resources.push((id, resource(schema)?));
        }
        let compile = |pointer: String| -> Result<jsonschema::Validator> {
            let mut opts = jsonschema::options()
                .with_draft(jsonschema::Draft::Draft202012)
                .should_validate_formats(true);
            for (uri, res) in &resources {
                opts = opts.with_resource(uri.clone(), res.clone());
            }
            opts.build(&json!({ "$ref": format!("{BASE}asyncapi.yaml#{pointer}") }))
                .map_err(|e| anyhow!("compiling {pointer}: {e}"))
        };
        let mut messages = BTreeMap::new();
        let listed = doc["components"]["messages"]
            .as_object()
            .context("components.messages")?;
        for (name, m) in listed {
            let ty = m["name"].as_str().context("message name")?.to_owned();
            if ty != format!("htaxi.{name}") {
                bail!("message {name} must be named htaxi.{name}");
            }
            let id_key = m["x-htaxi-id-key"]
                .as_str()
                .with_context(|| format!("{name}: x-htaxi-id-key"))?
                .to_owned();
            let at = format!("/components/messages/{name}");
            messages.insert(
                ty,
                Message {
                    id_key,
                    headers: compile(format!("{at}/headers"))?,
                    data: compile(format!("{at}/payload/schema"))?,
                },
            );
        }
        Ok(Contract { doc, messages })
    }

    /// Every CloudEvent `type` the contract defines.
    pub fn types(&self) -> BTreeSet<String> {
        self.messages.keys().cloned().collect()
    }

    /// (channel address, event type) for every subscriber channel (`/events/<id>`).
    pub fn subscriptions(&self) -> BTreeSet<(String, String)> {
        let mut out = BTreeSet::new();
        for channel in self.doc["channels"].as_object().into_iter().flatten() {
            let address = channel.1["address"].as_str().unwrap_or_default();
            if !address.starts_with("/events/") {
                continue;
            }
            for m in channel.1["messages"].as_object().into_iter().flatten() {
                let r = m.1["$ref"].as_str().unwrap_or_default();
                let name = r.rsplit('/').next().unwrap_or_default();
                out.insert((address.to_owned(), format!("htaxi.{name}")));
            }
        }
        out
    }

    /// Whether `data` is what the contract allows for `event_type`.
    pub fn data_is_valid(&self, event_type: &str, data: &Value) -> bool {
        self.messages
            .get(event_type)
            .is_some_and(|m| m.data.is_valid(data))
    }

    /// Check one emitted event (its attributes, as the broker logs them, and its data):
    /// the binary-mode headers against the message's header schema, the data against its
    /// schema, and the rules the schemas cannot say (id key, subject = partitionkey =
    /// data.grabId). Returns every violation.
    pub fn check(&self, attributes: &Map<String, Value>, data: &Value) -> Vec<String> {
        let ty = attributes
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("?");
        let Some(m) = self.messages.get(ty) else {
            return vec![format!("type {ty} is not in the contract")];
        };
        let mut headers: Map<String, Value> = attributes
            .iter()
            .filter(|(k, _)| k.as_str() != "datacontenttype")
            .map(|(k, v)| (format!("ce-{k}"), v.clone()))
            .collect();
        if let Some(ct) = attributes.get("datacontenttype") {
            headers.insert("content-type".into(), ct.clone());
        }
        let headers = Value::Object(headers);
        let mut problems: Vec<String> = m
            .headers
            .iter_errors(&headers)
            .map(|e| format!("{ty} attribute {}: {e}", e.instance_path))
            .collect();
        problems.extend(
            m.data
                .iter_errors(data)
                .map(|e| format!("{ty} data{}: {e}", e.instance_path)),
        );
        let name = &ty["htaxi.".len()..];
        let want_id = format!("{name}:{}", data[&m.id_key].as_str().unwrap_or("?"));
        if attributes.get("id") != Some(&json!(want_id)) {
            problems.push(format!("{ty}: id must be {want_id}"));
        }
        for attr in ["subject", "partitionkey"] {
            if attributes.get(attr) != Some(&data["grabId"]) {
                problems.push(format!("{ty}: {attr} must be data.grabId"));
            }
        }
        problems
    }
}

/// Every event in the local broker's log (`GET /broker/events`), newest first: each has
/// `attributes`, `data` and `deliveries`.
pub async fn broker_events(s: &crate::Saga) -> Result<Vec<Value>> {
    let a = s.get("/broker/events?limit=500").await?;
    match a.body {
        Value::Array(v) => Ok(v),
        _ => bail!("GET /broker/events: {} {}", a.status, a.text),
    }
}

/// One HTTP message the official Python CloudEvents SDK produced.
#[derive(Debug, Clone)]
pub struct SdkMessage {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Encode events with the official Python SDK (`tests/e2e/python/sdk_encode.py`, run by the
/// project's `.venv` that `make build` installs). Each item: (mode, attributes, data), mode
/// `binary` or `structured`.
pub fn python_sdk_encode(items: &[(&str, Value, Value)]) -> Result<Vec<SdkMessage>> {
    use std::io::Write;
    let root = repo_root();
    let python = root.join(".venv/bin/python");
    if !python.exists() {
        bail!("{} is missing: run `make build` first", python.display());
    }
    let input: Vec<Value> = items
        .iter()
        .map(|(mode, attributes, data)| json!({"mode": mode, "attributes": attributes, "data": data}))
        .collect();
    let mut child = std::process::Command::new(python)
        .arg(root.join("tests/e2e/python/sdk_encode.py"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("running the Python SDK encoder")?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(&serde_json::to_vec(&input)?)?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("sdk_encode.py failed: {}", out.status);
    }
    let encoded: Vec<Value> = serde_json::from_slice(&out.stdout)?;
    encoded
        .into_iter()
        .map(|m| {
            let headers = m["headers"]
                .as_object()
                .context("headers")?
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect();
            let body = m["body"].as_str().context("body")?.as_bytes().to_vec();
            Ok(SdkMessage { headers, body })
        })
        .collect()
}
