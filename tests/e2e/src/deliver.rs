//! Delivering CloudEvents by hand, as an at-least-once broker may: re-sending what the
//! local broker logged, and the driver's steps that make a ride emit its events.

use anyhow::{bail, Result};
use serde_json::Value;

use crate::Saga;

/// Borrow owned header pairs for [`Saga::post_raw`].
pub fn header_refs(headers: &[(String, String)]) -> Vec<(&str, &str)> {
    headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// One event of the broker's log (`GET /broker/events`) as a binary-mode request:
/// `ce-*` headers from its attributes, its data as the JSON body.
pub fn logged_as_binary(ev: &Value) -> (Vec<(String, String)>, Vec<u8>) {
    let mut headers: Vec<(String, String)> = ev["attributes"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| k.as_str() != "datacontenttype")
        .map(|(k, v)| (format!("ce-{k}"), v.as_str().unwrap_or_default().to_owned()))
        .collect();
    headers.push(("content-type".into(), "application/json".into()));
    let body = serde_json::to_vec(&ev["data"]).expect("data is JSON");
    (headers, body)
}

impl Saga {
    /// The allocation's driver accepts it (idempotent if the harness's drivers already
    /// did) and picks the rider up: the answer to `POST /allocations/{id}/pickup`.
    pub async fn start_ride(&self, allocation: &serde_json::Value) -> Result<crate::Answer> {
        let allocation_id = allocation["allocationId"].as_str().unwrap_or_default();
        let driver = self.driver_of(allocation);
        let accepted = driver
            .post_raw(&format!("/allocations/{allocation_id}/accept"), b"", &[])
            .await?;
        if accepted.status != 200 {
            return Ok(accepted);
        }
        driver
            .post_raw(&format!("/allocations/{allocation_id}/pickup"), b"", &[])
            .await
    }

    /// The allocation's driver accepts it (if the harness's drivers have not yet), picks
    /// the rider up, then drops them off (TaxiAllocated, RideStarted, RideCompleted).
    /// `allocation` is allocate's answer (it names the taxi).
    pub async fn accept_and_complete(&self, allocation: &serde_json::Value) -> Result<()> {
        let allocation_id = allocation["allocationId"].as_str().unwrap_or_default();
        for step in ["accept", "pickup", "complete"] {
            let r = self
                .driver_of(allocation)
                .post_raw(&format!("/allocations/{allocation_id}/{step}"), b"", &[])
                .await?;
            if r.status != 200 {
                bail!("{step} {allocation_id}: {} {}", r.status, r.text);
            }
        }
        Ok(())
    }
}
