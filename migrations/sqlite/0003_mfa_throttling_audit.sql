-- Latchkey schema v3: second factors (TOTP, recovery codes), failure counters shared by
-- replicas, the audit trail, and clients that require MFA. The Postgres twin has the same
-- version number and meaning.

-- clients.require_mfa: 1 when every sign-in for this app needs a second factor.
ALTER TABLE clients ADD COLUMN require_mfa BIGINT NOT NULL DEFAULT 0;

-- One authenticator app per user. A row with enabled_at NULL is an enrolment that has not been
-- confirmed with a code yet. The seed is sealed with the master key (XChaCha20-Poly1305, the
-- user's sub as associated data). last_step is the RFC 6238 time step of the last accepted
-- code: a code of that step or an earlier one is refused (replay).
CREATE TABLE totp_factors (
    user_sub      TEXT PRIMARY KEY,
    secret_sealed BLOB NOT NULL,
    created_at    BIGINT NOT NULL,
    enabled_at    BIGINT NULL,
    last_step     BIGINT NULL
);

-- Single-use recovery codes, stored as SHA-256 (they carry 80 random bits); a new set
-- replaces the old one.
CREATE TABLE recovery_codes (
    user_sub   TEXT NOT NULL,
    code_hash  BLOB NOT NULL,
    created_at BIGINT NOT NULL,
    used_at    BIGINT NULL,
    PRIMARY KEY (user_sub, code_hash)
);

-- Failed attempts per account ("pwd:<sha256 of the email as typed>", "otp:<sub>"), counted
-- before the check so parallel guesses can't overrun the limit.
CREATE TABLE throttles (
    key          TEXT PRIMARY KEY,
    failures     BIGINT NOT NULL,
    window_start BIGINT NOT NULL,
    locked_until BIGINT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE INDEX throttles_updated ON throttles (updated_at);

-- Security events; also written to the log as structured events (target "audit").
CREATE TABLE audit_events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at         BIGINT NOT NULL,
    event      TEXT NOT NULL,
    user_sub   TEXT NULL,
    client_id  TEXT NULL,
    ip         TEXT NULL,
    user_agent TEXT NULL,
    detail     TEXT NULL                           -- JSON object
);
CREATE INDEX audit_events_user ON audit_events (user_sub, id);
CREATE INDEX audit_events_event ON audit_events (event, id);
