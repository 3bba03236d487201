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
