//! allocate's Spin variables, read once per request into one typed [`Config`].

use htaxi_shared::platform::{config, idempotency};

/// What allocate needs from its deployment.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where outbox rows are POSTed (the Knative Broker ingress, or the local broker).
    pub broker_url: String,
    /// How far (metres, great-circle) a taxi may be from the pickup point.
    pub allocation_radius_m: u64,
    /// `POST /taxis` Idempotency-Key lease and lifetime.
    pub idempotency: idempotency::Policy,
}

impl Config {
    /// Read the variables; fails naming a missing or unparsable one.
    pub fn load() -> anyhow::Result<Self> {
        Ok(Self {
            broker_url: config::text("broker_url")?,
            allocation_radius_m: config::parsed("allocation_radius_m")?,
            idempotency: idempotency::Policy::load()?,
        })
    }
}
