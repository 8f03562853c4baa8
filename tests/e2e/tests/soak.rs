//! A bounded soak (loopback only): a few thousand sagas — rides, rejections, cancels,
//! accepts and taxi shortages — through the real components, ending with the invariants
//! holding. Prints sagas/s, p50/p99 end-to-end latency and peak memory; asserts no timing.
//! `SOAK_SAGAS` (default 2000) and `SOAK_CONCURRENCY` (default 16) size it.

use e2e::*;
use futures::stream::{self, StreamExt};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

/// One rider's saga; returns (grab id, end-to-end latency until a stable view).
async fn ride(s: &Saga, i: usize) -> (String, Duration) {
    let t = Instant::now();
    // Every 10th fare is over the payment limit (rejected); every 7th rider cancels.
    let destination = if i % 10 == 3 { busan() } else { gangnam() };
    let phone = format!("010-7{:03}-{:04}", i / 10_000, i % 10_000);
    let quote = s.quote(&phone, destination).await.unwrap();
    let mut body = grab_body(&phone, &quote);
    // Some riders still send a fare of their own: it is ignored, the quote is charged.
    if i % 4 == 2 {
        body["estimatedFee"] = serde_json::json!(1);
    }
    let corr = format!("soak-{i}");
    // Every 5th rider taps twice at once with one Idempotency-Key (a phone retrying on a
    // slow network) and retries once more after the answer: still one ride, one charge.
    let key = format!("soak-key-{i}");
    let keyed = i % 5 == 1;
    let mut headers = vec![("x-correlation-id", corr.as_str())];
    if keyed {
        headers.push(("idempotency-key", key.as_str()));
    }
    let path = grab_path();
    let rider = s.rider(&phone);
    let post = || rider.post_with(&path, &body, &headers);
    let a = if keyed {
        let (x, y) = futures::join!(post(), post());
        let (x, y) = (x.unwrap(), y.unwrap());
        let ran = |a: &Answer| a.status != 409 && a.header("idempotent-replayed").is_none();
        // A 5xx releases the key, so a tap arriving after it runs anew.
        assert!(
            ran(&x) != ran(&y) || x.status >= 500 || y.status >= 500,
            "saga {i}: exactly one of two same-key taps runs: {} / {}",
            x.text,
            y.text
        );
        let (first, other) = if ran(&x) { (x, y) } else { (y, x) };
        if other.status != 409 && first.status < 500 {
            assert_eq!(
                other.body, first.body,
                "saga {i}: a replay is the same answer"
            );
        }
        if first.status < 500 {
            let again = post().await.unwrap();
            assert_eq!(again.status, first.status, "saga {i}: {}", again.text);
            assert_eq!(again.header("idempotent-replayed"), Some("true"));
        }
        first
    } else {
        post().await.unwrap()
    };
    let id = match a.status {
        201 => a.body["id"].as_str().unwrap().to_owned(),
        // 402: over the limit. 503: pay stayed too slow under the load; the grab is Failed
        // and compensated. Both are stable outcomes the invariants cover.
        402 | 503 => {
            let list = s.get(&format!("/grabs?phoneNumber={phone}")).await.unwrap();
            let g = list
                .body
                .as_array()
                .cloned()
                .unwrap_or_else(|| list.body["grabs"].as_array().cloned().unwrap_or_default());
            assert!(
                !keyed || a.status >= 500 || g.len() == 1,
                "saga {i}: one grab per key"
            );
            return (g[0]["id"].as_str().unwrap().to_owned(), t.elapsed());
        }
        other => panic!("grab {i}: {other} {}", a.text),
    };
    if i.is_multiple_of(7) {
        let d = s
            .rider(&phone)
            .delete(&format!("/grabs/{id}"))
            .await
            .unwrap();
        assert!(d.status == 204 || d.status == 409, "{}", d.text);
    }
    // Wait for a stable view, answering offers as drivers do: the first driver offered
    // every 6th ride declines it, the first offered every 6th+3 ride lets it expire (the
    // tick sweeps it), every other offer is accepted. Drivers pick up every 3rd allocated
    // ride and drop off every other started one, which frees the taxi for a later rider.
    let (mut picked_up, mut completed) = (false, false);
    let mut answered: Vec<String> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut polls = 0u32;
    loop {
        polls += 1;
        // Once a second, what the PingSource does: allocate's tick sweeps expired offers.
        if polls.is_multiple_of(40) {
            s.post_raw("/outbox/flush/allocate", b"", &[])
                .await
                .unwrap();
        }
        let v = s.get(&format!("/grabStatuses/{id}")).await.unwrap();
        let st = v.body["grabStatus"].as_str().unwrap_or("").to_owned();
        let offer = v.body["allocationId"].as_str().unwrap_or("").to_owned();
        if st == "Paid"
            && v.body["allocationStatus"] == json!("Offered")
            && !answered.contains(&offer)
        {
            let first = v.body["offerNumber"] == json!(1);
            let step = match i % 6 {
                0 if first => Some("decline"),
                3 if first => None,
                _ => Some("accept"),
            };
            answered.push(offer.clone());
            if let Some(step) = step {
                let r = s
                    .driver_of(&v.body)
                    .post_raw(&format!("/allocations/{offer}/{step}"), b"", &[])
                    .await
                    .unwrap();
                // 409: the offer expired, or the rider's cancel withdrew it, first.
                assert!(r.status == 200 || r.status == 409, "{}", r.text);
                continue;
            }
        }
        if st == "Allocated" && i.is_multiple_of(3) && !picked_up {
            if let Some(alloc) = v.body["allocationId"].as_str() {
                let r = s
                    .driver_of(&v.body)
                    .post_raw(&format!("/allocations/{alloc}/pickup"), b"", &[])
                    .await
                    .unwrap();
                assert!(r.status == 200 || r.status == 409, "{}", r.text);
                picked_up = true;
                continue;
            }
        }
        if st == "RideStarted" && i.is_multiple_of(2) && !completed {
            if let Some(alloc) = v.body["allocationId"].as_str() {
                let r = s
                    .driver_of(&v.body)
                    .post_raw(&format!("/allocations/{alloc}/complete"), b"", &[])
                    .await
                    .unwrap();
                // 409: the rider's cancel reached allocate first.
                assert!(r.status == 200 || r.status == 409, "{}", r.text);
                completed = true;
                continue;
            }
        }
        let done = matches!(st.as_str(), "Completed" | "Rejected" | "Failed")
            || (st == "RideStarted" && !i.is_multiple_of(2))
            || (st == "Cancelled" && v.body["paymentStatus"] == json!("Refunded"))
            || (st == "Allocated" && !i.is_multiple_of(3));
        if done {
            return (id, t.elapsed());
        }
        assert!(
            Instant::now() < deadline,
            "saga {i} ({id}) stuck at {}",
            v.text
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn soak_thousands_of_sagas_keep_the_invariants() {
    let n = env_or("SOAK_SAGAS", 2000);
    let conc = env_or("SOAK_CONCURRENCY", 16);
    // Offers expire after a second; the harness's drivers are stopped: riders' drivers
    // answer in `ride`.
    let mut s = Saga::start_with(vec![("pay_timeout_ms", "5000"), ("offer_ttl_secs", "1")])
        .await
        .unwrap();
    s.answer_offers_myself().await;
    // Enough taxis for most, not all: late riders meet a shortage and are refunded.
    let taxis = n / 3;
    stream::iter(0..taxis)
        .for_each_concurrent(conc, |i| {
            let s = &s;
            async move {
                let (lat, lng) = (
                    37.50 + (i % 40) as f64 * 0.002,
                    126.95 + (i / 40) as f64 * 0.002,
                );
                s.register_taxi(
                    &format!("서울{:02}소{:04}", i / 10_000, i % 10_000),
                    lat,
                    lng,
                )
                .await
                .unwrap();
            }
        })
        .await;

    let start = Instant::now();
    let results: Vec<(String, Duration)> = stream::iter(0..n)
        .map(|i| ride(&s, i))
        .buffer_unordered(conc)
        .collect()
        .await;
    let elapsed = start.elapsed();
    let ids: Vec<String> = results.iter().map(|(id, _)| id.clone()).collect();

    s.flush_all().await.unwrap();
    let settled = s
        .eventually(
            "invariants after the soak",
            Duration::from_secs(120),
            || async { Ok(s.check_invariants(&ids).await.ok()) },
        )
        .await;
    let inv = match settled {
        Ok(inv) => inv,
        Err(_) => panic!("{:#}", s.check_invariants(&ids).await.unwrap_err()),
    };
    let dead: Vec<Value> = s.dead_letters().await.unwrap();

    let mut lat: Vec<Duration> = results.iter().map(|(_, d)| *d).collect();
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    println!("soak: {n} sagas, {taxis} taxis, concurrency {conc}");
    println!(
        "soak: {:.1} sagas/s over {:.1?}",
        n as f64 / elapsed.as_secs_f64(),
        elapsed
    );
    println!(
        "soak: end-to-end latency p50 {:?} p99 {:?} max {:?}",
        pct(0.50),
        pct(0.99),
        lat[lat.len() - 1]
    );
    println!(
        "soak: peak memory (test process incl. host) {:.0} MiB",
        peak_rss_mib()
    );
    println!("soak: outcomes {:?}; approved {} KRW, refunded {} KRW, fares of allocated, started and completed rides {} KRW; dead letters {}", inv.by_status, inv.approved_krw, inv.refunded_krw, inv.ridden_fares_krw, dead.len());
    assert!(
        dead.is_empty(),
        "no event should be dead-lettered in a healthy run: {dead:?}"
    );
    assert_eq!(inv.grabs, n);
}
