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

/// What presenting a refresh token found.
#[derive(Clone, Debug)]
pub enum RefreshRotation {
    /// The token was live and is now used; its grant and scopes are returned.
    Rotated { grant: Box<Grant>, scopes: ScopeSet },
    /// The token had been used already: reuse. The caller revokes the grant.
    Reused { grant_id: String },
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
