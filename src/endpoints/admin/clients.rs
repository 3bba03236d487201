//! `/admin/v1/clients`: register, list, show, change, rotate the secret, disable, delete.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::problem::Problem;
use super::request::{json_body, path, query, AdminRequest};
use super::{cursor, double_option, uncursor, CLIENTS_TAG};
use crate::admin::access::Need;
use crate::admin::clients::{self, ClientUpdate};
use crate::admin::views::ClientView;
use crate::domain::{is_admin_scope, NewClient};
use crate::state::{unix_now, AppState};

/// One page of clients, in `client_id` order.
#[derive(Serialize, ToSchema)]
pub struct ClientPage {
    pub items: Vec<ClientView>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ClientQuery {
    /// At most this many (1–200, default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A client just registered; `client_secret` is shown this once (confidential clients that
/// authenticate with a secret).
#[derive(Serialize, ToSchema)]
pub struct CreatedClient {
    #[serde(flatten)]
    pub client: ClientView,
    pub client_secret: Option<String>,
}

/// A confidential client's new secret, shown this once.
#[derive(Serialize, ToSchema)]
pub struct ClientSecret {
    pub client_id: String,
    pub client_secret: String,
}

/// A client to register; the same rules as `latchkey client create`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Orders web app", "redirect_uris": ["https://orders.example/callback"],
    "scopes": ["openid", "email", "orders:read"], "backchannel_logout_uri": "https://orders.example/logout"}))]
pub struct CreateClientRequest {
    /// Shown to users on the consent page.
    pub name: String,
    /// A browser or native app that can't keep a secret (PKCE alone).
    #[serde(default)]
    pub public: bool,
    /// Your own app: users are not asked for consent.
    #[serde(default)]
    pub first_party: bool,
    /// Every sign-in for this app needs a second factor.
    #[serde(default)]
    pub require_mfa: bool,
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    /// `authorization_code`, `refresh_token`, `client_credentials`; `["none"]`: no grants (a
    /// resource server that only introspects). Empty: chosen from the other fields.
    #[serde(default)]
    pub grant_types: Vec<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Roles carried in the client's own tokens.
    #[serde(default)]
    pub roles: Vec<String>,
    /// `aud` of the client's access tokens (default: the `default_audience` setting).
    pub audience: Option<String>,
    /// `RS256` (default) or `ES256`.
    pub id_token_signed_response_alg: Option<String>,
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// May call /introspect for tokens meant for it.
    #[serde(default)]
    pub introspect: bool,
    pub backchannel_logout_uri: Option<String>,
    #[serde(default)]
    pub backchannel_logout_session_required: bool,
    /// Public keys for private_key_jwt (a JWKS document); no secret is issued.
    #[schema(value_type = Option<Object>)]
    pub jwks: Option<Value>,
    /// private_key_jwt with keys fetched from this https URL.
    pub jwks_uri: Option<String>,
}

/// A change to a client. Absent fields stay as they are; a list replaces the registered one;
/// `null` clears `audience` or `backchannel_logout_uri`. The result passes every rule of
/// registration, or nothing changes.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct UpdateClientRequest {
    pub name: Option<String>,
    pub redirect_uris: Option<Vec<String>>,
    pub post_logout_redirect_uris: Option<Vec<String>>,
    pub grant_types: Option<Vec<String>>,
    pub scopes: Option<Vec<String>>,
    pub roles: Option<Vec<String>>,
    pub allowed_origins: Option<Vec<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub audience: Option<Option<String>>,
    pub id_token_signed_response_alg: Option<String>,
    pub first_party: Option<bool>,
    pub require_mfa: Option<bool>,
    pub introspect: Option<bool>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub backchannel_logout_uri: Option<Option<String>>,
    pub backchannel_logout_session_required: Option<bool>,
    #[schema(value_type = Option<Object>)]
    pub jwks: Option<Value>,
    pub jwks_uri: Option<String>,
}

fn jwks_text(jwks: Option<Value>) -> Result<Option<String>, Problem> {
    match jwks {
        None => Ok(None),
        Some(Value::Object(map)) => Ok(Some(Value::Object(map).to_string())),
        Some(_) => {
            Err(Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "jwks must be a JWKS object ({\"keys\": [...]})"))
        }
    }
}

/// What to add and remove to turn `current` into `wanted`.
fn edits(current: &[String], wanted: Option<Vec<String>>) -> (Vec<String>, Vec<String>) {
    let Some(wanted) = wanted else { return (Vec::new(), Vec::new()) };
    let add = wanted.iter().filter(|w| !current.contains(w)).cloned().collect();
    let remove = current.iter().filter(|c| !wanted.contains(c)).cloned().collect();
    (add, remove)
}

#[utoipa::path(get, path = "/admin/v1/clients", tag = CLIENTS_TAG, operation_id = "listClients",
    security(("admin_token" = ["latchkey:admin.read"])), params(ClientQuery),
    responses((status = 200, body = ClientPage), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 503, body = Problem)))]
pub async fn list_clients(
    State(state): State<AppState>,
    request: AdminRequest,
    q: Result<Query<ClientQuery>, QueryRejection>,
) -> Result<Json<ClientPage>, Problem> {
    request.authorize(&state, Need::Read).await?;
    let q = query(q)?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=clients::MAX_PAGE).contains(&limit) {
        return Err(Problem::bad_request(format!("limit must be between 1 and {}", clients::MAX_PAGE)));
    }
    let after = q.cursor.as_deref().map(uncursor).transpose()?;
    let (page, next) = clients::page(state.store(), after.as_deref(), limit).await?;
    Ok(Json(ClientPage {
        items: page.iter().map(ClientView::from).collect(),
        next_cursor: next.as_deref().map(cursor),
    }))
}

#[utoipa::path(post, path = "/admin/v1/clients", tag = CLIENTS_TAG, operation_id = "createClient",
    security(("admin_token" = ["latchkey:admin"])), request_body = CreateClientRequest,
    responses((status = 201, body = CreatedClient), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 409, body = Problem), (status = 413, body = Problem), (status = 415, body = Problem),
        (status = 422, body = Problem), (status = 503, body = Problem)))]
pub async fn create_client(
    State(state): State<AppState>,
    request: AdminRequest,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    let caller = request.authorize(&state, Need::Write).await?;
    let c: CreateClientRequest = json_body(&headers, body)?;
    let new = NewClient {
        name: c.name,
        public: c.public,
        first_party: c.first_party,
        require_mfa: c.require_mfa,
        redirect_uris: c.redirect_uris,
        post_logout_redirect_uris: c.post_logout_redirect_uris,
        grant_types: c.grant_types,
        scopes: c.scopes,
        roles: c.roles,
        audience: c.audience,
        id_token_alg: c.id_token_signed_response_alg,
        allowed_origins: c.allowed_origins,
        introspect: c.introspect,
        backchannel_logout_uri: c.backchannel_logout_uri,
        backchannel_logout_session_required: c.backchannel_logout_session_required,
        jwks: jwks_text(c.jwks)?,
        jwks_uri: c.jwks_uri,
    };
    let (client, secret) = clients::create(state.store(), new, &caller.actor, unix_now()).await?;
    let created = CreatedClient { client: ClientView::from(&client), client_secret: secret };
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

#[utoipa::path(get, path = "/admin/v1/clients/{client_id}", tag = CLIENTS_TAG, operation_id = "getClient",
    security(("admin_token" = ["latchkey:admin.read"])), params(("client_id" = String, Path)),
    responses((status = 200, body = ClientView), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 503, body = Problem)))]
pub async fn get_client(
    State(state): State<AppState>,
    request: AdminRequest,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<ClientView>, Problem> {
    request.authorize(&state, Need::Read).await?;
    let id = path(id)?;
    Ok(Json(ClientView::from(&clients::show(state.store(), &id).await?)))
}

#[utoipa::path(patch, path = "/admin/v1/clients/{client_id}", tag = CLIENTS_TAG, operation_id = "updateClient",
    security(("admin_token" = ["latchkey:admin"])), params(("client_id" = String, Path)),
    request_body = UpdateClientRequest,
    responses((status = 200, body = ClientView), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 413, body = Problem), (status = 415, body = Problem), (status = 422, body = Problem), (status = 503, body = Problem)))]
pub async fn update_client(
    State(state): State<AppState>,
    request: AdminRequest,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ClientView>, Problem> {
    let caller = request.authorize(&state, Need::Write).await?;
    let id = path(id)?;
    let u: UpdateClientRequest = json_body(&headers, body)?;
    let current = ClientView::from(&clients::show(state.store(), &id).await?);
    let (add_redirect_uris, remove_redirect_uris) = edits(&current.redirect_uris, u.redirect_uris);
    let (add_post_logout_redirect_uris, remove_post_logout_redirect_uris) =
        edits(&current.post_logout_redirect_uris, u.post_logout_redirect_uris);
    let (add_grant_types, remove_grant_types) = edits(&current.grant_types, u.grant_types);
    let (add_scopes, remove_scopes) = edits(&current.scopes, u.scopes);
    if remove_scopes.iter().any(|s| is_admin_scope(s)) {
        caller.refuse_self_lockout(&id, "take the admin scopes from")?;
    }
    let (add_roles, remove_roles) = edits(&current.roles, u.roles);
    let (add_allowed_origins, remove_allowed_origins) = edits(&current.allowed_origins, u.allowed_origins);
    let changes = ClientUpdate {
        name: u.name,
        add_redirect_uris,
        remove_redirect_uris,
        add_post_logout_redirect_uris,
        remove_post_logout_redirect_uris,
        add_grant_types,
        remove_grant_types,
        add_scopes,
        remove_scopes,
        add_roles,
        remove_roles,
        add_allowed_origins,
        remove_allowed_origins,
        audience: u.audience,
        id_token_alg: u.id_token_signed_response_alg,
        first_party: u.first_party,
        require_mfa: u.require_mfa,
        introspect: u.introspect,
        backchannel_logout_uri: u.backchannel_logout_uri,
        backchannel_logout_session_required: u.backchannel_logout_session_required,
        jwks: jwks_text(u.jwks)?,
        jwks_uri: u.jwks_uri,
    };
    let (client, _) = clients::update(state.store(), &id, changes, &caller.actor, unix_now()).await?;
    Ok(Json(ClientView::from(&client)))
}

#[utoipa::path(post, path = "/admin/v1/clients/{client_id}/secret", tag = CLIENTS_TAG,
    operation_id = "rotateClientSecret", security(("admin_token" = ["latchkey:admin"])),
    params(("client_id" = String, Path)),
    responses((status = 200, body = ClientSecret), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem),
        (status = 503, body = Problem)))]
pub async fn rotate_secret(
    State(state): State<AppState>,
    request: AdminRequest,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<ClientSecret>, Problem> {
    let caller = request.authorize(&state, Need::Write).await?;
    let id = path(id)?;
    let secret = clients::rotate_secret(state.store(), &id, &caller.actor, unix_now()).await?;
    Ok(Json(ClientSecret { client_id: id, client_secret: secret }))
}

#[utoipa::path(post, path = "/admin/v1/clients/{client_id}/disable", tag = CLIENTS_TAG,
    operation_id = "disableClient", security(("admin_token" = ["latchkey:admin"])),
    params(("client_id" = String, Path)),
    responses((status = 200, body = ClientView), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 503, body = Problem)))]
pub async fn disable_client(
    State(state): State<AppState>,
    request: AdminRequest,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<ClientView>, Problem> {
    let caller = request.authorize(&state, Need::Write).await?;
    let id = path(id)?;
    caller.refuse_self_lockout(&id, "disable")?;
    clients::disable(state.store(), &id, &caller.actor, unix_now()).await?;
    Ok(Json(ClientView::from(&clients::show(state.store(), &id).await?)))
}

#[utoipa::path(delete, path = "/admin/v1/clients/{client_id}", tag = CLIENTS_TAG, operation_id = "deleteClient",
    security(("admin_token" = ["latchkey:admin"])), params(("client_id" = String, Path)),
    responses((status = 204, description = "Deleted; its grants are revoked and its consents forgotten"),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem), (status = 503, body = Problem)))]
pub async fn delete_client(
    State(state): State<AppState>,
    request: AdminRequest,
    id: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, Problem> {
    let caller = request.authorize(&state, Need::Write).await?;
    let id = path(id)?;
    caller.refuse_self_lockout(&id, "delete")?;
    clients::delete(state.store(), &id, &caller.actor, unix_now()).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wanted_list_becomes_additions_and_removals() {
        let current = vec!["a".to_string(), "b".to_string()];
        assert_eq!(edits(&current, None), (vec![], vec![]));
        assert_eq!(edits(&current, Some(vec!["b".into(), "c".into()])), (vec!["c".to_string()], vec!["a".to_string()]));
    }
}
