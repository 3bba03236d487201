//! Delivering a back-channel logout (OpenID Connect Back-Channel Logout 1.0 §2.5): a fresh
//! logout token, signed like the app's ID tokens, POSTed as `logout_token` to the app's
//! registered URI.

use std::time::Duration;

use crate::domain::SigningAlg;
use crate::mail::transport::SendError;
use crate::oauth::client_auth::ClientLookup;
use crate::oidc::logout_token::{self, LogoutClaims};
use crate::state::{unix_now, AppState};
use crate::store::LogoutNotice;

/// How long an app has to answer one POST.
pub const POST_TIMEOUT: Duration = Duration::from_secs(5);

/// The HTTP client for logout POSTs: redirects are not followed (§2.5 names one URI), and no
/// cookies are kept.
pub fn http_client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(POST_TIMEOUT)
        .connect_timeout(POST_TIMEOUT)
        .user_agent(concat!("Latchkey/", env!("CARGO_PKG_VERSION"), " back-channel logout"))
        .build()
}

fn permanent(message: impl Into<String>) -> SendError {
    SendError { permanent: true, message: message.into() }
}

fn transient(message: impl Into<String>) -> SendError {
    SendError { permanent: false, message: message.into() }
}

pub async fn deliver(state: &AppState, http: &reqwest::Client, uri: &str, payload: &[u8]) -> Result<(), SendError> {
    let notice: LogoutNotice =
        serde_json::from_slice(payload).map_err(|e| permanent(format!("logout notice does not parse: {e}")))?;
    let client = match state.clients().lookup_client(&notice.client_id).await {
        Ok(Some(client)) if client.is_enabled() => client,
        Ok(_) => return Err(permanent("the app is gone or disabled")),
        Err(e) => return Err(transient(format!("client lookup: {e}"))),
    };
    // The URI registered now: an app that moved or dropped its endpoint since is not sent the
    // old one's token.
    let Some(registered) = client.backchannel_logout_uri.as_deref() else {
        return Err(permanent("the app no longer has a back-channel logout URI"));
    };
    if registered != uri {
        tracing::info!(client_id = %client.id, "back-channel logout URI changed since the logout; using the new one");
    }
    let alg = client.id_token_alg.unwrap_or(SigningAlg::Rs256);
    let claims = LogoutClaims {
        issuer: &state.settings().issuer,
        client_id: &client.id,
        sub: &notice.sub,
        sid: notice.sid.as_deref(),
        jti: &notice.jti,
    };
    let token = logout_token::mint(&state.keys(), alg, &claims, unix_now())
        .map_err(|e| transient(format!("signing the logout token: {e}")))?;
    let response = http
        .post(registered)
        .header(reqwest::header::CACHE_CONTROL, "no-store")
        .form(&[("logout_token", token.as_str())])
        .send()
        .await
        .map_err(|e| transient(format!("POST {registered}: {e}")))?;
    let status = response.status();
    // §2.8: 200 (204 is common too) on success; 400 when the app refused the token (a retry
    // would be refused the same). Redirects are not followed; 408, 429 and 5xx are retried.
    match status.as_u16() {
        200..=299 => Ok(()),
        408 | 429 | 500..=599 => Err(transient(format!("the app answered {status}"))),
        _ => Err(permanent(format!("the app answered {status}"))),
    }
}
