-- Latchkey schema v5 (SQLite): indexes so that no statement scans a table that grows with use
-- (issue 9 item 10; docs/operations.md "Query plans"). The Postgres twin has the same version
-- number and meaning.

-- Revoking an app from the account page ends the user's grants to it: one user's grants to one
-- app, not every grant of the app (grants_client) nor every grant of the user. The composite
-- index also serves lookups by user alone, so it replaces grants_user.
CREATE INDEX grants_user_client ON grants (user_sub, client_id);
DROP INDEX grants_user;

-- Housekeeping (delete_expired) deletes by expiry; without these it read whole tables.
-- sessions (sessions_expiry) and throttles (throttles_updated) had theirs already.
CREATE INDEX grants_expiry ON grants (expires_at);
CREATE INDEX authorization_codes_expiry ON authorization_codes (expires_at);
CREATE INDEX refresh_tokens_expiry ON refresh_tokens (expires_at);
