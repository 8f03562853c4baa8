//! The published event contract (docs/events/) holds both ways: every event the components
//! emit in the saga validates against it (so the document cannot drift), the consumers
//! accept what it allows and refuse what it forbids, and events produced by the official
//! Python CloudEvents SDK, in binary and structured mode, are accepted, deduplicated and
//! converge out of order.

use e2e::contract::{broker_events, python_sdk_encode, schema_files, Contract};
use e2e::deliver::header_refs;
use e2e::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;

fn id_of(a: &Answer) -> String {
    a.body["id"].as_str().expect("grab id").to_owned()
}

#[test]
fn the_contract_defines_every_event_type_with_a_schema_and_every_subscription_its_triggers_make() {
    let contract = Contract::load().unwrap();
    let files: BTreeSet<String> = schema_files()
        .unwrap()
        .into_keys()
        .filter(|n| n != "common")
        .map(|n| format!("htaxi.{n}"))
        .collect();
    assert_eq!(contract.types(), files, "one schema file per message");
    assert_eq!(contract.types().len(), 11, "the whole catalogue");

    // The subscriber channels are exactly the Trigger manifests the broker reads.
    let dir = repo_root().join("knative/base/eventing");
    let mut triggers = BTreeSet::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        let doc: Value = serde_norway::from_str(&text).unwrap();
        if doc["kind"] == "Trigger" {
            triggers.insert((
                doc["spec"]["subscriber"]["uri"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
                doc["spec"]["filter"]["attributes"]["type"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            ));
        }
    }
    assert_eq!(contract.subscriptions(), triggers);
}

/// Four rides cover the catalogue: one completed, one cancelled after allocation, one
/// with no taxi in reach, one over the payment limit. Every event the broker logged is
/// checked against the contract, and every type must have been seen.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_event_the_components_emit_in_the_saga_matches_the_published_contract() {
    let contract = Contract::load().unwrap();
    let s = Saga::start().await.unwrap();
    s.register_taxi("서울32저4703", 37.5560, 126.9720)
        .await
        .unwrap();

    let done = id_of(&s.request_grab("010-1000-0001").await.unwrap());
    let alloc = s.allocation_of(&done).await.unwrap();
    s.accept_and_complete(&alloc).await.unwrap();
    s.status_until(&done, "completed", |v| {
        v["grabStatus"] == json!("Completed")
    })
    .await
    .unwrap();

    let cancelled = id_of(&s.request_grab("010-1000-0002").await.unwrap());
    s.allocation_of(&cancelled).await.unwrap();
    assert_eq!(
        s.rider("010-1000-0002")
            .delete(&format!("/grabs/{cancelled}"))
            .await
            .unwrap()
            .status,
        204
    );
    s.status_until(&cancelled, "cancelled and released", |v| {
        v["allocationStatus"] == json!("Cancelled") && v["paymentStatus"] == json!("Refunded")
    })
    .await
    .unwrap();

    // Busan: no taxi within the allocation radius.
    let busan_trip = s
        .quote_trip(
            "010-1000-0003",
            busan(),
            json!({"lat": 35.1796, "lng": 129.0756, "name": "Busan City Hall"}),
        )
        .await
        .unwrap();
    let far = grab_body("010-1000-0003", &busan_trip);
    let failed = id_of(
        &s.rider("010-1000-0003")
            .post(&grab_path(), &far)
            .await
            .unwrap(),
    );
    s.status_until(&failed, "failed and refunded", |v| {
        v["allocationStatus"] == json!("Failed") && v["paymentStatus"] == json!("Refunded")
    })
    .await
    .unwrap();

    let rejected = s.request_grab_to("010-1000-0004", busan()).await.unwrap();
    assert_eq!(rejected.status, 402, "{}", rejected.text);
    s.flush_all().await.unwrap();

    let events = broker_events(&s).await.unwrap();
    let mut seen = BTreeSet::new();
    let mut problems = Vec::new();
    for ev in &events {
        let attributes = ev["attributes"].as_object().expect("attributes");
        problems.extend(contract.check(attributes, &ev["data"]));
        seen.insert(attributes["type"].as_str().unwrap().to_owned());
    }
    assert!(problems.is_empty(), "{problems:#?}");
    assert_eq!(
        seen,
        contract.types(),
        "the rides emit every type of the catalogue"
    );
}

/// What the schema allows (the catalogue's fields only, no `...At`, extra fields) is
/// accepted by every consumer of the type; what it forbids is a 400 and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn consumers_accept_what_the_contract_allows_and_refuse_what_it_forbids() {
    let contract = Contract::load().unwrap();
    let s = Saga::start().await.unwrap();
    let (grab, taxi, alloc) = (uuid(), uuid(), uuid());
    let allowed = json!({"allocationId": alloc, "grabId": grab, "taxiId": taxi,
                         "taxiNum": "서울32저4703", "rating": 5});
    assert!(contract.data_is_valid("htaxi.RideStarted", &allowed));
    let mut forbidden = allowed.clone();
    forbidden["taxiId"] = json!(42);
    assert!(!contract.data_is_valid("htaxi.RideStarted", &forbidden));

    for path in ["/events/grab-status", "/events/notify", "/events/grab"] {
        let (mut headers, body) = binary_event(
            "htaxi.RideStarted",
            &format!("RideStarted:{alloc}"),
            "/htaxi/allocate",
            &grab,
            &forbidden,
        );
        s.post_raw(path, &body, &header_refs(&headers))
            .await
            .unwrap()
            .assert_problem(400);

        // The same id with allowed data is new: the poison left no inbox row behind.
        headers.retain(|(k, _)| k != "content-type");
        let body = serde_json::to_vec(&allowed).unwrap();
        let a = s
            .post_raw(path, &body, &header_refs(&headers))
            .await
            .unwrap();
        assert!(
            (200..300).contains(&a.status),
            "{path} takes binary mode without Content-Type and without startedAt: {} {}",
            a.status,
            a.text
        );
    }
    let view = s.get(&format!("/grabStatuses/{grab}")).await.unwrap();
    assert_eq!(
        view.body["allocationStatus"],
        json!("RideStarted"),
        "{}",
        view.text
    );
}

/// The catalogue's example ride, as a Python team would publish it with the official SDK:
/// only the fields the schemas require (the `...At` timestamps come from the SDK's `time`).
fn sdk_ride(mode: &str, phone: &str) -> (String, String, Vec<(&'static str, Value, Value)>) {
    let (grab, payment, alloc, taxi) = (uuid(), uuid(), uuid(), uuid());
    let seoul = json!({"lat": 37.5547, "lng": 126.9707, "name": "Seoul Station"});
    let gangnam = json!({"lat": 37.4979, "lng": 127.0276, "name": "Gangnam Station"});
    let facts = [
        (
            "GrabRequested",
            "grab",
            grab.clone(),
            json!({"grabId": grab, "phoneNumber": phone, "startingPoint": seoul,
                "destination": gangnam, "estimatedFee": 15000}),
        ),
        (
            "PaymentApproved",
            "pay",
            payment.clone(),
            json!({"paymentId": payment, "grabId": grab, "amount": 15000, "phoneNumber": phone,
                "startingPoint": seoul, "destination": gangnam}),
        ),
        (
            "TaxiAllocated",
            "allocate",
            grab.clone(),
            json!({"allocationId": alloc, "grabId": grab, "taxiId": taxi,
                "taxiNum": "서울32저4703", "distanceMeters": 180}),
        ),
        (
            "RideStarted",
            "allocate",
            alloc.clone(),
            json!({"allocationId": alloc, "grabId": grab, "taxiId": taxi, "taxiNum": "서울32저4703"}),
        ),
        (
            "RideCompleted",
            "allocate",
            alloc.clone(),
            json!({"allocationId": alloc, "grabId": grab, "taxiId": taxi, "taxiNum": "서울32저4703"}),
        ),
    ];
    let items = facts
        .into_iter()
        .enumerate()
        .map(|(minute, (name, src, key, data))| {
            let attributes = json!({
                "type": format!("htaxi.{name}"), "source": format!("/htaxi/{src}"),
                "id": format!("{name}:{key}"), "subject": grab, "partitionkey": grab,
                "correlationid": format!("sdk-{mode}-{grab}"),
                "time": format!("2026-11-25T10:{minute:02}:00+09:00"),
            });
            (mode_static(mode), attributes, data)
        })
        .collect();
    (grab, taxi, items)
}

fn mode_static(mode: &str) -> &'static str {
    if mode == "binary" {
        "binary"
    } else {
        "structured"
    }
}

/// Which types each subscriber takes (from the contract), so every event goes only where a
/// Trigger would send it.
fn subscribers_of(contract: &Contract, ty: &str) -> Vec<String> {
    contract
        .subscriptions()
        .into_iter()
        .filter(|(_, t)| t == ty)
        .map(|(path, _)| path)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn python_sdk_events_in_both_modes_are_accepted_deduplicated_and_converge_out_of_order() {
    let contract = Contract::load().unwrap();
    let s = Saga::start().await.unwrap();
    for (mode, phone) in [("binary", "010-7000-0001"), ("structured", "010-7000-0002")] {
        let (grab, taxi, items) = sdk_ride(mode, phone);
        let messages = python_sdk_encode(&items).unwrap();
        // Newest fact first, each delivered twice: the second copy is a duplicate.
        for ((_, attributes, _), msg) in items.iter().zip(&messages).rev() {
            let ty = attributes["type"].as_str().unwrap();
            for path in subscribers_of(&contract, ty) {
                if path == "/events/allocate" || path == "/events/pay" || path == "/events/grab" {
                    // Their state machines hold real taxis and payments; the view and
                    // notify are the consumers a new team's ride lands in.
                    continue;
                }
                for copy in 0..2 {
                    let a = s
                        .post_raw(&path, &msg.body, &header_refs(&msg.headers))
                        .await
                        .unwrap();
                    assert_eq!(a.status, 204, "{mode} {ty} to {path}: {}", a.text);
                    let want = if copy == 0 { "applied" } else { "duplicate" };
                    assert_eq!(
                        a.header("htaxi-outcome"),
                        Some(want),
                        "{mode} {ty} to {path} copy {copy}"
                    );
                }
            }
        }
        let view = s.get(&format!("/grabStatuses/{grab}")).await.unwrap();
        assert_eq!(view.status, 200, "{}", view.text);
        assert_eq!(
            view.body["grabStatus"],
            json!("Completed"),
            "{mode}: {}",
            view.text
        );
        assert_eq!(view.body["paymentStatus"], json!("Approved"));
        assert_eq!(view.body["taxiNum"], json!("서울32저4703"));
        assert_eq!(
            view.body["correlationId"],
            json!(format!("sdk-{mode}-{grab}"))
        );

        let rider = s
            .get(&format!("/notifications?phoneNumber={phone}"))
            .await
            .unwrap();
        let kinds: Vec<&str> = rider
            .body
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["kind"].as_str().unwrap())
            .collect();
        assert_eq!(
            kinds,
            ["RideCompleted", "RideStarted", "TaxiAllocated"],
            "{mode}: {}",
            rider.text
        );
        assert!(
            rider.body[0]["message"]
                .as_str()
                .unwrap()
                .contains("15,000 KRW"),
            "the receipt names the fare: {}",
            rider.text
        );
        let driver = s
            .get(&format!("/notifications?taxiId={taxi}"))
            .await
            .unwrap();
        assert_eq!(driver.body.as_array().unwrap().len(), 1, "{}", driver.text);
        assert!(driver.body[0]["message"]
            .as_str()
            .unwrap()
            .contains("Seoul Station"));
    }
}
