//! The one-time-code page: the second step of a sign-in for users with an authenticator app,
//! and the step-up for a signed-in user when an app or the settings require a second factor.
//! A TOTP code or a recovery code completes the sign-in under a new session id.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Form;
use minijinja::context;
use serde::Deserialize;
use tower_sessions::Session;

use super::login::{
    complete, continue_to, next_page, too_many_from_address, urlencode, with_retry_after, UNAVAILABLE_RETRY_SECS,
};
use super::pages::{render, see_other};
use super::session::{self, WebResult};
use crate::audit::{self, kind, AuditEvent};
use crate::authn::sign_in::{check_second_factor, FactorFailure, FactorUsed};
use crate::http::client_ip::Requester;
use crate::http::paths;
use crate::oidc::acr::SECOND_FACTOR_AMR;
use crate::state::{unix_now, AppState};
use crate::store::MfaStore;

const WRONG: &str = "That code is not right. Codes change every 30 seconds; each works once.";
const UNAVAILABLE: &str = "Verification is unavailable right now. Try again in a moment.";

#[derive(Deserialize)]
pub struct MfaQuery {
    rid: Option<String>,
    next: Option<String>,
}

#[derive(Deserialize)]
pub struct MfaForm {
    csrf: Option<String>,
    rid: Option<String>,
    next: Option<String>,
    code: Option<String>,
}

/// Who owes the code: the user who just passed the password step (no `sid` yet), or a
/// signed-in user being asked for a second factor (step-up, keeping the session's `sid`).
/// `None`: nobody — back to the sign-in page.
async fn owed_by(state: &AppState, session: &Session, now: i64) -> WebResult<Option<(String, Option<String>)>> {
    if let Some(verified) = session::password_verified(state, session, now).await? {
        return Ok(Some((verified.sub, None)));
    }
    Ok(session::signed_in(state, session).await?.map(|u| (u.sub, Some(u.sid))))
}

fn login_again(rid: Option<&str>, next: Option<&str>) -> Response {
    let mut location = paths::LOGIN.to_string();
    if let Some(rid) = rid {
        location = format!("{location}?rid={}", urlencode(rid));
    } else if next_page(next).is_some() {
        location = format!("{location}?next=account");
    }
    see_other(&location)
}

async fn page(
    state: &AppState,
    session: &Session,
    rid: Option<&str>,
    next: Option<&str>,
    error: Option<&str>,
    status: StatusCode,
) -> WebResult<Response> {
    let csrf = session::csrf_token(state, session).await?;
    let next = next_page(next).map(|_| "account");
    let issuer = &state.settings().totp_issuer;
    Ok(render(state, status, "mfa.html", context! { csrf, rid, next, error, issuer }))
}

/// `GET /login/mfa`.
pub async fn show(State(state): State<AppState>, session: Session, Query(q): Query<MfaQuery>) -> Response {
    let result = async {
        session::rid_param(&state, q.rid.as_deref())?;
        if owed_by(&state, &session, unix_now()).await?.is_none() {
            return Ok(login_again(q.rid.as_deref(), q.next.as_deref()));
        }
        page(&state, &session, q.rid.as_deref(), q.next.as_deref(), None, StatusCode::OK).await
    }
    .await;
    match result {
        Ok(r) | Err(r) => r,
    }
}

/// `POST /login/mfa`.
pub async fn submit(
    State(state): State<AppState>,
    session: Session,
    requester: Requester,
    Form(form): Form<MfaForm>,
) -> Response {
    match handle(&state, &session, &requester, form).await {
        Ok(r) | Err(r) => r,
    }
}

async fn handle(state: &AppState, session: &Session, requester: &Requester, form: MfaForm) -> WebResult<Response> {
    session::rid_param(state, form.rid.as_deref())?;
    session::require_csrf(state, session, form.csrf.as_deref()).await?;
    let (rid, next) = (form.rid.as_deref(), form.next.as_deref());
    let now = unix_now();
    let Some((sub, sid)) = owed_by(state, session, now).await? else { return Ok(login_again(rid, next)) };
    if let Some(wait) = requester.ip.and_then(|ip| state.sign_in_failures().retry_after(&ip)) {
        let message = too_many_from_address(wait.as_secs());
        crate::metrics::count_throttled("sign_in");
        let response = page(state, session, rid, next, Some(&message), StatusCode::TOO_MANY_REQUESTS).await?;
        return Ok(with_retry_after(response, wait.as_secs()));
    }
    let origin = requester.origin();
    let code = form.code.unwrap_or_default();
    match check_second_factor(state.store(), state.master_key(), state.throttle(), &sub, &code, now).await {
        Ok(used) => {
            if used == FactorUsed::RecoveryCode {
                let left = state.store().recovery_codes_left(&sub).await.unwrap_or(0);
                audit::record(
                    state.store(),
                    AuditEvent::new(kind::RECOVERY_CODE_USED, now, &origin)
                        .user(&sub)
                        .detail(serde_json::json!({ "left": left })),
                )
                .await;
            }
            let amr = vec!["pwd".into(), SECOND_FACTOR_AMR.into()];
            complete(state, session, &sub, amr, sid, rid, now, &origin).await?;
            Ok(see_other(&continue_to(rid, next)))
        }
        Err(failed) => {
            let message = match failed.failure {
                FactorFailure::Unavailable(e) => {
                    tracing::warn!(error = %e, "second-factor check failed");
                    let response =
                        page(state, session, rid, next, Some(UNAVAILABLE), StatusCode::SERVICE_UNAVAILABLE).await?;
                    return Ok(with_retry_after(response, UNAVAILABLE_RETRY_SECS));
                }
                FactorFailure::Locked { retry_after_secs } => {
                    format!("Too many wrong codes. Try again in {} minutes.", (retry_after_secs + 59) / 60)
                }
                FactorFailure::Wrong => WRONG.to_string(),
            };
            if let Some(ip) = requester.ip {
                state.sign_in_failures().record_failure(ip);
            }
            audit::record(state.store(), AuditEvent::new(kind::MFA_FAILED, now, &origin).user(&sub)).await;
            if failed.locked_now {
                audit::record(
                    state.store(),
                    AuditEvent::new(kind::ACCOUNT_LOCKED, now, &origin)
                        .user(&sub)
                        .detail(serde_json::json!({ "factor": "otp" })),
                )
                .await;
            }
            page(state, session, rid, next, Some(&message), StatusCode::OK).await
        }
    }
}
