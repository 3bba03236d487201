//! What a browser session holds, and CSRF. The session itself is tower-sessions' cookie and
//! record, stored in our database (store::DbSessionStore).

use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use tower_sessions::Session;

use super::pages::{error_page, malformed, unavailable};
use crate::oauth::authorize::AuthorizationRequest;
use crate::secret::random_token;
use crate::state::AppState;

const USER: &str = "user";
const CSRF: &str = "csrf";
const PENDING: &str = "authz";
const PASSWORD_VERIFIED: &str = "pwd_ok";
const NOTICE: &str = "notice";
const RECOVERY_CODES: &str = "recovery_codes";
/// Time to type the one-time code after the password.
const SECOND_FACTOR_TTL: i64 = 300;
/// Authorization requests kept per session (several tabs); the oldest goes first.
const MAX_PENDING: usize = 5;
/// How long a user has to sign in and consent before the request must be started again.
const PENDING_TTL: i64 = 600;

pub type WebResult<T> = Result<T, Response>;

/// The signed-in user of this session.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SignedIn {
    pub sub: String,
    pub auth_time: i64,
    pub amr: Vec<String>,
    /// Identifies this sign-in: grants carry it, so logout can revoke what it gave (OIDC `sid`).
    pub sid: String,
}

/// The password was right, the second factor is still owed: the session is *not* signed in.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PasswordVerified {
    pub sub: String,
    pub at: i64,
}

/// A one-time message for the next page (after a POST answered with 303).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Notice {
    pub ok: Option<String>,
    pub error: Option<String>,
}

/// An authorization request waiting for sign-in or consent, kept server-side.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Pending {
    pub rid: String,
    pub request: AuthorizationRequest,
    pub created_at: i64,
    /// When the user signed in for this request (prompt=login needs a fresh sign-in).
    pub login_at: Option<i64>,
    /// prompt=consent: the page was answered for this request.
    pub consent_done: bool,
}

/// The session store (our database) failed: a 503 page; the cause is logged, never shown.
fn failed(state: &AppState, e: impl std::fmt::Display) -> Response {
    unavailable(state, &format_args!("session storage failed: {e}"))
}

/// Longest `rid` accepted; ours are 22 characters (`random_token(16)`).
const MAX_RID: usize = 64;

/// The `rid` of a page request, checked: `Ok(None)` when absent, a 400 page when it is not in
/// the form Latchkey makes them (base64url), so a damaged or forged link never reaches a
/// lookup or a redirect (issue 9, item 6).
// WebResult is every page helper's shape; its error is a whole response by design.
#[allow(clippy::result_large_err)]
pub fn rid_param<'a>(state: &AppState, rid: Option<&'a str>) -> WebResult<Option<&'a str>> {
    match rid {
        None => Ok(None),
        Some(rid)
            if !rid.is_empty()
                && rid.len() <= MAX_RID
                && rid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            Ok(Some(rid))
        }
        Some(_) => Err(malformed(state, "rid")),
    }
}

pub async fn signed_in(state: &AppState, session: &Session) -> WebResult<Option<SignedIn>> {
    session.get::<SignedIn>(USER).await.map_err(|e| failed(state, e))
}

/// Records a sign-in under a new session id (session fixation: the id an attacker may have
/// planted before sign-in is worthless after it).
pub async fn sign_in(state: &AppState, session: &Session, user: SignedIn) -> WebResult<()> {
    session.cycle_id().await.map_err(|e| failed(state, e))?;
    session.remove_value(PASSWORD_VERIFIED).await.map_err(|e| failed(state, e))?;
    // A new CSRF token too, for the same reason.
    session.insert(CSRF, random_token(32)).await.map_err(|e| failed(state, e))?;
    session.insert(USER, user).await.map_err(|e| failed(state, e))
}

/// Records a correct password whose second factor is still owed, under a new session id; any
/// earlier sign-in of this session ends (it may have been someone else's).
pub async fn begin_second_factor(state: &AppState, session: &Session, verified: PasswordVerified) -> WebResult<()> {
    session.cycle_id().await.map_err(|e| failed(state, e))?;
    session.insert(CSRF, random_token(32)).await.map_err(|e| failed(state, e))?;
    session.remove_value(USER).await.map_err(|e| failed(state, e))?;
    session.insert(PASSWORD_VERIFIED, verified).await.map_err(|e| failed(state, e))
}

/// The user who passed the password step and owes a second factor, if that was recent.
pub async fn password_verified(state: &AppState, session: &Session, now: i64) -> WebResult<Option<PasswordVerified>> {
    let verified = session.get::<PasswordVerified>(PASSWORD_VERIFIED).await.map_err(|e| failed(state, e))?;
    Ok(verified.filter(|v| now - v.at <= SECOND_FACTOR_TTL))
}

pub async fn set_notice(state: &AppState, session: &Session, notice: Notice) -> WebResult<()> {
    session.insert(NOTICE, notice).await.map_err(|e| failed(state, e))
}

/// The pending notice, removed as it is read (shown once).
pub async fn take_notice(state: &AppState, session: &Session) -> WebResult<Notice> {
    let notice = session.remove::<Notice>(NOTICE).await.map_err(|e| failed(state, e))?;
    Ok(notice.unwrap_or_default())
}

/// New recovery codes wait here between the POST that made them and the page that shows them
/// once.
pub async fn set_recovery_codes(state: &AppState, session: &Session, codes: Vec<String>) -> WebResult<()> {
    session.insert(RECOVERY_CODES, codes).await.map_err(|e| failed(state, e))
}

pub async fn take_recovery_codes(state: &AppState, session: &Session) -> WebResult<Option<Vec<String>>> {
    session.remove::<Vec<String>>(RECOVERY_CODES).await.map_err(|e| failed(state, e))
}

/// Ends the session server-side and clears the cookie.
pub async fn end(state: &AppState, session: &Session) -> WebResult<()> {
    session.flush().await.map_err(|e| failed(state, e))
}

/// The session's CSRF token, created on first use.
pub async fn csrf_token(state: &AppState, session: &Session) -> WebResult<String> {
    if let Some(token) = session.get::<String>(CSRF).await.map_err(|e| failed(state, e))? {
        return Ok(token);
    }
    let token = random_token(32);
    session.insert(CSRF, token.clone()).await.map_err(|e| failed(state, e))?;
    Ok(token)
}

/// Every form carries the token; a missing or wrong one is 403 (shared/security.md).
pub async fn require_csrf(state: &AppState, session: &Session, presented: Option<&str>) -> WebResult<()> {
    let expected = session.get::<String>(CSRF).await.map_err(|e| failed(state, e))?;
    let ok = match (expected, presented) {
        (Some(expected), Some(presented)) => {
            subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), presented.as_bytes()).into()
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(error_page(
            state,
            StatusCode::FORBIDDEN,
            "This form has expired",
            "The page you submitted is no longer valid. Go back, reload it and try again.",
        ))
    }
}

async fn all_pending(state: &AppState, session: &Session, now: i64) -> WebResult<Vec<Pending>> {
    let list = session.get::<Vec<Pending>>(PENDING).await.map_err(|e| failed(state, e))?.unwrap_or_default();
    Ok(list.into_iter().filter(|p| now - p.created_at < PENDING_TTL).collect())
}

pub async fn pending(state: &AppState, session: &Session, rid: &str, now: i64) -> WebResult<Option<Pending>> {
    Ok(all_pending(state, session, now).await?.into_iter().find(|p| p.rid == rid))
}

/// Stores (or replaces) a pending request.
pub async fn save_pending(state: &AppState, session: &Session, pending: Pending, now: i64) -> WebResult<()> {
    let mut list = all_pending(state, session, now).await?;
    list.retain(|p| p.rid != pending.rid);
    list.push(pending);
    if list.len() > MAX_PENDING {
        list.remove(0);
    }
    session.insert(PENDING, list).await.map_err(|e| failed(state, e))
}

pub async fn remove_pending(state: &AppState, session: &Session, rid: &str, now: i64) -> WebResult<()> {
    let mut list = all_pending(state, session, now).await?;
    list.retain(|p| p.rid != rid);
    session.insert(PENDING, list).await.map_err(|e| failed(state, e))
}
