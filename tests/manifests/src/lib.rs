//! Test support for the `manifests` crate: loads the Spin application (`spin.toml`) and the Knative
//! manifests under `knative/` as plain data, so the tests in `tests/` can check that the cluster
//! wiring matches the app (routes, variables, databases, event subscriptions).
//!
//! Native and test-only. The repository root is `HTAXI_REPO_ROOT` if set (used to run the tests
//! against a mutated copy), otherwise two levels above this crate.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

/// Event types each component emits. Mirrors DESIGN.md section 4 (the saga contract) plus
/// `htaxi.RideCompleted` (the driver's drop-off, which DESIGN.md leaves out); may later be
/// replaced by the shared crate's event catalogue.
pub const EMITS: &[(&str, &[&str])] = &[
    ("grab", &["htaxi.GrabRequested", "htaxi.GrabCancelled"]),
    (
        "pay",
        &[
            "htaxi.PaymentApproved",
            "htaxi.PaymentRejected",
            "htaxi.PaymentRefunded",
        ],
    ),
    (
        "allocate",
        &[
            "htaxi.TaxiOffered",
            "htaxi.TaxiAllocated",
            "htaxi.AllocationFailed",
            "htaxi.AllocationCancelled",
            "htaxi.RideStarted",
            "htaxi.RideCompleted",
        ],
    ),
    ("grab-status", &[]),
    ("notify", &[]),
    ("console", &[]),
];

/// Subscriptions of the saga: (subscriber component, event types). Mirrors DESIGN.md sections 2-4;
/// the local broker and the components rely on exactly this set.
pub const SUBSCRIPTIONS: &[(&str, &[&str])] = &[
    (
        "grab",
        &[
            "htaxi.TaxiAllocated",
            "htaxi.AllocationFailed",
            "htaxi.RideStarted",
            "htaxi.RideCompleted",
        ],
    ),
    ("pay", &["htaxi.AllocationFailed", "htaxi.GrabCancelled"]),
    (
        "allocate",
        &["htaxi.PaymentApproved", "htaxi.GrabCancelled"],
    ),
    (
        "grab-status",
        &[
            "htaxi.GrabRequested",
            "htaxi.GrabCancelled",
            "htaxi.PaymentApproved",
            "htaxi.PaymentRejected",
            "htaxi.PaymentRefunded",
            "htaxi.TaxiOffered",
            "htaxi.TaxiAllocated",
            "htaxi.AllocationFailed",
            "htaxi.AllocationCancelled",
            "htaxi.RideStarted",
            "htaxi.RideCompleted",
        ],
    ),
    (
        "notify",
        &[
            "htaxi.PaymentApproved",
            "htaxi.PaymentRejected",
            "htaxi.PaymentRefunded",
            "htaxi.TaxiAllocated",
            "htaxi.AllocationFailed",
            "htaxi.RideStarted",
            "htaxi.RideCompleted",
        ],
    ),
];

/// Components that run only locally (never a Knative Service).
pub const LOCAL_ONLY_COMPONENTS: &[&str] = &["broker"];

/// Spin variables only `make up` sets (a default turns the feature off): no Knative manifest
/// may set them. The console's dev sign-in key signs tokens for any role.
pub const DEV_ONLY_VARIABLES: &[&str] = &["console_dev_signing_key"];

/// The namespace everything is deployed to.
pub const NAMESPACE: &str = "htaxi";

/// Repository root.
pub fn repo_root() -> PathBuf {
    match std::env::var_os("HTAXI_REPO_ROOT") {
        Some(root) => PathBuf::from(root),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."),
    }
}

/// Reads a file under the repository root; panics with the path on failure.
pub fn read(rel: &str) -> String {
    let path = repo_root().join(rel);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

// ------------------------------------------------------------------------------------ spin.toml

#[derive(Debug, Deserialize)]
struct RawManifest {
    #[serde(default)]
    variables: BTreeMap<String, RawVariable>,
    #[serde(default)]
    trigger: RawTriggers,
    #[serde(default)]
    component: BTreeMap<String, RawComponent>,
}

#[derive(Debug, Default, Deserialize)]
struct RawTriggers {
    #[serde(default)]
    http: Vec<RawHttpTrigger>,
}

#[derive(Debug, Deserialize)]
struct RawHttpTrigger {
    route: String,
    component: String,
}

/// A Spin application variable (`[variables]`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RawVariable {
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub secret: bool,
    pub default: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawComponent {
    #[serde(default)]
    variables: BTreeMap<String, String>,
    #[serde(default)]
    sqlite_databases: Vec<String>,
    #[serde(default)]
    files: Vec<toml::Value>,
    #[serde(default)]
    allowed_outbound_hosts: Vec<String>,
}

/// One Spin component as the tests need it.
#[derive(Debug, Clone)]
pub struct Component {
    pub id: String,
    /// HTTP routes (`[[trigger.http]] route`) of this component.
    pub routes: Vec<String>,
    /// Keys of `[component.<id>.variables]`: the variables this component reads.
    pub variables: BTreeSet<String>,
    /// Application variables (`[variables]`) this component's variable templates and
    /// `allowed_outbound_hosts` use: the ones its deployment must be able to set.
    pub app_variables: BTreeSet<String>,
    /// `allowed_outbound_hosts`, as written (entries may be `{{ var }}` templates).
    pub allowed_outbound_hosts: Vec<String>,
    pub sqlite_databases: Vec<String>,
    /// `files` entries as (source, destination); a bare string has no destination.
    pub files: Vec<(String, Option<String>)>,
}

/// The parts of `spin.toml` the tests use.
#[derive(Debug, Clone)]
pub struct SpinApp {
    pub variables: BTreeMap<String, RawVariable>,
    pub components: BTreeMap<String, Component>,
}

impl SpinApp {
    /// Loads `spin.toml` from the repository root.
    pub fn load() -> Self {
        let raw: RawManifest = toml::from_str(&read("spin.toml")).expect("spin.toml parses");
        let mut components: BTreeMap<String, Component> = raw
            .component
            .into_iter()
            .map(|(id, c)| {
                let files = c
                    .files
                    .iter()
                    .map(|f| match f {
                        toml::Value::String(s) => (s.clone(), None),
                        toml::Value::Table(t) => (
                            t.get("source")
                                .and_then(|v| v.as_str())
                                .unwrap_or("")
                                .to_owned(),
                            t.get("destination")
                                .and_then(|v| v.as_str())
                                .map(str::to_owned),
                        ),
                        other => panic!("unexpected files entry {other:?}"),
                    })
                    .collect();
                let app_variables = c
                    .variables
                    .values()
                    .chain(&c.allowed_outbound_hosts)
                    .flat_map(|t| template_variables(t))
                    .collect();
                let comp = Component {
                    id: id.clone(),
                    routes: Vec::new(),
                    variables: c.variables.keys().cloned().collect(),
                    app_variables,
                    allowed_outbound_hosts: c.allowed_outbound_hosts,
                    sqlite_databases: c.sqlite_databases,
                    files,
                };
                (id, comp)
            })
            .collect();
        for t in raw.trigger.http {
            components
                .get_mut(&t.component)
                .unwrap_or_else(|| {
                    panic!("route {} names unknown component {}", t.route, t.component)
                })
                .routes
                .push(t.route);
        }
        SpinApp {
            variables: raw.variables,
            components,
        }
    }

    /// Components deployed as Knative Services (all but the local-only ones).
    pub fn deployable(&self) -> BTreeSet<String> {
        self.components
            .keys()
            .filter(|id| !LOCAL_ONLY_COMPONENTS.contains(&id.as_str()))
            .cloned()
            .collect()
    }

    /// The component owning a request path, using Spin's routing (exact, or `/prefix/...` wildcard).
    pub fn owner_of(&self, path: &str) -> Option<&str> {
        // Spin picks the most specific match; an exact route beats a wildcard.
        let mut best: Option<(&str, usize, bool)> = None;
        for c in self.components.values() {
            for r in &c.routes {
                if let Some((len, exact)) = route_match(r, path) {
                    let better = match best {
                        None => true,
                        Some((_, blen, bexact)) => {
                            (exact && !bexact) || (exact == bexact && len > blen)
                        }
                    };
                    if better {
                        best = Some((c.id.as_str(), len, exact));
                    }
                }
            }
        }
        best.map(|(id, _, _)| id)
    }

    /// True if `path` is served by component `id`.
    pub fn serves(&self, id: &str, path: &str) -> bool {
        self.owner_of(path) == Some(id)
    }
}

/// Matches a Spin route against a path: `Some((specificity, exact))` on a match.
pub fn route_match(route: &str, path: &str) -> Option<(usize, bool)> {
    if let Some(prefix) = route.strip_suffix("/...") {
        let ok = path == prefix || path.starts_with(&format!("{prefix}/"));
        ok.then_some((prefix.len(), false))
    } else {
        (route == path).then_some((route.len(), true))
    }
}

/// The variable names a Spin template (`"{{ a }}/x{{b}}"`) refers to, in order.
pub fn template_variables(template: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        out.push(after[..end].trim().to_owned());
        rest = &after[end + 2..];
    }
    out
}

/// Renders a Spin template with `value_of` each variable; `None` if one has no value.
pub fn render_template(
    template: &str,
    value_of: impl Fn(&str) -> Option<String>,
) -> Option<String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find("}}")?;
        out.push_str(&value_of(after[..end].trim())?);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Some(out)
}

/// `pay_url` -> `SPIN_VARIABLE_PAY_URL` (Spin's environment variable provider).
pub fn spin_env_name(variable: &str) -> String {
    format!("SPIN_VARIABLE_{}", variable.to_uppercase())
}

/// `PaymentApproved` -> `payment-approved`.
pub fn kebab(name: &str) -> String {
    let mut out = String::new();
    for (i, ch) in name.chars().enumerate() {
        if ch.is_ascii_uppercase() {
            if i > 0 {
                out.push('-');
            }
            out.push(ch.to_ascii_lowercase());
        } else {
            out.push(ch);
        }
    }
    out
}

// ------------------------------------------------------------------------------------ manifests

/// One Kubernetes object read from a file.
#[derive(Debug, Clone)]
pub struct Object {
    /// File it came from, relative to the repository root.
    pub file: String,
    pub value: Value,
}

impl Object {
    pub fn kind(&self) -> &str {
        self.value["kind"].as_str().unwrap_or("")
    }
    pub fn api_version(&self) -> &str {
        self.value["apiVersion"].as_str().unwrap_or("")
    }
    pub fn name(&self) -> &str {
        self.value["metadata"]["name"].as_str().unwrap_or("")
    }
    /// `kind` plus apiVersion group check in one: e.g. is("serving.knative.dev/v1", "Service").
    pub fn is(&self, api_version: &str, kind: &str) -> bool {
        self.api_version() == api_version && self.kind() == kind
    }
    /// A value at a JSON pointer, or Null.
    pub fn at(&self, pointer: &str) -> &Value {
        self.value.pointer(pointer).unwrap_or(&Value::Null)
    }
    pub fn str_at(&self, pointer: &str) -> Option<&str> {
        self.at(pointer).as_str()
    }
}

/// Parses every YAML document of a file into JSON values (empty documents skipped).
pub fn parse_yaml_docs(text: &str, origin: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(text)
        .map(|doc| {
            let v: serde_norway::Value = serde_norway::Value::deserialize(doc)
                .unwrap_or_else(|e| panic!("{origin}: invalid YAML: {e}"));
            serde_json::to_value(v).unwrap_or_else(|e| panic!("{origin}: not JSON-like: {e}"))
        })
        .filter(|v| !v.is_null())
        .collect()
}

/// Every object in every `*.yaml` file under `dir` (recursive), except kustomization files.
pub fn objects_under(dir: &str) -> Vec<Object> {
    let mut files = Vec::new();
    collect_yaml(&repo_root().join(dir), &mut files);
    files.sort();
    let root = repo_root();
    files
        .into_iter()
        .filter(|p| p.file_name().and_then(|n| n.to_str()) != Some("kustomization.yaml"))
        .flat_map(|p| {
            let rel = p
                .strip_prefix(&root)
                .unwrap_or(&p)
                .to_string_lossy()
                .into_owned();
            let text = fs::read_to_string(&p).unwrap_or_else(|e| panic!("{rel}: {e}"));
            parse_yaml_docs(&text, &rel)
                .into_iter()
                .map(move |value| Object {
                    file: rel.clone(),
                    value,
                })
        })
        .collect()
}

fn collect_yaml(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries =
        fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            collect_yaml(&path, out);
        } else if path.extension().and_then(|e| e.to_str()) == Some("yaml") {
            out.push(path);
        }
    }
}

/// A kustomization file as JSON.
pub fn kustomization(dir: &str) -> Value {
    let rel = format!("{dir}/kustomization.yaml");
    parse_yaml_docs(&read(&rel), &rel)
        .into_iter()
        .next()
        .expect("kustomization has a document")
}

/// The inline patches of a kustomization that target `kind`/`name` (or all objects of `kind`
/// when the target has no name), flattened into JSON-patch operations.
pub fn patch_ops_for(kustomization: &Value, kind: &str, name: &str) -> Vec<Value> {
    let mut ops = Vec::new();
    for p in kustomization["patches"].as_array().into_iter().flatten() {
        let target = &p["target"];
        if target["kind"].as_str() != Some(kind) {
            continue;
        }
        if let Some(n) = target["name"].as_str() {
            if n != name {
                continue;
            }
        }
        let text = p["patch"].as_str().expect("inline patch");
        for doc in parse_yaml_docs(text, "inline patch") {
            ops.extend(doc.as_array().cloned().unwrap_or_default());
        }
    }
    ops
}
