//! Every route's bad input: a clear problem+json 4xx, nothing stored, nothing emitted.

use e2e::*;
use serde_json::{json, Value};

struct Case {
    method: &'static str,
    path: String,
    headers: Vec<(&'static str, &'static str)>,
    body: Vec<u8>,
    status: u16,
    why: &'static str,
}

fn case(method: &'static str, path: &str, body: &[u8], status: u16, why: &'static str) -> Case {
    Case {
        method,
        path: path.to_owned(),
        headers: vec![("content-type", "application/json")],
        body: body.to_vec(),
        status,
        why,
    }
}

fn json_case(
    method: &'static str,
    path: &str,
    body: Value,
    status: u16,
    why: &'static str,
) -> Case {
    case(
        method,
        path,
        &serde_json::to_vec(&body).unwrap(),
        status,
        why,
    )
}

/// A quote as `POST /fares/quote` answers it, but never stored: booking it is refused.
fn unstored_quote() -> Value {
    json!({"quoteId": uuid(), "startingPoint": seoul_station(), "destination": gangnam()})
}

fn grab_with(f: impl FnOnce(&mut Value)) -> Value {
    let mut b = grab_body("010-1234-5678", &unstored_quote());
    f(&mut b);
    b
}

fn cases() -> Vec<Case> {
    let unknown = uuid();
    let big = vec![b'x'; 70 * 1024];
    let mut big_json = b"{\"phoneNumber\":\"".to_vec();
    big_json.extend(std::iter::repeat_n(b'1', 70 * 1024));
    big_json.extend(b"\"}");
    let ce = |ty: &str, data: &str| -> Case {
        let mut c = case(
            "POST",
            "/events/grab-status",
            data.as_bytes(),
            400,
            "invalid CloudEvent",
        );
        c.headers = vec![
            ("content-type", "application/json"),
            ("ce-specversion", "1.0"),
            ("ce-id", "bad-1"),
            ("ce-source", "/test"),
        ];
        if !ty.is_empty() {
            c.headers
                .push(("ce-type", Box::leak(ty.to_owned().into_boxed_str())));
        }
        c
    };
    let mut cases = vec![];
    // Every list's `?limit=` (shared::platform::http::limit_param): 1 to 500.
    for list in [
        "/grabs?phoneNumber=010-1234-5678&",
        "/grabStatuses?",
        "/taxis?",
        "/allocations?",
        "/broker/events?",
        "/broker/deadletters?",
    ] {
        for (limit, why) in [
            ("0", "limit below 1"),
            ("501", "limit over 500"),
            ("ten", "limit not a number"),
            ("-1", "negative limit"),
        ] {
            cases.push(case("GET", &format!("{list}limit={limit}"), b"", 422, why));
        }
    }
    cases.extend(vec![
        // grab
        case("POST", "/grabs", b"{not json", 400, "malformed JSON"),
        json_case("POST", "/grabs", json!({}), 422, "missing fields"),
        json_case(
            "POST",
            "/grabs",
            grab_with(|b| b["estimatedFee"] = json!("15000")),
            422,
            "fee as a string",
        ),
        json_case(
            "POST",
            "/grabs",
            grab_with(|b| b["estimatedFee"] = json!(-5)),
            422,
            "a quote never issued (the fee sent does not matter)",
        ),
        json_case(
            "POST",
            "/grabs",
            grab_with(|b| b["estimatedFee"] = json!(1.5)),
            422,
            "fractional fee",
        ),
        json_case(
            "POST",
            "/grabs",
            grab_with(|b| b["startingPoint"]["lat"] = json!(123.0)),
            422,
            "latitude out of range",
        ),
        json_case(
            "POST",
            "/grabs",
            grab_with(|b| b["destination"]["lng"] = json!(180.5)),
            422,
            "longitude out of range",
        ),
        json_case(
            "POST",
            "/taxis",
            json!({"taxiNum": "서울1", "location": {"lat": 37.5, "lng": -181}}),
            422,
            "taxi longitude out of range",
        ),
        json_case(
            "POST",
            "/grabs",
            grab_with(|b| b["phoneNumber"] = json!("call me")),
            422,
            "bad phone",
        ),
        json_case(
            "POST",
            "/grabs",
            grab_with(|b| b["destination"] = json!("Gangnam")),
            422,
            "point as a string",
        ),
        json_case("POST", "/grabs", json!([1, 2, 3]), 422, "array body"),
        case("POST", "/grabs", &big_json, 413, "oversized body"),
        Case {
            headers: vec![("content-type", "text/plain")],
            ..case("POST", "/grabs", b"hello", 415, "not JSON")
        },
        case("PUT", "/grabs", b"{}", 405, "wrong method"),
        case(
            "GET",
            &format!("/grabs/{unknown}"),
            b"",
            404,
            "unknown grab",
        ),
        case("GET", "/grabs/not-a-uuid", b"", 404, "non-UUID grab id"),
        case(
            "DELETE",
            &format!("/grabs/{unknown}"),
            b"",
            404,
            "cancel unknown grab",
        ),
        case("GET", "/grabs/a/b/c", b"", 404, "unknown grab route"),
        // pay
        json_case(
            "POST",
            "/payments",
            json!({"grabId": unknown, "amount": 1000}),
            401,
            "no credentials",
        ),
        case(
            "GET",
            &format!("/payments/{unknown}"),
            b"",
            404,
            "unknown payment",
        ),
        case("DELETE", "/payments", b"", 405, "wrong method"),
        // allocate
        case("POST", "/taxis", b"[", 400, "malformed JSON"),
        json_case(
            "POST",
            "/taxis",
            json!({"taxiNum": ""}),
            422,
            "empty taxi number",
        ),
        json_case(
            "POST",
            "/taxis",
            json!({"taxiNum": "서울1", "location": {"lat": "north", "lng": 1}}),
            422,
            "lat as a string",
        ),
        json_case(
            "POST",
            "/taxis",
            json!({"taxiNum": "서울1"}),
            422,
            "missing location",
        ),
        case("POST", "/taxis", &big, 413, "oversized body"),
        case("DELETE", "/taxis", b"", 405, "wrong method"),
        case(
            "POST",
            &format!("/allocations/{unknown}/accept"),
            b"",
            404,
            "accept unknown allocation",
        ),
        case(
            "POST",
            "/allocations/nope/accept",
            b"",
            404,
            "non-UUID allocation id",
        ),
        case(
            "POST",
            &format!("/allocations/{unknown}/complete"),
            b"",
            404,
            "complete unknown allocation",
        ),
        case(
            "GET",
            &format!("/allocations/{unknown}/complete"),
            b"",
            405,
            "complete is a POST",
        ),
        case("GET", "/allocations/a/b/c/d", b"", 404, "unknown route"),
        // grab-status
        case(
            "GET",
            &format!("/grabStatuses/{unknown}"),
            b"",
            404,
            "unknown view",
        ),
        case(
            "POST",
            "/grabStatuses",
            b"{}",
            405,
            "read model is read-only",
        ),
        // events
        ce("", "{}"),
        ce("htaxi.Nope", "{}"),
        ce("htaxi.TaxiAllocated", "{\"grabId\": 5}"),
        ce("htaxi.TaxiAllocated", "not json"),
        case(
            "POST",
            "/events/allocate",
            b"{}",
            400,
            "plain JSON is not a CloudEvent",
        ),
        case(
            "POST",
            "/events/grab",
            b"{}",
            400,
            "plain JSON is not a CloudEvent",
        ),
        case(
            "POST",
            "/events/pay",
            b"{}",
            400,
            "plain JSON is not a CloudEvent",
        ),
        case("GET", "/events/grab-status", b"", 405, "events are POSTed"),
        case(
            "POST",
            "/broker",
            b"{}",
            400,
            "broker ingress wants a CloudEvent",
        ),
        // nowhere
        case("GET", "/nope", b"", 404, "unknown route"),
        // fare quotes (issue 13)
        case(
            "POST",
            "/fares/quote",
            b"{not json",
            400,
            "malformed quote JSON",
        ),
        json_case(
            "POST",
            "/fares/quote",
            json!({}),
            422,
            "quote without points",
        ),
        json_case(
            "POST",
            "/fares/quote",
            json!({"startingPoint": seoul_station(), "destination": {"lat": 95.0, "lng": 127.0}}),
            422,
            "quote destination latitude out of range",
        ),
        json_case(
            "POST",
            "/fares/quote",
            json!({"startingPoint": seoul_station(), "destination": gangnam(), "fare": 1}),
            422,
            "quote with a client-set fare",
        ),
        case("GET", "/fares/quote", b"", 405, "quotes are POSTed"),
        json_case(
            "POST",
            "/grabs",
            grab_with(|b| b["quoteId"] = json!("not-a-quote")),
            422,
            "quoteId not a UUID",
        ),
        json_case(
            "POST",
            "/grabs",
            grab_with(|b| {
                b.as_object_mut().unwrap().remove("quoteId");
            }),
            422,
            "grab without a quote",
        ),
        // drivers move and rest (issue 13); the driver's own taxi is not registered, so a
        // valid body would be 404: these bodies are refused first.
        case(
            "PUT",
            "/taxis/{own}/location",
            b"{not json",
            400,
            "malformed location JSON",
        ),
        json_case(
            "PUT",
            "/taxis/{own}/location",
            json!({"location": {"lat": 91.0, "lng": 127.0}}),
            422,
            "location latitude out of range",
        ),
        json_case(
            "PUT",
            "/taxis/{own}/location",
            json!({"lat": 37.5, "lng": 127.0}),
            422,
            "location not wrapped in location",
        ),
        json_case(
            "PUT",
            "/taxis/{own}/duty",
            json!({"duty": "Napping"}),
            422,
            "unknown duty",
        ),
        json_case("PUT", "/taxis/{own}/duty", json!({}), 422, "duty missing"),
        case("POST", "/taxis/{own}/duty", b"", 405, "duty is PUT"),
        // the rider's map: taxis near a point
        case("GET", "/taxis/nearby", b"", 422, "nearby without a point"),
        case(
            "GET",
            "/taxis/nearby?lat=37.5",
            b"",
            422,
            "nearby without lng",
        ),
        case(
            "GET",
            "/taxis/nearby?lat=north&lng=127",
            b"",
            422,
            "nearby lat not a number",
        ),
        case(
            "GET",
            "/taxis/nearby?lat=95&lng=127",
            b"",
            422,
            "nearby lat out of range",
        ),
        case(
            "GET",
            "/taxis/nearby?lat=37.5&lng=181",
            b"",
            422,
            "nearby lng out of range",
        ),
        case(
            "GET",
            "/taxis/nearby?lat=NaN&lng=127",
            b"",
            422,
            "nearby lat NaN",
        ),
        case("POST", "/taxis/nearby", b"", 405, "nearby is GET"),
        case(
            "POST",
            &format!("/allocations/{unknown}/decline"),
            b"",
            404,
            "decline unknown allocation",
        ),
        case(
            "POST",
            &format!("/allocations/{unknown}/pickup"),
            b"",
            404,
            "pick up unknown allocation",
        ),
        case(
            "GET",
            "/allocations/nope/decline",
            b"",
            405,
            "decline is POSTed",
        ),
    ]);
    cases
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_route_refuses_bad_input_with_problem_json_and_changes_nothing() {
    let s = Saga::start().await.unwrap();
    let driver = uuid();
    let mut failures = Vec::new();
    for mut c in cases() {
        // `{own}` is the calling driver's taxi id.
        c.path = c.path.replace("{own}", &driver);
        let method = reqwest::Method::from_bytes(c.method.as_bytes()).unwrap();
        // The bad input comes from someone allowed on the route, so it is the input that
        // is refused, not the caller (tests/e2e/tests/authorization.rs covers callers).
        let who = match c.path.split('/').nth(1) {
            Some("grabs" | "fares") => Who::Rider("010-1234-5678".into()),
            Some("taxis" | "allocations") => Who::Driver(driver.clone()),
            _ => Who::Operator,
        };
        let a = s
            .as_(who)
            .send(method, &c.path, &c.headers, Some(c.body.clone()))
            .await
            .unwrap();
        let problem_json = a.header("content-type") == Some("application/problem+json");
        if a.status != c.status
            || (!problem_json && c.path != "/nope")
            || (problem_json && a.body["status"] != json!(c.status))
        {
            failures.push(format!(
                "{} {} ({}): got {} {:?} {}",
                c.method,
                c.path,
                c.why,
                a.status,
                a.header("content-type"),
                a.text.chars().take(200).collect::<String>()
            ));
        }
        if c.status == 405 {
            assert!(
                a.header("allow").is_some(),
                "405 names the allowed methods: {} {}",
                c.method,
                c.path
            );
        }
    }
    assert!(
        failures.is_empty(),
        "bad input not refused as expected:\n{}",
        failures.join("\n")
    );

    // Nothing stored...
    let taxis = s.get("/taxis").await.unwrap();
    assert_eq!(
        taxis
            .body
            .as_array()
            .map(Vec::len)
            .or_else(|| taxis.body["taxis"].as_array().map(Vec::len)),
        Some(0),
        "{}",
        taxis.text
    );
    let views = s.get("/grabStatuses").await.unwrap();
    assert_eq!(
        views
            .body
            .as_array()
            .map(Vec::len)
            .or_else(|| views.body["grabStatuses"].as_array().map(Vec::len)),
        Some(0),
        "{}",
        views.text
    );
    let grabs = s.get("/grabs?phoneNumber=010-1234-5678").await.unwrap();
    assert_eq!(
        grabs
            .body
            .as_array()
            .map(Vec::len)
            .or_else(|| grabs.body["grabs"].as_array().map(Vec::len)),
        Some(0),
        "{}",
        grabs.text
    );
    // ...and nothing emitted: every outbox is empty.
    for p in [
        "/outbox/flush/grab",
        "/outbox/flush/pay",
        "/outbox/flush/allocate",
    ] {
        let r = s.post_raw(p, b"", &[]).await.unwrap();
        assert_eq!(r.status, 200, "{p}: {}", r.text);
        assert_eq!(
            r.body["sent"],
            json!(0),
            "{p} had something to send: {}",
            r.text
        );
        assert_eq!(r.body["pending"], json!(0), "{p}: {}", r.text);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bad_correlation_id_is_refused_not_echoed() {
    let s = Saga::start().await.unwrap();
    let a = s
        .post_with(
            "/grabs",
            &grab_body("010-1234-5678", &unstored_quote()),
            &[("x-correlation-id", "a b c")],
        )
        .await
        .unwrap();
    a.assert_problem(422);
    assert_eq!(a.header("x-correlation-id"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_422_names_the_field_the_client_got_wrong() {
    let s = Saga::start().await.unwrap();
    let cases = [
        (
            grab_with(|b| b["startingPoint"]["lat"] = json!("north")),
            "startingPoint.lat",
        ),
        (
            grab_with(|b| {
                b["destination"].as_object_mut().unwrap().remove("lng");
            }),
            "destination.lng",
        ),
        (
            grab_with(|b| {
                b.as_object_mut().unwrap().remove("quoteId");
            }),
            "quoteId",
        ),
        (grab_with(|b| b["quoteId"] = json!("q-1")), "quoteId"),
        (grab_with(|_| {}), "quoteId"),
        (
            grab_with(|b| b["estimatedFee"] = json!(12.5)),
            "estimatedFee",
        ),
    ];
    for (body, want) in cases {
        let a = s
            .rider("010-1234-5678")
            .post("/grabs", &body)
            .await
            .unwrap();
        a.assert_problem(422);
        assert_eq!(a.body["field"], json!(want), "{body}: {}", a.text);
    }
    let taxi = s
        .driver(&uuid())
        .post(
            "/taxis",
            &json!({"taxiNum": "서울10가1000", "location": {"lat": 37.5}}),
        )
        .await
        .unwrap();
    taxi.assert_problem(422);
    assert_eq!(taxi.body["field"], json!("location.lng"), "{}", taxi.text);
}
