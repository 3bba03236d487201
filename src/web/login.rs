//! The sign-in page: email and password.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Form;
use minijinja::context;
use serde::Deserialize;
use tower_sessions::Session;

use super::pages::{render, see_other};
use super::session::{self, SignedIn, WebResult};
use crate::domain::normalize_email;
use crate::http::paths;
use crate::oauth::client_auth::ClientLookup;
use crate::secret::random_id;
use crate::state::{unix_now, AppState};
use crate::store::UserStore;

/// One message for unknown email, wrong password and disabled account: the page must not
/// tell an attacker which accounts exist (shared/security.md, "No user enumeration").
const FAILED: &str = "The email or password is incorrect.";
/// When the database or the hasher fails: nothing about the account is implied.
const UNAVAILABLE: &str = "Sign-in is unavailable right now. Try again in a moment.";

#[derive(Deserialize)]
pub struct LoginQuery {
    rid: Option<String>,
}

#[derive(Deserialize)]
pub struct LoginForm {
    csrf: Option<String>,
    rid: Option<String>,
    email: Option<String>,
    password: Option<String>,
}

async fn page(
    state: &AppState,
    session: &Session,
    rid: Option<&str>,
    email: &str,
    error: Option<&str>,
) -> WebResult<Response> {
    let csrf = session::csrf_token(state, session).await?;
    let now = unix_now();
    let mut client_name = None;
    let mut hint = None;
    if let Some(rid) = rid {
        if let Some(pending) = session::pending(state, session, rid, now).await? {
            hint = pending.request.login_hint.clone();
            if let Ok(Some(client)) = state.clients().lookup_client(&pending.request.client_id).await {
                client_name = Some(client.name.clone());
            }
        }
    }
    let email = if email.is_empty() { hint.unwrap_or_default() } else { email.to_string() };
    Ok(render(state, StatusCode::OK, "login.html", context! { csrf, rid, client_name, email, error }))
}

/// `GET /login`.
pub async fn show(State(state): State<AppState>, session: Session, Query(q): Query<LoginQuery>) -> Response {
    match page(&state, &session, q.rid.as_deref(), "", None).await {
        Ok(r) | Err(r) => r,
    }
}

/// `POST /login`.
pub async fn submit(State(state): State<AppState>, session: Session, Form(form): Form<LoginForm>) -> Response {
    match handle(&state, &session, form).await {
        Ok(r) | Err(r) => r,
    }
}

async fn handle(state: &AppState, session: &Session, form: LoginForm) -> WebResult<Response> {
    session::require_csrf(state, session, form.csrf.as_deref()).await?;
    let email_raw = form.email.unwrap_or_default();
    let password = form.password.unwrap_or_default();
    let user = match normalize_email(&email_raw) {
        Ok(email) => match state.store().find_user_by_email(&email).await {
            Ok(user) => user,
            Err(e) => {
                tracing::warn!(error = %e, "sign-in lookup failed");
                return page(state, session, form.rid.as_deref(), &email_raw, Some(UNAVAILABLE)).await;
            }
        },
        Err(_) => None,
    };
    // Always one argon2 verification — against the dummy hash when the user is unknown — so
    // every failure takes the same time.
    let verification = match state.passwords().verify(&password, user.as_ref().map(|u| u.password_hash.as_str())).await
    {
        Ok(v) => v,
        Err(e) => {
            tracing::error!(error = %e, "password verification failed");
            return page(state, session, form.rid.as_deref(), &email_raw, Some(UNAVAILABLE)).await;
        }
    };
    let Some(user) = user.filter(|u| verification.valid && u.is_enabled()) else {
        return page(state, session, form.rid.as_deref(), &email_raw, Some(FAILED)).await;
    };
    if verification.needs_rehash {
        // Parameters changed since this hash was made: store one with today's (best effort).
        if let Ok(new_hash) = state.passwords().hash(&password).await {
            if let Err(e) = state.store().rehash_password(&user.sub, &user.password_hash, &new_hash).await {
                tracing::warn!(error = %e, "password rehash failed");
            }
        }
    }
    let now = unix_now();
    session::sign_in(
        state,
        session,
        SignedIn { sub: user.sub.clone(), auth_time: now, amr: vec!["pwd".into()], sid: random_id(22) },
    )
    .await?;
    tracing::info!(sub = %user.sub, "user signed in");
    match form.rid {
        Some(rid) => {
            if let Some(mut pending) = session::pending(state, session, &rid, now).await? {
                pending.login_at = Some(now);
                session::save_pending(state, session, pending, now).await?;
            }
            Ok(see_other(&format!("{}?rid={rid}", paths::AUTHORIZE_CONTINUE)))
        }
        None => Ok(see_other("/")),
    }
}
