use sqlx::any::AnyRow;
use sqlx::Row;

use super::{AuditStore, Store, StoreResult};
use crate::audit::{AuditEvent, AuditFilter};

fn event_from_row(row: &AnyRow) -> StoreResult<AuditEvent> {
    let detail: Option<String> = row.try_get("detail")?;
    Ok(AuditEvent {
        id: row.try_get("id")?,
        at: row.try_get("at")?,
        event: row.try_get("event")?,
        user_sub: row.try_get("user_sub")?,
        client_id: row.try_get("client_id")?,
        ip: row.try_get("ip")?,
        user_agent: row.try_get("user_agent")?,
        detail: detail.and_then(|d| serde_json::from_str(&d).ok()).unwrap_or(serde_json::Value::Null),
    })
}

impl AuditStore for Store {
    async fn insert_audit_event(&self, e: &AuditEvent) -> StoreResult<()> {
        let detail = (!e.detail.is_null()).then(|| e.detail.to_string());
        self.sql(
            "INSERT INTO audit_events (at, event, user_sub, client_id, ip, user_agent, detail) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(e.at)
        .bind(&e.event)
        .bind(e.user_sub.clone())
        .bind(e.client_id.clone())
        .bind(e.ip.clone())
        .bind(e.user_agent.clone())
        .bind(detail)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn list_audit_events(&self, filter: &AuditFilter) -> StoreResult<Vec<AuditEvent>> {
        // Newest first. NULL filters match everything.
        let rows = self
            .sql(
                "SELECT id, at, event, user_sub, client_id, ip, user_agent, detail FROM audit_events \
             WHERE ($1 IS NULL OR user_sub = $1) AND ($2 IS NULL OR event = $2) ORDER BY id DESC LIMIT $3",
            )
            .bind(filter.user_sub.clone())
            .bind(filter.event.clone())
            .bind(filter.limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(event_from_row).collect()
    }
}
