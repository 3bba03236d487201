use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions, Executor};

use super::statements::StatementLog;
use super::{StoreError, StoreResult};

/// Connections used at most on SQLite, whatever `database_max_connections` says.
const SQLITE_MAX_CONNECTIONS: u32 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// A handle on the database: cheap to clone, shared by every request.
#[derive(Clone, Debug)]
pub struct Store {
    pub(super) pool: AnyPool,
    backend: Backend,
    /// What tests/api/query_plans.rs records (store/statements.rs); shared by clones.
    pub(super) log: Arc<StatementLog>,
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        let error = Self::classify(e);
        crate::metrics::count_database_error(match &error {
            StoreError::Unavailable(_) => "unavailable",
            StoreError::Conflict(_) => "conflict",
            StoreError::Corrupt(_) => "corrupt",
            StoreError::Other(_) => "other",
        });
        error
    }
}

impl StoreError {
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
        let (backend, url) = if url.starts_with("sqlite:") {
            // Create the file on first start unless the URL says otherwise.
            let url = if url.contains("mode=") {
                url.to_string()
            } else if url.contains('?') {
                format!("{url}&mode=rwc")
            } else {
                format!("{url}?mode=rwc")
            };
            (Backend::Sqlite, url)
        } else {
            (Backend::Postgres, url.to_string())
        };
        let options = AnyConnectOptions::from_str(&url)
            .map_err(|e| StoreError::Other(format!("database_url: {e}")))?
            .disable_statement_logging();
        // SQLite has one writer at a time: with more connections, writers wait in SQLite's busy
        // handler, which sleeps in steps of up to 100 ms. One connection, taking turns in the
        // pool's queue, gave the same throughput with a max latency of 139 ms instead of 2.6 s
        // (docs/benchmarks.md). Postgres gets the configured pool.
        let max_connections =
            if backend == Backend::Sqlite { max_connections.min(SQLITE_MAX_CONNECTIONS) } else { max_connections };
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .min_connections(0)
            .acquire_timeout(acquire_timeout)
            // No ping before every query: it doubled the round trips of the token endpoint. A
            // connection broken by a database restart fails its next query (answered 503) and
            // is dropped; the pool reconnects on its own.
            .test_before_acquire(false)
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // busy_timeout makes a writer wait for the lock instead of failing at
                        // once; it comes first, because switching to (or confirming) WAL takes a
                        // lock too, and a CLI command starting while the server writes got
                        // SQLITE_BUSY there. WAL lets readers run beside the one writer.
                        conn.execute("PRAGMA busy_timeout = 5000").await?;
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA synchronous = NORMAL").await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                    } else {
                        // Issue 9 item 10: plan each execution for the tables as they are now.
                        // Otherwise a connection keeps the generic plan it makes for a prepared
                        // statement after five executions; made while the tables were tiny (a
                        // new deployment) it reads whole tables as they grow, until autovacuum
                        // happens to analyse them. Measured: 11,546 code flows, 6,435 sequential
                        // scans of `grants`. Planning these one-row statements costs microseconds.
                        // And notices (`relation "_sqlx_migrations" already exists, skipping` on
                        // every start) are not news; sqlx would log each at info. Warnings and
                        // errors still come through (issue 9 item 9). One round trip for both.
                        conn.execute("SET plan_cache_mode = force_custom_plan; SET client_min_messages = warning")
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        Ok(Self { pool, backend, log: Arc::default() })
    }

    /// Connections of the pool: (in use, idle), for the metrics.
    pub fn pool_state(&self) -> (i64, i64) {
        let idle = i64::try_from(self.pool.num_idle()).unwrap_or(i64::MAX);
        (i64::from(self.pool.size()) - idle, idle)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Readiness check: a trivial query with a short deadline.
    pub async fn ping(&self) -> StoreResult<()> {
        self.sql("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}
