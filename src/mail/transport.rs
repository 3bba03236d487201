//! How a message leaves: SMTP through lettre (`smtp_url`), or the log when no server is set
//! (development only; the server warns at start).

use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::compose::Email;

/// Longest one SMTP conversation may take; the outbox lease is longer.
pub const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

pub enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    /// No `smtp_url`: each message is written to the log.
    Log,
}

/// Why a message was not delivered. `permanent`: the server refused it for good (RFC 5321
/// §4.2.1, 5yz), or it can't be built; retrying would not help.
#[derive(Debug)]
pub struct SendError {
    pub permanent: bool,
    pub message: String,
}

impl Transport {
    /// `smtp_url` in lettre's URL form; empty for the log transport.
    pub fn from_url(smtp_url: &str) -> Result<Self, String> {
        if smtp_url.is_empty() {
            return Ok(Transport::Log);
        }
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(smtp_url)
            .map_err(|e| format!("smtp_url is not usable: {e}"))?
            .timeout(Some(SMTP_TIMEOUT))
            .build();
        Ok(Transport::Smtp(transport))
    }

    pub fn is_log(&self) -> bool {
        matches!(self, Transport::Log)
    }

    pub async fn send(&self, from: &Mailbox, email: &Email) -> Result<(), SendError> {
        match self {
            Transport::Log => {
                tracing::info!(
                    target: "latchkey::mail",
                    to = %email.to,
                    subject = %email.subject,
                    "email (no smtp_url: written to the log, not sent)\n{}",
                    email.text
                );
                Ok(())
            }
            Transport::Smtp(smtp) => {
                let message = build(from, email)?;
                smtp.send(message)
                    .await
                    .map(|_| ())
                    .map_err(|e| SendError { permanent: e.is_permanent(), message: e.to_string() })
            }
        }
    }
}

fn build(from: &Mailbox, email: &Email) -> Result<Message, SendError> {
    let permanent = |message: String| SendError { permanent: true, message };
    let to: Mailbox = email.to.parse().map_err(|e| permanent(format!("recipient address: {e}")))?;
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(email.subject.clone())
        .multipart(MultiPart::alternative_plain_html(email.text.clone(), email.html.clone()))
        .map_err(|e| permanent(format!("message: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    // lettre's connection pool lives on the Tokio runtime, as the server's does.
    #[tokio::test]
    async fn the_three_documented_url_forms_build_and_an_empty_one_means_the_log() {
        for url in [
            "smtp://user:pass@smtp.example.com:587?tls=required",
            "smtps://user:pass@smtp.example.com:465",
            "smtp://127.0.0.1:2525",
        ] {
            let transport = Transport::from_url(url).unwrap_or_else(|e| panic!("{url}: {e}"));
            assert!(!transport.is_log(), "{url}");
        }
        assert!(Transport::from_url("").unwrap().is_log());
        assert!(Transport::from_url("http://smtp.example.com").is_err());
    }

    #[test]
    fn a_recipient_that_is_not_an_address_is_a_permanent_failure() {
        let from: Mailbox = "Latchkey <no-reply@example.com>".parse().unwrap();
        let email = Email { to: "not an address".into(), subject: "s".into(), text: "t".into(), html: "h".into() };
        let error = build(&from, &email).unwrap_err();
        assert!(error.permanent);
    }
}
