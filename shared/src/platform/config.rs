//! Spin variables, read once per request into each component's typed `Config`.
//! A missing or unparsable variable is a deployment error: it surfaces as a 500 whose
//! detail stays in the log (never in the response), naming the variable.

use anyhow::{anyhow, Context};
use std::str::FromStr;

/// A variable's text. Fails when it is not set (required variables have no default).
pub fn text(name: &str) -> anyhow::Result<String> {
    spin_sdk::variables::get(name).with_context(|| format!("reading Spin variable {name}"))
}

/// A variable parsed into `T`; fails naming the variable and the bad value.
pub fn parsed<T: FromStr>(name: &str) -> anyhow::Result<T>
where
    T::Err: std::fmt::Display,
{
    let raw = text(name)?;
    raw.trim()
        .parse()
        .map_err(|e| anyhow!("Spin variable {name}={raw:?} is invalid: {e}"))
}
