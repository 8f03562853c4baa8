//! The cluster wiring, end to end, on one machine: one host process per Knative Service, each
//! started as its overlay starts it (only its own component retained), with the variables the
//! rendered ConfigMap and Secrets give it and cluster names resolved to those processes (see
//! `e2e::topology`). A ride crosses every process: grab calls pay over HTTP, PaymentApproved
//! goes through the broker to allocate, grab-status's view follows, and a cancel is refunded.
//!
//! With literal `http://<other>.spin.internal` allowed hosts (the manifest before issue 9) the
//! grab, pay and allocate processes refuse to start, as real Spin does, and this test fails.

use anyhow::{ensure, Context, Result};
use e2e::topology::{Cluster, Overlay};
use e2e::{gangnam, grab_body, seoul_station, uuid, Answer, Who};
use reqwest::Method;
use serde_json::{json, Value};

async fn get(c: &Cluster, service: &str, path: &str) -> Result<Answer> {
    c.call(Method::GET, service, path, None).await
}

/// The one payment of `grab_id`, as pay reports it.
async fn payment_status(c: &Cluster, grab_id: &str) -> Result<Option<String>> {
    let a = get(c, "pay", &format!("/payments?grabId={grab_id}")).await?;
    let item = match &a.body {
        Value::Array(v) => v.first().cloned(),
        Value::Object(o) if o.contains_key("payments") => {
            o["payments"].as_array().and_then(|v| v.first().cloned())
        }
        other => Some(other.clone()),
    };
    Ok(item.and_then(|p| p["paymentStatus"].as_str().map(str::to_owned)))
}

async fn view(c: &Cluster, grab_id: &str) -> Result<Value> {
    Ok(get(c, "grab-status", &format!("/grabStatuses/{grab_id}"))
        .await?
        .body)
}

async fn ride(c: &Cluster) -> Result<()> {
    let driver = uuid();
    let taxi = c
        .call_as(
            Who::Driver(driver),
            Method::POST,
            "allocate",
            "/taxis",
            Some(
                &json!({"taxiNum": "서울32저4703", "location": {"lat": 37.5550, "lng": 126.9710}}),
            ),
        )
        .await?;
    ensure!(
        taxi.status == 201,
        "POST /taxis: {} {}",
        taxi.status,
        taxi.text
    );
    let taxi_id = taxi.body["taxiId"].as_str().context("taxiId")?.to_owned();

    let quote = c
        .call_as(
            Who::Rider("010-1234-5678".into()),
            Method::POST,
            "grab",
            "/fares/quote",
            Some(&serde_json::json!({"startingPoint": seoul_station(), "destination": gangnam()})),
        )
        .await?;
    ensure!(
        quote.status == 201,
        "POST /fares/quote: {} {}",
        quote.status,
        quote.text
    );
    // grab -> pay is a synchronous HTTP call from the grab process to the pay process.
    let grab = c
        .call_as(
            Who::Rider("010-1234-5678".into()),
            Method::POST,
            "grab",
            "/grabs",
            Some(&grab_body("010-1234-5678", &quote.body)),
        )
        .await?;
    ensure!(
        grab.status == 201,
        "POST /grabs: {} {}",
        grab.status,
        grab.text
    );
    let id = grab.body["id"].as_str().context("grab id")?.to_owned();
    let (id, taxi_id) = (id.as_str(), taxi_id.as_str());
    ensure!(
        payment_status(c, id).await?.as_deref() == Some("Approved"),
        "pay has no approved payment for {id}"
    );

    // PaymentApproved: pay -> Kafka ingress -> broker -> allocate, which offers the ride to
    // the taxi; its driver accepts. Every event -> grab-status.
    let offer = c
        .eventually("the view to show the offer", || async move {
            let v = view(c, id).await?;
            Ok((v["allocationStatus"] == "Offered").then_some(v))
        })
        .await?;
    let offer_id = offer["allocationId"].as_str().context("allocationId")?;
    let accepted = c
        .call_as(
            Who::Driver(taxi_id.to_owned()),
            Method::POST,
            "allocate",
            &format!("/allocations/{offer_id}/accept"),
            None,
        )
        .await?;
    ensure!(
        accepted.status == 200,
        "accept: {} {}",
        accepted.status,
        accepted.text
    );
    let allocated = c
        .eventually("the view to show the taxi allocated", || async move {
            let v = view(c, id).await?;
            Ok(
                (v["allocationStatus"] == "Allocated" && v["paymentStatus"] == "Approved")
                    .then_some(v),
            )
        })
        .await?;
    ensure!(
        allocated["taxiId"] == json!(taxi_id),
        "allocated another taxi: {allocated}"
    );

    // Cancel: GrabCancelled -> pay refunds, allocate releases the taxi, the view follows.
    let cancel = c
        .call_as(
            Who::Rider("010-1234-5678".into()),
            Method::DELETE,
            "grab",
            &format!("/grabs/{id}"),
            None,
        )
        .await?;
    ensure!(
        cancel.status == 204,
        "DELETE /grabs/{id}: {} {}",
        cancel.status,
        cancel.text
    );
    c.eventually("the refund and the released taxi", || async move {
        let refunded = payment_status(c, id).await?.as_deref() == Some("Refunded");
        let v = view(c, id).await?;
        let taxis = get(c, "allocate", "/taxis").await?.body;
        let list = taxis
            .as_array()
            .or(taxis["taxis"].as_array())
            .cloned()
            .unwrap_or_default();
        let free = list
            .iter()
            .any(|t| t["taxiId"] == json!(taxi_id) && t["status"] == "Available");
        Ok(
            (refunded
                && free
                && v["grabStatus"] == "Cancelled"
                && v["paymentStatus"] == "Refunded")
                .then_some(()),
        )
    })
    .await
}

async fn ride_on(overlay: Overlay) {
    let cluster = Cluster::start(overlay)
        .await
        .unwrap_or_else(|e| panic!("{overlay:?} topology did not start: {e:#}"));
    if let Err(e) = ride(&cluster).await {
        panic!("{overlay:?}: {e:#}\n{}", cluster.logs());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ride_crosses_the_shim_overlays_services() {
    ride_on(Overlay::Shim).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ride_crosses_the_container_overlays_services() {
    ride_on(Overlay::Container).await;
}
