//! Client authentication at the token endpoint (RFC 6749 §2.3): `client_secret_basic`,
//! `client_secret_post`, `private_key_jwt` (RFC 7523 §2.2, OIDC Core §9), and bare
//! `client_id` for public clients. The revocation and introspection endpoints use it too.

use std::future::Future;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use jsonwebtoken::jwk::JwkSet;

use super::client_assertion::{self, AssertionError, JWT_BEARER, MAX_ASSERTION_BYTES};
use super::params::Params;
use super::{Challenge, OAuthError};
use crate::domain::{AuthMethod, Client, ClientKind};
use crate::secret::verify_hash;
use crate::store::StoreResult;

/// Looks clients up by id (the cache in front of the store implements this).
pub trait ClientLookup: Send + Sync {
    fn lookup_client(&self, id: &str) -> impl Future<Output = StoreResult<Option<Arc<Client>>>> + Send;
}

/// What checking a `private_key_jwt` assertion needs besides the client: its keys (inline, or
/// fetched from its `jwks_uri` and cached), the URLs that name this server for `aud`, and the
/// record of used `jti`s shared by replicas.
pub trait AssertionKeys: Send + Sync {
    /// `aud` values an assertion may carry: the issuer and the endpoints that authenticate
    /// clients.
    fn audiences(&self) -> Vec<String>;
    /// The client's keys; `refresh` asks for a fresh copy of a fetched JWKS (an unknown `kid`
    /// may be a key the client just rotated in).
    fn client_keys(&self, client: &Client, refresh: bool) -> impl Future<Output = Result<JwkSet, String>> + Send;
    /// Records `jti` of `client_id` until `expires_at`; false when it was used before (RFC 7523
    /// §3 item 7: a replay).
    fn first_use(&self, client_id: &str, jti: &str, expires_at: i64) -> impl Future<Output = StoreResult<bool>> + Send;
}

/// The credentials a request carried, before checking them.
#[derive(Debug, PartialEq, Eq)]
pub enum PresentedClient {
    Basic {
        id: String,
        secret: String,
    },
    Post {
        id: String,
        secret: String,
    },
    /// `client_assertion` with `client_assertion_type` = jwt-bearer; `id` is the body's
    /// `client_id`, else the `sub` the assertion claims (checked when it is verified).
    Assertion {
        id: String,
        assertion: String,
    },
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
    let assertion_type = params.get("client_assertion_type");
    let assertion = params.get("client_assertion");
    if assertion_type.is_some() || assertion.is_some() {
        // RFC 6749 §2.3: one authentication method per request.
        if authorization.is_some() || body_secret.is_some() {
            return Err(OAuthError::invalid_request(
                "use one client authentication method: a client_assertion, or a secret, not both",
            ));
        }
        if assertion_type != Some(JWT_BEARER) {
            return Err(OAuthError::invalid_client(format!(
                "client_assertion_type must be {JWT_BEARER} (RFC 7523 §2.2)"
            )));
        }
        let Some(assertion) = assertion.filter(|a| !a.is_empty() && a.len() <= MAX_ASSERTION_BYTES) else {
            return Err(OAuthError::invalid_client("client_assertion is missing or too long"));
        };
        // RFC 7523 §3 items 1–2: the assertion names the client; a body client_id must agree.
        let claimed = client_assertion::claimed_client_id(assertion);
        let id = match (body_id, claimed) {
            (Some(body), Some(claimed)) if body != claimed => {
                return Err(OAuthError::invalid_client("client_id differs from the assertion's sub"))
            }
            (Some(body), _) => body.to_string(),
            (None, Some(claimed)) => claimed,
            (None, None) => return Err(OAuthError::invalid_client("the client_assertion names no client (sub)")),
        };
        if id.is_empty() || id.len() > MAX_CREDENTIAL {
            return Err(OAuthError::invalid_client("malformed client_id"));
        }
        return Ok(PresentedClient::Assertion { id, assertion: assertion.to_string() });
    }
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
        PresentedClient::Basic { id, .. }
        | PresentedClient::Post { id, .. }
        | PresentedClient::Assertion { id, .. }
        | PresentedClient::IdOnly(id) => Some(id),
        PresentedClient::Nothing => None,
    }
}

/// Checks the presented credentials. Unknown client, wrong secret, bad assertion and disabled
/// client all give the same answer, so the endpoint tells an attacker nothing about which ids
/// exist. A client authenticates only the way it registered: a private_key_jwt client's
/// secret (it has none) or a secret client's assertion never counts.
pub async fn authenticate<L: ClientLookup + AssertionKeys>(
    clients: &L,
    presented: PresentedClient,
    now: i64,
) -> Result<Arc<Client>, OAuthError> {
    let (id, credential, challenge) = match presented {
        PresentedClient::Nothing => {
            return Err(OAuthError::invalid_client("client authentication is required"));
        }
        PresentedClient::Basic { id, secret } => (id, Credential::Secret(secret), Challenge::Basic),
        PresentedClient::Post { id, secret } => (id, Credential::Secret(secret), Challenge::None),
        PresentedClient::Assertion { id, assertion } => (id, Credential::Assertion(assertion), Challenge::None),
        PresentedClient::IdOnly(id) => (id, Credential::None, Challenge::None),
    };
    let failed = || OAuthError::invalid_client("client authentication failed").with_challenge(challenge);
    if id.len() > MAX_CREDENTIAL || matches!(&credential, Credential::Secret(s) if s.len() > MAX_CREDENTIAL) {
        return Err(failed());
    }
    let Some(client) = clients.lookup_client(&id).await? else {
        return Err(failed());
    };
    if !client.is_enabled() {
        return Err(failed());
    }
    match (client.auth_method(), credential) {
        (AuthMethod::ClientSecret, Credential::Secret(secret))
            if client.kind == ClientKind::Confidential
                && client.secret_hash.as_ref().is_some_and(|hash| verify_hash(&secret, hash)) =>
        {
            Ok(client)
        }
        (AuthMethod::PrivateKeyJwt, Credential::Assertion(assertion)) => {
            match check_assertion(clients, &client, &assertion, now).await? {
                Ok(()) => Ok(client),
                Err(why) => {
                    tracing::info!(client_id = %client.id, reason = %why, "client assertion refused");
                    Err(failed())
                }
            }
        }
        // Public clients prove nothing with a secret; one that sends a secret is misconfigured.
        (AuthMethod::None, Credential::None) => Ok(client),
        _ => Err(failed()),
    }
}

enum Credential {
    Secret(String),
    Assertion(String),
    None,
}

/// Verifies a private_key_jwt assertion; `Ok(Err(why))` when refused, `Err` when the store
/// failed (a 503, not a refusal). A fetched JWKS is refetched once when no key matches, so a
/// client that rotated its keys is not refused until the cache expires.
async fn check_assertion<L: AssertionKeys>(
    clients: &L,
    client: &Client,
    assertion: &str,
    now: i64,
) -> Result<Result<(), String>, OAuthError> {
    let audiences = clients.audiences();
    let keys = match clients.client_keys(client, false).await {
        Ok(keys) => keys,
        Err(e) => return Ok(Err(format!("keys: {e}"))),
    };
    let verified = match client_assertion::verify(assertion, &client.id, &keys, &audiences, now) {
        Err(AssertionError::NoKey) if client.jwks_uri.is_some() => match clients.client_keys(client, true).await {
            Ok(fresh) => client_assertion::verify(assertion, &client.id, &fresh, &audiences, now),
            Err(e) => return Ok(Err(format!("keys: {e}"))),
        },
        other => other,
    };
    let verified = match verified {
        Ok(verified) => verified,
        Err(e) => return Ok(Err(e.to_string())),
    };
    if !clients.first_use(&client.id, &verified.jti, verified.exp).await? {
        return Ok(Err("jti was used before (a replay)".into()));
    }
    Ok(Ok(()))
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
