//! End-to-end test support: start the real H Taxi app (`spin.toml`, the built `.wasm`
//! components, real SQLite files in a temporary state dir) on the project's
//! Spin-compatible host, talk to it over HTTP like a rider, a driver and an operator, and
//! check the saga's money and taxi invariants through the services' own APIs.
//!
//! The wasm components must be built first (`make build`); [`Saga::start`] says so clearly
//! when they are missing.
//!
//! Every request carries a bearer token minted with the test key ([`tokens`]): the plain
//! helpers ([`Saga::get`], [`Saga::post`], ...) act as an operator (who may read every
//! list, the way the invariant checks look at the system); [`Saga::rider`],
//! [`Saga::driver`] and [`Saga::anonymous`] act as someone else.
//!
//! Like `make up`, a started app has the broker's dispatcher loop beside it (a task
//! calling `POST /broker/dispatch` back to back), and the host runs in its strict
//! post-response mode (a guest is aborted once its answer is sent, as on Spin main), so
//! nothing in the app can come to depend on work after an answer.

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use spin_host::{AppOptions, FaultSpec, PostResponse, RunningApp, TestApp};
use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub mod contract;
pub mod deliver;
pub use spin_host::tokens;
pub mod topology;

pub use tokens::Who;

/// The repository root (this crate lives in `tests/e2e`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repo root exists")
}

/// The pay API key every test run uses (a test value, not a default anywhere).
pub const TEST_PAY_KEY: &str = "e2e-test-pay-key";

/// One HTTP answer, body parsed as JSON when it is JSON.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: Value,
    pub text: String,
}

impl Answer {
    /// A header, by lower-case name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    /// Assert this is an RFC 9457 problem with the given status; returns self for chaining.
    #[track_caller]
    pub fn assert_problem(&self, status: u16) -> &Self {
        assert_eq!(
            self.status, status,
            "expected {status}, got {}: {}",
            self.status, self.text
        );
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "error answers are problem+json: {}",
            self.text
        );
        for field in ["type", "title", "status", "detail"] {
            assert!(
                self.body.get(field).is_some(),
                "problem has {field}: {}",
                self.text
            );
        }
        assert_eq!(self.body["status"], json!(status));
        self
    }
}

/// A running app plus an HTTP client.
pub struct Saga {
    app: Option<RunningApp>,
    dispatcher: Option<tokio::task::JoinHandle<()>>,
    /// Drivers who accept every offer (see [`Saga::answer_offers_myself`]).
    drivers: Option<tokio::task::JoinHandle<()>>,
    pub http: reqwest::Client,
    pub base: String,
    dir: tempfile::TempDir,
    variables: Vec<(String, String)>,
    /// `scripts/sqlite-keeper.py`, as `make up` runs it: WAL survives between requests.
    keeper: std::process::Child,
}

impl Saga {
    /// Start the whole app with fresh databases.
    pub async fn start() -> Result<Saga> {
        Self::start_with(Vec::new()).await
    }

    /// Start the whole app with extra variable values (`SPIN_VARIABLE_*` equivalents).
    pub async fn start_with(variables: Vec<(&str, &str)>) -> Result<Saga> {
        let dir = tempfile::tempdir()?;
        let mut vars: Vec<(String, String)> = vec![
            ("pay_api_key".into(), TEST_PAY_KEY.into()),
            ("auth_jwks".into(), tokens::TEST_JWKS.into()),
        ];
        vars.extend(
            variables
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned())),
        );
        let app = launch(dir.path(), &vars).await?;
        let base = app.base_url();
        let keeper = sqlite_keeper(dir.path())?;
        Ok(Saga {
            keeper,
            app: Some(app),
            dispatcher: Some(dispatcher_loop(base.clone())),
            drivers: Some(drivers_accepting(base.clone())),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .pool_max_idle_per_host(64)
                .build()?,
            base,
            dir,
            variables: vars,
        })
    }

    /// Stop the host (in-flight requests finish) and start it again on the same databases.
    pub async fn restart(&mut self) -> Result<()> {
        if let Some(d) = self.dispatcher.take() {
            d.abort();
        }
        let drivers = self.drivers.take().map(|d| d.abort()).is_some();
        if let Some(app) = self.app.take() {
            app.shutdown().await?;
        }
        let app = launch(self.dir.path(), &self.variables).await?;
        self.base = app.base_url();
        self.app = Some(app);
        self.dispatcher = Some(dispatcher_loop(self.base.clone()));
        if drivers {
            self.drivers = Some(drivers_accepting(self.base.clone()));
        }
        Ok(())
    }

    /// Stop the harness's drivers from accepting every offer: the test answers offers
    /// itself (accept, decline, or let them expire).
    pub async fn answer_offers_myself(&mut self) {
        if let Some(d) = self.drivers.take() {
            d.abort();
            tokio::time::sleep(Duration::from_millis(2 * DRIVERS_EVERY_MS)).await;
        }
    }

    /// The grab's open offer (`GET /allocations?grabId=`), once there is one.
    pub async fn offer_of(&self, grab_id: &str) -> Result<Value> {
        let path = format!("/allocations?grabId={grab_id}");
        self.eventually("an open offer", Duration::from_secs(20), || {
            let path = path.clone();
            async move {
                let a = self.get(&path).await?;
                Ok(list_of(&a.body, "allocations")
                    .into_iter()
                    .find(|o| o["status"] == json!("Offered")))
            }
        })
        .await
    }

    /// Stop the dispatcher loop (to see what the ingress alone does); waits out the
    /// long-poll the loop may have left running in the broker.
    pub async fn stop_dispatcher(&mut self) {
        if let Some(d) = self.dispatcher.take() {
            d.abort();
            tokio::time::sleep(Duration::from_millis(2 * DISPATCH_WAIT_MS + 200)).await;
        }
    }

    /// Start the dispatcher loop again.
    pub fn start_dispatcher(&mut self) {
        if self.dispatcher.is_none() {
            self.dispatcher = Some(dispatcher_loop(self.base.clone()));
        }
    }

    /// The running host (faults, stats).
    pub fn app(&self) -> &RunningApp {
        self.app.as_ref().expect("app is running")
    }

    /// The SQLite file of database `label` (runtime-config.toml puts each at `.spin/<label>.db`).
    pub fn database(&self, label: &str) -> PathBuf {
        self.dir.path().join(".spin").join(format!("{label}.db"))
    }

    /// Inject a fault; returns its id.
    pub fn fault(&self, spec: FaultSpec) -> u64 {
        self.app().faults().inject(spec)
    }

    /// Remove every fault.
    pub fn clear_faults(&self) {
        self.app().faults().clear_all();
    }

    /// Requests as `who`, with a valid token.
    pub fn as_(&self, who: Who) -> Caller<'_> {
        self.with_token(Some(tokens::mint(who)))
    }

    /// Requests as the rider of `phone`.
    pub fn rider(&self, phone: &str) -> Caller<'_> {
        self.as_(Who::Rider(phone.to_owned()))
    }

    /// Requests as the driver of taxi `taxi_id`.
    pub fn driver(&self, taxi_id: &str) -> Caller<'_> {
        self.as_(Who::Driver(taxi_id.to_owned()))
    }

    /// Requests as the driver of the taxi an allocation (a JSON answer) names.
    pub fn driver_of(&self, allocation: &Value) -> Caller<'_> {
        self.driver(allocation["taxiId"].as_str().unwrap_or_default())
    }

    /// Requests with no token at all.
    pub fn anonymous(&self) -> Caller<'_> {
        self.with_token(None)
    }

    /// Requests with this bearer token (or none).
    pub fn with_token(&self, token: Option<String>) -> Caller<'_> {
        Caller { saga: self, token }
    }

    /// Send a request as an operator and read the answer. An `authorization` header in
    /// `headers` (pay's service key) replaces the token.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Result<Answer> {
        self.as_(Who::Operator)
            .send(method, path, headers, body)
            .await
    }

    /// `GET path` as an operator.
    pub async fn get(&self, path: &str) -> Result<Answer> {
        self.as_(Who::Operator).get(path).await
    }

    /// `POST path` with a JSON body, as an operator.
    pub async fn post(&self, path: &str, body: &Value) -> Result<Answer> {
        self.as_(Who::Operator).post(path, body).await
    }

    /// `POST path` with a JSON body and extra headers, as an operator.
    pub async fn post_with(
        &self,
        path: &str,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> Result<Answer> {
        self.as_(Who::Operator).post_with(path, body, headers).await
    }

    /// `POST path` with raw bytes and headers, as an operator.
    pub async fn post_raw(
        &self,
        path: &str,
        body: &[u8],
        headers: &[(&str, &str)],
    ) -> Result<Answer> {
        self.as_(Who::Operator).post_raw(path, body, headers).await
    }

    /// `DELETE path` as an operator.
    pub async fn delete(&self, path: &str) -> Result<Answer> {
        self.as_(Who::Operator).delete(path).await
    }

    /// A new taxi's driver registers it; returns its id (the one the driver's token names).
    pub async fn register_taxi(&self, taxi_num: &str, lat: f64, lng: f64) -> Result<String> {
        let taxi_id = uuid();
        let a = self
            .driver(&taxi_id)
            .post(
                "/taxis",
                &json!({"taxiNum": taxi_num, "location": {"lat": lat, "lng": lng}}),
            )
            .await?;
        if a.status != 201 {
            bail!("registering taxi {taxi_num}: {} {}", a.status, a.text);
        }
        Ok(a.body["taxiId"].as_str().context("taxiId")?.to_owned())
    }

    /// The rider of `phone` asks `POST /fares/quote` for a ride from Seoul Station to
    /// `destination`; returns the quote (fails unless 201).
    pub async fn quote(&self, phone: &str, destination: Value) -> Result<Value> {
        self.quote_trip(phone, seoul_station(), destination).await
    }

    /// The rider of `phone` asks `POST /fares/quote` for a ride from `start` to
    /// `destination`; returns the quote (fails unless 201).
    pub async fn quote_trip(&self, phone: &str, start: Value, destination: Value) -> Result<Value> {
        let a = self
            .rider(phone)
            .post(
                "/fares/quote",
                &json!({"startingPoint": start, "destination": destination}),
            )
            .await?;
        if a.status != 201 {
            bail!("quoting a fare for {phone}: {} {}", a.status, a.text);
        }
        Ok(a.body)
    }

    /// The rider of `phone` books a quoted ride from Seoul Station to Gangnam Station;
    /// returns the answer to `POST /grabs`.
    pub async fn request_grab(&self, phone: &str) -> Result<Answer> {
        self.request_grab_to(phone, gangnam()).await
    }

    /// The rider of `phone` books a quoted ride from Seoul Station to `destination`
    /// (e.g. [`busan`], a fare over the payment limit).
    pub async fn request_grab_to(&self, phone: &str, destination: Value) -> Result<Answer> {
        let quote = self.quote(phone, destination).await?;
        self.rider(phone)
            .post(&grab_path(), &grab_body(phone, &quote))
            .await
    }

    /// Everything the local PingSources would do, plus a broker flush: flush every outbox
    /// and send the broker's due rows now (the dispatcher loop does that too; a flush
    /// just does not wait for its next pass). Best effort, like a PingSource: a component
    /// that is down (e.g. by an injected fault) is simply flushed on a later tick.
    pub async fn flush_all(&self) -> Result<()> {
        for p in [
            "/outbox/flush/grab",
            "/outbox/flush/pay",
            "/outbox/flush/allocate",
            "/broker/flush",
        ] {
            self.post_raw(p, b"", &[]).await?;
        }
        Ok(())
    }

    /// Poll `check` until it yields `Some`, flushing outboxes between tries; fails after
    /// `timeout` naming `what`.
    pub async fn eventually<T, F, Fut>(
        &self,
        what: &str,
        timeout: Duration,
        mut check: F,
    ) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Option<T>>>,
    {
        let start = Instant::now();
        let mut delay = Duration::from_millis(20);
        loop {
            if let Some(v) = check().await? {
                return Ok(v);
            }
            if start.elapsed() > timeout {
                bail!("timed out after {timeout:?} waiting for {what}");
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_millis(300));
            self.flush_all().await?;
        }
    }

    /// Wait until the view of `grab_id` satisfies `pred`; returns the view.
    pub async fn status_until(
        &self,
        grab_id: &str,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Result<Value> {
        let path = format!("/grabStatuses/{grab_id}");
        self.eventually(what, Duration::from_secs(20), || {
            let path = path.clone();
            let pred = &pred;
            async move {
                let a = self.get(&path).await?;
                Ok((a.status == 200 && pred(&a.body)).then_some(a.body))
            }
        })
        .await
    }

    /// Wait until grab's own record of `grab_id` (`GET /grabs/{id}`) reaches `status`.
    pub async fn grab_until(&self, grab_id: &str, status: &str) -> Result<Value> {
        let path = format!("/grabs/{grab_id}");
        self.eventually(&format!("grab {status}"), Duration::from_secs(20), || {
            let path = path.clone();
            async move {
                let g = self.get(&path).await?;
                Ok((g.body["grabStatus"] == json!(status)).then_some(g.body))
            }
        })
        .await
    }

    /// The grab's latest allocation (`GET /allocations?grabId=`), once there is one.
    pub async fn allocation_of(&self, grab_id: &str) -> Result<Value> {
        let path = format!("/allocations?grabId={grab_id}");
        self.eventually("an allocation", Duration::from_secs(20), || {
            let path = path.clone();
            async move {
                let a = self.get(&path).await?;
                Ok(list_of(&a.body, "allocations").into_iter().next())
            }
        })
        .await
    }

    /// The local broker's dead letters.
    pub async fn dead_letters(&self) -> Result<Vec<Value>> {
        let a = self.get("/broker/deadletters").await?;
        Ok(match a.body {
            Value::Array(v) => v,
            Value::Object(ref o) => o
                .get("deadLetters")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
            _ => Vec::new(),
        })
    }

    /// Check the saga invariants over `grab_ids` through the owning services' APIs.
    pub async fn check_invariants(&self, grab_ids: &[String]) -> Result<Invariants> {
        check_invariants(self, grab_ids).await
    }

    /// Wait (up to 60 s, flushing) until the invariants hold over `grab_ids`: events travel
    /// through the broker's dispatcher, so the owners and the view converge a moment after
    /// the answers. On time-out, fails with what is still wrong.
    pub async fn converged(&self, grab_ids: &[String]) -> Result<Invariants> {
        let waited = self
            .eventually("the invariants", Duration::from_secs(60), || async {
                Ok(self.check_invariants(grab_ids).await.ok())
            })
            .await;
        match waited {
            Ok(inv) => Ok(inv),
            Err(_) => self.check_invariants(grab_ids).await,
        }
    }
}

/// Requests to a running app on behalf of one caller (see [`Saga::as_`]).
pub struct Caller<'a> {
    saga: &'a Saga,
    token: Option<String>,
}

impl Caller<'_> {
    /// Send a request and read the answer. An `authorization` header in `headers`
    /// replaces the caller's token.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Result<Answer> {
        let bearer = self.token.as_ref().map(|t| format!("Bearer {t}"));
        let mut h: Vec<(&str, &str)> = headers.to_vec();
        if let Some(b) = &bearer {
            if !h
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("authorization"))
            {
                h.push(("authorization", b));
            }
        }
        send(
            &self.saga.http,
            method,
            &format!("{}{}", self.saga.base, path),
            &h,
            body,
        )
        .await
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Result<Answer> {
        self.send(reqwest::Method::GET, path, &[], None).await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> Result<Answer> {
        self.post_with(path, body, &[]).await
    }

    /// `POST path` with a JSON body and extra headers.
    pub async fn post_with(
        &self,
        path: &str,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> Result<Answer> {
        let mut h = vec![("content-type", "application/json")];
        h.extend_from_slice(headers);
        self.send(
            reqwest::Method::POST,
            path,
            &h,
            Some(serde_json::to_vec(body)?),
        )
        .await
    }

    /// `POST path` with raw bytes and headers.
    pub async fn post_raw(
        &self,
        path: &str,
        body: &[u8],
        headers: &[(&str, &str)],
    ) -> Result<Answer> {
        self.send(reqwest::Method::POST, path, headers, Some(body.to_vec()))
            .await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> Result<Answer> {
        self.send(reqwest::Method::DELETE, path, &[], None).await
    }
}

impl Drop for Saga {
    fn drop(&mut self) {
        // The host stops when its runtime handle drops; the dispatcher loop with it.
        if let Some(d) = self.dispatcher.take() {
            d.abort();
        }
        let _ = self.keeper.kill();
        let _ = self.keeper.wait();
    }
}

/// `scripts/sqlite-keeper.py` over the app's databases in `dir` (see the script).
fn sqlite_keeper(dir: &Path) -> Result<std::process::Child> {
    let root = repo_root();
    std::process::Command::new(root.join("scripts/sqlite-keeper.py"))
        .arg(root.join("runtime-config.toml"))
        .arg(dir)
        .stdin(std::process::Stdio::null())
        .spawn()
        .context("starting scripts/sqlite-keeper.py")
}

/// How long one dispatch call of the harness's loop waits for new rows.
pub const DISPATCH_WAIT_MS: u64 = 300;

/// The broker's dispatcher loop, as `scripts/local-dispatch.sh` runs it under `make up`:
/// `POST /broker/dispatch` back to back; a failed call (the broker down by a fault, the
/// app restarting) is retried after a short pause.
pub fn dispatcher_loop(base: String) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("http client");
        let url = format!("{base}/broker/dispatch?waitMs={DISPATCH_WAIT_MS}");
        loop {
            let ok = matches!(http.post(&url).send().await, Ok(r) if r.status().is_success());
            if !ok {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    })
}

/// How often the harness's drivers look for offers.
const DRIVERS_EVERY_MS: u64 = 50;

/// Drivers who accept every open offer, as each taxi's driver, until aborted: most suites
/// test what happens after a taxi is assigned, as `make up`'s walk-through drivers would.
pub fn drivers_accepting(base: String) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("http client");
        let list = format!("{base}/allocations?limit=500");
        loop {
            tokio::time::sleep(Duration::from_millis(DRIVERS_EVERY_MS)).await;
            let operator = format!("Bearer {}", tokens::mint(Who::Operator));
            let Ok(r) = http
                .get(&list)
                .header("authorization", operator)
                .send()
                .await
            else {
                continue;
            };
            let Ok(body) = r.json::<Value>().await else {
                continue;
            };
            for offer in list_of(&body, "allocations") {
                if offer["status"] != json!("Offered") {
                    continue;
                }
                let (Some(id), Some(taxi)) =
                    (offer["allocationId"].as_str(), offer["taxiId"].as_str())
                else {
                    continue;
                };
                let driver = format!("Bearer {}", tokens::mint(Who::Driver(taxi.to_owned())));
                let _ = http
                    .post(format!("{base}/allocations/{id}/accept"))
                    .header("authorization", driver)
                    .send()
                    .await;
            }
        }
    })
}

async fn launch(dir: &Path, vars: &[(String, String)]) -> Result<RunningApp> {
    let root = repo_root();
    for c in [
        "grab",
        "pay",
        "allocate",
        "grab_status",
        "notify",
        "broker",
        "console",
    ] {
        let wasm = root.join(format!("target/wasm32-wasip2/release/{c}.wasm"));
        if !wasm.exists() {
            bail!("{} is missing: run `make build` first", wasm.display());
        }
    }
    let mut opts = AppOptions::new(root.join("spin.toml"));
    opts.runtime_config = Some(root.join("runtime-config.toml"));
    opts.working_dir = Some(dir.to_path_buf());
    opts.state_dir = Some(dir.join(".spin"));
    opts.cache_dir = Some(root.join("target/spin-host-cache"));
    opts.variables = vars.to_vec();
    opts.use_env_variables = false;
    opts.enable_faults = true;
    opts.post_response = PostResponse::Abort;
    opts.log = std::env::var_os("E2E_LOG").is_some();
    TestApp::start(opts).await
}

/// Send one request to `url` and read the answer.
pub async fn send(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> Result<Answer> {
    let mut req = http.request(method, url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(b) = body {
        req = req.body(b);
    }
    let resp = req.send().await.with_context(|| format!("calling {url}"))?;
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                v.to_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let text = resp.text().await?;
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Ok(Answer {
        status,
        headers,
        body,
        text,
    })
}

/// `/grabs`.
pub fn grab_path() -> String {
    "/grabs".to_owned()
}

/// Where every harness ride starts.
pub fn seoul_station() -> Value {
    json!({"lat": 37.5547, "lng": 126.9707, "name": "Seoul Station"})
}

/// An ordinary ride's destination (about 8 km from Seoul Station).
pub fn gangnam() -> Value {
    json!({"lat": 37.4979, "lng": 127.0276, "name": "Gangnam Station"})
}

/// A destination whose fare (about 326,000 KRW) is over the payment limit (300,000 KRW).
pub fn busan() -> Value {
    json!({"lat": 35.1151, "lng": 129.0415, "name": "Busan Station"})
}

/// A valid grab request body booking `quote` (an answer of `POST /fares/quote`).
pub fn grab_body(phone: &str, quote: &Value) -> Value {
    json!({
        "phoneNumber": phone,
        "quoteId": quote["quoteId"],
        "startingPoint": quote["startingPoint"],
        "destination": quote["destination"],
    })
}

/// What [`check_invariants`] found.
#[derive(Debug, Default, Clone)]
pub struct Invariants {
    pub grabs: usize,
    pub approved_krw: i64,
    pub refunded_krw: i64,
    pub ridden_fares_krw: i64,
    pub by_status: HashMap<String, usize>,
}

/// Stable grab states: nothing more will happen to them without a rider or driver.
pub const STABLE: [&str; 6] = [
    "Allocated",
    "RideStarted",
    "Completed",
    "Cancelled",
    "Rejected",
    "Failed",
];

/// Assert, for every grab: it is in a stable state; its money is right (approved −
/// refunded = fare exactly when it has an allocated, started or completed ride); grab-status agrees
/// with grab, pay and allocate; and no taxi has two active rides.
pub async fn check_invariants(s: &Saga, grab_ids: &[String]) -> Result<Invariants> {
    let mut inv = Invariants::default();
    let mut active_taxis: HashMap<String, String> = HashMap::new();
    for id in grab_ids {
        let grab = s.get(&format!("/grabs/{id}")).await?;
        if grab.status != 200 {
            bail!("grab {id}: {} {}", grab.status, grab.text);
        }
        let status = grab.body["grabStatus"].as_str().unwrap_or("?").to_owned();
        if !STABLE.contains(&status.as_str()) {
            bail!("grab {id} is not in a stable state: {status}");
        }
        *inv.by_status.entry(status.clone()).or_default() += 1;
        let pays = s.get(&format!("/payments?grabId={id}")).await?;
        let payments = list_of(&pays.body, "payments");
        let mut net = 0;
        let mut payment_status = Value::Null;
        for p in &payments {
            let amount = p["amount"].as_i64().unwrap_or(0);
            match p["paymentStatus"].as_str() {
                Some("Approved") => {
                    inv.approved_krw += amount;
                    net += amount;
                }
                Some("Refunded") => {
                    inv.approved_krw += amount;
                    inv.refunded_krw += amount;
                }
                _ => {}
            }
            payment_status = p["paymentStatus"].clone();
        }
        if payments.len() > 1 {
            bail!("grab {id} has {} payments", payments.len());
        }
        let allocs = s.get(&format!("/allocations?grabId={id}")).await?;
        let allocations = list_of(&allocs.body, "allocations");
        let mut active = false;
        let mut completed = false;
        let mut allocation_status = Value::Null;
        // Every offer of the ride, latest first: the latest is what the view shows (a
        // declined or expired last offer shows as the ride's failure).
        for (n, a) in allocations.iter().enumerate() {
            let st = a["status"]
                .as_str()
                .or(a["allocationStatus"].as_str())
                .unwrap_or("");
            if n == 0 && !matches!(st, "Declined" | "Expired") {
                allocation_status = json!(st);
            }
            completed |= st == "Completed";
            active |= st == "Allocated" || st == "RideStarted";
            // An open offer holds its taxi too: no taxi is ever held for two rides.
            if matches!(st, "Offered" | "Allocated" | "RideStarted") {
                let taxi = a["taxiId"].as_str().unwrap_or("").to_owned();
                if let Some(other) = active_taxis.insert(taxi.clone(), id.clone()) {
                    bail!("taxi {taxi} has two active rides: grabs {other} and {id}");
                }
            }
        }
        let fare = grab.body["estimatedFee"].as_i64().unwrap_or(0);
        let ridden = active || completed;
        let expected = if ridden { fare } else { 0 };
        if net != expected {
            bail!("grab {id} ({status}): charged {net} KRW net, expected {expected} (active ride: {active}, completed: {completed})");
        }
        if ridden {
            inv.ridden_fares_krw += fare;
        }
        if active && !matches!(status.as_str(), "Allocated" | "RideStarted") {
            bail!("grab {id} is {status} but its taxi allocation is active");
        }
        if completed && status != "Completed" {
            bail!("grab {id} is {status} but its ride was completed");
        }
        let view = s.get(&format!("/grabStatuses/{id}")).await?;
        if view.status != 200 {
            bail!("grab-status has no view of {id}: {}", view.text);
        }
        if view.body["grabStatus"].as_str() != Some(status.as_str()) {
            bail!(
                "grab-status says {} for {id}, grab says {status}",
                view.body["grabStatus"]
            );
        }
        if !payment_status.is_null() && view.body["paymentStatus"] != payment_status {
            bail!(
                "grab-status paymentStatus {} != pay {payment_status} for {id}",
                view.body["paymentStatus"]
            );
        }
        if !allocation_status.is_null() && view.body["allocationStatus"] != allocation_status {
            bail!(
                "grab-status allocationStatus {} != allocate {allocation_status} for {id}",
                view.body["allocationStatus"]
            );
        }
        inv.grabs += 1;
    }
    if inv.approved_krw - inv.refunded_krw != inv.ridden_fares_krw {
        bail!(
            "money: approved {} - refunded {} != fares of allocated, started and completed rides {}",
            inv.approved_krw,
            inv.refunded_krw,
            inv.ridden_fares_krw
        );
    }
    Ok(inv)
}

/// A list answer: a JSON array, an object holding the list under `key`, or a single item
/// (`GET /payments?grabId=` answers the one payment of a grab).
fn list_of(body: &Value, key: &str) -> Vec<Value> {
    match body {
        Value::Array(v) => v.clone(),
        Value::Object(o) => match o.get(key).and_then(Value::as_array) {
            Some(list) => list.clone(),
            None if o.contains_key("grabId") => vec![body.clone()],
            None => Vec::new(),
        },
        _ => Vec::new(),
    }
}

/// Build a binary-mode CloudEvent request (headers, body) for injection with curl-like calls.
pub fn binary_event(
    ty: &str,
    id: &str,
    source: &str,
    subject: &str,
    data: &Value,
) -> (Vec<(String, String)>, Vec<u8>) {
    let headers = vec![
        ("ce-specversion".into(), "1.0".into()),
        ("ce-id".into(), id.into()),
        ("ce-type".into(), ty.into()),
        ("ce-source".into(), source.into()),
        ("ce-subject".into(), subject.into()),
        ("ce-correlationid".into(), format!("inject-{id}")),
        ("ce-partitionkey".into(), subject.into()),
        ("content-type".into(), "application/json".into()),
    ];
    (headers, serde_json::to_vec(data).expect("json"))
}

/// A binary-mode `htaxi.GrabRequested` for `grab` (rider `phone`), as headers and body, with
/// its deterministic id: the fixture for injecting a rider's request straight to a subscriber.
pub fn grab_requested_event(grab: &str, phone: &str) -> (Vec<(String, String)>, Vec<u8>) {
    let data = json!({
        "grabId": grab, "phoneNumber": phone,
        "startingPoint": {"lat": 37.5547, "lng": 126.9707}, "destination": {"lat": 37.5, "lng": 127.0},
        "estimatedFee": 11000, "requestedAt": "2026-11-25T09:59:59Z"
    });
    binary_event(
        "htaxi.GrabRequested",
        &format!("GrabRequested:{grab}"),
        "/htaxi/grab",
        grab,
        &data,
    )
}

/// Build a structured-mode CloudEvent body.
pub fn structured_event(ty: &str, id: &str, source: &str, subject: &str, data: &Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "specversion": "1.0", "id": id, "type": ty, "source": source, "subject": subject,
        "datacontenttype": "application/json", "correlationid": format!("inject-{id}"),
        "partitionkey": subject, "data": data
    }))
    .expect("json")
}

/// A fresh UUID string.
pub fn uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}
