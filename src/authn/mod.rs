//! Authentication of people: password hashing and policy, second factors (TOTP, recovery
//! codes), and the failed-attempt policies. No web framework, no database here.

pub mod ip_limiter;
pub mod password;
pub mod recovery;
pub mod sign_in;
pub mod throttle;
pub mod totp;

pub use ip_limiter::{client_auth_key, ClientAuthFailureLimiter, IpFailureLimiter};
pub use password::{PasswordError, PasswordHasher, PasswordSettings, Verification};
pub use throttle::{Attempt, AttemptCount, ThrottlePolicy};
