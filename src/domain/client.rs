use std::fmt;
use std::str::FromStr;

use super::{RedirectUri, ScopeSet, SigningAlg};

/// RFC 6749 §2.1 client types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientKind {
    /// Holds a secret (a server-side app or a service).
    Confidential,
    /// Cannot keep a secret (a browser or native app); relies on PKCE alone.
    Public,
}

impl ClientKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientKind::Confidential => "confidential",
            ClientKind::Public => "public",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GrantType {
    AuthorizationCode,
    RefreshToken,
    ClientCredentials,
}

impl GrantType {
    pub const ALL: [GrantType; 3] =
        [GrantType::AuthorizationCode, GrantType::RefreshToken, GrantType::ClientCredentials];

    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::AuthorizationCode => "authorization_code",
            GrantType::RefreshToken => "refresh_token",
            GrantType::ClientCredentials => "client_credentials",
        }
    }
}

impl fmt::Display for GrantType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for GrantType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        GrantType::ALL.into_iter().find(|g| g.as_str() == s).ok_or_else(|| {
            format!("unknown grant type `{s}` (known: authorization_code, refresh_token, client_credentials)")
        })
    }
}

/// A registered client, as stored.
#[derive(Clone, Debug)]
pub struct Client {
    pub id: String,
    pub name: String,
    pub kind: ClientKind,
    /// SHA-256 of the secret; `None` for public clients.
    pub secret_hash: Option<[u8; 32]>,
    pub first_party: bool,
    /// Every sign-in for this app needs a second factor (`client create --require-mfa`).
    pub require_mfa: bool,
    pub redirect_uris: Vec<RedirectUri>,
    pub post_logout_redirect_uris: Vec<RedirectUri>,
    pub grant_types: Vec<GrantType>,
    /// The scopes this client may be granted; also what it gets when it asks for none.
    pub scopes: ScopeSet,
    pub roles: Vec<String>,
    /// `aud` of access tokens issued to this client; the settings' default when `None`.
    pub audience: Option<String>,
    /// How this client's ID tokens are signed (OIDC Registration `id_token_signed_response_alg`);
    /// RS256 when `None`, the algorithm every OIDC relying party must support.
    pub id_token_alg: Option<SigningAlg>,
    /// May call the introspection endpoint (RFC 7662) for tokens meant for it: a resource
    /// server (`client create --introspect`, issue 11 item 3).
    pub introspect: bool,
    pub created_at: i64,
    pub disabled_at: Option<i64>,
    /// Browser origins registered explicitly for CORS, beside those of the redirect URIs.
    pub allowed_origins: Vec<String>,
    /// Where logout tokens are POSTed when a session it signed into ends (OpenID Connect
    /// Back-Channel Logout 1.0 §2.2).
    pub backchannel_logout_uri: Option<String>,
    /// The app needs `sid` in its logout tokens (§2.2 `backchannel_logout_session_required`).
    pub backchannel_logout_session_required: bool,
    /// `private_key_jwt` (RFC 7523 §2.2): the client's public keys, registered inline (a JWKS
    /// document of RSA and P-256 keys)…
    pub jwks: Option<String>,
    /// …or the https URL they are fetched from.
    pub jwks_uri: Option<String>,
}

/// How a client proves who it is at the token, revocation and introspection endpoints
/// (OIDC Registration `token_endpoint_auth_method`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMethod {
    /// A shared secret (Basic or in the body).
    ClientSecret,
    /// A JWT signed with one of its registered keys (RFC 7523 §2.2).
    PrivateKeyJwt,
    /// A public client: nothing to prove.
    None,
}

impl Client {
    pub fn auth_method(&self) -> AuthMethod {
        if self.jwks.is_some() || self.jwks_uri.is_some() {
            AuthMethod::PrivateKeyJwt
        } else if self.kind == ClientKind::Public {
            AuthMethod::None
        } else {
            AuthMethod::ClientSecret
        }
    }

    /// Whether a browser app at `origin` may read this client's answers at the token, userinfo
    /// and revocation endpoints: an origin of one of its redirect URIs, or one it registered
    /// explicitly (issue 11 item 1). Exact: scheme, host and port.
    pub fn allows_origin(&self, origin: &str) -> bool {
        self.allowed_origins.iter().any(|o| o == origin)
            || self.redirect_uris.iter().any(|uri| super::redirect_origin(uri).as_deref() == Some(origin))
    }

    pub fn is_enabled(&self) -> bool {
        self.disabled_at.is_none()
    }

    pub fn allows_grant(&self, grant: GrantType) -> bool {
        self.grant_types.contains(&grant)
    }

    /// The registration this client would be made from. An update edits it and validates it
    /// again with [`NewClient::validate`], so an update can never make a client that
    /// registration would refuse.
    pub fn registration(&self) -> NewClient {
        let uris = |list: &[RedirectUri]| list.iter().map(|u| u.as_str().to_string()).collect();
        NewClient {
            name: self.name.clone(),
            public: self.kind == ClientKind::Public,
            first_party: self.first_party,
            require_mfa: self.require_mfa,
            redirect_uris: uris(&self.redirect_uris),
            post_logout_redirect_uris: uris(&self.post_logout_redirect_uris),
            grant_types: self.grant_types.iter().map(|g| g.as_str().to_string()).collect(),
            scopes: self.scopes.to_vec(),
            roles: self.roles.clone(),
            audience: self.audience.clone(),
            id_token_alg: self.id_token_alg.map(|a| a.as_str().to_string()),
            allowed_origins: self.allowed_origins.clone(),
            introspect: self.introspect,
            backchannel_logout_uri: self.backchannel_logout_uri.clone(),
            backchannel_logout_session_required: self.backchannel_logout_session_required,
            jwks: self.jwks.clone(),
            jwks_uri: self.jwks_uri.clone(),
        }
    }
}

/// What an admin asks for when registering a client, before validation.
#[derive(Clone, Debug, Default)]
pub struct NewClient {
    pub name: String,
    pub public: bool,
    pub first_party: bool,
    pub require_mfa: bool,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub grant_types: Vec<String>,
    pub scopes: Vec<String>,
    pub roles: Vec<String>,
    pub audience: Option<String>,
    pub id_token_alg: Option<String>,
    pub allowed_origins: Vec<String>,
    /// `--introspect`: may call /introspect (a resource server).
    pub introspect: bool,
    pub backchannel_logout_uri: Option<String>,
    pub backchannel_logout_session_required: bool,
    /// A JWKS document (`--jwks-file`): the client authenticates with private_key_jwt.
    pub jwks: Option<String>,
    /// Where its JWKS is fetched from (`--jwks-uri`): private_key_jwt too.
    pub jwks_uri: Option<String>,
}

/// A registration that passed every check; turned into a [`Client`] once it has an id and secret.
#[derive(Clone, Debug)]
pub struct ValidatedClient {
    pub name: String,
    pub kind: ClientKind,
    pub first_party: bool,
    pub require_mfa: bool,
    pub redirect_uris: Vec<RedirectUri>,
    pub post_logout_redirect_uris: Vec<RedirectUri>,
    pub grant_types: Vec<GrantType>,
    pub scopes: ScopeSet,
    pub roles: Vec<String>,
    pub audience: Option<String>,
    pub id_token_alg: Option<SigningAlg>,
    pub allowed_origins: Vec<String>,
    pub introspect: bool,
    pub backchannel_logout_uri: Option<String>,
    pub backchannel_logout_session_required: bool,
    pub jwks: Option<String>,
    pub jwks_uri: Option<String>,
}

impl ValidatedClient {
    /// A client that authenticates with keys gets no secret.
    pub fn uses_keys(&self) -> bool {
        self.jwks.is_some() || self.jwks_uri.is_some()
    }

    /// The client this registration describes, under `id` with its secret's hash and history.
    pub fn into_client(
        self,
        id: String,
        secret_hash: Option<[u8; 32]>,
        created_at: i64,
        disabled_at: Option<i64>,
    ) -> Client {
        Client {
            id,
            name: self.name,
            kind: self.kind,
            secret_hash,
            first_party: self.first_party,
            require_mfa: self.require_mfa,
            redirect_uris: self.redirect_uris,
            post_logout_redirect_uris: self.post_logout_redirect_uris,
            grant_types: self.grant_types,
            scopes: self.scopes,
            roles: self.roles,
            audience: self.audience,
            id_token_alg: self.id_token_alg,
            allowed_origins: self.allowed_origins,
            introspect: self.introspect,
            backchannel_logout_uri: self.backchannel_logout_uri,
            backchannel_logout_session_required: self.backchannel_logout_session_required,
            jwks: self.jwks,
            jwks_uri: self.jwks_uri,
            created_at,
            disabled_at,
        }
    }
}

const MAX_NAME: usize = 200;
/// Longer than any id `admin::clients` makes (22 characters).
const MAX_CLIENT_ID: usize = 128;

/// Whether `id` could be a client id at all: ids are ours (short, printable ASCII). Anything
/// else is answered "no such client" without a lookup — Postgres refuses a NUL in text with an
/// error (SQLSTATE 22021), which would turn a malformed parameter into a 5xx (issue 9, item 6).
pub fn is_plausible_client_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_CLIENT_ID && id.bytes().all(|b| b.is_ascii_graphic())
}
/// Scopes an app registered without `--scope` may request.
pub const DEFAULT_APP_SCOPES: &str = "openid profile email offline_access roles";
const MAX_ROLE: usize = 64;
const MAX_AUDIENCE: usize = 512;

fn plain_token(value: &str, max: usize) -> bool {
    !value.is_empty() && value.len() <= max && value.chars().all(|c| c.is_ascii_graphic())
}

impl NewClient {
    /// Every rule a registration must pass; the error says which and why.
    pub fn validate(self) -> Result<ValidatedClient, String> {
        let name = self.name.trim().to_string();
        if name.is_empty() || name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
            return Err(format!("name must be 1 to {MAX_NAME} printable characters"));
        }
        let kind = if self.public { ClientKind::Public } else { ClientKind::Confidential };
        let parse_uris = |raw: &[String]| -> Result<Vec<RedirectUri>, String> {
            let mut out: Vec<RedirectUri> = Vec::new();
            for uri in raw {
                let parsed = RedirectUri::parse(uri).map_err(|e| e.to_string())?;
                if !out.contains(&parsed) {
                    out.push(parsed);
                }
            }
            Ok(out)
        };
        let redirect_uris = parse_uris(&self.redirect_uris)?;
        let post_logout_redirect_uris = parse_uris(&self.post_logout_redirect_uris)?;

        let mut grant_types = Vec::new();
        // `--grant-type none`: a client that gets no tokens at all, such as a resource server
        // that only introspects (issue 11 item 3). It stands alone.
        let no_grants = self.grant_types.iter().any(|g| g == "none");
        if no_grants && self.grant_types.len() > 1 {
            return Err("--grant-type none cannot be combined with other grant types".into());
        }
        for raw in self.grant_types.iter().filter(|_| !no_grants) {
            let grant: GrantType = raw.parse()?;
            if !grant_types.contains(&grant) {
                grant_types.push(grant);
            }
        }
        if self.introspect && kind == ClientKind::Public {
            // RFC 7662 §2.1: the endpoint needs authorization; a public client proves nothing.
            return Err("a public client cannot introspect: it has no secret to authenticate with".into());
        }
        if grant_types.is_empty() && !no_grants && !(self.introspect && redirect_uris.is_empty()) {
            // A sensible default: apps that redirect users sign them in; the rest are services.
            grant_types = if !redirect_uris.is_empty() {
                vec![GrantType::AuthorizationCode, GrantType::RefreshToken]
            } else if kind == ClientKind::Confidential {
                vec![GrantType::ClientCredentials]
            } else {
                return Err("a public client needs at least one --redirect-uri".into());
            };
        }
        if grant_types.contains(&GrantType::AuthorizationCode) && redirect_uris.is_empty() {
            return Err("the authorization_code grant needs at least one --redirect-uri".into());
        }
        if grant_types.contains(&GrantType::RefreshToken) && !grant_types.contains(&GrantType::AuthorizationCode) {
            return Err("the refresh_token grant only comes with authorization_code".into());
        }
        // RFC 6749 §4.4: the client credentials grant MUST only be used by confidential clients.
        if kind == ClientKind::Public && grant_types.contains(&GrantType::ClientCredentials) {
            return Err("a public client cannot use client_credentials (RFC 6749 §4.4)".into());
        }

        let mut scopes = ScopeSet::from_tokens(self.scopes.iter().flat_map(|s| s.split(' ')).filter(|s| !s.is_empty()))
            .map_err(|e| e.to_string())?;

        // The admin API's scopes (issue 13 item 1) are for services acting for themselves: a
        // user's consent can never hand an app the power to administer the provider.
        if super::scope::has_admin_scope(&scopes)
            && (grant_types.iter().any(|g| *g != GrantType::ClientCredentials) || kind == ClientKind::Public)
        {
            return Err(format!(
                "the {} and {} scopes are for confidential service clients with the client_credentials grant alone",
                super::scope::ADMIN_SCOPE,
                super::scope::ADMIN_READ_SCOPE
            ));
        }
        // An app that signs users in and names no scopes gets the standard OpenID Connect ones.
        if scopes.is_empty() && grant_types.contains(&GrantType::AuthorizationCode) {
            scopes = ScopeSet::parse(DEFAULT_APP_SCOPES).map_err(|e| e.to_string())?;
        }

        let mut roles: Vec<String> = Vec::new();
        for role in self.roles {
            if !plain_token(&role, MAX_ROLE) {
                return Err(format!("role `{role}` must be 1 to {MAX_ROLE} visible ASCII characters without spaces"));
            }
            if !roles.contains(&role) {
                roles.push(role);
            }
        }
        roles.sort();

        let audience = match self.audience {
            Some(a) if !plain_token(&a, MAX_AUDIENCE) => {
                return Err(format!("audience must be 1 to {MAX_AUDIENCE} visible ASCII characters without spaces"))
            }
            other => other,
        };

        let id_token_alg = self.id_token_alg.as_deref().map(str::parse::<SigningAlg>).transpose()?;

        let mut allowed_origins: Vec<String> = Vec::new();
        for raw in &self.allowed_origins {
            let origin = super::parse_allowed_origin(raw)?;
            if !allowed_origins.contains(&origin) {
                allowed_origins.push(origin);
            }
        }

        let backchannel_logout_uri =
            self.backchannel_logout_uri.as_deref().map(validate_backchannel_logout_uri).transpose()?;
        if self.backchannel_logout_session_required && backchannel_logout_uri.is_none() {
            return Err("--backchannel-logout-session-required needs a --backchannel-logout-uri".into());
        }

        if self.jwks.is_some() && self.jwks_uri.is_some() {
            return Err("register the keys either inline (--jwks-file) or by URL (--jwks-uri), not both".into());
        }
        if (self.jwks.is_some() || self.jwks_uri.is_some()) && kind == ClientKind::Public {
            return Err("a public client has no keys to authenticate with; drop --public for private_key_jwt".into());
        }
        let jwks = self.jwks.as_deref().map(super::client_keys::validate_jwks).transpose()?;
        let jwks_uri = self.jwks_uri.as_deref().map(super::client_keys::validate_jwks_uri).transpose()?;

        Ok(ValidatedClient {
            name,
            kind,
            first_party: self.first_party,
            require_mfa: self.require_mfa,
            redirect_uris,
            post_logout_redirect_uris,
            grant_types,
            scopes,
            roles,
            audience,
            id_token_alg,
            allowed_origins,
            introspect: self.introspect,
            backchannel_logout_uri,
            backchannel_logout_session_required: self.backchannel_logout_session_required,
            jwks,
            jwks_uri,
        })
    }
}

const MAX_LOGOUT_URI: usize = 2000;

/// OpenID Connect Back-Channel Logout 1.0 §2.2: an absolute URL, which MAY have a query and MUST
/// NOT have a fragment. Latchkey POSTs logout tokens there, so it also asks for https, except on
/// a loopback host (development), like the issuer.
fn validate_backchannel_logout_uri(raw: &str) -> Result<String, String> {
    let why = |what: &str| format!("backchannel logout URI `{}` {what}", raw.chars().take(100).collect::<String>());
    if raw.len() > MAX_LOGOUT_URI {
        return Err(why(&format!("is longer than {MAX_LOGOUT_URI} bytes")));
    }
    let url = url::Url::parse(raw).map_err(|e| why(&format!("is not an absolute URL ({e})")))?;
    if url.fragment().is_some() || raw.contains('#') {
        return Err(why("must not have a fragment (Back-Channel Logout §2.2)"));
    }
    if url.host_str().is_none() || !url.username().is_empty() || url.password().is_some() {
        return Err(why("must name a host and no user or password"));
    }
    match url.scheme() {
        "https" => {}
        "http" if super::is_loopback_host(&url) => {}
        _ => return Err(why("must use https (http only on localhost or a loopback address)")),
    }
    Ok(raw.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> NewClient {
        NewClient { name: "svc".into(), ..NewClient::default() }
    }

    #[test]
    fn service_defaults_to_client_credentials() {
        let c = base().validate().unwrap();
        assert_eq!(c.grant_types, vec![GrantType::ClientCredentials]);
    }

    #[test]
    fn app_defaults_to_code_and_refresh() {
        let c = NewClient { redirect_uris: vec!["https://a.example/cb".into()], ..base() }.validate().unwrap();
        assert_eq!(c.grant_types, vec![GrantType::AuthorizationCode, GrantType::RefreshToken]);
    }

    #[test]
    fn public_client_cannot_use_client_credentials() {
        let err = NewClient { public: true, grant_types: vec!["client_credentials".into()], ..base() }
            .validate()
            .unwrap_err();
        assert!(err.contains("public client"), "{err}");
    }

    #[test]
    fn a_resource_server_has_no_grant_types() {
        let c = NewClient { introspect: true, ..base() }.validate().unwrap();
        assert!(c.grant_types.is_empty() && c.introspect);
        let c = NewClient { introspect: true, grant_types: vec!["none".into()], ..base() }.validate().unwrap();
        assert!(c.grant_types.is_empty());
        let c = NewClient { grant_types: vec!["none".into()], ..base() }.validate().unwrap();
        assert!(c.grant_types.is_empty() && !c.introspect);
        assert!(NewClient { grant_types: vec!["none".into(), "client_credentials".into()], ..base() }
            .validate()
            .is_err());
        assert!(NewClient {
            introspect: true,
            public: true,
            redirect_uris: vec!["https://a.example/cb".into()],
            ..base()
        }
        .validate()
        .is_err());
    }

    #[test]
    fn refuses_bad_fields() {
        assert!(NewClient { name: " ".into(), ..base() }.validate().is_err());
        assert!(NewClient { roles: vec!["a b".into()], ..base() }.validate().is_err());
        assert!(NewClient { grant_types: vec!["password".into()], ..base() }.validate().is_err());
        assert!(NewClient { grant_types: vec!["authorization_code".into()], ..base() }.validate().is_err());
        assert!(NewClient { scopes: vec!["a\"b".into()], ..base() }.validate().is_err());
    }
}
