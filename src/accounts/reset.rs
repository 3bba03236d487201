//! Password reset by email (issue 12 item 4). A reset proves only that the person reads the
//! account's mail: it sets the password, ends every session and grant, and does not sign
//! anyone in, so the next sign-in still asks for the second factor when the user has one.

use serde_json::json;

use super::links::{lifetime_words, new_link, presented_hash, within_mail_budget, AccountSettings, Letters};
use super::AccountError;
use crate::authn::PasswordHasher;
use crate::domain::{normalize_email, EmailPurpose, EmailToken, User};
use crate::http::paths;
use crate::mail::MessageKind;
use crate::store::{AccountStore, ThrottleStore, UserStore};

/// What a reset request did; the page answers the same for all of them.
#[derive(Debug, PartialEq, Eq)]
pub enum ResetRequested {
    Sent {
        sub: String,
    },
    /// No account has the address (or it is not an address).
    UnknownAddress,
    Disabled {
        sub: String,
    },
    /// The address's hourly budget is spent: nothing sent.
    BudgetSpent {
        sub: String,
    },
}

impl ResetRequested {
    pub fn audit_reason(&self) -> &'static str {
        match self {
            ResetRequested::Sent { .. } => "sent",
            ResetRequested::UnknownAddress => "unknown_address",
            ResetRequested::Disabled { .. } => "disabled",
            ResetRequested::BudgetSpent { .. } => "budget_spent",
        }
    }
    pub fn user_sub(&self) -> Option<&str> {
        match self {
            ResetRequested::Sent { sub } | ResetRequested::Disabled { sub } | ResetRequested::BudgetSpent { sub } => {
                Some(sub)
            }
            ResetRequested::UnknownAddress => None,
        }
    }
}

pub async fn request_reset<S: UserStore + AccountStore + ThrottleStore>(
    store: &S,
    letters: &Letters<'_>,
    settings: &AccountSettings,
    email_typed: &str,
    now: i64,
) -> Result<ResetRequested, AccountError> {
    let Ok(email) = normalize_email(email_typed) else { return Ok(ResetRequested::UnknownAddress) };
    let Some(user) = store.find_user_by_email(&email).await? else { return Ok(ResetRequested::UnknownAddress) };
    if !user.is_enabled() {
        return Ok(ResetRequested::Disabled { sub: user.sub });
    }
    if !within_mail_budget(store, &user.email, settings.per_address_per_hour, now).await? {
        return Ok(ResetRequested::BudgetSpent { sub: user.sub });
    }
    let link = new_link(EmailPurpose::ResetPassword, &user.sub, &user.email, None, now, settings.reset_ttl);
    let context = json!({
        "name": user.name,
        "link": letters.link(paths::RESET_PASSWORD, &link.token),
        "lifetime": lifetime_words(settings.reset_ttl),
    });
    let message = letters.message(MessageKind::ResetPassword, &user.email, context, now)?;
    store.issue_link(&link.record, &message).await?;
    Ok(ResetRequested::Sent { sub: user.sub })
}

/// The link's account, for the page with the new-password form.
pub async fn check_reset_link<S: AccountStore>(
    store: &S,
    token: &str,
    now: i64,
) -> Result<(EmailToken, User), AccountError> {
    let hash = presented_hash(token).ok_or(AccountError::DeadLink)?;
    store.find_link(&hash, EmailPurpose::ResetPassword, now).await?.ok_or(AccountError::DeadLink)
}

/// Sets the new password under the policy and uses the link, ending every session and grant of
/// the user and telling them by email. The user it was for.
pub async fn complete_reset<S: AccountStore>(
    store: &S,
    hasher: &PasswordHasher,
    letters: &Letters<'_>,
    token: &str,
    password: &str,
    confirm: &str,
    now: i64,
) -> Result<User, AccountError> {
    let (_, user) = check_reset_link(store, token, now).await?;
    let hash = new_password_hash(hasher, &user, password, confirm).await?;
    let context = json!({ "name": user.name, "reset_url": letters.page(paths::FORGOT_PASSWORD) });
    let notice = letters.message(MessageKind::PasswordChanged, &user.email, context, now)?;
    let presented = presented_hash(token).ok_or(AccountError::DeadLink)?;
    store.reset_password(&presented, &hash, now, &notice).await?.ok_or(AccountError::DeadLink)?;
    Ok(user)
}

/// A new password for `user`: both fields the same, and the policy (with the user's own
/// address and name counted as guessable).
pub async fn new_password_hash(
    hasher: &PasswordHasher,
    user: &User,
    password: &str,
    confirm: &str,
) -> Result<String, AccountError> {
    if password != confirm {
        return Err(AccountError::Invalid("The two passwords are not the same.".into()));
    }
    let inputs: Vec<&str> = std::iter::once(user.email.as_str()).chain(user.name.as_deref()).collect();
    hasher
        .check_policy(password, &inputs)
        .map_err(|e| AccountError::Invalid(format!("The password was not accepted: {e}.")))?;
    hasher.hash(password).await.map_err(|e| AccountError::Unavailable(e.to_string()))
}
