use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::http::client_ip::Requester;
use crate::http::error::no_store;
use crate::oauth::introspect::{introspect as introspect_token, IntrospectionContext};
use crate::state::{unix_now, AppState};

/// `POST /introspect` (RFC 7662 §2). Client authentication and its throttle as at /token;
/// who may see what is in `oauth::introspect`. Every answer is `Cache-Control: no-store`
/// (RFC 7662 §4: a cached answer could outlive a revocation). No CORS headers: resource servers
/// call this, browsers never do (issue 11 item 1).
pub async fn introspect(
    State(state): State<AppState>,
    requester: Requester,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let state = &state;
    super::client_request::client_authenticated(
        state,
        &requester,
        &headers,
        body,
        super::client_request::Cors::None,
        |params, authorization| async move {
            let keys = state.keys();
            let ctx = IntrospectionContext {
                clients: &state.client_auth(),
                store: state.store(),
                keys: &keys,
                issuer: &state.settings().issuer,
                now: unix_now(),
            };
            let answer = introspect_token(ctx, &params, authorization.as_deref()).await?;
            Ok(no_store((StatusCode::OK, Json(answer)).into_response()))
        },
    )
    .await
}
