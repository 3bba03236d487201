//! Client registry operations: register, list, show, update, rotate secret, disable, delete.

use serde_json::{json, Value};

use super::actor::{record, Actor, Subject};
use crate::audit::kind;
use crate::domain::{AuthMethod, Client, ClientKind, NewClient};
use crate::secret::{random_id, random_token, sha256};
use crate::store::{AdminStore, AuditStore, ClientStore, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    /// Something with the same unique name exists (a user's email).
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A template or the hasher failed.
    #[error("{0}")]
    Unavailable(String),
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
    serde_json::to_value(super::views::ClientView::from(client)).unwrap_or(Value::Null)
}

/// Registers a client. Returns it with its secret (confidential clients), shown only now.
pub async fn create<S: ClientStore + AuditStore>(
    store: &S,
    request: NewClient,
    actor: &Actor,
    now: i64,
) -> Result<(Client, Option<String>), AdminError> {
    let valid = request.validate().map_err(AdminError::Invalid)?;
    // A client that signs assertions with its own keys (private_key_jwt) has no shared secret.
    let secret = (valid.kind == ClientKind::Confidential && !valid.uses_keys()).then(new_secret);
    let client = valid.into_client(new_client_id(), secret.as_deref().map(sha256), now, None);
    store.insert_client(&client).await?;
    let detail = json!({ "name": client.name });
    record(store, actor, kind::CLIENT_CREATED, Subject::Client(&client.id), detail, now).await;
    Ok((client, secret))
}

/// What `client update` changes; everything left at its default stays as it is.
#[derive(Clone, Debug, Default)]
pub struct ClientUpdate {
    pub name: Option<String>,
    pub add_redirect_uris: Vec<String>,
    pub remove_redirect_uris: Vec<String>,
    pub add_post_logout_redirect_uris: Vec<String>,
    pub remove_post_logout_redirect_uris: Vec<String>,
    pub add_grant_types: Vec<String>,
    pub remove_grant_types: Vec<String>,
    pub add_scopes: Vec<String>,
    pub remove_scopes: Vec<String>,
    pub add_roles: Vec<String>,
    pub remove_roles: Vec<String>,
    pub add_allowed_origins: Vec<String>,
    pub remove_allowed_origins: Vec<String>,
    /// `Some(None)` clears the client's own audience (back to `default_audience`).
    pub audience: Option<Option<String>>,
    pub id_token_alg: Option<String>,
    pub first_party: Option<bool>,
    pub require_mfa: Option<bool>,
    pub introspect: Option<bool>,
    /// `Some(None)` removes the back-channel logout URI.
    pub backchannel_logout_uri: Option<Option<String>>,
    pub backchannel_logout_session_required: Option<bool>,
    /// New keys for private_key_jwt, inline (a JWKS document) or by URL; either replaces both.
    pub jwks: Option<String>,
    pub jwks_uri: Option<String>,
}

/// Adds `add` to `list` (once each) and takes `remove` out; removing what isn't there is an
/// error that names it, so a typo is never a silent no-op.
fn edit_list(list: &mut Vec<String>, add: &[String], remove: &[String], what: &str) -> Result<(), AdminError> {
    for item in remove {
        let before = list.len();
        list.retain(|x| x != item);
        if list.len() == before {
            return Err(AdminError::Invalid(format!("the client has no {what} `{item}` to remove")));
        }
    }
    for item in add {
        if !list.contains(item) {
            list.push(item.clone());
        }
    }
    Ok(())
}

/// Changes a client in place: same `client_id`, same secret. The edited registration passes
/// every rule `create` applies; on any error nothing is stored. Returns the updated client and
/// the names of the fields that changed (for the audit trail). Replicas see the change within
/// `client_cache_ttl`.
pub async fn update<S: ClientStore + AuditStore>(
    store: &S,
    id: &str,
    changes: ClientUpdate,
    actor: &Actor,
    now: i64,
) -> Result<(Client, Vec<String>), AdminError> {
    let current = show(store, id).await?;
    let mut registration = current.registration();
    if let Some(name) = changes.name {
        registration.name = name;
    }
    let r = &mut registration;
    edit_list(&mut r.redirect_uris, &changes.add_redirect_uris, &changes.remove_redirect_uris, "redirect URI")?;
    edit_list(
        &mut r.post_logout_redirect_uris,
        &changes.add_post_logout_redirect_uris,
        &changes.remove_post_logout_redirect_uris,
        "post-logout redirect URI",
    )?;
    edit_list(&mut r.grant_types, &changes.add_grant_types, &changes.remove_grant_types, "grant type")?;
    edit_list(&mut r.scopes, &changes.add_scopes, &changes.remove_scopes, "scope")?;
    edit_list(&mut r.roles, &changes.add_roles, &changes.remove_roles, "role")?;
    // Compared as browsers send them, so `--remove-allowed-origin https://A.example/` finds it.
    let normalised = |list: &[String]| -> Vec<String> {
        list.iter().map(|o| crate::domain::parse_allowed_origin(o).unwrap_or_else(|_| o.clone())).collect()
    };
    edit_list(
        &mut r.allowed_origins,
        &normalised(&changes.add_allowed_origins),
        &normalised(&changes.remove_allowed_origins),
        "allowed origin",
    )?;
    if let Some(audience) = changes.audience {
        r.audience = audience;
    }
    if let Some(alg) = changes.id_token_alg {
        r.id_token_alg = Some(alg);
    }
    if let Some(first_party) = changes.first_party {
        r.first_party = first_party;
    }
    if let Some(require_mfa) = changes.require_mfa {
        r.require_mfa = require_mfa;
    }
    if let Some(introspect) = changes.introspect {
        r.introspect = introspect;
    }
    if let Some(uri) = changes.backchannel_logout_uri {
        if uri.is_none() {
            r.backchannel_logout_session_required = false;
        }
        r.backchannel_logout_uri = uri;
    }
    if let Some(required) = changes.backchannel_logout_session_required {
        r.backchannel_logout_session_required = required;
    }
    if changes.jwks.is_some() || changes.jwks_uri.is_some() {
        if current.auth_method() != AuthMethod::PrivateKeyJwt {
            return Err(AdminError::Invalid(
                "only a client registered with --jwks-file or --jwks-uri can change its keys".into(),
            ));
        }
        r.jwks = changes.jwks;
        r.jwks_uri = changes.jwks_uri;
    }
    // `create` fills in defaults for what is left empty; an update that empties a list means it.
    if registration.grant_types.is_empty() && !registration.introspect {
        return Err(AdminError::Invalid(
            "a client needs at least one grant type (or --introspect true: a resource server)".into(),
        ));
    }
    if registration.scopes.is_empty() && registration.grant_types.iter().any(|g| g == "authorization_code") {
        return Err(AdminError::Invalid("an app that signs users in needs at least one scope".into()));
    }
    let valid = registration.validate().map_err(AdminError::Invalid)?;
    // Same id, secret and history: only the registration changes.
    let updated = valid.into_client(current.id.clone(), current.secret_hash, current.created_at, current.disabled_at);
    let (before, after) = (client_json(&current), client_json(&updated));
    let changed: Vec<String> = match (before.as_object(), after.as_object()) {
        (Some(b), Some(a)) => a.iter().filter(|(k, v)| b.get(*k) != Some(*v)).map(|(k, _)| k.clone()).collect(),
        _ => Vec::new(),
    };
    if !changed.is_empty() {
        if !store.update_client(&updated, now).await? {
            return Err(no_client(id));
        }
        let detail = json!({ "changed": changed });
        record(store, actor, kind::CLIENT_UPDATED, Subject::Client(&updated.id), detail, now).await;
    }
    Ok((updated, changed))
}

pub async fn show<S: ClientStore>(store: &S, id: &str) -> Result<Client, AdminError> {
    store.find_client(id).await?.ok_or_else(|| no_client(id))
}

/// Replaces a confidential client's secret; the old one stops working at once in the database
/// and within `client_cache_ttl` on every replica.
pub async fn rotate_secret<S: ClientStore + AuditStore>(
    store: &S,
    id: &str,
    actor: &Actor,
    now: i64,
) -> Result<String, AdminError> {
    let client = show(store, id).await?;
    if client.kind == ClientKind::Public {
        return Err(AdminError::Invalid(format!("client `{id}` is public and has no secret")));
    }
    if client.auth_method() == AuthMethod::PrivateKeyJwt {
        return Err(AdminError::Invalid(format!(
            "client `{id}` authenticates with its keys (private_key_jwt); change them with `client update --jwks-file` or `--jwks-uri`"
        )));
    }
    let secret = new_secret();
    if !store.set_client_secret(id, &sha256(&secret), now).await? {
        return Err(no_client(id));
    }
    record(store, actor, kind::CLIENT_SECRET_ROTATED, Subject::Client(id), Value::Null, now).await;
    Ok(secret)
}

pub async fn disable<S: ClientStore + AuditStore>(
    store: &S,
    id: &str,
    actor: &Actor,
    now: i64,
) -> Result<(), AdminError> {
    if store.disable_client(id, now).await? {
        record(store, actor, kind::CLIENT_DISABLED, Subject::Client(id), Value::Null, now).await;
        Ok(())
    } else {
        Err(no_client(id))
    }
}

pub async fn delete<S: ClientStore + AuditStore>(
    store: &S,
    id: &str,
    actor: &Actor,
    now: i64,
) -> Result<(), AdminError> {
    if store.delete_client(id, now).await? {
        record(store, actor, kind::CLIENT_DELETED, Subject::Client(id), Value::Null, now).await;
        Ok(())
    } else {
        Err(no_client(id))
    }
}

/// The most clients one page holds.
pub const MAX_PAGE: i64 = 200;

/// One page of clients in `client_id` order after `after` (the previous page's cursor); the
/// second value is the cursor of the next page, `None` on the last.
pub async fn page<S: AdminStore>(
    store: &S,
    after: Option<&str>,
    limit: i64,
) -> Result<(Vec<Client>, Option<String>), AdminError> {
    let limit = limit.clamp(1, MAX_PAGE);
    let mut clients = store.page_clients(after, limit + 1).await?;
    let more = clients.len() as i64 > limit;
    clients.truncate(limit as usize);
    let next = if more { clients.last().map(|c| c.id.clone()) } else { None };
    Ok((clients, next))
}
