//! allocate's SQLite: migrations, row mapping and the SQL that persists each decided
//! [`AllocationEvent`]. Always bound parameters; one statement per call.

use anyhow::{anyhow, bail, Context};
use chrono::{DateTime, SecondsFormat, Utc};
use htaxi_shared::domain::allocation::{
    bounding_box, Allocation, AllocationEvent, AllocationStatus, Candidate, Duty, GrabAllocation,
    Taxi, TaxiNum, TaxiStatus,
};
use htaxi_shared::domain::GeoPoint;
use htaxi_shared::ids::{AllocationId, CorrelationId, GrabId, PaymentId, TaxiId};
use htaxi_shared::platform::db::{int, opt_text, text, Db, Migration};
use spin_sdk::sqlite3::{Row, Value};

/// The SQLite label (spin.toml `sqlite_databases`).
pub const LABEL: &str = "allocate";

/// allocate's own schema, after the platform tables.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        id: "allocate/0001_taxis_and_allocations",
        sql: include_str!("../migrations/0001_taxis_and_allocations.sql"),
    },
    Migration {
        id: "allocate/0002_completed_rides",
        sql: include_str!("../migrations/0002_completed_rides.sql"),
    },
    Migration {
        id: "allocate/0003_offers",
        sql: include_str!("../migrations/0003_offers.sql"),
    },
];

/// Open the database and make sure the schema is current.
pub fn open() -> anyhow::Result<Db> {
    Db::open(LABEL, MIGRATIONS)
}

/// A timestamp as stored: RFC 3339, UTC, milliseconds (sorts as text).
pub fn ts(t: DateTime<Utc>) -> Value {
    text(t.to_rfc3339_opts(SecondsFormat::Millis, true))
}

fn real(f: f64) -> Value {
    Value::Real(f)
}

fn parse_ts(s: &str) -> anyhow::Result<DateTime<Utc>> {
    Ok(DateTime::parse_from_rfc3339(s)
        .with_context(|| format!("stored timestamp {s:?}"))?
        .with_timezone(&Utc))
}

fn col<'a, T: TryFrom<&'a Value>>(row: &Row<'a>, name: &str) -> anyhow::Result<T> {
    row.get::<T>(name)
        .ok_or_else(|| anyhow!("column {name} is missing or has the wrong type"))
}

fn opt_ts(row: &Row<'_>, name: &str) -> anyhow::Result<Option<DateTime<Utc>>> {
    row.get::<&str>(name).map(parse_ts).transpose()
}

// ------------------------------------------------------------------ taxis

const TAXI_COLUMNS: &str =
    "SELECT taxi_id, taxi_num, status, duty, lat, lng, location_name, location_at, registered_at FROM taxis";

fn taxi_from(row: &Row<'_>) -> anyhow::Result<Taxi> {
    let status: &str = col(row, "status")?;
    let duty: &str = col(row, "duty")?;
    let registered_at = parse_ts(col(row, "registered_at")?)?;
    Ok(Taxi {
        taxi_id: TaxiId::parse(col(row, "taxi_id")?)?,
        taxi_num: TaxiNum::parse(col(row, "taxi_num")?)?,
        status: TaxiStatus::parse(status).ok_or_else(|| anyhow!("taxi status {status:?}"))?,
        duty: Duty::parse(duty).ok_or_else(|| anyhow!("taxi duty {duty:?}"))?,
        location: GeoPoint::new(
            col(row, "lat")?,
            col(row, "lng")?,
            row.get::<&str>("location_name").map(str::to_owned),
        )?,
        location_at: opt_ts(row, "location_at")?.unwrap_or(registered_at),
        registered_at,
    })
}

fn taxis(db: &Db, sql: &str, params: &[Value]) -> anyhow::Result<Vec<Taxi>> {
    let r = db.query(sql, params)?;
    r.rows().map(|row| taxi_from(&row)).collect()
}

/// The taxi with this id.
pub fn taxi(db: &Db, id: &TaxiId) -> anyhow::Result<Option<Taxi>> {
    let sql = format!("{TAXI_COLUMNS} WHERE taxi_id = ?");
    Ok(taxis(db, &sql, &[text(id.as_str())])?.into_iter().next())
}

/// The taxi holding this plate.
pub fn taxi_by_num(db: &Db, num: &TaxiNum) -> anyhow::Result<Option<Taxi>> {
    let sql = format!("{TAXI_COLUMNS} WHERE taxi_num = ?");
    Ok(taxis(db, &sql, &[text(num.as_str())])?.into_iter().next())
}

/// Taxis by plate, optionally only those in `status`.
pub fn list_taxis(db: &Db, status: Option<TaxiStatus>, limit: u32) -> anyhow::Result<Vec<Taxi>> {
    match status {
        Some(s) => taxis(
            db,
            &format!("{TAXI_COLUMNS} WHERE status = ? ORDER BY taxi_num LIMIT ?"),
            &[text(s.as_str()), int(limit.into())],
        ),
        None => taxis(
            db,
            &format!("{TAXI_COLUMNS} ORDER BY taxi_num LIMIT ?"),
            &[int(limit.into())],
        ),
    }
}

/// Store a newly registered taxi.
pub fn insert_taxi(tx: &Db, t: &Taxi) -> anyhow::Result<()> {
    tx.exec(
        "INSERT INTO taxis (taxi_id, taxi_num, status, duty, lat, lng, location_name, location_at, registered_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        &[
            text(t.taxi_id.as_str()),
            text(t.taxi_num.as_str()),
            text(t.status.as_str()),
            text(t.duty.as_str()),
            real(t.location.lat()),
            real(t.location.lng()),
            opt_text(t.location.name()),
            ts(t.location_at),
            ts(t.registered_at),
            ts(t.registered_at),
        ],
    )
}

/// Save a taxi's location and duty (its status is the allocations' business).
pub fn update_taxi(tx: &Db, t: &Taxi, now: DateTime<Utc>) -> anyhow::Result<()> {
    tx.exec(
        "UPDATE taxis SET duty = ?, lat = ?, lng = ?, location_name = ?, location_at = ?, updated_at = ? WHERE taxi_id = ?",
        &[
            text(t.duty.as_str()),
            real(t.location.lat()),
            real(t.location.lng()),
            opt_text(t.location.name()),
            ts(t.location_at),
            ts(now),
            text(t.taxi_id.as_str()),
        ],
    )
}

/// How many more than asked for [`nearest_candidates`] returns: its order is a flat-earth
/// approximation of the domain's great-circle distance (within 0.1 % inside the radius), so
/// the domain's exact choice is among the first `want + CANDIDATE_SLACK` unless that many
/// taxis tie to within that error.
const CANDIDATE_SLACK: usize = 8;

/// The available, on-duty taxis in the [`bounding_box`] of `radius_m` around `around`,
/// nearest first, about `want` of them (the exact distance, the radius check and the choice
/// are the domain's). SQLite orders and limits them, so a city's worth of taxis is not read
/// for every offer. A box that wraps the antimeridian or reaches a pole (no longitude
/// bounds) is read whole.
pub fn nearest_candidates(
    db: &Db,
    around: &GeoPoint,
    radius_m: u64,
    want: usize,
) -> anyhow::Result<Vec<Candidate>> {
    let bb = bounding_box(around, radius_m);
    const COLUMNS: &str = "SELECT taxi_id, taxi_num, lat, lng FROM taxis WHERE status = 'Available' AND duty = 'OnDuty' AND lat BETWEEN ? AND ?";
    let r = match bb.lng {
        Some((lo, hi)) => {
            // Degrees of longitude shrink by cos(latitude): squared, it weighs Δlng².
            let shrink = around.lat().to_radians().cos().powi(2);
            db.query(
                &format!(
                    "{COLUMNS} AND lng BETWEEN ? AND ? ORDER BY (lat - ?) * (lat - ?) + (lng - ?) * (lng - ?) * ?, taxi_num, taxi_id LIMIT ?"
                ),
                &[
                    real(bb.min_lat),
                    real(bb.max_lat),
                    real(lo),
                    real(hi),
                    real(around.lat()),
                    real(around.lat()),
                    real(around.lng()),
                    real(around.lng()),
                    real(shrink),
                    int(i64::try_from(want + CANDIDATE_SLACK).unwrap_or(i64::MAX)),
                ],
            )?
        }
        None => db.query(COLUMNS, &[real(bb.min_lat), real(bb.max_lat)])?,
    };
    r.rows()
        .map(|row| {
            Ok(Candidate {
                taxi_id: TaxiId::parse(col(&row, "taxi_id")?)?,
                taxi_num: TaxiNum::parse(col(&row, "taxi_num")?)?,
                location: GeoPoint::new(col(&row, "lat")?, col(&row, "lng")?, None)?,
            })
        })
        .collect()
}

fn set_taxi_status(
    tx: &Db,
    id: &TaxiId,
    from: TaxiStatus,
    to: TaxiStatus,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    tx.exec(
        "UPDATE taxis SET status = ?, updated_at = ? WHERE taxi_id = ? AND status = ?",
        &[
            text(to.as_str()),
            ts(now),
            text(id.as_str()),
            text(from.as_str()),
        ],
    )?;
    if tx.changes() != 1 {
        bail!(
            "taxi {id} was not {} when moving it to {}",
            from.as_str(),
            to.as_str()
        );
    }
    Ok(())
}

// ------------------------------------------------------------------ allocations

const ALLOCATION_COLUMNS: &str = "SELECT allocation_id, grab_id, payment_id, taxi_id, taxi_num, status, distance_meters, pickup_lat, pickup_lng, pickup_name, correlation_id, offer_number, allocated_at, expires_at, accepted_at, started_at, completed_at, cancelled_at, cancel_reason, ended_at, end_reason FROM allocations";

/// An allocation and the ride's correlation id (events about it continue that ride).
#[derive(Debug, Clone)]
pub struct StoredAllocation {
    pub allocation: Allocation,
    pub correlation: CorrelationId,
}

fn allocation_from(row: &Row<'_>) -> anyhow::Result<StoredAllocation> {
    let status: &str = col(row, "status")?;
    let offer_number: i64 = col(row, "offer_number")?;
    let allocation = Allocation {
        allocation_id: AllocationId::parse(col(row, "allocation_id")?)?,
        grab_id: GrabId::parse(col(row, "grab_id")?)?,
        payment_id: row
            .get::<&str>("payment_id")
            .map(PaymentId::parse)
            .transpose()?,
        taxi_id: TaxiId::parse(col(row, "taxi_id")?)?,
        taxi_num: col::<&str>(row, "taxi_num")?.to_owned(),
        status: AllocationStatus::parse(status)
            .ok_or_else(|| anyhow!("allocation status {status:?}"))?,
        distance_meters: col(row, "distance_meters")?,
        pickup: GeoPoint::new(
            col(row, "pickup_lat")?,
            col(row, "pickup_lng")?,
            row.get::<&str>("pickup_name").map(str::to_owned),
        )?,
        offer_number: u32::try_from(offer_number).context("offer_number")?,
        allocated_at: parse_ts(col(row, "allocated_at")?)?,
        expires_at: parse_ts(col(row, "expires_at")?)?,
        accepted_at: opt_ts(row, "accepted_at")?,
        started_at: opt_ts(row, "started_at")?,
        completed_at: opt_ts(row, "completed_at")?,
        cancelled_at: opt_ts(row, "cancelled_at")?,
        cancel_reason: row.get::<&str>("cancel_reason").map(str::to_owned),
        ended_at: opt_ts(row, "ended_at")?,
        end_reason: row.get::<&str>("end_reason").map(str::to_owned),
    };
    let correlation = CorrelationId::parse(col(row, "correlation_id")?)
        .unwrap_or_else(|_| CorrelationId::new_random());
    Ok(StoredAllocation {
        allocation,
        correlation,
    })
}

fn allocations(db: &Db, sql: &str, params: &[Value]) -> anyhow::Result<Vec<StoredAllocation>> {
    let r = db.query(sql, params)?;
    r.rows().map(|row| allocation_from(&row)).collect()
}

/// The allocation with this id.
pub fn allocation(db: &Db, id: &AllocationId) -> anyhow::Result<Option<StoredAllocation>> {
    let sql = format!("{ALLOCATION_COLUMNS} WHERE allocation_id = ?");
    Ok(allocations(db, &sql, &[text(id.as_str())])?
        .into_iter()
        .next())
}

/// Every offer made for this grab, latest first.
pub fn allocations_for_grab(db: &Db, grab: &GrabId) -> anyhow::Result<Vec<StoredAllocation>> {
    let sql = format!("{ALLOCATION_COLUMNS} WHERE grab_id = ? ORDER BY offer_number DESC");
    allocations(db, &sql, &[text(grab.as_str())])
}

/// The most recent allocations, newest first.
pub fn recent_allocations(db: &Db, limit: u32) -> anyhow::Result<Vec<StoredAllocation>> {
    let sql = format!("{ALLOCATION_COLUMNS} ORDER BY allocated_at DESC, allocation_id LIMIT ?");
    allocations(db, &sql, &[int(limit.into())])
}

/// The most recent allocations of one taxi (what its driver was offered), newest first.
pub fn recent_allocations_of_taxi(
    db: &Db,
    taxi: &TaxiId,
    limit: u32,
) -> anyhow::Result<Vec<StoredAllocation>> {
    let sql = format!(
        "{ALLOCATION_COLUMNS} WHERE taxi_id = ? ORDER BY allocated_at DESC, allocation_id LIMIT ?"
    );
    allocations(db, &sql, &[text(taxi.as_str()), int(limit.into())])
}

/// The taxi's open offer, if it has one.
pub fn open_offer_of_taxi(db: &Db, taxi: &TaxiId) -> anyhow::Result<Option<StoredAllocation>> {
    let sql = format!("{ALLOCATION_COLUMNS} WHERE taxi_id = ? AND status = 'Offered'");
    Ok(allocations(db, &sql, &[text(taxi.as_str())])?
        .into_iter()
        .next())
}

/// Grabs whose open offer's deadline is at or before `now` (oldest first): the sweep's work.
pub fn grabs_with_expired_offers(
    db: &Db,
    now: DateTime<Utc>,
    limit: u32,
) -> anyhow::Result<Vec<(GrabId, CorrelationId)>> {
    let r = db.query(
        "SELECT grab_id, correlation_id FROM allocations WHERE status = 'Offered' AND expires_at <= ? ORDER BY expires_at LIMIT ?",
        &[ts(now), int(limit.into())],
    )?;
    r.rows()
        .map(|row| {
            let corr = CorrelationId::parse(col(&row, "correlation_id")?)
                .unwrap_or_else(|_| CorrelationId::new_random());
            Ok((GrabId::parse(col(&row, "grab_id")?)?, corr))
        })
        .collect()
}

// ------------------------------------------------------------------ per-grab state

/// Everything allocate knows about a grab, for a decision.
pub fn grab_state(db: &Db, grab: &GrabId) -> anyhow::Result<GrabAllocation> {
    let r = db.query(
        "SELECT cancelled_at, failed_reason FROM grab_outcomes WHERE grab_id = ?",
        &[text(grab.as_str())],
    )?;
    let (cancelled, failed_reason) = match r.rows().next() {
        Some(row) => (
            row.get::<&str>("cancelled_at").is_some(),
            row.get::<&str>("failed_reason").map(str::to_owned),
        ),
        None => (false, None),
    };
    let offers = allocations_for_grab(db, grab)?;
    Ok(GrabAllocation {
        cancelled,
        failed_reason,
        offered_taxis: offers
            .iter()
            .rev()
            .map(|s| s.allocation.taxi_id.clone())
            .collect(),
        allocation: offers.into_iter().next().map(|s| s.allocation),
    })
}

fn set_allocation_status(
    tx: &Db,
    id: &AllocationId,
    from: &[AllocationStatus],
    sql_set: &str,
    params: &[Value],
) -> anyhow::Result<()> {
    // `from` is a closed set of status words, never input: listed as bound parameters.
    let marks = vec!["?"; from.len()].join(", ");
    let sql =
        format!("UPDATE allocations SET {sql_set} WHERE allocation_id = ? AND status IN ({marks})");
    let mut all: Vec<Value> = params.to_vec();
    all.push(text(id.as_str()));
    all.extend(from.iter().map(|s| text(s.as_str())));
    tx.exec(&sql, &all)?;
    if tx.changes() != 1 {
        bail!("allocation {id} was not {from:?}");
    }
    Ok(())
}

/// Persist one decided event inside the caller's transaction. `correlation` is the ride's.
pub fn persist(
    tx: &Db,
    event: &AllocationEvent,
    correlation: &CorrelationId,
) -> anyhow::Result<()> {
    use AllocationStatus as S;
    match event {
        AllocationEvent::TaxiOffered {
            event: e,
            payment_id,
            pickup,
        } => {
            set_taxi_status(tx, &e.taxi_id, TaxiStatus::Available, TaxiStatus::Busy, e.offered_at)?;
            tx.exec(
                "INSERT INTO allocations (allocation_id, grab_id, payment_id, taxi_id, taxi_num, status, distance_meters, pickup_lat, pickup_lng, pickup_name, correlation_id, offer_number, allocated_at, expires_at) VALUES (?, ?, ?, ?, ?, 'Offered', ?, ?, ?, ?, ?, ?, ?, ?)",
                &[
                    text(e.allocation_id.as_str()),
                    text(e.grab_id.as_str()),
                    text(payment_id.as_str()),
                    text(e.taxi_id.as_str()),
                    text(e.taxi_num.clone()),
                    int(i64::try_from(e.distance_meters).context("distance")?),
                    real(pickup.lat()),
                    real(pickup.lng()),
                    opt_text(pickup.name()),
                    text(correlation.as_str()),
                    int(e.offer_number.into()),
                    ts(e.offered_at),
                    ts(e.expires_at),
                ],
            )
            .context("inserting the offer (one active allocation per taxi, one live per grab)")
        }
        AllocationEvent::OfferPassedOn {
            allocation_id,
            taxi_id,
            end,
            at,
            ..
        } => {
            set_allocation_status(
                tx,
                allocation_id,
                &[S::Offered],
                "status = ?, ended_at = ?, end_reason = ?",
                &[text(end.status().as_str()), ts(*at), text(end.reason())],
            )?;
            set_taxi_status(tx, taxi_id, TaxiStatus::Busy, TaxiStatus::Available, *at)
        }
        AllocationEvent::TaxiAllocated(e) => set_allocation_status(
            tx,
            &e.allocation_id,
            &[S::Offered],
            "status = 'Allocated', accepted_at = ?",
            &[ts(e.allocated_at)],
        ),
        AllocationEvent::AllocationFailed(e) => tx.exec(
            "INSERT INTO grab_outcomes (grab_id, failed_at, failed_reason) VALUES (?, ?, ?) ON CONFLICT (grab_id) DO UPDATE SET failed_at = excluded.failed_at, failed_reason = excluded.failed_reason",
            &[text(e.grab_id.as_str()), ts(e.failed_at), text(e.reason.clone())],
        ),
        AllocationEvent::GrabTombstoned { grab_id, reason, at } => tx.exec(
            "INSERT INTO grab_outcomes (grab_id, cancelled_at, cancel_reason) VALUES (?, ?, ?) ON CONFLICT (grab_id) DO UPDATE SET cancelled_at = excluded.cancelled_at, cancel_reason = excluded.cancel_reason",
            &[text(grab_id.as_str()), ts(*at), text(reason.clone())],
        ),
        AllocationEvent::AllocationCancelled(e) => {
            let completed = allocation(tx, &e.allocation_id)?
                .is_some_and(|s| s.allocation.status == S::Completed);
            set_allocation_status(
                tx,
                &e.allocation_id,
                &[S::Offered, S::Allocated, S::RideStarted, S::Completed],
                "status = 'Cancelled', cancelled_at = ?, cancel_reason = ?",
                &[ts(e.cancelled_at), text(e.reason.clone())],
            )?;
            // A completed ride already freed its taxi (which may be on another ride now).
            if completed {
                return Ok(());
            }
            set_taxi_status(tx, &e.taxi_id, TaxiStatus::Busy, TaxiStatus::Available, e.cancelled_at)
        }
        AllocationEvent::RideStarted(e) => set_allocation_status(
            tx,
            &e.allocation_id,
            &[S::Allocated],
            "status = 'RideStarted', started_at = ?",
            &[ts(e.started_at)],
        ),
        AllocationEvent::RideCompleted(e) => {
            set_allocation_status(
                tx,
                &e.allocation_id,
                &[S::RideStarted],
                "status = 'Completed', completed_at = ?",
                &[ts(e.completed_at)],
            )?;
            set_taxi_status(tx, &e.taxi_id, TaxiStatus::Busy, TaxiStatus::Available, e.completed_at)
        }
    }
}
