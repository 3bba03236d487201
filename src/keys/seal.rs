//! Sealing at rest: XChaCha20-Poly1305 with a random 192-bit nonce (no nonce bookkeeping across
//! replicas) and the key id as associated data, so a sealed key can't be moved to another row.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::rngs::OsRng;
use rand::RngCore;

use super::MasterKey;

const VERSION: u8 = 1;
const NONCE_LEN: usize = 24;

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("sealing failed")]
    Seal,
    #[error("sealed data does not open with this master key (wrong key, or the data was altered)")]
    Open,
}

pub fn seal(master: &MasterKey, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, SealError> {
    let cipher = XChaCha20Poly1305::new(master.bytes().into());
    let mut nonce = [0u8; NONCE_LEN];
    OsRng.fill_bytes(&mut nonce);
    let ciphertext =
        cipher.encrypt(XNonce::from_slice(&nonce), Payload { msg: plaintext, aad }).map_err(|_| SealError::Seal)?;
    let mut out = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
    out.push(VERSION);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ciphertext);
    Ok(out)
}

pub fn open(master: &MasterKey, sealed: &[u8], aad: &[u8]) -> Result<zeroize::Zeroizing<Vec<u8>>, SealError> {
    if sealed.len() < 1 + NONCE_LEN || sealed[0] != VERSION {
        return Err(SealError::Open);
    }
    let (nonce, ciphertext) = sealed[1..].split_at(NONCE_LEN);
    let cipher = XChaCha20Poly1305::new(master.bytes().into());
    cipher
        .decrypt(XNonce::from_slice(nonce), Payload { msg: ciphertext, aad })
        .map(zeroize::Zeroizing::new)
        .map_err(|_| SealError::Open)
}

/// Associated data of a sealed refresh-token successor: a label and both hashes, so the sealed
/// copy opens only when looked up through the token it replaced, and only as that successor
/// (a copy moved to another row, or answered for another predecessor, does not open).
fn successor_aad(predecessor_hash: &[u8; 32], successor_hash: &[u8; 32]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(24 + 64);
    aad.extend_from_slice(b"latchkey refresh successor");
    aad.extend_from_slice(predecessor_hash);
    aad.extend_from_slice(successor_hash);
    aad
}

/// Seals a refresh token's successor for the reuse grace window (issue 11 item 4).
pub fn seal_successor(
    master: &MasterKey,
    predecessor_hash: &[u8; 32],
    successor_hash: &[u8; 32],
    successor: &str,
) -> Result<Vec<u8>, SealError> {
    seal(master, successor.as_bytes(), &successor_aad(predecessor_hash, successor_hash))
}

/// Opens what [`seal_successor`] sealed; the token must hash to `successor_hash`.
pub fn open_successor(
    master: &MasterKey,
    predecessor_hash: &[u8; 32],
    successor_hash: &[u8; 32],
    sealed: &[u8],
) -> Result<String, SealError> {
    let plain = open(master, sealed, &successor_aad(predecessor_hash, successor_hash))?;
    let token = String::from_utf8(plain.to_vec()).map_err(|_| SealError::Open)?;
    if crate::secret::sha256(&token) != *successor_hash {
        return Err(SealError::Open);
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Short and truncated input is refused, never a panic (mutation testing: the length check
    /// with `*` for `+` would slice past the end of a 24-byte input).
    #[test]
    fn short_input_is_refused_not_a_panic() {
        let key = MasterKey::from_bytes([1; 32]);
        for len in 0..=(1 + NONCE_LEN + 16) {
            let mut input = vec![0u8; len];
            if let Some(first) = input.first_mut() {
                *first = VERSION;
            }
            assert!(open(&key, &input, b"aad").is_err(), "{len} bytes");
        }
    }

    #[test]
    fn round_trip_and_tamper() {
        let key = MasterKey::from_bytes([1; 32]);
        let sealed = seal(&key, b"private", b"kid-1").unwrap();
        assert_eq!(open(&key, &sealed, b"kid-1").unwrap().as_slice(), b"private");
        assert!(open(&key, &sealed, b"kid-2").is_err(), "aad binds the row");
        assert!(open(&MasterKey::from_bytes([2; 32]), &sealed, b"kid-1").is_err());
        let mut bad = sealed.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(open(&key, &bad, b"kid-1").is_err());
        assert!(open(&key, &[], b"kid-1").is_err());
    }

    #[test]
    fn a_sealed_successor_opens_only_for_its_predecessor() {
        let key = MasterKey::from_bytes([3; 32]);
        let token = "successor-token";
        let (a, b) = ([1u8; 32], crate::secret::sha256(token));
        let sealed = seal_successor(&key, &a, &b, token).unwrap();
        assert_eq!(open_successor(&key, &a, &b, &sealed).unwrap(), token);
        assert!(open_successor(&key, &[2; 32], &b, &sealed).is_err(), "another predecessor");
        assert!(open_successor(&key, &a, &[4; 32], &sealed).is_err(), "another successor");
        assert!(!sealed.windows(token.len()).any(|w| w == token.as_bytes()), "not in the clear");
    }
}
