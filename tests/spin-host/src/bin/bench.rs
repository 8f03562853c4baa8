//! `spin-host-bench` (`make bench`): how fast H Taxi is on this machine, in one table.
//! Prints numbers and the targets beside them; asserts nothing.
//!
//! It runs whatever `make up` runs — the Spin CLI when `spin` is on `PATH`, else the
//! project's host (`target/release/spin-host`, default post-response mode) — as a child
//! process in a temporary working directory, with `make up`'s companions
//! (`scripts/local-dispatch.sh`, `scripts/local-ping.sh`, `scripts/sqlite-keeper.py`), and drives it over loopback
//! HTTP only, like a user's load tool. Every phase is bounded in count and time, and the
//! bench stops by itself. Phases:
//! 1. the ceiling: the fixture component's empty handler (`GET /status?code=200`), req/s at
//!    concurrency 1 and 32;
//! 2. the saga at concurrency 1, 8, 16 and 32: each rider `POST /grabs`, then polls
//!    `GET /grabStatuses/{id}` until it reads `Allocated` (every 10 ms, backing off to a
//!    tenth of the time waited). Per phase: sagas/s, `POST
//!    /grabs` and `GET /grabStatuses/{id}` latency, POST → Allocated visible, and
//!    sagas/s × invocations per saga as a share of the ceiling (invocations counted by
//!    the host's stats; the rider's own polls excluded);
//! 3. where the time goes, per component, at 1 and 32 riders: invocations per saga, and
//!    per invocation its wall time, its guest's CPU and its SQLite statements' CPU (the
//!    host's counters; n/a under the Spin CLI);
//! 4. peak RSS of the app process.
//!
//! Flags: `--secs N` per phase (default 5), `--max-sagas N` per phase (default 1500).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use spin_host::tokens::{self, Who};

fn root() -> PathBuf {
    std::path::absolute(Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")).expect("root")
}

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// How soon a rider polls `GET /grabStatuses/{id}` again while waiting for `Allocated`:
/// every 10 ms at first, then every tenth of the time waited so far, as an app that backs
/// off would. "Allocated visible" is so known within 10 ms or 10 %. A fixed 10 ms gap
/// let the polls feed on themselves: at 32 riders that is 3,200 reads/s, about the
/// empty-handler ceiling, so every slower saga was polled more and slowed the next.
const POLL_EVERY: Duration = Duration::from_millis(10);

fn poll_gap(waited: Duration) -> Duration {
    POLL_EVERY.max(waited / 10)
}

/// A runtime process and its companions; killed on drop.
struct Running {
    app: Child,
    companions: Vec<Child>,
    addr: SocketAddr,
    /// Whether the host's stats API is there (not under the Spin CLI).
    stats: bool,
    runtime: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        for c in self
            .companions
            .iter_mut()
            .chain(std::iter::once(&mut self.app))
        {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Running {
    /// CPU time (user + system) the app process has used so far, seconds.
    fn cpu_secs(&self) -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.app.id())).ok()?;
        // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let ticks: f64 =
            fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
        // /proc counts in USER_HZ, which Linux fixes at 100 for user space.
        Some(ticks / 100.0)
    }

    /// Peak resident set of the app process, MiB.
    fn peak_rss_mib(&self) -> Option<f64> {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.app.id())).ok()?;
        let kib: f64 = s
            .lines()
            .find(|l| l.starts_with("VmHWM:"))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()?;
        Some(kib / 1024.0)
    }
}

fn free_addr() -> Result<SocketAddr> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?)
}

fn spin_cli() -> bool {
    Command::new("spin")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Start `manifest` as `make up` would, in `workdir`, and wait until `ready` answers.
async fn start(
    manifest: &Path,
    runtime_config: &Path,
    workdir: &Path,
    env: &[(&str, String)],
    ready: &str,
    companions: bool,
) -> Result<Running> {
    let addr = free_addr()?;
    let log = std::fs::File::create(workdir.join("app.log"))?;
    let (mut cmd, runtime, stats) = if spin_cli() {
        let mut c = Command::new("spin");
        c.arg("up");
        (c, "Spin CLI (spin up)".to_owned(), false)
    } else {
        // `SPIN_HOST_BIN` points at another build of the host (e.g. target/debug/spin-host).
        let bin = std::env::var_os("SPIN_HOST_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| root().join("target/release/spin-host"));
        if !bin.exists() {
            bail!("{} is missing: `make bench` builds it", bin.display());
        }
        let label = format!("project host ({})", bin.display());
        let mut c = Command::new(bin);
        c.args(["up", "--enable-faults"]);
        c.env("SPIN_HOST_CACHE_DIR", root().join("target/spin-host-cache"));
        (c, label, true)
    };
    cmd.arg("--from")
        .arg(manifest)
        .arg("--runtime-config-file")
        .arg(runtime_config)
        .args(["--listen", &addr.to_string()])
        .current_dir(workdir)
        .stdout(log.try_clone()?)
        .stderr(log)
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let app = cmd.spawn().context("starting the runtime")?;
    let mut running = Running {
        app,
        companions: vec![],
        addr,
        stats,
        runtime,
    };
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        if let Ok(mut c) = Client::connect(addr).await {
            if let Ok((200, _)) = c.call("GET", ready, None).await {
                break;
            }
        }
        if Instant::now() > deadline {
            bail!(
                "the app did not answer {ready} within 180 s; see {}",
                workdir.join("app.log").display()
            );
        }
        if let Some(status) = running.app.try_wait()? {
            bail!(
                "the runtime exited ({status}); see {}",
                workdir.join("app.log").display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if companions {
        for script in ["scripts/local-dispatch.sh", "scripts/local-ping.sh"] {
            running.companions.push(
                Command::new(root().join(script))
                    .arg(format!("http://{addr}"))
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .with_context(|| format!("starting {script}"))?,
            );
        }
        running.companions.push(
            Command::new(root().join("scripts/sqlite-keeper.py"))
                .arg(runtime_config)
                .arg(workdir)
                .stdout(Stdio::null())
                .spawn()
                .context("starting scripts/sqlite-keeper.py")?,
        );
    }
    Ok(running)
}

/// One keep-alive HTTP/1 connection.
struct Client {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    addr: SocketAddr,
    /// The bearer token sent with each request ([`Client::as_`]), if any.
    token: Option<String>,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Result<Client> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        Ok(Client {
            sender,
            addr,
            token: None,
        })
    }

    /// Send the requests that follow as `who` (a token signed with the test key the bench
    /// app trusts, as the e2e suites do).
    fn as_(&mut self, who: Who) -> &mut Self {
        self.token = Some(tokens::mint(who));
        self
    }

    async fn call(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Bytes)> {
        let mut b = http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", self.addr.to_string());
        if let Some(token) = &self.token {
            b = b.header("authorization", format!("Bearer {token}"));
        }
        let bytes = match body {
            Some(v) => {
                b = b.header("content-type", "application/json");
                Bytes::from(serde_json::to_vec(v)?)
            }
            None => Bytes::new(),
        };
        self.sender.ready().await?;
        let resp = self.sender.send_request(b.body(Full::new(bytes))?).await?;
        let status = resp.status().as_u16();
        Ok((status, resp.into_body().collect().await?.to_bytes()))
    }

    async fn json(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value)> {
        let (status, bytes) = self.call(method, path, body).await?;
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

/// Closed loop on the empty handler: req/s with `concurrency` connections for `secs`.
async fn ceiling(addr: SocketAddr, concurrency: usize, secs: u64) -> Result<f64> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = vec![];
    for _ in 0..concurrency {
        let stop = stop.clone();
        workers.push(tokio::spawn(async move {
            let mut c = Client::connect(addr).await?;
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let (status, _) = c.call("GET", "/status?code=200", None).await?;
                anyhow::ensure!(status == 200, "unexpected status {status}");
                n += 1;
            }
            anyhow::Ok(n)
        }));
    }
    let t = Instant::now();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    for w in workers {
        total += w.await.context("worker panicked")??;
    }
    Ok(total as f64 / t.elapsed().as_secs_f64())
}

/// What one saga phase measured.
struct Phase {
    concurrency: usize,
    sagas: usize,
    secs: f64,
    post: Vec<Duration>,
    get: Vec<Duration>,
    visible: Vec<Duration>,
    polls: usize,
    /// Component invocations in the phase (host stats), if known.
    invocations: Option<u64>,
    /// CPU seconds the app process spent in the phase (its companions excluded).
    cpu_secs: Option<f64>,
    /// The host's counters before and after the phase, if known.
    stats: Option<(Stats, Stats)>,
    failed: usize,
}

/// Rider `i`'s phone number.
fn phone(i: usize) -> String {
    format!("010-8{:03}-{:04}", (i / 10_000) % 1000, i % 10_000)
}

/// The trip every bench rider takes.
fn trip() -> Value {
    json!({
        "startingPoint": {"lat": 37.5547, "lng": 126.9707, "name": "Seoul Station"},
        "destination": {"lat": 37.4979, "lng": 127.0276, "name": "Gangnam Station"},
    })
}

/// Rider `i` asks for a fare (the client's rider is already set to `i`) and books it:
/// the body of `POST /grabs`. Fails unless the quote is 201.
async fn grab_body(c: &mut Client, i: usize) -> Result<Value> {
    let (status, quote) = c.json("POST", "/fares/quote", Some(&trip())).await?;
    if status != 201 {
        anyhow::bail!("POST /fares/quote answered {status}: {quote}");
    }
    Ok(json!({
        "phoneNumber": phone(i),
        "quoteId": quote["quoteId"],
        "startingPoint": quote["startingPoint"],
        "destination": quote["destination"],
    }))
}

/// The host's per-component counters (`/.well-known/spin-host/stats`).
type Stats = BTreeMap<String, Value>;

async fn host_stats(addr: SocketAddr) -> Result<Stats> {
    let mut c = Client::connect(addr).await?;
    let (_, stats) = c.json("GET", "/.well-known/spin-host/stats", None).await?;
    Ok(stats
        .as_object()
        .map(|o| o.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default())
}

fn total_invocations(stats: &Stats) -> u64 {
    stats.values().filter_map(|s| s["requests"].as_u64()).sum()
}

/// One component's share of a phase: counter `field` after minus before.
fn stat_delta(before: &Stats, after: &Stats, component: &str, field: &str) -> f64 {
    let get = |s: &Stats| {
        s.get(component)
            .and_then(|c| c[field].as_u64())
            .unwrap_or(0)
    };
    get(after).saturating_sub(get(before)) as f64
}

/// `concurrency` riders, until `max` sagas or `secs` have passed. Each rider's taxi driver
/// accepts the offer once, as soon as the rider's poll shows it.
async fn saga_phase(
    app: &Running,
    concurrency: usize,
    max: usize,
    secs: u64,
    first_rider: usize,
) -> Result<Phase> {
    let addr = app.addr;
    let cpu_before = app.cpu_secs();
    let before = if app.stats {
        Some(host_stats(addr).await?)
    } else {
        None
    };
    let next = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let t = Instant::now();
    let mut workers = vec![];
    for _ in 0..concurrency {
        let next = next.clone();
        workers.push(tokio::spawn(async move {
            let mut c = Client::connect(addr).await?;
            let (mut post, mut get, mut visible, mut polls, mut failed) =
                (vec![], vec![], vec![], 0usize, 0usize);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= max || Instant::now() >= deadline {
                    break;
                }
                c.as_(Who::Rider(phone(first_rider + i)));
                let booking = grab_body(&mut c, first_rider + i).await?;
                let start = Instant::now();
                let (status, body) = c.json("POST", "/grabs", Some(&booking)).await?;
                post.push(start.elapsed());
                let Some(id) = body["id"]
                    .as_str()
                    .filter(|_| status == 201)
                    .map(str::to_owned)
                else {
                    failed += 1;
                    continue;
                };
                let path = format!("/grabStatuses/{id}");
                let give_up = Instant::now() + Duration::from_secs(30);
                // A driver taps accept once per offer: until `TaxiAllocated` reaches the
                // view, later polls still show the offer they accepted.
                let mut accepted: Option<String> = None;
                loop {
                    let g = Instant::now();
                    let (status, view) = c.json("GET", &path, None).await?;
                    get.push(g.elapsed());
                    polls += 1;
                    if status == 200 && view["grabStatus"] == "Allocated" {
                        visible.push(start.elapsed());
                        break;
                    }
                    // The ride is offered to a taxi: its driver accepts at once (a grab is
                    // Allocated once a driver has accepted), then the rider polls again.
                    if status == 200 && view["allocationStatus"] == "Offered" {
                        if let (Some(offer), Some(taxi)) =
                            (view["allocationId"].as_str(), view["taxiId"].as_str())
                        {
                            if accepted.as_deref() != Some(offer) {
                                c.as_(Who::Driver(taxi.to_owned()));
                                c.json("POST", &format!("/allocations/{offer}/accept"), None)
                                    .await?;
                                c.as_(Who::Rider(phone(first_rider + i)));
                                accepted = Some(offer.to_owned());
                                continue;
                            }
                        }
                    }
                    if Instant::now() > give_up {
                        failed += 1;
                        break;
                    }
                    tokio::time::sleep(poll_gap(start.elapsed())).await;
                }
            }
            anyhow::Ok((post, get, visible, polls, failed))
        }));
    }
    let mut phase = Phase {
        concurrency,
        sagas: 0,
        secs: 0.0,
        post: vec![],
        get: vec![],
        visible: vec![],
        polls: 0,
        invocations: None,
        cpu_secs: None,
        stats: None,
        failed: 0,
    };
    for w in workers {
        let (post, get, visible, polls, failed) = w.await.context("rider panicked")??;
        phase.post.extend(post);
        phase.get.extend(get);
        phase.visible.extend(visible);
        phase.polls += polls;
        phase.failed += failed;
    }
    phase.secs = t.elapsed().as_secs_f64();
    phase.cpu_secs = cpu_before.zip(app.cpu_secs()).map(|(a, b)| b - a);
    phase.sagas = phase.visible.len();
    for v in [&mut phase.post, &mut phase.get, &mut phase.visible] {
        v.sort();
    }
    if let Some(before) = before {
        // The host counts the stats call itself too; the riders' polls are theirs, not the saga's.
        let after = host_stats(addr).await?;
        phase.invocations = Some(
            total_invocations(&after)
                .saturating_sub(total_invocations(&before) + phase.polls as u64 + 1),
        );
        phase.stats = Some((before, after));
    }
    Ok(phase)
}

/// The cost of one request of a kind, measured alone.
struct Cost {
    what: &'static str,
    wall_ms: f64,
    cpu_ms: Option<f64>,
}

/// One request at a time, per kind: what an instance costs, what opening its SQLite
/// database adds (Spin opens a connection per instance), a Python (componentize-py)
/// instance, and the rider's `POST /grabs` (grab, pay and two broker ingress calls; the
/// dispatcher's deliveries run beside it and are counted too).
async fn invocation_costs(app: &Running) -> Result<Vec<Cost>> {
    let kinds: [(&'static str, &str, &str, usize); 5] = [
        (
            "Rust instance, no database (`POST /health/grab-status`: 405)",
            "POST",
            "/health/grab-status",
            300,
        ),
        (
            "Rust instance + opening its database (`GET /health/grab-status`)",
            "GET",
            "/health/grab-status",
            300,
        ),
        (
            "Rust instance + database + one read (`GET /grabStatuses/{id}`)",
            "GET",
            "/grabStatuses/00000000-0000-4000-8000-000000000000",
            300,
        ),
        (
            "Python instance + its database (`GET /health/notify`)",
            "GET",
            "/health/notify",
            100,
        ),
        (
            "`POST /grabs` (grab, pay, 2 ingress calls; deliveries beside it)",
            "POST",
            "/grabs",
            50,
        ),
    ];
    let mut c = Client::connect(app.addr).await?;
    let mut out = vec![];
    for (k, (what, method, path, n)) in kinds.into_iter().enumerate() {
        // A grab books a quote: fetch them first, so only the measured call is timed.
        let mut bodies = Vec::with_capacity(n);
        for i in 0..n {
            let rider = 800_000 + k * 1000 + i;
            c.as_(Who::Rider(phone(rider)));
            bodies.push(if path == "/grabs" {
                Some(grab_body(&mut c, rider).await?)
            } else {
                None
            });
        }
        tokio::time::sleep(Duration::from_millis(500)).await; // let deliveries settle
        let cpu0 = app.cpu_secs();
        let t = Instant::now();
        for (i, body) in bodies.iter().enumerate() {
            c.as_(Who::Rider(phone(800_000 + k * 1000 + i)));
            c.call(method, path, body.as_ref()).await?;
        }
        let wall_ms = t.elapsed().as_secs_f64() * 1000.0 / n as f64;
        let cpu_ms = cpu0
            .zip(app.cpu_secs())
            .map(|(a, b)| (b - a) * 1000.0 / n as f64);
        out.push(Cost {
            what,
            wall_ms,
            cpu_ms,
        });
    }
    Ok(out)
}

/// The fixture app (3 components, the empty handler), as the ceiling's subject.
fn fixture_app(dir: &Path) -> Result<(PathBuf, PathBuf)> {
    let wasm = root().join("target/wasm32-wasip2/release/fixture.wasm");
    anyhow::ensure!(
        wasm.exists(),
        "{} is missing: run `make build` first",
        wasm.display()
    );
    let fixture = root().join("tests/fixture");
    let manifest = std::fs::read_to_string(fixture.join("spin.toml"))?
        .replace(
            "\"../../target/wasm32-wasip2/release/fixture.wasm\"",
            &format!("{:?}", wasm.display().to_string()),
        )
        .replace(
            "source = \"static\"",
            &format!(
                "source = {:?}",
                fixture.join("static").display().to_string()
            ),
        );
    std::fs::write(dir.join("spin.toml"), manifest)?;
    std::fs::copy(
        fixture.join("runtime-config.toml"),
        dir.join("runtime-config.toml"),
    )?;
    Ok((dir.join("spin.toml"), dir.join("runtime-config.toml")))
}

/// Per component, from the host's counters over one phase: how often it ran per saga and
/// what an invocation cost (wall time, CPU of its guest, CPU of its SQLite statements).
fn where_the_time_goes(p: &Phase, before: &Stats, after: &Stats) {
    let sagas = p.sagas.max(1) as f64;
    println!();
    println!(
        "| where the time goes at {} rider(s), per component (host counters; grab-status includes the riders' {:.1} polls/saga) | invocations/saga | wall ms/invocation | guest CPU ms/invocation | SQLite CPU ms/invocation | SQLite statements/invocation (busy) | CPU ms/saga |",
        p.concurrency,
        p.polls as f64 / sagas
    );
    println!("|---|---|---|---|---|---|---|");
    let mut total_cpu = 0.0;
    for component in after.keys() {
        let d = |field| stat_delta(before, after, component, field);
        let n = d("requests");
        if n == 0.0 {
            continue;
        }
        let (guest, sql) = (d("guest_cpu_us") / 1000.0, d("sqlite_cpu_us") / 1000.0);
        total_cpu += (guest + sql) / sagas;
        println!(
            "| {component} | {:.1} | {:.2} | {:.2} | {:.2} | {:.1} ({:.1}) | {:.1} |",
            n / sagas,
            d("busy_us") / 1000.0 / n,
            guest / n,
            sql / n,
            d("sqlite_statements") / n,
            d("sqlite_busy") / n,
            (guest + sql) / sagas
        );
    }
    let process = p
        .cpu_secs
        .map_or("n/a".to_owned(), |c| format!("{:.0}", 1000.0 * c / sagas));
    println!(
        "| all components (the whole process: {process} ms/saga; the rest is HTTP, scheduling, the kernel) | | | | | | {total_cpu:.1} |"
    );
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED"
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let secs = arg("--secs", 5);
    let max = arg("--max-sagas", 1500) as usize;

    // 1. The ceiling.
    let fixture_dir = tempfile::tempdir()?;
    let (manifest, rc) = fixture_app(fixture_dir.path())?;
    let fixture = start(
        &manifest,
        &rc,
        fixture_dir.path(),
        &[("SPIN_VARIABLE_SECRET_TOKEN", "bench".to_owned())],
        "/status?code=200",
        false,
    )
    .await?;
    println!("runtime: {}", fixture.runtime);
    ceiling(fixture.addr, 4, 1).await?; // warm-up
    let ceiling_1 = ceiling(fixture.addr, 1, secs).await?;
    let ceiling_32 = ceiling(fixture.addr, 32, secs).await?;
    drop(fixture);

    // 2. The saga, against the app as `make up` runs it.
    let app_dir = tempfile::tempdir()?;
    std::fs::create_dir_all(app_dir.path().join(".spin"))?;
    let key: String = format!("bench-{}", std::process::id());
    let app = start(
        &root().join("spin.toml"),
        &root().join("runtime-config.toml"),
        app_dir.path(),
        &[
            ("SPIN_VARIABLE_PAY_API_KEY", key),
            ("SPIN_VARIABLE_AUTH_JWKS", tokens::TEST_JWKS.to_owned()),
        ],
        "/health/broker",
        true,
    )
    .await?;
    let concurrencies = [1usize, 8, 16, 32];
    let per_phase = |c: usize| if c == 1 { max.min(200) } else { max };
    // One taxi per saga (riders never release them), near Seoul Station.
    let taxis: usize = concurrencies.iter().map(|c| per_phase(*c)).sum::<usize>() + 20;
    let registered = Arc::new(AtomicUsize::new(0));
    let mut regs = vec![];
    for w in 0..16 {
        let registered = registered.clone();
        let addr = app.addr;
        regs.push(tokio::spawn(async move {
            let mut c = Client::connect(addr).await?;
            let mut i = w;
            while i < taxis {
                let body = json!({"taxiNum": format!("서울{:02}벤{:04}", i / 10_000, i % 10_000),
                    "location": {"lat": 37.50 + (i % 60) as f64 * 0.001, "lng": 126.95 + (i / 60) as f64 * 0.001}});
                let taxi_id = format!("00000000-0000-4000-8000-{i:012}");
                let (status, _) = c
                    .as_(Who::Driver(taxi_id))
                    .call("POST", "/taxis", Some(&body))
                    .await?;
                anyhow::ensure!(status == 201, "registering a taxi: {status}");
                registered.fetch_add(1, Ordering::Relaxed);
                i += 16;
            }
            anyhow::Ok(())
        }));
    }
    for r in regs {
        r.await??;
    }
    saga_phase(&app, 4, 40, secs, 900_000).await?; // warm-up
    let mut phases = vec![];
    let mut rider = 0;
    for c in concurrencies {
        let p = saga_phase(&app, c, per_phase(c), secs, rider).await?;
        rider += per_phase(c);
        phases.push(p);
    }
    let costs = invocation_costs(&app).await?;
    let rss = app.peak_rss_mib();
    let runtime = app.runtime.clone();
    drop(app);

    // 3. The table.
    println!();
    println!(
        "H Taxi bench — {runtime}, {secs} s or {max} sagas per phase, loopback HTTP, keep-alive, riders poll every {} ms or a tenth of the time waited",
        POLL_EVERY.as_millis()
    );
    // The one wasmtime knob the Makefile sets (its comment says why); spin-core and the host
    // read it alike, and it moves notify's cost threefold, so the table says what it ran with.
    println!(
        "linear memory kept resident per instance slot: {} (SPIN_WASMTIME_LINEAR_MEMORY_KEEP_RESIDENT; Spin's default is 2 MiB)",
        std::env::var("SPIN_WASMTIME_LINEAR_MEMORY_KEEP_RESIDENT")
            .map_or_else(|_| "unset".to_owned(), |v| format!("{v} bytes"))
    );
    println!();
    println!("| empty handler (fixture `GET /status`) | req/s |");
    println!("|---|---|");
    println!("| concurrency 1 | {ceiling_1:.0} |");
    println!("| concurrency 32 | {ceiling_32:.0} |");
    println!();
    println!("| riders | sagas | sagas/s | POST /grabs p50 / p99 ms | GET /grabStatuses/{{id}} p50 / p99 ms | POST → Allocated visible p50 / p99 ms | invocations/saga | share of ceiling | app CPU ms/saga (riders' polls incl.) | failed |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for p in &phases {
        let rate = p.sagas as f64 / p.secs;
        let (inv, share) = match p.invocations {
            Some(total) if p.sagas > 0 => {
                let per = total as f64 / p.sagas as f64;
                (
                    format!("{per:.1}"),
                    format!("{:.0} %", 100.0 * rate * per / ceiling_32),
                )
            }
            _ => ("n/a".to_owned(), "n/a".to_owned()),
        };
        let cpu = match p.cpu_secs {
            Some(c) if p.sagas > 0 => format!("{:.0}", 1000.0 * c / p.sagas as f64),
            _ => "n/a".to_owned(),
        };
        println!(
            "| {} | {} | {rate:.1} | {:.1} / {:.1} | {:.1} / {:.1} | {:.1} / {:.1} | {inv} | {share} | {cpu} | {} |",
            p.concurrency,
            p.sagas,
            pct(&p.post, 0.5),
            pct(&p.post, 0.99),
            pct(&p.get, 0.5),
            pct(&p.get, 0.99),
            pct(&p.visible, 0.5),
            pct(&p.visible, 0.99),
            p.failed
        );
    }
    println!();
    println!("| where a saga's CPU goes: one request, sequential | wall ms | app CPU ms |");
    println!("|---|---|---|");
    for c in &costs {
        println!(
            "| {} | {:.2} | {} |",
            c.what,
            c.wall_ms,
            c.cpu_ms.map_or("n/a".to_owned(), |v| format!("{v:.2}"))
        );
    }
    for p in phases
        .iter()
        .filter(|p| p.concurrency == 1 || p.concurrency == 32)
    {
        if let Some((before, after)) = &p.stats {
            where_the_time_goes(p, before, after);
        }
    }
    println!();
    match rss {
        Some(mib) => println!("peak RSS of the app process: {mib:.0} MiB"),
        None => println!("peak RSS of the app process: n/a"),
    }
    let by = |c: usize| phases.iter().find(|p| p.concurrency == c).expect("phase");
    let rate = |c: usize| by(c).sagas as f64 / by(c).secs;
    let p16 = by(16);
    println!();
    println!("targets (printed, never asserted):");
    println!(
        "  POST /grabs at 16 riders p50 <= 10 ms, p99 <= 50 ms: {:.1} / {:.1} ms — {}",
        pct(&p16.post, 0.5),
        pct(&p16.post, 0.99),
        verdict(pct(&p16.post, 0.5) <= 10.0 && pct(&p16.post, 0.99) <= 50.0)
    );
    println!(
        "  POST → Allocated visible at 16 riders p50 <= 30 ms, p99 <= 150 ms: {:.1} / {:.1} ms — {}",
        pct(&p16.visible, 0.5),
        pct(&p16.visible, 0.99),
        verdict(pct(&p16.visible, 0.5) <= 30.0 && pct(&p16.visible, 0.99) <= 150.0)
    );
    println!(
        "  >= 300 sagas/s at 32 riders: {:.1} — {}",
        rate(32),
        verdict(rate(32) >= 300.0)
    );
    println!(
        "  throughput non-decreasing 8 → 16 → 32: {:.1} → {:.1} → {:.1} — {}",
        rate(8),
        rate(16),
        rate(32),
        verdict(rate(16) >= rate(8) && rate(32) >= rate(16))
    );
    Ok(())
}
