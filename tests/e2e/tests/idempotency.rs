//! Charge once: `Idempotency-Key` holds when a rider taps twice at once and when the app
//! dies in the middle of the request. Every test ends with the money invariants.

use e2e::*;
use futures::future::join_all;
use serde_json::{json, Value};
use spin_host::{Fault, FaultSpec};
use std::time::{Duration, Instant};

/// The grabs grab stores for a rider.
async fn grabs_of(s: &Saga, phone: &str) -> Vec<Value> {
    let a = s.get(&format!("/grabs?phoneNumber={phone}")).await.unwrap();
    assert_eq!(a.status, 200, "{}", a.text);
    a.body.as_array().cloned().unwrap_or_default()
}

/// Book `quote` with an Idempotency-Key (the same key must come with the same body).
async fn post_grab_with_key(s: &Saga, phone: &str, quote: &Value, key: &str) -> Answer {
    s.rider(phone)
        .post_with(
            &grab_path(),
            &grab_body(phone, quote),
            &[("idempotency-key", key)],
        )
        .await
        .unwrap()
}

/// The fare a quote promised.
fn fare(quote: &Value) -> i64 {
    quote["fare"].as_i64().expect("a quote has a fare")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rider_who_taps_six_times_at_once_gets_one_ride_and_one_charge() {
    const PHONE: &str = "010-7000-0001";
    // pay answers slowly, so the duplicates really arrive while the first one runs.
    let s = Saga::start().await.unwrap();
    for i in 0..3 {
        s.register_taxi(&format!("서울70카70{i:02}"), 37.556, 126.972)
            .await
            .unwrap();
    }
    s.fault(FaultSpec {
        component: "grab".into(),
        fault: Fault::DelayOutbound {
            host: "pay.spin.internal".into(),
            delay_ms: 400,
        },
        count: Some(1),
    });
    let quote = s.quote(PHONE, gangnam()).await.unwrap();
    let answers =
        join_all((0..6).map(|_| post_grab_with_key(&s, PHONE, &quote, "same-key-1"))).await;

    let created: Vec<&Answer> = answers.iter().filter(|a| a.status == 201).collect();
    let fresh: Vec<&&Answer> = created
        .iter()
        .filter(|a| a.header("idempotent-replayed").is_none())
        .collect();
    assert_eq!(fresh.len(), 1, "exactly one request ran: {answers:#?}");
    let id = fresh[0].body["id"].as_str().unwrap().to_owned();
    for a in &answers {
        match a.status {
            201 => assert_eq!(a.body["id"], json!(id), "a replay names the same grab"),
            409 => {
                a.assert_problem(409);
                assert!(a.text.contains("in progress"), "{}", a.text);
                let secs: u32 = a.header("retry-after").unwrap().parse().unwrap();
                assert!((1..=10).contains(&secs), "Retry-After {secs}");
            }
            other => panic!("unexpected {other}: {}", a.text),
        }
    }
    assert!(
        answers.iter().any(|a| a.status == 409),
        "duplicates that overlapped the first request were told it is in progress"
    );

    let grabs = grabs_of(&s, PHONE).await;
    assert_eq!(grabs.len(), 1, "one grab stored: {grabs:#?}");
    let inv = s.converged(std::slice::from_ref(&id)).await.unwrap();
    assert_eq!(
        inv.approved_krw,
        fare(&quote),
        "one payment, of the quoted fare"
    );
    let taxis = s.get("/taxis?status=Busy").await.unwrap();
    assert_eq!(
        taxis.body.as_array().map(Vec::len),
        Some(1),
        "one taxi: {}",
        taxis.text
    );

    // Once it finished, the same tap replays the stored answer.
    let again = post_grab_with_key(&s, PHONE, &quote, "same-key-1").await;
    assert_eq!(again.status, 201, "{}", again.text);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.body["id"], json!(id));
    // The same key with another body is refused and stores nothing.
    let other_quote = s.quote(PHONE, gangnam()).await.unwrap();
    let other = s
        .rider(PHONE)
        .post_with(
            &grab_path(),
            &grab_body(PHONE, &other_quote),
            &[("idempotency-key", "same-key-1")],
        )
        .await
        .unwrap();
    other.assert_problem(422);
    assert_eq!(grabs_of(&s, PHONE).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retry_after_a_crash_mid_request_resumes_the_same_grab_and_charges_it_once() {
    const PHONE: &str = "010-7000-0002";
    const LEASE_MS: u64 = 3_000;
    let lease = LEASE_MS.to_string();
    let mut s = Saga::start_with(vec![("idempotency_lease_ms", lease.as_str())])
        .await
        .unwrap();
    s.register_taxi("서울71타7100", 37.556, 126.972)
        .await
        .unwrap();
    // grab has migrated its database; then it commits the grab and its key, and dies
    // before it calls pay.
    assert_eq!(s.get("/health/grab").await.unwrap().status, 200);
    let quote = s.quote(PHONE, gangnam()).await.unwrap();
    s.fault(FaultSpec {
        component: "grab".into(),
        fault: Fault::CrashAfterCommit,
        count: Some(1),
    });
    let sent = Instant::now();
    let cut = post_grab_with_key(&s, PHONE, &quote, "crash-key-1").await;
    // The lease began between `sent` and now.
    let answered = Instant::now();
    assert_eq!(cut.status, 500, "the request was cut: {}", cut.text);
    assert!(s.app().faults().component_stats("grab").traps >= 1);
    let stored = grabs_of(&s, PHONE).await;
    assert_eq!(stored.len(), 1, "the grab was stored before the crash");
    let id = stored[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(stored[0]["grabStatus"], json!("Requested"));

    // The app comes back on the same state.
    s.restart().await.unwrap();
    let early = post_grab_with_key(&s, PHONE, &quote, "crash-key-1").await;
    if sent.elapsed() < Duration::from_millis(LEASE_MS) {
        early.assert_problem(409);
        assert!(early.header("retry-after").is_some());
    }
    // Once the lease lapsed, the retry resumes that grab: charged once, allocated.
    let lapsed = Duration::from_millis(LEASE_MS + 100);
    tokio::time::sleep(lapsed.saturating_sub(answered.elapsed())).await;
    let resumed = post_grab_with_key(&s, PHONE, &quote, "crash-key-1").await;
    assert_eq!(resumed.status, 201, "{}", resumed.text);
    assert_eq!(
        resumed.body["id"],
        json!(id),
        "the same grab, not a second one"
    );
    assert_eq!(
        grabs_of(&s, PHONE).await.len(),
        1,
        "never a second grab for one key"
    );
    let inv = s.converged(std::slice::from_ref(&id)).await.unwrap();
    assert_eq!(inv.approved_krw, fare(&quote));
    assert_eq!(inv.refunded_krw, 0);
    let replay = post_grab_with_key(&s, PHONE, &quote, "crash-key-1").await;
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(replay.body["id"], json!(id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_503_releases_the_key_so_a_retry_really_retries() {
    const PHONE: &str = "010-7000-0003";
    let s = Saga::start_with(vec![("pay_max_attempts", "1"), ("pay_timeout_ms", "500")])
        .await
        .unwrap();
    s.register_taxi("서울72파7200", 37.556, 126.972)
        .await
        .unwrap();
    let quote = s.quote(PHONE, gangnam()).await.unwrap();
    s.fault(FaultSpec {
        component: "pay".into(),
        fault: Fault::Respond { status: 503 },
        count: Some(1),
    });
    let first = post_grab_with_key(&s, PHONE, &quote, "outage-key-1").await;
    first.assert_problem(503);
    let retry = post_grab_with_key(&s, PHONE, &quote, "outage-key-1").await;
    assert_eq!(retry.status, 201, "{}", retry.text);
    assert!(retry.header("idempotent-replayed").is_none());
    let ids: Vec<String> = grabs_of(&s, PHONE)
        .await
        .iter()
        .map(|g| g["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 2, "the failed grab and the retried one");
    let inv = s.converged(&ids).await.unwrap();
    assert_eq!(
        inv.approved_krw - inv.refunded_krw,
        fare(&quote),
        "charged once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_driver_who_registers_twice_at_once_gets_one_taxi() {
    let s = Saga::start().await.unwrap();
    let body = json!({"taxiNum": "서울73하7300", "location": {"lat": 37.556, "lng": 126.972}});
    let driver = s.driver(&uuid());
    let answers = join_all(
        (0..5).map(|_| driver.post_with("/taxis", &body, &[("idempotency-key", "taxi-key-1")])),
    )
    .await;
    let mut ids = Vec::new();
    for a in answers {
        let a = a.unwrap();
        assert_eq!(
            a.status, 201,
            "every registration answers the first 201: {}",
            a.text
        );
        ids.push(a.body["taxiId"].as_str().unwrap().to_owned());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "one taxi: {ids:?}");
    let all = s.get("/taxis").await.unwrap();
    assert_eq!(all.body.as_array().map(Vec::len), Some(1), "{}", all.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_expired_key_is_forgotten() {
    let s = Saga::start_with(vec![("idempotency_ttl_secs", "1")])
        .await
        .unwrap();
    let first = json!({"taxiNum": "서울74거7400", "location": {"lat": 37.556, "lng": 126.972}});
    let second = json!({"taxiNum": "서울74거7401", "location": {"lat": 37.556, "lng": 126.972}});
    let key = [("idempotency-key", "taxi-key-2")];
    let driver = s.driver(&uuid());
    assert_eq!(
        driver
            .post_with("/taxis", &first, &key)
            .await
            .unwrap()
            .status,
        201
    );
    driver
        .post_with("/taxis", &second, &key)
        .await
        .unwrap()
        .assert_problem(422);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    // The periodic tick sweeps it; either way an expired key names nothing any more.
    s.flush_all().await.unwrap();
    // Another driver's equal key never met this one; this driver's is forgotten, so the
    // request is judged anew (their taxi is registered already: 409, not a 422 mismatch).
    let again = driver.post_with("/taxis", &second, &key).await.unwrap();
    again.assert_problem(409);
    assert!(again.header("idempotent-replayed").is_none());
    let other = s
        .driver(&uuid())
        .post_with("/taxis", &second, &key)
        .await
        .unwrap();
    assert_eq!(other.status, 201, "{}", other.text);
    assert_eq!(other.body["taxiNum"], json!("서울74거7401"));
}
