//! Signing keys: generation (rsa, p256), sealing at rest with the master key, the in-memory key
//! ring that signs tokens, and the JWKS. No web framework, no database driver here.

mod generate;
pub mod lifecycle;
mod master;
mod ring;
pub mod rotation;
pub mod seal;
mod signer;

pub use generate::{generate_key, GeneratedKey};
pub use master::{MasterKey, MasterKeyError};
pub use ring::{ensure_initial_keys, KeyRing, KeyRingError};
pub use seal::SealError;
pub use signer::install_cached_signer;

/// What a test's code logged: the text of every event written while `f` runs, on this thread.
#[cfg(test)]
pub(crate) fn logged<T>(f: impl FnOnce() -> T) -> (T, String) {
    use std::io::Write;
    use std::sync::{Arc, Mutex};
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);
    impl Write for Lines {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let lines = Lines::default();
    let writer = lines.clone();
    let subscriber = tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).finish();
    let result = tracing::subscriber::with_default(subscriber, f);
    let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
    (result, text)
}
