"""notify's SQL and row mapping: migrations (migrations/*.sql), the inbox, ride facts and
notifications. Every statement binds its parameters; nothing is string-formatted into SQL.
"""

from __future__ import annotations

import json
import os
from typing import Optional

from notifications import DRIVER, RIDER, Event, Notification, Recipient, Ride
from spin_glue import Db, log

LABEL = "notify"

_HERE = os.path.dirname(os.path.abspath(__file__))


def _statements(sql: str) -> list[str]:
    """A migration file as statements: `--` comments dropped, split on `;`."""
    lines = [line.split("--", 1)[0] for line in sql.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def _load_migrations() -> list[tuple[str, list[str]]]:
    folder = os.path.join(_HERE, "migrations")
    names = sorted(n for n in os.listdir(folder) if n.endswith(".sql"))
    out = []
    for name in names:
        with open(os.path.join(folder, name), encoding="utf-8") as f:
            out.append((name[:-4], _statements(f.read())))
    return out


# Read at import time: componentize-py snapshots the module, so the component needs no files.
MIGRATIONS = _load_migrations()


# Spin sets no PRAGMAs (rollback journal, synchronous=FULL). As shared::platform::db does for
# the Rust components: WAL once (recorded as a platform migration), synchronous=NORMAL on every
# connection that writes (Spin opens one per request), before its first write; a connection
# that only reads sets nothing. A database that refuses a PRAGMA (libSQL, in the cluster) is
# noted once and works without it.
WAL = "platform/wal"
PRAGMAS_REFUSED = "platform/pragmas-refused"
_RECORD = "INSERT OR IGNORE INTO schema_migrations (id, applied_at) VALUES (?, datetime('now'))"


def open_db() -> Db:
    """Open notify's database, set its PRAGMAs and apply any migration not applied yet (each
    in its own write transaction, re-checked inside it, so racing instances apply it once)."""
    db = Db.open(LABEL)
    seen = _migrations_seen(db)
    if not seen["refused"]:
        db.before_first_write(lambda: _pragmas(db, wal_set=bool(seen["wal"])))
    if seen["own"] == len(MIGRATIONS):
        return db
    for mid, statements in MIGRATIONS:
        def apply(tx: Db, mid=mid, statements=statements) -> None:
            if tx.rows("SELECT 1 AS seen FROM schema_migrations WHERE id = ?", (mid,)):
                return
            for stmt in statements:
                tx.execute(stmt)
            tx.execute(_RECORD, (mid,))
        db.transaction(apply)
    return db


def _migrations_seen(db: Db) -> dict:
    """Own migrations recorded, and whether WAL was set or PRAGMAs refused. The first open of
    a new database creates the table: creating it only then saves a statement on every open
    (a fresh connection per request, whose first statement reads the whole schema)."""
    count = ("SELECT COALESCE(SUM(id NOT IN (?1, ?2)), 0) AS own, COALESCE(SUM(id = ?1), 0) AS wal, "
             "COALESCE(SUM(id = ?2), 0) AS refused FROM schema_migrations")
    try:
        return db.rows(count, (WAL, PRAGMAS_REFUSED))[0]
    except Exception as e:  # the binding's Err
        if "no such table" not in repr(e):
            raise
    db.execute("CREATE TABLE IF NOT EXISTS schema_migrations (id TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    return db.rows(count, (WAL, PRAGMAS_REFUSED))[0]


def _pragmas(db: Db, wal_set: bool) -> None:
    for pragma in ("PRAGMA synchronous = NORMAL", *(() if wal_set else ("PRAGMA journal_mode = WAL",))):
        try:
            db.execute(pragma)
        except Exception as e:  # the binding's Err: a refusal, or another instance's lock
            text = repr(e).lower()
            if "locked" in text or "busy" in text:
                return  # the next connection tries again
            db.transaction(lambda tx: tx.execute(_RECORD, (PRAGMAS_REFUSED,)))
            log("-", f"{LABEL}: `{pragma}` refused ({text}); expected on libSQL, continuing without it")
            return
    if not wal_set:
        db.transaction(lambda tx: tx.execute(_RECORD, (WAL,)))


def record_delivery(tx: Db, event: Event, received_at: str) -> bool:
    """Record (source, id) in the inbox; False if it was there already (a duplicate)."""
    return tx.execute(
        "INSERT OR IGNORE INTO inbox (source, event_id, event_type, received_at) VALUES (?, ?, ?, ?)",
        (event.source, event.id, event.type, received_at),
    ) == 1


def save_ride(tx: Db, ride: Ride) -> None:
    """Remember who rides; a later fact fills in what an earlier one lacked."""
    tx.execute(
        "INSERT INTO rides (grab_id, phone_number, amount, starting_point, destination) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (grab_id) DO UPDATE SET "
        "starting_point = COALESCE(excluded.starting_point, rides.starting_point), "
        "destination = COALESCE(excluded.destination, rides.destination)",
        (ride.grab_id, ride.phone_number, ride.amount, _json(ride.starting_point), _json(ride.destination)),
    )


def save_notification(tx: Db, n: Notification) -> None:
    tx.execute(
        "INSERT OR IGNORE INTO notifications (source, event_id, audience, grab_id, taxi_id, kind, occurred_at, facts) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (n.source, n.event_id, n.audience, n.grab_id, n.taxi_id, n.kind, n.occurred_at, json.dumps(n.facts)),
    )


# Newest first; ties broken by the event, never by arrival, so any delivery order lists alike.
_LIST_RIDER = (
    "SELECT n.*, r.phone_number, r.amount, r.starting_point, r.destination FROM notifications n "
    "JOIN rides r ON r.grab_id = n.grab_id WHERE r.phone_number = ? AND n.audience = ? "
    "ORDER BY n.occurred_at DESC, n.event_id DESC LIMIT ?"
)
_LIST_DRIVER = (
    "SELECT n.*, r.phone_number, r.amount, r.starting_point, r.destination FROM notifications n "
    "LEFT JOIN rides r ON r.grab_id = n.grab_id WHERE n.taxi_id = ? AND n.audience = ? "
    "ORDER BY n.occurred_at DESC, n.event_id DESC LIMIT ?"
)


def notifications_for(db: Db, who: Recipient, limit: int = 100) -> list[tuple[Notification, Optional[Ride], int]]:
    """The recipient's notifications, newest first, with what is known of each ride."""
    sql = _LIST_RIDER if who.audience == RIDER else _LIST_DRIVER
    return [_row(r) for r in db.rows(sql, (who.key, who.audience, limit))]


def _row(r: dict) -> tuple[Notification, Optional[Ride], int]:
    n = Notification(r["source"], r["event_id"], r["audience"], r["grab_id"], r["taxi_id"], r["kind"],
                     r["occurred_at"], json.loads(r["facts"]))
    ride = None
    if r["phone_number"] is not None:
        ride = Ride(r["grab_id"], r["phone_number"], r["amount"],
                    _unjson(r["starting_point"]), _unjson(r["destination"]))
    return n, ride, r["seq"]


def _json(v: Optional[dict]) -> Optional[str]:
    return None if v is None else json.dumps(v, ensure_ascii=False)


def _unjson(v: Optional[str]) -> Optional[dict]:
    return None if v is None else json.loads(v)
