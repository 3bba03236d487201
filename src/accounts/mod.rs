//! Self-service accounts (issue 12): sign-up, email verification, password reset, email change
//! and invitations. Like the protocol modules, this code takes a store, its inputs and `now`,
//! and never names the web framework or the database; the pages (web/) and the CLI (admin/)
//! call it.
//!
//! The rules every flow here keeps:
//! - a link is 256 random bits, stored as its SHA-256, single use, short-lived, and a newer link
//!   of the same purpose voids the older ones;
//! - a page that takes an email answers the same whatever the address, and the owner of an
//!   existing address is told by email instead (no user enumeration);
//! - a message is written to the outbox in the transaction of the change that causes it, so the
//!   answer never waits on the mail server.

pub mod email_change;
pub mod invitation;
pub mod links;
pub mod reset;
pub mod sign_up;

pub use links::{AccountSettings, Letters};

/// Why a self-service step did not happen.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// The input can't be used; the message is for the person at the page.
    #[error("{0}")]
    Invalid(String),
    /// The link is unknown, used, expired, voided or its account disabled.
    #[error("the link is no longer valid")]
    DeadLink,
    /// The address belongs to another account (an email change, or an invitation to an
    /// address that has an account other than an unaccepted invitation).
    #[error("the address belongs to another account")]
    Taken,
    /// The database, the hasher or a template failed; nothing was changed.
    #[error("unavailable: {0}")]
    Unavailable(String),
}

impl From<crate::store::StoreError> for AccountError {
    fn from(e: crate::store::StoreError) -> Self {
        AccountError::Unavailable(e.to_string())
    }
}
