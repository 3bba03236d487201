//! Client authentication at the token endpoint (RFC 6749 §2.3): `client_secret_basic` and
//! `client_secret_post`, plus bare `client_id` for public clients.

use std::future::Future;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use super::params::Params;
use super::{Challenge, OAuthError};
use crate::domain::{Client, ClientKind};
use crate::secret::verify_hash;
use crate::store::StoreResult;

/// Looks clients up by id (the cache in front of the store implements this).
pub trait ClientLookup: Send + Sync {
    fn lookup_client(&self, id: &str) -> impl Future<Output = StoreResult<Option<Arc<Client>>>> + Send;
}

/// The credentials a request carried, before checking them.
#[derive(Debug, PartialEq, Eq)]
pub enum PresentedClient {
    Basic { id: String, secret: String },
    Post { id: String, secret: String },
    IdOnly(String),
    Nothing,
}

/// Longest client id or secret we read; ours are 22 and 43 characters.
const MAX_CREDENTIAL: usize = 256;

fn basic_failure(why: &'static str) -> OAuthError {
    OAuthError::invalid_client(why).with_challenge(Challenge::Basic)
}

/// Reads the credentials from the `Authorization` header and the body parameters.
pub fn presented_client(authorization: Option<&str>, params: &Params) -> Result<PresentedClient, OAuthError> {
    let body_id = params.get("client_id");
    let body_secret = params.get("client_secret");
    let Some(header) = authorization else {
        return Ok(match (body_id, body_secret) {
            (Some(id), Some(secret)) => PresentedClient::Post { id: id.into(), secret: secret.into() },
            (Some(id), None) => PresentedClient::IdOnly(id.into()),
            (None, Some(_)) => return Err(OAuthError::invalid_request("client_secret was sent without client_id")),
            (None, None) => PresentedClient::Nothing,
        });
    };
    // RFC 6749 §2.3: a client MUST NOT use more than one authentication method per request.
    if body_secret.is_some() {
        return Err(OAuthError::invalid_request(
            "use one client authentication method: HTTP Basic or client_secret in the body, not both",
        ));
    }
    let (scheme, encoded) = header.trim().split_once(' ').unwrap_or((header, ""));
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(basic_failure("the Authorization header must use the Basic scheme"));
    }
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| basic_failure("malformed Basic credentials"))?;
    let decoded = String::from_utf8(decoded).map_err(|_| basic_failure("malformed Basic credentials"))?;
    let (raw_id, raw_secret) = decoded.split_once(':').ok_or_else(|| basic_failure("malformed Basic credentials"))?;
    // RFC 6749 §2.3.1: id and secret are form-urlencoded before Basic encoding.
    let decode = |s: &str| -> String {
        form_urlencoded::parse(format!("v={s}").as_bytes()).next().map(|(_, v)| v.into_owned()).unwrap_or_default()
    };
    let (id, secret) = (decode(raw_id), decode(raw_secret));
    if id.is_empty() || id.len() > MAX_CREDENTIAL || secret.len() > MAX_CREDENTIAL {
        return Err(basic_failure("malformed Basic credentials"));
    }
    if body_id.is_some_and(|b| b != id) {
        return Err(OAuthError::invalid_request("client_id in the body differs from the Authorization header"));
    }
    Ok(PresentedClient::Basic { id, secret })
}

/// The client_id a request names, unchecked (the token endpoint's throttling key): `None`
/// when it names none or its credentials can't be read.
pub fn presented_client_id(authorization: Option<&str>, params: &Params) -> Option<String> {
    match presented_client(authorization, params).ok()? {
        PresentedClient::Basic { id, .. } | PresentedClient::Post { id, .. } | PresentedClient::IdOnly(id) => Some(id),
        PresentedClient::Nothing => None,
    }
}

/// Checks the presented credentials. Unknown client, wrong secret and disabled client all give
/// the same answer, so the endpoint tells an attacker nothing about which ids exist.
pub async fn authenticate<L: ClientLookup>(clients: &L, presented: PresentedClient) -> Result<Arc<Client>, OAuthError> {
    let (id, secret, challenge) = match presented {
        PresentedClient::Nothing => {
            return Err(OAuthError::invalid_client("client authentication is required"));
        }
        PresentedClient::Basic { id, secret } => (id, Some(secret), Challenge::Basic),
        PresentedClient::Post { id, secret } => (id, Some(secret), Challenge::None),
        PresentedClient::IdOnly(id) => (id, None, Challenge::None),
    };
    let failed = || OAuthError::invalid_client("client authentication failed").with_challenge(challenge);
    if id.len() > MAX_CREDENTIAL || secret.as_ref().is_some_and(|s| s.len() > MAX_CREDENTIAL) {
        return Err(failed());
    }
    let Some(client) = clients.lookup_client(&id).await? else {
        return Err(failed());
    };
    if !client.is_enabled() {
        return Err(failed());
    }
    match (client.kind, &client.secret_hash, secret) {
        (ClientKind::Confidential, Some(hash), Some(secret)) if verify_hash(&secret, hash) => Ok(client),
        // Public clients prove nothing with a secret; one that sends a secret is misconfigured.
        (ClientKind::Public, _, None) => Ok(client),
        _ => Err(failed()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(body: &str) -> Params {
        Params::parse(body.as_bytes()).unwrap()
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        let header = format!("Basic {}", STANDARD.encode("my%20id:p%3Ass"));
        let got = presented_client(Some(&header), &params("")).unwrap();
        assert_eq!(got, PresentedClient::Basic { id: "my id".into(), secret: "p:ss".into() });
    }

    #[test]
    fn two_methods_are_refused() {
        let header = format!("Basic {}", STANDARD.encode("a:b"));
        let err = presented_client(Some(&header), &params("client_secret=b")).unwrap_err();
        assert_eq!(err.code, crate::oauth::ErrorCode::InvalidRequest);
    }

    /// The length bounds' edges and the empty id (cargo-mutants survivors).
    #[test]
    fn basic_credentials_are_bounded_exactly() {
        let basic = |id: &str, secret: &str| format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")));
        let longest = "a".repeat(MAX_CREDENTIAL);
        let too_long = "a".repeat(MAX_CREDENTIAL + 1);
        assert!(presented_client(Some(&basic(&longest, "s")), &params("")).is_ok());
        assert!(presented_client(Some(&basic("id", &longest)), &params("")).is_ok());
        for (id, secret) in [(too_long.as_str(), "s"), ("id", too_long.as_str()), ("", "s")] {
            let err = presented_client(Some(&basic(id, secret)), &params("")).unwrap_err();
            assert_eq!(err.code, crate::oauth::ErrorCode::InvalidClient, "{} {}", id.len(), secret.len());
        }
    }

    /// RFC 6749 §2.3: a body client_id must name the same client as the header.
    #[test]
    fn a_body_client_id_must_match_the_header() {
        let header = format!("Basic {}", STANDARD.encode("alpha:s"));
        let err = presented_client(Some(&header), &params("client_id=beta")).unwrap_err();
        assert_eq!(err.code, crate::oauth::ErrorCode::InvalidRequest);
        let same = presented_client(Some(&header), &params("client_id=alpha")).unwrap();
        assert_eq!(same, PresentedClient::Basic { id: "alpha".into(), secret: "s".into() });
    }

    #[test]
    fn other_schemes_fail_with_basic_challenge() {
        let err = presented_client(Some("Bearer abc"), &params("")).unwrap_err();
        assert_eq!((err.code, err.challenge), (crate::oauth::ErrorCode::InvalidClient, Challenge::Basic));
        let err = presented_client(Some("Basic !!!"), &params("")).unwrap_err();
        assert_eq!(err.challenge, Challenge::Basic);
    }
}
