//! Email (issue 12): messages rendered from templates, written to the outbox with the change
//! that causes them, and delivered over SMTP by the outbox's sender (src/outbox/).

pub mod compose;
pub mod transport;

pub use compose::{Email, MessageKind};
