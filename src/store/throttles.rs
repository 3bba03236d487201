use super::{Store, StoreResult, ThrottleStore};
use crate::authn::AttemptCount;

/// Adds one attempt to `key`'s counter and returns it, in one statement (atomic on both
/// backends, so replicas and parallel requests share one count). A counter whose window has
/// passed, or whose lock has run out, starts again at 1. The attempt that reaches the threshold
/// sets the lock; later ones keep counting past it (that is how they are told apart).
/// $1 key, $2 now, $3 window seconds, $4 lock seconds, $5 threshold.
const COUNT_ATTEMPT: &str = "\
INSERT INTO throttles (key, failures, window_start, locked_until, updated_at) \
VALUES ($1, 1, $2, CASE WHEN $5 <= 1 THEN $2 + $4 ELSE NULL END, $2) \
ON CONFLICT (key) DO UPDATE SET \
  failures = CASE WHEN (throttles.locked_until IS NOT NULL AND throttles.locked_until <= $2) \
                    OR (throttles.locked_until IS NULL AND throttles.window_start <= $2 - $3) \
             THEN 1 ELSE throttles.failures + 1 END, \
  window_start = CASE WHEN (throttles.locked_until IS NOT NULL AND throttles.locked_until <= $2) \
                        OR (throttles.locked_until IS NULL AND throttles.window_start <= $2 - $3) \
                 THEN $2 ELSE throttles.window_start END, \
  locked_until = CASE WHEN (throttles.locked_until IS NOT NULL AND throttles.locked_until <= $2) \
                        OR (throttles.locked_until IS NULL AND throttles.window_start <= $2 - $3) \
                      THEN (CASE WHEN $5 <= 1 THEN $2 + $4 ELSE NULL END) \
                      WHEN throttles.locked_until IS NOT NULL THEN throttles.locked_until \
                      WHEN throttles.failures + 1 >= $5 THEN $2 + $4 \
                      ELSE NULL END, \
  updated_at = $2 \
RETURNING failures, locked_until";

impl ThrottleStore for Store {
    async fn count_attempt(
        &self,
        key: &str,
        now: i64,
        window_secs: i64,
        lock_secs: i64,
        threshold: u32,
    ) -> StoreResult<AttemptCount> {
        let row = self
            .sql(COUNT_ATTEMPT)
            .bind(key)
            .bind(now)
            .bind(window_secs)
            .bind(lock_secs)
            .bind(i64::from(threshold))
            .fetch_one(&self.pool)
            .await?;
        Ok(AttemptCount { failures: row.try_get("failures")?, locked_until: row.try_get("locked_until")? })
    }

    async fn clear_attempts(&self, key: &str) -> StoreResult<()> {
        self.sql("DELETE FROM throttles WHERE key = $1").bind(key).execute(&self.pool).await?;
        Ok(())
    }
}
