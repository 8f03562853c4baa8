//! The local broker is Knative's data plane in two halves: the ingress (`POST /broker`)
//! stores an event and answers, the dispatcher (`POST /broker/dispatch`, called in a
//! loop) delivers. These tests pin that split down through the host's counters.

use e2e::*;
use futures::future::join_all;
use serde_json::{json, Value};
use spin_host::{Fault, FaultSpec};
use std::time::{Duration, Instant};

/// A GrabRequested for a new grab, as binary-mode headers and body. Its only Trigger is
/// grab-status-grab-requested, so each one is exactly one delivery row.
fn grab_requested() -> (String, Vec<(String, String)>, Vec<u8>) {
    let grab = uuid();
    let (headers, body) = grab_requested_event(&grab, "010-5555-0000");
    (grab, headers, body)
}

async fn publish(s: &Saga) -> String {
    let (grab, headers, body) = grab_requested();
    let h: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let a = s.post_raw("/broker", &body, &h).await.unwrap();
    assert_eq!(a.status, 202, "{}", a.text);
    assert_eq!(a.body["triggers"], json!(["grab-status-grab-requested"]));
    grab
}

/// The delivery rows of the events of `grabs` (by subject), from the broker's log.
async fn deliveries_of(s: &Saga, grabs: &[String]) -> Vec<Value> {
    let log = s.get("/broker/events?limit=500").await.unwrap();
    assert_eq!(log.status, 200, "{}", log.text);
    log.body
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| grabs.iter().any(|g| e["attributes"]["subject"] == json!(g)))
        .flat_map(|e| e["deliveries"].as_array().cloned().unwrap_or_default())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn post_broker_answers_before_any_subscriber_is_called() {
    let mut s = Saga::start().await.unwrap();
    s.stop_dispatcher().await;
    let before = s.app().faults().component_stats("grab-status").requests;
    let grab = publish(&s).await;
    // Nothing delivers inline: the subscriber has not been called, the row waits.
    assert_eq!(
        s.app().faults().component_stats("grab-status").requests,
        before,
        "the ingress called a subscriber"
    );
    let rows = deliveries_of(&s, std::slice::from_ref(&grab)).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["status"], json!("pending"));
    assert_eq!(rows[0]["attempts"], json!(0));
    // The dispatcher delivers it.
    s.start_dispatcher();
    s.status_until(&grab, "delivered by the dispatcher", |v| {
        v["phoneNumber"] == json!("010-5555-0000")
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dispatcher_loop_delivers_within_a_bounded_time() {
    let s = Saga::start().await.unwrap();
    let start = Instant::now();
    let grab = publish(&s).await;
    // No flush: only the loop delivers. The bound is for a stuck loop, not a speed target.
    let bound = Duration::from_secs(10);
    loop {
        let rows = deliveries_of(&s, std::slice::from_ref(&grab)).await;
        if rows
            .first()
            .is_some_and(|r| r["status"] == json!("delivered"))
        {
            assert_eq!(rows[0]["attempts"], json!(1));
            break;
        }
        assert!(
            start.elapsed() < bound,
            "not delivered within {bound:?}: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!(
        "delivered by the dispatcher loop {:?} after publish",
        start.elapsed()
    );
    let view = s.get(&format!("/grabStatuses/{grab}")).await.unwrap();
    assert_eq!(view.status, 200, "{}", view.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_dispatch_calls_at_once_never_deliver_one_row_twice() {
    let mut s = Saga::start().await.unwrap();
    s.stop_dispatcher().await;
    let mut grabs = Vec::new();
    for _ in 0..30 {
        grabs.push(publish(&s).await);
    }
    let before = s.app().faults().component_stats("grab-status").requests;
    let calls = join_all((0..2).map(|_| s.post_raw("/broker/dispatch?waitMs=200", b"", &[]))).await;
    let mut delivered = 0;
    for c in &calls {
        let c = c.as_ref().unwrap();
        assert_eq!(c.status, 200, "{}", c.text);
        delivered += c.body["delivered"].as_u64().unwrap();
    }
    assert_eq!(delivered, 30, "{:?}", calls);
    assert_eq!(
        s.app().faults().component_stats("grab-status").requests - before,
        30,
        "each row reached the subscriber exactly once"
    );
    for row in deliveries_of(&s, &grabs).await {
        assert_eq!(row["status"], json!("delivered"), "{row}");
        assert_eq!(row["attempts"], json!(1), "{row}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_dispatch_call_keeps_several_deliveries_in_flight() {
    let mut s = Saga::start().await.unwrap();
    s.stop_dispatcher().await;
    for _ in 0..8 {
        publish(&s).await;
    }
    // Every delivery waits 400 ms on its way out: one after another would take >= 3.2 s.
    let slow = s.fault(FaultSpec {
        component: "broker".into(),
        fault: Fault::DelayOutbound {
            host: "grab-status.spin.internal".into(),
            delay_ms: 400,
        },
        count: None,
    });
    let start = Instant::now();
    let a = s
        .post_raw("/broker/dispatch?waitMs=0", b"", &[])
        .await
        .unwrap();
    let took = start.elapsed();
    s.app().faults().clear(slow);
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["delivered"], json!(8), "{}", a.text);
    assert!(
        took < Duration::from_millis(2400),
        "8 deliveries of 400 ms each took {took:?}: they were not in flight together"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dispatch_refuses_a_bad_wait_and_changes_nothing() {
    let mut s = Saga::start().await.unwrap();
    s.stop_dispatcher().await;
    let grab = publish(&s).await;
    for bad in [
        "/broker/dispatch?waitMs=5000",
        "/broker/dispatch?waitMs=soon",
    ] {
        s.post_raw(bad, b"", &[]).await.unwrap().assert_problem(422);
    }
    s.get("/broker/dispatch").await.unwrap().assert_problem(405);
    let rows = deliveries_of(&s, std::slice::from_ref(&grab)).await;
    assert_eq!(rows[0]["status"], json!("pending"));
    assert_eq!(rows[0]["attempts"], json!(0));
}
