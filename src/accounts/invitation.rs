//! Invitations (issue 12 item 6): an operator names the person; the link lets them set their
//! first password, and reading the mail proves the address. Until then the account's password
//! is a random 256-bit secret nobody knows, so it can't be signed in to.

use serde_json::json;

use super::links::{lifetime_words, new_link, presented_hash, AccountSettings, Letters};
use super::reset::new_password_hash;
use super::AccountError;
use crate::authn::PasswordHasher;
use crate::domain::{CreatedVia, EmailPurpose, EmailToken, User};
use crate::http::paths;
use crate::mail::MessageKind;
use crate::secret::{random_id, random_token};
use crate::store::{AccountStore, StoreError, UserStore};

/// Whom to invite, already validated by the caller (admin::users).
pub struct Invitee {
    pub email: String,
    pub name: Option<String>,
    pub roles: Vec<String>,
}

/// Creates the account with its invitation, or sends a new invitation (voiding the old one) to
/// an invited account that has not accepted yet. `Err(Invalid)` when the address has an
/// account of another kind.
pub async fn invite<S: UserStore + AccountStore>(
    store: &S,
    hasher: &PasswordHasher,
    letters: &Letters<'_>,
    settings: &AccountSettings,
    invitee: Invitee,
    now: i64,
) -> Result<User, AccountError> {
    let existing = store.find_user_by_email(&invitee.email).await?;
    let (user, is_new) = match existing {
        Some(user) if user.created_via == CreatedVia::Invited && !user.email_verified() => (user, false),
        Some(_) => return Err(AccountError::Taken),
        None => {
            let unusable = random_token(32);
            let password_hash = hasher.hash(&unusable).await.map_err(|e| AccountError::Unavailable(e.to_string()))?;
            let user = User {
                sub: random_id(22),
                email: invitee.email,
                name: invitee.name,
                password_hash,
                roles: invitee.roles,
                created_at: now,
                password_changed_at: now,
                disabled_at: None,
                email_verified_at: None,
                created_via: CreatedVia::Invited,
            };
            (user, true)
        }
    };
    let link = new_link(EmailPurpose::Invitation, &user.sub, &user.email, None, now, settings.invitation_ttl);
    let context = json!({
        "name": user.name,
        "link": letters.link(paths::INVITATION, &link.token),
        "lifetime": lifetime_words(settings.invitation_ttl),
    });
    let message = letters.message(MessageKind::Invitation, &user.email, context, now)?;
    if is_new {
        match store.create_user_with_link(&user, &link.record, &message).await {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => return Err(AccountError::Taken),
            Err(e) => return Err(e.into()),
        }
    } else {
        store.issue_link(&link.record, &message).await?;
    }
    Ok(user)
}

pub async fn check_invitation<S: AccountStore>(
    store: &S,
    token: &str,
    now: i64,
) -> Result<(EmailToken, User), AccountError> {
    let hash = presented_hash(token).ok_or(AccountError::DeadLink)?;
    store.find_link(&hash, EmailPurpose::Invitation, now).await?.ok_or(AccountError::DeadLink)
}

/// Sets the first password and uses the invitation; the address counts as verified.
pub async fn accept<S: AccountStore>(
    store: &S,
    hasher: &PasswordHasher,
    token: &str,
    password: &str,
    confirm: &str,
    now: i64,
) -> Result<User, AccountError> {
    let (_, user) = check_invitation(store, token, now).await?;
    let hash = new_password_hash(hasher, &user, password, confirm).await?;
    let presented = presented_hash(token).ok_or(AccountError::DeadLink)?;
    store.accept_invitation(&presented, &hash, now).await?.ok_or(AccountError::DeadLink)?;
    Ok(user)
}
