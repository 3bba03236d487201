//! Changing the account's address (issue 12 item 5). The page checks the current password (and
//! second factor) first; the change happens only when the link sent to the new address is
//! used, and the old address is told.

use serde_json::json;

use super::links::{lifetime_words, new_link, presented_hash, within_mail_budget, AccountSettings, Letters};
use super::AccountError;
use crate::domain::{normalize_email, EmailPurpose, EmailToken, User};
use crate::http::paths;
use crate::mail::MessageKind;
use crate::store::{AccountStore, StoreError, ThrottleStore, UserStore};

/// Sends the link to `new_email_typed` (or, when that address has an account, a note saying
/// so to that address: the page answers the same). The normalised new address.
pub async fn request_change<S: UserStore + AccountStore + ThrottleStore>(
    store: &S,
    letters: &Letters<'_>,
    settings: &AccountSettings,
    user: &User,
    new_email_typed: &str,
    now: i64,
) -> Result<String, AccountError> {
    let new_email =
        normalize_email(new_email_typed).map_err(|_| AccountError::Invalid("Enter a valid email address.".into()))?;
    if new_email == user.email {
        return Err(AccountError::Invalid("That is already your address.".into()));
    }
    if !within_mail_budget(store, &new_email, settings.per_address_per_hour, now).await? {
        return Ok(new_email);
    }
    if store.find_user_by_email(&new_email).await?.is_some() {
        let context = json!({ "sign_in_url": letters.page(paths::LOGIN) });
        let message = letters.message(MessageKind::ChangeEmailTaken, &new_email, context, now)?;
        store.enqueue_message(&message).await?;
        return Ok(new_email);
    }
    let link = new_link(EmailPurpose::ChangeEmail, &user.sub, &new_email, None, now, settings.verification_ttl);
    let context = json!({
        "name": user.name,
        "old_email": user.email,
        "link": letters.link(paths::CONFIRM_EMAIL_CHANGE, &link.token),
        "lifetime": lifetime_words(settings.verification_ttl),
    });
    let message = letters.message(MessageKind::ChangeEmail, &new_email, context, now)?;
    store.issue_link(&link.record, &message).await?;
    Ok(new_email)
}

pub async fn check_change_link<S: AccountStore>(
    store: &S,
    token: &str,
    now: i64,
) -> Result<(EmailToken, User), AccountError> {
    let hash = presented_hash(token).ok_or(AccountError::DeadLink)?;
    store.find_link(&hash, EmailPurpose::ChangeEmail, now).await?.ok_or(AccountError::DeadLink)
}

/// Uses the link: the account moves to the new address (verified) and the old one is told.
/// `(user before the change, new address)`.
pub async fn confirm_change<S: AccountStore>(
    store: &S,
    letters: &Letters<'_>,
    token: &str,
    now: i64,
) -> Result<(User, String), AccountError> {
    let (link, user) = check_change_link(store, token, now).await?;
    let context = json!({
        "name": user.name,
        "new_email": link.email,
        "reset_url": letters.page(paths::FORGOT_PASSWORD),
    });
    let notice = letters.message(MessageKind::EmailChanged, &user.email, context, now)?;
    let hash = presented_hash(token).ok_or(AccountError::DeadLink)?;
    match store.change_email(&hash, now, &notice).await {
        Ok(Some(used)) => Ok((user, used.email)),
        Ok(None) => Err(AccountError::DeadLink),
        Err(StoreError::Conflict(_)) => Err(AccountError::Taken),
        Err(e) => Err(e.into()),
    }
}
