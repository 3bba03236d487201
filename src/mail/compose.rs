//! Messages: each kind has a plain-text and an HTML template (`email_<kind>.txt` and
//! `email_<kind>.html`, replaceable through `templates_dir` like the pages). The text template's
//! first line is `Subject: …`, then a blank line, then the body. A message is rendered when the
//! request that causes it runs, sealed with the master key (it carries live links), and written
//! to the outbox; the sender only opens and delivers it.

use serde::{Deserialize, Serialize};

use crate::domain::OutboxMessage;
use crate::keys::{seal, MasterKey};
use crate::secret::random_id;
use crate::web::templates::{TemplateError, Templates};

/// Every kind of message Latchkey sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageKind {
    /// A link that verifies the address (sign-up, or from the account page).
    VerifyEmail,
    /// Someone tried to sign up with an address that has an account (issue 12 item 2: the
    /// owner hears of it; the person at the page learns nothing).
    SignUpExisting,
    /// A password-reset link.
    ResetPassword,
    /// "Your password was changed."
    PasswordChanged,
    /// A link that moves the account to this (new) address.
    ChangeEmail,
    /// To the old address: the account now uses another one.
    EmailChanged,
    /// Someone asked to move their account to this address, which has an account already.
    ChangeEmailTaken,
    /// An invitation to set a password.
    Invitation,
}

impl MessageKind {
    pub const ALL: [MessageKind; 8] = [
        MessageKind::VerifyEmail,
        MessageKind::SignUpExisting,
        MessageKind::ResetPassword,
        MessageKind::PasswordChanged,
        MessageKind::ChangeEmail,
        MessageKind::EmailChanged,
        MessageKind::ChangeEmailTaken,
        MessageKind::Invitation,
    ];

    pub fn template_base(self) -> &'static str {
        match self {
            MessageKind::VerifyEmail => "email_verify",
            MessageKind::SignUpExisting => "email_signup_existing",
            MessageKind::ResetPassword => "email_reset_password",
            MessageKind::PasswordChanged => "email_password_changed",
            MessageKind::ChangeEmail => "email_change_email",
            MessageKind::EmailChanged => "email_email_changed",
            MessageKind::ChangeEmailTaken => "email_change_taken",
            MessageKind::Invitation => "email_invitation",
        }
    }
}

/// A rendered message, as sealed in the outbox.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Email {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("template {0}.txt must start with a `Subject: …` line and a blank line")]
    NoSubject(&'static str),
    #[error("message sealing failed")]
    Seal,
}

/// Associated data binding a sealed payload to its outbox row.
fn payload_aad(id: &str) -> Vec<u8> {
    format!("outbox:{id}").into_bytes()
}

/// Renders `kind` for `to` with `context` (which gets `to` and `product` added).
pub fn render(
    templates: &Templates,
    kind: MessageKind,
    to: &str,
    context: serde_json::Value,
) -> Result<Email, ComposeError> {
    let mut context = match context {
        serde_json::Value::Object(map) => map,
        _ => serde_json::Map::new(),
    };
    context.insert("to".into(), serde_json::Value::from(to));
    let base = kind.template_base();
    let text = templates.render(&format!("{base}.txt"), &context)?;
    let html = templates.render(&format!("{base}.html"), &context)?;
    let (first, body) = text.split_once('\n').ok_or(ComposeError::NoSubject(base))?;
    let subject = first.strip_prefix("Subject:").ok_or(ComposeError::NoSubject(base))?.trim();
    // A header line: no line breaks, whatever a template or a user's name put there.
    let subject: String = subject.chars().filter(|c| !c.is_control()).take(200).collect();
    if subject.is_empty() {
        return Err(ComposeError::NoSubject(base));
    }
    Ok(Email { to: to.to_string(), subject, text: body.trim_start_matches(['\r', '\n']).to_string(), html })
}

/// Seals `email` into an outbox row made at `now`.
pub fn seal_for_outbox(master: &MasterKey, email: &Email, now: i64) -> Result<OutboxMessage, ComposeError> {
    let id = random_id(22);
    let plain = zeroize::Zeroizing::new(serde_json::to_vec(email).map_err(|_| ComposeError::Seal)?);
    let payload_sealed = seal::seal(master, &plain, &payload_aad(&id)).map_err(|_| ComposeError::Seal)?;
    Ok(OutboxMessage { id, recipient: email.to.clone(), payload_sealed, created_at: now })
}

/// Opens a claimed row's payload.
pub fn open_from_outbox(master: &MasterKey, id: &str, sealed: &[u8]) -> Result<Email, ComposeError> {
    let plain = seal::open(master, sealed, &payload_aad(id)).map_err(|_| ComposeError::Seal)?;
    serde_json::from_slice(&plain).map_err(|_| ComposeError::Seal)
}

/// Renders every kind once with no values, so a replaced template that is broken (no
/// `Subject:` line, a syntax error) fails at start rather than on a user's request.
pub fn check_templates(templates: &Templates) -> Result<(), ComposeError> {
    for kind in MessageKind::ALL {
        render(templates, kind, "check@example.invalid", serde_json::json!({}))?;
    }
    Ok(())
}
