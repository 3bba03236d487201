//! Authorization request validation (RFC 6749 §4.1.1, RFC 7636 §4.3, OIDC Core §3.1.2.1) as an
//! ordered list of small checks. Until the client and its redirect URI are verified, every
//! failure is an error *page*; after, errors go back to the verified redirect URI. The only way
//! to build a redirect is [`VerifiedRedirectUri`], which this module alone can make, so an open
//! redirect can't be written elsewhere.

use std::collections::{HashMap, HashSet};

use super::client_auth::ClientLookup;
use super::verify::{verify_jwt, Expect};
use super::{pkce, ErrorCode, OAuthError};
use crate::domain::{Client, GrantType, ScopeSet};
use crate::keys::KeyRing;

/// A redirect URI that matched the client's registration. Private field: only this module
/// constructs one (deserialising is for the copy kept server-side in the session).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VerifiedRedirectUri(String);

impl VerifiedRedirectUri {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The redirect URI with `params` appended to its query (RFC 6749 §4.1.2: keep the
    /// registered query component, add ours).
    pub fn with_params(&self, params: &[(&str, &str)]) -> String {
        match url::Url::parse(&self.0) {
            Ok(mut url) => {
                {
                    let mut query = url.query_pairs_mut();
                    for (name, value) in params {
                        query.append_pair(name, value);
                    }
                }
                url.to_string()
            }
            // Registration validated it as a URL; unreachable in practice, and never a panic.
            Err(_) => self.0.clone(),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Prompt {
    pub none: bool,
    pub login: bool,
    pub consent: bool,
}

/// A request that passed every check, kept server-side in the session while the user signs in.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct AuthorizationRequest {
    pub client_id: String,
    pub redirect_uri: VerifiedRedirectUri,
    /// Whether the request named the redirect URI (then the token request must repeat it).
    pub redirect_uri_sent: bool,
    pub scope: String,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: String,
    pub prompt: Prompt,
    pub max_age: Option<i64>,
    pub login_hint: Option<String>,
    /// OIDC Core §3.1.2.1; the multi-factor profile makes the second factor mandatory.
    #[serde(default)]
    pub acr_values: Option<String>,
    /// The `sub` of a verified `id_token_hint` (OIDC Core §3.1.2.1): only this user may get
    /// the code.
    #[serde(default)]
    pub id_token_hint_sub: Option<String>,
}

impl AuthorizationRequest {
    pub fn scopes(&self) -> ScopeSet {
        ScopeSet::parse(&self.scope).unwrap_or_default()
    }
}

#[derive(Debug)]
pub enum AuthorizeError {
    /// The client or redirect URI could not be verified: show a page, never redirect.
    Page { title: &'static str, detail: String },
    /// Report to the client at its verified redirect URI.
    Redirect { redirect_uri: VerifiedRedirectUri, error: OAuthError, state: Option<String> },
    /// The client could not be looked up (the database is unavailable): nothing is verified
    /// yet, so no redirect; the caller answers 503 (issue 9, item 3). The cause is logged.
    Unavailable,
}

impl AuthorizeError {
    fn page(title: &'static str, detail: impl Into<String>) -> Self {
        Self::Page { title, detail: detail.into() }
    }
}

const MAX_STATE: usize = 2048;
const MAX_NONCE: usize = 512;
const MAX_HINT: usize = 254;
const MAX_ACR_VALUES: usize = 2048;

/// Query or form parameters with repeats kept, so repeats can be refused by name.
pub struct RawParams {
    values: HashMap<String, String>,
    repeated: HashSet<String>,
}

impl RawParams {
    pub fn parse(raw: &[u8]) -> Self {
        let mut values = HashMap::new();
        let mut repeated = HashSet::new();
        for (name, value) in form_urlencoded::parse(raw).take(64) {
            if value.is_empty() {
                continue; // RFC 6749 §3.1: a parameter without a value is omitted.
            }
            if values.insert(name.to_string(), value.into_owned()).is_some() {
                repeated.insert(name.into_owned());
            }
        }
        Self { values, repeated }
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }
}

fn error(code: ErrorCode, description: impl Into<String>) -> OAuthError {
    OAuthError::new(code, description.into())
}

/// Runs the checks in order and returns the validated request.
pub async fn validate<L: ClientLookup>(
    clients: &L,
    params: &RawParams,
) -> Result<(AuthorizationRequest, std::sync::Arc<Client>), AuthorizeError> {
    // 1. The client. RFC 6749 §4.1.2.1: with an invalid client_id, do not redirect.
    if params.repeated.contains("client_id") {
        return Err(AuthorizeError::page("Invalid request", "client_id is repeated."));
    }
    let Some(client_id) = params.get("client_id") else {
        return Err(AuthorizeError::page("Invalid request", "The request names no client (client_id is missing)."));
    };
    let client = clients
        .lookup_client(client_id)
        .await
        .map_err(|e| {
            // Logged (with its cause) by OAuthError::from; the page shows none of it.
            let _logged = OAuthError::from(e);
            AuthorizeError::Unavailable
        })?
        .filter(|c| c.is_enabled())
        .ok_or_else(|| {
            AuthorizeError::page(
                "Unknown application",
                "The application that sent you here is not registered or is disabled.",
            )
        })?;

    // 2. The redirect URI: exact match with a registered one (RFC 9700 §4.1.3); else no redirect.
    if params.repeated.contains("redirect_uri") {
        return Err(AuthorizeError::page("Invalid request", "redirect_uri is repeated."));
    }
    let (redirect_uri, redirect_uri_sent) = match params.get("redirect_uri") {
        Some(presented) => match client.redirect_uris.iter().find(|r| r.matches(presented)) {
            Some(_) => (VerifiedRedirectUri(presented.to_string()), true),
            None => {
                return Err(AuthorizeError::page(
                    "Invalid redirect URI",
                    "The application asked to send you to an address it has not registered.",
                ))
            }
        },
        None => match client.redirect_uris.as_slice() {
            [only] => (VerifiedRedirectUri(only.as_str().to_string()), false),
            _ => return Err(AuthorizeError::page("Invalid request", "redirect_uri is required for this application.")),
        },
    };

    // From here on, errors go back to the application, with its state.
    let state = params.get("state").filter(|s| s.len() <= MAX_STATE).map(str::to_string);
    let fail = |code: ErrorCode, description: String| AuthorizeError::Redirect {
        redirect_uri: redirect_uri.clone(),
        error: error(code, description),
        state: state.clone(),
    };

    if let Some(name) = params.repeated.iter().next() {
        // RFC 6749 §3.1: request parameters MUST NOT be included more than once.
        return Err(fail(ErrorCode::InvalidRequest, format!("parameter `{name}` is repeated")));
    }
    if params.get("state").is_some_and(|s| s.len() > MAX_STATE) {
        return Err(fail(ErrorCode::InvalidRequest, format!("state is longer than {MAX_STATE} characters")));
    }
    if !client.allows_grant(GrantType::AuthorizationCode) {
        return Err(fail(ErrorCode::UnauthorizedClient, "this client may not use the authorization code flow".into()));
    }
    // OIDC Core §6: request objects are not supported (and not advertised).
    if params.get("request").is_some() {
        return Err(fail(ErrorCode::RequestNotSupported, "request objects are not supported".into()));
    }
    if params.get("request_uri").is_some() {
        return Err(fail(ErrorCode::RequestUriNotSupported, "request_uri is not supported".into()));
    }

    // 3. response_type: the code flow only; never a token in a URL (RFC 9700 §2.1.2).
    match params.get("response_type") {
        None => return Err(fail(ErrorCode::InvalidRequest, "response_type is required".into())),
        Some("code") => {}
        Some(other) => {
            return Err(fail(
                ErrorCode::UnsupportedResponseType,
                format!("response_type `{}` is not supported; use `code`", other.chars().take(40).collect::<String>()),
            ))
        }
    }
    match params.get("response_mode") {
        None | Some("query") => {}
        Some(_) => return Err(fail(ErrorCode::InvalidRequest, "only response_mode=query is supported".into())),
    }

    // 4. scope: well-formed and within what the client may ask for.
    let scopes = match params.get("scope") {
        None => return Err(fail(ErrorCode::InvalidScope, "scope is required (for example `openid`)".into())),
        Some(raw) => ScopeSet::parse(raw).map_err(|e| fail(ErrorCode::InvalidScope, e.to_string()))?,
    };
    let refused: Vec<&str> = scopes.not_in(&client.scopes).collect();
    if !refused.is_empty() {
        return Err(fail(ErrorCode::InvalidScope, format!("this client may not request: {}", refused.join(" "))));
    }

    // 5. PKCE, required for every client, S256 only (RFC 9700 §2.1.1, RFC 7636 §4.3).
    let Some(challenge) = params.get("code_challenge") else {
        return Err(fail(ErrorCode::InvalidRequest, "code_challenge is required (PKCE with S256)".into()));
    };
    match params.get("code_challenge_method") {
        Some("S256") => {}
        Some("plain") | None => {
            return Err(fail(
                ErrorCode::InvalidRequest,
                "code_challenge_method must be S256; plain is not accepted".into(),
            ))
        }
        Some(_) => return Err(fail(ErrorCode::InvalidRequest, "code_challenge_method must be S256".into())),
    }
    if !pkce::is_valid_s256_challenge(challenge) {
        return Err(fail(ErrorCode::InvalidRequest, "code_challenge must be 43 base64url characters".into()));
    }

    // 6. OIDC Core §3.1.2.1 options.
    let mut prompt = Prompt::default();
    if let Some(raw) = params.get("prompt") {
        for value in raw.split(' ').filter(|v| !v.is_empty()) {
            match value {
                "none" => prompt.none = true,
                "login" => prompt.login = true,
                "consent" => prompt.consent = true,
                "select_account" => {}
                other => {
                    return Err(fail(
                        ErrorCode::InvalidRequest,
                        format!("unknown prompt value `{}`", other.chars().take(40).collect::<String>()),
                    ))
                }
            }
        }
        if prompt.none && (prompt.login || prompt.consent) {
            return Err(fail(ErrorCode::InvalidRequest, "prompt=none cannot be combined with other values".into()));
        }
    }
    let max_age =
        match params.get("max_age") {
            None => None,
            Some(raw) => Some(raw.parse::<u32>().map(i64::from).map_err(|_| {
                fail(ErrorCode::InvalidRequest, "max_age must be a non-negative number of seconds".into())
            })?),
        };
    let nonce = params.get("nonce").map(str::to_string);
    if nonce.as_ref().is_some_and(|n| n.len() > MAX_NONCE) {
        return Err(fail(ErrorCode::InvalidRequest, format!("nonce is longer than {MAX_NONCE} characters")));
    }
    let login_hint = params.get("login_hint").filter(|h| h.len() <= MAX_HINT).map(str::to_string);
    // Refused rather than dropped when too long: an app asking for MFA must never get less.
    let acr_values = params.get("acr_values").map(str::to_string);
    if acr_values.as_ref().is_some_and(|v| v.len() > MAX_ACR_VALUES) {
        return Err(fail(ErrorCode::InvalidRequest, format!("acr_values is longer than {MAX_ACR_VALUES} characters")));
    }

    Ok((
        AuthorizationRequest {
            client_id: client.id.clone(),
            redirect_uri,
            redirect_uri_sent,
            scope: scopes.to_string(),
            state,
            nonce,
            code_challenge: challenge.to_string(),
            prompt,
            max_age,
            login_hint,
            acr_values,
            id_token_hint_sub: None,
        },
        client,
    ))
}

/// OIDC Core §3.1.2.1 `id_token_hint`: an ID token this issuer signed (its expiry may be past;
/// signature, issuer and type must verify). Returns the user it names, `None` without a hint,
/// and `invalid_request` for anything else: a hint that can't be verified must not be ignored,
/// or an app asking for one user could be handed another's code (issue 9 item 4).
pub fn id_token_hint_sub(params: &RawParams, keys: &KeyRing, issuer: &str) -> Result<Option<String>, OAuthError> {
    let Some(hint) = params.get("id_token_hint") else {
        return Ok(None);
    };
    let claims = verify_jwt(keys, hint, issuer, Expect::IdToken { allow_expired: true })
        .map_err(|_| OAuthError::invalid_request("id_token_hint is not a valid ID token from this provider"))?;
    match claims.get("sub").and_then(serde_json::Value::as_str) {
        Some(sub) if !sub.is_empty() => Ok(Some(sub.to_string())),
        _ => Err(OAuthError::invalid_request("id_token_hint names no subject")),
    }
}

/// The parameters of an error redirect (RFC 6749 §4.1.2.1 plus `iss`, RFC 9207).
pub fn error_redirect(
    redirect_uri: &VerifiedRedirectUri,
    error: &OAuthError,
    state: Option<&str>,
    issuer: &str,
) -> String {
    let mut params = vec![("error", error.code.as_str()), ("error_description", error.description.as_ref())];
    if let Some(state) = state {
        params.push(("state", state));
    }
    params.push(("iss", issuer));
    redirect_uri.with_params(&params)
}

/// Who is authorizing, as the session knows them.
pub struct Authorizer<'a> {
    pub sub: &'a str,
    pub auth_time: i64,
    pub amr: &'a [String],
    pub sid: &'a str,
}

/// Lifetimes used when a code is issued.
pub struct CodeSettings<'a> {
    pub issuer: &'a str,
    pub code_ttl_secs: i64,
    pub grant_ttl_secs: i64,
}

/// Creates the grant and its single-use code, and returns where to send the browser:
/// `redirect_uri?code=…&state=…&iss=…` (RFC 6749 §4.1.2, RFC 9207 §2).
pub async fn issue_code<S: crate::store::GrantStore>(
    store: &S,
    request: &AuthorizationRequest,
    who: Authorizer<'_>,
    settings: CodeSettings<'_>,
    now: i64,
) -> Result<String, OAuthError> {
    use crate::domain::{CodeRecord, Grant};
    use crate::secret::{random_id, random_token, sha256};

    let grant = Grant {
        id: random_id(22),
        client_id: request.client_id.clone(),
        user_sub: who.sub.to_string(),
        scopes: request.scopes(),
        auth_time: who.auth_time,
        amr: who.amr.to_vec(),
        nonce: request.nonce.clone(),
        sid: Some(who.sid.to_string()),
        created_at: now,
        expires_at: now + settings.grant_ttl_secs,
        revoked_at: None,
    };
    // 256 bits from a CSPRNG; only the hash is stored (shared/security.md).
    let code = random_token(32);
    let record = CodeRecord {
        code_hash: sha256(&code),
        grant_id: grant.id.clone(),
        client_id: request.client_id.clone(),
        redirect_uri: request.redirect_uri.as_str().to_string(),
        redirect_uri_sent: request.redirect_uri_sent,
        code_challenge: request.code_challenge.clone(),
        created_at: now,
        expires_at: now + settings.code_ttl_secs,
    };
    store.create_grant_with_code(&grant, &record).await?;
    let mut params = vec![("code", code.as_str())];
    if let Some(state) = &request.state {
        params.push(("state", state));
    }
    params.push(("iss", settings.issuer));
    Ok(request.redirect_uri.with_params(&params))
}

/// Whether the user must be asked: first-party clients never; others when `prompt=consent`
/// was not yet answered or the stored consent does not cover every requested scope.
pub fn needs_consent(
    first_party: bool,
    prompt_consent_pending: bool,
    stored: Option<&ScopeSet>,
    requested: &ScopeSet,
) -> bool {
    if first_party {
        return false;
    }
    prompt_consent_pending || !stored.is_some_and(|s| requested.is_subset_of(s))
}
