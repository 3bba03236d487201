use std::borrow::Cow;

use sqlx::migrate::{Migration, MigrationType, Migrator};

use super::db::Db;
use super::{Backend, Store, StoreError, StoreResult};

/// Migrations are compiled into the binary so a deployment is one file. Postgres and SQLite
/// have the same version numbers; each list is applied in order.
const POSTGRES: &[(i64, &str, &str)] = &[
    (1, "initial", include_str!("../../migrations/postgres/0001_initial.sql")),
    (2, "users and login", include_str!("../../migrations/postgres/0002_users_and_login.sql")),
    (3, "mfa, throttling and audit", include_str!("../../migrations/postgres/0003_mfa_throttling_audit.sql")),
    (4, "key rotation", include_str!("../../migrations/postgres/0004_key_rotation.sql")),
    (5, "key-driven lookups", include_str!("../../migrations/postgres/0005_key_driven_lookups.sql")),
    (6, "revocation and introspection", include_str!("../../migrations/postgres/0006_revocation_introspection.sql")),
    (7, "refresh reuse grace", include_str!("../../migrations/postgres/0007_refresh_reuse_grace.sql")),
    (8, "allowed origins", include_str!("../../migrations/postgres/0008_allowed_origins.sql")),
    (9, "self-service accounts", include_str!("../../migrations/postgres/0009_self_service_accounts.sql")),
    (10, "back-channel logout", include_str!("../../migrations/postgres/0010_backchannel_logout.sql")),
    (11, "private_key_jwt", include_str!("../../migrations/postgres/0011_private_key_jwt.sql")),
    (12, "catalog", include_str!("../../migrations/postgres/0012_catalog.sql")),
    (13, "admin api", include_str!("../../migrations/postgres/0013_admin_api.sql")),
];
const SQLITE: &[(i64, &str, &str)] = &[
    (1, "initial", include_str!("../../migrations/sqlite/0001_initial.sql")),
    (2, "users and login", include_str!("../../migrations/sqlite/0002_users_and_login.sql")),
    (3, "mfa, throttling and audit", include_str!("../../migrations/sqlite/0003_mfa_throttling_audit.sql")),
    (4, "key rotation", include_str!("../../migrations/sqlite/0004_key_rotation.sql")),
    (5, "key-driven lookups", include_str!("../../migrations/sqlite/0005_key_driven_lookups.sql")),
    (6, "revocation and introspection", include_str!("../../migrations/sqlite/0006_revocation_introspection.sql")),
    (7, "refresh reuse grace", include_str!("../../migrations/sqlite/0007_refresh_reuse_grace.sql")),
    (8, "allowed origins", include_str!("../../migrations/sqlite/0008_allowed_origins.sql")),
    (9, "self-service accounts", include_str!("../../migrations/sqlite/0009_self_service_accounts.sql")),
    (10, "back-channel logout", include_str!("../../migrations/sqlite/0010_backchannel_logout.sql")),
    (11, "private_key_jwt", include_str!("../../migrations/sqlite/0011_private_key_jwt.sql")),
    (12, "catalog", include_str!("../../migrations/sqlite/0012_catalog.sql")),
    (13, "admin api", include_str!("../../migrations/sqlite/0013_admin_api.sql")),
];

impl Store {
    /// Brings the schema up to date. On Postgres sqlx holds an advisory lock for the whole run,
    /// so when two replicas start together one migrates and the other waits, then finds
    /// nothing left to do.
    pub async fn migrate(&self) -> StoreResult<()> {
        let list = match self.backend() {
            Backend::Postgres => POSTGRES,
            Backend::Sqlite => SQLITE,
        };
        let migrations = list
            .iter()
            .map(|(version, description, sql)| {
                Migration::new(*version, Cow::Borrowed(*description), MigrationType::Simple, Cow::Borrowed(*sql), false)
            })
            .collect();
        let migrator =
            Migrator { migrations: Cow::Owned(migrations), ignore_missing: false, locking: true, no_tx: false };
        // sqlx's migrator runs on sqlx's own pool: the server's on Postgres, and on SQLite a
        // connection of its own, closed when the run is over (the server's connection is not
        // an sqlx one; store/db.rs).
        let pool = match &self.pool {
            Db::Postgres(pool) => pool.clone(),
            Db::Sqlite(_) => sqlx::any::AnyPoolOptions::new().max_connections(1).connect(&self.url).await?,
        };
        let outcome = self.run_migrator(&migrator, &pool).await;
        if let Db::Sqlite(db) = &self.pool {
            pool.close().await;
            outcome?;
            // The server's connection was opened before the tables existed. SQLite usually
            // notices the schema change on its own, but under load the connection opened before
            // the migration answered "no such table: signing_keys" (3 of 281 tests in one full
            // run); a connection opened now reads the schema as it is.
            return db.replace(super::connect::open_sqlite(&self.url)?).await;
        }
        outcome
    }

    async fn run_migrator(&self, migrator: &Migrator, pool: &sqlx::AnyPool) -> StoreResult<()> {
        let mut attempt = 0;
        loop {
            match migrator.run(pool).await {
                Ok(()) => return Ok(()),
                // SQLite has no advisory lock. Two processes migrating one file at once: the
                // loser's transaction rolls back whole (SQLite DDL is transactional), and a
                // retry after the winner's commit finds nothing left to do.
                Err(e) if self.backend() == Backend::Sqlite && attempt < 3 => {
                    attempt += 1;
                    tracing::debug!(error = %e, attempt, "sqlite migration raced another process; retrying");
                    tokio::time::sleep(std::time::Duration::from_millis(100 * attempt)).await;
                }
                Err(sqlx::migrate::MigrateError::Execute(inner)) => return Err(StoreError::from(inner)),
                Err(other) => return Err(StoreError::Other(format!("migration failed: {other}"))),
            }
        }
    }
}
