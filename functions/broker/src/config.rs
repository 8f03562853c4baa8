//! The broker's typed configuration, read once per request from Spin variables. These
//! are local fallbacks only: the Trigger and Broker manifests' `spec.delivery` win.

use crate::policy::{BackoffPolicy, Delivery};
use htaxi_shared::platform::config;
use std::time::Duration;

/// Where spin.toml mounts `knative/base/eventing`.
pub const MANIFEST_DIR: &str = "/knative";

/// Per-attempt timeout when no manifest sets `delivery.timeout`.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Typed broker settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// `broker_max_attempts`: total attempts (first + retries) when no manifest sets `retry`.
    pub max_attempts: u32,
    /// `broker_backoff_ms`: the backoff delay when no manifest sets `backoffDelay`.
    pub backoff: Duration,
}

impl Config {
    /// Read the variables; fails naming a missing or unparsable one.
    pub fn load() -> anyhow::Result<Self> {
        Ok(Self {
            max_attempts: config::parsed::<u32>("broker_max_attempts")?.max(1),
            backoff: Duration::from_millis(config::parsed("broker_backoff_ms")?),
        })
    }

    /// The delivery a Trigger gets when neither it nor the Broker says otherwise.
    pub fn fallback_delivery(&self) -> Delivery {
        Delivery {
            retry: self.max_attempts - 1,
            backoff_policy: BackoffPolicy::Exponential,
            backoff_delay: self.backoff,
            timeout: DEFAULT_TIMEOUT,
            dead_letter_sink: None,
        }
    }
}
