//! Per-instance host state and the Spin platform interfaces implemented on
//! it: `spin:sqlite/sqlite@3.0.0`, `fermyon:spin/sqlite@2.0.0`,
//! `fermyon:spin/variables@2.0.0`, `fermyon:spin/key-value@2.0.0` and
//! `wasi:config/store` (what spin-sdk 5.2 can import).
//!
//! Semantics follow Spin's factors: `crates/factor-sqlite/src/host.rs` (a label
//! outside the component's `sqlite_databases` is `access-denied`, an allowed
//! but unconfigured label `no-such-database`, driver errors `io(message)`),
//! `crates/sqlite-inproc` (one lazily opened rusqlite connection per `open`,
//! so `BEGIN`/`COMMIT` span statements on that connection),
//! `crates/factor-variables/src/host.rs` (error mapping of `get`, and
//! `wasi:config` returning `none` for undefined names).

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use wasmtime::component::{Resource, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

use crate::app::AppInner;
use crate::variables::VariableError;

mod bindings {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "htaxi:spin-host/spin-platform",
        imports: { default: async | trappable },
        with: {
            "fermyon:spin/sqlite.connection": crate::host::SqliteConn,
            "spin:sqlite/sqlite.connection": crate::host::SqliteConn,
            "fermyon:spin/key-value.store": crate::host::KvStore,
        },
    });
}

use bindings::fermyon::spin::{key_value as kv2, sqlite as sqlite2, variables as vars2};
use bindings::spin::sqlite::sqlite as sqlite3;
use bindings::wasi::config::store as config;
pub(crate) use bindings::SpinPlatform;

/// Where a SQLite label or key-value store lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbLocation {
    /// A file (created with its parent directories on first use).
    File(PathBuf),
    /// A fresh in-memory database per connection (a label with no `path`).
    Memory,
}

/// An open `connection` resource: rusqlite connection created on first use.
pub struct SqliteConn {
    location: DbLocation,
    conn: OnceLock<Arc<Mutex<rusqlite::Connection>>>,
}

/// An open key-value `store` resource.
pub struct KvStore {
    label: String,
    conn: Arc<Mutex<rusqlite::Connection>>,
}

/// The `T` of every `Store<T>`: one per guest instance, i.e. per request.
pub struct HostState {
    pub(crate) app: Arc<AppInner>,
    pub(crate) component: String,
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) http: WasiHttpCtx,
    pub(crate) hooks: DefaultHooks,
    /// Set by the `trap` fault: the next entry into wasm traps.
    pub(crate) trap_on_entry: bool,
}

/// wasi:http hooks; outgoing requests bypass them (see `outbound.rs`).
pub(crate) struct DefaultHooks;

impl WasiHttpHooks for DefaultHooks {}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

type WResult<T> = wasmtime::Result<T>;

fn open_sqlite(location: &DbLocation) -> Result<rusqlite::Connection, String> {
    match location {
        DbLocation::Memory => rusqlite::Connection::open_in_memory(),
        DbLocation::File(path) => {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|e| {
                    format!(
                        "failed to create sqlite database directory '{}': {e}",
                        parent.display()
                    )
                })?;
            }
            rusqlite::Connection::open(path)
        }
    }
    .map_err(|e| e.to_string())
}

/// The host-side value type shared by both sqlite interface versions.
enum Val {
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
    Null,
}

struct Rows {
    columns: Vec<String>,
    rows: Vec<Vec<Val>>,
}

fn run_query(
    conn: &Mutex<rusqlite::Connection>,
    sql: &str,
    params: Vec<Val>,
) -> Result<Rows, String> {
    let conn = conn.lock().unwrap_or_else(|e| e.into_inner());
    let mut stmt = conn.prepare_cached(sql).map_err(|e| e.to_string())?;
    let columns: Vec<String> = stmt.column_names().into_iter().map(str::to_owned).collect();
    let ncols = columns.len();
    let params = params.into_iter().map(|v| match v {
        Val::Integer(i) => rusqlite::types::Value::Integer(i),
        Val::Real(r) => rusqlite::types::Value::Real(r),
        Val::Text(t) => rusqlite::types::Value::Text(t),
        Val::Blob(b) => rusqlite::types::Value::Blob(b),
        Val::Null => rusqlite::types::Value::Null,
    });
    let mut rows = stmt
        .query(rusqlite::params_from_iter(params))
        .map_err(|e| e.to_string())?;
    let mut out = vec![];
    while let Some(row) = rows.next().map_err(|e| e.to_string())? {
        let mut values = Vec::with_capacity(ncols);
        for i in 0..ncols {
            use rusqlite::types::ValueRef;
            values.push(match row.get_ref(i).map_err(|e| e.to_string())? {
                ValueRef::Null => Val::Null,
                ValueRef::Integer(i) => Val::Integer(i),
                ValueRef::Real(r) => Val::Real(r),
                ValueRef::Text(t) => Val::Text(String::from_utf8_lossy(t).into_owned()),
                ValueRef::Blob(b) => Val::Blob(b.to_vec()),
            });
        }
        out.push(values);
    }
    Ok(Rows { columns, rows: out })
}

/// Whether a statement ends a transaction (for the crash-after-commit fault).
fn is_commit(sql: &str) -> bool {
    let s = sql.trim_start().to_ascii_uppercase();
    s.starts_with("COMMIT") || s.starts_with("END")
}

/// Errors shared by both sqlite versions before conversion.
enum SqlErr {
    NoSuchDatabase,
    AccessDenied,
    InvalidConnection,
    Io(String),
}

impl HostState {
    fn sqlite_open(&mut self, label: &str) -> Result<SqliteConn, SqlErr> {
        let component = &self.app.components[&self.component];
        if !component.sqlite_databases.contains(label) {
            return Err(SqlErr::AccessDenied);
        }
        let location = self
            .app
            .sqlite_locations
            .get(label)
            .cloned()
            .ok_or(SqlErr::NoSuchDatabase)?;
        Ok(SqliteConn {
            location,
            conn: OnceLock::new(),
        })
    }

    /// Runs a statement; `Err(Err(trap))` when the crash-after-commit fault fires.
    async fn sqlite_execute(
        &mut self,
        rep: u32,
        sql: String,
        params: Vec<Val>,
    ) -> WResult<Result<Rows, SqlErr>> {
        let handle: Resource<SqliteConn> = Resource::new_borrow(rep);
        let Ok(c) = self.table.get(&handle) else {
            return Ok(Err(SqlErr::InvalidConnection));
        };
        if let Some(message) = self.app.faults.take_refusal(&self.component, &sql) {
            return Ok(Err(SqlErr::Io(message)));
        }
        let conn = match c.conn.get() {
            Some(conn) => conn.clone(),
            None => match open_sqlite(&c.location) {
                Ok(conn) => c.conn.get_or_init(|| Arc::new(Mutex::new(conn))).clone(),
                Err(e) => return Ok(Err(SqlErr::Io(e))),
            },
        };
        let commit = is_commit(&sql);
        // SQLite blocks (file I/O, busy waits): keep it off the async workers.
        let (result, cpu) = tokio::task::spawn_blocking(move || {
            let t0 = crate::faults::thread_cpu_time();
            let result = run_query(&conn, &sql, params);
            (result, crate::faults::thread_cpu_time().saturating_sub(t0))
        })
        .await
        .map_err(|e| wasmtime::format_err!("sqlite worker failed: {e}"))?;
        let busy = matches!(&result, Err(e) if e.contains("database is locked"));
        self.app.faults.record_sqlite(&self.component, cpu, busy);
        if commit && result.is_ok() && self.app.faults.take_crash_after_commit(&self.component) {
            wasmtime::bail!("spin-host fault injection: crash after COMMIT");
        }
        Ok(result.map_err(SqlErr::Io))
    }

    fn sqlite_last_insert_rowid(&mut self, rep: u32) -> i64 {
        let handle: Resource<SqliteConn> = Resource::new_borrow(rep);
        self.table
            .get(&handle)
            .ok()
            .and_then(|c| {
                c.conn.get().map(|c| {
                    c.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .last_insert_rowid()
                })
            })
            .unwrap_or(0)
    }

    fn sqlite_changes(&mut self, rep: u32) -> u64 {
        let handle: Resource<SqliteConn> = Resource::new_borrow(rep);
        self.table
            .get(&handle)
            .ok()
            .and_then(|c| {
                c.conn
                    .get()
                    .map(|c| c.lock().unwrap_or_else(|e| e.into_inner()).changes())
            })
            .unwrap_or(0)
    }

    fn variable(&self, name: &str) -> Result<String, VariableError> {
        self.app.variables.get(&self.component, name)
    }
}

// ---------------------------------------------------------------- spin:sqlite@3.0.0

fn to_v3_err(e: SqlErr) -> sqlite3::Error {
    match e {
        SqlErr::NoSuchDatabase => sqlite3::Error::NoSuchDatabase,
        SqlErr::AccessDenied => sqlite3::Error::AccessDenied,
        SqlErr::InvalidConnection => sqlite3::Error::InvalidConnection,
        SqlErr::Io(s) => sqlite3::Error::Io(s),
    }
}

impl sqlite3::Host for HostState {}

impl sqlite3::HostConnection for HostState {
    async fn open(
        &mut self,
        database: String,
    ) -> WResult<Result<Resource<SqliteConn>, sqlite3::Error>> {
        match self.sqlite_open(&database) {
            Ok(c) => Ok(Ok(self.table.push(c)?)),
            Err(e) => Ok(Err(to_v3_err(e))),
        }
    }

    async fn execute(
        &mut self,
        conn: Resource<SqliteConn>,
        statement: String,
        parameters: Vec<sqlite3::Value>,
    ) -> WResult<Result<sqlite3::QueryResult, sqlite3::Error>> {
        let params = parameters
            .into_iter()
            .map(|v| match v {
                sqlite3::Value::Integer(i) => Val::Integer(i),
                sqlite3::Value::Real(r) => Val::Real(r),
                sqlite3::Value::Text(t) => Val::Text(t),
                sqlite3::Value::Blob(b) => Val::Blob(b),
                sqlite3::Value::Null => Val::Null,
            })
            .collect();
        let rows = self.sqlite_execute(conn.rep(), statement, params).await?;
        Ok(rows.map_err(to_v3_err).map(|r| sqlite3::QueryResult {
            columns: r.columns,
            rows: r
                .rows
                .into_iter()
                .map(|values| sqlite3::RowResult {
                    values: values
                        .into_iter()
                        .map(|v| match v {
                            Val::Integer(i) => sqlite3::Value::Integer(i),
                            Val::Real(r) => sqlite3::Value::Real(r),
                            Val::Text(t) => sqlite3::Value::Text(t),
                            Val::Blob(b) => sqlite3::Value::Blob(b),
                            Val::Null => sqlite3::Value::Null,
                        })
                        .collect(),
                })
                .collect(),
        }))
    }

    async fn last_insert_rowid(&mut self, conn: Resource<SqliteConn>) -> WResult<i64> {
        Ok(self.sqlite_last_insert_rowid(conn.rep()))
    }

    async fn changes(&mut self, conn: Resource<SqliteConn>) -> WResult<u64> {
        Ok(self.sqlite_changes(conn.rep()))
    }

    async fn drop(&mut self, conn: Resource<SqliteConn>) -> WResult<()> {
        self.table.delete(conn)?;
        Ok(())
    }
}

// ---------------------------------------------------------------- fermyon:spin/sqlite@2.0.0

fn to_v2_err(e: SqlErr) -> sqlite2::Error {
    match e {
        SqlErr::NoSuchDatabase => sqlite2::Error::NoSuchDatabase,
        SqlErr::AccessDenied => sqlite2::Error::AccessDenied,
        SqlErr::InvalidConnection => sqlite2::Error::InvalidConnection,
        SqlErr::Io(s) => sqlite2::Error::Io(s),
    }
}

impl sqlite2::Host for HostState {}

impl sqlite2::HostConnection for HostState {
    async fn open(
        &mut self,
        database: String,
    ) -> WResult<Result<Resource<SqliteConn>, sqlite2::Error>> {
        match self.sqlite_open(&database) {
            Ok(c) => Ok(Ok(self.table.push(c)?)),
            Err(e) => Ok(Err(to_v2_err(e))),
        }
    }

    async fn execute(
        &mut self,
        conn: Resource<SqliteConn>,
        statement: String,
        parameters: Vec<sqlite2::Value>,
    ) -> WResult<Result<sqlite2::QueryResult, sqlite2::Error>> {
        let params = parameters
            .into_iter()
            .map(|v| match v {
                sqlite2::Value::Integer(i) => Val::Integer(i),
                sqlite2::Value::Real(r) => Val::Real(r),
                sqlite2::Value::Text(t) => Val::Text(t),
                sqlite2::Value::Blob(b) => Val::Blob(b),
                sqlite2::Value::Null => Val::Null,
            })
            .collect();
        let rows = self.sqlite_execute(conn.rep(), statement, params).await?;
        Ok(rows.map_err(to_v2_err).map(|r| sqlite2::QueryResult {
            columns: r.columns,
            rows: r
                .rows
                .into_iter()
                .map(|values| sqlite2::RowResult {
                    values: values
                        .into_iter()
                        .map(|v| match v {
                            Val::Integer(i) => sqlite2::Value::Integer(i),
                            Val::Real(r) => sqlite2::Value::Real(r),
                            Val::Text(t) => sqlite2::Value::Text(t),
                            Val::Blob(b) => sqlite2::Value::Blob(b),
                            Val::Null => sqlite2::Value::Null,
                        })
                        .collect(),
                })
                .collect(),
        }))
    }

    async fn drop(&mut self, conn: Resource<SqliteConn>) -> WResult<()> {
        self.table.delete(conn)?;
        Ok(())
    }
}

// ---------------------------------------------------------------- variables

impl vars2::Host for HostState {
    async fn get(&mut self, name: String) -> WResult<Result<String, vars2::Error>> {
        Ok(self.variable(&name).map_err(|e| match e {
            VariableError::InvalidName(m) => vars2::Error::InvalidName(m),
            VariableError::Undefined(m) => vars2::Error::Undefined(m),
            VariableError::Provider(m) => vars2::Error::Provider(m),
            VariableError::Other(m) => vars2::Error::Other(m),
        }))
    }
}

impl config::Host for HostState {
    async fn get(&mut self, key: String) -> WResult<Result<Option<String>, config::Error>> {
        Ok(match self.variable(&key) {
            Ok(v) => Ok(Some(v)),
            Err(VariableError::Undefined(_) | VariableError::InvalidName(_)) => Ok(None),
            Err(VariableError::Provider(m)) => Err(config::Error::Upstream(m)),
            Err(VariableError::Other(m)) => Err(config::Error::Io(m)),
        })
    }

    async fn get_all(&mut self) -> WResult<Result<Vec<(String, String)>, config::Error>> {
        Ok(self
            .app
            .variables
            .get_all(&self.component)
            .map_err(|e| config::Error::Io(format!("{e:?}"))))
    }
}

// ---------------------------------------------------------------- key-value

const KV_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS spin_key_value (
    store TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL, PRIMARY KEY (store, key))";

impl HostState {
    fn kv_conn(&self, rep: u32) -> Result<(String, Arc<Mutex<rusqlite::Connection>>), kv2::Error> {
        let handle: Resource<KvStore> = Resource::new_borrow(rep);
        let s = self
            .table
            .get(&handle)
            .map_err(|e| kv2::Error::Other(e.to_string()))?;
        Ok((s.label.clone(), s.conn.clone()))
    }

    async fn kv_run<T: Send + 'static>(
        &mut self,
        rep: u32,
        f: impl FnOnce(&rusqlite::Connection, &str) -> rusqlite::Result<T> + Send + 'static,
    ) -> WResult<Result<T, kv2::Error>> {
        let (label, conn) = match self.kv_conn(rep) {
            Ok(x) => x,
            Err(e) => return Ok(Err(e)),
        };
        let r = tokio::task::spawn_blocking(move || {
            let conn = conn.lock().unwrap_or_else(|e| e.into_inner());
            f(&conn, &label)
        })
        .await
        .map_err(|e| wasmtime::format_err!("key-value worker failed: {e}"))?;
        Ok(r.map_err(|e| kv2::Error::Other(e.to_string())))
    }
}

impl kv2::Host for HostState {}

impl kv2::HostStore for HostState {
    async fn open(&mut self, label: String) -> WResult<Result<Resource<KvStore>, kv2::Error>> {
        if !self.app.components[&self.component]
            .key_value_stores
            .contains(&label)
        {
            return Ok(Err(kv2::Error::AccessDenied));
        }
        let Some(location) = self.app.kv_locations.get(&label).cloned() else {
            return Ok(Err(kv2::Error::NoSuchStore));
        };
        let conn = tokio::task::spawn_blocking(move || {
            let conn = open_sqlite(&location)?;
            conn.execute_batch(KV_SCHEMA).map_err(|e| e.to_string())?;
            Ok::<_, String>(conn)
        })
        .await
        .map_err(|e| wasmtime::format_err!("key-value worker failed: {e}"))?;
        match conn {
            Ok(conn) => Ok(Ok(self.table.push(KvStore {
                label,
                conn: Arc::new(Mutex::new(conn)),
            })?)),
            Err(e) => Ok(Err(kv2::Error::Other(e))),
        }
    }

    async fn get(
        &mut self,
        store: Resource<KvStore>,
        key: String,
    ) -> WResult<Result<Option<Vec<u8>>, kv2::Error>> {
        self.kv_run(store.rep(), move |c, label| {
            use rusqlite::OptionalExtension;
            c.query_row(
                "SELECT value FROM spin_key_value WHERE store = ? AND key = ?",
                [label, key.as_str()],
                |r| r.get::<_, Vec<u8>>(0),
            )
            .optional()
        })
        .await
    }

    async fn set(
        &mut self,
        store: Resource<KvStore>,
        key: String,
        value: Vec<u8>,
    ) -> WResult<Result<(), kv2::Error>> {
        self.kv_run(store.rep(), move |c, label| {
            c.execute(
                "INSERT INTO spin_key_value (store, key, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT (store, key) DO UPDATE SET value = excluded.value",
                rusqlite::params![label, key, value],
            )
            .map(|_| ())
        })
        .await
    }

    async fn delete(
        &mut self,
        store: Resource<KvStore>,
        key: String,
    ) -> WResult<Result<(), kv2::Error>> {
        self.kv_run(store.rep(), move |c, label| {
            c.execute(
                "DELETE FROM spin_key_value WHERE store = ? AND key = ?",
                [label, key.as_str()],
            )
            .map(|_| ())
        })
        .await
    }

    async fn exists(
        &mut self,
        store: Resource<KvStore>,
        key: String,
    ) -> WResult<Result<bool, kv2::Error>> {
        self.kv_run(store.rep(), move |c, label| {
            c.query_row(
                "SELECT EXISTS (SELECT 1 FROM spin_key_value WHERE store = ? AND key = ?)",
                [label, key.as_str()],
                |r| r.get::<_, bool>(0),
            )
        })
        .await
    }

    async fn get_keys(
        &mut self,
        store: Resource<KvStore>,
    ) -> WResult<Result<Vec<String>, kv2::Error>> {
        self.kv_run(store.rep(), move |c, label| {
            let mut stmt = c.prepare("SELECT key FROM spin_key_value WHERE store = ?")?;
            let keys = stmt.query_map([label], |r| r.get::<_, String>(0))?;
            keys.collect()
        })
        .await
    }

    async fn drop(&mut self, store: Resource<KvStore>) -> WResult<()> {
        self.table.delete(store)?;
        Ok(())
    }
}

/// The set of labels a component may use.
pub(crate) type Labels = HashSet<String>;
