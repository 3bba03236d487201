//! User registry operations: create, list, show, set password, disable, roles.

use serde_json::{json, Value};

use super::clients::AdminError;
use crate::accounts::invitation;
use crate::accounts::{AccountError, AccountSettings, Letters};
use crate::authn::PasswordHasher;
use crate::domain::{normalize_email, validate_name, validate_role, CreatedVia, User};
use crate::secret::random_id;
use crate::store::{AccountStore, StoreError, UserStore};

pub struct NewUser {
    pub email: String,
    pub name: Option<String>,
    pub roles: Vec<String>,
    pub password: String,
    /// `--email-verified`: the operator vouches for the address.
    pub email_verified: bool,
}

/// The public view of a user: never the password hash.
pub fn user_json(user: &User) -> Value {
    json!({
        "sub": user.sub,
        "email": user.email,
        "name": user.name,
        "roles": user.roles,
        "created_at": user.created_at,
        "password_changed_at": user.password_changed_at,
        "disabled": user.disabled_at.is_some(),
        "disabled_at": user.disabled_at,
        "email_verified": user.email_verified(),
        "email_verified_at": user.email_verified_at,
        "created_via": user.created_via.as_str(),
    })
}

fn invalid(e: impl std::fmt::Display) -> AdminError {
    AdminError::Invalid(e.to_string())
}

/// A new user's address (normalised), name and roles (sorted, without repeats), checked.
fn identity(
    email: &str,
    name: Option<&str>,
    roles: &[String],
) -> Result<(String, Option<String>, Vec<String>), AdminError> {
    let email = normalize_email(email).map_err(invalid)?;
    let name = name.map(validate_name).transpose().map_err(invalid)?;
    let mut roles = roles.iter().map(|r| validate_role(r)).collect::<Result<Vec<_>, _>>().map_err(invalid)?;
    roles.sort();
    roles.dedup();
    Ok((email, name, roles))
}

pub async fn create<S: UserStore>(
    store: &S,
    hasher: &PasswordHasher,
    new: NewUser,
    now: i64,
) -> Result<User, AdminError> {
    let (email, name, roles) = identity(&new.email, new.name.as_deref(), &new.roles)?;
    let inputs: Vec<&str> = std::iter::once(email.as_str()).chain(name.as_deref()).collect();
    hasher.check_policy(&new.password, &inputs).map_err(invalid)?;
    let password_hash = hasher.hash(&new.password).await.map_err(invalid)?;
    let user = User {
        sub: random_id(22),
        email,
        name,
        password_hash,
        roles,
        created_at: now,
        password_changed_at: now,
        disabled_at: None,
        email_verified_at: new.email_verified.then_some(now),
        created_via: CreatedVia::Admin,
    };
    store.insert_user(&user).await.map_err(|e| match e {
        StoreError::Conflict(_) => AdminError::Invalid(format!("a user with email {} exists already", user.email)),
        other => AdminError::Store(other),
    })?;
    Ok(user)
}

/// Whom `latchkey user invite` names (checked and normalised by [`invite`]).
pub use crate::accounts::invitation::Invitee as NewInvitation;

/// Invites a person (issue 12 item 6): creates the account with a link to set its password,
/// written to the outbox for the server to send. Inviting an address again before it accepted
/// sends a new link and voids the old one. Works whatever `registration` says.
pub async fn invite<S: UserStore + AccountStore>(
    store: &S,
    hasher: &PasswordHasher,
    letters: &Letters<'_>,
    settings: &AccountSettings,
    new: NewInvitation,
    now: i64,
) -> Result<User, AdminError> {
    let (email, name, roles) = identity(&new.email, new.name.as_deref(), &new.roles)?;
    invitation::invite(store, hasher, letters, settings, NewInvitation { email, name, roles }, now).await.map_err(|e| {
        match e {
            AccountError::Invalid(why) => AdminError::Invalid(why),
            other => AdminError::Unavailable(other.to_string()),
        }
    })
}

/// Finds a user by `sub` or, when it looks like one, by email.
pub async fn show<S: UserStore>(store: &S, sub_or_email: &str) -> Result<User, AdminError> {
    let found = if sub_or_email.contains('@') {
        match normalize_email(sub_or_email) {
            Ok(email) => store.find_user_by_email(&email).await?,
            Err(_) => None,
        }
    } else {
        store.find_user(sub_or_email).await?
    };
    found.ok_or_else(|| AdminError::NotFound(format!("no user `{sub_or_email}`")))
}

/// Sets a new password; every grant of the user is revoked and their sessions end.
pub async fn set_password<S: UserStore>(
    store: &S,
    hasher: &PasswordHasher,
    sub_or_email: &str,
    password: &str,
    now: i64,
) -> Result<User, AdminError> {
    let user = show(store, sub_or_email).await?;
    let inputs: Vec<&str> = std::iter::once(user.email.as_str()).chain(user.name.as_deref()).collect();
    hasher.check_policy(password, &inputs).map_err(invalid)?;
    let hash = hasher.hash(password).await.map_err(invalid)?;
    if !store.change_password(&user.sub, &hash, now).await? {
        return Err(AdminError::NotFound(format!("no user `{sub_or_email}`")));
    }
    show(store, &user.sub).await
}

pub async fn disable<S: UserStore>(store: &S, sub_or_email: &str, now: i64) -> Result<User, AdminError> {
    let user = show(store, sub_or_email).await?;
    store.disable_user(&user.sub, now).await?;
    show(store, &user.sub).await
}

pub async fn change_roles<S: UserStore>(
    store: &S,
    sub_or_email: &str,
    add: Option<&str>,
    remove: Option<&str>,
    now: i64,
) -> Result<User, AdminError> {
    let user = show(store, sub_or_email).await?;
    let mut roles = user.roles.clone();
    if let Some(role) = add {
        roles.push(validate_role(role).map_err(invalid)?);
    }
    if let Some(role) = remove {
        if !roles.iter().any(|r| r == role) {
            return Err(AdminError::Invalid(format!("user has no role `{role}`")));
        }
        roles.retain(|r| r != role);
    }
    roles.sort();
    roles.dedup();
    store.set_roles(&user.sub, &roles, now).await?;
    show(store, &user.sub).await
}
