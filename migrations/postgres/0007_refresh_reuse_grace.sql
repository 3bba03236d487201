-- Latchkey schema v7 (Postgres): refresh rotation that survives concurrent use and still
-- detects theft (issue 11 item 4; docs/security.md "Refresh rotation"). The SQLite twin has the
-- same version number and meaning.

-- Set when the token is rotated: the hash of the token that replaced it. A second presentation
-- within the grace window finds its successor through the primary key.
ALTER TABLE refresh_tokens ADD COLUMN successor_hash BYTEA NULL;
-- This token itself, sealed with the master key (associated data: its predecessor's hash), kept
-- only while its predecessor's grace window is open and it has not been used; NULL otherwise.
ALTER TABLE refresh_tokens ADD COLUMN sealed_token BYTEA NULL;
-- End of that window (Unix seconds); NULL once the sealed copy is wiped.
ALTER TABLE refresh_tokens ADD COLUMN sealed_until BIGINT NULL;

-- Housekeeping wipes lapsed sealed copies by sealed_until. Partial: only the few tokens rotated
-- in the last seconds are in it, not every refresh token ever issued.
CREATE INDEX refresh_tokens_sealed_until ON refresh_tokens (sealed_until) WHERE sealed_until IS NOT NULL;
