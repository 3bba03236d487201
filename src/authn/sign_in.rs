//! The checks behind every sign-in step, free of HTTP: a password for an email, and a second
//! factor (TOTP or recovery code) for a user — each through the per-account failure counter.

use crate::authn::throttle::{code_key, password_key};
use crate::authn::{recovery, totp, Attempt, PasswordHasher, ThrottlePolicy};
use crate::domain::{normalize_email, User};
use crate::keys::{seal, MasterKey};
use crate::store::{MfaStore, StoreError, ThrottleStore, UserStore};

/// Why a password sign-in failed. Pages show one message for all of the first three (no user
/// enumeration); the reason goes only to the audit trail.
#[derive(Debug, PartialEq, Eq)]
pub enum PasswordFailure {
    UnknownUser,
    /// The user's `sub`, for the audit trail.
    WrongPassword(String),
    Disabled(String),
    /// Refused without checking: too many failures for this email.
    Locked {
        retry_after_secs: i64,
    },
    Unavailable(String),
}

impl PasswordFailure {
    /// The user it concerns, when the email named one.
    pub fn user_sub(&self) -> Option<&str> {
        match self {
            PasswordFailure::WrongPassword(sub) | PasswordFailure::Disabled(sub) => Some(sub),
            _ => None,
        }
    }

    pub fn audit_reason(&self) -> &'static str {
        match self {
            PasswordFailure::UnknownUser => "unknown_user",
            PasswordFailure::WrongPassword(_) => "wrong_password",
            PasswordFailure::Disabled(_) => "disabled",
            PasswordFailure::Locked { .. } => "locked",
            PasswordFailure::Unavailable(_) => "unavailable",
        }
    }
}

/// A failure's outcome for the counters: did it just lock the account, and how long was the
/// answer held back (the progressive delay, recorded in the audit trail)?
pub struct Failed<F> {
    pub failure: F,
    pub locked_now: bool,
    pub delayed: std::time::Duration,
}

impl<F> Failed<F> {
    fn at_once(failure: F) -> Self {
        Self { failure, locked_now: false, delayed: std::time::Duration::ZERO }
    }
}

fn unavailable<F>(make: impl FnOnce(String) -> F, e: impl std::fmt::Display) -> Failed<F> {
    Failed::at_once(make(e.to_string()))
}

/// Checks `password` for the account typed as `email`. Exactly one argon2 verification runs
/// for an unknown email, a wrong password and a disabled account alike (with no such user, the
/// same argon2 computation on a fresh salt), so they take the same time; a locked email costs none.
pub async fn check_password<S: UserStore + ThrottleStore>(
    store: &S,
    hasher: &PasswordHasher,
    policy: &ThrottlePolicy,
    email: &str,
    password: &str,
    now: i64,
) -> Result<User, Failed<PasswordFailure>> {
    let key = password_key(email);
    let count = store
        .count_attempt(&key, now, policy.window_secs, policy.lock_secs, policy.threshold)
        .await
        .map_err(|e| unavailable(PasswordFailure::Unavailable, e))?;
    let (failures, locks_on_failure) = match policy.judge(count, now) {
        Attempt::Locked { retry_after_secs } => {
            return Err(Failed::at_once(PasswordFailure::Locked { retry_after_secs }))
        }
        Attempt::Allowed { failures, locks_on_failure } => (failures, locks_on_failure),
    };
    let user = match normalize_email(email) {
        Ok(email) => {
            store.find_user_by_email(&email).await.map_err(|e| unavailable(PasswordFailure::Unavailable, e))?
        }
        Err(_) => None,
    };
    let verification = hasher
        .verify(password, user.as_ref().map(|u| u.password_hash.as_str()))
        .await
        .map_err(|e| unavailable(PasswordFailure::Unavailable, e))?;
    let failure = match &user {
        None => Some(PasswordFailure::UnknownUser),
        Some(u) if !verification.valid => Some(PasswordFailure::WrongPassword(u.sub.clone())),
        Some(u) if !u.is_enabled() => Some(PasswordFailure::Disabled(u.sub.clone())),
        Some(_) => None,
    };
    if let Some(failure) = failure {
        let delayed = policy.delay_for(failures);
        tokio::time::sleep(delayed).await;
        return Err(Failed { failure, locked_now: locks_on_failure, delayed });
    }
    let Some(user) = user else { return Err(unavailable(PasswordFailure::Unavailable, "no user")) };
    if let Err(e) = store.clear_attempts(&key).await {
        tracing::warn!(error = %e, "could not clear the failure counter");
    }
    if verification.needs_rehash {
        // Parameters changed since this hash was made: store one with today's (best effort).
        if let Ok(new_hash) = hasher.hash(password).await {
            if let Err(e) = store.rehash_password(&user.sub, &user.password_hash, &new_hash).await {
                tracing::warn!(error = %e, "password rehash failed");
            }
        }
    }
    Ok(user)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FactorUsed {
    Totp,
    RecoveryCode,
}

#[derive(Debug, PartialEq, Eq)]
pub enum FactorFailure {
    /// Wrong, replayed, outside the ±1 step window, or the user has no enabled factor.
    Wrong,
    Locked {
        retry_after_secs: i64,
    },
    Unavailable(String),
}

/// Associated data binding a sealed seed to its user: a sealed seed copied to another user's
/// row does not open.
fn seed_aad(sub: &str) -> Vec<u8> {
    format!("totp:{sub}").into_bytes()
}

pub fn seal_seed(master: &MasterKey, sub: &str, seed: &[u8]) -> Result<Vec<u8>, seal::SealError> {
    seal::seal(master, seed, &seed_aad(sub))
}

pub fn open_seed(master: &MasterKey, sub: &str, sealed: &[u8]) -> Result<zeroize::Zeroizing<Vec<u8>>, seal::SealError> {
    seal::open(master, sealed, &seed_aad(sub))
}

/// Checks a one-time code from the authenticator app, or a recovery code, for `sub`. A TOTP
/// code is accepted once: the store takes its time step only if no code of that step or a later
/// one was accepted (RFC 6238 §5.2). A recovery code is used up by the same kind of conditional
/// write, so two requests racing with one code can't both win.
pub async fn check_second_factor<S: MfaStore + ThrottleStore>(
    store: &S,
    master: &MasterKey,
    policy: &ThrottlePolicy,
    sub: &str,
    code: &str,
    now: i64,
) -> Result<FactorUsed, Failed<FactorFailure>> {
    let key = code_key(sub);
    let count = store
        .count_attempt(&key, now, policy.window_secs, policy.lock_secs, policy.threshold)
        .await
        .map_err(|e| unavailable(FactorFailure::Unavailable, e))?;
    let (failures, locks_on_failure) = match policy.judge(count, now) {
        Attempt::Locked { retry_after_secs } => {
            return Err(Failed::at_once(FactorFailure::Locked { retry_after_secs }))
        }
        Attempt::Allowed { failures, locks_on_failure } => (failures, locks_on_failure),
    };
    let used = match store.totp_factor(sub).await {
        Ok(Some(factor)) if factor.is_enabled() => {
            match_code(store, master, sub, &factor.secret_sealed, code, now).await
        }
        Ok(_) => Ok(None),
        Err(e) => Err(e),
    }
    .map_err(|e| unavailable(FactorFailure::Unavailable, e))?;
    match used {
        Some(used) => {
            if let Err(e) = store.clear_attempts(&key).await {
                tracing::warn!(error = %e, "could not clear the failure counter");
            }
            Ok(used)
        }
        None => {
            let delayed = policy.delay_for(failures);
            tokio::time::sleep(delayed).await;
            Err(Failed { failure: FactorFailure::Wrong, locked_now: locks_on_failure, delayed })
        }
    }
}

async fn match_code<S: MfaStore>(
    store: &S,
    master: &MasterKey,
    sub: &str,
    sealed: &[u8],
    code: &str,
    now: i64,
) -> Result<Option<FactorUsed>, StoreError> {
    if let Some(hash) = recovery::hash(code) {
        return Ok(store.use_recovery_code(sub, &hash, now).await?.then_some(FactorUsed::RecoveryCode));
    }
    let seed = open_seed(master, sub, sealed).map_err(|e| StoreError::Corrupt(format!("TOTP seed of {sub}: {e}")))?;
    match totp::matching_step(&seed, code, now) {
        Some(step) => Ok(store.use_totp_step(sub, step).await?.then_some(FactorUsed::Totp)),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The audit trail names the account a failure concerns exactly when the email named one
    /// (found by mutation testing: nothing checked it).
    #[test]
    fn a_failure_names_its_user_only_when_there_is_one() {
        assert_eq!(PasswordFailure::WrongPassword("sub-1".into()).user_sub(), Some("sub-1"));
        assert_eq!(PasswordFailure::Disabled("sub-2".into()).user_sub(), Some("sub-2"));
        assert_eq!(PasswordFailure::UnknownUser.user_sub(), None);
        assert_eq!(PasswordFailure::Locked { retry_after_secs: 5 }.user_sub(), None);
        assert_eq!(PasswordFailure::Unavailable("db".into()).user_sub(), None);
        let reasons: Vec<&str> = [
            PasswordFailure::UnknownUser,
            PasswordFailure::WrongPassword("s".into()),
            PasswordFailure::Disabled("s".into()),
            PasswordFailure::Locked { retry_after_secs: 1 },
            PasswordFailure::Unavailable("x".into()),
        ]
        .iter()
        .map(PasswordFailure::audit_reason)
        .collect();
        assert_eq!(reasons, ["unknown_user", "wrong_password", "disabled", "locked", "unavailable"]);
    }
}
