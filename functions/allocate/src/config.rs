//! allocate's Spin variables, read once per request into one typed [`Config`].

use anyhow::bail;
use htaxi_shared::domain::allocation::OfferPolicy;
use htaxi_shared::platform::{config, idempotency};

/// What allocate needs from its deployment.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where outbox rows are POSTed (the Knative Broker ingress, or the local broker).
    pub broker_url: String,
    /// How far a taxi may be, how long its driver has to accept, how many offers
    /// (`allocation_radius_m`, `offer_ttl_secs`, `offer_max_count`).
    pub offers: OfferPolicy,
    /// The shortest interval between a taxi's location reports (`location_min_interval_ms`).
    pub location_min_interval: chrono::Duration,
    /// `POST /taxis` Idempotency-Key lease and lifetime.
    pub idempotency: idempotency::Policy,
}

impl Config {
    /// Read the variables; fails naming a missing or unparsable one.
    pub fn load() -> anyhow::Result<Self> {
        Ok(Self {
            broker_url: config::text("broker_url")?,
            offers: offer_policy()?,
            location_min_interval: chrono::Duration::milliseconds(
                config::parsed::<u32>("location_min_interval_ms")?.into(),
            ),
            idempotency: idempotency::Policy::load()?,
        })
    }
}

fn offer_policy() -> anyhow::Result<OfferPolicy> {
    let ttl: u32 = config::parsed("offer_ttl_secs")?;
    let max_offers: u32 = config::parsed("offer_max_count")?;
    if ttl == 0 || max_offers == 0 {
        bail!("offer_ttl_secs={ttl} and offer_max_count={max_offers} must be positive");
    }
    Ok(OfferPolicy {
        radius_m: config::parsed("allocation_radius_m")?,
        offer_ttl: chrono::Duration::seconds(ttl.into()),
        max_offers,
    })
}
