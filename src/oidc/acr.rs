//! Authentication context classes (OIDC Core §2 `acr`, §3.1.2.1 `acr_values`). Latchkey uses
//! the REFEDS profiles, which relying parties already know: single-factor and multi-factor.
//! Which one a sign-in reached follows from its `amr` (RFC 8176): `otp` means a second factor.

/// Password alone (REFEDS Single-Factor Authentication profile).
pub const SINGLE_FACTOR: &str = "https://refeds.org/profile/sfa";
/// Password and a one-time code (REFEDS Multi-Factor Authentication profile).
pub const MULTI_FACTOR: &str = "https://refeds.org/profile/mfa";
pub const SUPPORTED: [&str; 2] = [SINGLE_FACTOR, MULTI_FACTOR];

/// The `amr` value of a second factor (RFC 8176 §2: one-time password).
pub const SECOND_FACTOR_AMR: &str = "otp";

pub fn has_second_factor(amr: &[String]) -> bool {
    amr.iter().any(|m| m == SECOND_FACTOR_AMR)
}

/// The `acr` an ID token states for a sign-in with these methods.
pub fn for_amr(amr: &[String]) -> &'static str {
    if has_second_factor(amr) {
        MULTI_FACTOR
    } else {
        SINGLE_FACTOR
    }
}

/// Whether `acr_values` (space-separated, in order of preference) asks for multi-factor. Only
/// the multi-factor profile raises the bar; values Latchkey does not know are ignored, as OIDC
/// Core §3.1.2.1 makes `acr_values` a voluntary request.
pub fn requests_mfa(acr_values: Option<&str>) -> bool {
    acr_values.is_some_and(|values| values.split(' ').any(|v| v == MULTI_FACTOR))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acr_follows_amr_and_only_the_mfa_profile_raises_the_bar() {
        assert_eq!(for_amr(&["pwd".into()]), SINGLE_FACTOR);
        assert_eq!(for_amr(&["pwd".into(), "otp".into()]), MULTI_FACTOR);
        assert!(requests_mfa(Some("https://refeds.org/profile/sfa https://refeds.org/profile/mfa")));
        assert!(!requests_mfa(Some("urn:unknown")));
        assert!(!requests_mfa(None));
    }
}
