//! The account's email address (issue 12 items 3 and 5): `/account/email` asks for the new
//! address with the current password (and second factor when enrolled) and sends a link to it;
//! `/confirm-email-change?token=…` makes the change and tells the old address;
//! `/account/verify-email` sends a verification link to the current address.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Form;
use serde::Deserialize;
use tower_sessions::Session;

use super::account::{
    back_with_error, back_with_ok, checked_post, confirm_password, confirm_second_factor, reauth_form,
};
use super::login::too_many_from_address;
use super::pages::{error_page, respond, see_other};
use super::register::{
    account_unavailable, dead_link_page, email_throttle, link_action_page, LinkPage, TokenForm, TokenQuery,
};
use super::session::{self, Notice};
use crate::accounts::{email_change, sign_up, AccountError};
use crate::audit::{self, kind, AuditEvent};
use crate::http::client_ip::Requester;
use crate::http::paths;
use crate::state::{unix_now, AppState};
use crate::store::{MfaStore, UserStore};

#[derive(Deserialize)]
pub struct ChangeForm {
    csrf: Option<String>,
    email: Option<String>,
    password: Option<String>,
    code: Option<String>,
}

/// `POST /account/email`.
pub async fn request(
    State(state): State<AppState>,
    session: Session,
    requester: Requester,
    Form(form): Form<ChangeForm>,
) -> Response {
    respond(
        async {
            let (_, user) = match reauth_form(&state, &session, &requester, form.csrf.as_deref()).await? {
                Ok(found) => found,
                Err(answer) => return Ok(answer),
            };
            let store = state.store();
            let now = unix_now();
            let password = form.password.unwrap_or_default();
            if let Some(refused) =
                confirm_password(&state, &session, &requester, &user, &password, "change_email", now).await?
            {
                return Ok(refused);
            }
            let factor = store.totp_factor(&user.sub).await.map_err(|e| account_unavailable(&state, &e.into()))?;
            if factor.is_some_and(|f| f.is_enabled()) {
                let code = form.code.unwrap_or_default();
                let wrong = "That code is not right; your address was not changed.";
                if let Some(refused) =
                    confirm_second_factor(&state, &session, &requester, &user.sub, &code, wrong, now).await?
                {
                    return Ok(refused);
                }
            }
            if let Some(wait) = email_throttle(&state, &requester) {
                return back_with_error(
                    &state,
                    &session,
                    too_many_from_address(wait).replace("failed attempts", "requests"),
                )
                .await;
            }
            let typed = form.email.unwrap_or_default();
            let letters = state.letters();
            let new_email =
                match email_change::request_change(store, &letters, state.account_settings(), &user, &typed, now).await
                {
                    Ok(new_email) => new_email,
                    Err(AccountError::Invalid(message)) => return back_with_error(&state, &session, message).await,
                    Err(e) => return Err(account_unavailable(&state, &e)),
                };
            state.wake_outbox();
            let event = AuditEvent::new(kind::EMAIL_CHANGE_REQUESTED, now, &requester.origin())
                .user(&user.sub)
                .detail(serde_json::json!({ "from": user.email, "to": new_email }));
            audit::record(store, event).await;
            back_with_ok(
                &state,
                &session,
                format!("We sent a link to {new_email}. Your address changes when you follow it."),
            )
            .await
        }
        .await,
    )
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: Option<String>,
}

/// `POST /account/verify-email`: a verification link to the current address.
pub async fn send_verification(
    State(state): State<AppState>,
    session: Session,
    requester: Requester,
    Form(form): Form<CsrfForm>,
) -> Response {
    respond(
        async {
            let signed = checked_post(&state, &session, form.csrf.as_deref()).await?;
            if let Some(wait) = email_throttle(&state, &requester) {
                return back_with_error(
                    &state,
                    &session,
                    too_many_from_address(wait).replace("failed attempts", "requests"),
                )
                .await;
            }
            let store = state.store();
            let Some(user) = store.find_user(&signed.sub).await.map_err(|e| account_unavailable(&state, &e.into()))?
            else {
                return Ok(see_other(paths::LOGIN));
            };
            if user.email_verified() {
                return back_with_ok(&state, &session, "Your address is verified already.").await;
            }
            let now = unix_now();
            let letters = state.letters();
            let sent = sign_up::send_verification(store, &letters, state.account_settings(), &user, None, now)
                .await
                .map_err(|e| account_unavailable(&state, &e))?;
            if !sent {
                return back_with_error(
                    &state,
                    &session,
                    "Too many messages were sent to your address. Try again later.",
                )
                .await;
            }
            state.wake_outbox();
            let event = AuditEvent::new(kind::EMAIL_VERIFICATION_SENT, now, &requester.origin())
                .user(&user.sub)
                .detail(serde_json::json!({ "reason": "account_page" }));
            audit::record(store, event).await;
            back_with_ok(&state, &session, format!("We sent a verification link to {}.", user.email)).await
        }
        .await,
    )
}

fn dead_change_link(state: &AppState) -> Response {
    dead_link_page(state, "email change", "Ask for the change again on your account page.")
}

/// `GET /confirm-email-change?token=…`: a button (mail scanners fetch links).
pub async fn confirm_page(State(state): State<AppState>, session: Session, Query(q): Query<TokenQuery>) -> Response {
    respond(
        async {
            let token = q.token.unwrap_or_default();
            match email_change::check_change_link(state.store(), &token, unix_now()).await {
                Ok((link, user)) => {
                    let lead = format!("Use {} for your account instead of {}.", link.email, user.email);
                    let page = LinkPage {
                        title: "Confirm your new email address",
                        lead: &lead,
                        action: paths::CONFIRM_EMAIL_CHANGE,
                        button: "Use my new address",
                    };
                    link_action_page(&state, &session, &token, page).await
                }
                Err(AccountError::DeadLink) => Ok(dead_change_link(&state)),
                Err(e) => Err(account_unavailable(&state, &e)),
            }
        }
        .await,
    )
}

/// `POST /confirm-email-change`.
pub async fn confirm(
    State(state): State<AppState>,
    session: Session,
    requester: Requester,
    Form(form): Form<TokenForm>,
) -> Response {
    respond(
        async {
            session::require_csrf(&state, &session, form.csrf.as_deref()).await?;
            let now = unix_now();
            let token = form.token.unwrap_or_default();
            let letters = state.letters();
            let (user, new_email) = match email_change::confirm_change(state.store(), &letters, &token, now).await {
                Ok(done) => done,
                Err(AccountError::DeadLink) => return Ok(dead_change_link(&state)),
                Err(AccountError::Taken) => {
                    return Ok(error_page(
                        &state,
                        StatusCode::CONFLICT,
                        "That address is taken",
                        "Another account uses that address now, so yours was not changed.",
                    ))
                }
                Err(e) => return Err(account_unavailable(&state, &e)),
            };
            state.wake_outbox();
            let event = AuditEvent::new(kind::EMAIL_CHANGED, now, &requester.origin())
                .user(&user.sub)
                .detail(serde_json::json!({ "from": user.email, "to": new_email }));
            audit::record(state.store(), event).await;
            let ok = format!("Your account now uses {new_email}.");
            session::set_notice(&state, &session, Notice { ok: Some(ok), error: None }).await?;
            // The account page when this browser is signed in, else sign-in (the notice shows there).
            Ok(see_other(paths::ACCOUNT))
        }
        .await,
    )
}
