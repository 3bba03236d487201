//! Links sent by email, the messages that carry them, and the per-address mail budget.

use serde_json::Value;

use super::AccountError;
use crate::config::{Registration, Settings};
use crate::domain::{EmailPurpose, EmailToken, OutboxMessage};
use crate::keys::MasterKey;
use crate::mail::compose::{render, seal_for_outbox};
use crate::mail::MessageKind;
use crate::secret::{random_token, sha256};
use crate::store::ThrottleStore;
use crate::web::templates::Templates;

/// The settings the flows read.
#[derive(Clone, Debug)]
pub struct AccountSettings {
    pub registration: Registration,
    pub require_verified_email: bool,
    pub verification_ttl: i64,
    pub reset_ttl: i64,
    pub invitation_ttl: i64,
    pub per_address_per_hour: u32,
}

impl AccountSettings {
    pub fn from_settings(s: &Settings) -> Self {
        Self {
            registration: s.registration,
            require_verified_email: s.require_verified_email,
            verification_ttl: s.email_verification_ttl.as_secs(),
            reset_ttl: s.password_reset_ttl.as_secs(),
            invitation_ttl: s.invitation_ttl.as_secs(),
            per_address_per_hour: s.email_per_address_per_hour,
        }
    }

    pub fn ttl(&self, purpose: EmailPurpose) -> i64 {
        match purpose {
            EmailPurpose::VerifyEmail | EmailPurpose::ChangeEmail => self.verification_ttl,
            EmailPurpose::ResetPassword => self.reset_ttl,
            EmailPurpose::Invitation => self.invitation_ttl,
        }
    }
}

/// What renders and seals messages: the templates, the master key, and the issuer that links
/// point at.
pub struct Letters<'a> {
    pub templates: &'a Templates,
    pub master: &'a MasterKey,
    pub issuer: &'a str,
}

impl Letters<'_> {
    /// `kind` for `to`, rendered and sealed for the outbox.
    pub fn message(
        &self,
        kind: MessageKind,
        to: &str,
        mut context: Value,
        now: i64,
    ) -> Result<OutboxMessage, AccountError> {
        if let Value::Object(map) = &mut context {
            map.insert("issuer".into(), Value::from(self.issuer));
        }
        let email = render(self.templates, kind, to, context).map_err(|e| AccountError::Unavailable(e.to_string()))?;
        seal_for_outbox(self.master, &email, now).map_err(|e| AccountError::Unavailable(e.to_string()))
    }

    /// `{issuer}{path}?token=…`
    pub fn link(&self, path: &str, token: &str) -> String {
        format!("{}{path}?token={token}", self.issuer)
    }

    pub fn page(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }
}

/// A link's secret (sent by email, never stored) and its record (stored).
pub struct NewLink {
    pub token: String,
    pub record: EmailToken,
}

pub fn new_link(
    purpose: EmailPurpose,
    user_sub: &str,
    email: &str,
    resume: Option<String>,
    now: i64,
    ttl_secs: i64,
) -> NewLink {
    let token = random_token(32);
    let record = EmailToken {
        token_hash: sha256(&token),
        purpose,
        user_sub: user_sub.to_string(),
        email: email.to_string(),
        resume,
        created_at: now,
        expires_at: now + ttl_secs,
    };
    NewLink { token, record }
}

/// The hash to look a presented link token up by; `None` when it is not in the form Latchkey
/// makes them (43 base64url characters), so a damaged link never reaches the database.
pub fn presented_hash(token: &str) -> Option<[u8; 32]> {
    (token.len() == 43 && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        .then(|| sha256(token))
}

/// Counts one message to `email` caused by a public page and says whether it may be sent:
/// at most `per_hour` an hour per address, shared by replicas (the failure-counter table), so
/// nobody can flood an inbox through sign-up, reset or resend (issue 12 item 4). The key holds
/// a hash, not the address.
pub async fn within_mail_budget<S: ThrottleStore>(
    store: &S,
    email: &str,
    per_hour: u32,
    now: i64,
) -> Result<bool, AccountError> {
    let key = format!("mail:{}", hex(&sha256(email)));
    let count = store.count_attempt(&key, now, 3600, 3600, per_hour).await?;
    Ok(count.failures <= i64::from(per_hour))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// "24 hours", "30 minutes": how long a link lasts, for the message.
pub fn lifetime_words(secs: i64) -> String {
    let plural = |n: i64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    if secs % 86_400 == 0 && secs >= 2 * 86_400 {
        plural(secs / 86_400, "day")
    } else if secs % 3600 == 0 {
        plural(secs / 3600, "hour")
    } else {
        plural((secs + 59) / 60, "minute")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presented_tokens_must_look_like_ours() {
        let link = new_link(EmailPurpose::VerifyEmail, "sub", "a@example.com", None, 0, 60);
        assert_eq!(presented_hash(&link.token), Some(link.record.token_hash));
        assert_eq!(presented_hash(&link.token[..42]), None);
        assert_eq!(presented_hash(&format!("{}=", &link.token[..42])), None);
        assert_eq!(presented_hash(""), None);
    }

    #[test]
    fn lifetimes_in_words() {
        assert_eq!(lifetime_words(1800), "30 minutes");
        assert_eq!(lifetime_words(86_400), "24 hours");
        assert_eq!(lifetime_words(7 * 86_400), "7 days");
        assert_eq!(lifetime_words(3600), "1 hour");
        assert_eq!(lifetime_words(90), "2 minutes");
    }
}
