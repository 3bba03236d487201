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

const ALPHANUMERIC: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// An identifier of `len` random alphanumeric characters (log2(62) ≈ 5.95 bits each: 22
/// characters carry 131 bits). Ids are typed into shells and URLs, so they never start with `-`
/// and need no escaping anywhere.
pub fn random_id(len: usize) -> String {
    let mut rng = rand::thread_rng();
    let mut out = String::with_capacity(len);
    while out.len() < len {
        let mut byte = [0u8; 1];
        rng.fill_bytes(&mut byte);
        // Rejection sampling: 248 = 4 × 62, so every symbol is equally likely.
        if byte[0] < 248 {
            out.push(char::from(ALPHANUMERIC[usize::from(byte[0] % 62)]));
        }
    }
    out
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
    fn ids_are_alphanumeric() {
        for _ in 0..200 {
            let id = random_id(22);
            assert_eq!(id.len(), 22);
            assert!(id.chars().all(|c| c.is_ascii_alphanumeric()), "{id}");
        }
    }

    #[test]
    fn verify() {
        let h = sha256("s3cret");
        assert!(verify_hash("s3cret", &h));
        assert!(!verify_hash("s3cres", &h));
    }
}
