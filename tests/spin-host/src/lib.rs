//! `spin-host`: the H Taxi project's own Spin-compatible host.
//!
//! It runs a Spin manifest v2 app (`spin.toml` + `.wasm` components built with
//! spin-sdk 5.2 for `wasm32-wasip2`) on wasmtime, behaving like `spin up`
//! (Spin 3.6 / 4.x) for what H Taxi uses: HTTP routes and the `spin-*`
//! request headers, SQLite with runtime-config labels, key-value, variables,
//! `allowed_outbound_hosts`, service chaining and `files` mounts. CI and every
//! end-to-end test use it because the Spin CLI is not installable here, so
//! any divergence from real Spin is a bug; each module names the Spin source
//! it follows.
//!
//! For tests it adds fault injection and per-component counters
//! ([`Faults`]). Start an app with [`TestApp::start`]:
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use spin_host::{AppOptions, TestApp};
//! let mut opts = AppOptions::new("spin.toml");
//! opts.runtime_config = Some("runtime-config.toml".into());
//! opts.variables.push(("pay_api_key".into(), "secret".into()));
//! let app = TestApp::start(opts).await?;
//! println!("{}", app.base_url());
//! app.shutdown().await?;
//! # Ok(()) }
//! ```

mod allowed_hosts;
mod app;
mod engine;
pub mod faults;
mod host;
mod imports;
pub mod manifest;
mod outbound;
pub mod routes;
pub mod tokens;
pub mod variables;

pub use allowed_hosts::{service_chaining_target, AllowedHostsConfig};
pub use app::{AppOptions, PostResponse, RetainedBy, RunningApp, TestApp};
pub use faults::{ActiveFault, ComponentStats, Fault, FaultSpec, Faults};
pub use imports::component_imports;

#[doc(hidden)]
pub use engine::clear_memory_cache;
