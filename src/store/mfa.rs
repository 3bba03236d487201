use super::{MfaStore, Store, StoreResult};
use crate::domain::TotpFactor;

impl MfaStore for Store {
    async fn totp_factor(&self, sub: &str) -> StoreResult<Option<TotpFactor>> {
        let row = self
            .sql("SELECT secret_sealed, created_at, enabled_at, last_step FROM totp_factors WHERE user_sub = $1")
            .bind(sub)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(TotpFactor {
                secret_sealed: r.try_get("secret_sealed")?,
                created_at: r.try_get("created_at")?,
                enabled_at: r.try_get("enabled_at")?,
                last_step: r.try_get("last_step")?,
            })
        })
        .transpose()
    }

    async fn begin_totp_enrolment(&self, sub: &str, secret_sealed: &[u8], now: i64) -> StoreResult<bool> {
        // Replaces an unconfirmed enrolment; never an enabled factor (that needs removal first).
        let done = self
            .sql(
                "INSERT INTO totp_factors (user_sub, secret_sealed, created_at, enabled_at, last_step) \
             VALUES ($1, $2, $3, NULL, NULL) \
             ON CONFLICT (user_sub) DO UPDATE SET secret_sealed = excluded.secret_sealed, \
             created_at = excluded.created_at WHERE totp_factors.enabled_at IS NULL",
            )
            .bind(sub)
            .bind(secret_sealed.to_vec())
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn enable_totp(&self, sub: &str, step: i64, now: i64) -> StoreResult<bool> {
        let done = self
            .sql("UPDATE totp_factors SET enabled_at = $1, last_step = $2 WHERE user_sub = $3 AND enabled_at IS NULL")
            .bind(now)
            .bind(step)
            .bind(sub)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn use_totp_step(&self, sub: &str, step: i64) -> StoreResult<bool> {
        // One conditional UPDATE: of two requests with the same code, exactly one gets the row.
        let done = self
            .sql(
                "UPDATE totp_factors SET last_step = $1 WHERE user_sub = $2 AND enabled_at IS NOT NULL \
             AND (last_step IS NULL OR last_step < $1)",
            )
            .bind(step)
            .bind(sub)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn remove_mfa(&self, sub: &str) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        let done = self.sql("DELETE FROM totp_factors WHERE user_sub = $1").bind(sub).execute(&mut *tx).await?;
        self.sql("DELETE FROM recovery_codes WHERE user_sub = $1").bind(sub).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    async fn replace_recovery_codes(&self, sub: &str, hashes: &[[u8; 32]], now: i64) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        self.sql("DELETE FROM recovery_codes WHERE user_sub = $1").bind(sub).execute(&mut *tx).await?;
        for hash in hashes {
            self.sql("INSERT INTO recovery_codes (user_sub, code_hash, created_at, used_at) VALUES ($1, $2, $3, NULL)")
                .bind(sub)
                .bind(hash.to_vec())
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn use_recovery_code(&self, sub: &str, hash: &[u8; 32], now: i64) -> StoreResult<bool> {
        let done = self
            .sql("UPDATE recovery_codes SET used_at = $1 WHERE user_sub = $2 AND code_hash = $3 AND used_at IS NULL")
            .bind(now)
            .bind(sub)
            .bind(hash.to_vec())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn recovery_codes_left(&self, sub: &str) -> StoreResult<i64> {
        let row = self
            .sql("SELECT COUNT(*) AS n FROM recovery_codes WHERE user_sub = $1 AND used_at IS NULL")
            .bind(sub)
            .fetch_one(&self.pool)
            .await?;
        row.try_get("n")
    }
}
