//! Sign-up and email verification (issue 12 items 2 and 3).

use serde_json::json;

use super::links::{lifetime_words, new_link, presented_hash, within_mail_budget, AccountSettings, Letters};
use super::AccountError;
use crate::authn::PasswordHasher;
use crate::domain::{normalize_email, validate_name, CreatedVia, EmailPurpose, EmailToken, User};
use crate::http::paths;
use crate::mail::MessageKind;
use crate::secret::random_id;
use crate::store::{AccountStore, StoreError, ThrottleStore, UserStore};

/// What the sign-up form sent.
pub struct SignUpForm {
    pub email: String,
    pub name: String,
    pub password: String,
    pub confirm: String,
}

/// What happened; the page says the same ("check your email") for both.
#[derive(Debug, PartialEq, Eq)]
pub enum SignedUp {
    /// A new, unverified account, and a verification link on its way.
    Created { sub: String },
    /// The address has an account: its owner is told by email (when within the budget).
    Existing { sub: String, told: bool },
}

/// Checks the form (errors are for the person at the page and name no account), then creates
/// the account with its verification link, or tells the owner of an existing address. The
/// password is hashed either way, so both answers take the same time.
pub async fn sign_up<S: UserStore + AccountStore + ThrottleStore>(
    store: &S,
    hasher: &PasswordHasher,
    letters: &Letters<'_>,
    settings: &AccountSettings,
    form: &SignUpForm,
    resume: Option<String>,
    now: i64,
) -> Result<SignedUp, AccountError> {
    let email =
        normalize_email(&form.email).map_err(|_| AccountError::Invalid("Enter a valid email address.".into()))?;
    let name = validate_name(&form.name).map_err(|e| AccountError::Invalid(format!("Your name: {e}.")))?;
    if form.password != form.confirm {
        return Err(AccountError::Invalid("The two passwords are not the same.".into()));
    }
    hasher
        .check_policy(&form.password, &[email.as_str(), name.as_str()])
        .map_err(|e| AccountError::Invalid(format!("The password was not accepted: {e}.")))?;
    let password_hash = hasher.hash(&form.password).await.map_err(|e| AccountError::Unavailable(e.to_string()))?;
    if let Some(existing) = store.find_user_by_email(&email).await? {
        return tell_owner(store, letters, settings, &existing, now).await;
    }
    let user = User {
        sub: random_id(22),
        email: email.clone(),
        name: Some(name.clone()),
        password_hash,
        roles: Vec::new(),
        created_at: now,
        password_changed_at: now,
        disabled_at: None,
        email_verified_at: None,
        created_via: CreatedVia::Registered,
    };
    // Counted so a flood of sign-ups with fresh addresses still spends the address's budget.
    within_mail_budget(store, &email, settings.per_address_per_hour, now).await?;
    let link = new_link(EmailPurpose::VerifyEmail, &user.sub, &email, resume, now, settings.verification_ttl);
    let message = verification_message(letters, settings, &user, &link.token, now)?;
    match store.create_user_with_link(&user, &link.record, &message).await {
        Ok(()) => Ok(SignedUp::Created { sub: user.sub }),
        // Someone registered the address a moment ago: the same as finding it.
        Err(StoreError::Conflict(_)) => match store.find_user_by_email(&email).await? {
            Some(existing) => tell_owner(store, letters, settings, &existing, now).await,
            None => Err(AccountError::Unavailable("sign-up conflicted with no visible account".into())),
        },
        Err(e) => Err(e.into()),
    }
}

async fn tell_owner<S: AccountStore + ThrottleStore>(
    store: &S,
    letters: &Letters<'_>,
    settings: &AccountSettings,
    owner: &User,
    now: i64,
) -> Result<SignedUp, AccountError> {
    let told = within_mail_budget(store, &owner.email, settings.per_address_per_hour, now).await?;
    if told {
        let context = json!({
            "name": owner.name,
            "sign_in_url": letters.page(paths::LOGIN),
            "reset_url": letters.page(paths::FORGOT_PASSWORD),
        });
        let message = letters.message(MessageKind::SignUpExisting, &owner.email, context, now)?;
        store.enqueue_message(&message).await?;
    }
    Ok(SignedUp::Existing { sub: owner.sub.clone(), told })
}

fn verification_message(
    letters: &Letters<'_>,
    settings: &AccountSettings,
    user: &User,
    token: &str,
    now: i64,
) -> Result<crate::domain::OutboxMessage, AccountError> {
    let context = json!({
        "name": user.name,
        "link": letters.link(paths::VERIFY_EMAIL, token),
        "lifetime": lifetime_words(settings.verification_ttl),
    });
    letters.message(MessageKind::VerifyEmail, &user.email, context, now)
}

/// Sends a new verification link (voiding older ones) to `user`'s address, unless it is verified
/// already or the address's budget is spent. True when one was written to the outbox.
pub async fn send_verification<S: AccountStore + ThrottleStore>(
    store: &S,
    letters: &Letters<'_>,
    settings: &AccountSettings,
    user: &User,
    resume: Option<String>,
    now: i64,
) -> Result<bool, AccountError> {
    if user.email_verified() || !user.is_enabled() {
        return Ok(false);
    }
    if !within_mail_budget(store, &user.email, settings.per_address_per_hour, now).await? {
        return Ok(false);
    }
    let link = new_link(EmailPurpose::VerifyEmail, &user.sub, &user.email, resume, now, settings.verification_ttl);
    let message = verification_message(letters, settings, user, &link.token, now)?;
    store.issue_link(&link.record, &message).await?;
    Ok(true)
}

/// "Send the link again" from the sign-in page: the same answer whatever `email_typed` is.
/// The user it went to, when one did.
pub async fn resend_verification<S: UserStore + AccountStore + ThrottleStore>(
    store: &S,
    letters: &Letters<'_>,
    settings: &AccountSettings,
    email_typed: &str,
    now: i64,
) -> Result<Option<String>, AccountError> {
    let Ok(email) = normalize_email(email_typed) else { return Ok(None) };
    let Some(user) = store.find_user_by_email(&email).await? else { return Ok(None) };
    Ok(send_verification(store, letters, settings, &user, None, now).await?.then_some(user.sub))
}

/// The link's account, for the page that offers to use it.
pub async fn check_verification_link<S: AccountStore>(
    store: &S,
    token: &str,
    now: i64,
) -> Result<(EmailToken, User), AccountError> {
    let hash = presented_hash(token).ok_or(AccountError::DeadLink)?;
    store.find_link(&hash, EmailPurpose::VerifyEmail, now).await?.ok_or(AccountError::DeadLink)
}

/// Uses a verification link: the address is verified from now on.
pub async fn verify<S: AccountStore>(store: &S, token: &str, now: i64) -> Result<EmailToken, AccountError> {
    let hash = presented_hash(token).ok_or(AccountError::DeadLink)?;
    store.verify_email(&hash, now).await?.ok_or(AccountError::DeadLink)
}
