use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::rngs::OsRng;
use rand::RngCore;
use zeroize::Zeroizing;

/// The 256-bit key that seals private signing keys (and, later, TOTP seeds) at rest.
#[derive(Clone)]
pub struct MasterKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey([redacted])")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MasterKeyError {
    #[error("setting `master_key`: must be 32 bytes written as base64url (43 characters) or hex (64 characters)")]
    BadEncoding,
    #[error("master key file {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("master key file {0}: must hold 32 bytes as base64url (43 characters) or hex (64 characters)")]
    BadFile(String),
}

fn decode(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        (0..32).map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()).collect::<Option<Vec<u8>>>()?
    } else {
        URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')).ok()?
    };
    <[u8; 32]>::try_from(bytes.as_slice()).ok()
}

impl MasterKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// Parses the `master_key` setting.
    pub fn from_setting(text: &str) -> Result<Self, MasterKeyError> {
        decode(text).map(Self::from_bytes).ok_or(MasterKeyError::BadEncoding)
    }

    /// Reads the key file, creating it (mode 0600, parent directory 0700) with a fresh random
    /// key when it does not exist yet. Returns the key and whether it was created.
    pub fn load_or_create(path: &Path) -> Result<(Self, bool), MasterKeyError> {
        let io = |source| MasterKeyError::Io { path: path.display().to_string(), source };
        match fs::read_to_string(path) {
            Ok(text) => {
                if let Ok(meta) = fs::metadata(path) {
                    if meta.permissions().mode() & 0o077 != 0 {
                        tracing::warn!(path = %path.display(), "master key file is readable by group or others; chmod 600 it");
                    }
                }
                let key = decode(&text).ok_or_else(|| MasterKeyError::BadFile(path.display().to_string()))?;
                Ok((Self::from_bytes(key), false))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    if !parent.exists() {
                        fs::DirBuilder::new().recursive(true).mode(0o700).create(parent).map_err(io)?;
                    }
                }
                let mut bytes = Zeroizing::new([0u8; 32]);
                OsRng.fill_bytes(bytes.as_mut());
                let text = Zeroizing::new(URL_SAFE_NO_PAD.encode(bytes.as_ref()));
                // create_new: if another process created it first, fail rather than overwrite.
                let mut file =
                    fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(io)?;
                file.write_all(text.as_bytes()).and_then(|_| file.write_all(b"\n")).map_err(io)?;
                file.sync_all().map_err(io)?;
                Ok((Self::from_bytes(*bytes), true))
            }
            Err(e) => Err(io(e)),
        }
    }

    pub(super) fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_hex_and_base64url() {
        let hex = "00".repeat(31) + "ff";
        assert_eq!(MasterKey::from_setting(&hex).unwrap().bytes()[31], 0xff);
        let b64 = URL_SAFE_NO_PAD.encode([7u8; 32]);
        assert_eq!(MasterKey::from_setting(&b64).unwrap().bytes()[0], 7);
        assert!(MasterKey::from_setting("short").is_err());
    }

    /// Only 64 hex digits are read as hex: 43 base64url characters that all happen to be hex
    /// digits are base64url (mutation testing: the length check's `&&` → `||` survived, and
    /// sliced such a key as hex, past its end).
    #[test]
    fn a_base64url_key_made_of_hex_digits_is_base64url() {
        let text = "0123456789abcdefABCDEF0123456789abcdefABCD0";
        assert!(text.len() == 43 && text.bytes().all(|b| b.is_ascii_hexdigit()));
        let expected: [u8; 32] = URL_SAFE_NO_PAD.decode(text).unwrap().try_into().unwrap();
        assert_eq!(MasterKey::from_setting(text).unwrap().bytes(), &expected);
        // And 64 characters that are not all hex are not hex (nor 32 bytes of base64url).
        assert!(MasterKey::from_setting(&"g".repeat(64)).is_err());
    }

    #[test]
    fn creates_file_with_mode_0600_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/master.key");
        let (a, created) = MasterKey::load_or_create(&path).unwrap();
        assert!(created);
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (b, created) = MasterKey::load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(a.bytes(), b.bytes());
    }

    /// A key file that group or others may read is still used, with a warning; a 0600 one
    /// without (mutation testing: the mode check's `!=` → `==` and `&` → `|`/`^` survived, as
    /// the warning is all they change).
    #[test]
    fn a_key_file_others_may_read_is_warned_about() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let (created, _) = MasterKey::load_or_create(&path).unwrap();
        for (mode, warned) in [(0o600, false), (0o400, false), (0o640, true), (0o604, true)] {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            let (loaded, log) = crate::keys::logged(|| MasterKey::load_or_create(&path).unwrap());
            assert_eq!(loaded.0.bytes(), created.bytes(), "{mode:o}");
            assert_eq!(log.contains("master key file is readable by group or others"), warned, "{mode:o}: {log}");
        }
    }

    /// A key file that exists but cannot be read is an error that says why, and is never
    /// replaced (mutation testing: the `NotFound` guard → `true` survived, as it failed anyway
    /// on `create_new`, with the wrong cause).
    #[test]
    fn an_unreadable_key_file_is_an_error_with_its_cause_and_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        fs::write(&path, [0xff, 0xfe, 0x00]).unwrap();
        match MasterKey::load_or_create(&path) {
            Err(MasterKeyError::Io { source, .. }) => assert_eq!(source.kind(), std::io::ErrorKind::InvalidData),
            other => panic!("{other:?}"),
        }
        assert_eq!(fs::read(&path).unwrap(), [0xff, 0xfe, 0x00]);
    }
}
