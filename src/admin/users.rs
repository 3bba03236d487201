//! User registry operations: create, list, show, set password, disable, roles.

use serde_json::{json, Value};

use super::actor::{record, Actor, Subject};
use super::clients::AdminError;
use crate::accounts::invitation;
use crate::accounts::{AccountError, AccountSettings, Letters};
use crate::audit::kind;
use crate::authn::PasswordHasher;
use crate::domain::{normalize_email, validate_name, validate_role, CreatedVia, User};
use crate::domain::{Grant, SessionSummary};
use crate::secret::random_id;
use crate::store::{AccountStore, AdminStore, AuditStore, MfaStore, StoreError, UserStore};

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
    serde_json::to_value(super::views::UserView::from(user)).unwrap_or(Value::Null)
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

pub async fn create<S: UserStore + AuditStore>(
    store: &S,
    hasher: &PasswordHasher,
    new: NewUser,
    actor: &Actor,
    now: i64,
) -> Result<User, AdminError> {
    let (email, name, roles) = identity(&new.email, new.name.as_deref(), &new.roles)?;
    let inputs: Vec<&str> = std::iter::once(email.as_str()).chain(name.as_deref()).collect();
    hasher.check_policy(&new.password, &inputs).map_err(invalid)?;
    // The policy was checked above; a failure here is the hasher's, not the input's.
    let password_hash = hasher.hash(&new.password).await.map_err(|e| AdminError::Unavailable(e.to_string()))?;
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
        StoreError::Conflict(_) => AdminError::Conflict(format!("a user with email {} exists already", user.email)),
        other => AdminError::Store(other),
    })?;
    let detail = json!({ "email_verified": new.email_verified });
    record(store, actor, kind::USER_CREATED, Subject::User(&user.sub), detail, now).await;
    Ok(user)
}

/// Whom `latchkey user invite` names (checked and normalised by [`invite`]).
pub use crate::accounts::invitation::Invitee as NewInvitation;

/// Invites a person (issue 12 item 6): creates the account with a link to set its password,
/// written to the outbox for the server to send. Inviting an address again before it accepted
/// sends a new link and voids the old one. Works whatever `registration` says.
pub async fn invite<S: UserStore + AccountStore + AuditStore>(
    store: &S,
    hasher: &PasswordHasher,
    letters: &Letters<'_>,
    settings: &AccountSettings,
    new: NewInvitation,
    actor: &Actor,
    now: i64,
) -> Result<User, AdminError> {
    let (email, name, roles) = identity(&new.email, new.name.as_deref(), &new.roles)?;
    let invitee = NewInvitation { email: email.clone(), name, roles };
    let user = invitation::invite(store, hasher, letters, settings, invitee, now).await.map_err(|e| match e {
        AccountError::Invalid(why) => AdminError::Invalid(why),
        AccountError::Taken => AdminError::Conflict(format!("a user with email {email} exists already")),
        other => AdminError::Unavailable(other.to_string()),
    })?;
    let detail = json!({ "email": user.email });
    record(store, actor, kind::USER_INVITED, Subject::User(&user.sub), detail, now).await;
    Ok(user)
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
pub async fn set_password<S: UserStore + AuditStore>(
    store: &S,
    hasher: &PasswordHasher,
    sub_or_email: &str,
    password: &str,
    actor: &Actor,
    now: i64,
) -> Result<User, AdminError> {
    let user = show(store, sub_or_email).await?;
    let inputs: Vec<&str> = std::iter::once(user.email.as_str()).chain(user.name.as_deref()).collect();
    hasher.check_policy(password, &inputs).map_err(invalid)?;
    let hash = hasher.hash(password).await.map_err(|e| AdminError::Unavailable(e.to_string()))?;
    if !store.change_password(&user.sub, &hash, now).await? {
        return Err(AdminError::NotFound(format!("no user `{sub_or_email}`")));
    }
    record(store, actor, kind::PASSWORD_CHANGED, Subject::User(&user.sub), Value::Null, now).await;
    show(store, &user.sub).await
}

/// Stops a user from signing in; ends their sessions and grants (apps with a back-channel
/// logout URI hear of it). Disabling a disabled user changes nothing and records nothing.
pub async fn disable<S: UserStore + AuditStore>(
    store: &S,
    sub_or_email: &str,
    actor: &Actor,
    now: i64,
) -> Result<User, AdminError> {
    let user = show(store, sub_or_email).await?;
    if store.disable_user(&user.sub, now).await? {
        record(store, actor, kind::USER_DISABLED, Subject::User(&user.sub), Value::Null, now).await;
    }
    show(store, &user.sub).await
}

/// A new display name (`None` removes it).
pub async fn rename<S: UserStore + AdminStore + AuditStore>(
    store: &S,
    sub_or_email: &str,
    name: Option<&str>,
    actor: &Actor,
    now: i64,
) -> Result<User, AdminError> {
    let user = show(store, sub_or_email).await?;
    let name = name.map(validate_name).transpose().map_err(invalid)?;
    if name != user.name {
        store.set_user_name(&user.sub, name.as_deref(), now).await?;
        let detail = json!({ "changed": ["name"] });
        record(store, actor, kind::USER_UPDATED, Subject::User(&user.sub), detail, now).await;
    }
    show(store, &user.sub).await
}

/// Removes a user's authenticator app and recovery codes (a lost phone): they sign in with the
/// password alone and can enrol again. Returns the user and whether they had a second factor.
pub async fn reset_mfa<S: UserStore + MfaStore + AuditStore>(
    store: &S,
    sub_or_email: &str,
    actor: &Actor,
    now: i64,
) -> Result<(User, bool), AdminError> {
    let user = show(store, sub_or_email).await?;
    let had_mfa = store.remove_mfa(&user.sub).await?;
    let detail = json!({ "had_mfa": had_mfa });
    record(store, actor, kind::MFA_RESET, Subject::User(&user.sub), detail, now).await;
    Ok((user, had_mfa))
}

pub async fn change_roles<S: UserStore + AuditStore>(
    store: &S,
    sub_or_email: &str,
    add: Option<&str>,
    remove: Option<&str>,
    actor: &Actor,
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
    // One place writes roles and records the change: set_roles (sorts, drops repeats).
    set_roles(store, &user.sub, &roles, actor, now).await
}

/// The most users one page holds.
pub const MAX_PAGE: i64 = 200;

/// One page of users in email order: those whose address starts with `search` (compared
/// lower-cased, as addresses are stored), after the address `after` (the previous page's
/// cursor). `next` is the cursor of the following page, `None` on the last.
pub async fn page<S: AdminStore>(
    store: &S,
    search: Option<&str>,
    after: Option<&str>,
    limit: i64,
) -> Result<(Vec<User>, Option<String>), AdminError> {
    let search = search.map(str::to_lowercase).filter(|s| !s.is_empty());
    let limit = limit.clamp(1, MAX_PAGE);
    // One more than asked says whether another page follows.
    let mut users = store.page_users(search.as_deref(), after, limit + 1).await?;
    let more = users.len() as i64 > limit;
    users.truncate(limit as usize);
    let next = if more { users.last().map(|u| u.email.clone()) } else { None };
    Ok((users, next))
}

pub async fn grants<S: UserStore + AdminStore>(
    store: &S,
    sub_or_email: &str,
    now: i64,
) -> Result<(User, Vec<Grant>), AdminError> {
    let user = show(store, sub_or_email).await?;
    let grants = store.user_grants(&user.sub, now).await?;
    Ok((user, grants))
}

/// Revokes one of the user's grants: its refresh tokens stop at once, the access tokens it
/// issued stop at userinfo and introspection, and the app hears of it by back-channel logout.
pub async fn revoke_grant<S: UserStore + AdminStore + AuditStore>(
    store: &S,
    sub_or_email: &str,
    grant_id: &str,
    actor: &Actor,
    now: i64,
) -> Result<(), AdminError> {
    let user = show(store, sub_or_email).await?;
    if !store.revoke_user_grant(&user.sub, grant_id, now).await? {
        return Err(AdminError::NotFound(format!("user `{sub_or_email}` has no live grant `{grant_id}`")));
    }
    let detail = json!({ "grant_id": grant_id });
    record(store, actor, kind::GRANT_REVOKED, Subject::User(&user.sub), detail, now).await;
    Ok(())
}

pub async fn sessions<S: UserStore + AdminStore>(
    store: &S,
    sub_or_email: &str,
    now: i64,
) -> Result<(User, Vec<SessionSummary>), AdminError> {
    let user = show(store, sub_or_email).await?;
    let sessions = store.user_sessions(&user.sub, now).await?;
    Ok((user, sessions))
}

/// Ends one browser session of the user and the grants given in it, as signing out does.
pub async fn end_session<S: UserStore + AdminStore + AuditStore>(
    store: &S,
    sub_or_email: &str,
    session_id: &str,
    actor: &Actor,
    now: i64,
) -> Result<(), AdminError> {
    let user = show(store, sub_or_email).await?;
    if !store.end_user_session(&user.sub, session_id, now).await? {
        return Err(AdminError::NotFound(format!("user `{sub_or_email}` has no session `{session_id}`")));
    }
    let detail = json!({ "session_id": session_id });
    record(store, actor, kind::SESSION_REVOKED, Subject::User(&user.sub), detail, now).await;
    Ok(())
}

/// Replaces a user's roles (checked, sorted, without repeats).
pub async fn set_roles<S: UserStore + AuditStore>(
    store: &S,
    sub_or_email: &str,
    roles: &[String],
    actor: &Actor,
    now: i64,
) -> Result<User, AdminError> {
    let user = show(store, sub_or_email).await?;
    let mut wanted = roles.iter().map(|r| validate_role(r)).collect::<Result<Vec<_>, _>>().map_err(invalid)?;
    wanted.sort();
    wanted.dedup();
    if wanted != user.roles {
        store.set_roles(&user.sub, &wanted, now).await?;
        let added: Vec<&String> = wanted.iter().filter(|r| !user.roles.contains(r)).collect();
        let removed: Vec<&String> = user.roles.iter().filter(|r| !wanted.contains(r)).collect();
        let detail = json!({ "added": added, "removed": removed, "roles": wanted });
        record(store, actor, kind::USER_ROLES_CHANGED, Subject::User(&user.sub), detail, now).await;
    }
    show(store, &user.sub).await
}

/// What an admin changes about a user in one request: `name` (`Some(None)` removes it) and
/// `roles` (replaced).
#[derive(Clone, Debug, Default)]
pub struct UserChanges {
    pub name: Option<Option<String>>,
    pub roles: Option<Vec<String>>,
}

/// Applies [`UserChanges`] all or nothing: every value is checked before anything is written.
pub async fn update<S: UserStore + AdminStore + AuditStore>(
    store: &S,
    sub_or_email: &str,
    changes: UserChanges,
    actor: &Actor,
    now: i64,
) -> Result<User, AdminError> {
    let mut user = show(store, sub_or_email).await?;
    if let Some(Some(name)) = &changes.name {
        validate_name(name).map_err(invalid)?;
    }
    if let Some(roles) = &changes.roles {
        for role in roles {
            validate_role(role).map_err(invalid)?;
        }
    }
    if let Some(name) = changes.name {
        user = rename(store, &user.sub, name.as_deref(), actor, now).await?;
    }
    if let Some(roles) = changes.roles {
        user = set_roles(store, &user.sub, &roles, actor, now).await?;
    }
    Ok(user)
}
