//! Shared helpers for the spin-host integration tests: locating (or building)
//! the fixture component, per-test app directories, and a minimal HTTP client.

#![allow(dead_code)] // each test binary uses a different subset

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use spin_host::{AppOptions, RunningApp};

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The fixture component. Uses `target/wasm32-wasip2/release/fixture.wasm`
/// (what `make build` produces) or `$FIXTURE_WASM`; if neither exists, builds
/// it with a separate `CARGO_TARGET_DIR` so we never wait on the lock of the
/// `cargo test` that is running us.
pub fn fixture_wasm() -> PathBuf {
    static WASM: OnceLock<PathBuf> = OnceLock::new();
    WASM.get_or_init(|| {
        if let Some(p) = std::env::var_os("FIXTURE_WASM") {
            return PathBuf::from(p);
        }
        let root = workspace_root();
        let built = root.join("target/wasm32-wasip2/release/fixture.wasm");
        if built.exists() && !older_than_sources(&built, &root.join("tests/fixture")) {
            return built;
        }
        let target_dir = root.join("target/spin-host-fixture");
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "--target", "wasm32-wasip2", "--release", "-p", "fixture"])
            .env("CARGO_TARGET_DIR", &target_dir)
            .current_dir(&root)
            .status()
            .expect("failed to run cargo to build the fixture component");
        assert!(
            status.success(),
            "building the fixture failed; run `make build` (cargo build --target wasm32-wasip2 --release -p fixture)"
        );
        target_dir.join("wasm32-wasip2/release/fixture.wasm")
    })
    .clone()
}

/// Whether `wasm` predates any fixture source file (a stale `make build`).
fn older_than_sources(wasm: &Path, fixture: &Path) -> bool {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let Some(built) = modified(wasm) else {
        return true;
    };
    [fixture.join("src/lib.rs"), fixture.join("Cargo.toml")]
        .iter()
        .any(|src| modified(src).is_some_and(|m| m > built))
}

/// A throw-away copy of `tests/fixture/spin.toml` (pointing at the fixture
/// wasm and static dir by absolute path) plus its runtime config, with a
/// working dir and state dir of its own.
pub struct FixtureApp {
    pub dir: tempfile::TempDir,
}

impl FixtureApp {
    pub fn new() -> Self {
        Self::with_manifest(|m| m)
    }

    /// Like [`FixtureApp::new`] with the manifest text edited by `edit`.
    pub fn with_manifest(edit: impl FnOnce(String) -> String) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let fixture = workspace_root().join("tests/fixture");
        let manifest = std::fs::read_to_string(fixture.join("spin.toml"))
            .unwrap()
            .replace(
                "\"../../target/wasm32-wasip2/release/fixture.wasm\"",
                &format!("{:?}", fixture_wasm().display().to_string()),
            )
            .replace(
                "source = \"static\"",
                &format!(
                    "source = {:?}",
                    fixture.join("static").display().to_string()
                ),
            );
        std::fs::write(dir.path().join("spin.toml"), edit(manifest)).unwrap();
        std::fs::copy(
            fixture.join("runtime-config.toml"),
            dir.path().join("runtime-config.toml"),
        )
        .unwrap();
        FixtureApp { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Options as the tests usually want them: isolated working/state dirs,
    /// the required variable set, faults enabled, quiet.
    pub fn options(&self) -> AppOptions {
        let mut o = AppOptions::new(self.path().join("spin.toml"));
        o.runtime_config = Some(self.path().join("runtime-config.toml"));
        o.state_dir = Some(self.path().join(".spin"));
        o.working_dir = Some(self.path().to_owned());
        o.cache_dir = Some(workspace_root().join("target/spin-host-cache"));
        o.variables = vec![("secret_token".into(), "s3cret".into())];
        o.use_env_variables = false;
        o.enable_faults = true;
        o.log = false;
        o
    }

    pub async fn start(&self) -> RunningApp {
        spin_host::TestApp::start(self.options())
            .await
            .expect("app starts")
    }
}

/// A response as the tests see it.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: String,
}

impl Resp {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// Sends one request on a fresh connection.
pub async fn request(
    base: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Resp {
    let addr = base.trim_start_matches("http://").to_owned();
    let stream = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", &addr);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req
        .body(http_body_util::Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(60), sender.send_request(req))
        .await
        .expect("response within 60s")
        .expect("request");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Resp {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

pub async fn get(app: &RunningApp, path: &str) -> Resp {
    request(&app.base_url(), "GET", path, &[], "").await
}
