//! The cluster topology on one machine: one `spin-host` OS process per Knative Service, each
//! started the way its overlay starts it, wired as the cluster wires them. Everything comes
//! from the RENDERED manifests (`kubectl kustomize knative/overlays/<overlay>` and the Secrets
//! `scripts/knative-secrets.sh` renders), nothing is copied by hand:
//!
//! * each Service's container spec gives the process: the overlay's `command`/`args`
//!   (`spin up --component-id <id> ...`) or `SPIN_COMPONENTS_TO_RETAIN`, and its environment
//!   resolved as the kubelet does (`envFrom` ConfigMaps/Secrets, then `env` values and
//!   `secretKeyRef`/`configMapKeyRef`); only the listen address becomes a loopback port and
//!   `/runtime-config.toml` a local file with the cluster's labels (libSQL needs a cluster);
//! * cluster DNS is the host's test-only `--map-host`: `<service>.<namespace>.svc.cluster.local`
//!   and the Kafka Broker ingress name resolve to these processes;
//! * the Kafka Broker is the local `broker` component, alone in its own process, reading the
//!   rendered Broker and Triggers with each subscriber `ref` resolved to its Knative address
//!   (`http://<service>.<namespace>.svc.cluster.local<uri>`, a Trigger's `status.subscriberUri`),
//!   behind a small ingress that accepts `POST /<namespace>/<broker>` as Kafka's does;
//! * the PingSources' sinks are POSTed between polls, as their every-minute ticks would be.

use crate::{repo_root, Answer};
use anyhow::{bail, ensure, Context, Result};
use base64::Engine as _;
use manifests::{parse_yaml_docs, Object};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SERVING: &str = "serving.knative.dev/v1";
/// Where a Knative Service's container finds its runtime config (both overlays mount it there).
const CLUSTER_RUNTIME_CONFIG: &str = "/runtime-config.toml";
/// The Kafka Broker data plane's ingress host (`knative-eventing` namespace).
const KAFKA_INGRESS_HOST: &str = "kafka-broker-ingress.knative-eventing.svc.cluster.local";
/// How long one process may take to answer its readiness probe (compiles on a cold cache).
const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// The two ways `knative/overlays` run Spin.
#[derive(Debug, Clone, Copy)]
pub enum Overlay {
    /// containerd-shim-spin: `command: ["/"]`, `SPIN_COMPONENTS_TO_RETAIN=<id>`.
    Shim,
    /// An ordinary image: `spin up --component-id <id> ...`.
    Container,
}

impl Overlay {
    fn dir(self) -> &'static str {
        match self {
            Overlay::Shim => "knative/overlays/shim",
            Overlay::Container => "knative/overlays/container",
        }
    }
}

/// One `spin-host` process, killed (by its own pid) when dropped.
struct Process {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The running topology.
pub struct Cluster {
    pub http: reqwest::Client,
    /// Knative Service name -> its process's base URL (`http://127.0.0.1:<port>`).
    pub services: BTreeMap<String, String>,
    /// The stand-in Kafka Broker's process.
    pub broker: String,
    /// PingSources: (sink Service, sink uri).
    pings: Vec<(String, String)>,
    processes: Vec<Process>,
    ingress: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.ingress.abort();
    }
}

/// Runs `kubectl kustomize <dir>` with the pinned tools (scripts/knative/tools.sh).
fn kustomize(dir: &str) -> Result<Vec<Object>> {
    let out = shell(&format!(
        ". scripts/knative/tools.sh && \"$KNATIVE_KUBECTL\" kustomize {dir}"
    ))?;
    Ok(objects(&out, dir))
}

/// The Secrets as `scripts/knative-secrets.sh` renders them for `kubectl apply`.
fn rendered_secrets(pay_api_key: &str) -> Result<Vec<Object>> {
    let _installing = TOOLS.lock().unwrap_or_else(|e| e.into_inner());
    let out = Command::new("scripts/knative-secrets.sh")
        .current_dir(repo_root())
        .env("PAY_API_KEY", pay_api_key)
        .env("AUTH_JWKS", crate::tokens::TEST_JWKS)
        .env_remove("SQLD_AUTH_TOKEN")
        .env_remove("SQLD_JWT_PUBLIC_KEY")
        .output()
        .context("running scripts/knative-secrets.sh")?;
    ensure!(
        out.status.success(),
        "scripts/knative-secrets.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(objects(
        &String::from_utf8(out.stdout)?,
        "knative-secrets.sh",
    ))
}

/// Serialises the pinned tools' first-run install (two topologies render at once).
static TOOLS: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn shell(script: &str) -> Result<String> {
    let _installing = TOOLS.lock().unwrap_or_else(|e| e.into_inner());
    let out = Command::new("bash")
        .args(["-c", script])
        .current_dir(repo_root())
        .output()
        .with_context(|| format!("running {script}"))?;
    ensure!(
        out.status.success(),
        "{script} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
}

fn objects(yaml: &str, origin: &str) -> Vec<Object> {
    parse_yaml_docs(yaml, origin)
        .into_iter()
        .map(|value| Object {
            file: origin.to_owned(),
            value,
        })
        .collect()
}

fn find<'a>(objects: &'a [Object], api: &str, kind: &str, name: &str) -> Result<&'a Object> {
    objects
        .iter()
        .find(|o| o.is(api, kind) && o.name() == name)
        .with_context(|| format!("no {kind} {name} in the rendered manifests"))
}

/// A ConfigMap's `data` or a Secret's base64 `data` / `stringData`, as text.
fn entries(o: &Object) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for (k, v) in o.at("/data").as_object().into_iter().flatten() {
        let v = v.as_str().unwrap_or_default();
        let v = if o.kind() == "Secret" {
            String::from_utf8(base64::engine::general_purpose::STANDARD.decode(v)?)?
        } else {
            v.to_owned()
        };
        out.insert(k.clone(), v);
    }
    for (k, v) in o.at("/stringData").as_object().into_iter().flatten() {
        out.insert(k.clone(), v.as_str().unwrap_or_default().to_owned());
    }
    Ok(out)
}

/// A container's environment as the kubelet builds it: `envFrom` first, `env` over it.
fn container_env(container: &Value, objects: &[Object]) -> Result<BTreeMap<String, String>> {
    let source = |kind: &str, name: &str| {
        objects
            .iter()
            .find(|o| o.is("v1", kind) && o.name() == name)
            .with_context(|| format!("{kind} {name} is not rendered"))
            .and_then(entries)
    };
    let mut env = BTreeMap::new();
    for from in container["envFrom"].as_array().into_iter().flatten() {
        for (kind, key) in [("ConfigMap", "configMapRef"), ("Secret", "secretRef")] {
            if let Some(name) = from[key]["name"].as_str() {
                env.extend(source(kind, name)?);
            }
        }
    }
    for e in container["env"].as_array().into_iter().flatten() {
        let name = e["name"].as_str().context("env entry without a name")?;
        let value = if let Some(v) = e["value"].as_str() {
            v.to_owned()
        } else {
            let (kind, r) = match (
                e.pointer("/valueFrom/secretKeyRef"),
                e.pointer("/valueFrom/configMapKeyRef"),
            ) {
                (Some(r), _) => ("Secret", r),
                (_, Some(r)) => ("ConfigMap", r),
                _ => bail!("env {name}: only value, secretKeyRef and configMapKeyRef are resolved"),
            };
            let (sname, key) = (
                r["name"].as_str().unwrap_or(""),
                r["key"].as_str().unwrap_or(""),
            );
            source(kind, sname)?
                .remove(key)
                .with_context(|| format!("env {name}: {kind} {sname} has no key {key}"))?
        };
        env.insert(name.to_owned(), value);
    }
    Ok(env)
}

/// The cluster's runtime config with every SQLite label kept and each database a local file
/// (libSQL servers need a cluster).
fn local_runtime_config(cluster: &str) -> Result<String> {
    let table: toml::Table = toml::from_str(cluster).context("cluster runtime-config.toml")?;
    let labels = table
        .get("sqlite_database")
        .and_then(toml::Value::as_table)
        .context("runtime config without [sqlite_database.*]")?;
    Ok(labels
        .keys()
        .map(|l| format!("[sqlite_database.{l}]\ntype = \"spin\"\npath = \"{l}.db\"\n"))
        .collect())
}

/// A free loopback port (the process binds it a moment later).
fn free_port() -> Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

fn spin_host_binary() -> Result<PathBuf> {
    let bin = repo_root().join("target/debug/spin-host");
    ensure!(
        bin.exists(),
        "{} is missing: run `make host` first",
        bin.display()
    );
    Ok(bin)
}

/// Knative's address of a Service: what a Trigger's `ref` resolves to.
fn service_host(name: &str, namespace: &str) -> String {
    format!("{name}.{namespace}.svc.cluster.local")
}

/// The Broker and its Triggers, each subscriber resolved to its absolute Knative URI, as
/// files the local broker reads (JSON is YAML).
fn resolved_eventing(objects: &[Object], dir: &Path) -> Result<Vec<String>> {
    std::fs::create_dir_all(dir)?;
    let mut subscriber_hosts = vec![];
    for (i, o) in objects.iter().enumerate() {
        let mut value = o.value.clone();
        if o.is("eventing.knative.dev/v1", "Trigger") {
            let sub = &o.value["spec"]["subscriber"];
            let name = sub["ref"]["name"].as_str().context("Trigger without ref")?;
            let namespace = o.str_at("/metadata/namespace").unwrap_or("default");
            let host = service_host(name, namespace);
            let uri = format!("http://{host}{}", sub["uri"].as_str().unwrap_or(""));
            value["spec"]["subscriber"] = json!({ "uri": uri });
            subscriber_hosts.push(host);
        } else if !o.is("eventing.knative.dev/v1", "Broker") {
            continue;
        }
        std::fs::write(
            dir.join(format!("{i:03}-{}.yaml", o.name())),
            serde_json::to_vec_pretty(&value)?,
        )?;
    }
    subscriber_hosts.sort();
    subscriber_hosts.dedup();
    Ok(subscriber_hosts)
}

/// spin.toml reduced to the `broker` component, reading `eventing` and allowed to call exactly
/// the subscribers' origins: the local broker standing in for the Kafka Broker.
fn broker_manifest(eventing: &Path, subscribers: &[String]) -> Result<String> {
    let root = repo_root();
    let mut app: toml::Table = toml::from_str(&std::fs::read_to_string(root.join("spin.toml"))?)?;
    let mut broker = app["component"]["broker"]
        .as_table()
        .context("spin.toml has no [component.broker]")?
        .clone();
    let source = broker["source"]
        .as_str()
        .context("broker source")?
        .to_owned();
    broker.insert(
        "source".into(),
        root.join(&source).display().to_string().into(),
    );
    let destination = broker["files"][0]["destination"]
        .as_str()
        .context("broker files destination")?
        .to_owned();
    broker.insert(
        "files".into(),
        toml::Value::Array(vec![toml::Value::Table(toml::Table::from_iter([
            ("source".to_owned(), eventing.display().to_string().into()),
            ("destination".to_owned(), destination.into()),
        ]))]),
    );
    let hosts = subscribers.iter().map(|h| format!("http://{h}").into());
    broker.insert(
        "allowed_outbound_hosts".into(),
        toml::Value::Array(hosts.collect()),
    );
    broker.remove("build");
    let used: Vec<String> = broker
        .get("variables")
        .and_then(toml::Value::as_table)
        .into_iter()
        .flatten()
        .flat_map(|(_, t)| manifests::template_variables(t.as_str().unwrap_or("")))
        .collect();
    let variables: toml::Table = app["variables"]
        .as_table()
        .context("spin.toml [variables]")?
        .iter()
        .filter(|(k, _)| used.contains(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let routes: Vec<toml::Value> = app["trigger"]["http"]
        .as_array()
        .context("spin.toml [[trigger.http]]")?
        .iter()
        .filter(|t| t["component"].as_str() == Some("broker"))
        .cloned()
        .collect();
    app.insert("variables".into(), toml::Value::Table(variables));
    app.insert(
        "trigger".into(),
        toml::Value::Table(toml::Table::from_iter([(
            "http".to_owned(),
            toml::Value::Array(routes),
        )])),
    );
    app.insert(
        "component".into(),
        toml::Value::Table(toml::Table::from_iter([(
            "broker".to_owned(),
            toml::Value::Table(broker),
        )])),
    );
    Ok(toml::to_string(&app)?)
}

/// One process: spawned with `args` and exactly `env`, logging to a file.
fn spawn(
    name: &str,
    args: &[String],
    env: &BTreeMap<String, String>,
    dir: &Path,
) -> Result<Process> {
    let work = dir.join(name);
    std::fs::create_dir_all(&work)?;
    let log = work.join("host.log");
    let out = std::fs::File::create(&log)?;
    let child = Command::new(spin_host_binary()?)
        .args(args)
        .env_clear()
        .envs(env)
        .env(
            "SPIN_HOST_CACHE_DIR",
            repo_root().join("target/spin-host-cache"),
        )
        .current_dir(&work)
        .stdout(out.try_clone()?)
        .stderr(out)
        .stdin(Stdio::null())
        .spawn()
        .with_context(|| format!("starting the {name} process"))?;
    Ok(Process {
        name: name.to_owned(),
        child,
        log,
    })
}

/// Waits until `url` answers 200 (the Service's readiness probe); fails with the process's
/// output if it exits first, e.g. because Spin refused to retain its component.
async fn ready(http: &reqwest::Client, p: &mut Process, url: &str) -> Result<()> {
    let start = Instant::now();
    loop {
        if let Some(status) = p.child.try_wait()? {
            let log = std::fs::read_to_string(&p.log).unwrap_or_default();
            bail!(
                "the {} process exited ({status}) before it was ready:\n{log}",
                p.name
            );
        }
        if let Ok(r) = http.get(url).send().await {
            if r.status() == 200 {
                return Ok(());
            }
        }
        if start.elapsed() > READY_TIMEOUT {
            bail!("{} was not ready at {url} within {READY_TIMEOUT:?}", p.name);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The Kafka Broker ingress: `POST /<namespace>/<broker>` goes to the local broker's ingress
/// (`POST /broker`), headers and body unchanged; any other path is 404, as on Kafka's.
async fn serve_ingress(
    listener: tokio::net::TcpListener,
    path: String,
    broker: String,
    http: reqwest::Client,
) {
    use http_body_util::{BodyExt, Full};
    let state = Arc::new((path, broker, http));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let state = state.clone();
                    async move {
                        let (path, broker, http) = &*state;
                        let (parts, body) = req.into_parts();
                        let body = body
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let mut answer = hyper::Response::new(Full::new(bytes::Bytes::new()));
                        if parts.method != hyper::Method::POST || parts.uri.path() != path.as_str()
                        {
                            *answer.status_mut() = hyper::StatusCode::NOT_FOUND;
                            return Ok::<_, std::convert::Infallible>(answer);
                        }
                        let mut headers = parts.headers.clone();
                        headers.remove(hyper::header::HOST);
                        let sent = http
                            .post(format!("{broker}/broker"))
                            .headers(headers)
                            .body(body)
                            .send()
                            .await;
                        match sent {
                            Ok(r) => {
                                *answer.status_mut() = r.status();
                                let mut headers = r.headers().clone();
                                for hop in ["connection", "content-length", "transfer-encoding"] {
                                    headers.remove(hop);
                                }
                                *answer.headers_mut() = headers;
                                *answer.body_mut() = Full::new(r.bytes().await.unwrap_or_default());
                            }
                            Err(_) => *answer.status_mut() = hyper::StatusCode::BAD_GATEWAY,
                        }
                        Ok(answer)
                    }
                });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

impl Cluster {
    /// Renders `overlay`, starts one process per Knative Service plus the broker stand-in, and
    /// waits until every readiness probe answers.
    pub async fn start(overlay: Overlay) -> Result<Cluster> {
        let root = repo_root();
        let dir = tempfile::tempdir()?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()?;
        let mut objects = kustomize(overlay.dir())?;
        objects.extend(rendered_secrets(&crate::uuid())?);
        let runtime_config = dir.path().join("runtime-config.toml");
        let cluster_rc = entries(find(&objects, "v1", "Secret", "htaxi-runtime-config")?)?;
        std::fs::write(
            &runtime_config,
            local_runtime_config(
                cluster_rc
                    .get("runtime-config.toml")
                    .context("htaxi-runtime-config has no runtime-config.toml")?,
            )?,
        )?;

        let services: Vec<&Object> = objects
            .iter()
            .filter(|o| o.is(SERVING, "Service"))
            .collect();
        let broker_obj = objects
            .iter()
            .find(|o| o.is("eventing.knative.dev/v1", "Broker"))
            .context("no Broker rendered")?;
        let namespace = broker_obj
            .str_at("/metadata/namespace")
            .unwrap_or("default");
        let ingress_path = format!("/{namespace}/{}", broker_obj.name());

        // Every cluster name and its loopback address, known before anything starts.
        let ingress = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let mut addrs: BTreeMap<String, SocketAddr> = BTreeMap::new();
        let mut host_map = vec![format!("{KAFKA_INGRESS_HOST}={}", ingress.local_addr()?)];
        for svc in &services {
            let addr = free_port()?;
            host_map.push(format!("{}={addr}", service_host(svc.name(), namespace)));
            addrs.insert(svc.name().to_owned(), addr);
        }
        let map_args: Vec<String> = host_map
            .iter()
            .flat_map(|m| ["--map-host".to_owned(), m.clone()])
            .collect();

        let mut processes = vec![];
        let mut probes = vec![];
        let mut base_urls = BTreeMap::new();
        for svc in &services {
            let name = svc.name().to_owned();
            let addr = addrs[&name].to_string();
            let c = svc.at("/spec/template/spec/containers/0");
            let mut env = container_env(c, &objects)?;
            if env.contains_key("SPIN_HTTP_LISTEN_ADDR") {
                env.insert("SPIN_HTTP_LISTEN_ADDR".into(), addr.clone());
            }
            let mut args: Vec<String> = match c["args"].as_array() {
                Some(a) => a
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect(),
                // The shim's entrypoint (`command: ["/"]`) is `spin up` of the mounted app.
                None => vec!["up".into()],
            };
            let mut after_listen = false;
            for arg in args.iter_mut() {
                if after_listen {
                    *arg = addr.clone();
                } else if arg == CLUSTER_RUNTIME_CONFIG {
                    *arg = runtime_config.display().to_string();
                }
                after_listen = arg == "--listen";
            }
            if !args.iter().any(|a| a == "--runtime-config-file") {
                // The shim reads /runtime-config.toml itself.
                args.extend([
                    "--runtime-config-file".into(),
                    runtime_config.display().to_string(),
                ]);
            }
            args.extend([
                "-f".into(),
                root.join("spin.toml").display().to_string(),
                "--state-dir".into(),
                dir.path().join(&name).join(".spin").display().to_string(),
            ]);
            args.extend(map_args.iter().cloned());
            processes.push(spawn(&name, &args, &env, dir.path())?);
            let probe = c["readinessProbe"]["httpGet"]["path"]
                .as_str()
                .with_context(|| format!("{name}: no readinessProbe httpGet path"))?;
            probes.push(format!("http://{addr}{probe}"));
            base_urls.insert(name, format!("http://{addr}"));
        }

        let eventing = dir.path().join("eventing");
        let subscribers = resolved_eventing(&objects, &eventing)?;
        let broker_dir = dir.path().join("broker-app");
        std::fs::create_dir_all(&broker_dir)?;
        std::fs::write(
            broker_dir.join("spin.toml"),
            broker_manifest(&eventing, &subscribers)?,
        )?;
        let broker_addr = free_port()?;
        let mut broker_args = vec![
            "up".to_owned(),
            "-f".into(),
            broker_dir.join("spin.toml").display().to_string(),
            "--runtime-config-file".into(),
            runtime_config.display().to_string(),
            "--listen".into(),
            broker_addr.to_string(),
        ];
        broker_args.extend(map_args.iter().cloned());
        // The stand-in's operator routes verify tokens like every component's (auth_jwks is
        // required); nothing here calls them, but Spin will not start without the variable.
        let broker_env = BTreeMap::from([(
            "SPIN_VARIABLE_AUTH_JWKS".to_owned(),
            crate::tokens::TEST_JWKS.to_owned(),
        )]);
        let mut broker_process = spawn("broker", &broker_args, &broker_env, dir.path())?;
        let broker = format!("http://{broker_addr}");
        let ingress = tokio::spawn(serve_ingress(
            ingress,
            ingress_path,
            broker.clone(),
            http.clone(),
        ));

        for (p, probe) in processes.iter_mut().zip(&probes) {
            ready(&http, p, probe).await?;
        }
        ready(
            &http,
            &mut broker_process,
            &format!("{broker}/health/broker"),
        )
        .await?;
        processes.push(broker_process);

        let pings = objects
            .iter()
            .filter(|o| o.is("sources.knative.dev/v1", "PingSource"))
            .map(|p| {
                (
                    p.str_at("/spec/sink/ref/name").unwrap_or("").to_owned(),
                    p.str_at("/spec/sink/uri").unwrap_or("").to_owned(),
                )
            })
            .collect();
        Ok(Cluster {
            http,
            services: base_urls,
            broker,
            pings,
            processes,
            ingress,
            _dir: dir,
        })
    }

    /// The base URL of Knative Service `name`.
    pub fn url(&self, name: &str) -> String {
        self.services
            .get(name)
            .unwrap_or_else(|| panic!("no Knative Service {name}"))
            .clone()
    }

    /// A request to Service `service`.
    pub async fn call(
        &self,
        method: reqwest::Method,
        service: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer> {
        self.call_as(crate::Who::Operator, method, service, path, body)
            .await
    }

    /// [`Cluster::call`] as `who` (a bearer token minted with the test key, which the
    /// rendered Secret's JWKS holds).
    pub async fn call_as(
        &self,
        who: crate::Who,
        method: reqwest::Method,
        service: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer> {
        let bearer = format!("Bearer {}", crate::tokens::mint(who));
        let mut headers = vec![("authorization", bearer.as_str())];
        let body = match body {
            Some(b) => {
                headers.push(("content-type", "application/json"));
                Some(serde_json::to_vec(b)?)
            }
            None => None,
        };
        crate::send(
            &self.http,
            method,
            &format!("{}{path}", self.url(service)),
            &headers,
            body,
        )
        .await
    }

    /// One tick of what runs by itself in the cluster: every PingSource fires, and the broker
    /// delivers.
    pub async fn tick(&self) -> Result<()> {
        for (service, uri) in &self.pings {
            self.call(reqwest::Method::POST, service, uri, None).await?;
        }
        deliver(&self.http, &self.broker).await
    }

    /// Polls `check` (ticking in between) until it yields `Some`; fails naming `what`.
    pub async fn eventually<T, Fut>(&self, what: &str, mut check: impl FnMut() -> Fut) -> Result<T>
    where
        Fut: std::future::Future<Output = Result<Option<T>>>,
    {
        let start = Instant::now();
        loop {
            if let Some(v) = check().await? {
                return Ok(v);
            }
            if start.elapsed() > Duration::from_secs(30) {
                bail!("timed out waiting for {what}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            self.tick().await?;
        }
    }

    /// The output of every process so far (for a failing assertion's message).
    pub fn logs(&self) -> String {
        self.processes
            .iter()
            .map(|p| {
                format!(
                    "--- {}\n{}",
                    p.name,
                    std::fs::read_to_string(&p.log).unwrap_or_default()
                )
            })
            .collect()
    }
}

/// Makes the stand-in broker deliver what is due: the ONE place that knows how. The
/// broker's ingress only stores; `POST /broker/flush` is one dispatcher pass that sends
/// every due delivery and returns without waiting (`make up` loops `/broker/dispatch`).
pub async fn deliver(http: &reqwest::Client, broker: &str) -> Result<()> {
    let r = http.post(format!("{broker}/broker/flush")).send().await?;
    ensure!(
        r.status().is_success(),
        "POST /broker/flush answered {}",
        r.status()
    );
    Ok(())
}
