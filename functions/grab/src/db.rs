//! grab's SQL: migrations, grab row mapping and the shared circuit-breaker row.

use anyhow::{anyhow, Context};
use chrono::{DateTime, SecondsFormat, Utc};
use htaxi_shared::domain::fare::Quote;
use htaxi_shared::domain::grab::{Breaker, BreakerState, Grab, GrabStatus};
use htaxi_shared::domain::{GeoPoint, Money, PhoneNumber};
use htaxi_shared::ids::{AllocationId, CorrelationId, GrabId, PaymentId, QuoteId, TaxiId};
use htaxi_shared::platform::db::{int, opt_text, text, Db, Migration};
use spin_sdk::sqlite3::{Row, Value};

/// The SQLite database label (runtime-config.toml / spin.toml).
pub const DATABASE: &str = "grab";

/// grab's own schema, applied after the platform tables.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        id: "grab/0001_grabs",
        sql: include_str!("../migrations/0001_grabs.sql"),
    },
    Migration {
        id: "grab/0002_pay_breaker",
        sql: include_str!("../migrations/0002_pay_breaker.sql"),
    },
    Migration {
        id: "grab/0003_completed_rides",
        sql: include_str!("../migrations/0003_completed_rides.sql"),
    },
    Migration {
        id: "grab/0004_fare_quotes",
        sql: include_str!("../migrations/0004_fare_quotes.sql"),
    },
];

const GRAB_COLUMNS: &str = "id, status, phone_number, starting_point, destination, estimated_fee, payment_id, allocation_id, taxi_id, taxi_num, reason, correlation_id, created_at, updated_at, quote_id";

/// Open the database, migrating it if needed.
pub fn open() -> anyhow::Result<Db> {
    Db::open(DATABASE, MIGRATIONS)
}

/// A timestamp as stored and shown: RFC 3339, UTC, milliseconds.
pub fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// An epoch-millisecond time as RFC 3339.
pub fn timestamp_ms(ms: i64) -> Option<String> {
    DateTime::<Utc>::from_timestamp_millis(ms).map(timestamp)
}

fn parse_time(s: &str) -> anyhow::Result<DateTime<Utc>> {
    Ok(DateTime::parse_from_rfc3339(s)
        .with_context(|| format!("stored timestamp {s:?}"))?
        .with_timezone(&Utc))
}

fn grab_from_row(row: &Row<'_>) -> anyhow::Result<Grab> {
    let col = |c: &'static str| {
        row.get::<&str>(c)
            .ok_or_else(|| anyhow!("grabs.{c} missing"))
    };
    let opt = |c: &'static str| row.get::<&str>(c);
    let point = |c: &'static str| -> anyhow::Result<GeoPoint> {
        serde_json::from_str(col(c)?).with_context(|| format!("grabs.{c}"))
    };
    Ok(Grab {
        id: GrabId::parse(col("id")?)?,
        status: GrabStatus::parse(col("status")?).context("grabs.status")?,
        phone_number: PhoneNumber::parse(col("phone_number")?)?,
        starting_point: point("starting_point")?,
        destination: point("destination")?,
        estimated_fee: Money::krw(
            row.get::<i64>("estimated_fee")
                .context("grabs.estimated_fee")?,
        )?,
        quote_id: opt("quote_id").map(QuoteId::parse).transpose()?,
        payment_id: opt("payment_id").map(PaymentId::parse).transpose()?,
        allocation_id: opt("allocation_id").map(AllocationId::parse).transpose()?,
        taxi_id: opt("taxi_id").map(TaxiId::parse).transpose()?,
        taxi_num: opt("taxi_num").map(str::to_owned),
        reason: opt("reason").map(str::to_owned),
        correlation_id: CorrelationId::parse(col("correlation_id")?)?,
        created_at: parse_time(col("created_at")?)?,
        updated_at: parse_time(col("updated_at")?)?,
    })
}

/// A grab by id, if any.
pub fn find(db: &Db, id: &GrabId) -> anyhow::Result<Option<Grab>> {
    let sql = format!("SELECT {GRAB_COLUMNS} FROM grabs WHERE id = ?");
    let r = db.query(&sql, &[text(id.as_str())])?;
    let found = r.rows().next().map(|row| grab_from_row(&row)).transpose();
    found
}

/// A rider's grabs, newest first.
pub fn list_by_phone(db: &Db, phone: &PhoneNumber, limit: u32) -> anyhow::Result<Vec<Grab>> {
    let sql = format!(
        "SELECT {GRAB_COLUMNS} FROM grabs WHERE phone_number = ? ORDER BY created_at DESC, id LIMIT ?"
    );
    let r = db.query(&sql, &[text(phone.as_str()), int(i64::from(limit))])?;
    let grabs = r.rows().map(|row| grab_from_row(&row)).collect();
    grabs
}

/// Grabs still `Requested` that were created before `cutoff` (oldest first): their
/// request never recorded pay's answer (the instance died mid-call).
pub fn stale_requested(db: &Db, cutoff: DateTime<Utc>, limit: u32) -> anyhow::Result<Vec<Grab>> {
    let sql = format!(
        "SELECT {GRAB_COLUMNS} FROM grabs WHERE status = 'Requested' AND created_at < ? ORDER BY created_at LIMIT ?"
    );
    let r = db.query(&sql, &[text(timestamp(cutoff)), int(i64::from(limit))])?;
    let grabs = r.rows().map(|row| grab_from_row(&row)).collect();
    grabs
}

fn point_json(p: &GeoPoint) -> anyhow::Result<String> {
    serde_json::to_string(p).context("encoding a point")
}

/// Store a new grab (inside the caller's transaction).
pub fn insert(tx: &Db, g: &Grab) -> anyhow::Result<()> {
    let sql = format!(
        "INSERT INTO grabs ({GRAB_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    );
    tx.exec(
        &sql,
        &[
            text(g.id.as_str()),
            text(g.status.as_str()),
            text(g.phone_number.as_str()),
            text(point_json(&g.starting_point)?),
            text(point_json(&g.destination)?),
            int(g.estimated_fee.as_krw()),
            opt_text(g.payment_id.as_ref().map(ToString::to_string)),
            opt_text(g.allocation_id.as_ref().map(ToString::to_string)),
            opt_text(g.taxi_id.as_ref().map(ToString::to_string)),
            opt_text(g.taxi_num.clone()),
            opt_text(g.reason.clone()),
            text(g.correlation_id.as_str()),
            text(timestamp(g.created_at)),
            text(timestamp(g.updated_at)),
            opt_text(g.quote_id.as_ref().map(ToString::to_string)),
        ],
    )
}

/// Save the changing part of a grab (inside the caller's transaction).
pub fn update(tx: &Db, g: &Grab) -> anyhow::Result<()> {
    tx.exec(
        "UPDATE grabs SET status = ?, payment_id = ?, allocation_id = ?, taxi_id = ?, taxi_num = ?, reason = ?, updated_at = ? WHERE id = ?",
        &[
            text(g.status.as_str()),
            opt_text(g.payment_id.as_ref().map(ToString::to_string)),
            opt_text(g.allocation_id.as_ref().map(ToString::to_string)),
            opt_text(g.taxi_id.as_ref().map(ToString::to_string)),
            opt_text(g.taxi_num.clone()),
            opt_text(g.reason.clone()),
            text(timestamp(g.updated_at)),
            text(g.id.as_str()),
        ],
    )
}

fn opt_int(v: Option<i64>) -> Value {
    v.map(Value::Integer).unwrap_or(Value::Null)
}

/// The shared breaker (call inside a transaction when about to change it).
pub fn load_breaker(db: &Db) -> anyhow::Result<Breaker> {
    let r = db.query(
        "SELECT state, consecutive_failures, opened_at_ms, trial_started_at_ms, last_failure_reason, last_failure_at_ms FROM pay_breaker WHERE id = 1",
        &[],
    )?;
    let breaker = match r.rows().next() {
        None => Ok(Breaker::default()),
        Some(row) => Ok(Breaker {
            state: row
                .get::<&str>("state")
                .and_then(BreakerState::parse)
                .context("pay_breaker.state")?,
            consecutive_failures: row
                .get::<i64>("consecutive_failures")
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(0),
            opened_at_ms: row.get::<i64>("opened_at_ms"),
            trial_started_at_ms: row.get::<i64>("trial_started_at_ms"),
            last_failure_reason: row.get::<&str>("last_failure_reason").map(str::to_owned),
            last_failure_at_ms: row.get::<i64>("last_failure_at_ms"),
        }),
    };
    breaker
}

/// Store the shared breaker (inside the caller's transaction).
pub fn save_breaker(tx: &Db, b: &Breaker) -> anyhow::Result<()> {
    tx.exec(
        "INSERT OR REPLACE INTO pay_breaker (id, state, consecutive_failures, opened_at_ms, trial_started_at_ms, last_failure_reason, last_failure_at_ms, updated_at) VALUES (1, ?, ?, ?, ?, ?, ?, strftime('%Y-%m-%dT%H:%M:%fZ','now'))",
        &[
            text(b.state.as_str()),
            int(i64::from(b.consecutive_failures)),
            opt_int(b.opened_at_ms),
            opt_int(b.trial_started_at_ms),
            opt_text(b.last_failure_reason.clone()),
            opt_int(b.last_failure_at_ms),
        ],
    )
}

// ---------------------------------------------------------------- fare quotes

/// Store a new quote.
pub fn insert_quote(tx: &Db, q: &Quote) -> anyhow::Result<()> {
    tx.exec(
        "INSERT INTO fare_quotes (quote_id, phone_number, starting_point, destination, fare, straight_line_meters, road_meters, night_surcharge, quoted_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        &[
            text(q.quote_id.as_str()),
            text(q.phone_number.as_str()),
            text(point_json(&q.starting_point)?),
            text(point_json(&q.destination)?),
            int(q.fare.as_krw()),
            int(i64::try_from(q.straight_line_meters).context("distance")?),
            int(i64::try_from(q.road_meters).context("distance")?),
            int(i64::from(q.night_surcharge)),
            text(timestamp(q.quoted_at)),
            text(timestamp(q.expires_at)),
        ],
    )
}

/// The quote with this id, if stored.
pub fn quote(db: &Db, id: &QuoteId) -> anyhow::Result<Option<Quote>> {
    let r = db.query(
        "SELECT quote_id, phone_number, starting_point, destination, fare, straight_line_meters, road_meters, night_surcharge, quoted_at, expires_at FROM fare_quotes WHERE quote_id = ?",
        &[text(id.as_str())],
    )?;
    let found = r.rows().next().map(|row| {
        let col = |c: &'static str| {
            row.get::<&str>(c)
                .ok_or_else(|| anyhow!("fare_quotes.{c} missing"))
        };
        let num = |c: &'static str| {
            row.get::<i64>(c)
                .ok_or_else(|| anyhow!("fare_quotes.{c} missing"))
        };
        let point = |c: &'static str| -> anyhow::Result<GeoPoint> {
            serde_json::from_str(col(c)?).with_context(|| format!("fare_quotes.{c}"))
        };
        Ok::<_, anyhow::Error>(Quote {
            quote_id: QuoteId::parse(col("quote_id")?)?,
            phone_number: PhoneNumber::parse(col("phone_number")?)?,
            starting_point: point("starting_point")?,
            destination: point("destination")?,
            fare: Money::krw(num("fare")?)?,
            straight_line_meters: u64::try_from(num("straight_line_meters")?)?,
            road_meters: u64::try_from(num("road_meters")?)?,
            night_surcharge: num("night_surcharge")? != 0,
            quoted_at: parse_time(col("quoted_at")?)?,
            expires_at: parse_time(col("expires_at")?)?,
        })
    });
    found.transpose()
}

/// Forget quotes that expired before `cutoff` (a grab keeps its fare and quote id).
pub fn sweep_quotes(tx: &Db, cutoff: DateTime<Utc>) -> anyhow::Result<()> {
    tx.exec(
        "DELETE FROM fare_quotes WHERE expires_at < ?",
        &[text(timestamp(cutoff))],
    )
}
