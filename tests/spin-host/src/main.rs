//! `spin-host up`: a `spin up` look-alike for CI and local runs without the
//! Spin CLI. See the crate README for flags and the fault-injection API.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use spin_host::{AppOptions, PostResponse, RetainedBy, TestApp};

#[derive(Parser)]
#[command(
    name = "spin-host",
    version,
    about = "Spin-compatible test host (spin up look-alike)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the application (like `spin up`).
    Up(Up),
    /// List the interfaces a component imports.
    Imports {
        /// Path of the `.wasm` component.
        wasm: PathBuf,
    },
}

#[derive(Parser)]
struct Up {
    /// The application manifest.
    #[arg(short = 'f', long = "from", default_value = "spin.toml")]
    from: PathBuf,
    /// Address to listen on (env SPIN_HTTP_LISTEN_ADDR as on containerd-shim-spin).
    #[arg(long, env = "SPIN_HTTP_LISTEN_ADDR", default_value = "127.0.0.1:3000")]
    listen: String,
    /// Runtime configuration file (sqlite_database / key_value_store labels).
    #[arg(long = "runtime-config-file")]
    runtime_config_file: Option<PathBuf>,
    /// State directory (default: `.spin` next to the manifest).
    #[arg(long = "state-dir")]
    state_dir: Option<PathBuf>,
    /// Run only these components (repeatable).
    #[arg(long = "component-id", short = 'c')]
    component_id: Vec<String>,
    /// Expose the fault-injection API under /.well-known/spin-host/.
    #[arg(long = "enable-faults")]
    enable_faults: bool,
    /// Kill guest invocations running longer than this many milliseconds.
    #[arg(long = "request-timeout-ms")]
    request_timeout_ms: Option<u64>,
    /// Abort a guest once its response is sent, as unreleased Spin main does.
    /// Default: as released Spin 3.6.3 / 4.0.x, the guest keeps running.
    #[arg(long = "abort-after-response")]
    abort_after_response: bool,
    /// TEST-ONLY (not in Spin): send outbound requests for host NAME to ADDR
    /// (`NAME=IP:PORT`, repeatable), like a DNS entry; the allowed-hosts check
    /// and the Host header still use NAME.
    #[arg(long = "map-host", value_name = "NAME=ADDR", value_parser = parse_host_mapping)]
    map_host: Vec<(String, SocketAddr)>,
}

fn parse_host_mapping(s: &str) -> Result<(String, SocketAddr), String> {
    let (name, addr) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not NAME=IP:PORT"))?;
    let addr = addr
        .parse()
        .map_err(|e| format!("{addr:?} is not an IP:PORT address: {e}"))?;
    Ok((name.trim().to_ascii_lowercase(), addr))
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // Like `spin up`: the error chain, without a backtrace.
            eprintln!("Error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let up = match Cli::parse().command {
        Command::Up(up) => up,
        Command::Imports { wasm } => {
            for name in spin_host::component_imports(&wasm)? {
                println!("{name}");
            }
            return Ok(());
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let mut opts = AppOptions::new(up.from);
        opts.listen = up.listen;
        opts.runtime_config = up.runtime_config_file;
        opts.state_dir = up.state_dir;
        opts.enable_faults = up.enable_faults;
        opts.request_timeout = up.request_timeout_ms.map(Duration::from_millis);
        if up.abort_after_response {
            opts.post_response = PostResponse::Abort;
        }
        opts.host_map = up.map_host;
        // `--component-id` is `spin up`'s; SPIN_COMPONENTS_TO_RETAIN is how
        // containerd-shim-spin is told (split on ',' without trimming, as it does).
        match std::env::var("SPIN_COMPONENTS_TO_RETAIN") {
            Ok(v) if up.component_id.is_empty() => {
                opts.components = Some(
                    v.split(',')
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect(),
                );
                opts.retained_by = RetainedBy::ShimEnvironment;
            }
            _ if !up.component_id.is_empty() => opts.components = Some(up.component_id),
            _ => {}
        }
        let app = TestApp::start(opts).await?;
        tokio::signal::ctrl_c().await?;
        println!("Shutting down (waiting for running requests)...");
        app.shutdown().await
    })
}
