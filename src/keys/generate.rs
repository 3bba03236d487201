//! Key generation with the `rsa` and `p256` crates. They only make keys and export public JWKs;
//! signing goes through jsonwebtoken on aws-lc (RUSTSEC-2023-0071 concerns RustCrypto RSA signing).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::pkcs8::EncodePrivateKey;
use rand::rngs::OsRng;
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::traits::PublicKeyParts;
use serde_json::json;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::domain::SigningAlg;

/// RSA modulus size. 2048 bits is NIST's floor through 2030 and what RS256 verifiers expect.
const RSA_BITS: usize = 2048;

pub struct GeneratedKey {
    pub alg: SigningAlg,
    /// RFC 7638 JWK thumbprint (SHA-256, base64url): unique, and derivable by anyone from the JWK.
    pub kid: String,
    /// The DER form jsonwebtoken signs with: PKCS#1 for RSA, PKCS#8 for P-256.
    pub private_der: Zeroizing<Vec<u8>>,
    /// Public JWK with `kid`, `alg` and `use: sig`.
    pub public_jwk: serde_json::Value,
}

#[derive(Debug, thiserror::Error)]
#[error("key generation failed: {0}")]
pub struct KeyGenError(String);

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn thumbprint(canonical: &str) -> String {
    b64(&Sha256::digest(canonical.as_bytes()))
}

/// Generates a key for `alg`. RSA takes a noticeable time: call it off the async runtime.
pub fn generate_key(alg: SigningAlg) -> Result<GeneratedKey, KeyGenError> {
    match alg {
        SigningAlg::Rs256 => {
            let key = rsa::RsaPrivateKey::new(&mut OsRng, RSA_BITS).map_err(|e| KeyGenError(e.to_string()))?;
            let der = key.to_pkcs1_der().map_err(|e| KeyGenError(e.to_string()))?;
            let n = b64(&key.n().to_bytes_be());
            let e = b64(&key.e().to_bytes_be());
            // RFC 7638 §3.2: required members only, lexicographic order, no whitespace.
            let kid = thumbprint(&format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#));
            Ok(GeneratedKey {
                alg,
                public_jwk: json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": n, "e": e}),
                kid,
                private_der: Zeroizing::new(der.as_bytes().to_vec()),
            })
        }
        SigningAlg::Es256 => {
            let secret = p256::SecretKey::random(&mut OsRng);
            let der = secret.to_pkcs8_der().map_err(|e| KeyGenError(e.to_string()))?;
            let point = secret.public_key().to_encoded_point(false);
            let (Some(x), Some(y)) = (point.x(), point.y()) else {
                return Err(KeyGenError("P-256 public key has no affine coordinates".into()));
            };
            let (x, y) = (b64(x), b64(y));
            let kid = thumbprint(&format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#));
            Ok(GeneratedKey {
                alg,
                public_jwk: json!({"kty": "EC", "kid": kid, "use": "sig", "alg": "ES256", "crv": "P-256", "x": x, "y": y}),
                kid,
                private_der: Zeroizing::new(der.as_bytes().to_vec()),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ec_key_has_public_parts_only() {
        let k = generate_key(SigningAlg::Es256).unwrap();
        assert_eq!(k.public_jwk["kid"], k.kid);
        assert!(k.public_jwk.get("d").is_none());
        assert_eq!(k.kid.len(), 43);
    }

    #[test]
    fn rsa_thumbprint_matches_rfc7638_shape() {
        let k = generate_key(SigningAlg::Rs256).unwrap();
        assert_eq!(k.public_jwk["e"], "AQAB");
        assert!(k.public_jwk.get("d").is_none() && k.public_jwk.get("p").is_none());
    }
}
