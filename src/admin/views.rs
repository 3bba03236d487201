//! What admins see of clients, users, keys, grants, sessions and audit events: one shape for
//! the CLI's JSON output and the admin API's answers (and, through `utoipa::ToSchema`, the
//! OpenAPI document's schemas), so the three cannot disagree. Secrets never appear here: a
//! client's secret only in the answer that creates or rotates it, a password hash never.

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::audit::AuditEvent;
use crate::domain::{AuthMethod, Client, Grant, KeyRecord, SessionSummary, User};

/// A registered client (app, service or resource server).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ClientView {
    pub client_id: String,
    /// Shown to users on the consent page.
    pub name: String,
    /// `confidential` or `public`.
    #[serde(rename = "type")]
    pub kind: String,
    pub first_party: bool,
    pub require_mfa: bool,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub grant_types: Vec<String>,
    pub scopes: Vec<String>,
    pub roles: Vec<String>,
    /// `aud` of the client's access tokens; null means the `default_audience` setting.
    pub audience: Option<String>,
    pub allowed_origins: Vec<String>,
    /// `RS256` or `ES256`.
    pub id_token_signed_response_alg: String,
    pub introspect: bool,
    /// `client_secret_basic` (or `_post`), `private_key_jwt` or `none`.
    pub token_endpoint_auth_method: String,
    pub jwks_uri: Option<String>,
    /// The client's public keys (private_key_jwt), as registered.
    #[schema(value_type = Option<Object>)]
    pub jwks: Option<Value>,
    pub backchannel_logout_uri: Option<String>,
    pub backchannel_logout_session_required: bool,
    /// Unix time, seconds.
    pub created_at: i64,
    pub disabled: bool,
    pub disabled_at: Option<i64>,
}

impl From<&Client> for ClientView {
    fn from(client: &Client) -> Self {
        Self {
            client_id: client.id.clone(),
            name: client.name.clone(),
            kind: client.kind.as_str().to_string(),
            first_party: client.first_party,
            require_mfa: client.require_mfa,
            redirect_uris: client.redirect_uris.iter().map(|u| u.as_str().to_string()).collect(),
            post_logout_redirect_uris: client
                .post_logout_redirect_uris
                .iter()
                .map(|u| u.as_str().to_string())
                .collect(),
            grant_types: client.grant_types.iter().map(|g| g.as_str().to_string()).collect(),
            scopes: client.scopes.to_vec(),
            roles: client.roles.clone(),
            audience: client.audience.clone(),
            allowed_origins: client.allowed_origins.clone(),
            id_token_signed_response_alg: client.id_token_alg.map(|a| a.as_str()).unwrap_or("RS256").to_string(),
            introspect: client.introspect,
            token_endpoint_auth_method: match client.auth_method() {
                AuthMethod::ClientSecret => "client_secret_basic",
                AuthMethod::PrivateKeyJwt => "private_key_jwt",
                AuthMethod::None => "none",
            }
            .to_string(),
            jwks_uri: client.jwks_uri.clone(),
            jwks: client.jwks.as_deref().and_then(|j| serde_json::from_str::<Value>(j).ok()),
            backchannel_logout_uri: client.backchannel_logout_uri.clone(),
            backchannel_logout_session_required: client.backchannel_logout_session_required,
            created_at: client.created_at,
            disabled: client.disabled_at.is_some(),
            disabled_at: client.disabled_at,
        }
    }
}

/// A person who signs in. Never the password hash.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct UserView {
    /// The stable subject identifier of the user's tokens.
    pub sub: String,
    pub email: String,
    pub name: Option<String>,
    pub roles: Vec<String>,
    pub created_at: i64,
    pub password_changed_at: i64,
    pub disabled: bool,
    pub disabled_at: Option<i64>,
    pub email_verified: bool,
    pub email_verified_at: Option<i64>,
    /// `admin`, `self` (signed up) or `invited`.
    pub created_via: String,
}

impl From<&User> for UserView {
    fn from(user: &User) -> Self {
        Self {
            sub: user.sub.clone(),
            email: user.email.clone(),
            name: user.name.clone(),
            roles: user.roles.clone(),
            created_at: user.created_at,
            password_changed_at: user.password_changed_at,
            disabled: user.disabled_at.is_some(),
            disabled_at: user.disabled_at,
            email_verified: user.email_verified(),
            email_verified_at: user.email_verified_at,
            created_via: user.created_via.as_str().to_string(),
        }
    }
}

/// A signing key: its public metadata only.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct KeyView {
    pub kid: String,
    /// `RS256` or `ES256`.
    pub alg: String,
    /// `next` (published, not yet signing), `active`, `retired` (verifying only).
    pub status: String,
    pub created_at: i64,
    pub activates_at: i64,
    pub retired_at: Option<i64>,
    pub removes_at: Option<i64>,
}

impl From<&KeyRecord> for KeyView {
    fn from(key: &KeyRecord) -> Self {
        Self {
            kid: key.kid.clone(),
            alg: key.alg.as_str().to_string(),
            status: key.status.as_str().to_string(),
            created_at: key.created_at,
            activates_at: key.activates_at,
            retired_at: key.retired_at,
            removes_at: key.removes_at,
        }
    }
}

/// A live grant: what a user allowed an app, with the refresh-token family it issued.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct GrantView {
    pub id: String,
    pub client_id: String,
    pub scopes: Vec<String>,
    pub auth_time: i64,
    pub amr: Vec<String>,
    /// The browser session it was given in.
    pub sid: Option<String>,
    pub created_at: i64,
    /// The absolute end of its refresh tokens.
    pub expires_at: i64,
}

impl From<&Grant> for GrantView {
    fn from(grant: &Grant) -> Self {
        Self {
            id: grant.id.clone(),
            client_id: grant.client_id.clone(),
            scopes: grant.scopes.to_vec(),
            auth_time: grant.auth_time,
            amr: grant.amr.clone(),
            sid: grant.sid.clone(),
            created_at: grant.created_at,
            expires_at: grant.expires_at,
        }
    }
}

/// A signed-in browser session.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct SessionView {
    /// Identifies the session to end it (a hash: never the cookie).
    pub id: String,
    pub sid: Option<String>,
    pub auth_time: Option<i64>,
    pub amr: Vec<String>,
    pub expires_at: i64,
}

impl From<&SessionSummary> for SessionView {
    fn from(s: &SessionSummary) -> Self {
        Self {
            id: s.id.clone(),
            sid: s.sid.clone(),
            auth_time: s.auth_time,
            amr: s.amr.clone(),
            expires_at: s.expires_at,
        }
    }
}

/// A security event of the audit trail.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct AuditEventView {
    /// Increasing; the cursor of the next page is the last id of a page.
    pub id: i64,
    pub at: i64,
    /// The kind of event (docs/operations.md lists them all).
    pub event: String,
    pub user_sub: Option<String>,
    pub client_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// What the kind of event adds; admin changes carry `by` and, through the admin API,
    /// `actor_client_id`.
    #[schema(value_type = Object)]
    pub detail: Value,
}

impl From<&AuditEvent> for AuditEventView {
    fn from(e: &AuditEvent) -> Self {
        Self {
            id: e.id,
            at: e.at,
            event: e.event.clone(),
            user_sub: e.user_sub.clone(),
            client_id: e.client_id.clone(),
            ip: e.ip.clone(),
            user_agent: e.user_agent.clone(),
            detail: if e.detail.is_null() { Value::Object(Default::default()) } else { e.detail.clone() },
        }
    }
}
