use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{ConnectOptions, Executor};

use super::db::Db;
use super::statements::StatementLog;
use super::{StoreError, StoreResult};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// A handle on the database: cheap to clone, shared by every request.
#[derive(Clone, Debug)]
pub struct Store {
    pub(super) pool: Db,
    backend: Backend,
    /// The database URL, for the migration run (sqlx's migrator, on a connection of its own).
    pub(super) url: String,
    /// What tests/api/query_plans.rs records (store/statements.rs); shared by clones.
    pub(super) log: Arc<StatementLog>,
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        Self::classify(e).counted()
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        let error = match &e {
            rusqlite::Error::SqliteFailure(f, _) => {
                // 2067 SQLITE_CONSTRAINT_UNIQUE, 1555 SQLITE_CONSTRAINT_PRIMARYKEY.
                if matches!(f.extended_code, 2067 | 1555) {
                    StoreError::Conflict(e.to_string())
                } else if sqlite_unavailable(&f.extended_code.to_string()) {
                    StoreError::Unavailable(e.to_string())
                } else {
                    StoreError::Other(e.to_string())
                }
            }
            _ => StoreError::Other(e.to_string()),
        };
        error.counted()
    }
}

impl StoreError {
    /// Counts the error in the metrics by kind, whichever driver it came from.
    fn counted(self) -> Self {
        crate::metrics::count_database_error(match &self {
            StoreError::Unavailable(_) => "unavailable",
            StoreError::Conflict(_) => "conflict",
            StoreError::Corrupt(_) => "corrupt",
            StoreError::Other(_) => "other",
        });
        self
    }

    fn classify(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e.to_string()),
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(db.message().to_string()),
            sqlx::Error::Database(db) => {
                let code = db.code().unwrap_or_default();
                let unavailable = if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                    sqlite_unavailable(&code)
                } else {
                    postgres_unavailable(&code)
                };
                if unavailable {
                    StoreError::Unavailable(e.to_string())
                } else {
                    StoreError::Other(e.to_string())
                }
            }
            _ => StoreError::Other(e.to_string()),
        }
    }
}

/// Postgres SQLSTATEs (PostgreSQL manual, appendix A) that say "the database can't serve us
/// right now", not "this statement is wrong": the request did nothing and a retry later can
/// succeed, so the answer is 503 `temporarily_unavailable`, never 500 (issue 9, item 3).
fn postgres_unavailable(code: &str) -> bool {
    // Whole classes: 08 connection exception, 53 insufficient resources (disk full, out of
    // memory, too many connections), 58 system error (I/O error in the server).
    let class = code.get(..2).unwrap_or_default();
    matches!(class, "08" | "53" | "58")
        || matches!(
            code,
            // 57P01-05: admin/crash shutdown, cannot connect now, database dropped, idle
            // session timeout (pg_terminate_backend gives 57P01).
            "57P01" | "57P02" | "57P03" | "57P04" | "57P05"
            // query_canceled: statement timeout or pg_cancel_backend.
            | "57014"
            // object_not_in_prerequisite_state: "database … is not currently accepting
            // connections" (ALTER DATABASE … ALLOW_CONNECTIONS false); object_in_use;
            // lock_not_available.
            | "55000" | "55006" | "55P03"
            // read_only_sql_transaction: a read-only replica or default_transaction_read_only.
            // Nothing was written, so the write must not be reported as done.
            | "25006"
            // serialization_failure, deadlock_detected: rolled back, retryable.
            | "40001" | "40P01"
            // invalid_catalog_name (the database is gone or being recreated) and
            // invalid_authorization_specification / invalid_password (pg_hba or a rotated
            // password refuses the connection): only seen while connecting, and the request
            // can do nothing about them; /readyz says the same.
            | "3D000" | "28000" | "28P01"
        )
}

/// SQLite result codes (<https://sqlite.org/rescode.html>); sqlx reports the extended code,
/// whose low byte is the primary one (SQLITE_BUSY_SNAPSHOT 517 is SQLITE_BUSY 5).
fn sqlite_unavailable(code: &str) -> bool {
    let Ok(extended) = code.parse::<i32>() else { return false };
    // BUSY / LOCKED after the busy timeout, NOMEM, READONLY (file or directory made
    // read-only), IOERR, FULL (disk full), CANTOPEN (file removed or unreadable).
    matches!(extended & 0xff, 5 | 6 | 7 | 8 | 10 | 13 | 14)
}

impl Store {
    /// Connects (creating an SQLite file when needed). Does not run migrations.
    pub async fn connect(url: &str, max_connections: u32, acquire_timeout: Duration) -> StoreResult<Self> {
        sqlx::any::install_default_drivers();
        if url.starts_with("sqlite:") {
            // Create the file on first start unless the URL says otherwise.
            let url = if url.contains("mode=") {
                url.to_string()
            } else if url.contains('?') {
                format!("{url}&mode=rwc")
            } else {
                format!("{url}?mode=rwc")
            };
            let conn = open_sqlite(&url)?;
            return Ok(Self {
                pool: Db::sqlite(conn, acquire_timeout)?,
                backend: Backend::Sqlite,
                url,
                log: Arc::default(),
            });
        }
        let options = AnyConnectOptions::from_str(url)
            .map_err(|e| StoreError::Other(format!("database_url: {e}")))?
            .disable_statement_logging();
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .min_connections(0)
            .acquire_timeout(acquire_timeout)
            // No ping before every query: it doubled the round trips of the token endpoint. A
            // connection broken by a database restart fails its next query (answered 503) and
            // is dropped; the pool reconnects on its own.
            .test_before_acquire(false)
            .after_connect(|conn, _meta| {
                Box::pin(async move {
                    // Issue 9 item 10: plan each execution for the tables as they are now.
                    // Otherwise a connection keeps the generic plan it makes for a prepared
                    // statement after five executions; made while the tables were tiny (a new
                    // deployment) it reads whole tables as they grow, until autovacuum happens
                    // to analyse them. Measured: 11,546 code flows, 6,435 sequential scans of
                    // `grants`. Planning these one-row statements costs microseconds. And
                    // notices (`relation "_sqlx_migrations" already exists, skipping` on every
                    // start) are not news; sqlx would log each at info. Warnings and errors
                    // still come through (issue 9 item 9). One round trip for both.
                    conn.execute("SET plan_cache_mode = force_custom_plan; SET client_min_messages = warning").await?;
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        Ok(Self { pool: Db::Postgres(pool), backend: Backend::Postgres, url: url.to_string(), log: Arc::default() })
    }

    /// Connections of the pool: (in use, idle), for the metrics.
    pub fn pool_state(&self) -> (i64, i64) {
        self.pool.state()
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Readiness check: a trivial query with a short deadline.
    pub async fn ping(&self) -> StoreResult<()> {
        self.sql("SELECT 1").fetch_optional(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Opens the SQLite database of a `sqlite:` URL (sqlx's forms: `sqlite:path`, `sqlite://path`,
/// `sqlite::memory:`, with `?mode=ro|rw|rwc|memory`) as the server's one connection.
///
/// WAL lets the CLI and backups read beside the writer; `synchronous = NORMAL` in WAL makes a
/// commit durable against a crash of the process (not of the machine before the next
/// checkpoint; SQLite's documented trade-off, the same as before). No busy timeout: a
/// statement that finds the write lock taken by another process gets SQLITE_BUSY at once and
/// waits asynchronously (store/db.rs), so it never blocks a runtime thread.
pub(super) fn open_sqlite(url: &str) -> StoreResult<rusqlite::Connection> {
    use rusqlite::OpenFlags;
    let rest = url.strip_prefix("sqlite:").unwrap_or(url);
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut memory = path == ":memory:" || path.is_empty();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=').unwrap_or((pair, "")) {
            ("mode", "ro") => flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            ("mode", "rw") => {}
            ("mode", "rwc") => flags |= OpenFlags::SQLITE_OPEN_CREATE,
            ("mode", "memory") => memory = true,
            (key, value) => {
                return Err(StoreError::Other(format!("database_url: unsupported SQLite option {key}={value}")))
            }
        }
    }
    let conn = if memory {
        rusqlite::Connection::open_in_memory()
    } else {
        rusqlite::Connection::open_with_flags(path, flags)
    }
    .map_err(|e| StoreError::Unavailable(format!("database_url: cannot open {path}: {e}")))?;
    // A busy_timeout of 0 here: see above. journal_mode also takes a lock, so a CLI command
    // starting while the server writes may see SQLITE_BUSY: retry it for the usual budget.
    conn.busy_timeout(Duration::ZERO)?;
    let deadline = std::time::Instant::now() + super::db::SQLITE_BUSY_BUDGET;
    loop {
        match conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(())) {
            Ok(()) => break,
            Err(rusqlite::Error::SqliteFailure(f, _))
                if f.extended_code & 0xff == 5 && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(e.into()),
        }
    }
    conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")?;
    Ok(conn)
}
