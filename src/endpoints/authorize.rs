//! `GET`/`POST /authorize` (RFC 6749 §4.1.1, OIDC Core §3.1.2) and the step that resumes a
//! pending request after sign-in or consent.

use axum::body::Bytes;
use axum::extract::{Query, RawQuery, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use tower_sessions::Session;

use crate::http::paths;
use crate::oauth::authorize::{
    error_redirect, id_token_hint_sub, issue_code, needs_consent, validate, AuthorizeError, Authorizer, CodeSettings,
    RawParams,
};
use crate::oauth::client_auth::ClientLookup;
use crate::oauth::{ErrorCode, OAuthError};
use crate::oidc::acr;
use crate::secret::random_token;
use crate::state::{unix_now, AppState};
use crate::store::{GrantStore, MfaStore, UserStore};
use crate::web::pages::{error_page, page_url, see_other, unavailable_page};
use crate::web::session::{self, Pending, WebResult};

pub async fn authorize(
    State(state): State<AppState>,
    session: Session,
    method: Method,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let raw = if method == Method::POST {
        let form = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"));
        if !form {
            return error_page(&state, StatusCode::BAD_REQUEST, "Invalid request", "The request body must be a form.");
        }
        body.to_vec()
    } else {
        query.unwrap_or_default().into_bytes()
    };
    let params = RawParams::parse(&raw);
    let now = unix_now();
    let (mut request, _client) = match validate(state.clients(), &params).await {
        Ok(ok) => ok,
        Err(AuthorizeError::Page { title, detail }) => {
            return error_page(&state, StatusCode::BAD_REQUEST, title, &detail)
        }
        Err(AuthorizeError::Unavailable) => return unavailable_page(&state),
        Err(AuthorizeError::Redirect { redirect_uri, error, state: app_state }) => {
            return see_other(&error_redirect(&redirect_uri, &error, app_state.as_deref(), &state.settings().issuer))
        }
    };
    // The client and redirect URI are verified: a bad hint goes back to the app.
    match id_token_hint_sub(&params, &state.keys(), &state.settings().issuer) {
        Ok(sub) => request.id_token_hint_sub = sub,
        Err(error) => {
            let issuer = &state.settings().issuer;
            return see_other(&error_redirect(&request.redirect_uri, &error, request.state.as_deref(), issuer));
        }
    }
    let pending = Pending { rid: random_token(16), request, created_at: now, login_at: None, consent_done: false };
    // Not stored yet: a signed-in user who needs no page gets the code without a session write.
    match resume(&state, &session, pending, false, now).await {
        Ok(response) | Err(response) => response,
    }
}

#[derive(Deserialize)]
pub struct Rid {
    rid: Option<String>,
}

/// `GET /authorize/continue?rid=…`: where sign-in and consent send the browser back to.
pub async fn resume_pending(State(state): State<AppState>, session: Session, Query(q): Query<Rid>) -> Response {
    let rid = match session::rid_param(&state, q.rid.as_deref()) {
        Ok(Some(rid)) => rid,
        Ok(None) => return error_page(&state, StatusCode::BAD_REQUEST, "Invalid request", "Nothing to continue."),
        Err(response) => return response,
    };
    let now = unix_now();
    let pending = match session::pending(&state, &session, rid, now).await {
        Ok(Some(pending)) => pending,
        Ok(None) => return expired(&state),
        Err(response) => return response,
    };
    match resume(&state, &session, pending, true, now).await {
        Ok(response) | Err(response) => response,
    }
}

fn expired(state: &AppState) -> Response {
    error_page(
        state,
        StatusCode::BAD_REQUEST,
        "This sign-in has expired",
        "The sign-in request is no longer valid. Go back to the application and start again.",
    )
}

/// Whether this sign-in has what the request needs in second factors.
pub fn second_factor_satisfied(
    state: &AppState,
    client: &crate::domain::Client,
    request: &crate::oauth::authorize::AuthorizationRequest,
    user: &session::SignedIn,
) -> bool {
    let required =
        state.settings().mfa_required || client.require_mfa || acr::requests_mfa(request.acr_values.as_deref());
    !required || acr::has_second_factor(&user.amr)
}

/// Decides the next step of a pending request: sign-in page, consent page, or the code.
/// `stored` says whether the request is already kept in the session (it is stored only when a
/// page must be shown, and removed once it is answered).
pub async fn resume(
    state: &AppState,
    session: &Session,
    pending: Pending,
    stored: bool,
    now: i64,
) -> WebResult<Response> {
    let rid = pending.rid.clone();
    let rid = rid.as_str();
    let request = pending.request.clone();
    let issuer = &state.settings().issuer;
    let to_app = |code: ErrorCode, description: &str| {
        see_other(&error_redirect(
            &request.redirect_uri,
            &OAuthError::new(code, description.to_string()),
            request.state.as_deref(),
            issuer,
        ))
    };
    let client = match state.clients().lookup_client(&request.client_id).await {
        Ok(Some(client)) if client.is_enabled() => client,
        Ok(_) => {
            return Ok(error_page(
                state,
                StatusCode::BAD_REQUEST,
                "Unknown application",
                "This application is disabled.",
            ))
        }
        Err(e) => return Ok(to_app(ErrorCode::TemporarilyUnavailable, &OAuthError::from(e).description)),
    };

    // Sign-in: needed without a session, after prompt=login until the user signs in again,
    // and when the last sign-in is older than max_age (OIDC Core §3.1.2.1).
    let mut user = session::signed_in(state, session).await?;
    if let Some(signed) = &user {
        let still_valid = match state.store().find_user(&signed.sub).await {
            Ok(found) => found.is_some_and(|u| u.is_enabled()),
            Err(e) => return Ok(to_app(ErrorCode::TemporarilyUnavailable, &OAuthError::from(e).description)),
        };
        if !still_valid {
            session::end(state, session).await?;
            user = None;
        }
    }
    // Password given, second factor still owed: back to the code page, whatever was jumped to.
    if user.is_none() && !request.prompt.none && session::password_verified(state, session, now).await?.is_some() {
        if !stored {
            session::save_pending(state, session, pending.clone(), now).await?;
        }
        return Ok(see_other(&page_url(paths::LOGIN_MFA, &[("rid", rid)])));
    }
    let fresh_enough = |auth_time: i64| request.max_age.is_none_or(|max| now - auth_time <= max);
    // OIDC Core §3.1.2.1: with an id_token_hint naming someone else, the signed-in user is not
    // the one the app expects: sign in again (prompt=none: login_required).
    let hinted_other = |u: &session::SignedIn| request.id_token_hint_sub.as_deref().is_some_and(|sub| sub != u.sub);
    let login_needed = match &user {
        None => true,
        Some(u) => {
            (request.prompt.login && pending.login_at.is_none())
                || !fresh_enough(u.auth_time)
                || (hinted_other(u) && pending.login_at.is_none())
        }
    };
    if login_needed {
        if request.prompt.none {
            if stored {
                session::remove_pending(state, session, rid, now).await?;
            }
            return Ok(to_app(ErrorCode::LoginRequired, "the user is not signed in"));
        }
        if !stored {
            session::save_pending(state, session, pending.clone(), now).await?;
        }
        return Ok(see_other(&page_url(paths::LOGIN, &[("rid", rid)])));
    }
    let Some(user) = user else { return Ok(expired(state)) };
    // Signed in again, and still not the hinted user: never a code for someone else.
    if hinted_other(&user) {
        if stored {
            session::remove_pending(state, session, rid, now).await?;
        }
        return Ok(to_app(ErrorCode::LoginRequired, "the signed-in user is not the one named by id_token_hint"));
    }

    // Second factor: owed when the settings or this app require it, or the app asked for the
    // multi-factor profile (acr_values). A user with an authenticator app gave it at sign-in.
    if !second_factor_satisfied(state, &client, &request, &user) {
        if request.prompt.none {
            if stored {
                session::remove_pending(state, session, rid, now).await?;
            }
            return Ok(to_app(ErrorCode::InteractionRequired, "a second factor is required"));
        }
        if !stored {
            session::save_pending(state, session, pending.clone(), now).await?;
        }
        let enrolled = match state.store().totp_factor(&user.sub).await {
            Ok(factor) => factor.is_some_and(|f| f.is_enabled()),
            Err(e) => return Ok(to_app(ErrorCode::TemporarilyUnavailable, &OAuthError::from(e).description)),
        };
        // Enrolled: step up with a code. Not enrolled: set up an app first, then continue.
        let page = if enrolled { paths::LOGIN_MFA } else { paths::ACCOUNT_TOTP };
        return Ok(see_other(&page_url(page, &[("rid", rid)])));
    }

    // Consent.
    let requested = request.scopes();
    // First-party apps never ask, so their consent is not even looked up.
    let consented = if client.first_party {
        None
    } else {
        match state.store().find_consent(&user.sub, &client.id).await {
            Ok(consented) => consented,
            Err(e) => return Ok(to_app(ErrorCode::TemporarilyUnavailable, &OAuthError::from(e).description)),
        }
    };
    if needs_consent(
        client.first_party,
        request.prompt.consent && !pending.consent_done,
        consented.as_ref(),
        &requested,
    ) {
        if request.prompt.none {
            if stored {
                session::remove_pending(state, session, rid, now).await?;
            }
            return Ok(to_app(ErrorCode::ConsentRequired, "the user has not consented to these scopes"));
        }
        if !stored {
            session::save_pending(state, session, pending.clone(), now).await?;
        }
        return Ok(see_other(&page_url(paths::CONSENT, &[("rid", rid)])));
    }

    // Everything is settled: issue the code. The pending request is used up either way.
    if stored {
        session::remove_pending(state, session, rid, now).await?;
    }
    let settings = state.settings();
    let location = issue_code(
        state.store(),
        &request,
        Authorizer { sub: &user.sub, auth_time: user.auth_time, amr: &user.amr, sid: &user.sid },
        CodeSettings {
            issuer,
            code_ttl_secs: settings.authorization_code_ttl.as_secs(),
            grant_ttl_secs: settings.refresh_token_absolute_ttl.as_secs(),
        },
        now,
    )
    .await;
    Ok(match location {
        Ok(location) => see_other(&location),
        Err(error) => to_app(error.code, &error.description),
    })
}
