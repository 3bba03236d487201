//! Web origins (RFC 6454) for CORS: the browser apps allowed to read the token, userinfo and
//! revocation endpoints' answers (issue 11 item 1).

use url::Url;

use super::{is_loopback_host, RedirectUri};

/// The origin a browser sends in `Origin`: `scheme://host[:port]`, ASCII, default port omitted.
fn serialization(url: &Url) -> Option<String> {
    match url.origin() {
        origin @ url::Origin::Tuple(..) => Some(origin.ascii_serialization()),
        url::Origin::Opaque(_) => None,
    }
}

/// Validates an origin an admin registers (`--allowed-origin`): exactly `scheme://host[:port]`,
/// https, or http on a loopback host, as for redirect URIs. Never `*` or `null`, no path, query,
/// fragment or user info. Returns it as browsers send it (lower-case host, default port dropped).
pub fn parse_allowed_origin(raw: &str) -> Result<String, String> {
    let bad =
        || format!("allowed origin `{raw}` must be exactly scheme://host[:port] (https, or http on a loopback host)");
    let url = Url::parse(raw).map_err(|_| bad())?;
    let https = url.scheme() == "https";
    let loopback_http = url.scheme() == "http" && is_loopback_host(&url);
    if !(https || loopback_http) || !url.username().is_empty() || url.password().is_some() {
        return Err(bad());
    }
    let origin = serialization(&url).ok_or_else(bad)?;
    // Nothing but the origin: `https://a.example` or `https://a.example/`, no path or query.
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(bad());
    }
    Ok(origin)
}

/// The origin of a registered redirect URI (custom schemes of native apps have none).
pub fn redirect_origin(uri: &RedirectUri) -> Option<String> {
    Url::parse(uri.as_str()).ok().as_ref().and_then(serialization)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_exact_and_normalised() {
        assert_eq!(parse_allowed_origin("https://App.Example.com").unwrap(), "https://app.example.com");
        assert_eq!(parse_allowed_origin("https://app.example.com:443/").unwrap(), "https://app.example.com");
        assert_eq!(parse_allowed_origin("https://app.example.com:8443").unwrap(), "https://app.example.com:8443");
        assert_eq!(parse_allowed_origin("http://127.0.0.1:9999").unwrap(), "http://127.0.0.1:9999");
        for bad in [
            "*",
            "null",
            "http://app.example.com",
            "https://app.example.com/path",
            "https://app.example.com?x=1",
            "https://app.example.com#f",
            "https://user@app.example.com",
            "javascript:alert(1)",
            "data:text/html,x",
            "file:///etc/passwd",
            "",
        ] {
            assert!(parse_allowed_origin(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn redirect_uris_give_their_origin() {
        let uri = RedirectUri::parse("http://127.0.0.1:9999/callback?x=1").unwrap();
        assert_eq!(redirect_origin(&uri).as_deref(), Some("http://127.0.0.1:9999"));
        let native = RedirectUri::parse("com.example.app:/callback").unwrap();
        assert_eq!(redirect_origin(&native), None);
    }
}
