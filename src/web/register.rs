//! Sign-up and email verification pages (issue 12 items 2 and 3): `/register`, `/check-email`,
//! `/verify-email` and `/verify-email/resend`. Every form has CSRF; every request that sends
//! mail is throttled per client address; every answer about an address is the same whether it
//! has an account or not.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Form;
use minijinja::context;
use serde::Deserialize;
use tower_sessions::Session;

use super::login::{too_many_from_address, with_retry_after};
use super::pages::{error_page, page_url, render, respond, see_other, unavailable};
use super::session::{self, Notice, Pending, WebResult};
use crate::accounts::sign_up::{self, SignUpForm, SignedUp};
use crate::accounts::AccountError;
use crate::audit::{self, kind, AuditEvent};
use crate::config::Registration;
use crate::http::client_ip::Requester;
use crate::http::paths;
use crate::oauth::authorize::AuthorizationRequest;
use crate::oauth::client_auth::ClientLookup;
use crate::secret::random_token;
use crate::state::{unix_now, AppState};

/// A self-service step failed for a reason that is not the person's: 503, nothing changed.
pub fn account_unavailable(state: &AppState, e: &AccountError) -> Response {
    unavailable(state, &format_args!("self-service step failed: {e}"))
}

/// 429 when this client address has caused too many messages; else counts this request. The
/// request that empties the bucket is refused too, so exactly `email_ip_burst` get through.
pub fn email_throttle(state: &AppState, requester: &Requester) -> Option<u64> {
    email_blocked(state, requester).or_else(|| count_email_request(state, requester))
}

/// The wait while this client address may cause no more messages, without counting.
fn email_blocked(state: &AppState, requester: &Requester) -> Option<u64> {
    let ip = requester.ip?;
    state.email_requests().retry_after(&ip).map(|wait| wait.as_secs())
}

/// Counts a request that causes a message; the wait when that spent the address's budget.
fn count_email_request(state: &AppState, requester: &Requester) -> Option<u64> {
    let ip = requester.ip?;
    state.email_requests().record_failure(ip).map(|wait| wait.as_secs())
}

/// The 429 page for a throttled form.
pub fn throttled_page(state: &AppState, wait_secs: u64) -> Response {
    let message = too_many_from_address(wait_secs).replace("failed attempts", "requests");
    crate::metrics::count_throttled("email");
    with_retry_after(error_page(state, StatusCode::TOO_MANY_REQUESTS, "Too many requests", &message), wait_secs)
}

/// The link page for a dead link: 410 Gone (RFC 9110 §15.5.11), saying what to do next.
pub fn dead_link_page(state: &AppState, what: &str, again: &str) -> Response {
    error_page(
        state,
        StatusCode::GONE,
        "This link no longer works",
        &format!("The {what} link has expired, was already used, or a newer one was sent. {again}"),
    )
}

/// The page an emailed link opens: what it will do, and a button that does it (a POST with
/// CSRF), so fetching the link alone changes nothing.
pub struct LinkPage<'a> {
    pub title: &'a str,
    pub lead: &'a str,
    pub action: &'a str,
    pub button: &'a str,
}

pub async fn link_action_page(
    state: &AppState,
    session: &Session,
    token: &str,
    page: LinkPage<'_>,
) -> WebResult<Response> {
    let csrf = session::csrf_token(state, session).await?;
    let LinkPage { title, lead, action, button } = page;
    Ok(render(state, StatusCode::OK, "link_action.html", context! { csrf, token, title, lead, action, button }))
}

/// On to the sign-in page with `message` shown there and `email` filled in (and the app's
/// request `rid`, when there is one).
pub async fn to_sign_in(
    state: &AppState,
    session: &Session,
    message: String,
    email: &str,
    rid: Option<&str>,
) -> WebResult<Response> {
    session::set_notice(state, session, Notice { ok: Some(message), error: None }).await?;
    let mut params = vec![("login_hint", email)];
    if let Some(rid) = rid {
        params.push(("rid", rid));
    }
    Ok(see_other(&page_url(paths::LOGIN, &params)))
}

#[derive(Deserialize)]
pub struct RidQuery {
    pub rid: Option<String>,
}

async fn client_name(state: &AppState, session: &Session, rid: Option<&str>) -> WebResult<Option<String>> {
    let Some(rid) = rid else { return Ok(None) };
    let Some(pending) = session::pending(state, session, rid, unix_now()).await? else { return Ok(None) };
    match state.clients().lookup_client(&pending.request.client_id).await {
        Ok(client) => Ok(client.map(|c| c.name.clone())),
        Err(e) => Err(unavailable(state, &e)),
    }
}

struct FormPage<'a> {
    rid: Option<&'a str>,
    email: &'a str,
    name: &'a str,
    error: Option<&'a str>,
}

async fn register_page(state: &AppState, session: &Session, f: FormPage<'_>) -> WebResult<Response> {
    let csrf = session::csrf_token(state, session).await?;
    let client_name = client_name(state, session, f.rid).await?;
    let min_length = state.settings().password_min_length;
    let (rid, email, name, error) = (f.rid, f.email, f.name, f.error);
    Ok(render(
        state,
        StatusCode::OK,
        "register.html",
        context! { csrf, rid, client_name, email, name, error, min_length },
    ))
}

/// Sign-up exists only with `registration = "open"`; otherwise the page is not there.
fn registration_closed(state: &AppState) -> Option<Response> {
    (state.account_settings().registration != Registration::Open).then(|| {
        error_page(
            state,
            StatusCode::NOT_FOUND,
            "Sign-up is not open",
            "Accounts here are created by an administrator or by invitation.",
        )
    })
}

/// `GET /register`.
pub async fn show(State(state): State<AppState>, session: Session, Query(q): Query<RidQuery>) -> Response {
    if let Some(closed) = registration_closed(&state) {
        return closed;
    }
    respond(
        async {
            let rid = session::rid_param(&state, q.rid.as_deref())?;
            register_page(&state, &session, FormPage { rid, email: "", name: "", error: None }).await
        }
        .await,
    )
}

#[derive(Deserialize)]
pub struct RegisterForm {
    csrf: Option<String>,
    rid: Option<String>,
    email: Option<String>,
    name: Option<String>,
    password: Option<String>,
    confirm: Option<String>,
}

/// `POST /register`.
pub async fn submit(
    State(state): State<AppState>,
    session: Session,
    requester: Requester,
    Form(form): Form<RegisterForm>,
) -> Response {
    if let Some(closed) = registration_closed(&state) {
        return closed;
    }
    respond(register(&state, &session, &requester, form).await)
}

async fn register(
    state: &AppState,
    session: &Session,
    requester: &Requester,
    form: RegisterForm,
) -> WebResult<Response> {
    let rid = session::rid_param(state, form.rid.as_deref())?;
    session::require_csrf(state, session, form.csrf.as_deref()).await?;
    // Refused while the address's budget is spent; counted below only once the form is valid,
    // so a person fixing a refused password is not throttled for it (an invalid form costs no
    // hashing and sends nothing).
    if let Some(wait) = email_blocked(state, requester) {
        return Ok(throttled_page(state, wait));
    }
    let now = unix_now();
    // The app's request, kept with the link so the user goes back to it once verified.
    let resume = match rid {
        Some(rid) => {
            session::pending(state, session, rid, now).await?.and_then(|p| serde_json::to_string(&p.request).ok())
        }
        None => None,
    };
    let input = SignUpForm {
        email: form.email.clone().unwrap_or_default(),
        name: form.name.clone().unwrap_or_default(),
        password: form.password.unwrap_or_default(),
        confirm: form.confirm.unwrap_or_default(),
    };
    let letters = state.letters();
    let outcome =
        sign_up::sign_up(state.store(), state.passwords(), &letters, state.account_settings(), &input, resume, now)
            .await;
    let origin = requester.origin();
    if outcome.is_ok() {
        // This request sent (or tried to send) mail: it counts, after the fact.
        count_email_request(state, requester);
    }
    match outcome {
        Ok(SignedUp::Created { sub }) => {
            state.wake_outbox();
            let event = AuditEvent::new(kind::USER_REGISTERED, now, &origin).user(&sub);
            audit::record(state.store(), event).await;
            let event = AuditEvent::new(kind::EMAIL_VERIFICATION_SENT, now, &origin)
                .user(&sub)
                .detail(serde_json::json!({ "reason": "sign_up" }));
            audit::record(state.store(), event).await;
        }
        Ok(SignedUp::Existing { sub, told }) => {
            state.wake_outbox();
            let detail = serde_json::json!({ "reason": "address_has_account", "owner_told": told });
            audit::record(
                state.store(),
                AuditEvent::new(kind::USER_REGISTERED, now, &origin).user(&sub).detail(detail),
            )
            .await;
        }
        Err(AccountError::Invalid(message)) => {
            let page = FormPage { rid, email: &input.email, name: &input.name, error: Some(&message) };
            return register_page(state, session, page).await;
        }
        Err(e) => return Err(account_unavailable(state, &e)),
    }
    let mut params = vec![("sent", "sign_up")];
    if let Some(rid) = rid {
        params.push(("rid", rid));
    }
    Ok(see_other(&page_url(paths::CHECK_EMAIL, &params)))
}

#[derive(Deserialize)]
pub struct CheckEmailQuery {
    sent: Option<String>,
    rid: Option<String>,
}

/// `GET /check-email`: one page for every "a message is on its way", whatever happened.
pub async fn check_email(State(state): State<AppState>, Query(q): Query<CheckEmailQuery>) -> Response {
    let rid = match session::rid_param(&state, q.rid.as_deref()) {
        Ok(rid) => rid,
        Err(response) => return response,
    };
    let message = match q.sent.as_deref() {
        Some("sign_up") => "If the address can be used for a new account, we sent it a link to verify it. Follow the link, then sign in.",
        Some("reset") => "If an account uses that address, we sent it a link to choose a new password.",
        Some("verify") => "If that address has an account waiting for verification, we sent it a new link.",
        _ => "If the address has an account, a message is on its way.",
    };
    render(&state, StatusCode::OK, "check_email.html", context! { message, rid })
}

#[derive(Deserialize)]
pub struct ResendForm {
    csrf: Option<String>,
    email: Option<String>,
}

/// `POST /verify-email/resend` (the button on the sign-in page of an unverified account).
pub async fn resend(
    State(state): State<AppState>,
    session: Session,
    requester: Requester,
    Form(form): Form<ResendForm>,
) -> Response {
    respond(
        async {
            session::require_csrf(&state, &session, form.csrf.as_deref()).await?;
            if let Some(wait) = email_throttle(&state, &requester) {
                return Ok(throttled_page(&state, wait));
            }
            let now = unix_now();
            let email = form.email.unwrap_or_default();
            let letters = state.letters();
            match sign_up::resend_verification(state.store(), &letters, state.account_settings(), &email, now).await {
                Ok(Some(sub)) => {
                    state.wake_outbox();
                    let event = AuditEvent::new(kind::EMAIL_VERIFICATION_SENT, now, &requester.origin())
                        .user(&sub)
                        .detail(serde_json::json!({ "reason": "resend" }));
                    audit::record(state.store(), event).await;
                }
                Ok(None) => {}
                Err(e) => return Err(account_unavailable(&state, &e)),
            }
            Ok(see_other(&page_url(paths::CHECK_EMAIL, &[("sent", "verify")])))
        }
        .await,
    )
}

#[derive(Deserialize)]
pub struct TokenQuery {
    pub token: Option<String>,
}

/// `GET /verify-email?token=…`: a button, not the verification itself, so a mail scanner that
/// fetches links can't use one up.
pub async fn verify_page(State(state): State<AppState>, session: Session, Query(q): Query<TokenQuery>) -> Response {
    respond(
        async {
            let token = q.token.unwrap_or_default();
            match sign_up::check_verification_link(state.store(), &token, unix_now()).await {
                Ok((link, _)) => {
                    let lead = format!("Confirm that {} is your address.", link.email);
                    let page = LinkPage {
                        title: "Verify your email address",
                        lead: &lead,
                        action: paths::VERIFY_EMAIL,
                        button: "Verify my email address",
                    };
                    link_action_page(&state, &session, &token, page).await
                }
                Err(AccountError::DeadLink) => Ok(dead_verification_link(&state)),
                Err(e) => Err(account_unavailable(&state, &e)),
            }
        }
        .await,
    )
}

fn dead_verification_link(state: &AppState) -> Response {
    dead_link_page(state, "verification", "Sign in to have a new one sent.")
}

#[derive(Deserialize)]
pub struct TokenForm {
    pub csrf: Option<String>,
    pub token: Option<String>,
}

/// `POST /verify-email`: uses the link, then on to sign-in (back to the app's request when the
/// sign-up started from one).
pub async fn verify(
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
            let link = match sign_up::verify(state.store(), &token, now).await {
                Ok(link) => link,
                Err(AccountError::DeadLink) => return Ok(dead_verification_link(&state)),
                Err(e) => return Err(account_unavailable(&state, &e)),
            };
            let event = AuditEvent::new(kind::EMAIL_VERIFIED, now, &requester.origin())
                .user(&link.user_sub)
                .detail(serde_json::json!({ "email": link.email }));
            audit::record(state.store(), event).await;
            let rid = resume_request(&state, &session, link.resume.as_deref(), now).await?;
            let ok = "Your email address is verified. Sign in to continue.".to_string();
            to_sign_in(&state, &session, ok, &link.email, rid.as_deref()).await
        }
        .await,
    )
}

/// Puts the app's authorization request a sign-up started from back in this browser's session
/// (under a new `rid`), so signing in continues to the app. The request was validated when the
/// app sent it, up to a day ago: it is resumed only while the client is enabled and still has
/// that redirect URI registered (RFC 6749 §3.1.2.2), else the user just signs in.
async fn resume_request(
    state: &AppState,
    session: &Session,
    resume: Option<&str>,
    now: i64,
) -> WebResult<Option<String>> {
    let Some(request) = resume.and_then(|json| serde_json::from_str::<AuthorizationRequest>(json).ok()) else {
        return Ok(None);
    };
    let still_registered = match state.clients().lookup_client(&request.client_id).await {
        Ok(Some(client)) => {
            client.is_enabled() && client.redirect_uris.iter().any(|uri| uri.matches(request.redirect_uri.as_str()))
        }
        Ok(None) => false,
        Err(e) => return Err(unavailable(state, &e)),
    };
    if !still_registered {
        return Ok(None);
    }
    let rid = random_token(16);
    let pending = Pending { rid: rid.clone(), request, created_at: now, login_at: None, consent_done: false };
    session::save_pending(state, session, pending, now).await?;
    Ok(Some(rid))
}
