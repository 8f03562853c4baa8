//! Loading an app, serving it over HTTP, and dispatching requests to fresh
//! component instances, mirroring Spin's `crates/trigger-http`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{CallHook, Store};
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpView};

use crate::allowed_hosts::{AllowedHostsConfig, SERVICE_CHAINING_DOMAIN_SUFFIX};
use crate::faults::{FaultSpec, Faults};
use crate::host::{DbLocation, DefaultHooks, HostState, Labels, SpinPlatform};
use crate::manifest::{AppManifest, FileMount, RuntimeConfig};
use crate::routes::{RouteMatch, Router};
use crate::variables::Resolver;

/// The response body type used throughout (wasi-http's boxed body).
pub type Body = HyperOutgoingBody;

/// Options for starting an app, the library equivalent of `spin up` flags.
#[derive(Debug, Clone)]
pub struct AppOptions {
    /// Path of `spin.toml`.
    pub manifest: PathBuf,
    /// `--runtime-config-file`.
    pub runtime_config: Option<PathBuf>,
    /// `--state-dir`; default `<manifest dir>/.spin`.
    pub state_dir: Option<PathBuf>,
    /// Address to listen on, e.g. `127.0.0.1:0` for an ephemeral port.
    pub listen: String,
    /// Variable values with the same effect as `SPIN_VARIABLE_<NAME>`
    /// (lowercase manifest names; they win over the environment).
    pub variables: Vec<(String, String)>,
    /// Whether `SPIN_VARIABLE_*` from the process environment apply
    /// (default true; tests may turn it off for isolation).
    pub use_env_variables: bool,
    /// `--component-id` / `SPIN_COMPONENTS_TO_RETAIN`: run only these components.
    pub components: Option<Vec<String>>,
    /// Which of the two asked for `components` (only the error wording differs).
    pub retained_by: RetainedBy,
    /// TEST-ONLY, not a Spin feature: outbound requests to these host names
    /// connect to the given address instead (like an `/etc/hosts` entry with a
    /// port), after `allowed_outbound_hosts` has been checked against the URL as
    /// the guest wrote it; the `Host` header keeps the name. Lets one host
    /// process per Knative Service call the others by their cluster names.
    pub host_map: Vec<(String, SocketAddr)>,
    /// Expose the fault/stats admin API under `/.well-known/spin-host/`.
    pub enable_faults: bool,
    /// Directory that relative sqlite `path`s in the runtime config resolve
    /// against (Spin uses the process working directory). Default: the
    /// process working directory.
    pub working_dir: Option<PathBuf>,
    /// Where compiled components are cached; default `$SPIN_HOST_CACHE_DIR`,
    /// else `<state dir>/cache`.
    pub cache_dir: Option<PathBuf>,
    /// Kill a guest invocation that runs longer than this (Spin has no
    /// default deadline; neither do we).
    pub request_timeout: Option<Duration>,
    /// Print startup lines and one log line per request to stdout.
    pub log: bool,
    /// What happens to a guest that is still running once its response is sent.
    pub post_response: PostResponse,
}

/// What the host does with a guest that keeps running after its response is sent.
///
/// Released Spin (3.6.3, the runtime of containerd-shim-spin, and 4.0.x) spawns the
/// guest call on its own task and lets it finish (`crates/trigger-http/src/wasi.rs`
/// at v3.6.3: the handle is awaited in a detached task only to log errors). Spin main
/// since commit 079bb6aa (in no tag yet) wraps the body in `AbortOnDropBody` and
/// aborts the guest once hyper drops the sent body.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PostResponse {
    /// As released Spin 3.6.3 / 4.0.x: the guest keeps running to completion.
    #[default]
    Continue,
    /// As unreleased Spin main: the guest is aborted at its next await once the
    /// response body has been sent (or the client went away). Test suites use this
    /// so nothing comes to depend on work after the answer.
    Abort,
}

impl AppOptions {
    /// Options for `manifest` with everything else at `spin up` defaults,
    /// except listening on an ephemeral loopback port.
    pub fn new(manifest: impl Into<PathBuf>) -> Self {
        AppOptions {
            manifest: manifest.into(),
            runtime_config: None,
            state_dir: None,
            listen: "127.0.0.1:0".to_owned(),
            variables: vec![],
            use_env_variables: true,
            components: None,
            retained_by: RetainedBy::ComponentIdFlag,
            host_map: vec![],
            enable_faults: false,
            working_dir: None,
            cache_dir: None,
            request_timeout: None,
            log: true,
            post_response: PostResponse::default(),
        }
    }
}

/// Who selected the retained components: `spin up --component-id` or
/// containerd-shim-spin's `SPIN_COMPONENTS_TO_RETAIN`. Both run Spin's same
/// check; each words the failure its own way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetainedBy {
    /// `spin up --component-id <id>` (Spin's `src/commands/up.rs`).
    ComponentIdFlag,
    /// `SPIN_COMPONENTS_TO_RETAIN=a,b` (containerd-shim-spin's `src/engine.rs`).
    ShimEnvironment,
}

impl RetainedBy {
    /// The context each runtime puts on a failed retain, word for word.
    fn context(self, components: &[String]) -> String {
        match self {
            RetainedBy::ComponentIdFlag => {
                "failed to resolve application with only components selected with --component"
                    .to_owned()
            }
            RetainedBy::ShimEnvironment => {
                let ids: Vec<&str> = components.iter().map(String::as_str).collect();
                format!("failed to resolve application with only [{ids:?}] components retained by configured environment variable SPIN_COMPONENTS_TO_RETAIN")
            }
        }
    }
}

pub(crate) struct ComponentRt {
    pub(crate) pre: ProxyPre<HostState>,
    pub(crate) allowed_hosts: AllowedHostsConfig,
    pub(crate) sqlite_databases: Labels,
    pub(crate) key_value_stores: Labels,
    preopens: Vec<(PathBuf, String)>,
    environment: Vec<(String, String)>,
}

/// Counts running guest invocations so shutdown can wait for them.
#[derive(Default)]
pub(crate) struct InFlight {
    count: AtomicUsize,
}

pub(crate) struct InFlightGuard(Arc<AppInner>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.in_flight.count.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Shared, immutable-after-start state of a running app.
pub(crate) struct AppInner {
    pub(crate) name: String,
    pub(crate) components: HashMap<String, ComponentRt>,
    pub(crate) router: Router,
    pub(crate) variables: Resolver,
    pub(crate) sqlite_locations: HashMap<String, DbLocation>,
    pub(crate) kv_locations: HashMap<String, DbLocation>,
    pub(crate) faults: Arc<Faults>,
    pub(crate) host_map: HashMap<String, SocketAddr>,
    local_addr: OnceLock<SocketAddr>,
    in_flight: InFlight,
    enable_faults: bool,
    request_timeout: Option<Duration>,
    log: bool,
    post_response: PostResponse,
}

/// Spin's client address for chained requests (`CHAINED_CLIENT_ADDR`).
const CHAINED_CLIENT_ADDR: &str = "0.0.0.0:0";

fn full(status: StatusCode, body: impl Into<Bytes>, content_type: Option<&str>) -> Response<Body> {
    let mut resp = Response::new(
        Full::new(body.into())
            .map_err(|never: Infallible| match never {})
            .boxed_unsync(),
    );
    *resp.status_mut() = status;
    if let Some(ct) = content_type {
        resp.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_str(ct).expect("static content type"),
        );
    }
    resp
}

fn empty(status: StatusCode) -> Response<Body> {
    full(status, Bytes::new(), None)
}

fn json(status: StatusCode, value: &impl serde::Serialize) -> Response<Body> {
    full(
        status,
        serde_json::to_vec_pretty(value).unwrap_or_default(),
        Some("application/json"),
    )
}

/// Stages `files` mounts: directories are preopened directly (read-only);
/// glob matches and single files are copied under `<state>/files/<id>`.
fn preopens(
    manifest: &AppManifest,
    id: &str,
    files: &[FileMount],
    state_dir: &Path,
) -> Result<Vec<(PathBuf, String)>> {
    let mut out = vec![];
    let staging = state_dir.join("files").join(id);
    let mut staged = false;
    for f in files {
        match f {
            FileMount::Placement {
                source,
                destination,
            } => {
                let src = manifest.app_dir.join(source);
                if src.is_dir() {
                    out.push((src, destination.clone()));
                } else if src.is_file() {
                    let dest = staging.join(destination.trim_start_matches('/'));
                    std::fs::create_dir_all(dest.parent().expect("joined path has a parent"))?;
                    std::fs::copy(&src, &dest)
                        .with_context(|| format!("failed to stage file {}", src.display()))?;
                    staged = true;
                } else {
                    bail!(
                        "component {id:?}: files source {} does not exist",
                        src.display()
                    );
                }
            }
            FileMount::Pattern(pattern) => {
                let full_pattern = manifest.app_dir.join(pattern);
                let matches = glob::glob(&full_pattern.to_string_lossy()).with_context(|| {
                    format!("component {id:?}: invalid files pattern {pattern:?}")
                })?;
                for m in matches {
                    let m = m?;
                    if m.is_file() {
                        let rel = m.strip_prefix(&manifest.app_dir).unwrap_or(&m);
                        let dest = staging.join(rel);
                        std::fs::create_dir_all(dest.parent().expect("joined path has a parent"))?;
                        std::fs::copy(&m, &dest)?;
                        staged = true;
                    }
                }
            }
        }
    }
    if staged {
        out.push((staging, "/".to_owned()));
    }
    Ok(out)
}

impl AppInner {
    /// Loads manifest + runtime config, validates like `spin up`, compiles.
    pub(crate) fn load(opts: &AppOptions) -> Result<(Self, Vec<String>)> {
        // Spin loads (and validates) every component first, then retains.
        let mut manifest = AppManifest::load(&opts.manifest)?;
        if let Some(keep) = &opts.components {
            manifest
                .retain_components(keep)
                .with_context(|| opts.retained_by.context(keep))?;
        }
        let working_dir = match &opts.working_dir {
            Some(d) => d.clone(),
            None => std::env::current_dir()?,
        };
        let runtime_config = match &opts.runtime_config {
            Some(p) => RuntimeConfig::load(p, &working_dir)?,
            None => RuntimeConfig::default(),
        };
        let state_dir = opts
            .state_dir
            .clone()
            .or(runtime_config.state_dir.clone())
            .unwrap_or_else(|| manifest.app_dir.join(".spin"));
        let state_dir = std::path::absolute(state_dir)?;

        let variables = Resolver::new(&manifest, &opts.variables, |name| {
            opts.use_env_variables
                .then(|| std::env::var(name).ok())
                .flatten()
        })?;

        // Spin always defines the `default` label: <state_dir>/sqlite_db.db.
        let mut sqlite_locations: HashMap<String, DbLocation> = runtime_config
            .sqlite_databases
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.clone().map_or(DbLocation::Memory, DbLocation::File),
                )
            })
            .collect();
        sqlite_locations
            .entry("default".to_owned())
            .or_insert_with(|| DbLocation::File(state_dir.join("sqlite_db.db")));
        let mut kv_locations: HashMap<String, DbLocation> = runtime_config
            .key_value_stores
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.clone().map_or(DbLocation::Memory, DbLocation::File),
                )
            })
            .collect();
        kv_locations
            .entry("default".to_owned())
            .or_insert_with(|| DbLocation::File(state_dir.join("sqlite_key_value.db")));

        // Same check and wording as Spin's factor-sqlite `configure_app`.
        let mut missing = vec![];
        for (id, c) in &manifest.components {
            for label in &c.sqlite_databases {
                if !sqlite_locations.contains_key(label) {
                    missing.push(format!("- Component {id} uses database '{label}'"));
                }
            }
        }
        if !missing.is_empty() {
            bail!(
                "One or more components use SQLite databases which are not defined.\n\
                 Check the spelling, or pass a runtime configuration file that defines these stores.\n\
                 See https://spinframework.dev/dynamic-configuration#sqlite-storage-runtime-configuration\n\
                 Details:\n{}",
                missing.join("\n")
            );
        }
        let mut missing = vec![];
        for (id, c) in &manifest.components {
            for label in &c.key_value_stores {
                if !kv_locations.contains_key(label) {
                    missing.push(format!("- Component {id} uses store '{label}'"));
                }
            }
        }
        if !missing.is_empty() {
            bail!(
                "One or more components use key-value stores which are not defined.\nDetails:\n{}",
                missing.join("\n")
            );
        }

        let cache_dir = opts
            .cache_dir
            .clone()
            .or_else(|| std::env::var_os("SPIN_HOST_CACHE_DIR").map(PathBuf::from))
            .unwrap_or_else(|| state_dir.join("cache"));

        // Compile (or load from cache) all components in parallel.
        let engine = crate::engine::engine();
        let compiled: Vec<(String, Result<wasmtime::component::Component>)> =
            std::thread::scope(|s| {
                let handles: Vec<_> = manifest
                    .components
                    .values()
                    .map(|c| {
                        let cache_dir = &cache_dir;
                        (
                            c.id.clone(),
                            s.spawn(move || crate::engine::load_component(&c.source, cache_dir)),
                        )
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|(id, h)| {
                        (
                            id,
                            h.join().unwrap_or_else(|_| {
                                Err(anyhow::anyhow!("compiler thread panicked"))
                            }),
                        )
                    })
                    .collect()
            });

        let mut linker: Linker<HostState> = Linker::new(engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(anyhow::Error::from)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
            .map_err(anyhow::Error::from)?;
        crate::outbound::add_to_linker(&mut linker).map_err(anyhow::Error::from)?;
        SpinPlatform::add_to_linker::<_, wasmtime::component::HasSelf<HostState>>(
            &mut linker,
            |s| s,
        )
        .map_err(anyhow::Error::from)?;

        let mut components = HashMap::new();
        for (id, component) in compiled {
            let decl = &manifest.components[&id];
            let component = component
                .with_context(|| format!("component {id:?} ({})", decl.source.display()))?;
            // An import this host does not implement (redis, postgres, mysql,
            // mqtt, llm, ...) fails here, naming the interface. (wasmtime's
            // `define_unknown_imports_as_traps` is not used: it matches names
            // exactly and would shadow semver-compatible WASI imports.)
            let pre = linker
                .instantiate_pre(&component)
                .map_err(anyhow::Error::from)
                .with_context(|| {
                    format!("component {id:?} imports an interface spin-host does not implement")
                })?;
            let pre = ProxyPre::new(pre)
                .map_err(anyhow::Error::from)
                .with_context(|| {
                    format!("component {id:?} does not export wasi:http/incoming-handler")
                })?;
            // Spin resolves templates when it prepares an instance; a value that does not
            // parse is no startup error there: every outbound request is denied instead.
            let component_ids: Vec<String> = manifest.components.keys().cloned().collect();
            let allowed_hosts = AllowedHostsConfig::parse(
                &decl.allowed_outbound_hosts,
                &variables,
                &component_ids,
            )
            .unwrap_or_else(|e| {
                eprintln!("spin-host: {id}: Error parsing allowed outbound hosts: {e:#} (every outbound request is denied, as in Spin)");
                AllowedHostsConfig::default()
            });
            components.insert(
                id.clone(),
                ComponentRt {
                    pre,
                    allowed_hosts,
                    sqlite_databases: decl.sqlite_databases.iter().cloned().collect(),
                    key_value_stores: decl.key_value_stores.iter().cloned().collect(),
                    preopens: preopens(&manifest, &id, &decl.files, &state_dir)?,
                    environment: decl.environment.clone().into_iter().collect(),
                },
            );
        }

        let router = Router::build(&manifest.http_triggers)?;
        let inner = AppInner {
            name: manifest.name.clone(),
            components,
            router,
            variables,
            sqlite_locations,
            kv_locations,
            faults: Arc::new(Faults::default()),
            host_map: opts.host_map.iter().cloned().collect(),
            local_addr: OnceLock::new(),
            in_flight: InFlight::default(),
            enable_faults: opts.enable_faults,
            request_timeout: opts.request_timeout,
            log: opts.log,
            post_response: opts.post_response,
        };
        let ids = manifest.components.keys().cloned().collect();
        Ok((inner, ids))
    }

    fn enter(self: &Arc<Self>) -> InFlightGuard {
        self.in_flight.count.fetch_add(1, Ordering::SeqCst);
        InFlightGuard(self.clone())
    }

    pub(crate) fn local_addr(&self) -> SocketAddr {
        *self
            .local_addr
            .get()
            .expect("address is set before serving")
    }

    /// Entry point for requests from the network.
    async fn serve(
        self: Arc<Self>,
        req: Request<Incoming>,
        client_addr: SocketAddr,
    ) -> Response<Body> {
        let req = req.map(|b| b.map_err(wasmtime_wasi_http::Error::from).boxed_unsync());
        let path = req.uri().path().to_owned();
        if self.enable_faults && path.starts_with("/.well-known/spin-host/") {
            return self.admin(req).await;
        }
        // Spin answers these itself (`crates/trigger-http/src/server.rs`).
        if let Some(well_known) = path.strip_prefix("/.well-known/spin/") {
            return match well_known {
                "health" => full(StatusCode::OK, "OK", None),
                "info" => json(StatusCode::OK, &serde_json::json!({ "name": self.name })),
                _ => empty(StatusCode::NOT_FOUND),
            };
        }
        self.route_and_run(req, client_addr, true).await
    }

    async fn route_and_run(
        self: &Arc<Self>,
        mut req: Request<Body>,
        client_addr: SocketAddr,
        external: bool,
    ) -> Response<Body> {
        // Spin's `strip_forbidden_headers`: a client may not claim to be a
        // chained request by sending `Host: x.spin.internal`.
        if external {
            let chaining = req
                .headers()
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(|h| {
                    h.split(':')
                        .next()
                        .unwrap_or(h)
                        .ends_with(SERVICE_CHAINING_DOMAIN_SUFFIX)
                })
                .unwrap_or(false);
            if chaining {
                req.headers_mut().remove(http::header::HOST);
            }
        }
        let path = req.uri().path().to_owned();
        let Some(route_match) = self.router.route(&path) else {
            self.log_line(
                req.method().as_str(),
                &path,
                "-",
                404,
                Instant::now(),
                req.headers(),
            );
            return empty(StatusCode::NOT_FOUND);
        };
        // Spin's `set_req_uri`: absolute URI from the Host header or the URI.
        let authority = req
            .headers()
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned)
            .or_else(|| req.uri().authority().map(|a| a.to_string()));
        let Some(authority) = authority else {
            return empty(StatusCode::BAD_REQUEST);
        };
        let pq = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| "/".into());
        match format!("http://{authority}{pq}").parse() {
            Ok(uri) => *req.uri_mut() = uri,
            Err(_) => return empty(StatusCode::BAD_REQUEST),
        }
        self.run_component(req, route_match, &client_addr.to_string())
            .await
    }

    /// A `*.spin.internal` request from a guest (Spin's outbound interceptor).
    pub(crate) async fn dispatch_chained(
        self: &Arc<Self>,
        target: &str,
        path: &str,
        req: Request<Body>,
    ) -> Response<Body> {
        let route_match = RouteMatch::synthetic(target, path);
        self.run_component(req, route_match, CHAINED_CLIENT_ADDR)
            .await
    }

    /// A relative / `self.alt` request from a guest, routed like a network one.
    pub(crate) async fn dispatch_self(self: &Arc<Self>, mut req: Request<Body>) -> Response<Body> {
        let addr = self.local_addr().to_string();
        if let Ok(v) = HeaderValue::from_str(&addr) {
            req.headers_mut().insert(http::header::HOST, v);
        }
        self.route_and_run(req, SocketAddr::from(([127, 0, 0, 1], 0)), false)
            .await
    }

    fn log_line(
        &self,
        method: &str,
        path: &str,
        component: &str,
        status: u16,
        start: Instant,
        headers: &HeaderMap,
    ) {
        if !self.log {
            return;
        }
        let cid = headers
            .get("x-correlation-id")
            .and_then(|v| v.to_str().ok())
            .map(|c| format!(" correlation-id={c}"))
            .unwrap_or_default();
        println!(
            "{method} {path} -> {component} {status} {:.1}ms{cid}",
            start.elapsed().as_secs_f64() * 1000.0
        );
    }

    /// Runs one request on a fresh instance of `route_match.component`.
    ///
    /// The response is returned as soon as the guest sets it; the guest call
    /// runs in its own task, which keeps running after the answer (released
    /// Spin) or is aborted once hyper drops the response body (Spin main), as
    /// [`PostResponse`] says.
    async fn run_component(
        self: &Arc<Self>,
        mut req: Request<Body>,
        route_match: RouteMatch,
        client_addr: &str,
    ) -> Response<Body> {
        let start = Instant::now();
        let component = route_match.component.clone();
        let method = req.method().to_string();
        let path = req.uri().path().to_owned();
        let log_headers = req.headers().clone();
        self.faults.record_request(&component);
        let finish = |status: u16, resp: Response<Body>| {
            self.faults.record_status(&component, status);
            self.log_line(&method, &path, &component, status, start, &log_headers);
            resp
        };
        if let Some(status) = self.faults.take_respond(&component) {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            return finish(status.as_u16(), empty(status));
        }
        let Some(rt) = self.components.get(&component) else {
            return finish(500, empty(StatusCode::INTERNAL_SERVER_ERROR));
        };

        // Spin's `prepare_request_headers`: the request's headers followed by
        // the spin-* ones, appended (not replacing) in Spin's order.
        let host = req
            .headers()
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost")
            .to_owned();
        let scheme = req.uri().scheme_str().unwrap_or("http").to_owned();
        let pq = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_default();
        let mut spin_headers = vec![
            ("spin-path-info", route_match.path_info.clone()),
            ("spin-full-url", format!("{scheme}://{host}{pq}")),
            ("spin-matched-route", route_match.raw_route.clone()),
            ("spin-base-path", "/".to_owned()),
            ("spin-raw-component-route", route_match.raw_route.clone()),
            (
                "spin-component-route",
                route_match.component_route().to_owned(),
            ),
            ("spin-client-addr", client_addr.to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect::<Vec<_>>();
        for (name, value) in &route_match.params {
            spin_headers.push((
                format!("spin-path-match-{}", name.to_ascii_lowercase()),
                value.clone(),
            ));
        }
        for (k, v) in spin_headers {
            if let (Ok(k), Ok(v)) = (
                HeaderName::from_bytes(k.as_bytes()),
                HeaderValue::from_str(&v),
            ) {
                req.headers_mut().append(k, v);
            }
        }

        let mut wasi = WasiCtxBuilder::new();
        wasi.inherit_stdout().inherit_stderr().envs(&rt.environment);
        for (host_dir, guest_dir) in &rt.preopens {
            if let Err(e) = wasi.preopened_dir(host_dir, guest_dir, FsPerms::ReadOnly) {
                eprintln!(
                    "spin-host: {component}: cannot preopen {}: {e:#}",
                    host_dir.display()
                );
                return finish(500, empty(StatusCode::INTERNAL_SERVER_ERROR));
            }
        }
        let state = HostState {
            app: self.clone(),
            component: component.clone(),
            wasi: wasi.build(),
            table: ResourceTable::new(),
            http: WasiHttpCtx::new(),
            hooks: DefaultHooks,
            trap_on_entry: self.faults.take_trap(&component),
        };
        let mut store = Store::new(crate::engine::engine(), state);
        store.set_epoch_deadline(1);
        store.epoch_deadline_async_yield_and_update(1);
        if store.data().trap_on_entry {
            store.call_hook(|ctx, hook| {
                if matches!(hook, CallHook::CallingWasm) && ctx.data().trap_on_entry {
                    wasmtime::bail!("spin-host fault injection: trap");
                }
                Ok(())
            });
        }
        let (tx, rx) = oneshot::channel();
        let prepared = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, req)
            .and_then(|r| Ok((r, store.data_mut().http().new_response_outparam(tx)?)));
        let (incoming, outparam) = match prepared {
            Ok(x) => x,
            Err(e) => {
                eprintln!("spin-host: {component}: bad request: {e:#}");
                return finish(500, empty(StatusCode::INTERNAL_SERVER_ERROR));
            }
        };

        let guard = self.enter();
        let pre = rt.pre.clone();
        let app = self.clone();
        let deadline = self.request_timeout;
        let task_component = component.clone();
        let task = tokio::spawn(async move {
            let _guard = guard;
            let run = async {
                let proxy = pre.instantiate_async(&mut store).await?;
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, incoming, outparam)
                    .await
            };
            // The CPU of every poll of the guest, on whichever worker thread ran it.
            let mut run = std::pin::pin!(run);
            let mut guest_cpu = Duration::ZERO;
            let run = std::future::poll_fn(|cx| {
                let t0 = crate::faults::thread_cpu_time();
                let polled = std::future::Future::poll(run.as_mut(), cx);
                guest_cpu += crate::faults::thread_cpu_time().saturating_sub(t0);
                polled
            });
            let result = match deadline {
                Some(d) => tokio::time::timeout(d, run).await.unwrap_or_else(|_| {
                    Err(wasmtime::format_err!("request deadline of {d:?} exceeded"))
                }),
                None => run.await,
            };
            app.faults
                .record_invocation(&task_component, start.elapsed(), guest_cpu);
            if let Err(e) = &result {
                app.faults.record_trap(&task_component);
                eprintln!("spin-host: {task_component}: guest invocation failed: {e:?}");
            }
            result.is_ok()
        });

        match rx.await {
            // Released Spin leaves the task running (it holds its in-flight guard
            // until done); Spin main wraps the body so that dropping it (sent in
            // full, or the client gone) aborts the guest.
            Ok(Ok(resp)) => {
                let status = resp.status().as_u16();
                let resp = match self.post_response {
                    PostResponse::Continue => resp,
                    PostResponse::Abort => {
                        let abort = task.abort_handle();
                        resp.map(|body| AbortOnDropBody { body, abort }.boxed_unsync())
                    }
                };
                finish(status, resp)
            }
            // Spin: "guest failed to produce a response" → empty 500.
            Ok(Err(code)) => {
                eprintln!("spin-host: {component}: guest set an error response: {code:?}");
                finish(500, empty(StatusCode::INTERNAL_SERVER_ERROR))
            }
            Err(_) => {
                let _ = task.await;
                finish(500, empty(StatusCode::INTERNAL_SERVER_ERROR))
            }
        }
    }

    /// `/.well-known/spin-host/{faults,stats}` (only with `enable_faults`).
    async fn admin(self: &Arc<Self>, req: Request<Body>) -> Response<Body> {
        let method = req.method().clone();
        let path = req
            .uri()
            .path()
            .trim_start_matches("/.well-known/spin-host/")
            .to_owned();
        let body = match req.into_body().collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => return empty(StatusCode::BAD_REQUEST),
        };
        match (method.as_str(), path.as_str()) {
            ("GET", "faults") => json(StatusCode::OK, &self.faults.list()),
            ("POST", "faults") => match serde_json::from_slice::<FaultSpec>(&body) {
                Ok(spec) if self.components.contains_key(&spec.component) => {
                    let id = self.faults.inject(spec);
                    json(StatusCode::CREATED, &serde_json::json!({ "id": id }))
                }
                Ok(spec) => full(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!("unknown component {:?}", spec.component),
                    Some("text/plain"),
                ),
                Err(e) => full(StatusCode::BAD_REQUEST, e.to_string(), Some("text/plain")),
            },
            ("DELETE", "faults") => {
                self.faults.clear_all();
                empty(StatusCode::NO_CONTENT)
            }
            ("DELETE", p) if p.starts_with("faults/") => match p["faults/".len()..].parse() {
                Ok(id) if self.faults.clear(id) => empty(StatusCode::NO_CONTENT),
                _ => empty(StatusCode::NOT_FOUND),
            },
            ("GET", "stats") => json(StatusCode::OK, &self.faults.stats()),
            ("DELETE", "stats") => {
                self.faults.reset_stats();
                empty(StatusCode::NO_CONTENT)
            }
            _ => empty(StatusCode::NOT_FOUND),
        }
    }
}

/// A response body that aborts the guest's task when dropped, as Spin main's
/// `trigger-http` does ([`PostResponse::Abort`]): once hyper has sent the body (or the client went away) the
/// instance is cancelled at its next await, so a guest cannot keep working after its
/// answer.
struct AbortOnDropBody {
    body: Body,
    abort: tokio::task::AbortHandle,
}

impl Drop for AbortOnDropBody {
    fn drop(&mut self) {
        self.abort.abort();
    }
}

impl hyper::body::Body for AbortOnDropBody {
    type Data = Bytes;
    type Error = <Body as hyper::body::Body>::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// A started app. Dropping it without [`RunningApp::shutdown`] aborts it.
pub struct RunningApp {
    inner: Arc<AppInner>,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
    components: Vec<String>,
}

/// Starts apps; see [`TestApp::start`].
pub struct TestApp;

impl TestApp {
    /// Loads, validates and compiles the app, binds `opts.listen` and starts
    /// serving on the current tokio runtime (which must be multi-threaded).
    ///
    /// Fails like `spin up` would: bad manifest or runtime config, undefined
    /// sqlite label, missing required variable, unbuildable component, or an
    /// address already in use.
    pub async fn start(opts: AppOptions) -> Result<RunningApp> {
        let load_opts = opts.clone();
        let (inner, components) = tokio::task::spawn_blocking(move || AppInner::load(&load_opts))
            .await
            .context("app loader panicked")??;
        let listener = TcpListener::bind(&opts.listen).await.map_err(|e| {
            if e.kind() == std::io::ErrorKind::AddrInUse {
                anyhow::anyhow!("{} is already in use.", opts.listen)
            } else {
                anyhow::anyhow!("Unable to listen on {}: {e}", opts.listen)
            }
        })?;
        let addr = listener.local_addr()?;
        let _ = inner.local_addr.set(addr);
        let inner = Arc::new(inner);
        if inner.log {
            println!("\nServing http://{addr}");
            println!("Available Routes:");
            for (route, component) in inner.router.listing() {
                println!("  {component}: http://{addr}{route}");
            }
        }
        let (stop_tx, mut stop_rx) = oneshot::channel();
        let app = inner.clone();
        let server = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    _ = &mut stop_rx => break,
                    accepted = listener.accept() => {
                        let Ok((stream, client_addr)) = accepted else { continue };
                        let app = app.clone();
                        connections.spawn(async move {
                            let service = hyper::service::service_fn(move |req| {
                                let app = app.clone();
                                async move { Ok::<_, Infallible>(app.serve(req, client_addr).await) }
                            });
                            let _ = hyper::server::conn::http1::Builder::new()
                                .keep_alive(true)
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        });
                    }
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
            drop(listener);
            // Let in-flight guest calls end.
            wait_idle(&app, Duration::from_secs(60)).await;
            connections.shutdown().await;
        });
        Ok(RunningApp {
            inner,
            addr,
            stop: Some(stop_tx),
            server: Some(server),
            components,
        })
    }
}

async fn wait_idle(app: &AppInner, limit: Duration) {
    let deadline = Instant::now() + limit;
    while app.in_flight.count.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
        // Polling is fine here: shutdown is rare and 20 ms is below test noise.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl RunningApp {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>` (no trailing slash).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The fault registry (also reports per-component counters).
    pub fn faults(&self) -> &Faults {
        &self.inner.faults
    }

    /// Per-component counters (same data as [`Faults::stats`]).
    pub fn stats(&self) -> std::collections::BTreeMap<String, crate::faults::ComponentStats> {
        self.inner.faults.stats()
    }

    /// Ids of the components being served.
    pub fn components(&self) -> &[String] {
        &self.components
    }

    /// Number of guest invocations still running.
    pub fn in_flight(&self) -> usize {
        self.inner.in_flight.count.load(Ordering::SeqCst)
    }

    /// Stops accepting connections, waits (up to 60 s) for running guest
    /// invocations to finish, then closes open connections. The listening
    /// port and the state dir can be reused afterwards.
    pub async fn shutdown(mut self) -> Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.context("server task panicked")?;
        }
        Ok(())
    }
}

impl Drop for RunningApp {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}
