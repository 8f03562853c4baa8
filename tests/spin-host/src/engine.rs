//! The process-wide wasmtime `Engine` and component compilation with an
//! on-disk cache.
//!
//! One engine serves every app in the process so compiled components can be
//! shared between the many app restarts an e2e suite performs, and so the
//! pooling allocator's address-space reservation is made once.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the epoch ticks. Each tick makes running guests yield to tokio,
/// so a CPU-bound guest cannot starve other requests on our 2 cores and
/// request deadlines can fire.
const EPOCH_TICK: Duration = Duration::from_millis(10);

const MB: usize = 1 << 20;
const GB: usize = 1 << 30;

/// Reads a pooling knob from the environment under the same name `spin up`
/// uses, so an operator's tuning carries over unchanged.
fn env_knob<T: std::str::FromStr>(name: &str, default: T) -> T
where
    T::Err: std::fmt::Display,
{
    match std::env::var(name) {
        Ok(val) => val
            .parse()
            .unwrap_or_else(|e| panic!("failed to parse env var `{name}={val}`: {e}")),
        Err(_) => default,
    }
}

/// The pooling limits `spin up` uses (spin-core's `Config::default`): every
/// total is derived from `SPIN_MAX_INSTANCE_COUNT` (1000 concurrent component
/// instances) and each can be overridden by the same environment variable.
/// Core instances get four slots per component instance because a Rust
/// wasip2 component instantiates several core modules.
fn spin_pooling_config() -> PoolingAllocationConfig {
    let max_instances: u32 = env_knob("SPIN_MAX_INSTANCE_COUNT", 1_000);
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(env_knob("SPIN_WASMTIME_INSTANCE_COUNT", max_instances))
        .total_memories(env_knob("SPIN_WASMTIME_TOTAL_MEMORIES", max_instances))
        .total_tables(env_knob("SPIN_WASMTIME_TOTAL_TABLES", 2 * max_instances))
        .total_stacks(env_knob("SPIN_WASMTIME_TOTAL_STACKS", max_instances))
        .total_core_instances(env_knob(
            "SPIN_WASMTIME_TOTAL_CORE_INSTANCES",
            4 * max_instances,
        ))
        .table_elements(env_knob("SPIN_WASMTIME_INSTANCE_TABLE_ELEMENTS", 100_000))
        .max_component_instance_size(env_knob("SPIN_WASMTIME_INSTANCE_SIZE", 10 * MB))
        .max_core_instance_size(env_knob("SPIN_WASMTIME_CORE_INSTANCE_SIZE", 10 * MB))
        .max_core_instances_per_component(env_knob("SPIN_WASMTIME_CORE_INSTANCE_COUNT", 200))
        .max_tables_per_component(env_knob("SPIN_WASMTIME_INSTANCE_TABLES", 64))
        .max_memories_per_component(env_knob("SPIN_WASMTIME_INSTANCE_MEMORIES", 32))
        .max_tables_per_module(env_knob("SPIN_WASMTIME_MAX_TABLES_PER_MODULE", 2))
        .max_memories_per_module(env_knob("SPIN_WASMTIME_MAX_MEMORIES_PER_MODULE", 2))
        .max_memory_size(4 * GB)
        .linear_memory_keep_resident(env_knob(
            "SPIN_WASMTIME_LINEAR_MEMORY_KEEP_RESIDENT",
            2 * MB,
        ))
        .table_keep_resident(env_knob("SPIN_WASMTIME_TABLE_KEEP_RESIDENT", MB / 2));
    pool
}

fn build_engine(pooling: bool) -> Result<Engine> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    config.parallel_compilation(true);
    if pooling {
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(spin_pooling_config()));
    }
    Engine::new(&config).map_err(anyhow::Error::from)
}

/// The shared engine. Pooling is used unless `SPIN_WASMTIME_POOLING=0` (Spin's switch); if the
/// pooling reservation fails (e.g. a restricted address space) we fall back
/// to on-demand allocation rather than refusing to run.
pub fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let want_pooling = std::env::var("SPIN_WASMTIME_POOLING")
            .map(|v| v != "0")
            .unwrap_or(true);
        let engine = match build_engine(want_pooling) {
            Ok(e) => e,
            Err(e) if want_pooling => {
                eprintln!(
                    "spin-host: pooling allocator unavailable ({e:#}); using on-demand allocation"
                );
                build_engine(false).expect("failed to create wasmtime engine")
            }
            Err(e) => panic!("failed to create wasmtime engine: {e:#}"),
        };
        let ticker = engine.weak();
        std::thread::Builder::new()
            .name("spin-host-epoch".into())
            .spawn(move || loop {
                std::thread::sleep(EPOCH_TICK);
                match ticker.upgrade() {
                    Some(e) => e.increment_epoch(),
                    None => break,
                }
            })
            .expect("failed to spawn epoch thread");
        engine
    })
}

/// Compiled components by wasm digest, so app restarts in one process reuse them.
fn memory_cache() -> &'static Mutex<HashMap<String, Component>> {
    static CACHE: OnceLock<Mutex<HashMap<String, Component>>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// Forgets components compiled in this process (the on-disk cache is kept),
/// so the next load measures a warm-disk start. For benchmarks.
#[doc(hidden)]
pub fn clear_memory_cache() {
    memory_cache()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clear();
}

/// Loads a component, compiling it at most once per (wasm, wasmtime version,
/// engine settings): first from memory, then from `cache_dir`, else by
/// compiling and writing `<sha256>-<wasmtime-version>-<config-hash>.cwasm`.
pub fn load_component(wasm_path: &Path, cache_dir: &Path) -> Result<Component> {
    let engine = engine();
    let bytes = std::fs::read(wasm_path).with_context(|| {
        format!(
            "failed to read component {} (run `make build` to build the wasm files)",
            wasm_path.display()
        )
    })?;
    let digest = hex::encode(Sha256::digest(&bytes));
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    let key = format!(
        "{digest}-wasmtime{}-{:016x}",
        env!("WASMTIME_VERSION"),
        hasher.finish()
    );
    if let Some(c) = memory_cache()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&key)
    {
        return Ok(c.clone());
    }
    let cached: PathBuf = cache_dir.join(format!("{key}.cwasm"));
    let component = match cached.exists() {
        // SAFETY: the file was produced by `precompile_component` of an engine
        // with the same compatibility hash (it is in the file name) and is
        // only written by us, atomically via rename.
        true => match unsafe { Component::deserialize_file(engine, &cached) } {
            Ok(c) => c,
            Err(_) => compile_and_store(engine, &bytes, &cached)?,
        },
        false => compile_and_store(engine, &bytes, &cached)?,
    };
    memory_cache()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, component.clone());
    Ok(component)
}

fn compile_and_store(engine: &Engine, bytes: &[u8], cached: &Path) -> Result<Component> {
    let compiled = engine
        .precompile_component(bytes)
        .map_err(anyhow::Error::from)
        .context("failed to compile component")?;
    // A failed cache write only costs a recompile next time.
    if let Some(dir) = cached.parent() {
        if std::fs::create_dir_all(dir).is_ok() {
            let tmp = cached.with_extension(format!("tmp{}", std::process::id()));
            if std::fs::write(&tmp, &compiled).is_ok() {
                let _ = std::fs::rename(&tmp, cached);
            }
        }
    }
    // SAFETY: `compiled` was just produced by this engine.
    unsafe { Component::deserialize(engine, &compiled) }.map_err(anyhow::Error::from)
}
