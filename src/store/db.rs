//! How the store reaches its database: one small statement API over two executors.
//!
//! - **Postgres**: sqlx's pool (there the cost is the network round trips, not the hand-offs).
//! - **SQLite**: one rusqlite connection behind a mutex, each statement run *inline* on
//!   the task that asks for it. sqlx's SQLite driver runs every connection on a worker thread of
//!   its own and sends each statement there and each row back: two thread hops per statement.
//!   A profile of the signed-in code flow (issue 14, docs/benchmarks.md) put a third of the
//!   server's CPU on that worker thread, three quarters of it in the kernel switching threads,
//!   and most of the tokio workers' kernel time in the matching wake-ups. A statement here takes
//!   microseconds (WAL, `synchronous = NORMAL`: a commit is a write(2), not an fsync), so running
//!   it where it is asked for is cheaper than any hand-off.
//!
//! Both executors take the same SQL (`$1`-style parameters, which SQLite reads as named
//! parameters `$1`, `$2`, … and which are bound here by their number) and give back [`DbRow`]s.
//! Call sites read like sqlx's: `self.sql(SQL).bind(x).fetch_optional(&self.pool).await?`, and
//! inside a transaction `.execute(&mut *tx)`.

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::any::AnyTypeInfoKind;
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyPool, Column, Row, ValueRef};

use super::{StoreError, StoreResult};

/// How long a statement keeps retrying while another process (a CLI command, a backup) holds
/// SQLite's write lock: the old `busy_timeout`.
pub(super) const SQLITE_BUSY_BUDGET: Duration = Duration::from_secs(5);
/// The SQLite connection's prepared statements kept ready (rusqlite's default is 16; the
/// request paths alone use more).
const SQLITE_STATEMENT_CACHE: usize = 256;

/// One bound parameter or one column value.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Value {
    /// A NULL, with the type Postgres must be told for it.
    Null(NullKind),
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum NullKind {
    Int,
    Real,
    Text,
    Blob,
}

/// What can be bound as a parameter.
pub(super) trait IntoValue {
    fn into_value(self) -> Value;
    fn null_kind() -> NullKind;
}

macro_rules! into_value {
    ($t:ty, $kind:ident, |$v:ident| $e:expr) => {
        impl IntoValue for $t {
            fn into_value(self) -> Value {
                let $v = self;
                $e
            }
            fn null_kind() -> NullKind {
                NullKind::$kind
            }
        }
    };
}

into_value!(i64, Int, |v| Value::Int(v));
into_value!(i32, Int, |v| Value::Int(i64::from(v)));
into_value!(bool, Int, |v| Value::Int(i64::from(v)));
into_value!(f64, Real, |v| Value::Real(v));
into_value!(String, Text, |v| Value::Text(v));
into_value!(&String, Text, |v| Value::Text(v.clone()));
into_value!(&str, Text, |v| Value::Text(v.to_string()));
into_value!(Vec<u8>, Blob, |v| Value::Blob(v));
into_value!(&[u8], Blob, |v| Value::Blob(v.to_vec()));

impl<T: IntoValue> IntoValue for Option<T> {
    fn into_value(self) -> Value {
        match self {
            Some(v) => v.into_value(),
            None => Value::Null(T::null_kind()),
        }
    }
    fn null_kind() -> NullKind {
        T::null_kind()
    }
}

impl<T: IntoValue + Clone> IntoValue for &Option<T> {
    fn into_value(self) -> Value {
        self.clone().into_value()
    }
    fn null_kind() -> NullKind {
        T::null_kind()
    }
}

/// What a column can be read as.
pub(super) trait FromValue: Sized {
    fn from_value(value: &Value) -> Option<Self>;
}

impl FromValue for i64 {
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Int(v) => Some(*v),
            _ => None,
        }
    }
}

impl FromValue for i32 {
    fn from_value(value: &Value) -> Option<Self> {
        i64::from_value(value).and_then(|v| i32::try_from(v).ok())
    }
}

impl FromValue for bool {
    fn from_value(value: &Value) -> Option<Self> {
        i64::from_value(value).map(|v| v != 0)
    }
}

impl FromValue for f64 {
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Real(v) => Some(*v),
            Value::Int(v) => Some(*v as f64),
            _ => None,
        }
    }
}

impl FromValue for String {
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Text(v) => Some(v.clone()),
            _ => None,
        }
    }
}

impl FromValue for Vec<u8> {
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Blob(v) => Some(v.clone()),
            _ => None,
        }
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Null(_) => Some(None),
            other => T::from_value(other).map(Some),
        }
    }
}

/// One result row.
#[derive(Clone, Debug)]
pub(super) struct DbRow {
    columns: Arc<[String]>,
    values: Vec<Value>,
}

impl DbRow {
    /// The column `name` as a `T`: a missing column or another type is corrupt data (or a bug),
    /// never a panic. (The second type parameter keeps sqlx's `try_get::<T, _>` call shape.)
    pub(super) fn try_get<T: FromValue, I: AsRef<str>>(&self, name: I) -> StoreResult<T> {
        let name = name.as_ref();
        let index = self
            .columns
            .iter()
            .position(|c| c == name)
            .ok_or_else(|| StoreError::Corrupt(format!("no column {name} in the result")))?;
        let value = self.values.get(index).ok_or_else(|| StoreError::Corrupt(format!("no value for column {name}")))?;
        T::from_value(value).ok_or_else(|| StoreError::Corrupt(format!("column {name} holds {}", describe(value))))
    }
}

fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null(_) => "NULL",
        Value::Int(_) => "an integer",
        Value::Real(_) => "a real",
        Value::Text(_) => "text",
        Value::Blob(_) => "a blob",
    }
}

/// What `execute` reports.
#[derive(Clone, Copy, Debug)]
pub(super) struct Done {
    rows_affected: u64,
}

impl Done {
    pub(super) fn rows_affected(&self) -> u64 {
        self.rows_affected
    }
}

/// The database: a Postgres pool, or the one SQLite connection.
#[derive(Clone, Debug)]
pub(super) enum Db {
    Postgres(AnyPool),
    Sqlite(Arc<SqliteDb>),
}

/// The SQLite connection, held. A plain (not async) mutex: it is held only while statements run
/// inline, which never wait on anything, so a turn is microseconds. An async mutex hands the
/// connection to the first waiter in line, which must then be scheduled before anyone can use
/// it; under load those hand-offs kept the SQLite flows below what the CPU could do (refresh:
/// 2,430/s on 1.13 cores with tokio's mutex, 3,101/s on 1.45 cores with this one, same quiet
/// machine; docs/benchmarks.md). Its guard is `Send` (parking_lot's `send_guard`) so that a
/// transaction can hold it across the `.await`s of its statements, which complete at once: a
/// transaction must never await anything else while it holds the connection.
type Guard = parking_lot::ArcMutexGuard<parking_lot::RawMutex, rusqlite::Connection>;

#[derive(Debug)]
pub(super) struct SqliteDb {
    conn: Arc<parking_lot::Mutex<rusqlite::Connection>>,
    /// How long a request waits for its turn on the connection (`database_acquire_timeout`).
    acquire_timeout: Duration,
    closed: AtomicBool,
}

/// A connection taken from the database for several statements: a transaction, or (outside
/// one) a connection held between statements.
pub(super) enum Conn {
    PostgresTx(sqlx::Transaction<'static, Any>),
    Postgres(PoolConnection<Any>),
    /// A SQLite transaction: the connection is held until it ends.
    Sqlite(Guard),
    /// SQLite outside a transaction: each statement takes its own turn on the connection.
    SqliteFree(Arc<SqliteDb>),
    /// A transaction's connection after its commit or rollback (the connection went back).
    Ended,
}

/// A transaction: committed by [`Tx::commit`], rolled back otherwise (also when dropped).
pub(super) struct Tx {
    conn: Conn,
}

impl Deref for Tx {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        &self.conn
    }
}

impl DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut Conn {
        &mut self.conn
    }
}

impl Tx {
    pub(super) async fn commit(mut self) -> StoreResult<()> {
        match std::mem::replace(&mut self.conn, Conn::Ended) {
            Conn::PostgresTx(tx) => Ok(tx.commit().await?),
            Conn::Sqlite(conn) => sqlite_end(&conn, "COMMIT"),
            Conn::Postgres(_) | Conn::SqliteFree(_) | Conn::Ended => Ok(()),
        }
    }

    pub(super) async fn rollback(mut self) -> StoreResult<()> {
        match std::mem::replace(&mut self.conn, Conn::Ended) {
            Conn::PostgresTx(tx) => Ok(tx.rollback().await?),
            Conn::Sqlite(conn) => sqlite_end(&conn, "ROLLBACK"),
            Conn::Postgres(_) | Conn::SqliteFree(_) | Conn::Ended => Ok(()),
        }
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        // Postgres: sqlx rolls its transaction back on drop. SQLite: roll back here, before the
        // connection goes back, so the next user never inherits an open transaction.
        if let Conn::Sqlite(conn) = &self.conn {
            if !conn.is_autocommit() {
                if let Err(e) = conn.execute_batch("ROLLBACK") {
                    tracing::error!(error = %e, "rolling back an abandoned SQLite transaction failed");
                }
            }
        }
    }
}

fn sqlite_end(conn: &rusqlite::Connection, sql: &str) -> StoreResult<()> {
    if let Err(e) = conn.execute_batch(sql) {
        // A failed COMMIT leaves the transaction open: end it so the connection is usable.
        if !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        return Err(e.into());
    }
    Ok(())
}

impl Db {
    pub(super) fn sqlite(conn: rusqlite::Connection, acquire_timeout: Duration) -> StoreResult<Self> {
        conn.set_prepared_statement_cache_capacity(SQLITE_STATEMENT_CACHE);
        Ok(Db::Sqlite(Arc::new(SqliteDb {
            conn: Arc::new(parking_lot::Mutex::new(conn)),
            acquire_timeout,
            closed: AtomicBool::new(false),
        })))
    }

    /// A transaction. On SQLite `BEGIN IMMEDIATE`: the write lock is taken at once, so a
    /// transaction never fails half-way because another process began writing after it read.
    pub(super) async fn begin(&self) -> StoreResult<Tx> {
        match self {
            Db::Postgres(pool) => Ok(Tx { conn: Conn::PostgresTx(pool.begin().await?) }),
            Db::Sqlite(db) => {
                let deadline = Instant::now() + SQLITE_BUSY_BUDGET;
                loop {
                    let conn = db.lock()?;
                    match conn.execute_batch("BEGIN IMMEDIATE") {
                        Ok(()) => return Ok(Tx { conn: Conn::Sqlite(conn) }),
                        Err(e) if is_busy(&e) && Instant::now() < deadline => {
                            drop(conn);
                            tokio::time::sleep(busy_pause(deadline)).await;
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }
    }

    /// A connection held for several statements, without a transaction.
    pub(super) async fn acquire(&self) -> StoreResult<Conn> {
        match self {
            Db::Postgres(pool) => Ok(Conn::Postgres(pool.acquire().await?)),
            Db::Sqlite(db) => Ok(Conn::SqliteFree(db.clone())),
        }
    }

    /// (in use, idle) connections, for the metrics.
    pub(super) fn state(&self) -> (i64, i64) {
        match self {
            Db::Postgres(pool) => {
                let idle = i64::try_from(pool.num_idle()).unwrap_or(i64::MAX);
                (i64::from(pool.size()) - idle, idle)
            }
            Db::Sqlite(db) => {
                if db.conn.is_locked() {
                    (1, 0)
                } else {
                    (0, 1)
                }
            }
        }
    }

    pub(super) async fn close(&self) {
        match self {
            Db::Postgres(pool) => pool.close().await,
            Db::Sqlite(db) => db.closed.store(true, Ordering::SeqCst),
        }
    }
}

impl SqliteDb {
    /// Puts a freshly opened connection in place of the current one (after the migrations,
    /// which run on a connection of sqlx's: see `Store::migrate`).
    pub(super) async fn replace(&self, conn: rusqlite::Connection) -> StoreResult<()> {
        conn.set_prepared_statement_cache_capacity(SQLITE_STATEMENT_CACHE);
        *self.lock()? = conn;
        Ok(())
    }

    /// A turn on the connection. Turns last microseconds; the bound is for a connection that is
    /// somehow stuck, which then answers 503 like an exhausted pool.
    fn lock(&self) -> StoreResult<Guard> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("the database is closed".into()));
        }
        parking_lot::Mutex::try_lock_arc_for(&self.conn, self.acquire_timeout)
            .ok_or_else(|| StoreError::Unavailable("timed out waiting for the database connection".into()))
    }
}

/// SQLITE_BUSY (and its extended codes): another process holds the write lock.
fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.extended_code & 0xff == 5)
}

/// A short pause before trying a busy database again: up to 20 ms, never past the deadline.
fn busy_pause(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now()).min(Duration::from_millis(20))
}

/// Where a statement runs: the database (a connection taken for this one statement) or a
/// connection already held.
pub(super) enum Target<'c> {
    Db(&'c Db),
    Conn(&'c mut Conn),
}

impl<'c> From<&'c Db> for Target<'c> {
    fn from(db: &'c Db) -> Self {
        Target::Db(db)
    }
}

impl<'c> From<&'c mut Conn> for Target<'c> {
    fn from(conn: &'c mut Conn) -> Self {
        Target::Conn(conn)
    }
}

impl<'c> From<&'c mut Tx> for Target<'c> {
    fn from(tx: &'c mut Tx) -> Self {
        Target::Conn(tx)
    }
}

/// One statement with its parameters, built by `Store::sql`.
#[must_use]
pub(super) struct Stmt<'q> {
    sql: &'q str,
    args: Vec<Value>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Want {
    Nothing,
    Rows,
}

struct Outcome {
    rows: Vec<DbRow>,
    rows_affected: u64,
}

impl<'q> Stmt<'q> {
    pub(super) fn new(sql: &'q str) -> Self {
        Self { sql, args: Vec::new() }
    }

    pub(super) fn bind(mut self, value: impl IntoValue) -> Self {
        self.args.push(value.into_value());
        self
    }

    pub(super) async fn execute<'c>(self, target: impl Into<Target<'c>>) -> StoreResult<Done> {
        let outcome = self.run(target.into(), Want::Nothing).await?;
        Ok(Done { rows_affected: outcome.rows_affected })
    }

    pub(super) async fn fetch_all<'c>(self, target: impl Into<Target<'c>>) -> StoreResult<Vec<DbRow>> {
        Ok(self.run(target.into(), Want::Rows).await?.rows)
    }

    pub(super) async fn fetch_optional<'c>(self, target: impl Into<Target<'c>>) -> StoreResult<Option<DbRow>> {
        Ok(self.run(target.into(), Want::Rows).await?.rows.into_iter().next())
    }

    pub(super) async fn fetch_one<'c>(self, target: impl Into<Target<'c>>) -> StoreResult<DbRow> {
        self.fetch_optional(target).await?.ok_or_else(|| StoreError::Other("the statement returned no row".into()))
    }

    async fn run(self, target: Target<'_>, want: Want) -> StoreResult<Outcome> {
        match target {
            Target::Db(Db::Postgres(pool)) => {
                let mut conn = pool.acquire().await?;
                self.run_postgres(&mut conn, want).await
            }
            Target::Conn(Conn::PostgresTx(tx)) => self.run_postgres(&mut *tx, want).await,
            Target::Conn(Conn::Postgres(conn)) => self.run_postgres(&mut *conn, want).await,
            Target::Db(Db::Sqlite(db)) => self.run_sqlite_turn(db, want).await,
            Target::Conn(Conn::SqliteFree(db)) => self.run_sqlite_turn(db, want).await,
            Target::Conn(Conn::Ended) => Err(StoreError::Other("a statement after its transaction ended".into())),
            // Inside a transaction the write lock is already ours (BEGIN IMMEDIATE).
            Target::Conn(Conn::Sqlite(conn)) => Ok(run_sqlite(conn, self.sql, &self.args, want)?),
        }
    }

    /// One statement in a turn of its own on the SQLite connection. Another process writing
    /// (SQLITE_BUSY): wait asynchronously, without the connection, which other requests go on
    /// using, and try again, up to the budget.
    async fn run_sqlite_turn(&self, db: &SqliteDb, want: Want) -> StoreResult<Outcome> {
        let deadline = Instant::now() + SQLITE_BUSY_BUDGET;
        loop {
            let outcome = {
                let conn = db.lock()?;
                run_sqlite(&conn, self.sql, &self.args, want)
            };
            match outcome {
                Err(e) if is_busy(&e) && Instant::now() < deadline => {
                    tokio::time::sleep(busy_pause(deadline)).await;
                }
                other => return Ok(other?),
            }
        }
    }

    async fn run_postgres(self, conn: &mut sqlx::AnyConnection, want: Want) -> StoreResult<Outcome> {
        let mut query = sqlx::query(self.sql);
        for arg in self.args {
            query = match arg {
                Value::Null(NullKind::Int) => query.bind(None::<i64>),
                Value::Null(NullKind::Real) => query.bind(None::<f64>),
                Value::Null(NullKind::Text) => query.bind(None::<String>),
                Value::Null(NullKind::Blob) => query.bind(None::<Vec<u8>>),
                Value::Int(v) => query.bind(v),
                Value::Real(v) => query.bind(v),
                Value::Text(v) => query.bind(v),
                Value::Blob(v) => query.bind(v),
            };
        }
        if want == Want::Nothing {
            let done = query.execute(conn).await?;
            return Ok(Outcome { rows: Vec::new(), rows_affected: done.rows_affected() });
        }
        let raw = query.fetch_all(conn).await?;
        let Some(first) = raw.first() else { return Ok(Outcome { rows: Vec::new(), rows_affected: 0 }) };
        let columns: Arc<[String]> = first.columns().iter().map(|c| c.name().to_string()).collect();
        let mut rows = Vec::with_capacity(raw.len());
        for row in &raw {
            let mut values = Vec::with_capacity(columns.len());
            for index in 0..columns.len() {
                values.push(postgres_value(row, index)?);
            }
            rows.push(DbRow { columns: columns.clone(), values });
        }
        let rows_affected = rows.len() as u64;
        Ok(Outcome { rows, rows_affected })
    }
}

fn postgres_value(row: &sqlx::any::AnyRow, index: usize) -> StoreResult<Value> {
    let raw = row.try_get_raw(index)?;
    if raw.is_null() {
        return Ok(Value::Null(NullKind::Text));
    }
    let kind = raw.type_info().kind();
    Ok(match kind {
        AnyTypeInfoKind::Bool => Value::Int(i64::from(row.try_get::<bool, _>(index)?)),
        AnyTypeInfoKind::SmallInt => Value::Int(i64::from(row.try_get::<i16, _>(index)?)),
        AnyTypeInfoKind::Integer => Value::Int(i64::from(row.try_get::<i32, _>(index)?)),
        AnyTypeInfoKind::BigInt => Value::Int(row.try_get::<i64, _>(index)?),
        AnyTypeInfoKind::Real => Value::Real(f64::from(row.try_get::<f32, _>(index)?)),
        AnyTypeInfoKind::Double => Value::Real(row.try_get::<f64, _>(index)?),
        AnyTypeInfoKind::Text => Value::Text(row.try_get::<String, _>(index)?),
        AnyTypeInfoKind::Blob => Value::Blob(row.try_get::<Vec<u8>, _>(index)?),
        AnyTypeInfoKind::Null => Value::Null(NullKind::Text),
    })
}

/// Runs one statement on the SQLite connection, here and now.
fn run_sqlite(conn: &rusqlite::Connection, sql: &str, args: &[Value], want: Want) -> rusqlite::Result<Outcome> {
    let mut stmt = conn.prepare_cached(sql)?;
    for index in 1..=stmt.parameter_count() {
        // `$N` is SQLite's named parameter "$N"; SQLite numbers parameters in order of first
        // appearance, so bind each by the number in its name.
        let position = stmt
            .parameter_name(index)
            .and_then(|name| name.strip_prefix('$'))
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(index);
        let value =
            args.get(position.wrapping_sub(1)).ok_or(rusqlite::Error::InvalidParameterCount(position, args.len()))?;
        match value {
            Value::Null(_) => stmt.raw_bind_parameter(index, rusqlite::types::Null)?,
            Value::Int(v) => stmt.raw_bind_parameter(index, v)?,
            Value::Real(v) => stmt.raw_bind_parameter(index, v)?,
            Value::Text(v) => stmt.raw_bind_parameter(index, v)?,
            Value::Blob(v) => stmt.raw_bind_parameter(index, v)?,
        }
    }
    let writes = !stmt.readonly();
    let column_count = stmt.column_count();
    let columns: Arc<[String]> = stmt.column_names().iter().map(|c| c.to_string()).collect();
    let mut rows = Vec::new();
    {
        let mut raw = stmt.raw_query();
        while let Some(row) = raw.next()? {
            if want == Want::Nothing {
                continue;
            }
            let mut values = Vec::with_capacity(column_count);
            for index in 0..column_count {
                values.push(match row.get_ref(index)? {
                    rusqlite::types::ValueRef::Null => Value::Null(NullKind::Text),
                    rusqlite::types::ValueRef::Integer(v) => Value::Int(v),
                    rusqlite::types::ValueRef::Real(v) => Value::Real(v),
                    rusqlite::types::ValueRef::Text(v) => Value::Text(String::from_utf8_lossy(v).into_owned()),
                    rusqlite::types::ValueRef::Blob(v) => Value::Blob(v.to_vec()),
                });
            }
            rows.push(DbRow { columns: columns.clone(), values });
        }
    }
    let rows_affected = if writes { conn.changes() } else { 0 };
    Ok(Outcome { rows, rows_affected })
}
