//! Email (issue 12): messages rendered from templates, written to the outbox with the change
//! that causes them, and delivered by a background sender over SMTP.

pub mod compose;
pub mod sender;
pub mod transport;

pub use compose::{Email, MessageKind};
