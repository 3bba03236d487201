//! `application/x-www-form-urlencoded` request parameters with the RFC 6749 rules applied once.

use std::collections::HashMap;

use super::OAuthError;

/// More parameters than any OAuth request needs; a bound on work per request.
const MAX_PARAMS: usize = 64;

#[derive(Debug, Default, Clone)]
pub struct Params(HashMap<String, String>);

impl Params {
    /// Parses a form body or query string.
    ///
    /// RFC 6749 §3.1: parameters sent without a value are treated as omitted.
    /// RFC 6749 §3.2 / §3.1: parameters MUST NOT be included more than once → `invalid_request`.
    /// Unknown parameters are kept but ignored by every handler (RFC 6749 §3.1).
    pub fn parse(raw: &[u8]) -> Result<Self, OAuthError> {
        let mut map = HashMap::new();
        for (count, (name, value)) in form_urlencoded::parse(raw).enumerate() {
            if count >= MAX_PARAMS {
                return Err(OAuthError::invalid_request("too many parameters"));
            }
            // form_urlencoded replaces invalid UTF-8 with U+FFFD; refuse rather than guess.
            if name.contains('\u{FFFD}') || value.contains('\u{FFFD}') {
                return Err(OAuthError::invalid_request("parameters must be UTF-8"));
            }
            if value.is_empty() {
                continue;
            }
            if map.insert(name.to_string(), value.into_owned()).is_some() {
                return Err(OAuthError::invalid_request(format!("parameter `{name}` is repeated")));
            }
        }
        Ok(Self(map))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    pub fn require(&self, name: &'static str) -> Result<&str, OAuthError> {
        self.get(name).ok_or_else(|| OAuthError::invalid_request(format!("parameter `{name}` is required")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_values_count_as_absent() {
        let p = Params::parse(b"a=&b=1").unwrap();
        assert_eq!(p.get("a"), None);
        assert_eq!(p.get("b"), Some("1"));
    }

    #[test]
    fn repeats_are_refused() {
        let e = Params::parse(b"scope=a&scope=b").unwrap_err();
        assert_eq!(e.code, crate::oauth::ErrorCode::InvalidRequest);
    }

    #[test]
    fn invalid_utf8_is_refused() {
        assert!(Params::parse(b"a=%ff%fe").is_err());
    }
}
