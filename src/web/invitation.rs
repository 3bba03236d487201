//! The invitation page (issue 12 item 6): `/invitation?token=…` lets an invited person choose
//! their first password. Following the emailed link proves the address.

use axum::extract::{Query, State};
use axum::response::Response;
use axum::Form;
use tower_sessions::Session;

use super::pages::respond;
use super::register::{account_unavailable, dead_link_page, to_sign_in, TokenQuery};
use super::reset::{new_password_page, NewPasswordForm, PasswordPage};
use super::session;
use crate::accounts::{invitation, AccountError};
use crate::audit::{self, kind, AuditEvent};
use crate::http::client_ip::Requester;
use crate::http::paths;
use crate::state::{unix_now, AppState};

fn dead_invitation(state: &AppState) -> Response {
    dead_link_page(state, "invitation", "Ask your administrator for a new invitation.")
}

const INVITATION_PAGE: PasswordPage<'static> =
    PasswordPage { title: "Choose your password", action: paths::INVITATION, button: "Create my account" };

/// `GET /invitation?token=…`.
pub async fn show(State(state): State<AppState>, session: Session, Query(q): Query<TokenQuery>) -> Response {
    respond(
        async {
            let token = q.token.unwrap_or_default();
            match invitation::check_invitation(state.store(), &token, unix_now()).await {
                Ok((_, user)) => new_password_page(&state, &session, &INVITATION_PAGE, &token, &user.email, None).await,
                Err(AccountError::DeadLink) => Ok(dead_invitation(&state)),
                Err(e) => Err(account_unavailable(&state, &e)),
            }
        }
        .await,
    )
}

/// `POST /invitation`: sets the password; then the person signs in.
pub async fn accept(
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
            let user = match invitation::accept(state.store(), state.passwords(), &token, &password, &confirm, now)
                .await
            {
                Ok(user) => user,
                Err(AccountError::Invalid(message)) => {
                    return match invitation::check_invitation(state.store(), &token, now).await {
                        Ok((_, user)) => {
                            new_password_page(&state, &session, &INVITATION_PAGE, &token, &user.email, Some(&message))
                                .await
                        }
                        Err(AccountError::DeadLink) => Ok(dead_invitation(&state)),
                        Err(e) => Err(account_unavailable(&state, &e)),
                    };
                }
                Err(AccountError::DeadLink) => return Ok(dead_invitation(&state)),
                Err(e) => return Err(account_unavailable(&state, &e)),
            };
            let origin = requester.origin();
            audit::record(state.store(), AuditEvent::new(kind::INVITATION_ACCEPTED, now, &origin).user(&user.sub))
                .await;
            let verified = serde_json::json!({ "email": user.email, "by": "invitation" });
            audit::record(
                state.store(),
                AuditEvent::new(kind::EMAIL_VERIFIED, now, &origin).user(&user.sub).detail(verified),
            )
            .await;
            to_sign_in(
                &state,
                &session,
                "Your account is ready. Sign in with your new password.".into(),
                &user.email,
                None,
            )
            .await
        }
        .await,
    )
}
