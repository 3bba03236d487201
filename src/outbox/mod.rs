//! The outbox's sender: a background task on every replica that claims due messages one at a
//! time and delivers them, with retries and back-off. A request only writes its message and
//! wakes the sender, so no page waits on a mail server or an app's endpoint, and an outage loses
//! nothing (shared/design.md, "Effects that leave the process"). One mechanism, two kinds of
//! message: email (issue 12) and back-channel logout tokens (issue 13 item 6).

pub mod backchannel;

use std::time::Duration;

use lettre::message::Mailbox;

use crate::mail::compose::open_from_outbox;
use crate::mail::transport::{SendError, Transport, SMTP_TIMEOUT};
use crate::state::{unix_now, AppState};
use crate::store::{OutboxStore, StoreError, BACKCHANNEL_LOGOUT_KIND};

/// A claimed message is this replica's for this long; a sender that dies mid-send delays the
/// message by at most this much.
const LEASE_SECS: i64 = 2 * SMTP_TIMEOUT.as_secs() as i64;
/// Longest wait between two attempts at one message.
const MAX_BACKOFF_SECS: i64 = 15 * 60;

#[derive(Clone, Debug)]
pub struct RetryPolicy {
    pub base_secs: i64,
    pub give_up_after_secs: i64,
    pub poll: Duration,
}

impl RetryPolicy {
    /// When to try again after the `attempts`-th attempt failed, or `None` to give up.
    pub fn next_attempt(&self, attempts: i64, created_at: i64, now: i64, error: &SendError) -> Option<i64> {
        if error.permanent {
            return None;
        }
        let doublings = u32::try_from((attempts - 1).clamp(0, 20)).unwrap_or(20);
        let wait = self.base_secs.saturating_mul(1i64 << doublings).min(MAX_BACKOFF_SECS);
        let at = now + wait;
        (at - created_at < self.give_up_after_secs).then_some(at)
    }
}

/// What the sender needs; built once at start.
pub struct Sender {
    pub state: AppState,
    pub transport: Transport,
    pub from: Mailbox,
    pub policy: RetryPolicy,
    /// For logout tokens: no redirects followed, a short timeout.
    pub http: reqwest::Client,
}

impl Sender {
    /// Delivers until the task is aborted: everything due, then waits for a wake-up (a message
    /// written by this replica) or `poll` (messages of other replicas and the CLI, retries).
    pub async fn run(self) {
        loop {
            loop {
                match self.deliver_one().await {
                    Ok(true) => continue,
                    Ok(false) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "outbox: cannot read the queue; trying again later");
                        break;
                    }
                }
            }
            let wake = self.state.outbox_wake();
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(self.policy.poll) => {}
            }
        }
    }

    /// One due message, if any: true when there was one (delivered or not).
    pub async fn deliver_one(&self) -> Result<bool, StoreError> {
        let store = self.state.store();
        let now = unix_now();
        let Some(message) = store.claim_message(now, LEASE_SECS).await? else { return Ok(false) };
        let outcome = match message.kind.as_str() {
            BACKCHANNEL_LOGOUT_KIND => {
                backchannel::deliver(&self.state, &self.http, &message.recipient, &message.payload_sealed).await
            }
            _ => match open_from_outbox(self.state.master_key(), &message.id, &message.payload_sealed) {
                Ok(email) => self.transport.send(&self.from, &email).await,
                // Sealed with another master key, or altered: no retry can open it.
                Err(e) => Err(SendError { permanent: true, message: format!("message does not open: {e}") }),
            },
        };
        match outcome {
            Ok(()) => {
                crate::metrics::count_outbox(&message.kind, "delivered");
                tracing::info!(id = %message.id, kind = %message.kind, attempts = message.attempts, "outbox: delivered");
                store.message_sent(&message.id, unix_now()).await?;
            }
            Err(error) => {
                let now = unix_now();
                let retry_at = self.policy.next_attempt(message.attempts, message.created_at, now, &error);
                crate::metrics::count_outbox(&message.kind, if retry_at.is_some() { "retry" } else { "given_up" });
                match retry_at {
                    Some(at) => tracing::warn!(
                        id = %message.id,
                        kind = %message.kind,
                        attempts = message.attempts,
                        retry_in_secs = at - now,
                        error = %error.message,
                        "outbox: not delivered; will retry"
                    ),
                    None => tracing::error!(
                        id = %message.id,
                        kind = %message.kind,
                        attempts = message.attempts,
                        permanent = error.permanent,
                        error = %error.message,
                        "outbox: not delivered; giving up"
                    ),
                }
                store.message_failed(&message.id, now, &error.message, retry_at).await?;
            }
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy { base_secs: 10, give_up_after_secs: 3600, poll: Duration::from_secs(5) }
    }

    fn transient() -> SendError {
        SendError { permanent: false, message: "connection refused".into() }
    }

    #[test]
    fn back_off_doubles_up_to_fifteen_minutes() {
        let p = RetryPolicy { give_up_after_secs: 86_400, ..policy() };
        let waits: Vec<i64> = (1..=9).map(|n| p.next_attempt(n, 0, 0, &transient()).unwrap()).collect();
        assert_eq!(waits, [10, 20, 40, 80, 160, 320, 640, 900, 900]);
    }

    #[test]
    fn gives_up_on_permanent_refusals_and_old_messages() {
        let p = policy();
        assert_eq!(p.next_attempt(1, 0, 0, &SendError { permanent: true, message: "550".into() }), None);
        assert_eq!(p.next_attempt(3, 0, 3570, &transient()), None, "the retry would be past give_up_after");
        assert_eq!(p.next_attempt(3, 0, 3000, &transient()), Some(3040));
    }
}
