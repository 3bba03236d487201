use super::db::DbRow;

use super::{AuditStore, Store, StoreResult};
use crate::audit::{AuditEvent, AuditFilter};

fn event_from_row(row: &DbRow) -> StoreResult<AuditEvent> {
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
        // Newest first. Only the filters given become conditions, so each query is one of a few
        // fixed shapes, each served by the primary key or an index (user_sub, id), (event, id)
        // or (client_id, id).
        let mut conditions = Vec::new();
        let mut n = 0;
        let mut next = || {
            n += 1;
            format!("${n}")
        };
        if filter.user_sub.is_some() {
            conditions.push(format!("user_sub = {}", next()));
        }
        if filter.client_id.is_some() {
            conditions.push(format!("client_id = {}", next()));
        }
        if filter.event.is_some() {
            conditions.push(format!("event = {}", next()));
        }
        // Always bounded by id, the first page below the largest: the unfiltered newest-first
        // page is then a range of the primary key, never a scan of the table.
        conditions.push(format!("id < {}", next()));
        let limit = next();
        let sql = format!(
            "SELECT id, at, event, user_sub, client_id, ip, user_agent, detail FROM audit_events WHERE {} \
             ORDER BY id DESC LIMIT {limit}",
            conditions.join(" AND ")
        );
        let mut query = self.sql(&sql);
        for value in [&filter.user_sub, &filter.client_id, &filter.event].into_iter().flatten() {
            query = query.bind(value.clone());
        }
        query = query.bind(filter.before_id.unwrap_or(i64::MAX));
        let rows = query.bind(filter.limit).fetch_all(&self.pool).await?;
        rows.iter().map(event_from_row).collect()
    }
}
