//! The sign-in page: email and password. Users with an authenticator app go on to the
//! one-time-code page (web::mfa) before the session counts as signed in.

use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use axum::Form;
use minijinja::context;
use serde::Deserialize;
use tower_sessions::Session;

use super::pages::{render, see_other, unavailable};
use super::session::{self, PasswordVerified, SignedIn, WebResult};
use crate::audit::{self, kind, AuditEvent};
use crate::authn::sign_in::{check_password, PasswordFailure};
use crate::config::Registration;
use crate::http::client_ip::Requester;
use crate::http::paths;
use crate::oauth::client_auth::ClientLookup;
use crate::secret::random_id;
use crate::state::{unix_now, AppState};
use crate::store::MfaStore;

/// One message for unknown email, wrong password, disabled and locked account: the page must
/// not tell an attacker which accounts exist (shared/security.md, "No user enumeration"). The
/// lock is counted per email as typed, existing or not, so mentioning it reveals nothing.
const FAILED: &str =
    "The email or password is incorrect. After several failed attempts, sign-in for an account pauses for a while.";
/// When the database or the hasher fails: nothing about the account is implied.
const UNAVAILABLE: &str = "Sign-in is unavailable right now. Try again in a moment.";
/// `Retry-After` on a 503 sign-in page, as on every other 503 (issue 9, item 3).
pub const UNAVAILABLE_RETRY_SECS: u64 = 5;

#[derive(Deserialize)]
pub struct LoginQuery {
    rid: Option<String>,
    next: Option<String>,
    /// The address to fill in (after following a verification link).
    login_hint: Option<String>,
}

#[derive(Deserialize)]
pub struct LoginForm {
    csrf: Option<String>,
    rid: Option<String>,
    next: Option<String>,
    email: Option<String>,
    password: Option<String>,
}

/// Where to go after signing in without an app's request: only our own account page (a
/// `next` naming anything else is ignored, so it can't become an open redirect).
pub fn next_page(next: Option<&str>) -> Option<&'static str> {
    (next == Some("account")).then_some(paths::ACCOUNT)
}

/// Where a completed sign-in continues: the app's pending request, the account page, or home.
pub fn continue_to(rid: Option<&str>, next: Option<&str>) -> String {
    match (rid, next_page(next)) {
        (Some(rid), _) => format!("{}?rid={}", paths::AUTHORIZE_CONTINUE, urlencode(rid)),
        (None, Some(page)) => page.to_string(),
        (None, None) => paths::HOME.to_string(),
    }
}

pub fn urlencode(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

struct PageArgs<'a> {
    rid: Option<&'a str>,
    next: Option<&'a str>,
    email: &'a str,
    error: Option<&'a str>,
    status: StatusCode,
    /// The password was right but the address is not verified yet: offer to resend the link.
    unverified: bool,
}

/// Issue 12 item 3: a self-registered account signs in only once its address is verified.
const UNVERIFIED: &str =
    "Verify your email address first: follow the link in the message we sent you. No message? Send it again below.";

async fn page(state: &AppState, session: &Session, args: PageArgs<'_>) -> WebResult<Response> {
    let csrf = session::csrf_token(state, session).await?;
    let now = unix_now();
    let mut client_name = None;
    let mut hint = None;
    if let Some(rid) = args.rid {
        if let Some(pending) = session::pending(state, session, rid, now).await? {
            hint = pending.request.login_hint.clone();
            match state.clients().lookup_client(&pending.request.client_id).await {
                Ok(Some(client)) => client_name = Some(client.name.clone()),
                Ok(None) => {}
                Err(e) => return Err(unavailable(state, &e)),
            }
        }
    }
    let email = if args.email.is_empty() { hint.unwrap_or_default() } else { args.email.to_string() };
    let next = next_page(args.next).map(|_| "account");
    let (rid, error, unverified) = (args.rid, args.error, args.unverified);
    let notice = session::take_notice(state, session).await?.ok;
    let registration_open = state.account_settings().registration == Registration::Open;
    Ok(render(
        state,
        args.status,
        "login.html",
        context! { csrf, rid, next, client_name, email, error, notice, registration_open, unverified },
    ))
}

/// A page answer with `Retry-After` (RFC 9110 §10.2.3), for throttled addresses.
pub fn with_retry_after(mut response: Response, secs: u64) -> Response {
    if let Ok(value) = HeaderValue::from_str(&secs.max(1).to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// The message for an address that made too many failed attempts.
pub fn too_many_from_address(secs: u64) -> String {
    format!("Too many failed attempts from your network. Try again in {} seconds.", secs.max(1))
}

/// `GET /login`.
pub async fn show(State(state): State<AppState>, session: Session, Query(q): Query<LoginQuery>) -> Response {
    let rid = match session::rid_param(&state, q.rid.as_deref()) {
        Ok(rid) => rid,
        Err(response) => return response,
    };
    // Only to fill in the field: an address longer than any valid one is dropped.
    let hint = q.login_hint.as_deref().filter(|h| h.len() <= 254).unwrap_or_default();
    let args =
        PageArgs { rid, next: q.next.as_deref(), email: hint, error: None, status: StatusCode::OK, unverified: false };
    match page(&state, &session, args).await {
        Ok(r) | Err(r) => r,
    }
}

/// `POST /login`.
pub async fn submit(
    State(state): State<AppState>,
    session: Session,
    requester: Requester,
    Form(form): Form<LoginForm>,
) -> Response {
    match handle(&state, &session, &requester, form).await {
        Ok(r) | Err(r) => r,
    }
}

async fn handle(state: &AppState, session: &Session, requester: &Requester, form: LoginForm) -> WebResult<Response> {
    session::rid_param(state, form.rid.as_deref())?;
    session::require_csrf(state, session, form.csrf.as_deref()).await?;
    let email_raw = form.email.clone().unwrap_or_default();
    let password = form.password.clone().unwrap_or_default();
    let args = |error, status| PageArgs {
        rid: form.rid.as_deref(),
        next: form.next.as_deref(),
        email: &email_raw,
        error: Some(error),
        status,
        unverified: false,
    };
    if let Some(wait) = requester.ip.and_then(|ip| state.sign_in_failures().retry_after(&ip)) {
        let message = too_many_from_address(wait.as_secs());
        crate::metrics::count_throttled("sign_in");
        let response = page(state, session, args(&message, StatusCode::TOO_MANY_REQUESTS)).await?;
        return Ok(with_retry_after(response, wait.as_secs()));
    }
    let now = unix_now();
    let origin = requester.origin();
    let user = match check_password(state.store(), state.passwords(), state.throttle(), &email_raw, &password, now)
        .await
    {
        Ok(user) => user,
        Err(failed) => {
            if let PasswordFailure::Unavailable(e) = &failed.failure {
                tracing::warn!(error = %e, "sign-in check failed");
                let response = page(state, session, args(UNAVAILABLE, StatusCode::SERVICE_UNAVAILABLE)).await?;
                return Ok(with_retry_after(response, UNAVAILABLE_RETRY_SECS));
            }
            if let Some(ip) = requester.ip {
                state.sign_in_failures().record_failure(ip);
            }
            let typed: String = email_raw.trim().chars().take(254).collect();
            let detail = serde_json::json!({
                "reason": failed.failure.audit_reason(),
                "email": typed,
                "delay_ms": u64::try_from(failed.delayed.as_millis()).unwrap_or(u64::MAX),
            });
            let with_user = |event: AuditEvent| match failed.failure.user_sub() {
                Some(sub) => event.user(sub),
                None => event,
            };
            audit::record(state.store(), with_user(AuditEvent::new(kind::SIGN_IN_FAILED, now, &origin).detail(detail)))
                .await;
            if failed.locked_now {
                let lock = serde_json::json!({ "factor": "password", "email": typed });
                audit::record(
                    state.store(),
                    with_user(AuditEvent::new(kind::ACCOUNT_LOCKED, now, &origin).detail(lock)),
                )
                .await;
            }
            return page(state, session, args(FAILED, StatusCode::OK)).await;
        }
    };

    if state.account_settings().require_verified_email && user.awaits_verification() {
        let detail = serde_json::json!({ "reason": "email_unverified", "email": user.email });
        audit::record(
            state.store(),
            AuditEvent::new(kind::SIGN_IN_FAILED, now, &origin).user(&user.sub).detail(detail),
        )
        .await;
        return page(state, session, PageArgs { unverified: true, ..args(UNVERIFIED, StatusCode::FORBIDDEN) }).await;
    }

    // A user with an authenticator app is not signed in until the code is checked.
    let has_totp = match state.store().totp_factor(&user.sub).await {
        Ok(factor) => factor.is_some_and(|f| f.is_enabled()),
        Err(e) => {
            tracing::warn!(error = %e, "second-factor lookup failed");
            let response = page(state, session, args(UNAVAILABLE, StatusCode::SERVICE_UNAVAILABLE)).await?;
            return Ok(with_retry_after(response, UNAVAILABLE_RETRY_SECS));
        }
    };
    if has_totp {
        session::begin_second_factor(state, session, PasswordVerified { sub: user.sub.clone(), at: now }).await?;
        let mut location = paths::LOGIN_MFA.to_string();
        let mut query = Vec::new();
        if let Some(rid) = &form.rid {
            query.push(format!("rid={}", urlencode(rid)));
        }
        if next_page(form.next.as_deref()).is_some() {
            query.push("next=account".to_string());
        }
        if !query.is_empty() {
            location = format!("{location}?{}", query.join("&"));
        }
        return Ok(see_other(&location));
    }
    complete(state, session, &user.sub, vec!["pwd".into()], None, form.rid.as_deref(), now, &origin).await?;
    Ok(see_other(&continue_to(form.rid.as_deref(), form.next.as_deref())))
}

/// Marks the session signed in (new session id) and records it; `rid`'s pending request
/// notes the fresh sign-in (prompt=login). `sid` is kept on a step-up (the same browser
/// session, so logout still reaches the grants it gave before); a new sign-in gets a new one.
#[allow(clippy::too_many_arguments)]
pub async fn complete(
    state: &AppState,
    session: &Session,
    sub: &str,
    amr: Vec<String>,
    sid: Option<String>,
    rid: Option<&str>,
    now: i64,
    origin: &audit::Origin,
) -> WebResult<()> {
    let client_id = match rid {
        Some(rid) => session::pending(state, session, rid, now).await?.map(|p| p.request.client_id),
        None => None,
    };
    let detail = serde_json::json!({ "amr": amr });
    let sid = sid.unwrap_or_else(|| random_id(22));
    session::sign_in(state, session, SignedIn { sub: sub.to_string(), auth_time: now, amr, sid }).await?;
    let mut event = AuditEvent::new(kind::SIGN_IN_SUCCEEDED, now, origin).user(sub).detail(detail);
    if let Some(client_id) = &client_id {
        event = event.client(client_id);
    }
    audit::record(state.store(), event).await;
    tracing::info!(sub = %sub, "user signed in");
    if let Some(rid) = rid {
        if let Some(mut pending) = session::pending(state, session, rid, now).await? {
            pending.login_at = Some(now);
            session::save_pending(state, session, pending, now).await?;
        }
    }
    Ok(())
}
