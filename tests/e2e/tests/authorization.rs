//! Who may do what (README "Who may do what"), every cell: each public route × {no token,
//! expired, wrong signature, wrong audience, rider A, rider B, the taxi's driver, another
//! driver, operator} → the expected status. Every refused call runs before any allowed
//! write, and afterwards nothing has changed: no grab, taxi or allocation moved, no event
//! reached the broker.

use e2e::tokens::{Token, Who};
use e2e::*;
use serde_json::{json, Value};

const A: &str = "010-1111-2222";
const B: &str = "010-3333-4444";

/// The callers, in the order of every row's expectations.
fn callers(taxi: &str, other_taxi: &str) -> Vec<(&'static str, Option<String>)> {
    vec![
        ("no token", None),
        ("expired", Some(Token::new(Who::Operator).expired().sign())),
        (
            "wrong signature",
            Some(Token::new(Who::Operator).wrong_key().sign()),
        ),
        (
            "wrong audience",
            Some(Token::new(Who::Operator).audience("other-app").sign()),
        ),
        ("rider A", Some(tokens::mint(Who::Rider(A.into())))),
        ("rider B", Some(tokens::mint(Who::Rider(B.into())))),
        (
            "taxi's driver",
            Some(tokens::mint(Who::Driver(taxi.into()))),
        ),
        (
            "another driver",
            Some(tokens::mint(Who::Driver(other_taxi.into()))),
        ),
        ("operator", Some(tokens::mint(Who::Operator))),
    ]
}

/// One route and what each caller gets (0 = an allowed write, run after the refusals).
struct Row {
    method: reqwest::Method,
    path: String,
    body: Option<Value>,
    expect: [u16; 9],
}

fn row(method: &str, path: &str, body: Option<Value>, expect: [u16; 9]) -> Row {
    Row {
        method: reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
        path: path.to_owned(),
        body,
        expect,
    }
}

/// What must not move while refusals run: every list an operator sees, and the broker's log.
async fn snapshot(s: &Saga, grab: &str, alloc: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for p in [
        format!("/grabs?phoneNumber={A}"),
        format!("/grabs?phoneNumber={B}"),
        format!("/grabs/{grab}"),
        "/taxis".to_owned(),
        "/allocations".to_owned(),
        format!("/allocations/{alloc}"),
        format!("/payments?grabId={grab}"),
        "/grabStatuses".to_owned(),
        "/broker/events?limit=500".to_owned(),
    ] {
        let a = s.get(&p).await.unwrap();
        assert_eq!(a.status, 200, "{p}: {}", a.text);
        let mut body = a.body;
        // The view's and the grab's clocks are not state a refusal could change.
        strip(&mut body, "receivedAt");
        out.push(json!({ "path": p, "body": body }));
    }
    out
}

fn strip(v: &mut Value, key: &str) {
    match v {
        Value::Object(o) => {
            o.remove(key);
            o.values_mut().for_each(|x| strip(x, key));
        }
        Value::Array(a) => a.iter_mut().for_each(|x| strip(x, key)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_route_answers_each_caller_as_the_rules_table_says_and_refusals_change_nothing() {
    let s = Saga::start().await.unwrap();
    let taxi = s
        .register_taxi("서울12가3456", 37.5560, 126.9720)
        .await
        .unwrap();
    let other_taxi = uuid();
    let quote_a = s.quote(A, gangnam()).await.unwrap();
    let g = s.request_grab(A).await.unwrap();
    assert_eq!(g.status, 201, "{}", g.text);
    let grab = g.body["id"].as_str().unwrap().to_owned();
    let alloc = s.allocation_of(&grab).await.unwrap();
    let alloc_id = alloc["allocationId"].as_str().unwrap().to_owned();
    assert_eq!(alloc["taxiId"], json!(taxi));
    s.converged(std::slice::from_ref(&grab)).await.unwrap();

    const U: u16 = 401;
    let new_taxi = json!({"taxiNum": "서울99하9999", "location": {"lat": 37.6, "lng": 127.0}});
    let rows = vec![
        // grab
        row(
            "POST",
            "/grabs",
            Some(grab_body(A, &quote_a)),
            [U, U, U, U, 0, 403, 403, 403, 403],
        ),
        row(
            "POST",
            "/fares/quote",
            Some(json!({"startingPoint": seoul_station(), "destination": gangnam()})),
            [U, U, U, U, 201, 201, 403, 403, 403],
        ),
        row(
            "GET",
            &format!("/grabs?phoneNumber={A}"),
            None,
            [U, U, U, U, 200, 403, 403, 403, 200],
        ),
        row("GET", "/grabs", None, [U, U, U, U, 200, 200, 403, 403, 422]),
        row(
            "GET",
            &format!("/grabs/{grab}"),
            None,
            [U, U, U, U, 200, 404, 403, 403, 200],
        ),
        row(
            "DELETE",
            &format!("/grabs/{grab}"),
            None,
            [U, U, U, U, 0, 404, 403, 403, 403],
        ),
        // grab-status
        row(
            "GET",
            "/grabStatuses",
            None,
            [U, U, U, U, 200, 200, 403, 403, 200],
        ),
        row(
            "GET",
            &format!("/grabStatuses?phoneNumber={A}"),
            None,
            [U, U, U, U, 200, 403, 403, 403, 200],
        ),
        row(
            "GET",
            &format!("/grabStatuses/{grab}"),
            None,
            [U, U, U, U, 200, 404, 403, 403, 200],
        ),
        // allocate
        row(
            "POST",
            "/taxis",
            Some(new_taxi),
            [U, U, U, U, 403, 403, 409, 0, 403],
        ),
        row("GET", "/taxis", None, [U, U, U, U, 403, 403, 403, 403, 200]),
        row(
            "GET",
            "/taxis/nearby?lat=37.556&lng=126.972",
            None,
            [U, U, U, U, 200, 200, 200, 200, 200],
        ),
        row(
            "GET",
            &format!("/taxis/{taxi}"),
            None,
            [U, U, U, U, 403, 403, 200, 404, 200],
        ),
        row(
            "GET",
            "/allocations",
            None,
            [U, U, U, U, 403, 403, 200, 200, 200],
        ),
        row(
            "GET",
            &format!("/allocations?grabId={grab}"),
            None,
            [U, U, U, U, 403, 403, 200, 200, 200],
        ),
        row(
            "GET",
            &format!("/allocations/{alloc_id}"),
            None,
            [U, U, U, U, 403, 403, 200, 404, 200],
        ),
        row(
            "POST",
            &format!("/allocations/{alloc_id}/accept"),
            None,
            [U, U, U, U, 403, 403, 0, 404, 403],
        ),
        row(
            "POST",
            &format!("/allocations/{alloc_id}/decline"),
            None,
            [U, U, U, U, 403, 403, 409, 404, 403],
        ),
        row(
            "POST",
            &format!("/allocations/{alloc_id}/pickup"),
            None,
            [U, U, U, U, 403, 403, 0, 404, 403],
        ),
        row(
            "PUT",
            &format!("/taxis/{taxi}/duty"),
            Some(json!({"duty": "OnDuty"})),
            [U, U, U, U, 403, 403, 200, 404, 403],
        ),
        row(
            "PUT",
            &format!("/taxis/{taxi}/location"),
            Some(json!({"location": {"lat": 37.5561, "lng": 126.9721}})),
            [U, U, U, U, 403, 403, 0, 404, 403],
        ),
        row(
            "POST",
            &format!("/allocations/{alloc_id}/complete"),
            None,
            [U, U, U, U, 403, 403, 409, 404, 403],
        ),
        // pay: service-to-service keeps its key; reads are for operators
        row(
            "POST",
            "/payments",
            Some(json!({"grabId": grab, "amount": 1000})),
            [U, U, U, U, U, U, U, U, U],
        ),
        row(
            "GET",
            &format!("/payments?grabId={grab}"),
            None,
            [U, U, U, U, 403, 403, 403, 403, 200],
        ),
        // the local broker's operator routes
        row(
            "GET",
            "/broker/deadletters",
            None,
            [U, U, U, U, 403, 403, 403, 403, 200],
        ),
        row(
            "GET",
            "/broker/events",
            None,
            [U, U, U, U, 403, 403, 403, 403, 200],
        ),
        row(
            "GET",
            "/broker/triggers",
            None,
            [U, U, U, U, 403, 403, 403, 403, 200],
        ),
        row(
            "POST",
            "/broker/deadletters/999999/redeliver",
            None,
            [U, U, U, U, 403, 403, 403, 403, 404],
        ),
        // notify (Python): a list is the caller's own; an operator names whose
        row(
            "GET",
            "/notifications",
            None,
            [U, U, U, U, 200, 200, 200, 200, 422],
        ),
        row(
            "GET",
            &format!("/notifications?phoneNumber={A}"),
            None,
            [U, U, U, U, 200, 403, 403, 403, 200],
        ),
        row(
            "GET",
            &format!("/notifications?taxiId={taxi}"),
            None,
            [U, U, U, U, 403, 403, 200, 403, 200],
        ),
        // liveness stays open to the platform's probes, whatever the token
        row("GET", "/health/grab", None, [200; 9]),
        row("GET", "/health/pay", None, [200; 9]),
        row("GET", "/health/allocate", None, [200; 9]),
        row("GET", "/health/grab-status", None, [200; 9]),
        row("GET", "/health/broker", None, [200; 9]),
        row("GET", "/health/notify", None, [200; 9]),
    ];
    let who = callers(&taxi, &other_taxi);
    let before = snapshot(&s, &grab, &alloc_id).await;

    let mut wrong = Vec::new();
    for r in &rows {
        for (i, (name, token)) in who.iter().enumerate() {
            if r.expect[i] == 0 {
                continue;
            }
            let a = send_as(&s, token.clone(), r).await;
            let ok = a.status == r.expect[i]
                && (a.status < 400 || a.header("content-type") == Some("application/problem+json"))
                && (a.status != 401
                    || a.header("www-authenticate") == Some(r#"Bearer realm="htaxi""#));
            if !ok {
                wrong.push(format!(
                    "{} {} as {name}: want {}, got {} {:?} {}",
                    r.method,
                    r.path,
                    r.expect[i],
                    a.status,
                    a.header("www-authenticate"),
                    a.text
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "cells that disagree with the rules:\n{}",
        wrong.join("\n")
    );

    // Refusals changed nothing: no row anywhere, no event in the broker.
    s.flush_all().await.unwrap();
    assert_eq!(
        snapshot(&s, &grab, &alloc_id).await,
        before,
        "a refused call changed something"
    );

    // What each may see: a rider's list is theirs only; detailed health is the operator's.
    let b_list = s.rider(B).get("/grabStatuses").await.unwrap();
    assert_eq!(b_list.body, json!([]), "{}", b_list.text);
    let a_list = s.rider(A).get("/grabStatuses").await.unwrap();
    assert_eq!(
        a_list.body.as_array().map(Vec::len),
        Some(1),
        "{}",
        a_list.text
    );
    let b_notes = s.rider(B).get("/notifications").await.unwrap();
    assert_eq!(b_notes.body, json!([]), "{}", b_notes.text);
    let a_notes = s.rider(A).get("/notifications").await.unwrap();
    assert!(
        a_notes.body.as_array().is_some_and(|n| n
            .iter()
            .all(|n| n["phoneNumber"] == json!(A) && n["audience"] == json!("rider"))),
        "{}",
        a_notes.text
    );
    assert!(s.get("/health/grab").await.unwrap().body["payBreaker"].is_object());
    assert!(s.rider(A).get("/health/grab").await.unwrap().body["payBreaker"].is_null());
    assert!(s.anonymous().get("/health/grab").await.unwrap().body["payBreaker"].is_null());
    let mine = s.driver(&other_taxi).get("/allocations").await.unwrap();
    assert_eq!(
        mine.body,
        json!([]),
        "another driver sees no offer: {}",
        mine.text
    );

    // The allowed writes, last.
    let accept = s.start_ride(&alloc).await.unwrap();
    assert_eq!(accept.status, 200, "{}", accept.text);
    let done = s
        .driver(&taxi)
        .post_raw(&format!("/allocations/{alloc_id}/complete"), b"", &[])
        .await
        .unwrap();
    assert_eq!(done.status, 200, "{}", done.text);
    let reg = s
        .driver(&other_taxi)
        .post(
            "/taxis",
            &json!({"taxiNum": "서울99하9999", "location": {"lat": 37.6, "lng": 127.0}}),
        )
        .await
        .unwrap();
    assert_eq!(reg.status, 201, "{}", reg.text);
    assert_eq!(
        reg.body["taxiId"],
        json!(other_taxi),
        "the token names the taxi"
    );
    let second = s
        .rider(A)
        .post(&grab_path(), &grab_body(A, &quote_a))
        .await
        .unwrap();
    assert_eq!(second.status, 201, "{}", second.text);
    let second = second.body["id"].as_str().unwrap().to_owned();
    let cancel = s
        .rider(A)
        .delete(&format!("/grabs/{second}"))
        .await
        .unwrap();
    assert_eq!(cancel.status, 204, "{}", cancel.text);
    s.converged(&[grab, second]).await.unwrap();
}

async fn send_as(s: &Saga, token: Option<String>, r: &Row) -> Answer {
    let caller = s.with_token(token);
    match &r.body {
        Some(b) => caller
            .send(
                r.method.clone(),
                &r.path,
                &[("content-type", "application/json")],
                Some(serde_json::to_vec(b).unwrap()),
            )
            .await
            .unwrap(),
        None => caller
            .send(r.method.clone(), &r.path, &[], None)
            .await
            .unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rider_cannot_book_for_someone_elses_number_and_nothing_is_stored() {
    let s = Saga::start().await.unwrap();
    let quote = s.quote(B, gangnam()).await.unwrap();
    let a = s
        .rider(B)
        .post(&grab_path(), &grab_body(A, &quote))
        .await
        .unwrap();
    a.assert_problem(403);
    let listed = s.get(&format!("/grabs?phoneNumber={A}")).await.unwrap();
    assert_eq!(listed.body, json!([]), "{}", listed.text);
    let events = s.get("/broker/events").await.unwrap();
    assert_eq!(events.body, json!([]), "no event: {}", events.text);
}
