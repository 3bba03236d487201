//! What every admin API handler takes from the request: the bearer token and where the
//! request came from (for the audit trail), and its body, path and query parsed into
//! problem details when they are wrong.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{FromRef, FromRequestParts, Path, Query};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use serde::de::DeserializeOwned;

use super::problem::Problem;
use crate::admin::access::{self, AccessContext, AdminCaller, Need};
use crate::admin::actor::Actor;
use crate::http::client_ip::Requester;
use crate::state::{unix_now, AppState};

/// The caller's credentials and origin, before they are checked.
pub struct AdminRequest {
    bearer: Option<String>,
    requester: Requester,
}

/// The token of an `Authorization: Bearer …` header (RFC 6750 §2.1; the scheme is
/// case-insensitive). Anything else, or several headers, is no token.
fn bearer(headers: &HeaderMap) -> Option<String> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let value = values.next()?.to_str().ok()?;
    if values.next().is_some() {
        return None;
    }
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_string())
}

impl<S> FromRequestParts<S> for AdminRequest
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let requester = match Requester::from_request_parts(parts, state).await {
            Ok(r) => r,
            Err(never) => match never {},
        };
        Ok(Self { bearer: bearer(&parts.headers), requester })
    }
}

/// The checked caller: its client id and the actor its changes are recorded under.
pub struct Caller {
    pub client_id: String,
    pub actor: Actor,
}

impl Caller {
    /// An admin client can't lock itself out through the API (disable or delete itself, or
    /// give up the admin scopes): another admin client or the CLI can.
    pub fn refuse_self_lockout(&self, target: &str, what: &str) -> Result<(), Problem> {
        if target == self.client_id {
            return Err(Problem::new(
                StatusCode::CONFLICT,
                format!("a client cannot {what} itself through the admin API; use another admin client or the CLI"),
            ));
        }
        Ok(())
    }
}

impl AdminRequest {
    /// Lets the request in when its token allows `need` (admin::access), else a problem.
    pub async fn authorize(self, state: &AppState, need: Need) -> Result<Caller, Problem> {
        let keys = state.keys();
        let ctx =
            AccessContext { keys: &keys, store: state.store(), issuer: &state.settings().issuer, now: unix_now() };
        let caller: AdminCaller = access::authorize(&ctx, self.bearer.as_deref(), need).await?;
        let actor = Actor::api(&caller.client_id, self.requester.origin());
        Ok(Caller { client_id: caller.client_id, actor })
    }
}

/// A JSON body, or 400 (not JSON, wrong shape, unknown field) / 415 (not declared JSON).
pub fn json_body<T: DeserializeOwned>(headers: &HeaderMap, body: Result<Bytes, BytesRejection>) -> Result<T, Problem> {
    let body = body.map_err(|e| Problem::new(e.status(), e.body_text()))?;
    let declared = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let media = declared.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if media != "application/json" && !(media.starts_with("application/") && media.ends_with("+json")) {
        return Err(Problem::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "send the body as application/json"));
    }
    serde_json::from_slice(&body).map_err(|e| Problem::bad_request(format!("the JSON body is not acceptable: {e}")))
}

/// Path parameters, or 400.
pub fn path<T>(path: Result<Path<T>, PathRejection>) -> Result<T, Problem> {
    path.map(|Path(p)| p).map_err(|e| Problem::bad_request(e.body_text()))
}

/// Query parameters, or 400.
pub fn query<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, Problem> {
    query.map(|Query(q)| q).map_err(|e| Problem::bad_request(e.body_text()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        }
        headers
    }

    #[test]
    fn only_one_bearer_header_carries_a_token() {
        assert_eq!(bearer(&with(&["Bearer abc"])).as_deref(), Some("abc"));
        assert_eq!(bearer(&with(&["bearer abc"])).as_deref(), Some("abc"));
        assert_eq!(bearer(&with(&["Basic abc"])), None);
        assert_eq!(bearer(&with(&["Bearer "])), None);
        assert_eq!(bearer(&with(&["Bearer a", "Bearer b"])), None);
        assert_eq!(bearer(&with(&[])), None);
    }
}
