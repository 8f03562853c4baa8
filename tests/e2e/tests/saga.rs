//! The ride saga end to end (DESIGN.md §3) on the real components over HTTP:
//! grab → pay → allocate → grab-status, with cancel and compensation.

use e2e::*;
use serde_json::{json, Value};
use spin_host::{Fault, FaultSpec};

const PHONE: &str = "010-1234-5678";

fn is(field: &'static str, want: &'static str) -> impl Fn(&Value) -> bool {
    move |v| v[field] == json!(want)
}

async fn taxi_near_seoul_station(s: &Saga, num: &str) -> String {
    s.register_taxi(num, 37.5560, 126.9720).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_paid_grab_gets_the_nearest_taxi_and_the_ride_starts() {
    let s = Saga::start().await.unwrap();
    let far = s
        .register_taxi("서울11가1111", 37.60, 127.05)
        .await
        .unwrap();
    let near = taxi_near_seoul_station(&s, "서울32저4703").await;

    let quote = s.quote(PHONE, gangnam()).await.unwrap();
    let a = s
        .rider(PHONE)
        .post_with(
            &grab_path(),
            &grab_body(PHONE, &quote),
            &[("x-correlation-id", "ride-happy-1")],
        )
        .await
        .unwrap();
    assert_eq!(a.status, 201, "{}", a.text);
    let id = a.body["id"].as_str().unwrap().to_owned();
    assert_eq!(a.header("location"), Some(format!("/grabs/{id}").as_str()));
    assert_eq!(a.header("x-correlation-id"), Some("ride-happy-1"));
    // Paid at least; allocation may already have been folded in by the time grab answers.
    let status = a.body["grabStatus"].as_str().unwrap_or_default();
    assert!(["Paid", "Allocated"].contains(&status), "{}", a.text);
    assert!(a.body["paymentId"].is_string(), "{}", a.text);

    let view = s
        .status_until(&id, "taxi allocated and payment seen", |v| {
            // Triggers deliver independently: the view converges, in any order.
            v["allocationStatus"] == json!("Allocated") && v["paymentStatus"] == json!("Approved")
        })
        .await
        .unwrap();
    assert_eq!(
        view["taxiId"],
        json!(near),
        "the nearest taxi wins over {far}"
    );
    assert_eq!(view["taxiNum"], json!("서울32저4703"));
    assert_eq!(view["paymentStatus"], json!("Approved"));
    assert_eq!(
        view["correlationId"],
        json!("ride-happy-1"),
        "correlation id travels with every event"
    );

    let alloc = s.allocation_of(&id).await.unwrap();
    let started = s.start_ride(&alloc).await.unwrap();
    assert_eq!(started.status, 200, "{}", started.text);

    let view = s
        .status_until(&id, "ride started", is("grabStatus", "RideStarted"))
        .await
        .unwrap();
    assert_eq!(view["allocationStatus"], json!("RideStarted"));
    let grab = s.get(&format!("/grabs/{id}")).await.unwrap();
    assert_eq!(grab.body["grabStatus"], json!("RideStarted"));
    s.converged(&[id]).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_completed_ride_keeps_the_fare_and_frees_the_taxi_for_the_next_rider() {
    let s = Saga::start().await.unwrap();
    let taxi = taxi_near_seoul_station(&s, "서울50마5000").await;
    let first = s.request_grab(PHONE).await.unwrap();
    assert_eq!(first.status, 201, "{}", first.text);
    let id = first.body["id"].as_str().unwrap().to_owned();
    let alloc = s.allocation_of(&id).await.unwrap();
    let alloc_id = alloc["allocationId"].as_str().unwrap().to_owned();
    let complete = format!("/allocations/{alloc_id}/complete");

    let early = s
        .driver_of(&alloc)
        .post_raw(&complete, b"", &[])
        .await
        .unwrap();
    early.assert_problem(409);
    let accept = format!("/allocations/{alloc_id}/accept");
    assert_eq!(s.start_ride(&alloc).await.unwrap().status, 200);
    for _ in 0..2 {
        let done = s
            .driver_of(&alloc)
            .post_raw(&complete, b"", &[])
            .await
            .unwrap();
        assert_eq!(
            done.status, 200,
            "completing twice is one drop-off: {}",
            done.text
        );
        assert_eq!(done.body["status"], json!("Completed"));
    }
    s.driver_of(&alloc)
        .post_raw(&accept, b"", &[])
        .await
        .unwrap()
        .assert_problem(409);
    assert_eq!(
        s.get(&format!("/taxis/{taxi}")).await.unwrap().body["status"],
        json!("Available")
    );
    let view = s
        .status_until(&id, "ride completed", is("grabStatus", "Completed"))
        .await
        .unwrap();
    assert_eq!(view["allocationStatus"], json!("Completed"));
    assert_eq!(
        view["paymentStatus"],
        json!("Approved"),
        "the fare stays charged"
    );
    s.grab_until(&id, "Completed").await.unwrap();
    let cancel = s
        .rider(PHONE)
        .delete(&format!("/grabs/{id}"))
        .await
        .unwrap();
    cancel.assert_problem(409);

    // The same taxi takes the next rider.
    let second = s.request_grab("010-4444-5555").await.unwrap();
    assert_eq!(second.status, 201, "{}", second.text);
    let next = second.body["id"].as_str().unwrap().to_owned();
    let alloc = s.allocation_of(&next).await.unwrap();
    assert_eq!(alloc["taxiId"], json!(taxi));
    s.converged(&[id, next]).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fare_over_the_payment_limit_is_rejected_with_402() {
    let s = Saga::start().await.unwrap();
    taxi_near_seoul_station(&s, "서울10바1000").await;
    let a = s.request_grab_to(PHONE, busan()).await.unwrap();
    a.assert_problem(402);
    let grabs = s.get(&format!("/grabs?phoneNumber={PHONE}")).await.unwrap();
    let list = grabs
        .body
        .as_array()
        .cloned()
        .unwrap_or_else(|| grabs.body["grabs"].as_array().cloned().unwrap_or_default());
    assert_eq!(list.len(), 1);
    let id = list[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(list[0]["grabStatus"], json!("Rejected"));
    let view = s
        .status_until(&id, "rejection visible", is("paymentStatus", "Rejected"))
        .await
        .unwrap();
    assert_eq!(view["grabStatus"], json!("Rejected"));
    let taxis = s.get("/taxis").await.unwrap();
    assert!(
        taxis.text.contains("Available"),
        "no taxi was taken: {}",
        taxis.text
    );
    s.converged(&[id]).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_no_taxi_available_the_rider_is_refunded_and_the_grab_fails() {
    let s = Saga::start().await.unwrap();
    let a = s.request_grab(PHONE).await.unwrap();
    assert_eq!(a.status, 201, "{}", a.text);
    let id = a.body["id"].as_str().unwrap().to_owned();
    // allocate's failure and pay's refund reach the view from two producers, in either
    // order (the clean-clone CI saw the refund first): wait for both.
    let view = s
        .status_until(&id, "allocation failed and refunded", |v| {
            v["allocationStatus"] == json!("Failed") && v["paymentStatus"] == json!("Refunded")
        })
        .await
        .unwrap();
    assert_eq!(view["grabStatus"], json!("Failed"));
    s.grab_until(&id, "Failed").await.unwrap();
    s.converged(&[id]).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancelling_before_allocation_refunds_and_never_allocates() {
    let s = Saga::start().await.unwrap();
    let taxi = taxi_near_seoul_station(&s, "서울20나2000").await;
    // allocate is unreachable for now: PaymentApproved waits in the broker's retries.
    let f = s.fault(FaultSpec {
        component: "allocate".into(),
        fault: Fault::Respond { status: 503 },
        count: None,
    });
    let a = s.request_grab(PHONE).await.unwrap();
    assert_eq!(a.status, 201, "{}", a.text);
    let id = a.body["id"].as_str().unwrap().to_owned();
    let d = s
        .rider(PHONE)
        .delete(&format!("/grabs/{id}"))
        .await
        .unwrap();
    assert_eq!(d.status, 204, "{}", d.text);
    s.status_until(&id, "refund after cancel", is("paymentStatus", "Refunded"))
        .await
        .unwrap();
    // allocate comes back and sees PaymentApproved and GrabCancelled in whatever order.
    s.app().faults().clear(f);
    let view = s
        .status_until(&id, "cancelled view", is("grabStatus", "Cancelled"))
        .await
        .unwrap();
    // Whichever event allocate saw first, the taxi ends up free once both are delivered.
    let path = format!("/taxis/{taxi}");
    let _ = s
        .eventually(
            "the taxi free again",
            std::time::Duration::from_secs(20),
            || async {
                let t = s.get(&path).await?;
                Ok((t.body["status"] == json!("Available")).then_some(()))
            },
        )
        .await;
    let t = s.get(&path).await.unwrap();
    assert_eq!(
        t.body["status"],
        json!("Available"),
        "taxi never taken: {}",
        t.text
    );
    assert_ne!(view["allocationStatus"], json!("Allocated"));
    s.converged(&[id]).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancelling_after_allocation_refunds_and_releases_the_taxi() {
    let s = Saga::start().await.unwrap();
    let taxi = taxi_near_seoul_station(&s, "서울30다3000").await;
    let a = s.request_grab(PHONE).await.unwrap();
    let id = a.body["id"].as_str().unwrap().to_owned();
    s.status_until(&id, "allocated", is("allocationStatus", "Allocated"))
        .await
        .unwrap();
    let d = s
        .rider(PHONE)
        .delete(&format!("/grabs/{id}"))
        .await
        .unwrap();
    assert_eq!(d.status, 204, "{}", d.text);
    let view = s
        .status_until(&id, "released and refunded", |v| {
            v["allocationStatus"] == json!("Cancelled") && v["paymentStatus"] == json!("Refunded")
        })
        .await
        .unwrap();
    assert_eq!(view["paymentStatus"], json!("Refunded"));
    assert_eq!(view["grabStatus"], json!("Cancelled"));
    let t = s.get(&format!("/taxis/{taxi}")).await.unwrap();
    assert_eq!(t.body["status"], json!("Available"), "{}", t.text);
    // Cancelling again is harmless.
    assert_eq!(
        s.rider(PHONE)
            .delete(&format!("/grabs/{id}"))
            .await
            .unwrap()
            .status,
        204
    );
    s.converged(&[id]).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancelling_after_the_ride_started_is_refused_with_409() {
    let s = Saga::start().await.unwrap();
    taxi_near_seoul_station(&s, "서울40라4000").await;
    let a = s.request_grab(PHONE).await.unwrap();
    let id = a.body["id"].as_str().unwrap().to_owned();
    s.status_until(&id, "allocated", is("allocationStatus", "Allocated"))
        .await
        .unwrap();
    let alloc = s.allocation_of(&id).await.unwrap();
    assert_eq!(s.start_ride(&alloc).await.unwrap().status, 200);
    s.grab_until(&id, "RideStarted").await.unwrap();
    s.rider(PHONE)
        .delete(&format!("/grabs/{id}"))
        .await
        .unwrap()
        .assert_problem(409);
    let view = s
        .status_until(&id, "ride started", is("grabStatus", "RideStarted"))
        .await
        .unwrap();
    assert_eq!(
        view["paymentStatus"],
        json!("Approved"),
        "no refund after a refused cancel"
    );
    s.converged(&[id]).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cloudevents_injected_in_binary_and_structured_mode_drive_the_saga() {
    let s = Saga::start().await.unwrap();
    let taxi = taxi_near_seoul_station(&s, "서울50마5000").await;
    let grab = uuid();
    let payment = uuid();
    let data = json!({
        "paymentId": payment, "grabId": grab, "amount": 11000, "phoneNumber": "010-9999-0000",
        "startingPoint": {"lat": 37.5547, "lng": 126.9707}, "destination": {"lat": 37.5, "lng": 127.0},
        "approvedAt": "2026-11-25T10:00:00Z"
    });
    // Structured mode into the broker: it fans out to allocate and grab-status.
    let body = structured_event(
        "htaxi.PaymentApproved",
        &format!("PaymentApproved:{payment}"),
        "/htaxi/pay",
        &grab,
        &data,
    );
    let a = s
        .post_raw(
            "/broker",
            &body,
            &[("content-type", "application/cloudevents+json")],
        )
        .await
        .unwrap();
    assert!(
        a.status == 202 || a.status == 200,
        "{} {}",
        a.status,
        a.text
    );
    let view = s
        .status_until(
            &grab,
            "allocated from an injected event",
            is("allocationStatus", "Allocated"),
        )
        .await
        .unwrap();
    assert_eq!(view["taxiId"], json!(taxi));

    // Binary mode straight to a subscriber; a duplicate changes nothing.
    let (headers, body) = grab_requested_event(&grab, "010-9999-0000");
    let h: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    for want in ["applied", "duplicate"] {
        let a = s.post_raw("/events/grab-status", &body, &h).await.unwrap();
        assert_eq!(a.status, 204, "{}", a.text);
        assert_eq!(a.text, "", "an event reply carries no body");
        assert_eq!(a.header("htaxi-outcome"), Some(want));
    }
    let view = s
        .status_until(&grab, "requested facts merged", |v| {
            v["phoneNumber"] == json!("010-9999-0000")
        })
        .await
        .unwrap();
    assert_eq!(
        view["allocationStatus"],
        json!("Allocated"),
        "an earlier fact is not undone"
    );
    let events = view["events"].as_array().map(Vec::len).unwrap_or(0);
    let again = s.post_raw("/events/grab-status", &body, &h).await.unwrap();
    assert_eq!(again.header("htaxi-outcome"), Some("duplicate"));
    let view2 = s.get(&format!("/grabStatuses/{grab}")).await.unwrap().body;
    assert_eq!(
        view2["events"].as_array().map(Vec::len).unwrap_or(0),
        events,
        "duplicates change nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rider_who_sends_a_made_up_fare_is_charged_the_quote() {
    let s = Saga::start().await.unwrap();
    taxi_near_seoul_station(&s, "서울13다1300").await;
    let quote = s.quote(PHONE, gangnam()).await.unwrap();
    let fare = quote["fare"].as_i64().unwrap();
    // Seoul Station to Gangnam: about 8 km straight, 10.4 km by road, priced by the tariff.
    assert!((10_000..=15_000).contains(&fare), "{quote}");
    assert_eq!(fare % 100, 0, "rounded to 100 KRW");
    assert!(quote["roadMeters"].as_u64() > quote["straightLineMeters"].as_u64());
    assert!(quote["expiresAt"].is_string() && quote["quoteId"].is_string());

    let mut body = grab_body(PHONE, &quote);
    body["estimatedFee"] = json!(1);
    let a = s.rider(PHONE).post(&grab_path(), &body).await.unwrap();
    assert_eq!(a.status, 201, "{}", a.text);
    assert_eq!(a.body["fare"], json!(fare), "{}", a.text);
    assert_eq!(a.body["quoteId"], quote["quoteId"]);
    let id = a.body["id"].as_str().unwrap().to_owned();
    let view = s
        .status_until(&id, "payment visible", is("paymentStatus", "Approved"))
        .await
        .unwrap();
    assert_eq!(view["fare"], json!(fare), "the view shows the fare");
    assert_eq!(
        view["amount"],
        json!(fare),
        "pay charged the quote, not 1 KRW"
    );
    let inv = s.converged(std::slice::from_ref(&id)).await.unwrap();
    assert_eq!(inv.approved_krw, fare);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unknown_expired_or_foreign_quote_is_refused_and_stores_nothing() {
    let s = Saga::start_with(vec![("fare_quote_ttl_secs", "1")])
        .await
        .unwrap();
    taxi_near_seoul_station(&s, "서울14라1400").await;
    let mine = s.quote(PHONE, gangnam()).await.unwrap();
    let theirs = s.quote("010-9999-0000", gangnam()).await.unwrap();
    let unknown =
        json!({"quoteId": uuid(), "startingPoint": seoul_station(), "destination": gangnam()});
    for (quote, why) in [(&theirs, "another rider's"), (&unknown, "never issued")] {
        let a = s
            .rider(PHONE)
            .post(&grab_path(), &grab_body(PHONE, quote))
            .await
            .unwrap();
        a.assert_problem(422);
        assert_eq!(a.body["field"], json!("quoteId"), "{why}: {}", a.text);
    }
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let late = s
        .rider(PHONE)
        .post(&grab_path(), &grab_body(PHONE, &mine))
        .await
        .unwrap();
    late.assert_problem(422);
    assert!(late.text.contains("expired"), "{}", late.text);
    let grabs = s.get(&format!("/grabs?phoneNumber={PHONE}")).await.unwrap();
    assert_eq!(grabs.body, json!([]), "nothing stored: {}", grabs.text);
    let events = s.get("/broker/events").await.unwrap();
    assert_eq!(events.body, json!([]), "nothing emitted: {}", events.text);
}
