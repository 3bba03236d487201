/// A person who signs in.
#[derive(Clone, Debug)]
pub struct User {
    /// Stable, opaque subject identifier (OIDC Core §2): base64url, never the email, never
    /// reassigned. It contains no `:`, so it can never equal a client's `client:<id>` subject.
    pub sub: String,
    pub email: String,
    pub name: Option<String>,
    pub password_hash: String,
    pub roles: Vec<String>,
    pub created_at: i64,
    pub password_changed_at: i64,
    pub disabled_at: Option<i64>,
    /// When the user proved they read mail at `email` (or an admin said so): the stored truth
    /// behind the `email_verified` claim (OIDC Core §5.1).
    pub email_verified_at: Option<i64>,
    pub created_via: CreatedVia,
}

impl User {
    pub fn is_enabled(&self) -> bool {
        self.disabled_at.is_none()
    }
    pub fn email_verified(&self) -> bool {
        self.email_verified_at.is_some()
    }
    /// A self-registered account that has not followed its verification link yet: refused at
    /// sign-in while `require_verified_email` is on (issue 12 item 3). Accounts made by an admin
    /// sign in as before; an invited one has no usable password until it accepts.
    pub fn awaits_verification(&self) -> bool {
        self.created_via == CreatedVia::Registered && !self.email_verified()
    }
}

/// How an account came to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CreatedVia {
    /// `latchkey user create` (or the admin API).
    Admin,
    /// The sign-up page.
    Registered,
    /// `latchkey user invite`.
    Invited,
}

impl CreatedVia {
    pub fn as_str(self) -> &'static str {
        match self {
            CreatedVia::Admin => "admin",
            CreatedVia::Registered => "registered",
            CreatedVia::Invited => "invited",
        }
    }
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "admin" => Some(CreatedVia::Admin),
            "registered" => Some(CreatedVia::Registered),
            "invited" => Some(CreatedVia::Invited),
            _ => None,
        }
    }
}

const MAX_EMAIL: usize = 254;
const MAX_NAME: usize = 200;
const MAX_ROLE: usize = 64;

/// Normalises an email for storage and lookup: trimmed and lower-cased, so `Ann@Example.com`
/// and `ann@example.com` are one account.
pub fn normalize_email(raw: &str) -> Result<String, String> {
    let email = raw.trim().to_lowercase();
    let valid = email.len() <= MAX_EMAIL
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.')
        })
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if valid {
        Ok(email)
    } else {
        Err(format!("`{}` is not an email address", raw.chars().take(80).collect::<String>()))
    }
}

pub fn validate_name(raw: &str) -> Result<String, String> {
    let name = raw.trim().to_string();
    if name.is_empty() || name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
        return Err(format!("name must be 1 to {MAX_NAME} printable characters"));
    }
    Ok(name)
}

pub fn validate_role(raw: &str) -> Result<String, String> {
    if raw.is_empty() || raw.len() > MAX_ROLE || !raw.chars().all(|c| c.is_ascii_graphic()) {
        return Err(format!("role `{raw}` must be 1 to {MAX_ROLE} visible ASCII characters without spaces"));
    }
    Ok(raw.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert_eq!(normalize_email(" Ann@Example.COM ").unwrap(), "ann@example.com");
        for bad in ["ann", "@example.com", "ann@localhost", "a nn@example.com", "ann@.com"] {
            assert!(normalize_email(bad).is_err(), "{bad}");
        }
    }
}

/// A user's authenticator-app factor as stored. `enabled_at` is `None` while the enrolment
/// waits for its first code.
#[derive(Clone, Debug)]
pub struct TotpFactor {
    /// The seed, sealed with the master key (associated data: `totp:<sub>`).
    pub secret_sealed: Vec<u8>,
    pub created_at: i64,
    pub enabled_at: Option<i64>,
    /// RFC 6238 step of the last accepted code.
    pub last_step: Option<i64>,
}

impl TotpFactor {
    pub fn is_enabled(&self) -> bool {
        self.enabled_at.is_some()
    }
}

/// Consent a user gave an app, for the account page.
#[derive(Clone, Debug)]
pub struct ConsentRecord {
    pub client_id: String,
    pub scopes: super::ScopeSet,
    pub granted_at: i64,
}
