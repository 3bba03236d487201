-- Latchkey schema v6 (Postgres): token revocation (RFC 7009) and introspection (RFC 7662), issue 11
-- items 2 and 3. The SQLite twin has the same version number and meaning.

-- clients.introspect: 1 when the client may call /introspect for tokens meant for it
-- (`latchkey client create --introspect`): a resource server.
ALTER TABLE clients ADD COLUMN introspect BIGINT NOT NULL DEFAULT 0;

-- Client-credentials access tokens that their client revoked. They name no grant (a user's
-- token is revoked through its grant), so each one is remembered by its jti, only until it
-- expires: housekeeping deletes the row after expires_at (the token's exp).
CREATE TABLE revoked_access_tokens (
    jti        TEXT PRIMARY KEY,
    client_id  TEXT NOT NULL,
    revoked_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX revoked_access_tokens_expiry ON revoked_access_tokens (expires_at);
