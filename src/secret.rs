//! Random tokens and their hashes: the one place that makes client secrets, ids and opaque tokens.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// `bytes` random bytes, base64url without padding. `thread_rng` is a CSPRNG (ChaCha12) seeded
/// from the operating system and reseeded periodically; unlike `OsRng` it costs no system call,
/// which matters when every access token carries a fresh `jti`.
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

/// SHA-256 of a high-entropy secret. A slow hash would add nothing for 256-bit random values
/// (shared/design.md, "Tokens and secrets") and would cost every token request.
pub fn sha256(value: &str) -> [u8; 32] {
    Sha256::digest(value.as_bytes()).into()
}

/// Compares a presented secret with a stored hash in constant time.
pub fn verify_hash(presented: &str, stored: &[u8; 32]) -> bool {
    bool::from(sha256(presented).ct_eq(stored))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_and_distinct() {
        let a = random_token(32);
        assert_eq!(a.len(), 43);
        assert_ne!(a, random_token(32));
    }

    #[test]
    fn verify() {
        let h = sha256("s3cret");
        assert!(verify_hash("s3cret", &h));
        assert!(!verify_hash("s3cres", &h));
    }
}
