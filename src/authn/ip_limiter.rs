//! Failed attempts per client IP, in memory (shared/security.md: "per client IP"): a GCRA
//! bucket per address (the `governor` crate) that only failures drain — sign-in, codes, and
//! client authentication or grants at the token endpoint. When an address runs dry it is
//! refused *before* anything is checked until the bucket has room again, so a blocked address
//! learns nothing from further guesses. Each replica keeps its own buckets; the per-account
//! counters in the database are the shared defence.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

pub struct IpFailureLimiter {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    blocked: Mutex<HashMap<IpAddr, Instant>>,
    clock: DefaultClock,
}

impl IpFailureLimiter {
    pub fn new(burst: u32, per_minute: u32) -> Self {
        let per_minute = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::per_minute(per_minute).allow_burst(burst);
        Self {
            limiter: RateLimiter::dashmap(quota),
            blocked: Mutex::new(HashMap::new()),
            clock: DefaultClock::default(),
        }
    }

    /// `Some(wait)` while `ip` is refused, rounded up to whole seconds: `Retry-After` counts
    /// seconds, and a client that waits as long as it says must not be refused again.
    pub fn retry_after(&self, ip: IpAddr) -> Option<Duration> {
        let now = Instant::now();
        let blocked = self.blocked.lock().ok()?;
        let wait = blocked.get(&ip).and_then(|until| until.checked_duration_since(now)).filter(|d| !d.is_zero())?;
        Some(Duration::from_secs(wait.as_secs() + u64::from(wait.subsec_nanos() > 0)))
    }

    /// Counts a failure from `ip`; `Some(wait)` when that emptied its bucket.
    pub fn record_failure(&self, ip: IpAddr) -> Option<Duration> {
        match self.limiter.check_key(&ip) {
            Ok(()) => None,
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.clock.now()).max(Duration::from_secs(1));
                if let Ok(mut blocked) = self.blocked.lock() {
                    blocked.insert(ip, Instant::now() + wait);
                }
                Some(wait)
            }
        }
    }

    /// Forgets addresses whose buckets are full again (housekeeping), so memory stays bounded.
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
        assert!(limiter.retry_after(a).is_none());
        let wait = limiter.record_failure(a).expect("the fourth failure blocks");
        assert!(wait.as_secs() >= 1 && wait.as_secs() <= 60, "{wait:?}");
        assert!(limiter.retry_after(a).is_some());
        assert!(limiter.retry_after(b).is_none());
        limiter.forget_idle();
        assert!(limiter.retry_after(a).is_some(), "still blocked");
    }
}
