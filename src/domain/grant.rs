use super::ScopeSet;

/// One authorization a user gave a client: the unit that codes, refresh tokens and tracked
/// access tokens hang off, and the unit of revocation.
#[derive(Clone, Debug)]
pub struct Grant {
    pub id: String,
    pub client_id: String,
    pub user_sub: String,
    pub scopes: ScopeSet,
    pub auth_time: i64,
    pub amr: Vec<String>,
    pub nonce: Option<String>,
    pub sid: Option<String>,
    pub created_at: i64,
    /// Absolute end of the grant's refresh-token family.
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
}

/// An authorization code as stored (the code itself only as a hash).
#[derive(Clone, Debug)]
pub struct CodeRecord {
    pub code_hash: [u8; 32],
    pub grant_id: String,
    pub client_id: String,
    pub redirect_uri: String,
    pub redirect_uri_sent: bool,
    pub code_challenge: String,
    pub created_at: i64,
    pub expires_at: i64,
}

/// What redeeming a code found.
#[derive(Clone, Debug)]
pub enum CodeRedemption {
    /// First use: the code is now consumed.
    Redeemed { code: Box<CodeRecord>, grant: Box<Grant> },
    /// The code was redeemed before: a replay. The caller revokes the grant.
    Replayed { grant_id: String },
    /// Unknown, expired, or issued to another client.
    Invalid,
}

/// The token that replaces a rotated refresh token (its hash), and — while the reuse grace
/// window is on — the token itself sealed with the master key, so that a second presentation of
/// its predecessor within the window can be answered with this same token (issue 11 item 4).
#[derive(Clone, Debug)]
pub struct Successor {
    pub hash: [u8; 32],
    /// Sealed with associated data that names the predecessor (`keys::seal::seal_successor`);
    /// `None` when `refresh_token_reuse_grace` is 0 (strict rotation: nothing is kept).
    pub sealed: Option<Vec<u8>>,
    /// When the grace window closes (Unix seconds); ignored without `sealed`.
    pub sealed_until: i64,
}

/// What presenting a refresh token found.
#[derive(Clone, Debug)]
pub enum RefreshRotation {
    /// The token was live and is now used; its grant and scopes are returned.
    Rotated { grant: Box<Grant>, scopes: ScopeSet },
    /// The token was rotated within the grace window and its successor has not been used:
    /// the caller answers with that same successor (opened from `sealed`), so the family does
    /// not branch (issue 11 item 4).
    Repeated { grant: Box<Grant>, scopes: ScopeSet, successor_hash: [u8; 32], sealed: Vec<u8> },
    /// The token had been used already, and no grace applies: reuse. The caller revokes the
    /// grant. `successor_used` says whether the token that replaced it had been used too
    /// (otherwise the window had passed, or was off).
    Reused { grant_id: String, user_sub: String, successor_used: bool },
    /// Unknown, expired, revoked, or another client's.
    Invalid,
}

/// A live refresh token, as introspection (RFC 7662 §2.2) describes it.
#[derive(Clone, Debug)]
pub struct LiveRefreshToken {
    pub grant_id: String,
    pub client_id: String,
    pub user_sub: String,
    pub scopes: ScopeSet,
    pub created_at: i64,
    pub expires_at: i64,
}

/// A user's browser session as an admin sees it (issue 13 item 1): never the cookie, only the
/// hash the store keys it by, which ends it and can't be turned back into a cookie.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionSummary {
    pub id: String,
    /// The OIDC `sid` of the sign-in: the grants given in it carry it.
    pub sid: Option<String>,
    pub auth_time: Option<i64>,
    pub amr: Vec<String>,
    pub expires_at: i64,
}
