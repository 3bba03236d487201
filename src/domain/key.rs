use std::fmt;
use std::str::FromStr;

use super::SigningAlg;

/// Where a signing key is in its life (shared/design.md, "Tokens and secrets"):
/// published ahead (`Next`), signing (`Active`), still published for verification (`Retired`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyStatus {
    Next,
    Active,
    Retired,
}

impl KeyStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyStatus::Next => "next",
            KeyStatus::Active => "active",
            KeyStatus::Retired => "retired",
        }
    }
}

impl fmt::Display for KeyStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeyStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "next" => Ok(KeyStatus::Next),
            "active" => Ok(KeyStatus::Active),
            "retired" => Ok(KeyStatus::Retired),
            other => Err(format!("unknown key status `{other}`")),
        }
    }
}

/// A signing key as stored: the private part sealed, the public part as a JWK.
#[derive(Clone, Debug, PartialEq)]
pub struct KeyRecord {
    pub kid: String,
    pub alg: SigningAlg,
    pub status: KeyStatus,
    pub sealed_private_key: Vec<u8>,
    pub public_jwk: serde_json::Value,
    pub created_at: i64,
    pub activates_at: i64,
    pub retired_at: Option<i64>,
    pub removes_at: Option<i64>,
}
