//! grab-status's SQLite: migrations and the one table of ride facts.

use anyhow::{anyhow, Context};
use chrono::{DateTime, SecondsFormat, Utc};
use htaxi_shared::domain::grab_status::{derive, GrabFacts, GrabStatusView};
use htaxi_shared::ids::GrabId;
use htaxi_shared::platform::db::{int, opt_text, text, Db, Migration};
use spin_sdk::sqlite3::{Row, Value};

/// The SQLite label (spin.toml `sqlite_databases`).
pub const LABEL: &str = "grab_status";

/// grab-status's own schema, after the platform tables.
pub const MIGRATIONS: &[Migration] = &[Migration {
    id: "grab-status/0001_grab_statuses",
    sql: include_str!("../migrations/0001_grab_statuses.sql"),
}];

/// Open the database and make sure the schema is current.
pub fn open() -> anyhow::Result<Db> {
    Db::open(LABEL, MIGRATIONS)
}

/// The digits of a phone number: `010-1234-5678` and `01012345678` find the same rides.
pub fn phone_digits(phone: &str) -> String {
    phone.chars().filter(char::is_ascii_digit).collect()
}

fn ts(t: Option<DateTime<Utc>>) -> Value {
    opt_text(t.map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true)))
}

fn facts_from(row: &Row<'_>) -> anyhow::Result<(GrabId, GrabFacts)> {
    let id: &str = row
        .get("grab_id")
        .ok_or_else(|| anyhow!("grab_id column"))?;
    let facts: &str = row.get("facts").ok_or_else(|| anyhow!("facts column"))?;
    Ok((
        GrabId::parse(id)?,
        serde_json::from_str(facts).with_context(|| format!("stored facts of grab {id}"))?,
    ))
}

/// The facts known about a ride, if any event for it arrived.
pub fn facts(db: &Db, grab: &GrabId) -> anyhow::Result<Option<GrabFacts>> {
    let r = db.query(
        "SELECT grab_id, facts FROM grab_statuses WHERE grab_id = ?",
        &[text(grab.as_str())],
    )?;
    let found = r
        .rows()
        .next()
        .map(|row| facts_from(&row).map(|(_, f)| f))
        .transpose();
    found
}

/// Store a ride's facts and the derived columns used to filter and order lists.
pub fn save(tx: &Db, grab: &GrabId, facts: &GrabFacts) -> anyhow::Result<()> {
    let view = derive(grab, facts);
    tx.exec(
        "INSERT INTO grab_statuses (grab_id, facts, phone_digits, grab_status, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (grab_id) DO UPDATE SET facts = excluded.facts, phone_digits = excluded.phone_digits, grab_status = excluded.grab_status, created_at = excluded.created_at, updated_at = excluded.updated_at",
        &[
            text(grab.as_str()),
            text(serde_json::to_string(facts).context("encoding facts")?),
            opt_text(view.phone_number.as_ref().map(|p| phone_digits(p.as_str()))),
            text(view.grab_status.as_str()),
            ts(view.created_at),
            ts(view.updated_at),
        ],
    )
}

/// Views of the most recently updated rides, optionally only those of one phone number.
pub fn list(db: &Db, phone: Option<&str>, limit: u32) -> anyhow::Result<Vec<GrabStatusView>> {
    let r = match phone {
        Some(p) => db.query(
            "SELECT grab_id, facts FROM grab_statuses WHERE phone_digits = ? ORDER BY updated_at DESC, grab_id LIMIT ?",
            &[text(phone_digits(p)), int(limit.into())],
        )?,
        None => db.query(
            "SELECT grab_id, facts FROM grab_statuses ORDER BY updated_at DESC, grab_id LIMIT ?",
            &[int(limit.into())],
        )?,
    };
    r.rows()
        .map(|row| facts_from(&row).map(|(id, f)| derive(&id, &f)))
        .collect()
}
