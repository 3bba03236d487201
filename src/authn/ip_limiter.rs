//! Failed attempts per client IP, in memory (shared/security.md: "per client IP"): a GCRA
//! bucket per key (the `governor` crate) that only failures drain. When a key runs dry it is
//! refused *before* anything is checked until the bucket has room again, so a blocked party
//! learns nothing from further guesses. Each replica keeps its own buckets; the per-account
//! counters in the database are the shared defence.
//!
//! Two limiters use this type, and they never share buckets (issue 9 item 1): the hosted
//! sign-in pages count failures per address (people guessing passwords and codes), and the
//! token endpoint counts failed client authentication per (address, client_id) (services
//! guessing secrets), so one misconfigured service can block neither another service at its
//! address nor the people behind the same NAT.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// The sign-in pages' limiter: one bucket per client address.
pub type IpFailureLimiter = FailureLimiter<IpAddr>;

/// The token endpoint's limiter: one bucket per (client address, presented client_id).
pub type ClientAuthFailureLimiter = FailureLimiter<(IpAddr, String)>;

/// Longest client_id kept as part of a key: real ids are 22 characters, and an attacker
/// spraying long made-up ids must not make the map expensive.
pub const MAX_KEYED_CLIENT_ID: usize = 64;

/// The token endpoint's key for `ip` and the client_id a request presented (empty when none).
pub fn client_auth_key(ip: IpAddr, client_id: Option<&str>) -> (IpAddr, String) {
    (ip, client_id.unwrap_or_default().chars().take(MAX_KEYED_CLIENT_ID).collect())
}

pub struct FailureLimiter<K: Hash + Eq + Clone> {
    limiter: DefaultKeyedRateLimiter<K>,
    blocked: Mutex<HashMap<K, Instant>>,
    clock: DefaultClock,
}

impl<K: Hash + Eq + Clone> FailureLimiter<K> {
    pub fn new(burst: u32, per_minute: u32) -> Self {
        let per_minute = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
        Self::with_quota(Quota::per_minute(per_minute).allow_burst(burst))
    }

    /// `burst` at once, then `per_hour` spread over the hour: the pages that send email
    /// (issue 12: sign-up, reset and resend requests per client address).
    pub fn per_hour(burst: u32, per_hour: u32) -> Self {
        let per_hour = NonZeroU32::new(per_hour).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
        Self::with_quota(Quota::per_hour(per_hour).allow_burst(burst))
    }

    fn with_quota(quota: Quota) -> Self {
        Self {
            limiter: RateLimiter::dashmap(quota),
            blocked: Mutex::new(HashMap::new()),
            clock: DefaultClock::default(),
        }
    }

    /// `Some(wait)` while `key` is refused, rounded up to whole seconds: `Retry-After` counts
    /// seconds, and a client that waits as long as it says must not be refused again.
    pub fn retry_after(&self, key: &K) -> Option<Duration> {
        let now = Instant::now();
        let blocked = self.blocked.lock().ok()?;
        let wait = blocked.get(key).and_then(|until| until.checked_duration_since(now)).filter(|d| !d.is_zero())?;
        Some(Duration::from_secs(wait.as_secs() + u64::from(wait.subsec_nanos() > 0)))
    }

    /// Counts a failure of `key`; `Some(wait)` when that emptied its bucket.
    pub fn record_failure(&self, key: K) -> Option<Duration> {
        match self.limiter.check_key(&key) {
            Ok(()) => None,
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.clock.now()).max(Duration::from_secs(1));
                if let Ok(mut blocked) = self.blocked.lock() {
                    blocked.insert(key, Instant::now() + wait);
                }
                Some(wait)
            }
        }
    }

    /// Forgets keys whose buckets are full again (housekeeping), so memory stays bounded.
    pub fn forget_idle(&self) {
        self.limiter.retain_recent();
        let now = Instant::now();
        if let Ok(mut blocked) = self.blocked.lock() {
            blocked.retain(|_, until| *until > now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_failures_blocks_that_address_only() {
        let limiter = IpFailureLimiter::new(3, 1);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..3 {
            assert!(limiter.record_failure(a).is_none());
        }
        assert!(limiter.retry_after(&a).is_none());
        let wait = limiter.record_failure(a).expect("the fourth failure blocks");
        assert!(wait.as_secs() >= 1 && wait.as_secs() <= 60, "{wait:?}");
        assert!(limiter.retry_after(&a).is_some());
        assert!(limiter.retry_after(&b).is_none());
        limiter.forget_idle();
        assert!(limiter.retry_after(&a).is_some(), "still blocked");
    }

    /// Housekeeping drops the blocks that have ended and keeps the rest (memory stays bounded
    /// under a spray of addresses).
    #[test]
    fn forgetting_drops_ended_blocks_only() {
        let limiter = IpFailureLimiter::new(3, 1);
        let ended: IpAddr = "192.0.2.1".parse().unwrap();
        let live: IpAddr = "192.0.2.2".parse().unwrap();
        {
            let mut blocked = limiter.blocked.lock().unwrap();
            let now = Instant::now();
            blocked.insert(ended, now.checked_sub(Duration::from_millis(5)).unwrap());
            blocked.insert(live, now + Duration::from_secs(60));
        }
        limiter.forget_idle();
        let blocked = limiter.blocked.lock().unwrap();
        assert!(!blocked.contains_key(&ended));
        assert!(blocked.contains_key(&live));
    }

    #[test]
    fn client_auth_buckets_are_per_address_and_client() {
        let limiter = ClientAuthFailureLimiter::new(1, 1);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(limiter.record_failure(client_auth_key(ip, Some("alpha"))).is_none());
        assert!(limiter.record_failure(client_auth_key(ip, Some("alpha"))).is_some());
        assert!(limiter.retry_after(&client_auth_key(ip, Some("alpha"))).is_some());
        assert!(limiter.retry_after(&client_auth_key(ip, Some("beta"))).is_none());
        assert!(limiter.retry_after(&client_auth_key(ip, None)).is_none());
        let long = "x".repeat(1000);
        assert_eq!(client_auth_key(ip, Some(&long)).1.len(), MAX_KEYED_CLIENT_ID);
    }
}
