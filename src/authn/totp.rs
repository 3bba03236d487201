//! Time-based one-time passwords (RFC 6238) for authenticator apps: SHA-1, 6 digits, 30-second
//! steps — the parameters Google Authenticator, Authy and every other app assume — with one
//! step of clock drift either way (RFC 6238 §5.2). Which step matched is returned so the store
//! can refuse a code of a step already used (RFC 6238 §5.2: "MUST NOT" accept the same OTP twice).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rand::rngs::OsRng;
use rand::RngCore;
use subtle::ConstantTimeEq;
use totp_rs::{Algorithm, TOTP};

pub const DIGITS: usize = 6;
pub const STEP_SECS: i64 = 30;
/// RFC 4226 §4: at least 128 bits, 160 recommended.
pub const SECRET_BYTES: usize = 20;
/// Steps accepted either side of the current one.
const SKEW_STEPS: i64 = 1;

#[derive(Debug, thiserror::Error)]
#[error("TOTP: {0}")]
pub struct TotpError(String);

/// A fresh random seed.
pub fn new_secret() -> zeroize::Zeroizing<Vec<u8>> {
    let mut secret = vec![0u8; SECRET_BYTES];
    OsRng.fill_bytes(&mut secret);
    zeroize::Zeroizing::new(secret)
}

fn totp(secret: &[u8], issuer: &str, account: &str) -> Result<TOTP, TotpError> {
    TOTP::new(
        Algorithm::SHA1,
        DIGITS,
        0,
        // Never fails: STEP_SECS is a positive constant.
        u64::try_from(STEP_SECS).unwrap_or(30),
        secret.to_vec(),
        Some(issuer.to_string()),
        account.to_string(),
    )
    .map_err(|e| TotpError(e.to_string()))
}

/// What an enrolment page shows: the seed in base32 for typing, the `otpauth://` URI, and that
/// URI as a QR code (an SVG `data:` URI, allowed by the page CSP's `img-src data:`).
pub struct Provisioning {
    pub secret_base32: String,
    pub uri: String,
    pub qr_data_uri: String,
}

pub fn provisioning(secret: &[u8], issuer: &str, account: &str) -> Result<Provisioning, TotpError> {
    let totp = totp(secret, issuer, account)?;
    let uri = totp.get_url();
    let code = qrcode::QrCode::with_error_correction_level(uri.as_bytes(), qrcode::EcLevel::M)
        .map_err(|e| TotpError(e.to_string()))?;
    let svg = code
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .dark_color(qrcode::render::svg::Color("#000000"))
        .light_color(qrcode::render::svg::Color("#ffffff"))
        .build();
    Ok(Provisioning {
        secret_base32: totp.get_secret_base32(),
        uri,
        qr_data_uri: format!("data:image/svg+xml;base64,{}", STANDARD.encode(svg)),
    })
}

/// The code as people type it: digits, perhaps with spaces ("123 456").
fn normalize(code: &str) -> Option<String> {
    let digits: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    (digits.len() == DIGITS && digits.bytes().all(|b| b.is_ascii_digit())).then_some(digits)
}

/// The time step `code` belongs to, if it matches the current step or one either side.
pub fn matching_step(secret: &[u8], code: &str, now: i64) -> Option<i64> {
    let code = normalize(code)?;
    let totp = totp(secret, "x", "x").ok()?;
    let current = now.div_euclid(STEP_SECS);
    let mut found = None;
    // Every candidate is compared, in constant time, so timing says nothing about which matched.
    for step in (current - SKEW_STEPS)..=(current + SKEW_STEPS) {
        let Ok(time) = u64::try_from(step * STEP_SECS) else { continue };
        let expected = totp.generate(time);
        if bool::from(expected.as_bytes().ct_eq(code.as_bytes())) {
            found = Some(step);
        }
    }
    found
}

/// The code for `now` (tests and the browser test compute codes the way an app does).
pub fn code_at(secret: &[u8], now: i64) -> Option<String> {
    let totp = totp(secret, "x", "x").ok()?;
    u64::try_from(now).ok().map(|t| totp.generate(t))
}

/// Decodes a base32 seed as shown on the enrolment page.
pub fn decode_base32(text: &str) -> Option<Vec<u8>> {
    totp_rs::Secret::Encoded(text.trim().replace(' ', "").to_ascii_uppercase()).to_bytes().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 6238 Appendix B, SHA-1 seed "12345678901234567890", truncated to 6 digits.
    const SEED: &[u8] = b"12345678901234567890";

    /// Only six digits (spaces ignored) are a code; anything else is refused before any HMAC is
    /// computed (pinned after mutation testing: the comparison alone also refuses them).
    #[test]
    fn codes_are_six_digits() {
        assert_eq!(normalize(" 123 456 ").as_deref(), Some("123456"));
        for bad in ["12345", "1234567", "12345a", "abcdef", "", "١٢٣٤٥٦"] {
            assert_eq!(normalize(bad), None, "{bad}");
        }
    }

    #[test]
    fn rfc_6238_vectors() {
        assert_eq!(code_at(SEED, 59).unwrap(), "287082");
        assert_eq!(code_at(SEED, 1_111_111_109).unwrap(), "081804");
        assert_eq!(code_at(SEED, 2_000_000_000).unwrap(), "279037");
    }

    #[test]
    fn one_step_of_drift_either_way_and_no_more() {
        let now = 1_111_111_109;
        let step = now / STEP_SECS;
        for offset in [-1, 0, 1] {
            let code = code_at(SEED, now + offset * STEP_SECS).unwrap();
            assert_eq!(matching_step(SEED, &code, now), Some(step + offset), "offset {offset}");
        }
        for offset in [-2, 2] {
            let code = code_at(SEED, now + offset * STEP_SECS).unwrap();
            assert_eq!(matching_step(SEED, &code, now), None, "offset {offset}");
        }
        let code = code_at(SEED, now).unwrap();
        assert_eq!(matching_step(SEED, &format!("{} {}", &code[..3], &code[3..]), now), Some(step));
        assert_eq!(matching_step(SEED, "12345", now), None);
        assert_eq!(matching_step(SEED, "abcdef", now), None);
        assert_eq!(matching_step(SEED, "１２３４５６", now), None);
    }

    #[test]
    fn provisioning_names_the_issuer_and_round_trips_the_seed() {
        let seed = new_secret();
        let p = provisioning(&seed, "Latchkey", "jane@example.com").unwrap();
        assert!(p.uri.starts_with("otpauth://totp/Latchkey:jane%40example.com?"), "{}", p.uri);
        assert!(p.uri.contains("issuer=Latchkey"));
        assert!(p.qr_data_uri.starts_with("data:image/svg+xml;base64,"));
        assert_eq!(decode_base32(&p.secret_base32).unwrap(), seed.to_vec());
    }
}
