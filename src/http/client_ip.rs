//! Who is asking: the client IP and user agent of a request, for per-IP throttling and the
//! audit trail. `X-Forwarded-For` is believed only when the connection comes from a
//! configured proxy (setting `trusted_proxies`; shared/security.md: "Forwarded headers are
//! trusted only from configured proxies"); otherwise anyone could pick their own address.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};

use crate::audit::Origin;
use crate::state::AppState;

/// The request's client address (`None` only when the server runs without connect info, as
/// in a router driven without a socket) and its user agent.
#[derive(Clone, Debug)]
pub struct Requester {
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
}

impl Requester {
    pub fn origin(&self) -> Origin {
        Origin::new(self.ip, self.user_agent.as_deref())
    }
}

/// The client address: the peer, or — when the peer is a trusted proxy — the nearest address
/// in `X-Forwarded-For` (read right to left) that is not itself a trusted proxy.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[ipnet::IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    // Every entry, in order, across repeated headers; then walked from the right (the entry our
    // own proxy appended) towards the left (what the client wrote itself).
    let mut entries: Vec<&str> = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        let Ok(text) = value.to_str() else { return peer };
        entries.extend(text.split(','));
    }
    let mut nearest = peer;
    for entry in entries.iter().rev() {
        match entry.trim().parse::<IpAddr>() {
            Ok(ip) if is_trusted(&ip) => nearest = ip,
            Ok(ip) => return ip,
            // Malformed: nothing left of it can be believed; the last trusted hop answers for it.
            Err(_) => return nearest,
        }
    }
    nearest
}

impl<S> FromRequestParts<S> for Requester
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
        let ip = peer.map(|peer| client_ip(peer, &parts.headers, state.settings().trusted_proxy_nets()));
        let user_agent = parts.headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(str::to_string);
        Ok(Self { ip, user_agent })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn xff(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let proxy: IpAddr = "10.1.2.3".parse().unwrap();
        let stranger: IpAddr = "198.51.100.7".parse().unwrap();
        // From a stranger the header is ignored.
        assert_eq!(client_ip(stranger, &xff("203.0.113.9"), &trusted), stranger);
        // From the proxy: the rightmost address that is not a proxy (the client may prepend lies).
        assert_eq!(
            client_ip(proxy, &xff("1.2.3.4, 203.0.113.9, 10.9.9.9"), &trusted),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
        // No header: the proxy itself.
        assert_eq!(client_ip(proxy, &HeaderMap::new(), &trusted), proxy);
        // Garbage: nothing believed beyond it — not even a plausible address to its left.
        assert_eq!(client_ip(proxy, &xff("nonsense"), &trusted), proxy);
        assert_eq!(client_ip(proxy, &xff("9.9.9.9, x, 10.5.5.5"), &trusted), "10.5.5.5".parse::<IpAddr>().unwrap());
        assert_eq!(client_ip(proxy, &xff("9.9.9.9, x, 5.5.5.5"), &trusted), "5.5.5.5".parse::<IpAddr>().unwrap());
        // Nothing trusted: always the peer.
        assert_eq!(client_ip(proxy, &xff("203.0.113.9"), &[]), proxy);
    }
}
