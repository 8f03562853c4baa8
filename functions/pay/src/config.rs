//! pay's typed configuration, read once per request from Spin variables.

use anyhow::{bail, Context};
use htaxi_shared::domain::payment::PaymentPolicy;
use htaxi_shared::domain::Money;
use htaxi_shared::platform::config;

/// Everything pay reads from its variables.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the outbox delivers events (`broker_url`).
    pub broker_url: String,
    /// The bearer token grab must present on `POST /payments` (`pay_api_key`, secret,
    /// no default).
    pub api_key: String,
    /// The largest charge pay approves (`payment_limit_krw`).
    pub policy: PaymentPolicy,
}

impl Config {
    /// Read and parse every variable; fails naming the missing or invalid one.
    pub fn load() -> anyhow::Result<Config> {
        let api_key = config::text("pay_api_key")?;
        if api_key.trim().is_empty() {
            bail!("Spin variable pay_api_key is empty");
        }
        let limit: i64 = config::parsed("payment_limit_krw")?;
        let limit = Money::krw(limit).context("Spin variable payment_limit_krw")?;
        Ok(Config {
            broker_url: config::text("broker_url")?,
            api_key,
            policy: PaymentPolicy { limit },
        })
    }
}
