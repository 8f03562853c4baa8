//! Fault injection and per-component request counters, for reliability tests.
//!
//! Every fault is scoped to one component id and lasts for the next `count`
//! matching events, or until cleared when `count` is `None`. Faults are held
//! in one [`Faults`] registry per running app; tests use it in-process through
//! [`crate::RunningApp::faults`] or, when the host runs with
//! `--enable-faults`, over HTTP under `/.well-known/spin-host/faults` (see the
//! crate README for the JSON shapes).
//!
//! What counts as a matching event:
//!
//! | fault | consumed by |
//! |---|---|
//! | [`Fault::Respond`] | each request routed (or chained) to the component; the component is not run |
//! | [`Fault::Trap`] | each request to the component; the instance traps on entry, the client sees Spin's empty 500 |
//! | [`Fault::DelayOutbound`] | each outbound HTTP call by the component to `host`; the call proceeds after `delay_ms` |
//! | [`Fault::FailOutbound`] | each outbound HTTP call by the component to `host`; the guest gets `error-code::connection-refused` |
//! | [`Fault::CrashAfterCommit`] | the component's next successful SQLite `COMMIT`/`END`: the commit is durable, then the instance traps |
//! | [`Fault::RefuseStatement`] | each SQLite statement by the component that starts with `prefix` (case-insensitive): it is not run, the guest gets `io(message)` |
//!
//! `host` matches the request URL's host name (case-insensitive), e.g.
//! `pay.spin.internal` for a chained call to component `pay`, or `*` for any.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A fault to inject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Fault {
    /// Answer `status` (empty body) without running the component.
    Respond {
        /// HTTP status code, e.g. 503.
        status: u16,
    },
    /// Trap the instance as it starts; the client gets a 500 with an empty body.
    Trap,
    /// Delay outbound calls to `host` by `delay_ms` milliseconds.
    DelayOutbound {
        /// Target host name, or `*`.
        host: String,
        /// Delay in milliseconds.
        delay_ms: u64,
    },
    /// Fail outbound calls to `host` with `ConnectionRefused` (e.g. "broker down").
    FailOutbound {
        /// Target host name, or `*`.
        host: String,
    },
    /// Trap the instance right after its next successful SQLite COMMIT.
    CrashAfterCommit,
    /// Refuse SQLite statements that start with `prefix` (case-insensitive, after leading
    /// whitespace) with `io(message)`, without running them: what a database that does not
    /// take some statements answers (a libSQL label and `PRAGMA journal_mode`, say).
    RefuseStatement {
        /// Statement start, e.g. `PRAGMA`.
        prefix: String,
        /// The error text the guest gets.
        message: String,
    },
}

/// A fault bound to a component and a lifetime.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultSpec {
    /// Component id the fault applies to.
    pub component: String,
    /// What to do.
    pub fault: Fault,
    /// How many matching events to affect; `None` = until cleared.
    #[serde(default)]
    pub count: Option<u32>,
}

/// An active fault, as listed by [`Faults::list`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveFault {
    /// Id returned by [`Faults::inject`].
    pub id: u64,
    /// The fault.
    #[serde(flatten)]
    pub spec: FaultSpec,
    /// Remaining matching events (`None` = until cleared).
    pub remaining: Option<u32>,
    /// How many events it has affected so far.
    pub fired: u64,
}

/// Per-component request counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentStats {
    /// Requests routed or chained to the component (faulted ones included).
    pub requests: u64,
    /// Responses by status code, as sent to the caller.
    pub statuses: BTreeMap<u16, u64>,
    /// Guest invocations that ended in a trap (before or after responding).
    pub traps: u64,
    /// Outbound HTTP calls the component made (allowed or not).
    pub outbound_calls: u64,
    /// Outbound calls denied by `allowed_outbound_hosts`.
    pub outbound_denied: u64,
    /// Where the invocations' time went (`make bench` prints it): wall time from the
    /// request to the guest's end, in microseconds (a chaining caller's includes its
    /// callee's)...
    #[serde(default)]
    pub busy_us: u64,
    /// ...CPU time on the threads that ran the guest (instantiation, wasm, host calls
    /// made inline)...
    #[serde(default)]
    pub guest_cpu_us: u64,
    /// ...and CPU time of its SQLite statements (on tokio's blocking threads, as in Spin).
    #[serde(default)]
    pub sqlite_cpu_us: u64,
    /// SQLite statements the component executed...
    #[serde(default)]
    pub sqlite_statements: u64,
    /// ...and how many of them found the database locked by another writer (`SQLITE_BUSY`).
    #[serde(default)]
    pub sqlite_busy: u64,
}

#[derive(Default)]
struct Inner {
    next_id: u64,
    faults: Vec<ActiveFault>,
    stats: HashMap<String, ComponentStats>,
}

/// The fault and statistics registry of one running app. Thread-safe.
#[derive(Default)]
pub struct Faults {
    inner: Mutex<Inner>,
}

/// CPU time the calling thread has used so far (`CLOCK_THREAD_CPUTIME_ID`).
pub(crate) fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant Linux knows.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn host_matches(pattern: &str, host: &str) -> bool {
    pattern == "*" || pattern.eq_ignore_ascii_case(host)
}

impl Faults {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave counters inconsistent
        // in a way that matters to tests, so recover from poisoning.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Activates a fault and returns its id. Faults of the same kind on the
    /// same component are consumed oldest first.
    pub fn inject(&self, spec: FaultSpec) -> u64 {
        let mut inner = self.lock();
        inner.next_id += 1;
        let id = inner.next_id;
        let remaining = spec.count;
        inner.faults.push(ActiveFault {
            id,
            spec,
            remaining,
            fired: 0,
        });
        id
    }

    /// Removes one fault; returns whether it existed.
    pub fn clear(&self, id: u64) -> bool {
        let mut inner = self.lock();
        let before = inner.faults.len();
        inner.faults.retain(|f| f.id != id);
        before != inner.faults.len()
    }

    /// Removes every fault (counters are kept; see [`Faults::reset_stats`]).
    pub fn clear_all(&self) {
        self.lock().faults.clear();
    }

    /// Active faults, in injection order.
    pub fn list(&self) -> Vec<ActiveFault> {
        self.lock().faults.clone()
    }

    /// Counters for every component that has seen traffic.
    pub fn stats(&self) -> BTreeMap<String, ComponentStats> {
        self.lock()
            .stats
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Counters for one component (zeroes if it has seen no traffic).
    pub fn component_stats(&self, component: &str) -> ComponentStats {
        self.lock()
            .stats
            .get(component)
            .cloned()
            .unwrap_or_default()
    }

    /// Zeroes all counters.
    pub fn reset_stats(&self) {
        self.lock().stats.clear();
    }

    /// Consumes the first active fault of `component` accepted by `pick`.
    fn take<T>(&self, component: &str, pick: impl Fn(&Fault) -> Option<T>) -> Option<T> {
        let mut inner = self.lock();
        let idx = inner
            .faults
            .iter()
            .position(|f| f.spec.component == component && pick(&f.spec.fault).is_some())?;
        let f = &mut inner.faults[idx];
        let out = pick(&f.spec.fault);
        f.fired += 1;
        if let Some(n) = f.remaining.as_mut() {
            *n = n.saturating_sub(1);
            if *n == 0 {
                inner.faults.remove(idx);
            }
        }
        out
    }

    pub(crate) fn take_respond(&self, component: &str) -> Option<u16> {
        self.take(component, |f| match f {
            Fault::Respond { status } => Some(*status),
            _ => None,
        })
    }

    pub(crate) fn take_trap(&self, component: &str) -> bool {
        self.take(component, |f| matches!(f, Fault::Trap).then_some(()))
            .is_some()
    }

    pub(crate) fn take_crash_after_commit(&self, component: &str) -> bool {
        self.take(component, |f| {
            matches!(f, Fault::CrashAfterCommit).then_some(())
        })
        .is_some()
    }

    /// The refusal for `sql` from `component`, if a [`Fault::RefuseStatement`] matches it.
    pub(crate) fn take_refusal(&self, component: &str, sql: &str) -> Option<String> {
        let start = sql.trim_start();
        self.take(component, |f| match f {
            Fault::RefuseStatement { prefix, message }
                if start
                    .get(..prefix.len())
                    .is_some_and(|s| s.eq_ignore_ascii_case(prefix)) =>
            {
                Some(message.clone())
            }
            _ => None,
        })
    }

    /// Outbound faults for a call from `component` to `host`: the delay to
    /// apply, and whether to then fail the call.
    pub(crate) fn take_outbound(&self, component: &str, host: &str) -> (Option<u64>, bool) {
        let delay = self.take(component, |f| match f {
            Fault::DelayOutbound { host: h, delay_ms } if host_matches(h, host) => Some(*delay_ms),
            _ => None,
        });
        let fail = self
            .take(component, |f| match f {
                Fault::FailOutbound { host: h } if host_matches(h, host) => Some(()),
                _ => None,
            })
            .is_some();
        (delay, fail)
    }

    pub(crate) fn record_request(&self, component: &str) {
        self.lock()
            .stats
            .entry(component.to_owned())
            .or_default()
            .requests += 1;
    }

    pub(crate) fn record_status(&self, component: &str, status: u16) {
        *self
            .lock()
            .stats
            .entry(component.to_owned())
            .or_default()
            .statuses
            .entry(status)
            .or_default() += 1;
    }

    pub(crate) fn record_trap(&self, component: &str) {
        self.lock()
            .stats
            .entry(component.to_owned())
            .or_default()
            .traps += 1;
    }

    pub(crate) fn record_invocation(&self, component: &str, busy: Duration, guest_cpu: Duration) {
        let mut inner = self.lock();
        let s = inner.stats.entry(component.to_owned()).or_default();
        s.busy_us += busy.as_micros() as u64;
        s.guest_cpu_us += guest_cpu.as_micros() as u64;
    }

    pub(crate) fn record_sqlite(&self, component: &str, cpu: Duration, busy: bool) {
        let mut inner = self.lock();
        let s = inner.stats.entry(component.to_owned()).or_default();
        s.sqlite_cpu_us += cpu.as_micros() as u64;
        s.sqlite_statements += 1;
        s.sqlite_busy += u64::from(busy);
    }

    pub(crate) fn record_outbound(&self, component: &str, denied: bool) {
        let mut inner = self.lock();
        let s = inner.stats.entry(component.to_owned()).or_default();
        s.outbound_calls += 1;
        if denied {
            s.outbound_denied += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counted_faults_expire_and_unbounded_ones_persist() {
        let f = Faults::default();
        f.inject(FaultSpec {
            component: "a".into(),
            fault: Fault::Respond { status: 503 },
            count: Some(2),
        });
        assert_eq!(f.take_respond("b"), None);
        assert_eq!(f.take_respond("a"), Some(503));
        assert_eq!(f.take_respond("a"), Some(503));
        assert_eq!(f.take_respond("a"), None);

        let id = f.inject(FaultSpec {
            component: "a".into(),
            fault: Fault::Trap,
            count: None,
        });
        for _ in 0..5 {
            assert!(f.take_trap("a"));
        }
        assert_eq!(f.list()[0].fired, 5);
        assert!(f.clear(id));
        assert!(!f.take_trap("a"));
    }

    #[test]
    fn outbound_faults_match_host() {
        let f = Faults::default();
        f.inject(FaultSpec {
            component: "grab".into(),
            fault: Fault::FailOutbound {
                host: "pay.spin.internal".into(),
            },
            count: Some(1),
        });
        f.inject(FaultSpec {
            component: "grab".into(),
            fault: Fault::DelayOutbound {
                host: "*".into(),
                delay_ms: 5,
            },
            count: None,
        });
        assert_eq!(
            f.take_outbound("grab", "broker.spin.internal"),
            (Some(5), false)
        );
        assert_eq!(
            f.take_outbound("grab", "PAY.spin.internal"),
            (Some(5), true)
        );
        assert_eq!(
            f.take_outbound("grab", "pay.spin.internal"),
            (Some(5), false)
        );
        f.clear_all();
        assert_eq!(f.take_outbound("grab", "pay.spin.internal"), (None, false));
    }

    #[test]
    fn a_refusal_matches_its_prefix_in_any_case_and_nothing_else() {
        let f = Faults::default();
        f.inject(FaultSpec {
            component: "grab".into(),
            fault: Fault::RefuseStatement {
                prefix: "PRAGMA".into(),
                message: "not authorized".into(),
            },
            count: None,
        });
        assert_eq!(
            f.take_refusal("grab", "  pragma journal_mode = WAL"),
            Some("not authorized".into())
        );
        assert_eq!(f.take_refusal("grab", "SELECT 1"), None);
        assert_eq!(f.take_refusal("grab", "PRAG"), None);
        assert_eq!(f.take_refusal("pay", "PRAGMA synchronous = NORMAL"), None);
        // Until cleared: every matching statement is refused.
        assert!(f.take_refusal("grab", "PRAGMA busy_timeout = 0").is_some());
    }

    #[test]
    fn json_shape_is_stable() {
        let spec: FaultSpec = serde_json::from_str(
            r#"{"component":"grab","fault":{"type":"delay_outbound","host":"pay.spin.internal","delay_ms":2000},"count":3}"#,
        )
        .unwrap();
        assert_eq!(
            spec.fault,
            Fault::DelayOutbound {
                host: "pay.spin.internal".into(),
                delay_ms: 2000
            }
        );
        let spec: FaultSpec =
            serde_json::from_str(r#"{"component":"pay","fault":{"type":"crash_after_commit"}}"#)
                .unwrap();
        assert_eq!(spec.count, None);
        let spec: FaultSpec = serde_json::from_str(
            r#"{"component":"grab","fault":{"type":"refuse_statement","prefix":"PRAGMA","message":"not authorized"}}"#,
        )
        .unwrap();
        assert!(matches!(spec.fault, Fault::RefuseStatement { .. }));
    }
}
