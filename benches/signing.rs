//! Micro-benchmark: signing one access token with jsonwebtoken's stock aws-lc provider (which
//! parses the private key on every encode) against Latchkey's cached-key provider.
//! Run: `cargo bench --bench signing`. Figures in docs/benchmarks.md.

use std::time::Instant;

use jsonwebtoken::crypto::aws_lc;
use jsonwebtoken::{Algorithm, EncodingKey};
use latchkey::domain::SigningAlg;
use latchkey::keys::{generate_key, install_cached_signer};

const ROUNDS: u32 = 2_000;

fn per_op(label: &str, f: impl Fn()) {
    for _ in 0..50 {
        f();
    }
    let start = Instant::now();
    for _ in 0..ROUNDS {
        f();
    }
    let micros = start.elapsed().as_secs_f64() * 1e6 / f64::from(ROUNDS);
    println!("{label:<40} {micros:>9.1} µs/op");
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let message = b"eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJjbGllbnQ6YWJjIiwic2NvcGUiOiJyZWFkIn0";
    for alg in [SigningAlg::Es256, SigningAlg::Rs256] {
        let key = generate_key(alg)?;
        let (jwt_alg, encoding) = match alg {
            SigningAlg::Es256 => (Algorithm::ES256, EncodingKey::from_ec_der(&key.private_der)),
            SigningAlg::Rs256 => (Algorithm::RS256, EncodingKey::from_rsa_der(&key.private_der)),
        };
        per_op(&format!("{alg} stock provider (parse + sign)"), || {
            let signer = (aws_lc::DEFAULT_PROVIDER.signer_factory)(&jwt_alg, &encoding).map_err(|e| e.to_string());
            let _ = signer.map(|s| s.try_sign(message));
        });
        install_cached_signer();
        per_op(&format!("{alg} cached provider (jsonwebtoken::crypto::sign)"), || {
            let _ = jsonwebtoken::crypto::sign(message, &encoding, jwt_alg);
        });
    }
    Ok(())
}
