-- Latchkey schema v2 (Postgres): users, sessions, consent, authorization codes, grants, refresh
-- tokens. The SQLite twin has the same version number and meaning.

CREATE TABLE users (
    sub                 TEXT PRIMARY KEY,          -- stable, opaque, base64url: never the email
    email               TEXT NOT NULL UNIQUE,      -- stored lower-cased
    name                TEXT NULL,
    password_hash       TEXT NOT NULL,             -- argon2id PHC string
    roles               TEXT NOT NULL,             -- JSON array
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL,
    password_changed_at BIGINT NOT NULL,
    disabled_at         BIGINT NULL
);

-- Browser sessions (tower-sessions records). The id is stored hashed: a database leak gives
-- nobody a usable cookie.
CREATE TABLE sessions (
    id_hash    TEXT PRIMARY KEY,
    data       TEXT NOT NULL,                      -- JSON
    user_sub   TEXT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_sub);
CREATE INDEX sessions_expiry ON sessions (expires_at);

CREATE TABLE consents (
    user_sub   TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    scopes     TEXT NOT NULL,                      -- space-delimited
    granted_at BIGINT NOT NULL,
    PRIMARY KEY (user_sub, client_id)
);

-- One row per authorization: the code, every refresh token rotated from it and the access
-- tokens issued under it (their jti starts with the grant id) hang off this row, so revoking it
-- revokes them all.
CREATE TABLE grants (
    id          TEXT PRIMARY KEY,
    client_id   TEXT NOT NULL,
    user_sub    TEXT NOT NULL,
    scopes      TEXT NOT NULL,
    auth_time   BIGINT NOT NULL,
    amr         TEXT NOT NULL,                     -- JSON array
    nonce       TEXT NULL,
    sid         TEXT NULL,                         -- the browser session it was granted in
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,                   -- absolute lifetime of the refresh family
    revoked_at  BIGINT NULL
);
CREATE INDEX grants_user ON grants (user_sub);
CREATE INDEX grants_client ON grants (client_id);
CREATE INDEX grants_sid ON grants (sid);

CREATE TABLE authorization_codes (
    code_hash      BYTEA PRIMARY KEY,              -- SHA-256 of the code
    grant_id       TEXT NOT NULL,
    client_id      TEXT NOT NULL,
    redirect_uri   TEXT NOT NULL,
    redirect_uri_sent BIGINT NOT NULL,             -- 1 when the request named it (RFC 6749 §4.1.3)
    code_challenge TEXT NOT NULL,                  -- PKCE S256 (RFC 7636 §4.2)
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    consumed_at    BIGINT NULL
);

CREATE TABLE refresh_tokens (
    token_hash  BYTEA PRIMARY KEY,                 -- SHA-256 of the token
    grant_id    TEXT NOT NULL,
    scopes      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,                   -- idle lifetime
    used_at     BIGINT NULL                        -- set when rotated; a second use is reuse
);
CREATE INDEX refresh_tokens_grant ON refresh_tokens (grant_id);


-- OIDC Registration §2 id_token_signed_response_alg: NULL means the default (RS256).
ALTER TABLE clients ADD COLUMN id_token_alg TEXT NULL;
