use super::db::DbRow;

use super::{ClientStore, Store, StoreError, StoreResult};
use crate::domain::{Client, ClientKind, GrantType, RedirectUri, ScopeSet};

pub(super) const COLUMNS: &str = "id, name, kind, secret_hash, first_party, redirect_uris, post_logout_redirect_uris, \
     grant_types, scopes, roles, audience, id_token_alg, require_mfa, introspect, created_at, disabled_at, \
     allowed_origins, backchannel_logout_uri, backchannel_logout_session_required, jwks, jwks_uri";

fn json_list(values: impl Iterator<Item = String>) -> String {
    serde_json::Value::Array(values.map(serde_json::Value::String).collect()).to_string()
}

fn corrupt(id: &str, what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("client {id}: {what}"))
}

fn parse_list(id: &str, column: &str, raw: &str) -> StoreResult<Vec<String>> {
    serde_json::from_str(raw).map_err(|e| corrupt(id, format!("{column}: {e}")))
}

pub(super) fn client_from_row(row: &DbRow) -> StoreResult<Client> {
    let id: String = row.try_get("id")?;
    let kind = match row.try_get::<String, _>("kind")?.as_str() {
        "confidential" => ClientKind::Confidential,
        "public" => ClientKind::Public,
        other => return Err(corrupt(&id, format!("kind `{other}`"))),
    };
    let secret_hash = match row.try_get::<Option<Vec<u8>>, _>("secret_hash")? {
        Some(bytes) => Some(<[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| corrupt(&id, "secret hash length"))?),
        None => None,
    };
    let uris = |column: &str| -> StoreResult<Vec<RedirectUri>> {
        let raw: String = row.try_get(column)?;
        parse_list(&id, column, &raw)?.iter().map(|u| RedirectUri::parse(u).map_err(|e| corrupt(&id, e))).collect()
    };
    let grant_types = parse_list(&id, "grant_types", &row.try_get::<String, _>("grant_types")?)?
        .iter()
        .map(|g| g.parse::<GrantType>().map_err(|e| corrupt(&id, e)))
        .collect::<StoreResult<Vec<_>>>()?;
    let scopes = ScopeSet::parse(&row.try_get::<String, _>("scopes")?).map_err(|e| corrupt(&id, e))?;
    let roles = parse_list(&id, "roles", &row.try_get::<String, _>("roles")?)?;
    let allowed_origins = parse_list(&id, "allowed_origins", &row.try_get::<String, _>("allowed_origins")?)?;
    Ok(Client {
        allowed_origins,
        name: row.try_get("name")?,
        kind,
        secret_hash,
        first_party: row.try_get::<i64, _>("first_party")? != 0,
        require_mfa: row.try_get::<i64, _>("require_mfa")? != 0,
        introspect: row.try_get::<i64, _>("introspect")? != 0,
        backchannel_logout_uri: row.try_get("backchannel_logout_uri")?,
        backchannel_logout_session_required: row.try_get::<i64, _>("backchannel_logout_session_required")? != 0,
        jwks: row.try_get("jwks")?,
        jwks_uri: row.try_get("jwks_uri")?,
        redirect_uris: uris("redirect_uris")?,
        post_logout_redirect_uris: uris("post_logout_redirect_uris")?,
        grant_types,
        scopes,
        roles,
        audience: row.try_get("audience")?,
        id_token_alg: row
            .try_get::<Option<String>, _>("id_token_alg")?
            .map(|a| a.parse().map_err(|e: String| corrupt(&id, e)))
            .transpose()?,
        created_at: row.try_get("created_at")?,
        disabled_at: row.try_get("disabled_at")?,
        id,
    })
}

impl ClientStore for Store {
    async fn insert_client(&self, c: &Client) -> StoreResult<()> {
        self.sql(
            "INSERT INTO clients (id, name, kind, secret_hash, first_party, redirect_uris, \
             post_logout_redirect_uris, grant_types, scopes, roles, audience, created_at, updated_at, disabled_at, \
             id_token_alg, require_mfa, introspect, allowed_origins, backchannel_logout_uri, \
             backchannel_logout_session_required, jwks, jwks_uri) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)",
        )
        .bind(&c.id)
        .bind(&c.name)
        .bind(c.kind.as_str())
        .bind(c.secret_hash.map(|h| h.to_vec()))
        .bind(i64::from(c.first_party))
        .bind(json_list(c.redirect_uris.iter().map(|u| u.as_str().to_string())))
        .bind(json_list(c.post_logout_redirect_uris.iter().map(|u| u.as_str().to_string())))
        .bind(json_list(c.grant_types.iter().map(|g| g.as_str().to_string())))
        .bind(c.scopes.to_string())
        .bind(json_list(c.roles.iter().cloned()))
        .bind(c.audience.clone())
        .bind(c.created_at)
        .bind(c.disabled_at)
        .bind(c.id_token_alg.map(|a| a.as_str().to_string()))
        .bind(i64::from(c.require_mfa))
        .bind(i64::from(c.introspect))
        .bind(json_list(c.allowed_origins.iter().cloned()))
        .bind(c.backchannel_logout_uri.clone())
        .bind(i64::from(c.backchannel_logout_session_required))
        .bind(c.jwks.clone())
        .bind(c.jwks_uri.clone())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn find_client(&self, id: &str) -> StoreResult<Option<Client>> {
        let row = self
            .sql(&format!("SELECT {COLUMNS} FROM clients WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(client_from_row).transpose()
    }

    async fn list_clients(&self) -> StoreResult<Vec<Client>> {
        let rows =
            self.sql(&format!("SELECT {COLUMNS} FROM clients ORDER BY created_at, id")).fetch_all(&self.pool).await?;
        rows.iter().map(client_from_row).collect()
    }

    async fn update_client(&self, c: &Client, now: i64) -> StoreResult<bool> {
        let done = self
            .sql(
                "UPDATE clients SET name = $1, first_party = $2, redirect_uris = $3, post_logout_redirect_uris = $4, \
                 grant_types = $5, scopes = $6, roles = $7, audience = $8, id_token_alg = $9, require_mfa = $10, \
                 updated_at = $11, allowed_origins = $13, introspect = $14, backchannel_logout_uri = $15, \
                 backchannel_logout_session_required = $16, jwks = $17, jwks_uri = $18 WHERE id = $12",
            )
            .bind(&c.name)
            .bind(i64::from(c.first_party))
            .bind(json_list(c.redirect_uris.iter().map(|u| u.as_str().to_string())))
            .bind(json_list(c.post_logout_redirect_uris.iter().map(|u| u.as_str().to_string())))
            .bind(json_list(c.grant_types.iter().map(|g| g.as_str().to_string())))
            .bind(c.scopes.to_string())
            .bind(json_list(c.roles.iter().cloned()))
            .bind(c.audience.clone())
            .bind(c.id_token_alg.map(|a| a.as_str().to_string()))
            .bind(i64::from(c.require_mfa))
            .bind(now)
            .bind(&c.id)
            .bind(json_list(c.allowed_origins.iter().cloned()))
            .bind(i64::from(c.introspect))
            .bind(c.backchannel_logout_uri.clone())
            .bind(i64::from(c.backchannel_logout_session_required))
            .bind(c.jwks.clone())
            .bind(c.jwks_uri.clone())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn set_client_secret(&self, id: &str, secret_hash: &[u8; 32], now: i64) -> StoreResult<bool> {
        let done = self
            .sql("UPDATE clients SET secret_hash = $1, updated_at = $2 WHERE id = $3 AND kind = 'confidential'")
            .bind(secret_hash.to_vec())
            .bind(now)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn disable_client(&self, id: &str, now: i64) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        let done = self
            .sql("UPDATE clients SET disabled_at = COALESCE(disabled_at, $1), updated_at = $1 WHERE id = $2")
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        self.revoke_grants_of_client(&mut tx, id, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn delete_client(&self, id: &str, now: i64) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        let done = self.sql("DELETE FROM clients WHERE id = $1").bind(id).execute(&mut *tx).await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        self.revoke_grants_of_client(&mut tx, id, now).await?;
        // Consent was given to this registration; a client registered later is asked again.
        self.sql("DELETE FROM consents WHERE client_id = $1").bind(id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(true)
    }
}

impl Store {
    /// Issue 9 item 7: a disabled or deleted client's grants end with it, in the same
    /// transaction, so its users' access tokens stop at userinfo at once and its refresh tokens
    /// are dead even where a replica still has the client cached.
    async fn revoke_grants_of_client(&self, tx: &mut super::db::Tx, id: &str, now: i64) -> StoreResult<()> {
        self.sql("UPDATE grants SET revoked_at = $1 WHERE client_id = $2 AND revoked_at IS NULL")
            .bind(now)
            .bind(id)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
}
