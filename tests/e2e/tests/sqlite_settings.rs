//! SQLite set for this workload (issue 10): every component's database is in WAL mode after
//! a ride; a database that refuses PRAGMAs (a libSQL label in the cluster) still serves the
//! ride, with the refusal recorded once; and a request that only reads runs no PRAGMA.

use e2e::*;
use serde_json::json;
use spin_host::{Fault, FaultSpec};

const PHONE: &str = "010-1414-0001";

/// Every database label of runtime-config.toml, and the id its WAL migration is recorded as.
const DATABASES: &[(&str, &str)] = &[
    ("grab", "platform/0006_wal"),
    ("pay", "platform/0006_wal"),
    ("allocate", "platform/0006_wal"),
    ("grab_status", "platform/0006_wal"),
    ("broker", "platform/0006_wal"),
    ("notify", "platform/wal"),
];

fn journal_mode(s: &Saga, label: &str) -> String {
    let db = rusqlite::Connection::open(s.database(label)).unwrap();
    db.query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap()
}

fn recorded(s: &Saga, label: &str, migration: &str) -> bool {
    let db = rusqlite::Connection::open(s.database(label)).unwrap();
    db.query_row(
        "SELECT COUNT(*) FROM schema_migrations WHERE id = ?",
        [migration],
        |r| r.get::<_, i64>(0),
    )
    .unwrap()
        == 1
}

fn refuse_pragmas(component: &str) -> FaultSpec {
    FaultSpec {
        component: component.into(),
        fault: Fault::RefuseStatement {
            prefix: "PRAGMA".into(),
            message: "SQLITE_AUTH: not authorized".into(),
        },
        count: None,
    }
}

/// How many statements the fault `id` has refused so far.
fn fired(s: &Saga, id: u64) -> u64 {
    s.app()
        .faults()
        .list()
        .into_iter()
        .find(|f| f.id == id)
        .map(|f| f.fired)
        .expect("the fault is active")
}

/// A ride from request to an allocated taxi; its grab id.
async fn ride(s: &Saga, taxi_num: &str) -> String {
    s.register_taxi(taxi_num, 37.5560, 126.9720).await.unwrap();
    let a = s.request_grab(PHONE).await.unwrap();
    assert_eq!(a.status, 201, "{}", a.text);
    let id = a.body["id"].as_str().unwrap().to_owned();
    s.status_until(&id, "taxi allocated", |v| {
        v["allocationStatus"] == json!("Allocated")
    })
    .await
    .unwrap();
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_database_is_in_wal_mode_after_a_ride() {
    let s = Saga::start().await.unwrap();
    ride(&s, "서울14가0001").await;
    for (label, wal) in DATABASES {
        assert_eq!(journal_mode(&s, label), "wal", "database {label}");
        assert!(recorded(&s, label, wal), "{label}: {wal} not recorded");
        assert!(
            !recorded(&s, label, "platform/pragmas-refused"),
            "{label} refused nothing"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_that_refuses_pragmas_still_serves_every_ride() {
    let s = Saga::start().await.unwrap();
    // Before grab's first request, so its database never got a PRAGMA through.
    let refusal = s.fault(refuse_pragmas("grab"));
    let first = ride(&s, "서울14가0002").await;
    let second = ride(&s, "서울14가0003").await;
    assert_ne!(first, second);
    let grab = s.get(&format!("/grabs/{second}")).await.unwrap();
    assert_eq!(grab.status, 200, "{}", grab.text);

    assert!(
        recorded(&s, "grab", "platform/pragmas-refused"),
        "the refusal is recorded, so it is logged once and not tried again"
    );
    assert_eq!(
        journal_mode(&s, "grab"),
        "delete",
        "grab's database stays in the mode it was refused to leave"
    );
    // Refused once per database: the later connections skip the PRAGMAs. The first open
    // tries the connection settings and the WAL migration (two statements refused; a
    // second instance racing the first open may try them too). Two rides open grab's
    // database over a dozen times.
    let fired = fired(&s, refusal);
    assert!(
        (1..=4).contains(&fired),
        "PRAGMAs refused {fired} times: later connections must not try again"
    );
    // The other components are untouched.
    assert_eq!(journal_mode(&s, "pay"), "wal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_that_only_reads_runs_no_pragma() {
    let s = Saga::start().await.unwrap();
    let id = ride(&s, "서울14가0004").await;
    // notify has taken the ride's events too (the rider's list joins the ride that
    // PaymentApproved recorded with the TaxiAllocated notification): nothing is in flight.
    s.eventually(
        "the rider told of the taxi",
        std::time::Duration::from_secs(20),
        || async {
            let notes = s.rider(PHONE).get("/notifications").await?;
            Ok(notes.body.as_array().and_then(|l| {
                l.iter()
                    .any(|n| n["grabId"] == json!(id) && n["kind"] == json!("TaxiAllocated"))
                    .then_some(())
            }))
        },
    )
    .await
    .unwrap();
    // The databases are set up; from now on a PRAGMA of grab-status or notify (Rust and
    // Python, one rule) is refused.
    let refusals = ["grab-status", "notify"].map(|c| (c, s.fault(refuse_pragmas(c))));
    for _ in 0..5 {
        let view = s.get(&format!("/grabStatuses/{id}")).await.unwrap();
        assert_eq!(view.status, 200, "{}", view.text);
        let notes = s.rider(PHONE).get("/notifications").await.unwrap();
        assert_eq!(notes.status, 200, "{}", notes.text);
    }
    for (component, id) in refusals {
        assert_eq!(
            fired(&s, id),
            0,
            "{component}: a request that only reads set a PRAGMA"
        );
    }
    // A write (applying an event) sets them first: here they are refused.
    ride(&s, "서울14가0005").await;
    for (component, id) in refusals {
        assert!(
            fired(&s, id) > 0,
            "{component}: a connection that writes sets its PRAGMAs"
        );
    }
}
