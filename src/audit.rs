//! The audit trail: security events with time, user, client, IP and user agent. Each event is
//! written to the `audit_events` table and emitted as a structured log event (target `audit`),
//! so it reaches the log pipeline even when the database write fails.

use serde::Serialize;

/// The kinds of event, as stored and as filtered by `latchkey audit --type`.
pub mod kind {
    pub const SIGN_IN_SUCCEEDED: &str = "sign_in.succeeded";
    pub const SIGN_IN_FAILED: &str = "sign_in.failed";
    pub const ACCOUNT_LOCKED: &str = "account.locked";
    pub const MFA_FAILED: &str = "mfa.failed";
    pub const MFA_ENROLLED: &str = "mfa.enrolled";
    pub const MFA_REMOVED: &str = "mfa.removed";
    pub const MFA_RESET: &str = "mfa.reset";
    pub const RECOVERY_CODE_USED: &str = "recovery_code.used";
    pub const RECOVERY_CODES_GENERATED: &str = "recovery_codes.generated";
    pub const PASSWORD_CHANGED: &str = "password.changed";
    pub const CONSENT_GRANTED: &str = "consent.granted";
    pub const CONSENT_REVOKED: &str = "consent.revoked";
    pub const CLIENT_CREATED: &str = "client.created";
    pub const CLIENT_SECRET_ROTATED: &str = "client.secret_rotated";
    pub const CLIENT_UPDATED: &str = "client.updated";
    pub const CLIENT_DISABLED: &str = "client.disabled";
    pub const CLIENT_DELETED: &str = "client.deleted";
    pub const USER_CREATED: &str = "user.created";
    pub const USER_DISABLED: &str = "user.disabled";
    /// A rotated refresh token came back outside the grace rules and its family was revoked
    /// (issue 11 item 4; RFC 9700 §4.14.2).
    pub const REFRESH_TOKEN_REUSE_DETECTED: &str = "refresh_token.reuse_detected";
    /// Issue 12 item 7: self-service accounts.
    pub const USER_REGISTERED: &str = "user.registered";
    pub const EMAIL_VERIFICATION_SENT: &str = "email.verification_sent";
    pub const EMAIL_VERIFIED: &str = "email.verified";
    pub const PASSWORD_RESET_REQUESTED: &str = "password_reset.requested";
    pub const PASSWORD_RESET_COMPLETED: &str = "password_reset.completed";
    pub const EMAIL_CHANGE_REQUESTED: &str = "email.change_requested";
    pub const EMAIL_CHANGED: &str = "email.changed";
    pub const USER_INVITED: &str = "user.invited";
    /// An invited person set their first password.
    pub const INVITATION_ACCEPTED: &str = "invitation.accepted";
    /// Issue 13 item 1: admin changes the command line could not make before.
    pub const USER_UPDATED: &str = "user.updated";
    pub const USER_ROLES_CHANGED: &str = "user.roles_changed";
    /// An admin ended one browser session of a user (and the grants given in it).
    pub const SESSION_REVOKED: &str = "session.revoked";
    /// An admin revoked one grant (its refresh tokens and the access tokens it issued).
    pub const GRANT_REVOKED: &str = "grant.revoked";
    /// Successors published on demand, or a compromised key removed.
    pub const SIGNING_KEY_ROTATED: &str = "signing_key.rotated";
    pub const SIGNING_KEY_REVOKED: &str = "signing_key.revoked";

    pub const ALL: [&str; 35] = [
        SIGN_IN_SUCCEEDED,
        SIGN_IN_FAILED,
        ACCOUNT_LOCKED,
        MFA_FAILED,
        MFA_ENROLLED,
        MFA_REMOVED,
        MFA_RESET,
        RECOVERY_CODE_USED,
        RECOVERY_CODES_GENERATED,
        PASSWORD_CHANGED,
        CONSENT_GRANTED,
        CONSENT_REVOKED,
        CLIENT_CREATED,
        CLIENT_SECRET_ROTATED,
        CLIENT_UPDATED,
        CLIENT_DISABLED,
        CLIENT_DELETED,
        USER_CREATED,
        USER_DISABLED,
        REFRESH_TOKEN_REUSE_DETECTED,
        USER_REGISTERED,
        EMAIL_VERIFICATION_SENT,
        EMAIL_VERIFIED,
        PASSWORD_RESET_REQUESTED,
        PASSWORD_RESET_COMPLETED,
        EMAIL_CHANGE_REQUESTED,
        EMAIL_CHANGED,
        USER_INVITED,
        INVITATION_ACCEPTED,
        USER_UPDATED,
        USER_ROLES_CHANGED,
        SESSION_REVOKED,
        GRANT_REVOKED,
        SIGNING_KEY_ROTATED,
        SIGNING_KEY_REVOKED,
    ];
}

/// Where a request came from; `None` for the command line.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Origin {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// The longest user agent kept: enough to identify a browser, not a place to store a payload.
const MAX_USER_AGENT: usize = 256;

impl Origin {
    pub fn new(ip: Option<std::net::IpAddr>, user_agent: Option<&str>) -> Self {
        Self {
            ip: ip.map(|ip| ip.to_string()),
            user_agent: user_agent.map(|ua| ua.chars().filter(|c| !c.is_control()).take(MAX_USER_AGENT).collect()),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct AuditEvent {
    /// Assigned by the store; increasing.
    pub id: i64,
    pub at: i64,
    pub event: String,
    pub user_sub: Option<String>,
    pub client_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub detail: serde_json::Value,
}

impl AuditEvent {
    pub fn new(event: &str, now: i64, origin: &Origin) -> Self {
        Self {
            id: 0,
            at: now,
            event: event.to_string(),
            user_sub: None,
            client_id: None,
            ip: origin.ip.clone(),
            user_agent: origin.user_agent.clone(),
            detail: serde_json::Value::Null,
        }
    }
    pub fn user(mut self, sub: &str) -> Self {
        self.user_sub = Some(sub.to_string());
        self
    }
    pub fn client(mut self, client_id: &str) -> Self {
        self.client_id = Some(client_id.to_string());
        self
    }
    pub fn detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = detail;
        self
    }
}

/// What `latchkey audit` and `GET /admin/v1/audit-events` ask for; every filter is optional.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    pub user_sub: Option<String>,
    pub client_id: Option<String>,
    pub event: Option<String>,
    /// Only events older than this id (the cursor of the previous page, newest first).
    pub before_id: Option<i64>,
    pub limit: i64,
}

/// Writes the event and logs it. A failed write is logged as an error with the whole event, so
/// nothing is lost from the log; the action that caused it is not undone.
pub async fn record<S: crate::store::AuditStore>(store: &S, event: AuditEvent) {
    crate::metrics::count_security_event(&event.event);
    tracing::info!(
        target: "audit",
        event = %event.event,
        user_sub = event.user_sub.as_deref().unwrap_or(""),
        client_id = event.client_id.as_deref().unwrap_or(""),
        ip = event.ip.as_deref().unwrap_or(""),
        user_agent = event.user_agent.as_deref().unwrap_or(""),
        detail = %event.detail,
        "audit event"
    );
    if let Err(e) = store.insert_audit_event(&event).await {
        tracing::error!(target: "audit", error = %e, event = %event.event, "audit event not stored");
    }
}
