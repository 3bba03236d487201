use std::fmt;
use std::net::IpAddr;

use url::{Host, Url};

/// A redirect URI accepted at registration. It is kept exactly as registered, because
/// authorization requests must match it string for string (RFC 6749 §3.1.2.3, RFC 9700 §4.1.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedirectUri(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedirectUriError {
    #[error("redirect URI `{0}` is not an absolute URI")]
    NotAbsolute(String),
    #[error("redirect URI `{0}` has a fragment; RFC 6749 §3.1.2 forbids one")]
    Fragment(String),
    #[error("redirect URI `{0}` has a wildcard; redirect URIs are matched exactly")]
    Wildcard(String),
    #[error("redirect URI `{0}` must use https (plain http only for 127.0.0.1, [::1] or localhost)")]
    InsecureScheme(String),
    #[error("redirect URI `{0}` uses a scheme that can run code or carry data (javascript:, data:, …)")]
    DangerousScheme(String),
    #[error("redirect URI `{0}` carries user information (user@host), which is refused")]
    UserInfo(String),
    #[error("redirect URI is longer than {0} characters")]
    TooLong(usize),
}

const MAX_LEN: usize = 2000;

/// Schemes that execute or embed content in a browser; never a redirect target.
const DANGEROUS_SCHEMES: [&str; 6] = ["javascript", "data", "vbscript", "file", "blob", "about"];

impl RedirectUri {
    /// Validates a redirect URI for registration.
    ///
    /// Allowed: `https://…`; `http://` on a loopback host (RFC 8252 §7.3, native apps); and
    /// private-use schemes in reverse-domain form such as `com.example.app:/cb` (RFC 8252 §7.1).
    pub fn parse(raw: &str) -> Result<Self, RedirectUriError> {
        if raw.len() > MAX_LEN {
            return Err(RedirectUriError::TooLong(MAX_LEN));
        }
        let owned = || raw.to_string();
        if raw.contains('*') {
            return Err(RedirectUriError::Wildcard(owned()));
        }
        if raw.contains('#') {
            return Err(RedirectUriError::Fragment(owned()));
        }
        if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(RedirectUriError::NotAbsolute(owned()));
        }
        let url = Url::parse(raw).map_err(|_| RedirectUriError::NotAbsolute(owned()))?;
        let scheme = url.scheme();
        if DANGEROUS_SCHEMES.contains(&scheme) {
            return Err(RedirectUriError::DangerousScheme(owned()));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(RedirectUriError::UserInfo(owned()));
        }
        match scheme {
            "https" => {
                if url.host_str().is_none_or(str::is_empty) {
                    return Err(RedirectUriError::NotAbsolute(owned()));
                }
            }
            "http" => {
                if !is_loopback_host(&url) {
                    return Err(RedirectUriError::InsecureScheme(owned()));
                }
            }
            // RFC 8252 §7.1: private-use schemes must be reverse domain names, e.g. com.example.app.
            other if other.contains('.') => {}
            _ => return Err(RedirectUriError::InsecureScheme(owned())),
        }
        Ok(Self(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `presented` (from an authorization request) matches this registered URI.
    ///
    /// Exact string comparison (RFC 9700 §4.1.3), with one exception: for a loopback IP literal
    /// the port may differ, because native apps listen on a port the OS picks (RFC 8252 §7.3).
    /// `localhost` gets no such leeway: RFC 8252 §8.3 advises against it.
    pub fn matches(&self, presented: &str) -> bool {
        if self.0 == presented {
            return true;
        }
        let (Ok(registered), Ok(candidate)) = (Url::parse(&self.0), Url::parse(presented)) else {
            return false;
        };
        if registered.scheme() != "http" || !is_loopback_ip_literal(&registered) {
            return false;
        }
        // Compare everything but the port, as strings, so no normalisation can sneak in a change.
        let strip_port = |raw: &str, url: &Url| -> Option<String> {
            let host = match url.host()? {
                Host::Ipv6(ip) => format!("[{ip}]"),
                other => other.to_string(),
            };
            let prefix = match url.port() {
                Some(port) => format!("http://{host}:{port}"),
                None => format!("http://{host}"),
            };
            raw.strip_prefix(&prefix).map(|rest| format!("http://{host}{rest}"))
        };
        match (strip_port(&self.0, &registered), strip_port(presented, &candidate)) {
            (Some(a), Some(b)) => a == b,
            _ => false,
        }
    }
}

impl fmt::Display for RedirectUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_loopback_ip_literal(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        _ => false,
    }
}

/// `localhost`, `127.0.0.0/8` or `[::1]`.
pub fn is_loopback_host(url: &Url) -> bool {
    is_loopback_ip_literal(url) || url.host_str() == Some("localhost")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_https_loopback_and_private_use_schemes() {
        for ok in [
            "https://app.example.com/cb",
            "https://app.example.com/cb?x=1",
            "http://127.0.0.1:8000/cb",
            "http://[::1]/cb",
            "http://localhost:3000/cb",
            "com.example.app:/oauth2redirect",
        ] {
            assert!(RedirectUri::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_the_dangerous_ones() {
        use RedirectUriError::*;
        type Check = fn(&RedirectUriError) -> bool;
        let cases: [(&str, Check); 9] = [
            ("javascript:alert(1)", |e| matches!(e, DangerousScheme(_))),
            ("data:text/html,hi", |e| matches!(e, DangerousScheme(_))),
            ("https://app.example.com/cb#frag", |e| matches!(e, Fragment(_))),
            ("https://*.example.com/cb", |e| matches!(e, Wildcard(_))),
            ("http://app.example.com/cb", |e| matches!(e, InsecureScheme(_))),
            ("/relative/cb", |e| matches!(e, NotAbsolute(_))),
            ("https://user@app.example.com/cb", |e| matches!(e, UserInfo(_))),
            ("myapp:/cb", |e| matches!(e, InsecureScheme(_))),
            ("https://app.example.com/c b", |e| matches!(e, NotAbsolute(_))),
        ];
        for (raw, check) in cases {
            let err = RedirectUri::parse(raw).unwrap_err();
            assert!(check(&err), "{raw}: {err:?}");
        }
    }

    #[test]
    fn matching_is_exact_except_loopback_ports() {
        let r = RedirectUri::parse("https://app.example.com/cb").unwrap();
        assert!(r.matches("https://app.example.com/cb"));
        for near in [
            "https://app.example.com/cb/",
            "https://APP.example.com/cb",
            "https://app.example.com/cb?x=1",
            "https://app.example.com/cb#x",
            "http://app.example.com/cb",
            "https://app.example.com.evil.com/cb",
            "https://evilapp.example.com/cb",
            "https://app.example.com@evil.com/cb",
            "https://app.example.com/a/../cb",
            "https://app.example.com/%63b",
            "https://app.example.com:443/cb",
        ] {
            assert!(!r.matches(near), "{near}");
        }
        let lo = RedirectUri::parse("http://127.0.0.1/cb").unwrap();
        assert!(lo.matches("http://127.0.0.1:53111/cb"));
        assert!(!lo.matches("http://127.0.0.1:53111/cb2"));
        assert!(!lo.matches("http://127.0.0.2:53111/cb"));
        let v6 = RedirectUri::parse("http://[::1]:8080/cb").unwrap();
        assert!(v6.matches("http://[::1]:9999/cb"));
        let name = RedirectUri::parse("http://localhost:8080/cb").unwrap();
        assert!(!name.matches("http://localhost:9999/cb"));
    }
}

#[cfg(test)]
mod length_tests {
    use super::*;

    /// The length bound's edge: a registration of exactly MAX_LEN bytes is accepted, one byte
    /// more is refused (found by cargo-mutants: no test pinned the bound).
    #[test]
    fn the_length_bound_is_exact() {
        let base = "https://app.example.com/cb?x=";
        let at = format!("{base}{}", "a".repeat(MAX_LEN - base.len()));
        assert_eq!(at.len(), MAX_LEN);
        assert!(RedirectUri::parse(&at).is_ok());
        let over = format!("{at}a");
        assert!(matches!(RedirectUri::parse(&over), Err(RedirectUriError::TooLong(_))));
    }

    /// Error messages and logs show the URI exactly as registered.
    #[test]
    fn displays_as_registered() {
        let raw = "https://app.example.com/cb?x=1";
        assert_eq!(RedirectUri::parse(raw).unwrap().to_string(), raw);
    }
}
