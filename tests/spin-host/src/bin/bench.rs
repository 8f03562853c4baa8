//! `spin-host-bench`: startup time and request throughput/latency of the
//! fixture app on this machine. Prints numbers, asserts nothing.
//!
//! Usage: `cargo run --release -p spin-host --bin spin-host-bench [-- --secs 3]`
//! (needs `target/wasm32-wasip2/release/fixture.wasm`, i.e. `make build`).
//! Traffic goes only to the loopback address the app listens on; every load
//! phase is bounded in time.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use spin_host::{AppOptions, TestApp};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Writes a copy of the fixture manifest pointing at the built wasm.
fn prepare(dir: &Path) -> Result<AppOptions> {
    let wasm = std::path::absolute(root().join("target/wasm32-wasip2/release/fixture.wasm"))?;
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
                std::path::absolute(fixture.join("static"))?
                    .display()
                    .to_string()
            ),
        );
    std::fs::write(dir.join("spin.toml"), manifest)?;
    std::fs::copy(
        fixture.join("runtime-config.toml"),
        dir.join("runtime-config.toml"),
    )?;
    let mut o = AppOptions::new(dir.join("spin.toml"));
    o.runtime_config = Some(dir.join("runtime-config.toml"));
    o.state_dir = Some(dir.join(".spin"));
    o.working_dir = Some(dir.to_owned());
    o.cache_dir = Some(dir.join("cache"));
    o.variables = vec![("secret_token".into(), "bench".into())];
    o.use_env_variables = false;
    o.log = false;
    Ok(o)
}

async fn timed_start(opts: &AppOptions) -> Result<(spin_host::RunningApp, Duration)> {
    let t = Instant::now();
    let app = TestApp::start(opts.clone()).await?;
    Ok((app, t.elapsed()))
}

/// Closed-loop load: `concurrency` keep-alive connections for `secs`.
async fn load(addr: std::net::SocketAddr, path: &str, concurrency: usize, secs: u64) -> Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = vec![];
    for _ in 0..concurrency {
        let stop = stop.clone();
        let path = path.to_owned();
        workers.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(addr).await?;
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(conn);
            let mut lat = vec![];
            while !stop.load(Ordering::Relaxed) {
                let req = http::Request::get(&path)
                    .header("host", addr.to_string())
                    .body(Empty::<Bytes>::new())?;
                let t = Instant::now();
                let resp = sender.send_request(req).await?;
                anyhow::ensure!(resp.status() == 200, "unexpected status {}", resp.status());
                resp.into_body().collect().await?;
                lat.push(t.elapsed());
            }
            anyhow::Ok(lat)
        }));
    }
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = vec![];
    for w in workers {
        all.extend(w.await.context("worker panicked")??);
    }
    all.sort();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
    println!(
        "  concurrency {concurrency:>3}: {:>8.0} req/s   p50 {:>7.2} ms   p99 {:>7.2} ms   ({} requests)",
        all.len() as f64 / secs as f64,
        pct(0.50).as_secs_f64() * 1000.0,
        pct(0.99).as_secs_f64() * 1000.0,
        all.len()
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let secs = args
        .iter()
        .position(|a| a == "--secs")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(3u64);
    let dir = tempfile::tempdir()?;
    let opts = prepare(dir.path())?;

    println!("startup (fixture app, 3 components, 1 distinct wasm):");
    let (app, cold) = timed_start(&opts).await?;
    println!(
        "  cold (compile + write cache):  {:>8.1} ms",
        cold.as_secs_f64() * 1000.0
    );
    app.shutdown().await?;
    spin_host::clear_memory_cache();
    let (app, warm_disk) = timed_start(&opts).await?;
    println!(
        "  warm (load .cwasm from disk):  {:>8.1} ms",
        warm_disk.as_secs_f64() * 1000.0
    );
    app.shutdown().await?;
    let (app, warm_mem) = timed_start(&opts).await?;
    println!(
        "  warm (in-process cache):       {:>8.1} ms",
        warm_mem.as_secs_f64() * 1000.0
    );

    println!("GET /status?code=200 (empty handler, fresh instance per request), {secs}s each:");
    for c in [1, 8, 32] {
        load(app.addr(), "/status?code=200", c, secs).await?;
    }
    println!("GET /sql-get?key=x (one SQLite open + 2 statements):");
    for c in [1, 8] {
        load(app.addr(), "/sql-get?key=x", c, secs).await?;
    }
    app.shutdown().await?;
    Ok(())
}
