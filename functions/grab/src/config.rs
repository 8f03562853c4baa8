//! grab's typed configuration, read once per request from Spin variables.

use anyhow::bail;
use chrono::{FixedOffset, NaiveTime};
use htaxi_shared::domain::fare::{NightSurcharge, Tariff};
use htaxi_shared::domain::grab::BreakerPolicy;
use htaxi_shared::platform::{config, idempotency};
use std::time::Duration;

/// Everything grab reads from its variables.
#[derive(Debug, Clone)]
pub struct Config {
    /// pay's base URL (`pay_url`), e.g. `http://pay.spin.internal`.
    pub pay_url: String,
    /// Where the outbox delivers events (`broker_url`).
    pub broker_url: String,
    /// The bearer token pay expects (`pay_api_key`, secret, no default).
    pub pay_api_key: String,
    /// Deadline of one attempt to call pay (`pay_timeout_ms`).
    pub pay_timeout: Duration,
    /// Attempts per pay call, same Idempotency-Key each time (`pay_max_attempts`, 1..=10).
    pub pay_max_attempts: u32,
    /// When the breaker opens and for how long (`breaker_failure_threshold`,
    /// `breaker_cooldown_ms`).
    pub breaker: BreakerPolicy,
    /// How long a `POST /grabs` holds its Idempotency-Key and how long the key lives
    /// (`idempotency_lease_ms`, `idempotency_ttl_secs`). The lease should outlast the
    /// longest pay call; a shorter one only re-drives the same per-grab idempotent charge.
    pub idempotency: idempotency::Policy,
    /// How fares are priced (`fare_*` variables) and how long a quote lives
    /// (`fare_quote_ttl_secs`).
    pub tariff: Tariff,
    pub quote_ttl: chrono::Duration,
}

impl Config {
    /// Read and parse every variable; fails naming the missing or invalid one.
    pub fn load() -> anyhow::Result<Config> {
        let pay_api_key = config::text("pay_api_key")?;
        if pay_api_key.trim().is_empty() {
            bail!("Spin variable pay_api_key is empty");
        }
        let timeout_ms: u64 = config::parsed("pay_timeout_ms")?;
        let attempts: u32 = config::parsed("pay_max_attempts")?;
        let threshold: u32 = config::parsed("breaker_failure_threshold")?;
        let cooldown_ms: u32 = config::parsed("breaker_cooldown_ms")?;
        if timeout_ms == 0 || !(1..=10).contains(&attempts) || threshold == 0 || cooldown_ms == 0 {
            bail!(
                "invalid pay call settings: pay_timeout_ms={timeout_ms} (>0), pay_max_attempts={attempts} (1-10), \
                 breaker_failure_threshold={threshold} (>0), breaker_cooldown_ms={cooldown_ms} (>0)"
            );
        }
        Ok(Config {
            pay_url: config::text("pay_url")?.trim_end_matches('/').to_owned(),
            broker_url: config::text("broker_url")?,
            pay_api_key,
            pay_timeout: Duration::from_millis(timeout_ms),
            pay_max_attempts: attempts,
            breaker: BreakerPolicy {
                failure_threshold: threshold,
                cooldown_ms: i64::from(cooldown_ms),
            },
            idempotency: idempotency::Policy::load()?,
            tariff: tariff()?,
            quote_ttl: chrono::Duration::seconds(
                config::parsed::<u32>("fare_quote_ttl_secs")?.into(),
            ),
        })
    }
}

/// The tariff from its variables; a bad time, zone or value fails naming it.
fn tariff() -> anyhow::Result<Tariff> {
    let time = |name: &str| -> anyhow::Result<NaiveTime> {
        let raw = config::text(name)?;
        NaiveTime::parse_from_str(raw.trim(), "%H:%M")
            .map_err(|e| anyhow::anyhow!("Spin variable {name}={raw:?} is not HH:MM: {e}"))
    };
    let offset_minutes: i32 = config::parsed("fare_utc_offset_minutes")?;
    let zone = FixedOffset::east_opt(offset_minutes * 60).ok_or_else(|| {
        anyhow::anyhow!("fare_utc_offset_minutes={offset_minutes} is out of range")
    })?;
    let t = Tariff {
        base_fare_krw: config::parsed("fare_base_krw")?,
        base_distance_m: config::parsed("fare_base_distance_m")?,
        unit_fare_krw: config::parsed("fare_unit_krw")?,
        unit_distance_m: config::parsed("fare_unit_distance_m")?,
        road_factor_pct: config::parsed("fare_road_factor_pct")?,
        night: NightSurcharge {
            start: time("fare_night_start")?,
            end: time("fare_night_end")?,
            percent: config::parsed("fare_night_surcharge_pct")?,
        },
        zone,
    };
    Ok(t.checked()?)
}
