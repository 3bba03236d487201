-- Latchkey schema v9: self-service accounts over email (issue 12).

-- The stored truth behind the `email_verified` claim: when the user proved they read mail at
-- `email` (a verification link, an invitation, an email change), or an admin said so.
ALTER TABLE users ADD COLUMN email_verified_at BIGINT NULL;
-- How the account came to be: 'admin' (latchkey user create), 'registered' (the sign-up
-- page: can't sign in until verified when require_verified_email is on), 'invited'.
ALTER TABLE users ADD COLUMN created_via TEXT NOT NULL DEFAULT 'admin';

-- Single-use links sent by email. Only the SHA-256 of the 256-bit token is kept. A newer link
-- of the same purpose deletes the older ones; a password change deletes the user's reset links.
CREATE TABLE email_tokens (
    token_hash  BYTEA PRIMARY KEY,
    purpose     TEXT NOT NULL,          -- verify_email | reset_password | invitation | change_email
    user_sub    TEXT NOT NULL,
    email       TEXT NOT NULL,          -- the address the link was sent to (the new one for change_email)
    resume      TEXT NULL,              -- JSON: the app's authorization request to continue after sign-up
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX email_tokens_user ON email_tokens (user_sub, purpose);
CREATE INDEX email_tokens_expiry ON email_tokens (expires_at);

-- The outbox (shared/design.md, "Effects that leave the process"): a row written in the same
-- transaction as the change that causes it, delivered by a background sender with retries.
-- The payload is sealed with the master key (it carries live links) and emptied once delivered.
CREATE TABLE outbox (
    id              TEXT PRIMARY KEY,
    kind            TEXT NOT NULL,      -- 'email'
    recipient       TEXT NOT NULL,
    payload         BYTEA NOT NULL,
    created_at      BIGINT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    claimed_until   BIGINT NULL,        -- a replica's lease while it sends
    last_error      TEXT NULL,
    sent_at         BIGINT NULL,
    failed_at       BIGINT NULL         -- given up: permanent refusal or too many attempts
);
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE sent_at IS NULL AND failed_at IS NULL;
CREATE INDEX outbox_done ON outbox (created_at) WHERE sent_at IS NOT NULL OR failed_at IS NOT NULL;
