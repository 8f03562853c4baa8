//! Loses nothing, charges once: the saga under duplicates, crashes and outages, driven
//! through the host's fault injection. Every test ends by asserting the money and taxi
//! invariants ([`e2e::check_invariants`]).

use e2e::deliver::logged_as_binary;
use e2e::*;
use futures::future::join_all;
use futures::StreamExt;
use serde_json::json;
use spin_host::{Fault, FaultSpec};
use std::time::{Duration, Instant};

const PHONE: &str = "010-2222-3333";

fn fault(component: &str, fault: Fault, count: Option<u32>) -> FaultSpec {
    FaultSpec {
        component: component.into(),
        fault,
        count,
    }
}

/// Wait until every grab is in a stable state (flushing outboxes and broker retries).
async fn settle(s: &Saga, ids: &[String]) {
    s.eventually("every grab stable", Duration::from_secs(60), || async {
        for id in ids {
            let g = s.get(&format!("/grabs/{id}")).await?;
            let st = g.body["grabStatus"].as_str().unwrap_or("");
            if !STABLE.contains(&st) {
                return Ok(None);
            }
        }
        // and the view has caught up with the owners
        Ok(s.check_invariants(ids).await.ok().map(|_| ()))
    })
    .await
    .unwrap();
}

fn id_of(a: &Answer) -> String {
    a.body["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {}", a.text))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pay_down_opens_the_breaker_which_fails_fast_then_recovers_half_open() {
    let mut s = Saga::start_with(vec![
        ("breaker_failure_threshold", "3"),
        ("breaker_cooldown_ms", "1500"),
        ("pay_max_attempts", "1"),
        ("pay_timeout_ms", "400"),
    ])
    .await
    .unwrap();
    s.register_taxi("서울60바6000", 37.556, 126.972)
        .await
        .unwrap();
    let down = s.fault(fault("pay", Fault::Respond { status: 503 }, None));
    // pay's request count below must count grab's calls only, not the dispatcher's
    // deliveries of the failed grabs' compensations.
    s.stop_dispatcher().await;

    // Three failed calls open the breaker; each answers 503 + Retry-After and stores a
    // failed grab whose (possible) payment is compensated.
    let mut ids = Vec::new();
    for _ in 0..3 {
        let a = s.request_grab(PHONE).await.unwrap();
        a.assert_problem(503);
        assert!(a.header("retry-after").is_some(), "503 says when to retry");
    }
    let pay_calls = s.app().faults().component_stats("pay").requests;
    // Open: fail fast, without calling pay and without storing anything.
    let t = Instant::now();
    let a = s.request_grab(PHONE).await.unwrap();
    a.assert_problem(503);
    assert!(a.header("retry-after").is_some());
    assert!(
        t.elapsed() < Duration::from_millis(400),
        "open breaker answers fast: {:?}",
        t.elapsed()
    );
    assert_eq!(
        s.app().faults().component_stats("pay").requests,
        pay_calls,
        "open breaker does not call pay"
    );
    s.start_dispatcher();
    let health = s.get("/health/grab").await.unwrap();
    assert_eq!(
        health.status, 200,
        "pay being down must not fail grab's liveness"
    );
    assert!(
        health.text.to_lowercase().contains("open"),
        "breaker state and reason are recorded: {}",
        health.text
    );

    // Half-open after the cool-down: one trial goes through; pay is back, so it closes.
    s.app().faults().clear(down);
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let a = s.request_grab(PHONE).await.unwrap();
    assert_eq!(a.status, 201, "half-open trial succeeds: {}", a.text);
    ids.push(id_of(&a));
    let a = s.request_grab(PHONE).await.unwrap();
    assert_eq!(a.status, 201, "closed again: {}", a.text);
    ids.push(id_of(&a));

    let all = s.get(&format!("/grabs?phoneNumber={PHONE}")).await.unwrap();
    let all_ids: Vec<String> = all
        .body
        .as_array()
        .cloned()
        .unwrap_or_else(|| all.body["grabs"].as_array().cloned().unwrap_or_default())
        .iter()
        .map(|g| g["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        all_ids.len(),
        5,
        "the fail-fast request stored nothing: {}",
        all.text
    );
    settle(&s, &all_ids).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_and_flapping_pay_trips_the_breaker_and_nobody_is_charged_for_a_failed_grab() {
    let s = Saga::start_with(vec![
        ("breaker_failure_threshold", "2"),
        ("breaker_cooldown_ms", "800"),
        ("pay_max_attempts", "2"),
        ("pay_timeout_ms", "300"),
    ])
    .await
    .unwrap();
    for i in 0..3 {
        s.register_taxi(&format!("서울70사70{i:02}"), 37.556, 126.972)
            .await
            .unwrap();
    }
    // Slow: every call from grab to pay takes longer than the timeout.
    let slow = s.fault(fault(
        "grab",
        Fault::DelayOutbound {
            host: "pay.spin.internal".into(),
            delay_ms: 1_000,
        },
        None,
    ));
    let a = s.request_grab(PHONE).await.unwrap();
    a.assert_problem(503);
    let a = s.request_grab(PHONE).await.unwrap();
    a.assert_problem(503);
    // Two consecutive failures opened the breaker: the next rider is refused at once,
    // without a call to pay, and nothing is stored.
    let health = s.get("/health/grab").await.unwrap();
    assert_eq!(
        health.body["payBreaker"]["state"],
        json!("open"),
        "{}",
        health.text
    );
    let calls = s.app().faults().component_stats("grab").outbound_calls;
    let fast = s.request_grab(PHONE).await.unwrap();
    fast.assert_problem(503);
    assert!(fast.header("retry-after").is_some(), "{}", fast.text);
    assert!(fast.text.contains("circuit open"), "{}", fast.text);
    assert_eq!(
        s.app().faults().component_stats("grab").outbound_calls,
        calls,
        "an open breaker does not call pay"
    );
    s.app().faults().clear(slow);
    // After the cool-down the half-open trial succeeds and closes the breaker.
    tokio::time::sleep(Duration::from_millis(900)).await;
    let a = s.request_grab(PHONE).await.unwrap();
    assert_eq!(a.status, 201, "half-open trial: {}", a.text);
    // Flapping: pay fails every other call. The retry with the same key rides it out and,
    // since failures are never consecutive, the breaker stays closed.
    for _ in 0..4 {
        s.fault(fault("pay", Fault::Respond { status: 503 }, Some(1)));
        let a = s.request_grab(PHONE).await.unwrap();
        assert_eq!(a.status, 201, "flapping pay is retried: {}", a.text);
    }
    let all = s.get(&format!("/grabs?phoneNumber={PHONE}")).await.unwrap();
    let ids: Vec<String> = all
        .body
        .as_array()
        .cloned()
        .unwrap_or_else(|| all.body["grabs"].as_array().cloned().unwrap_or_default())
        .iter()
        .map(|g| g["id"].as_str().unwrap().to_owned())
        .collect();
    settle(&s, &ids).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pay_approves_but_grab_never_hears_back_and_the_rider_is_charged_once() {
    let s = Saga::start_with(vec![("pay_max_attempts", "3"), ("pay_timeout_ms", "1000")])
        .await
        .unwrap();
    s.register_taxi("서울80아8000", 37.556, 126.972)
        .await
        .unwrap();
    // Warm pay up first, so its schema migrations are not the commit that crashes.
    assert_eq!(s.get("/health/pay").await.unwrap().status, 200);
    // pay commits the approval, then dies before answering: grab sees a failure and retries
    // with the same idempotency key; pay answers the original approval.
    s.fault(fault("pay", Fault::CrashAfterCommit, Some(1)));
    let a = s.request_grab(PHONE).await.unwrap();
    assert_eq!(a.status, 201, "{}", a.text);
    let id = id_of(&a);
    let pays = s.get(&format!("/payments?grabId={id}")).await.unwrap();
    assert!(pays.text.contains("Approved"), "{}", pays.text);
    settle(&s, std::slice::from_ref(&id)).await;

    // With no retry left, grab gives up; the approval pay did make is refunded.
    let s = Saga::start_with(vec![("pay_max_attempts", "1"), ("pay_timeout_ms", "1000")])
        .await
        .unwrap();
    s.register_taxi("서울80아8001", 37.556, 126.972)
        .await
        .unwrap();
    assert_eq!(s.get("/health/pay").await.unwrap().status, 200);
    s.fault(fault("pay", Fault::CrashAfterCommit, Some(1)));
    let a = s.request_grab(PHONE).await.unwrap();
    a.assert_problem(503);
    let all = s.get(&format!("/grabs?phoneNumber={PHONE}")).await.unwrap();
    let g = all
        .body
        .as_array()
        .cloned()
        .unwrap_or_else(|| all.body["grabs"].as_array().cloned().unwrap_or_default());
    let id = g[0]["id"].as_str().unwrap().to_owned();
    // The view converges whatever order grab's failure and pay's refund reach it in (they
    // come from two producers; CI once saw the refund first).
    let view = s
        .status_until(
            &id,
            "the grab failed and its orphan approval is refunded",
            |v| v["paymentStatus"] == json!("Refunded") && v["grabStatus"] == json!("Failed"),
        )
        .await
        .unwrap();
    assert_eq!(view["grabStatus"], json!("Failed"));
    settle(&s, &[id]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_component_that_dies_after_commit_before_publish_still_gets_its_event_out() {
    let s = Saga::start().await.unwrap();
    s.register_taxi("서울90자9000", 37.556, 126.972)
        .await
        .unwrap();
    assert_eq!(s.get("/health/grab").await.unwrap().status, 200);
    // allocate commits the allocation and its outbox row, then traps before publishing.
    s.fault(fault("allocate", Fault::CrashAfterCommit, Some(1)));
    let a = s.request_grab(PHONE).await.unwrap();
    assert_eq!(a.status, 201, "{}", a.text);
    let id = id_of(&a);
    // The outbox flush (the PingSource's job) publishes TaxiAllocated.
    let view = s
        .status_until(&id, "TaxiAllocated delivered after flush", |v| {
            v["allocationStatus"] == json!("Allocated")
        })
        .await
        .unwrap();
    assert_eq!(view["grabStatus"], json!("Allocated"));
    assert!(
        s.app().faults().component_stats("allocate").traps >= 1,
        "the crash really happened"
    );
    settle(&s, &[id]).await;

    // grab dies right after storing the request, before calling pay: the flush reconciles
    // the stranded grab into a stable state and nobody is charged.
    let quote = s.quote("010-4444-5555", gangnam()).await.unwrap();
    s.fault(fault("grab", Fault::CrashAfterCommit, Some(1)));
    let a = s
        .rider("010-4444-5555")
        .post(&grab_path(), &grab_body("010-4444-5555", &quote))
        .await
        .unwrap();
    assert_eq!(a.status, 500, "{}", a.text);
    assert!(
        s.app().faults().component_stats("grab").traps >= 1,
        "the crash really happened"
    );
    let all = s.get("/grabs?phoneNumber=010-4444-5555").await.unwrap();
    let g = all
        .body
        .as_array()
        .cloned()
        .unwrap_or_else(|| all.body["grabs"].as_array().cloned().unwrap_or_default());
    assert!(g.len() <= 1, "{}", all.text);
    let stranded: Vec<String> = g
        .iter()
        .map(|g| g["id"].as_str().unwrap().to_owned())
        .collect();
    if !stranded.is_empty() {
        settle(&s, &stranded).await;
    }
}

/// `n` taxis, then `n` rides requested while the broker answers 503: riders are still
/// served and every event waits in an outbox. Returns the fault (to clear) and grab ids.
async fn rides_while_the_broker_is_down(s: &Saga, n: usize, plates: &str) -> (u64, Vec<String>) {
    for i in 0..n {
        s.register_taxi(&format!("{plates}{i:02}"), 37.556, 126.972)
            .await
            .unwrap();
    }
    let down = s.fault(fault("broker", Fault::Respond { status: 503 }, None));
    let mut ids = Vec::new();
    for _ in 0..n {
        let a = s.request_grab(PHONE).await.unwrap();
        assert_eq!(
            a.status, 201,
            "riders are served while the broker is down: {}",
            a.text
        );
        ids.push(id_of(&a));
    }
    (down, ids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn broker_down_while_producers_commit_loses_nothing_once_it_returns() {
    let s = Saga::start().await.unwrap();
    let (down, ids) = rides_while_the_broker_is_down(&s, 3, "서울91차91").await;
    let flush = s.post_raw("/outbox/flush/pay", b"", &[]).await.unwrap();
    assert!(
        flush.body["pending"].as_u64().unwrap_or(0) >= 3,
        "approvals wait in pay's outbox: {}",
        flush.text
    );
    assert_eq!(
        s.get(&format!("/grabStatuses/{}", ids[0]))
            .await
            .unwrap()
            .status,
        404,
        "nothing delivered yet"
    );
    s.app().faults().clear(down);
    for id in &ids {
        s.status_until(id, "allocated once the broker is back", |v| {
            v["allocationStatus"] == json!("Allocated")
        })
        .await
        .unwrap();
    }
    settle(&s, &ids).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cancel_that_races_the_drivers_drop_off_still_wins_and_refunds() {
    let s = Saga::start().await.unwrap();
    let taxi = s
        .register_taxi("서울93차9300", 37.556, 126.972)
        .await
        .unwrap();
    let a = s.request_grab(PHONE).await.unwrap();
    assert_eq!(a.status, 201, "{}", a.text);
    let id = id_of(&a);
    let alloc = s.allocation_of(&id).await.unwrap();
    let alloc_id = alloc["allocationId"].as_str().unwrap().to_owned();
    // The rider cancels; grab accepts it, but the news is held up on its way to allocate.
    let down = s.fault(fault("broker", Fault::Respond { status: 503 }, None));
    let d = s
        .rider(PHONE)
        .delete(&format!("/grabs/{id}"))
        .await
        .unwrap();
    assert_eq!(d.status, 204, "{}", d.text);
    // Meanwhile the driver, who has not heard, picks the rider up and drops them off.
    for step in ["accept", "pickup", "complete"] {
        let r = s
            .driver(&taxi)
            .post_raw(&format!("/allocations/{alloc_id}/{step}"), b"", &[])
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{step}: {}", r.text);
    }
    s.app().faults().clear(down);
    let view = s
        .status_until(&id, "the cancel wins", |v| {
            v["allocationStatus"] == json!("Cancelled") && v["paymentStatus"] == json!("Refunded")
        })
        .await
        .unwrap();
    assert_eq!(view["grabStatus"], json!("Cancelled"));
    assert_eq!(
        s.get(&format!("/taxis/{taxi}")).await.unwrap().body["status"],
        json!("Available"),
        "the drop-off freed the taxi once; the cancel does not touch it again"
    );
    settle(&s, &[id]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_flushes_of_a_backlog_send_each_event_to_the_broker_once() {
    let s = Saga::start().await.unwrap();
    let (down, ids) = rides_while_the_broker_is_down(&s, 4, "서울92차92").await;
    s.app().faults().clear(down);
    // The PingSource, a retried request and a new ride can all flush one outbox at once.
    let reports = join_all((0..6).flat_map(|_| ["grab", "pay"]).map(|c| {
        let s = &s;
        async move {
            s.post_raw(&format!("/outbox/flush/{c}"), b"", &[])
                .await
                .unwrap()
        }
    }))
    .await;
    let mut sent = 0;
    for r in &reports {
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.body["failed"], json!(0), "{}", r.text);
        sent += r.body["sent"].as_u64().unwrap();
    }
    assert_eq!(
        sent,
        2 * ids.len() as u64,
        "each GrabRequested and PaymentApproved is sent by exactly one flush: {:?}",
        reports.iter().map(|r| &r.text).collect::<Vec<_>>()
    );
    settle(&s, &ids).await;
    let log = s.get("/broker/events?limit=500").await.unwrap();
    assert_eq!(log.status, 200, "{}", log.text);
    let mut seen = std::collections::BTreeMap::<String, u32>::new();
    for ev in log.body.as_array().unwrap() {
        let key = format!("{} {}", ev["attributes"]["source"], ev["attributes"]["id"]);
        *seen.entry(key).or_default() += 1;
    }
    let resent: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        resent.is_empty(),
        "events the broker received twice: {resent:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_grabs_for_ten_taxis_allocate_exactly_ten() {
    // 50 riders at once on 2 cores: give pay room, this test is about allocation.
    let s = Saga::start_with(vec![
        ("pay_timeout_ms", "20000"),
        ("breaker_failure_threshold", "1000"),
    ])
    .await
    .unwrap();
    for i in 0..10 {
        s.register_taxi(
            &format!("서울99카99{i:02}"),
            37.55 + f64::from(i) * 0.001,
            126.97,
        )
        .await
        .unwrap();
    }
    let answers = join_all((0..50).map(|i| {
        let s = &s;
        async move { s.request_grab(&format!("010-5000-{i:04}")).await.unwrap() }
    }))
    .await;
    let ids: Vec<String> = answers
        .iter()
        .map(|a| {
            assert_eq!(a.status, 201, "{}", a.text);
            id_of(a)
        })
        .collect();
    settle(&s, &ids).await;
    let inv = s.check_invariants(&ids).await.unwrap();
    assert_eq!(
        inv.by_status.get("Allocated"),
        Some(&10),
        "{:?}",
        inv.by_status
    );
    assert_eq!(
        inv.by_status.get("Failed"),
        Some(&40),
        "{:?}",
        inv.by_status
    );
    assert_eq!(inv.refunded_krw, inv.approved_krw - inv.ridden_fares_krw);
    let taxis = s.get("/taxis").await.unwrap();
    assert!(
        !taxis.text.contains("Available"),
        "all ten taxis are busy: {}",
        taxis.text
    );
}

/// Re-deliver every event the broker delivered 1–5 more times, concurrently and in a
/// shuffled order, straight to each subscriber (binary mode), as an at-least-once,
/// unordered Kafka broker may. Nothing may change: the invariants hold and every view is
/// the same as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_event_delivered_one_to_five_times_concurrently_in_shuffled_order_changes_nothing() {
    let s = Saga::start().await.unwrap();
    for i in 0..3 {
        s.register_taxi(&format!("서울95타95{i:02}"), 37.556, 126.972)
            .await
            .unwrap();
    }
    let mut ids = Vec::new();
    for i in 0..6 {
        let destination = if i == 5 { busan() } else { gangnam() };
        let a = s
            .request_grab_to(&format!("010-6000-{i:04}"), destination)
            .await
            .unwrap();
        let id = match a.status {
            201 => id_of(&a),
            _ => {
                let l = s
                    .get(&format!("/grabs?phoneNumber=010-6000-{i:04}"))
                    .await
                    .unwrap();
                l.body[0]["id"].as_str().unwrap().to_owned()
            }
        };
        ids.push(id);
    }
    settle(&s, &ids).await;
    s.rider("010-6000-0000")
        .delete(&format!("/grabs/{}", ids[0]))
        .await
        .unwrap();
    settle(&s, &ids).await;
    let mut before = Vec::new();
    for id in &ids {
        before.push(s.get(&format!("/grabStatuses/{id}")).await.unwrap().body);
    }

    let events = s
        .get("/broker/events?status=delivered&limit=500")
        .await
        .unwrap();
    let mut deliveries = Vec::new();
    for (n, ev) in events.body.as_array().unwrap().iter().enumerate() {
        let (headers, body) = logged_as_binary(ev);
        for d in ev["deliveries"].as_array().unwrap() {
            let path = d["subscriber"]
                .as_str()
                .unwrap()
                .split(".spin.internal")
                .nth(1)
                .unwrap()
                .to_owned();
            // 1–5 copies, deterministic per event so a failure reproduces.
            for _ in 0..(1 + (n * 7 + path.len()) % 5) {
                deliveries.push((path.clone(), headers.clone(), body.clone()));
            }
        }
    }
    assert!(
        deliveries.len() > 30,
        "enough deliveries to shuffle: {}",
        deliveries.len()
    );
    // A fixed permutation (multiplicative stride) scatters each ride's events.
    let len = deliveries.len();
    let stride = (1..len)
        .rev()
        .find(|k| gcd(*k, len) == 1 && *k > len / 3)
        .unwrap_or(1);
    let shuffled: Vec<_> = (0..len)
        .map(|i| deliveries[(i * stride) % len].clone())
        .collect();
    let shuffled_paths: Vec<String> = shuffled.iter().map(|(p, _, _)| p.clone()).collect();
    let answers = futures::stream::iter(shuffled)
        .map(|(path, headers, body)| {
            let s = &s;
            async move {
                let h: Vec<(&str, &str)> = headers
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                s.post_raw(&path, &body, &h).await.unwrap()
            }
        })
        .buffered(8)
        .collect::<Vec<_>>()
        .await;
    for a in &answers {
        assert!(
            (200..300).contains(&a.status),
            "a redelivery is accepted: {} {}",
            a.status,
            a.text
        );
    }
    // Every consumer recognises a redelivery from its inbox and says so.
    for consumer in ["grab", "pay", "allocate", "grab-status"] {
        let path = format!("/events/{consumer}");
        let seen: Vec<&str> = answers
            .iter()
            .zip(shuffled_paths.iter())
            .filter(|(_, p)| **p == path)
            .map(|(a, _)| a.header("htaxi-outcome").unwrap_or("-"))
            .collect();
        assert!(!seen.is_empty(), "{consumer} got redeliveries");
        assert!(
            seen.contains(&"duplicate"),
            "{consumer} answers htaxi-outcome: duplicate on a redelivery: {seen:?}"
        );
    }
    s.flush_all().await.unwrap();
    settle(&s, &ids).await;
    for (id, was) in ids.iter().zip(before) {
        let now = s.get(&format!("/grabStatuses/{id}")).await.unwrap().body;
        assert_eq!(now, was, "redeliveries changed the view of {id}");
    }
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}
