//! The console component on the host, as `make up` serves it: the built app under /console/
//! with its content types, caching and Content-Security-Policy, problem+json for what it does
//! not have, and the dev sign-in, off unless its key variable is set, signing tokens every
//! component accepts.

use e2e::*;
use serde_json::json;

// The host crate's test key (tests/spin-host/src/tokens.rs, whose JWKS is every test run's
// auth_jwks) as the PKCS#8 PEM `make up` hands the console.
const TEST_KEY_PEM: &str = "-----BEGIN PRIVATE KEY-----\n\
MC4CAQAwBQYDK2VwBCIEIBDK/MDX00GNS4XLC5+CNI6hJvtQqcYJqxc0AQlcMy02\n\
-----END PRIVATE KEY-----\n";

const IMMUTABLE: &str = "public, max-age=31536000, immutable";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_app_is_served_with_its_types_caching_and_policy() {
    let s = Saga::start().await.unwrap();
    let anon = s.anonymous();

    let index = anon.get("/console/").await.unwrap();
    assert_eq!(index.status, 200, "{}", index.text);
    assert_eq!(
        index.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(index.header("cache-control"), Some("no-cache"));
    let csp = index.header("content-security-policy").unwrap_or_default();
    for part in [
        "default-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ] {
        assert!(csp.contains(part), "{part} in {csp}");
    }
    assert!(
        !index.text.contains("<script>"),
        "no inline script: {}",
        index.text
    );

    // A client-side route is the app too.
    let route = anon.get("/console/rider").await.unwrap();
    assert_eq!(
        (route.status, route.text.as_str()),
        (200, index.text.as_str())
    );

    // Every asset index.html names is there, typed and immutable.
    let assets: Vec<&str> = index
        .text
        .split('"')
        .filter(|s| s.starts_with("/console/assets/"))
        .collect();
    assert!(assets.iter().any(|a| a.ends_with(".js")), "{assets:?}");
    assert!(assets.iter().any(|a| a.ends_with(".css")), "{assets:?}");
    for a in assets {
        let r = anon.get(a).await.unwrap();
        assert_eq!(r.status, 200, "{a}");
        assert_eq!(r.header("cache-control"), Some(IMMUTABLE), "{a}");
        let want = if a.ends_with(".js") {
            "text/javascript; charset=utf-8"
        } else {
            "text/css; charset=utf-8"
        };
        assert_eq!(r.header("content-type"), Some(want), "{a}");
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"), "{a}");
    }

    // HEAD: the headers, no body.
    let head = anon
        .send(reqwest::Method::HEAD, "/console/", &[], None)
        .await
        .unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(head.header("cache-control"), Some("no-cache"));
    assert!(head.text.is_empty());

    let missing = anon.get("/console/assets/nope-123.js").await.unwrap();
    missing.assert_problem(404);
    assert!(missing.header("content-security-policy").is_some());
    anon.get("/console/.env").await.unwrap().assert_problem(404);
    anon.post("/console/", &json!({}))
        .await
        .unwrap()
        .assert_problem(405);

    // Without its key the dev sign-in is not there.
    anon.post("/console/dev/token", &json!({"role": "operator"}))
        .await
        .unwrap()
        .assert_problem(404);
    let health = anon.get("/health/console").await.unwrap();
    assert_eq!(health.status, 200, "{}", health.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_dev_sign_in_signs_tokens_every_component_accepts() {
    let s = Saga::start_with(vec![("console_dev_signing_key", TEST_KEY_PEM)])
        .await
        .unwrap();
    let anon = s.anonymous();
    let token = |a: &Answer| Some(a.body["token"].as_str().expect("a token").to_owned());

    let rider = anon
        .post(
            "/console/dev/token",
            &json!({"role": "rider", "phoneNumber": "010-1234-5678"}),
        )
        .await
        .unwrap();
    assert_eq!(rider.status, 200, "{}", rider.text);
    assert_eq!(rider.body["role"], "rider");
    let mine = s
        .with_token(token(&rider))
        .get("/grabStatuses")
        .await
        .unwrap();
    assert_eq!(mine.status, 200, "{}", mine.text);
    // A rider's token is a rider's: the operator's list of taxis is refused.
    let taxis = s.with_token(token(&rider)).get("/taxis").await.unwrap();
    taxis.assert_problem(403);
    let notes = s
        .with_token(token(&rider))
        .get("/notifications")
        .await
        .unwrap();
    assert_eq!(notes.status, 200, "{}", notes.text);

    let taxi_id = uuid();
    let driver = anon
        .post(
            "/console/dev/token",
            &json!({"role": "driver", "taxiId": taxi_id}),
        )
        .await
        .unwrap();
    let registered = s
        .with_token(token(&driver))
        .post(
            "/taxis",
            &json!({"taxiNum": "서울12가3456", "location": {"lat": 37.556, "lng": 126.972}}),
        )
        .await
        .unwrap();
    assert_eq!(registered.status, 201, "{}", registered.text);
    assert_eq!(registered.body["taxiId"], json!(taxi_id));

    let op = anon
        .post("/console/dev/token", &json!({"role": "operator"}))
        .await
        .unwrap();
    let all = s.with_token(token(&op)).get("/taxis").await.unwrap();
    assert_eq!(all.status, 200, "{}", all.text);

    let bad = anon
        .post(
            "/console/dev/token",
            &json!({"role": "rider", "phoneNumber": "call me"}),
        )
        .await
        .unwrap();
    bad.assert_problem(422);
    assert_eq!(bad.body["field"], "phoneNumber");
    anon.post("/console/dev/token", &json!({"role": "admin"}))
        .await
        .unwrap()
        .assert_problem(422);
}
