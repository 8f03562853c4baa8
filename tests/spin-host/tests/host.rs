//! End-to-end tests of the host against the fixture component, over real HTTP.

mod common;

use std::time::{Duration, Instant};

use common::{get, request, FixtureApp};
use spin_host::{component_imports, Fault, FaultSpec, PostResponse, RetainedBy, TestApp};

fn spec(component: &str, fault: Fault, count: Option<u32>) -> FaultSpec {
    FaultSpec {
        component: component.into(),
        fault,
        count,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn routes_follow_spin_precedence() {
    let f = FixtureApp::new();
    let app = f.start().await;
    // `/exact` (fixture-peer) beats the `/...` catch-all (fixture).
    let r = get(&app, "/exact").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["headers"]["spin-matched-route"], "/exact");
    assert_eq!(app.stats()["fixture-peer"].requests, 1);
    // A longer wildcard prefix beats the catch-all.
    assert_eq!(
        get(&app, "/peer/echo").await.json()["headers"]["spin-matched-route"],
        "/peer/..."
    );
    // Anything else falls to the catch-all.
    assert_eq!(
        get(&app, "/anything/echo").await.json()["headers"]["spin-matched-route"],
        "/..."
    );
    assert_eq!(app.stats()["fixture"].requests, 1);
    app.shutdown().await.unwrap();

    // Without the catch-all (only fixture-peer retained) unknown paths are 404.
    let mut opts = f.options();
    opts.components = Some(vec!["fixture-peer".into()]);
    let app = TestApp::start(opts).await.unwrap();
    let r = get(&app, "/nothing/here").await;
    assert_eq!((r.status, r.body.as_str()), (404, ""));
    assert_eq!(get(&app, "/exact").await.status, 200);
    app.shutdown().await.unwrap();
}

/// The whole error chain, as `spin up` prints it after `Error: `.
async fn start_error(opts: spin_host::AppOptions) -> String {
    match TestApp::start(opts).await {
        Ok(_) => panic!("the app must not start"),
        Err(e) => format!("{e:#}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn retaining_a_component_that_chains_to_a_dropped_one_fails_in_spins_words() {
    let f = FixtureApp::new();
    let mut opts = f.options();
    opts.components = Some(vec!["fixture".into()]);
    // `http://{{ peer_host }}` (first entry) is a template, so Spin skips it; the literal
    // `http://fixture-private.spin.internal` is what it refuses.
    let chaining =
        "Selected component 'fixture' cannot use service chaining to unselected component: \
                    allowed_outbound_hosts = [\"http://fixture-private.spin.internal\"]";
    assert_eq!(
        start_error(opts.clone()).await,
        format!("failed to resolve application with only components selected with --component: {chaining}")
    );
    opts.retained_by = RetainedBy::ShimEnvironment;
    assert_eq!(
        start_error(opts.clone()).await,
        format!(
            "failed to resolve application with only [[\"fixture\"]] components retained by \
             configured environment variable SPIN_COMPONENTS_TO_RETAIN: {chaining}"
        )
    );
    opts.retained_by = RetainedBy::ComponentIdFlag;
    opts.components = Some(vec!["fixture-peer".into(), "nope".into()]);
    assert_eq!(
        start_error(opts).await,
        "failed to resolve application with only components selected with --component: \
         Specified component \"nope\" not found in application"
    );

    let f = FixtureApp::with_manifest(|m| {
        m.replace(
            "\"http://fixture-private.spin.internal\",",
            "\"http://*.spin.internal\",",
        )
    });
    let mut opts = f.options();
    opts.components = Some(vec!["fixture".into(), "fixture-peer".into()]);
    assert!(start_error(opts).await.ends_with(
        "Selected component 'fixture' cannot use wildcard service chaining: \
         allowed_outbound_hosts = [\"http://*.spin.internal\"]"
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retained_component_with_only_templated_hosts_starts_and_resolves_them_at_run_time() {
    // Only the templated entry left: the retain check skips it.
    let f = FixtureApp::with_manifest(|m| {
        m.replace("    \"http://fixture-private.spin.internal\",\n", "")
            .replace("    \"http://ghost.spin.internal\",\n", "")
            .replace("    \"http://127.0.0.1:*\",\n", "")
    });
    let mut opts = f.options();
    opts.components = Some(vec!["fixture".into()]);
    let app = TestApp::start(opts.clone()).await.expect("starts");
    // Resolved to the default `fixture-peer.spin.internal`, which is not retained: Spin's
    // chaining interceptor finds no such component and the caller traps.
    let r = get(
        &app,
        "/outbound?url=http://fixture-peer.spin.internal/exact",
    )
    .await;
    assert_eq!(r.status, 500, "{}", r.body);
    // The wildcard-free list allows nothing else.
    let r = get(&app, "/outbound?url=http://fixture-private.spin.internal/p").await;
    assert_eq!(r.json()["error"], "ErrorCode::HttpRequestDenied");
    app.shutdown().await.unwrap();

    // Like SPIN_VARIABLE_PEER_HOST: the same entry now allows that host instead.
    let peer = f.start().await;
    opts.variables
        .push(("peer_host".into(), peer.addr().to_string()));
    let app = TestApp::start(opts).await.expect("starts");
    let r = get(&app, &format!("/outbound?url={}/exact", peer.base_url())).await;
    assert_eq!(r.json()["status"], 200, "{}", r.body);
    let r = get(
        &app,
        "/outbound?url=http://fixture-peer.spin.internal/exact",
    )
    .await;
    assert_eq!(r.json()["error"], "ErrorCode::HttpRequestDenied");
    app.shutdown().await.unwrap();
    peer.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn templated_hosts_are_validated_at_load_with_the_defaults() {
    // A default with a path: Spin's loader refuses the manifest.
    let f = FixtureApp::with_manifest(|m| {
        m.replace(
            "peer_host = { default = \"fixture-peer.spin.internal\" }",
            "peer_host = { default = \"fixture-peer.spin.internal/path\" }",
        )
    });
    let err = start_error(f.options()).await;
    let expected = "Failed to load component `fixture`: `allowed_outbound_hosts` is malformed: \
                    using default variable value(s) with template \"http://{{ peer_host }}\" results \
                    in invalid config \"http://fixture-peer.spin.internal/path\": \
                    Invalid allowed host \"fixture-peer.spin.internal/path\": must not include a path";
    assert!(err.ends_with(expected), "{err}");
    assert!(err.starts_with("Failed to load Spin app from \""), "{err}");

    // The same value at run time is no load error: every outbound request of the component
    // is denied instead, even ones its other entries allow.
    let f = FixtureApp::new();
    let mut opts = f.options();
    opts.variables
        .push(("peer_host".into(), "fixture-peer.spin.internal/path".into()));
    let app = TestApp::start(opts).await.expect("starts");
    for url in [
        "http://fixture-peer.spin.internal/exact",
        "http://fixture-private.spin.internal/p",
        "/exact",
    ] {
        let r = get(&app, &format!("/outbound?url={url}")).await;
        assert_eq!(r.json()["error"], "ErrorCode::HttpRequestDenied", "{url}");
    }
    app.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn host_map_sends_a_cluster_name_to_a_loopback_address() {
    let f = FixtureApp::new();
    let peer = f.start().await;
    let mut opts = f.options();
    opts.variables
        .push(("peer_host".into(), "peer.htaxi.svc.cluster.local".into()));
    opts.host_map = vec![("peer.htaxi.svc.cluster.local".into(), peer.addr())];
    let app = TestApp::start(opts).await.expect("starts");
    let r = get(
        &app,
        "/outbound?url=http://peer.htaxi.svc.cluster.local/exact",
    )
    .await;
    assert_eq!(r.json()["status"], 200, "{}", r.body);
    let inner: serde_json::Value =
        serde_json::from_str(r.json()["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        inner["headers"]["spin-full-url"],
        "http://peer.htaxi.svc.cluster.local/exact"
    );
    // The mapping is DNS only: the allowed hosts still decide.
    let mut opts = f.options();
    opts.host_map = vec![("peer.htaxi.svc.cluster.local".into(), peer.addr())];
    let strict = TestApp::start(opts).await.expect("starts");
    let r = get(
        &strict,
        "/outbound?url=http://peer.htaxi.svc.cluster.local/exact",
    )
    .await;
    assert_eq!(r.json()["error"], "ErrorCode::HttpRequestDenied");
    strict.shutdown().await.unwrap();
    app.shutdown().await.unwrap();
    peer.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn spin_headers_match_spin() {
    let f = FixtureApp::new();
    let app = f.start().await;
    let host = app.addr().to_string();

    let h = get(&app, "/peer/a/b/?q=1").await.json()["headers"].clone();
    assert_eq!(h["spin-full-url"], format!("http://{host}/peer/a/b/?q=1"));
    assert_eq!(h["spin-path-info"], "/a/b/");
    assert_eq!(h["spin-matched-route"], "/peer/...");
    assert_eq!(h["spin-raw-component-route"], "/peer/...");
    assert_eq!(h["spin-component-route"], "/peer");
    assert_eq!(h["spin-base-path"], "/");
    assert!(
        h["spin-client-addr"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:"),
        "{h}"
    );

    let h = get(&app, "/exact").await.json()["headers"].clone();
    assert_eq!(h["spin-path-info"], "");
    assert_eq!(h["spin-component-route"], "/exact");

    let h = get(&app, "/users/42/orders/echo").await.json()["headers"].clone();
    assert_eq!(h["spin-path-match-id"], "42");
    assert_eq!(h["spin-component-route"], "/users/:id");
    assert_eq!(h["spin-path-info"], "/orders/echo");

    // Chained request: synthetic `/...` match, whole path as path-info,
    // client 0.0.0.0:0, and no Host header (so Spin falls back to localhost).
    let r = get(
        &app,
        "/outbound?url=http://fixture-peer.spin.internal/deep/echo%3Fz%3D9",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let inner: serde_json::Value =
        serde_json::from_str(r.json()["body"].as_str().unwrap()).unwrap();
    let h = &inner["headers"];
    assert_eq!(h["spin-matched-route"], "/...");
    assert_eq!(h["spin-component-route"], "");
    assert_eq!(h["spin-path-info"], "/deep/echo");
    assert_eq!(h["spin-full-url"], "http://localhost/deep/echo?z=9");
    assert_eq!(h["spin-client-addr"], "0.0.0.0:0");
    app.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_persists_across_requests_and_restarts() {
    let f = FixtureApp::new();
    let app = f.start().await;
    assert_eq!(get(&app, "/sql-put?key=k1&value=v1").await.body, "stored");
    assert_eq!(get(&app, "/sql-get?key=k1").await.body, "v1");
    // The `fixture` label lives where the runtime config says, relative to
    // the working directory (as in Spin).
    assert!(f.path().join("state/fixture.db").exists());
    // `default` is <state_dir>/sqlite_db.db.
    assert_eq!(
        get(&app, "/sql-put?db=default&key=d&value=1").await.status,
        200
    );
    assert!(f.path().join(".spin/sqlite_db.db").exists());
    app.shutdown().await.unwrap();

    let app = f.start().await;
    assert_eq!(get(&app, "/sql-get?key=k1").await.body, "v1");
    assert_eq!(get(&app, "/sql-count").await.body, "1");
    app.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_errors_types_and_rollback() {
    let f = FixtureApp::new();
    let app = f.start().await;
    get(&app, "/sql-put?key=keep&value=1").await;
    let r = get(&app, "/sql-tx-fail?key=ghost").await;
    assert_eq!(r.status, 500);
    assert!(r.body.contains("no such table"), "{}", r.body);
    assert_eq!(get(&app, "/sql-get?key=ghost").await.body, "<missing>");
    assert_eq!(get(&app, "/sql-count").await.body, "1");

    let r = get(&app, "/sql-types").await;
    assert_eq!(
        r.body,
        "[\"i\", \"r\", \"t\", \"b\", \"n\"]|[RowResult { values: [Value::Integer(-42), Value::Real(1.5), Value::Text(\"täxt\"), Value::Blob([0, 1, 255]), Value::Null] }]"
    );
    // A label outside the component's sqlite_databases is access-denied,
    // whether or not it exists.
    assert_eq!(
        get(&app, "/sql-put?db=nowhere&key=a").await.body,
        "Error::AccessDenied"
    );
    assert_eq!(
        get(&app, "/peer/sql-put?db=fixture&key=a").await.body,
        "Error::AccessDenied"
    );
    app.shutdown().await.unwrap();
}

/// The counters `make bench` reads: each invocation's wall time and its guest's CPU, and
/// each SQLite statement (and its CPU). A guest asleep spends wall time, not CPU.
#[tokio::test(flavor = "multi_thread")]
async fn stats_count_each_invocations_time_and_sqlite_statements() {
    let f = FixtureApp::new();
    let app = f.start().await;
    assert_eq!(get(&app, "/sql-put?key=a&value=1").await.body, "stored");
    assert_eq!(get(&app, "/sql-count").await.body, "1");
    let s = app.stats()["fixture"].clone();
    assert_eq!(s.requests, 2);
    // Each: CREATE TABLE IF NOT EXISTS, then its own statement.
    assert_eq!(s.sqlite_statements, 4);
    assert_eq!(s.sqlite_busy, 0);
    assert!(s.sqlite_cpu_us > 0, "{s:?}");
    // One guest runs on one thread at a time: its CPU fits in its wall time.
    assert!(
        s.guest_cpu_us > 0 && s.guest_cpu_us <= s.busy_us + 1_000,
        "{s:?}"
    );

    let before = s;
    assert_eq!(get(&app, "/sleep?ms=300").await.body, "slept");
    let after = app.stats()["fixture"].clone();
    let (wall, cpu) = (
        after.busy_us - before.busy_us,
        after.guest_cpu_us - before.guest_cpu_us,
    );
    assert!(wall >= 300_000, "wall {wall} µs");
    assert!(cpu < 150_000, "a sleeping guest used {cpu} µs of CPU");
    assert_eq!(after.sqlite_statements, before.sqlite_statements);
    app.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn key_value_store_round_trips() {
    let f = FixtureApp::new();
    let app = f.start().await;
    assert_eq!(get(&app, "/kv?key=a&value=1").await.body, "1");
    assert_eq!(get(&app, "/kv?key=a").await.body, "1");
    assert_eq!(get(&app, "/kv?key=b").await.status, 404);
    assert_eq!(
        get(&app, "/kv?key=a&store=other").await.body,
        "Error::AccessDenied"
    );
    app.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn variables_resolve_with_overrides_and_required_check() {
    let f = FixtureApp::new();
    let app = f.start().await;
    assert_eq!(
        get(&app, "/var?name=composite").await.body,
        "pre-hello-post"
    );
    assert_eq!(get(&app, "/var?name=token").await.body, "s3cret");
    let r = get(&app, "/var?name=nope").await;
    assert_eq!(
        r.body,
        "Error::Undefined(\"no variable for \\\"fixture\\\".\\\"nope\\\"\")"
    );
    assert!(get(&app, "/var?name=Bad")
        .await
        .body
        .starts_with("Error::InvalidName"));
    app.shutdown().await.unwrap();

    // Same effect as SPIN_VARIABLE_GREETING=bye.
    let mut opts = f.options();
    opts.variables.push(("greeting".into(), "bye".into()));
    let app = TestApp::start(opts).await.unwrap();
    assert_eq!(get(&app, "/var?name=composite").await.body, "pre-bye-post");
    app.shutdown().await.unwrap();

    let mut opts = f.options();
    opts.variables.clear();
    let err = TestApp::start(opts)
        .await
        .err()
        .expect("required variable")
        .to_string();
    assert!(
        err.contains("'secret_token' is required but not set"),
        "{err}"
    );
    assert!(err.contains("SPIN_VARIABLE_SECRET_TOKEN"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn outbound_http_is_enforced_and_chains_in_process() {
    let f = FixtureApp::new();
    let app = f.start().await;
    // Not in allowed_outbound_hosts.
    let r = get(&app, "/outbound?url=http://example.com/").await;
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (502, Some("ErrorCode::HttpRequestDenied"))
    );
    // fixture-peer allows nothing, not even chaining.
    let r = get(&app, "/peer/outbound?url=http://fixture.spin.internal/echo").await;
    assert_eq!(r.json()["error"], "ErrorCode::HttpRequestDenied");
    // A private component is reachable only by chaining.
    let r = get(
        &app,
        "/outbound?url=http://fixture-private.spin.internal/p/status%3Fcode%3D418",
    )
    .await;
    assert_eq!(r.json()["status"], 418, "{}", r.body);
    // Templated allowed host (`http://{{ peer_host }}`).
    assert_eq!(
        get(
            &app,
            "/outbound?url=http://fixture-peer.spin.internal/exact"
        )
        .await
        .json()["status"],
        200
    );
    // Self request (relative URL, allowed by `http://self`) goes through the router.
    let r = get(&app, "/outbound?url=/exact").await;
    let inner: serde_json::Value =
        serde_json::from_str(r.json()["body"].as_str().unwrap()).unwrap();
    assert_eq!(inner["headers"]["spin-matched-route"], "/exact");
    // A real HTTP call (to ourselves, over loopback; `http://127.0.0.1:*` is allowed).
    let r = get(&app, &format!("/outbound?url={}/exact", app.base_url())).await;
    assert_eq!(r.json()["status"], 200, "{}", r.body);
    // Chaining to a component that does not exist traps the caller, as in Spin.
    assert_eq!(
        get(&app, "/outbound?url=http://ghost.spin.internal/x")
            .await
            .status,
        500
    );
    let stats = app.stats();
    assert_eq!(stats["fixture"].outbound_denied, 1);
    assert_eq!(stats["fixture-peer"].outbound_denied, 1);
    assert_eq!(stats["fixture-private"].requests, 1);
    app.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_response_goes_out_at_once_and_work_after_it_is_cancelled_as_on_spin_main() {
    let f = FixtureApp::new();
    let mut opts = f.options();
    opts.post_response = PostResponse::Abort;
    let app = TestApp::start(opts).await.unwrap();
    let start = Instant::now();
    let r = get(&app, "/background?key=bg&ms=700").await;
    assert_eq!((r.status, r.body.as_str()), (202, "accepted"));
    assert!(
        start.elapsed() < Duration::from_millis(600),
        "response waited for the guest"
    );
    // Spin main's trigger-http aborts the guest once hyper drops the finished body.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(get(&app, "/sql-get?key=bg").await.body, "<missing>");
    assert_eq!(app.in_flight(), 0, "the cancelled guest holds no instance");

    // Chained: the caller gets the callee's 202 at once; the callee is cancelled too.
    let start = Instant::now();
    let r = get(
        &app,
        "/outbound?url=http://fixture-private.spin.internal/background%3Fkey%3Dbg2%26ms%3D700",
    )
    .await;
    assert_eq!(r.json()["status"], 202);
    assert!(start.elapsed() < Duration::from_millis(600));
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(get(&app, "/sql-get?key=bg2").await.body, "<missing>");
    app.shutdown().await.unwrap();
}

/// Released Spin (3.6.3, 4.0.x) lets the guest finish after its answer: the default.
#[tokio::test(flavor = "multi_thread")]
async fn by_default_work_after_the_response_still_runs_as_on_released_spin() {
    let f = FixtureApp::new();
    let app = f.start().await;
    let start = Instant::now();
    let r = get(&app, "/background?key=bg&ms=300").await;
    assert_eq!((r.status, r.body.as_str()), (202, "accepted"));
    assert!(
        start.elapsed() < Duration::from_millis(280),
        "response waited for the guest"
    );
    let mut stored = String::new();
    for _ in 0..100 {
        stored = get(&app, "/sql-get?key=bg").await.body;
        if stored != "<missing>" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(stored, "after-response");
    app.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn respond_and_trap_faults() {
    let f = FixtureApp::new();
    let app = f.start().await;
    app.faults()
        .inject(spec("fixture", Fault::Respond { status: 503 }, Some(2)));
    assert_eq!(get(&app, "/status?code=200").await.status, 503);
    assert_eq!(get(&app, "/status?code=200").await.status, 503);
    assert_eq!(get(&app, "/status?code=200").await.status, 200);
    let s = app.stats()["fixture"].clone();
    assert_eq!((s.requests, s.statuses[&503], s.statuses[&200]), (3, 2, 1));

    let id = app.faults().inject(spec("fixture-peer", Fault::Trap, None));
    for _ in 0..2 {
        let r = get(&app, "/exact").await;
        assert_eq!((r.status, r.body.as_str()), (500, ""));
    }
    assert_eq!(app.stats()["fixture-peer"].traps, 2);
    assert!(app.faults().clear(id));
    assert_eq!(get(&app, "/exact").await.status, 200);
    // Faults apply to chained requests too.
    app.faults().inject(spec(
        "fixture-private",
        Fault::Respond { status: 429 },
        Some(1),
    ));
    assert_eq!(
        get(
            &app,
            "/outbound?url=http://fixture-private.spin.internal/echo"
        )
        .await
        .json()["status"],
        429
    );
    app.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn outbound_delay_and_failure_faults() {
    let f = FixtureApp::new();
    let app = f.start().await;
    let url = "/outbound?url=http://fixture-peer.spin.internal/exact";
    app.faults().inject(spec(
        "fixture",
        Fault::DelayOutbound {
            host: "fixture-peer.spin.internal".into(),
            delay_ms: 400,
        },
        Some(1),
    ));
    let start = Instant::now();
    assert_eq!(get(&app, url).await.json()["status"], 200);
    assert!(start.elapsed() >= Duration::from_millis(400));
    let start = Instant::now();
    get(&app, url).await;
    assert!(start.elapsed() < Duration::from_millis(400));

    app.faults().inject(spec(
        "fixture",
        Fault::FailOutbound { host: "*".into() },
        None,
    ));
    let r = get(&app, url).await;
    assert_eq!(r.json()["error"], "ErrorCode::ConnectionRefused");
    // The callee never ran.
    assert_eq!(app.stats()["fixture-peer"].requests, 2);
    app.faults().clear_all();
    assert_eq!(get(&app, url).await.json()["status"], 200);
    app.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn crash_after_commit_keeps_the_commit() {
    let f = FixtureApp::new();
    let app = f.start().await;
    app.faults()
        .inject(spec("fixture", Fault::CrashAfterCommit, Some(1)));
    let r = get(&app, "/sql-commit?key=c1").await;
    assert_eq!((r.status, r.body.as_str()), (500, ""));
    assert_eq!(get(&app, "/sql-get?key=c1").await.body, "committed");
    assert_eq!(app.stats()["fixture"].traps, 1);
    assert_eq!(get(&app, "/sql-commit?key=c2").await.body, "committed");
    app.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn fault_api_over_http() {
    let f = FixtureApp::new();
    let app = f.start().await;
    let base = app.base_url();
    let r = request(
        &base,
        "POST",
        "/.well-known/spin-host/faults",
        &[("content-type", "application/json")],
        r#"{"component":"fixture","fault":{"type":"respond","status":503},"count":1}"#,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let listed = request(&base, "GET", "/.well-known/spin-host/faults", &[], "")
        .await
        .json();
    assert_eq!(listed[0]["fault"]["type"], "respond");
    assert_eq!(get(&app, "/echo").await.status, 503);
    let stats = request(&base, "GET", "/.well-known/spin-host/stats", &[], "")
        .await
        .json();
    assert_eq!(stats["fixture"]["statuses"]["503"], 1);
    let bad = request(
        &base,
        "POST",
        "/.well-known/spin-host/faults",
        &[],
        r#"{"component":"nope","fault":{"type":"trap"}}"#,
    )
    .await;
    assert_eq!(bad.status, 422);
    assert_eq!(
        request(&base, "DELETE", "/.well-known/spin-host/faults", &[], "")
            .await
            .status,
        204
    );
    app.shutdown().await.unwrap();

    // Without enable_faults the admin path is an ordinary route.
    let mut opts = f.options();
    opts.enable_faults = false;
    let app = TestApp::start(opts).await.unwrap();
    let r = get(&app, "/.well-known/spin-host/echo").await;
    assert_eq!(r.json()["headers"]["spin-matched-route"], "/...");
    let r = get(&app, "/.well-known/spin-host/stats").await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (404, "fixture: no route for /.well-known/spin-host/stats")
    );
    app.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn files_are_mounted_read_only() {
    let f = FixtureApp::new();
    let app = f.start().await;
    assert_eq!(
        get(&app, "/file?path=/static/hello.txt").await.body,
        "hello from a preopened file\n"
    );
    assert_eq!(
        get(&app, "/file-write?path=/static/new.txt").await.status,
        403
    );
    app.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn request_deadline_stops_runaway_guests() {
    let f = FixtureApp::new();
    let mut opts = f.options();
    opts.request_timeout = Some(Duration::from_millis(300));
    let app = TestApp::start(opts).await.unwrap();
    let start = Instant::now();
    assert_eq!(get(&app, "/spin").await.status, 500);
    assert!(start.elapsed() < Duration::from_secs(5));
    assert_eq!(get(&app, "/echo").await.status, 200);
    app.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn manifest_and_runtime_config_errors_are_reported() {
    let f = FixtureApp::with_manifest(|m| {
        m.replace(
            "[component.fixture-peer]\n",
            "[component.fixture-peer]\nkey_valuez = [\"x\"]\n",
        )
    });
    let err = format!("{:#}", TestApp::start(f.options()).await.err().unwrap());
    assert!(
        err.contains("unsupported manifest key \"component.fixture-peer.key_valuez\""),
        "{err}"
    );

    // A non-default label the runtime config does not define.
    let f = FixtureApp::new();
    let mut opts = f.options();
    opts.runtime_config = None;
    let err = format!("{:#}", TestApp::start(opts).await.err().unwrap());
    assert!(
        err.contains("One or more components use SQLite databases which are not defined"),
        "{err}"
    );
    assert!(
        err.contains("Component fixture uses database 'fixture'"),
        "{err}"
    );
}

#[test]
fn fixture_imports_only_wasi_and_spin_interfaces() {
    let imports = component_imports(&common::fixture_wasm()).unwrap();
    assert!(
        imports.contains(&"spin:sqlite/sqlite@3.0.0".to_owned()),
        "{imports:?}"
    );
    assert!(
        imports.contains(&"fermyon:spin/variables@2.0.0".to_owned()),
        "{imports:?}"
    );
    for i in &imports {
        assert!(
            i.starts_with("wasi:") && i.contains("@0.2.")
                || i.starts_with("spin:")
                || i.starts_with("fermyon:spin/"),
            "unexpected import {i}"
        );
    }
}

#[test]
fn cli_prints_spin_like_output_and_logs_requests() {
    use std::io::{BufRead, BufReader, Read, Write};
    let f = FixtureApp::new();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_spin-host"))
        .args(["up", "-f"])
        .arg(f.path().join("spin.toml"))
        .arg("--runtime-config-file")
        .arg(f.path().join("runtime-config.toml"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("SPIN_VARIABLE_SECRET_TOKEN", "from-env")
        .env(
            "SPIN_HOST_CACHE_DIR",
            common::workspace_root().join("target/spin-host-cache"),
        )
        .current_dir(f.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut lines = vec![];
    while !lines
        .iter()
        .any(|l: &String| l.contains("/users/:id (wildcard)"))
    {
        let mut l = String::new();
        assert!(
            out.read_line(&mut l).unwrap() > 0,
            "spin-host exited: {lines:?}"
        );
        lines.push(l);
    }
    let text = lines.concat();
    assert!(
        text.contains(&format!("Serving http://127.0.0.1:{port}")),
        "{text}"
    );
    assert!(text.contains("Available Routes:"), "{text}");
    assert!(
        text.contains(&format!("  fixture-peer: http://127.0.0.1:{port}/exact")),
        "{text}"
    );

    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "GET /var?name=token HTTP/1.1\r\nHost: x\r\nX-Correlation-Id: cid-42\r\nConnection: close\r\n\r\n").unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(
        resp.ends_with("from-env") || resp.contains("\r\n\r\n8\r\nfrom-env"),
        "{resp}"
    );
    let mut log = String::new();
    out.read_line(&mut log).unwrap();
    assert!(
        log.starts_with("GET /var -> fixture 200 ") && log.contains("correlation-id=cid-42"),
        "{log}"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}
