//! The account pages of a signed-in user (`/account`): sign-in methods, enrolling and removing
//! an authenticator app, recovery codes, changing the password, and the apps they allowed.
//! Every POST checks the CSRF token and answers 303; messages travel in the session (`Notice`).

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Form;
use minijinja::context;
use serde::{Deserialize, Serialize};
use tower_sessions::Session;

use super::login::{too_many_from_address, urlencode};
use super::pages::{self, render, respond, see_other};
use super::session::{self, Notice, SignedIn, WebResult};
use crate::audit::{self, kind, AuditEvent, Origin};
use crate::authn::sign_in::{
    check_password, check_second_factor, open_seed, seal_seed, FactorFailure, PasswordFailure,
};
use crate::authn::{recovery, totp};
use crate::domain::{is_plausible_client_id, User};
use crate::http::client_ip::Requester;
use crate::http::paths;
use crate::oauth::client_auth::ClientLookup;
use crate::oidc::acr::SECOND_FACTOR_AMR;
use crate::state::{unix_now, AppState};
use crate::store::{GrantStore, MfaStore, UserStore};

/// An unconfirmed enrolment is reused for this long, so reloading the page while scanning the
/// QR code keeps the same seed; after that a new seed is made.
const ENROLMENT_REUSE_SECS: i64 = 600;

/// A 503 page; the cause is logged, never shown (issue 9, item 3).
pub(super) fn unavailable(state: &AppState, e: impl std::fmt::Display) -> Response {
    pages::unavailable(state, &format_args!("account page failed: {e}"))
}

fn day(ts: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ts).map(|t| t.date().to_string()).unwrap_or_default()
}

/// The signed-in user, or the way to become one: the code page when only the password was
/// given, the sign-in page otherwise (coming back here afterwards).
pub(super) async fn require_user(state: &AppState, session: &Session) -> WebResult<SignedIn> {
    if let Some(user) = session::signed_in(state, session).await? {
        return Ok(user);
    }
    if session::password_verified(state, session, unix_now()).await?.is_some() {
        return Err(see_other(&format!("{}?next=account", paths::LOGIN_MFA)));
    }
    Err(see_other(&format!("{}?next=account", paths::LOGIN)))
}

/// Every account form: the CSRF token, then the signed-in user.
pub(super) async fn checked_post(state: &AppState, session: &Session, csrf: Option<&str>) -> WebResult<SignedIn> {
    session::require_csrf(state, session, csrf).await?;
    require_user(state, session).await
}

async fn notice(state: &AppState, session: &Session, ok: Option<String>, error: Option<String>) -> WebResult<()> {
    session::set_notice(state, session, Notice { ok, error }).await
}

pub(super) async fn back_with_error(
    state: &AppState,
    session: &Session,
    error: impl Into<String>,
) -> WebResult<Response> {
    notice(state, session, None, Some(error.into())).await?;
    Ok(see_other(paths::ACCOUNT))
}

pub(super) async fn back_with_ok(state: &AppState, session: &Session, ok: impl Into<String>) -> WebResult<Response> {
    notice(state, session, Some(ok.into()), None).await?;
    Ok(see_other(paths::ACCOUNT))
}

#[derive(Serialize)]
struct AppLine {
    client_id: String,
    name: String,
    scopes: String,
}

/// `GET /account`.
pub async fn show(State(state): State<AppState>, session: Session) -> Response {
    respond(
        async {
            let signed = require_user(&state, &session).await?;
            let store = state.store();
            let Some(user) = store.find_user(&signed.sub).await.map_err(|e| unavailable(&state, e))? else {
                session::end(&state, &session).await?;
                return Ok(see_other(paths::LOGIN));
            };
            let factor = store.totp_factor(&user.sub).await.map_err(|e| unavailable(&state, e))?;
            let totp_since = factor.as_ref().and_then(|f| f.enabled_at).map(day);
            let recovery_left = store.recovery_codes_left(&user.sub).await.map_err(|e| unavailable(&state, e))?;
            let mut apps = Vec::new();
            for consent in store.list_consents(&user.sub).await.map_err(|e| unavailable(&state, e))? {
                let name = match state.clients().lookup_client(&consent.client_id).await {
                    Ok(Some(client)) => client.name.clone(),
                    Ok(None) => consent.client_id.clone(),
                    Err(e) => return Err(unavailable(&state, e)),
                };
                apps.push(AppLine { client_id: consent.client_id, name, scopes: consent.scopes.to_string() });
            }
            let notice = session::take_notice(&state, &session).await?;
            let csrf = session::csrf_token(&state, &session).await?;
            Ok(render(
                &state,
                StatusCode::OK,
                "account.html",
                context! {
                    csrf,
                    notice,
                    email_verified => user.email_verified(),
                    email => user.email,
                    password_changed => day(user.password_changed_at),
                    totp_enabled => totp_since.is_some(),
                    totp_since,
                    recovery_left,
                    apps,
                    min_length => state.settings().password_min_length,
                },
            ))
        }
        .await,
    )
}

/// An account form that re-authenticates (password change, email change): the CSRF token, the
/// signed-in user (still there), and the address not throttled for failed checks. `Ok(Err(_))`
/// is the answer to give instead.
pub(super) async fn reauth_form(
    state: &AppState,
    session: &Session,
    requester: &Requester,
    csrf: Option<&str>,
) -> WebResult<Result<(SignedIn, User), Response>> {
    let signed = checked_post(state, session, csrf).await?;
    if let Some(wait) = requester.ip.and_then(|ip| state.sign_in_failures().retry_after(&ip)) {
        return Ok(Err(back_with_error(state, session, too_many_from_address(wait.as_secs())).await?));
    }
    match state.store().find_user(&signed.sub).await.map_err(|e| unavailable(state, e))? {
        Some(user) => Ok(Ok((signed, user))),
        None => Ok(Err(see_other(paths::LOGIN))),
    }
}

/// Re-authentication on an account form: the current password, through the same failure
/// counter and audit trail as the sign-in page. `Some(answer)` when it was wrong.
pub(super) async fn confirm_password(
    state: &AppState,
    session: &Session,
    requester: &Requester,
    user: &User,
    password: &str,
    page: &str,
    now: i64,
) -> WebResult<Option<Response>> {
    let store = state.store();
    let Err(failed) = check_password(store, state.passwords(), state.throttle(), &user.email, password, now).await
    else {
        return Ok(None);
    };
    if let PasswordFailure::Unavailable(e) = failed.failure {
        return Err(unavailable(state, e));
    }
    if let Some(ip) = requester.ip {
        state.sign_in_failures().record_failure(ip);
    }
    let origin = requester.origin();
    let detail = serde_json::json!({ "reason": failed.failure.audit_reason(), "page": page });
    audit::record(store, AuditEvent::new(kind::SIGN_IN_FAILED, now, &origin).user(&user.sub).detail(detail)).await;
    if failed.locked_now {
        let lock = serde_json::json!({ "factor": "password" });
        audit::record(store, AuditEvent::new(kind::ACCOUNT_LOCKED, now, &origin).user(&user.sub).detail(lock)).await;
    }
    Ok(Some(back_with_error(state, session, "Your current password is not right.").await?))
}

/// Re-authentication's second half for users with an authenticator app: a current code or a
/// recovery code, through the per-user code counter. `Some(answer)` when it was wrong.
pub(super) async fn confirm_second_factor(
    state: &AppState,
    session: &Session,
    requester: &Requester,
    sub: &str,
    code: &str,
    wrong: &str,
    now: i64,
) -> WebResult<Option<Response>> {
    let store = state.store();
    let Err(failed) = check_second_factor(store, state.master_key(), state.throttle(), sub, code, now).await else {
        return Ok(None);
    };
    let message = match failed.failure {
        FactorFailure::Unavailable(e) => return Err(unavailable(state, e)),
        FactorFailure::Locked { .. } => "Too many wrong codes. Try again later.",
        FactorFailure::Wrong => wrong,
    };
    if let Some(ip) = requester.ip {
        state.sign_in_failures().record_failure(ip);
    }
    let origin = requester.origin();
    audit::record(store, AuditEvent::new(kind::MFA_FAILED, now, &origin).user(sub)).await;
    if failed.locked_now {
        let lock = serde_json::json!({ "factor": "otp" });
        audit::record(store, AuditEvent::new(kind::ACCOUNT_LOCKED, now, &origin).user(sub).detail(lock)).await;
    }
    Ok(Some(back_with_error(state, session, message).await?))
}

#[derive(Deserialize)]
pub struct PasswordForm {
    csrf: Option<String>,
    current: Option<String>,
    new: Option<String>,
    confirm: Option<String>,
}

/// `POST /account/password`: the current password (through the same failure counter as the
/// sign-in page), then the new one against the policy. Every grant and every other session of
/// the user ends; this session continues under a new id.
pub async fn change_password(
    State(state): State<AppState>,
    session: Session,
    requester: Requester,
    Form(form): Form<PasswordForm>,
) -> Response {
    respond(
        async {
            let (signed, user) = match reauth_form(&state, &session, &requester, form.csrf.as_deref()).await? {
                Ok(found) => found,
                Err(answer) => return Ok(answer),
            };
            let store = state.store();
            let now = unix_now();
            let current = form.current.unwrap_or_default();
            let new = form.new.unwrap_or_default();
            if let Some(refused) =
                confirm_password(&state, &session, &requester, &user, &current, "change_password", now).await?
            {
                return Ok(refused);
            }
            if new != form.confirm.unwrap_or_default() {
                return back_with_error(&state, &session, "The two new passwords are not the same.").await;
            }
            let inputs: Vec<&str> = std::iter::once(user.email.as_str()).chain(user.name.as_deref()).collect();
            if let Err(e) = state.passwords().check_policy(&new, &inputs) {
                return back_with_error(&state, &session, format!("The new password was not accepted: {e}.")).await;
            }
            let hash = state.passwords().hash(&new).await.map_err(|e| unavailable(&state, e))?;
            store.change_password(&user.sub, &hash, now).await.map_err(|e| unavailable(&state, e))?;
            // The store ended every session of the user, this one included: start it again.
            session::sign_in(&state, &session, SignedIn { auth_time: now, ..signed }).await?;
            audit::record(store, AuditEvent::new(kind::PASSWORD_CHANGED, now, &requester.origin()).user(&user.sub))
                .await;
            back_with_ok(&state, &session, "Your password was changed. You were signed out everywhere else.").await
        }
        .await,
    )
}

#[derive(Deserialize)]
pub struct RidQuery {
    rid: Option<String>,
}

/// `GET /account/totp`: the enrolment page (QR code, key, `otpauth://` URI). With `rid`, the
/// enrolment was demanded by policy during an app's sign-in, which continues afterwards.
pub async fn totp_setup(State(state): State<AppState>, session: Session, Query(q): Query<RidQuery>) -> Response {
    respond(
        async {
            session::rid_param(&state, q.rid.as_deref())?;
            let signed = require_user(&state, &session).await?;
            let store = state.store();
            let Some(user) = store.find_user(&signed.sub).await.map_err(|e| unavailable(&state, e))? else {
                return Ok(see_other(paths::LOGIN));
            };
            let now = unix_now();
            let factor = store.totp_factor(&user.sub).await.map_err(|e| unavailable(&state, e))?;
            if factor.as_ref().is_some_and(|f| f.is_enabled()) {
                return back_with_ok(&state, &session, "Two-step verification is already on.").await;
            }
            let master = state.master_key();
            let reusable = factor
                .filter(|f| now - f.created_at < ENROLMENT_REUSE_SECS)
                .and_then(|f| open_seed(master, &user.sub, &f.secret_sealed).ok());
            let seed = match reusable {
                Some(seed) => seed,
                None => {
                    let seed = totp::new_secret();
                    let sealed = seal_seed(master, &user.sub, &seed).map_err(|e| unavailable(&state, e))?;
                    if !store.begin_totp_enrolment(&user.sub, &sealed, now).await.map_err(|e| unavailable(&state, e))? {
                        return back_with_ok(&state, &session, "Two-step verification is already on.").await;
                    }
                    seed
                }
            };
            let provisioning = totp::provisioning(&seed, &state.settings().totp_issuer, &user.email)
                .map_err(|e| unavailable(&state, e))?;
            let secret = group_by_four(&provisioning.secret_base32);
            let notice = session::take_notice(&state, &session).await?;
            let csrf = session::csrf_token(&state, &session).await?;
            Ok(render(
                &state,
                StatusCode::OK,
                "totp_setup.html",
                context! {
                    csrf,
                    rid => q.rid,
                    required => q.rid.is_some(),
                    qr => provisioning.qr_data_uri,
                    secret,
                    uri => provisioning.uri,
                    error => notice.error,
                },
            ))
        }
        .await,
    )
}

/// "JBSWY3DPEHPK3PXP" → "JBSW Y3DP EHPK 3PXP": easier to type; apps ignore the spaces.
fn group_by_four(text: &str) -> String {
    text.as_bytes().chunks(4).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join(" ")
}

#[derive(Deserialize)]
pub struct CodeForm {
    csrf: Option<String>,
    rid: Option<String>,
    code: Option<String>,
}

/// `POST /account/totp`: confirms the enrolment with a code from the app, turns the factor on,
/// counts this session as two-factor, and shows a first set of recovery codes.
pub async fn totp_confirm(
    State(state): State<AppState>,
    session: Session,
    requester: Requester,
    Form(form): Form<CodeForm>,
) -> Response {
    respond(
        async {
            session::rid_param(&state, form.rid.as_deref())?;
            let signed = checked_post(&state, &session, form.csrf.as_deref()).await?;
            let store = state.store();
            let now = unix_now();
            let setup_page = match &form.rid {
                Some(rid) => format!("{}?rid={}", paths::ACCOUNT_TOTP, urlencode(rid)),
                None => paths::ACCOUNT_TOTP.to_string(),
            };
            let factor = store.totp_factor(&signed.sub).await.map_err(|e| unavailable(&state, e))?;
            let Some(factor) = factor.filter(|f| !f.is_enabled()) else {
                return back_with_ok(&state, &session, "Two-step verification is already on.").await;
            };
            let seed = open_seed(state.master_key(), &signed.sub, &factor.secret_sealed)
                .map_err(|e| unavailable(&state, e))?;
            let Some(step) = totp::matching_step(&seed, form.code.as_deref().unwrap_or_default(), now) else {
                notice(&state, &session, None, Some("That code is not right. Check the app and try again.".into()))
                    .await?;
                return Ok(see_other(&setup_page));
            };
            if !store.enable_totp(&signed.sub, step, now).await.map_err(|e| unavailable(&state, e))? {
                return back_with_ok(&state, &session, "Two-step verification is already on.").await;
            }
            let origin = requester.origin();
            audit::record(store, AuditEvent::new(kind::MFA_ENROLLED, now, &origin).user(&signed.sub)).await;
            // The user just proved the factor: this session now counts as two-factor.
            let amr = vec!["pwd".to_string(), SECOND_FACTOR_AMR.to_string()];
            let sub = signed.sub.clone();
            session::sign_in(&state, &session, SignedIn { amr, ..signed }).await?;
            issue_recovery_codes(&state, &session, &sub, now, &origin).await?;
            Ok(see_other(&recovery_page(form.rid.as_deref())))
        }
        .await,
    )
}

fn recovery_page(rid: Option<&str>) -> String {
    match rid {
        Some(rid) => format!("{}?rid={}", paths::ACCOUNT_RECOVERY_CODES, urlencode(rid)),
        None => paths::ACCOUNT_RECOVERY_CODES.to_string(),
    }
}

async fn issue_recovery_codes(
    state: &AppState,
    session: &Session,
    sub: &str,
    now: i64,
    origin: &Origin,
) -> WebResult<()> {
    let codes = recovery::generate();
    let hashes: Vec<[u8; 32]> = codes.iter().filter_map(|c| recovery::hash(c)).collect();
    state.store().replace_recovery_codes(sub, &hashes, now).await.map_err(|e| unavailable(state, e))?;
    audit::record(
        state.store(),
        AuditEvent::new(kind::RECOVERY_CODES_GENERATED, now, origin)
            .user(sub)
            .detail(serde_json::json!({ "count": hashes.len() })),
    )
    .await;
    session::set_recovery_codes(state, session, codes).await
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: Option<String>,
}

/// `POST /account/recovery-codes`: a new set; the old set stops working.
pub async fn new_recovery_codes(
    State(state): State<AppState>,
    session: Session,
    requester: Requester,
    Form(form): Form<CsrfForm>,
) -> Response {
    respond(
        async {
            let signed = checked_post(&state, &session, form.csrf.as_deref()).await?;
            let factor = state.store().totp_factor(&signed.sub).await.map_err(|e| unavailable(&state, e))?;
            if !factor.is_some_and(|f| f.is_enabled()) {
                return back_with_error(&state, &session, "Turn on two-step verification first.").await;
            }
            issue_recovery_codes(&state, &session, &signed.sub, unix_now(), &requester.origin()).await?;
            Ok(see_other(paths::ACCOUNT_RECOVERY_CODES))
        }
        .await,
    )
}

/// `GET /account/recovery-codes`: shows the new codes once.
pub async fn show_recovery_codes(
    State(state): State<AppState>,
    session: Session,
    Query(q): Query<RidQuery>,
) -> Response {
    respond(
        async {
            session::rid_param(&state, q.rid.as_deref())?;
            require_user(&state, &session).await?;
            let Some(codes) = session::take_recovery_codes(&state, &session).await? else {
                return Ok(see_other(paths::ACCOUNT));
            };
            let continue_to = match &q.rid {
                Some(rid) => format!("{}?rid={}", paths::AUTHORIZE_CONTINUE, urlencode(rid)),
                None => paths::ACCOUNT.to_string(),
            };
            Ok(render(&state, StatusCode::OK, "recovery_codes.html", context! { codes, continue_to }))
        }
        .await,
    )
}

/// `POST /account/totp/remove`: needs a current code (or a recovery code) — a fresh second
/// factor — through the same failure counter as sign-in.
pub async fn totp_remove(
    State(state): State<AppState>,
    session: Session,
    requester: Requester,
    Form(form): Form<CodeForm>,
) -> Response {
    respond(
        async {
            let signed = checked_post(&state, &session, form.csrf.as_deref()).await?;
            if let Some(wait) = requester.ip.and_then(|ip| state.sign_in_failures().retry_after(&ip)) {
                return back_with_error(&state, &session, too_many_from_address(wait.as_secs())).await;
            }
            let now = unix_now();
            let store = state.store();
            let code = form.code.unwrap_or_default();
            let wrong = "That code is not right; two-step verification is still on.";
            if let Some(refused) =
                confirm_second_factor(&state, &session, &requester, &signed.sub, &code, wrong, now).await?
            {
                return Ok(refused);
            }
            store.remove_mfa(&signed.sub).await.map_err(|e| unavailable(&state, e))?;
            audit::record(store, AuditEvent::new(kind::MFA_REMOVED, now, &requester.origin()).user(&signed.sub)).await;
            back_with_ok(&state, &session, "Two-step verification is off. Your recovery codes no longer work.").await
        }
        .await,
    )
}

#[derive(Deserialize)]
pub struct RevokeForm {
    csrf: Option<String>,
    client_id: Option<String>,
}

/// `POST /account/apps/revoke`: withdraws consent and ends the app's grants for this user.
pub async fn revoke_app(
    State(state): State<AppState>,
    session: Session,
    requester: Requester,
    Form(form): Form<RevokeForm>,
) -> Response {
    respond(
        async {
            let signed = checked_post(&state, &session, form.csrf.as_deref()).await?;
            let client_id = form.client_id.unwrap_or_default();
            let now = unix_now();
            let store = state.store();
            // A malformed id names no app (and must not reach the database: issue 9, item 6).
            if !is_plausible_client_id(&client_id)
                || !store.revoke_consent(&signed.sub, &client_id, now).await.map_err(|e| unavailable(&state, e))?
            {
                return back_with_error(&state, &session, "That app had no access.").await;
            }
            audit::record(
                store,
                AuditEvent::new(kind::CONSENT_REVOKED, now, &requester.origin()).user(&signed.sub).client(&client_id),
            )
            .await;
            back_with_ok(&state, &session, "The app's access was removed.").await
        }
        .await,
    )
}
