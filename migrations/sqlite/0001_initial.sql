-- Latchkey schema v1 (SQLite). The Postgres twin has the same version number and meaning.
-- Times are Unix seconds (BIGINT) so both backends store and compare them the same way.

CREATE TABLE clients (
    id                        TEXT PRIMARY KEY,
    name                      TEXT NOT NULL,
    kind                      TEXT NOT NULL CHECK (kind IN ('confidential', 'public')),
    secret_hash               BLOB NULL,            -- SHA-256 of the secret; NULL for public clients
    first_party               BIGINT NOT NULL DEFAULT 0,
    redirect_uris             TEXT NOT NULL,         -- JSON array of exact strings
    post_logout_redirect_uris TEXT NOT NULL,         -- JSON array of exact strings
    grant_types               TEXT NOT NULL,         -- JSON array
    scopes                    TEXT NOT NULL,         -- space-delimited (RFC 6749 §3.3)
    roles                     TEXT NOT NULL,         -- JSON array
    audience                  TEXT NULL,
    created_at                BIGINT NOT NULL,
    updated_at                BIGINT NOT NULL,
    disabled_at               BIGINT NULL
);

CREATE TABLE signing_keys (
    kid          TEXT PRIMARY KEY,
    alg          TEXT NOT NULL CHECK (alg IN ('RS256', 'ES256')),
    status       TEXT NOT NULL CHECK (status IN ('next', 'active', 'retired')),
    private_key  BLOB NOT NULL,                     -- sealed with the master key (AEAD, kid as AAD)
    public_jwk   TEXT NOT NULL,                      -- JSON, public parts only
    created_at   BIGINT NOT NULL,
    activates_at BIGINT NOT NULL,                    -- first moment the key may sign
    retired_at   BIGINT NULL,                        -- when it stopped signing
    removes_at   BIGINT NULL                         -- when it leaves the JWKS
);

-- At most one signing key per algorithm is active: replicas that race to create the first key
-- (or to rotate) collide here, and exactly one wins.
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys (alg) WHERE status = 'active';
