use std::future::Future;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::token::{read_request, too_many};
use crate::authn::client_auth_key;
use crate::http::client_ip::Requester;
use crate::http::cors as http_cors;
use crate::http::error::no_store;
use crate::oauth::client_auth::presented_client_id;
use crate::oauth::params::Params;
use crate::oauth::revoke::{revoke as revoke_token, RevocationContext};
use crate::oauth::{ErrorCode, OAuthError};
use crate::state::{unix_now, AppState};

/// `POST /revoke` (RFC 7009 §2). 200 with an empty body whenever the client authenticated and
/// sent a token (§2.2), whether or not there was anything of its own to revoke. A database that
/// is down answers 503 (shared/security.md, Reliability: never a 200 that did not revoke).
pub async fn revoke(
    State(state): State<AppState>,
    requester: Requester,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let state = &state;
    // Browser apps revoke at sign-out: CORS as at the token endpoint (issue 11 item 1).
    client_authenticated(state, &requester, &headers, body, Cors::ForClient, |params, authorization| async move {
        let keys = state.keys();
        let ctx = RevocationContext {
            clients: state.clients(),
            store: state.store(),
            keys: &keys,
            issuer: &state.settings().issuer,
            now: unix_now(),
        };
        let what = revoke_token(ctx, &params, authorization.as_deref()).await?;
        tracing::debug!(?what, "revocation request");
        Ok(no_store(StatusCode::OK.into_response()))
    })
    .await
}

/// The token endpoint's guard for the other endpoints where clients authenticate (revocation,
/// introspection): guessing there is guessing a client secret too, so every `invalid_client`
/// drains the same (address, client_id) bucket as /token, and a blocked pair gets 429 before
/// anything is checked (see `endpoints::token`).
pub(super) async fn client_authenticated<F, Fut>(
    state: &AppState,
    requester: &Requester,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    cors: Cors,
    handle: F,
) -> Response
where
    F: FnOnce(Params, Option<String>) -> Fut,
    Fut: Future<Output = Result<Response, OAuthError>>,
{
    let (params, authorization) = match read_request(headers, body) {
        Ok(request) => request,
        Err(error) => return error.into_response(),
    };
    let client_id = presented_client_id(authorization.as_deref(), &params);
    // A page of an origin the client has not registered is refused before anything runs.
    let web_origin = match cors {
        Cors::ForClient => match http_cors::check_client_origin(state, headers, client_id.as_deref()).await {
            Ok(origin) => origin,
            Err(refused) => return refused,
        },
        Cors::None => None,
    };
    let readable = |response: Response| match &web_origin {
        Some(origin) => http_cors::allow(response, origin),
        None => response,
    };
    let bucket = requester.ip.map(|ip| client_auth_key(ip, client_id.as_deref()));
    if let Some(wait) = bucket.as_ref().and_then(|key| state.client_auth_failures().retry_after(key)) {
        return readable(too_many(wait.as_secs()));
    }
    match handle(params, authorization).await {
        Ok(response) => readable(response),
        Err(error) => {
            if error.code == ErrorCode::InvalidClient {
                if let Some(key) = bucket {
                    state.client_auth_failures().record_failure(key);
                }
            }
            readable(error.into_response())
        }
    }
}

/// Whether browser pages may call the endpoint (shared/security.md, "Browser apps").
pub(super) enum Cors {
    /// Revocation: readable by the client's own origins, refused for any other page.
    ForClient,
    /// Introspection: for resource servers, never for pages; no CORS headers at all.
    None,
}
