//! Scope descriptions and roles, as `latchkey apply` declares them (issue 13 item 3).

use super::{CatalogStore, Store, StoreResult};

impl CatalogStore for Store {
    async fn scope_descriptions(&self) -> StoreResult<Vec<(String, String)>> {
        let rows =
            self.sql("SELECT scope, description FROM scope_descriptions ORDER BY scope").fetch_all(&self.pool).await?;
        rows.iter().map(|r| Ok((r.try_get("scope")?, r.try_get("description")?))).collect()
    }

    async fn scope_description(&self, scope: &str) -> StoreResult<Option<String>> {
        let row = self
            .sql("SELECT description FROM scope_descriptions WHERE scope = $1")
            .bind(scope)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| r.try_get("description")).transpose()
    }

    async fn set_scope_description(&self, scope: &str, description: &str, now: i64) -> StoreResult<()> {
        self.sql(
            "INSERT INTO scope_descriptions (scope, description, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (scope) DO UPDATE SET description = $2, updated_at = $3",
        )
        .bind(scope)
        .bind(description)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn delete_scope_description(&self, scope: &str) -> StoreResult<()> {
        self.sql("DELETE FROM scope_descriptions WHERE scope = $1").bind(scope).execute(&self.pool).await?;
        Ok(())
    }

    async fn roles(&self) -> StoreResult<Vec<(String, Option<String>)>> {
        let rows = self.sql("SELECT name, description FROM roles ORDER BY name").fetch_all(&self.pool).await?;
        rows.iter().map(|r| Ok((r.try_get("name")?, r.try_get("description")?))).collect()
    }

    async fn set_role(&self, name: &str, description: Option<&str>, now: i64) -> StoreResult<()> {
        self.sql(
            "INSERT INTO roles (name, description, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET description = $2, updated_at = $3",
        )
        .bind(name)
        .bind(description.map(str::to_string))
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn delete_role(&self, name: &str) -> StoreResult<()> {
        self.sql("DELETE FROM roles WHERE name = $1").bind(name).execute(&self.pool).await?;
        Ok(())
    }
}
