use std::borrow::Cow;

use sqlx::migrate::{Migration, MigrationType, Migrator};

use super::{Backend, Store, StoreError, StoreResult};

/// Migrations are compiled into the binary so a deployment is one file. Postgres and SQLite
/// have the same version numbers; each list is applied in order.
const POSTGRES: &[(i64, &str, &str)] =
    &[(1, "initial", include_str!("../../migrations/postgres/0001_initial.sql"))];
const SQLITE: &[(i64, &str, &str)] =
    &[(1, "initial", include_str!("../../migrations/sqlite/0001_initial.sql"))];

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
        let migrator = Migrator {
            migrations: Cow::Owned(migrations),
            ignore_missing: false,
            locking: true,
            no_tx: false,
        };
        migrator.run(&self.pool).await.map_err(|e| match e {
            sqlx::migrate::MigrateError::Execute(inner) => StoreError::from(inner),
            other => StoreError::Other(format!("migration failed: {other}")),
        })
    }
}
