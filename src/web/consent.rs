//! The consent page: what the app asks for, in plain words; allow (possibly fewer) or deny.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use minijinja::context;
use serde::{Deserialize, Serialize};
use tower_sessions::Session;

use super::pages::{error_page, page_url, render, see_other, unavailable};
use super::session::{self, WebResult};
use crate::audit::{self, kind, AuditEvent};
use crate::domain::ScopeSet;
use crate::endpoints::authorize::second_factor_satisfied;
use crate::http::client_ip::Requester;
use crate::http::paths;
use crate::oauth::authorize::error_redirect;
use crate::oauth::client_auth::ClientLookup;
use crate::oauth::{ErrorCode, OAuthError};
use crate::oidc::claims::{describe, KNOWN_SCOPES};
use crate::state::{unix_now, AppState};
use crate::store::CatalogStore;
use crate::store::{GrantStore, UserStore};

#[derive(Deserialize)]
pub struct ConsentQuery {
    rid: Option<String>,
}

#[derive(Serialize)]
struct ScopeLine {
    name: String,
    description: String,
    required: bool,
}

fn expired(state: &AppState) -> Response {
    error_page(
        state,
        StatusCode::BAD_REQUEST,
        "This request has expired",
        "Go back to the application and start again.",
    )
}

/// No signed-in user: the code page when only the password was given (the second factor
/// can't be skipped by coming here), the sign-in page otherwise.
async fn not_signed_in(state: &AppState, session: &Session, rid: &str, now: i64) -> WebResult<Response> {
    let page =
        if session::password_verified(state, session, now).await?.is_some() { paths::LOGIN_MFA } else { paths::LOGIN };
    Ok(see_other(&page_url(page, &[("rid", rid)])))
}

/// `GET /consent?rid=…`.
pub async fn show(State(state): State<AppState>, session: Session, Query(q): Query<ConsentQuery>) -> Response {
    let result: WebResult<Response> = async {
        let now = unix_now();
        let Some(rid) = session::rid_param(&state, q.rid.as_deref())? else { return Ok(expired(&state)) };
        let Some(user) = session::signed_in(&state, &session).await? else {
            return not_signed_in(&state, &session, rid, now).await;
        };
        let Some(pending) = session::pending(&state, &session, rid, now).await? else { return Ok(expired(&state)) };
        let client = match state.clients().lookup_client(&pending.request.client_id).await {
            Ok(Some(c)) => c,
            Ok(None) => return Ok(expired(&state)),
            Err(e) => return Err(unavailable(&state, &e)),
        };
        if !second_factor_satisfied(&state, &client, &pending.request, &user) {
            return Ok(see_other(&page_url(paths::AUTHORIZE_CONTINUE, &[("rid", rid)])));
        }
        let user_email = match state.store().find_user(&user.sub).await {
            Ok(Some(u)) => u.email,
            Ok(None) => return Ok(expired(&state)),
            Err(e) => return Err(unavailable(&state, &e)),
        };
        // Words an operator declared (`latchkey apply`, [[scope]]) win over the built-in ones.
        let mut scopes: Vec<ScopeLine> = Vec::new();
        for s in pending.request.scopes().iter() {
            let declared = state.store().scope_description(s).await.map_err(|e| unavailable(&state, &e))?;
            scopes.push(ScopeLine {
                name: s.to_string(),
                description: declared.unwrap_or_else(|| describe(s)),
                required: s == "openid",
            });
        }
        // "Sign you in" first, then the standard scopes in a fixed order, then the app's own.
        let rank = |name: &str| KNOWN_SCOPES.iter().position(|(s, _)| *s == name).unwrap_or(KNOWN_SCOPES.len());
        scopes.sort_by_key(|line| rank(&line.name));
        let csrf = session::csrf_token(&state, &session).await?;
        Ok(render(
            &state,
            StatusCode::OK,
            "consent.html",
            context! { csrf, rid, client_name => client.name, user_email, scopes },
        ))
    }
    .await;
    match result {
        Ok(r) | Err(r) => r,
    }
}

/// `POST /consent`. Fields: csrf, rid, decision (approve | deny), scope (repeated).
pub async fn submit(State(state): State<AppState>, session: Session, requester: Requester, body: Bytes) -> Response {
    match handle(&state, &session, &requester, &body).await {
        Ok(r) | Err(r) => r,
    }
}

async fn handle(state: &AppState, session: &Session, requester: &Requester, body: &[u8]) -> WebResult<Response> {
    let mut csrf = None;
    let mut rid = None;
    let mut decision = None;
    let mut posted: Vec<String> = Vec::new();
    for (name, value) in form_urlencoded::parse(body).take(128) {
        match name.as_ref() {
            "csrf" => csrf = Some(value.into_owned()),
            "rid" => rid = Some(value.into_owned()),
            "decision" => decision = Some(value.into_owned()),
            "scope" => posted.push(value.into_owned()),
            _ => {}
        }
    }
    let rid = session::rid_param(state, rid.as_deref())?;
    session::require_csrf(state, session, csrf.as_deref()).await?;
    let now = unix_now();
    let Some(rid) = rid else { return Ok(expired(state)) };
    let Some(user) = session::signed_in(state, session).await? else {
        return not_signed_in(state, session, rid, now).await;
    };
    let Some(mut pending) = session::pending(state, session, rid, now).await? else { return Ok(expired(state)) };
    let request = pending.request.clone();
    let client = match state.clients().lookup_client(&request.client_id).await {
        Ok(Some(c)) => c,
        Ok(None) => return Ok(expired(state)),
        Err(e) => return Err(unavailable(state, &e)),
    };
    if !second_factor_satisfied(state, &client, &request, &user) {
        return Ok(see_other(&page_url(paths::AUTHORIZE_CONTINUE, &[("rid", rid)])));
    }
    let requested = request.scopes();
    match decision.as_deref() {
        Some("deny") => {
            session::remove_pending(state, session, rid, now).await?;
            let error = OAuthError::new(ErrorCode::AccessDenied, "the user denied the request");
            Ok(see_other(&error_redirect(
                &request.redirect_uri,
                &error,
                request.state.as_deref(),
                &state.settings().issuer,
            )))
        }
        Some("approve") => {
            // Posted scopes can only narrow what was shown (shared/security.md).
            let Ok(mut granted) = ScopeSet::from_tokens(posted.iter().map(String::as_str)) else {
                return Ok(error_page(state, StatusCode::BAD_REQUEST, "Invalid request", "The form was altered."));
            };
            if !granted.is_subset_of(&requested) {
                return Ok(error_page(
                    state,
                    StatusCode::BAD_REQUEST,
                    "Invalid request",
                    "The form asked for more than the application did.",
                ));
            }
            if requested.contains("openid") && !granted.contains("openid") {
                granted = ScopeSet::from_tokens(granted.iter().chain(["openid"])).unwrap_or(granted);
            }
            let remembered = match state.store().find_consent(&user.sub, &request.client_id).await {
                Ok(Some(previous)) => {
                    ScopeSet::from_tokens(previous.iter().chain(granted.iter())).unwrap_or(granted.clone())
                }
                Ok(None) => granted.clone(),
                // Logged, never shown: the text names tables (issue 9, item 3).
                Err(e) => return Err(unavailable(state, &e)),
            };
            if let Err(e) = state.store().save_consent(&user.sub, &request.client_id, &remembered, now).await {
                return Err(unavailable(state, &format_args!("saving consent failed: {e}")));
            }
            audit::record(
                state.store(),
                AuditEvent::new(kind::CONSENT_GRANTED, now, &requester.origin())
                    .user(&user.sub)
                    .client(&request.client_id)
                    .detail(serde_json::json!({ "scopes": granted.to_string() })),
            )
            .await;
            pending.request.scope = granted.to_string();
            pending.consent_done = true;
            session::save_pending(state, session, pending, now).await?;
            Ok(see_other(&page_url(paths::AUTHORIZE_CONTINUE, &[("rid", rid)])))
        }
        _ => Ok(error_page(state, StatusCode::BAD_REQUEST, "Invalid request", "Choose Allow or Deny.")),
    }
}
