//! pay's SQL: migrations, row mapping, and persisting payment facts.

use anyhow::{anyhow, Context};
use chrono::{DateTime, SecondsFormat, Utc};
use htaxi_shared::domain::payment::{
    Payment, PaymentEvent, PaymentState, PaymentStatus, Tombstone,
};
use htaxi_shared::domain::{Money, PhoneNumber};
use htaxi_shared::ids::{CorrelationId, GrabId, PaymentId};
use htaxi_shared::platform::db::{int, opt_text, text, Db, Migration};
use spin_sdk::sqlite3::Row;

/// The SQLite database label (runtime-config.toml / spin.toml).
pub const DATABASE: &str = "pay";

/// pay's own schema, applied after the platform tables.
pub const MIGRATIONS: &[Migration] = &[Migration {
    id: "pay/0001_payments",
    sql: include_str!("../migrations/0001_payments.sql"),
}];

const PAYMENT_COLUMNS: &str = "payment_id, grab_id, amount, phone_number, status, reason, created_at, approved_at, refunded_at";

/// Open the database, migrating it if needed.
pub fn open() -> anyhow::Result<Db> {
    Db::open(DATABASE, MIGRATIONS)
}

/// A timestamp as stored: RFC 3339, UTC, milliseconds.
pub fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn parse_time(s: &str) -> anyhow::Result<DateTime<Utc>> {
    Ok(DateTime::parse_from_rfc3339(s)
        .with_context(|| format!("stored timestamp {s:?}"))?
        .with_timezone(&Utc))
}

fn opt_time(row: &Row<'_>, column: &str) -> anyhow::Result<Option<DateTime<Utc>>> {
    row.get::<&str>(column).map(parse_time).transpose()
}

fn payment_from_row(row: &Row<'_>) -> anyhow::Result<Payment> {
    let col = |c: &'static str| {
        row.get::<&str>(c)
            .ok_or_else(|| anyhow!("payments.{c} missing"))
    };
    Ok(Payment {
        payment_id: PaymentId::parse(col("payment_id")?)?,
        grab_id: GrabId::parse(col("grab_id")?)?,
        amount: Money::krw(row.get::<i64>("amount").context("payments.amount")?)?,
        phone_number: PhoneNumber::parse(col("phone_number")?)?,
        status: PaymentStatus::parse(col("status")?).context("payments.status")?,
        reason: row.get::<&str>("reason").map(str::to_owned),
        created_at: parse_time(col("created_at")?)?,
        approved_at: opt_time(row, "approved_at")?,
        refunded_at: opt_time(row, "refunded_at")?,
    })
}

/// Everything pay knows about one grab (call inside the deciding transaction).
pub fn load_state(db: &Db, grab_id: &GrabId) -> anyhow::Result<PaymentState> {
    let payment = find_by_grab(db, grab_id)?;
    let r = db.query(
        "SELECT reason, recorded_at FROM payment_tombstones WHERE grab_id = ?",
        &[text(grab_id.as_str())],
    )?;
    let tombstone = r
        .rows()
        .next()
        .map(|row| -> anyhow::Result<Tombstone> {
            Ok(Tombstone {
                reason: row
                    .get::<&str>("reason")
                    .context("tombstone.reason")?
                    .to_owned(),
                recorded_at: parse_time(row.get::<&str>("recorded_at").context("recorded_at")?)?,
            })
        })
        .transpose()?;
    Ok(PaymentState { payment, tombstone })
}

/// The payment of a grab, if any.
pub fn find_by_grab(db: &Db, grab_id: &GrabId) -> anyhow::Result<Option<Payment>> {
    let sql = format!("SELECT {PAYMENT_COLUMNS} FROM payments WHERE grab_id = ?");
    let r = db.query(&sql, &[text(grab_id.as_str())])?;
    let found = r
        .rows()
        .next()
        .map(|row| payment_from_row(&row))
        .transpose();
    found
}

/// A payment by id, if any.
pub fn find_by_id(db: &Db, id: &PaymentId) -> anyhow::Result<Option<Payment>> {
    let sql = format!("SELECT {PAYMENT_COLUMNS} FROM payments WHERE payment_id = ?");
    let r = db.query(&sql, &[text(id.as_str())])?;
    let found = r
        .rows()
        .next()
        .map(|row| payment_from_row(&row))
        .transpose();
    found
}

/// Persist one decided fact inside the caller's transaction.
pub fn persist(
    tx: &Db,
    grab_id: &GrabId,
    event: &PaymentEvent,
    correlation: &CorrelationId,
) -> anyhow::Result<()> {
    const INSERT: &str = "INSERT INTO payments (payment_id, grab_id, amount, phone_number, status, reason, correlation_id, created_at, approved_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
    match event {
        PaymentEvent::Approved(e) => tx.exec(
            INSERT,
            &[
                text(e.payment_id.as_str()),
                text(e.grab_id.as_str()),
                int(e.amount.as_krw()),
                text(e.phone_number.as_str()),
                text(PaymentStatus::Approved.as_str()),
                opt_text(None::<String>),
                text(correlation.as_str()),
                text(timestamp(e.approved_at)),
                text(timestamp(e.approved_at)),
                text(timestamp(e.approved_at)),
            ],
        ),
        PaymentEvent::Rejected { payment_id, event } => tx.exec(
            INSERT,
            &[
                text(payment_id.as_str()),
                text(event.grab_id.as_str()),
                int(event.amount.as_krw()),
                text(event.phone_number.as_str()),
                text(PaymentStatus::Rejected.as_str()),
                text(event.reason.clone()),
                text(correlation.as_str()),
                text(timestamp(event.rejected_at)),
                opt_text(None::<String>),
                text(timestamp(event.rejected_at)),
            ],
        ),
        PaymentEvent::Refunded(e) => tx.exec(
            "UPDATE payments SET status = ?, reason = ?, refunded_at = ?, updated_at = ? WHERE payment_id = ?",
            &[
                text(PaymentStatus::Refunded.as_str()),
                text(e.reason.clone()),
                text(timestamp(e.refunded_at)),
                text(timestamp(e.refunded_at)),
                text(e.payment_id.as_str()),
            ],
        ),
        PaymentEvent::Tombstoned(t) => tx.exec(
            "INSERT OR IGNORE INTO payment_tombstones (grab_id, reason, recorded_at) VALUES (?, ?, ?)",
            &[
                text(grab_id.as_str()),
                text(t.reason.clone()),
                text(timestamp(t.recorded_at)),
            ],
        ),
    }
}
