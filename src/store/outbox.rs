//! The outbox's delivery side: a sender claims one due message at a time under a lease, so a
//! message is in one replica's hands at a time (Postgres: `FOR UPDATE SKIP LOCKED`, so senders
//! on several replicas never wait on each other; SQLite: the write lock), and a sender that dies
//! mid-send only delays it until the lease runs out.

use super::{Backend, OutboxStore, Store, StoreResult};
use crate::domain::QueuedMessage;

/// How long delivered and abandoned messages are kept (emptied) for operators to look at.
pub const KEEP_DONE_SECS: i64 = 7 * 86_400;

impl OutboxStore for Store {
    async fn claim_message(&self, now: i64, lease_secs: i64) -> StoreResult<Option<QueuedMessage>> {
        let lock = match self.backend() {
            Backend::Postgres => "FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let row = self
            .sql(&format!(
                "UPDATE outbox SET claimed_until = $1, attempts = attempts + 1 \
                 WHERE id = (SELECT id FROM outbox WHERE sent_at IS NULL AND failed_at IS NULL \
                 AND next_attempt_at <= $2 AND (claimed_until IS NULL OR claimed_until <= $2) \
                 ORDER BY next_attempt_at LIMIT 1 {lock}) \
                 AND (claimed_until IS NULL OR claimed_until <= $2) \
                 RETURNING id, kind, recipient, payload, attempts, created_at"
            ))
            .bind(now + lease_secs)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(QueuedMessage {
            id: row.try_get("id")?,
            kind: row.try_get("kind")?,
            recipient: row.try_get("recipient")?,
            payload_sealed: row.try_get("payload")?,
            attempts: row
                .try_get::<i64, _>("attempts")
                .or_else(|_| row.try_get::<i32, _>("attempts").map(i64::from))?,
            created_at: row.try_get("created_at")?,
        }))
    }

    async fn message_sent(&self, id: &str, now: i64) -> StoreResult<()> {
        // The body carried live links: nothing of it is kept once delivered.
        self.sql("UPDATE outbox SET sent_at = $1, claimed_until = NULL, last_error = NULL, payload = $2 WHERE id = $3")
            .bind(now)
            .bind(Vec::<u8>::new())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn message_failed(&self, id: &str, now: i64, error: &str, retry_at: Option<i64>) -> StoreResult<()> {
        let error: String = error.chars().take(500).collect();
        match retry_at {
            Some(at) => {
                self.sql("UPDATE outbox SET next_attempt_at = $1, claimed_until = NULL, last_error = $2 WHERE id = $3")
                    .bind(at)
                    .bind(error)
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
            }
            None => {
                self.sql(
                    "UPDATE outbox SET failed_at = $1, claimed_until = NULL, last_error = $2, payload = $3 WHERE id = $4",
                )
                .bind(now)
                .bind(error)
                .bind(Vec::<u8>::new())
                .bind(id)
                .execute(&self.pool)
                .await?;
            }
        }
        Ok(())
    }

    async fn pending_messages(&self) -> StoreResult<i64> {
        let row = self
            .sql("SELECT COUNT(*) AS n FROM outbox WHERE sent_at IS NULL AND failed_at IS NULL")
            .fetch_one(&self.pool)
            .await?;
        row.try_get::<i64, _>("n")
    }
}
