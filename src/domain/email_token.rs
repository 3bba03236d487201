//! Single-use links sent by email, and the outbox rows that carry them (issue 12).

/// What a link sent by email is for. Each purpose has its own lifetime and its own page; a
/// token of one purpose is never accepted by another's page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmailPurpose {
    /// Proves the user reads mail at the address (sign-up, or later from the account page).
    VerifyEmail,
    /// Sets a new password for a user who forgot theirs.
    ResetPassword,
    /// Sets the first password of an invited account.
    Invitation,
    /// Moves the account to the new address the link was sent to.
    ChangeEmail,
}

impl EmailPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            EmailPurpose::VerifyEmail => "verify_email",
            EmailPurpose::ResetPassword => "reset_password",
            EmailPurpose::Invitation => "invitation",
            EmailPurpose::ChangeEmail => "change_email",
        }
    }
}

/// A link as stored: only the SHA-256 of its 256-bit token.
#[derive(Clone, Debug)]
pub struct EmailToken {
    pub token_hash: [u8; 32],
    pub purpose: EmailPurpose,
    pub user_sub: String,
    /// The address the link was sent to (the new one for an email change).
    pub email: String,
    /// The app's authorization request (JSON) to continue once a sign-up is verified.
    pub resume: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
}

/// A message to write to the outbox, its payload already sealed with the master key.
#[derive(Clone, Debug)]
pub struct OutboxMessage {
    pub id: String,
    pub recipient: String,
    pub payload_sealed: Vec<u8>,
    pub created_at: i64,
}

/// A message a sender claimed for one attempt.
#[derive(Clone, Debug)]
pub struct QueuedMessage {
    pub id: String,
    /// `email` or `backchannel_logout`.
    pub kind: String,
    pub recipient: String,
    pub payload_sealed: Vec<u8>,
    /// Attempts so far, this one included.
    pub attempts: i64,
    pub created_at: i64,
}
