//! RP-Initiated Logout 1.0 (`end_session_endpoint`): ends the session server-side, revokes the
//! grants given in it, and returns to the app only at a registered post-logout URI.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use minijinja::context;
use tower_sessions::Session;

use super::pages::{error_page, render, see_other, unavailable};
use super::session::{self, WebResult};
use crate::oauth::client_auth::ClientLookup;
use crate::oauth::params::Params;
use crate::oauth::verify::{verify_jwt, Expect};
use crate::state::{unix_now, AppState};
use crate::store::{GrantStore, UserStore};

/// `GET` / `POST /logout`.
pub async fn logout(
    State(state): State<AppState>,
    session: Session,
    method: Method,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let raw = if method == Method::POST { body.to_vec() } else { query.unwrap_or_default().into_bytes() };
    match handle(&state, &session, &method, &raw).await {
        Ok(r) | Err(r) => r,
    }
}

fn bad(state: &AppState, detail: &str) -> Response {
    error_page(state, StatusCode::BAD_REQUEST, "Invalid sign-out request", detail)
}

async fn handle(state: &AppState, session: &Session, method: &Method, raw: &[u8]) -> WebResult<Response> {
    let Ok(params) = Params::parse(raw) else { return Ok(bad(state, "A parameter is repeated or malformed.")) };
    let issuer = &state.settings().issuer;
    let signed_in = session::signed_in(state, session).await?;

    // The hint names the client and the user; expired hints are accepted (RP-Initiated
    // Logout §2), forged or foreign ones are not.
    let mut hint_client = None;
    let mut hint_sub = None;
    if let Some(hint) = params.get("id_token_hint") {
        let keys = state.keys();
        let Ok(claims) = verify_jwt(&keys, hint, issuer, Expect::IdToken { allow_expired: true }) else {
            return Ok(bad(state, "The id_token_hint is not a valid ID token from this provider."));
        };
        hint_client = match claims.get("aud") {
            Some(serde_json::Value::String(aud)) => Some(aud.clone()),
            Some(serde_json::Value::Array(list)) => list.first().and_then(|a| a.as_str()).map(str::to_string),
            _ => None,
        };
        hint_sub = claims.get("sub").and_then(|s| s.as_str()).map(str::to_string);
    }
    let client_id = match (hint_client, params.get("client_id")) {
        (Some(a), Some(b)) if a != b => return Ok(bad(state, "client_id does not match the id_token_hint.")),
        (Some(a), _) => Some(a),
        (None, b) => b.map(str::to_string),
    };
    // post_logout_redirect_uri: exact match with the client's registered list, else no redirect.
    let target = match params.get("post_logout_redirect_uri") {
        None => None,
        Some(uri) => {
            let Some(client_id) = &client_id else {
                return Ok(bad(state, "post_logout_redirect_uri needs an id_token_hint or client_id."));
            };
            // A failed lookup is an outage (503), not "not registered" (400).
            let client = state.clients().lookup_client(client_id).await.map_err(|e| unavailable(state, &e))?;
            match client {
                Some(c) if c.post_logout_redirect_uris.iter().any(|r| r.as_str() == uri) => Some(uri.to_string()),
                _ => return Ok(bad(state, "post_logout_redirect_uri is not registered for this application.")),
            }
        }
    };

    // Without a matching hint, ask first: a link must not be able to sign people out.
    let hint_matches = hint_sub.is_some() && hint_sub.as_deref() == signed_in.as_ref().map(|u| u.sub.as_str());
    let confirmed = method == Method::POST && params.get("confirm") == Some("yes");
    if confirmed {
        session::require_csrf(state, session, params.get("csrf")).await?;
    }
    let no_session = signed_in.is_none();
    if !(hint_matches || confirmed || (no_session && hint_sub.is_some())) {
        let csrf = session::csrf_token(state, session).await?;
        let user_email = match &signed_in {
            Some(u) => state.store().find_user(&u.sub).await.map_err(|e| unavailable(state, &e))?.map(|u| u.email),
            None => None,
        };
        return Ok(render(
            state,
            StatusCode::OK,
            "logout_confirm.html",
            context! {
                csrf,
                user_email,
                client_id,
                post_logout_redirect_uri => target,
                state => params.get("state"),
            },
        ));
    }

    if let Some(user) = &signed_in {
        // Logout ends the refresh-token families given in this session (shared/security.md).
        // Not signed out until the grants are revoked: a 503, never a "signed out" page.
        if let Err(e) = state.store().revoke_grants_of_session(&user.sid, unix_now()).await {
            return Err(unavailable(state, &format_args!("revoking the session's grants failed: {e}")));
        }
        tracing::info!(sub = %user.sub, "user signed out");
    }
    session::end(state, session).await?;
    Ok(match target {
        Some(uri) => {
            let location = match (params.get("state"), url::Url::parse(&uri)) {
                (Some(app_state), Ok(mut url)) => {
                    url.query_pairs_mut().append_pair("state", app_state);
                    url.to_string()
                }
                _ => uri,
            };
            see_other(&location)
        }
        None => render(state, StatusCode::OK, "signed_out.html", context! {}),
    })
}
