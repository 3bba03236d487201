use std::collections::BTreeSet;
use std::fmt;

/// A set of scope tokens (RFC 6749 §3.3): space-delimited, case-sensitive, each token made of
/// `%x21 / %x23-5B / %x5D-7E`. Kept sorted so the same set always prints the same way.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScopeSet(BTreeSet<String>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    #[error("scope token `{0}` has a character RFC 6749 §3.3 does not allow")]
    BadToken(String),
    #[error("scope has more than {0} tokens")]
    TooMany(usize),
    #[error("scope token is longer than {0} characters")]
    TooLong(usize),
}

const MAX_TOKENS: usize = 64;
const MAX_TOKEN_LEN: usize = 128;

fn valid_token(token: &str) -> bool {
    !token.is_empty() && token.bytes().all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

impl ScopeSet {
    /// Parses a space-delimited scope parameter. Runs of spaces are tolerated (several client
    /// libraries emit them); any other separator or character is refused.
    pub fn parse(raw: &str) -> Result<Self, ScopeError> {
        Self::from_tokens(raw.split(' ').filter(|t| !t.is_empty()))
    }

    pub fn from_tokens<'a>(tokens: impl IntoIterator<Item = &'a str>) -> Result<Self, ScopeError> {
        let mut set = BTreeSet::new();
        for token in tokens {
            if token.len() > MAX_TOKEN_LEN {
                return Err(ScopeError::TooLong(MAX_TOKEN_LEN));
            }
            if !valid_token(token) {
                return Err(ScopeError::BadToken(token.chars().take(40).collect()));
            }
            set.insert(token.to_string());
            if set.len() > MAX_TOKENS {
                return Err(ScopeError::TooMany(MAX_TOKENS));
            }
        }
        Ok(Self(set))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, token: &str) -> bool {
        self.0.contains(token)
    }

    pub fn is_subset_of(&self, other: &ScopeSet) -> bool {
        self.0.is_subset(&other.0)
    }

    /// The tokens of `self` that `allowed` does not hold.
    pub fn not_in<'a>(&'a self, allowed: &'a ScopeSet) -> impl Iterator<Item = &'a str> {
        self.0.difference(&allowed.0).map(String::as_str)
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    pub fn to_vec(&self) -> Vec<String> {
        self.0.iter().cloned().collect()
    }
}

impl fmt::Display for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for token in &self.0 {
            if !first {
                f.write_str(" ")?;
            }
            f.write_str(token)?;
            first = false;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_sorted() {
        let s = ScopeSet::parse("write  read read").unwrap();
        assert_eq!(s.to_string(), "read write");
    }

    #[test]
    fn refuses_characters_outside_nqchar() {
        assert!(matches!(ScopeSet::parse("a\"b"), Err(ScopeError::BadToken(_))));
        assert!(matches!(ScopeSet::parse("a\\b"), Err(ScopeError::BadToken(_))));
        assert!(matches!(ScopeSet::parse("caf\u{e9}"), Err(ScopeError::BadToken(_))));
        assert!(matches!(ScopeSet::parse("a\tb"), Err(ScopeError::BadToken(_))));
    }

    #[test]
    fn subset() {
        let allowed = ScopeSet::parse("a b c").unwrap();
        assert!(ScopeSet::parse("a c").unwrap().is_subset_of(&allowed));
        let wide = ScopeSet::parse("a d").unwrap();
        assert_eq!(wide.not_in(&allowed).collect::<Vec<_>>(), vec!["d"]);
    }
}

#[cfg(test)]
mod bound_tests {
    use super::*;

    /// The bounds' edges, pinned (cargo-mutants survivors): a token of exactly MAX_TOKEN_LEN
    /// bytes and a set of exactly MAX_TOKENS tokens are accepted, one more is refused.
    #[test]
    fn token_length_and_count_bounds_are_exact() {
        let longest = "a".repeat(MAX_TOKEN_LEN);
        assert!(ScopeSet::parse(&longest).is_ok());
        assert!(matches!(ScopeSet::parse(&format!("{longest}a")), Err(ScopeError::TooLong(_))));
        let most: Vec<String> = (0..MAX_TOKENS).map(|i| format!("s{i}")).collect();
        assert_eq!(ScopeSet::parse(&most.join(" ")).unwrap().to_vec().len(), MAX_TOKENS);
        let one_more = format!("{} extra", most.join(" "));
        assert!(matches!(ScopeSet::parse(&one_more), Err(ScopeError::TooMany(_))));
    }

    #[test]
    fn emptiness() {
        assert!(ScopeSet::parse("").unwrap().is_empty());
        assert!(!ScopeSet::parse("openid").unwrap().is_empty());
    }
}

/// Full access to the admin API (`/admin/v1`, issue 13 item 1).
pub const ADMIN_SCOPE: &str = "latchkey:admin";
/// Read-only access to the admin API.
pub const ADMIN_READ_SCOPE: &str = "latchkey:admin.read";

/// True for the admin API's own scopes.
pub fn is_admin_scope(scope: &str) -> bool {
    scope == ADMIN_SCOPE || scope == ADMIN_READ_SCOPE
}

/// True when `scopes` names either admin API scope.
pub fn has_admin_scope(scopes: &ScopeSet) -> bool {
    scopes.iter().any(is_admin_scope)
}
