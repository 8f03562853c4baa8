//! The H Taxi shared crate: everything the four saga components agree on.
//!
//! - [`domain`]: the pure core. Value objects (parse, don't validate) and one module per
//!   aggregate with `decide(&state, command) -> Result<Vec<Event>, DomainError>` and
//!   `apply(state, &event) -> state`. No spin-sdk, SQL, clock or random ids in there:
//!   handlers pass ids and time in, so every decision is unit-tested natively.
//! - [`events`]: the event catalogue (types, emitters, payloads) and the [`events::Envelope`]
//!   every event travels in, with deterministic ids.
//! - [`auth`]: bearer JWT verification and the one [`auth::Principal`] handlers authorize.
//! - [`cloudevent`]: the one CloudEvents codec (binary and structured in, binary out).
//! - [`problem`]: the one error type, [`problem::ApiError`], mapped to problem+json.
//! - [`platform`]: the thin Spin shell shared by every component: HTTP helpers, typed
//!   variables, the SQLite migration runner, outbox, inbox and idempotency keys.

pub mod auth;
pub mod cloudevent;
pub mod domain;
pub mod events;
pub mod ids;
pub mod platform;
pub mod problem;

/// Log one line to stdout (captured by Spin / Knative), always with the correlation id.
#[macro_export]
macro_rules! log {
    ($component:expr, $corr:expr, $($arg:tt)*) => {
        println!("[{}] correlationId={} {}", $component, $corr, format_args!($($arg)*))
    };
}
