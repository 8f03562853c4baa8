//! notify (the Python component) end to end: what riders and drivers are told about a
//! ride, exactly once whatever the broker's duplicates and ordering, and how it refuses
//! bad input.

use e2e::contract::broker_events;
use e2e::deliver::{header_refs, logged_as_binary};
use e2e::*;
use serde_json::{json, Value};
use std::time::Duration;

const RIDER: &str = "010-1234-5678";

fn kinds(list: &Value) -> Vec<String> {
    list.as_array()
        .map(|a| {
            a.iter()
                .map(|n| n["kind"].as_str().unwrap_or("?").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Wait until `path` lists exactly `want` (kinds, newest first); returns the list.
async fn notifications_until(s: &Saga, path: &str, want: &[&str]) -> Value {
    let path = path.to_owned();
    s.eventually(
        &format!("{path} lists {want:?}"),
        Duration::from_secs(20),
        || {
            let path = path.clone();
            async move {
                let a = s.get(&path).await?;
                Ok((a.status == 200 && kinds(&a.body) == want).then_some(a.body))
            }
        },
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_ride_tells_the_rider_and_the_driver_exactly_once_under_duplicated_and_reordered_delivery(
) {
    let s = Saga::start().await.unwrap();
    let taxi = s
        .register_taxi("서울32저4703", 37.5560, 126.9720)
        .await
        .unwrap();
    let a = s.request_grab(RIDER).await.unwrap();
    assert_eq!(a.status, 201, "{}", a.text);
    let grab = a.body["id"].as_str().unwrap().to_owned();
    let fare = format!("{} KRW", won(a.body["fare"].as_i64().unwrap()));
    let alloc = s.allocation_of(&grab).await.unwrap();
    s.accept_and_complete(&alloc).await.unwrap();

    let rider_path = format!("/notifications?phoneNumber={RIDER}");
    let driver_path = format!("/notifications?taxiId={taxi}");
    let rider = notifications_until(
        &s,
        &rider_path,
        &["RideCompleted", "RideStarted", "TaxiAllocated"],
    )
    .await;
    let driver = notifications_until(&s, &driver_path, &["PickupAssigned"]).await;

    let allocated = &rider[2];
    assert_eq!(allocated["grabId"], json!(grab));
    assert_eq!(allocated["phoneNumber"], json!(RIDER));
    let text = allocated["message"].as_str().unwrap();
    assert!(
        text.contains("서울32저4703") && text.contains(" m from you") && text.contains(&fare),
        "plate, distance and the quoted fare: {text}"
    );
    let receipt = rider[0]["message"].as_str().unwrap();
    assert!(
        receipt.starts_with("Receipt:") && receipt.contains(&fare),
        "{receipt}"
    );
    let pickup = driver[0]["message"].as_str().unwrap();
    assert!(
        pickup.contains("Seoul Station") && pickup.contains("Gangnam Station"),
        "{pickup}"
    );
    assert_eq!(driver[0]["taxiId"], json!(taxi));
    assert!(
        driver[0].get("phoneNumber").is_none(),
        "the driver is not given the rider's number"
    );

    // Every event the broker delivered to notify, again 1-3 times each, newest first.
    let mut replays = Vec::new();
    for (n, ev) in broker_events(&s).await.unwrap().iter().enumerate() {
        let to_notify = ev["deliveries"].as_array().unwrap().iter().any(|d| {
            d["subscriber"]
                .as_str()
                .unwrap_or_default()
                .ends_with("/events/notify")
        });
        if !to_notify {
            continue;
        }
        for _ in 0..(1 + n % 3) {
            replays.push(logged_as_binary(ev));
        }
    }
    assert!(
        replays.len() >= 4,
        "notify got the ride's events: {}",
        replays.len()
    );
    for (headers, body) in &replays {
        let r = s
            .post_raw("/events/notify", body, &header_refs(headers))
            .await
            .unwrap();
        assert_eq!(r.status, 204, "{}", r.text);
        assert_eq!(r.header("htaxi-outcome"), Some("duplicate"));
    }
    assert_eq!(s.get(&rider_path).await.unwrap().body, rider);
    assert_eq!(s.get(&driver_path).await.unwrap().body, driver);
}

/// Whole won with thousands separators, as notify writes them: 12400 → "12,400".
fn won(amount: i64) -> String {
    let digits = amount.to_string();
    let mut out = String::new();
    for (n, c) in digits.chars().enumerate() {
        if n > 0 && (digits.len() - n).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_rider_is_told_of_a_refund_a_failed_allocation_and_a_declined_payment() {
    let s = Saga::start().await.unwrap();
    // No taxi anywhere: allocation fails, pay refunds.
    let a = s.request_grab("010-2222-0001").await.unwrap();
    assert_eq!(a.status, 201, "{}", a.text);
    let refunded = format!(
        "{} KRW has been refunded",
        won(a.body["fare"].as_i64().unwrap())
    );
    let listed = notifications_until(
        &s,
        "/notifications?phoneNumber=010-2222-0001",
        &["PaymentRefunded", "AllocationFailed"],
    )
    .await;
    assert!(listed[0]["message"].as_str().unwrap().contains(&refunded));

    let r = s.request_grab_to("010-2222-0002", busan()).await.unwrap();
    assert_eq!(r.status, 402, "{}", r.text);
    let listed = notifications_until(
        &s,
        "/notifications?phoneNumber=010-2222-0002",
        &["PaymentRejected"],
    )
    .await;
    assert!(listed[0]["message"]
        .as_str()
        .unwrap()
        .contains(" KRW was declined"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_queries_and_poison_events_are_refused_with_problem_json_and_store_nothing() {
    let s = Saga::start().await.unwrap();
    let health = s.get("/health/notify").await.unwrap();
    assert_eq!(health.status, 200, "{}", health.text);
    assert_eq!(health.body["component"], json!("notify"));

    for path in [
        "/notifications",
        "/notifications?phoneNumber=abc",
        "/notifications?taxiId=7",
        "/notifications?phoneNumber=010-1234-5678&taxiId=7",
    ] {
        s.get(path).await.unwrap().assert_problem(422);
    }
    s.delete("/notifications?phoneNumber=010-1234-5678")
        .await
        .unwrap()
        .assert_problem(405);

    let grab = uuid();
    let data = json!({"grabId": grab, "reason": "no taxi", "phoneNumber": "010-3333-0001",
                      "amount": "lots"});
    let (headers, body) = binary_event(
        "htaxi.PaymentRejected",
        &format!("PaymentRejected:{grab}"),
        "/htaxi/pay",
        &grab,
        &data,
    );
    let h = header_refs(&headers);
    s.post_raw("/events/notify", &body, &h)
        .await
        .unwrap()
        .assert_problem(400);
    s.post_raw(
        "/events/notify",
        b"{}",
        &[("content-type", "application/json")],
    )
    .await
    .unwrap()
    .assert_problem(400);
    let structured = structured_event("htaxi.GrabRequested", "x", "/htaxi/grab", &grab, &json!({}));
    s.post_raw(
        "/events/notify",
        &structured,
        &[("content-type", "application/cloudevents+json")],
    )
    .await
    .unwrap()
    .assert_problem(400);
    let big = vec![b' '; 70 * 1024];
    s.post_raw("/events/notify", &big, &h)
        .await
        .unwrap()
        .assert_problem(413);

    let listed = s
        .get("/notifications?phoneNumber=010-3333-0001")
        .await
        .unwrap();
    assert_eq!(listed.body, json!([]), "nothing stored: {}", listed.text);
    // The poison left no inbox row: the same id with valid data is applied.
    let mut fixed = data.clone();
    fixed["amount"] = json!(400_000);
    let body = serde_json::to_vec(&fixed).unwrap();
    let ok = s.post_raw("/events/notify", &body, &h).await.unwrap();
    assert_eq!(ok.header("htaxi-outcome"), Some("applied"), "{}", ok.text);
}
