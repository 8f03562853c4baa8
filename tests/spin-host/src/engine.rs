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

fn build_engine(pooling: bool) -> Result<Engine> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    config.parallel_compilation(true);
    if pooling {
        // Enough slots for many concurrent requests plus guests that keep
        // running after responding; memory is reserved, not committed.
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(1000)
            .total_core_instances(1000)
            .total_memories(1000)
            .total_tables(1000)
            .total_stacks(1000)
            .max_core_instances_per_component(50)
            .max_memories_per_component(10)
            .max_tables_per_component(50)
            .max_memory_size(1 << 30)
            .table_elements(100_000)
            .max_component_instance_size(1 << 20)
            .max_core_instance_size(1 << 20);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    Engine::new(&config).map_err(anyhow::Error::from)
}

/// The shared engine. Pooling is used unless `SPIN_HOST_POOLING=0`; if the
/// pooling reservation fails (e.g. a restricted address space) we fall back
/// to on-demand allocation rather than refusing to run.
pub fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let want_pooling = std::env::var("SPIN_HOST_POOLING")
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
