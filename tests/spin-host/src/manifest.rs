//! Strict loader for Spin manifest v2 (`spin.toml`) and the runtime config
//! file (`--runtime-config-file`).
//!
//! Spin's own manifest types use `#[serde(deny_unknown_fields)]`, so a typo in
//! `spin.toml` fails `spin up`. We go one step further: keys that real Spin
//! accepts but this host does not implement (e.g. `ai_models`, `dependencies`,
//! wagi executors) are rejected too, naming the key, so a test can never pass
//! on a feature the host silently ignored.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use toml::Value;

use crate::allowed_hosts::AllowedHostsConfig;
use crate::variables::{validate_key, Template};

/// The whole application, as declared by `spin.toml`.
#[derive(Debug, Clone)]
pub struct AppManifest {
    /// Directory containing `spin.toml`; relative `source`/`files` resolve here.
    pub app_dir: PathBuf,
    /// `[application] name`.
    pub name: String,
    /// `[variables]`, by name.
    pub variables: BTreeMap<String, VariableDecl>,
    /// `[[trigger.http]]`, in manifest order (Spin's router keeps this order).
    pub http_triggers: Vec<HttpTrigger>,
    /// `[component.<id>]`, by id.
    pub components: BTreeMap<String, ComponentDecl>,
}

/// One `[variables]` entry.
#[derive(Debug, Clone, Default)]
pub struct VariableDecl {
    /// `default = "..."`.
    pub default: Option<String>,
    /// `required = true`.
    pub required: bool,
    /// `secret = true` (values are never logged).
    pub secret: bool,
}

/// What a `[[trigger.http]]` route is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteConfig {
    /// `route = "/path"` or `route = "/prefix/..."`.
    Route(String),
    /// `route = { private = true }`: reachable only by service chaining.
    Private,
}

/// One `[[trigger.http]]` entry.
#[derive(Debug, Clone)]
pub struct HttpTrigger {
    /// The component the trigger runs.
    pub component: String,
    /// Its route.
    pub route: RouteConfig,
}

/// A `files` mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileMount {
    /// A glob pattern relative to the app dir; matches mount at their relative path.
    Pattern(String),
    /// `{ source = "dir-or-file", destination = "/abs" }`.
    Placement {
        /// Host path relative to the app dir.
        source: String,
        /// Absolute guest path.
        destination: String,
    },
}

/// One `[component.<id>]` table.
#[derive(Debug, Clone)]
pub struct ComponentDecl {
    /// Component id.
    pub id: String,
    /// Absolute path of the `.wasm`.
    pub source: PathBuf,
    /// `sqlite_databases` labels.
    pub sqlite_databases: Vec<String>,
    /// `key_value_stores` labels.
    pub key_value_stores: Vec<String>,
    /// `[component.<id>.variables]`: config key → template.
    pub variables: BTreeMap<String, Template>,
    /// `allowed_outbound_hosts`, as written (may contain `{{ var }}` templates).
    pub allowed_outbound_hosts: Vec<String>,
    /// `files`.
    pub files: Vec<FileMount>,
    /// `environment`: WASI environment variables.
    pub environment: BTreeMap<String, String>,
    /// `description`.
    pub description: Option<String>,
}

/// The parts of the runtime config file this host understands.
#[derive(Debug, Clone, Default)]
pub struct RuntimeConfig {
    /// `state_dir = "..."` (overridden by `--state-dir`).
    pub state_dir: Option<PathBuf>,
    /// `[sqlite_database.<label>]`: label → database file (`None` = in-memory).
    pub sqlite_databases: BTreeMap<String, Option<PathBuf>>,
    /// `[key_value_store.<label>]`: label → database file (`None` = in-memory).
    pub key_value_stores: BTreeMap<String, Option<PathBuf>>,
}

fn unsupported(path: &str) -> anyhow::Error {
    anyhow::anyhow!("unsupported manifest key {path:?}")
}

fn table<'a>(v: &'a Value, path: &str) -> Result<&'a toml::Table> {
    v.as_table()
        .with_context(|| format!("manifest key {path:?} must be a table"))
}

fn string(v: &Value, path: &str) -> Result<String> {
    v.as_str()
        .map(str::to_owned)
        .with_context(|| format!("manifest key {path:?} must be a string"))
}

fn strings(v: &Value, path: &str) -> Result<Vec<String>> {
    v.as_array()
        .with_context(|| format!("manifest key {path:?} must be an array of strings"))?
        .iter()
        .enumerate()
        .map(|(i, s)| string(s, &format!("{path}[{i}]")))
        .collect()
}

fn boolean(v: &Value, path: &str) -> Result<bool> {
    v.as_bool()
        .with_context(|| format!("manifest key {path:?} must be a boolean"))
}

impl AppManifest {
    /// Reads and validates `spin.toml`.
    ///
    /// Fails on TOML errors, on any unknown or unsupported key (naming it),
    /// on templates that reference undeclared variables and on malformed
    /// `allowed_outbound_hosts`, like `spin up` does.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("failed to read manifest {}", path.display()))?;
        let app_dir = std::path::absolute(path)?
            .parent()
            .context("manifest path has no parent directory")?
            .to_owned();
        Self::parse(&text, &app_dir)
            .with_context(|| format!("Failed to load Spin app from \"{}\"", path.display()))
    }

    /// Parses manifest text; `app_dir` anchors relative paths.
    pub fn parse(text: &str, app_dir: &Path) -> Result<Self> {
        let root: toml::Table = toml::from_str(text).context("manifest is not valid TOML")?;
        let mut name = None;
        let mut variables = BTreeMap::new();
        let mut http_triggers = Vec::new();
        let mut component_tables = BTreeMap::new();
        let mut version_seen = false;

        for (key, value) in &root {
            match key.as_str() {
                "spin_manifest_version" => {
                    if value.as_integer() != Some(2) {
                        bail!("only spin_manifest_version = 2 is supported");
                    }
                    version_seen = true;
                }
                "application" => name = Some(parse_application(value)?),
                "variables" => {
                    for (var, decl) in table(value, "variables")? {
                        let path = format!("variables.{var}");
                        validate_key(var)
                            .with_context(|| format!("invalid variable name in {path:?}"))?;
                        variables.insert(var.clone(), parse_variable(decl, &path)?);
                    }
                }
                "trigger" => {
                    for (kind, list) in table(value, "trigger")? {
                        if kind != "http" {
                            bail!("unsupported manifest key \"trigger.{kind}\": spin-host runs HTTP triggers only");
                        }
                        let list = list
                            .as_array()
                            .context("manifest key \"trigger.http\" must be an array of tables ([[trigger.http]])")?;
                        for (i, t) in list.iter().enumerate() {
                            http_triggers.push(parse_trigger(t, &format!("trigger.http[{i}]"))?);
                        }
                    }
                }
                "component" => {
                    for (id, c) in table(value, "component")? {
                        component_tables.insert(id.clone(), c.clone());
                    }
                }
                other => return Err(unsupported(other)),
            }
        }
        if !version_seen {
            bail!("manifest lacks spin_manifest_version = 2");
        }
        let name = name.context("manifest lacks an [application] table with a name")?;

        let mut components = BTreeMap::new();
        for (id, c) in &component_tables {
            components.insert(id.clone(), parse_component(id, c, app_dir, &variables)?);
        }
        for t in &http_triggers {
            if !components.contains_key(&t.component) {
                bail!(
                    "trigger for route {:?} references component {:?} which is not defined",
                    t.route,
                    t.component
                );
            }
        }
        Ok(AppManifest {
            app_dir: app_dir.to_owned(),
            name,
            variables,
            http_triggers,
            components,
        })
    }

    /// Keeps only the named components (like `spin up --component-id` /
    /// `SPIN_COMPONENTS_TO_RETAIN`), failing as Spin 3.6 does
    /// (`crates/app/src/lib.rs`, `retain_components`): every named component
    /// must exist, then `validate_service_chaining_for_components`
    /// (`crates/factor-outbound-networking/src/allowed_hosts.rs`) walks the
    /// triggers in manifest order and refuses a retained component whose
    /// `allowed_outbound_hosts` names `http://<dropped>.spin.internal` or
    /// `http://*.spin.internal`. Entries that do not parse as a URI, i.e.
    /// templates such as `"{{ pay_url }}"`, are skipped: Spin resolves them
    /// only at run time.
    pub fn retain_components(&mut self, keep: &[String]) -> Result<()> {
        for id in keep {
            if !self.components.contains_key(id) {
                bail!("Specified component {id:?} not found in application");
            }
        }
        for trigger in &self.http_triggers {
            let id = &trigger.component;
            if !keep.contains(id) {
                continue;
            }
            for host in &self.components[id].allowed_outbound_hosts {
                let Ok(uri) = host.parse::<http::Uri>() else {
                    continue;
                };
                let Some(target) = crate::allowed_hosts::service_chaining_target(&uri) else {
                    continue;
                };
                if !keep.contains(&target) {
                    if target == "*" {
                        bail!("Selected component '{id}' cannot use wildcard service chaining: allowed_outbound_hosts = [\"http://*.spin.internal\"]");
                    }
                    bail!("Selected component '{id}' cannot use service chaining to unselected component: allowed_outbound_hosts = [\"http://{target}.spin.internal\"]");
                }
            }
        }
        self.components.retain(|id, _| keep.contains(id));
        self.http_triggers.retain(|t| keep.contains(&t.component));
        Ok(())
    }
}

fn parse_application(value: &Value) -> Result<String> {
    let mut name = None;
    for (key, v) in table(value, "application")? {
        let path = format!("application.{key}");
        match key.as_str() {
            "name" => name = Some(string(v, &path)?),
            "version" | "description" => {
                string(v, &path)?;
            }
            "authors" | "targets" => {
                strings(v, &path)?;
            }
            // Tool-specific metadata is opaque to Spin too.
            "tool" => {}
            "trigger" => {
                for (kind, cfg) in table(v, &path)? {
                    for (k, val) in table(cfg, &format!("{path}.{kind}"))? {
                        // `base` was removed in Spin 3; only the no-op value is accepted.
                        if kind == "http" && k == "base" && val.as_str() == Some("/") {
                            continue;
                        }
                        return Err(unsupported(&format!("{path}.{kind}.{k}")));
                    }
                }
            }
            _ => return Err(unsupported(&path)),
        }
    }
    name.context("[application] lacks a name")
}

fn parse_variable(value: &Value, path: &str) -> Result<VariableDecl> {
    let mut decl = VariableDecl::default();
    for (key, v) in table(value, path)? {
        let p = format!("{path}.{key}");
        match key.as_str() {
            "default" => decl.default = Some(string(v, &p)?),
            "required" => decl.required = boolean(v, &p)?,
            "secret" => decl.secret = boolean(v, &p)?,
            "description" => {
                string(v, &p)?;
            }
            _ => return Err(unsupported(&p)),
        }
    }
    // Spin's manifest schema: a variable is either required or has a default.
    match (decl.required, decl.default.is_some()) {
        (true, true) => bail!("variable {path:?} cannot be both required and have a default"),
        (false, false) => bail!("variable {path:?} must either be required or have a default"),
        _ => Ok(decl),
    }
}

fn parse_trigger(value: &Value, path: &str) -> Result<HttpTrigger> {
    let mut component = None;
    let mut route = None;
    for (key, v) in table(value, path)? {
        let p = format!("{path}.{key}");
        match key.as_str() {
            "component" => {
                component = Some(
                    v.as_str()
                        .map(str::to_owned)
                        .with_context(|| format!("{p:?}: spin-host supports only a component id string (inline components are unsupported)"))?,
                )
            }
            "route" => {
                route = Some(match v {
                    Value::String(s) => RouteConfig::Route(s.clone()),
                    Value::Table(t) => {
                        for k in t.keys() {
                            if k != "private" {
                                return Err(unsupported(&format!("{p}.{k}")));
                            }
                        }
                        if t.get("private").and_then(Value::as_bool) != Some(true) {
                            bail!("route must be a string pattern or '{{ private = true }}' at {p:?}");
                        }
                        RouteConfig::Private
                    }
                    _ => bail!("{p:?} must be a string or {{ private = true }}"),
                })
            }
            "executor" => {
                let t = table(v, &p)?;
                for (k, val) in t {
                    if !(k == "type" && val.as_str() == Some("http")) {
                        return Err(anyhow::anyhow!(
                            "unsupported manifest key {:?}: spin-host runs only the default wasi-http executor",
                            format!("{p}.{k}")
                        ));
                    }
                }
            }
            "id" => {
                string(v, &p)?;
            }
            _ => return Err(unsupported(&p)),
        }
    }
    Ok(HttpTrigger {
        component: component.with_context(|| format!("{path:?} lacks a component"))?,
        route: route.with_context(|| format!("{path:?} lacks a route"))?,
    })
}

fn parse_component(
    id: &str,
    value: &Value,
    app_dir: &Path,
    app_vars: &BTreeMap<String, VariableDecl>,
) -> Result<ComponentDecl> {
    let base = format!("component.{id}");
    let mut c = ComponentDecl {
        id: id.to_owned(),
        source: PathBuf::new(),
        sqlite_databases: vec![],
        key_value_stores: vec![],
        variables: BTreeMap::new(),
        allowed_outbound_hosts: vec![],
        files: vec![],
        environment: BTreeMap::new(),
        description: None,
    };
    let mut source_seen = false;
    for (key, v) in table(value, &base)? {
        let p = format!("{base}.{key}");
        match key.as_str() {
            "source" => {
                let s = v.as_str().with_context(|| {
                    format!("{p:?}: spin-host supports only a local file path (url/registry sources are unsupported)")
                })?;
                c.source = app_dir.join(s);
                source_seen = true;
            }
            "description" => c.description = Some(string(v, &p)?),
            "sqlite_databases" => c.sqlite_databases = strings(v, &p)?,
            "key_value_stores" => c.key_value_stores = strings(v, &p)?,
            "allowed_outbound_hosts" => {
                let hosts = strings(v, &p)?;
                // Spin's loader: templates are checked with the variables' defaults.
                AllowedHostsConfig::validate(&hosts, |name| {
                    app_vars.get(name).and_then(|d| d.default.clone())
                })
                .context("`allowed_outbound_hosts` is malformed")
                .with_context(|| format!("Failed to load component `{id}`"))?;
                c.allowed_outbound_hosts = hosts;
            }
            "variables" => {
                for (k, tmpl) in table(v, &p)? {
                    let kp = format!("{p}.{k}");
                    validate_key(k).with_context(|| format!("invalid variable name {kp:?}"))?;
                    let template = Template::parse(&string(tmpl, &kp)?)
                        .with_context(|| format!("invalid template in {kp:?}"))?;
                    for var in template.referenced() {
                        if !app_vars.contains_key(var) {
                            bail!("invalid variable template in {kp:?}: unknown variable {var:?}");
                        }
                    }
                    c.variables.insert(k.clone(), template);
                }
            }
            "environment" => {
                for (k, val) in table(v, &p)? {
                    c.environment
                        .insert(k.clone(), string(val, &format!("{p}.{k}"))?);
                }
            }
            "files" => {
                let list = v
                    .as_array()
                    .with_context(|| format!("{p:?} must be an array"))?;
                for (i, f) in list.iter().enumerate() {
                    let fp = format!("{p}[{i}]");
                    c.files.push(match f {
                        Value::String(s) => FileMount::Pattern(s.clone()),
                        Value::Table(t) => {
                            for k in t.keys() {
                                if k != "source" && k != "destination" {
                                    return Err(unsupported(&format!("{fp}.{k}")));
                                }
                            }
                            let source = string(
                                t.get("source")
                                    .with_context(|| format!("{fp:?} lacks source"))?,
                                &fp,
                            )?;
                            let destination = string(
                                t.get("destination")
                                    .with_context(|| format!("{fp:?} lacks destination"))?,
                                &fp,
                            )?;
                            if !destination.starts_with('/') {
                                bail!(
                                    "{fp:?}: destination {destination:?} must be an absolute path"
                                );
                            }
                            FileMount::Placement {
                                source,
                                destination,
                            }
                        }
                        _ => bail!("{fp:?} must be a string or {{ source, destination }}"),
                    });
                }
            }
            // Build instructions are for `spin build`; `spin up` ignores them.
            "build" => {
                for (k, bv) in table(v, &p)? {
                    let bp = format!("{p}.{k}");
                    match k.as_str() {
                        "command" => {
                            if !(bv.is_str() || bv.is_array()) {
                                bail!("{bp:?} must be a string or an array of strings");
                            }
                        }
                        "workdir" => {
                            string(bv, &bp)?;
                        }
                        "watch" => {
                            strings(bv, &bp)?;
                        }
                        "environment" => {
                            table(bv, &bp)?;
                        }
                        _ => return Err(unsupported(&bp)),
                    }
                }
            }
            "tool" => {}
            _ => return Err(unsupported(&p)),
        }
    }
    if !source_seen {
        bail!("component {id:?} lacks a source");
    }
    Ok(c)
}

impl RuntimeConfig {
    /// Reads a runtime config file.
    ///
    /// Paths follow Spin (`crates/runtime-config/src/lib.rs`): a sqlite
    /// `path` is relative to the **working directory** of the host process
    /// (`sqlite_config_resolver` uses `current_dir()`), a key-value `path` is
    /// relative to the runtime config file's directory. `working_dir` stands in
    /// for the process working directory so tests can isolate their files.
    /// Unknown keys fail like Spin's "unused runtime config key(s)".
    pub fn load(path: &Path, working_dir: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("failed to read runtime config file '{}'", path.display()))?;
        let config_dir = std::path::absolute(path)?
            .parent()
            .map(Path::to_owned)
            .unwrap_or_else(|| working_dir.to_owned());
        Self::parse(&text, working_dir, &config_dir)
            .with_context(|| format!("invalid runtime config file '{}'", path.display()))
    }

    /// Parses runtime config text.
    pub fn parse(text: &str, working_dir: &Path, config_dir: &Path) -> Result<Self> {
        let root: toml::Table = toml::from_str(text).context("runtime config is not valid TOML")?;
        let mut rc = RuntimeConfig::default();
        let mut unused = vec![];
        for (key, value) in &root {
            match key.as_str() {
                "state_dir" => {
                    let s = string(value, key)?;
                    if !s.is_empty() {
                        rc.state_dir = Some(working_dir.join(s));
                    }
                }
                "sqlite_database" | "key_value_store" => {
                    for (label, cfg) in table(value, key)? {
                        let p = format!("{key}.{label}");
                        let cfg = table(cfg, &p)?;
                        let ty = cfg
                            .get("type")
                            .and_then(Value::as_str)
                            .with_context(|| format!("{p:?} lacks a type"))?;
                        if ty != "spin" {
                            bail!("[{p}] type = {ty:?} is not supported by spin-host (only type = \"spin\", a local SQLite file)");
                        }
                        let mut path = None;
                        for (k, v) in cfg {
                            match k.as_str() {
                                "type" => {}
                                "path" => path = Some(string(v, &format!("{p}.path"))?),
                                _ => unused.push(format!("{p}.{k}")),
                            }
                        }
                        let anchor = if key == "sqlite_database" {
                            working_dir
                        } else {
                            config_dir
                        };
                        let path = path.map(|s| anchor.join(s));
                        if key == "sqlite_database" {
                            rc.sqlite_databases.insert(label.clone(), path);
                        } else {
                            rc.key_value_stores.insert(label.clone(), path);
                        }
                    }
                }
                // Spin's own log_dir key; this host logs to stdout only.
                "log_dir" => {
                    string(value, key)?;
                }
                _ => unused.push(key.clone()),
            }
        }
        if !unused.is_empty() {
            bail!("unused runtime config key(s): {}", unused.join(", "));
        }
        Ok(rc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
spin_manifest_version = 2
[application]
name = "t"
[[trigger.http]]
route = "/..."
component = "a"
[component.a]
source = "a.wasm"
"#;

    #[test]
    fn unknown_component_key_is_named() {
        let text = format!("{MINIMAL}key_valuez = [\"x\"]\n");
        let err = AppManifest::parse(&text, Path::new("/app")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unsupported manifest key \"component.a.key_valuez\""
        );
    }

    #[test]
    fn template_must_reference_declared_variable() {
        let text = format!("{MINIMAL}[component.a.variables]\nx = \"{{{{ nope }}}}\"\n");
        let err = format!(
            "{:#}",
            AppManifest::parse(&text, Path::new("/app")).unwrap_err()
        );
        assert!(err.contains("unknown variable \"nope\""), "{err}");
    }

    #[test]
    fn runtime_config_rejects_unknown_keys_and_resolves_paths() {
        let rc = RuntimeConfig::parse(
            "[sqlite_database.grab]\ntype = \"spin\"\npath = \".spin/grab.db\"\n",
            Path::new("/work"),
            Path::new("/cfg"),
        )
        .unwrap();
        assert_eq!(
            rc.sqlite_databases["grab"],
            Some(PathBuf::from("/work/.spin/grab.db"))
        );
        let err = RuntimeConfig::parse("baz = 1\n", Path::new("/"), Path::new("/")).unwrap_err();
        assert_eq!(err.to_string(), "unused runtime config key(s): baz");
    }

    #[test]
    fn project_manifest_loads() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let m = AppManifest::load(&root.join("spin.toml")).unwrap();
        assert!(m.components.contains_key("grab"));
        assert!(m
            .http_triggers
            .iter()
            .any(|t| t.route == RouteConfig::Route("/grabs/...".into())));
        RuntimeConfig::load(&root.join("runtime-config.toml"), &root).unwrap();
    }
}
