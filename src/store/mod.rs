//! Storage: narrow traits whose methods are atomic intents (shared/design.md rule 3), and one
//! implementation that runs the same SQL on Postgres (sqlx) and SQLite (rusqlite, inline;
//! `db.rs` says why).
//!
//! This module is the only one that names sqlx or rusqlite. Protocol code sees [`ClientStore`] and
//! [`KeyStore`] and plain domain types.

mod accounts;
mod admin;
mod assertions;
mod audit;
mod catalog;
mod client_cache;
mod clients;
mod connect;
mod db;
mod grants;
mod keys;
mod logout;
mod mfa;
mod migrate;
mod outbox;
mod revocation;
mod sessions;
mod statements;
mod throttles;
mod users;

use std::future::Future;

use crate::audit::{AuditEvent, AuditFilter};
use crate::authn::AttemptCount;
use crate::domain::{
    Client, CodeRecord, CodeRedemption, ConsentRecord, EmailPurpose, EmailToken, Grant, KeyRecord, LiveRefreshToken,
    OutboxMessage, QueuedMessage, RefreshRotation, ScopeSet, SessionSummary, Successor, TotpFactor, User,
};
use crate::keys::lifecycle::KeyChange;

pub use client_cache::ClientCache;
pub use connect::{Backend, Store};
pub use logout::{LogoutNotice, BACKCHANNEL_LOGOUT_KIND};
pub use sessions::DbSessionStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database can't be reached or is too busy; nothing was written.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A uniqueness rule refused the write.
    #[error("conflict: {0}")]
    Conflict(String),
    /// A stored row does not parse: a bug or a hand edit.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Other(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Registered clients.
pub trait ClientStore: Send + Sync {
    fn insert_client(&self, client: &Client) -> impl Future<Output = StoreResult<()>> + Send;
    fn find_client(&self, id: &str) -> impl Future<Output = StoreResult<Option<Client>>> + Send;
    fn list_clients(&self) -> impl Future<Output = StoreResult<Vec<Client>>> + Send;
    /// Replaces every registration field of `client` (not its id, secret, creation or disabled
    /// time); false when no such client exists.
    fn update_client(&self, client: &Client, now: i64) -> impl Future<Output = StoreResult<bool>> + Send;
    /// Replaces the secret hash; false when no such client exists.
    fn set_client_secret(
        &self,
        id: &str,
        secret_hash: &[u8; 32],
        now: i64,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
    /// Marks the client disabled (first time only) and revokes its grants, in one transaction;
    /// false when no such client exists.
    fn disable_client(&self, id: &str, now: i64) -> impl Future<Output = StoreResult<bool>> + Send;
    /// Deletes the client, revokes its grants and forgets the consents given to it, in one
    /// transaction; false when no such client exists.
    fn delete_client(&self, id: &str, now: i64) -> impl Future<Output = StoreResult<bool>> + Send;
}

/// Signing keys.
pub trait KeyStore: Send + Sync {
    /// Every key that is still published (next, active, retired), oldest first.
    fn list_keys(&self) -> impl Future<Output = StoreResult<Vec<KeyRecord>>> + Send;
    /// Inserts `key` unless the insert would break "one active key per algorithm"; true when
    /// inserted. Replicas racing to create the first key all call this; exactly one wins.
    fn insert_key_unless_active_exists(&self, key: &KeyRecord) -> impl Future<Output = StoreResult<bool>> + Send;
    /// One lifecycle step under the key lock (Postgres: an advisory lock; SQLite: the write
    /// lock), so exactly one replica performs it: reads the keys, asks `plan`, applies what it
    /// returns, commits, and returns what was applied.
    fn key_step(
        &self,
        plan: &mut (dyn FnMut(&[KeyRecord]) -> Vec<KeyChange> + Send),
    ) -> impl Future<Output = StoreResult<Vec<KeyChange>>> + Send;
    /// Emergency: deletes `kid` at once and, if it was active, stores `replacement` as the
    /// active key, in one locked transaction. The removed key, if it existed.
    fn revoke_key(
        &self,
        kid: &str,
        replacement: Option<&KeyRecord>,
    ) -> impl Future<Output = StoreResult<Option<KeyRecord>>> + Send;
}

/// People who sign in.
pub trait UserStore: Send + Sync {
    /// Fails with [`StoreError::Conflict`] when the email is taken.
    fn insert_user(&self, user: &User) -> impl Future<Output = StoreResult<()>> + Send;
    fn find_user(&self, sub: &str) -> impl Future<Output = StoreResult<Option<User>>> + Send;
    /// `email` must be normalised ([`crate::domain::normalize_email`]).
    fn find_user_by_email(&self, email: &str) -> impl Future<Output = StoreResult<Option<User>>> + Send;
    fn list_users(&self) -> impl Future<Output = StoreResult<Vec<User>>> + Send;
    /// Sets a new password and, in the same transaction, revokes the user's grants and ends
    /// their sessions. False when no such user exists.
    fn change_password(
        &self,
        sub: &str,
        password_hash: &str,
        now: i64,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
    /// Replaces the hash with one of today's parameters, only if it is still `old_hash`.
    fn rehash_password(
        &self,
        sub: &str,
        old_hash: &str,
        new_hash: &str,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// Disables the user, revokes their grants and ends their sessions. False when unknown.
    fn disable_user(&self, sub: &str, now: i64) -> impl Future<Output = StoreResult<bool>> + Send;
    fn set_roles(&self, sub: &str, roles: &[String], now: i64) -> impl Future<Output = StoreResult<bool>> + Send;
}

/// Authorizations and what hangs off them: codes, refresh tokens, tracked access tokens; and
/// the consent users gave.
pub trait GrantStore: Send + Sync {
    /// Stores a new grant and its authorization code in one transaction.
    fn create_grant_with_code(&self, grant: &Grant, code: &CodeRecord) -> impl Future<Output = StoreResult<()>> + Send;
    /// Consumes a code for `client_id` in one conditional UPDATE: exactly one caller wins.
    fn redeem_code(
        &self,
        code_hash: &[u8; 32],
        client_id: &str,
        now: i64,
    ) -> impl Future<Output = StoreResult<CodeRedemption>> + Send;
    fn revoke_grant(&self, grant_id: &str, now: i64) -> impl Future<Output = StoreResult<bool>> + Send;
    /// Revokes every grant given in one browser session (logout).
    fn revoke_grants_of_session(&self, sid: &str, now: i64) -> impl Future<Output = StoreResult<u64>> + Send;
    fn insert_refresh_token(
        &self,
        token_hash: &[u8; 32],
        grant_id: &str,
        scopes: &ScopeSet,
        now: i64,
        expires_at: i64,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// Uses up a refresh token (one conditional UPDATE: if it is live and `client_id`'s) and
    /// stores its successor with the same scopes (and its sealed copy, for the grace window),
    /// in one transaction. The successor expires after `idle_secs`, never after the grant.
    /// If the token was used already: [`RefreshRotation::Repeated`] with the stored successor
    /// when that is unused and its window (`sealed_until`) still open, else
    /// [`RefreshRotation::Reused`]. Never two successors: only the one winner inserts.
    fn rotate_refresh_token(
        &self,
        token_hash: &[u8; 32],
        successor: &Successor,
        client_id: &str,
        now: i64,
        idle_secs: i64,
    ) -> impl Future<Output = StoreResult<RefreshRotation>> + Send;
    /// The scopes of a live refresh token of `client_id`, without using it (a request that
    /// will be refused must not burn the token).
    fn live_refresh_token_scopes(
        &self,
        token_hash: &[u8; 32],
        client_id: &str,
        now: i64,
    ) -> impl Future<Output = StoreResult<Option<ScopeSet>>> + Send;
    /// True while the grant is neither revoked nor past its absolute lifetime.
    fn grant_is_live(&self, grant_id: &str, now: i64) -> impl Future<Output = StoreResult<bool>> + Send;
    fn find_consent(
        &self,
        user_sub: &str,
        client_id: &str,
    ) -> impl Future<Output = StoreResult<Option<ScopeSet>>> + Send;
    fn save_consent(
        &self,
        user_sub: &str,
        client_id: &str,
        granted: &ScopeSet,
        now: i64,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// Every app the user has consented to.
    fn list_consents(&self, user_sub: &str) -> impl Future<Output = StoreResult<Vec<ConsentRecord>>> + Send;
    /// Withdraws consent and, in the same transaction, revokes the user's grants to that app.
    fn revoke_consent(
        &self,
        user_sub: &str,
        client_id: &str,
        now: i64,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
    /// Housekeeping: deletes expired codes, tokens and sessions; returns how many rows went.
    fn delete_expired(&self, now: i64) -> impl Future<Output = StoreResult<u64>> + Send;
}

/// Token revocation (RFC 7009) and what introspection (RFC 7662) needs beyond the grants'
/// liveness (issue 11 items 2 and 3). Every write names the client that asks, so a client can
/// never revoke another client's token.
pub trait RevocationStore: Send + Sync {
    /// Revokes the grant of refresh token `token_hash` (used or not) if the grant is
    /// `client_id`'s; true when a live grant was revoked.
    fn revoke_grant_of_refresh_token(
        &self,
        token_hash: &[u8; 32],
        client_id: &str,
        now: i64,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
    /// Revokes grant `grant_id` if it is `client_id`'s; true when a live grant was revoked.
    fn revoke_grant_of_client(
        &self,
        grant_id: &str,
        client_id: &str,
        now: i64,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
    /// Remembers the client-credentials access token `jti` as revoked until `expires_at` (its
    /// `exp`); revoking it again changes nothing.
    fn revoke_access_token(
        &self,
        jti: &str,
        client_id: &str,
        now: i64,
        expires_at: i64,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    fn access_token_is_revoked(&self, jti: &str) -> impl Future<Output = StoreResult<bool>> + Send;
    /// A refresh token of `client_id` that is unused, unexpired and of a live grant.
    fn live_refresh_token(
        &self,
        token_hash: &[u8; 32],
        client_id: &str,
        now: i64,
    ) -> impl Future<Output = StoreResult<Option<LiveRefreshToken>>> + Send;
}

/// Self-service accounts (issue 12): single-use links sent by email, and the changes they make.
/// Every method that causes a message writes it to the outbox in the same transaction.
pub trait AccountStore: Send + Sync {
    /// Inserts a user (sign-up or invitation) with its link and the message carrying it, in one
    /// transaction; [`StoreError::Conflict`] when the email is taken.
    fn create_user_with_link(
        &self,
        user: &User,
        token: &EmailToken,
        message: &OutboxMessage,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// Stores a link, deleting the user's older links of the same purpose, and its message.
    fn issue_link(&self, token: &EmailToken, message: &OutboxMessage) -> impl Future<Output = StoreResult<()>> + Send;
    /// A message that carries no link (notices).
    fn enqueue_message(&self, message: &OutboxMessage) -> impl Future<Output = StoreResult<()>> + Send;
    /// A live link of `purpose` (unexpired, its user enabled) and its user, without using it:
    /// what a page shows before the form that uses it.
    fn find_link(
        &self,
        token_hash: &[u8; 32],
        purpose: EmailPurpose,
        now: i64,
    ) -> impl Future<Output = StoreResult<Option<(EmailToken, User)>>> + Send;
    /// Uses a verification link and marks the address verified, if it is still the account's.
    fn verify_email(
        &self,
        token_hash: &[u8; 32],
        now: i64,
    ) -> impl Future<Output = StoreResult<Option<EmailToken>>> + Send;
    /// Uses a reset link: sets the password, revokes every grant, ends every session, deletes
    /// the other reset links and writes `notice`, in one transaction. `None`: the link is dead.
    fn reset_password(
        &self,
        token_hash: &[u8; 32],
        password_hash: &str,
        now: i64,
        notice: &OutboxMessage,
    ) -> impl Future<Output = StoreResult<Option<EmailToken>>> + Send;
    /// Uses an invitation: sets the first password and marks the address verified.
    fn accept_invitation(
        &self,
        token_hash: &[u8; 32],
        password_hash: &str,
        now: i64,
    ) -> impl Future<Output = StoreResult<Option<EmailToken>>> + Send;
    /// Uses an email-change link: moves the account to the new address (verified) and writes
    /// `notice` (to the old address). [`StoreError::Conflict`] when the address was taken
    /// meanwhile; then nothing changes and the link stays usable.
    fn change_email(
        &self,
        token_hash: &[u8; 32],
        now: i64,
        notice: &OutboxMessage,
    ) -> impl Future<Output = StoreResult<Option<EmailToken>>> + Send;
    /// An admin says the address is verified; false when no such user exists.
    fn set_email_verified(&self, sub: &str, now: i64) -> impl Future<Output = StoreResult<bool>> + Send;
}

/// What `latchkey apply` declares beside clients and users: scope descriptions for the consent
/// page, and the installation's roles.
pub trait CatalogStore: Send + Sync {
    /// Every declared scope description, by scope (for `apply`; not on a request path).
    fn scope_descriptions(&self) -> impl Future<Output = StoreResult<Vec<(String, String)>>> + Send;
    /// One scope's declared description (the consent page: a key lookup per scope shown).
    fn scope_description(&self, scope: &str) -> impl Future<Output = StoreResult<Option<String>>> + Send;
    fn set_scope_description(
        &self,
        scope: &str,
        description: &str,
        now: i64,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    fn delete_scope_description(&self, scope: &str) -> impl Future<Output = StoreResult<()>> + Send;
    /// Every declared role with its description.
    fn roles(&self) -> impl Future<Output = StoreResult<Vec<(String, Option<String>)>>> + Send;
    fn set_role(&self, name: &str, description: Option<&str>, now: i64)
        -> impl Future<Output = StoreResult<()>> + Send;
    fn delete_role(&self, name: &str) -> impl Future<Output = StoreResult<()>> + Send;
}

/// Used client assertions (private_key_jwt), shared by replicas.
pub trait AssertionStore: Send + Sync {
    /// Records `jti` of `client_id` until `expires_at`; false when it was recorded before.
    fn first_use_of_assertion(
        &self,
        client_id: &str,
        jti: &str,
        expires_at: i64,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
}

/// The outbox's delivery side (src/outbox).
pub trait OutboxStore: Send + Sync {
    /// Claims the oldest due message for `lease_secs` and counts the attempt.
    fn claim_message(
        &self,
        now: i64,
        lease_secs: i64,
    ) -> impl Future<Output = StoreResult<Option<QueuedMessage>>> + Send;
    /// Delivered: the message is kept, emptied, for a week.
    fn message_sent(&self, id: &str, now: i64) -> impl Future<Output = StoreResult<()>> + Send;
    /// Not delivered: tried again at `retry_at`, or given up when `None`.
    fn message_failed(
        &self,
        id: &str,
        now: i64,
        error: &str,
        retry_at: Option<i64>,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// Messages neither delivered nor given up.
    fn pending_messages(&self) -> impl Future<Output = StoreResult<i64>> + Send;
}

/// Second factors: the authenticator-app seed and recovery codes.
pub trait MfaStore: Send + Sync {
    fn totp_factor(&self, sub: &str) -> impl Future<Output = StoreResult<Option<TotpFactor>>> + Send;
    /// Stores a new, unconfirmed seed; false when the user already has an enabled one.
    fn begin_totp_enrolment(
        &self,
        sub: &str,
        secret_sealed: &[u8],
        now: i64,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
    /// Confirms the enrolment with the step of the code the user typed; false if there was no
    /// unconfirmed enrolment (a parallel confirmation won).
    fn enable_totp(&self, sub: &str, step: i64, now: i64) -> impl Future<Output = StoreResult<bool>> + Send;
    /// Accepts a code of `step` only if no code of this step or a later one was accepted
    /// before: one conditional UPDATE (replay protection, RFC 6238 §5.2).
    fn use_totp_step(&self, sub: &str, step: i64) -> impl Future<Output = StoreResult<bool>> + Send;
    /// Deletes the seed and the recovery codes; false when there was no seed.
    fn remove_mfa(&self, sub: &str) -> impl Future<Output = StoreResult<bool>> + Send;
    /// Replaces the whole set of recovery codes (the old ones stop working).
    fn replace_recovery_codes(
        &self,
        sub: &str,
        hashes: &[[u8; 32]],
        now: i64,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// Uses a recovery code up; true only for the one caller that did.
    fn use_recovery_code(&self, sub: &str, hash: &[u8; 32], now: i64)
        -> impl Future<Output = StoreResult<bool>> + Send;
    fn recovery_codes_left(&self, sub: &str) -> impl Future<Output = StoreResult<i64>> + Send;
}

/// Failed-attempt counters per account, shared by replicas.
pub trait ThrottleStore: Send + Sync {
    /// Counts one attempt atomically and returns the counter (see `authn::throttle`).
    fn count_attempt(
        &self,
        key: &str,
        now: i64,
        window_secs: i64,
        lock_secs: i64,
        threshold: u32,
    ) -> impl Future<Output = StoreResult<AttemptCount>> + Send;
    /// A success: the counter (and any lock it set) goes.
    fn clear_attempts(&self, key: &str) -> impl Future<Output = StoreResult<()>> + Send;
}

/// The audit trail.
pub trait AuditStore: Send + Sync {
    fn insert_audit_event(&self, event: &AuditEvent) -> impl Future<Output = StoreResult<()>> + Send;
    /// Newest first.
    fn list_audit_events(&self, filter: &AuditFilter) -> impl Future<Output = StoreResult<Vec<AuditEvent>>> + Send;
}

/// What the admin API reads and changes beyond the CLI's operations (issue 13 item 1).
pub trait AdminStore: Send + Sync {
    /// Clients in id order after `after_id`; at most `limit`.
    fn page_clients(&self, after_id: Option<&str>, limit: i64)
        -> impl Future<Output = StoreResult<Vec<Client>>> + Send;
    /// Users in byte order of their email, after `after_email`, whose email starts with
    /// `email_prefix`; at most `limit`.
    fn page_users(
        &self,
        email_prefix: Option<&str>,
        after_email: Option<&str>,
        limit: i64,
    ) -> impl Future<Output = StoreResult<Vec<User>>> + Send;
    fn set_user_name(&self, sub: &str, name: Option<&str>, now: i64) -> impl Future<Output = StoreResult<bool>> + Send;
    /// The user's live grants (neither revoked nor past their absolute lifetime), oldest first.
    fn user_grants(&self, sub: &str, now: i64) -> impl Future<Output = StoreResult<Vec<Grant>>> + Send;
    /// Revokes one live grant of this user (queueing its back-channel logout); false when the
    /// user has no such live grant.
    fn revoke_user_grant(&self, sub: &str, grant_id: &str, now: i64) -> impl Future<Output = StoreResult<bool>> + Send;
    fn user_sessions(&self, sub: &str, now: i64) -> impl Future<Output = StoreResult<Vec<SessionSummary>>> + Send;
    /// Ends one of the user's sessions and revokes the grants given in it, as logout does.
    fn end_user_session(&self, sub: &str, session_id: &str, now: i64)
        -> impl Future<Output = StoreResult<bool>> + Send;
}
