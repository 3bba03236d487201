//! Client registry operations: register, list, show, rotate secret, disable, delete.

use serde_json::{json, Value};

use crate::domain::{Client, ClientKind, NewClient};
use crate::secret::{random_id, random_token, sha256};
use crate::store::{ClientStore, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn no_client(id: &str) -> AdminError {
    AdminError::NotFound(format!("no client with id `{id}`"))
}

/// Random alphanumeric client ids (131 bits): unguessable, so one client's id says nothing of
/// others, and safe to pass to any command line.
fn new_client_id() -> String {
    random_id(22)
}

/// 256-bit random secrets (shared/design.md, "Tokens and secrets"); stored only as SHA-256.
fn new_secret() -> String {
    random_token(32)
}

/// The public view of a client: everything but the secret hash.
pub fn client_json(client: &Client) -> Value {
    json!({
        "client_id": client.id,
        "name": client.name,
        "type": client.kind.as_str(),
        "first_party": client.first_party,
        "require_mfa": client.require_mfa,
        "redirect_uris": client.redirect_uris.iter().map(|u| u.as_str()).collect::<Vec<_>>(),
        "post_logout_redirect_uris": client.post_logout_redirect_uris.iter().map(|u| u.as_str()).collect::<Vec<_>>(),
        "grant_types": client.grant_types.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
        "scopes": client.scopes.to_vec(),
        "roles": client.roles,
        "audience": client.audience,
        "id_token_signed_response_alg": client.id_token_alg.map(|a| a.as_str()).unwrap_or("RS256"),
        "introspect": client.introspect,
        "created_at": client.created_at,
        "disabled": client.disabled_at.is_some(),
        "disabled_at": client.disabled_at,
    })
}

/// Registers a client. Returns it with its secret (confidential clients), shown only now.
pub async fn create<S: ClientStore>(
    store: &S,
    request: NewClient,
    now: i64,
) -> Result<(Client, Option<String>), AdminError> {
    let valid = request.validate().map_err(AdminError::Invalid)?;
    let secret = (valid.kind == ClientKind::Confidential).then(new_secret);
    let client = Client {
        id: new_client_id(),
        name: valid.name,
        kind: valid.kind,
        secret_hash: secret.as_deref().map(sha256),
        first_party: valid.first_party,
        require_mfa: valid.require_mfa,
        redirect_uris: valid.redirect_uris,
        post_logout_redirect_uris: valid.post_logout_redirect_uris,
        grant_types: valid.grant_types,
        scopes: valid.scopes,
        roles: valid.roles,
        audience: valid.audience,
        id_token_alg: valid.id_token_alg,
        introspect: valid.introspect,
        created_at: now,
        disabled_at: None,
    };
    store.insert_client(&client).await?;
    Ok((client, secret))
}

pub async fn show<S: ClientStore>(store: &S, id: &str) -> Result<Client, AdminError> {
    store.find_client(id).await?.ok_or_else(|| no_client(id))
}

/// Replaces a confidential client's secret; the old one stops working at once in the database
/// and within `client_cache_ttl` on every replica.
pub async fn rotate_secret<S: ClientStore>(store: &S, id: &str, now: i64) -> Result<String, AdminError> {
    let client = show(store, id).await?;
    if client.kind == ClientKind::Public {
        return Err(AdminError::Invalid(format!("client `{id}` is public and has no secret")));
    }
    let secret = new_secret();
    if !store.set_client_secret(id, &sha256(&secret), now).await? {
        return Err(no_client(id));
    }
    Ok(secret)
}

pub async fn disable<S: ClientStore>(store: &S, id: &str, now: i64) -> Result<(), AdminError> {
    if store.disable_client(id, now).await? {
        Ok(())
    } else {
        Err(no_client(id))
    }
}

pub async fn delete<S: ClientStore>(store: &S, id: &str, now: i64) -> Result<(), AdminError> {
    if store.delete_client(id, now).await? {
        Ok(())
    } else {
        Err(no_client(id))
    }
}
