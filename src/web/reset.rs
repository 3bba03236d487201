//! Password reset pages (issue 12 item 4): `/forgot-password` asks for an address and answers
//! the same whatever it is; `/reset-password?token=…` sets a new password under the policy.
//! A reset ends every session and grant of the user and does not sign anyone in.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Form;
use minijinja::context;
use serde::Deserialize;
use tower_sessions::Session;

use super::pages::{page_url, render, respond, see_other};
use super::register::{
    account_unavailable, dead_link_page, email_throttle, throttled_page, to_sign_in, RidQuery, TokenQuery,
};
use super::session::{self, WebResult};
use crate::accounts::reset::{self, ResetRequested};
use crate::accounts::AccountError;
use crate::audit::{self, kind, AuditEvent};
use crate::http::client_ip::Requester;
use crate::http::paths;
use crate::state::{unix_now, AppState};

/// `GET /forgot-password`.
pub async fn show(State(state): State<AppState>, session: Session, Query(q): Query<RidQuery>) -> Response {
    respond(
        async {
            let rid = session::rid_param(&state, q.rid.as_deref())?;
            let csrf = session::csrf_token(&state, &session).await?;
            Ok(render(&state, StatusCode::OK, "forgot_password.html", context! { csrf, rid, email => "" }))
        }
        .await,
    )
}

#[derive(Deserialize)]
pub struct ForgotForm {
    csrf: Option<String>,
    rid: Option<String>,
    email: Option<String>,
}

/// `POST /forgot-password`: one answer (303 to the same page) for a known, unknown, disabled
/// or over-budget address; only the audit trail tells them apart.
pub async fn submit(
    State(state): State<AppState>,
    session: Session,
    requester: Requester,
    Form(form): Form<ForgotForm>,
) -> Response {
    respond(
        async {
            let rid = session::rid_param(&state, form.rid.as_deref())?;
            session::require_csrf(&state, &session, form.csrf.as_deref()).await?;
            if let Some(wait) = email_throttle(&state, &requester) {
                return Ok(throttled_page(&state, wait));
            }
            let now = unix_now();
            let typed = form.email.unwrap_or_default();
            let letters = state.letters();
            let outcome = reset::request_reset(state.store(), &letters, state.account_settings(), &typed, now)
                .await
                .map_err(|e| account_unavailable(&state, &e))?;
            if matches!(outcome, ResetRequested::Sent { .. }) {
                state.wake_outbox();
            }
            let typed: String = typed.trim().chars().take(254).collect();
            let mut event = AuditEvent::new(kind::PASSWORD_RESET_REQUESTED, now, &requester.origin())
                .detail(serde_json::json!({ "outcome": outcome.audit_reason(), "email": typed }));
            if let Some(sub) = outcome.user_sub() {
                event = event.user(sub);
            }
            audit::record(state.store(), event).await;
            let mut params = vec![("sent", "reset")];
            if let Some(rid) = rid {
                params.push(("rid", rid));
            }
            Ok(see_other(&page_url(paths::CHECK_EMAIL, &params)))
        }
        .await,
    )
}

fn dead_reset_link(state: &AppState) -> Response {
    dead_link_page(state, "password reset", "Ask for a new one on the “Forgot password?” page.")
}

/// The form an emailed link opens to choose a password (reset, invitation).
pub struct PasswordPage<'a> {
    pub title: &'a str,
    pub action: &'a str,
    pub button: &'a str,
}

const RESET_PAGE: PasswordPage<'static> =
    PasswordPage { title: "Choose a new password", action: paths::RESET_PASSWORD, button: "Set new password" };

pub async fn new_password_page(
    state: &AppState,
    session: &Session,
    page: &PasswordPage<'_>,
    token: &str,
    email: &str,
    error: Option<&str>,
) -> WebResult<Response> {
    let csrf = session::csrf_token(state, session).await?;
    let min_length = state.settings().password_min_length;
    let PasswordPage { title, action, button } = page;
    Ok(render(
        state,
        StatusCode::OK,
        "new_password.html",
        context! { csrf, token, email, error, min_length, title, action, button },
    ))
}

/// `GET /reset-password?token=…`.
pub async fn reset_page(State(state): State<AppState>, session: Session, Query(q): Query<TokenQuery>) -> Response {
    respond(
        async {
            let token = q.token.unwrap_or_default();
            match reset::check_reset_link(state.store(), &token, unix_now()).await {
                Ok((_, user)) => new_password_page(&state, &session, &RESET_PAGE, &token, &user.email, None).await,
                Err(AccountError::DeadLink) => Ok(dead_reset_link(&state)),
                Err(e) => Err(account_unavailable(&state, &e)),
            }
        }
        .await,
    )
}

#[derive(Deserialize)]
pub struct NewPasswordForm {
    pub csrf: Option<String>,
    pub token: Option<String>,
    pub password: Option<String>,
    pub confirm: Option<String>,
}

/// `POST /reset-password`.
pub async fn reset(
    State(state): State<AppState>,
    session: Session,
    requester: Requester,
    Form(form): Form<NewPasswordForm>,
) -> Response {
    respond(
        async {
            session::require_csrf(&state, &session, form.csrf.as_deref()).await?;
            let now = unix_now();
            let token = form.token.unwrap_or_default();
            let (password, confirm) = (form.password.unwrap_or_default(), form.confirm.unwrap_or_default());
            let letters = state.letters();
            let result =
                reset::complete_reset(state.store(), state.passwords(), &letters, &token, &password, &confirm, now)
                    .await;
            let user = match result {
                Ok(user) => user,
                Err(AccountError::Invalid(message)) => {
                    let email = match reset::check_reset_link(state.store(), &token, now).await {
                        Ok((_, user)) => user.email,
                        Err(AccountError::DeadLink) => return Ok(dead_reset_link(&state)),
                        Err(e) => return Err(account_unavailable(&state, &e)),
                    };
                    return new_password_page(&state, &session, &RESET_PAGE, &token, &email, Some(&message)).await;
                }
                Err(AccountError::DeadLink) => return Ok(dead_reset_link(&state)),
                Err(e) => return Err(account_unavailable(&state, &e)),
            };
            state.wake_outbox();
            let event = AuditEvent::new(kind::PASSWORD_RESET_COMPLETED, now, &requester.origin()).user(&user.sub);
            audit::record(state.store(), event).await;
            // Whoever this browser was signed in as, it is not signed in now (the store ended
            // every session of the user; this one may have been someone else's).
            session::end(&state, &session).await?;
            let ok = "Your password was changed and every device was signed out. Sign in with the new password.";
            to_sign_in(&state, &session, ok.into(), &user.email, None).await
        }
        .await,
    )
}
