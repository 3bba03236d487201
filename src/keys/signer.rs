//! jsonwebtoken signs through a process-wide `CryptoProvider`. Its aws-lc provider parses the
//! private key on every `encode` (RS256: ~730 µs per token instead of ~260 µs with a parsed key).
//! This provider keeps the parsed aws-lc key pairs, keyed by their DER bytes, and otherwise
//! defers to jsonwebtoken's own aws-lc provider (verification, HMAC, other algorithms).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING, RSA_PKCS1_SHA256};
use jsonwebtoken::crypto::{aws_lc, CryptoProvider, JwtSigner};
use jsonwebtoken::errors::{ErrorKind, Result as JwtResult};
use jsonwebtoken::signature::{Error as SignatureError, Signer};
use jsonwebtoken::{Algorithm, EncodingKey};

/// Keys rotate every few weeks, so a handful of entries is the steady state; the bound only
/// guards against a leak if something signs with ever-new keys.
const MAX_CACHED: usize = 64;

enum ParsedKey {
    Es256(EcdsaKeyPair),
    Rs256(RsaKeyPair),
}

type Cache = RwLock<HashMap<Vec<u8>, Arc<ParsedKey>>>;

fn cache() -> &'static Cache {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE.get_or_init(|| RwLock::new(HashMap::new()))
}

struct CachedSigner {
    key: Arc<ParsedKey>,
    alg: Algorithm,
}

impl Signer<Vec<u8>> for CachedSigner {
    fn try_sign(&self, msg: &[u8]) -> Result<Vec<u8>, SignatureError> {
        let rng = SystemRandom::new();
        match self.key.as_ref() {
            ParsedKey::Es256(pair) => {
                pair.sign(&rng, msg).map(|s| s.as_ref().to_vec()).map_err(SignatureError::from_source)
            }
            ParsedKey::Rs256(pair) => {
                let mut out = vec![0; pair.public_modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, &rng, msg, &mut out).map_err(SignatureError::from_source)?;
                Ok(out)
            }
        }
    }
}

impl JwtSigner for CachedSigner {
    fn algorithm(&self) -> Algorithm {
        self.alg
    }
}

fn parse(alg: Algorithm, der: &[u8]) -> JwtResult<ParsedKey> {
    match alg {
        Algorithm::ES256 => EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
            .map(ParsedKey::Es256)
            .map_err(|_| ErrorKind::InvalidEcdsaKey.into()),
        _ => {
            RsaKeyPair::from_der(der).map(ParsedKey::Rs256).map_err(|e| ErrorKind::InvalidRsaKey(e.to_string()).into())
        }
    }
}

fn cached_signer(alg: &Algorithm, key: &EncodingKey) -> JwtResult<Box<dyn JwtSigner>> {
    if !matches!(alg, Algorithm::ES256 | Algorithm::RS256) {
        return (aws_lc::DEFAULT_PROVIDER.signer_factory)(alg, key);
    }
    let der = key.as_bytes();
    let hit = cache().read().ok().and_then(|map| map.get(der).cloned());
    let parsed = match hit {
        Some(parsed) => parsed,
        None => {
            let parsed = Arc::new(parse(*alg, der)?);
            if let Ok(mut map) = cache().write() {
                if map.len() >= MAX_CACHED {
                    map.clear();
                }
                map.insert(der.to_vec(), parsed.clone());
            }
            parsed
        }
    };
    // A cached RSA key asked for ES256 (or the reverse) is refused, as jsonwebtoken would.
    match (parsed.as_ref(), alg) {
        (ParsedKey::Es256(_), Algorithm::ES256) | (ParsedKey::Rs256(_), Algorithm::RS256) => {
            Ok(Box::new(CachedSigner { key: parsed, alg: *alg }))
        }
        _ => Err(ErrorKind::InvalidAlgorithm.into()),
    }
}

/// Installs the caching provider for this process. Safe to call more than once.
pub fn install_cached_signer() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let provider: &'static CryptoProvider = Box::leak(Box::new(CryptoProvider {
            signer_factory: cached_signer,
            verifier_factory: aws_lc::DEFAULT_PROVIDER.verifier_factory,
            key_utils: aws_lc::DEFAULT_PROVIDER.key_utils.clone(),
        }));
        // Err means a provider was installed already (by an embedding program); keep theirs.
        let _ = provider.install_default();
    });
}
