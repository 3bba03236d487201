//! Authentication of people: password hashing and policy. No web framework, no database here.

pub mod password;

pub use password::{PasswordError, PasswordHasher, PasswordSettings, Verification};
