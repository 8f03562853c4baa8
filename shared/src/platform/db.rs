//! SQLite through `spin_sdk::sqlite3`: one database per component, a versioned migration
//! runner that every component calls on open, and transactions. Spin executes one
//! statement per `execute` call, so migrations are split into statements here.
//!
//! Spin sets no PRAGMAs (rollback journal, `synchronous=FULL`): WAL is set once by a
//! platform migration, `synchronous=NORMAL` and a busy timeout of 0 on every connection
//! that writes (Spin opens a fresh one per request), before its first write. A connection
//! that only reads sets neither: neither changes a read in WAL mode, and they were two of
//! the statements of every rider's status poll. A libSQL label (the cluster's runtime
//! config) may refuse a PRAGMA: that is expected, logged once, and the component works
//! without it.
//!
//! Waiting for the write lock is done here, not in SQLite's busy handler: that handler
//! sleeps 1, 2, 5, 10 … 100 ms between tries, so under a burst of writers a lock held for
//! a millisecond costs the next writer tens of milliseconds (measured with strace at 16
//! riders: about five instances asleep in it at any moment). The connection's busy
//! timeout is 0 and a busy statement outside a transaction (`BEGIN IMMEDIATE` among
//! them) or a busy `COMMIT` is retried every [`BUSY_RETRY`], for up to [`BUSY_BUDGET`].

use anyhow::{anyhow, Context};
use spin_sdk::sqlite3::{Connection, QueryResult, Value};

/// One numbered schema change. `id` is unique and never changes once released.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub id: &'static str,
    pub sql: &'static str,
}

/// The platform tables every component has: outbox, inbox, idempotency keys.
pub const PLATFORM_MIGRATIONS: &[Migration] = &[
    Migration {
        id: "platform/0001_outbox",
        sql: include_str!("../../migrations/0001_outbox.sql"),
    },
    Migration {
        id: "platform/0002_inbox",
        sql: include_str!("../../migrations/0002_inbox.sql"),
    },
    Migration {
        id: "platform/0003_idempotency",
        sql: include_str!("../../migrations/0003_idempotency.sql"),
    },
    Migration {
        id: "platform/0004_outbox_lease",
        sql: include_str!("../../migrations/0004_outbox_lease.sql"),
    },
    Migration {
        id: "platform/0005_idempotency_reservation",
        sql: include_str!("../../migrations/0005_idempotency_reservation.sql"),
    },
    Migration {
        id: "platform/0006_wal",
        sql: include_str!("../../migrations/0006_wal.sql"),
    },
];

/// A migration file that starts with this line runs outside a transaction (e.g.
/// `PRAGMA journal_mode`, which SQLite refuses inside one); it must be idempotent.
const NO_TRANSACTION: &str = "-- no-transaction";

/// Per-connection settings, run before the connection's first statement that is not a
/// `SELECT`: `synchronous=NORMAL` is durable in WAL mode up to the last commits before a
/// power loss (never corrupt); busy timeout 0 hands lock waits to [`Db::query`]'s retry
/// (see the module docs).
const CONNECTION_PRAGMAS: &[&str] = &["PRAGMA synchronous = NORMAL", "PRAGMA busy_timeout = 0"];

/// How often a statement that found the database locked is tried again, and for how long.
const BUSY_RETRY: std::time::Duration = std::time::Duration::from_millis(1);
const BUSY_BUDGET: std::time::Duration = std::time::Duration::from_secs(10);

/// Recorded in `schema_migrations` once the database refused a PRAGMA (libSQL may): later
/// connections skip the PRAGMAs, so the refusal is logged once, not per request.
const PRAGMAS_REFUSED: &str = "platform/pragmas-refused";

/// A component's database connection.
pub struct Db {
    conn: Connection,
    /// Inside [`Db::transaction`]: a busy statement there fails (its lock is held), except
    /// `COMMIT`, which SQLite lets us retry.
    in_transaction: std::cell::Cell<bool>,
    /// [`CONNECTION_PRAGMAS`] are still to run (before the first write); false once they
    /// ran, or when this database refuses PRAGMAs.
    untuned: std::cell::Cell<bool>,
    label: String,
}

/// Split a migration file into statements: `;` ends a statement unless it is inside a
/// quoted string, an identifier or a `--` / `/* */` comment; comments are dropped.
fn statements(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' | '`' => {
                cur.push(c);
                for d in chars.by_ref() {
                    cur.push(d);
                    // A doubled quote is an escaped quote: the next pass reopens it.
                    if d == c {
                        break;
                    }
                }
            }
            '-' if chars.peek() == Some(&'-') => {
                for d in chars.by_ref() {
                    if d == '\n' {
                        cur.push('\n');
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut prev = '\0';
                for d in chars.by_ref() {
                    if prev == '*' && d == '/' {
                        break;
                    }
                    prev = d;
                }
                cur.push(' ');
            }
            ';' => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

impl Db {
    /// Open the database `label` and apply the platform migrations, then `own`, in order.
    /// Safe under concurrency: each migration runs in its own write transaction and is
    /// re-checked inside it, so racing instances apply it once.
    pub fn open(label: &str, own: &[Migration]) -> anyhow::Result<Db> {
        let conn = Connection::open(label)
            .map_err(|e| anyhow!("opening SQLite database {label}: {e:?}"))?;
        let db = Db {
            conn,
            in_transaction: std::cell::Cell::new(false),
            untuned: std::cell::Cell::new(false),
            label: label.to_owned(),
        };
        let applied = db.migrations_applied()?;
        let row = applied.rows.first();
        let count = row.and_then(|r| r.get::<i64>(0)).unwrap_or(0);
        let refused = row.and_then(|r| r.get::<i64>(1)).unwrap_or(0) > 0;
        db.untuned.set(!refused);
        if count as usize == PLATFORM_MIGRATIONS.len() + own.len() {
            return Ok(db);
        }
        for m in PLATFORM_MIGRATIONS.iter().chain(own) {
            if m.sql.trim_start().starts_with(NO_TRANSACTION) {
                db.apply_outside_transaction(m)?;
                continue;
            }
            db.transaction(|tx| {
                if !tx.applied(m)? {
                    for stmt in statements(m.sql) {
                        tx.exec(&stmt, &[])
                            .with_context(|| format!("migration {}", m.id))?;
                    }
                    tx.record(m.id)?;
                }
                Ok::<_, anyhow::Error>(())
            })?;
        }
        Ok(db)
    }

    /// One row: how many migrations are recorded, and whether the PRAGMAs were refused.
    /// The first open of a new database creates the table. Creating it only then saves a
    /// statement on every open: Spin opens a fresh connection per request, and a
    /// connection's first statement reads the whole schema.
    fn migrations_applied(&self) -> anyhow::Result<QueryResult> {
        const COUNT: &str =
            "SELECT COALESCE(SUM(id <> ?1), 0), COALESCE(SUM(id = ?1), 0) FROM schema_migrations";
        match self.query(COUNT, &[text(PRAGMAS_REFUSED)]) {
            Err(e) if format!("{e:#}").contains("no such table") => {
                self.exec(
                    "CREATE TABLE IF NOT EXISTS schema_migrations (id TEXT PRIMARY KEY, applied_at TEXT NOT NULL)",
                    &[],
                )?;
                self.query(COUNT, &[text(PRAGMAS_REFUSED)])
            }
            other => other,
        }
    }

    fn applied(&self, m: &Migration) -> anyhow::Result<bool> {
        let seen = self.query(
            "SELECT 1 FROM schema_migrations WHERE id = ?",
            &[Value::Text(m.id.into())],
        )?;
        Ok(!seen.rows.is_empty())
    }

    fn record(&self, id: &str) -> anyhow::Result<()> {
        self.exec(
            "INSERT OR IGNORE INTO schema_migrations (id, applied_at) VALUES (?, datetime('now'))",
            &[text(id)],
        )
    }

    /// A `-- no-transaction` migration: its statements, then its record. Racing
    /// instances may both run it (it is idempotent). A busy database leaves it for the
    /// next open; any other refusal (libSQL) is expected: logged once, recorded, skipped.
    fn apply_outside_transaction(&self, m: &Migration) -> anyhow::Result<()> {
        if self.applied(m)? {
            return Ok(());
        }
        for stmt in statements(m.sql) {
            match self.exec(&stmt, &[]) {
                Ok(()) => {}
                Err(e) if is_busy(&e) => return Ok(()),
                Err(e) => {
                    self.pragma_refused(&stmt, &e)?;
                    break;
                }
            }
        }
        self.transaction(|tx| tx.record(m.id))
    }

    /// Note that this database refuses PRAGMAs; logs the first time only.
    fn pragma_refused(&self, stmt: &str, e: &anyhow::Error) -> anyhow::Result<()> {
        self.untuned.set(false);
        self.transaction(|tx| tx.record(PRAGMAS_REFUSED))?;
        if self.changes() == 1 {
            eprintln!(
                "[db] {}: `{stmt}` refused ({e:#}); expected on libSQL, continuing without it",
                self.label
            );
        }
        Ok(())
    }

    /// Run a statement that returns no rows we need.
    pub fn exec(&self, sql: &str, params: &[Value]) -> anyhow::Result<()> {
        self.query(sql, params).map(|_| ())
    }

    /// Run a statement and return its rows. Outside a transaction, a statement that finds
    /// the database locked by another instance is retried (see the module docs).
    pub fn query(&self, sql: &str, params: &[Value]) -> anyhow::Result<QueryResult> {
        self.run(sql, params, !self.in_transaction.get())
    }

    fn run(&self, sql: &str, params: &[Value], retry_busy: bool) -> anyhow::Result<QueryResult> {
        if self.untuned.get() && !is_select(sql) {
            self.tune()?;
        }
        let started = std::time::Instant::now();
        loop {
            match self.conn.execute(sql, params) {
                Ok(rows) => return Ok(rows),
                Err(e) => {
                    let e = anyhow!("SQLite error: {e:?} in `{}`", first_line(sql));
                    if !(retry_busy && is_busy(&e) && started.elapsed() < BUSY_BUDGET) {
                        return Err(e);
                    }
                    std::thread::sleep(BUSY_RETRY);
                }
            }
        }
    }

    /// Run [`CONNECTION_PRAGMAS`] (once, before the first write); a refusal is recorded and
    /// logged once per database, and the connection goes on without them.
    fn tune(&self) -> anyhow::Result<()> {
        self.untuned.set(false);
        for pragma in CONNECTION_PRAGMAS {
            if let Err(e) = self.exec(pragma, &[]) {
                return self.pragma_refused(pragma, &e);
            }
        }
        Ok(())
    }

    /// Rows changed by the last INSERT/UPDATE/DELETE.
    pub fn changes(&self) -> u64 {
        self.conn.changes()
    }

    /// Run `f` in a write transaction (`BEGIN IMMEDIATE`, so concurrent writers queue
    /// instead of deadlocking on upgrade). Commits on `Ok`, rolls back on `Err`.
    pub fn transaction<T, E>(&self, f: impl FnOnce(&Db) -> Result<T, E>) -> Result<T, E>
    where
        E: From<anyhow::Error>,
    {
        // Retried while another instance holds the write lock.
        self.run("BEGIN IMMEDIATE", &[], true)
            .context("starting a transaction")?;
        self.in_transaction.set(true);
        let result = match f(self) {
            Ok(v) => match self.run("COMMIT", &[], true) {
                Ok(_) => Ok(v),
                Err(e) => {
                    let _ = self.run("ROLLBACK", &[], false);
                    Err(e.into())
                }
            },
            Err(e) => {
                let _ = self.run("ROLLBACK", &[], false);
                Err(e)
            }
        };
        self.in_transaction.set(false);
        result
    }
}

/// Whether `sql` is a `SELECT`, which needs none of [`CONNECTION_PRAGMAS`].
fn is_select(sql: &str) -> bool {
    sql.trim_start()
        .get(..6)
        .is_some_and(|w| w.eq_ignore_ascii_case("SELECT"))
}

fn is_busy(e: &anyhow::Error) -> bool {
    let s = format!("{e:#}");
    s.contains("locked") || s.contains("busy")
}

fn first_line(sql: &str) -> &str {
    sql.lines().next().unwrap_or("")
}

/// Shorthand for a text parameter.
pub fn text(s: impl Into<String>) -> Value {
    Value::Text(s.into())
}

/// Shorthand for an integer parameter.
pub fn int(i: i64) -> Value {
    Value::Integer(i)
}

/// Shorthand for an optional text parameter (NULL when absent).
pub fn opt_text(s: Option<impl Into<String>>) -> Value {
    s.map(|s| Value::Text(s.into())).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_select_runs_before_the_connection_settings() {
        assert!(is_select("SELECT 1"));
        assert!(is_select("  select taxi_id FROM taxis"));
        for sql in [
            "BEGIN IMMEDIATE",
            "UPDATE outbox SET x = 1",
            "PRAGMA journal_mode = WAL",
            "WITH t AS (SELECT 1) SELECT * FROM t",
            "SEL",
        ] {
            assert!(!is_select(sql), "{sql}");
        }
    }

    #[test]
    fn migrations_split_into_statements_without_comments() {
        let sql = "-- a table; with a semicolon\nCREATE TABLE a (x); /* b; c */\n\nCREATE INDEX i ON a (x);\n-- trailing\n";
        let s = statements(sql);
        assert_eq!(s, ["CREATE TABLE a (x)", "CREATE INDEX i ON a (x)"]);
    }

    #[test]
    fn semicolons_inside_strings_do_not_split() {
        let sql = "INSERT INTO t VALUES ('a;b', 'it''s; fine'); SELECT \"x;y\" FROM t -- done;\n";
        let s = statements(sql);
        assert_eq!(
            s,
            [
                "INSERT INTO t VALUES ('a;b', 'it''s; fine')",
                "SELECT \"x;y\" FROM t"
            ]
        );
    }

    #[test]
    fn only_the_wal_migration_runs_outside_a_transaction() {
        let outside: Vec<_> = PLATFORM_MIGRATIONS
            .iter()
            .filter(|m| m.sql.trim_start().starts_with(NO_TRANSACTION))
            .map(|m| m.id)
            .collect();
        assert_eq!(outside, ["platform/0006_wal"]);
        let wal = PLATFORM_MIGRATIONS
            .iter()
            .find(|m| m.id == "platform/0006_wal");
        assert_eq!(statements(wal.unwrap().sql), ["PRAGMA journal_mode = WAL"]);
    }

    #[test]
    fn every_platform_migration_has_statements() {
        for m in PLATFORM_MIGRATIONS {
            assert!(!statements(m.sql).is_empty(), "{}", m.id);
        }
    }
}
